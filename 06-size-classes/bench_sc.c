/*
 * bench_sc.c: the size-class heap against the system malloc, side by side.
 * Run it with `make bench-06`: common/bench.sh runs the same cases again
 * with stage 04's and 05's libmalloc.so, this stage's own libmalloc.so (one
 * lock around the heap, as programs get it), jemalloc, tcmalloc and
 * mimalloc preloaded, and counts instructions per request with callgrind;
 * then common/replay.sh replays every committed trace on all of them
 * (replay_sc.c), and space_sc.c prints the bytes each small block costs.
 *
 * Every case is a churn: `live` blocks allocated untimed, then ops / 2
 * rounds of one free and one malloc of a slot picked by common/bench.h's
 * picker, timed; both sides draw the same slots and sizes. One heap serves
 * every repetition (created untimed before the first), as a program keeps
 * its heap.
 *
 *   small   16-64 B, 1000 live: the fast path (a class's span, its bitmap)
 *   mixed   16 B-4 KiB log-uniform, 4000 live: many classes at once
 *   churn   1-1024 B (common/bench.h's rule), 100000 live: many spans,
 *           cache misses, the page map
 *   large   64 KiB-1 MiB, 32 live: large spans, the page heap's best fit
 *           and merges, the release policy
 *
 * The stage side calls sc_alloc and sc_free directly: no lock. The row
 * named 06-size-classes is the same code through malloc and free in
 * libmalloc.so, the lock included.
 */
#include "bench.h"
#include "sc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Sizes of a case, drawn from the low bits of the picker's step r (its
 * high bits chose the slot). */
typedef enum size_rule {
    SMALL_16_64,
    MIXED_16_4096,
    CHURN_1_1024,
    LARGE
} size_rule;

static inline size_t size_of(size_rule rule, uint64_t r)
{
    uint64_t low = r << 32;
    switch (rule) {
    case SMALL_16_64:
        return 16 + bench_below(low, 49);
    case MIXED_16_4096: { /* as many 16-31 B as 2048-4095 B */
        size_t base = (size_t)16 << (r % 8);
        return base + bench_below(low, base);
    }
    case CHURN_1_1024:
        return bench_churn_size(BENCH_SIZE_RANDOM, r);
    case LARGE: {
        size_t base = (size_t)65536 << (r % 4);
        return base + bench_below(low, base);
    }
    }
    return 16;
}

static sc_heap heap; /* one heap for every case and repetition */
static bool heap_ready;

static sc_heap *stage_heap(void)
{
    if (!heap_ready) {
        sc_init(&heap);
        heap_ready = true;
    }
    return &heap;
}

/* The two sides of a churn, step for step the same. The rule is a
 * constant in each caller, so the switch above folds away. */
static inline void run_stage(bench_t *b, size_t ops, size_t live,
                             size_rule rule)
{
    sc_heap *h = stage_heap();
    void **s = bench_slots(live);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < live; i++)
        s[i] = sc_alloc(h, size_of(rule, bench_random(&x)));
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, live);
        sc_free(h, s[k]);
        s[k] = sc_alloc(h, size_of(rule, r));
    }
    bench_stop(b);
    bench_keep(s[0]);
    for (size_t i = 0; i < live; i++)
        sc_free(h, s[i]);
}

static inline void run_system(bench_t *b, size_t ops, size_t live,
                              size_rule rule)
{
    void **s = bench_slots(live);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < live; i++)
        s[i] = malloc(size_of(rule, bench_random(&x)));
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, live);
        free(s[k]);
        s[k] = malloc(size_of(rule, r));
    }
    bench_stop(b);
    bench_keep(s[0]);
    for (size_t i = 0; i < live; i++)
        free(s[i]);
}

#define CASE(name, live, rule)                                                 \
    static void name##_stage(bench_t *b, size_t ops)                           \
    {                                                                          \
        run_stage(b, ops, live, rule);                                         \
    }                                                                          \
    static void name##_system(bench_t *b, size_t ops)                          \
    {                                                                          \
        run_system(b, ops, live, rule);                                        \
    }

CASE(small, 1000, SMALL_16_64)
CASE(mixed, 4000, MIXED_16_4096)
CASE(churn, 100000, CHURN_1_1024)
CASE(large, 32, LARGE)

static const bench_case cases[] = {
    {"small", "free + malloc of 16-64 B, 1000 live", 1000000, small_stage,
     small_system},
    {"mixed", "free + malloc of 16 B-4 KiB (log-uniform), 4000 live", 1000000,
     mixed_stage, mixed_system},
    {"churn", "free + malloc of 1-1024 B, 100000 live", 1000000, churn_stage,
     churn_system},
    {"large", "free + malloc of 64 KiB-1 MiB, 32 live", 20000, large_stage,
     large_system},
};

int main(int argc, char **argv)
{
    int status = bench_main(argc, argv, "06-size-classes", cases,
                            sizeof cases / sizeof cases[0]);
    if (heap_ready)
        sc_destroy(&heap);
    return status;
}
