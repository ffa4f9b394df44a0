/*
 * replay_sc.c: every committed trace replayed on a size-class heap and on
 * the system malloc, side by side (common/replay.h does the work; `make
 * bench-06` runs it through common/replay.sh, which adds stages 04 and 05,
 * this stage's libmalloc.so, jemalloc, tcmalloc and mimalloc).
 *
 *   build/release/replay_sc [--reps N] [--rss] [--csv PATH] TRACE.rep...
 *
 * The heap's footprint, its own count: the pages of its spans in use, its
 * free pages not yet given back, and its metadata (sc_footprint).
 */
#include "replay.h"
#include "sc.h"

#include <stdlib.h>

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

static const trace_alloc allocators[] = {{
    .name = "stage",
    .create = heap_new,
    .destroy = heap_end,
    .alloc = h_alloc,
    .free = h_free,
    .realloc = h_realloc,
    .footprint = h_footprint,
    .check = h_check,
    .align = SC_MIN_ALIGN,
}};

int main(int argc, char **argv)
{
    return replay_main(argc, argv, "06-size-classes", allocators, 1);
}
