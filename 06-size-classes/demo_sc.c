/*
 * demo_sc.c: a guided tour of a size-class heap. Each step says what it
 * does, does it, and draws what changed: a request rounded up to its class,
 * a span's bitmap and freeindex as blocks come and go, the rescan that finds
 * freed slots, a large block in the page map, two free runs merging, pages
 * going back to the OS, and the waste report. Run it with `make demo-06`;
 * `make -C 06-size-classes classes` prints the whole class table.
 */
#include "sc.h"

#include <stdio.h>
#include <string.h>

static void say(const char *what)
{
    printf("\n-- %s\n", what);
}

/* The span of p, drawn as sc_dump draws it, with only what the step is
 * about: its bitmap row by row ('#' taken, '.' free, '^' freeindex). */
static void show_span(const sc_heap *h, const void *p)
{
    const sc_span *s = sc_span_of(h, p);
    printf("   span of class %u: %u B slots, %u of %u taken, freeindex %u\n",
           s->cls, s->elemsize, s->alloc_count, s->nelems, s->freeindex);
    for (size_t row = 0; row < s->nelems; row += 64) {
        char line[65], mark[65];
        size_t k = 0, last = 0;
        for (size_t i = row; i < s->nelems && i < row + 64; i++, k++) {
            line[k] = (s->alloc_bits[i / 64] >> (i % 64)) & 1 ? '#' : '.';
            mark[k] = i == s->freeindex ? '^' : ' ';
            if (mark[k] == '^')
                last = k + 1;
        }
        line[k] = '\0';
        mark[last] = '\0';
        printf("   %4zu %s\n", row, line);
        if (last > 0)
            printf("        %s\n", mark);
    }
}

int main(void)
{
    sc_heap h;
    sc_init(&h);
    printf("06-size-classes: 67 size classes, spans of 8 KiB pages with a "
           "bitmap, a page heap, a page map.\n");

    say("a request is rounded up to its class; a class's span is whole pages "
        "cut into equal slots");
    static const size_t asks[] = {1, 17, 33, 100, 1500, 20000, 40000};
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        unsigned c = sc_size_class(asks[i]);
        if (c == 0) {
            printf("   %5zu B -> large: a span of its own, %zu pages\n",
                   asks[i], (asks[i] + SC_PAGE - 1) / SC_PAGE);
            continue;
        }
        size_t size = sc_class_size(c), objects = sc_class_objects(c);
        size_t span = sc_class_pages(c) * SC_PAGE;
        printf("   %5zu B -> class %2u: %5zu B slots, %4zu in %zu page%s, "
               "tail %zu B; this request wastes %.1f%% of its slot\n",
               asks[i], c, size, objects, sc_class_pages(c),
               sc_class_pages(c) == 1 ? "" : "s", span - objects * size,
               100.0 * (double)(size - asks[i]) / (double)size);
    }
    printf("   (17 B goes to 32 B, not to Go's 24 B class: blocks of 16 B or "
           "more are 16-byte aligned, as glibc promises)\n");

    say("ten blocks of 40 B: one span of the 48 B class, slots 0 to 9 taken "
        "in order; freeindex is where the search goes on");
    char *b[173];
    for (size_t i = 0; i < 10; i++)
        b[i] = sc_alloc(&h, 40);
    show_span(&h, b[0]);
    printf("   the blocks are 48 bytes apart, with no header: %p, %p, %p\n",
           (void *)b[0], (void *)b[1], (void *)b[2]);

    say("free slots 2, 5 and 7: their bits clear, freeindex stays; they "
        "wait behind it");
    sc_free(&h, b[2]);
    sc_free(&h, b[5]);
    sc_free(&h, b[7]);
    sc_quarantine_flush(&h); /* the demo is a checked build: release them */
    char *slot2 = b[2], *slot5 = b[5], *slot7 = b[7];
    b[2] = b[5] = b[7] = NULL;
    show_span(&h, b[0]);

    say("163 more blocks: the 160 slots ahead of freeindex first, then, at "
        "the end of the bitmap, the search starts again from slot 0 (a "
        "rescan) and finds 2, 5 and 7");
    size_t rescans = sc_stats(&h).rescans;
    for (size_t i = 10; i < 173; i++)
        b[i] = sc_alloc(&h, 40);
    show_span(&h, b[0]);
    printf("   rescans: %zu -> %zu; the last three blocks landed in slots "
           "2, 5, 7: %s; the span is full and has left its class's list\n",
           rescans, sc_stats(&h).rescans,
           b[170] == slot2 && b[171] == slot5 && b[172] == slot7 ? "yes"
                                                                 : "no");

    say("a 40000-byte block: a span of its own, 5 pages; the page map finds "
        "it from any of its bytes, index[p >> 26]->spans[(p >> 13) & 8191]");
    char *big = sc_alloc(&h, 40000), *next = sc_alloc(&h, 50000);
    const sc_span *s = sc_span_of(&h, big);
    printf("   block at %p: span of %zu pages; sc_span_of(p + 30000) is the "
           "same span: %s\n",
           (void *)big, s->npages,
           sc_span_of(&h, big + 30000) == s ? "yes" : "no");

    say("free both: their 5 and 7 pages merge into one free run of 12 (the "
        "page map names each run's first and last page); the arena's "
        "untouched pages stay a run of their own: released pages never merge "
        "with resident ones");
    sc_free(&h, big);
    sc_free(&h, next);
    sc_quarantine_flush(&h);
    sc_stats_t st = sc_stats(&h);
    printf("   free runs: %zu; pages free and resident: %zu; released (never "
           "touched, or given back): %zu\n",
           st.free_runs, st.free_pages, st.released_pages);

    say("the release policy: free resident pages above `retain` go back to "
        "the OS with madvise; retain 0 gives them all back now");
    size_t before = sc_footprint(&h);
    sc_set_retain(&h, 0);
    st = sc_stats(&h);
    printf("   footprint %zu KiB -> %zu KiB, %zu madvise call(s); resident "
           "free pages now %zu\n",
           before / 1024, sc_footprint(&h) / 1024, st.madvises, st.free_pages);

    say("the waste report: what the classes cost right now");
    for (size_t i = 0; i < 173; i += 2)
        sc_free(&h, b[i]);
    sc_quarantine_flush(&h);
    sc_waste(&h, stdout);

    say("the whole heap, as sc_dump draws it");
    sc_dump(&h, stdout);

    for (size_t i = 1; i < 173; i += 2)
        sc_free(&h, b[i]);
    sc_destroy(&h);
    printf(
        "\nOne lock serves every thread in libmalloc.so. Stage 07 gives each "
        "thread a cache of spans\n(mcache), a list of spans per class behind "
        "a lock of its own (mcentral), and the page heap\nbehind one more "
        "(mheap).\n");
    return 0;
}
