/*
 * test_gm.c: unit tests of the allocator in one thread (test_threads.c has
 * the threads). The class table against Go's row by row and the lookup for
 * every size; alignment of every size, tiny or not; the cache's batches,
 * bounds and their adaptation; the transfer cache, spans going back to the
 * mheap, the page heap and large blocks with their in-place realloc; the
 * tiny allocator's packing, alignment, counts and extents; calloc, the
 * aligned family, the edge sizes, mmap refused, errno kept when madvise
 * fails, the sync scavenger oldest first, trim; each misuse report and the
 * quarantine; gm_check() proven to catch a broken heap (thirteen ways) and
 * called after every operation of random runs and trace replays; the
 * dumps and the statistics; the conformance suite, with the tiny allocator
 * on and off.
 */
#include "conform.h"
#include "fault.h"
#include "gm.h"
#include "gm_internal.h"
#include "test.h"
#include "trace.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

/* A fresh heap for every test, with no background thread (test_threads.c
 * tests it) and the defaults otherwise. */
static void fresh(void)
{
    gm_destroy();
    gm_set_scavenge(GM_SCAVENGE_OFF);
    gm_set_tiny(true);
}

/* Objects on the calling thread's list of class c. */
static size_t list_len(unsigned c)
{
    size_t n = 0;
    for (void *p = gm_mcache.head[c]; p != NULL; p = link_get(p))
        n++;
    return n;
}

/* Slots of class c taken from its spans. */
static size_t class_taken(unsigned c)
{
    size_t n = 0;
    const mcentral *m = &gm_heap.central[c];
    for (int k = 0; k < 2; k++) {
        const mspan *head = k == 0 ? m->partial : m->full, *s = head;
        if (s != NULL)
            do {
                n += s->alloc_count;
                s = s->next;
            } while (s != head);
    }
    return n;
}

static const mspan *span_of(const void *p)
{
    return span_of_page(page_of(p));
}

/* The heap must be sound; says why not. */
static bool sound(void)
{
    const char *why = gm_check_why();
    if (why != NULL)
        printf("    gm_check: %s\n", why);
    return why == NULL;
}

// clang-format off
/* ---- The class table ----------------------------------------------------- */

/* Go's table (runtime/sizeclasses.go): bytes/obj, pages, objects. The one
 * table in the stage typed by hand: the reference the generated one must
 * equal. */
static const struct { unsigned size, pages, objects; } go[67] = {
    {8, 1, 1024}, {16, 1, 512}, {24, 1, 341}, {32, 1, 256}, {48, 1, 170},
    {64, 1, 128}, {80, 1, 102}, {96, 1, 85}, {112, 1, 73}, {128, 1, 64},
    {144, 1, 56}, {160, 1, 51}, {176, 1, 46}, {192, 1, 42}, {208, 1, 39},
    {224, 1, 36}, {240, 1, 34}, {256, 1, 32}, {288, 1, 28}, {320, 1, 25},
    {352, 1, 23}, {384, 1, 21}, {416, 1, 19}, {448, 1, 18}, {480, 1, 17},
    {512, 1, 16}, {576, 1, 14}, {640, 1, 12}, {704, 1, 11}, {768, 1, 10},
    {896, 1, 9}, {1024, 1, 8}, {1152, 1, 7}, {1280, 1, 6}, {1408, 2, 11},
    {1536, 1, 5}, {1792, 2, 9}, {2048, 1, 4}, {2304, 2, 7}, {2688, 1, 3},
    {3072, 3, 8}, {3200, 2, 5}, {3456, 3, 7}, {4096, 1, 2}, {4864, 3, 5},
    {5376, 2, 3}, {6144, 3, 4}, {6528, 4, 5}, {6784, 5, 6}, {6912, 6, 7},
    {8192, 1, 1}, {9472, 7, 6}, {9728, 6, 5}, {10240, 5, 4}, {10880, 4, 3},
    {12288, 3, 2}, {13568, 5, 3}, {14336, 7, 4}, {16384, 2, 1},
    {18432, 9, 4}, {19072, 7, 3}, {20480, 5, 2}, {21760, 8, 3},
    {24576, 3, 1}, {27264, 10, 3}, {28672, 7, 2}, {32768, 4, 1},
};
// clang-format on

static void test_class_table_matches_go(void)
{
    for (unsigned c = 1; c <= 67; c++) {
        if (!CHECK_EQ(gm_class_size(c), go[c - 1].size) ||
            !CHECK_EQ(gm_class_pages(c), go[c - 1].pages) ||
            !CHECK_EQ(gm_class_objects(c), go[c - 1].objects))
            printf("    class %u differs from Go's\n", c);
        size_t b = gm_class_batch(c), want = 65536 / go[c - 1].size;
        CHECK_EQ(b, want < 2 ? 2 : want > 32 ? 32 : want);
    }
    /* The tiny blocks' class: 16 bytes, 512 to a page. */
    CHECK_EQ(gm_class_size(GM_TINY_CLASS), 16);
    CHECK_EQ(gm_class_objects(GM_TINY_CLASS), 512);
    CHECK_EQ(gm_class_size(0), 0);
}

/* The smallest class that holds each size, 16-byte multiples from 16 B on;
 * and the division by multiplication exact for every offset. */
static void test_size_to_class_every_size(void)
{
    for (size_t n = 0; n <= GM_MAX_SMALL; n++) {
        unsigned c = gm_size_class(n);
        size_t need = n == 0 ? 1 : n;
        if (!CHECK(c >= 1 && c <= 67) || !CHECK_GE(gm_class_size(c), need) ||
            (n >= 16 && !CHECK_EQ(gm_class_size(c) % 16, 0)) ||
            (c > 1 && n > gm_class_size(c - 1) && n >= 16 && c != 4 &&
             !CHECK_LT(gm_class_size(c - 1), need))) {
            printf("    size %zu -> class %u\n", n, c);
            return;
        }
    }
    CHECK_EQ(gm_size_class(GM_MAX_SMALL + 1), 0);
    CHECK_EQ(gm_class_size(gm_size_class(17)), 32); /* not Go's 24 */
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        uint64_t span = (uint64_t)gm_class_pages(c) * GM_PAGE;
        uint64_t m = gm_divmul_of_class[c], size = gm_class_size(c);
        for (uint64_t off = 0; off <= span; off += 8)
            if (((off * m) >> 32) != off / size) {
                CHECK(!"the division by multiplication is exact");
                return;
            }
    }
}

// clang-format off
/* ---- Alignment and the fast paths ---------------------------------------- */
// clang-format on

/* Every size up to 40000 B: aligned as gm.h promises, writable whole,
 * usable at least as asked, no two blocks overlapping. */
