/*
 * common/conform.c: the conformance suite. conform.h lists the cases and the
 * rules an allocator is held to; this file says how each rule is checked.
 *
 * The idea: the suite plays a careful, suspicious program. It keeps its own
 * record of every block the allocator handed out and has not taken back,
 * writes into each block a pattern that no other block has, and after each
 * operation asks whether everything it was promised still holds.
 *
 * How one operation is checked (cf_alloc, cf_free_at, cf_realloc_at,
 * cf_reset):
 *
 *   1. Set errno to 0 and call the allocator.
 *   2. NULL: legal only with errno == ENOMEM, and for a size in
 *      [1, max_size] only from a bounded allocator that may be full
 *      (cf_refused says when that is).
 *   3. A pointer: it must be a multiple of ops->align, and [p, p + size)
 *      must overlap no live block. The live blocks sit in an array sorted by
 *      address and never overlap each other, so a binary search finds the
 *      only two that could overlap the new one: its neighbours.
 *   4. Write the block's pattern over the whole block. Under Valgrind or
 *      ASan this is also the check that every byte promised is really there.
 *   5. Read the pattern back before a free, a reset or a realloc (the kept
 *      prefix), every so often in long runs, and at the end. A wrong byte
 *      means that the allocator, its metadata or an overlapping block wrote
 *      where it had no business.
 *   6. In small runs, ops->check() after every operation.
 *
 * Once a check fails, the case stops: the suite's record of the heap can no
 * longer be trusted, and one clear message is worth more than a thousand.
 *
 * The record (one cf_heap per case):
 *
 *      live[], sorted by address              the allocator's memory
 *     +---------------------------+
 *     | p, size, id   (block #7)  | --->  [#7 pattern.....]
 *     | p, size, id   (block #3)  | --->                   [#3 pat]
 *     | p, size, id   (block #12) | --->                            [#12 ...]
 *     +---------------------------+
 *
 * Invariants of the record: live[i].p < live[i + 1].p, and live[i].p +
 * extent(live[i]) <= live[i + 1].p (extent = size, or 1 for a zero-size
 * block: it must still be a unique address); `used` is the sum of cf_need()
 * over the live blocks.
 *
 * The pattern of block #id of `size` bytes: byte i is byte (i % 8) of
 * mix(seed + i / 8), where seed = mix(id, size) and mix is splitmix64's
 * finalizer. A byte copied from another block, shifted by a few places, or
 * left over from an older block at the same address does not match, except
 * by a 1-in-256 chance per byte.
 *
 * Costs: an operation is O(live) for the array insert or remove (memmove)
 * plus O(size) for the pattern. Blocks above CF_FULL_FILL bytes are
 * patterned only at their head and tail, so that a stage whose max_size is
 * a gigabyte does not spend its test run writing it.
 *
 * Threads: the harness (test.h) is not thread-safe, so the threads case
 * gives each thread its own random stream and error record, and the main
 * thread reports after joining them.
 */
#include "conform.h"

#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Tuning ---------------------------------------------------------------
 *
 * Op counts are before test_scale(), which divides them by 10 under
 * Valgrind (or TEST_QUICK). With the system malloc behind it, a whole
 * conform_run takes about half a second in a release build and five
 * seconds under memcheck; most of it is writing and reading patterns.
 */
#define CF_FULL_FILL   ((size_t)1 << 20)  /* patterned whole up to this size */
#define CF_EDGE        (CF_FULL_FILL / 2) /* beyond: this much at each end */
#define CF_RANDOM_MAX  ((size_t)1 << 20)  /* random runs ask for at most this */
#define CF_SLACK       2 /* bounded: refusals allowed past capacity / this */
#define CF_THREADS     4
#define CF_THREAD_LIVE 32 /* blocks a thread keeps at most */

/* ---- The suite's state ----------------------------------------------------
 *
 * The harness runs cases as void (*)(void), so the allocator under test is
 * a static, set by conform_run for the duration of one run.
 */
static const conform_ops *cf_ops;
static bool cf_ops_valid; /* the description is usable (cf_ops_problem) */

typedef struct cf_block {
    unsigned char *p; /* what the allocator returned */
    size_t size;      /* what was asked for */
    uint64_t id;      /* unique in the case: seeds the pattern */
} cf_block;

typedef struct cf_heap {
    void *a;          /* the allocator under test, from ops->create */
    cf_block *live;   /* the live blocks, sorted by address */
    size_t nlive;     /* entries in live[] */
    size_t cap;       /* room in live[] */
    size_t used;      /* sum of cf_need() over live[] (bounded allocators) */
    uint64_t next_id; /* id of the next block */
    size_t ops_done;  /* allocator calls so far, for messages */
    bool check_each;  /* ops->check after every operation */
    bool failed;      /* a check failed: the case stops */
} cf_heap;

typedef enum cf_result {
    CF_OK,   /* the operation succeeded and passed every check */
    CF_FULL, /* a legal refusal: NULL with ENOMEM where that is allowed */
    CF_BAD,  /* a check failed (already reported) */
} cf_result;

static bool cf_has(unsigned cap)
{
    return (cf_ops->caps & cap) != 0;
}

/* ---- Reporting ------------------------------------------------------------
 *
 * A failure is reported once per case, through the harness (so the case is
 * counted as failed), with the operation number: TEST_SEED and TEST_ONLY
 * replay the case, and the number says where to stop in a debugger.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static void
cf_fail(cf_heap *h, const char *file, int line, const char *fmt, ...)
{
    if (h != NULL) {
        if (h->failed)
            return;
        h->failed = true;
    }
    char msg[320];
    int n = 0;
    if (h != NULL)
        n = snprintf(msg, sizeof msg, "op %zu: ", h->ops_done);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    test_check(false, file, line, msg);
}
#define CF_FAIL(h, ...) cf_fail((h), __FILE__, __LINE__, __VA_ARGS__)

/* ---- Sizes ------------------------------------------------------------- */

static size_t cf_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

/*
 * What a block costs a bounded allocator, as the suite counts it: the
 * request rounded up to the alignment (a zero-size block costs one byte's
 * worth), or, for a fixed-size pool, one whole block of max_size.
 */
static size_t cf_need(size_t size)
{
    size_t n = cf_has(CONFORM_ANY_SIZE) ? size : cf_ops->max_size;
    if (n == 0)
        n = 1;
    size_t a = cf_ops->align ? cf_ops->align : 1; /* conform_ops checked */
    return n > SIZE_MAX - (a - 1) ? SIZE_MAX : (n + a - 1) / a * a;
}

