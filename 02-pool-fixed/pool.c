/*
 * pool.c: a fixed-size pool allocator, with the free list threaded through
 * the free blocks themselves.
 *
 * Every block of a pool has the same size, fixed when the pool is created,
 * so any free block can serve any request: there is nothing to search for.
 * The pool gets its memory a slab at a time: blocks_per_slab blocks cut from
 * one mmap. A free block's first 8 bytes hold the address of the next free
 * block (xv6's `struct run`), so the list of free blocks costs no memory of
 * its own, and the pool keeps only its head.
 *
 *   1. Create: round the block size up to POOL_ALIGN (16: a free block must
 *      hold the 8-byte link, and every block must start aligned), and get
 *      the first slab (step 3's growth).
 *   2. Alloc, the fast path: pop the head of the free list,
 *      block = head; head = block->next.
 *   3. Alloc, the slow path, when the list is empty: a checked build first
 *      takes the oldest block out of its quarantine; otherwise a growing
 *      pool maps one more slab and pushes its blocks, the last one first, so
 *      that they come out in address order; a fixed pool, or a failed mmap,
 *      returns NULL with errno = ENOMEM.
 *   4. Free: check the pointer (two cheap checks in every build, the rest in
 *      checked builds), then push the block on the head of the list,
 *      block->next = head; head = block. A checked build parks it in a small
 *      quarantine first, so that a use after free meets a dead block for a
 *      while instead of someone else's live data.
 *   5. Destroy: unmap every slab; blocks still live die with the pool.
 *
 * Costs: in release builds alloc and free are O(1) and make no system call,
 * a pop and a push and one counter (7 and 14 instructions, README). The
 * slow path runs once per blocks_per_slab allocations of a growing pool:
 * one mmap, and one link written in every new block. Checked builds add to
 * alloc and free a search of the slabs, O(slabs). Memory: the pool keeps no
 * per-block state in release builds; a slab costs its header and the rest of
 * its last page; inside a block, an object smaller than the block wastes
 * the difference (internal fragmentation: a 20-byte object in a 32-byte
 * block wastes 12). The list is LIFO: the block freed last is handed out
 * next, while it is still in the cache.
 *
 * Left out on purpose: more than one size (stage 03 keeps one pool per size
 * class; stage 04 serves any size from one heap); giving a slab back before
 * pool_destroy (stage 03 unmaps a page whose blocks are all free); finding
 * a block's slab in O(1) (stage 03's slabs are single aligned pages, found
 * by masking the address); threads (one pool per thread; stages 05 and 07
 * add locks and per-thread caches).
 *
 * The pool's first version took every block from malloc: it is kept, to be
 * compared, in pool_per_block.c (POOL_BACKING_MALLOC_PER_BLOCK). pool_check()
 * and pool_dump() are in pool_check.c.
 *
 * Layout of one slab, one mmap of whole pages:
 *
 * <diagram slab>
 * page-aligned                first
 * |                           |
 * [ slab header | live bits ] [ b0 ][rz][ b1 ][rz] ... [ bN-1 ][rz] slack |
 *   next, number,  checked     <--stride-->                        page end
 *   bytes, first,  builds
 *   blocks,        only
 *   live_bits
 *
 * b0..bN-1  blocks of block_size bytes, each 16-byte aligned: block i
 *           starts at first + i * stride
 * rz        a 16-byte redzone after every block, annotated builds only:
 *           never handed out and always no-access, so that writing past
 *           a block is reported even when the next block is live
 *           (stride = block_size + 16 there, block_size elsewhere)
 * slack     the rest of the last page, unused (exercise 3 fills it)
 * </diagram>
 *
 * A free block and a live block are the same bytes, seen differently:
 *
 * <diagram block>
 * free:  [ next | ....... unused ....... ]   next: the next free block
 * live:  [ ........ caller's data ...... ]   the caller owns every byte
 * </diagram>
 *
 * Memory-tool annotations (annotated builds): a block handed out is a
 * Valgrind MALLOCLIKE block (ASan: unpoisoned), a freed one FREELIKE
 * (poisoned); everything else in a slab is no-access, and the link inside a
 * free block is opened for each read or write and closed after.
 */
