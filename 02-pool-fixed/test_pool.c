/*
 * test_pool.c: unit tests of every pool_* function and error path, for both
 * backings; errno left alone by pool_free and pool_destroy, even when munmap
 * fails, and a failed mmap that changes nothing (common/fault.h); each
 * misuse report proved in a child process; proof that pool_check() catches
 * a broken pool, each for the right reason (damaged copies of the state,
 * damaged free-list links, a damaged live bit); a randomized run with
 * pool_check() after every operation; then the conformance suite, as a
 * fixed-size allocator.
 */
#include "conform.h"
#include "fault.h"
#include "pool.h"
#include "test.h"

/* For TRACK_ENABLED, and to open a free block's link to the memory tools
 * when a test damages it on purpose. */
#include "annotate.h"
/* A slab's record and pool_find(), to damage a block's live bit on purpose
 * (test_check_catches_damaged_live_bits): nothing else here uses them. */
#include "pool_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Checked builds (-DALLOC_DEBUG): the misuse checks, live bits and
 * quarantine are there. Every annotated build is one of them. */
#if defined(ALLOC_DEBUG)
#define CHECKED 1
#else
#define CHECKED 0
#endif

#define PAGE       ((size_t)sysconf(_SC_PAGESIZE))
#define ONE_BUFFER POOL_BACKING_ONE_BUFFER
#define PER_BLOCK  POOL_BACKING_MALLOC_PER_BLOCK

static const unsigned backings[] = {ONE_BUFFER, PER_BLOCK};
#define NBACKINGS (sizeof backings / sizeof backings[0])

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

/* What pool_create() promises to make of a request: room for the link,
 * rounded up to POOL_ALIGN. */
