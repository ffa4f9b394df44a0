/*
 * bench_pool.c: the pool against the system malloc, side by side. Run it
 * with `make bench-02` (common/bench.sh adds jemalloc, tcmalloc and mimalloc
 * when installed, and instructions per request from callgrind).
 *
 * Both sides of a case do the same work, in the same order, on the same
 * pseudo-random slots (common/bench.h's picker; the system side of a churn
 * is common/bench.c's bench_churn_system), and only that work is timed: making
 * the `live` blocks beforehand, and giving everything back afterwards, are not
 * (except in "destroy", where giving back is the work). One op is one request:
 * an alloc or a free.
 *
 *   churn-SIZE-LIVE   LIVE blocks of SIZE bytes are live; each step frees a
 *                     random one and allocates its replacement. The pool's
 *                     block_size is SIZE, malloc is asked for SIZE.
 *   ...-per-block     the same on the devlog's first pool (a malloc per
 *                     block): the same free list, blocks scattered by malloc
 *   fill-64           100000 blocks from an empty pool: growth included
 *   destroy-64        100000 live blocks given back: pool_destroy against
 *                     100000 free() calls
 *
 * Before the cases, a table of resident memory for 100000 live 16-byte
 * blocks, one child process per allocator (the parent's heap must not
 * lend them memory), from /proc/self/smaps_rollup.
 */
#include "bench.h"
#include "pool.h"
#include "trace.h" /* trace_rss_bytes: smaps_rollup "Rss:" */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PER_SLAB 1024   /* blocks per slab in every growing pool here */
#define MANY     100000 /* live blocks in the big cases */

static pool_t *must_create(size_t size, size_t per_slab, unsigned flags)
{
    pool_t *pool = pool_create(size, per_slab, flags);
    if (pool == NULL) {
        perror("bench_pool: pool_create");
        exit(1);
    }
    return pool;
}

/* ---- Churn: free a random live block, allocate its replacement ---------- */

static void churn_pool(bench_t *b, size_t ops, size_t size, size_t live,
                       unsigned flags)
{
    pool_t *pool = must_create(size, PER_SLAB, flags);
    void **s = bench_slots(live);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < live; i++) {
        bench_random(&x); /* bench_churn_system draws a size here */
        s[i] = pool_alloc(pool);
    }
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        size_t k = bench_next_slot(&x, live);
        pool_free(pool, s[k]);
        s[k] = pool_alloc(pool);
    }
    bench_stop(b);
    bench_keep(s[0]);
    pool_destroy(pool);
}

