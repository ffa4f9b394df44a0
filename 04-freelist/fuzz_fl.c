/*
 * fuzz_fl.c: stage 04 under libFuzzer (make fuzz-04) and the soak run
 * (make soak): common/fuzz.h's operations on two fl heaps at once, with
 * fl_check() on both after every op (under libFuzzer) or every ten thousand
 * (soak). Two heaps, because all of a heap's state must be in its fl_heap
 * and its regions: nothing done to one may show in the other, and blocks of
 * the two never overlap (the block table holds both).
 *
 * The lane (code >> 4) picks the heap and the variant of a call:
 *   heap    lane & 1: A (starts first fit) or B (starts best fit), for every
 *           op that does not name a block; a FREE or a REALLOC goes to the
 *           heap its block came from
 *   v       lane >> 1 (0-7)
 *
 *   ALLOC     v 0-5: fl_alloc(n); v 6: fl_calloc(1, n); v 7: fl_calloc(m, n)
 *             with m = SIZE_MAX / n + 1, whose product overflows (n >= 2;
 *             m = SIZE_MAX for n 0 and 1). A calloc'd block must be zeros
 *             (calloc is rarer than alloc: it writes and reads every byte).
 *   ALIGNED   v 0-6: fl_aligned_alloc(a, n); v 7: alignment 3a, not a power
 *             of two, which must fail with EINVAL
 *   FREE      fl_free; errno must be as it was
 *   REALLOC   fl_realloc(p, n): in place when n fits the block's usable size
 *             (fl.h: a shrink is in place), else in place or moved; n == 0
 *             frees and must return NULL
 *   RESET     fl_quarantine_flush: errno kept, the quarantine empty after
 *   MARK      fl_stats against the table: that heap's live bytes and blocks
 *   REWIND    fl_dump (to /dev/null): the heap map must draw any state
 *   SPECIAL   arg < 255: fl_set_policy(arg % 3: first, next, best fit);
 *             255: fl_destroy with the heap's blocks still live (it must
 *             count them, and keep errno), then fl_init with its policy
 *             (rare, so that a soak run's heaps grow to the table's size)
 *
 * Every new block must give fl_usable_size() >= n (== n when a memory tool
 * watches); without a tool its slack, usable but not asked for, is written
 * too, so that slack overlapping metadata would break fl_check.
 *
 * Refusals are exact: fl refuses a request above FL_MAX_REQUEST (and a
 * calloc whose product overflows or exceeds it) with ENOMEM, and nothing
 * else. It could also refuse when the OS refuses a region, which a fuzz run
 * never meets (its blocks are below 1 MiB, 512 at most): such a refusal is
 * reported as a failure.
 */
#include "annotate.h"
#include "fl.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define HEAPS      2
#define ERRNO_MARK 4242 /* errno before a call that must leave it alone */

/* owner[k]: the heap of the table's block k; kept in step with the table,
 * which puts a new block at the end and moves its last block into a hole. */
static unsigned char owner[FUZZ_SLOTS];

static bool check(void *ctx)
{
    const fl_heap *h = ctx;
    for (unsigned i = 0; i < HEAPS; i++) {
        const char *why = fl_check_why(&h[i]);
        if (why != NULL) {
            fprintf(stderr, "fuzz 04-freelist: heap %c: %s\n", "AB"[i], why);
            return false;
        }
    }
    return true;
}

static bool too_big(size_t n)
{
    return n > FL_MAX_REQUEST;
}

/* A new block's answer, for heap `heap`: checks the usable size, writes the
 * slack, and hands the block to the table. */
static void added(fuzz_blocks *t, fl_heap *h, unsigned heap, void *p, size_t n,
                  size_t align, bool may_refuse, int err)
{
    if (p != NULL) {
        size_t usable = fl_usable_size(h, p);
        if (usable < n || (TRACK_ENABLED && usable != n))
            fuzz_fail(t, "fl_usable_size of a %zu-byte block is %zu", n,
                      usable);
        if (!TRACK_ENABLED)
            memset((unsigned char *)p + n, 0x5A, usable - n);
    }
    size_t before = t->live;
    fuzz_added(t, p, n, align, may_refuse, err);
    if (t->live > before)
        owner[t->live - 1] = (unsigned char)heap;
}