static size_t rounded(size_t request)
{
    if (request < sizeof(void *))
        request = sizeof(void *);
    return (request + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN;
}

/* Opens a free block's link to the memory tools, for a test that damages
 * or repairs it on purpose, and closes it again. */
static void set_link(void *block, void *next)
{
    track_mem_undefined(block, sizeof(void *));
    ((pool_free_block_t *)block)->next = next;
    track_mem_noaccess(block, sizeof(void *));
}

static void *get_link(void *block)
{
    track_mem_defined(block, sizeof(void *));
    void *next = ((pool_free_block_t *)block)->next;
    track_mem_noaccess(block, sizeof(void *));
    return next;
}

/* For check_says(): any address will do. */
static const char anywhere;
#define ANYWHERE ((const void *)&anywhere)

/*
 * pool_check(pool) is false, and the line it writes on stderr names
 * `reason` (and, unless `where` is ANYWHERE, the address it gives, "(at
 * %p)"). A damaged pool must be caught by the check meant for that damage:
 * a test that only asked for `false` would still pass with that check gone,
 * whenever a later check happens to fail too.
 */
static bool check_says(const pool_t *pool, const char *reason,
                       const void *where)
{
    char text[512] = {0}, at[64];
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    if (tmp == NULL || saved < 0) {
        if (tmp != NULL)
            fclose(tmp);
        return false;
    }
    dup2(fileno(tmp), STDERR_FILENO);
    bool ok = pool_check(pool);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    fclose(tmp);
    text[n] = '\0';
    snprintf(at, sizeof at, "(at %p)", where);
    bool said = strstr(text, reason) != NULL &&
                (where == ANYWHERE || strstr(text, at) != NULL);
    if (ok || !said)
        fprintf(stderr, "  wanted \"%s\" %s; pool_check %s: %s", reason,
                where == ANYWHERE ? "" : at, ok ? "passed" : "said",
                n ? text : "(nothing)\n");
    return !ok && said;
}

/* ---- Creating and ending pools ------------------------------------------ */

static void test_create_rounds_block_size(void)
{
    size_t requests[] = {1, 7, 8, 15, 16, 17, 24, 48, 100, 4096};
    for (size_t b = 0; b < NBACKINGS; b++) {
        for (size_t r = 0; r < sizeof requests / sizeof requests[0]; r++) {
            pool_t *pool = pool_create(requests[r], 4, backings[b]);
            REQUIRE(pool != NULL);
            pool_stats_t s = pool_stats(pool);
            CHECK_EQ(s.block_size, rounded(requests[r]));
            CHECK_GE(s.block_size, requests[r]);
            /* a redzone after each block only where a tool watches and the
             * blocks are contiguous */
            size_t rz = (TRACK_ENABLED && backings[b] == ONE_BUFFER) ? 16 : 0;
            CHECK_EQ(s.stride, s.block_size + rz);
            CHECK_EQ(s.capacity, 4);
            CHECK_EQ(s.free + s.quarantined, 4);
            CHECK_EQ(s.slabs, 1);
            for (int i = 0; i < 4; i++) {
                unsigned char *p = pool_alloc(pool);
                REQUIRE(p != NULL);
                CHECK(is_aligned(p, POOL_ALIGN));
                /* sound after every allocation, not only at the end: a
                 * broken free list would make the next pool_alloc crash */
                REQUIRE(pool_check(pool));
                memset(p, 0x5A, s.block_size); /* all of it is usable */
                REQUIRE(pool_check(pool));     /* writing it broke nothing */
            }
            pool_destroy(pool); /* blocks still live: they die with it */
        }
    }
}

static void test_create_rejects_bad_arguments(void)
{
    struct {
        size_t size, n;
        unsigned flags;
    } bad[] = {
        // clang-format off
        {0,  8, 0},          /* no block size */
        {16, 0, 0},          /* no blocks per slab */
        {0,  0, 0},
        {16, 8, 1u << 3},    /* flags that do not exist */
        {16, 8, 1u << 31},
        // clang-format on
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(pool_create(bad[i].size, bad[i].n, bad[i].flags));
        CHECK_INT_EQ(errno, EINVAL);
    }
}

static void test_create_refuses_impossible_sizes(void)
{
    /* Sizes whose arithmetic overflows: refused before any memory is asked
     * for, with either backing. */
    struct {
        size_t size, n;
    } overflow[] = {
        // clang-format off
        {SIZE_MAX,      1},         /* rounding the block size up wraps */
        {SIZE_MAX - 14, 1},
        {SIZE_MAX - 30, 2},         /* the block, plus a redzone, wraps */
        {SIZE_MAX / 2,  4},         /* blocks * stride wraps */
        {4096,          SIZE_MAX},
        {16,            SIZE_MAX / 8},
        {SIZE_MAX,      SIZE_MAX},
        // clang-format on
    };
    for (size_t b = 0; b < NBACKINGS; b++) {
        for (size_t i = 0; i < sizeof overflow / sizeof overflow[0]; i++) {
            errno = 0;
            CHECK_NULL(pool_create(overflow[i].size, overflow[i].n,
                                   backings[b] | POOL_FIXED));
            CHECK_INT_EQ(errno, ENOMEM);
        }
    }
    /* No overflow, but 2^60 bytes: the OS says no, and so does the pool.
     * (One buffer only: a malloc that large makes ASan stop the program.) */
    errno = 0;
    CHECK_NULL(pool_create((size_t)1 << 40, (size_t)1 << 20, ONE_BUFFER));
    CHECK_INT_EQ(errno, ENOMEM);
}

static void test_destroy_null_and_free_null_do_nothing(void)
{
    pool_destroy(NULL);
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(32, 8, backings[b]);
        REQUIRE(pool != NULL);
        void *p = pool_alloc(pool);
        pool_stats_t before = pool_stats(pool);
        pool_free(pool, NULL);
        pool_stats_t after = pool_stats(pool);
        CHECK_EQ(after.live, before.live);
        CHECK_EQ(after.free, before.free);
        CHECK_EQ(after.quarantined, before.quarantined);
        CHECK(pool_check(pool));
        pool_free(pool, p);
        CHECK_EQ(pool_stats(pool).live, 0);
        pool_destroy(pool);
    }
}

/* An errno no call of the pool sets, to see that it stays. */
#define UNTOUCHED 4242

/* pool_free leaves errno alone on every path: pushed on the free list,
 * held in the quarantine, pushing the oldest quarantined block out. */
static void test_free_leaves_errno_alone(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        for (int q = 0; q < 2; q++) {
            pool_t *pool =
                pool_create(32, 16, backings[b] | (q ? 0 : POOL_NO_QUARANTINE));
            REQUIRE(pool != NULL);
            void *p[POOL_QUARANTINE + 2];
            for (int i = 0; i < POOL_QUARANTINE + 2; i++)
                REQUIRE((p[i] = pool_alloc(pool)) != NULL);
            for (int i = 0; i < POOL_QUARANTINE + 2; i++) {
                errno = UNTOUCHED;
                pool_free(pool, p[i]);
                CHECK_INT_EQ(errno, UNTOUCHED);
            }
            errno = UNTOUCHED;
            pool_free(pool, NULL);
            CHECK_INT_EQ(errno, UNTOUCHED);
            CHECK(pool_check(pool));
            pool_destroy(pool);
        }
    }
}

/*
 * pool_destroy leaves errno alone, also when munmap fails (common/fault.h
 * makes the first one fail with ENOMEM). The slab it could not unmap stays
 * mapped; the test unmaps it itself. Slabs are unmapped newest first, and
 * all have the same size.
 */