/* One pair of runners per case: bench.h's runners take (bench, ops). */
#define CHURN(size, live)                                                      \
    static void churn_##size##_##live##_stage(bench_t *b, size_t ops)          \
    {                                                                          \
        churn_pool(b, ops, size, live, POOL_BACKING_ONE_BUFFER);               \
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

static void churn_per_block_stage(bench_t *b, size_t ops)
{
    churn_pool(b, ops, 64, MANY, POOL_BACKING_MALLOC_PER_BLOCK);
}

/* ---- Fill: every block from an empty pool, growth included -------------- */

static void fill_pool(bench_t *b, size_t ops, unsigned flags)
{
    pool_t *pool = must_create(64, PER_SLAB, flags);
    void **s = bench_slots(ops);
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        s[i] = pool_alloc(pool);
    bench_stop(b);
    bench_keep(s[ops - 1]);
    pool_destroy(pool);
}

static void fill_stage(bench_t *b, size_t ops)
{
    fill_pool(b, ops, POOL_BACKING_ONE_BUFFER);
}

static void fill_per_block_stage(bench_t *b, size_t ops)
{
    fill_pool(b, ops, POOL_BACKING_MALLOC_PER_BLOCK);
}

static void fill_system(bench_t *b, size_t ops)
{
    void **s = bench_slots(ops);
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        s[i] = malloc(64);
    bench_stop(b);
    bench_keep(s[ops - 1]);
    for (size_t i = 0; i < ops; i++)
        free(s[i]);
}

/* ---- Destroy: give back every live block at once ------------------------ */

static void destroy_pool(bench_t *b, size_t ops, unsigned flags)
{
    pool_t *pool = must_create(64, PER_SLAB, flags);
    for (size_t i = 0; i < ops; i++)
        bench_keep(pool_alloc(pool));
    bench_start(b);
    pool_destroy(pool);
    bench_stop(b);
}

static void destroy_stage(bench_t *b, size_t ops)
{
    destroy_pool(b, ops, POOL_BACKING_ONE_BUFFER);
}

static void destroy_per_block_stage(bench_t *b, size_t ops)
{
    destroy_pool(b, ops, POOL_BACKING_MALLOC_PER_BLOCK);
}

static void destroy_system(bench_t *b, size_t ops)
{
    void **s = bench_slots(ops);
    for (size_t i = 0; i < ops; i++)
        s[i] = malloc(64);
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        free(s[i]);
    bench_stop(b);
}

#define CHURN_OPS 2000000
#define CHURN_CASE(size, live)                                                 \
    {                                                                          \
        "churn-" #size "-" #live,                                              \
            "free a random one of " #live " live " #size                       \
            "-B blocks, allocate "                                             \
            "its replacement",                                                 \
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
    {"churn-64-100000-per-block",
     "churn-64-100000 on the devlog's first pool (a malloc per block)",
     CHURN_OPS, churn_per_block_stage, churn_64_100000_system},
    {"fill-64",
     "100000 allocs of 64 B from an empty pool (growth included, "
     "a slab of 1024 blocks at a time)",
     MANY, fill_stage, fill_system},
    {"fill-64-per-block",
     "the same on the devlog's first pool: each growth is 1024 mallocs", MANY,
     fill_per_block_stage, fill_system},
    {"destroy-64",
     "100000 live 64-B blocks given back: pool_destroy (a munmap per "
     "1024 blocks) against 100000 frees",
     MANY, destroy_stage, destroy_system},
    {"destroy-64-per-block",
     "the same on the devlog's first pool: pool_destroy frees each block", MANY,
     destroy_per_block_stage, destroy_system},
};

/* ---- Resident memory for many small blocks ------------------------------ */

/* In a child (bench_in_child): resident memory added by MANY live 16-byte
 * blocks from the allocator *which points to (0: pool, one buffer per slab;
 * 1: pool, a malloc per block; 2: malloc). */
static void measure_child(void *which_arg, void *out)
{
    int which = *(const int *)which_arg;
    pool_t *pool = NULL;
    void **s = bench_slots(MANY);
    memset(s, 0, MANY * sizeof *s); /* the slots' pages count before */
    size_t after_slots = trace_rss_bytes();
    if (which < 2)
        pool = must_create(16, PER_SLAB,
                           which == 0 ? POOL_BACKING_ONE_BUFFER
                                      : POOL_BACKING_MALLOC_PER_BLOCK);
    for (size_t i = 0; i < MANY; i++) {
        s[i] = pool ? pool_alloc(pool) : malloc(16);
        memset(s[i], 1, 16); /* touched, as a program would */
    }
    *(size_t *)out = trace_rss_bytes() - after_slots;
}

static void memory_table(void)
{
    static const char *const names[] = {"pool, one buffer per slab",
                                        "pool, a malloc per block (devlog v1)",
                                        "system malloc"};
    printf("== resident memory for %d live blocks of 16 B (each in a fresh "
           "child; /proc/self/smaps_rollup)\n",
           MANY);
    for (int which = 0; which < 3; which++) {
        size_t grew = 0;
        if (bench_in_child(measure_child, &which, &grew, sizeof grew) &&
            grew > 0)
            printf("  %-38s %8zu KB  %5.1f B per block\n", names[which],
                   grew / 1024, (double)grew / MANY);
        else
            printf("  %-38s (could not measure)\n", names[which]);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    /* The table is for a person reading the full run, not for the
     * single-case runs that bench.sh makes under callgrind. */
    bool full_run = true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--case") == 0 || strcmp(argv[i], "--list") == 0 ||
            strcmp(argv[i], "--once") == 0 || strcmp(argv[i], "--only") == 0 ||
            strcmp(argv[i], "--help") == 0)
            full_run = false;
    if (full_run)
        memory_table();
    return bench_main(argc, argv, "02-pool-fixed", cases,
                      sizeof cases / sizeof cases[0]);
}
