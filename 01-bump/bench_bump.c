/*
 * bench_bump.c: the bump region against the system malloc, side by side.
 * Run it with `make bench-01` (common/bench.sh adds jemalloc, tcmalloc and
 * mimalloc when installed, and instructions per request from callgrind).
 *
 * Both sides of a case do the same work on the same sizes, in the same
 * order, and store every pointer in the same array. What is timed, and what
 * is not, is said in each case's `what` line, because that choice decides
 * the ratio:
 *   - malloc's frees in the allocation-only cases run after bench_stop():
 *     the bump region has no per-block free to compare them with;
 *   - in "scratch", malloc's frees are timed, because rewinding is how the
 *     bump region frees those blocks;
 *   - one bump region serves every repetition (reset, untimed, in between),
 *     as a program would reuse it. Mapping a fresh region each time would
 *     make the stage pay page faults that malloc does not: glibc keeps the
 *     freed small chunks in its fast bins and hands the same resident memory
 *     out again.
 */
#include "bench.h"
#include "bump.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The request sizes of one repetition and the pointers it got, shared by
 * both sides so they do exactly the same work. */
static size_t *sizes;
static void **ptrs;
static size_t capacity;

/* Fills sizes[0..ops) from a fixed seed: the same sizes on every run. */
static void make_sizes(size_t ops, size_t lo, size_t hi, bool log_uniform)
{
    if (ops > capacity) {
        free(sizes);
        free(ptrs);
        sizes = malloc(ops * sizeof *sizes);
        ptrs = malloc(ops * sizeof *ptrs);
        if (!sizes || !ptrs) {
            fprintf(stderr, "bench_bump: out of memory for %zu ops\n", ops);
            exit(1);
        }
        capacity = ops;
    }
    uint64_t x = 0x2545F4914F6CDD1Du; /* xorshift64 state */
    for (size_t i = 0; i < ops; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (log_uniform) { /* as many sizes in 16-32 as in 2048-4096 */
            size_t shift = (size_t)(x % 9); /* 16 << 0..8 */
            size_t base = lo << shift;
            sizes[i] = base + (size_t)((x >> 8) % base); /* [base, 2base) */
            if (sizes[i] > hi)
                sizes[i] = hi;
        } else {
            sizes[i] = lo + (size_t)((x >> 8) % (hi - lo + 1));
        }
    }
}

/* The region every repetition reuses; regrown when a case needs more. */
static bump_t region;

/* Room for sizes[0..ops) plus worst-case padding and redzones. */
static size_t bytes_for(size_t ops)
{
    size_t need = 0;
    for (size_t i = 0; i < ops; i++)
        need += sizes[i] + 2 * (size_t)BUMP_DEFAULT_ALIGN;
    return need;
}

/* The shared region, reset, with at least `need` bytes. */
static bump_t *region_for(size_t need)
{
    if (region.base != NULL && region.capacity >= need) {
        bump_reset(&region);
        return &region;
    }
    if (region.base != NULL)
        bump_destroy(&region);
    if (bump_init_mmap(&region, need) != 0) {
        fprintf(stderr, "bench_bump: cannot map %zu bytes\n", need);
        exit(1);
    }
    return &region;
}

static void free_all(size_t ops)
{
    for (size_t i = 0; i < ops; i++)
        free(ptrs[i]);
}

/* ---- Allocation only: small and mixed sizes ---- */

static void alloc_only_stage(bench_t *bt, size_t ops, bool touch)
{
    bump_t *b = region_for(bytes_for(ops));
    bench_start(bt);
    for (size_t i = 0; i < ops; i++) {
        unsigned char *p = bump_alloc(b, sizes[i]);
        if (touch)
            p[0] = (unsigned char)i;
        ptrs[i] = p;
    }
    bench_stop(bt);
    bench_keep(ptrs[ops - 1]);
}