static void test_destroy_leaves_errno_alone(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(64, 4, backings[b]);
        REQUIRE(pool != NULL);
        for (int i = 0; i < 9; i++) /* three slabs */
            REQUIRE(pool_alloc(pool) != NULL);
        errno = UNTOUCHED;
        pool_destroy(pool);
        CHECK_INT_EQ(errno, UNTOUCHED);
    }

    pool_t *pool = pool_create(64, 4, ONE_BUFFER);
    REQUIRE(pool != NULL);
    for (int i = 0; i < 9; i++)
        REQUIRE(pool_alloc(pool) != NULL);
    pool_stats_t s = pool_stats(pool);
    REQUIRE(s.slabs == 3);
    void *newest = pool->slabs;
    size_t bytes = s.footprint / s.slabs;
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = UNTOUCHED;
    pool_destroy(pool);
    CHECK_INT_EQ(errno, UNTOUCHED);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1); /* the failure happened */
    CHECK_EQ(fault_calls(FAULT_MUNMAP), 3);  /* and the others went on */
    fault_disarm();
    CHECK_INT_EQ(munmap(newest, bytes), 0); /* what destroy had to leave */
}

/* ---- Allocating and freeing ---------------------------------------------- */

static void test_fresh_slab_is_handed_out_in_address_order(void)
{
    pool_t *pool = pool_create(40, 16, ONE_BUFFER);
    REQUIRE(pool != NULL);
    unsigned char *prev = pool_alloc(pool);
    REQUIRE(prev != NULL);
    for (int i = 1; i < 16; i++) {
        unsigned char *p = pool_alloc(pool);
        REQUIRE(p != NULL);
        CHECK_PTR_EQ(p, prev + pool->stride); /* the very next block */
        prev = p;
    }
    pool_destroy(pool);
}

static void test_free_list_is_last_in_first_out(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(24, 8, backings[b] | POOL_NO_QUARANTINE);
        REQUIRE(pool != NULL);
        void *a = pool_alloc(pool), *m = pool_alloc(pool);
        void *c = pool_alloc(pool);
        REQUIRE(a && m && c);
        pool_free(pool, a);
        pool_free(pool, c);
        CHECK_PTR_EQ(pool_alloc(pool), c); /* freed last, handed out first */
        CHECK_PTR_EQ(pool_alloc(pool), a);
        CHECK(pool_check(pool));
        pool_destroy(pool);
    }
}

static void test_blocks_are_distinct_and_keep_their_data(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        enum { N = 50 };
        pool_t *pool = pool_create(32, 7, backings[b]);
        REQUIRE(pool != NULL);
        unsigned char *p[N];
        for (int i = 0; i < N; i++) {
            p[i] = pool_alloc(pool);
            REQUIRE(p[i] != NULL);
            memset(p[i], i, 32);
        }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < 32; j++)
                REQUIRE(p[i][j] == (unsigned char)i);
        /* no two blocks overlap */
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N; j++)
                CHECK(p[i] + 32 <= p[j] || p[j] + 32 <= p[i]);
        pool_destroy(pool);
    }
}

static void test_fixed_pool_runs_out_then_recovers(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(64, 5, backings[b] | POOL_FIXED);
        REQUIRE(pool != NULL);
        void *p[5];
        for (int i = 0; i < 5; i++)
            REQUIRE((p[i] = pool_alloc(pool)) != NULL);
        pool_stats_t full = pool_stats(pool);
        errno = 0;
        CHECK_NULL(pool_alloc(pool));
        CHECK_INT_EQ(errno, ENOMEM);
        /* the failure changed nothing */
        pool_stats_t after = pool_stats(pool);
        CHECK_EQ(after.live, 5);
        CHECK_EQ(after.slabs, 1);
        CHECK_EQ(after.footprint, full.footprint);
        CHECK(pool_check(pool));
        /* one block back, one block out again: the same one, the only one
         * free (a checked build takes it out of the quarantine) */
        pool_free(pool, p[2]);
        CHECK_PTR_EQ(pool_alloc(pool), p[2]);
        CHECK_NULL(pool_alloc(pool));
        pool_destroy(pool);
    }
}

static void test_growing_pool_adds_slabs(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(48, 4, backings[b]);
        REQUIRE(pool != NULL);
        size_t footprint1 = pool_stats(pool).footprint;
        void *p[10];
        for (int i = 0; i < 10; i++)
            REQUIRE((p[i] = pool_alloc(pool)) != NULL);
        pool_stats_t s = pool_stats(pool);
        CHECK_EQ(s.slabs, 3); /* 4 + 4 + 4 blocks hold 10 */
        CHECK_EQ(s.capacity, 12);
        CHECK_EQ(s.live, 10);
        CHECK_EQ(s.free, 2);
        CHECK_EQ(s.footprint, 3 * footprint1); /* every slab the same */
        CHECK(pool_check(pool));
        for (int i = 0; i < 10; i++)
            pool_free(pool, p[i]);
        s = pool_stats(pool);
        CHECK_EQ(s.live, 0);
        CHECK_EQ(s.slabs, 3); /* slabs stay until pool_destroy */
        CHECK(pool_check(pool));
        pool_destroy(pool);
    }
}