static void alignment_run(bool tiny)
{
    fresh();
    gm_set_tiny(tiny);
    static unsigned char *p[2100];
    size_t k = 0;
    for (size_t n = 0; n <= 40000; n += n < 300 ? 1 : 97, k++) {
        p[k] = gm_malloc(n);
        if (!CHECK_NOT_NULL(p[k]))
            return;
        size_t want = n >= 16 ? 16
                      : tiny  ? (n >= 8   ? 8
                                 : n >= 4 ? 4
                                 : n >= 2 ? 2
                                          : 1)
                              : (n > 8 ? 16 : 8);
        if (!CHECK(is_aligned(p[k], want)) ||
            !CHECK_GE(gm_usable_size(p[k]), n)) {
            printf("    size %zu at %p (tiny %d)\n", n, (void *)p[k], tiny);
            return;
        }
        memset(p[k], (int)(k & 0xff), n);
    }
    for (size_t i = 0; i < k; i++) {
        size_t n = i < 301 ? i : 300 + (i - 300) * 97;
        for (size_t j = 0; j < n; j++)
            if (p[i][j] != (unsigned char)(i & 0xff)) {
                CHECK(!"every block keeps its bytes");
                return;
            }
    }
    CHECK(sound());
    for (size_t i = 0; i < k; i++)
        gm_free(p[i]);
    CHECK(sound());
}

static void test_alignment_every_size_tiny_on(void)
{
    alignment_run(true);
}

static void test_alignment_every_size_tiny_off(void)
{
    alignment_run(false);
}

/* Slow start: the first refill of a class takes one object, the next two,
 * then three... up to a batch, so that a class a thread touches once costs
 * one object; the fast path serves what each refill brought, LIFO after
 * frees, without the mcentral. */
static uint64_t from_spans(unsigned c) /* a call: it changes under us */
{
    return gm_heap.central[c].from_spans;
}

static void test_refill_slow_start(void)
{
    fresh();
    unsigned c = gm_size_class(100);
    size_t b = gm_class_batch(c), n = 0;
    static void *p[1200];
    for (size_t k = 1; k <= b + 1; k++) {
        while (gm_mcache.head[c] != NULL)
            p[n++] = gm_malloc(100); /* the list first, no mcentral */
        uint64_t before = from_spans(c);
        p[n++] = gm_malloc(100); /* refill number k */
        REQUIRE(p[n - 1] != NULL);
        if (!CHECK_EQ(from_spans(c) - before, k <= b ? k : b))
            printf("    refill %zu\n", k);
    }
    CHECK_EQ(gm_mcache.max[c], 3 * b); /* a batch, then a batch more */
    void *q = gm_malloc(100);
    gm_free(q);
    gm_quarantine_flush();           /* checked builds hold frees back */
    CHECK_PTR_EQ(gm_malloc(100), q); /* LIFO */
    gm_free(q);
    for (size_t i = 0; i < n; i++)
        gm_free(p[i]);
    CHECK(sound());
}

/* Freeing more than the bound: the list keeps at most its bound, the
 * overflow went to the transfer cache a batch at a time, and three
 * overflows without a refill brought the bound down to one batch. */
static void test_overflow_moves_batches_and_lowers_the_bound(void)
{
    fresh();
    unsigned c = gm_size_class(48);
    size_t b = gm_class_batch(c), n = 2 * (size_t)mcache_cap(c);
    static void *p[4096];
    REQUIRE(n <= 4096);
    for (size_t i = 0; i < n; i++)
        p[i] = gm_malloc(48);
    uint32_t grown = gm_mcache.max[c];
    CHECK_EQ(grown, mcache_cap(c)); /* refills raised it to the cap */
    for (size_t i = 0; i < n; i++)
        gm_free(p[i]);
    gm_quarantine_flush();
    CHECK_LE(list_len(c), gm_mcache.max[c]);
    CHECK_LT(gm_mcache.max[c], grown);
    CHECK_GE(gm_mcache.max[c], b);
    const mcentral *m = &gm_heap.central[c];
    CHECK_GE(m->batches_in, 3);
    /* Every object taken from the spans is on the list or in a batch. */
    CHECK_EQ(class_taken(c), list_len(c) + m->nbatch * b);
    CHECK(sound());
}

/* A refilled list takes the batch the transfer cache holds, in O(1). */
static void test_transfer_cache_hands_a_batch_back(void)
{
    fresh();
    unsigned c = gm_size_class(64);
    size_t b = gm_class_batch(c), n = mcache_cap(c) + 6 * b;
    static void *p[4096];
    REQUIRE(n <= 4096);
    for (size_t i = 0; i < n; i++)
        p[i] = gm_malloc(64);
    for (size_t i = 0; i < n; i++)
        gm_free(p[i]);
    gm_quarantine_flush();
    const mcentral *m = &gm_heap.central[c];
    REQUIRE(m->nbatch > 0);
    uint32_t before = m->nbatch;
    uint64_t out = m->batches_out;
    /* Empty the list, then one more malloc: a refill. */
    while (gm_mcache.head[c] != NULL)
        (void)gm_malloc(64);
    CHECK(gm_malloc(64) != NULL);
    CHECK_EQ(m->batches_out, out + 1);
    CHECK_EQ(m->nbatch, before - 1);

    fresh(); /* the blocks above are dropped with the heap */
}

/* Every object of a span back: the span goes back to the mheap (after
 * the transfer cache is drained), and its pages' class map is cleared. */
static void test_empty_spans_go_back_to_the_mheap(void)
{
    fresh();
    unsigned c = gm_size_class(2048);
    size_t per_span = gm_class_objects(c), n = 8 * per_span;
    static void *p[64];
    REQUIRE(n <= 64);
    for (size_t i = 0; i < n; i++)
        p[i] = gm_malloc(2048);
    size_t spans = gm_heap.central[c].nspans;
    CHECK_GE(spans, n / per_span);
    uintptr_t page = page_of(p[0]);
    for (size_t i = 0; i < n; i++)
        gm_free(p[i]);
    gm_trim(); /* the caller's cache and the transfer caches go back */
    CHECK_EQ(gm_heap.central[c].nspans, 0);
    CHECK_EQ(gm_heap.mheap.small_spans, 0);
    gm_arena *a = arena_of(page);
    CHECK_EQ(a->class_of_page[page & (GM_ARENA_PAGES - 1)], 0);
    CHECK(sound());
}

// clang-format off
/* ---- The page heap and large blocks -------------------------------------- */
// clang-format on

