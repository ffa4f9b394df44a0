/*
 * fuzz_bump.c: stage 01 under libFuzzer (make fuzz-01) and the soak run
 * (make soak): common/fuzz.h's operations on one fresh region per input,
 * bump_check() after every op (under libFuzzer) or every ten thousand
 * (soak).
 *
 *   the first byte   is read twice: as the first op, and (without being
 *                    consumed) to pick the region: bit 4 set, 64 KiB, else
 *                    1 MiB; bit 5 set, over a caller's buffer that starts
 *                    1 byte past a 16-byte boundary, else from mmap
 *   ALLOC, ALIGNED   bump_alloc, bump_alloc_aligned
 *   RESET            bump_reset (the table forgets every block)
 *   MARK             bump_mark, pushed on a stack of FUZZ_MARKS marks with
 *                    the table's count then (a no-op when the stack is full)
 *   REWIND           bump_rewind to the mark `lane` below the top of the
 *                    stack (lane % depth), which pops the marks above it;
 *                    the table is cut back to that mark's count. A no-op
 *                    with no mark. Marks are never used once stale (after a
 *                    reset, or above a rewind): that misuse aborts.
 *   SPECIAL          even arg: bump_dump into a memory stream; odd arg:
 *                    bump_alloc_aligned with an alignment that is not a
 *                    power of two (arg itself, or 0 for arg 1), which must
 *                    say EINVAL and consume nothing
 *   FREE, REALLOC    no-ops: a region frees nothing one block at a time
 *
 * A region is bounded, so it may refuse; but only what really does not fit.
 * The harness works out each answer from the contract in bump.h and the
 * README (pad up to the next aligned address, the block, then in annotated
 * builds a 16-byte redzone, all in capacity - used) and holds the region to
 * it: a refusal when the request fits, or a block when it does not, is a
 * failure, and so is a block anywhere but at the next aligned address, or
 * statistics that do not move by exactly what the operation took or gave
 * back (the high-water mark included: the most ever in use).
 */
#include "annotate.h" /* TRACK_ENABLED: is a memory tool watching? */
#include "bump.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The contract's redzone, not the allocator's constant (test_bump.c says
 * why): 16 bytes after every block when a memory tool watches. */
#define REDZONE ((size_t)(TRACK_ENABLED ? 16 : 0))

#define SMALL_REGION ((size_t)64 << 10)
#define LARGE_REGION ((size_t)1 << 20)
#define FUZZ_MARKS   16

/* The caller's buffer for regions not from mmap: 1 byte past a 16-byte
 * boundary, so that the region must align addresses, not offsets. */
static _Alignas(16) unsigned char buffer[LARGE_REGION + 1];

static bool check(void *b)
{
    return bump_check(b);
}

/* The statistics of `now` must be `want`, field by field. */
static void expect_stats(const fuzz_blocks *t, const char *what,
                         bump_stats_t now, bump_stats_t want)
{
    if (now.capacity != want.capacity || now.used != want.used ||
        now.requested != want.requested || now.high_water != want.high_water ||
        now.allocations != want.allocations)
        fuzz_fail(t,
                  "after %s: stats say used %zu, requested %zu, high water "
                  "%zu, %zu live blocks (capacity %zu); the contract says %zu, "
                  "%zu, %zu, %zu (%zu)",
                  what, now.used, now.requested, now.high_water,
                  now.allocations, now.capacity, want.used, want.requested,
                  want.high_water, want.allocations, want.capacity);
}

/* Do pad, then need, then redzone bytes fit in `left`? Subtractions only,
 * so that a size near SIZE_MAX cannot wrap around and pass. */
static bool fits_in(size_t left, size_t pad, size_t need, size_t redzone)
{
    return pad <= left && need <= left - pad && redzone <= left - pad - need;
}

/* ALLOC and ALIGNED: the request, its answer checked against the contract,
 * and the block handed to the table. */
