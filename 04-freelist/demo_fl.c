/*
 * demo_fl.c: a guided tour of a free-list heap. Each step says what it does,
 * does it, and draws the heap. First, on one first-fit heap: fragmentation
 * appears when blocks are freed in a pattern that leaves holes, and
 * disappears as their neighbours are freed and the holes merge. Then one
 * sequence of calls on three heaps, first, next and best fit, side by side:
 * the same requests land in different places. Run it with `make demo-04`.
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

// clang-format off
/* ---- One sequence, three policies -------------------------------------- */
// clang-format on

enum { NPOL = 3, NREQ = 3 };
static const fl_policy policies[NPOL] = {FL_FIRST_FIT, FL_NEXT_FIT,
                                         FL_BEST_FIT};
static const size_t requests[NREQ] = {700, 700, 1200};

/* The holes, as the three heaps have them: sizes asked for, chunk sizes
 * (request + 8-byte header, rounded up to 16), and where each starts. */
enum { NHOLE = 3 };
static const size_t hole_bytes[NHOLE] = {3000, 800, 1500};
static const size_t hole_chunk[NHOLE] = {3008, 816, 1520};

typedef struct run {
    fl_heap heap;
    char *hole[NHOLE];
    char *got[NREQ];
} run;

/*
 * Blocks of 1500, 10, 800, 10, 3000 and 10 bytes, one after another from a
 * fresh region; the 1500, 800 and 3000-byte ones freed in that order, so
 * that the LIFO free list reads 3000 -> 800 -> 1500 -> the region's rest
 * (the 10-byte blocks keep the holes apart); then the requests.
 */
static void run_sequence(run *r, fl_policy policy)
{
    fl_init(&r->heap, policy);
    char *b[6];
    const size_t sizes[6] = {1500, 10, 800, 10, 3000, 10};
    for (int i = 0; i < 6; i++)
        b[i] = fl_alloc(&r->heap, sizes[i]);
    r->hole[0] = b[4];
    r->hole[1] = b[2];
    r->hole[2] = b[0];
    fl_free(&r->heap, b[0]);
    fl_free(&r->heap, b[2]);
    fl_free(&r->heap, b[4]);
    fl_quarantine_flush(&r->heap);
    for (int i = 0; i < NREQ; i++)
        r->got[i] = fl_alloc(&r->heap, requests[i]);
}

/* Where p landed: "in the 3000-byte hole (+720)", or the region's rest. */
static void where(const run *r, const char *p, char *out, size_t len)
{
    for (int i = 0; i < NHOLE; i++)
        if (p >= r->hole[i] && p < r->hole[i] + hole_chunk[i]) {
            size_t off = (size_t)(p - r->hole[i]);
            if (off == 0)
                snprintf(out, len, "the %zu-byte hole", hole_bytes[i]);
            else
                snprintf(out, len, "the %zu-byte hole +%zu", hole_bytes[i],
                         off);
            return;
        }
    snprintf(out, len, "the region's rest");
}

static void three_policies(void)
{
    static run runs[NPOL];
    printf(
        "\n-- one sequence, three policies: three fresh heaps get the same "
        "calls. Blocks of\n1500, 10, 800, 10, 3000 and 10 bytes; then the "
        "1500, 800 and 3000-byte ones are freed,\nso the free list reads "
        "3000 -> 800 -> 1500 -> the region's rest. Then three requests:\n\n");
    for (int p = 0; p < NPOL; p++)
        run_sequence(&runs[p], policies[p]);
    printf("%-11s", "request");
    for (int p = 0; p < NPOL; p++)
        printf("  %-*s", p + 1 < NPOL ? 24 : 0, fl_policy_name(policies[p]));
    printf("\n");
    for (int i = 0; i < NREQ; i++) {
        printf("%4zu bytes ", requests[i]);
        for (int p = 0; p < NPOL; p++) {
            char text[64];
            where(&runs[p], runs[p].got[i], text, sizeof text);
            printf("  %-*s", p + 1 < NPOL ? 24 : 0, text);
        }
        printf("\n");
    }
    printf("\nFirst fit cuts every request from the list head, the 3000-byte "
           "hole. Next fit resumes\nwhere the last search stopped, in the "
           "region's rest, and leaves all three holes alone.\nBest fit takes "
           "the smallest hole that fits: the 800-byte one (a 96-byte piece is "
           "left),\nthe 1500-byte one, then, for 1200 bytes, the 3000-byte "
           "one (the 1500-byte hole's rest\nis too small). The three heaps "
           "now, their free lists in list order:\n");
    for (int p = 0; p < NPOL; p++) {
        printf("\n");
        fl_dump(&runs[p].heap, stdout);
        fl_destroy(&runs[p].heap);
    }
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

    three_policies();
    printf("\nWhich placement is better depends on the requests that come "
           "next: `make bench-04`\nreplays recorded and generated traces "
           "with each policy and compares their utilization.\n");

    printf("\nEvery search walks the free list: O(free chunks). Stage 05 sorts "
           "free chunks into bins\nby size, so that a search is short, and "
           "gives threads arenas of their own.\n");
    return 0;
}
