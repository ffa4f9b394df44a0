/*
 * common/bench.h: side-by-side benchmarks of a stage against the system
 * malloc, in one process.
 *
 * A stage's bench program is a table of cases. Each case does the same work
 * twice: once on the stage's allocator, once on malloc/free. A runner does
 * its own setup, then brackets exactly the work to be measured with
 * bench_start() and bench_stop(), then tears down (untimed):
 *
 *     static void small_stage(bench_t *b, size_t ops) {
 *         bump_t r; bump_init_mmap(&r, ops * 64);      // setup: not timed
 *         bench_start(b);
 *         for (size_t i = 0; i < ops; i++) bench_keep(bump_alloc(&r, 32));
 *         bench_stop(b);
 *         bump_destroy(&r);                             // teardown: not timed
 *     }
 *
 * bench_main() runs every case for both allocators: one warm-up, then
 * `--reps` timed repetitions (default 7), and reports the median, the rate
 * (ops per second) and the ratio to the system malloc's rate (above 1: the
 * stage is faster). It prints a table and writes the CSV
 *     stage,case,allocator,ops,seconds,ops_per_sec,ratio_vs_system
 *
 * Command line of a bench program (all optional):
 *     --reps N          timed repetitions per case and allocator
 *     --scale F         multiply every case's op count by F (e.g. 0.1)
 *     --csv PATH        write rows to PATH (default: no CSV)
 *     --append          append to the CSV instead of starting it anew
 *     --case NAME       run only this case
 *     --only stage|system   run only one side
 *     --label NAME      name the system side NAME in the table and CSV: used
 *                       when another malloc (jemalloc, ...) is preloaded with
 *                       LD_PRELOAD; its ratio is taken against the "system"
 *                       row already in the CSV
 *     --once            one repetition, no warm-up (for callgrind runs)
 *     --allocator-only  for callgrind's --toggle-collect (below)
 *     --list            print the case names and exit
 *
 * Instructions per request, two ways (common/bench.sh runs both and divides
 * by the ops):
 *   - the whole loop: under `valgrind --tool=callgrind --collect-atstart=no`,
 *     bench_start and bench_stop toggle instruction collection, so the
 *     count is the measured work only, the bench loop around the allocator
 *     included;
 *   - the allocator only (Stanford CS107's measure): under
 *         valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no
 *                  --toggle-collect=bump_alloc --toggle-collect=...
 *     with --allocator-only, bench_start and bench_stop switch callgrind's
 *     instrumentation on and off instead of collection, and the toggles
 *     on the allocator's entry points do the collecting: what is counted is
 *     inside an entry point (or its callees) and inside a timed interval.
 *     A stage names its entry points in its Makefile (BENCH_ENTRY).
 */
#ifndef COMMON_BENCH_H
#define COMMON_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench bench_t;

/* Bracket the timed work of one repetition. */
void bench_start(bench_t *b);
void bench_stop(bench_t *b);

/* Keeps the compiler from deleting work whose result is unused. */
void bench_keep(const void *p);

typedef void (*bench_fn)(bench_t *b, size_t ops);

typedef struct bench_case {
    const char *name; /* short, no spaces: "small-16-64" */
    const char *what; /* one line: what is measured, and what is not */
    size_t ops;       /* requests per repetition, the unit of the rate */
    bench_fn stage;   /* the work on the stage's allocator */
    bench_fn system;  /* the same work on malloc/free */
} bench_case;

/* Runs the cases as the command line says; returns the exit status. */
int bench_main(int argc, char **argv, const char *stage,
               const bench_case *cases, size_t ncases);

/* ---- Shared by the stages' bench programs ---------------------------------
 *
 * Machinery that every stage's bench needs and none should copy: the slots
 * that hold a case's live blocks, the pseudo-random slot picker, the system
 * side of the churn cases, and a fresh child process for resident-memory
 * tables. A stage's side of a case stays in the stage's bench program, with
 * direct calls to its allocator; it picks its slots with the same inline
 * functions as the system side, so that both sides free the same blocks.
 */

/* The seed of every picker: both sides of a case start from it. */
#define BENCH_SEED 0x2545F4914F6CDD1Du

/*
 * The picker: xorshift64 (Marsaglia), one 64-bit step a call. It runs inside
 * the timed loops of both sides, so it is inline: a call into bench.c would
 * add a call, a return and the register shuffling around them to every
 * request. Cost: 6 ALU instructions a step, no memory access when x is in a
 * register. Never returns 0 from a nonzero x.
 */
static inline uint64_t bench_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/*
 * A number in [0, n) from the high 32 bits of r: multiply-shift (Lemire)
 * instead of a division, 3 instructions against a division's 20 to 80
 * cycles. n must fit in 32 bits; the bias is at most n / 2^32.
 */
static inline size_t bench_below(uint64_t r, size_t n)
{
    return (size_t)(((r >> 32) * (uint64_t)n) >> 32);
}

/* One step of the picker, then a slot in [0, n): 9 or so instructions. */
static inline size_t bench_next_slot(uint64_t *x, size_t n)
{
    return bench_below(bench_random(x), n);
}

/*
 * The size of a churn request: `size`, or when size is BENCH_SIZE_RANDOM a
 * size in 1..BENCH_RANDOM_MAX drawn from the low 32 bits of r, the step
 * that picked the slot (its high bits chose the slot, so the two are not
 * tied). With a constant size the compiler folds this away; the random
 * rule costs 4 instructions.
 */
#define BENCH_SIZE_RANDOM 0
#define BENCH_RANDOM_MAX  1024
static inline size_t bench_churn_size(size_t size, uint64_t r)
{
    return size != BENCH_SIZE_RANDOM
               ? size
               : 1 + bench_below(r << 32, BENCH_RANDOM_MAX);
}

/*
 * An array of at least n pointers, for a case's live blocks: grown on
 * demand, kept between cases and repetitions (so that no runner pays for
 * it, timed or not, after the first), freed when bench_main returns. Exits
 * with a message when memory runs out. Not for use inside a timed region:
 * it may call malloc.
 */
void **bench_slots(size_t n);

/*
 * The system side of a churn case, the same rule for every stage:
 *   setup (untimed): x = BENCH_SEED; for each of `live` slots, one step r of
 *     the picker and malloc(bench_churn_size(size, r));
 *   timed: ops / 2 times, one step r, slot k = bench_below(r, live),
 *     free(s[k]), s[k] = malloc(bench_churn_size(size, r));
 *   teardown (untimed): every live block freed.
 * A stage's side does the same steps on its allocator, continuing from the
 * picker's state after the setup. Inside the timed loop this costs what the
 * copies it replaces cost: the picker is inline, size and live sit in
 * registers, and the size rule is chosen once, outside the loop.
 */
void bench_churn_system(bench_t *b, size_t ops, size_t size, size_t live);

/*
 * Runs fn(arg, out) in a fresh child process (fork), whose heap nothing in
 * this process has used yet, and copies its result, `size` bytes at `out`,
 * back through a pipe. For resident-memory tables: measured in the parent,
 * the blocks would land in memory that earlier cases left behind. Returns
 * true when the child wrote all `size` bytes and exited with status 0;
 * false when the pipe or the fork failed, or the child crashed or exited
 * otherwise (the parent then sees the pipe's end and never waits longer
 * than the child lives). stdio is flushed first so that nothing buffered is
 * printed twice. Never inside a timed region: a fork costs milliseconds.
 */
bool bench_in_child(void (*fn)(void *arg, void *out), void *arg, void *out,
                    size_t size);

#endif /* COMMON_BENCH_H */