/*
 * A request size for a random run, from one random word: many small, some
 * medium, a few large (log-uniform up to max_size, capped at CF_RANDOM_MAX)
 * and now and then max_size itself. Fixed-size pools get sizes in
 * [1, max_size] too: a pool must serve any request that fits its block.
 */
static size_t cf_size_from(uint64_t r)
{
    size_t max = cf_min(cf_ops->max_size, CF_RANDOM_MAX);
    unsigned pick = (unsigned)(r % 100);
    r /= 100;
    size_t hi;
    if (pick < 60) {
        hi = 64;
    } else if (pick < 85) {
        hi = 512;
    } else if (pick < 97) {
        hi = 4096;
    } else if (pick < 99) {
        /* Log-uniform: a power of two 2^b <= max, then a size in
         * [2^b, 2^(b+1)), so each octave is equally likely. */
        unsigned bits = 0;
        while (bits < 63 && ((size_t)1 << (bits + 1)) <= max)
            bits++;
        unsigned b = (unsigned)(r % (bits + 1));
        r /= 64;
        size_t lo = (size_t)1 << b;
        size_t top = cf_min(max, lo + (lo - 1));
        if (top < lo) /* cannot happen (lo <= max); says so to the analyzer */
            return lo;
        return lo + (size_t)(r % (top - lo + 1));
    } else {
        return max;
    }
    hi = cf_min(hi, max);
    return 1 + (size_t)(r % hi);
}

static size_t cf_size(void)
{
    return cf_size_from(test_rand());
}

/* ---- Patterns -------------------------------------------------------------
 *
 * Written and read in words of 8 bytes so that a megabyte costs 128 K
 * mixes, not a million; bytes are stored one by one, so a pointer of any
 * alignment (even a wrong one) is accessed without undefined behaviour.
 */

/* splitmix64's finalizer: every input bit changes about half the output. */
static uint64_t cf_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t cf_seed(uint64_t id, size_t size)
{
    return cf_mix(id * 0x9e3779b97f4a7c15u ^ cf_mix((uint64_t)size));
}

/* Writes bytes [from, to) of the pattern with this seed. */
static void cf_pattern_write(unsigned char *p, uint64_t seed, size_t from,
                             size_t to)
{
    size_t i = from;
    while (i < to) {
        uint64_t w = cf_mix(seed + i / 8);
        size_t end = cf_min((i | 7) + 1, to);
        for (; i < end; i++)
            p[i] = (unsigned char)(w >> (8 * (i % 8)));
    }
}

/* The first byte in [from, to) that differs from the pattern, or SIZE_MAX. */
static size_t cf_pattern_find(const unsigned char *p, uint64_t seed,
                              size_t from, size_t to)
{
    size_t i = from;
    while (i < to) {
        uint64_t w = cf_mix(seed + i / 8);
        size_t end = cf_min((i | 7) + 1, to);
        for (; i < end; i++)
            if (p[i] != (unsigned char)(w >> (8 * (i % 8))))
                return i;
    }
    return SIZE_MAX;
}

static unsigned char cf_pattern_byte(uint64_t seed, size_t i)
{
    return (unsigned char)(cf_mix(seed + i / 8) >> (8 * (i % 8)));
}

/* The parts of a block of `size` bytes that carry its pattern: all of it,
 * or its head and tail when it is larger than CF_FULL_FILL. */
typedef struct cf_ranges {
    size_t from[2], to[2];
    int n;
} cf_ranges;

static cf_ranges cf_covered(size_t size)
{
    cf_ranges r = {{0, 0}, {size, 0}, 1};
    if (size > CF_FULL_FILL) {
        r.to[0] = CF_EDGE;
        r.from[1] = size - CF_EDGE;
        r.to[1] = size;
        r.n = 2;
    }
    return r;
}

static void cf_fill(const cf_block *b)
{
    uint64_t seed = cf_seed(b->id, b->size);
    cf_ranges r = cf_covered(b->size);
    for (int k = 0; k < r.n; k++)
        cf_pattern_write(b->p, seed, r.from[k], r.to[k]);
}

/*
 * Checks the pattern that block (id, pattern_size) had, over its covered
 * bytes below `limit`, at address p (realloc may have moved it). Reports
 * the first wrong byte, with `when` saying at which moment it was seen.
 */
static bool cf_verify_at(cf_heap *h, const unsigned char *p, uint64_t id,
                         size_t pattern_size, size_t limit, const char *when)
{
    uint64_t seed = cf_seed(id, pattern_size);
    cf_ranges r = cf_covered(pattern_size);
    for (int k = 0; k < r.n; k++) {
        size_t bad =
            cf_pattern_find(p, seed, r.from[k], cf_min(r.to[k], limit));
        if (bad != SIZE_MAX) {
            CF_FAIL(h,
                    "block #%" PRIu64 " (%zu bytes at %p) corrupted %s: "
                    "byte %zu is 0x%02x, expected 0x%02x",
                    id, pattern_size, (const void *)p, when, bad, p[bad],
                    cf_pattern_byte(seed, bad));
            return false;
        }
    }
    return true;
}

static bool cf_verify(cf_heap *h, const cf_block *b, const char *when)
{
    return cf_verify_at(h, b->p, b->id, b->size, b->size, when);
}

static bool cf_verify_all(cf_heap *h, const char *when)
{
    for (size_t i = 0; i < h->nlive && !h->failed; i++)
        cf_verify(h, &h->live[i], when);
    return !h->failed;
}

/* ---- The record of live blocks ----------------------------------------- */

/* Index of the first live block whose address is above p. */
static size_t cf_find_slot(const cf_heap *h, uintptr_t p)
{
    size_t lo = 0, hi = h->nlive;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)h->live[mid].p <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t cf_extent(size_t size)
{
    return size ? size : 1;
}

/* The live block that [p, p + extent) overlaps, or NULL. Only the two
 * neighbours of the slot can, since live blocks do not overlap each other. */
static const cf_block *cf_overlap(const cf_heap *h, const unsigned char *p,
                                  size_t size, size_t *slot)
{
    uintptr_t start = (uintptr_t)p, end = start + cf_extent(size);
    size_t i = cf_find_slot(h, start);
    *slot = i;
    if (h->nlive == 0)
        return NULL;
    if (i > 0) {
        const cf_block *prev = &h->live[i - 1];
        if ((uintptr_t)prev->p + cf_extent(prev->size) > start)
            return prev;
    }
    if (i < h->nlive && (uintptr_t)h->live[i].p < end)
        return &h->live[i];
    return NULL;
}