/* A failed mmap (common/fault.h) when a growing pool needs a slab: NULL
 * with ENOMEM, and the pool exactly as it was, still usable. */
static void test_failed_growth_changes_nothing(void)
{
    pool_t *pool = pool_create(64, 4, ONE_BUFFER);
    REQUIRE(pool != NULL);
    void *p[5];
    for (int i = 0; i < 4; i++)
        REQUIRE((p[i] = pool_alloc(pool)) != NULL);
    pool_stats_t before = pool_stats(pool);
    fault_arm(FAULT_MMAP, 0, 1);
    errno = 0;
    CHECK_NULL(pool_alloc(pool));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1); /* the path that was meant */
    fault_disarm();
    pool_stats_t after = pool_stats(pool);
    CHECK_EQ(after.slabs, before.slabs);
    CHECK_EQ(after.capacity, before.capacity);
    CHECK_EQ(after.live, before.live);
    CHECK_EQ(after.free, 0);
    CHECK_EQ(after.footprint, before.footprint);
    CHECK(pool_check(pool));
    /* the OS says yes again: the pool grows */
    REQUIRE((p[4] = pool_alloc(pool)) != NULL);
    CHECK_EQ(pool_stats(pool).slabs, 2);
    CHECK(pool_check(pool));
    pool_destroy(pool);

    /* and pool_create, whose first slab cannot be mapped */
    fault_arm(FAULT_MMAP, 0, 1);
    errno = 0;
    CHECK_NULL(pool_create(64, 4, ONE_BUFFER));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);
    fault_disarm();
}

static void test_footprint_counts_what_was_obtained(void)
{
    pool_t *pool = pool_create(32, 100, ONE_BUFFER);
    REQUIRE(pool != NULL);
    pool_stats_t s = pool_stats(pool);
    /* one mapping of whole pages, holding the blocks and a header */
    CHECK_EQ(s.footprint % PAGE, 0);
    CHECK_GE(s.footprint, 100 * s.stride);
    CHECK_LT(s.footprint, 100 * s.stride + 256 + PAGE);
    CHECK_EQ(s.overhead, s.footprint - 100 * s.block_size);
    pool_destroy(pool);

    pool = pool_create(32, 100, PER_BLOCK);
    REQUIRE(pool != NULL);
    s = pool_stats(pool);
    /* the blocks, plus a record with one address per block (malloc's own
     * headers are not counted: the pool cannot see them) */
    CHECK_GE(s.footprint, (size_t)100 * 32 + 100 * sizeof(void *));
    CHECK_LT(s.footprint, (size_t)100 * 32 + 100 * sizeof(void *) + 256);
    pool_destroy(pool);
}

static void test_quarantine_delays_reuse(void)
{
    if (!CHECKED) {
        test_skip("checked builds only");
        return;
    }
    pool_t *pool = pool_create(32, 64, ONE_BUFFER);
    REQUIRE(pool != NULL);
    void *p = pool_alloc(pool);
    pool_free(pool, p);
    CHECK_EQ(pool_stats(pool).quarantined, 1);
    CHECK(pool_check(pool));
    /* plenty of free blocks: p is not handed out again for a while */
    for (int i = 0; i < 20; i++)
        CHECK(pool_alloc(pool) != p);
    /* p waits until POOL_QUARANTINE later frees have come after it: then
     * it is the oldest, moves to the head of the free list, and is next */
    void *q[POOL_QUARANTINE];
    for (int i = 0; i < POOL_QUARANTINE; i++)
        q[i] = pool_alloc(pool);
    for (int i = 0; i < POOL_QUARANTINE - 1; i++)
        pool_free(pool, q[i]);
    CHECK_EQ(pool_stats(pool).quarantined, POOL_QUARANTINE); /* p and 7 */
    CHECK(pool->free_head != p);
    pool_free(pool, q[POOL_QUARANTINE - 1]);
    CHECK_EQ(pool_stats(pool).quarantined, POOL_QUARANTINE);
    CHECK_PTR_EQ(pool_alloc(pool), p);
    CHECK(pool_check(pool));
    pool_destroy(pool);
}

static void test_fill_bytes_mark_fresh_blocks(void)
{
    if (!CHECKED || TRACK_ENABLED) {
        /* a fill would hide "uninitialised" from Valgrind: off under tools */
        test_skip("checked builds without a memory tool only");
        return;
    }
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(64, 4, backings[b]);
        REQUIRE(pool != NULL);
        unsigned char *p = pool_alloc(pool);
        REQUIRE(p != NULL);
        for (size_t i = 0; i < 64; i++)
            CHECK_EQ(p[i], TRACK_FILL_FRESH); /* the link is gone too */
        pool_destroy(pool);
    }
}

