// clang-format off
/*
 * pagepool.c: pools of pages from the OS, one pool per size class.
 *
 * One allocator serves every block size up to a quarter of a page. Sizes
 * are rounded up to a class (16, 32, 48, ...), each class has its own pool,
 * and each pool cuts OS pages into blocks of its class: a slab is exactly
 * one page, page-aligned, so the slab of any block is its address masked to
 * the page. All the memory comes from mmap, a page at a time; nothing here
 * calls malloc.
 *
 * Allocating n bytes (pp_alloc):
 *   1. Refuse n > max_size (a quarter of a page) with ENOMEM: stage 04
 *      handles any size.
 *   2. Class: k = ceil(n / 16); the pool is pool_of_class[k], one load.
 *   3. Pop the first block of the pool's free list, and count it out in
 *      its slab's header, found by masking the block's address.
 *   Slow path (alloc_slow), only when step 2 or 3 finds nothing:
 *   4. No pool yet for the class: write its header in the last root page,
 *      chaining a new root page when that one is full.
 *   5. An empty free list: map a new page, write its slab header, thread
 *      its blocks onto the pool's free list and add its address to the
 *      slab set.
 *
 * Freeing block p (pp_free):
 *   1. Slab: p & ~(page - 1), no load at all.
 *   2. Checked builds only: is that page one of our slabs (asked of the
 *      slab set, so a foreign pointer is reported without touching a page
 *      that may not be mapped)? Is p a block's start? Is its live bit set
 *      (else: double free)? Then the block waits in the quarantine, and the
 *      oldest block there is freed instead.
 *   3. Push the block on the pool's free list and count it back in its
 *      slab. A slab with no block out is a spare: still mapped, its blocks
 *      still on the free list, ready for the next alloc.
 *   4. When the spares outnumber 1 + a quarter of the slabs in use, sweep
 *      (free_sweep): take the blocks of the spares beyond 1 + an eighth of
 *      the slabs in use off the free list (one walk of the list) and give
 *      their pages back to the OS. With no slab in use, one spare stays.
 *
 * How it got here. The first version kept one free list per slab, as
 * mimalloc's pages do, and moved a slab between an "avail" list and a
 * "full" list as it filled and emptied. Measured, it ran most churn cases
 * at 0.4-0.7x the system malloc's rate: in steady churn a pool has few free
 * blocks, spread about one per slab, so nearly every alloc took a slab's
 * last free block (to "full") and nearly every free gave a full slab one
 * back (to "avail"): two list moves per alloc/free pair, over 40% of the
 * instructions (callgrind). This version keeps one free list per pool,
 * threaded through the free blocks of all its slabs (stage 02's list, over
 * pages now): no moves, and the per-slab work is one count. The price is
 * paid when pages go back: a sweep walks the pool's whole free list. It
 * runs only once many slabs are empty and gives back an eighth of the slabs
 * in use at least, so its cost spreads over the many frees that emptied
 * them; the spares it keeps spare a pool that churns at the edge of a page
 * from a mmap and a munmap on every call.
 *
 * Cost: alloc and free are O(1) and make no system call on their fast
 * paths: 20 instructions in pp_alloc and 11 in pp_free (release build,
 * gcc 12 -O2, counted by callgrind in `make bench-03`'s churn-16-1000);
 * a free that empties a slab pays 9 more (the spare count and its bound),
 * the alloc that takes the first block of a spare 1 more (churn-16-1:
 * 21 and 20). A system call happens once per page mapped or given back,
 * and it costs far more than an alloc: a munmap removes the mapping
 * (splitting the kernel's record of the run of pages it was part of),
 * frees the page and flushes the page's translation from the TLB; `make
 * bench-03` prints what a mmap, a first write and a munmap cost on your
 * machine. A sweep costs a walk of the pool's whole free list: when a
 * heap is freed in random order (the bench's free-mixed, under callgrind)
 * the sweeps are 86% of pp_free's instructions. Memory: a request is
 * rounded up to a multiple of 16 (up to 15 bytes lost a block: half of a
 * 17-byte request); each page loses its header and what is left after its
 * last block; each pool header costs 64 B in a root page; the slab set 16 B
 * a page; up to a quarter of a pool's pages may sit idle as spares.
 *
 * Deliberately left out: requests above a quarter of a page (stage 04 has
 * any size, with headers and coalescing); threads (stage 05); classes spaced
 * to bound waste, pages bigger than the OS's, and a page map instead of a
 * hash set (stage 06, where the one-page slab grows into the span of
 * several pages and the mask into the page map); per-thread caches (stage
 * 07).
 *
 * The layout (4 KB pages; the structures are in pagepool.h, with a comment
 * on every field and their invariants, which is the state to read next):
 *
 * <diagram layout>
 * root page 0                          root page 1 (chained when 0 is full)
 * +------------------------------+     +----------------------------+
 * | pp_root_t     next --------------->| pp_root_t   next -> NULL   |
 * | pp_allocator_t               |     | pp_pool_t   slot 0         |
 * |   page size, slab set, ...   |     | pp_pool_t   slot 1  ...    |
 * |   pool_of_class[0..64] --+   |     +----------------------------+
 * | pp_pool_t slot 0 <-------+   |
 * |   48 B: slabs ----------------------+  (then slab B, C, ... by next)
 * |         free ---+            |      |
 * | pp_pool_t slot 1 ...         |      v
 * +-----------------|------------+     slab A: one page, page-aligned
 *                   |                  +--------+--+----+--+----+--+---+----+
 *                   |                  | header |rz| b0 |rz| b1 |rz|...|tail|
 *                   |                  +--------+--+----+--+----+--+---+----+
 *                   +----------------------------------------^ b1 is free:
 *                                                              its first 8 B
 *                                                              point to the
 *                                                              next free
 *                                                              block of its
 *                                                              pool, in A or
 *                                                              in B, C, ...
 * header: pool, prev and next slab, used, held, doomed, and in checked
 *   builds the live bitmap: 48 B in release builds, 80 B in checked ones
 *   (4 KB pages); rz: the redzone, 16 B in annotated builds, else 0;
 *   tail: what is left after the last block, lost
 * block i starts at slab + first + i * stride;  slab = block & ~(page - 1)
 * </diagram>
 *
 * The invariants that the algorithm keeps, in one sentence: every block is
 * live, held in the quarantine, or on its pool's free list; a slab's `used`
 * counts its blocks that are not on the list; a pool keeps at most
 * 1 + (slabs in use) / 4 spares; `mapped` is what the OS has lent us.
 *
 * Memory-tool annotations: every slab is no-access as soon as it is
 * mapped; only its header is opened. pp_alloc tells the tool about a block
 * as its last act (Valgrind MALLOCLIKE, ASan unpoison), pp_free as soon as
 * the block is known valid. The free-list link inside a free block is
 * opened around each access. Annotated builds put a 16-byte redzone before
 * and after every block, so an overflow into the neighbour is reported even
 * when that neighbour is live.
 *
 * Files: this one is the allocator. slabset.c is the set of our slabs'
 * addresses (a side road: the fast paths never ask it); pagepool_check.c
 * holds pp_check() and pp_dump(), which only read the structures.
 */
