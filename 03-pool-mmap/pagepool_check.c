/*
 * pagepool_check.c: pp_check() and pp_dump(). Both read the structures of
 * pagepool.h and change nothing: the checker proves the invariants written
 * there, in an order that makes each step safe on a damaged heap (a count
 * is checked before it bounds a walk); the drawing is what the demo and a
 * student's debugging session print. Optional reading: the allocator is
 * pagepool.c.
 */
#include "pagepool_internal.h"

// clang-format off
/* ---- The checker -------------------------------------------------------- */
// clang-format on
static const char *check_failure = "";

const char *pp_check_failure(void)
{
    return check_failure;
}

/* Records why the check failed; pp_check returns its value. */
static bool fail(const char *why)
{
    check_failure = why;
    return false;
}

#if PP_CHECKED
static unsigned popcount64(uint64_t x)
{
    unsigned n = 0;
    for (; x != 0; x &= x - 1) /* clears the lowest set bit */
        n++;
    return n;
}
#endif

/* How many quarantined blocks lie in slab s. */
static uint32_t held_in(const pp_allocator_t *a, const pp_slab_t *s)
{
    uint32_t n = 0;
#if PP_QUARANTINE
    for (unsigned k = 0; k < a->q_count; k++)
        n += slab_from(a, a->quarantine[(a->q_head + k) % PP_QUARANTINE]) == s;
#else
    (void)a;
    (void)s;
#endif
    return n;
}

/* Is p the start of one of s's blocks? */
static bool is_block_start(const pp_pool_t *pool, const pp_slab_t *s,
                           const void *p)
{
    uintptr_t offset = (uintptr_t)p - (uintptr_t)s - pool->first;
    return offset < (uintptr_t)pool->nblocks * pool->stride &&
           offset % pool->stride == 0;
}

/* One slab's header, and its bitmap in checked builds. */
static bool check_slab(const pp_allocator_t *a, const pp_pool_t *pool,
                       const pp_slab_t *s)
{
    if (slab_from(a, s) != s)
        return fail("a slab is not page-aligned");
    if (!slabset_contains(a, (uintptr_t)s))
        return fail("a slab is missing from the slab set");
    if (s->pool != pool)
        return fail("a slab names another pool than the one holding it");
    if (s->used > pool->nblocks || s->held > s->used || s->doomed != 0)
        return fail("a slab's used, held or doomed field is out of range");
    if (s->held != held_in(a, s))
        return fail("a slab's held count disagrees with the quarantine");
#if PP_CHECKED
    unsigned bits = 0;
    for (size_t w = 0; w < a->page_size / PP_ALIGN / 64; w++)
        bits += popcount64(s->live_map[w]);
    if (bits != s->used - s->held)
        return fail("a slab's live bitmap disagrees with used - held");
#endif
    return true;
}

/* How many nodes of the pool's free list lie in slab s. */
static size_t free_in(const pp_allocator_t *a, const pp_pool_t *pool,
                      const pp_slab_t *s)
{
    size_t n = 0;
    for (pp_free_t *f = pool->free; f != NULL; f = link_read(f))
        n += slab_from(a, f) == s;
    return n;
}

/* A pool: its slab list, its free list, and how they agree. */
static bool check_pool(const pp_allocator_t *a, const pp_pool_t *pool,
                       size_t *slabs)
{
    if (pool->cls < 1 || pool->cls > a->nclasses ||
        a->pool_of_class[pool->cls] != pool)
        return fail("a pool is not where pool_of_class says");
    if (pool->block_size != (size_t)pool->cls * PP_ALIGN ||
        pool->stride != pool->block_size + PP_REDZONE ||
        pool->first != a->first_block ||
        pool->nblocks != (a->page_size - pool->first) / pool->stride)
        return fail("a pool's geometry is wrong");

    /* The slabs: linked both ways, each header sound. */
    size_t count = 0, spares = 0, free_blocks = 0;
    const pp_slab_t *prev = NULL;
    for (const pp_slab_t *s = pool->slabs; s != NULL; prev = s, s = s->next) {
        if (++count > a->nslabs)
            return fail("a pool's slab list is longer than the slab count");
        if (s->prev != prev)
            return fail("a slab's prev link is wrong");
        if (!check_slab(a, pool, s))
            return false;
        spares += s->used == 0;
        free_blocks += pool->nblocks - s->used;
    }
    if (count != pool->nslabs || spares != pool->nspares)
        return fail("a pool's slab or spare count is wrong");
    if (spares > spares_max(pool))
        return fail("a pool keeps more spares than 1 + in use / 4");

    /* The free list: as many nodes as the slabs have blocks in, each a
     * block start in one of this pool's slabs, not a live block. A cycle
     * shows up as too many nodes; a node listed twice is a cycle. */
    size_t listed = 0;
    for (pp_free_t *f = pool->free; f != NULL; f = link_read(f)) {
        if (++listed > free_blocks)
            return fail("the free list is longer than the free blocks (a "
                        "cycle?)");
        pp_slab_t *s = slab_from(a, f);
        if (!slabset_contains(a, (uintptr_t)s) || s->pool != pool)
            return fail("a free-list node is not in one of its pool's "
                        "slabs");
        if (!is_block_start(pool, s, f))
            return fail("a free-list node is not a block's start");
#if PP_CHECKED
        if (bit_get(s, block_index(pool, s, f)))
            return fail("a free-list node is a live block");
#endif
    }
    if (listed != free_blocks)
        return fail("the free list is shorter than the free blocks");
    /* And slab by slab (O(slabs * free blocks): fine for the small
     * heaps it is run on after every operation). */
    for (const pp_slab_t *s = pool->slabs; s != NULL; s = s->next)
        if (free_in(a, pool, s) != pool->nblocks - s->used)
            return fail("a slab's used count disagrees with the free list");
    *slabs += count;
    return true;
}