/* ---- Misuse: each runs in a child process, which must abort ------------- */

typedef struct misuse_arg {
    unsigned flags;
} misuse_arg;

static void free_foreign_pointer(void *arg)
{
    pool_t *pool = pool_create(32, 8, ((misuse_arg *)arg)->flags);
    _Alignas(16) static unsigned char elsewhere[64];
    pool_free(pool, elsewhere);
}

static void free_block_of_other_pool(void *arg)
{
    unsigned flags = ((misuse_arg *)arg)->flags;
    pool_t *pool = pool_create(32, 8, flags);
    pool_t *other = pool_create(32, 8, flags);
    pool_free(pool, pool_alloc(other));
}

static void free_off_alignment(void *arg)
{
    pool_t *pool = pool_create(32, 8, ((misuse_arg *)arg)->flags);
    unsigned char *p = pool_alloc(pool);
    pool_free(pool, p + 8);
}

/* Blocks of one buffer: the address just past the slab's last block, in the
 * slab's slack (8 blocks of 32 bytes and a header leave most of the page
 * free). 16-aligned, inside the mapping, but no block of the pool. */
static unsigned char *past_last_block(pool_t *pool)
{
    uintptr_t last = 0;
    for (size_t i = 0; i < pool->blocks_per_slab; i++) {
        uintptr_t p = (uintptr_t)pool_alloc(pool);
        if (p > last)
            last = p;
    }
    return (unsigned char *)(last + pool->stride);
}

static void free_past_last_block(void *arg)
{
    pool_t *pool = pool_create(32, 8, ((misuse_arg *)arg)->flags);
    pool_free(pool, past_last_block(pool));
}

static void free_inside_block(void *arg)
{
    pool_t *pool = pool_create(64, 8, ((misuse_arg *)arg)->flags);
    unsigned char *p = pool_alloc(pool);
    pool_free(pool, p + 16); /* 16-aligned, but not a block's start */
}

static void free_twice_at_once(void *arg)
{
    pool_t *pool = pool_create(32, 8, ((misuse_arg *)arg)->flags);
    void *p = pool_alloc(pool);
    pool_free(pool, p);
    pool_free(pool, p);
}

static void free_twice_later(void *arg)
{
    pool_t *pool = pool_create(32, 8, ((misuse_arg *)arg)->flags);
    void *p = pool_alloc(pool), *q = pool_alloc(pool);
    pool_free(pool, p);
    pool_free(pool, q);
    pool_free(pool, p);
}

static void test_misuse_is_reported_in_every_build(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        misuse_arg plain = {backings[b]};
        misuse_arg reuse_at_once = {backings[b] | POOL_NO_QUARANTINE};
        CHECK_ABORTS(free_off_alignment, &plain, "02-pool-fixed: pool_free(0x");
        CHECK_ABORTS(free_off_alignment, &plain,
                     "pointer not at a block boundary");
        CHECK_ABORTS(free_twice_at_once, &reuse_at_once, "double free");
        CHECK_ABORTS(free_twice_at_once, &plain, "double free");
    }
}

static void test_misuse_is_reported_in_checked_builds(void)
{
    if (!CHECKED) {
        test_skip("checked builds only");
        return;
    }
    for (size_t b = 0; b < NBACKINGS; b++) {
        misuse_arg plain = {backings[b]};
        misuse_arg reuse_at_once = {backings[b] | POOL_NO_QUARANTINE};
        CHECK_ABORTS(free_foreign_pointer, &plain,
                     "pointer not from this pool");
        CHECK_ABORTS(free_block_of_other_pool, &plain,
                     "pointer not from this pool");
        CHECK_ABORTS(free_inside_block, &plain,
                     "pointer not at a block boundary");
        if (backings[b] == ONE_BUFFER)
            CHECK_ABORTS(free_past_last_block, &plain,
                         "pointer not from this pool");
        CHECK_ABORTS(free_twice_later, &plain, "double free");
        CHECK_ABORTS(free_twice_later, &reuse_at_once, "double free");
    }
}

/* ---- The checker catches a broken pool ----------------------------------- */

