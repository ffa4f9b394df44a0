/*
 * pagepool.c: pools of pages from the OS, the devlog's second pool.
 *
 * One allocator serves every block size up to a quarter of a page. Sizes
 * are rounded up to a class (16, 32, 48, ...), each class has its own pool,
 * and each pool cuts OS pages into blocks of its class. All the memory comes
 * from mmap, a page at a time; nothing here calls malloc.
 *
 * Allocating n bytes:
 *   1. Refuse n > max_size (a quarter of a page) with ENOMEM: stage 04
 *      handles any size.
 *   2. Class: k = ceil(n / 16); the pool is pool_of_class[k], one load.
 *   3. Pop the first block of the pool's free list, and count it out in
 *      its slab's header, found by masking the block's address.
 *   Slow path, only when step 2 or 3 finds nothing:
 *   4. No pool yet for the class: write its header in the last root page,
 *      chaining a new root page when that one is full.
 *   5. An empty free list: map a new page, write its slab header, thread
 *      its blocks onto the pool's free list and add its address to the
 *      slab set.
 *
 * Freeing block p:
 *   1. Slab: p & ~(page - 1), no load at all.
 *   2. Checked builds only: is that page one of our slabs (asked of the
 *      slab set, so a foreign pointer is reported without touching a page
 *      that may not be mapped)? Is p a block's start? Is its live bit set
 *      (else: double free)? Then the block waits in a small FIFO, the
 *      quarantine, and the oldest block there is freed instead.
 *   3. Push the block on the pool's free list and count it back in its
 *      slab. A slab with no block out is a spare: still mapped, its
 *      blocks still on the free list, ready for the next alloc.
 *   4. When the spares outnumber 1 + a quarter of the slabs in use,
 *      sweep: take the blocks of the spares beyond 1 + an eighth of the
 *      slabs in use off the free list (one walk of the list) and give
 *      their pages back to the OS. With no slab in use, one spare stays.
 *
 * Why one free list per pool, mixing the blocks of all its slabs (stage
 * 02's list, over pages now), and not one per slab: with a list per slab,
 * a pool in steady churn has its few free blocks spread one per slab, and
 * every alloc and free moves a slab between a "has room" and a "full"
 * list (measured: two moves per alloc/free pair, half the time spent). One
 * list needs no moves. The price is paid when pages go back: a sweep walks
 * the whole free list. It runs only once many slabs are empty, and gives
 * back an eighth of the slabs in use at least, so its cost spreads over
 * the many frees that emptied them; the spares it keeps spare a pool that
 * churns at the edge of a page from mapping and unmapping pages on every
 * call (on this project's VM a munmap costs ~100 us: it flushes the TLB).
 *
 * Cost: alloc and free are O(1); their fast paths are a handful of loads
 * and stores (about 12 instructions each), and make no syscall. A syscall
 * happens once per page mapped or unmapped. Memory: a request is rounded up
 * to a multiple of 16 (up to 15 bytes lost a block: half of a 17-byte
 * request); each page loses its header (80 B with 4 KB pages) and what is
 * left after its last block; each pool header costs 64 B in a root page;
 * the slab set 16 B a page; up to a quarter of a pool's pages may sit
 * idle as spares.
 *
 * Deliberately left out: requests above a quarter of a page (stage 04 has
 * any size, with headers and coalescing); threads (stage 05); classes spaced
 * to bound waste, pages bigger than the OS's, and a page map instead of a
 * hash set (stage 06, where the mask below grows into spans and the page
 * map); per-thread caches (stage 07).
 *
 * The layout is drawn in pagepool.h, above the structures it describes.
 *
 * Memory-tool annotations: every slab is no-access as soon as it is
 * mapped; only its header is opened. pp_alloc tells the tool about a block
 * as its last act (Valgrind MALLOCLIKE, ASan unpoison), pp_free as soon as
 * the block is known valid. The free-list link inside a free block is
 * opened around each access. Annotated builds put a 16-byte redzone before
 * and after every block, so an overflow into the neighbour is reported even
 * when that neighbour is live.
 */
