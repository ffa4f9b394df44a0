/*
 * fuzz_pagepool.c: stage 03 under libFuzzer (make fuzz-03) and the soak run
 * (make soak): common/fuzz.h's operations on two allocators at once,
 * pp_check() on both after every op (under libFuzzer) or every ten
 * thousand (soak). The lane's low bit picks the allocator (seeds from the
 * traces use lane 0); one block table holds the blocks of both, so a block
 * of one must not overlap a block of the other either.
 *
 *   ALLOC      pp_alloc; the block must be of the request's class
 *              (pp_block_size), a slab of its allocator only (pp_slab_of)
 *   ALIGNED    pp_alloc when the alignment is 16 or less (every block is
 *              16-byte aligned); a larger one is a no-op (no aligned
 *              allocation in this stage)
 *   FREE       pp_free, by the allocator pp_slab_of says owns the block
 *   REALLOC    what a caller of this stage does: pp_alloc from the owner,
 *              copy, pp_free the old block (size 0: a no-op)
 *   RESET      pp_trim of the lane's allocator: it must give back every
 *              spare, empty the quarantine and return what it unmapped
 *              (not a destroy: one op in 16 is a RESET, and the soak's
 *              heaps would never grow past a few dozen blocks)
 *   SPECIAL    arg % 8: 0-1 pp_stats (live blocks and bytes as the table
 *              counts them, mapped as the pages add up); 2 pp_dump (to
 *              /dev/null); 3 pp_free of every block of the lane's
 *              allocator; 4 pp_destroy of it with its live blocks
 *              (checked, then forgotten) and a fresh pp_create; 5-6 a
 *              burst of allocations, which single ops reach rarely (the
 *              figures are for 4 KB pages): one block of every class (5:
 *              64 pools chain a second root page), or 192 blocks of one
 *              large class, 64 - arg / 16 (6: up to 64 slabs at once, so
 *              that slabs collide in the slab set, and later sweeps give
 *              many back); 7 pp_trim, as RESET
 *   MARK, REWIND  no-ops
 *
 * A refusal is exact: pp_alloc must refuse a size above a quarter of the
 * page (ENOMEM), and must not refuse any other (the OS does not run out
 * here); a block for a refused size is a failure too.
 */
#include "fuzz.h"
#include "pagepool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HEAPS 2

static bool check(void *ctx)
{
    pp_allocator_t **a = ctx;
    for (int h = 0; h < HEAPS; h++)
        if (!pp_check(a[h])) {
            fprintf(stderr, "pp_check of allocator %d: %s\n", h,
                    pp_check_failure());
            return false;
        }
    return true;
}

/* The class a request of `size` must get: a multiple of 16, 16 for 0. */
static size_t class_of(size_t size)
{
    return size == 0 ? PP_ALIGN : (size + PP_ALIGN - 1) / PP_ALIGN * PP_ALIGN;
}

/* Which allocator owns block p: exactly one of them must. */
static int owner(const fuzz_blocks *t, pp_allocator_t **a, const void *p)
{
    int h = pp_slab_of(a[0], p) != NULL ? 0 : 1;
    if (pp_slab_of(a[h], p) == NULL || pp_slab_of(a[1 - h], p) != NULL)
        fuzz_fail(t, "block %p is a slab of %s allocator", p,
                  pp_slab_of(a[h], p) == NULL ? "neither" : "each");
    return h;
}

/* pp_alloc's answer for `size`, checked beyond what the table checks. */
static void *alloc(fuzz_blocks *t, pp_allocator_t **a, int h, size_t size,
                   bool too_big)
{
    errno = 0;
    void *p = pp_alloc(a[h], size);
    if (p == NULL) {
        int err = errno;
        if (too_big && pp_class_size(a[h], size) != 0)
            fuzz_fail(t, "pp_class_size(%zu) above max_size is not 0", size);
        errno = err;
        return NULL;
    }
    if (too_big)
        fuzz_fail(t, "pp_alloc(%zu) above max_size gave %p", size, p);
    if (pp_block_size(a[h], p) != class_of(size) ||
        pp_class_size(a[h], size) != class_of(size))
        fuzz_fail(t,
                  "pp_alloc(%zu) gave a block of %zu bytes (class %zu), "
                  "not %zu",
                  size, pp_block_size(a[h], p), pp_class_size(a[h], size),
                  class_of(size));
    if (owner(t, a, p) != h)
        fuzz_fail(t, "pp_alloc(%zu) of allocator %d gave a block of the other",
                  size, h);
    return p;
}

/* pp_stats of allocator h against the table's blocks of h. */
static void stats_agree(const fuzz_blocks *t, pp_allocator_t **a, int h)
{
    size_t blocks = 0, bytes = 0;
    for (size_t k = 0; k < t->live; k++)
        if (pp_slab_of(a[h], t->b[k].p) != NULL) {
            blocks++;
            bytes += class_of(t->b[k].size);
        }
    pp_stats_t s = pp_stats(a[h]);
    if (s.live_blocks != blocks || s.live_bytes != bytes)
        fuzz_fail(t,
                  "pp_stats: %zu live blocks of %zu B, the table has %zu "
                  "of %zu B",
                  s.live_blocks, s.live_bytes, blocks, bytes);
    if (s.mapped !=
        s.page_size * (s.root_pages + s.slabs) + s.set_bytes + s.refused_bytes)
        fuzz_fail(t, "pp_stats: %zu B mapped do not add up", s.mapped);
    if (s.peak_mapped < s.mapped || s.pools > s.pool_slots)
        fuzz_fail(t, "pp_stats: peak or pool counts out of range");
}