static void test_check_catches_damaged_state(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(32, 8, backings[b] | POOL_NO_QUARANTINE);
        REQUIRE(pool != NULL);
        void *p = pool_alloc(pool);
        (void)pool_alloc(pool);
        REQUIRE(pool_check(pool));
        /* The free list now holds 6 blocks: h0 -> h1 -> ... -> NULL. */
        void *h0 = pool->free_head, *h1 = get_link(h0);

        /* Break copies of the state, one invariant at a time. */
        pool_t bad = *pool;
        bad.live++; /* the free list is then one block too long */
        CHECK(check_says(&bad, "free list longer", ANYWHERE));
        bad = *pool;
        bad.live--;
        CHECK(check_says(&bad, "free list shorter", NULL));
        bad = *pool;
        bad.capacity += 8;
        bad.live += 8;
        CHECK(check_says(&bad, "capacity does not match the slabs", NULL));
        bad = *pool;
        bad.slab_count = 2; /* a slab that is not there */
        bad.capacity = 16;
        bad.live += 8;
        CHECK(check_says(&bad, "slab list damaged", ANYWHERE));
        bad = *pool;
        bad.block_size = 8; /* a link's size, but no room for alignment */
        CHECK(check_says(&bad, "bad block size or stride", NULL));
        bad = *pool;
        bad.block_size += 8; /* 40: off the 16-byte rule, the stride agrees */
        bad.stride += 8;
        CHECK(check_says(&bad, "bad block size or stride", NULL));
        bad = *pool;
        bad.stride += 16; /* 16-aligned and above block_size, but not the
                             block and its redzone */
        CHECK(check_says(&bad, "bad block size or stride", NULL));
        bad = *pool;
        bad.q_count = CHECKED ? POOL_QUARANTINE + 1 : 1;
        CHECK(check_says(&bad, "bad quarantine count", NULL));
        bad = *pool;
        bad.free_head = NULL; /* the free blocks are lost */
        CHECK(check_says(&bad, "free list shorter", NULL));
        if (CHECKED) {
            /* A live block on the free list: its live bit says so. */
            bad = *pool;
            bad.free_head = p;
            CHECK(check_says(&bad, "not a free block", p));
            /* h1 both on the free list and in the quarantine, h0 lost:
             * the counts and the live bits agree, only that is wrong. */
            bad = *pool;
            bad.free_head = h1;
            bad.quarantine[0] = h1;
            bad.q_first = 0;
            bad.q_count = 1;
            CHECK(check_says(&bad, "block both quarantined and free", h1));
            /* A live block in the quarantine, h0 lost: the same. */
            bad = *pool;
            bad.free_head = h1;
            bad.quarantine[0] = p;
            bad.q_first = 0;
            bad.q_count = 1;
            CHECK(check_says(&bad, "quarantined block is not a free block", p));
            /* h0 quarantined twice, h1 lost: every quarantined block is
             * free and off the list, the counts agree (4 on the list, 2
             * quarantined, 2 live), yet pool_stats would count h0 twice. */
            bad = *pool;
            bad.free_head = get_link(h1);
            bad.quarantine[3] = h0;
            bad.quarantine[4] = h0;
            bad.q_first = 3;
            bad.q_count = 2;
            CHECK(check_says(&bad, "block quarantined twice", h0));
            /* The controls: h0 moved from the free list to the quarantine,
             * and h0 and h1 both, are sound pools. */
            bad = *pool;
            bad.free_head = h1;
            bad.quarantine[0] = h0;
            bad.q_first = 0;
            bad.q_count = 1;
            CHECK(pool_check(&bad));
            bad.free_head = get_link(h1);
            bad.quarantine[1] = h1;
            bad.q_count = 2;
            CHECK(pool_check(&bad));
        }
        CHECK(pool_check(pool));
        pool_destroy(pool);
    }
}

static void test_check_catches_damaged_links(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(32, 8, backings[b] | POOL_NO_QUARANTINE);
        REQUIRE(pool != NULL);
        unsigned char *x = pool_alloc(pool), *y = pool_alloc(pool);
        unsigned char *live = pool_alloc(pool);
        REQUIRE(x && y && live);
        memset(live, 0, 32);
        pool_free(pool, x);
        pool_free(pool, y); /* the list is now y -> x -> ... */
        REQUIRE(pool_check(pool));

        void *rest = get_link(x); /* to put back after each damage */
        set_link(x, y);           /* a cycle: y -> x -> y */
        CHECK(check_says(pool, "free list longer", ANYWHERE));
        static _Alignas(16) unsigned char elsewhere[64];
        set_link(x, elsewhere); /* out of the pool */
        CHECK(check_says(pool, "not a free block", elsewhere));
        set_link(x, live + 16); /* into the middle of a block */
        CHECK(check_says(pool, "not a free block", live + 16));
        if (backings[b] == ONE_BUFFER) {
            /* just past the slab's last block, in its slack: x is block 0
             * (a fresh slab is handed out in address order) */
            unsigned char *past = x + pool->blocks_per_slab * pool->stride;
            set_link(x, past);
            CHECK(check_says(pool, "not a free block", past));
        }
        set_link(x, NULL); /* the rest of the list is lost */
        CHECK(check_says(pool, "free list shorter", NULL));
        if (CHECKED) {
            set_link(x, live); /* a live block */
            CHECK(check_says(pool, "not a free block", live));
        }
        set_link(x, rest); /* repaired */
        CHECK(pool_check(pool));
        pool_destroy(pool);
    }
}

