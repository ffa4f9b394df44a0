/*
 * fuzz_pool.c: stage 02 under libFuzzer (make fuzz-02) and the soak run
 * (make soak-02): common/fuzz.h's operations on one pool, pool_check() after
 * every op (under libFuzzer) or every ten thousand (soak).
 *
 * The pool: a fresh one per input, shaped by the input's first op (read
 * twice: it picks the shape, then runs like any other op):
 *   block size       the first op's size, when it is 1..4096 (else
 *                    1 + size % 4096: any size can start an input)
 *   lane bit 0       POOL_FIXED: a fixed pool, which refuses when full
 *   lane bit 1       POOL_BACKING_MALLOC_PER_BLOCK: the first version
 *   lane bit 2       POOL_NO_QUARANTINE: reuse at once, as release builds do
 *   lane bit 3       slabs of 1 + size % 8 blocks (growth every few blocks,
 *                    a fixed pool full at once), else 64
 * (The seeds made from the traces are lane 0: a growing pool of one-buffer
 * slabs with the quarantine, blocks of the trace's first size.) A RESET
 * makes a new pool whose shape its own lane picks, the same way, with the
 * same block size: one input, or one soak run, meets every shape.
 *
 * The operations:
 *   ALLOC, ALIGNED   pool_alloc, when the request fits a block (size <=
 *                    block_size, and an alignment of at most POOL_ALIGN);
 *                    else a no-op. The table gets the whole block, every
 *                    byte of block_size patterned: a caller may use them all
 *   FREE             pool_free of a live block; errno must stay as it was
 *   RESET            pool_destroy, then pool_create of the shape its lane
 *                    picks (a pool has no reset); errno must stay across
 *                    the destroy
 *   SPECIAL          arg % 4: 0 pool_stats against the table; 1 pool_dump
 *                    (to /dev/null: it must not crash on any state); 2
 *                    pool_free(NULL), which changes nothing; 3 allocate up
 *                    to the end of the free blocks, then once more (a fixed
 *                    pool must refuse it, a growing one add a slab)
 *   REALLOC, MARK, REWIND   no-ops: a pool has none of them
 * The lanes of the other ops are ignored.
 *
 * Refusals are exact: a fixed pool must refuse exactly when every block is
 * live (a checked build reuses its quarantine first), and a growing pool
 * never does (its slabs are small; an mmap refused by the OS would be a
 * failure here). A pool of the first version keeps at most 128 blocks live:
 * its pool_check costs O(free * capacity) and runs after every op.
 */
#include "pool.h"

#include "fuzz.h"

#include <errno.h>
#include <stdio.h>

#define MAX_BLOCK       4096 /* the largest block size an input asks for */
#define PER_BLOCK_LIVE  128  /* the live blocks of a malloc-per-block pool */
#define SMALL_SLABS     8    /* lane bit 3: slabs of 1..8 blocks */
#define LARGE_SLAB      64
#define ERRNO_UNTOUCHED 4242 /* an errno no call of the pool sets */

typedef struct shape {
    size_t block_size, per_slab;
    unsigned flags;
    size_t first_size; /* the first op's size, as it was */
} shape;

typedef struct harness {
    fuzz_blocks *t;
    pool_t *pool;
    shape s;
} harness;

static bool check(void *ctx)
{
    return pool_check(((harness *)ctx)->pool);
}

/* The flags and slab size a lane picks, for blocks of s.block_size. */
static shape reshaped(shape s, unsigned lane)
{
    s.flags = 0;
    if (lane & 1)
        s.flags |= POOL_FIXED;
    if (lane & 2)
        s.flags |= POOL_BACKING_MALLOC_PER_BLOCK;
    if (lane & 4)
        s.flags |= POOL_NO_QUARANTINE;
    s.per_slab = (lane & 8) ? 1 + s.first_size % SMALL_SLABS : LARGE_SLAB;
    return s;
}

/* The shape the input's first op asks for. */
static shape shape_of(const uint8_t *data, size_t size)
{
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    fuzz_op first = fuzz_next(&in);
    size_t bs = first.size;
    if (bs == 0 || bs > MAX_BLOCK)
        bs = 1 + bs % MAX_BLOCK;
    shape s = {.block_size = bs, .first_size = first.size};
    return reshaped(s, first.lane);
}

static void make_pool(harness *h)
{
    h->pool = pool_create(h->s.block_size, h->s.per_slab, h->s.flags);
    if (h->pool == NULL)
        fuzz_fail(h->t, "pool_create(%zu, %zu, %#x) refused (errno %d)",
                  h->s.block_size, h->s.per_slab, h->s.flags, errno);
}

/* Can the harness ask for one more block? The table has room, and a pool
 * of the first version stays small. */
static bool room(const harness *h)
{
    if (fuzz_full(h->t))
        return false;
    return !(h->s.flags & POOL_BACKING_MALLOC_PER_BLOCK) ||
           h->t->live < PER_BLOCK_LIVE;
}

/* One pool_alloc, its answer checked: refused exactly when the pool is
 * fixed and every block is live. Returns whether a block came back. */
