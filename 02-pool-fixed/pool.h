/*
 * pool.h: a fixed-size pool allocator. Blocks of one size, chosen when the
 * pool is created, handed out and taken back one by one in O(1).
 *
 * The free blocks hold the free list themselves: the first bytes of a free
 * block are the link to the next free block, so remembering what is free
 * costs no memory beyond the blocks. When every block is in use the pool
 * grows by another slab of blocks, or, if it was created fixed, says ENOMEM.
 * See pool.c for the algorithm and the memory layout.
 *
 * Not thread-safe: one pool belongs to one thread at a time.
 */
#ifndef POOL_H
#define POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Every block starts on a multiple of this: enough for any C object
 * (alignof(max_align_t) on x86-64), and what ASan's granules need. */
#define POOL_ALIGN 16

/* How many freed blocks a checked build holds back before reusing them. */
#define POOL_QUARANTINE 8

/* pool_create() flags, or'ed together. 0 is: grow, one buffer per slab. */
enum pool_flags {
    POOL_GROW = 0,        /* when every block is in use, add a slab */
    POOL_FIXED = 1u << 0, /* when every block is in use, NULL with ENOMEM */

    /* The default: each slab is one buffer from mmap, cut into blocks.
     * Ownership is a range check; the blocks are contiguous. */
    POOL_BACKING_ONE_BUFFER = 0,
    /* The pool's first version: each block is its own malloc. Kept to be
     * compared (README, bench); pool_per_block.c says what it costs. */
    POOL_BACKING_MALLOC_PER_BLOCK = 1u << 1,

    /* Checked builds only: reuse a freed block at once, as release builds
     * do, instead of holding it in the quarantine (for demos and tests of
     * the reuse order). No effect in release builds. */
    POOL_NO_QUARANTINE = 1u << 2,
};

/* A slab's record: private (pool_internal.h), drawn by pool_dump(). */
typedef struct pool_slab pool_slab_t;

/* A free block, as the free list sees it: its first bytes are the link. */
typedef struct pool_free_block {
    struct pool_free_block *next; /* the next free block, or NULL */
} pool_free_block_t;

/*
 * A pool. Fields are public so that a student can print them in a debugger
 * (and a test can break a copy), but only the pool_* functions change them.
 * Their invariants are written at the top of pool.c; pool_check() verifies
 * them.
 */
typedef struct pool {
    size_t block_size;      /* bytes a caller may use: the size asked for,
                               rounded up to POOL_ALIGN (so at least 16:
                               room for the 8-byte link, aligned) */
    size_t stride;          /* bytes from one block's start to the next:
                               block_size, plus a 16-byte redzone in
                               annotated builds (one-buffer backing) */
    size_t blocks_per_slab; /* blocks in each slab: what one growth adds */
    unsigned flags;         /* enum pool_flags */

    pool_free_block_t *free_head; /* the free list: the next block to hand
                                     out, or NULL when none is free */
    size_t live;                  /* blocks handed out and not freed (the
                                     free list's length is not kept: it is
                                     capacity - live - q_count) */
    size_t capacity;              /* blocks in all slabs */
    size_t slab_count;            /* slabs obtained so far */
    size_t footprint;             /* bytes obtained from the OS (mmap) or
                                     from malloc, bookkeeping included */
    pool_slab_t *slabs;           /* every slab, newest first */

    /* Checked builds: recently freed blocks, not yet on the free list, in
     * the order they were freed (a ring: the oldest at q_first). */
    void *quarantine[POOL_QUARANTINE];
    size_t q_first, q_count;
} pool_t;

typedef struct pool_stats {
    size_t block_size;      /* usable bytes per block */
    size_t stride;          /* bytes per block, redzone included */
    size_t blocks_per_slab; /* blocks in each slab */
    size_t slabs;           /* slabs obtained */
    size_t capacity;        /* blocks in all slabs */
    size_t live;            /* blocks in use */
    size_t free;            /* blocks on the free list */
    size_t quarantined;     /* blocks freed but held back (checked builds) */
    size_t footprint;       /* bytes held from the OS or malloc */
    size_t overhead;        /* footprint - capacity * block_size: slab
                               headers, page rounding, redzones, records */
} pool_stats_t;

/*
 * A new pool of blocks of at least `block_size` bytes, growing by
 * `blocks_per_slab` blocks at a time (a fixed pool: exactly that many
 * blocks, ever). The first slab is obtained at once. Returns NULL with
 * errno = EINVAL if block_size or blocks_per_slab is 0 or flags has an
 * unknown bit, ENOMEM if the sizes overflow or the memory is not there.
 */
pool_t *pool_create(size_t block_size, size_t blocks_per_slab, unsigned flags);

/* Gives every slab back (blocks still in use die with it), leaving errno
 * as it was, even when the OS refuses to take memory back. NULL: no-op. */
void pool_destroy(pool_t *pool);

/*
 * A block of pool->block_size bytes aligned to POOL_ALIGN, contents
 * undefined. NULL with errno = ENOMEM when a fixed pool is full or growing
 * failed. O(1), plus a slab's setup when the pool grows.
 */
void *pool_alloc(pool_t *pool);

/*
 * Gives a block back; errno is left as it was. NULL: no-op. A pointer that
 * is not a live block of this pool is a caller bug: reported and the
 * program stops, when the build can see it (see the README's misuse
 * table). O(1) in release builds.
 */
void pool_free(pool_t *pool, void *ptr);

/* The figures of the pool now (see pool_stats_t). O(1). */
pool_stats_t pool_stats(const pool_t *pool);

/* True when the invariants of pool.c hold; otherwise false, and says which
 * one failed on stderr. Reads the pool, never changes it. */
bool pool_check(const pool_t *pool);

/* Draws every slab, block by block, and the order of the free list. Reads
 * the pool, never changes it. */
void pool_dump(const pool_t *pool, FILE *out);

#endif /* POOL_H */