// clang-format on
#include "pagepool_internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An annotated build is a checked build (pagepool.h): the tools' reports
 * need the live bitmap and the quarantine. */
#if TRACK_ENABLED && !PP_CHECKED
#error "annotated builds are checked builds: compile with -DALLOC_DEBUG"
#endif

/* The rare paths stay out of line: inlined, they would make the compiler
 * save registers on every call, for work done once a page. */
#if defined(__GNUC__)
#define PP_SLOW __attribute__((noinline, cold))
#else
#define PP_SLOW
#endif

// clang-format off
/* ---- Allocating: the fast path ------------------------------------------ */
// clang-format on

/* Step 3: the first block of the pool's free list, which has one. */
static pp_free_t *block_take(const pp_allocator_t *a, pp_pool_t *pool)
{
    pp_free_t *block = pool->free;
    pool->free = link_read(block);
    pp_slab_t *s = slab_from(a, block);
    if (s->used++ == 0) /* a spare is in use again */
        pool->nspares--;
#if PP_CHECKED
    uint32_t i = block_index(pool, s, block);
    s->live_map[i / 64] |= (uint64_t)1 << (i % 64);
#endif
    return block;
}

static PP_SLOW pp_free_t *alloc_slow(pp_allocator_t *a, size_t cls);

