/*
 * bench_gm.c: the allocator against the system malloc (and jemalloc,
 * tcmalloc and mimalloc, which common/bench.sh preloads), side by side.
 * Run it with `make bench-07`, which then runs common/mallocbench/ with
 * every allocator as the program's malloc: traces, threads, the burst.
 *
 * Every case is a churn, as a program's heap is: `live` blocks are
 * allocated first (untimed), then each step frees the block in a random
 * slot and allocates a new one of a random size there (two requests a
 * step, the unit of the rate and of instructions per request). Both sides
 * draw the same slots and sizes from the same seed (bench.h's picker,
 * inline on both sides); one heap serves every repetition, as a program
 * keeps its heap.
 *
 *   small-16-64     16-64 B, uniform, 1000 live: the fast paths alone
 *   mixed-16-4096   16 B-4 KiB, log-uniform, 4000 live: 42 classes, lists
 *                   that run dry and overflow, the transfer cache
 *   churn-1-1024    1-1024 B, uniform, 1000 live (bench.h's churn rule):
 *                   the tiny requests among them
 *   tiny-1-15       1-15 B, uniform, 1000 live: the tiny allocator
 *   large-32k-1m    32 KiB-1 MiB, log-uniform, 64 live: the page heap
 */
#include "bench.h"
#include "gm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A request's size from the picker's step r (its high half chose the
 * slot; the size comes from the low half). */
typedef size_t (*size_rule)(uint64_t r);

static inline size_t size_small(uint64_t r)
{
    return 16 + bench_below(r << 32, 49);
}

/* Log-uniform: as many sizes in 16-32 as in 2048-4096. */
static inline size_t size_log(uint64_t r, size_t lo, unsigned octaves)
{
    size_t base = lo << bench_below(r << 32, octaves);
    return base + bench_below(r << 44, base);
}

static inline size_t size_mixed(uint64_t r)
{
    return size_log(r, 16, 8);
}

static inline size_t size_churn(uint64_t r)
{
    return bench_churn_size(BENCH_SIZE_RANDOM, r);
}

static inline size_t size_tiny(uint64_t r)
{
    return 1 + bench_below(r << 32, 15);
}

static inline size_t size_large(uint64_t r)
{
    return size_log(r, 32768, 5);
}

/* The two sides, written out for each rule so that the rule inlines. */
#define CHURN_SIDES(name, rule, live)                                          \
    static void name##_stage(bench_t *b, size_t ops)                           \
    {                                                                          \
        void **s = bench_slots(live);                                          \
        uint64_t x = BENCH_SEED;                                               \
        for (size_t i = 0; i < (live); i++)                                    \
            s[i] = gm_malloc(rule(bench_random(&x)));                          \
        bench_start(b);                                                        \
        for (size_t i = 0; i < ops / 2; i++) {                                 \
            uint64_t r = bench_random(&x);                                     \
            size_t k = bench_below(r, live);                                   \
            gm_free(s[k]);                                                     \
            s[k] = gm_malloc(rule(r));                                         \
        }                                                                      \
        bench_stop(b);                                                         \
        bench_keep(s[0]);                                                      \
        for (size_t i = 0; i < (live); i++)                                    \
            gm_free(s[i]);                                                     \
    }                                                                          \
    static void name##_system(bench_t *b, size_t ops)                          \
    {                                                                          \
        void **s = bench_slots(live);                                          \
        uint64_t x = BENCH_SEED;                                               \
        for (size_t i = 0; i < (live); i++)                                    \
            s[i] = malloc(rule(bench_random(&x)));                             \
        bench_start(b);                                                        \
        for (size_t i = 0; i < ops / 2; i++) {                                 \
            uint64_t r = bench_random(&x);                                     \
            size_t k = bench_below(r, live);                                   \
            free(s[k]);                                                        \
            s[k] = malloc(rule(r));                                            \
        }                                                                      \
        bench_stop(b);                                                         \
        bench_keep(s[0]);                                                      \
        for (size_t i = 0; i < (live); i++)                                    \
            free(s[i]);                                                        \
    }

CHURN_SIDES(small, size_small, 1000)
CHURN_SIDES(mixed, size_mixed, 4000)
CHURN_SIDES(churn, size_churn, 1000)
CHURN_SIDES(tiny, size_tiny, 1000)
CHURN_SIDES(large, size_large, 64)

static const bench_case cases[] = {
    {"small-16-64",
     "churn: free a random one of 1000 live blocks of 16-64 B, allocate its "
     "replacement",
     2000000, small_stage, small_system},
    {"mixed-16-4096", "churn of 4000 live blocks of 16 B-4 KiB (log-uniform)",
     1000000, mixed_stage, mixed_system},
    {"churn-1-1024", "churn of 1000 live blocks of 1-1024 B (uniform)", 1000000,
     churn_stage, churn_system},
    {"tiny-1-15", "churn of 1000 live blocks of 1-15 B (the tiny allocator)",
     1000000, tiny_stage, tiny_system},
    {"large-32k-1m", "churn of 64 live blocks of 32 KiB-1 MiB (log-uniform)",
     100000, large_stage, large_system},
};

int main(int argc, char **argv)
{
    int status = bench_main(argc, argv, "07-tcmalloc-go", cases,
                            sizeof cases / sizeof cases[0]);
    gm_destroy();
    return status;
}
