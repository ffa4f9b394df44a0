/*
 * bench_pagepool.c: the page pools against the system malloc, side by side.
 * Run it with `make bench-03` (common/bench.sh adds jemalloc, tcmalloc and
 * mimalloc when installed, and instructions per request from callgrind).
 *
 * An op is one request: one alloc or one free. Both sides of a case do the
 * same requests, in the same order, on the same sizes, and write the first
 * byte of every block they get, as a program would.
 *
 *   churn-S-L    L blocks of S bytes live; each step frees a random one and
 *                allocates its replacement. The setup that allocates the L
 *                blocks, and the teardown, are not timed.
 *   many-sizes   the same with 4096 live blocks of random sizes 1..1024 B,
 *                so every request may hit another of the 64 pools.
 *   footprint    allocate 200000 blocks of 16..256 B, then free them all in
 *                random order (both timed); resident memory is read before,
 *                at the peak and after, and printed after the table.
 *
 * Resident memory is the "Rss:" line of /proc/self/smaps_rollup (a page
 * table walk, exact), not statm or ru_maxrss, which Linux updates in
 * batches.
 */
#include "bench.h"
#include "pagepool.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Shared by both sides -------------------------------------------------
 */

static void **slots; /* the live blocks */
static size_t nslots;

static void slots_need(size_t n)
{
    if (n <= nslots)
        return;
    free(slots);
    slots = malloc(n * sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "bench_pagepool: no memory for %zu slots\n", n);
        exit(1);
    }
    memset(slots, 0, n * sizeof *slots); /* resident before any measure */
    nslots = n;
}

/* xorshift64: the same random steps on both sides, a few cycles each. */
static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

#define SEED 0x2545F4914F6CDD1Du

static void touch(void *p, size_t i)
{
    *(unsigned char *)p = (unsigned char)i;
}

static pp_allocator_t *stage_create(void)
{
    pp_allocator_t *a = pp_create();
    if (a == NULL) {
        perror("bench_pagepool: pp_create");
        exit(1);
    }
    return a;
}