void *pp_alloc(pp_allocator_t *a, size_t size)
{
    /* 1. Refuse what no class holds. Compared before any arithmetic on
     *    size, so SIZE_MAX cannot wrap around into a small class. */
    if (size > a->max_size) {
        errno = ENOMEM;
        return NULL;
    }
    /* 2. Class: 1..16 -> 1, 17..32 -> 2, ...; 0 -> 0, whose entry names
     *    the pool of class 1 once it exists. */
    size_t cls = (size + PP_ALIGN - 1) / PP_ALIGN;
    pp_pool_t *pool = a->pool_of_class[cls];
    /* 3. Fast path: the pool exists and has a free block. */
    pp_free_t *p;
    if (pool != NULL && pool->free != NULL)
        p = block_take(a, pool);
    else if ((p = alloc_slow(a, cls)) == NULL)
        return NULL;
    track_malloc(p, size, 0, false); /* tools: live, undefined */
    track_fill_fresh(p, size);
    return p;
}

// clang-format off
/* ---- Allocating: the slow path ------------------------------------------ */
// clang-format on

/* `bytes` (whole pages) of fresh zeroed memory, or NULL with ENOMEM. */
static void *os_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

void *pages_map(pp_allocator_t *a, size_t bytes)
{
    void *p = os_map(bytes);
    if (p != NULL) {
        a->mapped += bytes;
        a->maps++;
        if (a->mapped > a->peak_mapped)
            a->peak_mapped = a->mapped;
    }
    return p;
}

/* Lays out an empty root page: its header, then pool slots from `offset`. */
static pp_root_t *root_init(void *page, size_t page_size, size_t offset)
{
    pp_root_t *r = page;
    r->next = NULL;
    r->pools = (pp_pool_t *)((unsigned char *)page + offset);
    r->npools = 0;
    r->cap = (uint32_t)((page_size - offset) / sizeof(pp_pool_t));
    return r;
}

/* Step 4: the header of a new pool, in the last root page, or in a new
 * root page chained after it when that one is full. */
static pp_pool_t *pool_create(pp_allocator_t *a, size_t cls)
{
    pp_root_t *r = a->last_root;
    if (r->npools == r->cap) {
        void *page = pages_map(a, a->page_size);
        if (page == NULL)
            return NULL;
        r->next = root_init(page, a->page_size,
                            round_up(sizeof(pp_root_t), PP_ALIGN));
        r = a->last_root = r->next;
        a->nroots++;
    }
    pp_pool_t *pool = &r->pools[r->npools++];
    pool->block_size = cls * PP_ALIGN;
    pool->stride = pool->block_size + PP_REDZONE;
    pool->first = a->first_block;
    pool->nblocks = (uint32_t)((a->page_size - pool->first) / pool->stride);
    pool->cls = (uint32_t)cls;
    pool->free = NULL;
    pool->slabs = NULL;
    pool->nslabs = pool->nspares = 0;
    a->pool_of_class[cls] = pool;
    if (cls == 1)
        a->pool_of_class[0] = pool; /* size 0 gets a 16-byte block */
    a->npools++;
    return pool;
}

/* The pool's list of slabs, doubly linked so that a slab leaves in O(1). */
static void slab_link(pp_pool_t *pool, pp_slab_t *s)
{
    s->prev = NULL;
    s->next = pool->slabs;
    if (pool->slabs != NULL)
        pool->slabs->prev = s;
    pool->slabs = s;
    pool->nslabs++;
}

/* Step 5: a new slab for `pool`: one page, its header written, every block
 * no-access, its blocks threaded onto the pool's (empty) free list in
 * address order, its address in the set. Threading touches every block
 * once; the page is touched anyway, since its header lives in it. */