bool pp_check(const pp_allocator_t *a)
{
    check_failure = "";
    size_t page = a->page_size;
    if (page < 1024 || (page & (page - 1)) != 0 ||
        a->page_mask != ~(uintptr_t)(page - 1) ||
        ((size_t)1 << a->page_shift) != page || a->max_size != page / 4 ||
        a->nclasses != a->max_size / PP_ALIGN)
        return fail("the allocator's page geometry is wrong");
    if ((const void *)a->roots != (const void *)slab_from(a, a))
        return fail("the allocator is not in root page 0");

    /* Root pages and pools. */
    size_t roots = 0, pools = 0, slabs = 0;
    const pp_root_t *last = NULL;
    for (const pp_root_t *r = a->roots; r != NULL; last = r, r = r->next) {
        if (++roots > a->nroots)
            return fail("the root chain is longer than nroots");
        if (slab_from(a, r) != (const void *)r)
            return fail("a root page is not page-aligned");
        if (r->npools > r->cap || (r->next != NULL && r->npools != r->cap))
            return fail("a root page that is not last has a free slot");
        for (uint32_t k = 0; k < r->npools; k++)
            if (!check_pool(a, &r->pools[k], &slabs))
                return false;
        pools += r->npools;
    }
    if (roots != a->nroots || last != a->last_root)
        return fail("the root chain does not end at last_root");
    if (pools != a->npools)
        return fail("the pool count is wrong");
    size_t in_table = 0;
    for (size_t k = 1; k <= a->nclasses; k++)
        in_table += a->pool_of_class[k] != NULL;
    if (in_table != pools) /* each pool was checked to be at its index */
        return fail("pool_of_class names a pool no root page holds");
    if (a->pool_of_class[0] != a->pool_of_class[1])
        return fail("pool_of_class[0] is not the pool of 16-byte blocks");

    /* The slab set holds exactly the slabs the pools hold (each of
     * those was found in it; equal counts leave no room for others). */
    if (slabs != a->nslabs || a->set_count != a->nslabs)
        return fail("the slab counts disagree with the slab set");
    if (a->set_cap != 0 && 2 * a->set_count > a->set_cap)
        return fail("the slab set is more than half full");

#if PP_QUARANTINE
    /* Each entry: a dead block's start, listed once, not on the free list.
     * With the per-slab counts above, that proves every block is in exactly
     * one place: a slab's dead blocks (bit clear) number nblocks - used +
     * held, and its free-list nodes (nblocks - used, distinct: no cycle)
     * and its quarantined blocks (held, distinct, none on the list) are
     * that many dead blocks, so they are all of them. The free lists were
     * checked first, so their walks here end. */
    if (a->q_count > PP_QUARANTINE || a->q_head >= PP_QUARANTINE)
        return fail("the quarantine's indexes are out of range");
    for (unsigned k = 0; k < a->q_count; k++) {
        void *p = a->quarantine[(a->q_head + k) % PP_QUARANTINE];
        pp_slab_t *s = slab_from(a, p);
        if (!slabset_contains(a, (uintptr_t)s))
            return fail("a quarantined block is not in one of our slabs");
        if (!is_block_start(s->pool, s, p) ||
            bit_get(s, block_index(s->pool, s, p)))
            return fail("a quarantined block is not a dead block's start");
        for (unsigned j = 0; j < k; j++)
            if (a->quarantine[(a->q_head + j) % PP_QUARANTINE] == p)
                return fail("a block is in the quarantine twice");
        for (pp_free_t *f = s->pool->free; f != NULL; f = link_read(f))
            if (f == p)
                return fail("a quarantined block is also on the free list");
    }
#endif

    /* Mappings that munmap refused: page-aligned, whole pages, not slabs
     * any more, and as many bytes as counted. The count bounds the walk. */
    size_t refused = 0;
    for (const pp_refused_t *r = a->refused; r != NULL;) {
        if (slab_from(a, r) != (const void *)r ||
            slabset_contains(a, (uintptr_t)r))
            return fail("a refused mapping is misplaced, or still a slab");
        track_mem_defined(r, sizeof *r);
        pp_refused_t node = *r;
        track_mem_noaccess(r, sizeof *r);
        if (node.bytes == 0 || node.bytes % page != 0 ||
            node.bytes > a->refused_bytes - refused)
            return fail("the refused mappings disagree with refused_bytes");
        refused += node.bytes;
        r = node.next;
    }
    if (refused != a->refused_bytes)
        return fail("the refused mappings disagree with refused_bytes");

    if (a->mapped !=
        page * (a->nroots + a->nslabs) + slabset_bytes(a) + a->refused_bytes)
        return fail("the mapped byte count is wrong");
    return true;
}