/* A live block whose live bit is clear, as an allocation that forgot to set
 * it would leave it: the free list, the quarantine and the counts are all
 * sound, only the live bits disagree with `live`. (A set bit on a free
 * block is caught before that, as a free-list node or a quarantined block
 * that is not free: test_check_catches_damaged_state.) */
static void test_check_catches_damaged_live_bits(void)
{
    if (!CHECKED) {
        test_skip("checked builds only");
        return;
    }
    for (size_t b = 0; b < NBACKINGS; b++) {
        pool_t *pool = pool_create(32, 8, backings[b]);
        REQUIRE(pool != NULL);
        void *p = pool_alloc(pool), *q = pool_alloc(pool);
        REQUIRE(p && q);
        pool_free(pool, q); /* one block in the quarantine too */
        REQUIRE(pool_check(pool));
        pool_slab_t *slab = NULL;
        size_t i = 0;
        REQUIRE(pool_find(pool, p, &slab, &i) == POOL_IS_BLOCK);
        uint64_t mask = (uint64_t)1 << (i % 64);
        REQUIRE(slab->live_bits[i / 64] & mask);
        slab->live_bits[i / 64] &= ~mask;
        CHECK(check_says(pool, "live bits do not count live blocks", NULL));
        slab->live_bits[i / 64] |= mask; /* repaired */
        CHECK(pool_check(pool));
        pool_free(pool, p);
        CHECK(pool_check(pool));
        pool_destroy(pool);
    }
}

/* ---- The drawing --------------------------------------------------------- */

static void test_dump_draws_blocks_and_free_list_order(void)
{
    pool_t *pool = pool_create(32, 8, ONE_BUFFER | POOL_NO_QUARANTINE);
    REQUIRE(pool != NULL);
    unsigned char *p[5];
    for (int i = 0; i < 5; i++)
        REQUIRE((p[i] = pool_alloc(pool)) != NULL);
    pool_free(pool, p[1]);
    pool_free(pool, p[3]);

    char out[2048] = {0};
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    REQUIRE(f != NULL);
    pool_dump(pool, f);
    fclose(f);

    /* one row of 8 cells: '#' for each live block, a digit for each free
     * one, in free-list order */
    const char *row = strstr(out, "    |");
    REQUIRE(row != NULL);
    row += 5;
    REQUIRE(strlen(row) > 8 && row[8] == '|');
    size_t hashes = 0, zero_at = 8;
    for (size_t i = 0; i < 8; i++) {
        hashes += row[i] == '#';
        if (row[i] == '0')
            zero_at = i;
    }
    CHECK_EQ(hashes, pool_stats(pool).live);
    CHECK(row[1] != '#' && row[3] != '#'); /* the two freed blocks */
    /* the block drawn '0' is the one handed out next, '1' after it */
    REQUIRE(zero_at < 8);
    CHECK_PTR_EQ(pool_alloc(pool), p[0] + zero_at * pool->stride);
    CHECK(strstr(out, "free list: s0.3 -> s0.1 -> s0.5") != NULL);
    CHECK(strstr(out, "-> NULL") != NULL);
    CHECK(strstr(out, "3 live, 5 free") != NULL);
    pool_destroy(pool);
}

static void test_dump_draws_the_quarantine(void)
{
    pool_t *pool = pool_create(32, 8, PER_BLOCK);
    REQUIRE(pool != NULL);
    void *p = pool_alloc(pool);
    pool_free(pool, p);
    char out[2048] = {0};
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    REQUIRE(f != NULL);
    pool_dump(pool, f);
    fclose(f);
    const char *row = strstr(out, "    |");
    REQUIRE(row != NULL);
    CHECK_EQ(row[5] == 'q', CHECKED); /* held back only in checked builds */
    CHECK(strstr(out, "a malloc per block") != NULL);
    pool_destroy(pool);
}

/* ---- A randomized run, checked after every operation -------------------- */

#define MAX_LIVE 200

typedef struct live_block {
    unsigned char *p;
    unsigned char tag;
} live_block;