static void alloc_one(fuzz_blocks *t, bump_t *b, const fuzz_op *op)
{
    bool aligned = op->kind == FUZZ_ALIGNED;
    size_t align = aligned ? op->align : BUMP_DEFAULT_ALIGN;
    size_t need = op->size != 0 ? op->size : 1; /* 0 takes one byte */
    bump_stats_t before = bump_stats(b);
    uintptr_t at = (uintptr_t)(b->base + before.used);
    size_t pad = (size_t)(-at & (align - 1));
    bool fits = fits_in(before.capacity - before.used, pad, need, REDZONE);

    errno = 0;
    void *p = aligned ? bump_alloc_aligned(b, op->size, align)
                      : bump_alloc(b, op->size);
    int err = errno;
    bump_stats_t want = before;
    if (p != NULL) {
        if (!fits)
            fuzz_fail(t,
                      "%zu bytes aligned to %zu served with %zu bytes left "
                      "(%zu of padding): it does not fit",
                      op->size, align, before.capacity - before.used, pad);
        if ((unsigned char *)p != b->base + before.used + pad)
            fuzz_fail(t,
                      "%zu bytes aligned to %zu placed at +%zu, not at +%zu "
                      "(the next aligned address)",
                      op->size, align, (size_t)((unsigned char *)p - b->base),
                      before.used + pad);
        want.used += pad + need + REDZONE;
        want.requested += need;
        want.allocations++;
        if (want.used > want.high_water)
            want.high_water = want.used;
    }
    fuzz_added(t, p, op->size, align, !fits, err);
    expect_stats(t, p != NULL ? "an allocation" : "a refusal", bump_stats(b),
                 want);
}

/* SPECIAL, odd: an alignment that is not a power of two. */
static void bad_alignment(const fuzz_blocks *t, bump_t *b, unsigned arg)
{
    size_t align = arg == 1 ? 0 : arg;
    bump_stats_t before = bump_stats(b);
    errno = 0;
    void *p = bump_alloc_aligned(b, 8, align);
    if (p != NULL || errno != EINVAL)
        fuzz_fail(t, "alignment %zu gave %p with errno %d, not NULL and EINVAL",
                  align, p, errno);
    expect_stats(t, "a bad alignment", bump_stats(b), before);
}

/* SPECIAL, even: the drawing, which reads the whole state, under the
 * sanitizers. */
static void dump_one(const fuzz_blocks *t, const bump_t *b)
{
    static char out[8192];
    memset(out, 0, sizeof out);
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    if (f == NULL)
        return;
    bump_dump(b, f);
    fclose(f);
    if (strncmp(out, "region ", 7) != 0)
        fuzz_fail(t, "bump_dump wrote \"%.40s\"", out);
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    unsigned first = size > 0 ? data[0] : 0;
    size_t capacity = (first & 0x10) != 0 ? SMALL_REGION : LARGE_REGION;
    bump_t b;
    int made = (first & 0x20) != 0 ? bump_init(&b, buffer + 1, capacity)
                                   : bump_init_mmap(&b, capacity);
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "01-bump", 1);
    if (made != 0)
        fuzz_fail(&t, "no region of %zu bytes (errno %d)", capacity, errno);

    bump_mark_t marks[FUZZ_MARKS];
    size_t live_at[FUZZ_MARKS];        /* the table's count at each mark */
    bump_stats_t stats_at[FUZZ_MARKS]; /* the statistics then */
    size_t depth = 0;

    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        switch (op.kind) {
        case FUZZ_ALLOC:
        case FUZZ_ALIGNED:
            if (!fuzz_full(&t))
                alloc_one(&t, &b, &op);
            break;
        case FUZZ_RESET: {
            bump_stats_t want = bump_stats(&b);
            fuzz_truncate(&t, 0); /* checks the blocks before they die */
            bump_reset(&b);
            depth = 0; /* every mark is stale now */
            want.used = want.requested = want.allocations = 0;
            expect_stats(&t, "a reset", bump_stats(&b), want);
            break;
        }
        case FUZZ_MARK:
            if (depth < FUZZ_MARKS) {
                live_at[depth] = t.live;
                stats_at[depth] = bump_stats(&b);
                marks[depth++] = bump_mark(&b);
            }
            break;
        case FUZZ_REWIND: {
            if (depth == 0)
                break;
            size_t k = depth - 1 - op.lane % depth;
            bump_stats_t want = stats_at[k];
            want.high_water = bump_stats(&b).high_water;
            fuzz_truncate(&t, live_at[k]);
            bump_rewind(&b, marks[k]);
            depth = k + 1; /* the marks above k are stale; k stays valid */
            expect_stats(&t, "a rewind", bump_stats(&b), want);
            break;
        }
        case FUZZ_SPECIAL:
            if (op.arg % 2 != 0)
                bad_alignment(&t, &b, op.arg);
            else
                dump_one(&t, &b);
            break;
        case FUZZ_FREE:
        case FUZZ_REALLOC:
            break;
        }
        if (bump_stats(&b).allocations != t.live)
            fuzz_fail(&t, "the region counts %zu live blocks, the table %zu",
                      bump_stats(&b).allocations, t.live);
        fuzz_step(&t, check_every, check, &b, "bump_check");
    }
    fuzz_truncate(&t, 0); /* every block intact to the end */
    if (!bump_check(&b))
        fuzz_fail(&t, "bump_check() found the region broken at the end");
    size_t ops = t.ops;
    bump_destroy(&b);
    return ops;
}
