/*
 * common/selftest/test_conform.c: the conformance suite is honest.
 *
 * A suite that passes everything proves nothing, so this file proves both
 * halves of the claim:
 *
 *   1. It passes correct allocators, in each of its modes: a malloc wrapper
 *      (any size, free, realloc, thread-safe), a bounded bump region with
 *      reset and no free, and a bounded fixed-size pool with free. They are
 *      written here, small and obviously right, so that a failure is the
 *      suite's fault.
 *   2. It fails broken ones, one defect each, and says why: each broken
 *      allocator runs the whole suite in a child process
 *      (test_child_fails), and the child's output must contain the message
 *      of the check that the defect trips.
 *
 * The broken allocators misbehave only inside memory they own: a block
 * handed out twice is still a real block, a corruption writes into a live
 * block of their own, a short block is never written by the suite. So the
 * children stay clean under Valgrind and ASan, and a tool's report there
 * would show up as a wrong exit status, not as a pass.
 */
#include "conform.h"
#include "test.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define REF_ALIGN  ((size_t)16)      /* alignof(max_align_t) on x86-64 */
#define REF_LIMIT  ((size_t)1 << 30) /* the malloc wrapper refuses above */
#define REF_HEADER 32                /* bytes before a broken wrapper's block */

/* Any create() whose allocator keeps no state of its own. */
static int no_state;

static void *stateless_create(void)
{
    return &no_state;
}

static void stateless_destroy(void *a)
{
    (void)a;
}

/* ---- Reference 1: the system malloc, behind a size guard ------------------
 *
 * The guard is part of the contract: a request no machine can serve gives
 * NULL and ENOMEM at once (ASan's malloc would abort on it instead).
 */
static void *ref_malloc_alloc(void *a, size_t size)
{
    (void)a;
    if (size > REF_LIMIT) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(size);
}

static void ref_malloc_free(void *a, void *p, size_t size)
{
    (void)a;
    (void)size;
    free(p);
}

static void *ref_malloc_realloc(void *a, void *p, size_t old, size_t size)
{
    (void)a;
    (void)old;
    if (size > REF_LIMIT) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, size);
}

static const conform_ops ref_malloc_ops = {
    .name = "malloc-ref",
    .caps =
        CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC | CONFORM_THREADSAFE,
    .align = REF_ALIGN,
    .max_size = (size_t)1 << 20,
    .capacity = 0,
    .create = stateless_create,
    .destroy = stateless_destroy,
    .alloc = ref_malloc_alloc,
    .free = ref_malloc_free,
    .realloc = ref_malloc_realloc,
};

/* ---- Reference 2: a bump region (bounded, reset, no free) ---------------- */

#define BUMP_CAP ((size_t)64 * 1024)

typedef struct ref_bump {
    unsigned char *base; /* BUMP_CAP bytes, REF_ALIGN-aligned */
    size_t offset;       /* next free byte; a multiple of REF_ALIGN */
    bool reset_works;    /* false: the "reset forgets to reset" bug */
} ref_bump;

static void *ref_bump_create_with(bool reset_works)
{
    ref_bump *b = malloc(sizeof *b);
    if (b == NULL)
        return NULL;
    b->base = aligned_alloc(REF_ALIGN, BUMP_CAP);
    if (b->base == NULL) {
        free(b);
        return NULL;
    }
    b->offset = 0;
    b->reset_works = reset_works;
    return b;
}

static void *ref_bump_create(void)
{
    return ref_bump_create_with(true);
}

static void ref_bump_destroy(void *a)
{
    ref_bump *b = a;
    free(b->base);
    free(b);
}

static void *ref_bump_alloc(void *a, size_t size)
{
    ref_bump *b = a;
    if (size == 0)
        size = 1; /* a unique address */
    /* Compare before rounding: size + REF_ALIGN - 1 could wrap. */
    if (size > BUMP_CAP - b->offset) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *p = b->base + b->offset;
    /* BUMP_CAP and offset are multiples of REF_ALIGN, so the rounded size
     * still fits. */
    b->offset += (size + REF_ALIGN - 1) / REF_ALIGN * REF_ALIGN;
    return p;
}

static void ref_bump_reset(void *a)
{
    ref_bump *b = a;
    if (b->reset_works)
        b->offset = 0;
}

static bool ref_bump_check(void *a)
{
    const ref_bump *b = a;
    return b->offset <= BUMP_CAP && b->offset % REF_ALIGN == 0;
}

static const conform_ops ref_bump_ops = {
    .name = "bump-ref",
    .caps = CONFORM_ANY_SIZE,
    .align = REF_ALIGN,
    .max_size = (size_t)16 * 1024,
    .capacity = BUMP_CAP,
    .create = ref_bump_create,
    .destroy = ref_bump_destroy,
    .alloc = ref_bump_alloc,
    .reset = ref_bump_reset,
    .check = ref_bump_check,
};

