/*
 * test_fl.c: unit tests of every fl_* function and error path, the three
 * placement policies told apart (next fit's rover and wrap-around step by
 * step), splitting and coalescing observed, regions mapped and returned,
 * errno kept when the OS refuses to take a region back (common/fault.h),
 * each misuse report, fl_check() after every operation of random runs,
 * fl_check() proven to catch a broken heap (seven ways), and the conformance
 * suite for each policy and, behind one lock, with threads.
 */
#include "annotate.h"
#include "conform.h"
#include "fault.h"
#include "fl.h"
#include "test.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* A checked build, as fl.c counts it: ALLOC_DEBUG (every annotated build
 * is one: fl_internal.h refuses a tool build without it). */
#if defined(ALLOC_DEBUG)
#define CHECKED 1
#else
#define CHECKED 0
#endif

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

/* A freed chunk may wait in the quarantine (checked builds): tests that
 * watch coalescing or reuse release it first. */
static void settle(fl_heap *h)
{
    fl_quarantine_flush(h);
}

/* fl_check(), saying which invariant is broken when it fails. A test that
 * goes on using a heap after a check (fl_stats walks the free list, a free
 * follows a footer) REQUIREs it: a broken heap is reported as a failed
 * check, not as the crash or the endless walk that using it would be. */
static bool heap_sound(const fl_heap *h)
{
    const char *why = fl_check_why(h);
    if (why != NULL)
        printf("    fl_check_why: %s\n", why);
    return why == NULL;
}

/* Metadata words are no-access to the memory tools: open them to look. */
static uint64_t raw_get(void *at)
{
    uint64_t w;
    track_mem_defined(at, 8);
    memcpy(&w, at, 8);
    track_mem_noaccess(at, 8);
    return w;
}

static void raw_set(void *at, uint64_t w)
{
    track_mem_undefined(at, 8);
    memcpy(at, &w, 8);
    track_mem_noaccess(at, 8);
}

static char *chunk(void *p)
{
    return (char *)p - FL_HEADER;
}

/* A block that gets a region of its own, which goes back to the OS as soon
 * as the block is freed: 4 MiB, far above what a heap keeps mapped for
 * reuse (one 64 KiB region here; up to 1 MiB after the README's exercise
 * 3), so that the tests built on it do not depend on that rule. */
#define BIG ((size_t)4 << 20)

// clang-format off
/* ---- Creating and ending heaps ------------------------------------------ */
// clang-format on

static void test_init_rejects_unknown_policy(void)
{
    fl_heap h;
    errno = 0;
    CHECK_INT_EQ(fl_init(&h, (fl_policy)7), -1);
    CHECK_INT_EQ(errno, EINVAL);
    CHECK_INT_EQ(fl_init(&h, FL_BEST_FIT), 0);
    CHECK(fl_check(&h));
    CHECK_EQ(fl_stats(&h).footprint, 0); /* nothing mapped before an alloc */
    CHECK_EQ(fl_destroy(&h), 0);
}

static void test_destroy_counts_live_blocks(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 10), *b = fl_alloc(&h, 200000);
    CHECK_NOT_NULL(a);
    CHECK_NOT_NULL(b);
    fl_free(&h, fl_alloc(&h, 30));
    CHECK_EQ(fl_stats(&h).regions, 2);
    CHECK_EQ(fl_destroy(&h), 2);
    CHECK_EQ(fl_stats(&h).footprint, 0);
    CHECK(fl_check(&h));
}

// clang-format off
/* ---- Allocation --------------------------------------------------------- */
// clang-format on

static void test_alloc_aligns_every_size(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *p[300];
    for (size_t n = 0; n < 300; n++) {
        p[n] = fl_alloc(&h, n * 7);
        REQUIRE(p[n] != NULL);
        CHECK(is_aligned(p[n], FL_ALIGN));
        CHECK_GE(fl_usable_size(&h, p[n]), n * 7);
        memset(p[n], (int)n, n * 7);
    }
    CHECK(fl_check(&h));
    for (size_t n = 0; n < 300; n++) {
        const unsigned char *b = p[n];
        for (size_t i = 0; i < n * 7; i++)
            if (b[i] != (unsigned char)n) {
                CHECK_EQ(b[i], n);
                break;
            }
        fl_free(&h, p[n]);
        /* Each free (in checked builds, each release from the quarantine)
         * merges with the chunk before it: the heap must stay sound. */
        REQUIRE(heap_sound(&h));
    }
    fl_destroy(&h);
}

static void test_alloc_zero_gives_unique_blocks(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 0), *b = fl_alloc(&h, 0);
    CHECK_NOT_NULL(a);
    CHECK_NOT_NULL(b);
    CHECK(a != b);
    CHECK_EQ(fl_stats(&h).live_blocks, 2);
    CHECK_EQ(fl_stats(&h).live_bytes, 0);
    fl_free(&h, a);
    fl_free(&h, b);
    fl_free(&h, NULL); /* does nothing */
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_huge_sizes_give_enomem(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    const size_t bad[] = {SIZE_MAX, SIZE_MAX - 7, SIZE_MAX / 2 + 1,
                          FL_MAX_REQUEST + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(fl_alloc(&h, bad[i]));
        CHECK_INT_EQ(errno, ENOMEM);
        errno = 0;
        CHECK_NULL(fl_aligned_alloc(&h, 64, bad[i]));
        CHECK_INT_EQ(errno, ENOMEM);
    }
    errno = 0;
    CHECK_NULL(fl_calloc(&h, SIZE_MAX / 2 + 1, 2)); /* product overflows */
    CHECK_INT_EQ(errno, ENOMEM);
    errno = 0;
    CHECK_NULL(fl_calloc(&h, 3, SIZE_MAX / 2));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fl_stats(&h).footprint, 0); /* nothing was mapped for them */
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_calloc_zeroes_reused_memory(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    unsigned char *a = fl_alloc(&h, 500);
    REQUIRE(a != NULL);
    memset(a, 0xFF, 500);
    fl_free(&h, a);
    settle(&h);
    unsigned char *z = fl_calloc(&h, 50, 10);
    REQUIRE(z != NULL);
    CHECK_PTR_EQ(z, a); /* the dirty chunk came back (first fit, LIFO) */
    size_t nonzero = 0;
    for (size_t i = 0; i < 500; i++)
        nonzero += z[i] != 0;
    CHECK_EQ(nonzero, 0);
    CHECK_NOT_NULL(fl_calloc(&h, 0, 10)); /* a unique block, like malloc(0) */
    fl_destroy(&h);
}

// clang-format off
/* ---- Splitting, coalescing, placement ----------------------------------- */
// clang-format on

