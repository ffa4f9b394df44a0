/*
 * common/bench.c: the bench harness. See bench.h for how a stage's bench
 * program uses it, and bench.sh for the driver that `make bench` runs.
 *
 * What it does, in order:
 *
 *   1. Reads the command line (bench.h lists the options) and checks the
 *      stage's case table. Each case's op count is multiplied by --scale.
 *   2. With --csv and --append, reads the CSV once: every "system" row of
 *      this stage becomes the reference of its case (see "The ratio" below).
 *   3. For each case, runs each side once untimed: the warm-up. The first
 *      run pays for page faults, the allocator's first mmap and cold
 *      caches; the later ones are what a program that allocates all day
 *      sees.
 *   4. Runs --reps timed repetitions, alternating the sides: stage, system,
 *      stage, system, ... A burst of noise from another process on a shared
 *      2-core machine then lands on both sides alike, not on one of them.
 *   5. A repetition's time is the sum of its bench_start..bench_stop
 *      intervals on CLOCK_MONOTONIC: the runner's setup and teardown are
 *      not counted.
 *   6. Reports the median repetition (a few slow outliers, which is what
 *      noise looks like, move the mean but not the median), the rate
 *      ops / median, the ratio to the system's rate, and the spread
 *      min..max so that a reader sees how far to trust the figure.
 *   7. Writes one CSV row per case and side, flushed after each case.
 *
 * The ratio. Every rate is compared with the system malloc's rate in the
 * same case: ratio = rate / system rate, so above 1 means faster than the
 * system malloc, and the system row itself is exactly 1. The system rate is
 * the one measured in this run when the system side ran under its own name.
 * When it did not (--only stage, or --label jemalloc in a run where
 * libjemalloc is preloaded), it is read back from the "system" row of the
 * same stage and case in the CSV being appended to. Without either, the
 * ratio is left empty, and the output says why.
 *
 * Under `valgrind --tool=callgrind --collect-atstart=no`, bench_start and
 * bench_stop switch instruction collection on and off in the timed
 * repetitions (not in the warm-up), so the instruction total is the
 * measured work only: bench.sh runs --reps 1 there and divides the total by
 * the ops. (--once counts a cold run instead: no warm-up.)
 *
 * The allocator alone (--allocator-only). That total includes the bench
 * loop around the allocator (picking a size or a slot, storing the
 * pointer, bench_keep): a dozen instructions or so a request, about the
 * same on both sides, which squeezes the ratios toward 1. Stanford's CS107
 * counts only the allocator's own instructions: callgrind's
 * --toggle-collect=FN flips collection on when FN is entered and off when
 * it returns. But callgrind
 * has one collection switch, and a flip is a flip: inside bench_start ..
 * bench_stop (switched on by the client request), entering FN would
 * switch it OFF. So with --allocator-only, bench_start and bench_stop leave
 * collection alone and switch callgrind's instrumentation on and off
 * instead (CALLGRIND_START_INSTRUMENTATION / _STOP_), under
 *     valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no
 *              --toggle-collect=FN ...
 * Outside the timed intervals nothing is instrumented, so the entry points'
 * calls in the warm-up, the setup and the teardown are not seen at all;
 * inside them, FN's toggles count FN and what it calls, and nothing else.
 * Instructions are counted where both hold: timed, and inside an entry
 * point. (Starting instrumentation makes callgrind throw away and
 * retranslate the code it had translated: slow, but once per interval.)
 *
 * What it prints, one block per case (Mops/s: millions of ops per second):
 *
 *   case     allocator     ops  median s   Mops/s  ratio  spread Mops/s
 *   -- bump-32: 32-byte blocks from a buffer, reset every 1024 (timed)
 *   bump-32  stage     1000000  0.000912  1096.49  14.21  1010.2..1120.7 (10%)
 *   bump-32  system    1000000  0.012960    77.16   1.00  75.0..80.1 (7%)
 *
 * The spread is the rates of the slowest and the fastest repetitions, and
 * in brackets the distance between their times as a share of the median
 * time ((slowest - fastest) / median: 222% means the slowest repetition
 * took 2.2 median times longer than the fastest).
 */
#include "bench.h"