static void *must(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "bench_pagepool: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- Churn: a steady state of `live` blocks ---------------------------------
 */

/*
 * The two sides are written out in full, so that each calls its allocator
 * directly, as a program would. size 0 means "random sizes 1..1024", taken
 * from the same random step that picks the victim.
 */
#define CHURN_SIZE(size, r) ((size) ? (size) : 1 + (size_t)((r) >> 40) % 1024)

static void churn_stage(bench_t *b, size_t ops, size_t size, size_t live)
{
    pp_allocator_t *a = stage_create();
    slots_need(live);
    uint64_t x = SEED;
    for (size_t i = 0; i < live; i++) {
        slots[i] = must(pp_alloc(a, CHURN_SIZE(size, rng_next(&x))));
        touch(slots[i], i);
    }
    bench_start(b);
    for (size_t i = 0; i < ops / 2; i++) {
        uint64_t r = rng_next(&x);
        size_t k = (size_t)r & (live - 1); /* live: a power of 2 */
        pp_free(a, slots[k]);
        void *p = pp_alloc(a, CHURN_SIZE(size, r));
        touch(p, i);
        slots[k] = p;
    }
    bench_stop(b);
    pp_destroy(a); /* frees the live blocks with everything else */
}

static void churn_system(bench_t *b, size_t ops, size_t size, size_t live)
{
    slots_need(live);
    uint64_t x = SEED;
    for (size_t i = 0; i < live; i++) {
        slots[i] = must(malloc(CHURN_SIZE(size, rng_next(&x))));
        touch(slots[i], i);
    }
    bench_start(b);
    for (size_t i = 0; i < ops / 2; i++) {
        uint64_t r = rng_next(&x);
        size_t k = (size_t)r & (live - 1); /* live: a power of 2 */
        free(slots[k]);
        void *p = malloc(CHURN_SIZE(size, r));
        touch(p, i);
        slots[k] = p;
    }
    bench_stop(b);
    for (size_t i = 0; i < live; i++)
        free(slots[i]);
}

#define CHURN(S, L, NAME)                                                      \
    static void NAME##_stage(bench_t *b, size_t ops)                           \
    {                                                                          \
        churn_stage(b, ops, S, L);                                             \
    }                                                                          \
    static void NAME##_system(bench_t *b, size_t ops)                          \
    {                                                                          \
        churn_system(b, ops, S, L);                                            \
    }

CHURN(16, 64, c16_64)
CHURN(16, 4096, c16_4k)
CHURN(16, 65536, c16_64k)
CHURN(64, 64, c64_64)
CHURN(64, 4096, c64_4k)
CHURN(64, 65536, c64_64k)
CHURN(256, 64, c256_64)
CHURN(256, 4096, c256_4k)
CHURN(256, 65536, c256_64k)
CHURN(0, 4096, many)

/* ---- Footprint: allocate a lot, free it all ---------------------------------
 */

/* Resident bytes of this process, or 0 if the kernel cannot say.
 * (common/trace.h declares trace_rss_bytes() for this; until trace.c is in
 * common/, the bench reads the file itself.) */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "Rss:", 4) == 0) {
            kb = (size_t)strtoull(line + 4, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

typedef struct footprint {
    size_t before, peak, after, mapped_peak, mapped_after;
    bool measured;
} footprint_t;

static footprint_t fp_stage, fp_system;

#define FOOTPRINT_BLOCKS 200000

/* A random order to free n blocks in, the same on both sides. */
static size_t *shuffled(size_t n)
{
    size_t *order = must(malloc(n * sizeof *order));
    uint64_t x = SEED;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next(&x) % (i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return order;
}

#define FOOTPRINT_SIZE(x) (16 + (size_t)(rng_next(x) % 241)) /* 16..256 */

static void footprint_stage(bench_t *b, size_t ops)
{
    size_t n = ops / 2;
    slots_need(n);
    size_t *order = shuffled(n);
    pp_allocator_t *a = stage_create();
    uint64_t x = SEED;
    fp_stage.before = rss_bytes();
    bench_start(b);
    for (size_t i = 0; i < n; i++) {
        slots[i] = pp_alloc(a, FOOTPRINT_SIZE(&x));
        touch(slots[i], i);
    }
    bench_stop(b);
    fp_stage.peak = rss_bytes();
    fp_stage.mapped_peak = pp_stats(a).mapped;
    bench_start(b);
    for (size_t i = 0; i < n; i++)
        pp_free(a, slots[order[i]]);
    bench_stop(b);
    fp_stage.after = rss_bytes();
    fp_stage.mapped_after = pp_stats(a).mapped;
    fp_stage.measured = true;
    pp_destroy(a);
    free(order);
}

static void footprint_system(bench_t *b, size_t ops)
{
    size_t n = ops / 2;
    slots_need(n);
    size_t *order = shuffled(n);
    uint64_t x = SEED;
    fp_system.before = rss_bytes();
    bench_start(b);
    for (size_t i = 0; i < n; i++) {
        slots[i] = malloc(FOOTPRINT_SIZE(&x));
        touch(slots[i], i);
    }
    bench_stop(b);
    fp_system.peak = rss_bytes();
    bench_start(b);
    for (size_t i = 0; i < n; i++)
        free(slots[order[i]]);
    bench_stop(b);
    fp_system.after = rss_bytes();
    fp_system.measured = true;
    free(order);
}

static void footprint_print(void)
{
    if (!fp_stage.measured && !fp_system.measured)
        return;
    printf("\n-- footprint: resident memory (smaps_rollup Rss) around the "
           "last repetition, in KB\n");
    printf("%-8s %10s %10s %10s %12s %12s\n", "side", "before", "peak", "after",
           "peak-before", "after-before");
    const footprint_t *f[2] = {&fp_stage, &fp_system};
    const char *name[2] = {"stage", "system"};
    for (int i = 0; i < 2; i++) {
        if (!f[i]->measured)
            continue;
        printf("%-8s %10zu %10zu %10zu %12ld %12ld\n", name[i],
               f[i]->before / 1024, f[i]->peak / 1024, f[i]->after / 1024,
               ((long)f[i]->peak - (long)f[i]->before) / 1024,
               ((long)f[i]->after - (long)f[i]->before) / 1024);
    }
    if (fp_stage.measured)
        printf("stage's own count of mapped bytes: %zu KB at the peak, %zu "
               "KB after the frees (root page, spares, chunk set)\n",
               fp_stage.mapped_peak / 1024, fp_stage.mapped_after / 1024);
}

static const bench_case cases[] = {
    {"churn-16-64", "64 live 16-B blocks; free a random one, alloc again",
     4000000, c16_64_stage, c16_64_system},
    {"churn-16-4k", "4096 live 16-B blocks; free a random one, alloc again",
     4000000, c16_4k_stage, c16_4k_system},
    {"churn-16-64k", "65536 live 16-B blocks; free a random one, alloc again",
     4000000, c16_64k_stage, c16_64k_system},
    {"churn-64-64", "64 live 64-B blocks; free a random one, alloc again",
     4000000, c64_64_stage, c64_64_system},
    {"churn-64-4k", "4096 live 64-B blocks; free a random one, alloc again",
     4000000, c64_4k_stage, c64_4k_system},
    {"churn-64-64k", "65536 live 64-B blocks; free a random one, alloc again",
     4000000, c64_64k_stage, c64_64k_system},
    {"churn-256-64", "64 live 256-B blocks; free a random one, alloc again",
     4000000, c256_64_stage, c256_64_system},
    {"churn-256-4k", "4096 live 256-B blocks; free a random one, alloc again",
     4000000, c256_4k_stage, c256_4k_system},
    {"churn-256-64k", "65536 live 256-B blocks; free a random one, alloc again",
     4000000, c256_64k_stage, c256_64k_system},
    {"many-sizes",
     "4096 live blocks of 1..1024 B (64 pools); free a random one, alloc "
     "another size",
     4000000, many_stage, many_system},
    {"footprint",
     "alloc 200000 blocks of 16..256 B, then free all in random order; "
     "resident memory below the table",
     (size_t)2 * FOOTPRINT_BLOCKS, footprint_stage, footprint_system},
};

int main(int argc, char **argv)
{
    int status = bench_main(argc, argv, "03-pool-mmap", cases,
                            sizeof cases / sizeof cases[0]);
    footprint_print();
    free(slots);
    return status;
}