static void test_split_keeps_the_rest_free(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *p = fl_alloc(&h, 100); /* a chunk of 112 bytes */
    REQUIRE(p != NULL);
    fl_stats_t s = fl_stats(&h);
    CHECK_EQ(s.footprint, FL_REGION_MIN);
    CHECK_EQ(s.free_chunks, 1);
    CHECK_EQ(s.free_bytes, FL_REGION_MIN - 48 - 112);
    /* The next block is cut from the remainder, right after the first. */
    void *q = fl_alloc(&h, 24);
    CHECK_PTR_EQ(q, (char *)p + 112);
    CHECK_EQ(fl_stats(&h).free_bytes, FL_REGION_MIN - 48 - 112 - 32);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_small_leftover_is_not_split(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 56), *sep = fl_alloc(&h, 8); /* a: 64-byte chunk */
    REQUIRE(a != NULL && sep != NULL);
    fl_free(&h, a);
    settle(&h);
    /* 40 bytes need a 48-byte chunk: 16 left over is not a chunk. */
    void *b = fl_alloc(&h, 40);
    CHECK_PTR_EQ(b, a);
    if (!TRACK_ENABLED)
        CHECK_EQ(fl_usable_size(&h, b), 56);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_coalesce_with_both_neighbours(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *a = fl_alloc(&h, 200), *b = fl_alloc(&h, 300), *c = fl_alloc(&h, 400);
    void *guard = fl_alloc(&h, 10); /* keeps c from merging with the rest */
    REQUIRE(a && b && c && guard);
    size_t before = fl_stats(&h).free_chunks; /* the region's rest */
    fl_free(&h, a);
    fl_free(&h, c);
    settle(&h);
    REQUIRE(heap_sound(&h));
    CHECK_EQ(fl_stats(&h).free_chunks, before + 2);
    fl_free(&h, b); /* merges with a (before it) and c (after it) */
    settle(&h);
    REQUIRE(heap_sound(&h));
    CHECK_EQ(fl_stats(&h).free_chunks, before + 1);
    /* The merged chunk holds a block exactly as big as the three chunks
     * (208, 320 and 416 bytes) together, less one header. */
    size_t merged = 208 + 320 + 416 - 8;
    void *big = fl_alloc(&h, merged);
    CHECK_PTR_EQ(big, a);
    CHECK_EQ(fl_stats(&h).free_chunks, before);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

/*
 * Three holes of 1008, 208 and 512-byte chunks, freed so that the LIFO list
 * reads big -> small -> medium -> region's tail. A 150-byte request
 * (160-byte chunk) fits every one of them, and each policy picks another:
 * holes[0..2] are big, small, medium; holes[3] is where a block cut from
 * the region's tail starts (just after s3, a 32-byte chunk).
 */
static void *pick_for_policy(fl_policy pol, char **holes)
{
    fl_heap *h = malloc(sizeof *h);
    fl_init(h, pol);
    char *medium = fl_alloc(h, 500);
    void *s1 = fl_alloc(h, 10);
    char *small = fl_alloc(h, 200);
    void *s2 = fl_alloc(h, 10);
    char *big = fl_alloc(h, 1000);
    char *s3 = fl_alloc(h, 10);
    fl_free(h, medium);
    fl_free(h, small);
    fl_free(h, big);
    settle(h);
    holes[0] = big;
    holes[1] = small;
    holes[2] = medium;
    holes[3] = s3 + FL_MIN_CHUNK;
    void *p = fl_alloc(h, 150);
    bool ok = fl_check(h);
    (void)s1, (void)s2;
    fl_destroy(h);
    free(h);
    return ok ? p : NULL;
}

static void test_policies_pick_different_chunks(void)
{
    char *holes[4] = {NULL, NULL, NULL, NULL};
    /* First fit: the list head, the hole freed last (LIFO). */
    void *first = pick_for_policy(FL_FIRST_FIT, holes);
    CHECK_PTR_EQ(first, holes[0]);
    /* Best fit: the smallest hole that fits. */
    void *best = pick_for_policy(FL_BEST_FIT, holes);
    CHECK_PTR_EQ(best, holes[1]);
    /* Next fit: where the last search stopped, the region's tail, which the
     * six blocks were cut from one after another; not any hole. */
    void *next = pick_for_policy(FL_NEXT_FIT, holes);
    CHECK_PTR_EQ(next, holes[3]);
}

/*
 * Next fit, step by step: it resumes at the rover (where the previous
 * search stopped), and when nothing from there to the end fits it wraps
 * around to the list head. Holes A (1008-byte chunk), B (112) and C (512),
 * in address order, freed from the highest down so that the list reads
 * A -> B -> C (in LIFO order, and in address order too), and the rest of
 * the region allocated, so that no tail can catch a search.
 */
static void test_next_fit_resumes_at_the_rover_and_wraps(void)
{
    fl_heap h;
    fl_init(&h, FL_NEXT_FIT);
    char *a = fl_alloc(&h, 1000);
    void *s1 = fl_alloc(&h, 10);
    char *b = fl_alloc(&h, 100);
    void *s2 = fl_alloc(&h, 10);
    char *c = fl_alloc(&h, 500);
    void *s3 = fl_alloc(&h, 10);
    REQUIRE(a && s1 && b && s2 && c && s3);
    size_t tail = fl_stats(&h).free_bytes; /* one chunk: the region's rest */
    void *rest = fl_alloc(&h, tail - FL_HEADER);
    REQUIRE(rest != NULL);
    REQUIRE(fl_stats(&h).free_chunks == 0);
    fl_free(&h, c);
    fl_free(&h, b);
    fl_free(&h, a);
    settle(&h);
    REQUIRE(fl_stats(&h).free_chunks == 3);

    /* With no rover yet, the search starts at the head: A. It is split,
     * and the rover moves to the rest of A. */
    char *r1 = fl_alloc(&h, 400); /* a 416-byte chunk */
    CHECK_PTR_EQ(r1, a);
    char *r2 = fl_alloc(&h, 550); /* 560: leaves a 32-byte rest of A */
    CHECK_PTR_EQ(r2, a + 416);
    /* From the 32-byte rest: too small; B too; C fits. */
    char *r3 = fl_alloc(&h, 300); /* 320 */
    CHECK_PTR_EQ(r3, c);
    /* Resumes at C's rest, although B (nearer the head) fits: first fit
     * would take B. */
    char *r4 = fl_alloc(&h, 50); /* 64 */
    CHECK_PTR_EQ(r4, c + 320);
    /* Free r1: a 416-byte chunk at the head. The rover is on C's 128-byte
     * rest, the list's last node: nothing from there fits 416 bytes, and
     * the search wraps around to the head instead of mapping a region. */
    fl_free(&h, r1);
    settle(&h);
    char *r5 = fl_alloc(&h, 400);
    CHECK_PTR_EQ(r5, a);
    CHECK_EQ(fl_stats(&h).regions, 1);
    CHECK_EQ(fl_stats(&h).mmaps, 1);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_best_fit_takes_exact_fit(void)
{
    fl_heap h;
    fl_init(&h, FL_BEST_FIT);
    void *a = fl_alloc(&h, 1000), *s1 = fl_alloc(&h, 1);
    void *b = fl_alloc(&h, 100), *s2 = fl_alloc(&h, 1);
    REQUIRE(a && b && s1 && s2);
    fl_free(&h, b);
    fl_free(&h, a);
    settle(&h);
    CHECK_PTR_EQ(fl_alloc(&h, 100), b);
    CHECK_EQ(strcmp(fl_policy_name(FL_BEST_FIT), "best-fit"), 0);
    fl_set_policy(&h, FL_FIRST_FIT);
    CHECK_PTR_EQ(fl_alloc(&h, 100), a); /* now the head of the list wins */
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

// clang-format off
/* ---- Regions ------------------------------------------------------------ */
// clang-format on

static void test_large_block_gets_its_own_region(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *small = fl_alloc(&h, 64);
    void *big = fl_alloc(&h, BIG);
    REQUIRE(small && big);
    fl_stats_t s = fl_stats(&h);
    CHECK_EQ(s.regions, 2);
    CHECK_EQ(s.mmaps, 2);
    CHECK_GE(s.footprint, FL_REGION_MIN + BIG);
    fl_free(&h, big);
    settle(&h);
    s = fl_stats(&h);
    CHECK_EQ(s.regions, 1); /* the big region went back to the OS */
    CHECK_EQ(s.munmaps, 1);
    CHECK_EQ(s.footprint, FL_REGION_MIN);
    CHECK_GE(s.peak_footprint, FL_REGION_MIN + BIG);
    fl_free(&h, small);
    settle(&h);
    s = fl_stats(&h);
    CHECK_EQ(s.regions, 1); /* the last 64 KiB region is kept */
    CHECK_EQ(s.free_chunks, 1);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

/* A request whose chunk, with the 48 bytes of region header and fenceposts
 * that every region also holds, just fits whole pages or just misses them:
 * the region must hold the chunk and its own overhead both. Every 8 bytes
 * around 64 KiB (the smallest region), 128 KiB and 1 MiB (regions of their
 * own), each on a fresh heap. */
static void test_region_holds_chunk_and_overhead(void)
{
    const size_t ends[] = {FL_REGION_MIN, 2 * FL_REGION_MIN, (size_t)1 << 20};
    for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++)
        for (size_t n = ends[e] - 96; n <= ends[e] + 16; n += 8) {
            fl_heap h;
            fl_init(&h, FL_FIRST_FIT);
            unsigned char *p = fl_alloc(&h, n);
            REQUIRE(p != NULL);
            memset(p, 0x3C, n);
            REQUIRE(heap_sound(&h));
            CHECK_GE(fl_stats(&h).footprint, n + FL_HEADER + 48);
            fl_free(&h, p);
            settle(&h);
            REQUIRE(heap_sound(&h));
            fl_destroy(&h);
        }
}

static void test_empty_regions_go_back_to_the_os(void)
{
    fl_heap h;
    fl_init(&h, FL_NEXT_FIT);
    void *p[64];
    for (size_t i = 0; i < 64; i++) /* 64 x 4000 bytes: several regions */
        REQUIRE((p[i] = fl_alloc(&h, 4000)) != NULL);
    CHECK_GE(fl_stats(&h).regions, 4);
    for (size_t i = 0; i < 64; i++)
        fl_free(&h, p[i]);
    settle(&h);
    fl_stats_t s = fl_stats(&h);
    CHECK_LE(s.regions, 1);
    CHECK_LE(s.footprint, FL_REGION_MIN);
    CHECK_EQ(s.munmaps + s.regions, s.mmaps);
    CHECK_EQ(s.live_bytes, 0);
    CHECK_EQ(s.peak_live, 64 * 4000);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

// clang-format off
/* ---- When the OS refuses to take a region back -------------------------- */
// clang-format on

/*
 * munmap can fail (at the limit on the number of mappings, vm.max_map_count,
 * splitting a mapping needs one more). free must then leave errno as it
 * found it (POSIX asks it of free), lose nothing and corrupt nothing. The
 * test programs are linked so that common/fault.h can make the next munmap
 * fail; fault_failed() proves that the refused call really happened.
 */

/* In checked builds a freed chunk waits in the quarantine and is released
 * when FL_QUARANTINE later frees push it out. Frees p, then the
 * FL_QUARANTINE blocks of `pushers`, so that p's chunk is released, and its
 * region unmapped, inside a call to fl_free in every build. True when errno
 * was the same after each call. */
static bool free_keeps_errno(fl_heap *h, void *p, void **pushers)
{
    bool kept = true;
    errno = 1234;
    fl_free(h, p);
    kept = kept && errno == 1234;
    for (size_t i = 0; i < FL_QUARANTINE; i++) {
        errno = 1234;
        fl_free(h, pushers[i]);
        kept = kept && errno == 1234;
    }
    return kept;
}

static void test_free_keeps_errno_when_munmap_fails(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *anchor = fl_alloc(&h, 100); /* keeps the first region in use */
    void *push[FL_QUARANTINE];
    for (size_t i = 0; i < FL_QUARANTINE; i++)
        REQUIRE((push[i] = fl_alloc(&h, 32)) != NULL);
    void *big = fl_alloc(&h, BIG); /* a region of its own */
    REQUIRE(anchor != NULL && big != NULL);
    fl_stats_t before = fl_stats(&h);
    CHECK_EQ(before.regions, 2);

    fault_arm(FAULT_MUNMAP, 0, 1); /* the next munmap fails (ENOMEM) */
    CHECK(free_keeps_errno(&h, big, push));
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1); /* the unmap was tried */
    fault_disarm();

    /* Nothing lost, nothing corrupted: the region stays, one free chunk on
     * the list, counted in the footprint. */
    CHECK(fl_check(&h));
    fl_stats_t s = fl_stats(&h);
    CHECK_EQ(s.regions, 2);
    CHECK_EQ(s.footprint, before.footprint);
    CHECK_EQ(s.munmaps, before.munmaps);
    CHECK_EQ(s.live_blocks, 1);

    /* And it is used again (no new mmap), and given back the next time it
     * empties. */
    void *again = fl_alloc(&h, BIG);
    CHECK_PTR_EQ(again, big);
    CHECK_EQ(fl_stats(&h).mmaps, before.mmaps);
    fl_free(&h, again);
    settle(&h);
    s = fl_stats(&h);
    CHECK_EQ(s.regions, 1);
    CHECK_EQ(s.munmaps, before.munmaps + 1);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

/* realloc frees too: the old block of a move (or, in checked builds, the
 * quarantined chunk that the move pushes out). */
static void test_realloc_keeps_errno_when_munmap_fails(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *anchor = fl_alloc(&h, 100);
    void *push[FL_QUARANTINE];
    for (size_t i = 0; i < FL_QUARANTINE; i++)
        REQUIRE((push[i] = fl_alloc(&h, 32)) != NULL);
    char *big = fl_alloc(&h, BIG); /* a region of its own */
    REQUIRE(anchor != NULL && big != NULL);
    memset(big, 0x5A, BIG);
    /* The block that fl_realloc moves, and whose free empties big's region:
     * big itself; in checked builds a small block whose free pushes big
     * (the oldest in a full quarantine) out. */
    char *victim = CHECKED ? push[FL_QUARANTINE - 1] : big;
    if (CHECKED) {
        fl_free(&h, big);
        for (size_t i = 0; i + 1 < FL_QUARANTINE; i++)
            fl_free(&h, push[i]);
    }
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    char *moved = fl_realloc(&h, victim, 2 * BIG); /* cannot grow in place */
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    REQUIRE(moved != NULL);
    CHECK(moved != victim);
    if (!CHECKED)
        CHECK_EQ((unsigned char)moved[BIG - 1], 0x5A); /* copied */
    CHECK(fl_check(&h));
    CHECK_EQ(fl_stats(&h).regions, 3); /* first, big's (kept), moved's */
    fl_destroy(&h);
}

/* fl_destroy unmaps every region: one it cannot unmap is left mapped and
 * forgotten (the heap is empty afterwards either way), errno unchanged. */
static void test_destroy_keeps_errno_when_munmap_fails(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    REQUIRE(fl_alloc(&h, 100) != NULL);
    void *region = h.regions;
    size_t bytes = fl_stats(&h).footprint;
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    CHECK_EQ(fl_destroy(&h), 1);
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    CHECK(fl_check(&h));
    CHECK_EQ(fl_stats(&h).footprint, 0);
    CHECK_INT_EQ(munmap(region, bytes), 0); /* ours to give back now */
}

/* Checked builds: fl_quarantine_flush releases chunks, so it may unmap. */
static void test_quarantine_flush_keeps_errno_when_munmap_fails(void)
{
    if (!CHECKED) {
        test_skip("checked builds only");
        return;
    }
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *anchor = fl_alloc(&h, 100), *big = fl_alloc(&h, BIG);
    REQUIRE(anchor != NULL && big != NULL);
    fl_free(&h, big); /* waits in the quarantine */
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    fl_quarantine_flush(&h);
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    CHECK(fl_check(&h));
    CHECK_EQ(fl_stats(&h).regions, 2);
    fl_destroy(&h);
}

// clang-format off
/* ---- realloc ------------------------------------------------------------ */
// clang-format on

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

static void test_realloc_shrinks_in_place(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *p = fl_alloc(&h, 1000);
    void *guard = fl_alloc(&h, 10);
    REQUIRE(p && guard);
    fill(p, 1000, 3);
    size_t free_before = fl_stats(&h).free_bytes;
    char *q = fl_realloc(&h, p, 100);
    CHECK_PTR_EQ(q, p);
    CHECK(intact(q, 100, 3));
    /* The 896-byte tail is a free chunk now. */
    CHECK_EQ(fl_stats(&h).free_bytes, free_before + 1008 - 112);
    CHECK_EQ(fl_stats(&h).live_bytes, 110);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_realloc_grows_into_free_next_chunk(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *p = fl_alloc(&h, 100), *next = fl_alloc(&h, 2000);
    void *guard = fl_alloc(&h, 10);
    REQUIRE(p && next && guard);
    fill(p, 100, 9);
    fl_free(&h, next);
    settle(&h);
    char *q = fl_realloc(&h, p, 1500);
    CHECK_PTR_EQ(q, p); /* grew into the freed neighbour */
    CHECK(intact(q, 100, 9));
    fill(q, 1500, 4);
    CHECK(fl_check(&h));
    /* Growing past neighbour and all: it has to move. */
    char *r = fl_realloc(&h, q, 5000);
    REQUIRE(r != NULL);
    CHECK(r != q);
    CHECK(intact(r, 1500, 4));
    CHECK_EQ(fl_stats(&h).live_bytes, 5010);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

/* A used next chunk is no room to grow into, however big it is: realloc
 * moves the block, and leaves the neighbour's bytes alone. */
static void test_realloc_moves_past_a_used_neighbour(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *p = fl_alloc(&h, 100);
    unsigned char *next = fl_calloc(&h, 1, 2000); /* in use, all zeros */
    void *guard = fl_alloc(&h, 10);
    REQUIRE(p && next && guard);
    fill(p, 100, 5);
    char *q = fl_realloc(&h, p, 1500);
    REQUIRE(q != NULL);
    CHECK(q != p);
    CHECK(intact(q, 100, 5));
    size_t nonzero = 0;
    for (size_t i = 0; i < 2000; i++)
        nonzero += next[i] != 0;
    CHECK_EQ(nonzero, 0);
    CHECK(heap_sound(&h));
    fl_destroy(&h);
}

static void test_realloc_edge_cases(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *p = fl_realloc(&h, NULL, 40); /* realloc(NULL, n) = alloc(n) */
    REQUIRE(p != NULL);
    fill(p, 40, 1);
    errno = 0;
    CHECK_NULL(fl_realloc(&h, p, SIZE_MAX)); /* fails, p untouched */
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK(intact(p, 40, 1));
    CHECK(fl_check(&h));
    CHECK_NULL(fl_realloc(&h, p, 0)); /* realloc(p, 0) frees, as glibc */
    CHECK_EQ(fl_stats(&h).live_blocks, 0);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

// clang-format off
/* ---- Aligned allocation ------------------------------------------------- */
// clang-format on

static void test_aligned_alloc_every_power_of_two(void)
{
    fl_heap h;
    fl_init(&h, FL_BEST_FIT);
    void *p[21];
    for (size_t k = 0; k <= 20; k++) {
        size_t align = (size_t)1 << k;
        p[k] = fl_aligned_alloc(&h, align, 100 + k);
        REQUIRE(p[k] != NULL);
        CHECK(is_aligned(p[k], align));
        memset(p[k], 0x5C, 100 + k);
        CHECK(fl_check(&h));
    }
    for (size_t k = 0; k <= 20; k++)
        fl_free(&h, p[k]);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_aligned_alloc_rejects_bad_alignment(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    const size_t bad[] = {0, 3, 24, 48, 1000, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(fl_aligned_alloc(&h, bad[i], 10));
        CHECK_INT_EQ(errno, EINVAL);
    }
    errno = 0;
    CHECK_NULL(fl_aligned_alloc(&h, (size_t)1 << 62, 10));
    CHECK_INT_EQ(errno, ENOMEM);
    fl_destroy(&h);
}

// clang-format off
/* ---- Statistics and the usable size ------------------------------------- */
// clang-format on

static void test_stats_follow_live_bytes_and_peaks(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 1000), *b = fl_alloc(&h, 3000);
    REQUIRE(a && b);
    fl_stats_t s = fl_stats(&h);
    CHECK_EQ(s.live_bytes, 4000);
    CHECK_EQ(s.live_blocks, 2);
    fl_free(&h, b);
    s = fl_stats(&h);
    CHECK_EQ(s.live_bytes, 1000);
    CHECK_EQ(s.peak_live, 4000);
    CHECK_EQ(s.footprint, FL_REGION_MIN);
    CHECK_EQ(fl_footprint(&h), FL_REGION_MIN);
    CHECK_EQ(fl_usable_size(&h, NULL), 0);
    CHECK_GE(fl_usable_size(&h, a), 1000);
    CHECK_LE(fl_usable_size(&h, a), 1000 + 47);
    fl_destroy(&h);
}

// clang-format off
/* ---- Misuse reports ----------------------------------------------------- */
// clang-format on

static void do_double_free(void *arg)
{
    (void)arg;
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *p = fl_alloc(&h, 40);
    fl_free(&h, p);
    fl_free(&h, p);
}

static void do_realloc_freed(void *arg)
{
    (void)arg;
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *p = fl_alloc(&h, 40);
    fl_free(&h, p);
    fl_realloc(&h, p, 80);
}

static void do_misaligned_free(void *arg)
{
    (void)arg;
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *p = fl_alloc(&h, 40);
    fl_free(&h, p + 1);
}

/* A pointer into a buffer that is not the heap's, whose "header" holds a
 * word with deliberately wrong check bits (so the release build, which does
 * not walk the regions, reports it for certain). */
static void do_foreign_free(void *arg)
{
    (void)arg;
    static _Alignas(16) unsigned char buf[64];
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *keep = fl_alloc(&h, 40);
    (void)keep;
    uint64_t w = fl_header_word(buf + 8, 48, FL_USED | FL_PREV_USED, 0);
    w ^= (uint64_t)1 << 60;
    memcpy(buf + 8, &w, 8);
    fl_free(&h, buf + 16);
}

/* A pointer inside a live block: its "header" is the block's data. */
static void do_interior_free(void *arg)
{
    (void)arg;
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *p = fl_alloc(&h, 100);
    uint64_t w = fl_header_word(p + 8, 48, FL_USED | FL_PREV_USED, 0);
    w ^= (uint64_t)1 << 60;
    memcpy(p + 8, &w, 8);
    fl_free(&h, p + 16);
}

/* A write past a block's end, into the next chunk's header (the test opens
 * the header for the tools: it is the overflow, not the tool, on trial). */
static void do_overflow_then_free(void *arg)
{
    (void)arg;
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *a = fl_alloc(&h, 24), *b = fl_alloc(&h, 24);
    (void)b;
    track_mem_defined(a + 24, 8);
    memset(a + 24, 0x41, 8); /* b's header */
    fl_free(&h, a);
}

static void test_misuse_is_reported(void)
{
    CHECK_ABORTS(do_double_free, NULL, "fl_free");
    CHECK_ABORTS(do_double_free, NULL, "double free");
    CHECK_ABORTS(do_realloc_freed, NULL, "realloc of a freed block");
    CHECK_ABORTS(do_misaligned_free, NULL, "misaligned");
    CHECK_ABORTS(do_foreign_free, NULL, "not a block of this heap");
    CHECK_ABORTS(do_interior_free, NULL, "corrupted header");
    CHECK_ABORTS(do_overflow_then_free, NULL,
                 "corrupted header of the next chunk");
}

/*
 * A double free after the block's chunk merged into a free neighbour. b is
 * freed after a (and, with arg, after c too), so its chunk merges backward
 * into a's (and forward with c's): b's header is left inside the merged
 * free chunk. Each function frees the heap's a (and c), releases the
 * quarantine (checked builds), frees b, releases it, then misuses b once
 * more, as `what` says: 'f' free, 'r' realloc, 'u' usable size.
 */
typedef struct merged_misuse {
    bool both_sides;
    char what;
} merged_misuse;

static void do_misuse_after_merge(void *arg)
{
    const merged_misuse *m = arg;
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 40), *b = fl_alloc(&h, 40), *c = fl_alloc(&h, 40);
    void *guard = fl_alloc(&h, 40); /* c's neighbour stays in use */
    (void)guard;
    fl_free(&h, a);
    if (m->both_sides)
        fl_free(&h, c);
    settle(&h);
    fl_free(&h, b);
    settle(&h); /* b is now inside a's free chunk */
    if (m->what == 'f')
        fl_free(&h, b);
    else if (m->what == 'r')
        (void)fl_realloc(&h, b, 80);
    else
        (void)fl_usable_size(&h, b);
}

static void test_double_free_after_a_merge_is_reported(void)
{
    static const merged_misuse back = {false, 'f'}, both = {true, 'f'},
                               realloc_back = {false, 'r'},
                               realloc_both = {true, 'r'},
                               usable_back = {false, 'u'};
    CHECK_ABORTS(do_misuse_after_merge, (void *)&back, "double free");
    CHECK_ABORTS(do_misuse_after_merge, (void *)&both, "double free");
    CHECK_ABORTS(do_misuse_after_merge, (void *)&realloc_back,
                 "realloc of a freed block");
    CHECK_ABORTS(do_misuse_after_merge, (void *)&realloc_both,
                 "realloc of a freed block");
    CHECK_ABORTS(do_misuse_after_merge, (void *)&usable_back,
                 "block already freed");

    /* What those reports rest on, in every build: the header that the
     * merge left inside the free chunk says "not in use". (In checked
     * builds the quarantine's Q bit would also say it, so without this
     * check a merge that leaves the header as it was goes unseen there.) */
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 40), *b = fl_alloc(&h, 40),
         *guard = fl_alloc(&h, 40);
    REQUIRE(a && b && guard);
    fl_free(&h, a);
    settle(&h);
    fl_free(&h, b);
    settle(&h);
    REQUIRE(heap_sound(&h));
    CHECK_EQ(raw_get(chunk(b)) & (FL_USED | FL_QUARANTINE_BIT), 0);
    fl_destroy(&h);
}

static void test_quarantine_delays_reuse(void)
{
    if (!CHECKED) {
        test_skip("checked builds only");
        return;
    }
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 64);
    fl_free(&h, a);
    void *b = fl_alloc(&h, 64);
    CHECK(b != a); /* a waits in the quarantine */
    CHECK_EQ(h.q_count, 1);
    CHECK(fl_check(&h));
    settle(&h);
    fl_free(&h, b);
    settle(&h);
    CHECK_PTR_EQ(fl_alloc(&h, 64), a); /* released: reused at once */
    CHECK(fl_check(&h));
    fl_destroy(&h);

    /* First in, first out: once the ring is full, each free releases the
     * chunk that has waited longest. c sits between two used chunks, so it
     * is released alone, to the list head, where first fit finds it. */
    fl_init(&h, FL_FIRST_FIT);
    void *guard = fl_alloc(&h, 64), *c = fl_alloc(&h, 64);
    void *later[FL_QUARANTINE];
    for (size_t i = 0; i < FL_QUARANTINE; i++)
        REQUIRE((later[i] = fl_alloc(&h, 64)) != NULL);
    REQUIRE(guard != NULL && c != NULL);
    fl_free(&h, c);
    for (size_t i = 0; i + 1 < FL_QUARANTINE; i++)
        fl_free(&h, later[i]);
    CHECK_EQ(h.q_count, FL_QUARANTINE); /* full: nothing released yet */
    CHECK(fl_alloc(&h, 64) != c);
    fl_free(&h, later[FL_QUARANTINE - 1]); /* pushes the oldest, c, out */
    CHECK_EQ(h.q_count, FL_QUARANTINE);
    CHECK_PTR_EQ(fl_alloc(&h, 64), c);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

// clang-format off
/* ---- fl_check() catches broken heaps ------------------------------------ */
// clang-format on

static bool why_says(const fl_heap *h, const char *words)
{
    const char *why = fl_check_why(h);
    if (why == NULL || strstr(why, words) == NULL) {
        printf("    fl_check_why: %s (expected \"%s\")\n",
               why ? why : "(sound)", words);
        return false;
    }
    return !fl_check(h);
}

static void test_check_catches_footer_mismatch(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *a = fl_alloc(&h, 200), *guard = fl_alloc(&h, 10);
    REQUIRE(a && guard);
    fl_free(&h, a);
    settle(&h);
    REQUIRE(fl_check(&h));
    char *footer = chunk(a) + 208 - 8;
    uint64_t saved = raw_get(footer);
    raw_set(footer, saved ^ 0x10); /* the footer says 16 bytes more */
    CHECK(why_says(&h, "footer does not match header"));
    raw_set(footer, saved);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_check_catches_adjacent_free_chunks(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *a = fl_alloc(&h, 100), *b = fl_alloc(&h, 24), *c = fl_alloc(&h, 10);
    REQUIRE(a && b && c);
    fl_free(&h, a);
    settle(&h);
    /* Mark b free without coalescing it with a (the bug of an allocator
     * that forgets to merge backwards). b's footer slot is its own data. */
    char *bc = chunk(b);
    uint64_t saved_hdr = raw_get(bc), saved_ftr;
    memcpy(&saved_ftr, bc + 24, 8);
    uint64_t w = fl_header_word(bc, 32, 0, 0);
    raw_set(bc, w);
    memcpy(bc + 24, &w, 8);
    CHECK(why_says(&h, "two adjacent free chunks"));
    raw_set(bc, saved_hdr);
    /* fl_check read the fake footer as metadata and closed it: reopen. */
    track_mem_defined(bc + 24, 8);
    memcpy(bc + 24, &saved_ftr, 8);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_check_catches_lost_list_node(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *p[6];
    for (size_t i = 0; i < 6; i++)
        REQUIRE((p[i] = fl_alloc(&h, 50 + 10 * i)) != NULL);
    fl_free(&h, p[0]);
    fl_free(&h, p[2]);
    fl_free(&h, p[4]);
    settle(&h);
    REQUIRE(fl_check(&h));
    /* head -> n1 -> n2: unlink n1 cleanly, both ways. */
    char *head = h.free_head;
    char *n1 = (char *)(uintptr_t)raw_get(head + 8);
    REQUIRE(n1 != NULL);
    char *n2 = (char *)(uintptr_t)raw_get(n1 + 8);
    REQUIRE(n2 != NULL);
    raw_set(head + 8, (uintptr_t)n2);
    raw_set(n2 + 16, (uintptr_t)head);
    CHECK(why_says(&h, "free list lost a chunk"));
    raw_set(head + 8, (uintptr_t)n1);
    raw_set(n2 + 16, (uintptr_t)n1);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_check_catches_bad_prev_link(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *p[6];
    for (size_t i = 0; i < 6; i++)
        REQUIRE((p[i] = fl_alloc(&h, 50 + 10 * i)) != NULL);
    fl_free(&h, p[0]);
    fl_free(&h, p[2]);
    fl_free(&h, p[4]);
    settle(&h);
    REQUIRE(fl_check(&h));
    /* p[2]'s free chunk sits between two nodes (the region's rest is on
     * the list too, so it has a next): the next one's prev link skips it
     * and names p[2]'s own prev. Read forward, the list is whole; read
     * backward, it lost a node. Found from the chunk, not from the head,
     * so the test holds whatever order the list keeps. */
    char *mid = chunk(p[2]);
    char *next = (char *)(uintptr_t)raw_get(mid + 8);
    uint64_t prev = raw_get(mid + 16);
    REQUIRE(next != NULL);
    raw_set(next + 16, prev);
    CHECK(why_says(&h, "free-list links disagree"));
    raw_set(next + 16, (uintptr_t)mid);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_check_catches_misaligned_chunk(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 100), *b = fl_alloc(&h, 10);
    REQUIRE(a && b);
    fl_free(&h, a);
    settle(&h);
    void *saved = h.free_head;
    h.free_head = (char *)saved + 8; /* a list node 8 bytes off */
    CHECK(why_says(&h, "not aligned"));
    h.free_head = saved;
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

/* The ring holds x twice and no longer y, which is still marked Q: the
 * count of entries agrees with the count of Q chunks, and each entry is a
 * Q chunk, but y would never leave the quarantine. */
static void test_check_catches_quarantine_duplicate(void)
{
    if (!CHECKED) {
        test_skip("checked builds only");
        return;
    }
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *x = fl_alloc(&h, 64), *y = fl_alloc(&h, 64);
    REQUIRE(x && y);
    fl_free(&h, x);
    fl_free(&h, y); /* both held: the ring is [x, y] */
    REQUIRE(h.q_count == 2 && heap_sound(&h));
    size_t second = (h.q_first + 1) % FL_QUARANTINE;
    void *saved = h.quarantine[second];
    h.quarantine[second] = h.quarantine[h.q_first];
    CHECK(why_says(&h, "quarantine holds a chunk twice"));
    h.quarantine[second] = saved;
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

static void test_check_catches_bad_check_bits(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    char *a = fl_alloc(&h, 100);
    REQUIRE(a != NULL);
    uint64_t saved = raw_get(chunk(a));
    raw_set(chunk(a), saved ^ ((uint64_t)1 << 40)); /* a size bit flips */
    CHECK(why_says(&h, "check bits"));
    raw_set(chunk(a), saved);
    CHECK(fl_check(&h));
    fl_destroy(&h);
}

// clang-format off
/* ---- Random runs with fl_check() after every operation ------------------ */
// clang-format on

typedef struct slot {
    unsigned char *p;
    size_t n;
    unsigned char seed;
} slot;

static size_t random_size(void)
{
    switch (test_rand() % 8) {
    case 0:
        return test_rand_range(0, 16);
    case 1:
        return test_rand_range(2000, 70000); /* crosses the region size */
    default:
        return test_rand_range(1, 600);
    }
}

static void random_run(fl_policy pol)
{
    enum { SLOTS = 96 };
    slot s[SLOTS] = {0};
    fl_heap h;
    fl_init(&h, pol);
    size_t ops = test_scale(3000);
    for (size_t i = 0; i < ops; i++) {
        slot *x = &s[test_rand() % SLOTS];
        unsigned what = (unsigned)(test_rand() % 10);
        if (x->p == NULL) {
            x->n = random_size();
            x->seed = (unsigned char)test_rand();
            x->p = what == 0 ? fl_aligned_alloc(
                                   &h, (size_t)32 << (test_rand() % 8), x->n)
                             : fl_alloc(&h, x->n);
            REQUIRE(x->p != NULL);
            fill(x->p, x->n, x->seed);
        } else if (what < 3) {
            size_t n = random_size() + 1;
            REQUIRE(intact(x->p, x->n, x->seed));
            unsigned char *q = fl_realloc(&h, x->p, n);
            REQUIRE(q != NULL);
            CHECK(intact(q, n < x->n ? n : x->n, x->seed));
            x->p = q;
            x->n = n;
            fill(x->p, x->n, x->seed);
        } else {
            REQUIRE(intact(x->p, x->n, x->seed));
            fl_free(&h, x->p);
            x->p = NULL;
        }
        const char *why = fl_check_why(&h);
        if (why != NULL) {
            printf("    op %zu: %s\n", i, why);
            REQUIRE(why == NULL);
        }
    }
    for (size_t i = 0; i < SLOTS; i++)
        if (s[i].p != NULL) {
            CHECK(intact(s[i].p, s[i].n, s[i].seed));
            fl_free(&h, s[i].p);
        }
    settle(&h);
    CHECK(fl_check(&h));
    /* Nothing lost: no byte live, and each region still mapped is one
     * free chunk (which regions go back is test_empty_regions_...'s). */
    fl_stats_t st = fl_stats(&h);
    CHECK_EQ(st.live_bytes, 0);
    CHECK_EQ(st.free_chunks, st.regions);
    CHECK_EQ(st.free_bytes, st.footprint - st.regions * 48);
    fl_destroy(&h);
}

static void test_random_first_fit(void)
{
    random_run(FL_FIRST_FIT);
}
static void test_random_next_fit(void)
{
    random_run(FL_NEXT_FIT);
}
static void test_random_best_fit(void)
{
    random_run(FL_BEST_FIT);
}

// clang-format off
/* ---- The heap map ------------------------------------------------------- */
// clang-format on

static void test_dump_draws_the_heap(void)
{
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    void *a = fl_alloc(&h, 3000), *b = fl_alloc(&h, 3000);
    REQUIRE(a && b);
    fl_free(&h, a);
    settle(&h);
    FILE *f = tmpfile();
    REQUIRE(f != NULL);
    fl_dump(&h, f);
    char text[8192] = {0};
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    CHECK_GE(n, 100);
    CHECK_NOT_NULL(strstr(text, "region r0"));
    CHECK_NOT_NULL(strstr(text, "|##"));
    CHECK_NOT_NULL(strstr(text, "|.."));
    CHECK_NOT_NULL(strstr(text, "free list: r0+40 (3008) -> r0+6056"));
    CHECK_NOT_NULL(strstr(text, "external fragmentation"));
    CHECK_NOT_NULL(strstr(text, "live 3000 bytes in 1 blocks"));
    /* 3000 live bytes in one 64 KiB region: occupancy 4.6%. */
    CHECK_NOT_NULL(strstr(text, "occupancy (live / footprint, now) 4.6%"));
    fl_destroy(&h);
}

// clang-format off
/* ---- Traces: replays with fl_check() after every op --------------------- */
// clang-format on

static void *trace_new(fl_policy pol)
{
    fl_heap *h = malloc(sizeof *h);
    if (h != NULL)
        fl_init(h, pol);
    return h;
}
static void *trace_new_first(void)
{
    return trace_new(FL_FIRST_FIT);
}
static void *trace_new_next(void)
{
    return trace_new(FL_NEXT_FIT);
}
static void *trace_new_best(void)
{
    return trace_new(FL_BEST_FIT);
}
static void trace_end(void *h)
{
    fl_destroy(h);
    free(h);
}
static void *trace_alloc_fn(void *h, size_t n)
{
    return fl_alloc(h, n);
}
static void trace_free_fn(void *h, void *p)
{
    fl_free(h, p);
}
static void *trace_realloc_fn(void *h, void *p, size_t n)
{
    return fl_realloc(h, p, n);
}
static size_t trace_footprint_fn(void *h)
{
    return fl_footprint(h);
}
static bool trace_check_fn(void *h)
{
    return fl_check(h);
}

typedef void *(*heap_maker)(void);
static const heap_maker trace_makers[3] = {trace_new_first, trace_new_next,
                                           trace_new_best};

static void replay_under_fl_check(const trace_t *t)
{
    for (int i = 0; i < 3; i++) {
        trace_alloc a = {.name = "04-freelist",
                         .create = trace_makers[i],
                         .destroy = trace_end,
                         .alloc = trace_alloc_fn,
                         .free = trace_free_fn,
                         .realloc = trace_realloc_fn,
                         .footprint = trace_footprint_fn,
                         .check = trace_check_fn,
                         .align = FL_ALIGN};
        trace_options opt = {.check_each_op = true, .timing_reps = 0};
        trace_result r;
        int rc = trace_replay(t, &a, &opt, &r);
        if (rc != 0)
            printf("    %s, policy %d: %s\n", t->name, i, r.error);
        CHECK_INT_EQ(rc, 0);
        CHECK(r.utilization > 0.0 && r.utilization <= 1.0);
        CHECK_EQ(r.peak_live, t->heap_hint); /* generated: hint = peak */
    }
}

static void test_traces_pathologies_pass_fl_check(void)
{
    trace_t t;
    REQUIRE(trace_gen_holes(test_scale(60), 48, 2000, &t) == 0);
    replay_under_fl_check(&t);
    trace_free(&t);
    REQUIRE(trace_gen_pairs(test_scale(200), 200, &t) == 0);
    replay_under_fl_check(&t);
    trace_free(&t);
    REQUIRE(trace_gen_realloc_grow(test_scale(300), 64, 48, 40, &t) == 0);
    replay_under_fl_check(&t);
    trace_free(&t);
}

/* A trace recorded from a real program (common/traces/README.md). */
static void test_traces_recorded_pass_fl_check(void)
{
    trace_t t;
    char err[TRACE_ERROR_MAX];
    if (trace_read_err("../common/traces/sort-3000-lines.rep", &t, err,
                       sizeof err) != 0) {
        printf("    %s\n", err);
        CHECK(false);
        return;
    }
    replay_under_fl_check(&t);
    trace_free(&t);
}

// clang-format off
/* ---- The conformance suite ---------------------------------------------- */
// clang-format on

static void *heap_create(fl_policy pol)
{
    fl_heap *h = malloc(sizeof *h);
    if (h != NULL)
        fl_init(h, pol);
    return h;
}
static void *create_first(void)
{
    return heap_create(FL_FIRST_FIT);
}
static void *create_next(void)
{
    return heap_create(FL_NEXT_FIT);
}
static void *create_best(void)
{
    return heap_create(FL_BEST_FIT);
}
static void heap_destroy(void *a)
{
    fl_destroy(a);
    free(a);
}
static void *heap_alloc(void *a, size_t n)
{
    return fl_alloc(a, n);
}
static void heap_free(void *a, void *p, size_t n)
{
    (void)n;
    fl_free(a, p);
}
static void *heap_realloc(void *a, void *p, size_t old, size_t n)
{
    (void)old;
    return fl_realloc(a, p, n);
}
static bool heap_check(void *a)
{
    return fl_check(a);
}

#define FL_CONFORM(label, create_fn)                                           \
    {                                                                          \
        .name = (label),                                                       \
        .caps = CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC,             \
        .align = FL_ALIGN, .max_size = (size_t)1 << 20, .capacity = 0,         \
        .create = (create_fn), .destroy = heap_destroy, .alloc = heap_alloc,   \
        .free = heap_free, .realloc = heap_realloc, .reset = NULL,             \
        .check = heap_check,                                                   \
    }

static const conform_ops conform_first =
    FL_CONFORM("04-freelist first-fit", create_first);
static const conform_ops conform_next =
    FL_CONFORM("04-freelist next-fit", create_next);
static const conform_ops conform_best =
    FL_CONFORM("04-freelist best-fit", create_best);

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_init_rejects_unknown_policy);
    RUN_TEST(test_destroy_counts_live_blocks);
    RUN_TEST(test_alloc_aligns_every_size);
    RUN_TEST(test_alloc_zero_gives_unique_blocks);
    RUN_TEST(test_huge_sizes_give_enomem);
    RUN_TEST(test_calloc_zeroes_reused_memory);
    RUN_TEST(test_split_keeps_the_rest_free);
    RUN_TEST(test_small_leftover_is_not_split);
    RUN_TEST(test_coalesce_with_both_neighbours);
    RUN_TEST(test_policies_pick_different_chunks);
    RUN_TEST(test_next_fit_resumes_at_the_rover_and_wraps);
    RUN_TEST(test_best_fit_takes_exact_fit);
    RUN_TEST(test_large_block_gets_its_own_region);
    RUN_TEST(test_region_holds_chunk_and_overhead);
    RUN_TEST(test_empty_regions_go_back_to_the_os);
    RUN_TEST(test_free_keeps_errno_when_munmap_fails);
    RUN_TEST(test_realloc_keeps_errno_when_munmap_fails);
    RUN_TEST(test_destroy_keeps_errno_when_munmap_fails);
    RUN_TEST(test_quarantine_flush_keeps_errno_when_munmap_fails);
    RUN_TEST(test_realloc_shrinks_in_place);
    RUN_TEST(test_realloc_grows_into_free_next_chunk);
    RUN_TEST(test_realloc_moves_past_a_used_neighbour);
    RUN_TEST(test_realloc_edge_cases);
    RUN_TEST(test_aligned_alloc_every_power_of_two);
    RUN_TEST(test_aligned_alloc_rejects_bad_alignment);
    RUN_TEST(test_stats_follow_live_bytes_and_peaks);
    RUN_TEST(test_misuse_is_reported);
    RUN_TEST(test_double_free_after_a_merge_is_reported);
    RUN_TEST(test_quarantine_delays_reuse);
    RUN_TEST(test_check_catches_footer_mismatch);
    RUN_TEST(test_check_catches_adjacent_free_chunks);
    RUN_TEST(test_check_catches_lost_list_node);
    RUN_TEST(test_check_catches_bad_prev_link);
    RUN_TEST(test_check_catches_misaligned_chunk);
    RUN_TEST(test_check_catches_bad_check_bits);
    RUN_TEST(test_check_catches_quarantine_duplicate);
    RUN_TEST(test_random_first_fit);
    RUN_TEST(test_random_next_fit);
    RUN_TEST(test_random_best_fit);
    RUN_TEST(test_dump_draws_the_heap);
    RUN_TEST(test_traces_pathologies_pass_fl_check);
    RUN_TEST(test_traces_recorded_pass_fl_check);
    conform_run(&conform_first);
    conform_run(&conform_next);
    conform_run(&conform_best);
    /* One heap behind one lock, as libmalloc.so uses it: the threaded
     * cases. */
    conform_ops locked =
        conform_locked(&conform_first, "04-freelist first-fit + lock");
    conform_run(&locked);
    return test_finish();
}
