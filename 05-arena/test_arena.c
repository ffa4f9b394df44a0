/*
 * test_arena.c: unit tests of the arena allocator: each bin and each step
 * of the request path observed, free's merges, the top chunk's growth and
 * trim, the mapped chunks and their moving threshold, realloc in place,
 * calloc on fresh memory, aligned allocation, the per-thread cache, each
 * of glibc's checks and the two classic attacks stopped, arena_check()
 * proven on broken heaps, free keeping errno when the OS refuses, threads
 * with their arenas, fork, an address-space limit, trace replays, and the
 * conformance suite (with threads) in two configurations.
 *
 * The allocator is one per process: every case starts with
 * arena_teardown(), which gives everything back and starts again. The
 * cases look inside (arena_internal.h): they break invariants on purpose
 * and read the bins to see where a chunk went.
 */
#include "arena_internal.h"
#include "conform.h"
#include "fault.h"
#include "test.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* A fresh allocator for each case. */
static void fresh(void)
{
    fault_disarm();
    CHECK_EQ(arena_teardown(), 0); /* the case before left nothing live */
}

/* Checked builds hold freed blocks back (the quarantine): cases that watch
 * where a chunk goes release them first. */
static void settle(void)
{
    arena_quarantine_flush();
}

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

static void fill(void *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed + i * 31);
}

static bool intact(const void *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(seed + i * 31))
            return false;
    return true;
}

static bool sound(void)
{
    const char *why = arena_check_why();
    if (why != NULL)
        printf("    arena_check_why: %s\n", why);
    return why == NULL;
}

static mchunk *chunk_of(void *p)
{
    return mem2chunk(p);
}

/* The chunks on bin i of the main arena. */
static size_t bin_count(unsigned i)
{
    size_t n = 0;
    mchunk *bin = bin_at(&main_arena, i);
    for (mchunk *c = fd(bin); c != bin; c = fd(c))
        n++;
    return n;
}

static bool in_bin(unsigned i, const void *p)
{
    mchunk *bin = bin_at(&main_arena, i);
    for (mchunk *c = fd(bin); c != bin; c = fd(c))
        if (c == mem2chunk(p))
            return true;
    return false;
}

static size_t fast_count(size_t chunk)
{
    size_t n = 0;
    for (mchunk *c = main_arena.fastbins[fastbin_index(chunk)]; c != NULL;
         c = protect_ptr(chunk2mem(c),
                         (void *)(uintptr_t)word_get(chunk2mem(c))))
        n++;
    return n;
}

/* The per-thread cache off, and the fast bins off: the bins alone. */
static void bins_only(void)
{
    arena_set(ARENA_TCACHE_COUNT, 0);
    arena_set(ARENA_MAX_FAST, 0);
}

/* ---- Sizes, alignment, the chunk layout --------------------------------- */

static void test_malloc_aligns_every_size(void)
{
    fresh();
    void *p[300];
    for (size_t n = 0; n < 300; n++) {
        p[n] = arena_malloc(n * 7);
        REQUIRE(p[n] != NULL);
        CHECK(is_aligned(p[n], ARENA_ALIGN));
        CHECK_GE(arena_usable_size(p[n]), n * 7);
        fill(p[n], n * 7, (unsigned char)n);
    }
    CHECK(sound());
    for (size_t n = 0; n < 300; n++) {
        CHECK(intact(p[n], n * 7, (unsigned char)n));
        arena_free(p[n]);
    }
    CHECK(sound());
}

static void test_malloc_zero_gives_unique_blocks(void)
{
    fresh();
    void *a = arena_malloc(0), *b = arena_malloc(0);
    CHECK_NOT_NULL(a);
    CHECK_NOT_NULL(b);
    CHECK(a != b);
    arena_free(a);
    arena_free(b);
    arena_free(NULL);
    CHECK(sound());
}

static void test_huge_sizes_give_enomem(void)
{
    fresh();
    const size_t bad[] = {SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2 + 1,
                          ARENA_MAX_REQUEST + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(arena_malloc(bad[i]));
        CHECK_INT_EQ(errno, ENOMEM);
        errno = 0;
        CHECK_NULL(arena_memalign(64, bad[i]));
        CHECK_INT_EQ(errno, ENOMEM);
    }
    errno = 0;
    CHECK_NULL(arena_calloc(SIZE_MAX / 2 + 1, 2));
    CHECK_INT_EQ(errno, ENOMEM);
    errno = 0;
    CHECK_NULL(arena_calloc(3, SIZE_MAX / 2));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(arena_footprint(), 0); /* nothing was mapped for them */
    CHECK(sound());
}

/* glibc's layout: a request of n bytes is a chunk of n + 8 rounded up to
 * 16, at least 32 (checked builds add the 8-byte trailer); chunks cut from
 * the top lie one after the other. */
static void test_chunks_follow_each_other(void)
{
    fresh();
    CHECK_EQ(arena_chunk_size(0), 32);
    CHECK_EQ(arena_chunk_size(24), CHECKED ? 48 : 32);
    CHECK_EQ(arena_chunk_size(25), 48);
    CHECK_EQ(arena_chunk_size(100), CHECKED ? 128 : 112);
    arena_set(ARENA_TCACHE_COUNT, 0);
    char *a = arena_malloc(100), *b = arena_malloc(24), *c = arena_malloc(1);
    REQUIRE(a && b && c);
    CHECK_PTR_EQ(b, a + arena_chunk_size(100));
    CHECK_PTR_EQ(c, b + arena_chunk_size(24));
    /* The main arena's chunks: a 64 MB-aligned heap, A clear, P set. */
    heap_info *h = heap_of(a);
    CHECK_EQ(h->magic, HEAP_MAGIC ^ (uintptr_t)h);
    CHECK_PTR_EQ(h->ar, &main_arena);
    CHECK_EQ(head(chunk_of(a)) & SIZE_BITS, PREV_INUSE);
    CHECK_EQ(chunksize(chunk_of(a)), arena_chunk_size(100));
    arena_free(a);
    arena_free(b);
    arena_free(c);
    CHECK(sound());
}

/* ---- The per-thread cache ----------------------------------------------- */

static void test_cache_gives_back_the_last_freed(void)
{
    fresh();
    void *a = arena_malloc(40), *b = arena_malloc(40);
    REQUIRE(a && b);
    arena_free(a);
    arena_free(b);
    settle();
    CHECK_PTR_EQ(arena_malloc(40), b); /* LIFO */
    CHECK_PTR_EQ(arena_malloc(40), a);
    arena_free(a);
    arena_free(b);
    CHECK(sound());
}

/* Seven chunks of a size go to the cache; the eighth to a fast bin (or,
 * above the fast bins' sizes, the unsorted bin). */
static void test_cache_holds_seven_per_size(void)
{
    fresh();
    void *p[9], *q[9];
    for (int i = 0; i < 9; i++) {
        p[i] = arena_malloc(40);
        q[i] = arena_malloc(500);
        REQUIRE(p[i] && q[i]);
    }
    /* A guard before the top: a chunk merged into the top would make it
     * 64 KiB or more, and that free would consolidate the fast bins. */
    void *guard = arena_malloc(8);
    for (int i = 0; i < 9; i++) {
        arena_free(p[i]);
        arena_free(q[i]);
    }
    settle();
    arena_thread *t = thread_self();
    size_t c40 = arena_chunk_size(40), c500 = arena_chunk_size(500);
    CHECK_EQ(t->counts[csize2tidx(c40)], 7);
    CHECK_EQ(t->counts[csize2tidx(c500)], 7);
    CHECK_EQ(fast_count(c40), 2);
    CHECK_EQ(bin_count(1), 2); /* q[7], q[8]: p[8] (fast) between them */
    CHECK(sound());
    /* With the cache off, the same frees all go to the bins. */
    arena_set(ARENA_TCACHE_COUNT, 0); /* flushes this thread's cache */
    CHECK_EQ(t->counts[csize2tidx(c40)], 0);
    CHECK_EQ(fast_count(c40), 9);
    CHECK(sound());
    arena_free(guard);
}