/* The first byte of p[0..n) that is not zero, or n: all of a small block,
 * the first and last 4 KiB of one over 8 KiB (as the table checks its
 * pattern; a byte-by-byte loop over a whole MiB, every compare traced for
 * the fuzzer, would be most of the run). */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    const size_t edge = 4096;
    for (size_t i = 0; i < n; i++) {
        if (n > 2 * edge && i == edge)
            i = n - edge;
        if (p[i] != 0)
            return i;
    }
    return n;
}

/* fuzz_take, and the owner of the block taken. */
static bool take(fuzz_blocks *t, unsigned index, fuzz_block *b, unsigned *heap)
{
    if (t->live == 0)
        return false;
    size_t k = index % t->live;
    *heap = owner[k];
    fuzz_take(t, index, b);
    owner[k] = owner[t->live]; /* the last block moved into slot k */
    return true;
}

/* fl_calloc(m, n): an overflowing product must be refused, anything else
 * must be zeros (and is refused only above FL_MAX_REQUEST). */
static void calloc_op(fuzz_blocks *t, fl_heap *h, unsigned heap, size_t m,
                      size_t n)
{
    errno = 0;
    void *p = fl_calloc(h, m, n);
    int err = errno;
    if (n != 0 && m > SIZE_MAX / n) {
        if (p != NULL)
            fuzz_fail(t, "fl_calloc(%zu, %zu) overflows, and gave %p", m, n, p);
        added(t, h, heap, NULL, n, 1, true, err);
        return;
    }
    size_t i = p != NULL ? first_nonzero(p, m * n) : m * n;
    if (i < m * n)
        fuzz_fail(t, "fl_calloc(%zu, %zu): byte %zu is not zero", m, n, i);
    added(t, h, heap, p, m * n, 1, too_big(m * n), err);
}

static void alloc_op(fuzz_blocks *t, fl_heap *h, unsigned heap,
                     const fuzz_op *op)
{
    unsigned v = op->lane >> 1;
    size_t n = op->size;
    if (v == 6) {
        calloc_op(t, h, heap, 1, n);
    } else if (v == 7) {
        calloc_op(t, h, heap, n >= 2 ? SIZE_MAX / n + 1 : SIZE_MAX, n);
    } else {
        errno = 0;
        void *p = fl_alloc(h, n);
        added(t, h, heap, p, n, 1, too_big(n), errno);
    }
}

static void aligned_op(fuzz_blocks *t, fl_heap *h, unsigned heap,
                       const fuzz_op *op)
{
    errno = 0;
    if (op->lane >> 1 == 7) {
        size_t bad = op->align * 3; /* never a power of two */
        void *p = fl_aligned_alloc(h, bad, op->size);
        if (p != NULL || errno != EINVAL)
            fuzz_fail(t,
                      "fl_aligned_alloc(%zu, %zu) gave %p, errno %d: a "
                      "bad alignment must fail with EINVAL",
                      bad, op->size, p, errno);
        return;
    }
    void *p = fl_aligned_alloc(h, op->align, op->size);
    added(t, h, heap, p, op->size, op->align, too_big(op->size), errno);
}

static void realloc_op(fuzz_blocks *t, fl_heap *heaps, const fuzz_op *op)
{
    fuzz_block b;
    unsigned heap;
    if (!take(t, op->index, &b, &heap))
        return;
    fl_heap *h = &heaps[heap];
    if (op->size == 0) {
        if (fl_realloc(h, b.p, 0) != NULL)
            fuzz_fail(t, "fl_realloc(%p, 0) must free and return NULL",
                      (void *)b.p);
        return;
    }
    bool fits = op->size <= fl_usable_size(h, b.p);
    errno = 0;
    void *q = fl_realloc(h, b.p, op->size);
    int err = errno;
    if (fits && q != b.p)
        fuzz_fail(t,
                  "fl_realloc of a %zu-byte block to %zu moved it (%p to "
                  "%p): a block that fits is resized in place",
                  b.size, op->size, (void *)b.p, q);
    if (q != NULL && fl_usable_size(h, q) < op->size)
        fuzz_fail(t, "fl_usable_size after fl_realloc to %zu is %zu", op->size,
                  fl_usable_size(h, q));
    fuzz_resized(t, b, q, op->size, too_big(op->size), err);
    owner[t->live - 1] = (unsigned char)heap;
}