static void test_large_blocks_get_their_own_pages(void)
{
    fresh();
    char *a = gm_malloc(40000), *b = gm_malloc(100000);
    if (!CHECK(a != NULL && b != NULL) || a == NULL || b == NULL)
        return;
    const mspan *s = span_of(a);
    CHECK_EQ(s->state, MSPAN_LARGE);
    CHECK_EQ(s->npages, 5);
    CHECK(is_aligned(a, GM_PAGE));
    CHECK_EQ(gm_usable_size(a) >= 40000, 1);
    CHECK_PTR_EQ(span_of(a + 39999), s); /* its last page maps to it */
    CHECK_NULL(span_of(a + 8192));       /* the others to nothing */
    CHECK_EQ(gm_heap.mheap.large_spans, 2);
    memset(a, 1, 40000);
    memset(b, 2, 100000);
    gm_free(a);
    gm_quarantine_flush();
    CHECK_EQ(gm_heap.mheap.large_spans, 1);
    /* The freed run is reused by the next request of that size. */
    char *c = gm_malloc(40000);
    CHECK_PTR_EQ(c, a);
    gm_free(b);
    gm_free(c);
    CHECK(sound());
}

static void test_realloc_large_in_place(void)
{
    fresh();
    char *a = gm_malloc(100000);
    REQUIRE(a != NULL);
    memset(a, 7, 100000);
    /* Shrinks keep the block and give its tail back. */
    char *b = gm_realloc(a, 50000);
    CHECK_PTR_EQ(b, a);
    CHECK_EQ(span_of(a)->npages, 7);
    CHECK(sound());
    /* Grows into the free run right after it: its old tail, then the
     * scavenged rest of the arena. */
    char *c = gm_realloc(b, 100000);
    CHECK_PTR_EQ(c, a);
    CHECK_EQ(span_of(a)->npages, 13);
    c = gm_realloc(c, 200000);
    CHECK_PTR_EQ(c, a);
    CHECK_EQ(span_of(a)->npages, 25);
    CHECK_EQ(c[49999], 7);
    CHECK(sound());
    /* A neighbour in the way: it moves, with its bytes. */
    char *wall = gm_malloc(40000);
    char *d = gm_realloc(c, 64 << 20);
    REQUIRE(d != NULL);
    CHECK_EQ(d[49999], 7);
    gm_free(wall);
    gm_free(d);
    CHECK(sound());
}

static void test_realloc_small_in_place_within_its_class(void)
{
    fresh();
    char *p = gm_malloc(100); /* class 112 B */
    REQUIRE(p != NULL);
    memset(p, 'x', 100);
    CHECK_PTR_EQ(gm_realloc(p, 112), p);
    CHECK_PTR_EQ(gm_realloc(p, 97), p);
    char *q = gm_realloc(p, 113); /* the next class: it moves */
    REQUIRE(q != NULL);
    CHECK(q != p);
    CHECK_EQ(q[96], 'x');
    CHECK_NULL(gm_realloc(q, 0)); /* realloc(p, 0) frees */
    char *r = gm_realloc(NULL, 30);
    CHECK_NOT_NULL(r);
    errno = 0;
    CHECK_NULL(gm_realloc(r, SIZE_MAX));
    CHECK_INT_EQ(errno, ENOMEM);
    gm_free(r);
    CHECK(sound());
}

static void test_calloc_zeroes(void)
{
    fresh();
    for (size_t n = 1; n <= 100000; n = n * 3 + 1) {
        unsigned char *p = gm_malloc(n);
        REQUIRE(p != NULL);
        memset(p, 0xEE, n);
        gm_free(p);
        gm_quarantine_flush();
        unsigned char *z = gm_calloc(1, n); /* perhaps p's bytes again */
        REQUIRE(z != NULL);
        for (size_t i = 0; i < n; i++)
            if (z[i] != 0) {
                CHECK(!"calloc's block is zeroed");
                printf("    calloc(1, %zu): byte %zu is %u\n", n, i, z[i]);
                return;
            }
        gm_free(z);
    }
    errno = 0;
    CHECK_NULL(gm_calloc(SIZE_MAX / 2 + 1, 2));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK(sound());
}

static void test_aligned_alloc_every_power_of_two(void)
{
    fresh();
    for (size_t align = 1; align <= ((size_t)1 << 22); align <<= 1) {
        static const size_t sizes[] = {1, 15, 100, 4096, 30000, 70000};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *p = gm_aligned_alloc(align, sizes[i]);
            if (!CHECK_NOT_NULL(p) || !CHECK(is_aligned(p, align))) {
                printf("    aligned_alloc(%zu, %zu) = %p\n", align, sizes[i],
                       (void *)p);
                return;
            }
            memset(p, 1, sizes[i]);
            CHECK_GE(gm_usable_size(p), sizes[i]);
            gm_free(p);
        }
    }
    errno = 0;
    CHECK_NULL(gm_aligned_alloc(3, 8));
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_NULL(gm_aligned_alloc(0, 8));
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_NULL(gm_aligned_alloc(64, SIZE_MAX - 100));
    CHECK_INT_EQ(errno, ENOMEM);
    errno = 0;
    CHECK_NULL(gm_aligned_alloc((size_t)1 << 62, 8));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK(sound());
}

static void test_huge_sizes_give_enomem(void)
{
    fresh();
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1,
                                  GM_MAX_REQUEST + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        CHECK_NULL(gm_malloc(huge[i]));
        CHECK_INT_EQ(errno, ENOMEM);
    }
    CHECK(sound());
}

/* The OS refuses: NULL with ENOMEM, and nothing left behind. */
static void test_mmap_refused_gives_enomem(void)
{
    fresh();
    fault_arm(FAULT_MMAP, 0, 1000);
    errno = 0;
    CHECK_NULL(gm_malloc(100));
    CHECK_INT_EQ(errno, ENOMEM);
    errno = 0;
    CHECK_NULL(gm_malloc(1 << 20));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_GE(fault_failed(FAULT_MMAP), 1);
    fault_disarm();
    CHECK(sound());
    void *p = gm_malloc(100);
    CHECK_NOT_NULL(p);
    gm_free(p);
    CHECK(sound());
}

/* A free that gives pages back (sync mode) keeps errno when madvise fails,
 * and the run stays resident, to be given back later. */
static void test_free_keeps_errno_when_madvise_fails(void)
{
    fresh();
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    gm_set_retain(0);
    char *p = gm_malloc(1 << 20);
    REQUIRE(p != NULL);
    memset(p, 1, 1 << 20);
    fault_arm(FAULT_MADVISE, 0, 1);
    errno = 1234;
    gm_free(p);
    gm_quarantine_flush(); /* checked builds: the real free is here */
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MADVISE), 1);
    fault_disarm();
    CHECK_GE(gm_heap.mheap.free_pages, 128); /* still resident */
    CHECK(sound());
    /* The next free that crosses the goal gives it back. */
    void *q = gm_malloc(40000);
    errno = 1234;
    gm_free(q);
    gm_quarantine_flush();
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(gm_heap.mheap.free_pages, 0);
    CHECK(sound());
}