/* A miss fills the cache from the bin it takes from: the next requests
 * of that size take no lock. */
static void test_miss_fills_the_cache(void)
{
    fresh();
    void *p[8];
    arena_set(ARENA_TCACHE_COUNT, 0);
    for (int i = 0; i < 8; i++)
        REQUIRE((p[i] = arena_malloc(40)) != NULL);
    for (int i = 0; i < 8; i++)
        arena_free(p[i]);
    settle();
    CHECK_EQ(fast_count(arena_chunk_size(40)), 8);
    arena_set(ARENA_TCACHE_COUNT, 7);
    size_t locks = main_arena.locks;
    void *x = arena_malloc(40);
    CHECK_PTR_EQ(x, p[7]); /* the fast bin's head */
    CHECK_EQ(fast_count(arena_chunk_size(40)), 0);
    CHECK_EQ(thread_self()->counts[csize2tidx(arena_chunk_size(40))], 7);
    for (int i = 0; i < 7; i++)
        CHECK_NOT_NULL(arena_malloc(40));
    CHECK_EQ(main_arena.locks, locks + 1); /* one lock for eight requests */
    arena_thread_flush();
    CHECK(sound());
    arena_teardown();
}

/* ---- The bins ----------------------------------------------------------- */

/* Fast-bin chunks stay in use to their neighbours until a large request
 * consolidates them. */
static void test_fast_chunks_merge_only_when_consolidated(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    char *a = arena_malloc(40), *b = arena_malloc(40), *g = arena_malloc(8);
    REQUIRE(a && b && g);
    arena_free(a);
    arena_free(b);
    settle();
    size_t c40 = arena_chunk_size(40);
    CHECK_EQ(fast_count(c40), 2);
    CHECK(main_arena.have_fastchunks);
    CHECK(prev_inuse(chunk_of(b))); /* a is "in use" to b */
    size_t before = main_arena.consolidations;
    void *big = arena_malloc(2000); /* a large request: step 4 */
    CHECK_EQ(main_arena.consolidations, before + 1);
    CHECK_EQ(fast_count(c40), 0);
    CHECK(!main_arena.have_fastchunks);
    /* a and b are one free chunk now, in a bin (sorted by step 5). */
    CHECK(in_bin(smallbin_index(2 * c40), a));
    void *ab = arena_malloc(2 * c40 - SIZE_SZ - TRAILER);
    CHECK_PTR_EQ(ab, a);
    arena_free(ab);
    arena_free(big);
    arena_free(g);
    CHECK(sound());
}

/* A freed chunk waits in the unsorted bin; the next request takes it on an
 * exact fit, and sorts it into its bin otherwise. */
static void test_unsorted_then_sorted(void)
{
    fresh();
    bins_only();
    char *a = arena_malloc(500), *g1 = arena_malloc(8);
    char *b = arena_malloc(700), *g2 = arena_malloc(8);
    REQUIRE(a && b && g1 && g2);
    arena_free(b);
    arena_free(a);
    settle();
    CHECK_EQ(bin_count(1), 2);
    CHECK(in_bin(1, a) && in_bin(1, b));
    /* The walk starts with the oldest, b: sorted into its small bin; then
     * a, an exact fit, is taken at once. */
    CHECK_PTR_EQ(arena_malloc(500), a);
    unsigned ib = smallbin_index(chunksize(chunk_of(b)));
    CHECK(in_bin(ib, b));
    CHECK(main_arena.binmap[ib / 64] & ((uint64_t)1 << (ib % 64)));
    CHECK_EQ(bin_count(1), 0);
    CHECK_PTR_EQ(arena_malloc(700), b); /* step 3: its small bin */
    CHECK(sound());
    arena_free(a);
    arena_free(b);
    arena_free(g1);
    arena_free(g2);
}

/* Small requests cut one after another from the last remainder. */
static void test_last_remainder_keeps_small_requests_together(void)
{
    fresh();
    bins_only();
    char *big = arena_malloc(4000), *g = arena_malloc(8);
    REQUIRE(big && g);
    arena_free(big);
    settle();
    /* A small request: big is sorted into its large bin, then found by the
     * binmap (step 7) and split; the rest is the last remainder. */
    char *x = arena_malloc(500);
    CHECK_PTR_EQ(x, big);
    CHECK_PTR_EQ(main_arena.last_remainder,
                 chunk_of(x + arena_chunk_size(500)));
    char *y = arena_malloc(100), *z = arena_malloc(100);
    CHECK_PTR_EQ(y, x + arena_chunk_size(500));
    CHECK_PTR_EQ(z, y + arena_chunk_size(100));
    CHECK(sound());
    arena_free(x);
    arena_free(y);
    arena_free(z);
    arena_free(g);
}

/* A large bin is kept sorted; a large request takes the best fit in it. */
static void test_large_bin_best_fit(void)
{
    fresh();
    bins_only();
    char *c[3], *g[3];
    const size_t sizes[3] = {3500, 3200, 3300}; /* one large bin: 3136-3583 */
    for (int i = 0; i < 3; i++) {
        c[i] = arena_malloc(sizes[i]);
        g[i] = arena_malloc(8);
        REQUIRE(c[i] && g[i]);
    }
    for (int i = 0; i < 3; i++)
        arena_free(c[i]);
    settle();
    void *other = arena_malloc(5000); /* sorts the three into their bin */
    unsigned ib = largebin_index(chunksize(chunk_of(c[0])));
    CHECK_EQ(ib, largebin_index(chunksize(chunk_of(c[1]))));
    CHECK_EQ(bin_count(ib), 3);
    /* largest first */
    mchunk *bin = bin_at(&main_arena, ib);
    CHECK_PTR_EQ(fd(bin), chunk_of(c[0]));
    CHECK_PTR_EQ(fd(fd(bin)), chunk_of(c[2]));
    CHECK_PTR_EQ(bk(bin), chunk_of(c[1]));
    CHECK(sound());
    /* 3250 fits 3300 and 3500: best fit takes 3300 (step 6). */
    void *best = arena_malloc(3250);
    CHECK_PTR_EQ(best, c[2]);
    arena_free(best);
    arena_free(other);
    for (int i = 0; i < 3; i++)
        arena_free(g[i]);
    CHECK(sound());
}

/* An empty bin's stale binmap bit is cleared by the search that finds the
 * bin empty; the search goes on to the next larger bin. */
static void test_binmap_finds_the_next_bin(void)
{
    fresh();
    bins_only();
    char *x = arena_malloc(2000), *g = arena_malloc(8);
    REQUIRE(x && g);
    arena_free(x);
    settle();
    void *y = arena_malloc(3000); /* sorts x into its large bin */
    unsigned ib = largebin_index(chunksize(chunk_of(x)));
    CHECK(in_bin(ib, x));
    /* Make a stale bit: a small bin's bit set, the bin empty. */
    unsigned stale = smallbin_index(arena_chunk_size(300));
    main_arena.binmap[stale / 64] |= (uint64_t)1 << (stale % 64);
    CHECK(sound());              /* a set bit over an empty bin is allowed */
    char *z = arena_malloc(100); /* no small fit: step 7 finds x's bin */
    CHECK_PTR_EQ(z, x);
    CHECK(!(main_arena.binmap[stale / 64] & ((uint64_t)1 << (stale % 64))));
    arena_free(y);
    arena_free(z);
    arena_free(g);
    CHECK(sound());
}