#include "annotate.h" /* alloc_fatal: misuse reports */

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Callgrind's client request, when Valgrind's headers are installed; on a
 * machine without them the toggle compiles to nothing and only the wall
 * times are measured. Outside Valgrind the request is a few no-op
 * instructions.
 */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_TOGGLE_COLLECT() CALLGRIND_TOGGLE_COLLECT
#define BENCH_INSTR_START()    CALLGRIND_START_INSTRUMENTATION
#define BENCH_INSTR_STOP()     CALLGRIND_STOP_INSTRUMENTATION
#endif
#endif
#ifndef BENCH_TOGGLE_COLLECT
#define BENCH_TOGGLE_COLLECT() ((void)0)
#define BENCH_INSTR_START()    ((void)0)
#define BENCH_INSTR_STOP()     ((void)0)
#endif

#define BENCH_CSV_HEADER                                                       \
    "stage,case,allocator,ops,seconds,ops_per_sec,ratio_vs_system"
#define BENCH_REPS_DEFAULT 7
#define BENCH_REPS_MAX     10000 /* a typo guard: 7 is usually plenty */
#define BENCH_OPS_MAX      1e15  /* scaled op counts above this are a typo */
#define BENCH_SIDE_STAGE   "stage"
#define BENCH_SIDE_SYSTEM  "system"

/*
 * One run of one side of one case. The runner only sees this through
 * bench_start and bench_stop; the names are kept for misuse reports.
 * Invariant between calls: running == false, and seconds is the sum of
 * `intervals` closed intervals.
 */
struct bench {
    const char *stage;     /* stage name, first word of misuse reports */
    const char *case_name; /* case being run */
    const char *side;      /* "stage", "system" or the --label name */
    bool running;          /* between bench_start and bench_stop */
    bool collect;          /* a timed repetition: callgrind counts it */
    bool allocator_only;   /* --allocator-only: switch instrumentation, not
                              collection (see the file header) */
    unsigned intervals;    /* start..stop pairs closed in this repetition */
    struct timespec t0;    /* when the open interval started */
    double seconds;        /* sum of the closed intervals, in seconds */
};

/* The command line, parsed. */
typedef struct bench_opts {
    unsigned reps;         /* timed repetitions per case and side */
    double scale;          /* multiplies every case's ops */
    const char *csv;       /* CSV path, or NULL for none */
    bool append;           /* append to the CSV instead of starting anew */
    const char *only_case; /* run only this case, or NULL */
    bool run_stage;        /* run the stage side */
    bool run_system;       /* run the system side */
    const char *label;     /* the system side's name: "system" by default */
    bool once;             /* one repetition, no warm-up */
    bool allocator_only;   /* bench_start/stop switch instrumentation */
    bool list;             /* print the case names and stop */
} bench_opts;

/* The figures of one side of one case. */
typedef struct bench_result {
    size_t ops;    /* ops per repetition, after --scale */
    double median; /* seconds of the median repetition */
    double min;    /* seconds of the fastest repetition */
    double max;    /* seconds of the slowest repetition */
    double rate;   /* ops / median, per second; NAN if median is 0 */
    double ratio;  /* rate / system rate; NAN when there is no reference */
} bench_result;

/* ---- Timing: what the runners call --------------------------------------
 * These run inside the measured loop's brackets, so they do the least:
 * one check, one clock read, one callgrind toggle. */

/* Reports a runner's misuse of the brackets, naming the case, and aborts. */
static void bench_fatal(const bench_t *b, const char *func, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s (case %s, %s side)", what, b->case_name,
             b->side);
    alloc_fatal(b->stage, func, b, msg);
}