static bool cf_insert(cf_heap *h, size_t slot, cf_block b)
{
    if (h->nlive == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        cf_block *live = realloc(h->live, cap * sizeof *live);
        if (live == NULL) {
            CF_FAIL(h, "the suite ran out of memory for its record");
            return false;
        }
        h->live = live;
        h->cap = cap;
    }
    memmove(&h->live[slot + 1], &h->live[slot],
            (h->nlive - slot) * sizeof *h->live);
    h->live[slot] = b;
    h->nlive++;
    h->used += cf_need(b.size);
    return true;
}

static cf_block cf_remove(cf_heap *h, size_t i)
{
    cf_block b = h->live[i];
    memmove(&h->live[i], &h->live[i + 1], (h->nlive - i - 1) * sizeof *h->live);
    h->nlive--;
    h->used -= cf_need(b.size);
    return b;
}

static size_t cf_random_index(const cf_heap *h)
{
    return test_rand_range(0, h->nlive - 1);
}

/* ---- Operations, each checked -------------------------------------------- */

/* ops->check, if the stage has one; `after` names the last operation. */
static void cf_check_now(cf_heap *h, const char *after, size_t size)
{
    if (cf_ops->check == NULL || h->failed)
        return;
    if (!cf_ops->check(h->a))
        CF_FAIL(h, "check() returned false after %s(%zu)", after, size);
}

static void cf_after_op(cf_heap *h, const char *op, size_t size)
{
    if (h->check_each)
        cf_check_now(h, op, size);
}

/*
 * Judges a NULL from alloc or realloc of `size` bytes (step 2 of the
 * header): CF_FULL when the refusal is legal, CF_BAD (reported) when not.
 *
 * A bounded allocator may refuse once the blocks in use, counted by
 * cf_need(), fill more than 1 / CF_SLACK of its capacity: the rest is slack
 * for headers, redzones and padding that the suite cannot see. The slack
 * applies only where "full" is well defined: without free (a bump region)
 * or with fixed-size blocks (a pool). An any-size allocator with free may
 * be fragmented, so it is only held to "an empty allocator serves any
 * request up to max_size".
 */
static cf_result cf_refused(cf_heap *h, const char *op, size_t size)
{
    int err = errno;
    const conform_ops *o = cf_ops;
    if (err != ENOMEM) {
        CF_FAIL(h, "%s(%zu) returned NULL with errno %d (%s), not ENOMEM", op,
                size, err, strerror(err));
        return CF_BAD;
    }
    if (size > o->max_size)
        return CF_FULL;
    if (o->capacity == 0) {
        CF_FAIL(h,
                "%s(%zu) returned NULL (ENOMEM), but a growing allocator "
                "(capacity 0) must serve every size up to max_size %zu",
                op, size, o->max_size);
        return CF_BAD;
    }
    if (h->nlive == 0) {
        CF_FAIL(h,
                "%s(%zu) returned NULL (ENOMEM) with nothing allocated: an "
                "empty allocator must serve any size up to max_size %zu",
                op, size, o->max_size);
        return CF_BAD;
    }
    bool countable = !cf_has(CONFORM_FREE) || !cf_has(CONFORM_ANY_SIZE);
    size_t need = cf_need(size);
    if (countable && h->used <= o->capacity / CF_SLACK &&
        need <= o->capacity / CF_SLACK - h->used) {
        CF_FAIL(h,
                "%s(%zu) said ENOMEM with only %zu of %zu capacity bytes in "
                "use (%zu blocks): it may only refuse past 1/%d of capacity",
                op, size, h->used, o->capacity, h->nlive, CF_SLACK);
        return CF_BAD;
    }
    return CF_FULL;
}

/*
 * Hands a block the allocator refused to us back to it, if it can take
 * blocks back. Used for blocks that are wrong but are the allocator's own
 * (misaligned, or a success where a refusal was due): the allocator's
 * accounting stays whole, and the suite never writes into them.
 */
static void cf_give_back(cf_heap *h, void *p, size_t size)
{
    if (cf_ops->free != NULL)
        cf_ops->free(h->a, p, size);
}

/*
 * Step 3 for a new pointer: alignment and overlap, then into the record.
 * The caller writes the pattern. *slot_out is where the block went.
 */
static cf_result cf_accept(cf_heap *h, const char *op, unsigned char *p,
                           size_t size, uint64_t id, size_t *slot_out)
{
    const conform_ops *o = cf_ops;
    if ((uintptr_t)p % o->align != 0) {
        CF_FAIL(h, "%s(%zu) returned %p, not aligned to %zu (off by %zu)", op,
                size, (void *)p, o->align, (size_t)((uintptr_t)p % o->align));
        cf_give_back(h, p, size);
        return CF_BAD;
    }
    size_t slot;
    const cf_block *other = cf_overlap(h, p, size, &slot);
    if (other != NULL) {
        /* Not given back: its bytes belong to a live block. */
        CF_FAIL(h,
                "%s(%zu) returned [%p, +%zu), which overlaps live block "
                "#%" PRIu64 " [%p, +%zu)%s",
                op, size, (void *)p, cf_extent(size), other->id,
                (void *)other->p, cf_extent(other->size),
                size == 0 ? " (a zero-size block must be a unique address)"
                          : "");
        return CF_BAD;
    }
    cf_block b = {p, size, id};
    if (!cf_insert(h, slot, b))
        return CF_BAD;
    *slot_out = slot;
    return CF_OK;
}

/* A new block of `size` bytes, checked, patterned and recorded. */
static cf_result cf_alloc(cf_heap *h, size_t size)
{
    if (h->failed)
        return CF_BAD;
    errno = 0;
    unsigned char *p = cf_ops->alloc(h->a, size);
    h->ops_done++;
    cf_result r;
    size_t slot;
    if (p == NULL) {
        r = cf_refused(h, "alloc", size);
    } else {
        r = cf_accept(h, "alloc", p, size, h->next_id++, &slot);
        if (r == CF_OK)
            cf_fill(&h->live[slot]);
    }
    if (r != CF_BAD)
        cf_after_op(h, "alloc", size);
    return h->failed ? CF_BAD : r;
}

/* Frees live block i after verifying it. */
static cf_result cf_free_at(cf_heap *h, size_t i)
{
    if (h->failed || !cf_verify(h, &h->live[i], "before its free"))
        return CF_BAD;
    cf_block b = cf_remove(h, i);
    cf_ops->free(h->a, b.p, b.size);
    h->ops_done++;
    cf_after_op(h, "free", b.size);
    return h->failed ? CF_BAD : CF_OK;
}

/*
 * Resizes live block i: the first min(old, new) bytes must come through
 * (at the new address if it moved), a refusal must leave the block as it
 * was. The block keeps its id and gets the pattern of its new size.
 */