/* Free merges with both neighbours, and into the top. */
static void test_free_merges_both_ways_and_into_top(void)
{
    fresh();
    bins_only();
    char *a = arena_malloc(200), *b = arena_malloc(300), *c = arena_malloc(400);
    char *g = arena_malloc(8);
    REQUIRE(a && b && c && g);
    arena_free(a);
    arena_free(c);
    settle();
    CHECK_EQ(bin_count(1), 2);
    arena_free(b);
    settle();
    CHECK_EQ(bin_count(1), 1); /* a + b + c */
    size_t merged =
        arena_chunk_size(200) + arena_chunk_size(300) + arena_chunk_size(400);
    CHECK_EQ(chunksize(chunk_of(a)), merged);
    size_t top = chunksize(main_arena.top);
    arena_free(g); /* the last chunk before the top: into the top */
    settle();
    CHECK_PTR_EQ(main_arena.top, chunk_of(a));
    CHECK_EQ(chunksize(main_arena.top), top + merged + arena_chunk_size(8));
    CHECK_EQ(bin_count(1), 0);
    CHECK(sound());
}

/* ---- Heaps, the top chunk, trim ----------------------------------------- */

static void test_top_grows_then_trims(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *p[40];
    for (int i = 0; i < 40; i++) /* 40 x 60 KB: beyond the first commit */
        REQUIRE((p[i] = arena_malloc(60000)) != NULL);
    arena_stats_t s = arena_stats();
    CHECK_EQ(s.heaps, 1);
    CHECK_GE(s.mprotects, 2);
    CHECK_GE(s.heap_bytes, (size_t)40 * 60000);
    CHECK_EQ(s.mmapped_chunks, 0);
    for (int i = 39; i >= 0; i--)
        arena_free(p[i]);
    settle();
    s = arena_stats();
    CHECK_GE(s.madvises, 1);
    /* Back to the pad above a small header, whole pages. */
    CHECK_LE(s.heap_bytes, (size_t)128 * 1024 + 2 * page_size());
    CHECK_LE(s.top_bytes, (size_t)128 * 1024 + 2 * page_size());
    CHECK_GE(s.peak_footprint, (size_t)40 * 60000);
    CHECK(sound());
}

/* A heap that is full gets a second chained to it; when the second holds
 * nothing but the top again, it is unmapped and the first's top returns. */
static void test_full_heap_chains_a_new_one(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    arena_set(ARENA_MMAP_THRESHOLD, (size_t)32 << 20); /* keep it in heaps */
    size_t n = (size_t)20 << 20;
    void *a = arena_malloc(n), *b = arena_malloc(n), *c = arena_malloc(n);
    REQUIRE(a && b && c);
    void *d = arena_malloc(n); /* 80 MB: no longer fits one heap */
    REQUIRE(d != NULL);
    CHECK_EQ(main_arena.nheaps, 2);
    CHECK(heap_of(d) != heap_of(a));
    CHECK_PTR_EQ(heap_of(d)->prev, heap_of(a));
    CHECK(sound());
    arena_free(d);
    settle();
    CHECK_EQ(main_arena.nheaps, 1); /* the second heap went back */
    CHECK_PTR_EQ(heap_of(main_arena.top), heap_of(a));
    CHECK(sound());
    arena_free(a);
    arena_free(b);
    arena_free(c);
    settle();
    CHECK_LE(arena_stats().heap_bytes, (size_t)128 * 1024 + 2 * page_size());
    CHECK(sound());
}

static void test_trim_gives_back_free_pages(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    char *a = arena_malloc(100000), *g = arena_malloc(8);
    REQUIRE(a && g);
    arena_free(a); /* in a bin, below a live chunk: not at the top */
    settle();
    size_t madv = arena_stats().madvises;
    CHECK_INT_EQ(arena_trim(0), 1);
    CHECK_LT(madv, arena_stats().madvises);
    char *b = arena_malloc(100000); /* the pages come back zero */
    REQUIRE(b != NULL);
    CHECK_PTR_EQ(b, a);
    fill(b, 100000, 3);
    CHECK(intact(b, 100000, 3));
    arena_free(b);
    arena_free(g);
    CHECK(sound());
}

/* ---- Mapped chunks and the moving threshold ----------------------------- */

static void test_mmap_threshold_moves_up(void)
{
    fresh();
    CHECK_EQ(arena_get(ARENA_MMAP_THRESHOLD), (size_t)128 * 1024);
    void *warm = arena_malloc(10); /* the heap exists */
    void *p = arena_malloc(300000);
    REQUIRE(p != NULL);
    CHECK(head(chunk_of(p)) & IS_MMAPPED);
    CHECK_EQ(arena_stats().mmapped_chunks, 1);
    size_t size = chunksize(chunk_of(p));
    arena_free(p);
    settle();
    CHECK_EQ(arena_get(ARENA_MMAP_THRESHOLD), size);
    CHECK_EQ(arena_get(ARENA_TRIM_THRESHOLD), 2 * size);
    size_t mmaps = arena_stats().mmaps;
    for (int i = 0; i < 20; i++) { /* the same size again: from the heap */
        void *q = arena_malloc(300000);
        REQUIRE(q != NULL);
        CHECK(!(head(chunk_of(q)) & IS_MMAPPED));
        arena_free(q);
    }
    settle();
    CHECK_EQ(arena_stats().mmaps, mmaps);
    CHECK(sound());
    /* A threshold set by hand stays where it is. */
    arena_set(ARENA_MMAP_THRESHOLD, (size_t)128 * 1024);
    void *r = arena_malloc(1 << 20);
    REQUIRE(r != NULL);
    CHECK(head(chunk_of(r)) & IS_MMAPPED);
    arena_free(r);
    settle();
    CHECK_EQ(arena_get(ARENA_MMAP_THRESHOLD), (size_t)128 * 1024);
    arena_free(warm);
    CHECK(sound());
}

static void test_realloc_mapped_chunk(void)
{
    fresh();
    char *p = arena_malloc(200000);
    REQUIRE(p != NULL);
    fill(p, 200000, 5);
    char *q = arena_realloc(p, 3000000);
    REQUIRE(q != NULL);
    CHECK(intact(q, 200000, 5));
    CHECK(head(chunk_of(q)) & IS_MMAPPED);
    if (!TRACK_ENABLED)
        CHECK_GE(arena_stats().mremaps, 1);
    fill(q, 3000000, 6);
    char *r = arena_realloc(q, 100000);
    REQUIRE(r != NULL);
    CHECK(intact(r, 100000, 6));
    arena_free(r);
    CHECK(sound());
}

/* ---- realloc, calloc, memalign ------------------------------------------ */

static void test_realloc_in_place(void)
{
    fresh();
    bins_only();
    char *p = arena_malloc(100);
    REQUIRE(p != NULL);
    fill(p, 100, 1);
    /* p is the last chunk before the top: it grows into the top. */
    char *q = arena_realloc(p, 5000);
    CHECK_PTR_EQ(q, p);
    CHECK(intact(q, 100, 1));
    fill(q, 5000, 2);
    char *g = arena_malloc(8);
    REQUIRE(g != NULL);
    /* It shrinks in place, the tail freed... */
    CHECK_PTR_EQ(arena_realloc(q, 1000), q);
    CHECK(intact(q, 1000, 2));
    settle();
    CHECK_EQ(bin_count(1), 1);
    /* ...and grows again into that free tail. */
    CHECK_PTR_EQ(arena_realloc(q, 3000), q);
    CHECK(intact(q, 1000, 2));
    CHECK(sound());
    /* Past the free tail it has to move. */
    char *r = arena_realloc(q, 20000);
    REQUIRE(r != NULL);
    CHECK(r != q);
    CHECK(intact(r, 1000, 2));
    arena_free(r);
    arena_free(g);
    CHECK(sound());
}

static void test_realloc_edge_cases(void)
{
    fresh();
    char *p = arena_realloc(NULL, 40);
    REQUIRE(p != NULL);
    fill(p, 40, 1);
    errno = 0;
    CHECK_NULL(arena_realloc(p, SIZE_MAX));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK(intact(p, 40, 1));
    CHECK_NULL(arena_realloc(p, 0)); /* frees, as glibc */
    CHECK(sound());
}

