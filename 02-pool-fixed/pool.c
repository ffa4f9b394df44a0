/*
 * pool.c: a fixed-size pool allocator, with the free list threaded through
 * the free blocks themselves.
 *
 * Every block of a pool has the same size, so any free block can serve any
 * request: there is nothing to search for. A free block's first 8 bytes are
 * the link to the next free block (xv6's `struct run`), and the pool keeps
 * only the head of that list.
 *
 *   1. Create: round the block size up to POOL_ALIGN (a free block must hold
 *      the link, and every block must start aligned), and get the first
 *      slab: blocks_per_slab blocks, all pushed on the free list.
 *   2. Alloc: pop the head of the free list. If the list is empty, take the
 *      oldest block out of the quarantine (checked builds), else grow by one
 *      more slab, else (a fixed pool, or no memory) fail with ENOMEM.
 *   3. Free: check the pointer (cheap checks always, the rest in checked
 *      builds), then push the block on the head of the free list. A checked
 *      build first holds it in a small quarantine, so that a use after free
 *      meets a dead block for a while instead of someone else's live data.
 *   4. Destroy: give every slab back, live blocks and all.
 *
 * Guarantee: alloc and free are O(1) in release builds: a pop, a push, two
 * counters. The list is LIFO, so the block freed last is handed out next,
 * while it is still in the cache. Nothing is wasted between blocks; inside a
 * block, an object smaller than the block wastes the difference (internal
 * fragmentation: a 20-byte object in a 32-byte block wastes 12).
 *
 * Two backings, the devlog's two steps, both kept to be compared:
 *   - POOL_BACKING_MALLOC_PER_BLOCK (the devlog's first pool): each block is
 *     its own malloc, made blocks_per_slab at a time when the pool grows.
 *     malloc puts them anywhere, with its own header before each, so the
 *     pool cannot tell its blocks from any other pointer without comparing
 *     against every one of them: O(capacity) checks, scattered blocks.
 *   - POOL_BACKING_ONE_BUFFER (the devlog's second pool, the default): each
 *     slab is one buffer from mmap, cut into blocks. Growing the pool adds
 *     one more buffer. A block belongs to the pool iff it lies inside one of
 *     the buffers: one range compare per slab, and its index is arithmetic.
 *
 * Deliberately left out: blocks of different sizes (stage 03 keeps one pool
 * per size; stage 04 serves any size), giving an empty slab back before the
 * pool is destroyed (stage 03), finding a block's slab in O(1) (stage 03
 * masks the address of page-sized slabs), threads (one pool per thread).
 *
 * Layout of one slab, one-buffer backing (one mmap, whole pages):
 *
 *   page-aligned                   first
 *   |                              |
 *   [ slab header | live bits ]   [ b0 ][rz][ b1 ][rz] ... [ bN-1 ][rz] slack
 *    next, number,   checked        <stride>                          unused
 *    bytes, first    builds only                                      page end
 *
 *   b0..bN-1  the blocks, each block_size bytes, POOL_ALIGN-aligned
 *   rz        a 16-byte redzone after every block in annotated builds, never
 *             handed out and always no-access, so an overflow is reported
 *
 * A free block and a live block are the same bytes seen differently:
 *
 *   free:  [ next | ......... unused ......... ]   link to the next free
 *   live:  [ ............ caller's data ......... ]   the link is gone
 *
 * Malloc-per-block backing: the slab is a record from malloc (header, an
 * array of the blocks' addresses, live bits); each block is a malloc of
 * block_size bytes somewhere else.
 *
 * Memory-tool annotations: one-buffer blocks are Valgrind MALLOCLIKE blocks
 * (ASan: poisoned while free), and a free block is no-access except while
 * the pool reads or writes its link. Malloc-per-block blocks are already
 * malloc blocks to the tools, so the pool only makes them no-access while
 * free: a use after free is still reported, but Valgrind names the malloc in
 * pool_grow as the block's origin, not the pool_alloc that handed it out.
 */
#include "pool.h"

#include "annotate.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STAGE "02-pool-fixed"

/* Checked builds keep a live bit per block (to catch double frees, and so
 * that pool_destroy can tell the memory tool which blocks die with the pool)
 * and a quarantine. Annotated builds are always checked builds. */
#if defined(ALLOC_DEBUG) || TRACK_ENABLED
#define POOL_CHECKED 1
#else
#define POOL_CHECKED 0
#endif