static cf_result cf_realloc_at(cf_heap *h, size_t i, size_t new_size)
{
    if (h->failed || !cf_verify(h, &h->live[i], "before its realloc"))
        return CF_BAD;
    cf_block old = h->live[i];
    errno = 0;
    unsigned char *q = cf_ops->realloc(h->a, old.p, old.size, new_size);
    h->ops_done++;
    if (q == NULL) {
        cf_result r = cf_refused(h, "realloc", new_size);
        if (r == CF_FULL) {
            cf_verify(h, &old, "by a refused realloc");
            cf_after_op(h, "realloc", new_size);
        }
        return h->failed ? CF_BAD : r;
    }
    cf_remove(h, i); /* the old block is gone, whether q moved or not */
    size_t slot;
    if (cf_accept(h, "realloc", q, new_size, old.id, &slot) != CF_OK)
        return CF_BAD;
    if (!cf_verify_at(h, q, old.id, old.size, new_size, "by realloc"))
        return CF_BAD;
    cf_fill(&h->live[slot]);
    cf_after_op(h, "realloc", new_size);
    return h->failed ? CF_BAD : CF_OK;
}

/* Verifies every block, then resets the allocator: the record empties. */
static cf_result cf_reset(cf_heap *h)
{
    if (h->failed || !cf_verify_all(h, "before reset"))
        return CF_BAD;
    cf_ops->reset(h->a);
    h->ops_done++;
    h->nlive = 0;
    h->used = 0;
    cf_check_now(h, "reset", 0); /* cheap next to a reset: always */
    return h->failed ? CF_BAD : CF_OK;
}

/*
 * Makes room in a full bounded allocator: frees half of the live blocks (a
 * random half) or, without free, resets. False when neither is possible.
 */
static bool cf_make_room(cf_heap *h)
{
    if (h->failed)
        return false;
    if (cf_has(CONFORM_FREE) && h->nlive > 0) {
        size_t n = (h->nlive + 1) / 2;
        for (size_t k = 0; k < n && !h->failed; k++)
            cf_free_at(h, cf_random_index(h));
        return !h->failed;
    }
    if (cf_ops->reset != NULL)
        return cf_reset(h) == CF_OK;
    return false;
}

/* alloc, making room as often as needed. Ends: an empty allocator that
 * still refuses is reported by cf_refused. CF_FULL only when no room can
 * be made (no free, no reset). */
static cf_result cf_alloc_room(cf_heap *h, size_t size)
{
    for (;;) {
        cf_result r = cf_alloc(h, size);
        if (r != CF_FULL)
            return r;
        if (!cf_make_room(h))
            return h->failed ? CF_BAD : CF_FULL;
    }
}

/* ---- A case's heap: open, churn, close ----------------------------------- */

static bool cf_open(cf_heap *h, bool check_each)
{
    memset(h, 0, sizeof *h);
    h->next_id = 1;
    h->check_each = check_each;
    h->a = cf_ops->create();
    if (h->a == NULL) {
        CF_FAIL(NULL, "create() returned NULL");
        return false;
    }
    cf_check_now(h, "create", 0);
    return !h->failed;
}

/*
 * Ends a case: verifies every block still live, frees them in random order
 * (verifying each), checks, destroys. After a failure it only gives the
 * blocks back, so that the allocator can release everything and the memory
 * tools see no leak from the suite.
 */
static void cf_close(cf_heap *h)
{
    cf_verify_all(h, "at the end");
    if (cf_has(CONFORM_FREE)) {
        while (h->nlive > 0) {
            size_t i = cf_random_index(h);
            if (!h->failed) {
                cf_free_at(h, i);
            } else {
                cf_block b = cf_remove(h, i);
                cf_ops->free(h->a, b.p, b.size);
            }
        }
    }
    cf_check_now(h, "the last operation", 0);
    cf_ops->destroy(h->a);
    free(h->live);
    h->live = NULL;
    h->nlive = h->cap = 0;
}

/* A random run's mix of operations. */
typedef struct cf_plan {
    size_t ops;           /* operations to attempt */
    size_t max_live;      /* past this, free (or reset) before allocating */
    unsigned free_pct;    /* % frees, with CONFORM_FREE */
    unsigned realloc_pct; /* % reallocs, with CONFORM_REALLOC */
    unsigned reset_pct;   /* % resets, when ops->reset exists */
    size_t verify_every;  /* verify every block each this many ops; 0 never */
} cf_plan;

static void cf_churn(cf_heap *h, const cf_plan *plan)
{
    bool can_free = cf_has(CONFORM_FREE);
    bool can_realloc = cf_has(CONFORM_REALLOC);
    bool can_reset = cf_ops->reset != NULL;
    for (size_t i = 0; i < plan->ops && !h->failed; i++) {
        unsigned r = (unsigned)(test_rand() % 100);
        if (can_free && h->nlive > 0 &&
            (r < plan->free_pct || h->nlive >= plan->max_live)) {
            cf_free_at(h, cf_random_index(h));
        } else if (can_realloc && h->nlive > 0 &&
                   r < plan->free_pct + plan->realloc_pct) {
            cf_realloc_at(h, cf_random_index(h), cf_size());
        } else if (can_reset && r >= 100 - plan->reset_pct) {
            cf_reset(h);
        } else if (h->nlive >= plan->max_live) {
            if (!cf_make_room(h))
                break; /* no free, no reset: this run is as long as it gets */
        } else if (cf_alloc_room(h, cf_size()) == CF_FULL) {
            break; /* bounded, and no way to make room */
        }
        if (plan->verify_every && (i + 1) % plan->verify_every == 0)
            cf_verify_all(h, "at a periodic check");
    }
}

/* ---- The cases ------------------------------------------------------------
 */

/*
 * The first thing wrong with the description, or NULL. The cases call
 * through it, so a missing function pointer would crash them: conform_run
 * asks this before any case runs, and every case but conform_ops skips when
 * there is an answer (so TEST_ONLY=<one case> still works).
 */
static const char *cf_ops_problem(const conform_ops *o)
{
    unsigned known = CONFORM_ANY_SIZE | CONFORM_FREE | CONFORM_REALLOC |
                     CONFORM_THREADSAFE | CONFORM_ZERO_NULL;
    if (o->name == NULL)
        return "name is NULL";
    if (o->create == NULL || o->destroy == NULL || o->alloc == NULL)
        return "create, destroy and alloc are required";
    if ((o->caps & ~known) != 0)
        return "caps has bits that are not enum conform_caps";
    if (o->align == 0 || (o->align & (o->align - 1)) != 0)
        return "align is not a power of two";
    if (o->max_size == 0)
        return "max_size is 0";
    if (((o->caps & CONFORM_FREE) != 0) != (o->free != NULL))
        return "CONFORM_FREE and the free pointer disagree";
    if (((o->caps & CONFORM_REALLOC) != 0) != (o->realloc != NULL))
        return "CONFORM_REALLOC and the realloc pointer disagree";
    if (o->realloc != NULL && o->free == NULL)
        return "realloc without free";
    if (o->capacity != 0 && o->capacity < cf_need(o->max_size))
        return "capacity cannot hold one block of max_size";
    return NULL;
}