static pp_slab_t *slab_map(pp_allocator_t *a, pp_pool_t *pool)
{
    if (!slabset_reserve(a)) /* first, so that nothing needs undoing after */
        return NULL;
    pp_slab_t *s = pages_map(a, a->page_size);
    if (s == NULL)
        return NULL;
    size_t header = a->first_block - PP_REDZONE;
    track_mem_noaccess(s, a->page_size);
    track_mem_defined(s, header);
    s->pool = pool;
    s->used = s->held = s->doomed = s->unused_pad = 0;
    memset(s->live_map, 0, header - sizeof *s);  /* checked builds' bitmap */
    for (uint32_t i = pool->nblocks; i-- > 0;) { /* push last to first */
        pp_free_t *block = block_at(pool, s, i);
        link_write(block, pool->free);
        pool->free = block;
    }
    slab_link(pool, s);
    pool->nspares++; /* until block_take counts its first block out */
    slabset_insert(a, (uintptr_t)s);
    a->nslabs++;
    return s;
}

/* Steps 4 and 5, then 3. Runs once per pool, and then once per page's
 * worth of blocks at most. */
static PP_SLOW pp_free_t *alloc_slow(pp_allocator_t *a, size_t cls)
{
    if (cls == 0)
        cls = 1;
    pp_pool_t *pool = a->pool_of_class[cls];
    if (pool == NULL && (pool = pool_create(a, cls)) == NULL)
        return NULL;
    if (pool->free == NULL && slab_map(a, pool) == NULL)
        return NULL;
    return block_take(a, pool);
}

// clang-format off
/* ---- Freeing: the fast path --------------------------------------------- */
// clang-format on

static PP_SLOW void free_sweep(pp_allocator_t *a, pp_pool_t *pool);

/* Step 3: block p goes back on its pool's free list; step 4 if its slab
 * became one spare too many. */
static void block_put(pp_allocator_t *a, pp_slab_t *s, pp_free_t *p)
{
    pp_pool_t *pool = s->pool;
    link_write(p, pool->free);
    pool->free = p;
    if (--s->used == 0 && ++pool->nspares > spares_max(pool))
        free_sweep(a, pool);
}

#if PP_CHECKED
/*
 * Step 2 (checked builds): the index of live block p in slab s, or a
 * report and an abort. `freeing`: the caller is pp_free, so a dead block
 * is a double free. Costs a probe of the slab set, a division and a bit
 * test: about as much as the whole release-build free.
 */
static uint32_t block_check(const pp_allocator_t *a, const pp_slab_t *s,
                            const void *p, const char *func, bool freeing)
{
    if (!slabset_contains(a, (uintptr_t)s))
        alloc_fatal(STAGE, func, p,
                    "not a block of this allocator (its page is not one of "
                    "our slabs)");
    const pp_pool_t *pool = s->pool;
    /* Unsigned: a pointer into the header wraps around to a huge offset
     * and fails the range test like one past the last block. */
    uintptr_t offset = (uintptr_t)p - (uintptr_t)s - pool->first;
    if (offset >= (uintptr_t)pool->nblocks * pool->stride ||
        (uint32_t)offset % (uint32_t)pool->stride != 0)
        alloc_fatal(STAGE, func, p,
                    "not the start of a block (misaligned, or in a slab "
                    "header)");
    uint32_t i = (uint32_t)offset / (uint32_t)pool->stride;
    if (!bit_get(s, i))
        alloc_fatal(STAGE, func, p,
                    freeing ? "double free (the block is free already)"
                            : "not a live block (it was freed)");
    return i;
}
#endif

#if PP_QUARANTINE
/* Checked builds: p waits in the FIFO; returns the oldest block if it had
 * to leave to make room, else NULL. A held block is dead (its bit is clear,
 * so a second free is caught) but not reusable, and keeps its slab. */