/* Bytes left unused after every block when a tool watches, so that writing
 * past a block lands in no-access memory even when the next block is live.
 * 16 keeps every block 16-byte aligned. */
#define POOL_REDZONE (TRACK_ENABLED ? 16u : 0u)

#define POOL_ALL_FLAGS                                                         \
    (POOL_FIXED | POOL_BACKING_MALLOC_PER_BLOCK | POOL_NO_QUARANTINE)

/*
 * A slab: blocks_per_slab blocks and what the pool knows about them. With
 * one-buffer backing it sits at the start of its own mapping; with malloc
 * per block it is a malloc'd record.
 */
struct pool_slab {
    pool_slab_t *next;    /* the slab obtained before this one, or NULL */
    size_t number;        /* 0 for the first slab obtained, then 1, 2... */
    size_t bytes;         /* one buffer: length of the mapping; malloc:
                             bytes of this record */
    unsigned char *first; /* one buffer: block 0; block i is at
                             first + i * stride. NULL for malloc */
    void **blocks;        /* malloc per block: block i's address; else NULL */
    uint64_t *live_bits;  /* checked builds: bit i set = block i is handed
                             out; NULL in release builds */
};

static bool is_malloc_backed(const pool_t *pool)
{
    return (pool->flags & POOL_BACKING_MALLOC_PER_BLOCK) != 0;
}

/* The length of the free list. Not kept in a field: with a `free_count`
 * next to `live`, GCC updated both with one 16-byte load and store in
 * pool_alloc, which the CPU could not feed from pool_free's two 8-byte
 * stores just before (store-to-load forwarding failed): a free and an alloc
 * took 15 ns instead of 2.3. One counter, one 8-byte update. */
static size_t pool_free_count(const pool_t *pool)
{
    return pool->capacity - pool->live - pool->q_count;
}

/* Reports a caller's bug and stops: going on would corrupt the pool.
 * _Noreturn lets the compiler keep the checks that call it off the fast
 * path (alloc_fatal aborts; the abort() here only proves it to the compiler).
 */
_Noreturn static void pool_misuse(const char *func, const void *ptr,
                                  const char *what)
{
    alloc_fatal(STAGE, func, ptr, what);
    abort();
}

/* The slow paths stay out of line, so that the fast paths around them need
 * no stack frame: a few instructions fewer on every call (GCC and clang). */
#if defined(__GNUC__)
#define POOL_NOINLINE __attribute__((noinline))
#else
#define POOL_NOINLINE
#endif

/* ---- Sizes -------------------------------------------------------------- */

static size_t os_page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* x rounded up to a multiple of `to` (a power of two); 0 if that overflows.
 * Callers pass x > 0, so 0 only ever means overflow. */
static size_t round_up(size_t x, size_t to)
{
    if (x > SIZE_MAX - (to - 1))
        return 0;
    return (x + to - 1) & ~(to - 1);
}

static size_t live_bits_bytes(size_t nblocks)
{
    size_t words = nblocks / 64 + (nblocks % 64 != 0);
    return POOL_CHECKED ? words * sizeof(uint64_t) : 0;
}

/*
 * The shape of one slab of this pool: `header` bytes of bookkeeping, then
 * (one buffer) the blocks, `bytes` in all. pool_create() calls it to refuse
 * sizes that overflow, so pool_grow() can trust it. Returns false on
 * overflow.
 */
static bool slab_layout(size_t block_size, size_t stride, size_t nblocks,
                        unsigned flags, size_t *header, size_t *bytes)
{
    size_t bits = live_bits_bytes(nblocks);
    if (flags & POOL_BACKING_MALLOC_PER_BLOCK) {
        /* The record: the struct, the blocks' addresses, the live bits. The
         * blocks themselves must also fit in size_t, for the footprint. */
        if (nblocks >
                (SIZE_MAX - sizeof(pool_slab_t) - bits) / sizeof(void *) ||
            nblocks > SIZE_MAX / block_size)
            return false;
        *header = sizeof(pool_slab_t) + nblocks * sizeof(void *) + bits;
        *bytes = *header;
        return true;
    }
    *header = round_up(sizeof(pool_slab_t) + bits, POOL_ALIGN);
    if (nblocks > (SIZE_MAX - *header) / stride)
        return false;
    *bytes = round_up(*header + nblocks * stride, os_page_size());
    return *bytes != 0;
}

/* ---- Finding a block ---------------------------------------------------- */

