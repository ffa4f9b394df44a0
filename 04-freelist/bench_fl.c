/*
 * bench_fl.c: the free-list heap against the system malloc, side by side.
 * Run it with `make bench-04`, which then replays every trace in
 * common/traces/ with each policy (replay_fl.c): the utilization figures are
 * there; this program measures speed on three plain workloads.
 *
 * Both sides of a case do the same work on the same sizes in the same order
 * (a script of ops made once, untimed). One heap serves every repetition of
 * a case (created untimed before the first), as a program keeps its heap:
 * mapping fresh regions each time would make the stage pay page faults and
 * munmaps that glibc, whose heap stays warm between repetitions, does not.
 *
 *   churn-<policy>  a random mix of allocs and frees over 512 live slots,
 *                   sizes log-uniform 16..4095: the free list fills with
 *                   holes of every size, and the policy decides the search
 *   fifo-64         allocate 64-byte blocks, then free them in order: no
 *                   search (the list head fits), the fast path alone
 *   realloc-double  realloc 32 blocks, each doubling from 16 bytes to 64 KiB
 *                   and then freed: growth in place versus moves
 */
#include "bench.h"
#include "fl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { SLOTS = 512 };

/* The script of a churn: for op i, the slot it touches and the size it
 * asks for (an alloc when the slot is empty, else a free). */
static uint32_t *slot_of;
static size_t *size_of;
static size_t script_len;
static void *live[SLOTS];

static void make_script(size_t ops)
{
    if (ops <= script_len)
        return;
    free(slot_of);
    free(size_of);
    slot_of = malloc(ops * sizeof *slot_of);
    size_of = malloc(ops * sizeof *size_of);
    if (slot_of == NULL || size_of == NULL) {
        fprintf(stderr, "bench_fl: out of memory for %zu ops\n", ops);
        exit(1);
    }
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < ops; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        slot_of[i] = (uint32_t)(x % SLOTS);
        size_t base = (size_t)16 << ((x >> 16) % 8); /* 16 .. 2048 */
        size_of[i] = base + (size_t)((x >> 24) % base);
    }
    script_len = ops;
}

// clang-format off
/* ---- churn -------------------------------------------------------------- */
// clang-format on

static void churn_stage(bench_t *b, size_t ops, fl_policy pol)
{
    make_script(ops);
    static fl_heap h; /* one heap for every repetition */
    static bool ready;
    if (!ready) {
        fl_init(&h, pol);
        ready = true;
    }
    fl_set_policy(&h, pol);
    bench_start(b);
    for (size_t i = 0; i < ops; i++) {
        void **s = &live[slot_of[i]];
        if (*s == NULL) {
            *s = fl_alloc(&h, size_of[i]);
            bench_keep(*s);
        } else {
            fl_free(&h, *s);
            *s = NULL;
        }
    }
    bench_stop(b);
    for (size_t i = 0; i < SLOTS; i++) { /* untimed: empty for the next */
        fl_free(&h, live[i]);
        live[i] = NULL;
    }
}

static void churn_first(bench_t *b, size_t ops)
{
    churn_stage(b, ops, FL_FIRST_FIT);
}
static void churn_next(bench_t *b, size_t ops)
{
    churn_stage(b, ops, FL_NEXT_FIT);
}
static void churn_best(bench_t *b, size_t ops)
{
    churn_stage(b, ops, FL_BEST_FIT);
}

static void churn_system(bench_t *b, size_t ops)
{
    make_script(ops);
    bench_start(b);
    for (size_t i = 0; i < ops; i++) {
        void **s = &live[slot_of[i]];
        if (*s == NULL) {
            *s = malloc(size_of[i]);
            bench_keep(*s);
        } else {
            free(*s);
            *s = NULL;
        }
    }
    bench_stop(b);
    for (size_t i = 0; i < SLOTS; i++) {
        free(live[i]);
        live[i] = NULL;
    }
}