static void alloc_only_system(bench_t *bt, size_t ops, bool touch)
{
    bench_start(bt);
    for (size_t i = 0; i < ops; i++) {
        unsigned char *p = malloc(sizes[i]);
        if (touch)
            p[0] = (unsigned char)i;
        ptrs[i] = p;
    }
    bench_stop(bt);
    bench_keep(ptrs[ops - 1]);
    free_all(ops); /* untimed: see the file header */
}

static void small_stage(bench_t *b, size_t ops)
{
    make_sizes(ops, 16, 64, false);
    alloc_only_stage(b, ops, false);
}

static void small_system(bench_t *b, size_t ops)
{
    make_sizes(ops, 16, 64, false);
    alloc_only_system(b, ops, false);
}

static void touch_stage(bench_t *b, size_t ops)
{
    make_sizes(ops, 16, 64, false);
    alloc_only_stage(b, ops, true);
}

static void touch_system(bench_t *b, size_t ops)
{
    make_sizes(ops, 16, 64, false);
    alloc_only_system(b, ops, true);
}

static void mixed_stage(bench_t *b, size_t ops)
{
    make_sizes(ops, 16, 4096, true);
    alloc_only_stage(b, ops, false);
}

static void mixed_system(bench_t *b, size_t ops)
{
    make_sizes(ops, 16, 4096, true);
    alloc_only_system(b, ops, false);
}

/* ---- Scratch memory: mark, a few temporaries, rewind ---- */

#define SCRATCH_BLOCKS 8 /* temporaries per round */

static void scratch_stage(bench_t *bt, size_t ops)
{
    make_sizes(ops, 16, 256, false);
    /* a round holds at most 8 blocks of 256 B, plus padding and redzones */
    bump_t *b =
        region_for(SCRATCH_BLOCKS * (256 + 2 * (size_t)BUMP_DEFAULT_ALIGN));
    bench_start(bt);
    for (size_t i = 0; i + SCRATCH_BLOCKS <= ops; i += SCRATCH_BLOCKS) {
        bump_mark_t m = bump_mark(b);
        for (size_t j = i; j < i + SCRATCH_BLOCKS; j++) {
            unsigned char *p = bump_alloc(b, sizes[j]);
            p[0] = (unsigned char)j;
            ptrs[j] = p;
        }
        bump_rewind(b, m);
    }
    bench_stop(bt);
    bench_keep(ptrs[0]);
}

static void scratch_system(bench_t *bt, size_t ops)
{
    make_sizes(ops, 16, 256, false);
    bench_start(bt);
    for (size_t i = 0; i + SCRATCH_BLOCKS <= ops; i += SCRATCH_BLOCKS) {
        for (size_t j = i; j < i + SCRATCH_BLOCKS; j++) {
            unsigned char *p = malloc(sizes[j]);
            p[0] = (unsigned char)j;
            ptrs[j] = p;
        }
        for (size_t j = i; j < i + SCRATCH_BLOCKS; j++)
            free(ptrs[j]);
    }
    bench_stop(bt);
}

static const bench_case cases[] = {
    {"small-16-64",
     "allocations of 16-64 B, blocks not touched; malloc's frees untimed",
     1000000, small_stage, small_system},
    {"small-touched",
     "the same, writing the first byte of each block, as a program would",
     1000000, touch_stage, touch_system},
    {"mixed-16-4096",
     "allocations of 16-4096 B (log-uniform); malloc's frees untimed", 200000,
     mixed_stage, mixed_system},
    {"scratch",
     "rounds of mark, 8 temporaries of 16-256 B, rewind; against 8 mallocs "
     "and 8 frees (timed)",
     1000000, scratch_stage, scratch_system},
};

int main(int argc, char **argv)
{
    int status = bench_main(argc, argv, "01-bump", cases,
                            sizeof cases / sizeof cases[0]);
    if (region.base != NULL)
        bump_destroy(&region);
    free(sizes);
    free(ptrs);
    return status;
}