static unsigned char *slab_block(const pool_t *pool, const pool_slab_t *c,
                                 size_t i)
{
    return c->blocks ? (unsigned char *)c->blocks[i]
                     : c->first + i * pool->stride;
}

enum pool_where { POOL_IS_BLOCK, POOL_NOT_OURS, POOL_NOT_BOUNDARY };

/*
 * Where `p` is: the start of block *index of slab *slab, or inside a block
 * (or its redzone) but not at its start, or not in the pool at all.
 * Addresses are compared as integers: comparing pointers into different
 * objects with < is undefined in C.
 * Cost: one buffer, one range compare per slab, O(slabs); malloc per
 * block, one compare per block, O(capacity): malloc's blocks are anywhere.
 */
static enum pool_where pool_find(const pool_t *pool, const void *p,
                                 pool_slab_t **slab, size_t *index)
{
    uintptr_t a = (uintptr_t)p;
    size_t n = pool->blocks_per_slab;
    for (pool_slab_t *c = pool->slabs; c != NULL; c = c->next) {
        if (c->blocks == NULL) {
            uintptr_t lo = (uintptr_t)c->first;
            if (a < lo || a - lo >= n * pool->stride)
                continue;
            if ((a - lo) % pool->stride != 0)
                return POOL_NOT_BOUNDARY;
            *slab = c;
            *index = (a - lo) / pool->stride;
            return POOL_IS_BLOCK;
        }
        for (size_t i = 0; i < n; i++) {
            uintptr_t b = (uintptr_t)c->blocks[i];
            if (a == b) {
                *slab = c;
                *index = i;
                return POOL_IS_BLOCK;
            }
            if (a > b && a - b < pool->block_size)
                return POOL_NOT_BOUNDARY;
        }
    }
    return POOL_NOT_OURS;
}

static bool bit_get(const uint64_t *bits, size_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1u;
}

static void bit_put(uint64_t *bits, size_t i, bool on)
{
    uint64_t mask = (uint64_t)1 << (i % 64);
    bits[i / 64] = on ? bits[i / 64] | mask : bits[i / 64] & ~mask;
}

/* ---- The free list ------------------------------------------------------ */

/* Pushes a free block on the head of the list. The link lives in the block,
 * which is no-access to the tools: open it, write it, close it. */
static void pool_push(pool_t *pool, void *ptr)
{
    pool_free_block_t *block = ptr;
    track_mem_undefined(block, sizeof *block);
    block->next = pool->free_head;
    track_mem_noaccess(block, sizeof *block);
    pool->free_head = block;
}

/* The quarantine is a ring of POOL_QUARANTINE slots, oldest at q_first. */
static void *quarantine_take_oldest(pool_t *pool)
{
    void *p = pool->quarantine[pool->q_first];
    pool->q_first = (pool->q_first + 1) % POOL_QUARANTINE;
    pool->q_count--;
    return p;
}

static void quarantine_add(pool_t *pool, void *ptr)
{
    if (pool->q_count == POOL_QUARANTINE) /* full: the oldest moves on */
        pool_push(pool, quarantine_take_oldest(pool));
    pool->quarantine[(pool->q_first + pool->q_count) % POOL_QUARANTINE] = ptr;
    pool->q_count++;
}

/* ---- Creating, growing and ending a pool -------------------------------- */

/*
 * Adds one slab of blocks_per_slab blocks and pushes them all on the free
 * list, the last block first, so that the list hands them out in address
 * order. Costs one mmap (one buffer) or blocks_per_slab + 1 mallocs, and
 * touches every block once to write its link. False if memory ran out.
 */