static pp_free_t *quarantine_push(pp_allocator_t *a, pp_slab_t *s, void *p)
{
    s->held++;
    if (a->q_count < PP_QUARANTINE) {
        a->quarantine[(a->q_head + a->q_count++) % PP_QUARANTINE] = p;
        return NULL;
    }
    pp_free_t *out = a->quarantine[a->q_head];
    a->quarantine[a->q_head] = p;
    a->q_head = (a->q_head + 1) % PP_QUARANTINE;
    slab_from(a, out)->held--;
    return out;
}
#endif

/*
 * errno: pp_free promises to leave it alone (as POSIX asks of free), and
 * the only place where it calls the OS is the sweep (step 4, free_sweep),
 * which saves and restores errno itself. So the fast path pays nothing for
 * the promise (reading errno is a call to __errno_location).
 */
void pp_free(pp_allocator_t *a, void *p)
{
    if (p == NULL)
        return;
    pp_slab_t *s = slab_from(a, p); /* 1. */
#if PP_CHECKED
    uint32_t i = block_check(a, s, p, "pp_free", true); /* 2. */
    s->live_map[i / 64] &= ~((uint64_t)1 << (i % 64));
#endif
    track_free(p, s->pool->block_size, 0); /* tools: dead, no-access */
    track_fill_freed(p, s->pool->block_size);
#if PP_QUARANTINE
    p = quarantine_push(a, s, p);
    if (p == NULL)
        return;
    s = slab_from(a, p);
#endif
    block_put(a, s, p); /* 3. */
}

// clang-format off
/* ---- Freeing: the sweep, and giving pages back -------------------------- */
// clang-format on

/* Gives a mapping back; false if the OS refuses. Leaves no poison behind
 * first: ASan keeps shadow state per address, and the next mapping at this
 * address may belong to someone else. */
static bool os_unmap(void *p, size_t bytes)
{
    track_mem_undefined(p, bytes);
    return munmap(p, bytes) == 0;
}

/*
 * munmap can fail: unmapping one page out of a run of pages that the kernel
 * merged into one mapping splits it in two, and past the limit on the
 * number of mappings (vm.max_map_count) the kernel says ENOMEM. Then the
 * page is still ours and still mapped: forgetting it would lose it, and
 * counting it as given back would make `mapped` lie. So it goes on the
 * refused list, linked through its own first bytes, still counted, and is
 * offered again at the next sweep, pp_trim or pp_destroy.
 */
void pages_unmap(pp_allocator_t *a, void *p, size_t bytes)
{
    if (os_unmap(p, bytes)) {
        a->mapped -= bytes;
        a->unmaps++;
        return;
    }
    pp_refused_t *r = p; /* writable: os_unmap opened it for the tools */
    r->next = a->refused;
    r->bytes = bytes;
    track_mem_noaccess(p, bytes);
    a->refused = r;
    a->refused_bytes += bytes;
}

/* Offers every refused mapping to munmap again; the ones refused once more
 * go back on the list. */
static void refused_retry(pp_allocator_t *a)
{
    pp_refused_t *r = a->refused;
    a->refused = NULL;
    a->refused_bytes = 0;
    while (r != NULL) {
        track_mem_defined(r, sizeof *r);
        pp_refused_t node = *r; /* read before the mapping goes */
        pages_unmap(a, r, node.bytes);
        r = node.next;
    }
}

/* A slab's page goes back to the OS; its blocks are off the free list. */
static void slab_unmap(pp_allocator_t *a, pp_pool_t *pool, pp_slab_t *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        pool->slabs = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    pool->nslabs--;
    slabset_remove(a, (uintptr_t)s);
    a->nslabs--;
    pages_unmap(a, s, a->page_size);
}

/*
 * Gives back every spare of the pool but `keep`. Three walks: mark the
 * doomed slabs, take their blocks off the free list, unmap them.
 * O(slabs + free blocks). May change errno: its callers restore it.
 */