static double bench_seconds_between(const struct timespec *a,
                                    const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) +
           (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

/* Opens an interval: the clock is read first and collection switched on
 * last, so that neither the clock read nor the check is counted. The
 * warm-up is not collected: it would count the cold run that it exists to
 * keep out of the figures. With --allocator-only, instrumentation is
 * switched on instead, and the entry points' --toggle-collect does the
 * collecting. */
void bench_start(bench_t *b)
{
    if (b->running)
        bench_fatal(b, "bench_start", "bench_start twice without bench_stop");
    b->running = true;
    clock_gettime(CLOCK_MONOTONIC, &b->t0);
    if (b->collect && b->allocator_only)
        BENCH_INSTR_START();
    else if (b->collect)
        BENCH_TOGGLE_COLLECT();
}

/* Closes it, in the mirror order: collection (or instrumentation) off
 * first, then the clock. */
void bench_stop(bench_t *b)
{
    if (b->collect && b->allocator_only)
        BENCH_INSTR_STOP();
    else if (b->collect)
        BENCH_TOGGLE_COLLECT();
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!b->running)
        bench_fatal(b, "bench_stop", "bench_stop without bench_start");
    b->running = false;
    b->intervals++;
    b->seconds += bench_seconds_between(&b->t0, &t1);
}

/*
 * bench_keep: the compiler may delete work whose result nobody uses. A loop
 * of malloc(32) whose pointers are dropped can compile to nothing at all
 * (GCC and Clang remove malloc/free pairs they can see), and then the bench
 * measures an empty loop. Two walls stop that:
 *   - this function is in another file, so at the call site the compiler
 *     must assume it reads p and anything reachable from it;
 *   - inside, an empty asm statement takes p as an input and "clobbers
 *     memory": the compiler must assume the asm reads p and every byte in
 *     memory, so even link-time optimisation, which sees through the call,
 *     cannot drop the allocation or the stores into the block.
 * The asm emits no instruction. The cost is one call and one return per
 * use, the same on both sides; callgrind counts them (2 instructions).
 * Compilers without GNU asm store p to a volatile sink, which the compiler
 * must perform.
 */
#if defined(__GNUC__)
void bench_keep(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}
#else
static const void *volatile bench_sink;
void bench_keep(const void *p)
{
    bench_sink = p;
}
#endif

/* ---- The command line --------------------------------------------------- */

static void bench_usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [options]\n"
            "  --reps N          timed repetitions per case and side "
            "(default %d)\n"
            "  --scale F         multiply every case's op count by F\n"
            "  --csv PATH        write rows to PATH\n"
            "  --append          append to the CSV instead of starting anew\n"
            "  --case NAME       run only this case\n"
            "  --only stage|system   run only one side\n"
            "  --label NAME      name the system side NAME (a preloaded "
            "malloc)\n"
            "  --once            one repetition, no warm-up (callgrind)\n"
            "  --allocator-only  under callgrind, bench_start/bench_stop "
            "switch\n"
            "                    instrumentation instead of collection, for\n"
            "                    --toggle-collect on the allocator's entry "
            "points\n"
            "  --list            print the case names and exit\n",
            prog, BENCH_REPS_DEFAULT);
}

/* A name that can stand in a CSV field and a table column. */
static bool bench_name_ok(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++)
        if (*s == ',' || *s == '"' || *s <= ' ')
            return false;
    return true;
}

/* Reads the value v of option a into *o; false, having said why, if v is
 * not a value that a takes. */
static bool bench_parse_value(const char *prog, const char *a, const char *v,
                              bench_opts *o)
{
    char *end;
    errno = 0;
    if (strcmp(a, "--reps") == 0) {
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-' || n < 1 ||
            n > BENCH_REPS_MAX) {
            fprintf(stderr, "%s: --reps %s: want a whole number, 1..%d\n", prog,
                    v, BENCH_REPS_MAX);
            return false;
        }
        o->reps = (unsigned)n;
    } else if (strcmp(a, "--scale") == 0) {
        double f = strtod(v, &end);
        if (errno || *end || end == v || !(f > 0) || !isfinite(f)) {
            fprintf(stderr, "%s: --scale %s: want a number above 0\n", prog, v);
            return false;
        }
        o->scale = f;
    } else if (strcmp(a, "--csv") == 0) {
        o->csv = v;
    } else if (strcmp(a, "--case") == 0) {
        o->only_case = v;
    } else if (strcmp(a, "--only") == 0) {
        o->run_stage = strcmp(v, BENCH_SIDE_STAGE) == 0;
        o->run_system = strcmp(v, BENCH_SIDE_SYSTEM) == 0;
        if (!o->run_stage && !o->run_system) {
            fprintf(stderr, "%s: --only %s: want stage or system\n", prog, v);
            return false;
        }
    } else { /* --label */
        if (!bench_name_ok(v) || strcmp(v, BENCH_SIDE_STAGE) == 0) {
            fprintf(stderr,
                    "%s: --label '%s': want a name without spaces, commas "
                    "or quotes, other than 'stage'\n",
                    prog, v);
            return false;
        }
        o->label = v;
    }
    return true;
}

