/*
 * common/replay.h: a stage's trace replay program, side by side with the
 * malloc it runs on, in one call. A stage describes its allocators as
 * trace_allocs (trace.h) and its replay program's main is
 *
 *     int main(int argc, char **argv) {
 *         return replay_main(argc, argv, "06-size-classes", allocs, n);
 *     }
 *
 * which replays every trace on the command line with each allocator and
 * with the system malloc (malloc, free, realloc of whatever malloc the
 * process runs on), each replay in a fresh child process, and prints a table
 * of utilization and throughput (million ops per second, the median of
 * --reps timed passes), one row a trace, the averages last.
 *
 *   PROGRAM [--reps N] [--csv PATH] [--append] [--only stage|system]
 *           [--label NAME] [--align N] [--rss] TRACE.rep...
 *
 *   --only system   the system malloc alone: with LD_PRELOAD, another malloc
 *                   (another stage's libmalloc.so, jemalloc...), named by
 *   --label NAME    instead of "system"
 *   --align N       the alignment the system side's blocks must have:
 *                   glibc's 16 by default; a preloaded malloc may give a
 *                   request of 8 bytes or less 8 (C17 7.22.3 allows it, and
 *                   jemalloc, tcmalloc, mimalloc and stage 06 do)
 *   --rss           footprint as resident memory for every allocator
 *                   (trace_options.footprint_rss): the one measure all can
 *                   be given; without it, each allocator's own count and
 *                   glibc's mallinfo2
 *   --csv, --append rows stage,trace,allocator,ops,peak_live,peak_footprint,
 *                   utilization,footprint_source,seconds,ops_per_sec
 *
 * common/replay.sh runs it once for the stage and the system malloc, then
 * once more with each other malloc preloaded, and prints them side by side.
 *
 * Why a child per replay: glibc keeps freed memory in its arena, so in one
 * process the system malloc's figure for a trace depended on the replays
 * before it (stage 04 measured pairs at 26% in one run and 72% in another);
 * a fresh child starts every allocator from the same heap.
 */
#ifndef COMMON_REPLAY_H
#define COMMON_REPLAY_H

#include "trace.h"

#include <stddef.h>

/* Runs as the command line says; returns 0, or 1 when a replay failed, 2
 * for a bad command line. */
int replay_main(int argc, char **argv, const char *stage,
                const trace_alloc *allocs, size_t nallocs);

#endif /* COMMON_REPLAY_H */
