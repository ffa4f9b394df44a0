/*
 * common/selftest/test_bench.c: the bench harness tests itself.
 *
 * What is checked is behaviour, never a timing: bench_main (common/bench.c)
 * runs in this process on a small case table whose runners log every call,
 * with its output sent to a file; then the tests read the CSV and the log:
 *
 *   - the CSV has its header and one row per case and side, and each row is
 *     consistent: ops as asked, ops_per_sec == ops / seconds, the system row's
 *     ratio exactly 1, the stage's ratio == its rate / the system's rate;
 *   - each case runs one warm-up and then --reps repetitions, the sides
 *     interleaved; --once runs each side once; --scale multiplies the ops;
 *   - --only and --case select the rows; --append keeps the header once;
 *   - --label with --append takes its ratio from the system row already in
 *     the CSV, and leaves it empty (and says so) when there is none;
 *   - bad command lines are refused before any runner runs, and misuse of
 *     bench_start/bench_stop or a broken case table aborts with a report.
 *
 * In the release flavour, the last tests run bench_selftest (built beside
 * this test) under callgrind, and the driver common/bench.sh on it, and
 * check what they count and the files they write: bench.csv,
 * bench-instr.csv (when valgrind is installed) with the whole loop's
 * instructions per request and the allocator's alone, and bench.png (when
 * gnuplot is).
 */
#define _XOPEN_SOURCE 700 /* nftw, to clear the scratch folder */

#include "bench.h"
#include "test.h"

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- A case table whose runners log their calls ------------------------- */

#define ALPHA_OPS  2000
#define BETA_OPS   3000
#define ALPHA_WHAT "alpha: the what line of the first case"
#define BETA_WHAT  "beta: the what line of the second case"

/* Every runner call appends one letter: lower case for the stage side,
 * upper case for the system side ('a' is alpha's stage side). */
static struct {
    char calls[1024]; /* the letters, in call order */
    size_t ncalls;
    size_t ops[4]; /* the ops last passed to a, A, b, B */
} R;

static void log_call(char who, size_t ops)
{
    if (R.ncalls + 1 < sizeof R.calls)
        R.calls[R.ncalls++] = who;
    R.ops[(who == 'A' || who == 'B') + 2 * (who == 'b' || who == 'B')] = ops;
}

/* The work: enough to take a measurable time, nothing that can fail. */
static unsigned char stand_in[64];

static void work_stage(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        bench_keep(stand_in + i % sizeof stand_in);
    bench_stop(b);
}

static void work_system(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i < ops; i++) {
        void *p = malloc(16 + i % 64);
        bench_keep(p);
        free(p);
    }
    bench_stop(b);
}

static void alpha_stage(bench_t *b, size_t ops)
{
    log_call('a', ops);
    work_stage(b, ops);
}

static void alpha_system(bench_t *b, size_t ops)
{
    log_call('A', ops);
    work_system(b, ops);
}

static void beta_stage(bench_t *b, size_t ops)
{
    log_call('b', ops);
    work_stage(b, ops);
}

/* Two intervals in one repetition: the time is their sum. */
static void beta_system(bench_t *b, size_t ops)
{
    log_call('B', ops);
    work_system(b, ops / 2);
    work_system(b, ops - ops / 2);
}

static const bench_case cases[] = {
    {"alpha", ALPHA_WHAT, ALPHA_OPS, alpha_stage, alpha_system},
    {"beta", BETA_WHAT, BETA_OPS, beta_stage, beta_system},
};
#define NCASES (sizeof cases / sizeof cases[0])
#define STAGE  "benchtest"

/* ---- Running bench_main with its output captured ------------------------ */

static char tmpdir[64];       /* this run's scratch folder */
static char out_path[128];    /* where bench_main's output goes */
static char out_text[65536];  /* that output, read back */
static const char *test_prog; /* argv[0] of this test */

