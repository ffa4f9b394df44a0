/*
 * demo_fl.c: a guided tour of a free-list heap. Each step says what it does,
 * does it, and draws the heap: fragmentation appears when blocks are freed
 * in a pattern that leaves holes, and disappears as their neighbours are
 * freed and the holes merge. Run it with `make demo-04`.
 */
#include "fl.h"

#include <stdio.h>
#include <string.h>

/* Blocks alternately 1000 and 3000 bytes: the first region nearly full. */
#define NBLOCKS 31

static void step(const char *what, fl_heap *h)
{
    /* The demo runs in the checked build, where a freed chunk first waits
     * in the quarantine: release it, so that the drawing shows the merges. */
    fl_quarantine_flush(h);
    printf("\n-- %s\n", what);
    fl_dump(h, stdout);
}

int main(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    printf("04-freelist: chunks of any size with headers and boundary tags, "
           "one free list.\n");

    void *b[NBLOCKS];
    for (int i = 0; i < NBLOCKS; i++) {
        size_t n = i % 2 == 0 ? 1000 : 3000;
        b[i] = fl_alloc(&h, n);
        memset(b[i], i, n);
    }
    step("31 blocks, 1000 and 3000 bytes alternately, cut one after another "
         "from the first 64 KiB region",
         &h);

    for (int i = 1; i < NBLOCKS; i += 2)
        fl_free(&h, b[i]);
    step("free the fifteen 3000-byte blocks: fifteen holes that cannot merge "
         "(a used block on each side of each)",
         &h);

    fl_stats_t before = fl_stats(&h);
    void *wide = fl_alloc(&h, 6000);
    fl_stats_t after = fl_stats(&h);
    printf("\na 6000-byte request: %zu bytes are free, yet no chunk holds 6000:"
           "\nthe heap maps a new region (%zu -> %zu bytes from the OS). That "
           "is external fragmentation.\n",
           before.free_bytes, before.footprint, after.footprint);
    fl_free(&h, wide); /* its region is empty again: back to the OS */

    fl_free(&h, b[2]);
    fl_free(&h, b[4]);
    step("free two 1000-byte blocks between holes: each free merges with both "
         "neighbours in O(1) (the footer before it says where that chunk "
         "starts); five chunks became one",
         &h);

    for (int i = 0; i < NBLOCKS; i += 2)
        if (i != 2 && i != 4)
            fl_free(&h, b[i]);
    step("free the rest: everything merges back into one chunk and the "
         "fragmentation is gone (the last 64 KiB region is kept for reuse)",
         &h);

    fl_destroy(&h);
    printf("\nEvery search walks the free list: O(free chunks). Stage 05 sorts "
           "free chunks into bins\nby size, so that a search is short, and "
           "gives threads arenas of their own.\n");
    return 0;
}