static void test_calloc_zeroes_reused_memory(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0); /* calloc does not use the cache */
    unsigned char *a = arena_malloc(500);
    REQUIRE(a != NULL);
    memset(a, 0xFF, 500);
    arena_free(a);
    settle();
    unsigned char *z = arena_calloc(50, 10);
    REQUIRE(z != NULL);
    CHECK_PTR_EQ(z, a); /* the dirty chunk came back */
    size_t nonzero = 0;
    for (size_t i = 0; i < 500; i++)
        nonzero += z[i] != 0;
    CHECK_EQ(nonzero, 0);
    arena_free(z);
    void *e = arena_calloc(0, 10);
    CHECK_NOT_NULL(e);
    arena_free(e);
    CHECK(sound());
}

/* calloc of memory fresh from the OS does not clear it again: 8 MiB from a
 * new top leave the pages untouched (resident memory barely moves). */
static void test_calloc_skips_fresh_memory(void)
{
    if (TRACK_ENABLED || UNDER_TSAN) {
        test_skip("resident memory is the tool's under Valgrind, ASan, TSan");
        return;
    }
    fresh();
    arena_set(ARENA_MMAP_THRESHOLD, (size_t)32 << 20);
    arena_set(ARENA_TOP_PAD, (size_t)16 << 20);
    void *warm = arena_malloc(100); /* the heap exists, 16 MiB committed */
    REQUIRE(warm != NULL);
    size_t rss0 = trace_rss_bytes();
    unsigned char *z = arena_calloc(1, (size_t)8 << 20);
    REQUIRE(z != NULL);
    size_t rss1 = trace_rss_bytes();
    CHECK_LT(rss1, rss0 + ((size_t)1 << 20)); /* not 8 MiB more */
    CHECK_EQ(z[0] | z[(4 << 20) + 123] | z[(8 << 20) - 1], 0);
    /* A freed and reused chunk is cleared: dirty it and ask again. */
    memset(z, 0x5A, 4096);
    arena_free(z);
    settle();
    z = arena_calloc(1, (size_t)8 << 20);
    REQUIRE(z != NULL);
    CHECK_EQ(z[0] | z[4095], 0);
    arena_free(z);
    arena_free(warm);
    CHECK(sound());
}

static void test_memalign_every_power_of_two(void)
{
    fresh();
    void *p[23];
    for (size_t k = 0; k <= 22; k++) {
        size_t align = (size_t)1 << k;
        size_t n = k == 22 ? 300000 : 100 + k;
        p[k] = arena_memalign(align, n);
        REQUIRE(p[k] != NULL);
        CHECK(is_aligned(p[k], align));
        memset(p[k], 0x5C, n);
        CHECK_GE(arena_usable_size(p[k]), n);
        CHECK(sound());
    }
    for (size_t k = 0; k <= 22; k++)
        arena_free(p[k]);
    CHECK(sound());
}

static void test_memalign_rejects_bad_alignment(void)
{
    fresh();
    const size_t bad[] = {0, 3, 24, 48, 1000, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(arena_memalign(bad[i], 10));
        CHECK_INT_EQ(errno, EINVAL);
    }
    errno = 0;
    CHECK_NULL(arena_memalign((size_t)1 << 62, 10));
    CHECK_INT_EQ(errno, ENOMEM);
}

static void test_usable_size_and_settings(void)
{
    fresh();
    CHECK_EQ(arena_usable_size(NULL), 0);
    void *p = arena_malloc(100);
    REQUIRE(p != NULL);
    CHECK_GE(arena_usable_size(p), 100);
    CHECK_LE(arena_usable_size(p), 100 + 15);
    arena_free(p);
    CHECK_EQ(arena_get(ARENA_TCACHE_COUNT), 7);
    CHECK_EQ(arena_get(ARENA_MAX_FAST), 120);
    CHECK_INT_EQ(arena_set(ARENA_MAX_FAST, 161), -1);
    CHECK_INT_EQ(arena_set(ARENA_TCACHE_COUNT, 70000), -1);
    CHECK_INT_EQ(arena_set(ARENA_MMAP_THRESHOLD, (size_t)33 << 20), -1);
    CHECK_INT_EQ(arena_set(ARENA_MAX_FAST, 0), 0);
    CHECK_EQ(arena_get(ARENA_MAX_FAST), 0);
    CHECK(sound());
}

/* ---- Misuse: glibc's checks, and the two attacks ---------------------------
 *
 * Each runs in a child process (test_aborts_with), which must die of
 * abort() after printing the message.
 */

static void do_double_free_cached(void *arg)
{
    (void)arg;
    arena_teardown();
    void *p = arena_malloc(40);
    arena_free(p);
    settle();
    arena_free(p); /* the key in its second word: found in the cache */
}

static void do_double_free_fast_top(void *arg)
{
    (void)arg;
    arena_teardown();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *p = arena_malloc(40);
    arena_free(p);
    settle();
    arena_free(p);
}

/* The fast-bin "dup": a, b, a puts a twice on its list, so that malloc
 * hands it out twice. glibc checks only the list's top (b); the key that a
 * fast chunk carries finds a anyway. */
static void do_fastbin_dup(void *arg)
{
    (void)arg;
    arena_teardown();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *a = arena_malloc(40), *b = arena_malloc(40);
    arena_free(a);
    arena_free(b);
    settle();
    arena_free(a);
}

static void do_double_free_small(void *arg)
{
    (void)arg;
    arena_teardown();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *p = arena_malloc(2000), *g = arena_malloc(8);
    (void)g;
    arena_free(p);
    settle();
    arena_free(p);
}

static void do_free_inside_block(void *arg)
{
    (void)arg;
    arena_teardown();
    char *p = arena_malloc(200);
    memset(p, 0x41, 200); /* what the fake header will read */
    arena_free(p + 32);
}

static void do_free_misaligned(void *arg)
{
    (void)arg;
    arena_teardown();
    char *p = arena_malloc(200);
    arena_free(p + 8);
}

static void do_realloc_freed(void *arg)
{
    (void)arg;
    arena_teardown();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *p = arena_malloc(2000), *g = arena_malloc(8);
    (void)g;
    arena_free(p);
    settle();
    arena_realloc(p, 4000);
}

/* The cache "poisoning": a use after free writes a chosen address into a
 * freed block's link, hoping malloc returns it. Safe-linking decodes the
 * plain address to garbage, which is not aligned. */
static char target[64] __attribute__((aligned(16)));
static void do_cache_poison(void *arg)
{
    (void)arg;
    arena_teardown();
    /* A filler first, so that the victim's address has low page bits set
     * (with bits 12-15 all zero, the decoded garbage would be aligned). */
    void *filler = arena_malloc(5000), *a = arena_malloc(40);
    (void)filler;
    if (((uintptr_t)a >> 12 & 15) == 0)
        a = arena_malloc(5000 - 40);
    void *b = arena_malloc(40);
    arena_free(b);
    arena_free(a); /* list: a -> b */
    settle();
    word_set(a, (size_t)(uintptr_t)target); /* the attacker's write */
    void *x = arena_malloc(40);             /* a */
    void *y = arena_malloc(40);             /* would be target: stopped here */
    printf("got %p %p (target %p)\n", x, y, (void *)target);
}

static void do_fast_poison(void *arg)
{
    (void)arg;
    arena_teardown();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *filler = arena_malloc(5000), *a = arena_malloc(40);
    (void)filler;
    if (((uintptr_t)a >> 12 & 15) == 0)
        a = arena_malloc(5000 - 40);
    arena_free(a);
    settle();
    word_set(a, (size_t)(uintptr_t)target);
    void *x = arena_malloc(40); /* stopped while taking a: its link */
    printf("got %p\n", x);
}

/* The unlink attack's precondition: a free chunk's links overwritten.
 * Unlinking it (here: merging with it) finds that they do not point back. */
static void do_unlink_corrupt(void *arg)
{
    (void)arg;
    arena_teardown();
    bins_only();
    char *a = arena_malloc(500), *b = arena_malloc(500), *g = arena_malloc(8);
    (void)g;
    arena_free(a);
    settle();
    word_set(a, (size_t)(uintptr_t)(target));          /* a's fd */
    word_set(a + 8, (size_t)(uintptr_t)(target + 16)); /* a's bk */
    arena_free(b); /* merges backwards with a: unlink(a) */
    settle();
}

