/*
 * bench_pagepool.c: the page pools against the system malloc, side by side.
 * Run it with `make bench-03` (common/bench.sh adds jemalloc, tcmalloc and
 * mimalloc when installed, and instructions per request from callgrind).
 *
 * Both sides of a case do the same requests, in the same order, on the same
 * sizes and pseudo-random slots (common/bench.h's picker; the system side
 * of a churn is common/bench.c's bench_churn_system), and only that work is
 * timed. One op is one
 * request: an alloc or a free.
 *
 *   churn-SIZE-LIVE  LIVE blocks of SIZE bytes are live; each step frees a
 *                    random one and allocates its replacement (stage 02's
 *                    cases, so that the two stages can be compared)
 *   many-sizes       the same with 10000 live blocks of random sizes
 *                    1..1024 B: every request may go to another of the 64
 *                    pools
 *   fill-mixed       200000 blocks of 16..256 B from a fresh allocator
 *                    (every page it needs is mapped during the case)
 *   free-mixed       the same 200000 blocks freed in random order (every
 *                    page that empties goes back to the OS during the case)
 *
 * Before the cases, a table of resident memory: 200000 blocks of 16..256 B
 * allocated, then all freed, in a child process per allocator (forked
 * before any case ran, so that the parent's heap lends them no memory),
 * read from the "Rss:" line of /proc/self/smaps_rollup (a page-table walk,
 * exact; not statm or ru_maxrss, which Linux updates in batches).
 */
#include "bench.h"
#include "pagepool.h"
#include "trace.h" /* trace_rss_bytes: smaps_rollup "Rss:" */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHURN_OPS 2000000
#define MIXED     200000 /* blocks in fill-mixed, free-mixed, the Rss table */

static pp_allocator_t *must_create(void)
{
    pp_allocator_t *a = pp_create();
    if (a == NULL) {
        perror("bench_pagepool: pp_create");
        exit(1);
    }
    return a;
}

/* A random order to free n slots in, the same on both sides. */
static size_t *shuffled(size_t n)
{
    size_t *order = malloc(n * sizeof *order);
    if (order == NULL) {
        fprintf(stderr, "bench_pagepool: no memory for %zu slots\n", n);
        exit(1);
    }
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = bench_below(bench_random(&x), i + 1);
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return order;
}

// clang-format off
/* ---- Churn: free a random live block, allocate its replacement ---------- */
// clang-format on

/*
 * The stage's side is written out here, so that it calls its allocator
 * directly, as a program would; the system side is bench_churn_system
 * (common/bench.c), the same steps on malloc and free. size 0
 * (BENCH_SIZE_RANDOM) means "random sizes 1..1024", drawn from the same
 * random step that picks the slot (bench_churn_size).
 */

static void churn_stage(bench_t *b, size_t ops, size_t size, size_t live)
{
    pp_allocator_t *a = must_create();
    void **s = bench_slots(live);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < live; i++)
        s[i] = pp_alloc(a, bench_churn_size(size, bench_random(&x)));
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, live);
        pp_free(a, s[k]);
        s[k] = pp_alloc(a, bench_churn_size(size, r));
    }
    bench_stop(b);
    bench_keep(s[0]);
    pp_destroy(a); /* the live blocks go with the allocator */
}

#define CHURN(size, live)                                                      \
    static void churn_##size##_##live##_stage(bench_t *b, size_t ops)          \
    {                                                                          \
        churn_stage(b, ops, size, live);                                       \
    }                                                                          \
    static void churn_##size##_##live##_system(bench_t *b, size_t ops)         \
    {                                                                          \
        bench_churn_system(b, ops, size, live);                                \
    }

CHURN(16, 1)
CHURN(16, 1000)
CHURN(16, 100000)
CHURN(64, 1)
CHURN(64, 1000)
CHURN(64, 100000)
CHURN(256, 1)
CHURN(256, 1000)
CHURN(256, 100000)
CHURN(0, 10000) /* many-sizes */

// clang-format off
/* ---- Fill and free: pages mapped, pages given back ---------------------- */
// clang-format on

#define MIXED_SIZE(x) (16 + bench_below(bench_random(x), 241)) /* 16..256 */

static void fill_stage(bench_t *b, size_t ops)
{
    pp_allocator_t *a = must_create();
    void **s = bench_slots(ops);
    uint64_t x = BENCH_SEED;
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        s[i] = pp_alloc(a, MIXED_SIZE(&x));
    bench_stop(b);
    bench_keep(s[0]);
    pp_destroy(a);
}

static void fill_system(bench_t *b, size_t ops)
{
    void **s = bench_slots(ops);
    uint64_t x = BENCH_SEED;
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        s[i] = malloc(MIXED_SIZE(&x));
    bench_stop(b);
    bench_keep(s[0]);
    for (size_t i = 0; i < ops; i++)
        free(s[i]);
}

static void free_stage(bench_t *b, size_t ops)
{
    pp_allocator_t *a = must_create();
    void **s = bench_slots(ops);
    size_t *order = shuffled(ops);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < ops; i++)
        s[i] = pp_alloc(a, MIXED_SIZE(&x));
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        pp_free(a, s[order[i]]);
    bench_stop(b);
    pp_destroy(a);
    free(order);
}