static bool pool_grow(pool_t *pool)
{
    size_t n = pool->blocks_per_slab, header, bytes;
    if (!slab_layout(pool->block_size, pool->stride, n, pool->flags, &header,
                     &bytes))
        return false; /* cannot happen: pool_create checked it */
    pool_slab_t *c;
    uint64_t *bits;
    if (is_malloc_backed(pool)) {
        c = malloc(bytes);
        if (c == NULL)
            return false;
        c->first = NULL;
        c->blocks = (void **)(c + 1);
        bits = (uint64_t *)(c->blocks + n);
        for (size_t i = 0; i < n; i++) {
            c->blocks[i] = aligned_alloc(POOL_ALIGN, pool->block_size);
            if (c->blocks[i] == NULL) {
                while (i-- > 0)
                    free(c->blocks[i]);
                free(c);
                return false;
            }
            track_mem_noaccess(c->blocks[i], pool->block_size);
        }
        pool->footprint += bytes + n * pool->block_size;
    } else {
        void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
            return false;
        c = mem;
        c->first = (unsigned char *)mem + header;
        c->blocks = NULL;
        bits = (uint64_t *)(c + 1);
        /* Blocks, redzones and slack: no-access until handed out. */
        track_mem_noaccess(c->first, bytes - header);
        pool->footprint += bytes;
    }
    c->live_bits = POOL_CHECKED ? bits : NULL;
    if (c->live_bits)
        memset(c->live_bits, 0, live_bits_bytes(n)); /* all free */
    c->bytes = bytes;
    c->number = pool->slab_count;
    c->next = pool->slabs;
    pool->slabs = c;
    pool->slab_count++;
    pool->capacity += n;
    for (size_t i = n; i-- > 0;)
        pool_push(pool, slab_block(pool, c, i));
    return true;
}