/* Sync mode: every free page beyond the goal goes back at once, oldest
 * first; off: none does until gm_trim. */
static void test_sync_scavenger_oldest_first(void)
{
    fresh();
    gm_set_scavenge(GM_SCAVENGE_OFF);
    char *a = gm_malloc(80000), *wall1 = gm_malloc(40000);
    char *b = gm_malloc(80000), *wall2 = gm_malloc(40000);
    REQUIRE(a && b && wall1 && wall2);
    memset(a, 1, 80000);
    memset(b, 1, 80000);
    gm_free(a); /* older */
    gm_quarantine_flush();
    gm_free(b);
    gm_quarantine_flush();
    CHECK_EQ(gm_heap.mheap.free_pages, 20);
    CHECK_PTR_EQ(page_addr(gm_heap.mheap.oldest->page), a);
    CHECK(sound());
    /* Goal: 1 MiB plus a sixteenth of what is in use; below it: kept. */
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    gm_set_retain(12 * GM_PAGE);
    size_t madvises = gm_heap.mheap.madvises;
    char *x = gm_malloc(40000);
    gm_free(x); /* 20 pages free, goal 12 + in use / 16: a goes first */
    gm_quarantine_flush();
    CHECK(gm_heap.mheap.madvises > madvises);
    CHECK(span_of_page(page_of(a))->scavenged);
    CHECK(!span_of_page(page_of(b))->scavenged);
    CHECK(sound());
    size_t given = gm_trim();
    CHECK_GE(given, 10 * GM_PAGE);
    CHECK_EQ(gm_heap.mheap.free_pages, 0);
    gm_free(wall1);
    gm_free(wall2);
    CHECK(sound());
}

// clang-format off
/* ---- The tiny allocator -------------------------------------------------- */
// clang-format on

/* Requests under 16 bytes share a block, each at the alignment C asks for
 * (the largest power of two at most its size; 8 under a memory tool). */
/* The heap as libmalloc.so starts it, with the environment unset: the tiny
 * allocator off, so a request under 16 bytes gets its class, 8-aligned at
 * least (16 from 9 bytes on), what programs written for glibc, jemalloc or
 * TCMalloc assume (a word for malloc(1), in GCC's own test suite). */
static void test_small_requests_word_aligned_by_default(void)
{
    const char *env = getenv("GM_TINY");
    if (env != NULL && strcmp(env, "0") != 0) {
        test_skip("GM_TINY is set: the default is not what this run has");
        return;
    }
    gm_destroy(); /* the next call starts the heap from the environment */
    CHECK(!gm_tiny_enabled()); /* (that call) */
    void *held[16][8];
    for (size_t n = 0; n < 16; n++)
        for (int k = 0; k < 8; k++) {
            held[n][k] = gm_malloc(n);
            REQUIRE(held[n][k] != NULL);
            CHECK(is_aligned(held[n][k], n > 8 ? 16 : 8));
            CHECK(span_of(held[n][k])->cls != GM_TINY_CLASS);
        }
    CHECK(gm_check());
    for (size_t n = 0; n < 16; n++)
        for (int k = 0; k < 8; k++)
            gm_free(held[n][k]);
    CHECK(gm_check());
}

/* A request for more than the OS would commit to one mapping fails with
 * ENOMEM, as glibc's does (its mmap of the block is refused), although the
 * arenas are reserved with MAP_NORESERVE: 1 TiB, when a plain mapping of
 * 1 TiB is refused here too (the kernel's overcommit check; a machine that
 * overcommits always, or has a terabyte, skips). */
static void test_more_than_the_os_commits_is_enomem(void)
{
    fresh();
    size_t tib = (size_t)1 << 40;
    void *probe = mmap(NULL, tib, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        munmap(probe, tib);
        test_skip("this machine commits 1 TiB to one mapping");
        return;
    }
    errno = 0;
    CHECK(gm_malloc(tib) == NULL);
    CHECK_EQ(errno, ENOMEM);
    errno = 0;
    CHECK(gm_calloc((size_t)1 << 20, (size_t)1 << 20) == NULL);
    CHECK_EQ(errno, ENOMEM);
    void *p = gm_malloc(100);
    REQUIRE(p != NULL);
    errno = 0;
    CHECK(gm_realloc(p, tib) == NULL); /* the block stays as it was */
    CHECK_EQ(errno, ENOMEM);
    CHECK(gm_usable_size(p) >= 100);
    gm_free(p);
    CHECK(gm_check());
}

static void test_tiny_packs_and_aligns(void)
{
    fresh();
    char *a = gm_malloc(3), *b = gm_malloc(2), *c = gm_malloc(5);
    char *d = gm_malloc(1);
    REQUIRE(a && b && c && d);
    const mspan *s = span_of(a);
    CHECK_EQ(s->cls, GM_TINY_CLASS);
    if (TRACK_ENABLED) {
        CHECK_PTR_EQ(b, a + 8); /* 8-aligned under a tool */
        CHECK(is_aligned(c, 16));
    } else {
        CHECK_PTR_EQ(b, a + 4);         /* 3 bytes, then 2-aligned: 4 */
        CHECK_PTR_EQ(c, a + 8);         /* 4-aligned after 6: 8 */
        CHECK_PTR_EQ(d, a + 13);        /* 1 byte: anywhere */
        CHECK_EQ(gm_usable_size(a), 3); /* up to its end's mark */
        CHECK_EQ(gm_usable_size(c), 5);
        CHECK_EQ(gm_usable_size(d), 1);
    }
    char *e = gm_malloc(12); /* does not fit: a new block, 8-aligned */
    REQUIRE(e != NULL);
    CHECK(is_aligned(e, 8));
    CHECK((uintptr_t)e >> 4 != (uintptr_t)a >> 4);
    memcpy(a, "ab", 3);
    memcpy(e, "hello world", 12);
    CHECK_EQ(strcmp(a, "ab"), 0);
    CHECK_EQ(strcmp(e, "hello world"), 0);
    gm_free(a);
    gm_free(b);
    gm_free(c);
    gm_free(d);
    gm_free(e);
    CHECK(sound());
}

/* A block goes back only when its owner has moved on and every object in
 * it is dead; it then joins the cache of the thread that freed the last
 * object. And a request that does not fit starts a new block, but the old
 * one stays current when it has more room left (Go's rule). */
