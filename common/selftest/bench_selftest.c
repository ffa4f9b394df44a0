/*
 * common/selftest/bench_selftest.c: a tiny bench program for the harness's
 * own tests, with two trivial cases. Its "stage" is a stand-in allocator a
 * few lines long, not a real stage: what is under test is the harness
 * (common/bench.c, common/bench.sh), not these figures.
 *
 *   bump-32   32-byte blocks cut from a static buffer by a moving offset
 *             that wraps around every SELFTEST_BATCH blocks; the system
 *             side mallocs the same batch and frees it
 *   pair-64   allocate 64 bytes and free them at once, over and over; the
 *             stand-in hands out its next 32-byte block and takes it back
 *
 * The stand-in has two entry points, selftest_take and selftest_give (the
 * BENCH_ENTRY of this folder's Makefile), for the instructions counted
 * inside the allocator only. Neither has a branch, so each runs the same
 * instructions on every call, and that count is a whole number of
 * instructions per call. The runners call them through volatile function
 * pointers: the compiler can then neither inline them into the loop nor
 * clone them under another name (selftest_take.constprop.0), either of
 * which would hide them from callgrind's --toggle-collect.
 *
 * Run it through the driver:
 *     BENCH_ENTRY='selftest_take selftest_give' common/bench.sh selftest \
 *         common/selftest/build/release/bench_selftest common/selftest/build
 * or `make -C common/selftest bench`.
 */
#include "bench.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

#define SELFTEST_BATCH 1024 /* blocks per batch in bump-32, a power of 2 */

/* The stand-in's memory: one batch of 32-byte blocks, the offset of the
 * next one, and a count of the blocks given back. */
static alignas(max_align_t) unsigned char selftest_buf[SELFTEST_BATCH * 32];
static size_t selftest_off;
static size_t selftest_given;

/* Hands out the next block; past the end of the buffer, wraps around to its
 * start (the reset: every block freed at once). A mask, not a branch. */
static void *selftest_take(void)
{
    unsigned char *p = selftest_buf + selftest_off;
    selftest_off = (selftest_off + 32) & (sizeof selftest_buf - 1);
    return p;
}

/* Takes a block back: only counts it. */
static void selftest_give(void *p)
{
    (void)p;
    selftest_given++;
}

static void *(*volatile selftest_take_fn)(void) = selftest_take;
static void (*volatile selftest_give_fn)(void *) = selftest_give;

static void bump32_stage(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        bench_keep(selftest_take_fn());
    bench_stop(b);
}

static void bump32_system(bench_t *b, size_t ops)
{
    void **batch = malloc(SELFTEST_BATCH * sizeof *batch); /* not timed */
    if (batch == NULL)
        abort();
    bench_start(b);
    size_t n = 0;
    for (size_t i = 0; i < ops; i++) {
        if (n == SELFTEST_BATCH) {
            while (n > 0)
                free(batch[--n]);
        }
        batch[n] = malloc(32);
        bench_keep(batch[n]);
        n++;
    }
    while (n > 0)
        free(batch[--n]);
    bench_stop(b);
    free(batch);
}

static void pair64_stage(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i < ops; i++) {
        void *p = selftest_take_fn();
        bench_keep(p);
        selftest_give_fn(p);
    }
    bench_stop(b);
}

static void pair64_system(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i < ops; i++) {
        void *p = malloc(64);
        bench_keep(p);
        free(p);
    }
    bench_stop(b);
}

static const bench_case selftest_cases[] = {
    {"bump-32", "32-byte blocks, a batch of 1024 then all freed (timed)",
     1000000, bump32_stage, bump32_system},
    {"pair-64", "malloc(64) then free at once, repeated (the stand-in: 32 B)",
     1000000, pair64_stage, pair64_system},
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, "selftest", selftest_cases,
                      sizeof selftest_cases / sizeof selftest_cases[0]);
}