/*
 * Fills *o from argv. On a bad command line prints what is wrong and the
 * usage to stderr and returns 2 (the exit status); returns 0 when the run
 * should go on, and -1 after --help (exit 0).
 */
static int bench_parse(int argc, char **argv, bench_opts *o)
{
    static const char *const with_value[] = {"--reps", "--scale", "--csv",
                                             "--case", "--only",  "--label"};
    const char *prog = argc > 0 ? argv[0] : "bench";
    *o = (bench_opts){.reps = BENCH_REPS_DEFAULT,
                      .scale = 1.0,
                      .run_stage = true,
                      .run_system = true,
                      .label = BENCH_SIDE_SYSTEM};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--append") == 0) {
            o->append = true;
        } else if (strcmp(a, "--once") == 0) {
            o->once = true;
        } else if (strcmp(a, "--allocator-only") == 0) {
            o->allocator_only = true;
        } else if (strcmp(a, "--list") == 0) {
            o->list = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bench_usage(stdout, prog);
            return -1;
        } else {
            size_t k = 0, n = sizeof with_value / sizeof with_value[0];
            while (k < n && strcmp(a, with_value[k]) != 0)
                k++;
            if (k == n) {
                fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
                goto bad;
            }
            if (i + 1 == argc) {
                fprintf(stderr, "%s: %s needs a value\n", prog, a);
                goto bad;
            }
            if (!bench_parse_value(prog, a, argv[++i], o))
                goto bad;
        }
    }
    if (o->once)
        o->reps = 1;
    return 0;
bad:
    bench_usage(stderr, prog);
    return 2;
}

/*
 * The stage's case table is code, not input: a mistake in it is a bug in the
 * bench program, reported like any other misuse (stage, function, address).
 */
static void bench_check_table(const char *stage, const bench_case *cases,
                              size_t ncases)
{
    if (!bench_name_ok(stage))
        alloc_fatal(stage ? stage : "(null)", "bench_main", stage,
                    "stage name is empty or has spaces, commas or quotes");
    if (cases == NULL || ncases == 0)
        alloc_fatal(stage, "bench_main", cases, "no cases");
    for (size_t i = 0; i < ncases; i++) {
        const bench_case *c = &cases[i];
        const char *what = NULL;
        if (!bench_name_ok(c->name))
            what = "case name is empty or has spaces, commas or quotes";
        else if (c->what == NULL)
            what = "case has no `what` line";
        else if (c->ops == 0)
            what = "case has 0 ops";
        else if (c->stage == NULL || c->system == NULL)
            what = "case lacks a stage or a system runner";
        for (size_t j = 0; what == NULL && j < i; j++)
            if (strcmp(cases[j].name, c->name) == 0)
                what = "two cases have the same name";
        if (what != NULL) {
            char msg[256];
            snprintf(msg, sizeof msg, "cases[%zu] \"%s\": %s", i,
                     c->name ? c->name : "(null)", what);
            alloc_fatal(stage, "bench_main", c, msg);
        }
    }
}

/* ops * scale, at least 1; 0 when the product is absurd (a typo). */
static size_t bench_scaled_ops(size_t ops, double scale)
{
    double x = (double)ops * scale;
    if (!(x <= BENCH_OPS_MAX))
        return 0;
    return x < 1.0 ? 1 : (size_t)(x + 0.5);
}

/* ---- Reading the CSV back ---------------------------------------------- */

/* Splits a CSV line in place at its commas (no quoting: names have none).
 * Returns the number of fields, at most max. */
static size_t bench_csv_split(char *line, char **field, size_t max)
{
    line[strcspn(line, "\r\n")] = '\0';
    size_t n = 0;
    for (char *p = line; n < max;) {
        field[n++] = p;
        p = strchr(p, ',');
        if (p == NULL)
            break;
        *p++ = '\0';
    }
    return n;
}