#include "pool_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- The state ------------------------------------------------------------
 *
 * A pool is a pool_t (pool.h: every field commented there, public so that a
 * debugger can print it) and its slabs, each a struct pool_slab: the slab
 * header drawn above (pool_internal.h, since pool_check.c reads it too).
 * Between calls, pool_check() proves these:
 *
 *   block_size >= 8 (the link) and block_size % 16 == 0, so at least 16;
 *       stride == block_size + the redzone (16 bytes with one buffer per
 *       slab in annotated builds, else 0), so stride % 16 == 0 too
 *   capacity == slab_count * blocks_per_slab        (a fixed pool: 1 slab)
 *   the slab list holds slab_count slabs, numbered slab_count-1 .. 0
 *   free + quarantined + live == capacity, where free is the length of the
 *       free list, which ends in NULL, and each of its nodes is the start
 *       of a block of one of the slabs
 *   checked builds: bit i of a slab's live bits is set iff its block i was
 *       handed out and not freed since, so the set bits number `live`; no
 *       block on the free list or in the quarantine is live, none is in
 *       both, and none is in two slots of the quarantine: each free block
 *       is in exactly one place
 */

/* The slow paths stay out of line, so that the fast paths around them need
 * no stack frame: a few instructions fewer on every call (GCC and clang). */
#if defined(__GNUC__)
#define POOL_NOINLINE __attribute__((noinline))
#else
#define POOL_NOINLINE
#endif

/* The file reads top to bottom, the fast path first and what it calls
 * further down, so the static functions used before their definitions are
 * declared here, all of them, in the order in which they are defined. */
static void *pool_alloc_slow(pool_t *pool);
static bool pool_grow(pool_t *pool);
static pool_slab_t *slab_map(const pool_t *pool, size_t *footprint);
static void pool_free_checked(pool_t *pool, void *ptr);
static void pool_push(pool_t *pool, void *block);
static void *quarantine_take_oldest(pool_t *pool);
static void quarantine_add(pool_t *pool, void *ptr);
static unsigned char *slab_block(const pool_t *pool, const pool_slab_t *slab,
                                 size_t i);
static void bit_put(uint64_t *bits, size_t i, bool on);
static void pool_set_live(pool_t *pool, void *block, bool live);
static size_t round_up(size_t x, size_t to);
_Noreturn static void pool_misuse(const char *func, const void *ptr,
                                  const char *what);

/* ---- Allocating: the fast path ------------------------------------------- */

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

/* ---- Allocating: the slow path ------------------------------------------- */

/*
 * Taken when the free list is empty: about once per blocks_per_slab
 * allocations in a growing pool. Refills the list, then takes the fast path
 * again; NULL with errno = ENOMEM if it cannot.
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

/*
 * Adds one slab of blocks_per_slab blocks and pushes them all on the free
 * list, the last block first, so that the list hands them out in address
 * order. Costs one mmap (or, malloc per block, n + 1 mallocs) and touches
 * every block once to write its link. False, the pool unchanged, if the
 * memory is not there.
 */
static bool pool_grow(pool_t *pool)
{
    size_t n = pool->blocks_per_slab, footprint = 0;
    pool_slab_t *slab = is_malloc_backed(pool)
                            ? per_block_slab_new(pool, &footprint)
                            : slab_map(pool, &footprint);
    if (slab == NULL)
        return false;
    if (slab->live_bits != NULL)
        memset(slab->live_bits, 0, live_bits_bytes(n)); /* all free */
    slab->number = pool->slab_count++;
    slab->next = pool->slabs;
    pool->slabs = slab;
    pool->capacity += n;
    pool->footprint += footprint;
    for (size_t i = n; i-- > 0;)
        pool_push(pool, slab_block(pool, slab, i));
    return true;
}