/* A path in the scratch folder. */
static const char *tmp_path(const char *name)
{
    static char buf[4][160];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static void read_file(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/*
 * Runs bench_main on `cases` with the arguments given (a NULL-terminated
 * array; RUN_BENCH builds one), stdout and stderr sent to out_path and read
 * back into out_text. The call log starts empty. Returns bench_main's exit
 * status.
 */
static int run_bench(const char *const *args)
{
    char *argv[32] = {(char *)"test_bench"};
    int argc = 1;
    for (; args[argc - 1] != NULL && argc < 31; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;

    memset(&R, 0, sizeof R);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || saved_out < 0 || saved_err < 0) {
        perror("test_bench: redirecting the output");
        abort();
    }
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    int status = bench_main(argc, argv, STAGE, cases, NCASES);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    read_file(out_path, out_text, sizeof out_text);
    return status;
}
#define RUN_BENCH(...) run_bench((const char *const[]){__VA_ARGS__, NULL})

/* How many times needle occurs in haystack. */
static int count_of(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* ---- Reading a CSV back ------------------------------------------------- */

#define MAX_ROWS   64
#define MAX_FIELDS 12

typedef struct csv_file {
    char header[256];              /* the first line */
    int nrows;                     /* lines after it */
    int nheaders;                  /* lines equal to the header, anywhere */
    char text[MAX_ROWS][256];      /* each row, split in place */
    char *f[MAX_ROWS][MAX_FIELDS]; /* its fields */
    int nf[MAX_ROWS];              /* how many */
} csv_file;

static csv_file csv; /* one at a time; too big for the stack */

/* Reads path into csv; false if it cannot be opened. */
static bool csv_load(const char *path)
{
    memset(&csv, 0, sizeof csv);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[256];
    bool first = true;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (first) {
            snprintf(csv.header, sizeof csv.header, "%s", line);
            first = false;
            csv.nheaders++;
            continue;
        }
        if (strcmp(line, csv.header) == 0)
            csv.nheaders++;
        if (csv.nrows == MAX_ROWS)
            break;
        int r = csv.nrows++;
        snprintf(csv.text[r], sizeof csv.text[r], "%s", line);
        char *p = csv.text[r];
        while (csv.nf[r] < MAX_FIELDS) {
            csv.f[r][csv.nf[r]++] = p;
            p = strchr(p, ',');
            if (p == NULL)
                break;
            *p++ = '\0';
        }
    }
    fclose(f);
    return true;
}

/* The row of (case, allocator), or -1. */
static int csv_find(const char *name, const char *alloc)
{
    for (int r = 0; r < csv.nrows; r++)
        if (csv.nf[r] >= 3 && strcmp(csv.f[r][1], name) == 0 &&
            strcmp(csv.f[r][2], alloc) == 0)
            return r;
    return -1;
}

static double field_num(int r, int i)
{
    return r >= 0 && i < csv.nf[r] ? strtod(csv.f[r][i], NULL) : NAN;
}

static bool field_empty(int r, int i)
{
    return r >= 0 && i < csv.nf[r] && csv.f[r][i][0] == '\0';
}

/* a and b agree to a relative tolerance (printed values are rounded). */
static bool close_to(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fabs(b);
}

#define HEADER "stage,case,allocator,ops,seconds,ops_per_sec,ratio_vs_system"

/*
 * Checks one bench.csv row for consistency with itself: 7 fields, this
 * stage, the ops expected, a time above 0 and ops_per_sec == ops / seconds
 * (to the 9 digits printed).
 */
static void check_row(int r, const char *stage, size_t ops)
{
    REQUIRE(r >= 0);
    CHECK_EQ(csv.nf[r], 7);
    CHECK(strcmp(csv.f[r][0], stage) == 0);
    if (!CHECK(field_num(r, 3) == (double)ops))
        printf("    row %d: ops %s, expected %zu\n", r, csv.f[r][3], ops);
    double seconds = field_num(r, 4), rate = field_num(r, 5);
    CHECK(seconds > 0);
    CHECK(close_to(rate, (double)ops / seconds, 1e-6));
}

/* ---- The CSV ------------------------------------------------------------ */

static void test_csv_has_header_and_one_row_per_case_and_side(void)
{
    const char *path = tmp_path("rows.csv");
    CHECK_INT_EQ(RUN_BENCH("--reps", "3", "--csv", path), 0);
    REQUIRE(csv_load(path));
    CHECK(strcmp(csv.header, HEADER) == 0);
    CHECK_EQ(csv.nrows, 4);
    static const char *const names[] = {"alpha", "beta"};
    static const size_t ops[] = {ALPHA_OPS, BETA_OPS};
    for (int i = 0; i < 2; i++) {
        int s = csv_find(names[i], "stage"), y = csv_find(names[i], "system");
        check_row(s, STAGE, ops[i]);
        check_row(y, STAGE, ops[i]);
        /* The system row is the reference; the stage's ratio is its rate
         * over the system's, to the 6 digits printed. */
        CHECK(field_num(y, 6) == 1.0);
        CHECK(
            close_to(field_num(s, 6), field_num(s, 5) / field_num(y, 5), 1e-5));
    }
    /* Rows come in case order, stage before system. */
    CHECK_INT_EQ(csv_find("alpha", "stage"), 0);
    CHECK_INT_EQ(csv_find("beta", "system"), 3);
}

static void test_csv_starts_anew_without_append(void)
{
    const char *path = tmp_path("anew.csv");
    CHECK_INT_EQ(RUN_BENCH("--once", "--csv", path), 0);
    CHECK_INT_EQ(RUN_BENCH("--once", "--csv", path), 0);
    REQUIRE(csv_load(path));
    CHECK_EQ(csv.nrows, 4);
    CHECK_EQ(csv.nheaders, 1);

    /* --append on a missing file writes the header, then only rows. */
    path = tmp_path("appended.csv");
    CHECK_INT_EQ(RUN_BENCH("--once", "--append", "--csv", path), 0);
    CHECK_INT_EQ(RUN_BENCH("--once", "--append", "--csv", path), 0);
    REQUIRE(csv_load(path));
    CHECK(strcmp(csv.header, HEADER) == 0);
    CHECK_EQ(csv.nrows, 8);
    CHECK_EQ(csv.nheaders, 1);
}

static void test_append_refuses_a_file_that_is_not_a_bench_csv(void)
{
    const char *path = tmp_path("foreign.csv");
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("name,value\nx,1\n", f);
    fclose(f);
    CHECK_INT_EQ(RUN_BENCH("--append", "--csv", path), 1);
    CHECK_EQ(R.ncalls, 0);
    CHECK(strstr(out_text, "header") != NULL);
    char after[64];
    read_file(path, after, sizeof after);
    CHECK(strcmp(after, "name,value\nx,1\n") == 0);
}

static void test_unwritable_csv_is_an_error(void)
{
    CHECK_INT_EQ(RUN_BENCH("--csv", tmp_path("no-such-dir/x.csv")), 1);
    CHECK(strstr(out_text, "cannot write") != NULL);
    CHECK_EQ(R.ncalls, 0);
}

/* ---- Repetitions, warm-up, scale ---------------------------------------- */

static void test_sides_interleave_after_one_warmup(void)
{
    CHECK_INT_EQ(RUN_BENCH("--reps", "3"), 0);
    /* One warm-up, then three timed: four calls of each side, alternating. */
    CHECK(strcmp(R.calls, "aAaAaAaAbBbBbBbB") == 0);
    CHECK_EQ(R.ops[0], ALPHA_OPS);
    CHECK_EQ(R.ops[1], ALPHA_OPS);
    CHECK_EQ(R.ops[2], BETA_OPS);
    CHECK_EQ(R.ops[3], BETA_OPS);
    if (R.ncalls != 16)
        printf("    calls: %s\n", R.calls);
}

static void test_reps_default_to_seven(void)
{
    CHECK_INT_EQ(RUN_BENCH("--case", "alpha", "--only", "stage"), 0);
    CHECK_EQ(R.ncalls, 8); /* the warm-up and 7 */
}

static void test_once_runs_each_side_once_and_scale_multiplies_ops(void)
{
    const char *path = tmp_path("once.csv");
    CHECK_INT_EQ(RUN_BENCH("--once", "--scale", "0.5", "--csv", path), 0);
    CHECK(strcmp(R.calls, "aAbB") == 0);
    CHECK_EQ(R.ops[0], ALPHA_OPS / 2);
    CHECK_EQ(R.ops[3], BETA_OPS / 2);
    REQUIRE(csv_load(path));
    check_row(csv_find("alpha", "system"), STAGE, ALPHA_OPS / 2);
    check_row(csv_find("beta", "stage"), STAGE, BETA_OPS / 2);

    /* A scale that rounds to nothing still runs one op. */
    CHECK_INT_EQ(RUN_BENCH("--once", "--scale", "1e-9"), 0);
    CHECK_EQ(R.ops[0], 1);
    CHECK_EQ(R.ops[3], 1);
}

/* Outside callgrind, --allocator-only changes only a line of the output:
 * the same calls, the same rows. */
static void test_allocator_only_runs_the_same_repetitions(void)
{
    const char *path = tmp_path("allocator-only.csv");
    CHECK_INT_EQ(RUN_BENCH("--reps", "2", "--allocator-only", "--csv", path),
                 0);
    CHECK(strcmp(R.calls, "aAaAaAbBbBbB") == 0);
    CHECK(strstr(out_text, "--allocator-only: under callgrind") != NULL);
    REQUIRE(csv_load(path));
    CHECK(strcmp(csv.header, HEADER) == 0);
    CHECK_EQ(csv.nrows, 4);
    check_row(csv_find("alpha", "stage"), STAGE, ALPHA_OPS);
    check_row(csv_find("beta", "system"), STAGE, BETA_OPS);
}

/* ---- Selecting rows ----------------------------------------------------- */

static void test_only_and_case_select_rows(void)
{
    const char *path = tmp_path("only.csv");
    CHECK_INT_EQ(RUN_BENCH("--reps", "1", "--only", "stage", "--case", "beta",
                           "--csv", path),
                 0);
    CHECK(strcmp(R.calls, "bb") == 0);
    REQUIRE(csv_load(path));
    CHECK_EQ(csv.nrows, 1);
    int r = csv_find("beta", "stage");
    check_row(r, STAGE, BETA_OPS);
    CHECK(field_empty(r, 6)); /* no system row to compare with */

    CHECK_INT_EQ(RUN_BENCH("--reps", "1", "--only", "system", "--csv", path),
                 0);
    CHECK(strcmp(R.calls, "AABB") == 0);
    REQUIRE(csv_load(path));
    CHECK_EQ(csv.nrows, 2);
    CHECK(field_num(csv_find("alpha", "system"), 6) == 1.0);
    CHECK(field_num(csv_find("beta", "system"), 6) == 1.0);
}

/* ---- --label and the ratio read back ------------------------------------ */

static void test_label_takes_its_ratio_from_the_system_row_in_the_csv(void)
{
    const char *path = tmp_path("label.csv");
    CHECK_INT_EQ(RUN_BENCH("--reps", "3", "--csv", path), 0);
    CHECK_INT_EQ(RUN_BENCH("--reps", "3", "--only", "system", "--label",
                           "othermalloc", "--append", "--csv", path),
                 0);
    CHECK(strcmp(R.calls, "AAAABBBB") == 0);
    CHECK(strstr(out_text, "othermalloc") != NULL);
    CHECK(strstr(out_text, "read back from") != NULL);
    REQUIRE(csv_load(path));
    CHECK_EQ(csv.nrows, 6);
    CHECK_EQ(csv.nheaders, 1);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "beta" : "alpha";
        int y = csv_find(name, "system"), o = csv_find(name, "othermalloc");
        check_row(o, STAGE, i ? BETA_OPS : ALPHA_OPS);
        REQUIRE(y >= 0 && o >= 0);
        CHECK(
            close_to(field_num(o, 6), field_num(o, 5) / field_num(y, 5), 1e-5));
    }

    /* The stage side alone, appended, is compared with the same rows. */
    CHECK_INT_EQ(RUN_BENCH("--once", "--only", "stage", "--case", "alpha",
                           "--append", "--csv", path),
                 0);
    REQUIRE(csv_load(path));
    CHECK_EQ(csv.nrows, 7);
    int y = csv_find("alpha", "system"), s = 6; /* the row just added */
    CHECK(strcmp(csv.f[s][2], "stage") == 0);
    CHECK(close_to(field_num(s, 6), field_num(s, 5) / field_num(y, 5), 1e-5));

    /* At another scale the ratio still comes, with a note that the sizes
     * differ. */
    CHECK_INT_EQ(RUN_BENCH("--once", "--scale", "0.5", "--only", "system",
                           "--label", "othermalloc", "--case", "alpha",
                           "--append", "--csv", path),
                 0);
    CHECK(strstr(out_text, "ran 2000 ops, this run 1000") != NULL);
}

static void test_label_without_a_system_row_leaves_the_ratio_empty(void)
{
    const char *path = tmp_path("nolabel.csv");
    CHECK_INT_EQ(RUN_BENCH("--once", "--only", "system", "--label",
                           "othermalloc", "--append", "--csv", path),
                 0);
    CHECK(strstr(out_text, "ratio left empty for 2 cases") != NULL);
    REQUIRE(csv_load(path));
    CHECK_EQ(csv.nrows, 2);
    int r = csv_find("alpha", "othermalloc");
    check_row(r, STAGE, ALPHA_OPS);
    CHECK(field_empty(r, 6));
    CHECK(field_empty(csv_find("beta", "othermalloc"), 6));
}

/* ---- What is printed ---------------------------------------------------- */

static void test_table_prints_each_what_line_once(void)
{
    CHECK_INT_EQ(RUN_BENCH("--reps", "2"), 0);
    CHECK_INT_EQ(count_of(out_text, ALPHA_WHAT), 1);
    CHECK_INT_EQ(count_of(out_text, BETA_WHAT), 1);
    /* One row per case and side, and the column heads. */
    CHECK_INT_EQ(count_of(out_text, "\nalpha  stage "), 1);
    CHECK_INT_EQ(count_of(out_text, "\nbeta   system "), 1);
    CHECK(strstr(out_text, "Mops/s") != NULL);
    CHECK(strstr(out_text, "spread") != NULL);
}

static void test_list_prints_the_case_names(void)
{
    CHECK_INT_EQ(RUN_BENCH("--list"), 0);
    CHECK(strcmp(out_text, "alpha\nbeta\n") == 0);
    CHECK_EQ(R.ncalls, 0);
}

static void test_help_prints_the_usage(void)
{
    CHECK_INT_EQ(RUN_BENCH("--reps", "2", "--help"), 0);
    CHECK(strstr(out_text, "usage:") != NULL);
    CHECK(strstr(out_text, "--label NAME") != NULL);
    CHECK(strstr(out_text, "--allocator-only") != NULL);
    CHECK_EQ(R.ncalls, 0);
}

static void test_bad_command_lines_are_refused(void)
{
    static const char *const bad[][3] = {
        {"--reps", "0", NULL},    {"--reps", "x", NULL},
        {"--reps", "-3", NULL},   {"--reps", "99999999", NULL},
        {"--scale", "0", NULL},   {"--scale", "-1", NULL},
        {"--scale", "nan", NULL}, {"--scale", "1e300", NULL},
        {"--only", "both", NULL}, {"--case", "gamma", NULL},
        {"--label", "a,b", NULL}, {"--label", "stage", NULL},
        {"--label", "a b", NULL}, {"--bogus", NULL, NULL},
        {"--csv", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int status = run_bench(bad[i]);
        if (!CHECK_INT_EQ(status, 2) || !CHECK_EQ(R.ncalls, 0))
            printf("    with %s %s\n", bad[i][0], bad[i][1] ? bad[i][1] : "");
        CHECK(out_text[0] != '\0'); /* it said what is wrong */
    }
}

/* ---- Misuse aborts with a report ---------------------------------------- */

static void stop_without_start(bench_t *b, size_t ops)
{
    (void)ops;
    bench_stop(b);
}

static void start_twice(bench_t *b, size_t ops)
{
    (void)ops;
    bench_start(b);
    bench_start(b);
}

static void never_starts(bench_t *b, size_t ops)
{
    (void)b;
    (void)ops;
}

static void returns_running(bench_t *b, size_t ops)
{
    (void)ops;
    bench_start(b);
}

static void fine(bench_t *b, size_t ops)
{
    work_stage(b, ops);
}

typedef struct bad_table {
    const char *stage;
    const bench_case *cases;
    size_t ncases;
} bad_table;

/* Runs bench_main on a broken table, in the child of test_aborts_with. */
static void run_bad_table(void *arg)
{
    const bad_table *t = arg;
    if (freopen("/dev/null", "w", stdout) == NULL)
        return;
    char *argv[] = {(char *)"test_bench", (char *)"--once", NULL};
    bench_main(2, argv, t->stage, t->cases, t->ncases);
}

static void test_misused_brackets_abort_with_a_report(void)
{
    static const bench_case c1[] = {{"bad", "-", 10, stop_without_start, fine}};
    static const bench_case c2[] = {{"bad", "-", 10, fine, start_twice}};
    static const bench_case c3[] = {{"bad", "-", 10, never_starts, fine}};
    static const bench_case c4[] = {{"bad", "-", 10, fine, returns_running}};
    bad_table t1 = {STAGE, c1, 1}, t2 = {STAGE, c2, 1};
    bad_table t3 = {STAGE, c3, 1}, t4 = {STAGE, c4, 1};
    CHECK_ABORTS(run_bad_table, &t1, "bench_stop without bench_start");
    CHECK_ABORTS(run_bad_table, &t1, "benchtest: bench_stop(0x");
    CHECK_ABORTS(run_bad_table, &t1, "(case bad, stage side)");
    CHECK_ABORTS(run_bad_table, &t2, "bench_start twice without bench_stop");
    CHECK_ABORTS(run_bad_table, &t2, "(case bad, system side)");
    CHECK_ABORTS(run_bad_table, &t3, "never called bench_start");
    CHECK_ABORTS(run_bad_table, &t4, "returned with the clock running");
}

static void test_broken_case_tables_abort_with_a_report(void)
{
    static const bench_case unnamed[] = {{"", "-", 10, fine, fine}};
    static const bench_case spaced[] = {{"a b", "-", 10, fine, fine}};
    static const bench_case no_what[] = {{"a", NULL, 10, fine, fine}};
    static const bench_case no_ops[] = {{"a", "-", 0, fine, fine}};
    static const bench_case no_system[] = {{"a", "-", 10, fine, NULL}};
    static const bench_case twice[] = {{"a", "-", 10, fine, fine},
                                       {"a", "-", 10, fine, fine}};
    bad_table t[] = {{STAGE, unnamed, 1},   {STAGE, spaced, 1},
                     {STAGE, no_what, 1},   {STAGE, no_ops, 1},
                     {STAGE, no_system, 1}, {STAGE, twice, 2},
                     {STAGE, unnamed, 0},   {"a,b", spaced, 1}};
    CHECK_ABORTS(run_bad_table, &t[0], "case name is empty");
    CHECK_ABORTS(run_bad_table, &t[1], "has spaces");
    CHECK_ABORTS(run_bad_table, &t[2], "has no `what` line");
    CHECK_ABORTS(run_bad_table, &t[3], "has 0 ops");
    CHECK_ABORTS(run_bad_table, &t[4], "lacks a stage or a system runner");
    CHECK_ABORTS(run_bad_table, &t[5], "cases[1] \"a\": two cases");
    CHECK_ABORTS(run_bad_table, &t[6], "benchtest: bench_main(");
    CHECK_ABORTS(run_bad_table, &t[7], "stage name is empty or has spaces");
}

/* ---- The driver, end to end --------------------------------------------- */

/* The entry points of bench_selftest's stand-in allocator: its Makefile's
 * BENCH_ENTRY, which `make bench` hands to bench.sh (here the test does). */
#define SELFTEST_ENTRY "selftest_take selftest_give"
#define SELFTEST_TOGGLES                                                       \
    "--toggle-collect=selftest_take --toggle-collect=selftest_give"

/* The ops that bench_selftest runs per case at --scale 0.01. */
#define SELFTEST_OPS_AT_1PC 10000.0

/* The folder of this test's binary, where bench_selftest is built too. */
static void bin_dir(char *buf, size_t size)
{
    snprintf(buf, size, "%s", test_prog);
    char *slash = strrchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(buf, size, ".");
}

static bool have(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

#define INSTR_HEADER                                                           \
    "stage,case,allocator,ops,instructions,instr_per_op,ratio_vs_system,"      \
    "alloc_instructions,alloc_instr_per_op,alloc_ratio_vs_system"

/*
 * Checks one bench-instr.csv row: the whole loop's figures agree with each
 * other and with the system row's; so do the allocator's alone, which are
 * fewer than the whole loop's. The stand-in's (stage rows) and glibc's
 * (system rows) must be there: their names are known, and their counts
 * repeat run to run, so bench.sh has no reason to leave them out. A
 * preloaded malloc's may be left out (its check may fail on jemalloc's
 * time-driven decay), and then all three fields are empty.
 */
static void check_instr_row(int r)
{
    REQUIRE(csv.nf[r] == 10);
    const char *name = csv.f[r][1], *alloc = csv.f[r][2];
    double ops = field_num(r, 3), instr = field_num(r, 4);
    CHECK(ops >= 1 && instr > ops); /* a loop costs > 1 per op */
    CHECK(close_to(field_num(r, 5), instr / ops, 1e-5));
    int y = csv_find(name, "system");
    REQUIRE(y >= 0);
    CHECK(close_to(field_num(r, 6), field_num(y, 5) / field_num(r, 5), 1e-4));

    bool must = strcmp(alloc, "stage") == 0 || strcmp(alloc, "system") == 0;
    if (field_empty(r, 7)) {
        if (!CHECK(!must))
            printf("    %s/%s: the allocator-only count was left out\n", name,
                   alloc);
        CHECK(field_empty(r, 8) && field_empty(r, 9));
        return;
    }
    double inside = field_num(r, 7);
    /* Inside the allocator: something, and no more than the whole loop.
     * Where both counts repeat run to run, less by the bench loop, which
     * costs at least a call, a compare and a branch per op. */
    CHECK(inside > 0 && inside <= instr);
    if (must && !CHECK(instr - inside >= 3 * ops))
        printf("    %s/%s: whole loop %.0f, allocator only %.0f, %.0f ops\n",
               name, alloc, instr, inside, ops);
    CHECK(close_to(field_num(r, 8), inside / ops, 1e-5));
    REQUIRE(!field_empty(y, 8));
    CHECK(close_to(field_num(r, 9), field_num(y, 8) / field_num(r, 8), 1e-4));
    /* The stand-in runs the same instructions on every call (bump-32: one
     * call per op), and the harness none of its own in between. */
    if (strcmp(alloc, "stage") == 0)
        CHECK(fmod(inside, ops) == 0);
}

static void check_bench_sh(void)
{
    char dir[128], cmd[768], names[256];
    bin_dir(dir, sizeof dir);
    const char *build = tmp_path("sh");
    const char *log = tmp_path("sh.log");
    snprintf(cmd, sizeof cmd,
             "BENCH_REPS=1 BENCH_SCALE=0.01 BENCH_CALLGRIND_SCALE=0.5 "
             "BENCH_ENTRY='" SELFTEST_ENTRY "' "
             "%s/../../../bench.sh selftest %s/bench_selftest %s >%s 2>&1",
             dir, dir, build, log);
    int status = system(cmd);
    static char text[32768];
    read_file(log, text, sizeof text);
    if (!CHECK_INT_EQ(status, 0))
        printf("    %s\n    its output:\n%s\n", cmd, text);

    /* The cases, from the program itself. */
    snprintf(cmd, sizeof cmd, "%s/bench_selftest --list", dir);
    FILE *p = popen(cmd, "r");
    REQUIRE(p != NULL);
    size_t n = fread(names, 1, sizeof names - 1, p);
    names[n] = '\0';
    CHECK_INT_EQ(pclose(p), 0);
    REQUIRE(n > 0);

    /* bench.csv: for each case, a stage and a system row, then one row per
     * preloaded malloc, all with the case's ops and a ratio. */
    char path[200];
    snprintf(path, sizeof path, "%s/bench.csv", build);
    REQUIRE(csv_load(path));
    CHECK(strcmp(csv.header, HEADER) == 0);
    int ncases = 0;
    int per_case = -1; /* rows of every case: the same allocators */
    for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
        ncases++;
        int s = csv_find(name, "stage"), y = csv_find(name, "system");
        REQUIRE(s >= 0 && y >= 0 && csv.nf[s] == 7);
        size_t ops = (size_t)strtoull(csv.f[s][3], NULL, 10);
        check_row(s, "selftest", ops);
        check_row(y, "selftest", ops);
        CHECK(field_num(y, 6) == 1.0);
        int rows = 0;
        for (int r = 0; r < csv.nrows; r++) {
            if (strcmp(csv.f[r][1], name) != 0)
                continue;
            rows++;
            check_row(r, "selftest", ops);
            CHECK(!field_empty(r, 6));
            CHECK(close_to(field_num(r, 6), field_num(r, 5) / field_num(y, 5),
                           1e-5));
        }
        if (per_case < 0)
            per_case = rows;
        CHECK_INT_EQ(rows, per_case);
    }
    CHECK_INT_EQ(csv.nrows, ncases * per_case);

    /* bench-instr.csv: the same rows, instructions counted by callgrind,
     * for the whole loop and for the allocator alone. */
    snprintf(path, sizeof path, "%s/bench-instr.csv", build);
    if (!have("valgrind")) {
        CHECK(strstr(text, "valgrind not installed") != NULL);
    } else {
        CHECK(strstr(text, "repeatable") != NULL);
        CHECK(strstr(text, "allocator only: the instructions inside") != NULL);
        REQUIRE(csv_load(path));
        CHECK(strcmp(csv.header, INSTR_HEADER) == 0);
        CHECK_INT_EQ(csv.nrows, ncases * per_case);
        for (int r = 0; r < csv.nrows; r++)
            check_instr_row(r);
    }

    /* bench.png, or a note on how to get it. */
    snprintf(path, sizeof path, "%s/bench.png", build);
    if (have("gnuplot")) {
        unsigned char magic[8] = {0};
        FILE *f = fopen(path, "rb");
        REQUIRE(f != NULL);
        CHECK_EQ(fread(magic, 1, 8, f), 8);
        fclose(f);
        CHECK(memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
    } else {
        CHECK(strstr(text, "gnuplot not installed") != NULL);
    }
}

/*
 * The instructions callgrind collects in one run of bench_selftest's stage
 * side of bump-32 (which is deterministic: no malloc, no clock), with the
 * callgrind options and the program's extra arguments given; -1 if the run
 * or the reading failed.
 */
static double callgrind_total(const char *tool_args, const char *args)
{
    char dir[128], cmd[640], line[256];
    bin_dir(dir, sizeof dir);
    const char *out = tmp_path("callgrind.out");
    snprintf(cmd, sizeof cmd,
             "valgrind --tool=callgrind %s --callgrind-out-file=%s "
             "%s/bench_selftest --case bump-32 --only stage --scale 0.01 %s "
             ">/dev/null 2>&1",
             tool_args, out, dir, args);
    remove(out);
    if (system(cmd) != 0)
        return -1;
    FILE *f = fopen(out, "r");
    if (f == NULL)
        return -1;
    double total = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "totals:", 7) == 0)
            total = strtod(line + 7, NULL);
    fclose(f);
    return total;
}

/* Collection is on in the timed repetitions and off everywhere else: in
 * the warm-up, in the runner's setup, in the harness. */
static void check_callgrind_counts(void)
{
    const char *whole = "--collect-atstart=no";
    double once = callgrind_total(whole, "--once");
    double one = callgrind_total(whole, "--reps 1");
    double three = callgrind_total(whole, "--reps 3");
    CHECK(once >= SELFTEST_OPS_AT_1PC); /* more than 1 per op */
    /* The warm-up before the one repetition is not counted... */
    CHECK(close_to(one, once, 0.01));
    /* ...and every timed repetition is. */
    CHECK(close_to(three, 3 * once, 0.01));
    printf("    callgrind totals: --once %.0f, --reps 1 %.0f, --reps 3 %.0f\n",
           once, one, three);
}

/*
 * The allocator alone: with --allocator-only, bench_start and bench_stop
 * switch instrumentation (on only in the timed repetitions), and the
 * toggles on the stand-in's entry points switch collection (on only inside
 * them). What is counted must be both: the warm-up's calls are not, and
 * neither are the loop's instructions around the calls.
 */
static void check_allocator_only_counts(void)
{
    const char *toggled =
        "--instr-atstart=no --collect-atstart=no " SELFTEST_TOGGLES;
    const double ops = SELFTEST_OPS_AT_1PC;
    double once = callgrind_total(toggled, "--allocator-only --once");
    double one = callgrind_total(toggled, "--allocator-only --reps 1");
    double three = callgrind_total(toggled, "--allocator-only --reps 3");
    double whole = callgrind_total("--collect-atstart=no", "--reps 1");
    printf("    allocator only: --once %.0f, --reps 1 %.0f, --reps 3 %.0f; "
           "whole loop %.0f; %.0f ops\n",
           once, one, three, whole, ops);
    /* selftest_take has no branch: the same instructions on every call, a
     * whole number of them; a load, an add, a mask, a store, an address and
     * a return, give or take what the compiler makes of them. */
    REQUIRE(once > 0);
    CHECK(fmod(once, ops) == 0);
    CHECK(once / ops >= 2 && once / ops <= 16);
    /* Exactly: the warm-up is not counted, every timed repetition is. */
    CHECK(one == once);
    CHECK(three == 3 * once);
    /* The loop around the calls is not counted: it loads the function
     * pointer, calls, calls bench_keep, counts and branches. */
    CHECK(whole - one >= 3 * ops);

    /* Under --allocator-only the client requests leave collection alone:
     * with no toggles and instrumentation on from the start, nothing is
     * counted at all. */
    CHECK(callgrind_total("--collect-atstart=no",
                          "--allocator-only --reps 1") == 0);
    /* And without --allocator-only, the client requests fight the toggles:
     * inside the timed interval, entering selftest_take switches collection
     * off. With no warm-up (--once), what is counted is then the exact
     * opposite: the loop around the calls, without the calls. */
    double whole_once = callgrind_total("--collect-atstart=no", "--once");
    double fought =
        callgrind_total("--collect-atstart=no " SELFTEST_TOGGLES, "--once");
    CHECK(fought == whole_once - once);
}

/* The release flavour is the one `make bench` runs (and the fastest). */
#ifdef NDEBUG
static const bool release_build = true;
#else
static const bool release_build = false;
#endif

static void test_bench_sh_writes_consistent_files(void)
{
    if (release_build)
        check_bench_sh();
    else
        test_skip("runs bench.sh on the release build only");
}

static void test_callgrind_counts_the_timed_repetitions_only(void)
{
    if (!release_build)
        test_skip("runs callgrind on the release build only");
    else if (!have("valgrind"))
        test_skip("valgrind is not installed");
    else
        check_callgrind_counts();
}

static void test_allocator_only_counts_inside_the_entry_points(void)
{
    if (!release_build)
        test_skip("runs callgrind on the release build only");
    else if (!have("valgrind"))
        test_skip("valgrind is not installed");
    else
        check_allocator_only_counts();
}

/* ---- Scratch folder ----------------------------------------------------- */

static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- The shared pieces: picker, child helper ----------------------------- */

/* The picker stays in range and replays: the same seed gives the same
 * sequence, another seed another one. The seed comes from test_rand(). */
static void test_picker_is_in_range_and_replays(void)
{
    uint64_t seed = test_rand() | 1, x = seed, y = seed, z = seed + 2;
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)test_scale(100000); i++) {
        size_t n = 1 + (size_t)(i % 1000);
        size_t k = bench_next_slot(&x, n);
        CHECK_LT(k, n);
        CHECK_EQ(k, bench_next_slot(&y, n));
        differ += bench_next_slot(&z, 1000) != bench_below(x, 1000);
        size_t size = bench_churn_size(BENCH_SIZE_RANDOM, x);
        CHECK_GE(size, 1);
        CHECK_LE(size, BENCH_RANDOM_MAX);
        CHECK_EQ(bench_churn_size(48, x), 48);
    }
    CHECK_EQ(x, y);
    CHECK_GE(differ, 1);
}