#include "pagepool.h"

#include "annotate.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STAGE "03-pool-mmap"

/* No-access bytes around each block when a tool watches (see the header).
 * 16 keeps every block 16-byte aligned, which ASan's granules need. */
#define PP_REDZONE (TRACK_ENABLED ? (size_t)16 : (size_t)0)

/* The rare paths stay out of line: inlined, they would make the compiler
 * save registers on every call, for work done once a page. */
#if defined(__GNUC__)
#define PP_SLOW __attribute__((noinline, cold))
#else
#define PP_SLOW
#endif

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* ---- Talking to the OS -----------------------------------------------------
 */

#if PP_CHECKED
static unsigned map_failure_in; /* 0: off; n: maps fail from the nth on */
#endif

bool pp_debug_fail_map(unsigned nth)
{
#if PP_CHECKED
    map_failure_in = nth;
    return true;
#else
    (void)nth;
    return false;
#endif
}

/* `bytes` (whole pages) of fresh zeroed memory, or NULL with ENOMEM. */
static void *os_map(size_t bytes)
{
#if PP_CHECKED
    if (map_failure_in == 1) { /* the OS says no, until told otherwise */
        errno = ENOMEM;
        return NULL;
    }
    if (map_failure_in > 1)
        map_failure_in--;
#endif
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

static void os_unmap(void *p, size_t bytes)
{
    /* Leave no poison behind: ASan keeps shadow state per address, and the
     * next mapping at this address may belong to someone else. */
    track_mem_undefined(p, bytes);
    munmap(p, bytes);
}

/* The same, counted in the allocator's footprint. */
static void *pp_map(pp_allocator_t *a, size_t bytes)
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

static void pp_unmap(pp_allocator_t *a, void *p, size_t bytes)
{
    os_unmap(p, bytes);
    a->mapped -= bytes;
    a->unmaps++;
}

/* ---- The slab set: which pages are ours -----------------------------------
 */

/*
 * Masking a pointer gives the page it lies in, but is that page one of our
 * slabs? Reading a magic number from it would crash if the page is not
 * mapped (a stale pointer into a slab we gave back, a random integer). So
 * the addresses of our slabs are kept in a hash set of their own: open
 * addressing, linear probing, at most half full, so a lookup reads one or
 * two slots on average. Cost: 16 bytes of set per slab of 4096 bytes (0.4%
 * of the footprint), one mapping that doubles and halves as slabs come and
 * go, and, on each checked free, a multiply and a probe.
 */

static size_t set_bytes(const pp_allocator_t *a)
{
    return round_up(a->set_cap * sizeof(uintptr_t), a->page_size);
}

/* Fibonacci hashing: multiply the page number by 2^64 / golden ratio and
 * keep the top bits, which depend on every bit of the page number. */
static size_t set_home(const pp_allocator_t *a, uintptr_t slab)
{
    uint64_t page_number = (uint64_t)slab >> a->page_shift;
    return (size_t)((page_number * 0x9E3779B97F4A7C15u) >> a->set_shift);
}

static bool set_contains(const pp_allocator_t *a, uintptr_t slab)
{
    if (a->set_cap == 0)
        return false;
    for (size_t i = set_home(a, slab);; i = (i + 1) & (a->set_cap - 1)) {
        if (a->set[i] == slab)
            return true;
        if (a->set[i] == 0)
            return false;
    }
}

static void set_insert_unchecked(pp_allocator_t *a, uintptr_t slab)
{
    size_t i = set_home(a, slab);
    while (a->set[i] != 0)
        i = (i + 1) & (a->set_cap - 1);
    a->set[i] = slab;
    a->set_count++;
}

/* Moves the set to a mapping of `cap` slots (a power of two, or 0 to drop
 * it). False if the OS refuses the new mapping; the old one is kept. */
static bool set_resize(pp_allocator_t *a, size_t cap)
{
    uintptr_t *old = a->set;
    size_t old_cap = a->set_cap, old_bytes = set_bytes(a);
    uintptr_t *fresh = NULL;
    if (cap != 0) {
        fresh = pp_map(a, round_up(cap * sizeof *fresh, a->page_size));
        if (fresh == NULL)
            return false;
    }
    a->set = fresh;
    a->set_cap = cap;
    a->set_count = 0;
    a->set_shift = 64;
    for (size_t c = cap; c > 1; c >>= 1)
        a->set_shift--;
    for (size_t i = 0; cap != 0 && i < old_cap; i++)
        if (old[i] != 0)
            set_insert_unchecked(a, old[i]);
    if (old != NULL)
        pp_unmap(a, old, old_bytes);
    return true;
}

/* Makes room for one more slab address: grows the set before it would be
 * more than half full. False (errno = ENOMEM) if it cannot. */
static bool set_reserve(pp_allocator_t *a)
{
    if (2 * (a->set_count + 1) <= a->set_cap)
        return true;
    size_t min_cap = a->page_size / sizeof(uintptr_t); /* one page */
    return set_resize(a, a->set_cap ? 2 * a->set_cap : min_cap);
}

/*
 * Removes a slab address. Linear probing cannot just empty the slot: a key
 * further along the same run would become unreachable. So the keys after
 * the hole move back into it when their home is not between the hole and
 * where they sit (Knuth's algorithm R), and no tombstone is needed.
 */
static void set_remove(pp_allocator_t *a, uintptr_t slab)
{
    size_t mask = a->set_cap - 1;
    size_t hole = set_home(a, slab);
    while (a->set[hole] != slab)
        hole = (hole + 1) & mask;
    for (size_t j = (hole + 1) & mask; a->set[j] != 0; j = (j + 1) & mask) {
        size_t home = set_home(a, a->set[j]);
        /* Can the key at j move back to the hole? Only if its home is not
         * in the cyclic range (hole, j]. */
        bool home_after_hole =
            hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!home_after_hole) {
            a->set[hole] = a->set[j];
            hole = j;
        }
    }
    a->set[hole] = 0;
    a->set_count--;
    /* Shrink when 1/8 full (so that a grow is far off), and give the
     * mapping back when no slab is left. A failed shrink changes nothing. */
    if (a->set_count == 0)
        set_resize(a, 0);
    else if (8 * a->set_count < a->set_cap &&
             a->set_cap > a->page_size / sizeof(uintptr_t))
        set_resize(a, a->set_cap / 2);
}