pool_t *pool_create(size_t block_size, size_t blocks_per_slab, unsigned flags)
{
    if ((flags & ~(unsigned)POOL_ALL_FLAGS) != 0 || block_size == 0 ||
        blocks_per_slab == 0) {
        errno = EINVAL;
        return NULL;
    }
    /* A free block holds the link, so it is at least a pointer; rounding to
     * POOL_ALIGN (16) makes it at least 16 here. */
    if (block_size < sizeof(pool_free_block_t))
        block_size = sizeof(pool_free_block_t);
    size_t rounded = round_up(block_size, POOL_ALIGN);
    size_t redzone = (flags & POOL_BACKING_MALLOC_PER_BLOCK) ? 0 : POOL_REDZONE;
    size_t header, bytes;
    if (rounded == 0 || rounded > SIZE_MAX - redzone ||
        !slab_layout(rounded, rounded + redzone, blocks_per_slab, flags,
                     &header, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    pool_t *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    pool->block_size = rounded;
    pool->stride = rounded + redzone;
    pool->blocks_per_slab = blocks_per_slab;
    pool->flags = flags;
    if (!pool_grow(pool)) {
        free(pool);
        errno = ENOMEM;
        return NULL;
    }
    return pool;
}

void pool_destroy(pool_t *pool)
{
    if (pool == NULL)
        return;
    pool_slab_t *c = pool->slabs;
    while (c != NULL) {
        pool_slab_t *next = c->next;
        if (is_malloc_backed(pool)) {
            for (size_t i = 0; i < pool->blocks_per_slab; i++) {
                track_mem_undefined(c->blocks[i], pool->block_size);
                free(c->blocks[i]);
            }
            free(c);
        } else {
#if TRACK_ENABLED
            /* Blocks still in use die here: tell the tool, or Valgrind would
             * report them as leaked although the pool freed them. */
            for (size_t i = 0; i < pool->blocks_per_slab; i++)
                if (bit_get(c->live_bits, i))
                    track_free(slab_block(pool, c, i), pool->block_size, 0);
#endif
            size_t bytes = c->bytes;
            /* ASan keeps the poison of unmapped memory: clear it first. */
            track_mem_undefined(c, bytes);
            munmap(c, bytes);
        }
        c = next;
    }
    free(pool);
}

/* ---- Allocating: the fast path, then the slow path ---------------------- */

static void *pool_alloc_slow(pool_t *pool);
static void pool_set_live(pool_t *pool, void *block, bool live);

void *pool_alloc(pool_t *pool)
{
    /* 1. The head of the free list, or the slow path if there is none. */
    pool_free_block_t *block = pool->free_head;
    if (block == NULL)
        return pool_alloc_slow(pool);
    /* 2. Pop it: the new head is the link stored in the block. */
    track_mem_defined(block, sizeof *block);
    pool->free_head = block->next;
    track_mem_noaccess(block, sizeof *block);
    pool->live++;
    if (POOL_CHECKED)
        pool_set_live(pool, block, true);
    /* 3. Hand it out: accessible, contents undefined (the old link too). */
    track_fill_fresh(block, pool->block_size);
    if (is_malloc_backed(pool))
        track_mem_undefined(block, pool->block_size);
    else
        track_malloc(block, pool->block_size, 0, 0);
    return block;
}

/*
 * The slow path, taken when the free list is empty: about once per
 * blocks_per_slab allocations in a growing pool. Refills the free list, then
 * takes the fast path again; NULL with errno = ENOMEM if it cannot.
 */
POOL_NOINLINE static void *pool_alloc_slow(pool_t *pool)
{
    /* Blocks held back are free too: reuse the oldest before growing, so
     * that a checked build needs no more memory than a release build. */
    if (POOL_CHECKED && pool->q_count > 0)
        pool_push(pool, quarantine_take_oldest(pool));
    else if ((pool->flags & POOL_FIXED) || !pool_grow(pool)) {
        errno = ENOMEM;
        return NULL;
    }
    return pool_alloc(pool);
}

/* Sets the live bit of `block`, a block of the pool. Checked builds only:
 * O(slabs), or O(capacity) with malloc per block. */
static void pool_set_live(pool_t *pool, void *block, bool live)
{
    pool_slab_t *c = NULL;
    size_t i = 0;
    if (pool_find(pool, block, &c, &i) == POOL_IS_BLOCK)
        bit_put(c->live_bits, i, live);
}

/* ---- Freeing: the fast path, then the checks of checked builds ---------- */

static void pool_free_checked(pool_t *pool, void *ptr);

void pool_free(pool_t *pool, void *ptr)
{
    if (ptr == NULL)
        return;
    /* 1. Checks. These two cost a mask and a compare, so every build makes
     *    them: no block starts off POOL_ALIGN, and the head of the free list
     *    was freed last (freeing it again is the commonest double free).
     *    Checked builds make the thorough ones first. */
    if ((uintptr_t)ptr % POOL_ALIGN != 0)
        pool_misuse("pool_free", ptr, "pointer not at a block boundary");
    if (POOL_CHECKED)
        pool_free_checked(pool, ptr);
    if (ptr == (void *)pool->free_head)
        pool_misuse("pool_free", ptr, "double free");

    /* 2. The block is dead: the tools report any access from now on. */
    if (is_malloc_backed(pool))
        track_mem_noaccess(ptr, pool->block_size);
    else
        track_free(ptr, pool->block_size, 0);
    track_fill_freed(ptr, pool->block_size);
    pool->live--;

    /* 3. Push it on the free list (a checked build holds it back first). */
    if (POOL_CHECKED && !(pool->flags & POOL_NO_QUARANTINE))
        quarantine_add(pool, ptr);
    else
        pool_push(pool, ptr);
}

/*
 * The checks a checked build adds to pool_free: is `ptr` a block of this
 * pool, at its start, and live? Then marks it free. O(slabs) with one
 * buffer, O(capacity) with malloc per block; the live bits cost one bit of
 * memory per block.
 */
static void pool_free_checked(pool_t *pool, void *ptr)
{
    pool_slab_t *c = NULL;
    size_t i = 0;
    switch (pool_find(pool, ptr, &c, &i)) {
    case POOL_NOT_OURS:
        pool_misuse("pool_free", ptr, "pointer not from this pool");
    case POOL_NOT_BOUNDARY:
        pool_misuse("pool_free", ptr, "pointer not at a block boundary");
    case POOL_IS_BLOCK:
        break;
    }
    if (!bit_get(c->live_bits, i))
        pool_misuse("pool_free", ptr, "double free");
    bit_put(c->live_bits, i, false);
}

/* ---- Looking inside ----------------------------------------------------- */

pool_stats_t pool_stats(const pool_t *pool)
{
    pool_stats_t s = {
        .block_size = pool->block_size,
        .stride = pool->stride,
        .blocks_per_slab = pool->blocks_per_slab,
        .slabs = pool->slab_count,
        .capacity = pool->capacity,
        .live = pool->live,
        .free = pool_free_count(pool),
        .quarantined = pool->q_count,
        .footprint = pool->footprint,
        .overhead = pool->footprint - pool->capacity * pool->block_size,
    };
    return s;
}

static bool check_failed(const pool_t *pool, const char *what,
                         const void *where)
{
    fprintf(stderr, STAGE ": pool_check(%p): %s (at %p)\n", (const void *)pool,
            what, where);
    return false;
}

/* Reads the link of a free block, opening it to the tools for the read. */
static pool_free_block_t *link_of(const pool_free_block_t *block)
{
    track_mem_defined(block, sizeof *block);
    pool_free_block_t *next = block->next;
    track_mem_noaccess(block, sizeof *block);
    return next;
}

/* Is `p` a free block of the pool: a block, at its start, not live? */
static bool is_free_block(const pool_t *pool, const void *p)
{
    pool_slab_t *c = NULL;
    size_t i = 0;
    if (pool_find(pool, p, &c, &i) != POOL_IS_BLOCK)
        return false;
    return c->live_bits == NULL || !bit_get(c->live_bits, i);
}

/*
 * The invariants of pool.h, in the order that makes each step safe: the
 * counters, the slab list, then the free list, whose every node is proved
 * to be a free block of the pool before its link is read (a corrupted link
 * must not make the checker itself crash). A cycle shows as a list longer
 * than it should be: a bounded walk needs no second pointer (Floyd's)
 * because the length is known. O(free * slabs); malloc per block,
 * O(free * capacity).
 */
bool pool_check(const pool_t *pool)
{
    if (pool == NULL)
        return check_failed(pool, "no pool", NULL);
    /* 1. Sizes and counters. */
    if (pool->block_size < sizeof(pool_free_block_t) ||
        pool->block_size % POOL_ALIGN != 0 || pool->stride < pool->block_size ||
        pool->stride % POOL_ALIGN != 0)
        return check_failed(pool, "bad block size or stride", NULL);
    if (pool->q_count > (POOL_CHECKED ? POOL_QUARANTINE : 0) ||
        pool->q_first >= POOL_QUARANTINE)
        return check_failed(pool, "bad quarantine count", NULL);
    if (pool->live > pool->capacity ||
        pool->q_count > pool->capacity - pool->live)
        return check_failed(pool, "quarantined + live > capacity", NULL);
    if (pool->capacity != pool->slab_count * pool->blocks_per_slab ||
        ((pool->flags & POOL_FIXED) && pool->slab_count != 1))
        return check_failed(pool, "capacity does not match the slabs", NULL);

    /* 2. The slab list: slab_count slabs, numbered newest first. */
    size_t k = 0;
    const pool_slab_t *c = pool->slabs;
    for (; c != NULL && k < pool->slab_count; c = c->next, k++)
        if (c->number != pool->slab_count - 1 - k ||
            (c->blocks == NULL) == is_malloc_backed(pool) ||
            (c->live_bits == NULL) == POOL_CHECKED)
            return check_failed(pool, "slab list damaged", c);
    if (c != NULL || k != pool->slab_count)
        return check_failed(pool, "slab list length != slab_count", c);

    /* 3. The free list: every other block, each a free block, then NULL. */
    size_t free_count = pool_free_count(pool);
    size_t seen = 0;
    for (const pool_free_block_t *b = pool->free_head; b != NULL;
         b = link_of(b), seen++) {
        if (seen == free_count)
            return check_failed(
                pool,
                "free list longer than capacity - live - quarantined "
                "(a cycle?)",
                b);
        if (!is_free_block(pool, b))
            return check_failed(pool,
                                "free-list node is not a free block "
                                "of this pool",
                                b);
    }
    if (seen != free_count)
        return check_failed(
            pool, "free list shorter than capacity - live - quarantined", NULL);

    /* 4. Quarantined blocks are free blocks, and not on the free list too.
     *    With the counts above, every free block is then in exactly one
     *    place: none is lost, none handed out twice. */
    for (size_t q = 0; q < pool->q_count; q++) {
        const void *p = pool->quarantine[(pool->q_first + q) % POOL_QUARANTINE];
        if (!is_free_block(pool, p))
            return check_failed(pool, "quarantined block is not a free block",
                                p);
        for (const pool_free_block_t *b = pool->free_head; b != NULL;
             b = link_of(b))
            if ((const void *)b == p)
                return check_failed(pool, "block both quarantined and free", p);
    }

    /* 5. Checked builds: the live bits count the live blocks. */
    if (POOL_CHECKED) {
        size_t set = 0;
        for (c = pool->slabs; c != NULL; c = c->next)
            for (size_t i = 0; i < pool->blocks_per_slab; i++)
                set += bit_get(c->live_bits, i);
        if (set != pool->live)
            return check_failed(pool, "live bits do not count live blocks",
                                NULL);
    }
    return true;
}

/* ---- Drawing ------------------------------------------------------------ */

#define DUMP_ROW  64 /* cells per row */
#define DUMP_LIST 16 /* free-list entries written out */

static const char dump_order[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* The number and index of a block, for the free-list line: "s1.5". */
static void dump_name(const pool_t *pool, const void *p, FILE *out)
{
    pool_slab_t *c = NULL;
    size_t i = 0;
    if (pool_find(pool, p, &c, &i) == POOL_IS_BLOCK)
        fprintf(out, "s%zu.%zu", c->number, i);
    else
        fprintf(out, "%p?", p);
}

/*
 * One row of cells per DUMP_ROW blocks of each slab, oldest slab first:
 *
 *   #  live (handed out)      q  freed, held in the quarantine
 *   0-9, a-z  free: its place on the free list (0 is handed out next)
 *   .  free, further down the list than z
 *
 * then the free list itself. Meant for small pools: it draws every block.
 */
void pool_dump(const pool_t *pool, FILE *out)
{
    fprintf(out, "pool %p: %zu-B blocks (stride %zu), %zu per slab, %s, %s\n",
            (const void *)pool, pool->block_size, pool->stride,
            pool->blocks_per_slab,
            (pool->flags & POOL_FIXED) ? "fixed" : "grows",
            is_malloc_backed(pool) ? "a malloc per block"
                                   : "a buffer (mmap) per slab");
    fprintf(out,
            "  %zu slab%s, %zu blocks: %zu live, %zu free, %zu quarantined; "
            "footprint %zu B\n",
            pool->slab_count, pool->slab_count == 1 ? "" : "s", pool->capacity,
            pool->live, pool_free_count(pool), pool->q_count, pool->footprint);

    /* cell[number * blocks_per_slab + index]: what to draw for a block */
    char *cell = malloc(pool->capacity ? pool->capacity : 1);
    const pool_slab_t **by_number =
        calloc(pool->slab_count + 1, sizeof(const pool_slab_t *));
    if (cell == NULL || by_number == NULL) {
        fprintf(out, "  (no memory to draw the slabs)\n");
        free(cell);
        free(by_number);
        return;
    }
    memset(cell, '#', pool->capacity);
    size_t pos = 0;
    for (const pool_free_block_t *b = pool->free_head;
         b != NULL && pos <= pool_free_count(pool); b = link_of(b), pos++) {
        pool_slab_t *c = NULL;
        size_t i = 0;
        if (pool_find(pool, b, &c, &i) == POOL_IS_BLOCK)
            cell[c->number * pool->blocks_per_slab + i] =
                (char)(pos < sizeof dump_order - 1 ? dump_order[pos] : '.');
    }
    for (size_t q = 0; q < pool->q_count; q++) {
        pool_slab_t *c = NULL;
        size_t i = 0;
        const void *p = pool->quarantine[(pool->q_first + q) % POOL_QUARANTINE];
        if (pool_find(pool, p, &c, &i) == POOL_IS_BLOCK)
            cell[c->number * pool->blocks_per_slab + i] = 'q';
    }
    for (const pool_slab_t *c = pool->slabs; c != NULL; c = c->next)
        if (c->number < pool->slab_count)
            by_number[c->number] = c;

    for (size_t k = 0; k < pool->slab_count; k++) {
        const pool_slab_t *c = by_number[k];
        if (c == NULL)
            continue; /* a damaged pool: pool_check() says more */
        if (c->blocks == NULL)
            fprintf(out, "  slab %zu at %p, blocks from %p:\n", k,
                    (const void *)c, (void *)c->first);
        else
            fprintf(out,
                    "  slab %zu (record %p), blocks anywhere malloc "
                    "put them:\n",
                    k, (const void *)c);
        const char *row = cell + k * pool->blocks_per_slab;
        for (size_t i = 0; i < pool->blocks_per_slab; i += DUMP_ROW) {
            size_t len = pool->blocks_per_slab - i;
            fprintf(out, "    |%.*s|\n", (int)(len < DUMP_ROW ? len : DUMP_ROW),
                    row + i);
        }
    }

    fprintf(out, "  free list:");
    pos = 0;
    for (const pool_free_block_t *b = pool->free_head; b != NULL;
         b = link_of(b), pos++) {
        if (pos == DUMP_LIST) {
            fprintf(out, " -> ... (%zu more)", pool_free_count(pool) - pos);
            break;
        }
        fprintf(out, pos ? " -> " : " ");
        dump_name(pool, b, out);
    }
    fprintf(out, "%s\n", pos < DUMP_LIST ? (pos ? " -> NULL" : " NULL") : "");
    fprintf(out, "  (# live, 0-9a-z free in list order, . free further "
                 "down, q quarantined)\n");
    free(cell);
    free(by_number);
}
