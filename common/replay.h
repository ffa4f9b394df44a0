/*
 * common/replay.h: a trace replay in a process of its own, for the benches
 * of the real-malloc stages that compare their own counts with glibc's.
 *
 * trace_replay (trace.h) measures an allocator in the process that calls
 * it, and the system malloc cannot be measured fairly there: glibc keeps
 * freed memory in its heap, so a replay's figure depends on what ran before
 * it in the same process (04's replay_fl saw a trace at 26% in one run and
 * 72% in another). replay_isolated runs trace_replay in a forked child,
 * whose heap nothing else has used since the fork, and brings the result
 * back through a pipe (trace_result is plain data; its footprint_source
 * points into the same program image on both sides).
 *
 * To compare with other mallocs as the program's malloc (LD_PRELOAD), by
 * resident memory, use common/mallocbench/ instead.
 */
#ifndef COMMON_REPLAY_H
#define COMMON_REPLAY_H

#include "trace.h"

/* trace_replay(t, a, opt, r) in a forked child. Returns what trace_replay
 * returned, or -1 with r->error set if the child died; if no child can be
 * made (no pipe, no fork), replays in this process. */
int replay_isolated(const trace_t *t, const trace_alloc *a,
                    const trace_options *opt, trace_result *r);

#define REPLAY_MAX_ALLOCATORS 8 /* columns of replay_bench's table */

/* A replay bench's run, for a stage's main (04's replay_fl, 06's
 * replay_sc): parses [--reps N] [--csv PATH] TRACE.rep..., replays every
 * trace on each of the n allocators with replay_isolated, prints a row a
 * trace (utilization and Mops/s for each allocator) and the averages, and
 * writes every cell to PATH as a CSV row named `stage`. Returns the
 * failures (traces unread, replays failed), or -1 after a message when the
 * arguments are wrong or PATH cannot be written; *ntraces gets the number
 * of traces replayed. */
int replay_bench(int argc, char **argv, const char *stage,
                 const trace_alloc *all, int n, int *ntraces);

#endif /* COMMON_REPLAY_H */