static void test_tiny_block_freed_when_all_dead(void)
{
    fresh();
    char *a = gm_malloc(4), *b = gm_malloc(4);
    REQUIRE(a && b);
    CHECK_PTR_EQ(b, a + (TRACK_ENABLED ? 8 : 4));
    mspan *s = span_of_page(page_of(a));
    size_t i = (size_t)(a - span_base(s)) >> 4;
    CHECK_EQ(s->tiny_live[i], GM_TINY_BIAS); /* the owner's bias */
    gm_free(a);
    gm_quarantine_flush();
    CHECK_EQ(s->tiny_live[i], GM_TINY_BIAS - 1);
    char *big = gm_malloc(15); /* does not fit, and leaves less room */
    REQUIRE(big != NULL);
    CHECK((uintptr_t)big >> 4 != (uintptr_t)a >> 4);
    CHECK_PTR_EQ(gm_mcache.tiny, (uintptr_t)a >> 4); /* a's block stays */
    gm_thread_release();                             /* the owner moves on */
    CHECK_EQ(s->tiny_live[i], 1);                    /* b alone */
    gm_free(b);
    gm_quarantine_flush();
    CHECK_EQ(s->tiny_live[i], 0);
    CHECK_PTR_EQ(gm_mcache.head[GM_TINY_CLASS], span_base(s) + i * 16);
    gm_free(big);
    CHECK(sound());
}

static void test_tiny_realloc_and_usable(void)
{
    fresh();
    char *a = gm_malloc(6), *b = gm_malloc(8);
    REQUIRE(a && b);
    memcpy(a, "xyz", 4);
    if (!TRACK_ENABLED)
        CHECK_PTR_EQ(b, a + 8);
    CHECK_PTR_EQ(gm_realloc(a, 2), a); /* shrinks in place */
    CHECK_PTR_EQ(gm_realloc(a, 6), a); /* and back, within its extent */
    a[1] = '\0';
    char *c = gm_realloc(a, 7); /* past its end: it moves */
    REQUIRE(c != NULL);
    CHECK_EQ(strcmp(c, "x"), 0);
    char *d = gm_realloc(c, 100);
    REQUIRE(d != NULL);
    CHECK_EQ(strcmp(d, "x"), 0);
    gm_free(d);
    gm_free(b);
    CHECK(sound());
}

/* Off: requests under 16 bytes get an 8- or 16-byte slot of their own. */
static void test_tiny_off(void)
{
    fresh();
    gm_set_tiny(false);
    char *a = gm_malloc(3), *b = gm_malloc(3);
    REQUIRE(a && b);
    CHECK_EQ(span_of(a)->cls, 1);
    CHECK(is_aligned(a, 8));
    CHECK_EQ((uintptr_t)b - (uintptr_t)a, 8);
    gm_free(a);
    gm_free(b);
    CHECK(sound());
}

// clang-format off
/* ---- Misuse, reported ---------------------------------------------------- */
// clang-format on

static void wild_free(void *arg)
{
    (void)arg;
    int local;
    gm_free(&local);
}

static void free_inside_large(void *arg)
{
    (void)arg;
    char *p = gm_malloc(50000);
    gm_free(p + 8192);
}

static void free_large_twice(void *arg)
{
    (void)arg;
    gm_set_scavenge(GM_SCAVENGE_OFF);
    char *p = gm_malloc(50000);
    gm_free(p);
    gm_quarantine_flush();
    gm_free(p);
}

static void free_small_twice(void *arg)
{
    (void)arg;
    char *p = gm_malloc(100);
    gm_free(p);
    gm_free(p);
}

static void free_inside_small(void *arg)
{
    (void)arg;
    char *p = gm_malloc(100);
    gm_free(p + 16);
}

static void free_tiny_twice(void *arg)
{
    (void)arg;
    char *p = gm_malloc(5);
    (void)gm_malloc(5);
    gm_free(p);
    gm_free(p);
}

static void test_misuse_is_reported(void)
{
    fresh();
    CHECK_ABORTS(wild_free, NULL, "not a block of this heap (in no span)");
    CHECK_ABORTS(free_inside_large, NULL, "not a block of this heap");
    CHECK_ABORTS(free_large_twice, NULL, "not a block of this heap");
    if (!GM_CHECKED) {
        test_skip("double and interior frees of small blocks: checked "
                  "builds only");
        return;
    }
    CHECK_ABORTS(free_small_twice, NULL, "double free");
    CHECK_ABORTS(free_inside_small, NULL, "not the start of a block");
    CHECK_ABORTS(free_tiny_twice, NULL, "not a live tiny object");
}

/* Checked builds: a freed block is not handed out again for a while. */
static void test_quarantine_delays_reuse(void)
{
    if (!GM_CHECKED) {
        test_skip("checked builds only");
        return;
    }
    fresh();
    void *p = gm_malloc(64);
    gm_free(p);
    bool reused = false;
    void *q[GM_QUARANTINE - 1];
    for (int i = 0; i < GM_QUARANTINE - 1; i++) {
        q[i] = gm_malloc(64);
        reused |= q[i] == p;
    }
    CHECK(!reused);
    for (int i = 0; i < GM_QUARANTINE - 1; i++)
        gm_free(q[i]);
    gm_quarantine_flush();
#if GM_CHECKED
    CHECK_EQ(gm_mcache.q_count, 0);
#endif
    CHECK(sound());
}

// clang-format off
/* ---- The checker catches a broken heap ----------------------------------- */
// clang-format on

/* A small heap with a bit of everything: lists, a batch in the transfer
 * cache, partial and full spans, a tiny block, a large block, free runs. */
static void **scene_blocks;
static size_t scene_n;

static void scene(void)
{
    fresh();
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    scene_n = 400;
    scene_blocks = malloc(scene_n * sizeof *scene_blocks);
    for (size_t i = 0; i < scene_n; i++)
        scene_blocks[i] = gm_malloc(i % 3 == 0 ? 5 : 48 + (i % 5) * 16);
    for (size_t i = 0; i < scene_n; i += 2)
        gm_free(scene_blocks[i]);
    /* More 48-byte blocks freed than the list may hold: batches in the
     * transfer cache. */
    unsigned c48 = gm_size_class(48);
    size_t extra = mcache_cap(c48) + 4 * gm_class_batch(c48);
    void **x = calloc(extra, sizeof *x);
    for (size_t i = 0; x != NULL && i < extra; i++)
        x[i] = gm_malloc(48);
    for (size_t i = 0; x != NULL && i < extra; i++)
        gm_free(x[i]);
    free(x);
    /* Two resident free runs, of two ages; large blocks live. */
    void *big = gm_malloc(100000), *wall = gm_malloc(60000);
    void *big2 = gm_malloc(50000), *wall2 = gm_malloc(40000);
    gm_free(big);
    gm_quarantine_flush();
    gm_free(big2);
    (void)wall;
    (void)wall2;
    gm_quarantine_flush();
}

