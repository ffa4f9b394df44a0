/*
 * space_sc.c: what one small block costs, in bytes, for the 8, 16 and 48 B
 * classes (and a 17-byte request, which goes to the 32 B class for 16-byte
 * alignment). `make bench-06` runs it after the traces.
 *
 * For each size, 200000 blocks are allocated in a fresh child process (so
 * that nothing before them shares their pages), and the cost of a block is
 * read three ways:
 *   layout     what the design says: the slot, 1 bit of alloc_bits, and its
 *              share of the span's tail and of its sc_span struct
 *   own count  sc_footprint() after the blocks, less before, per block
 *   resident   resident memory growth (smaps_rollup), per block: the same
 *              for the system malloc, which keeps a header of its own
 */
#include "bench.h"
#include "sc.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { BLOCKS = 200000 };

typedef struct cost {
    double own, resident;
} cost;

/* The table of pointers, from mmap and written through before the count
 * starts: its 8 bytes a block are not the allocator's. */
static void **table(void)
{
    void *t = mmap(NULL, BLOCKS * sizeof(void *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return NULL;
    memset(t, 0, BLOCKS * sizeof(void *));
    return t;
}

/* In the child: BLOCKS blocks of *(size_t *)arg bytes on a fresh sc heap,
 * each written once, as a program would. */
static void on_stage(void *arg, void *out)
{
    size_t n = *(size_t *)arg;
    void **p = table();
    sc_heap h;
    sc_init(&h);
    if (p == NULL)
        exit(1);
    p[0] = sc_alloc(&h, n); /* the first arena and metadata: not counted */
    size_t fp0 = sc_footprint(&h), rss0 = trace_rss_bytes();
    for (size_t i = 1; i < BLOCKS; i++) {
        char *b = sc_alloc(&h, n);
        if (b == NULL)
            exit(1);
        b[0] = 1;
        p[i] = b;
    }
    cost *c = out;
    c->own = (double)(sc_footprint(&h) - fp0) / (BLOCKS - 1);
    c->resident = (double)(trace_rss_bytes() - rss0) / (BLOCKS - 1);
}

static void on_system(void *arg, void *out)
{
    size_t n = *(size_t *)arg;
    void **p = table();
    if (p == NULL)
        exit(1);
    p[0] = malloc(n);
    size_t rss0 = trace_rss_bytes();
    for (size_t i = 1; i < BLOCKS; i++) {
        char *b = malloc(n);
        if (b == NULL)
            exit(1);
        b[0] = 1;
        p[i] = b;
    }
    cost *c = out;
    c->own = 0;
    c->resident = (double)(trace_rss_bytes() - rss0) / (BLOCKS - 1);
}

/* Arguments (the bench's BENCH_EXTRA_ARGS, for replay_sc) are ignored. */
int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const size_t sizes[] = {8, 16, 48, 17};
    printf("\n== 06-size-classes: bytes per small block (%d blocks, each in "
           "a fresh child process)\n",
           BLOCKS);
    printf("request  class  layout: slot + bit + tail + span struct   own "
           "count   resident | system resident\n");
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned c = sc_size_class(n);
        double objects = (double)sc_class_objects(c);
        double span = (double)(sc_class_pages(c) * SC_PAGE);
        double tail = (span - objects * (double)sc_class_size(c)) / objects;
        double meta = (double)sizeof(sc_span) / objects;
        double layout = (double)sc_class_size(c) + 1.0 / 8 + tail + meta;
        cost st = {0, 0}, sys = {0, 0};
        bool ok = bench_in_child(on_stage, &n, &st, sizeof st) &&
                  bench_in_child(on_system, &n, &sys, sizeof sys);
        if (!ok) {
            printf("%5zu B: a child failed\n", n);
            return 1;
        }
        printf("%5zu B  %4zu B  %6.2f = %zu + 0.125 + %.2f + %.2f   %9.2f  "
               "%9.2f | %9.2f\n",
               n, sc_class_size(c), layout, sc_class_size(c), tail, meta,
               st.own, st.resident, sys.resident);
    }
    printf("no header: a block is its slot; the span's struct (%zu B, outside "
           "the pages) and its bitmap are shared by all its slots.\nglibc: "
           "an 8-byte header and 16-byte rounding, 32 B at least for any "
           "request of 1-24 B.\n",
           sizeof(sc_span));
    return 0;
}
