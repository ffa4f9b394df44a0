/*
 * pool_per_block.c: a side road, kept only to be compared with pool.c's
 * slabs: the pool's first version, in which every block is its own malloc.
 *
 * pool_create(size, n, POOL_BACKING_MALLOC_PER_BLOCK) gives a pool whose
 * free list, checks and quarantine are pool.c's, unchanged; only where the
 * blocks come from differs. Each growth mallocs a record (the slab's header
 * and the blocks' addresses) and then n blocks, one malloc each:
 *
 * <diagram per-block>
 * record, one malloc:
 * [ slab header | &b0 &b1 &b2 ... &bN-1 | live bits ]
 *                  |   |   |        '------------.
 *                  v   v   v                     v
 *     [mh|b0]  [mh|b1]    [mh|b2] ...        [mh|bN-1]  wherever malloc
 *                                                       put them
 * mh     malloc's own header, 8 bytes before every block; with it the
 *        block is rounded up to a multiple of 16, 32 bytes at least
 * owner  p is a block of the pool iff p == &bi for some slab and i:
 *        one compare per block, O(capacity)
 * (the live bits, as in pool.c, only in checked builds)
 * </diagram>
 *
 * What is wrong with it, and what the one-buffer slabs of pool.c change:
 *   - memory: a 16-byte block costs malloc's 32-byte minimum, plus 8 bytes
 *     for its address in the record; a slab block costs its 16 bytes and a
 *     share of one header and of the last page;
 *   - ownership: the blocks are anywhere, so telling a block of the pool
 *     from any other pointer means comparing with every block; a slab is one
 *     range of addresses, one compare, and a block's index is arithmetic;
 *   - growing costs n + 1 mallocs instead of one mmap, destroying n frees
 *     instead of one munmap;
 *   - to Valgrind the blocks stay malloc's: a use after free is reported
 *     as a read of a block "alloc'd" by the malloc in per_block_slab_new,
 *     never as one "free'd" by pool_free, and no leak of a block is ever
 *     reported (the record holds every block's address).
 * The README's "How we got here" has the figures.
 */
#include "pool_internal.h"

#include <stdlib.h>

/* The record's size for nblocks blocks: the header, the blocks' addresses,
 * the live bits. The blocks themselves must fit in size_t too, for the
 * footprint. False if either overflows. */
bool per_block_layout(size_t block_size, size_t nblocks, size_t *bytes)
{
    size_t bits = live_bits_bytes(nblocks);
    if (nblocks > (SIZE_MAX - sizeof(pool_slab_t) - bits) / sizeof(void *) ||
        nblocks > SIZE_MAX / block_size)
        return false;
    *bytes = sizeof(pool_slab_t) + nblocks * sizeof(void *) + bits;
    return true;
}

/*
 * A new slab: its record, then blocks_per_slab blocks of block_size bytes
 * (aligned_alloc, for POOL_ALIGN), each no-access to the tools until handed
 * out. The caller links it in and clears its live bits. NULL, with nothing
 * kept, if any malloc fails; *footprint is what it took otherwise.
 */
pool_slab_t *per_block_slab_new(const pool_t *pool, size_t *footprint)
{
    size_t n = pool->blocks_per_slab, bytes = 0;
    if (!per_block_layout(pool->block_size, n, &bytes))
        return NULL; /* cannot happen: pool_create checked it */
    pool_slab_t *slab = malloc(bytes);
    if (slab == NULL)
        return NULL;
    slab->bytes = bytes;
    slab->first = NULL;
    slab->blocks = (void **)(slab + 1);
    slab->live_bits = POOL_CHECKED ? (uint64_t *)(slab->blocks + n) : NULL;
    for (size_t i = 0; i < n; i++) {
        slab->blocks[i] = aligned_alloc(POOL_ALIGN, pool->block_size);
        if (slab->blocks[i] == NULL) {
            while (i-- > 0)
                free(slab->blocks[i]);
            free(slab);
            return NULL;
        }
        track_mem_noaccess(slab->blocks[i], pool->block_size);
    }
    *footprint = bytes + n * pool->block_size;
    return slab;
}

/* Frees every block of the slab, live or not, then its record. */
void per_block_slab_free(const pool_t *pool, pool_slab_t *slab)
{
    for (size_t i = 0; i < pool->blocks_per_slab; i++) {
        /* malloc's block again, as malloc left it: free() may touch it */
        track_mem_undefined(slab->blocks[i], pool->block_size);
        free(slab->blocks[i]);
    }
    free(slab);
}

/* pool_find() for one slab of this backing: every block's address is
 * compared, O(blocks_per_slab). */
enum pool_where per_block_find(const pool_t *pool, const pool_slab_t *slab,
                               uintptr_t addr, size_t *index)
{
    for (size_t i = 0; i < pool->blocks_per_slab; i++) {
        uintptr_t b = (uintptr_t)slab->blocks[i];
        if (addr == b) {
            *index = i;
            return POOL_IS_BLOCK;
        }
        if (addr > b && addr - b < pool->block_size)
            return POOL_NOT_BOUNDARY;
    }
    return POOL_NOT_OURS;
}