static void scene_end(void)
{
    free(scene_blocks);
    fresh();
}

/* Breaks one thing, expects the checker to say `why`, repairs it, expects
 * it sound again. */
static void broken(const char *why, void (*breakit)(void), void (*repair)(void))
{
    scene();
    if (CHECK(sound())) {
        breakit();
        const char *said = gm_check_why();
        if (!CHECK(said != NULL && strstr(said, why) != NULL))
            printf("    wanted \"%s\", got \"%s\"\n", why,
                   said ? said : "(sound)");
        repair();
        CHECK(sound());
    }
    scene_end();
}

static unsigned a_class_with_a_list(void)
{
    for (unsigned c = 1; c < GM_NCLASSES; c++)
        if (gm_mcache.head[c] != NULL && link_get(gm_mcache.head[c]) != NULL)
            return c;
    return 0;
}

static mspan *some_partial_span(void)
{
    for (unsigned c = 1; c < GM_NCLASSES; c++)
        if (gm_heap.central[c].partial != NULL)
            return gm_heap.central[c].partial;
    return NULL;
}

/* What a break changed, for its repair. */
static struct {
    unsigned c;
    void *p, *q;
    mspan *s;
    size_t slot;
    uintptr_t page;
    uint8_t byte;
    uint32_t max;
    int32_t room;
    uint64_t pass;
} was;

static void held_twice(void)
{
    was.c = a_class_with_a_list();
    was.p = gm_mcache.head[was.c];
    was.q = link_get(was.p);
    link_set(was.p, was.p); /* the head again, and again */
}
static void held_twice_repair(void)
{
    link_set(was.p, was.q);
}
static void test_check_catches_an_object_held_twice(void)
{
    broken("held twice", held_twice, held_twice_repair);
}

#if GM_CHECKED
/* A quarantined object that is also on its thread's list, the object the
 * quarantine held before in neither place: every count still adds up, so
 * only the held-objects array can tell. */
static void quarantined_and_listed(void)
{
    was.c = 0; /* a class above the tiny allocator's sizes */
    for (unsigned c = gm_size_class(16); c < GM_NCLASSES && !was.c; c++)
        if (gm_mcache.head[c] != NULL && link_get(gm_mcache.head[c]) != NULL)
            was.c = c;
    REQUIRE(was.c != 0);
    void *p = gm_malloc(gm_class_size(was.c));
    gm_free(p); /* into the quarantine: the newest entry */
    uint32_t k = (gm_mcache.q_first + gm_mcache.q_count - 1) % GM_QUARANTINE;
    was.slot = k;
    was.p = gm_mcache.quarantine[k];
    gm_mcache.quarantine[k] = gm_mcache.head[was.c];
}
static void quarantined_and_listed_repair(void)
{
    gm_mcache.quarantine[was.slot] = was.p;
}
#endif
static void test_check_catches_a_quarantined_object_on_a_list(void)
{
#if GM_CHECKED
    broken("held twice", quarantined_and_listed, quarantined_and_listed_repair);
#else
    test_skip("checked builds only (the quarantine)");
#endif
}

static void room_off(void)
{
    was.c = a_class_with_a_list();
    gm_mcache.room[was.c]++;
}
static void room_off_repair(void)
{
    gm_mcache.room[was.c]--;
}
static void test_check_catches_a_list_longer_than_its_room_says(void)
{
    broken("bound minus its room", room_off, room_off_repair);
}

static void bound_high(void)
{
    was.c = a_class_with_a_list();
    was.max = gm_mcache.max[was.c];
    was.room = gm_mcache.room[was.c];
    gm_mcache.max[was.c] = mcache_cap(was.c) + 1;
    gm_mcache.room[was.c] =
        (int32_t)(gm_mcache.max[was.c] - (uint32_t)list_len(was.c));
}
static void bound_high_repair(void)
{
    gm_mcache.max[was.c] = was.max;
    gm_mcache.room[was.c] = was.room;
}
static void test_check_catches_a_bound_above_its_cap(void)
{
    broken("above its cap", bound_high, bound_high_repair);
}

static void count_off(void)
{
    was.s = some_partial_span();
    was.s->alloc_count++;
}
static void count_off_repair(void)
{
    was.s->alloc_count--;
}
static void test_check_catches_a_wrong_alloc_count(void)
{
    broken("alloc_count", count_off, count_off_repair);
}

/* A bit set that nothing accounts for: an object neither free, nor held,
 * nor live (checked builds know what is live). */
static void lost(void)
{
    was.s = NULL;
    for (unsigned c = 1; c < GM_NCLASSES && was.s == NULL; c++) {
        mspan *s = gm_heap.central[c].partial;
        if (s != NULL && s->alloc_count + 1 < s->nelems)
            was.s = s; /* one slot more leaves it partial */
    }
    if (was.s == NULL)
        abort(); /* the scene has such a span */
    for (was.slot = 0; slot_taken(was.s, was.slot); was.slot++) {
    }
    was.s->alloc_bits[was.slot / 64] |= (uint64_t)1 << (was.slot % 64);
    was.s->alloc_count++;
}
static void lost_repair(void)
{
    was.s->alloc_bits[was.slot / 64] &= ~((uint64_t)1 << (was.slot % 64));
    was.s->alloc_count--;
}
static void test_check_catches_an_object_lost(void)
{
    if (!GM_CHECKED) {
        test_skip("checked builds only: release builds do not know what is "
                  "live");
        return;
    }
    broken("lost", lost, lost_repair);
}

static uint8_t *class_entry(uintptr_t page)
{
    return &arena_of(page)->class_of_page[page & (GM_ARENA_PAGES - 1)];
}
static void class_map_off(void)
{
    was.page = page_of(scene_blocks[1]);
    was.byte = *class_entry(was.page);
    *class_entry(was.page) = 3;
}
static void class_map_repair(void)
{
    *class_entry(was.page) = was.byte;
}
static void test_check_catches_a_wrong_class_map(void)
{
    broken("class", class_map_off, class_map_repair);
}

static void page_map_off(void)
{
    was.page = page_of(scene_blocks[1]);
    gm_arena *a = arena_of(was.page);
    was.s = a->spans[was.page & (GM_ARENA_PAGES - 1)];
    a->spans[was.page & (GM_ARENA_PAGES - 1)] = NULL;
}
static void page_map_repair(void)
{
    arena_of(was.page)->spans[was.page & (GM_ARENA_PAGES - 1)] = was.s;
}
static void test_check_catches_a_wrong_page_map(void)
{
    broken("page map", page_map_off, page_map_repair);
}