static void free_system(bench_t *b, size_t ops)
{
    void **s = bench_slots(ops);
    size_t *order = shuffled(ops);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < ops; i++)
        s[i] = malloc(MIXED_SIZE(&x));
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        free(s[order[i]]);
    bench_stop(b);
    free(order);
}

#define CHURN_CASE(size, live)                                                 \
    {                                                                          \
        "churn-" #size "-" #live,                                              \
            "free a random one of " #live " live " #size                       \
            "-B blocks, allocate its "                                         \
            "replacement",                                                     \
            CHURN_OPS, churn_##size##_##live##_stage,                          \
            churn_##size##_##live##_system                                     \
    }

static const bench_case cases[] = {
    CHURN_CASE(16, 1),
    CHURN_CASE(16, 1000),
    CHURN_CASE(16, 100000),
    CHURN_CASE(64, 1),
    CHURN_CASE(64, 1000),
    CHURN_CASE(64, 100000),
    CHURN_CASE(256, 1),
    CHURN_CASE(256, 1000),
    CHURN_CASE(256, 100000),
    {"many-sizes",
     "churn over 10000 live blocks of random sizes 1..1024 B (64 pools)",
     CHURN_OPS, churn_0_10000_stage, churn_0_10000_system},
    {"fill-mixed",
     "200000 allocs of 16..256 B into a fresh heap (pages mapped as needed)",
     MIXED, fill_stage, fill_system},
    {"free-mixed",
     "those 200000 blocks freed in random order (empty pages given back)",
     MIXED, free_stage, free_system},
};

// clang-format off
/* ---- Resident memory: allocate a lot, free it all ----------------------- */
// clang-format on

/* What a child measures: resident bytes before, at the peak, after the
 * frees; and the stage's own count of mapped bytes at the same moments. */
typedef struct footprint {
    size_t rss[3];
    size_t mapped[3];
} footprint_t;

/* In a child (bench_in_child): *stage_arg says which side. */
static void footprint_run(void *stage_arg, void *out)
{
    bool stage = *(const bool *)stage_arg;
    footprint_t f = {{0}, {0}};
    void **s = bench_slots(MIXED);
    size_t *order = shuffled(MIXED);
    memset(s, 0, MIXED * sizeof *s); /* resident before the first reading */
    pp_allocator_t *a = stage ? must_create() : NULL;
    uint64_t x = BENCH_SEED;
    f.rss[0] = trace_rss_bytes();
    f.mapped[0] = a ? pp_stats(a).mapped : 0;
    for (size_t i = 0; i < MIXED; i++) {
        size_t size = MIXED_SIZE(&x);
        s[i] = stage ? pp_alloc(a, size) : malloc(size);
        memset(s[i], 1, size); /* a program writes what it allocates */
    }
    f.rss[1] = trace_rss_bytes();
    f.mapped[1] = a ? pp_stats(a).mapped : 0;
    for (size_t i = 0; i < MIXED; i++) {
        if (stage)
            pp_free(a, s[order[i]]);
        else
            free(s[order[i]]);
    }
    f.rss[2] = trace_rss_bytes();
    f.mapped[2] = a ? pp_stats(a).mapped : 0;
    pp_destroy(a);
    free(order);
    *(footprint_t *)out = f;
}

static void footprint_table(void)
{
    printf("resident memory, KB (smaps_rollup Rss): %d blocks of 16..256 B "
           "allocated and written, then all freed in random order; a child "
           "process per allocator\n",
           MIXED);
    printf("%-8s %10s %10s %10s %12s %12s\n", "side", "before", "peak", "after",
           "peak-before", "after-before");
    for (int side = 0; side < 2; side++) {
        footprint_t f;
        bool stage = side == 0;
        if (!bench_in_child(footprint_run, &stage, &f, sizeof f)) {
            printf("%-8s (the child failed)\n", side == 0 ? "stage" : "system");
            continue;
        }
        printf("%-8s %10zu %10zu %10zu %12ld %12ld\n",
               side == 0 ? "stage" : "system", f.rss[0] / 1024, f.rss[1] / 1024,
               f.rss[2] / 1024, ((long)f.rss[1] - (long)f.rss[0]) / 1024,
               ((long)f.rss[2] - (long)f.rss[0]) / 1024);
        if (side == 0)
            printf("%-8s %10zu %10zu %10zu   (the stage's own count of "
                   "mapped bytes, KB)\n",
                   "  mapped", f.mapped[0] / 1024, f.mapped[1] / 1024,
                   f.mapped[2] / 1024);
    }
    printf("\n");
}

/* The table is for the full run only: not for --list, nor for the
 * one-case runs that bench.sh makes under callgrind. */
static bool wants_footprint(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--list") == 0 || strcmp(argv[i], "--case") == 0 ||
            strcmp(argv[i], "--once") == 0 || strcmp(argv[i], "--only") == 0)
            return false;
    return true;
}

int main(int argc, char **argv)
{
    if (wants_footprint(argc, argv))
        footprint_table();
    return bench_main(argc, argv, "03-pool-mmap", cases,
                      sizeof cases / sizeof cases[0]);
}