static void pool_sweep(pp_allocator_t *a, pp_pool_t *pool, size_t keep)
{
    size_t doomed = 0;
    for (pp_slab_t *s = pool->slabs; s != NULL; s = s->next) {
        if (s->used == 0 && keep > 0)
            keep--;
        else if (s->used == 0)
            doomed += s->doomed = 1;
    }
    if (doomed != 0) {
        pp_free_t *prev = NULL;
        for (pp_free_t *f = pool->free; f != NULL;) {
            pp_free_t *next = link_read(f);
            if (slab_from(a, f)->doomed) { /* unlink f */
                if (prev != NULL)
                    link_write(prev, next);
                else
                    pool->free = next;
            } else {
                prev = f;
            }
            f = next;
        }
        for (pp_slab_t *s = pool->slabs; s != NULL;) {
            pp_slab_t *next = s->next; /* read before the page goes */
            if (s->doomed) {
                slab_unmap(a, pool, s);
                pool->nspares--;
            }
            s = next;
        }
    }
}

/*
 * Step 4, from pp_free: the mappings refused before are offered again,
 * then the sweep leaves 1 + an eighth of the slabs in use, so that the
 * next one (at 1 + a quarter, spares_max) is an eighth of the pool's frees
 * away: its O(slabs + free blocks) spreads over those frees. Its system
 * calls may fail and set errno, which pp_free must leave alone: saved and
 * restored here.
 */
static PP_SLOW void free_sweep(pp_allocator_t *a, pp_pool_t *pool)
{
    int saved_errno = errno;
    if (a->refused != NULL)
        refused_retry(a);
    pool_sweep(a, pool, 1 + (pool->nslabs - pool->nspares) / 8);
    errno = saved_errno;
}

// clang-format off
/* ---- Creating and ending the allocator ---------------------------------- */
// clang-format on