/*
 * Reads the existing CSV at path, if any: fills ref_rate[i] and ref_ops[i]
 * from the last "system" row of this stage for cases[i] (NAN and 0 when
 * there is none). Sets *is_new when the file is missing or empty. Returns
 * false, having said why, when the file exists but is not a bench CSV:
 * appending to it would mix formats.
 */
static bool bench_csv_read(const char *path, const char *stage,
                           const bench_case *cases, size_t ncases,
                           double *ref_rate, size_t *ref_ops, bool *is_new)
{
    for (size_t i = 0; i < ncases; i++) {
        ref_rate[i] = NAN;
        ref_ops[i] = 0;
    }
    *is_new = true;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true;
    char *line = NULL;
    size_t cap = 0;
    bool ok = true;
    for (size_t lineno = 1; getline(&line, &cap, f) >= 0; lineno++) {
        if (lineno == 1) {
            *is_new = false;
            line[strcspn(line, "\r\n")] = '\0';
            if (strcmp(line, BENCH_CSV_HEADER) != 0) {
                fprintf(stderr,
                        "bench: %s does not start with the bench CSV header "
                        "(%s): not appending to it\n",
                        path, BENCH_CSV_HEADER);
                ok = false;
                break;
            }
            continue;
        }
        char *fld[8];
        if (bench_csv_split(line, fld, 8) != 7 || strcmp(fld[0], stage) != 0 ||
            strcmp(fld[2], BENCH_SIDE_SYSTEM) != 0)
            continue;
        for (size_t i = 0; i < ncases; i++) {
            if (strcmp(fld[1], cases[i].name) != 0)
                continue;
            char *end;
            double rate = strtod(fld[5], &end);
            if (end != fld[5] && *end == '\0' && rate > 0) {
                ref_rate[i] = rate;
                ref_ops[i] = (size_t)strtoull(fld[3], NULL, 10);
            }
        }
    }
    free(line);
    fclose(f);
    return ok;
}

/* ---- Measuring ---------------------------------------------------------- */

/* Runs one repetition of one side and returns its time in seconds;
 * `timed` is false for the warm-up. */
static double bench_run_once(bench_t *b, bench_fn fn, size_t ops, bool timed)
{
    b->collect = timed;
    b->running = false;
    b->intervals = 0;
    b->seconds = 0;
    fn(b, ops);
    if (b->running)
        bench_fatal(b, "bench_main",
                    "the runner returned with the clock running "
                    "(no bench_stop)");
    if (b->intervals == 0)
        bench_fatal(b, "bench_main", "the runner never called bench_start");
    return b->seconds;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of n repetition times (sorts t in place). */
static void bench_summarise(double *t, unsigned n, bench_result *r)
{
    qsort(t, n, sizeof *t, bench_cmp_double);
    r->min = t[0];
    r->max = t[n - 1];
    r->median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    r->rate = r->median > 0 ? (double)r->ops / r->median : NAN;
}

/* ---- Printing ----------------------------------------------------------- */

typedef struct bench_widths {
    int name; /* case column */
    int side; /* allocator column */
} bench_widths;

static void bench_print_row(const bench_widths *w, const char *name,
                            const char *side, const bench_result *r)
{
    char ratio[32] = "-";
    if (!isnan(r->ratio))
        snprintf(ratio, sizeof ratio, "%.2f", r->ratio);
    printf("%-*s  %-*s %12zu %10.6f %10.2f %7s  ", w->name, name, w->side, side,
           r->ops, r->median, r->rate / 1e6, ratio);
    if (r->min > 0 && r->median > 0)
        printf("%.2f..%.2f (%.0f%%)\n", (double)r->ops / r->max / 1e6,
               (double)r->ops / r->min / 1e6,
               (r->max - r->min) / r->median * 100);
    else
        printf("-\n");
}

static void bench_csv_row(FILE *f, const char *stage, const char *name,
                          const char *side, const bench_result *r)
{
    fprintf(f, "%s,%s,%s,%zu,%.9g,", stage, name, side, r->ops, r->median);
    if (!isnan(r->rate))
        fprintf(f, "%.9g", r->rate);
    fputc(',', f);
    if (!isnan(r->ratio))
        fprintf(f, "%.6g", r->ratio);
    fputc('\n', f);
}

/* ---- Shared by the stages' bench programs (bench.h says why) ------------ */

/* The slots array: one, grown on demand, freed by bench_main on return. */
static void **bench_slot;
static size_t bench_slot_capacity;

void **bench_slots(size_t n)
{
    if (n > bench_slot_capacity) {
        free(bench_slot);
        bench_slot = malloc(n * sizeof *bench_slot);
        if (bench_slot == NULL) {
            fprintf(stderr, "bench: out of memory for %zu slots\n", n);
            exit(1);
        }
        bench_slot_capacity = n;
    }
    return bench_slot;
}

static void bench_slots_release(void)
{
    free(bench_slot);
    bench_slot = NULL;
    bench_slot_capacity = 0;
}

/*
 * The timed loop of the churn's system side, for one size rule. Inlined
 * into bench_churn_system twice, once with a size the rule returns as is
 * and once with BENCH_SIZE_RANDOM, so that the test of the rule is made
 * once, not once a request.
 */
static inline void bench_churn_loop(void **s, size_t ops, size_t size,
                                    size_t live, uint64_t x)
{
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, live);
        free(s[k]);
        s[k] = malloc(bench_churn_size(size, r));
    }
}