static bool one_alloc(harness *h, size_t align)
{
    bool full = (h->s.flags & POOL_FIXED) && h->t->live == h->s.per_slab;
    errno = 0;
    void *p = pool_alloc(h->pool);
    if (p != NULL && full)
        fuzz_fail(h->t, "a fixed pool of %zu blocks, all live, handed out %p",
                  h->s.per_slab, p);
    fuzz_added(h->t, p, h->pool->block_size, align, full, errno);
    return p != NULL;
}

static void one_free(harness *h, void *p)
{
    errno = ERRNO_UNTOUCHED;
    pool_free(h->pool, p);
    if (errno != ERRNO_UNTOUCHED)
        fuzz_fail(h->t, "pool_free(%p) changed errno to %d", p, errno);
}

/* pool_stats agrees with the table and with itself. */
static void check_stats(const harness *h)
{
    pool_stats_t s = pool_stats(h->pool);
    if (s.live != h->t->live)
        fuzz_fail(h->t, "pool_stats says %zu live, the table %zu", s.live,
                  h->t->live);
    if (s.block_size < h->s.block_size || s.block_size % POOL_ALIGN != 0 ||
        s.stride < s.block_size || s.blocks_per_slab != h->s.per_slab)
        fuzz_fail(h->t,
                  "pool_stats: block %zu, stride %zu, %zu per slab for "
                  "a pool of %zu-byte blocks, %zu per slab",
                  s.block_size, s.stride, s.blocks_per_slab, h->s.block_size,
                  h->s.per_slab);
    if (s.capacity != s.slabs * s.blocks_per_slab ||
        s.free + s.quarantined + s.live != s.capacity ||
        ((h->s.flags & POOL_FIXED) && s.slabs != 1))
        fuzz_fail(h->t,
                  "pool_stats: %zu slabs, capacity %zu, %zu free + %zu "
                  "quarantined + %zu live",
                  s.slabs, s.capacity, s.free, s.quarantined, s.live);
    if (s.quarantined > POOL_QUARANTINE ||
        ((h->s.flags & POOL_NO_QUARANTINE) && s.quarantined != 0))
        fuzz_fail(h->t, "pool_stats: %zu quarantined", s.quarantined);
    if (s.footprint < s.capacity * s.block_size)
        fuzz_fail(h->t, "pool_stats: footprint %zu below %zu blocks of %zu",
                  s.footprint, s.capacity, s.block_size);
}

/* Allocates every block the pool has without growing, then one more: a
 * fixed pool must refuse it, a growing pool must add a slab for it. */
static void alloc_past_the_end(harness *h)
{
    pool_stats_t s = pool_stats(h->pool);
    for (size_t n = s.free + s.quarantined; n > 0 && room(h); n--)
        one_alloc(h, POOL_ALIGN);
    if (!room(h))
        return;
    size_t slabs = pool_stats(h->pool).slabs;
    bool got = one_alloc(h, POOL_ALIGN);
    if (!(h->s.flags & POOL_FIXED) &&
        (!got || pool_stats(h->pool).slabs != slabs + 1))
        fuzz_fail(h->t, "a growing pool with no free block did not grow");
}

static FILE *sink(void)
{
    static FILE *f;
    if (f == NULL)
        f = fopen("/dev/null", "w");
    return f;
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "02-pool-fixed", POOL_ALIGN);
    harness h = {.t = &t, .s = shape_of(data, size)};
    make_pool(&h);
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        fuzz_block b;
        switch (op.kind) {
        case FUZZ_ALLOC:
        case FUZZ_ALIGNED: {
            size_t align = op.kind == FUZZ_ALIGNED ? op.align : 1;
            if (op.size <= h.pool->block_size && align <= POOL_ALIGN &&
                room(&h))
                one_alloc(&h, align);
            break;
        }
        case FUZZ_FREE:
            if (fuzz_take(&t, op.index, &b))
                one_free(&h, b.p);
            break;
        case FUZZ_RESET:
            fuzz_truncate(&t, 0); /* the blocks die with the pool */
            errno = ERRNO_UNTOUCHED;
            pool_destroy(h.pool);
            if (errno != ERRNO_UNTOUCHED)
                fuzz_fail(&t, "pool_destroy changed errno to %d", errno);
            h.s = reshaped(h.s, op.lane);
            make_pool(&h);
            break;
        case FUZZ_SPECIAL:
            switch (op.arg % 4) {
            case 0:
                check_stats(&h);
                break;
            case 1:
                if (sink() != NULL)
                    pool_dump(h.pool, sink());
                break;
            case 2: {
                pool_stats_t before = pool_stats(h.pool);
                one_free(&h, NULL);
                pool_stats_t after = pool_stats(h.pool);
                if (after.live != before.live || after.free != before.free ||
                    after.quarantined != before.quarantined)
                    fuzz_fail(&t, "pool_free(NULL) changed the pool");
                break;
            }
            default:
                alloc_past_the_end(&h);
                break;
            }
            break;
        case FUZZ_REALLOC:
        case FUZZ_MARK:
        case FUZZ_REWIND:
            break;
        }
        fuzz_step(&t, check_every, check, &h, "pool_check");
    }
    check_stats(&h);
    while (t.live > 0) {
        fuzz_block b;
        fuzz_take(&t, 0, &b);
        one_free(&h, b.p);
    }
    if (!pool_check(h.pool))
        fuzz_fail(&t, "pool_check() found the pool broken at the end");
    check_stats(&h);
    size_t ops = t.ops;
    pool_destroy(h.pool);
    return ops;
}
