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
 *   ...-per-block     the same on the pool's first version (a malloc per
 *                     block): the same free list, blocks scattered by malloc
 *   fill-64           100000 blocks from an empty pool: growth included
 *   destroy-64        100000 live blocks given back: pool_destroy against
 *                     100000 free() calls
 *
 * Before the cases, two tables that a full run prints (a single-case run
 * does not): what this machine's OS charges for the work a slab costs it
 * (an mmap, the first write to each fresh page, a munmap), since these are
 * the machine's figures and not the pool's; and resident memory for 100000
 * live 16-byte blocks, one child process per allocator (the parent's heap
 * must not lend them memory), from /proc/self/smaps_rollup.
 */
#include "bench.h"
#include "pool.h"
#include "trace.h" /* trace_rss_bytes: smaps_rollup "Rss:" */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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
     "churn-64-100000 on the first version (a malloc per block)", CHURN_OPS,
     churn_per_block_stage, churn_64_100000_system},
    {"fill-64",
     "100000 allocs of 64 B from an empty pool (growth included, "
     "a slab of 1024 blocks at a time)",
     MANY, fill_stage, fill_system},
    {"fill-64-per-block",
     "the same on the first version: each growth is 1024 mallocs", MANY,
     fill_per_block_stage, fill_system},
    {"destroy-64",
     "100000 live 64-B blocks given back: pool_destroy (a munmap per "
     "1024 blocks) against 100000 frees",
     MANY, destroy_stage, destroy_system},
    {"destroy-64-per-block",
     "the same on the first version: pool_destroy frees each block", MANY,
     destroy_per_block_stage, destroy_system},
};

/* ---- What the OS charges for a slab, on this machine --------------------- */

#define OS_SLABS 100 /* slabs mapped, written and unmapped for the figures */

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return v[n / 2];
}

/*
 * The kernel's (and, in a VM, the hypervisor's) price for what fill-64 and
 * destroy-64 make it do: OS_SLABS slabs the size of theirs (1024 blocks of
 * 64 B and a header) are mapped, written one byte a page, and unmapped, each
 * step timed on its own. Callgrind counts none of this: it counts user-space
 * instructions. These are the reader's machine's figures, which is why the
 * README quotes its own as one machine's.
 */
static void os_price_table(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    pool_t *probe = must_create(64, PER_SLAB, 0);
    size_t bytes = pool_stats(probe).footprint; /* one slab */
    pool_destroy(probe);
    size_t pages = bytes / page;
    static double map[OS_SLABS], touch[OS_SLABS], unmap[OS_SLABS];
    static volatile unsigned char *slab[OS_SLABS];
    for (int i = 0; i < OS_SLABS; i++) {
        double t0 = now_us();
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        double t1 = now_us();
        if (m == MAP_FAILED) {
            printf("== the OS's price: mmap failed, not measured\n\n");
            for (int j = 0; j < i; j++)
                munmap((void *)slab[j], bytes);
            return;
        }
        slab[i] = m;
        for (size_t p = 0; p < pages; p++)
            slab[i][p * page] = 1; /* a page fault each: a fresh page */
        double t2 = now_us();
        map[i] = t1 - t0;
        touch[i] = (t2 - t1) / (double)pages;
    }
    for (int i = 0; i < OS_SLABS; i++) {
        double t0 = now_us();
        munmap((void *)slab[i], bytes);
        unmap[i] = now_us() - t0;
    }
    printf("== what this machine's OS charges for one slab of fill-64 (%zu KB, "
           "%zu pages), median of %d\n",
           bytes / 1024, pages, OS_SLABS);
    printf("  mmap                              %9.2f us\n",
           median(map, OS_SLABS));
    printf("  first write to each fresh page    %9.2f us a page\n",
           median(touch, OS_SLABS));
    printf("  munmap, every page written        %9.2f us\n\n",
           median(unmap, OS_SLABS));
}

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
    static const char *const names[] = {
        "pool, one buffer per slab", "pool, a malloc per block (first version)",
        "system malloc"};
    printf("== resident memory for %d live blocks of 16 B (each in a fresh "
           "child; /proc/self/smaps_rollup)\n",
           MANY);
    for (int which = 0; which < 3; which++) {
        size_t grew = 0;
        if (bench_in_child(measure_child, &which, &grew, sizeof grew) &&
            grew > 0)
            printf("  %-42s %8zu KB  %5.1f B per block\n", names[which],
                   grew / 1024, (double)grew / MANY);
        else
            printf("  %-42s (could not measure)\n", names[which]);
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
    if (full_run) {
        os_price_table();
        memory_table();
    }
    return bench_main(argc, argv, "02-pool-fixed", cases,
                      sizeof cases / sizeof cases[0]);
}
