/*
 * common/mallocbench/replay_malloc.c: replays allocation traces through the
 * C library's malloc, free and realloc, whatever library provides them: run
 * it with LD_PRELOAD=.../libmalloc.so (a stage, jemalloc, tcmalloc,
 * mimalloc) or without (glibc), and every allocator is measured the same
 * way on the same ops.
 *
 *     replay_malloc [--label NAME] [--csv PATH] [--reps N] [--align A]
 *                   TRACE.rep...
 *
 * Every pointer must be a multiple of A (default 16, glibc's promise; 8
 * for jemalloc, tcmalloc and mimalloc, which align requests under 16 bytes
 * to 8, as C allows for objects that small).
 *
 * Prints one line a trace and appends to PATH (if given) the rows
 *     trace,allocator,ops,peak_live,peak_footprint,utilization,ops_per_sec
 *
 * The footprint is resident memory, the one measure every allocator shares
 * (glibc's own count, mallinfo2, means nothing under another malloc): the
 * process's Rss from /proc/self/smaps_rollup above what it was before the
 * first op (the replay's own tables are resident by then, so they are not
 * counted). A read costs about 70 us, so it is taken after every op of a
 * trace of up to 4000 ops and every ceil(ops / 4000) ops of a longer one:
 * a peak between two samples can be missed by what those few ops touched.
 * A reading below the live payload counts as the live payload (the first
 * requests can land in pages the allocator had already touched at start).
 * Resident memory counts what the allocator touched, not what it reserved:
 * an allocator that maps much and touches little is not charged for it.
 * For the same reason, run each trace in a process of its own (compare.sh
 * does): what earlier work left resident would count.
 *
 * Every payload is written and verified (common/trace.c's replay), so an
 * allocator that returns overlapping blocks fails here too.
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t rss_base;  /* Rss before the first op */
static size_t rss_every; /* read Rss every this many samples */
static size_t rss_calls; /* samples asked for so far */
static size_t rss_last;  /* the last reading, above rss_base */

static size_t rss_footprint(void *ctx)
{
    (void)ctx;
    if (rss_calls++ % rss_every == 0) {
        size_t now = trace_rss_bytes();
        rss_last = now > rss_base ? now - rss_base : 0;
    }
    return rss_last;
}

/* A replay pass starts: its own tables are mapped and cleared (resident)
 * by now, so the baseline taken here leaves them out. */
static void *rss_start(void)
{
    static int ctx;
    rss_calls = 0;
    rss_last = 0;
    rss_base = trace_rss_bytes();
    return &ctx;
}

static void *sys_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n);
}

static void sys_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void *sys_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

int main(int argc, char **argv)
{
    const char *label = "system", *csv = NULL;
    unsigned reps = 5;
    size_t align = 16;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "--label") == 0)
            label = argv[i + 1];
        else if (strcmp(argv[i], "--csv") == 0)
            csv = argv[i + 1];
        else if (strcmp(argv[i], "--reps") == 0)
            reps = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--align") == 0)
            align = (size_t)strtoul(argv[i + 1], NULL, 10);
        else
            break;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: replay_malloc [--label NAME] [--csv PATH] "
                        "[--reps N] [--align A] TRACE.rep...\n");
        return 2;
    }
    trace_alloc a = {
        .name = label,
        .create = rss_start,
        .alloc = sys_alloc,
        .free = sys_free,
        .realloc = sys_realloc,
        .footprint = rss_footprint,
        .align = align,
    };
    FILE *out = csv ? fopen(csv, "a") : NULL;
    if (csv && out == NULL) {
        perror(csv);
        return 1;
    }
    int status = 0;
    for (; i < argc; i++) {
        trace_t t;
        if (trace_read(argv[i], &t) != 0)
            return 1;
        rss_every = t.num_ops <= 4000 ? 1 : (t.num_ops + 3999) / 4000;
        trace_options o = {.timing_reps = reps,
                           .footprint_at_least_live = true};
        trace_result r;
        if (trace_replay(&t, &a, &o, &r) != 0) {
            printf("%-24s %-14s FAILED: %s\n", t.name, label, r.error);
            status = 1;
        } else {
            printf("%-24s %-14s utilization %5.1f%%  %8.2f Mops/s  (peak "
                   "live %zu B, peak resident +%zu B)\n",
                   t.name, label, 100 * r.utilization, r.ops_per_sec / 1e6,
                   r.peak_live, r.peak_footprint);
            if (out)
                fprintf(out, "%s,%s,%zu,%zu,%zu,%.4f,%.0f\n", t.name, label,
                        t.num_ops, r.peak_live, r.peak_footprint, r.utilization,
                        r.ops_per_sec);
        }
        trace_free(&t);
    }
    if (out)
        fclose(out);
    return status;
}