static void wrong_list(void)
{
    was.s = some_partial_span();
    was.s->full = true;
}
static void wrong_list_repair(void)
{
    was.s->full = false;
}
static void test_check_catches_a_span_on_the_wrong_list(void)
{
    broken("list its count says", wrong_list, wrong_list_repair);
}

static void short_batch(void)
{
    mcentral *m = NULL;
    for (unsigned c = 1; c < GM_NCLASSES && m == NULL; c++)
        if (gm_heap.central[c].nbatch > 0)
            m = &gm_heap.central[c];
    if (m == NULL)
        abort(); /* the scene has batches in a transfer cache */
    was.p = link_get(m->batch[0]);
    was.q = link_get(was.p);
    link_set(was.p, NULL);
}
static void short_batch_repair(void)
{
    link_set(was.p, was.q);
}
static void test_check_catches_a_short_batch(void)
{
    broken("exactly one batch", short_batch, short_batch_repair);
}

static void age_off(void)
{
    was.pass = gm_heap.mheap.oldest->freed_pass;
    gm_heap.mheap.oldest->freed_pass = was.pass + 1000;
}
static void age_repair(void)
{
    gm_heap.mheap.oldest->freed_pass = was.pass;
}
static void test_check_catches_an_age_list_out_of_order(void)
{
    broken("oldest first", age_off, age_repair);
}

static void counters_off(void)
{
    gm_heap.mheap.free_pages++;
}
static void counters_repair(void)
{
    gm_heap.mheap.free_pages--;
}
static void test_check_catches_wrong_counters(void)
{
    broken("counters", counters_off, counters_repair);
}

static void tiny_count_off(void)
{
    was.s = span_of_page(page_of(scene_blocks[3]));
    was.slot = (size_t)((char *)scene_blocks[3] - span_base(was.s)) >> 4;
    was.byte = was.s->tiny_live[was.slot];
    was.s->tiny_live[was.slot] = 0;
}
static void tiny_count_repair(void)
{
    was.s->tiny_live[was.slot] = was.byte;
}
static void test_check_catches_a_wrong_tiny_count(void)
{
    broken("tiny block", tiny_count_off, tiny_count_repair);
}

// clang-format off
/* ---- Random runs and traces, checked after every operation --------------- */
// clang-format on

static void test_random_ops_check_each(void)
{
    fresh();
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    enum { SLOTS = 200 };
    static unsigned char *p[SLOTS];
    static size_t n[SLOTS];
    size_t ops = test_scale(6000);
    for (size_t op = 0; op < ops; op++) {
        size_t k = test_rand_range(0, SLOTS - 1);
        if (p[k] != NULL) {
            for (size_t i = 0; i < n[k]; i++)
                if (p[k][i] != (unsigned char)(k + i)) {
                    CHECK(!"every live block keeps its bytes");
                    return;
                }
            if (test_rand() % 4 == 0) {
                size_t m = test_rand_range(1, 3000);
                unsigned char *q = gm_realloc(p[k], m);
                REQUIRE(q != NULL);
                for (size_t i = n[k]; i < m; i++)
                    q[i] = (unsigned char)(k + i);
                p[k] = q;
                n[k] = m;
            } else {
                gm_free(p[k]);
                p[k] = NULL;
            }
        } else {
            size_t r = test_rand() % 100;
            n[k] = r < 30   ? test_rand_range(0, 15)
                   : r < 90 ? test_rand_range(16, 1024)
                   : r < 98 ? test_rand_range(1025, 32768)
                            : test_rand_range(32769, 300000);
            p[k] = r % 7 == 0 ? gm_calloc(1, n[k]) : gm_malloc(n[k]);
            REQUIRE(p[k] != NULL);
            for (size_t i = 0; i < n[k]; i++)
                p[k][i] = (unsigned char)(k + i);
        }
        if (op % 10 == 0 && !CHECK(sound())) {
            printf("    after op %zu\n", op);
            return;
        }
    }
    for (size_t k = 0; k < SLOTS; k++) {
        gm_free(p[k]);
        p[k] = NULL;
    }
    CHECK(sound());
}

static void *tr_create(void)
{
    fresh();
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    return &gm_heap;
}
static void tr_destroy(void *a)
{
    (void)a;
    gm_destroy();
}
static void *tr_alloc(void *a, size_t n)
{
    (void)a;
    return gm_malloc(n);
}
static void tr_free(void *a, void *p)
{
    (void)a;
    gm_free(p);
}
static void *tr_realloc(void *a, void *p, size_t n)
{
    (void)a;
    return gm_realloc(p, n);
}
static size_t tr_footprint(void *a)
{
    (void)a;
    return gm_heap.mheap.footprint;
}
static bool tr_check(void *a)
{
    (void)a;
    return sound();
}

static const trace_alloc trace_gm = {
    .name = "07-tcmalloc-go",
    .create = tr_create,
    .destroy = tr_destroy,
    .alloc = tr_alloc,
    .free = tr_free,
    .realloc = tr_realloc,
    .footprint = tr_footprint,
    .check = tr_check,
    .align = 1,
};

static void test_traces_replay_checked(void)
{
    static const char *const traces[] = {
        "churn-small",  "holes",           "pairs",         "realloc-bimodal",
        "realloc-grow", "sort-3000-lines", "python3-dicts", "ls-lR-usr-include",
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
        /* gm_check after every op of the small ones, every op's payload
         * checked in all */
        trace_options opt = {.check_each_op = t.num_ops <= 5000,
                             .timing_reps = 0};
        trace_result r;
        int rc = trace_replay(&t, &trace_gm, &opt, &r);
        if (!CHECK_INT_EQ(rc, 0))
            printf("    %s: %s\n", traces[i], r.error);
        CHECK(r.utilization > 0.0);
        trace_free(&t);
    }
}

// clang-format off
/* ---- The drawings, the figures, the end ---------------------------------- */
// clang-format on

static char *drawn(void (*fn)(FILE *))
{
    static char buf[1 << 17];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f == NULL)
        return NULL;
    fn(f);
    fclose(f);
    buf[sizeof buf - 1] = '\0';
    return buf;
}

static void test_dumps_draw_the_hierarchy(void)
{
    scene();
    char *s = drawn(mcache_dump);
    REQUIRE(s != NULL);
    CHECK(strstr(s, "(this one): active") != NULL);
    CHECK(strstr(s, "class  5 (   48 B)") != NULL);
    CHECK(strstr(s, "tiny block 0x") != NULL);
    s = drawn(mcentral_dump);
    REQUIRE(s != NULL);
    CHECK(strstr(s, "class 5 (48 B, batch 32)") != NULL);
    CHECK(strstr(s, "<- freeindex") != NULL);
    CHECK(strstr(s, "c") != NULL && strstr(s, "#") != NULL);
    CHECK(strstr(s, "tiny blocks, class 68") != NULL);
    s = drawn(mheap_dump);
    REQUIRE(s != NULL);
    CHECK(strstr(s, "arena at 0x") != NULL);
    CHECK(strstr(s, "  pages T") != NULL || strstr(s, "  pages S") != NULL);
    CHECK(strstr(s, "L") != NULL);
    CHECK(strstr(s, "resident free runs, oldest first:") != NULL);
    scene_end();
}