// clang-format off
/* ---- fifo-64 ------------------------------------------------------------ */
// clang-format on

static void **fifo;
static size_t fifo_len;

static void fifo_room(size_t n)
{
    if (n <= fifo_len)
        return;
    free(fifo);
    fifo = malloc(n * sizeof *fifo);
    if (fifo == NULL)
        exit(1);
    fifo_len = n;
}

static fl_heap fifo_heap;
static bool fifo_ready;

static void fifo_stage(bench_t *b, size_t ops)
{
    size_t n = ops / 2; /* an op is an alloc or a free */
    fifo_room(n);
    if (!fifo_ready) {
        fl_init(&fifo_heap, FL_FIRST_FIT);
        fifo_ready = true;
    }
    bench_start(b);
    for (size_t i = 0; i < n; i++)
        fifo[i] = fl_alloc(&fifo_heap, 64);
    for (size_t i = 0; i < n; i++)
        fl_free(&fifo_heap, fifo[i]);
    bench_stop(b);
}

static void fifo_system(bench_t *b, size_t ops)
{
    size_t n = ops / 2;
    fifo_room(n);
    bench_start(b);
    for (size_t i = 0; i < n; i++)
        fifo[i] = malloc(64);
    for (size_t i = 0; i < n; i++)
        free(fifo[i]);
    bench_stop(b);
}

// clang-format off
/* ---- realloc-double ----------------------------------------------------- */
// clang-format on

enum { GROWERS = 32, DOUBLINGS = 12 }; /* 16 B << 12 = 64 KiB */

static fl_heap grow_heap;
static bool grow_ready;

static void grow_stage(bench_t *b, size_t ops)
{
    if (!grow_ready) {
        fl_init(&grow_heap, FL_FIRST_FIT);
        grow_ready = true;
    }
    void *p[GROWERS];
    size_t rounds = ops / ((size_t)GROWERS * (DOUBLINGS + 2));
    bench_start(b);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t g = 0; g < GROWERS; g++)
            p[g] = fl_alloc(&grow_heap, 16);
        for (size_t d = 1; d <= DOUBLINGS; d++)
            for (size_t g = 0; g < GROWERS; g++)
                p[g] = fl_realloc(&grow_heap, p[g], (size_t)16 << d);
        for (size_t g = 0; g < GROWERS; g++)
            fl_free(&grow_heap, p[g]);
    }
    bench_stop(b);
}

static void grow_system(bench_t *b, size_t ops)
{
    void *p[GROWERS];
    size_t rounds = ops / ((size_t)GROWERS * (DOUBLINGS + 2));
    bench_start(b);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t g = 0; g < GROWERS; g++)
            p[g] = malloc(16);
        for (size_t d = 1; d <= DOUBLINGS; d++)
            for (size_t g = 0; g < GROWERS; g++) {
                void *q = realloc(p[g], (size_t)16 << d);
                if (q != NULL)
                    p[g] = q;
            }
        for (size_t g = 0; g < GROWERS; g++)
            free(p[g]);
    }
    bench_stop(b);
}

static const bench_case cases[] = {
    {"churn-first", "alloc/free mix over 512 slots, 16..4095 B, first fit",
     200000, churn_first, churn_system},
    {"churn-next", "the same ops, next fit", 200000, churn_next, churn_system},
    {"churn-best", "the same ops, best fit", 200000, churn_best, churn_system},
    {"fifo-64", "allocate 64-byte blocks, free them in order (no search)",
     200000, fifo_stage, fifo_system},
    {"realloc-double", "32 blocks doubling 16 B -> 64 KiB by realloc, freed",
     (size_t)GROWERS *(DOUBLINGS + 2) * 200, grow_stage, grow_system},
};

int main(int argc, char **argv)
{
    return bench_main(argc, argv, "04-freelist", cases,
                      sizeof cases / sizeof cases[0]);
}
