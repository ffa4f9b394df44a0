/*
 * test_sc.c: unit tests of every sc_* function and error path. The class
 * table against Go's 67 classes row by row, the lookup for every size, the
 * division by multiplication for every offset of every span; slots with no
 * header, a span's slots reused many times without one lost or doubled, the
 * rescan; the page heap's best fit, its merges, the page map, large blocks
 * and their in-place realloc; the release policy and errno when the OS
 * refuses; each misuse report; sc_check() proven to catch a broken heap
 * (nine ways) and called after every operation of random runs and trace
 * replays; the dump and the waste report; the conformance suite, alone and
 * behind one lock with threads.
 */
#include "conform.h"
#include "fault.h"
#include "sc.h"
#include "sc_internal.h"
#include "test.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

/* A freed block may wait in the quarantine (checked builds): tests that
 * watch reuse, spans or pages release it first. */
static void settle(sc_heap *h)
{
    sc_quarantine_flush(h);
}

/* The slot index of p in its span. */
static size_t slot_of(const sc_heap *h, const void *p)
{
    const sc_span *s = sc_span_of(h, p);
    return (size_t)((const char *)p - span_base(s)) / s->elemsize;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a;
    uintptr_t y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

// clang-format off
/* ---- The class table ----------------------------------------------------- */

/* Go's table (runtime/sizeclasses.go, Go 1.19 to today): bytes/obj, pages,
 * objects, tail waste in bytes, max waste in hundredths of a percent. The
 * one table in the stage typed by hand: the reference the generated one
 * must equal. */
static const struct { unsigned size, pages, objects, tail, max_waste; } go[67] = {
    {8, 1, 1024, 0, 8750}, {16, 1, 512, 0, 4375}, {24, 1, 341, 8, 2924},
    {32, 1, 256, 0, 2188}, {48, 1, 170, 32, 3152}, {64, 1, 128, 0, 2344},
    {80, 1, 102, 32, 1907}, {96, 1, 85, 32, 1595}, {112, 1, 73, 16, 1356},
    {128, 1, 64, 0, 1172}, {144, 1, 56, 128, 1182}, {160, 1, 51, 32, 973},
    {176, 1, 46, 96, 959}, {192, 1, 42, 128, 925}, {208, 1, 39, 80, 812},
    {224, 1, 36, 128, 815}, {240, 1, 34, 32, 662}, {256, 1, 32, 0, 586},
    {288, 1, 28, 128, 1216}, {320, 1, 25, 192, 1180}, {352, 1, 23, 96, 988},
    {384, 1, 21, 128, 951}, {416, 1, 19, 288, 1071}, {448, 1, 18, 128, 837},
    {480, 1, 17, 32, 682}, {512, 1, 16, 0, 605}, {576, 1, 14, 128, 1233},
    {640, 1, 12, 512, 1548}, {704, 1, 11, 448, 1393}, {768, 1, 10, 512, 1394},
    {896, 1, 9, 128, 1552}, {1024, 1, 8, 0, 1240}, {1152, 1, 7, 128, 1241},
    {1280, 1, 6, 512, 1555}, {1408, 2, 11, 896, 1400}, {1536, 1, 5, 512, 1400},
    {1792, 2, 9, 256, 1557}, {2048, 1, 4, 0, 1245}, {2304, 2, 7, 256, 1246},
    {2688, 1, 3, 128, 1559}, {3072, 3, 8, 0, 1247}, {3200, 2, 5, 384, 622},
    {3456, 3, 7, 384, 883}, {4096, 1, 2, 0, 1560}, {4864, 3, 5, 256, 1665},
    {5376, 2, 3, 256, 1092}, {6144, 3, 4, 0, 1248}, {6528, 4, 5, 128, 623},
    {6784, 5, 6, 256, 436}, {6912, 6, 7, 768, 337}, {8192, 1, 1, 0, 1561},
    {9472, 7, 6, 512, 1428}, {9728, 6, 5, 512, 364}, {10240, 5, 4, 0, 499},
    {10880, 4, 3, 128, 624}, {12288, 3, 2, 0, 1145}, {13568, 5, 3, 256, 999},
    {14336, 7, 4, 0, 535}, {16384, 2, 1, 0, 1249}, {18432, 9, 4, 0, 1111},
    {19072, 7, 3, 128, 357}, {20480, 5, 2, 0, 687}, {21760, 8, 3, 256, 625},
    {24576, 3, 1, 0, 1145}, {27264, 10, 3, 128, 1000}, {28672, 7, 2, 0, 491},
    {32768, 4, 1, 0, 1250},
};
// clang-format on

static void test_class_table_matches_go(void)
{
    REQUIRE(sc_nclasses() == 68);
    CHECK_EQ(sc_class_size(0), 0); /* class 0: "large" */
    unsigned prev = 0, over = 0;
    for (unsigned c = 1; c <= 67; c++) {
        size_t size = sc_class_size(c), pages = sc_class_pages(c);
        size_t objects = sc_class_objects(c), span = pages * SC_PAGE;
        size_t tail = span - objects * size;
        /* ((size - prev - 1) * objects + tail) / span, in hundredths of a
         * percent, rounded as Go prints it (%.2f). */
        double worst =
            (double)((size - prev - 1) * objects + tail) / (double)span;
        unsigned hundredths = (unsigned)(worst * 10000.0 + 0.5);
        if (!CHECK_EQ(size, go[c - 1].size) ||
            !CHECK_EQ(pages, go[c - 1].pages) ||
            !CHECK_EQ(objects, go[c - 1].objects) ||
            !CHECK_EQ(objects, span / size) ||
            !CHECK_EQ(tail, go[c - 1].tail) ||
            !CHECK_EQ(hundredths, go[c - 1].max_waste))
            printf("    class %u differs from Go's\n", c);
        CHECK_LE(tail * 8, span); /* rule 2: a tail of at most 1/8 */
        over += worst > 0.125;
        prev = (unsigned)size;
    }
    CHECK_EQ(over, 22); /* the nine smallest and 13 others */
}

/* The lookup for every size: the smallest class that holds it, among those
 * whose size is a multiple of 16 when the request is 16 bytes or more. */
static void test_size_to_class_every_size(void)
{
    for (size_t n = 0; n <= SC_MAX_SMALL; n++) {
        unsigned c = sc_size_class(n);
        size_t need = n == 0 ? 1 : n;
        if (!CHECK(c >= 1 && c <= 67) || !CHECK_GE(sc_class_size(c), need)) {
            printf("    size %zu -> class %u\n", n, c);
            return;
        }
        if (n >= 16 && !CHECK_EQ(sc_class_size(c) % 16, 0))
            return;
        for (unsigned d = 1; d < c; d++)
            if (sc_class_size(d) >= need &&
                (n < 16 || sc_class_size(d) % 16 == 0)) {
                CHECK_EQ(c, d); /* a smaller class would do */
                printf("    size %zu -> class %u, but %u fits\n", n, c, d);
                return;
            }
    }
    CHECK_EQ(sc_size_class(SC_MAX_SMALL + 1), 0);
    /* The worked examples, and the 16-byte rule. */
    CHECK_EQ(sc_size_class(100), 9);
    CHECK_EQ(sc_class_size(9), 112);
    CHECK_EQ(sc_class_objects(9), 73);
    CHECK_EQ(sc_size_class(1500), 36);
    CHECK_EQ(sc_class_size(36), 1536);
    CHECK_EQ(sc_size_class(20000), 62);
    CHECK_EQ(sc_class_size(62), 20480);
    CHECK_EQ(sc_class_pages(62), 5);
    CHECK_EQ(sc_class_objects(62), 2);
    CHECK_EQ(sc_size_class(17), 4); /* 32 B, not 24 B: 16-byte alignment */
    CHECK_EQ(sc_size_class(24), 4);
    CHECK_EQ(sc_size_class(8), 1); /* 8 B slots, 8-byte alignment */
    CHECK_EQ(sc_size_class(9), 2);
    CHECK_EQ(sc_size_class(1024), 32);
    CHECK_EQ(sc_size_class(1025), 33);
}

/* (offset * div_mul) >> 32 == offset / size for every offset of every
 * span, its end included. */
static void test_divmul_exact_every_offset(void)
{
    for (unsigned c = 1; c <= 67; c++) {
        uint64_t m = sc_class_divmul(c), size = sc_class_size(c);
        CHECK_EQ(m, (uint64_t)(UINT32_MAX / size) + 1);
        uint64_t span = sc_class_pages(c) * SC_PAGE;
        for (uint64_t off = 0; off <= span; off++)
            if (((off * m) >> 32) != off / size) {
                CHECK_EQ((off * m) >> 32, off / size);
                printf("    class %u, offset %llu\n", c,
                       (unsigned long long)off);
                break;
            }
    }
}

// clang-format off
/* ---- Small blocks: alignment, no header, slots reused -------------------- */
// clang-format on

static void test_alloc_aligns_every_size(void)
{
    sc_heap h;
    sc_init(&h);
    static void *p[5000];
    for (size_t n = 0; n < 5000; n++) {
        size_t size = n < 4200 ? n : (n - 4200) * 97 + 30000;
        p[n] = sc_alloc(&h, size);
        REQUIRE(p[n] != NULL);
        CHECK(is_aligned(p[n], size >= 16 ? SC_ALIGN : SC_MIN_ALIGN));
        CHECK_GE(sc_usable_size(&h, p[n]), size);
        memset(p[n], (int)n, size);
    }
    CHECK(sc_check(&h));
    for (size_t n = 0; n < 5000; n++) {
        size_t size = n < 4200 ? n : (n - 4200) * 97 + 30000;
        const unsigned char *b = p[n];
        for (size_t i = 0; i < size; i++)
            if (b[i] != (unsigned char)n) {
                CHECK_EQ(b[i], (unsigned char)n);
                break;
            }
        sc_free(&h, p[n]);
    }
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* A span of the 8, 16 and 48 B classes holds 8192 / size blocks, side by
 * side: nothing between two blocks, nothing before the first. */
static void test_small_blocks_have_no_header(void)
{
    static const size_t sizes[] = {8, 16, 48};
    for (size_t k = 0; k < 3; k++) {
        sc_heap h;
        sc_init(&h);
        size_t cls = sc_size_class(sizes[k]), n = sc_class_objects(cls);
        CHECK_EQ(n, SC_PAGE / sizes[k]);
        static char *p[SC_MAX_SLOTS + 1];
        for (size_t i = 0; i <= n; i++)
            p[i] = sc_alloc(&h, sizes[k]);
        const sc_span *s = sc_span_of(&h, p[0]);
        REQUIRE(s != NULL);
        CHECK_PTR_EQ(p[0], span_base(s)); /* no header at the start */
        for (size_t i = 1; i < n; i++)
            if (!CHECK_EQ(p[i] - p[i - 1], sizes[k]))
                break;
        CHECK(sc_span_of(&h, p[n]) != s); /* the span is full */
        REQUIRE(sc_check(&h)); /* the rest would crash on a broken heap */
        sc_stats_t st = sc_stats(&h);
        CHECK_EQ(st.small_spans, 2);
        CHECK_EQ(st.span_pages, 2);
        CHECK_EQ(st.live_bytes, (n + 1) * sizes[k]);
        for (size_t i = 0; i <= n; i++)
            sc_free(&h, p[i]);
        CHECK(sc_check(&h));
        sc_destroy(&h);
    }
}

/* One span of the 48 B class, filled, emptied in a random order and filled
 * again, 200 times, with random partial rounds between: the same 170 slots
 * every time, none lost, none handed out twice. */
static void test_span_reuse_never_loses_or_doubles_a_slot(void)
{
    enum { N = 170 };
    sc_heap h;
    sc_init(&h);
    REQUIRE(sc_class_objects(sc_size_class(48)) == N);
    void *first[N], *p[N];
    for (size_t i = 0; i < N; i++)
        first[i] = p[i] = sc_alloc(&h, 40);
    qsort(first, N, sizeof first[0], cmp_ptr);
    const sc_span *s = sc_span_of(&h, first[0]);
    REQUIRE(s != NULL);
    size_t rounds = test_scale(200);
    for (size_t r = 0; r < rounds; r++) {
        /* Free a random number of random blocks (all of them every 4th
         * round), then allocate as many again. */
        size_t k = r % 4 == 0 ? N : test_rand_range(1, N);
        for (size_t i = 0; i < k; i++) {
            size_t j = test_rand_range(i, N - 1);
            void *t = p[i];
            p[i] = p[j];
            p[j] = t;
            sc_free(&h, p[i]);
        }
        settle(&h);
        REQUIRE(sc_check(&h));
        for (size_t i = 0; i < k; i++) {
            p[i] = sc_alloc(&h, 33 + test_rand() % 16);
            REQUIRE(p[i] != NULL);
        }
        REQUIRE(sc_check(&h));
        void *sorted[N];
        memcpy(sorted, p, sizeof sorted);
        qsort(sorted, N, sizeof sorted[0], cmp_ptr);
        for (size_t i = 0; i < N; i++)
            if (!CHECK_PTR_EQ(sorted[i], first[i])) { /* lost or doubled */
                printf("    round %zu, slot %zu\n", r, i);
                goto done;
            }
        CHECK_EQ(sc_stats(&h).small_spans, 1); /* never a second span */
    }
done:
    for (size_t i = 0; i < N; i++)
        sc_free(&h, p[i]);
    sc_destroy(&h);
}

/* A slot freed behind freeindex comes back when freeindex reaches the end:
 * the rescan. Until then the search goes on ahead. */
static void test_freed_slot_found_by_rescan(void)
{
    sc_heap h;
    sc_init(&h);
    enum { n = 73 }; /* slots of the 112 B class */
    REQUIRE(sc_class_objects(sc_size_class(100)) == n);
    char *p[n];
    for (size_t i = 0; i < n - 2; i++)
        p[i] = sc_alloc(&h, 100);
    sc_free(&h, p[5]);
    settle(&h);
    size_t rescans = h.stats.rescans;
    char *a = sc_alloc(&h, 100), *b = sc_alloc(&h, 100);
    CHECK_EQ(slot_of(&h, a), n - 2); /* the slots ahead come first */
    CHECK_EQ(slot_of(&h, b), n - 1);
    CHECK_EQ(h.stats.rescans, rescans);
    char *c = sc_alloc(&h, 100); /* the end: rescan from slot 0 */
    CHECK_PTR_EQ(c, p[5]);
    CHECK_EQ(h.stats.rescans, rescans + 1);
    CHECK(sc_check(&h));
    /* Now full: the next block comes from a second span. */
    char *d = sc_alloc(&h, 100);
    CHECK(sc_span_of(&h, d) != sc_span_of(&h, a));
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* A full span leaves its class's list and comes back, at the tail, when a
 * slot is freed; a span that empties goes back to the page heap, except the
 * class's last span with room, which is kept. */
static void test_spans_leave_and_join_the_partial_list(void)
{
    sc_heap h;
    sc_init(&h);
    unsigned cls = sc_size_class(2000); /* 2048 B: 4 slots a page */
    void *p[8];
    for (size_t i = 0; i < 8; i++)
        p[i] = sc_alloc(&h, 2000);
    const sc_span *s0 = sc_span_of(&h, p[0]), *s1 = sc_span_of(&h, p[4]);
    CHECK(s0 != s1);
    CHECK_NULL(h.partial[cls]); /* both full */
    CHECK_NULL(s0->next);
    sc_free(&h, p[1]);
    settle(&h);
    CHECK_PTR_EQ(h.partial[cls], s0);
    sc_free(&h, p[5]);
    settle(&h);
    CHECK_PTR_EQ(h.partial[cls], s0); /* s1 joined at the tail */
    CHECK_PTR_EQ(h.partial[cls]->prev, s1);
    CHECK(sc_check(&h));
    /* Empty s0: not the only span with room, so its page goes back. */
    size_t spans = sc_stats(&h).small_spans;
    sc_free(&h, p[0]);
    sc_free(&h, p[2]);
    sc_free(&h, p[3]);
    settle(&h);
    CHECK_EQ(sc_stats(&h).small_spans, spans - 1);
    CHECK_PTR_EQ(h.partial[cls], s1);
    /* Empty s1, the last: kept, so that the next 2000 B block needs no
     * page heap call. */
    sc_free(&h, p[4]);
    sc_free(&h, p[6]);
    sc_free(&h, p[7]);
    settle(&h);
    CHECK_EQ(sc_stats(&h).small_spans, spans - 1);
    CHECK_PTR_EQ(h.partial[cls], s1);
    CHECK_EQ(s1->alloc_count, 0);
    CHECK(sc_check(&h));
    /* sc_release gives the kept span back too. */
    sc_release(&h);
    CHECK_EQ(sc_stats(&h).small_spans, spans - 2);
    CHECK(sc_check(&h));
    /* A span of two pages or more is never kept empty: the last 1408 B
     * block freed gives its two pages back at once. */
    void *w = sc_alloc(&h, 1400);
    REQUIRE(w != NULL);
    CHECK_EQ(sc_span_of(&h, w)->npages, 2);
    CHECK_EQ(sc_stats(&h).small_spans, spans - 1);
    sc_free(&h, w);
    settle(&h);
    CHECK_EQ(sc_stats(&h).small_spans, spans - 2);
    CHECK_NULL(h.partial[sc_size_class(1400)]);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

// clang-format off
/* ---- The page heap and the page map -------------------------------------- */
// clang-format on

/* Bytes of a large block of exactly n pages. */
static size_t pages_bytes(size_t n)
{
    return n * SC_PAGE;
}

/* Holes of 6, 9 and 12 pages between live guards; 7 pages go in the
 * 9-page hole: best fit, not the first hole that fits or the arena's big
 * tail; the 2 pages left over stay a free run. */
static void test_page_heap_best_fit(void)
{
    sc_heap h;
    sc_init(&h);
    sc_set_retain(&h, SIZE_MAX); /* keep the holes resident */
    char *hole[3], *guard[3];
    static const size_t len[3] = {12, 6, 9};
    for (size_t i = 0; i < 3; i++) {
        hole[i] = sc_alloc(&h, pages_bytes(len[i]));
        guard[i] = sc_alloc(&h, pages_bytes(5));
        REQUIRE(hole[i] && guard[i]);
    }
    for (size_t i = 0; i < 3; i++)
        sc_free(&h, hole[i]);
    settle(&h);
    CHECK(sc_check(&h));
    char *p = sc_alloc(&h, pages_bytes(7));
    CHECK_PTR_EQ(p, hole[2]); /* the 9-page hole */
    CHECK_EQ(sc_span_of(&h, p)->npages, 7);
    CHECK_NOT_NULL(h.runs[0][2]); /* its 2 pages left over */
    CHECK_NOT_NULL(h.runs[0][6]);
    CHECK_NOT_NULL(h.runs[0][12]);
    /* 6 pages: the exact fit. */
    CHECK_PTR_EQ(sc_alloc(&h, pages_bytes(6)), hole[1]);
    CHECK_NULL(h.runs[0][6]);
    CHECK(sc_check(&h));
    /* Runs of 128 pages or more share list 0, walked for the smallest that
     * fits: holes of 150 and 200 pages (the 200 first on the list, which is
     * newest first), and 140 pages go in the 150-page hole. The guards are
     * bigger than every hole left above, so that they land between the
     * two. */
    char *big150 = sc_alloc(&h, pages_bytes(150));
    char *g1 = sc_alloc(&h, pages_bytes(20));
    char *big200 = sc_alloc(&h, pages_bytes(200));
    char *g2 = sc_alloc(&h, pages_bytes(20));
    REQUIRE(big150 && g1 && big200 && g2);
    REQUIRE(g1 == big150 + pages_bytes(150) && big200 == g1 + pages_bytes(20));
    sc_free(&h, big150);
    sc_free(&h, big200);
    settle(&h);
    CHECK_PTR_EQ(sc_alloc(&h, pages_bytes(140)), big150);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* Three neighbours freed, the middle one last: one run, merged on both
 * sides through the page map, which then fits a block of all three. */
static void test_page_heap_merges_both_neighbours(void)
{
    sc_heap h;
    sc_init(&h);
    sc_set_retain(&h, SIZE_MAX);
    char *a = sc_alloc(&h, pages_bytes(5)), *b = sc_alloc(&h, pages_bytes(6));
    char *c = sc_alloc(&h, pages_bytes(7)), *g = sc_alloc(&h, pages_bytes(5));
    REQUIRE(a && b && c && g);
    REQUIRE(b == a + pages_bytes(5) && c == b + pages_bytes(6));
    sc_free(&h, a);
    sc_free(&h, c);
    settle(&h);
    size_t runs = h.stats.free_runs;
    CHECK_NOT_NULL(h.runs[0][5]);
    CHECK_NOT_NULL(h.runs[0][7]);
    sc_free(&h, b);
    settle(&h);
    CHECK_EQ(h.stats.free_runs, runs - 1); /* three runs became one */
    CHECK_NULL(h.runs[0][5]);
    CHECK_NULL(h.runs[0][7]);
    CHECK_NOT_NULL(h.runs[0][18]);
    CHECK(sc_check(&h));
    CHECK_PTR_EQ(sc_alloc(&h, pages_bytes(18)), a);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* The page map finds the span of every byte of a block, and no span for a
 * pointer elsewhere. */
static void test_page_map_finds_every_byte(void)
{
    sc_heap h;
    sc_init(&h);
    char *big = sc_alloc(&h, 40000), *small = sc_alloc(&h, 1400);
    REQUIRE(big && small);
    const sc_span *bs = sc_span_of(&h, big), *ss = sc_span_of(&h, small);
    REQUIRE(bs && ss);
    CHECK_EQ(bs->npages, 5); /* 40000 B: a span of its own, 5 pages */
    CHECK_EQ(bs->state, SC_SPAN_LARGE);
    CHECK_EQ(sc_usable_size(&h, big), TRACK_ENABLED ? 40000 : 40960);
    for (size_t off = 0; off < 5 * SC_PAGE; off += 997)
        CHECK_PTR_EQ(sc_span_of(&h, big + off), bs);
    CHECK_PTR_EQ(sc_span_of(&h, big + 5 * SC_PAGE - 1), bs);
    CHECK(sc_span_of(&h, big + 5 * SC_PAGE) != bs);
    CHECK_EQ(ss->npages, 2); /* 1408 B: 11 slots in 2 pages */
    CHECK_PTR_EQ(sc_span_of(&h, span_base(ss) + 2 * SC_PAGE - 1), ss);
    int local = 0;
    CHECK_NULL(sc_span_of(&h, &local));
    CHECK_NULL(sc_span_of(&h, (void *)(uintptr_t)0x10));
    CHECK_NULL(sc_span_of(&h, (void *)~(uintptr_t)0));
    /* The arena's untouched tail is a free run: no span. */
    CHECK_NULL(sc_span_of(&h, page_addr(h.arenas->page) + SC_ARENA / 2));
    sc_free(&h, big);
    settle(&h);
    CHECK_NULL(sc_span_of(&h, big));
    sc_destroy(&h);
}

static void test_large_block_gets_its_own_pages(void)
{
    sc_heap h;
    sc_init(&h);
    size_t before = h.stats.span_pages;
    char *p = sc_alloc(&h, SC_MAX_SMALL + 1);
    REQUIRE(p != NULL);
    CHECK(is_aligned(p, SC_PAGE));
    CHECK_EQ(sc_span_of(&h, p)->npages, 5);
    CHECK_EQ(h.stats.span_pages, before + 5);
    memset(p, 7, SC_MAX_SMALL + 1);
    /* A block bigger than an arena: a mapping of several. */
    char *huge = sc_alloc(&h, SC_ARENA + 12345);
    REQUIRE(huge != NULL);
    CHECK_EQ(sc_span_of(&h, huge)->npages, SC_ARENA_PAGES + 2);
    CHECK_GE(h.stats.arenas, 3);
    huge[0] = 1;
    huge[SC_ARENA + 12344] = 2;
    CHECK_PTR_EQ(sc_span_of(&h, huge + SC_ARENA + 100), sc_span_of(&h, huge));
    CHECK(sc_check(&h));
    sc_free(&h, huge);
    sc_free(&h, p);
    settle(&h);
    CHECK_EQ(h.stats.span_pages, before);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

// clang-format off
/* ---- realloc, calloc, aligned blocks ------------------------------------- */
// clang-format on

static void test_realloc_small_in_place_within_its_class(void)
{
    sc_heap h;
    sc_init(&h);
    char *p = sc_alloc(&h, 100); /* 112 B */
    REQUIRE(p != NULL);
    memset(p, 'a', 100);
    CHECK_PTR_EQ(sc_realloc(&h, p, 112), p);
    CHECK_PTR_EQ(sc_realloc(&h, p, 97), p);
    char *q = sc_realloc(&h, p, 113); /* the next class: it moves */
    REQUIRE(q != NULL);
    CHECK(q != p);
    CHECK_EQ(q[0], 'a');
    CHECK_EQ(q[96], 'a');
    char *r = sc_realloc(&h, q, 20); /* a smaller class: it moves too */
    REQUIRE(r != NULL);
    CHECK(r != q);
    CHECK_EQ(r[19], 'a');
    char *big = sc_realloc(&h, r, 100000); /* to a large block */
    REQUIRE(big != NULL);
    CHECK_EQ(big[19], 'a');
    CHECK_EQ(sc_span_of(&h, big)->state, SC_SPAN_LARGE);
    char *back = sc_realloc(&h, big, 50); /* and back to a class */
    REQUIRE(back != NULL);
    CHECK_EQ(back[19], 'a');
    CHECK_EQ(sc_span_of(&h, back)->state, SC_SPAN_SMALL);
    CHECK_NULL(sc_realloc(&h, back, 0)); /* frees */
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* A large block grows into the free run after it and shrinks in place,
 * giving its tail back; with a neighbour in the way it moves. */
static void test_realloc_large_in_place(void)
{
    sc_heap h;
    sc_init(&h);
    char *p = sc_alloc(&h, pages_bytes(10));
    REQUIRE(p != NULL);
    memset(p, 'x', pages_bytes(10));
    /* The arena's free tail follows it: grow in place. */
    char *q = sc_realloc(&h, p, pages_bytes(30));
    CHECK_PTR_EQ(q, p);
    CHECK_EQ(sc_span_of(&h, p)->npages, 30);
    CHECK_EQ(p[pages_bytes(10) - 1], 'x');
    memset(p, 'y', pages_bytes(30));
    CHECK(sc_check(&h));
    /* Shrink: the tail goes back, and a block fits there at once. */
    CHECK_PTR_EQ(sc_realloc(&h, p, pages_bytes(8)), p);
    CHECK_EQ(sc_span_of(&h, p)->npages, 8);
    CHECK_EQ(p[pages_bytes(8) - 1], 'y');
    char *g = sc_alloc(&h, pages_bytes(5));
    CHECK_PTR_EQ(g, p + pages_bytes(8));
    CHECK(sc_check(&h));
    /* Blocked by g: it moves, and keeps its bytes. */
    char *m = sc_realloc(&h, p, pages_bytes(9));
    REQUIRE(m != NULL);
    CHECK(m != p);
    CHECK_EQ(m[pages_bytes(8) - 1], 'y');
    CHECK(sc_check(&h));
    sc_free(&h, g);
    sc_free(&h, m);
    sc_destroy(&h);
}

static void test_realloc_edge_cases(void)
{
    sc_heap h;
    sc_init(&h);
    char *p = sc_realloc(&h, NULL, 50); /* NULL: an alloc */
    REQUIRE(p != NULL);
    memset(p, 3, 50);
    errno = 0;
    CHECK_NULL(sc_realloc(&h, p, SIZE_MAX));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(p[49], 3); /* untouched */
    errno = 0;
    CHECK_NULL(sc_realloc(&h, p, SC_MAX_REQUEST + 1));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_NULL(sc_realloc(&h, p, 0));
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_calloc_zeroes(void)
{
    sc_heap h;
    sc_init(&h);
    unsigned char *a = sc_alloc(&h, 500);
    REQUIRE(a != NULL);
    memset(a, 0xFF, 500);
    sc_free(&h, a);
    settle(&h);
    /* The dirty slot is the next one handed out in class 512 only after a
     * rescan; allocate the span round and check every calloc. */
    size_t nonzero = 0;
    for (size_t i = 0; i < 40; i++) {
        unsigned char *z = sc_calloc(&h, 50, 10);
        REQUIRE(z != NULL);
        for (size_t k = 0; k < 500; k++)
            nonzero += z[k] != 0;
    }
    CHECK_EQ(nonzero, 0);
    /* A large block freed dirty and given back to the OS: calloc takes its
     * pages again without clearing them, and they must read as zero. */
    sc_set_retain(&h, 0);
    unsigned char *big = sc_alloc(&h, pages_bytes(40));
    REQUIRE(big != NULL);
    memset(big, 0xEE, pages_bytes(40));
    sc_free(&h, big);
    settle(&h);
    unsigned char *z = sc_calloc(&h, pages_bytes(40), 1);
    REQUIRE(z != NULL);
    for (size_t k = 0; k < pages_bytes(40); k += 61)
        nonzero += z[k] != 0;
    CHECK_EQ(nonzero, 0);
    CHECK_NOT_NULL(sc_calloc(&h, 0, 10));
    errno = 0;
    CHECK_NULL(sc_calloc(&h, SIZE_MAX / 2 + 1, 2));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_aligned_alloc_every_power_of_two(void)
{
    sc_heap h;
    sc_init(&h);
    static const size_t sizes[] = {1, 24, 100, 5000, 40000};
    for (size_t a = 1; a <= ((size_t)1 << 20); a <<= 1)
        for (size_t k = 0; k < 5; k++) {
            char *p = sc_aligned_alloc(&h, a, sizes[k]);
            REQUIRE(p != NULL);
            CHECK(is_aligned(p, a));
            CHECK_GE(sc_usable_size(&h, p), sizes[k]);
            memset(p, 1, sizes[k]);
            if (!sc_check(&h)) {
                CHECK(sc_check(&h));
                return;
            }
            sc_free(&h, p);
        }
    errno = 0;
    CHECK_NULL(sc_aligned_alloc(&h, 24, 8));
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_NULL(sc_aligned_alloc(&h, 0, 8));
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_NULL(sc_aligned_alloc(&h, 64, SIZE_MAX - 10));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_huge_sizes_give_enomem(void)
{
    sc_heap h;
    sc_init(&h);
    const size_t bad[] = {SIZE_MAX, SIZE_MAX - 7, SIZE_MAX / 2 + 1,
                          SC_MAX_REQUEST + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(sc_alloc(&h, bad[i]));
        CHECK_INT_EQ(errno, ENOMEM);
    }
    CHECK_EQ(h.stats.arenas, 0); /* nothing was mapped for them */
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

// clang-format off
/* ---- The OS: refusals, the release policy, errno ------------------------- */
// clang-format on

/* The first, second, ... mmap refused, in turn: ENOMEM, nothing left
 * half-made, and the next request works. */
static void test_mmap_refused_gives_enomem(void)
{
    for (unsigned pass = 0; pass < 5; pass++) {
        sc_heap h;
        sc_init(&h);
        fault_arm(FAULT_MMAP, pass, 1);
        errno = 0;
        void *p = sc_alloc(&h, 100);
        bool refused = fault_failed(FAULT_MMAP) == 1;
        fault_disarm();
        if (refused) {
            CHECK_NULL(p);
            CHECK_INT_EQ(errno, ENOMEM);
        }
        CHECK(sc_check(&h));
        if (p == NULL)
            p = sc_alloc(&h, 100);
        CHECK_NOT_NULL(p);
        CHECK(sc_check(&h));
        sc_free(&h, p);
        sc_destroy(&h);
    }
}

/* retain 0: every free run goes back at once; retain 4 MiB (the default):
 * a 1 MiB block freed stays resident. */
static void test_release_policy(void)
{
    sc_heap h;
    sc_init(&h);
    char *a = sc_alloc(&h, 1 << 20);
    REQUIRE(a != NULL);
    memset(a, 1, 1 << 20);
    size_t madvises = h.stats.madvises;
    sc_free(&h, a);
    settle(&h);
    CHECK_EQ(h.stats.madvises, madvises); /* under the threshold: kept */
    CHECK_EQ(h.stats.free_pages, 128);
    size_t fp = sc_footprint(&h);
    sc_set_retain(&h, 0); /* gives the 128 pages back now */
    CHECK_EQ(h.stats.madvises, madvises + 1);
    CHECK_EQ(h.stats.free_pages, 0);
    CHECK_EQ(sc_footprint(&h), fp - (1 << 20));
    char *b = sc_alloc(&h, 1 << 20);
    REQUIRE(b != NULL);
    sc_free(&h, b);
    settle(&h);
    CHECK_EQ(h.stats.madvises, madvises + 2); /* at once, at the free */
    CHECK(sc_check(&h));
    /* Largest first: 20 and 100 free pages, a threshold of 25 pages: one
     * madvise, of the 100, and the 20 stay resident. */
    sc_set_retain(&h, SIZE_MAX);
    char *r20 = sc_alloc(&h, pages_bytes(20)),
         *g = sc_alloc(&h, pages_bytes(5));
    char *r100 = sc_alloc(&h, pages_bytes(100)),
         *g2 = sc_alloc(&h, pages_bytes(5));
    REQUIRE(r20 && g && r100 && g2);
    sc_free(&h, r20);
    sc_free(&h, r100);
    settle(&h);
    REQUIRE(h.stats.free_pages == 120);
    madvises = h.stats.madvises;
    sc_set_retain(&h, pages_bytes(25));
    CHECK_EQ(h.stats.madvises, madvises + 1);
    CHECK_EQ(h.stats.free_pages, 20);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* errno stays as it was in every free-like call, when madvise or munmap
 * fail under it; the run that could not go back stays resident and goes
 * at the next try. */
static void test_free_keeps_errno_when_the_os_refuses(void)
{
    sc_heap h;
    sc_init(&h);
    sc_set_retain(&h, 0);
    char *a = sc_alloc(&h, 1 << 20), *b = sc_alloc(&h, 1 << 20);
    REQUIRE(a && b);
    fault_arm(FAULT_MADVISE, 0, 1);
    errno = 1234;
    sc_free(&h, a);
    sc_quarantine_flush(&h); /* checked builds release it here */
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MADVISE), 1); /* the path was taken */
    CHECK_EQ(h.stats.free_pages, 128);        /* still resident */
    CHECK(sc_check(&h));
    fault_disarm();
    sc_free(&h, b); /* now both go */
    settle(&h);
    CHECK_EQ(h.stats.free_pages, 0);
    /* Checked builds: a free that pushes the oldest block out of a full
     * quarantine frees that one for real, and may reach the OS there. */
    char *d = sc_alloc(&h, 1 << 20), *small[SC_QUARANTINE];
    for (size_t i = 0; i < SC_QUARANTINE; i++)
        small[i] = sc_alloc(&h, 100);
    fault_arm(FAULT_MADVISE, 0, 1);
    errno = 1234;
    sc_free(&h, d);
    for (size_t i = 0; i < SC_QUARANTINE; i++) {
        sc_free(&h, small[i]);
        if (!CHECK_INT_EQ(errno, 1234))
            break;
    }
    CHECK_EQ(fault_failed(FAULT_MADVISE), 1);
    fault_disarm();
    settle(&h);
    /* sc_release, sc_set_retain, and sc_destroy under a refused munmap. */
    char *c = sc_alloc(&h, 1 << 20);
    sc_set_retain(&h, SIZE_MAX);
    sc_free(&h, c);
    settle(&h);
    fault_arm(FAULT_MADVISE, 0, 10);
    errno = 4321;
    sc_release(&h);
    CHECK_INT_EQ(errno, 4321);
    sc_set_retain(&h, 0);
    CHECK_INT_EQ(errno, 4321);
    CHECK_GE(fault_failed(FAULT_MADVISE), 2);
    fault_disarm();
    CHECK(sc_check(&h));
    fault_arm(FAULT_MUNMAP, 0, 100);
    errno = 5678;
    sc_destroy(&h);
    CHECK_INT_EQ(errno, 5678);
    CHECK_GE(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
}

// clang-format off
/* ---- Misuse -------------------------------------------------------------- */
// clang-format on

static sc_heap misuse_heap;

static void do_double_free(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    void *p = sc_alloc(&misuse_heap, 40);
    sc_free(&misuse_heap, p);
    sc_free(&misuse_heap, p);
}

static void do_double_free_after_reuse_of_others(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    void *p = sc_alloc(&misuse_heap, 40);
    sc_free(&misuse_heap, p);
    sc_quarantine_flush(&misuse_heap);
    sc_free(&misuse_heap, sc_alloc(&misuse_heap, 200));
    sc_free(&misuse_heap, p);
}

static void do_double_free_large(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    void *p = sc_alloc(&misuse_heap, 100000);
    sc_free(&misuse_heap, p);
    sc_free(&misuse_heap, p);
}

static void do_interior_free(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    char *p = sc_alloc(&misuse_heap, 40);
    sc_free(&misuse_heap, p + 16);
}

static void do_past_last_slot_free(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    char *p = sc_alloc(&misuse_heap, 40);        /* slot 0 of a 48 B span */
    sc_free(&misuse_heap, p + (size_t)170 * 48); /* the span's tail */
}

static void do_large_interior_free(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    char *p = sc_alloc(&misuse_heap, 100000);
    sc_free(&misuse_heap, p + SC_PAGE);
}

static void do_wild_free(void *arg)
{
    (void)arg;
    int local = 0;
    sc_init(&misuse_heap);
    sc_free(&misuse_heap, sc_alloc(&misuse_heap, 10));
    sc_free(&misuse_heap, &local);
}

static void do_free_into_free_pages(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    char *p = sc_alloc(&misuse_heap, 10);
    sc_free(&misuse_heap, p + 50 * SC_PAGE); /* the arena's free tail */
}

static void do_realloc_freed(void *arg)
{
    (void)arg;
    sc_init(&misuse_heap);
    void *p = sc_alloc(&misuse_heap, 40);
    sc_free(&misuse_heap, p);
    sc_realloc(&misuse_heap, p, 80);
}

static void test_misuse_is_reported(void)
{
    CHECK_ABORTS(do_double_free, NULL, "06-size-classes: sc_free(0x");
    CHECK_ABORTS(do_double_free, NULL, "double free");
    CHECK_ABORTS(do_double_free_after_reuse_of_others, NULL, "double free");
    if (SC_CHECKED) /* still in the quarantine */
        CHECK_ABORTS(do_double_free_large, NULL, "double free");
    else /* its pages are a free run already */
        CHECK_ABORTS(do_double_free_large, NULL, "a large block freed twice");
    CHECK_ABORTS(do_interior_free, NULL, "not the start of a block");
    CHECK_ABORTS(do_past_last_slot_free, NULL, "not the start of a block");
    CHECK_ABORTS(do_large_interior_free, NULL, "not the start of a block");
    CHECK_ABORTS(do_wild_free, NULL, "not a block of this heap (in no span)");
    CHECK_ABORTS(do_free_into_free_pages, NULL, "not a block of this heap");
    CHECK_ABORTS(do_realloc_freed, NULL, "realloc of a freed block");
}

static void test_quarantine_delays_reuse(void)
{
    if (!SC_CHECKED) {
        test_skip("checked builds only");
        return;
    }
    sc_heap h;
    sc_init(&h);
    void *a = sc_alloc(&h, 64);
    sc_free(&h, a);
    CHECK_EQ(h.q_count, 1);
    const sc_span *s = sc_span_of(&h, a);
    CHECK(slot_taken(s, slot_of(&h, a))); /* not free yet */
    void *b[SC_QUARANTINE + 1];
    for (size_t i = 0; i <= SC_QUARANTINE; i++)
        CHECK((b[i] = sc_alloc(&h, 64)) != a);
    CHECK(sc_check(&h));
    for (size_t i = 0; i < SC_QUARANTINE; i++)
        sc_free(&h, b[i]); /* the ring fills: a is released, oldest first */
    CHECK_EQ(h.q_count, SC_QUARANTINE);
    CHECK(!slot_taken(s, slot_of(&h, a)));
    CHECK(sc_check(&h));
    sc_quarantine_flush(&h);
    CHECK_EQ(h.q_count, 0);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

// clang-format off
/* ---- sc_check() catches broken heaps ------------------------------------- */
// clang-format on

static bool why_says(const sc_heap *h, const char *words)
{
    const char *why = sc_check_why(h);
    if (why == NULL || strstr(why, words) == NULL) {
        printf("    sc_check_why: %s (expected \"%s\")\n",
               why ? why : "(sound)", words);
        return false;
    }
    return !sc_check(h);
}

/* A heap with a bit of everything: two small spans with room, a large
 * block, a resident free run next to the arena's released tail. */
static void broken_heap_setup(sc_heap *h, char **small, char **large)
{
    sc_init(h);
    sc_set_retain(h, SIZE_MAX);
    *small = sc_alloc(h, 40);
    sc_alloc(h, 40);
    char *gone = sc_alloc(h, pages_bytes(6));
    *large = sc_alloc(h, pages_bytes(5));
    sc_free(h, gone);
    settle(h);
}

static void test_check_catches_popcount_mismatch(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    REQUIRE(sc_check(&h));
    sc_span *sp = (sc_span *)sc_span_of(&h, s);
    uint64_t saved = sp->alloc_bits[0];
    sp->alloc_bits[0] &= ~(uint64_t)1; /* a bit not set: a lost block */
    CHECK(why_says(&h, "popcount"));
    sp->alloc_bits[0] = saved;
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_check_catches_cache_naming_a_taken_slot(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    sc_span *sp = (sc_span *)sc_span_of(&h, s);
    uint64_t saved = sp->alloc_cache;
    uint16_t fi = sp->freeindex;
    sp->freeindex = 0; /* the cache's bit 0 is now slot 0, which is taken */
    sp->alloc_cache = 1;
    CHECK(why_says(&h, "alloc_cache names a slot that is taken"));
    sp->freeindex = fi;
    sp->alloc_cache = saved;
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_check_catches_bit_beyond_last_slot(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    sc_span *sp = (sc_span *)sc_span_of(&h, s); /* 170 slots */
    sp->alloc_bits[2] |= (uint64_t)1 << 60;     /* slot 188 */
    CHECK(why_says(&h, "beyond the span's last slot"));
    sp->alloc_bits[2] &= ~((uint64_t)1 << 60);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_check_catches_page_map_errors(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    sc_span **e = pagemap_entry(&h, page_of(l) + 2);
    sc_span *saved = *e;
    *e = NULL; /* a page of the large block maps to nothing */
    CHECK(why_says(&h, "does not map to it"));
    *e = (sc_span *)sc_span_of(&h, s); /* ...or to another span */
    CHECK(why_says(&h, "does not map to it"));
    *e = saved;
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

/* Two resident runs side by side, as an allocator that forgets to merge
 * would leave them: the 11-page run cut in two by hand, both listed. */
static void test_check_catches_unmerged_free_runs(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    sc_free(&h, l); /* the large block's 5 pages: resident, next to the
                       6-page run (merged: 11) and the released tail */
    settle(&h);
    REQUIRE(sc_check(&h));
    sc_span *run = h.runs[0][11];
    REQUIRE(run != NULL);
    sc_span *half = fixalloc_get(&h, &h.span_meta);
    REQUIRE(half != NULL);
    sc_span *nxt = run->next, *prv = run->prev;
    REQUIRE(nxt == NULL && prv == NULL);
    h.runs[0][11] = NULL;
    h.run_map[0][0] &= ~((uint64_t)1 << 11);
    run->npages = 5;
    half->page = run->page + 5;
    half->npages = 6;
    half->state = SC_SPAN_FREE;
    *pagemap_entry(&h, run->page + 4) = run;
    *pagemap_entry(&h, half->page) = half;
    *pagemap_entry(&h, half->page + 5) = half;
    h.runs[0][5] = run;
    h.runs[0][6] = half;
    h.run_map[0][0] |= ((uint64_t)1 << 5) | ((uint64_t)1 << 6);
    h.stats.free_runs++;
    CHECK(why_says(&h, "two free runs of the same kind touch"));
    /* Put it back: one run of 11. */
    h.runs[0][5] = h.runs[0][6] = NULL;
    h.run_map[0][0] &= ~(((uint64_t)1 << 5) | ((uint64_t)1 << 6));
    *pagemap_entry(&h, run->page + 4) = NULL;
    *pagemap_entry(&h, half->page) = NULL;
    *pagemap_entry(&h, half->page + 5) = run;
    run->npages = 11;
    h.runs[0][11] = run;
    h.run_map[0][0] |= (uint64_t)1 << 11;
    h.stats.free_runs--;
    fixalloc_put(&h.span_meta, half);
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_check_catches_lost_free_run(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    sc_span *run = h.runs[0][6];
    REQUIRE(run != NULL && run->next == NULL);
    h.runs[0][6] = NULL; /* unlinked, the bitmap kept right */
    h.run_map[0][0] &= ~((uint64_t)1 << 6);
    CHECK(why_says(&h, "on no page heap list"));
    h.run_map[0][0] |= (uint64_t)1 << 6; /* the bitmap says non-empty */
    CHECK(why_says(&h, "bitmap disagrees"));
    h.runs[0][6] = run;
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_check_catches_lost_partial_span(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    unsigned cls = sc_size_class(40);
    sc_span *sp = h.partial[cls];
    REQUIRE(sp != NULL && sp->next == sp);
    h.partial[cls] = NULL; /* a span with room, on no list */
    CHECK(why_says(&h, "on no partial list"));
    h.partial[cls] = sp;
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

static void test_check_catches_wrong_counters(void)
{
    sc_heap h;
    char *s, *l;
    broken_heap_setup(&h, &s, &l);
    h.stats.free_pages++;
    CHECK(why_says(&h, "page counters disagree"));
    h.stats.free_pages--;
    h.stats.footprint += SC_PAGE;
    CHECK(why_says(&h, "footprint"));
    h.stats.footprint -= SC_PAGE;
    CHECK(sc_check(&h));
    sc_destroy(&h);
}

// clang-format off
/* ---- Random runs and traces with sc_check() after every operation -------- */
// clang-format on

typedef struct slot {
    unsigned char *p;
    size_t n;
    unsigned char seed;
} slot;

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static bool intact(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return false;
    return true;
}

static size_t random_size(void)
{
    switch (test_rand() % 10) {
    case 0:
        return test_rand_range(0, 16);
    case 1:
        return test_rand_range(30000, 300000); /* large blocks */
    case 2:
        return test_rand_range(1000, 32768);
    default:
        return test_rand_range(1, 600);
    }
}

static void test_random_ops_check_each(void)
{
    enum { SLOTS = 128 };
    slot s[SLOTS] = {0};
    sc_heap h;
    sc_init(&h);
    size_t ops = test_scale(4000);
    for (size_t i = 0; i < ops; i++) {
        slot *x = &s[test_rand() % SLOTS];
        unsigned what = (unsigned)(test_rand() % 12);
        if (what == 11) {
            sc_set_retain(&h, test_rand() % 2 ? 0 : SC_RETAIN_DEFAULT);
        } else if (x->p == NULL) {
            x->n = random_size();
            x->seed = (unsigned char)test_rand();
            x->p = what == 0 ? sc_aligned_alloc(
                                   &h, (size_t)1 << (test_rand() % 16), x->n)
                   : what == 1 ? sc_calloc(&h, 1, x->n)
                               : sc_alloc(&h, x->n);
            if (x->p == NULL) {
                CHECK_NOT_NULL(x->p);
                return;
            }
            if (what == 1)
                for (size_t k = 0; k < x->n; k++)
                    REQUIRE(x->p[k] == 0);
            fill(x->p, x->n, x->seed);
        } else if (what < 4) {
            size_t n = random_size() + 1;
            REQUIRE(intact(x->p, x->n, x->seed));
            unsigned char *q = sc_realloc(&h, x->p, n);
            REQUIRE(q != NULL);
            CHECK(intact(q, n < x->n ? n : x->n, x->seed));
            x->p = q;
            x->n = n;
            fill(x->p, x->n, x->seed);
        } else {
            REQUIRE(intact(x->p, x->n, x->seed));
            sc_free(&h, x->p);
            x->p = NULL;
        }
        const char *why = sc_check_why(&h);
        if (why != NULL) {
            printf("    op %zu (what %u, n %zu): %s\n", i, what, x->n, why);
            if (getenv("SC_DUMP"))
                sc_dump(&h, stdout);
            REQUIRE(why == NULL);
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (s[i].p != NULL) {
            CHECK(intact(s[i].p, s[i].n, s[i].seed));
            sc_free(&h, s[i].p);
        }
    settle(&h);
    CHECK(sc_check(&h));
    CHECK_EQ(sc_stats(&h).live_blocks, 0);
    sc_destroy(&h);
}

static void *tr_create(void)
{
    sc_heap *h = malloc(sizeof *h);
    if (h != NULL)
        sc_init(h);
    return h;
}
static void tr_destroy(void *h)
{
    sc_destroy(h);
    free(h);
}
static void *tr_alloc(void *h, size_t n)
{
    return sc_alloc(h, n);
}
static void tr_free(void *h, void *p)
{
    sc_free(h, p);
}
static void *tr_realloc(void *h, void *p, size_t n)
{
    return sc_realloc(h, p, n);
}
static size_t tr_footprint(void *h)
{
    return sc_footprint(h);
}
static bool tr_check(void *h)
{
    return sc_check(h);
}

static const trace_alloc trace_sc = {
    .name = "06-size-classes",
    .create = tr_create,
    .destroy = tr_destroy,
    .alloc = tr_alloc,
    .free = tr_free,
    .realloc = tr_realloc,
    .footprint = tr_footprint,
    .check = tr_check,
    .align = SC_MIN_ALIGN,
};

/* Every committed trace, sc_check() after every operation. */
static void test_traces_replay_checked(void)
{
    static const char *const traces[] = {
        "churn-small",     "find-usr-include",
        "holes",           "ls-lR-usr-include",
        "pairs",           "python3-dicts",
        "realloc-bimodal", "realloc-grow",
        "sort-3000-lines",
    };
    bool quick = test_scale(10) < 10;
    for (size_t i = 0; i < sizeof traces / sizeof traces[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "../common/traces/%s.rep", traces[i]);
        trace_t t;
        REQUIRE(trace_read(path, &t) == 0);
        if (quick && t.num_ops > 5000) {
            trace_free(&t); /* under Valgrind: the small traces only */
            continue;
        }
        trace_options opt = {.check_each_op = true, .timing_reps = 0};
        trace_result r;
        int rc = trace_replay(&t, &trace_sc, &opt, &r);
        if (!CHECK_INT_EQ(rc, 0))
            printf("    %s: %s\n", traces[i], r.error);
        CHECK(r.utilization > 0.0);
        trace_free(&t);
    }
}

// clang-format off
/* ---- The dump and the waste report --------------------------------------- */
// clang-format on

static char *drawn(const sc_heap *h, void (*fn)(const sc_heap *, FILE *))
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f == NULL)
        return NULL;
    fn(h, f);
    fclose(f);
    buf[sizeof buf - 1] = '\0';
    return buf;
}

static void test_dump_draws_the_heap(void)
{
    sc_heap h;
    sc_init(&h);
    void *p[10];
    for (size_t i = 0; i < 10; i++)
        p[i] = sc_alloc(&h, 40);
    sc_free(&h, p[3]);
    void *big = sc_alloc(&h, 40000);
    const char *out = drawn(&h, sc_dump);
    REQUIRE(out != NULL);
    CHECK(strstr(out, "class 5: 48 B slots, 170 a span of 1 page") != NULL);
    CHECK(strstr(out, "freeindex 10") != NULL);
    CHECK(strstr(out, "###.######") != NULL ||
          strstr(out, "###q######") != NULL);
    CHECK(strstr(out, "large block, 5 pages") != NULL);
    CHECK(strstr(out, "free run, released") != NULL);
    CHECK(strstr(out, "pages SL") != NULL);
    sc_free(&h, big);
    sc_destroy(&h);
}

static void test_waste_report(void)
{
    sc_heap h;
    sc_init(&h);
    for (size_t i = 0; i < 10; i++)
        sc_alloc(&h, 33); /* 48 B slots: 15 bytes of rounding each */
    sc_alloc(&h, 40000);  /* 5 pages for 40000 bytes */
    const char *out = drawn(&h, sc_waste);
    REQUIRE(out != NULL);
    CHECK(strstr(out, "    5     48      1     10/170  ") != NULL);
    if (SC_CHECKED) {
        CHECK(strstr(out, "330        150         32") != NULL);
        CHECK(strstr(out, "40000 bytes requested in 40960") != NULL);
    }
    sc_destroy(&h); /* the blocks die with it */
}

static void test_stats_and_footprint(void)
{
    sc_heap h;
    sc_init(&h);
    CHECK_EQ(sc_footprint(&h), 0);
    void *a = sc_alloc(&h, 100), *b = sc_alloc(&h, 100000);
    sc_stats_t st = sc_stats(&h);
    CHECK_EQ(st.live_blocks, 2);
    CHECK_EQ(st.live_bytes, 112 + 13 * SC_PAGE);
    CHECK_EQ(st.requested, SC_CHECKED ? 100100 : 0);
    CHECK_EQ(st.small_spans, 1);
    CHECK_EQ(st.large_spans, 1);
    CHECK_EQ(st.arenas, 1);
    CHECK_EQ(st.reserved, SC_ARENA);
    CHECK_EQ(st.footprint, 14 * SC_PAGE + st.metadata);
    sc_free(&h, a);
    sc_free(&h, b);
    settle(&h);
    st = sc_stats(&h);
    CHECK_EQ(st.live_blocks, 0);
    CHECK_GE(st.peak_footprint, 14 * SC_PAGE + st.metadata);
    sc_release(&h);
    CHECK_EQ(sc_footprint(&h), h.stats.metadata); /* every page back */
    CHECK(sc_check(&h));
    CHECK_EQ(sc_destroy(&h), 0);
}

static void test_destroy_counts_live_blocks(void)
{
    sc_heap h;
    sc_init(&h);
    sc_alloc(&h, 10);
    sc_alloc(&h, 100000);
    sc_free(&h, sc_alloc(&h, 30));
    CHECK_EQ(sc_destroy(&h), 2);
    CHECK_EQ(sc_footprint(&h), 0);
    CHECK(sc_check(&h));
    CHECK_NOT_NULL(sc_alloc(&h, 10)); /* usable again */
    CHECK_EQ(sc_destroy(&h), 1);
}

// clang-format off
/* ---- The conformance suite ----------------------------------------------- */
// clang-format on

static void *heap_create(void)
{
    return tr_create();
}
static void heap_free(void *a, void *p, size_t n)
{
    (void)n;
    sc_free(a, p);
}
static void *heap_realloc(void *a, void *p, size_t old, size_t n)
{
    (void)old;
    return sc_realloc(a, p, n);
}

static const conform_ops conform_sc = {
    .name = "06-size-classes",
    .caps = CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC,
    .align = SC_MIN_ALIGN, /* 16 for 16 bytes and more: tested above */
    .max_size = (size_t)1 << 20,
    .capacity = 0,
    .create = heap_create,
    .destroy = tr_destroy,
    .alloc = tr_alloc,
    .free = heap_free,
    .realloc = heap_realloc,
    .reset = NULL,
    .check = tr_check,
};

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_class_table_matches_go);
    RUN_TEST(test_size_to_class_every_size);
    RUN_TEST(test_divmul_exact_every_offset);
    RUN_TEST(test_small_blocks_have_no_header);
    RUN_TEST(test_freed_slot_found_by_rescan);
    RUN_TEST(test_spans_leave_and_join_the_partial_list);
    RUN_TEST(test_span_reuse_never_loses_or_doubles_a_slot);
    RUN_TEST(test_alloc_aligns_every_size);
    RUN_TEST(test_page_heap_best_fit);
    RUN_TEST(test_page_heap_merges_both_neighbours);
    RUN_TEST(test_page_map_finds_every_byte);
    RUN_TEST(test_large_block_gets_its_own_pages);
    RUN_TEST(test_realloc_small_in_place_within_its_class);
    RUN_TEST(test_realloc_large_in_place);
    RUN_TEST(test_realloc_edge_cases);
    RUN_TEST(test_calloc_zeroes);
    RUN_TEST(test_aligned_alloc_every_power_of_two);
    RUN_TEST(test_huge_sizes_give_enomem);
    RUN_TEST(test_mmap_refused_gives_enomem);
    RUN_TEST(test_release_policy);
    RUN_TEST(test_free_keeps_errno_when_the_os_refuses);
    RUN_TEST(test_misuse_is_reported);
    RUN_TEST(test_quarantine_delays_reuse);
    RUN_TEST(test_check_catches_popcount_mismatch);
    RUN_TEST(test_check_catches_cache_naming_a_taken_slot);
    RUN_TEST(test_check_catches_bit_beyond_last_slot);
    RUN_TEST(test_check_catches_page_map_errors);
    RUN_TEST(test_check_catches_unmerged_free_runs);
    RUN_TEST(test_check_catches_lost_free_run);
    RUN_TEST(test_check_catches_lost_partial_span);
    RUN_TEST(test_check_catches_wrong_counters);
    RUN_TEST(test_random_ops_check_each);
    RUN_TEST(test_traces_replay_checked);
    RUN_TEST(test_dump_draws_the_heap);
    RUN_TEST(test_waste_report);
    RUN_TEST(test_stats_and_footprint);
    RUN_TEST(test_destroy_counts_live_blocks);
    conform_run(&conform_sc);
    /* One heap behind one lock, as libmalloc.so uses it: the threaded
     * cases. */
    conform_ops locked = conform_locked(&conform_sc, "06-size-classes + lock");
    conform_run(&locked);
    return test_finish();
}