/* conform_ops: the description is consistent (see cf_ops_problem). */
static void conform_ops_valid(void)
{
    const char *problem = cf_ops_problem(cf_ops);
    if (problem != NULL)
        CF_FAIL(NULL, "conform_ops of \"%s\": %s",
                cf_ops->name ? cf_ops->name : "?", problem);
}

static bool cf_usable(void)
{
    if (!cf_ops_valid)
        test_skip("the conform_ops description is invalid (see conform_ops)");
    return cf_ops_valid;
}

/*
 * conform_alignment: sizes across [1, max_size]: every size up to 64, each
 * power of two up to CF_RANDOM_MAX and its neighbours, max_size, and random
 * sizes. cf_accept checks the alignment, cf_fill writes the whole block.
 * Blocks stay live a while so that they come from different places.
 */
static void conform_alignment(void)
{
    if (!cf_usable())
        return;
    size_t max = cf_ops->max_size;
    size_t sizes[256];
    size_t n = 0;
    for (size_t s = 1; s <= 64 && s <= max; s++)
        sizes[n++] = s;
    for (size_t p = 128; p <= cf_min(max, CF_RANDOM_MAX); p *= 2) {
        sizes[n++] = p - 1;
        sizes[n++] = p;
        if (p + 1 <= max)
            sizes[n++] = p + 1;
    }
    sizes[n++] = max;
    while (n < sizeof sizes / sizeof sizes[0])
        sizes[n++] = cf_size();

    cf_heap h;
    if (!cf_open(&h, false))
        return;
    for (size_t i = 0; i < n && !h.failed; i++) {
        if (h.nlive >= 16 && !cf_make_room(&h))
            break;
        if (cf_alloc_room(&h, sizes[i]) == CF_FULL)
            break;
    }
    cf_close(&h);
}

/*
 * conform_no_overlap: a random run that keeps many blocks live (up to a
 * thousand), so that the allocator has to place new blocks among many old
 * ones. cf_accept checks each new block against its neighbours.
 */
static void conform_no_overlap(void)
{
    if (!cf_usable())
        return;
    cf_heap h;
    if (!cf_open(&h, false))
        return;
    cf_plan plan = {test_scale(4000), 1000, 35, 5, 0, 0};
    cf_churn(&h, &plan);
    cf_close(&h);
}

/*
 * conform_integrity: a long random run of allocs, frees, reallocs and
 * resets; every block is verified at its free, at resets, every 500
 * operations, and at the end.
 */
static void conform_integrity(void)
{
    if (!cf_usable())
        return;
    cf_heap h;
    if (!cf_open(&h, false))
        return;
    cf_plan plan = {test_scale(8000), 200, 40, 10, 1, 500};
    cf_churn(&h, &plan);
    cf_close(&h);
}

/* A request that no allocator can meet, and how to name it in a message. */
typedef struct cf_huge {
    size_t size;
    const char *name;
} cf_huge;

/* Asks for a size that must be refused with ENOMEM; whatever comes back is
 * never written. */
static void cf_expect_refusal(cf_heap *h, size_t size, const char *name)
{
    if (h->failed)
        return;
    errno = 0;
    void *p = cf_ops->alloc(h->a, size);
    int err = errno;
    h->ops_done++;
    if (p != NULL) {
        CF_FAIL(h,
                "alloc(%s) returned %p instead of NULL: its size arithmetic "
                "probably wrapped around (a short block)",
                name, p);
        cf_give_back(h, p, size);
    } else if (err != ENOMEM) {
        CF_FAIL(h, "alloc(%s) returned NULL with errno %d (%s), not ENOMEM",
                name, err, strerror(err));
    }
    cf_after_op(h, "alloc", size);
}

/* Sizes that wrap the usual size arithmetic: rounding up to the alignment
 * or to a page, adding a header, doubling. */
static size_t cf_huge_list(cf_huge *out)
{
    size_t a = cf_ops->align;
    size_t n = 0;
    out[n++] = (cf_huge){SIZE_MAX, "SIZE_MAX"};
    out[n++] = (cf_huge){SIZE_MAX - a + 1, "SIZE_MAX - align + 1"};
    out[n++] = (cf_huge){SIZE_MAX - 4095, "SIZE_MAX - 4095"};
    out[n++] = (cf_huge){SIZE_MAX / 2 + 1, "SIZE_MAX / 2 + 1"};
    out[n++] = (cf_huge){SIZE_MAX / 2 - 4095, "SIZE_MAX / 2 - 4095"};
    return n;
}

/* Size 0: NULL with CONFORM_ZERO_NULL, else two unique, aligned, freeable
 * pointers (cf_accept treats a zero-size block as one byte). */
static void cf_edge_zero(cf_heap *h)
{
    if (cf_has(CONFORM_ZERO_NULL)) {
        errno = 0;
        void *p = cf_ops->alloc(h->a, 0);
        h->ops_done++;
        if (p != NULL) {
            CF_FAIL(h,
                    "alloc(0) returned %p, but the ops say "
                    "CONFORM_ZERO_NULL",
                    p);
            cf_give_back(h, p, 0);
        }
        cf_after_op(h, "alloc", 0);
        return;
    }
    for (int k = 0; k < 2 && !h->failed; k++)
        if (cf_alloc(h, 0) != CF_OK)
            CF_FAIL(h, "alloc(0) was refused on a fresh allocator");
}

/* Above max_size: a refusal must say ENOMEM; a fixed-size pool must refuse
 * (its blocks are max_size bytes); an any-size allocator may also serve the
 * request, and then the block must be as good as any. */
static void cf_edge_above_max(cf_heap *h)
{
    if (cf_ops->max_size == SIZE_MAX || h->failed)
        return; /* there is no above */
    size_t size = cf_ops->max_size + 1;
    errno = 0;
    unsigned char *p = cf_ops->alloc(h->a, size);
    h->ops_done++;
    if (p == NULL) {
        cf_refused(h, "alloc", size);
    } else if (!cf_has(CONFORM_ANY_SIZE)) {
        CF_FAIL(h,
                "alloc(max_size + 1 = %zu) returned %p: a fixed-size "
                "allocator must refuse it with ENOMEM",
                size, (void *)p);
        cf_give_back(h, p, size);
    } else {
        size_t slot;
        if (cf_accept(h, "alloc", p, size, h->next_id++, &slot) == CF_OK)
            cf_fill(&h->live[slot]);
    }
    cf_after_op(h, "alloc", size);
}