/* A free chunk's footer overwritten (the next chunk's prev_size word, the
 * last word of the block before: an off-by-eight overflow's target): its
 * size and its footer disagree. */
static void do_size_vs_prev_size(void *arg)
{
    (void)arg;
    arena_teardown();
    bins_only();
    char *a = arena_malloc(500), *b = arena_malloc(500), *g = arena_malloc(8);
    (void)b;
    (void)g;
    arena_free(a);
    settle();
    mchunk *c = chunk_of(a), *next = chunk_at(c, chunksize(c));
    set_prev_size(next, prev_size(next) + 16);
    arena_malloc(500); /* finds a in the unsorted bin */
}

static void do_overflow_into_trailer(void *arg)
{
    (void)arg;
    arena_teardown();
    char *p = arena_malloc(20);
    track_mem_undefined(p + 20, 1);
    p[20] = 1; /* one byte past the request */
    arena_free(p);
}

static void do_free_foreign(void *arg)
{
    (void)arg;
    arena_teardown();
    void *p = arena_malloc(100);
    (void)p;
    /* A plausible header, in no heap, too big for the cache: glibc takes a
     * fake chunk of a cached size without a question (the cache has no
     * check), and so does this stage in release builds. */
    static size_t fake[8] __attribute__((aligned(16))) = {0, 2048 | 1};
    arena_free(&fake[2]);
}

static void test_misuse_is_reported(void)
{
    CHECK_ABORTS(do_double_free_cached, NULL, "double free");
    CHECK_ABORTS(do_double_free_cached, NULL, "in this thread's cache");
    CHECK_ABORTS(do_double_free_fast_top, NULL, "double free");
    CHECK_ABORTS(do_fastbin_dup, NULL, "double free (the chunk is in a fast");
    CHECK_ABORTS(do_double_free_small, NULL,
                 "double free (the chunk is "
                 "already free)");
    CHECK_ABORTS(do_free_inside_block, NULL, "05-arena: arena_free(");
    CHECK_ABORTS(do_free_misaligned, NULL, "invalid pointer");
    CHECK_ABORTS(do_realloc_freed, NULL, "realloc of a freed block");
    CHECK_ABORTS(do_cache_poison, NULL, "safe-linking");
    CHECK_ABORTS(do_fast_poison, NULL, "safe-linking");
    CHECK_ABORTS(do_unlink_corrupt, NULL, "do not point back");
    CHECK_ABORTS(do_size_vs_prev_size, NULL, "prev_size");
    if (CHECKED && !TRACK_ENABLED)
        CHECK_ABORTS(do_overflow_into_trailer, NULL, "write past the end");
    CHECK_ABORTS(do_free_foreign, NULL, "outside every heap");
}

/* ---- arena_check() catches broken heaps ------------------------------------
 *
 * Each case breaks one invariant on a live heap, checks that arena_check
 * fails naming it, repairs it, and checks that it passes again.
 */

static bool why_says(const char *words)
{
    const char *why = arena_check_why();
    if (why == NULL || strstr(why, words) == NULL) {
        printf("    arena_check_why: %s (expected \"%s\")\n",
               why ? why : "(sound)", words);
        return false;
    }
    return !arena_check();
}

static void test_check_catches_footer_mismatch(void)
{
    fresh();
    bins_only();
    char *a = arena_malloc(500), *g = arena_malloc(8);
    REQUIRE(a && g);
    arena_free(a);
    settle();
    REQUIRE(sound());
    mchunk *c = chunk_of(a), *next = chunk_at(c, chunksize(c));
    size_t saved = prev_size(next);
    set_prev_size(next, saved + 16);
    CHECK(why_says("footer"));
    set_prev_size(next, saved);
    CHECK(sound());
    arena_free(g);
}

static void test_check_catches_unmerged_neighbours(void)
{
    fresh();
    bins_only();
    char *a = arena_malloc(500), *b = arena_malloc(500), *g = arena_malloc(8);
    REQUIRE(a && b && g);
    arena_free(a);
    settle();
    /* Mark b free without merging it: the bug of a free that forgets to
     * look backwards. */
    mchunk *cb = chunk_of(b), *next = chunk_at(cb, chunksize(cb));
    size_t saved_head = head(next), saved_foot = prev_size(next);
    set_head(next, saved_head & ~PREV_INUSE);
    set_prev_size(next, chunksize(cb));
    CHECK(why_says("two free chunks side by side"));
    set_head(next, saved_head);
    set_prev_size(next, saved_foot);
    CHECK(sound());
    arena_free(b);
    arena_free(g);
}

static void test_check_catches_lost_bin_node(void)
{
    fresh();
    bins_only();
    char *p[6];
    for (int i = 0; i < 6; i++)
        REQUIRE((p[i] = arena_malloc(500 + 16 * (size_t)(i % 2))) != NULL);
    arena_free(p[0]);
    arena_free(p[2]);
    arena_free(p[4]);
    settle();
    REQUIRE(bin_count(1) == 3);
    mchunk *bin = unsorted_chunks(&main_arena);
    mchunk *n1 = fd(bin), *n2 = fd(n1), *n3 = fd(n2);
    set_fd(n1, n3); /* unlink n2 cleanly, both ways */
    set_bk(n3, n1);
    CHECK(why_says("exactly the free chunks"));
    set_fd(n1, n2);
    set_bk(n3, n2);
    CHECK(sound());
    for (int i = 1; i < 6; i += 2)
        arena_free(p[i]);
}

static void test_check_catches_wrong_bin(void)
{
    fresh();
    bins_only();
    char *a = arena_malloc(500), *g = arena_malloc(8);
    REQUIRE(a && g);
    arena_free(a);
    settle();
    void *other = arena_malloc(3000); /* sorts a into its small bin */
    unsigned ia = smallbin_index(chunksize(chunk_of(a)));
    REQUIRE(in_bin(ia, a));
    uint64_t saved = main_arena.binmap[ia / 64];
    main_arena.binmap[ia / 64] &= ~((uint64_t)1 << (ia % 64));
    CHECK(why_says("binmap bit clear"));
    main_arena.binmap[ia / 64] = saved;
    CHECK(sound());
    arena_free(other);
    arena_free(g);
    CHECK(sound());
}

static void test_check_catches_bad_cache_entry(void)
{
    fresh();
    void *a = arena_malloc(40);
    REQUIRE(a != NULL);
    arena_free(a);
    settle();
    arena_thread *t = thread_self();
    size_t i = csize2tidx(arena_chunk_size(40));
    REQUIRE(t->counts[i] == 1);
    t->counts[i] = 2;
    CHECK(why_says("shorter than its count"));
    t->counts[i] = 1;
    word_set((char *)a + SIZE_SZ, 0); /* the key lost */
    CHECK(why_says("lost its key"));
    word_set((char *)a + SIZE_SZ, tcache_key);
    CHECK(sound());
    arena_thread_flush();
}

static void test_check_catches_bad_fast_bin(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    char *a = arena_malloc(40), *g = arena_malloc(8);
    REQUIRE(a && g);
    arena_free(a);
    settle();
    unsigned i = fastbin_index(chunksize(chunk_of(a)));
    REQUIRE(main_arena.fastbins[i] == chunk_of(a));
    main_arena.fastbins[i] = chunk_at(chunk_of(a), 8); /* 8 bytes off */
    CHECK(why_says("outside its arena's heaps"));
    main_arena.fastbins[i] = chunk_of(a);
    main_arena.have_fastchunks = false;
    CHECK(why_says("have_fastchunks"));
    main_arena.have_fastchunks = true;
    CHECK(sound());
    arena_free(g);
}

static void test_check_catches_wrong_arena_bit(void)
{
    fresh();
    char *a = arena_malloc(100);
    REQUIRE(a != NULL);
    mchunk *c = chunk_of(a);
    set_head(c, head(c) | NON_MAIN_ARENA);
    CHECK(why_says("A bit"));
    set_head(c, head(c) & ~NON_MAIN_ARENA);
    CHECK(sound());
    arena_free(a);
}