static void random_run(unsigned flags, size_t size, size_t per_slab)
{
    pool_t *pool = pool_create(size, per_slab, flags);
    REQUIRE(pool != NULL);
    size_t bs = pool->block_size;
    static live_block live[MAX_LIVE];
    size_t nlive = 0;
    size_t ops = test_scale(3000);
    for (size_t op = 0; op < ops; op++) {
        bool alloc =
            nlive == 0 || (nlive < MAX_LIVE && test_rand_range(0, 99) < 55);
        if (alloc) {
            unsigned char *p = pool_alloc(pool);
            if (p == NULL) { /* only a fixed pool may run out */
                CHECK(flags & POOL_FIXED);
                CHECK_INT_EQ(errno, ENOMEM);
                CHECK_EQ(nlive, per_slab);
            } else {
                REQUIRE(is_aligned(p, POOL_ALIGN));
                unsigned char tag = (unsigned char)test_rand();
                memset(p, tag, bs);
                live[nlive++] = (live_block){p, tag};
            }
        } else {
            size_t k = test_rand_range(0, nlive - 1);
            for (size_t j = 0; j < bs; j++) /* intact until its free */
                REQUIRE(live[k].p[j] == live[k].tag);
            pool_free(pool, live[k].p);
            live[k] = live[--nlive];
        }
        REQUIRE(pool_check(pool));
        REQUIRE(pool_stats(pool).live == nlive);
    }
    pool_destroy(pool);
}

static void test_random_ops_keep_invariants(void)
{
    for (size_t b = 0; b < NBACKINGS; b++) {
        random_run(backings[b], 24, 16);                       /* grows */
        random_run(backings[b] | POOL_FIXED, 40, 100);         /* runs out */
        random_run(backings[b] | POOL_NO_QUARANTINE, 100, 64); /* LIFO */
    }
}

/* ---- The conformance suite, as a fixed-size allocator -------------------- */

/* The pool has no size argument: a caller asks for a block, and the block
 * is block_size bytes. The adapter refuses what cannot fit, as a caller of
 * a pool would. */
#define CONFORM_SIZE         48
#define CONFORM_FIXED_BLOCKS 256

static void *c_alloc(void *a, size_t size)
{
    pool_t *pool = a;
    if (size > pool->block_size) {
        errno = ENOMEM;
        return NULL;
    }
    return pool_alloc(pool);
}

static void c_free(void *a, void *p, size_t size)
{
    (void)size;
    pool_free(a, p);
}

static void c_destroy(void *a)
{
    pool_destroy(a);
}
static bool c_check(void *a)
{
    return pool_check(a);
}

static void *c_create_buffer(void)
{
    return pool_create(CONFORM_SIZE, 64, 0);
}
static void *c_create_fixed(void)
{
    return pool_create(CONFORM_SIZE, CONFORM_FIXED_BLOCKS, POOL_FIXED);
}
static void *c_create_per_block(void)
{
    return pool_create(CONFORM_SIZE, 64, PER_BLOCK);
}

#define POOL_OPS(label, make, cap)                                             \
    {                                                                          \
        .name = (label), .caps = CONFORM_FREE, .align = POOL_ALIGN,            \
        .max_size = CONFORM_SIZE, .capacity = (cap), .create = (make),         \
        .destroy = c_destroy, .alloc = c_alloc, .free = c_free,                \
        .check = c_check,                                                      \
    }

static const conform_ops ops_buffer =
    POOL_OPS("02-pool-fixed", c_create_buffer, 0);
static const conform_ops ops_fixed =
    POOL_OPS("02-pool-fixed (fixed)", c_create_fixed,
             (size_t)CONFORM_FIXED_BLOCKS *CONFORM_SIZE);
static const conform_ops ops_per_block =
    POOL_OPS("02-pool-fixed (malloc per block)", c_create_per_block, 0);

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_create_rounds_block_size);
    RUN_TEST(test_create_rejects_bad_arguments);
    RUN_TEST(test_create_refuses_impossible_sizes);
    RUN_TEST(test_destroy_null_and_free_null_do_nothing);
    RUN_TEST(test_free_leaves_errno_alone);
    RUN_TEST(test_destroy_leaves_errno_alone);
    RUN_TEST(test_fresh_slab_is_handed_out_in_address_order);
    RUN_TEST(test_free_list_is_last_in_first_out);
    RUN_TEST(test_blocks_are_distinct_and_keep_their_data);
    RUN_TEST(test_fixed_pool_runs_out_then_recovers);
    RUN_TEST(test_growing_pool_adds_slabs);
    RUN_TEST(test_failed_growth_changes_nothing);
    RUN_TEST(test_footprint_counts_what_was_obtained);
    RUN_TEST(test_quarantine_delays_reuse);
    RUN_TEST(test_fill_bytes_mark_fresh_blocks);
    RUN_TEST(test_misuse_is_reported_in_every_build);
    RUN_TEST(test_misuse_is_reported_in_checked_builds);
    RUN_TEST(test_check_catches_damaged_state);
    RUN_TEST(test_check_catches_damaged_links);
    RUN_TEST(test_check_catches_damaged_live_bits);
    RUN_TEST(test_dump_draws_blocks_and_free_list_order);
    RUN_TEST(test_dump_draws_the_quarantine);
    RUN_TEST(test_random_ops_keep_invariants);
    conform_run(&ops_buffer);
    conform_run(&ops_fixed);
    conform_run(&ops_per_block);
    return test_finish();
}
