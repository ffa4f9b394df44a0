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

#include <stddef.h>

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

#endif /* COMMON_BENCH_H */