/*
 * conform_edge_sizes, each group on a fresh allocator, with check() after
 * every call:
 *   1. 0 (see cf_edge_zero), and 1;
 *   2. the sizes nobody can serve: NULL and ENOMEM, and the heap unchanged:
 *      the blocks from step 1 keep their bytes and a new block overlaps
 *      none of them (a wrapped size often moves a bump pointer backwards);
 *   3. max_size, which must succeed on a fresh allocator;
 *   4. max_size + 1 (see cf_edge_above_max).
 */
static void conform_edge_sizes(void)
{
    if (!cf_usable())
        return;
    cf_heap h;

    if (!cf_open(&h, true))
        return;
    cf_edge_zero(&h);
    if (cf_alloc(&h, 1) != CF_OK)
        CF_FAIL(&h, "alloc(1) was refused on a fresh allocator");
    cf_huge huge[8];
    size_t n = cf_huge_list(huge);
    for (size_t i = 0; i < n; i++)
        cf_expect_refusal(&h, huge[i].size, huge[i].name);
    cf_alloc_room(&h, 100);
    cf_close(&h);

    if (!cf_open(&h, true))
        return;
    if (cf_alloc(&h, cf_ops->max_size) != CF_OK)
        CF_FAIL(&h, "alloc(max_size = %zu) was refused on a fresh allocator",
                cf_ops->max_size);
    cf_close(&h);

    if (!cf_open(&h, true))
        return;
    cf_edge_above_max(&h);
    cf_close(&h);
}

/* conform_check_each_op: a small random run with every kind of operation
 * the allocator has, and check() after each one. */
static void conform_check_each_op(void)
{
    if (!cf_usable())
        return;
    if (cf_ops->check == NULL) {
        test_skip("needs a check function (ops->check)");
        return;
    }
    cf_heap h;
    if (!cf_open(&h, true))
        return;
    cf_plan plan = {test_scale(400), 24, 40, 10, 3, 0};
    cf_churn(&h, &plan);
    cf_close(&h);
}

/* conform_free_null: free(NULL) does nothing, on an empty allocator and on
 * one with a live block: that block keeps its bytes, and the next blocks
 * are proper blocks (a pool that pushed NULL on its free list would hand
 * it out). */
static void conform_free_null(void)
{
    if (!cf_usable())
        return;
    if (!cf_has(CONFORM_FREE)) {
        test_skip("needs CONFORM_FREE");
        return;
    }
    cf_heap h;
    if (!cf_open(&h, true))
        return;
    cf_ops->free(h.a, NULL, 0);
    h.ops_done++;
    cf_after_op(&h, "free", 0);
    cf_alloc_room(&h, 24);
    for (int k = 0; k < 3; k++) {
        cf_ops->free(h.a, NULL, 0);
        h.ops_done++;
        cf_after_op(&h, "free", 0);
    }
    cf_verify_all(&h, "by free(NULL)");
    for (int k = 0; k < 4; k++)
        cf_alloc_room(&h, 24);
    cf_close(&h);
}

/*
 * conform_realloc:
 *   1. realloc(NULL, n) acts as alloc(n), as C's realloc does;
 *   2. one block grows by steps to max_size (or CF_RANDOM_MAX) and shrinks
 *      back to 1 byte, its prefix checked at every step; then the same size;
 *   3. sizes nobody can serve: NULL with ENOMEM, the block untouched;
 *   4. a random run where half the operations are reallocs.
 */
static void conform_realloc(void)
{
    if (!cf_usable())
        return;
    if (!cf_has(CONFORM_REALLOC)) {
        test_skip("needs CONFORM_REALLOC");
        return;
    }
    cf_heap h;
    if (!cf_open(&h, true))
        return;

    /* 1. */
    errno = 0;
    unsigned char *p = cf_ops->realloc(h.a, NULL, 0, 40);
    h.ops_done++;
    size_t slot = 0;
    if (p == NULL) {
        cf_refused(&h, "realloc(NULL)", 40);
    } else if (cf_accept(&h, "realloc(NULL)", p, 40, h.next_id++, &slot) ==
               CF_OK) {
        cf_fill(&h.live[slot]);
    }
    cf_after_op(&h, "realloc", 40);
    /* A neighbour, so that growing in place is not always possible. */
    cf_alloc_room(&h, cf_min(200, cf_ops->max_size));

    /* 2. The block from step 1 is id 1. */
    size_t top = cf_min(cf_ops->max_size, CF_RANDOM_MAX);
    size_t size = 40;
    for (int down = 0; down < 2 && !h.failed; down++) {
        for (;;) {
            size = down ? size / 2 : (size < top / 2 ? size * 2 + 1 : top);
            if (size == 0)
                size = 1;
            size_t i = 0;
            while (i < h.nlive && h.live[i].id != 1)
                i++;
            if (i == h.nlive || cf_realloc_at(&h, i, size) != CF_OK)
                break;
            if (down ? size == 1 : size == top)
                break;
        }
    }
    for (size_t i = 0; i < h.nlive && !h.failed; i++) {
        if (h.live[i].id == 1) {
            cf_realloc_at(&h, i, h.live[i].size);
            break;
        }
    }

    /* 3. */
    cf_huge huge[8];
    size_t n = cf_huge_list(huge);
    for (size_t k = 0; k < n && h.nlive > 0 && !h.failed; k++) {
        cf_block b = h.live[0];
        errno = 0;
        void *q = cf_ops->realloc(h.a, b.p, b.size, huge[k].size);
        int err = errno;
        h.ops_done++;
        if (q != NULL) {
            /* The old block may be gone: forget it rather than free it
             * twice. */
            cf_remove(&h, 0);
            CF_FAIL(&h, "realloc(%p, %s) returned %p instead of NULL",
                    (void *)b.p, huge[k].name, q);
            cf_give_back(&h, q, b.size);
        } else if (err != ENOMEM) {
            CF_FAIL(&h,
                    "realloc(%p, %s) returned NULL with errno %d (%s), not "
                    "ENOMEM",
                    (void *)b.p, huge[k].name, err, strerror(err));
        } else {
            cf_verify(&h, &b, "by a refused realloc");
        }
        cf_after_op(&h, "realloc", huge[k].size);
    }

    /* 4. */
    h.check_each = false;
    cf_plan plan = {test_scale(2000), 64, 20, 50, 0, 250};
    cf_churn(&h, &plan);
    cf_close(&h);
}