/* That heap's live bytes and blocks, as the table counts them. */
static void stats_op(const fuzz_blocks *t, const fl_heap *h, unsigned heap)
{
    size_t bytes = 0, blocks = 0;
    for (size_t k = 0; k < t->live; k++)
        if (owner[k] == heap) {
            bytes += t->b[k].size;
            blocks++;
        }
    fl_stats_t s = fl_stats(h);
    if (s.live_bytes != bytes || s.live_blocks != blocks)
        fuzz_fail(t,
                  "heap %c: fl_stats says %zu bytes in %zu blocks, the "
                  "table %zu in %zu",
                  "AB"[heap], s.live_bytes, s.live_blocks, bytes, blocks);
}

static void dump_op(fl_heap *h)
{
    static FILE *devnull;
    if (devnull == NULL)
        devnull = fopen("/dev/null", "w");
    if (devnull != NULL)
        fl_dump(h, devnull);
}

/* fl_destroy with the heap's blocks live: each is checked, then dropped. */
static void destroy_op(fuzz_blocks *t, fl_heap *h, unsigned heap)
{
    fl_policy policy = h->policy;
    size_t mine = 0;
    for (size_t k = t->live; k-- > 0;)
        if (owner[k] == heap) {
            fuzz_block b;
            unsigned x;
            take(t, (unsigned)k, &b, &x); /* the block moved into k is not
                                             the heap's: seen already */
            mine++;
        }
    errno = ERRNO_MARK;
    size_t live = fl_destroy(h);
    if (errno != ERRNO_MARK)
        fuzz_fail(t, "fl_destroy changed errno to %d", errno);
    if (live != mine)
        fuzz_fail(t, "fl_destroy counted %zu live blocks, not %zu", live, mine);
    fl_init(h, policy);
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    static const fl_policy policies[] = {FL_FIRST_FIT, FL_NEXT_FIT,
                                         FL_BEST_FIT};
    fl_heap heaps[HEAPS];
    fl_init(&heaps[0], FL_FIRST_FIT);
    fl_init(&heaps[1], FL_BEST_FIT);
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "04-freelist", FL_ALIGN);
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        unsigned heap = op.lane & 1;
        fl_heap *h = &heaps[heap];
        fuzz_block b;
        switch (op.kind) {
        case FUZZ_ALLOC:
            if (!fuzz_full(&t))
                alloc_op(&t, h, heap, &op);
            break;
        case FUZZ_ALIGNED:
            if (!fuzz_full(&t))
                aligned_op(&t, h, heap, &op);
            break;
        case FUZZ_FREE:
            if (take(&t, op.index, &b, &heap)) {
                errno = ERRNO_MARK;
                fl_free(&heaps[heap], b.p);
                if (errno != ERRNO_MARK)
                    fuzz_fail(&t, "fl_free changed errno to %d", errno);
            }
            break;
        case FUZZ_REALLOC:
            realloc_op(&t, heaps, &op);
            break;
        case FUZZ_RESET:
            errno = ERRNO_MARK;
            fl_quarantine_flush(h);
            if (errno != ERRNO_MARK || h->q_count != 0)
                fuzz_fail(&t,
                          "fl_quarantine_flush left errno %d and %zu "
                          "chunks in the quarantine",
                          errno, h->q_count);
            break;
        case FUZZ_MARK:
            stats_op(&t, h, heap);
            break;
        case FUZZ_REWIND:
            dump_op(h);
            break;
        case FUZZ_SPECIAL:
            if (op.arg < 255)
                fl_set_policy(h, policies[op.arg % 3]);
            else
                destroy_op(&t, h, heap);
            break;
        }
        fuzz_step(&t, check_every, check, heaps, "fl_check");
    }
    unsigned heap;
    fuzz_block b;
    while (take(&t, 0, &b, &heap))
        fl_free(&heaps[heap], b.p);
    if (!check(heaps))
        fuzz_fail(&t, "fl_check() found a heap broken at the end");
    size_t ops = t.ops;
    for (unsigned i = 0; i < HEAPS; i++) {
        fl_quarantine_flush(&heaps[i]);
        if (fl_stats(&heaps[i]).live_bytes != 0 || fl_destroy(&heaps[i]) != 0)
            fuzz_fail(&t, "heap %c: blocks live after every block was freed",
                      "AB"[i]);
    }
    return ops;
}