/* ---- Slabs and their blocks --------------------------------------------- */

static pp_slab_t *slab_from(const pp_allocator_t *a, const void *p)
{
    return (pp_slab_t *)((uintptr_t)p & a->page_mask);
}

static pp_free_t *block_at(const pp_pool_t *pool, pp_slab_t *c, uint32_t i)
{
    return (pp_free_t *)((unsigned char *)c + pool->first +
                         (size_t)i * pool->stride);
}

/* The index of a block known to be on a block boundary of c. */
static uint32_t block_index(const pp_pool_t *pool, const pp_slab_t *c,
                            const void *p)
{
    uint32_t offset = (uint32_t)((uintptr_t)p - (uintptr_t)c - pool->first);
    return offset / (uint32_t)pool->stride;
}

static bool bit_get(const pp_slab_t *c, uint32_t i)
{
    return (c->live_map[i / 64] >> (i % 64)) & 1u;
}

/* The free-list link inside a free block: the tools see those 8 bytes only
 * while they are read or written (every other byte of a free block stays
 * no-access). */
static pp_free_t *link_read(pp_free_t *block)
{
    track_mem_defined(block, sizeof *block);
    pp_free_t *next = block->next;
    track_mem_noaccess(block, sizeof *block);
    return next;
}

static void link_write(pp_free_t *block, pp_free_t *next)
{
    track_mem_undefined(block, sizeof *block);
    block->next = next;
    track_mem_noaccess(block, sizeof *block);
}

