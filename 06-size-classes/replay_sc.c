/*
 * replay_sc.c: every committed trace replayed on a size-class heap and on
 * the system malloc, side by side, with each one's own count of its
 * footprint: for the heap, the pages of its spans in use, its free pages
 * not yet given back and the metadata it has written (sc_footprint); for
 * glibc, mallinfo2 (see common/trace.h). `make bench-06` runs it after the
 * bench cases; common/mallocbench then replays the same traces on every
 * malloc with the footprint as resident memory.
 *
 *   build/release/replay_sc [--reps N] [--csv PATH] TRACE.rep...
 *
 * Every replay runs in a child process of its own, so that what one replay
 * leaves in glibc's arena does not count in the next (stage 04 measured
 * the pairs trace at 26% in one process and 72% in another). The CSV has
 * one row per trace and allocator:
 *   stage,trace,allocator,ops,peak_live,peak_footprint,utilization,
 *   footprint_source,seconds,ops_per_sec
 */
#include "replay.h"
#include "sc.h"
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *heap_new(void)
{
    sc_heap *h = malloc(sizeof *h);
    if (h != NULL)
        sc_init(h);
    return h;
}
static void heap_end(void *h)
{
    sc_destroy(h);
    free(h);
}
static void *h_alloc(void *h, size_t n)
{
    return sc_alloc(h, n);
}
static void h_free(void *h, void *p)
{
    sc_free(h, p);
}
static void *h_realloc(void *h, void *p, size_t n)
{
    return sc_realloc(h, p, n);
}
static size_t h_footprint(void *h)
{
    return sc_footprint(h);
}
static bool h_check(void *h)
{
    return sc_check(h);
}

enum { NALLOC = 2 };

int main(int argc, char **argv)
{
    trace_alloc all[NALLOC] = {
        {
            .name = "06-size-classes",
            .create = heap_new,
            .destroy = heap_end,
            .alloc = h_alloc,
            .free = h_free,
            .realloc = h_realloc,
            .footprint = h_footprint,
            .check = h_check,
            .align = SC_MIN_ALIGN,
        },
        trace_system_malloc,
    };
    all[1].name = "system";

    int ntraces;
    int failures =
        replay_bench(argc, argv, "06-size-classes", all, NALLOC, &ntraces);
    if (failures < 0)
        return 2;
    printf("replay_sc: %d traces, %d failures\n", ntraces, failures);
    return failures ? 1 : 0;
}
