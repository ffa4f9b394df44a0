/*
 * common/selftest/bench_selftest.c: a tiny bench program for the harness's
 * own tests, with two trivial cases. Its "stage" is a stand-in allocator a
 * few lines long, not a real stage: what is under test is the harness
 * (common/bench.c, common/bench.sh), not these figures.
 *
 *   bump-32   32-byte blocks cut from a static buffer by a moving offset,
 *             the buffer reset every SELFTEST_BATCH blocks; the system side
 *             mallocs the same batch and frees it
 *   pair-64   allocate 64 bytes and free them at once, over and over; the
 *             stand-in keeps one static block
 *
 * Run it through the driver:
 *     common/bench.sh selftest common/selftest/build/release/bench_selftest \
 *         common/selftest/build
 * or `make -C common/selftest bench`.
 */
#include "bench.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

#define SELFTEST_BATCH 1024 /* blocks per batch in bump-32 */

/* The stand-in's memory: one batch of 32-byte blocks. */
static alignas(max_align_t) unsigned char selftest_buf[SELFTEST_BATCH * 32];

static void bump32_stage(bench_t *b, size_t ops)
{
    bench_start(b);
    size_t off = 0;
    for (size_t i = 0; i < ops; i++) {
        if (off == sizeof selftest_buf)
            off = 0; /* the reset: everything freed at once */
        bench_keep(selftest_buf + off);
        off += 32;
    }
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
    static alignas(max_align_t) unsigned char block[64];
    bench_start(b);
    for (size_t i = 0; i < ops; i++)
        bench_keep(block);
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
    {"pair-64", "malloc(64) then free at once, repeated", 1000000, pair64_stage,
     pair64_system},
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, "selftest", selftest_cases,
                      sizeof selftest_cases / sizeof selftest_cases[0]);
}