/* ---- Reference 3: a fixed-size pool (bounded, free, no reset) ------------ */

#define POOL_BLOCK  ((size_t)48) /* bytes per block, a multiple of REF_ALIGN */
#define POOL_BLOCKS ((size_t)64)

typedef struct ref_pool {
    unsigned char *base; /* POOL_BLOCKS blocks of POOL_BLOCK bytes */
    void *free_list;     /* first free block; each holds the next */
    size_t nfree;        /* blocks on the free list */
    unsigned frees;      /* frees so far (for the losing variant) */
    bool loses_blocks;   /* true: every third free is dropped (a bug) */
} ref_pool;

static void *ref_pool_create_with(bool loses_blocks)
{
    ref_pool *pool = malloc(sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->base = aligned_alloc(REF_ALIGN, POOL_BLOCK * POOL_BLOCKS);
    if (pool->base == NULL) {
        free(pool);
        return NULL;
    }
    pool->free_list = NULL;
    for (size_t i = POOL_BLOCKS; i-- > 0;) {
        void *block = pool->base + i * POOL_BLOCK;
        memcpy(block, &pool->free_list, sizeof pool->free_list);
        pool->free_list = block;
    }
    pool->nfree = POOL_BLOCKS;
    pool->frees = 0;
    pool->loses_blocks = loses_blocks;
    return pool;
}

static void *ref_pool_create(void)
{
    return ref_pool_create_with(false);
}

static void ref_pool_destroy(void *a)
{
    ref_pool *pool = a;
    free(pool->base);
    free(pool);
}

static void *ref_pool_alloc(void *a, size_t size)
{
    ref_pool *pool = a;
    if (size == 0)
        return NULL; /* CONFORM_ZERO_NULL */
    if (size > POOL_BLOCK || pool->free_list == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    void *block = pool->free_list;
    memcpy(&pool->free_list, block, sizeof pool->free_list);
    pool->nfree--;
    return block;
}

static void ref_pool_free(void *a, void *p, size_t size)
{
    ref_pool *pool = a;
    (void)size;
    if (p == NULL)
        return;
    if (pool->loses_blocks && ++pool->frees % 3 == 0)
        return; /* the bug: this block never comes back */
    memcpy(p, &pool->free_list, sizeof pool->free_list);
    pool->free_list = p;
    pool->nfree++;
}

/* Every free block lies on a block boundary inside the pool, and the list
 * is as long as the count says (so it has no cycle). */
static bool ref_pool_check(void *a)
{
    const ref_pool *pool = a;
    const unsigned char *end = pool->base + POOL_BLOCK * POOL_BLOCKS;
    size_t n = 0;
    for (void *b = pool->free_list; b != NULL; n++) {
        const unsigned char *c = b;
        if (n >= pool->nfree || c < pool->base || c >= end ||
            (size_t)(c - pool->base) % POOL_BLOCK != 0)
            return false;
        memcpy(&b, c, sizeof b);
    }
    return n == pool->nfree;
}

static const conform_ops ref_pool_ops = {
    .name = "pool-ref",
    .caps = CONFORM_FREE | CONFORM_ZERO_NULL,
    .align = REF_ALIGN,
    .max_size = POOL_BLOCK,
    .capacity = POOL_BLOCK * POOL_BLOCKS,
    .create = ref_pool_create,
    .destroy = ref_pool_destroy,
    .alloc = ref_pool_alloc,
    .free = ref_pool_free,
    .check = ref_pool_check,
};

/* ---- The broken allocators ------------------------------------------------
 *
 * Most are one wrapper around malloc with a bug switched on. Each block is
 * malloc(REF_HEADER + size + REF_ALIGN): the block starts REF_HEADER bytes
 * in (REF_HEADER + 8 when misaligned), and the byte just before it says
 * how far in, so free finds the malloc'd pointer again.
 */
typedef enum bug {
    BUG_MISALIGNED,    /* every 5th block is 8 bytes off the alignment */
    BUG_TWICE,         /* every 10th alloc returns the last block again */
    BUG_SCRIBBLES,     /* every 25th alloc flips a byte in the last block */
    BUG_NULL_NO_ERRNO, /* every 30th alloc returns NULL, errno untouched */
    BUG_WRAPS,         /* rounds the size up before checking it: wraps */
    BUG_CHECK_LIES,    /* check() is false right after the 17th operation */
    BUG_REALLOC_CUTS,  /* realloc copies one byte too few */
} bug;

typedef struct broken {
    bug bug;
    unsigned long calls; /* allocs so far */
    unsigned long ops;   /* allocs, frees and reallocs so far */
    unsigned char *last; /* the last block handed out, while it is live */
    size_t last_size;
} broken;

/* Which bug the next create() switches on: the child sets it. */
static bug next_bug;

static void *broken_create(void)
{
    broken *b = calloc(1, sizeof *b);
    if (b != NULL)
        b->bug = next_bug;
    return b;
}

static void broken_destroy(void *a)
{
    free(a);
}

static unsigned char *broken_block(size_t size, bool misaligned)
{
    unsigned char *raw = malloc(REF_HEADER + size + REF_ALIGN);
    if (raw == NULL)
        return NULL;
    size_t in = REF_HEADER + (misaligned ? 8 : 0);
    raw[in - 1] = (unsigned char)in;
    return raw + in;
}

static void broken_release(unsigned char *p)
{
    free(p - p[-1]);
}

static void *broken_alloc(void *a, size_t size)
{
    broken *b = a;
    b->calls++;
    b->ops++;
    switch (b->bug) {
    case BUG_TWICE:
        if (b->calls % 10 == 0 && b->last != NULL && size <= b->last_size)
            return b->last;
        break;
    case BUG_SCRIBBLES:
        if (b->calls % 25 == 0 && b->last != NULL && b->last_size > 0)
            b->last[b->last_size / 2] ^= 0x40;
        break;
    case BUG_NULL_NO_ERRNO:
        if (b->calls % 30 == 0)
            return NULL;
        break;
    case BUG_WRAPS: {
        /* The classic: round first, check after. SIZE_MAX rounds to 0. */
        size_t rounded = (size + REF_ALIGN - 1) & ~(REF_ALIGN - 1);
        if (rounded > REF_LIMIT) {
            errno = ENOMEM;
            return NULL;
        }
        size = rounded;
        break;
    }
    default:
        break;
    }
    if (size > REF_LIMIT) {
        errno = ENOMEM;
        return NULL;
    }
    bool misaligned = b->bug == BUG_MISALIGNED && b->calls % 5 == 0;
    unsigned char *p = broken_block(size, misaligned);
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    b->last = p;
    b->last_size = size;
    return p;
}

static void broken_free(void *a, void *p, size_t size)
{
    broken *b = a;
    (void)size;
    b->ops++;
    if (p == NULL)
        return;
    if (p == b->last)
        b->last = NULL;
    broken_release(p);
}

/* Grows or shrinks into a fresh, zeroed block, copying one byte too few. */
static void *broken_realloc(void *a, void *p, size_t old, size_t size)
{
    broken *b = a;
    if (p == NULL)
        return broken_alloc(a, size);
    if (size > REF_LIMIT) {
        errno = ENOMEM;
        return NULL;
    }
    b->ops++;
    unsigned char *q = broken_block(size, false);
    if (q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    memset(q, 0, size);
    size_t keep = old < size ? old : size;
    memcpy(q, p, keep > 0 ? keep - 1 : 0);
    if (p == b->last)
        b->last = NULL;
    broken_release(p);
    return q;
}

static bool broken_check(void *a)
{
    const broken *b = a;
    return !(b->bug == BUG_CHECK_LIES && b->ops == 17);
}

/* The template: any size, free, growing; each child adjusts a copy. */
static const conform_ops broken_ops = {
    .name = "broken",
    .caps = CONFORM_ANY_SIZE | CONFORM_FREE,
    .align = REF_ALIGN,
    .max_size = 4096,
    .capacity = 0,
    .create = broken_create,
    .destroy = broken_destroy,
    .alloc = broken_alloc,
    .free = broken_free,
};

/* ---- Running the suite in a child ---------------------------------------- */

typedef struct child_run {
    const conform_ops *ops; /* what the child runs the suite on */
    bug bug;                /* for broken_create */
} child_run;

static void run_suite_in_child(void *arg)
{
    const child_run *run = arg;
    next_bug = run->bug;
    conform_run(run->ops);
}

/* The suite, run on ops in a child, fails with `expect` in its output. */
static bool suite_fails(const conform_ops *ops, bug bug, const char *expect)
{
    child_run run = {ops, bug};
    return test_child_fails(run_suite_in_child, &run, expect);
}

/* ---- 1. It passes correct allocators ------------------------------------- */

/* The references run in this process, so their cases count in its totals. */
static void run_references(void)
{
    conform_run(&ref_malloc_ops);
    conform_run(&ref_bump_ops);
    conform_run(&ref_pool_ops);
}

/* ---- 2. It fails broken ones, for the right reason ----------------------- */

static void test_catches_misaligned_blocks(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-misaligned";
    CHECK(suite_fails(&ops, BUG_MISALIGNED, "not aligned to 16 (off by 8)"));
}

static void test_catches_a_block_handed_out_twice(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-twice";
    CHECK(suite_fails(&ops, BUG_TWICE, "which overlaps live block"));
}

static void test_catches_a_scribble_on_a_live_block(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-scribbles";
    CHECK(suite_fails(&ops, BUG_SCRIBBLES, "corrupted"));
}

static void test_catches_null_without_enomem(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-null";
    CHECK(suite_fails(&ops, BUG_NULL_NO_ERRNO, "returned NULL with errno 0"));
}

static void test_catches_size_arithmetic_that_wraps(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-wraps";
    CHECK(suite_fails(&ops, BUG_WRAPS, "alloc(SIZE_MAX) returned"));
}

/* The lie lasts one operation: only a check after every operation sees
 * it, so this also proves that conform_check_each_op checks that often. */
static void test_catches_a_check_that_fails_once(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-check";
    ops.check = broken_check;
    CHECK(suite_fails(&ops, BUG_CHECK_LIES,
                      "conform_check_each_op[broken-check]: check failed: "
                      "op 17: check() returned false"));
}

static void test_catches_realloc_that_loses_a_byte(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-realloc";
    ops.caps |= CONFORM_REALLOC;
    ops.realloc = broken_realloc;
    CHECK(suite_fails(&ops, BUG_REALLOC_CUTS, "corrupted by realloc"));
}

static void *losing_pool_create(void)
{
    return ref_pool_create_with(true);
}

/* A pool that loses blocks says ENOMEM long before it is full. */
static void test_catches_a_pool_that_loses_blocks(void)
{
    conform_ops ops = ref_pool_ops;
    ops.name = "broken-pool";
    ops.create = losing_pool_create;
    ops.check = NULL; /* its own check would see it: show the suite does */
    CHECK(suite_fails(&ops, 0, "said ENOMEM with only"));
}

static void *stuck_bump_create(void)
{
    return ref_bump_create_with(false);
}

static void test_catches_a_reset_that_does_nothing(void)
{
    conform_ops ops = ref_bump_ops;
    ops.name = "broken-reset";
    ops.create = stuck_bump_create;
    CHECK(suite_fails(&ops, 0, "with nothing allocated"));
}

/* A description that promises free without giving it: the suite says so
 * and skips the rest instead of calling through NULL. */
static void test_catches_an_inconsistent_description(void)
{
    conform_ops ops = broken_ops;
    ops.name = "broken-ops";
    ops.free = NULL;
    CHECK(suite_fails(&ops, BUG_MISALIGNED,
                      "CONFORM_FREE and the free pointer disagree"));
    CHECK(suite_fails(&ops, BUG_MISALIGNED,
                      "skip conform_integrity[broken-ops]: the conform_ops "
                      "description is invalid"));
}

/* ---- 3. The child machinery itself --------------------------------------
 *
 * test_child_fails must say "failed as expected" only for a child whose own
 * checks failed with the expected words: not for a passing child, a crash,
 * or a tool's exit code (ASan exits with 1).
 */
static void case_fails_loudly(void)
{
    CHECK(strlen("the expected words") == 0);
}

static void case_passes(void)
{
    CHECK(1 + 1 == 2);
}

static void child_fails(void *arg)
{
    (void)arg;
    test_run("case_fails_loudly", case_fails_loudly);
}

static void child_passes(void *arg)
{
    (void)arg;
    test_run("case_passes", case_passes);
}

static void child_aborts(void *arg)
{
    (void)arg;
    child_fails(NULL);
    abort();
}

static void child_exits_like_asan(void *arg)
{
    (void)arg;
    child_fails(NULL);
    exit(1);
}

static void test_child_fails_tells_endings_apart(void)
{
    CHECK(test_child_fails(child_fails, NULL, "the expected words"));
    CHECK(test_child_fails(child_fails, NULL, NULL));
    CHECK(!test_child_fails(child_fails, NULL, "other words"));
    CHECK(!test_child_fails(child_passes, NULL, NULL));
    CHECK(!test_child_fails(child_aborts, NULL, "the expected words"));
    CHECK(!test_child_fails(child_exits_like_asan, NULL, NULL));
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    run_references();
    RUN_TEST(test_catches_misaligned_blocks);
    RUN_TEST(test_catches_a_block_handed_out_twice);
    RUN_TEST(test_catches_a_scribble_on_a_live_block);
    RUN_TEST(test_catches_null_without_enomem);
    RUN_TEST(test_catches_size_arithmetic_that_wraps);
    RUN_TEST(test_catches_a_check_that_fails_once);
    RUN_TEST(test_catches_realloc_that_loses_a_byte);
    RUN_TEST(test_catches_a_pool_that_loses_blocks);
    RUN_TEST(test_catches_a_reset_that_does_nothing);
    RUN_TEST(test_catches_an_inconsistent_description);
    RUN_TEST(test_child_fails_tells_endings_apart);
    return test_finish();
}
