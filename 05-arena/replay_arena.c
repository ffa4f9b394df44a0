/*
 * replay_arena.c: allocation traces replayed on this stage through its API
 * and on the system malloc, each in a fresh child process: utilization
 * (peak live payload / peak footprint) and throughput (ops per second, the
 * median of timed passes). `make bench-05` runs it on every trace in
 * common/traces/ and on three traces it generates (below), after the bench
 * cases; common/mallocbench then replays the committed traces on every
 * malloc as the program's malloc (stage 04 and jemalloc, tcmalloc,
 * mimalloc too), by resident memory.
 *
 *   build/release/replay_arena [--reps N] [--csv PATH] TRACE.rep...
 *
 * The footprints here are the allocators' own counts: for this stage the
 * bytes it holds from the OS (its heaps up to their used end, plus its
 * mappings: arena_footprint), for glibc its mallinfo2 (arena + mmapped
 * bytes). Own counts see what the allocator holds whether it touched it or
 * not; resident memory (mallocbench) sees only what was touched. Four
 * columns for this stage: its defaults; the mmap threshold fixed at 128
 * KiB (setting it stops it moving, as in glibc: the realloc traces show
 * what the moving threshold buys); the per-thread cache off; the cache and
 * the fast bins off (the bins alone). Each replay runs in a child of its
 * own (common/replay.h: glibc's figure would otherwise depend on the
 * replays before it).
 *
 * The generated traces are made by common/trace.c's seeded generator, from
 * specs that were not tuned to any allocator: a set beside the committed
 * one, so that no figure rests on the committed traces alone.
 * "gen-realloc-big" reallocs blocks across the mmap threshold (the moving
 * threshold's case).
 *
 * CSV rows: stage,trace,allocator,ops,peak_live,peak_footprint,
 * utilization,footprint_source,seconds,ops_per_sec
 */
#include "arena.h"
#include "replay.h"
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- This stage through its API ------------------------------------------ */

/*
 * Each replay runs in a child of its own (replay_isolated). Its measuring
 * pass starts from an empty allocator (the first create, which also makes
 * the settings), and its timing passes from the heap the passes before left
 * (create and destroy do nothing more), as the system malloc's do. That
 * includes this thread's cache: flushed between passes, its chunks would
 * merge into the top chunk, the top would pass the trim threshold and go
 * back to the OS, and every timed pass would first page-fault the heap in
 * again (half the rate on python3-dicts); glibc's cached chunks stay, and
 * pin its top, in the same way.
 */
static int token;
static bool started;

static void *make(size_t cache, size_t max_fast, bool moving)
{
    if (!started) {
        arena_teardown();
        arena_set(ARENA_TCACHE_COUNT, cache);
        arena_set(ARENA_MAX_FAST, max_fast);
        if (!moving) /* set, the threshold stays where it is */
            arena_set(ARENA_MMAP_THRESHOLD, arena_get(ARENA_MMAP_THRESHOLD));
        started = true;
    }
    return &token;
}
static void *make_default(void)
{
    return make(7, 120, true);
}
static void *make_fixed(void)
{
    return make(7, 120, false);
}
static void *make_nocache(void)
{
    return make(0, 120, true);
}
static void *make_bins(void)
{
    return make(0, 0, true);
}
static void end(void *ctx)
{
    (void)ctx;
}
static void *a_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return arena_malloc(n);
}
static void a_free(void *ctx, void *p)
{
    (void)ctx;
    arena_free(p);
}
static void *a_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return arena_realloc(p, n);
}
static size_t a_footprint(void *ctx)
{
    (void)ctx;
    return arena_footprint();
}

#define ARENA_TRACE(label, maker)                                              \
    {                                                                          \
        .name = (label), .create = (maker), .destroy = end, .alloc = a_alloc,  \
        .free = a_free, .realloc = a_realloc, .footprint = a_footprint,        \
        .check = NULL, .align = ARENA_ALIGN,                                   \
    }

enum { NOWN = 5 };
static trace_alloc own[NOWN] = {
    ARENA_TRACE("05-arena", make_default),
    ARENA_TRACE("05 fixed mmap", make_fixed),
    ARENA_TRACE("05 no cache", make_nocache),
    ARENA_TRACE("05 bins only", make_bins),
};

/* ---- Traces ---------------------------------------------------------------
 */

enum { MAXTRACES = 64 };

typedef struct gen_spec {
    const char *name;
    trace_gen g;
} gen_spec;