void bench_churn_system(bench_t *b, size_t ops, size_t size, size_t live)
{
    void **s = bench_slots(live);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < live; i++)
        s[i] = malloc(bench_churn_size(size, bench_random(&x)));
    bench_start(b);
    if (size == BENCH_SIZE_RANDOM)
        bench_churn_loop(s, ops, BENCH_SIZE_RANDOM, live, x);
    else
        bench_churn_loop(s, ops, size, live, x);
    bench_stop(b);
    bench_keep(s[0]);
    for (size_t i = 0; i < live; i++)
        free(s[i]);
}

/*
 * Steps: a pipe; fork; the child closes the read end, runs fn and writes
 * its result, then _exit (no atexit handlers, no second flush of stdio
 * buffers it inherited); the parent closes the write end, so that the
 * child's death, however it comes, ends its reads; it reads until it has
 * `size` bytes or the pipe ends, then reaps the child.
 */
bool bench_in_child(void (*fn)(void *arg, void *out), void *arg, void *out,
                    size_t size)
{
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return false;
    }
    if (pid == 0) {
        close(fd[0]);
        fn(arg, out);
        const char *p = out;
        size_t left = size;
        while (left > 0) {
            ssize_t n = write(fd[1], p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(1);
            p += n;
            left -= (size_t)n;
        }
        _exit(0);
    }
    close(fd[1]);
    char *p = out;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd[0], p + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return got == size && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- The driver --------------------------------------------------------- */

/* One run of bench_main: the options, the case table and what it fills. */
typedef struct bench_session {
    bench_opts o;
    const char *stage;
    const bench_case *cases;
    size_t ncases;
    double *ref_rate; /* per case: the system rate read from the CSV, or NAN */
    size_t *ref_ops;  /* per case: that row's ops (0 with no row) */
    double *t_stage;  /* o.reps repetition times of the stage side */
    double *t_system; /* o.reps repetition times of the system side */
    FILE *csv;        /* the CSV being written, or NULL */
    bool csv_is_new;  /* the CSV did not exist or was empty */
} bench_session;

/*
 * Allocates the buffers and opens the CSV (reading the references back
 * first when appending). All of it happens before any timing, so no
 * harness allocation falls inside a measured interval. Returns false,
 * having said why, when the run cannot go on.
 */
static bool bench_session_open(bench_session *s)
{
    s->ref_rate = malloc(s->ncases * sizeof *s->ref_rate);
    s->ref_ops = malloc(s->ncases * sizeof *s->ref_ops);
    s->t_stage = malloc(s->o.reps * sizeof *s->t_stage);
    s->t_system = malloc(s->o.reps * sizeof *s->t_system);
    if (!s->ref_rate || !s->ref_ops || !s->t_stage || !s->t_system) {
        fprintf(stderr, "%s: bench: out of memory\n", s->stage);
        return false;
    }
    for (size_t i = 0; i < s->ncases; i++) {
        s->ref_rate[i] = NAN;
        s->ref_ops[i] = 0;
    }
    s->csv_is_new = true;
    if (s->o.csv == NULL)
        return true;
    if (s->o.append && !bench_csv_read(s->o.csv, s->stage, s->cases, s->ncases,
                                       s->ref_rate, s->ref_ops, &s->csv_is_new))
        return false;
    bool appending = s->o.append && !s->csv_is_new;
    s->csv = fopen(s->o.csv, appending ? "a" : "w");
    if (s->csv == NULL) {
        fprintf(stderr, "%s: bench: cannot write %s: %s\n", s->stage, s->o.csv,
                strerror(errno));
        return false;
    }
    if (!appending)
        fprintf(s->csv, "%s\n", BENCH_CSV_HEADER);
    return true;
}

/* Closes the CSV and frees the buffers; false if the CSV could not be
 * written out. */
static bool bench_session_close(bench_session *s)
{
    bool ok = true;
    if (s->csv != NULL && fclose(s->csv) != 0) {
        fprintf(stderr, "%s: bench: writing %s: %s\n", s->stage, s->o.csv,
                strerror(errno));
        ok = false;
    }
    free(s->ref_rate);
    free(s->ref_ops);
    free(s->t_stage);
    free(s->t_system);
    return ok;
}

/*
 * Measures one case: warm-up, interleaved repetitions, figures, rows.
 * Returns true when its ratio had a reference.
 */
static bool bench_run_case(bench_session *s, const bench_widths *w, size_t i,
                           bool system_is_reference)
{
    const bench_opts *o = &s->o;
    const bench_case *c = &s->cases[i];
    bench_t b = {.stage = s->stage,
                 .case_name = c->name,
                 .allocator_only = o->allocator_only};
    bench_result rs = {.ops = bench_scaled_ops(c->ops, o->scale)};
    bench_result ry = rs;
    printf("-- %s: %s\n", c->name, c->what);
    fflush(stdout);

    /* STEP 1: the warm-up (r == 0), untimed; STEP 2: the timed
     * repetitions, alternating sides so that noise hits both. */
    for (unsigned r = o->once ? 1 : 0; r <= o->reps; r++) {
        if (o->run_stage) {
            b.side = BENCH_SIDE_STAGE;
            double t = bench_run_once(&b, c->stage, rs.ops, r > 0);
            if (r > 0)
                s->t_stage[r - 1] = t;
        }
        if (o->run_system) {
            b.side = o->label;
            double t = bench_run_once(&b, c->system, ry.ops, r > 0);
            if (r > 0)
                s->t_system[r - 1] = t;
        }
    }

    /* STEP 3: the figures, and the reference for the ratio. */
    if (o->run_stage)
        bench_summarise(s->t_stage, o->reps, &rs);
    if (o->run_system)
        bench_summarise(s->t_system, o->reps, &ry);
    double ref = system_is_reference ? ry.rate : s->ref_rate[i];
    rs.ratio = rs.rate / ref;
    ry.ratio = ry.rate / ref;

    /* STEP 4: the rows, on screen and in the CSV. */
    if (o->run_stage)
        bench_print_row(w, c->name, BENCH_SIDE_STAGE, &rs);
    if (o->run_system)
        bench_print_row(w, c->name, o->label, &ry);
    if (!system_is_reference && !isnan(ref) && s->ref_ops[i] != rs.ops)
        printf("   note: the system row in %s ran %zu ops, this run %zu: "
               "the ratio compares rates at different sizes\n",
               o->csv, s->ref_ops[i], rs.ops);
    if (s->csv != NULL) {
        if (o->run_stage)
            bench_csv_row(s->csv, s->stage, c->name, BENCH_SIDE_STAGE, &rs);
        if (o->run_system)
            bench_csv_row(s->csv, s->stage, c->name, o->label, &ry);
        fflush(s->csv);
    }
    fflush(stdout);
    return !isnan(ref);
}

/* Runs the selected cases and prints the table around them. */
static void bench_run_cases(bench_session *s)
{
    const bench_opts *o = &s->o;
    /* The system side's own rate is the reference only under its own name:
     * a preloaded malloc (--label) is compared with the real one. */
    bool system_is_reference =
        o->run_system && strcmp(o->label, BENCH_SIDE_SYSTEM) == 0;
    bench_widths w = {(int)strlen("case"), (int)strlen("allocator")};
    for (size_t i = 0; i < s->ncases; i++)
        if ((int)strlen(s->cases[i].name) > w.name)
            w.name = (int)strlen(s->cases[i].name);
    if ((int)strlen(o->label) > w.side)
        w.side = (int)strlen(o->label);

    if (o->once)
        printf("%s bench: one repetition of each side, no warm-up (--once); "
               "scale %g\n",
               s->stage, o->scale);
    else
        printf("%s bench: %u timed repetition%s of each side after one "
               "warm-up, the sides interleaved; scale %g\n",
               s->stage, o->reps, o->reps == 1 ? "" : "s", o->scale);
    if (o->allocator_only)
        printf("--allocator-only: under callgrind, bench_start and bench_stop "
               "switch instrumentation, not collection\n");
    printf("%-*s  %-*s %12s %10s %10s %7s  %s\n", w.name, "case", w.side,
           "allocator", "ops", "median s", "Mops/s", "ratio",
           "spread Mops/s (min..max)");

    unsigned no_reference = 0; /* cases whose ratio was left empty */
    for (size_t i = 0; i < s->ncases; i++) {
        if (o->only_case == NULL || strcmp(s->cases[i].name, o->only_case) == 0)
            no_reference += !bench_run_case(s, &w, i, system_is_reference);
    }

    printf("ratio: rate / the system malloc's rate in the same case "
           "(above 1: faster than it)");
    if (!system_is_reference && no_reference == 0)
        printf("; the system rows read back from %s", o->csv);
    printf("\n");
    if (no_reference > 0)
        printf("ratio left empty for %u case%s: no system row measured in "
               "this run%s%s (measure the system side without --label "
               "first, then again with --append)\n",
               no_reference, no_reference == 1 ? "" : "s",
               o->csv && o->append ? " nor in " : "",
               o->csv && o->append ? o->csv : "");
    if (o->csv != NULL)
        printf("rows %s %s\n",
               o->append && !s->csv_is_new ? "appended to" : "written to",
               o->csv);
}

/* Checks that --case names a case and that --scale gives sane op counts;
 * returns 0 or the exit status 2, having said what is wrong. */
static int bench_check_selection(const bench_session *s)
{
    const char *want = s->o.only_case;
    if (want != NULL) {
        size_t i = 0;
        while (i < s->ncases && strcmp(s->cases[i].name, want) != 0)
            i++;
        if (i == s->ncases) {
            fprintf(stderr, "%s: no case named '%s'; the cases are:", s->stage,
                    want);
            for (i = 0; i < s->ncases; i++)
                fprintf(stderr, " %s", s->cases[i].name);
            fprintf(stderr, "\n");
            return 2;
        }
    }
    for (size_t i = 0; i < s->ncases; i++) {
        if (bench_scaled_ops(s->cases[i].ops, s->o.scale) == 0) {
            fprintf(stderr, "%s: --scale %g makes case %s run over %g ops\n",
                    s->stage, s->o.scale, s->cases[i].name, BENCH_OPS_MAX);
            return 2;
        }
    }
    return 0;
}

int bench_main(int argc, char **argv, const char *stage,
               const bench_case *cases, size_t ncases)
{
    bench_session s = {.stage = stage, .cases = cases, .ncases = ncases};
    int status = bench_parse(argc, argv, &s.o);
    if (status != 0)
        return status < 0 ? 0 : status; /* --help, or a bad command line */
    bench_check_table(stage, cases, ncases);
    if (s.o.list) {
        for (size_t i = 0; i < ncases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    status = bench_check_selection(&s);
    if (status != 0)
        return status;
    bool ok = bench_session_open(&s);
    if (ok)
        bench_run_cases(&s);
    ok = bench_session_close(&s) && ok;
    bench_slots_release(); /* the runners are done with them */
    return ok ? 0 : 1;
}