/*
 * conform_reset, three rounds of:
 *   1. fill: allocate until the allocator is full (bounded) or holds a few
 *      hundred blocks (growing); the refusal rules of cf_refused apply, so
 *      a bounded allocator must fill past 1 / CF_SLACK of its capacity in
 *      every round, which it cannot do if the blocks of the round before
 *      were not really released;
 *   2. reset (cf_reset verifies every block first, and checks after);
 *   3. max_size at once, on the emptied allocator; reset again.
 */
static void conform_reset(void)
{
    if (!cf_usable())
        return;
    if (cf_ops->reset == NULL) {
        test_skip("needs a reset function (ops->reset)");
        return;
    }
    cf_heap h;
    if (!cf_open(&h, false))
        return;
    size_t limit = test_scale(1000);
    for (int round = 0; round < 3 && !h.failed; round++) {
        for (size_t k = 0; k < limit && !h.failed; k++)
            if (cf_alloc(&h, cf_size()) == CF_FULL)
                break;
        cf_check_now(&h, "a fill", 0);
        cf_reset(&h);
        if (!h.failed && cf_alloc(&h, cf_ops->max_size) != CF_OK)
            CF_FAIL(&h, "alloc(max_size = %zu) was refused just after reset",
                    cf_ops->max_size);
        cf_reset(&h);
    }
    cf_close(&h);
}

/* ---- Threads --------------------------------------------------------------
 *
 * Each thread churns its own blocks on the one shared allocator, with its
 * own random stream (seeded from test_rand(), so a run replays up to the
 * interleaving) and its own error record: the harness is not thread-safe.
 * Blocks of different threads that overlap are caught when one thread's
 * pattern is found in another's block, and, for the blocks still live at
 * the end, by the main thread's sorted check. The main thread then frees
 * every thread's leftovers, which is also a free from a thread that did
 * not allocate.
 */
typedef struct cf_worker {
    void *a;                         /* the shared allocator */
    int index;                       /* 0 .. CF_THREADS - 1 */
    uint64_t rng;                    /* its splitmix64 state */
    size_t ops;                      /* operations to run */
    cf_block blocks[CF_THREAD_LIVE]; /* its live blocks, unsorted */
    size_t nblocks;
    uint64_t next_id; /* ids: thread index in the top bits */
    char error[200];  /* first failure, or "" */
} cf_worker;

