/*
 * pool_internal.h: what pool.c shares with pool_check.c and pool_per_block.c:
 * which build this is, a slab's record, and the few small helpers that all
 * three use. Not part of the API (pool.h): only test_pool.c includes it
 * besides them, to damage a slab's live bits on purpose.
 */
#ifndef POOL_INTERNAL_H
#define POOL_INTERNAL_H

#include "pool.h"

#include "annotate.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAGE "02-pool-fixed"

/*
 * A checked build is one compiled with -DALLOC_DEBUG (build/debug,
 * build/valgrind, build/asan): it keeps a live bit per block, to catch
 * every double free and so that pool_destroy can tell a memory tool which
 * blocks die with the pool, and a quarantine. An annotated build (Valgrind
 * client requests or ASan poisoning, TRACK_ENABLED) is a checked build that
 * also tells the tool about the blocks; a tool build without ALLOC_DEBUG
 * would leave the tool without the live bits, so it is refused.
 */
#if defined(ALLOC_DEBUG)
#define POOL_CHECKED 1
#else
#define POOL_CHECKED 0
#endif
#if TRACK_ENABLED && !POOL_CHECKED
#error                                                                         \
    "02-pool-fixed: an annotated build must be a checked build: add -DALLOC_DEBUG"
#endif

/* Bytes left unused after every one-buffer block in annotated builds, so
 * that writing past a block lands in no-access memory even when the next
 * block is live. 16 keeps every block 16-byte aligned (ASan's granules). */
#define POOL_REDZONE (TRACK_ENABLED ? 16u : 0u)

/*
 * A slab: blocks_per_slab blocks obtained at once, and what the pool knows
 * about them. One buffer (the default): the record is the slab's header, at
 * the start of its own mapping (pool.c draws it). Malloc per block: the
 * record is a malloc of its own, and the blocks are anywhere
 * (pool_per_block.c draws it).
 */
struct pool_slab {
    pool_slab_t *next;    /* the slab obtained before this one, or NULL */
    size_t number;        /* 0 for the first slab obtained, then 1, 2...:
                             pool_dump's "s1.5" is block 5 of slab 1 */
    size_t bytes;         /* one buffer: bytes of the mapping, whole pages;
                             malloc per block: bytes of this record */
    unsigned char *first; /* one buffer: block 0; block i starts at
                             first + i * stride. NULL for malloc per block */
    void **blocks;        /* malloc per block: block i's address, an array
                             inside this record. NULL for one buffer */
    uint64_t *live_bits;  /* checked builds: bit i set iff block i is
                             handed out and not freed since. NULL in release
                             builds, which keep no per-block state at all */
};

/* Where a pointer is, as pool_find() says. */
enum pool_where { POOL_IS_BLOCK, POOL_NOT_OURS, POOL_NOT_BOUNDARY };

/*
 * In pool.c: where `p` is: the start of block *index of slab *slab, inside
 * a block (or its redzone) but not at its start, or not in the pool at all.
 * O(slabs) with one buffer; O(capacity) with malloc per block.
 */
enum pool_where pool_find(const pool_t *pool, const void *p, pool_slab_t **slab,
                          size_t *index);

/* In pool_per_block.c: the first version's backing (see there). */
bool per_block_layout(size_t block_size, size_t nblocks, size_t *bytes);
pool_slab_t *per_block_slab_new(const pool_t *pool, size_t *footprint);
void per_block_slab_free(const pool_t *pool, pool_slab_t *slab);
enum pool_where per_block_find(const pool_t *pool, const pool_slab_t *slab,
                               uintptr_t addr, size_t *index);

static inline bool is_malloc_backed(const pool_t *pool)
{
    return (pool->flags & POOL_BACKING_MALLOC_PER_BLOCK) != 0;
}

/* The length of the free list: not kept in a field of its own (see the
 * README's "Invariants" for the 15 ns that a second counter cost). */
static inline size_t pool_free_count(const pool_t *pool)
{
    return pool->capacity - pool->live - pool->q_count;
}

/* Bytes of live bits for a slab of nblocks blocks: 0 in release builds. */
static inline size_t live_bits_bytes(size_t nblocks)
{
    size_t words = nblocks / 64 + (nblocks % 64 != 0);
    return POOL_CHECKED ? words * sizeof(uint64_t) : 0;
}

static inline bool bit_get(const uint64_t *bits, size_t i)
{
    return (bits[i / 64] >> (i % 64)) & 1u;
}

#endif /* POOL_INTERNAL_H */