/* ---- free keeps errno; the OS refusing ---------------------------------- */

static void test_free_keeps_errno_when_munmap_fails(void)
{
    fresh();
    void *p = arena_malloc(1 << 20); /* a mapped chunk */
    REQUIRE(p != NULL);
    settle();
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    arena_free(p);
    settle(); /* checked builds free it here, out of the quarantine */
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    CHECK_EQ(arena_stats().mmapped_chunks, 0);
    CHECK(sound());
}

static void test_free_keeps_errno_when_madvise_fails(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    void *p = arena_malloc(100000), *q = arena_malloc(100000);
    REQUIRE(p && q);
    arena_free(q);
    settle();
    fault_arm(FAULT_MADVISE, 0, 10);
    errno = 1234;
    arena_free(p); /* the top grows past the trim threshold: madvise */
    settle();
    CHECK_INT_EQ(errno, 1234);
    CHECK_GE(fault_failed(FAULT_MADVISE), 1);
    fault_disarm();
    CHECK(sound()); /* nothing released, nothing broken */
    void *r = arena_malloc(150000);
    CHECK_NOT_NULL(r);
    arena_free(r);
    CHECK(sound());
}

static void test_free_keeps_errno_when_heap_unmap_fails(void)
{
    fresh();
    arena_set(ARENA_TCACHE_COUNT, 0);
    arena_set(ARENA_MMAP_THRESHOLD, (size_t)32 << 20);
    size_t n = (size_t)30 << 20;
    void *a = arena_malloc(n), *b = arena_malloc(n), *c = arena_malloc(n);
    REQUIRE(a && b && c);
    REQUIRE(main_arena.nheaps == 2);
    fault_arm(FAULT_MUNMAP, 0, 10);
    errno = 1234;
    arena_free(c); /* the second heap empties: munmap refused */
    settle();
    CHECK_INT_EQ(errno, 1234);
    CHECK_GE(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    arena_free(a);
    arena_free(b);
    settle();
    CHECK(sound());
}

/* The OS refuses to commit: the request gets a mapping of its own. */
static void test_mprotect_refused_falls_back(void)
{
    fresh();
    arena_set(ARENA_MMAP_THRESHOLD, (size_t)32 << 20);
    void *warm = arena_malloc(100);
    REQUIRE(warm != NULL);
    fault_arm(FAULT_MPROTECT, 0, 1000);
    void *p = arena_malloc(1 << 20); /* the top must grow: it cannot */
    CHECK_NOT_NULL(p);
    CHECK_GE(fault_failed(FAULT_MPROTECT), 1);
    if (p != NULL)
        CHECK(head(chunk_of(p)) & IS_MMAPPED);
    fault_disarm();
    arena_free(p);
    arena_free(warm);
    CHECK(sound());
}

static void test_mmap_refused_gives_enomem(void)
{
    fresh();
    fault_arm(FAULT_MMAP, 0, 1000);
    errno = 0;
    CHECK_NULL(arena_malloc(100));
    CHECK_INT_EQ(errno, ENOMEM);
    fault_disarm();
    void *p = arena_malloc(100);
    CHECK_NOT_NULL(p);
    arena_free(p);
    CHECK(sound());
}

/* ---- Random runs with arena_check() after every operation --------------- */

typedef struct slot {
    unsigned char *p;
    size_t n;
    unsigned char seed;
} slot;

static size_t random_size(void)
{
    switch (test_rand() % 10) {
    case 0:
        return test_rand_range(0, 24);
    case 1:
        return test_rand_range(1000, 70000);
    case 2:
        return test_rand_range(100000, 400000); /* mapped, at first */
    default:
        return test_rand_range(1, 600);
    }
}

static void random_run(size_t tcache, size_t max_fast)
{
    enum { SLOTS = 96 };
    slot s[SLOTS];
    memset(s, 0, sizeof s);
    fresh();
    arena_set(ARENA_TCACHE_COUNT, tcache);
    arena_set(ARENA_MAX_FAST, max_fast);
    size_t ops = test_scale(3000);
    for (size_t i = 0; i < ops; i++) {
        slot *x = &s[test_rand() % SLOTS];
        unsigned what = (unsigned)(test_rand() % 10);
        if (x->p == NULL) {
            x->n = random_size();
            x->seed = (unsigned char)test_rand();
            x->p = what == 0
                       ? arena_memalign((size_t)32 << (test_rand() % 8), x->n)
                   : what == 1 ? arena_calloc(1, x->n)
                               : arena_malloc(x->n);
            if (x->p == NULL) {
                CHECK(x->p != NULL);
                return;
            }
            if (what == 1)
                for (size_t k = 0; k < x->n; k += 61)
                    REQUIRE(x->p[k] == 0);
            fill(x->p, x->n, x->seed);
        } else if (what < 3) {
            size_t n = random_size() + 1;
            REQUIRE(intact(x->p, x->n, x->seed));
            unsigned char *q = arena_realloc(x->p, n);
            REQUIRE(q != NULL);
            CHECK(intact(q, n < x->n ? n : x->n, x->seed));
            x->p = q;
            x->n = n;
            fill(x->p, x->n, x->seed);
        } else {
            REQUIRE(intact(x->p, x->n, x->seed));
            arena_free(x->p);
            x->p = NULL;
        }
        const char *why = arena_check_why();
        if (why != NULL) {
            printf("    op %zu: %s\n", i, why);
            REQUIRE(why == NULL);
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (s[i].p != NULL) {
            CHECK(intact(s[i].p, s[i].n, s[i].seed));
            arena_free(s[i].p);
        }
    arena_thread_flush();
    CHECK(sound());
    arena_stats_t st = arena_stats();
    CHECK_EQ(st.mmapped_chunks, 0);
    CHECK_EQ(st.in_use_bytes, 0);
}

static void test_random_default(void)
{
    random_run(7, 120);
}
static void test_random_no_cache(void)
{
    random_run(0, 120);
}
static void test_random_no_cache_no_fast_bins(void)
{
    random_run(0, 0);
}
static void test_random_big_cache(void)
{
    random_run(100, 160);
}

/* ---- Threads ------------------------------------------------------------ */

typedef struct arena_probe {
    unsigned index; /* the arena the thread got */
    void *block;    /* one block it allocated */
} arena_probe;

static void *probe_thread(void *arg)
{
    arena_probe *r = arg;
    r->block = arena_malloc(100);
    r->index = thread_self()->arena->index;
    return NULL;
}

/* A thread gets an arena of its own; an arena whose thread exited goes to
 * the next new thread; a chunk goes back to its own arena. */
static void test_threads_get_their_own_arenas(void)
{
    fresh();
    void *mine = arena_malloc(10); /* this thread: the main arena */
    REQUIRE(mine != NULL);
    CHECK_EQ(thread_self()->arena->index, 0);
    arena_probe a = {0, NULL}, b = {0, NULL};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, probe_thread, &a) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(a.index, 1);
    CHECK(head(chunk_of(a.block)) & NON_MAIN_ARENA);
    CHECK_EQ(heap_of(a.block)->ar->index, 1);
    CHECK_EQ(heap_of(a.block)->ar->attached, 0); /* its thread is gone */
    REQUIRE(pthread_create(&t, NULL, probe_thread, &b) == 0);
    pthread_join(t, NULL);
    CHECK_EQ(b.index, 1); /* reused: the free list of arenas */
    /* Freed here, a block goes back to its arena (through this thread's
     * cache, which is flushed). */
    arena_free(a.block);
    arena_free(b.block);
    arena_free(mine);
    arena_thread_flush();
    CHECK(sound());
    CHECK_EQ(arena_stats().in_use_bytes, 0);
}

typedef struct limit_arg {
    pthread_barrier_t *start;
    unsigned index;
} limit_arg;

static void *limited_thread(void *arg)
{
    limit_arg *l = arg;
    pthread_barrier_wait(l->start);
    void *p = arena_malloc(64);
    l->index = thread_self()->arena->index;
    arena_free(p);
    pthread_barrier_wait(l->start);
    return NULL;
}

/* With ARENA_ARENA_MAX = 2, four threads share two arenas. */
static void test_arena_limit_shares_arenas(void)
{
    fresh();
    arena_set(ARENA_ARENA_MAX, 2);
    void *mine = arena_malloc(10);
    enum { N = 4 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    limit_arg args[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        args[i].start = &start;
        REQUIRE(pthread_create(&t[i], NULL, limited_thread, &args[i]) == 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < N; i++)
        CHECK_LE(args[i].index, 1);
    CHECK_EQ(arena_stats().arenas, 2);
    arena_free(mine);
    CHECK(sound());
}

/* Producers and consumers: every block freed by another thread than the
 * one that allocated it, checked by content. */
typedef struct pc_queue {
    pthread_mutex_t lock;
    unsigned char *items[256];
    size_t sizes[256];
    size_t head, tail;
    int bad;
} pc_queue;

static void *producer(void *arg)
{
    pc_queue *q = arg;
    uint64_t r = (uintptr_t)arg;
    for (size_t i = 0; i < test_scale(20000);) {
        r = r * 6364136223846793005u + 1442695040888963407u;
        size_t n = 1 + (size_t)(r >> 33) % ((r >> 20) % 16 == 0 ? 300000 : 600);
        unsigned char *p = arena_malloc(n);
        if (p == NULL) {
            __atomic_add_fetch(&q->bad, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        memset(p, (int)(n & 0xFF), n);
        pthread_mutex_lock(&q->lock);
        if (q->head - q->tail < 256) {
            q->items[q->head % 256] = p;
            q->sizes[q->head % 256] = n;
            q->head++;
            i++;
            p = NULL;
        }
        pthread_mutex_unlock(&q->lock);
        if (p != NULL) /* full: free it here */
            arena_free(p);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pc_queue *q = arg;
    for (;;) {
        unsigned char *p = NULL;
        size_t n = 0;
        pthread_mutex_lock(&q->lock);
        if (q->head != q->tail) {
            p = q->items[q->tail % 256];
            n = q->sizes[q->tail % 256];
            q->tail++;
        } else if (q->bad < 0) {
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        pthread_mutex_unlock(&q->lock);
        if (p == NULL) {
            sched_yield();
            continue;
        }
        if (p[0] != (n & 0xFF) || p[n - 1] != (n & 0xFF))
            __atomic_add_fetch(&q->bad, 1, __ATOMIC_RELAXED);
        arena_free(p);
    }
}

static void test_frees_from_other_threads(void)
{
    fresh();
    pc_queue q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.lock, NULL);
    pthread_t p1, p2, c1, c2;
    REQUIRE(pthread_create(&p1, NULL, producer, &q) == 0);
    REQUIRE(pthread_create(&p2, NULL, producer, &q) == 0);
    REQUIRE(pthread_create(&c1, NULL, consumer, &q) == 0);
    REQUIRE(pthread_create(&c2, NULL, consumer, &q) == 0);
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    pthread_mutex_lock(&q.lock);
    int bad = q.bad;
    q.bad = -1; /* the consumers finish the queue, then stop */
    pthread_mutex_unlock(&q.lock);
    pthread_join(c1, NULL);
    pthread_join(c2, NULL);
    CHECK_EQ(bad, 0);
    CHECK_EQ(q.head, q.tail);
    pthread_mutex_destroy(&q.lock);
    CHECK(sound());
    CHECK_EQ(arena_stats().in_use_bytes, 0);
    CHECK_GE(arena_stats().arenas, 3);
}

/* fork while another thread allocates: the child can allocate. */
static int churn_stop;
static void *churner(void *arg)
{
    (void)arg;
    size_t n = 1;
    while (!__atomic_load_n(&churn_stop, __ATOMIC_RELAXED)) {
        void *p = arena_malloc(n);
        arena_free(p);
        n = n % 3000 + 17;
    }
    return NULL;
}

static void test_fork_with_a_busy_thread(void)
{
    fresh();
    __atomic_store_n(&churn_stop, 0, __ATOMIC_RELAXED);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, churner, NULL) == 0);
    int children_ok = 0;
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            void *p = arena_malloc(1000);
            memset(p, 1, 1000);
            arena_free(p);
            /* The verdict through exec, not exit: the other thread's block
             * and cache, live at the fork, have no owner in the child, and
             * a memory tool's leak check at exit would count them. */
            execl("/bin/sh", "sh", "-c", arena_check() ? "exit 0" : "exit 3",
                  (char *)NULL);
            _exit(4);
        }
        int status = 0;
        for (int w = 0; w < 500 && waitpid(pid, &status, WNOHANG) == 0; w++)
            usleep(10000);
        if (waitpid(pid, &status, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok)
            printf("    child %d: status 0x%x\n", i, status);
        children_ok += ok;
    }
    __atomic_store_n(&churn_stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    CHECK_EQ(children_ok, 20);
    CHECK(sound());
}

/* Under an address-space limit, eight threads still get memory: arenas that
 * cannot get a heap are not made (the threads share), and when not even
 * one 64 MB heap fits, a smaller one is reserved, still at an aligned
 * address. In a child: the limit is for the whole process. */
static void *limited_alloc(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 2000; i++) {
        void *p = arena_malloc((size_t)(i % 50) * 100 + 1);
        if (p == NULL)
            __atomic_add_fetch(bad, 1, __ATOMIC_RELAXED);
        arena_free(p);
    }
    return NULL;
}

/* The child: room for the process as it is plus `room` bytes. Exit 0 if
 * every allocation was served, the heap sound, and (when `small`) the main
 * arena's heap is a smaller one. */
static void limited_child(size_t room, bool small)
{
    FILE *f = fopen("/proc/self/statm", "r");
    char line[128] = {0};
    if (f == NULL || fgets(line, sizeof line, f) == NULL)
        _exit(2);
    fclose(f);
    unsigned long pages = strtoul(line, NULL, 10);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = pages * page_size() + room;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(2);
    int bad = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        if (pthread_create(&t[i], &attr, limited_alloc, &bad) != 0)
            _exit(4);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    bool shape = !small || (main_arena.heap != NULL &&
                            main_arena.heap->reserved < ARENA_HEAP_SIZE);
    _exit(bad == 0 && arena_check() && shape ? 0 : 1);
}

static void test_address_space_limit(void)
{
    if (TRACK_ENABLED || UNDER_TSAN) {
        test_skip("the tools reserve address space of their own");
        return;
    }
    const size_t rooms[2] = {(size_t)150 << 20, (size_t)40 << 20};
    for (int i = 0; i < 2; i++) {
        fresh();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
            limited_child(rooms[i], i == 1);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
}

/* ---- The drawing -------------------------------------------------------- */

static void test_dump_draws_arenas_bins_and_caches(void)
{
    fresh();
    void *a = arena_malloc(3000), *b = arena_malloc(40), *g = arena_malloc(8);
    REQUIRE(a && b && g);
    arena_free(a);
    arena_free(b);
    settle();
    FILE *f = tmpfile();
    REQUIRE(f != NULL);
    arena_dump(f);
    char text[16384] = {0};
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    CHECK_GE(n, 200);
    CHECK_NOT_NULL(strstr(text, "arena 0 (main)"));
    CHECK_NOT_NULL(strstr(text, "top chunk:"));
    CHECK_NOT_NULL(strstr(text, "unsorted bin: 1 chunk"));
    CHECK_NOT_NULL(strstr(text, "binmap"));
    CHECK_NOT_NULL(strstr(text, "thread 1 (this one)"));
    char line[64];
    snprintf(line, sizeof line, "[%zu B] 1", arena_chunk_size(40));
    CHECK_NOT_NULL(strstr(text, line)); /* b in this thread's cache */
    /* The heap's rows draw b as 't' and a, free in its bin, as '.'. */
    const char *rows = strstr(text, "one cell = ");
    REQUIRE(rows != NULL);
    rows = strchr(rows, '\n');
    const char *rows_end = strstr(text, "top chunk:");
    REQUIRE(rows != NULL && rows_end != NULL && rows < rows_end);
    CHECK_NOT_NULL(memchr(rows, 't', (size_t)(rows_end - rows)));
    CHECK_NOT_NULL(memchr(rows, '.', (size_t)(rows_end - rows)));
    arena_free(g);
}

/* ---- Traces: replays with arena_check() after every op ------------------ */

static int trace_token;
static void *trace_create(void)
{
    arena_teardown();
    return &trace_token;
}
static void trace_destroy(void *ctx)
{
    (void)ctx;
    arena_teardown();
}
static void *trace_alloc_fn(void *ctx, size_t n)
{
    (void)ctx;
    return arena_malloc(n);
}
static void trace_free_fn(void *ctx, void *p)
{
    (void)ctx;
    arena_free(p);
}
static void *trace_realloc_fn(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return arena_realloc(p, n);
}
static size_t trace_footprint_fn(void *ctx)
{
    (void)ctx;
    return arena_footprint();
}
static bool trace_check_fn(void *ctx)
{
    (void)ctx;
    return arena_check();
}

static const trace_alloc arena_trace = {
    .name = "05-arena",
    .create = trace_create,
    .destroy = trace_destroy,
    .alloc = trace_alloc_fn,
    .free = trace_free_fn,
    .realloc = trace_realloc_fn,
    .footprint = trace_footprint_fn,
    .check = trace_check_fn,
    .align = ARENA_ALIGN,
};

static void replay_checked(const trace_t *t)
{
    trace_options opt = {.check_each_op = true, .timing_reps = 0};
    trace_result r;
    int rc = trace_replay(t, &arena_trace, &opt, &r);
    if (rc != 0)
        printf("    %s: %s\n", t->name, r.error);
    CHECK_INT_EQ(rc, 0);
    CHECK(r.utilization > 0.0 && r.utilization <= 1.0);
}

static void test_traces_generated_replay_checked(void)
{
    trace_t t;
    REQUIRE(trace_gen_holes(test_scale(60), 48, 2000, &t) == 0);
    replay_checked(&t);
    trace_free(&t);
    REQUIRE(trace_gen_pairs(test_scale(200), 200, &t) == 0);
    replay_checked(&t);
    trace_free(&t);
    REQUIRE(trace_gen_realloc_grow(test_scale(300), 64, 48, 40, &t) == 0);
    replay_checked(&t);
    trace_free(&t);
}

static void test_traces_recorded_replay_checked(void)
{
    trace_t t;
    char err[TRACE_ERROR_MAX];
    if (trace_read_err("../common/traces/sort-3000-lines.rep", &t, err,
                       sizeof err) != 0) {
        printf("    %s\n", err);
        CHECK(false);
        return;
    }
    replay_checked(&t);
    trace_free(&t);
}

/* ---- The conformance suite ---------------------------------------------- */

static int conform_token;
static void *conform_create(void)
{
    arena_teardown();
    return &conform_token;
}
static void *conform_create_bare(void)
{
    arena_teardown();
    bins_only();
    return &conform_token;
}
static void conform_destroy(void *a)
{
    (void)a;
    arena_teardown();
}
/* A reset is a teardown (every block gone, the heaps unmapped), the
 * configuration made again. */
static void conform_reset(void *a)
{
    (void)a;
    arena_teardown();
}
static void conform_reset_bare(void *a)
{
    (void)a;
    arena_teardown();
    bins_only();
}
static void *conform_alloc(void *a, size_t n)
{
    (void)a;
    return arena_malloc(n);
}
static void conform_free(void *a, void *p, size_t n)
{
    (void)a, (void)n;
    arena_free(p);
}
static void *conform_realloc(void *a, void *p, size_t old, size_t n)
{
    (void)a, (void)old;
    return arena_realloc(p, n);
}
static bool conform_check(void *a)
{
    (void)a;
    return arena_check();
}

#define ARENA_CONFORM(label, create_fn, reset_fn)                              \
    {                                                                          \
        .name = (label),                                                       \
        .caps = CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC |            \
                CONFORM_THREADSAFE,                                            \
        .align = ARENA_ALIGN, .max_size = (size_t)1 << 20, .capacity = 0,      \
        .create = (create_fn), .destroy = conform_destroy,                     \
        .alloc = conform_alloc, .free = conform_free,                          \
        .realloc = conform_realloc, .reset = (reset_fn),                       \
        .check = conform_check,                                                \
    }

static const conform_ops conform_default =
    ARENA_CONFORM("05-arena", conform_create, conform_reset);
static const conform_ops conform_bare = ARENA_CONFORM(
    "05-arena no cache, no fast bins", conform_create_bare, conform_reset_bare);

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_malloc_aligns_every_size);
    RUN_TEST(test_malloc_zero_gives_unique_blocks);
    RUN_TEST(test_huge_sizes_give_enomem);
    RUN_TEST(test_chunks_follow_each_other);
    RUN_TEST(test_cache_gives_back_the_last_freed);
    RUN_TEST(test_cache_holds_seven_per_size);
    RUN_TEST(test_miss_fills_the_cache);
    RUN_TEST(test_fast_chunks_merge_only_when_consolidated);
    RUN_TEST(test_unsorted_then_sorted);
    RUN_TEST(test_last_remainder_keeps_small_requests_together);
    RUN_TEST(test_large_bin_best_fit);
    RUN_TEST(test_binmap_finds_the_next_bin);
    RUN_TEST(test_free_merges_both_ways_and_into_top);
    RUN_TEST(test_top_grows_then_trims);
    RUN_TEST(test_full_heap_chains_a_new_one);
    RUN_TEST(test_trim_gives_back_free_pages);
    RUN_TEST(test_mmap_threshold_moves_up);
    RUN_TEST(test_realloc_mapped_chunk);
    RUN_TEST(test_realloc_in_place);
    RUN_TEST(test_realloc_edge_cases);
    RUN_TEST(test_calloc_zeroes_reused_memory);
    RUN_TEST(test_calloc_skips_fresh_memory);
    RUN_TEST(test_memalign_every_power_of_two);
    RUN_TEST(test_memalign_rejects_bad_alignment);
    RUN_TEST(test_usable_size_and_settings);
    RUN_TEST(test_misuse_is_reported);
    RUN_TEST(test_check_catches_footer_mismatch);
    RUN_TEST(test_check_catches_unmerged_neighbours);
    RUN_TEST(test_check_catches_lost_bin_node);
    RUN_TEST(test_check_catches_wrong_bin);
    RUN_TEST(test_check_catches_bad_cache_entry);
    RUN_TEST(test_check_catches_bad_fast_bin);
    RUN_TEST(test_check_catches_wrong_arena_bit);
    RUN_TEST(test_free_keeps_errno_when_munmap_fails);
    RUN_TEST(test_free_keeps_errno_when_madvise_fails);
    RUN_TEST(test_free_keeps_errno_when_heap_unmap_fails);
    RUN_TEST(test_mprotect_refused_falls_back);
    RUN_TEST(test_mmap_refused_gives_enomem);
    RUN_TEST(test_random_default);
    RUN_TEST(test_random_no_cache);
    RUN_TEST(test_random_no_cache_no_fast_bins);
    RUN_TEST(test_random_big_cache);
    RUN_TEST(test_threads_get_their_own_arenas);
    RUN_TEST(test_arena_limit_shares_arenas);
    RUN_TEST(test_frees_from_other_threads);
    RUN_TEST(test_fork_with_a_busy_thread);
    RUN_TEST(test_address_space_limit);
    RUN_TEST(test_dump_draws_arenas_bins_and_caches);
    RUN_TEST(test_traces_generated_replay_checked);
    RUN_TEST(test_traces_recorded_replay_checked);
    conform_run(&conform_default);
    conform_run(&conform_bare);
    arena_teardown();
    return test_finish();
}