static uint64_t cf_worker_rand(cf_worker *w)
{
    return cf_mix(w->rng += 0x9e3779b97f4a7c15u);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
cf_worker_fail(cf_worker *w, const char *fmt, ...)
{
    if (w->error[0] != '\0')
        return;
    int n = snprintf(w->error, sizeof w->error, "thread %d: ", w->index);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error + n, sizeof w->error - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool cf_worker_verify(cf_worker *w, const cf_block *b, const char *when)
{
    uint64_t seed = cf_seed(b->id, b->size);
    cf_ranges r = cf_covered(b->size);
    for (int k = 0; k < r.n; k++) {
        size_t bad = cf_pattern_find(b->p, seed, r.from[k], r.to[k]);
        if (bad != SIZE_MAX) {
            cf_worker_fail(w,
                           "block #%" PRIx64 " (%zu bytes at %p) corrupted "
                           "%s at byte %zu",
                           b->id, b->size, (void *)b->p, when, bad);
            return false;
        }
    }
    return true;
}

/* NULL from a thread: only ENOMEM, and only from a bounded allocator. */
static bool cf_worker_refusal_ok(cf_worker *w, const char *op, size_t size)
{
    int err = errno;
    if (err != ENOMEM) {
        cf_worker_fail(w, "%s(%zu) returned NULL with errno %d, not ENOMEM", op,
                       size, err);
        return false;
    }
    if (cf_ops->capacity == 0) {
        cf_worker_fail(w, "%s(%zu) returned NULL in a growing allocator", op,
                       size);
        return false;
    }
    return true;
}

static bool cf_worker_take(cf_worker *w, unsigned char *p, size_t size,
                           uint64_t id, const char *op)
{
    if ((uintptr_t)p % cf_ops->align != 0) {
        cf_worker_fail(w, "%s(%zu) returned %p, not aligned to %zu", op, size,
                       (void *)p, cf_ops->align);
        if (cf_ops->free != NULL)
            cf_ops->free(w->a, p, size); /* the allocator's own: give back */
        return false;
    }
    cf_block b = {p, size, id};
    cf_fill(&b);
    w->blocks[w->nblocks++] = b;
    return true;
}

static void *cf_worker_main(void *arg)
{
    cf_worker *w = arg;
    const conform_ops *o = cf_ops;
    bool can_free = (o->caps & CONFORM_FREE) != 0;
    bool can_realloc = (o->caps & CONFORM_REALLOC) != 0;
    for (size_t i = 0; i < w->ops && w->error[0] == '\0'; i++) {
        uint64_t r = cf_worker_rand(w);
        unsigned pick = (unsigned)(r % 100);
        size_t k = w->nblocks ? (size_t)((r >> 32) % w->nblocks) : 0;
        if (can_free && w->nblocks > 0 &&
            (pick < 45 || w->nblocks == CF_THREAD_LIVE)) {
            cf_block b = w->blocks[k];
            if (!cf_worker_verify(w, &b, "before its free"))
                break;
            w->blocks[k] = w->blocks[--w->nblocks];
            o->free(w->a, b.p, b.size);
        } else if (can_realloc && w->nblocks > 0 && pick < 55) {
            cf_block b = w->blocks[k];
            size_t size = cf_min(cf_size_from(cf_worker_rand(w)), 2048);
            if (!cf_worker_verify(w, &b, "before its realloc"))
                break;
            errno = 0;
            unsigned char *q = o->realloc(w->a, b.p, b.size, size);
            if (q == NULL) {
                if (!cf_worker_refusal_ok(w, "realloc", size))
                    break;
                continue;
            }
            w->blocks[k] = w->blocks[--w->nblocks];
            cf_block moved = {q, size, b.id};
            size_t keep = cf_min(b.size, size);
            uint64_t seed = cf_seed(b.id, b.size);
            if (cf_pattern_find(q, seed, 0, cf_min(keep, CF_EDGE)) !=
                SIZE_MAX) {
                cf_worker_fail(w, "realloc lost the data of block #%" PRIx64,
                               b.id);
                w->blocks[w->nblocks++] = moved; /* still ours to free */
                break;
            }
            if (!cf_worker_take(w, q, size, b.id, "realloc"))
                break;
        } else if (w->nblocks < CF_THREAD_LIVE) {
            size_t size = cf_min(cf_size_from(cf_worker_rand(w)), 2048);
            errno = 0;
            unsigned char *p = o->alloc(w->a, size);
            if (p == NULL) {
                if (!cf_worker_refusal_ok(w, "alloc", size) || !can_free)
                    break; /* without free, a full allocator stays full */
                continue;
            }
            if (!cf_worker_take(w, p, size, w->next_id++, "alloc"))
                break;
        } else {
            break; /* no free and all slots used: done */
        }
    }
    return NULL;
}

static int cf_block_cmp(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t)((const cf_block *)x)->p;
    uintptr_t b = (uintptr_t)((const cf_block *)y)->p;
    return (a > b) - (a < b);
}

/*
 * conform_threads: CF_THREADS threads at once on one allocator, then the
 * main thread's verdict: each thread's first error, then the leftovers of
 * all threads sorted and checked for overlap and content, then freed.
 */
static void conform_threads(void)
{
    if (!cf_usable())
        return;
    if (!cf_has(CONFORM_THREADSAFE)) {
        test_skip("needs CONFORM_THREADSAFE");
        return;
    }
    cf_heap h;
    if (!cf_open(&h, false))
        return;
    cf_worker workers[CF_THREADS];
    pthread_t tids[CF_THREADS];
    bool started[CF_THREADS] = {false};
    for (int t = 0; t < CF_THREADS; t++) {
        cf_worker *w = &workers[t];
        memset(w, 0, sizeof *w);
        w->a = h.a;
        w->index = t;
        w->rng = test_rand();
        w->ops = test_scale(4000);
        w->next_id = ((uint64_t)t + 1) << 48;
    }
    for (int t = 0; t < CF_THREADS; t++) {
        int err = pthread_create(&tids[t], NULL, cf_worker_main, &workers[t]);
        if (err != 0)
            CF_FAIL(&h, "pthread_create: %s", strerror(err));
        started[t] = err == 0;
    }
    for (int t = 0; t < CF_THREADS; t++)
        if (started[t])
            pthread_join(tids[t], NULL);

    /* Every thread's leftovers go into the main record, sorted. */
    for (int t = 0; t < CF_THREADS; t++) {
        cf_worker *w = &workers[t];
        if (w->error[0] != '\0')
            CF_FAIL(&h, "%s", w->error);
        qsort(w->blocks, w->nblocks, sizeof w->blocks[0], cf_block_cmp);
        for (size_t i = 0; i < w->nblocks; i++) {
            size_t slot;
            const cf_block *b = &w->blocks[i];
            const cf_block *other = cf_overlap(&h, b->p, b->size, &slot);
            if (other != NULL) {
                CF_FAIL(&h,
                        "two threads hold overlapping blocks: #%" PRIx64
                        " [%p, +%zu) and #%" PRIx64 " [%p, +%zu)",
                        b->id, (void *)b->p, b->size, other->id,
                        (void *)other->p, other->size);
                continue; /* not freed: its bytes belong to the other */
            }
            if (!cf_insert(&h, slot, *b) && cf_has(CONFORM_FREE))
                cf_ops->free(h.a, b->p, b->size);
        }
    }
    cf_close(&h);
}

/* ---- Running the suite -----------------------------------------------------
 */

/* Runs one case named "<case>[<stage>]", so that a binary that runs the
 * suite twice (two configurations) tells them apart. */
static void cf_run_case(const char *name, void (*fn)(void))
{
    char full[128];
    snprintf(full, sizeof full, "%s[%s]", name,
             cf_ops->name ? cf_ops->name : "?");
    test_run(full, fn);
}

void conform_run(const conform_ops *ops)
{
    cf_ops = ops;
    cf_ops_valid = cf_ops_problem(ops) == NULL;
    cf_run_case("conform_ops", conform_ops_valid);
    cf_run_case("conform_alignment", conform_alignment);
    cf_run_case("conform_no_overlap", conform_no_overlap);
    cf_run_case("conform_integrity", conform_integrity);
    cf_run_case("conform_edge_sizes", conform_edge_sizes);
    cf_run_case("conform_check_each_op", conform_check_each_op);
    cf_run_case("conform_free_null", conform_free_null);
    cf_run_case("conform_realloc", conform_realloc);
    cf_run_case("conform_reset", conform_reset);
    cf_run_case("conform_threads", conform_threads);
    cf_ops = NULL;
}

/* ---- One lock around an allocator (conform_locked) ------------------------
 */

static const conform_ops *cf_locked_inner; /* the allocator being wrapped */

typedef struct cf_locked {
    pthread_mutex_t lock;
    void *a; /* the inner allocator's instance */
} cf_locked;

static void *cf_locked_create(void)
{
    cf_locked *l = malloc(sizeof *l);
    if (l == NULL)
        return NULL;
    if ((l->a = cf_locked_inner->create()) == NULL) {
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

static void cf_locked_destroy(void *a)
{
    cf_locked *l = a;
    cf_locked_inner->destroy(l->a);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void *cf_locked_alloc(void *a, size_t n)
{
    cf_locked *l = a;
    pthread_mutex_lock(&l->lock);
    void *p = cf_locked_inner->alloc(l->a, n);
    pthread_mutex_unlock(&l->lock);
    return p;
}

static void cf_locked_free(void *a, void *p, size_t n)
{
    cf_locked *l = a;
    pthread_mutex_lock(&l->lock);
    cf_locked_inner->free(l->a, p, n);
    pthread_mutex_unlock(&l->lock);
}

static void *cf_locked_realloc(void *a, void *p, size_t old, size_t n)
{
    cf_locked *l = a;
    pthread_mutex_lock(&l->lock);
    void *q = cf_locked_inner->realloc(l->a, p, old, n);
    pthread_mutex_unlock(&l->lock);
    return q;
}

static void cf_locked_reset(void *a)
{
    cf_locked *l = a;
    pthread_mutex_lock(&l->lock);
    cf_locked_inner->reset(l->a);
    pthread_mutex_unlock(&l->lock);
}

static bool cf_locked_check(void *a)
{
    cf_locked *l = a;
    pthread_mutex_lock(&l->lock);
    bool ok = cf_locked_inner->check(l->a);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

conform_ops conform_locked(const conform_ops *inner, const char *name)
{
    cf_locked_inner = inner;
    conform_ops ops = *inner;
    ops.name = name;
    ops.caps |= CONFORM_THREADSAFE;
    ops.create = cf_locked_create;
    ops.destroy = cf_locked_destroy;
    ops.alloc = cf_locked_alloc;
    ops.free = inner->free ? cf_locked_free : NULL;
    ops.realloc = inner->realloc ? cf_locked_realloc : NULL;
    ops.reset = inner->reset ? cf_locked_reset : NULL;
    ops.check = inner->check ? cf_locked_check : NULL;
    return ops;
}