// clang-format off
/* ---- The drawing -------------------------------------------------------- */
// clang-format on

#define DUMP_CELLS 64 /* blocks drawn per line */
#define DUMP_LIST  8  /* free-list nodes named per pool */

/* Slabs are named A, B, C, ... in the order of their pool's list. */
static char slab_name(const pp_pool_t *pool, const pp_slab_t *s)
{
    unsigned i = 0;
    for (const pp_slab_t *k = pool->slabs; k != NULL && k != s; k = k->next)
        i++;
    static const char names[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
    return names[i < 26 ? i : 26];
}

static void dump_slab(const pp_allocator_t *a, const pp_pool_t *pool,
                      pp_slab_t *s, FILE *out)
{
    fprintf(out, "    slab %c at %p: %u live, %u free", slab_name(pool, s),
            (void *)s, s->used - s->held, pool->nblocks - s->used);
    if (s->held)
        fprintf(out, ", %u quarantined", s->held);
    fprintf(out, "%s\n", s->used == 0 ? " (spare)" : "");
    /* A block not on the free list is live, or held when its bit is
     * clear (checked builds keep the bits). */
    char cells[DUMP_CELLS];
    for (uint32_t row = 0; row < pool->nblocks; row += DUMP_CELLS) {
        uint32_t n = 0;
        for (; n < DUMP_CELLS && row + n < pool->nblocks; n++)
            cells[n] = PP_CHECKED && !bit_get(s, row + n) ? 'q' : '#';
        for (pp_free_t *f = pool->free; f != NULL; f = link_read(f)) {
            if (slab_from(a, f) != s)
                continue;
            uint32_t i = block_index(pool, s, f);
            if (i >= row && i < row + n)
                cells[i - row] = '.';
        }
        fprintf(out, "      |%.*s|\n", (int)n, cells);
    }
}

/* The free list's first nodes, as slab name and block number: "A3". */
static void dump_free_list(const pp_allocator_t *a, const pp_pool_t *pool,
                           FILE *out)
{
    fprintf(out, "    free list:");
    size_t n = 0;
    for (pp_free_t *f = pool->free; f != NULL; f = link_read(f), n++) {
        if (n == DUMP_LIST) {
            fprintf(out, " -> ...");
        } else if (n < DUMP_LIST) {
            pp_slab_t *s = slab_from(a, f);
            fprintf(out, "%s%c%u", n == 0 ? " " : " -> ", slab_name(pool, s),
                    block_index(pool, s, f));
        }
    }
    if (n == 0)
        fprintf(out, " (empty)\n");
    else
        fprintf(out, " (%zu block%s)\n", n, n == 1 ? "" : "s");
}

void pp_dump(const pp_allocator_t *a, FILE *out)
{
    pp_stats_t st = pp_stats(a);
    fprintf(out, "allocator %p: page %zu B, blocks 16..%zu B, %zu B mapped\n",
            (const void *)a, st.page_size, st.max_size, st.mapped);
    fprintf(out, "  %zu root page%s, %zu pool%s, %zu slab%s (%zu spare)\n",
            st.root_pages, st.root_pages == 1 ? "" : "s", st.pools,
            st.pools == 1 ? "" : "s", st.slabs, st.slabs == 1 ? "" : "s",
            st.spares);
    size_t n = 0;
    for (const pp_root_t *r = a->roots; r != NULL; r = r->next, n++)
        fprintf(out, "  root page %zu at %p: %s%u of %u pool slots used\n", n,
                (const void *)r, n == 0 ? "allocator header, " : "", r->npools,
                r->cap);
    if (a->set_cap != 0)
        fprintf(out, "  slab set: %zu of %zu slots used (%zu B)\n",
                a->set_count, a->set_cap, slabset_bytes(a));
    if (a->refused != NULL)
        fprintf(out, "  refused by munmap, held to offer again: %zu B\n",
                a->refused_bytes);
#if PP_QUARANTINE
    if (a->q_count != 0)
        fprintf(out, "  quarantine: %u of %d blocks held\n", a->q_count,
                PP_QUARANTINE);
#endif
    for (const pp_root_t *r = a->roots; r != NULL; r = r->next) {
        for (uint32_t k = 0; k < r->npools; k++) {
            const pp_pool_t *pool = &r->pools[k];
            fprintf(out,
                    "  pool %zu B (%u blocks a slab, stride %zu): %zu "
                    "slab%s\n",
                    pool->block_size, pool->nblocks, pool->stride, pool->nslabs,
                    pool->nslabs == 1 ? "" : "s");
            for (pp_slab_t *s = pool->slabs; s != NULL; s = s->next)
                dump_slab(a, pool, s, out);
            dump_free_list(a, pool, out);
        }
    }
    fprintf(out, "  # live   . free (on the free list)   q quarantined\n");
}
