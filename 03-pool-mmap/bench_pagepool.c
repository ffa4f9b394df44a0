/*
 * bench_pagepool.c: the page pools against the system malloc, side by side.
 * Run it with `make bench-03` (common/bench.sh adds jemalloc, tcmalloc and
 * mimalloc when installed, and instructions per request from callgrind).
 *
 * Both sides of a case do the same requests, in the same order, on the same
 * sizes and pseudo-random slots (common/bench.h's picker; the system side
 * of a churn is common/bench.c's bench_churn_system), and only that work is
 * timed. One op is one request: an alloc or a free.
 *
 *   churn-SIZE-LIVE  LIVE blocks of SIZE bytes are live; each step frees a
 *                    random one and allocates its replacement (stage 02's
 *                    cases, so that the two stages can be compared)
 *   many-sizes       the same with 10000 live blocks of random sizes
 *                    1..1024 B: every request may go to another of the 64
 *                    pools
 *   fill-mixed       200000 blocks of 16..256 B from a fresh allocator
 *                    (every page it needs is mapped during the case)
 *   free-mixed       the same 200000 blocks freed in random order (the
 *                    pages that empty go back to the OS during the case, in
 *                    the sweeps that pp_free starts)
 *
 * Before the cases, two tables. What a page costs the OS here: a mmap, a
 * first write (a page fault) and a munmap of one page, timed call by call
 * (your machine's figures, not the README's). Then resident memory: 200000
 * blocks of 16..256 B allocated, then all freed, in a child process per
 * allocator (forked before any case ran, so that the parent's heap lends
 * them no memory), read from the "Rss:" line of /proc/self/smaps_rollup (a
 * page-table walk, exact; not statm or ru_maxrss, which Linux updates in
 * batches); for the system malloc also after malloc_trim(0), which gives
 * back free pages from anywhere in the heap, and what glibc says it holds
 * free (mallinfo2).
 */
#include "bench.h"
#include "pagepool.h"
#include "trace.h" /* trace_rss_bytes: smaps_rollup "Rss:" */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallinfo2, malloc_trim: glibc's own */
#endif

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
 * frees, and for the system side after malloc_trim(0) too; the stage's own
 * count of mapped bytes at the same moments; and for the system side what
 * glibc itself says after the frees (mallinfo2): bytes free inside the
 * heap, of them in fast bins, and the top chunk, the only part of the heap
 * that free() gives back to the OS (its mmap'd chunks aside). */
typedef struct footprint {
    size_t rss[4];
    size_t mapped[3];
    bool glibc;
    size_t free_inside, in_fastbins, top; /* after the frees */
    size_t heap[2]; /* the main heap's size (arena): before, after trim */
} footprint_t;

/* In a child (bench_in_child): *stage_arg says which side. */
static void footprint_run(void *stage_arg, void *out)
{
    bool stage = *(const bool *)stage_arg;
    footprint_t f;
    memset(&f, 0, sizeof f);
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
#ifdef __GLIBC__
    if (!stage) {
        struct mallinfo2 m = mallinfo2();
        f.glibc = true;
        f.free_inside = m.fordblks;
        f.in_fastbins = m.fsmblks;
        f.top = m.keepcost;
        f.heap[0] = m.arena;
        malloc_trim(0); /* gives back free pages anywhere in the heap */
        f.rss[3] = trace_rss_bytes();
        f.heap[1] = mallinfo2().arena;
    }
#endif
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
    printf("%-16s %8s %8s %8s %12s %12s\n", "side", "before", "peak", "after",
           "peak-before", "after-before");
    for (int side = 0; side < 2; side++) {
        footprint_t f;
        bool stage = side == 0;
        if (!bench_in_child(footprint_run, &stage, &f, sizeof f)) {
            printf("%-16s (the child failed)\n", stage ? "stage" : "system");
            continue;
        }
        printf("%-16s %8zu %8zu %8zu %12ld %12ld\n", stage ? "stage" : "system",
               f.rss[0] / 1024, f.rss[1] / 1024, f.rss[2] / 1024,
               ((long)f.rss[1] - (long)f.rss[0]) / 1024,
               ((long)f.rss[2] - (long)f.rss[0]) / 1024);
        if (stage)
            printf("%-16s %8zu %8zu %8zu   (the stage's own count of mapped "
                   "bytes, KB)\n",
                   "  mapped", f.mapped[0] / 1024, f.mapped[1] / 1024,
                   f.mapped[2] / 1024);
        if (f.glibc) {
            printf("%-16s %8s %8s %8zu %12s %12ld\n", "  malloc_trim(0)", "",
                   "", f.rss[3] / 1024, "",
                   ((long)f.rss[3] - (long)f.rss[0]) / 1024);
            printf("  glibc after the frees (mallinfo2): %zu KB free inside "
                   "its heap (%zu KB of it in fast bins); the top chunk, the "
                   "only part that free() gives back to the OS (once it "
                   "passes the trim threshold, 128 KB by default), is %zu "
                   "KB\n",
                   f.free_inside / 1024, f.in_fastbins / 1024, f.top / 1024);
            printf("  malloc_trim(0) shrank the heap itself (mallinfo2 arena) "
                   "by %zu KB only, from %zu KB: the rest of what it gave "
                   "back came from the middle of the heap (madvise)\n",
                   (f.heap[0] - f.heap[1]) / 1024, f.heap[0] / 1024);
        }
    }
    printf("\n");
}

// clang-format off
/* ---- What a page costs the OS, on this machine -------------------------- */
// clang-format on

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The median of n timings (sorts them). */
static double median(double *t, size_t n)
{
    qsort(t, n, sizeof *t, by_value);
    return t[n / 2];
}

/*
 * What the stage asks of the OS, one page at a time, timed call by call:
 * a mmap of one page, the first write to it (a page fault: the kernel finds
 * a zeroed page and maps it), and a munmap of one page, in random order,
 * out of the run of pages that the kernel merged into one mapping (as the
 * sweeps do: each one splits it). A munmap removes the mapping, frees the
 * page and flushes its translation from the TLB. These are this machine's
 * figures, and they move with its load.
 */
static void syscall_costs(void)
{
    enum { PAGES = 2000 };
    static unsigned char *page[PAGES];
    static double t_map[PAGES], t_touch[PAGES], t_unmap[PAGES];
    size_t *order = shuffled(PAGES);
    size_t size = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < PAGES; i++) {
        double t0 = now_us();
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        t_map[i] = now_us() - t0;
        if (p == MAP_FAILED) {
            printf("system calls: mmap failed after %zu pages\n\n", i);
            for (size_t k = 0; k < i; k++)
                munmap(page[k], size);
            free(order);
            return;
        }
        page[i] = p;
    }
    for (size_t i = 0; i < PAGES; i++) {
        double t0 = now_us();
        *(volatile unsigned char *)page[i] = 1;
        t_touch[i] = now_us() - t0;
    }
    for (size_t i = 0; i < PAGES; i++) {
        double t0 = now_us();
        munmap(page[order[i]], size);
        t_unmap[i] = now_us() - t0;
    }
    free(order);
    printf("one page at a time on this machine, microseconds (median of %d, "
           "timed call by call):\n"
           "  mmap %.2f   first write, a page fault %.2f   munmap %.2f\n\n",
           PAGES, median(t_map, PAGES), median(t_touch, PAGES),
           median(t_unmap, PAGES));
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
    if (wants_footprint(argc, argv)) {
        syscall_costs();
        footprint_table();
    }
    return bench_main(argc, argv, "03-pool-mmap", cases,
                      sizeof cases / sizeof cases[0]);
}