/*
 * The shape of a slab: `header` bytes (the record and the live bits,
 * rounded to POOL_ALIGN), then nblocks blocks `stride` apart, `bytes` in
 * all, whole pages. pool_create() calls it to refuse sizes that overflow,
 * so pool_grow() can trust it. False on overflow.
 */
static bool slab_layout(size_t stride, size_t nblocks, size_t *header,
                        size_t *bytes)
{
    *header =
        round_up(sizeof(pool_slab_t) + live_bits_bytes(nblocks), POOL_ALIGN);
    if (nblocks > (SIZE_MAX - *header) / stride)
        return false;
    *bytes =
        round_up(*header + nblocks * stride, (size_t)sysconf(_SC_PAGESIZE));
    return *bytes != 0;
}

/* A new slab: one anonymous mapping, its header at the start, the blocks
 * after it, all of them no-access to the tools until handed out. The
 * caller links it in. NULL if mmap says no. */
static pool_slab_t *slab_map(const pool_t *pool, size_t *footprint)
{
    size_t header = 0, bytes = 0;
    if (!slab_layout(pool->stride, pool->blocks_per_slab, &header, &bytes))
        return NULL; /* cannot happen: pool_create checked it */
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    pool_slab_t *slab = mem;
    slab->bytes = bytes;
    slab->first = (unsigned char *)mem + header;
    slab->blocks = NULL;
    slab->live_bits = POOL_CHECKED ? (uint64_t *)(slab + 1) : NULL;
    /* Blocks, redzones and slack: no-access until handed out. */
    track_mem_noaccess(slab->first, bytes - header);
    *footprint = bytes;
    return slab;
}

/* ---- Freeing ------------------------------------------------------------- */

/*
 * pool_free leaves errno alone without saving it: nothing it does can set
 * errno (no system call, no library call; a misuse report does not return).
 * A pool_free that gives a slab back (exercise 6) calls munmap, which can
 * fail and set errno: it must then save errno first and restore it, as
 * pool_destroy does.
 */
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
    pool_slab_t *slab = NULL;
    size_t i = 0;
    switch (pool_find(pool, ptr, &slab, &i)) {
    case POOL_NOT_OURS:
        pool_misuse("pool_free", ptr, "pointer not from this pool");
    case POOL_NOT_BOUNDARY:
        pool_misuse("pool_free", ptr, "pointer not at a block boundary");
    case POOL_IS_BLOCK:
        break;
    }
    if (!bit_get(slab->live_bits, i))
        pool_misuse("pool_free", ptr, "double free");
    bit_put(slab->live_bits, i, false);
}

/* Pushes a free block on the head of the list. The link lives in the block,
 * which is no-access to the tools: open it, write it, close it. */
static void pool_push(pool_t *pool, void *block)
{
    pool_free_block_t *b = block;
    track_mem_undefined(b, sizeof *b);
    b->next = pool->free_head;
    track_mem_noaccess(b, sizeof *b);
    pool->free_head = b;
}

/* The quarantine (checked builds): a ring of POOL_QUARANTINE slots, the
 * oldest at q_first. A block enters when freed and moves to the free list
 * when POOL_QUARANTINE later frees have pushed it out, or when the free
 * list is empty (pool_alloc_slow). */
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

/* ---- Creating and destroying a pool -------------------------------------- */