/* The pool's list of slabs, doubly linked so a slab leaves in O(1). */
static void slab_link(pp_pool_t *pool, pp_slab_t *c)
{
    c->prev = NULL;
    c->next = pool->slabs;
    if (pool->slabs != NULL)
        pool->slabs->prev = c;
    pool->slabs = c;
    pool->nslabs++;
}

static void slab_unlink(pp_pool_t *pool, pp_slab_t *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        pool->slabs = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pool->nslabs--;
}

/* ---- Allocating: the fast path ------------------------------------------- */

/* Step 3: the first block of the pool's free list, which has one. */
static pp_free_t *block_take(const pp_allocator_t *a, pp_pool_t *pool)
{
    pp_free_t *block = pool->free;
    pool->free = link_read(block);
    pp_slab_t *c = slab_from(a, block);
    if (c->used++ == 0) /* a spare is in use again */
        pool->nspares--;
#if PP_CHECKED
    uint32_t i = block_index(pool, c, block);
    c->live_map[i / 64] |= (uint64_t)1 << (i % 64);
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
    /* 3. Fast path: the pool exists and has a slab with room. */
    pp_free_t *p;
    if (pool != NULL && pool->free != NULL)
        p = block_take(a, pool);
    else if ((p = alloc_slow(a, cls)) == NULL)
        return NULL;
    track_malloc(p, size, 0, false); /* tools: live, undefined */
    track_fill_fresh(p, size);
    return p;
}