static const gen_spec gens[] = {
    {"gen-churn-bimodal",
     {.seed = 101,
      .num_ops = 30000,
      .max_live = 2000,
      .dist = TRACE_SIZE_BIMODAL,
      .lo = 16,
      .hi = 512,
      .large_lo = 4096,
      .large_hi = 262144,
      .large_pct = 5,
      .mix = TRACE_MIX_CHURN}},
    {"gen-ramp-small",
     {.seed = 202,
      .num_ops = 30000,
      .max_live = 5000,
      .dist = TRACE_SIZE_SMALL,
      .lo = 8,
      .hi = 2048,
      .mix = TRACE_MIX_RAMP}},
    {"gen-realloc-big",
     {.seed = 303,
      .num_ops = 20000,
      .max_live = 300,
      .dist = TRACE_SIZE_BIMODAL,
      .lo = 16,
      .hi = 1024,
      .large_lo = 65536,
      .large_hi = 1048576,
      .large_pct = 10,
      .mix = TRACE_MIX_REALLOC,
      .realloc_pct = 30}},
};

static void print_cell(const trace_result *r, bool ok)
{
    if (!ok)
        printf(" | %-13s", "FAILED");
    else
        printf(" | %5.1f%% %6.2f", 100.0 * r->utilization,
               r->ops_per_sec / 1e6);
}

static void csv_row(FILE *csv, const trace_t *t, const char *name,
                    const trace_result *r)
{
    if (csv != NULL)
        fprintf(csv, "05-arena,%s,%s,%zu,%zu,%zu,%.4f,%s,%.6f,%.0f\n", t->name,
                name, t->num_ops, r->peak_live, r->peak_footprint,
                r->utilization, r->footprint_source, r->seconds,
                r->ops_per_sec);
}

/* One table: a row per trace, a cell per allocator, then the averages. */
static int table(const char *title, trace_t *traces, int ntraces, int ncols,
                 const char *const *names,
                 int (*run)(int col, const trace_t *t, trace_result *r),
                 FILE *csv)
{
    double usum[NOWN] = {0}, rsum[NOWN] = {0};
    int failures = 0;
    printf("\n== %s\n%-22s %6s", title, "trace", "ops");
    for (int c = 0; c < ncols; c++)
        printf(" | %-13.13s", names[c]);
    printf("\n");
    for (int i = 0; i < ntraces; i++) {
        printf("%-22s %6zu", traces[i].name, traces[i].num_ops);
        fflush(stdout);
        for (int c = 0; c < ncols; c++) {
            trace_result r;
            bool ok = run(c, &traces[i], &r) == 0;
            print_cell(&r, ok);
            fflush(stdout);
            if (!ok) {
                failures++;
                fprintf(stderr, "%s on %s: %s\n", names[c], traces[i].name,
                        r.error);
                continue;
            }
            usum[c] += r.utilization;
            rsum[c] += r.ops_per_sec;
            csv_row(csv, &traces[i], names[c], &r);
        }
        printf("\n");
    }
    printf("%-29s", "average");
    for (int c = 0; c < ncols; c++)
        printf(" | %5.1f%% %6.2f", 100.0 * usum[c] / ntraces,
               rsum[c] / ntraces / 1e6);
    printf("\n");
    return failures;
}

static unsigned reps = 5;

static int run_own(int col, const trace_t *t, trace_result *r)
{
    trace_options opt = {.check_each_op = false, .timing_reps = reps};
    return replay_isolated(t, &own[col], &opt, r);
}

int main(int argc, char **argv)
{
    own[NOWN - 1] = trace_system_malloc;
    own[NOWN - 1].name = "system";

    const char *csv_path = NULL;
    static trace_t traces[MAXTRACES];
    int ntraces = 0, failures = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (ntraces < MAXTRACES &&
                   trace_read(argv[i], &traces[ntraces]) == 0) {
            ntraces++;
        } else {
            failures++;
        }
    }
    for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++) {
        if (ntraces < MAXTRACES &&
            trace_generate(&gens[g].g, &traces[ntraces]) == 0) {
            snprintf(traces[ntraces].name, TRACE_NAME_MAX, "%s", gens[g].name);
            ntraces++;
        } else {
            fprintf(stderr, "replay_arena: %s: %s\n", gens[g].name,
                    strerror(errno));
            failures++;
        }
    }
    if (ntraces == 0) {
        fprintf(stderr, "usage: %s [--reps N] [--csv PATH] TRACE.rep...\n",
                argv[0]);
        return 2;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv != NULL)
        fprintf(csv, "stage,trace,allocator,ops,peak_live,"
                     "peak_footprint,utilization,footprint_source,seconds,"
                     "ops_per_sec\n");

    const char *own_names[NOWN];
    for (int c = 0; c < NOWN; c++)
        own_names[c] = own[c].name;
    char title[200];
    snprintf(title, sizeof title,
             "05-arena traces, own counts: utilization (peak live / peak "
             "footprint) and Mops/s (median of %u)",
             reps);
    failures += table(title, traces, ntraces, NOWN, own_names, run_own, csv);
    printf("05's footprint: its heaps in use and its mappings (its own "
           "count); system: glibc's mallinfo2\n");

    if (csv != NULL) {
        fclose(csv);
        printf("CSV: %s\n", csv_path);
    }
    for (int i = 0; i < ntraces; i++)
        trace_free(&traces[i]);
    printf("replay_arena: %d traces, %d failures\n", ntraces, failures);
    return failures ? 1 : 0;
}