pp_allocator_t *pp_create(void)
{
    long page_size = sysconf(_SC_PAGESIZE);
    /* Every Linux page is a power of two of 4 KB or more; below 1 KB the
     * first root page could not hold the allocator and a pool slot. */
    if (page_size < 1024 || (page_size & (page_size - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    size_t page = (size_t)page_size;
    size_t nclasses = page / 4 / PP_ALIGN;
    size_t a_offset = round_up(sizeof(pp_root_t), PP_ALIGN);
    size_t pools_offset = round_up(a_offset + sizeof(pp_allocator_t) +
                                       (nclasses + 1) * sizeof(pp_pool_t *),
                                   PP_ALIGN);

    void *page0 = os_map(page);
    if (page0 == NULL)
        return NULL;
    pp_allocator_t *a = (pp_allocator_t *)((unsigned char *)page0 + a_offset);
    a->page_size = page;
    a->page_mask = ~(uintptr_t)(page - 1);
    a->page_shift = 0;
    while (((size_t)1 << a->page_shift) < page)
        a->page_shift++;
    a->max_size = page / 4;
    a->nclasses = nclasses;
    /* The slab header, with one bit per block (at most page / 16 blocks)
     * in checked builds only, rounded to 16; then block 0's redzone. */
    a->first_block =
        round_up(sizeof(pp_slab_t) + (PP_CHECKED ? page / PP_ALIGN / 8 : 0),
                 PP_ALIGN) +
        PP_REDZONE;
    a->roots = a->last_root = root_init(page0, page, pools_offset);
    a->nroots = 1;
    a->npools = a->nslabs = 0;
    a->set = NULL;
    a->set_cap = a->set_count = 0;
    a->set_shift = 64;
    a->refused = NULL;
    a->refused_bytes = 0;
    a->mapped = a->peak_mapped = page;
    a->maps = 1;
    a->unmaps = 0;
#if PP_QUARANTINE
    a->q_head = a->q_count = 0;
#endif
    for (size_t k = 0; k <= nclasses; k++)
        a->pool_of_class[k] = NULL;
    return a;
}

/* Unmaps the slabs of one pool at destroy. Valgrind must forget the blocks
 * still live in them, or it would report them as leaked: they die with the
 * allocator. Only checked builds know which blocks are live, and every
 * annotated build is one. */
static void slab_list_release(pp_allocator_t *a, pp_pool_t *pool)
{
    pp_slab_t *s = pool->slabs;
    while (s != NULL) {
        pp_slab_t *next = s->next; /* read before the page goes */
#if PP_CHECKED
        if (TRACK_ENABLED) {
            for (uint32_t i = 0; i < pool->nblocks; i++)
                if (bit_get(s, i))
                    track_free(block_at(pool, s, i), pool->block_size, 0);
        }
#endif
        (void)os_unmap(s, a->page_size); /* refused: nothing left to do */
        s = next;
    }
}

void pp_destroy(pp_allocator_t *a)
{
    if (a == NULL)
        return;
    int saved_errno = errno;
    pp_root_t *r = a->roots;
    do {
        for (uint32_t k = 0; k < r->npools; k++)
            slab_list_release(a, &r->pools[k]);
    } while ((r = r->next) != NULL);
    if (a->set != NULL)
        (void)os_unmap(a->set, slabset_bytes(a));
    for (pp_refused_t *f = a->refused; f != NULL;) {
        track_mem_defined(f, sizeof *f);
        pp_refused_t node = *f;
        (void)os_unmap(f, node.bytes);
        f = node.next;
    }
    /* Root pages last, page 0 (where *a lives) the very last. */
    size_t page = a->page_size;
    r = a->roots->next;
    while (r != NULL) {
        pp_root_t *next = r->next;
        (void)os_unmap(r, page);
        r = next;
    }
    (void)os_unmap(a->roots, page);
    errno = saved_errno;
}

// clang-format off
/* ---- Small queries, and trimming ---------------------------------------- */
// clang-format on

size_t pp_class_size(const pp_allocator_t *a, size_t size)
{
    if (size > a->max_size)
        return 0;
    return size == 0 ? PP_ALIGN : round_up(size, PP_ALIGN);
}

size_t pp_block_size(const pp_allocator_t *a, const void *p)
{
    pp_slab_t *s = slab_from(a, p);
#if PP_CHECKED
    (void)block_check(a, s, p, "pp_block_size", false);
#endif
    return s->pool->block_size;
}

pp_slab_t *pp_slab_of(const pp_allocator_t *a, const void *p)
{
    pp_slab_t *s = slab_from(a, p);
    return slabset_contains(a, (uintptr_t)s) ? s : NULL;
}

size_t pp_trim(pp_allocator_t *a)
{
    int saved_errno = errno;
    size_t before = a->mapped;
    if (a->refused != NULL)
        refused_retry(a);
#if PP_QUARANTINE
    while (a->q_count > 0) {
        pp_free_t *out = a->quarantine[a->q_head];
        a->q_head = (a->q_head + 1) % PP_QUARANTINE;
        a->q_count--;
        pp_slab_t *s = slab_from(a, out);
        s->held--;
        block_put(a, s, out);
    }
#endif
    for (pp_root_t *r = a->roots; r != NULL; r = r->next)
        for (uint32_t k = 0; k < r->npools; k++)
            pool_sweep(a, &r->pools[k], 0);
    errno = saved_errno;
    return before - a->mapped;
}

pp_stats_t pp_stats(const pp_allocator_t *a)
{
    pp_stats_t st = {0};
    st.page_size = a->page_size;
    st.max_size = a->max_size;
    st.mapped = a->mapped;
    st.peak_mapped = a->peak_mapped;
    st.root_pages = a->nroots;
    st.pools = a->npools;
    st.slabs = a->nslabs;
    st.set_bytes = slabset_bytes(a);
    st.refused_bytes = a->refused_bytes;
    st.maps = a->maps;
    st.unmaps = a->unmaps;
#if PP_QUARANTINE
    st.quarantined = a->q_count;
#endif
    for (const pp_root_t *r = a->roots; r != NULL; r = r->next) {
        st.pool_slots += r->cap;
        for (uint32_t k = 0; k < r->npools; k++) {
            const pp_pool_t *pool = &r->pools[k];
            size_t live = 0;
            for (const pp_slab_t *s = pool->slabs; s != NULL; s = s->next)
                live += s->used - s->held;
            st.spares += pool->nspares;
            st.live_blocks += live;
            st.live_bytes += live * pool->block_size;
        }
    }
    return st;
}