/* ---- Allocating: the slow path ------------------------------------------- */

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
 * root page chained after it (the devlog's plan for a full root page). */
static pp_pool_t *pool_create(pp_allocator_t *a, size_t cls)
{
    pp_root_t *r = a->last_root;
    if (r->npools == r->cap) {
        void *page = pp_map(a, a->page_size);
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

/* Step 5: a new slab for `pool`: one page, its header written, every
 * block no-access, its blocks threaded onto the pool's (empty) free list
 * in address order, its address in the set. Threading touches every block
 * once; the page is touched anyway, since its header lives in it. */
static pp_slab_t *slab_map(pp_allocator_t *a, pp_pool_t *pool)
{
    if (!set_reserve(a)) /* first, so that nothing needs undoing after */
        return NULL;
    pp_slab_t *c = pp_map(a, a->page_size);
    if (c == NULL)
        return NULL;
    size_t header = a->first_block - PP_REDZONE;
    track_mem_noaccess(c, a->page_size);
    track_mem_defined(c, header);
    c->pool = pool;
    c->used = c->held = c->doomed = c->unused_pad = 0;
    memset(c->live_map, 0, header - sizeof *c);
    for (uint32_t i = pool->nblocks; i-- > 0;) { /* push last to first */
        pp_free_t *block = block_at(pool, c, i);
        link_write(block, pool->free);
        pool->free = block;
    }
    slab_link(pool, c);
    pool->nspares++; /* until block_take counts its first block out */
    set_insert_unchecked(a, (uintptr_t)c);
    a->nslabs++;
    return c;
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

/* ---- Freeing ---------------------------------------------------------------
 */

/* A slab's page goes back to the OS; its blocks are off the free list. */
static void slab_unmap(pp_allocator_t *a, pp_pool_t *pool, pp_slab_t *c)
{
    slab_unlink(pool, c);
    set_remove(a, (uintptr_t)c);
    a->nslabs--;
    pp_unmap(a, c, a->page_size);
}

/*
 * Step 4: gives back every spare of the pool but `keep`. Three walks:
 * mark the doomed slabs, take their blocks off the free list, unmap them.
 * O(slabs + free blocks): paid once per quarter of the pool emptied.
 */
static PP_SLOW void pool_sweep(pp_allocator_t *a, pp_pool_t *pool, size_t keep)
{
    size_t doomed = 0;
    for (pp_slab_t *c = pool->slabs; c != NULL; c = c->next) {
        if (c->used == 0 && keep > 0)
            keep--;
        else if (c->used == 0)
            doomed += c->doomed = 1;
    }
    if (doomed == 0)
        return;
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
    for (pp_slab_t *c = pool->slabs; c != NULL;) {
        pp_slab_t *next = c->next; /* read before the page goes */
        if (c->doomed) {
            slab_unmap(a, pool, c);
            pool->nspares--;
        }
        c = next;
    }
}

/* Step 4's two thresholds, from the slabs in use (with a block out):
 * a sweep starts above the first and leaves the second, so the next one is
 * an eighth of the pool's frees away. With no slab in use, one spare. */
static size_t spares_max(const pp_pool_t *pool)
{
    return 1 + (pool->nslabs - pool->nspares) / 4;
}

static size_t spares_kept(const pp_pool_t *pool)
{
    return 1 + (pool->nslabs - pool->nspares) / 8;
}

/* Step 3: block p goes back on its pool's free list. */
static void block_put(pp_allocator_t *a, pp_slab_t *c, pp_free_t *p)
{
    pp_pool_t *pool = c->pool;
    link_write(p, pool->free);
    pool->free = p;
    if (--c->used == 0 && ++pool->nspares > spares_max(pool))
        pool_sweep(a, pool, spares_kept(pool)); /* step 4 */
}

#if PP_CHECKED
/*
 * Step 2 (checked builds): the index of live block p in slab c, or a
 * report and an abort. `freeing`: the caller is pp_free, so a dead block
 * is a double free. Costs a probe of the slab set, a division and a bit
 * test: about as much as the whole release-build free.
 */
static uint32_t block_check(const pp_allocator_t *a, const pp_slab_t *c,
                            const void *p, const char *func, bool freeing)
{
    if (!set_contains(a, (uintptr_t)c))
        alloc_fatal(STAGE, func, p,
                    "not a block of this allocator (its page is not one of "
                    "our slabs)");
    const pp_pool_t *pool = c->pool;
    /* Unsigned: a pointer into the header wraps around to a huge offset
     * and fails the range test like one past the last block. */
    uintptr_t offset = (uintptr_t)p - (uintptr_t)c - pool->first;
    if (offset >= (uintptr_t)pool->nblocks * pool->stride ||
        (uint32_t)offset % (uint32_t)pool->stride != 0)
        alloc_fatal(STAGE, func, p,
                    "not the start of a block (misaligned, or in a slab "
                    "header)");
    uint32_t i = (uint32_t)offset / (uint32_t)pool->stride;
    if (!bit_get(c, i))
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
static pp_free_t *quarantine_push(pp_allocator_t *a, pp_slab_t *c, void *p)
{
    c->held++;
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

void pp_free(pp_allocator_t *a, void *p)
{
    if (p == NULL)
        return;
    pp_slab_t *c = slab_from(a, p); /* 1. */
#if PP_CHECKED
    uint32_t i = block_check(a, c, p, "pp_free", true); /* 2. */
    c->live_map[i / 64] &= ~((uint64_t)1 << (i % 64));
#endif
    track_free(p, c->pool->block_size, 0); /* tools: dead, no-access */
    track_fill_freed(p, c->pool->block_size);
#if PP_QUARANTINE
    p = quarantine_push(a, c, p);
    if (p == NULL)
        return;
    c = slab_from(a, p);
#endif
    block_put(a, c, p); /* 3. */
}

/* ---- Creating and ending the allocator -------------------------------------
 */

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
    /* The slab header with one bit per block (at most page / 16 blocks),
     * rounded to 16, then the leading redzone of block 0. */
    a->first_block =
        round_up(sizeof(pp_slab_t) + page / PP_ALIGN / 8, PP_ALIGN) +
        PP_REDZONE;
    a->roots = a->last_root = root_init(page0, page, pools_offset);
    a->nroots = 1;
    a->npools = a->nslabs = 0;
    a->set = NULL;
    a->set_cap = a->set_count = 0;
    a->set_shift = 64;
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

/* Unmaps the slabs of one list at destroy. Valgrind must forget the
 * blocks still live in them, or it would report them as leaked: they die
 * with the allocator. Only checked builds know which blocks are live, and
 * only they run under Valgrind. */
static void slab_list_release(pp_allocator_t *a, pp_pool_t *pool, pp_slab_t *c)
{
    while (c != NULL) {
        pp_slab_t *next = c->next; /* read before the page goes */
#if PP_CHECKED
        if (TRACK_ENABLED) {
            for (uint32_t i = 0; i < pool->nblocks; i++)
                if (bit_get(c, i))
                    track_free(block_at(pool, c, i), pool->block_size, 0);
        }
#else
        (void)pool;
#endif
        os_unmap(c, a->page_size);
        c = next;
    }
}

void pp_destroy(pp_allocator_t *a)
{
    if (a == NULL)
        return;
    pp_root_t *r = a->roots;
    do {
        for (uint32_t k = 0; k < r->npools; k++) {
            pp_pool_t *pool = &r->pools[k];
            slab_list_release(a, pool, pool->slabs);
        }
    } while ((r = r->next) != NULL);
    if (a->set != NULL)
        os_unmap(a->set, set_bytes(a));
    /* Root pages last, page 0 (where *a lives) the very last. */
    size_t page = a->page_size;
    r = a->roots->next;
    while (r != NULL) {
        pp_root_t *next = r->next;
        os_unmap(r, page);
        r = next;
    }
    os_unmap(a->roots, page);
}

/* ---- Small queries
 * ----------------------------------------------------------- */

size_t pp_class_size(const pp_allocator_t *a, size_t size)
{
    if (size > a->max_size)
        return 0;
    return size == 0 ? PP_ALIGN : round_up(size, PP_ALIGN);
}

size_t pp_block_size(const pp_allocator_t *a, const void *p)
{
    pp_slab_t *c = slab_from(a, p);
#if PP_CHECKED
    (void)block_check(a, c, p, "pp_block_size", false);
#endif
    return c->pool->block_size;
}

pp_slab_t *pp_slab_of(const pp_allocator_t *a, const void *p)
{
    pp_slab_t *c = slab_from(a, p);
    return set_contains(a, (uintptr_t)c) ? c : NULL;
}

size_t pp_trim(pp_allocator_t *a)
{
    size_t before = a->mapped;
#if PP_QUARANTINE
    while (a->q_count > 0) {
        pp_free_t *out = a->quarantine[a->q_head];
        a->q_head = (a->q_head + 1) % PP_QUARANTINE;
        a->q_count--;
        pp_slab_t *c = slab_from(a, out);
        c->held--;
        block_put(a, c, out);
    }
#endif
    for (pp_root_t *r = a->roots; r != NULL; r = r->next) {
        for (uint32_t k = 0; k < r->npools; k++) {
            pp_pool_t *pool = &r->pools[k];
            pool_sweep(a, pool, 0);
        }
    }
    return before - a->mapped;
}

/* Adds up the live blocks of a pool's slabs. */
static size_t pool_live(const pp_pool_t *pool)
{
    size_t n = 0;
    for (const pp_slab_t *c = pool->slabs; c != NULL; c = c->next)
        n += c->used - c->held;
    return n;
}

pp_stats_t pp_stats(const pp_allocator_t *a)
{
    pp_stats_t s = {0};
    s.page_size = a->page_size;
    s.max_size = a->max_size;
    s.mapped = a->mapped;
    s.peak_mapped = a->peak_mapped;
    s.root_pages = a->nroots;
    s.pools = a->npools;
    s.slabs = a->nslabs;
    s.set_bytes = set_bytes(a);
    s.maps = a->maps;
    s.unmaps = a->unmaps;
#if PP_QUARANTINE
    s.quarantined = a->q_count;
#endif
    for (const pp_root_t *r = a->roots; r != NULL; r = r->next) {
        s.pool_slots += r->cap;
        for (uint32_t k = 0; k < r->npools; k++) {
            const pp_pool_t *pool = &r->pools[k];
            size_t live = pool_live(pool);
            s.spares += pool->nspares;
            s.live_blocks += live;
            s.live_bytes += live * pool->block_size;
        }
    }
    return s;
}

/* ---- The checker
 * ------------------------------------------------------------- */

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

/* How many quarantined blocks lie in slab c. */
static uint32_t held_in(const pp_allocator_t *a, const pp_slab_t *c)
{
    uint32_t n = 0;
#if PP_QUARANTINE
    for (unsigned k = 0; k < a->q_count; k++)
        n += slab_from(a, a->quarantine[(a->q_head + k) % PP_QUARANTINE]) == c;
#else
    (void)a;
    (void)c;
#endif
    return n;
}

/* Is p the start of one of c's blocks? */
static bool is_block_start(const pp_pool_t *pool, const pp_slab_t *c,
                           const void *p)
{
    uintptr_t offset = (uintptr_t)p - (uintptr_t)c - pool->first;
    return offset < (uintptr_t)pool->nblocks * pool->stride &&
           offset % pool->stride == 0;
}

/* One slab's header, and its bitmap in checked builds. */
static bool check_slab(const pp_allocator_t *a, const pp_pool_t *pool,
                       const pp_slab_t *c)
{
    if (slab_from(a, c) != c)
        return fail("a slab is not page-aligned");
    if (!set_contains(a, (uintptr_t)c))
        return fail("a slab is missing from the slab set");
    if (c->pool != pool)
        return fail("a slab names another pool than the one holding it");
    if (c->used > pool->nblocks || c->held > c->used || c->doomed != 0)
        return fail("a slab's used, held or doomed field is out of range");
    if (c->held != held_in(a, c))
        return fail("a slab's held count disagrees with the quarantine");
#if PP_CHECKED
    unsigned bits = 0;
    for (size_t w = 0; w < a->page_size / PP_ALIGN / 64; w++)
        bits += popcount64(c->live_map[w]);
    if (bits != c->used - c->held)
        return fail("a slab's live bitmap disagrees with used - held");
#endif
    return true;
}

/* How many nodes of the pool's free list lie in slab c. */
static size_t free_in(const pp_allocator_t *a, const pp_pool_t *pool,
                      const pp_slab_t *c)
{
    size_t n = 0;
    for (pp_free_t *f = pool->free; f != NULL; f = link_read(f))
        n += slab_from(a, f) == c;
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
    for (const pp_slab_t *c = pool->slabs; c != NULL; prev = c, c = c->next) {
        if (++count > a->nslabs)
            return fail("a pool's slab list is longer than the slab count");
        if (c->prev != prev)
            return fail("a slab's prev link is wrong");
        if (!check_slab(a, pool, c))
            return false;
        spares += c->used == 0;
        free_blocks += pool->nblocks - c->used;
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
        pp_slab_t *c = slab_from(a, f);
        if (!set_contains(a, (uintptr_t)c) || c->pool != pool)
            return fail("a free-list node is not in one of its pool's "
                        "slabs");
        if (!is_block_start(pool, c, f))
            return fail("a free-list node is not a block's start");
#if PP_CHECKED
        if (bit_get(c, block_index(pool, c, f)))
            return fail("a free-list node is a live block");
#endif
    }
    if (listed != free_blocks)
        return fail("the free list is shorter than the free blocks");
    /* And slab by slab (O(slabs * free blocks): fine for the small
     * heaps it is run on after every operation). */
    for (const pp_slab_t *c = pool->slabs; c != NULL; c = c->next)
        if (free_in(a, pool, c) != pool->nblocks - c->used)
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
    if (a->q_count > PP_QUARANTINE || a->q_head >= PP_QUARANTINE)
        return fail("the quarantine's indexes are out of range");
    for (unsigned k = 0; k < a->q_count; k++) {
        void *p = a->quarantine[(a->q_head + k) % PP_QUARANTINE];
        pp_slab_t *c = slab_from(a, p);
        if (!set_contains(a, (uintptr_t)c))
            return fail("a quarantined block is not in one of our slabs");
        if (!is_block_start(c->pool, c, p) ||
            bit_get(c, block_index(c->pool, c, p)))
            return fail("a quarantined block is not a dead block's start");
    }
#endif

    if (a->mapped != page * (a->nroots + a->nslabs) + set_bytes(a))
        return fail("the mapped byte count is wrong");
    return true;
}

/* ---- The drawing
 * ------------------------------------------------------------- */

#define DUMP_CELLS 64 /* blocks drawn per line */
#define DUMP_LIST  8  /* free-list nodes named per pool */

/* Slabs are named A, B, C, ... in the order of their pool's list. */
static char slab_name(const pp_pool_t *pool, const pp_slab_t *c)
{
    unsigned i = 0;
    for (const pp_slab_t *k = pool->slabs; k != NULL && k != c; k = k->next)
        i++;
    static const char names[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
    return names[i < 26 ? i : 26];
}

static void dump_slab(const pp_allocator_t *a, const pp_pool_t *pool,
                      pp_slab_t *c, FILE *out)
{
    fprintf(out, "    slab %c at %p: %u live, %u free", slab_name(pool, c),
            (void *)c, c->used - c->held, pool->nblocks - c->used);
    if (c->held)
        fprintf(out, ", %u quarantined", c->held);
    fprintf(out, "%s\n", c->used == 0 ? " (spare)" : "");
    /* A block not on the free list is live, or held when its bit is
     * clear (checked builds keep the bits). */
    char cells[DUMP_CELLS];
    for (uint32_t row = 0; row < pool->nblocks; row += DUMP_CELLS) {
        uint32_t n = 0;
        for (; n < DUMP_CELLS && row + n < pool->nblocks; n++)
            cells[n] = PP_CHECKED && !bit_get(c, row + n) ? 'q' : '#';
        for (pp_free_t *f = pool->free; f != NULL; f = link_read(f)) {
            if (slab_from(a, f) != c)
                continue;
            uint32_t i = block_index(pool, c, f);
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
            pp_slab_t *c = slab_from(a, f);
            fprintf(out, "%s%c%u", n == 0 ? " " : " -> ", slab_name(pool, c),
                    block_index(pool, c, f));
        }
    }
    if (n == 0)
        fprintf(out, " (empty)\n");
    else
        fprintf(out, " (%zu block%s)\n", n, n == 1 ? "" : "s");
}

void pp_dump(const pp_allocator_t *a, FILE *out)
{
    pp_stats_t s = pp_stats(a);
    fprintf(out, "allocator %p: page %zu B, blocks 16..%zu B, %zu B mapped\n",
            (const void *)a, s.page_size, s.max_size, s.mapped);
    fprintf(out, "  %zu root page%s, %zu pool%s, %zu slab%s (%zu spare)\n",
            s.root_pages, s.root_pages == 1 ? "" : "s", s.pools,
            s.pools == 1 ? "" : "s", s.slabs, s.slabs == 1 ? "" : "s",
            s.spares);
    size_t n = 0;
    for (const pp_root_t *r = a->roots; r != NULL; r = r->next, n++)
        fprintf(out, "  root page %zu at %p: %s%u of %u pool slots used\n", n,
                (const void *)r, n == 0 ? "allocator header, " : "", r->npools,
                r->cap);
    if (a->set_cap != 0)
        fprintf(out, "  slab set: %zu of %zu slots used (%zu B)\n",
                a->set_count, a->set_cap, set_bytes(a));
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
            for (pp_slab_t *c = pool->slabs; c != NULL; c = c->next)
                dump_slab(a, pool, c, out);
            dump_free_list(a, pool, out);
        }
    }
    fprintf(out, "  # live   . free (on the free list)   q quarantined\n");
}