static void trim(const fuzz_blocks *t, pp_allocator_t **a, int h)
{
    size_t before = pp_stats(a[h]).mapped;
    size_t back = pp_trim(a[h]);
    pp_stats_t s = pp_stats(a[h]);
    if (back != before - s.mapped)
        fuzz_fail(t, "pp_trim returned %zu, but %zu B went back", back,
                  before - s.mapped);
    if (s.spares != 0 || s.quarantined != 0 || s.refused_bytes != 0)
        fuzz_fail(t, "pp_trim left %zu spares, %zu quarantined, %zu B refused",
                  s.spares, s.quarantined, s.refused_bytes);
}

/* SPECIAL 5 and 6: many allocations at once (fewer if the table fills). */
static void burst(fuzz_blocks *t, pp_allocator_t **a, int h, unsigned arg,
                  size_t max_size)
{
    size_t classes = max_size / PP_ALIGN;
    size_t n = arg % 8 == 5 ? classes : 3 * classes;
    for (size_t i = 0; i < n && !fuzz_full(t); i++) {
        size_t size = arg % 8 == 5
                          ? (i % classes + 1) * PP_ALIGN
                          : (classes - (arg / 16) % classes) * PP_ALIGN;
        fuzz_added(t, alloc(t, a, h, size, false), size, 1, false, errno);
    }
}

/* SPECIAL 3 and 4: takes allocator h's blocks out of the table (each
 * checked first); `free_them`: hands each to pp_free, else forgets it. */
static void take_all(fuzz_blocks *t, pp_allocator_t **a, int h, bool free_them)
{
    for (size_t k = 0; k < t->live;) {
        fuzz_block b;
        if (pp_slab_of(a[h], t->b[k].p) == NULL) {
            k++;
            continue;
        }
        fuzz_take(t, (unsigned)k, &b); /* the last moves into k */
        if (free_them)
            pp_free(a[h], b.p);
    }
}

static void free_all(fuzz_blocks *t, pp_allocator_t **a, int h)
{
    take_all(t, a, h, true);
    if (pp_stats(a[h]).live_blocks != 0)
        fuzz_fail(t, "pp_stats counts live blocks after every one was freed");
}

/* Destroys allocator h with its live blocks and makes a fresh one. */
static void renew(fuzz_blocks *t, pp_allocator_t **a, int h)
{
    take_all(t, a, h, false);
    pp_destroy(a[h]);
    if ((a[h] = pp_create()) == NULL)
        fuzz_fail(t, "pp_create refused after a pp_destroy");
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    static fuzz_blocks t;
    static FILE *devnull;
    pp_allocator_t *a[HEAPS];
    size_t max_size = (size_t)sysconf(_SC_PAGESIZE) / 4;
    fuzz_blocks_init(&t, "03-pool-mmap", PP_ALIGN);
    for (int h = 0; h < HEAPS; h++)
        if ((a[h] = pp_create()) == NULL)
            fuzz_fail(&t, "pp_create refused");
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        int h = (int)(op.lane & 1);
        fuzz_block b;
        void *p;
        switch (op.kind) {
        case FUZZ_ALLOC:
        case FUZZ_ALIGNED: /* every block is 16-byte aligned, no more */
            if (fuzz_full(&t) ||
                (op.kind == FUZZ_ALIGNED && op.align > PP_ALIGN))
                break;
            p = alloc(&t, a, h, op.size, op.size > max_size);
            fuzz_added(&t, p, op.size, op.kind == FUZZ_ALIGNED ? op.align : 1,
                       op.size > max_size, errno);
            break;
        case FUZZ_FREE:
            if (fuzz_take(&t, op.index, &b))
                pp_free(a[owner(&t, a, b.p)], b.p);
            else
                pp_free(a[h], NULL); /* ignored */
            break;
        case FUZZ_REALLOC: {
            if (op.size == 0 || !fuzz_take(&t, op.index, &b))
                break;
            h = owner(&t, a, b.p);
            p = alloc(&t, a, h, op.size, op.size > max_size);
            int err = errno;
            if (p != NULL) {
                memcpy(p, b.p, b.size < op.size ? b.size : op.size);
                pp_free(a[h], b.p);
            }
            fuzz_resized(&t, b, p, op.size, op.size > max_size, err);
            break;
        }
        case FUZZ_RESET:
            trim(&t, a, h);
            break;
        case FUZZ_SPECIAL:
            switch (op.arg % 8) {
            case 0:
            case 1:
                stats_agree(&t, a, h);
                break;
            case 2:
                if (devnull == NULL)
                    devnull = fopen("/dev/null", "w");
                if (devnull != NULL)
                    pp_dump(a[h], devnull);
                break;
            case 3:
                free_all(&t, a, h);
                break;
            case 4:
                renew(&t, a, h);
                break;
            case 5:
            case 6:
                burst(&t, a, h, op.arg, max_size);
                break;
            default:
                trim(&t, a, h);
                break;
            }
            break;
        case FUZZ_MARK:
        case FUZZ_REWIND:
            break;
        }
        fuzz_step(&t, check_every, check, a, "pp_check");
    }
    while (t.live > 0) {
        fuzz_block b;
        fuzz_take(&t, 0, &b);
        pp_free(a[owner(&t, a, b.p)], b.p);
    }
    if (!check(a))
        fuzz_fail(&t, "pp_check() found the heap broken at the end");
    for (int h = 0; h < HEAPS; h++) {
        stats_agree(&t, a, h);
        trim(&t, a, h);
        pp_stats_t s = pp_stats(a[h]);
        if (s.slabs != 0 || s.set_bytes != 0 ||
            s.mapped != s.root_pages * s.page_size)
            fuzz_fail(&t,
                      "after freeing and trimming everything, %zu B are "
                      "mapped beyond the root pages",
                      s.mapped - s.root_pages * s.page_size);
        pp_destroy(a[h]);
    }
    return t.ops;
}