static void child_writes(void *arg, void *out)
{
    size_t *o = out;
    o[0] = *(const size_t *)arg * 3;
    o[1] = 7;
}

static void child_crashes(void *arg, void *out)
{
    (void)arg;
    (void)out;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void child_exits_early(void *arg, void *out)
{
    (void)arg;
    (void)out;
    _exit(0); /* wrote nothing */
}

static void test_in_child_returns_a_result_and_reports_a_crash(void)
{
    size_t arg = test_rand_range(1, 1000), out[2] = {0, 0};
    CHECK(bench_in_child(child_writes, &arg, out, sizeof out));
    CHECK_EQ(out[0], arg * 3);
    CHECK_EQ(out[1], 7);
    CHECK(!bench_in_child(child_crashes, &arg, out, sizeof out));
    CHECK(!bench_in_child(child_exits_early, &arg, out, sizeof out));
}

static void test_slots_grow_and_keep_their_room(void)
{
    void **a = bench_slots(10);
    CHECK_NOT_NULL(a);
    for (size_t i = 0; i < 10; i++)
        a[i] = a;                    /* writable */
    CHECK_PTR_EQ(bench_slots(5), a); /* no new array for fewer */
    void **b = bench_slots(1000);
    for (size_t i = 0; i < 1000; i++)
        b[i] = NULL;
    CHECK_PTR_EQ(bench_slots(1000), b);
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    test_prog = argv[0];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_bench.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("test_bench: mkdtemp");
        return 1;
    }
    snprintf(out_path, sizeof out_path, "%s/output.txt", tmpdir);

    RUN_TEST(test_slots_grow_and_keep_their_room); /* bench_main frees them */
    RUN_TEST(test_csv_has_header_and_one_row_per_case_and_side);
    RUN_TEST(test_csv_starts_anew_without_append);
    RUN_TEST(test_append_refuses_a_file_that_is_not_a_bench_csv);
    RUN_TEST(test_unwritable_csv_is_an_error);
    RUN_TEST(test_sides_interleave_after_one_warmup);
    RUN_TEST(test_reps_default_to_seven);
    RUN_TEST(test_once_runs_each_side_once_and_scale_multiplies_ops);
    RUN_TEST(test_allocator_only_runs_the_same_repetitions);
    RUN_TEST(test_only_and_case_select_rows);
    RUN_TEST(test_label_takes_its_ratio_from_the_system_row_in_the_csv);
    RUN_TEST(test_label_without_a_system_row_leaves_the_ratio_empty);
    RUN_TEST(test_table_prints_each_what_line_once);
    RUN_TEST(test_list_prints_the_case_names);
    RUN_TEST(test_help_prints_the_usage);
    RUN_TEST(test_bad_command_lines_are_refused);
    RUN_TEST(test_misused_brackets_abort_with_a_report);
    RUN_TEST(test_broken_case_tables_abort_with_a_report);
    RUN_TEST(test_callgrind_counts_the_timed_repetitions_only);
    RUN_TEST(test_allocator_only_counts_inside_the_entry_points);
    RUN_TEST(test_bench_sh_writes_consistent_files);
    RUN_TEST(test_picker_is_in_range_and_replays);
    RUN_TEST(test_in_child_returns_a_result_and_reports_a_crash);

    nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    return test_finish();
}