#define POOL_ALL_FLAGS                                                         \
    (POOL_FIXED | POOL_BACKING_MALLOC_PER_BLOCK | POOL_NO_QUARANTINE)

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
    bool per_block = (flags & POOL_BACKING_MALLOC_PER_BLOCK) != 0;
    size_t redzone = per_block ? 0 : POOL_REDZONE;
    size_t header = 0, bytes = 0;
    if (rounded == 0 || rounded > SIZE_MAX - redzone ||
        !(per_block ? per_block_layout(rounded, blocks_per_slab, &bytes)
                    : slab_layout(rounded + redzone, blocks_per_slab, &header,
                                  &bytes))) {
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

/*
 * munmap can fail and then sets errno (ENOMEM when the unmap would need a
 * mapping beyond the limit on their number, EINVAL for a bad range). A
 * free-like function leaves errno as it found it, so the caller's errno is
 * saved first and put back last, whatever munmap did. A slab that could not
 * be unmapped stays mapped: it is lost, and nothing better can be done.
 */
void pool_destroy(pool_t *pool)
{
    if (pool == NULL)
        return;
    int saved_errno = errno;
    pool_slab_t *slab = pool->slabs;
    while (slab != NULL) {
        pool_slab_t *next = slab->next;
        if (is_malloc_backed(pool)) {
            per_block_slab_free(pool, slab);
        } else {
#if TRACK_ENABLED
            /* Blocks still in use die here: tell the tool, or Valgrind would
             * report them as leaked although the pool freed them. */
            for (size_t i = 0; i < pool->blocks_per_slab; i++)
                if (bit_get(slab->live_bits, i))
                    track_free(slab_block(pool, slab, i), pool->block_size, 0);
#endif
            size_t bytes = slab->bytes;
            /* ASan keeps the poison of unmapped memory: clear it first. */
            track_mem_undefined(slab, bytes);
            (void)munmap(slab, bytes);
        }
        slab = next;
    }
    free(pool);
    errno = saved_errno;
}

/* ---- Finding a block ----------------------------------------------------- */

static unsigned char *slab_block(const pool_t *pool, const pool_slab_t *slab,
                                 size_t i)
{
    return slab->blocks ? (unsigned char *)slab->blocks[i]
                        : slab->first + i * pool->stride;
}

/*
 * See pool_internal.h. Addresses are compared as integers: comparing
 * pointers into different objects with < is undefined in C. One buffer: one
 * range compare per slab, O(slabs); malloc per block: one compare per
 * block, O(capacity), since malloc's blocks are anywhere.
 */
enum pool_where pool_find(const pool_t *pool, const void *p, pool_slab_t **slab,
                          size_t *index)
{
    uintptr_t a = (uintptr_t)p;
    for (pool_slab_t *s = pool->slabs; s != NULL; s = s->next) {
        enum pool_where where;
        if (s->blocks != NULL) {
            where = per_block_find(pool, s, a, index);
        } else {
            uintptr_t lo = (uintptr_t)s->first;
            if (a < lo || a - lo >= pool->blocks_per_slab * pool->stride)
                continue;
            where = (a - lo) % pool->stride != 0 ? POOL_NOT_BOUNDARY
                                                 : POOL_IS_BLOCK;
            *index = (a - lo) / pool->stride;
        }
        if (where != POOL_NOT_OURS) {
            *slab = s;
            return where;
        }
    }
    return POOL_NOT_OURS;
}

static void bit_put(uint64_t *bits, size_t i, bool on)
{
    uint64_t mask = (uint64_t)1 << (i % 64);
    bits[i / 64] = on ? bits[i / 64] | mask : bits[i / 64] & ~mask;
}

/* Sets or clears the live bit of `block`, a block of the pool. Checked
 * builds only: O(slabs), or O(capacity) with malloc per block. */
static void pool_set_live(pool_t *pool, void *block, bool live)
{
    pool_slab_t *slab = NULL;
    size_t i = 0;
    if (pool_find(pool, block, &slab, &i) == POOL_IS_BLOCK)
        bit_put(slab->live_bits, i, live);
}

/* ---- The rest ------------------------------------------------------------ */

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

/* x rounded up to a multiple of `to` (a power of two); 0 if that overflows.
 * Callers pass x > 0, so 0 only ever means overflow. */
static size_t round_up(size_t x, size_t to)
{
    if (x > SIZE_MAX - (to - 1))
        return 0;
    return (x + to - 1) & ~(to - 1);
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