static void test_stats_and_report(void)
{
    fresh();
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = gm_malloc(100);
    void *big = gm_malloc(100000);
    gm_stats_t st = gm_stats();
    CHECK_EQ(st.live_small, 100);
    CHECK_EQ(st.live_large, 1);
    CHECK_EQ(st.large_spans, 1);
    CHECK_EQ(st.threads, 1);
    size_t taken = 0, b = gm_class_batch(gm_size_class(100));
    for (size_t k = 1; taken < 100; k++) /* slow start: 1, 2, 3, ... */
        taken += k < b ? k : b;
    CHECK_EQ(st.cached_thread, taken - 100);
    CHECK_EQ(st.footprint,
             (st.pages_in_use + st.pages_free) * GM_PAGE + st.metadata);
    char path[] = "/tmp/gm_statsXXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    gm_print_stats(fd);
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    REQUIRE(n > 0);
    buf[n] = '\0';
    CHECK(strstr(buf, "class   size  spans   in use") != NULL);
    CHECK(strstr(buf, "    9    112      2      100") != NULL);
    CHECK(strstr(buf, "pages:") != NULL);
    CHECK(strstr(buf, "(this one)") != NULL);
    for (int i = 0; i < 100; i++)
        gm_free(p[i]);
    gm_free(big);
    CHECK(sound());
}

static void test_destroy_counts_live_blocks(void)
{
    fresh();
    (void)gm_malloc(10);
    (void)gm_malloc(100);
    (void)gm_malloc(100000);
    void *p = gm_malloc(200);
    gm_free(p);
    CHECK_EQ(gm_destroy(), 3);
    CHECK_EQ(gm_destroy(), 0);
    CHECK(sound());
}

// clang-format off
/* ---- The conformance suite ----------------------------------------------- */
// clang-format on

static void *cf_create(void)
{
    fresh();
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    return &gm_heap;
}
static void *cf_create_tiny_off(void)
{
    cf_create();
    gm_set_tiny(false);
    return &gm_heap;
}
static void cf_destroy(void *a)
{
    (void)a;
    gm_destroy();
}
static void *cf_alloc(void *a, size_t n)
{
    (void)a;
    return gm_malloc(n);
}
static void cf_free(void *a, void *p, size_t n)
{
    (void)a;
    (void)n;
    gm_free(p);
}
static void *cf_realloc(void *a, void *p, size_t old, size_t n)
{
    (void)a;
    (void)old;
    return gm_realloc(p, n);
}
static bool cf_check(void *a)
{
    (void)a;
    return sound();
}

static const conform_ops conform_tiny_on = {
    .name = "07-tcmalloc-go",
    .caps =
        CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC | CONFORM_THREADSAFE,
    .align = 1, /* 16 from 16 bytes on, less below: tested above */
    .max_size = (size_t)1 << 20,
    .create = cf_create,
    .destroy = cf_destroy,
    .alloc = cf_alloc,
    .free = cf_free,
    .realloc = cf_realloc,
    .check = cf_check,
};

static const conform_ops conform_tiny_off = {
    .name = "07-tcmalloc-go, tiny off",
    .caps =
        CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC | CONFORM_THREADSAFE,
    .align = 8,
    .max_size = (size_t)1 << 20,
    .create = cf_create_tiny_off,
    .destroy = cf_destroy,
    .alloc = cf_alloc,
    .free = cf_free,
    .realloc = cf_realloc,
    .check = cf_check,
};

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_class_table_matches_go);
    RUN_TEST(test_size_to_class_every_size);
    RUN_TEST(test_alignment_every_size_tiny_on);
    RUN_TEST(test_alignment_every_size_tiny_off);
    RUN_TEST(test_refill_slow_start);
    RUN_TEST(test_overflow_moves_batches_and_lowers_the_bound);
    RUN_TEST(test_transfer_cache_hands_a_batch_back);
    RUN_TEST(test_empty_spans_go_back_to_the_mheap);
    RUN_TEST(test_large_blocks_get_their_own_pages);
    RUN_TEST(test_realloc_large_in_place);
    RUN_TEST(test_realloc_small_in_place_within_its_class);
    RUN_TEST(test_calloc_zeroes);
    RUN_TEST(test_aligned_alloc_every_power_of_two);
    RUN_TEST(test_huge_sizes_give_enomem);
    RUN_TEST(test_mmap_refused_gives_enomem);
    RUN_TEST(test_free_keeps_errno_when_madvise_fails);
    RUN_TEST(test_sync_scavenger_oldest_first);
    RUN_TEST(test_small_requests_word_aligned_by_default);
    RUN_TEST(test_more_than_the_os_commits_is_enomem);
    RUN_TEST(test_tiny_packs_and_aligns);
    RUN_TEST(test_tiny_block_freed_when_all_dead);
    RUN_TEST(test_tiny_realloc_and_usable);
    RUN_TEST(test_tiny_off);
    RUN_TEST(test_misuse_is_reported);
    RUN_TEST(test_quarantine_delays_reuse);
    RUN_TEST(test_check_catches_an_object_held_twice);
    RUN_TEST(test_check_catches_a_quarantined_object_on_a_list);
    RUN_TEST(test_check_catches_a_list_longer_than_its_room_says);
    RUN_TEST(test_check_catches_a_bound_above_its_cap);
    RUN_TEST(test_check_catches_a_wrong_alloc_count);
    RUN_TEST(test_check_catches_an_object_lost);
    RUN_TEST(test_check_catches_a_wrong_class_map);
    RUN_TEST(test_check_catches_a_wrong_page_map);
    RUN_TEST(test_check_catches_a_span_on_the_wrong_list);
    RUN_TEST(test_check_catches_a_short_batch);
    RUN_TEST(test_check_catches_an_age_list_out_of_order);
    RUN_TEST(test_check_catches_wrong_counters);
    RUN_TEST(test_check_catches_a_wrong_tiny_count);
    RUN_TEST(test_random_ops_check_each);
    RUN_TEST(test_traces_replay_checked);
    RUN_TEST(test_dumps_draw_the_hierarchy);
    RUN_TEST(test_stats_and_report);
    RUN_TEST(test_destroy_counts_live_blocks);
    conform_run(&conform_tiny_on);
    conform_run(&conform_tiny_off);
    gm_destroy();
    return test_finish();
}
