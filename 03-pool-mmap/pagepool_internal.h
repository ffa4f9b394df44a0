/*
 * pagepool_internal.h: what pagepool.c shares with its two companions,
 * slabset.c (the slab set) and pagepool_check.c (pp_check and pp_dump):
 * the small address helpers, the free-list link as the memory tools must
 * see it, and the few functions one file calls in another. Not part of the
 * API: nothing outside the allocator includes it.
 */
#ifndef PAGEPOOL_INTERNAL_H
#define PAGEPOOL_INTERNAL_H

#include "pagepool.h"

#include "annotate.h"

#include <stdint.h>

#define STAGE "03-pool-mmap"

/* No-access bytes around each block in annotated builds (see pagepool.h).
 * 16 keeps every block 16-byte aligned, which ASan's granules need. */
#define PP_REDZONE (TRACK_ENABLED ? (size_t)16 : (size_t)0)

static inline size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* The slab that would hold p: its address masked to the page. No load:
 * whether that page is one of ours is the slab set's question. */
static inline pp_slab_t *slab_from(const pp_allocator_t *a, const void *p)
{
    return (pp_slab_t *)((uintptr_t)p & a->page_mask);
}

static inline pp_free_t *block_at(const pp_pool_t *pool, pp_slab_t *s,
                                  uint32_t i)
{
    return (pp_free_t *)((unsigned char *)s + pool->first +
                         (size_t)i * pool->stride);
}

/* The index of a block known to be on a block boundary of s. */
static inline uint32_t block_index(const pp_pool_t *pool, const pp_slab_t *s,
                                   const void *p)
{
    uint32_t offset = (uint32_t)((uintptr_t)p - (uintptr_t)s - pool->first);
    return offset / (uint32_t)pool->stride;
}

/* Checked builds: is block i of s live? */
static inline bool bit_get(const pp_slab_t *s, uint32_t i)
{
    return (s->live_map[i / 64] >> (i % 64)) & 1u;
}

/* The free-list link inside a free block: the tools see those 8 bytes only
 * while they are read or written (every other byte of a free block stays
 * no-access). */
static inline pp_free_t *link_read(pp_free_t *block)
{
    track_mem_defined(block, sizeof *block);
    pp_free_t *next = block->next;
    track_mem_noaccess(block, sizeof *block);
    return next;
}

static inline void link_write(pp_free_t *block, pp_free_t *next)
{
    track_mem_undefined(block, sizeof *block);
    block->next = next;
    track_mem_noaccess(block, sizeof *block);
}

/* The most spares a pool keeps between sweeps: 1 + a quarter of its slabs
 * in use (with a block out). pp_free sweeps when there is one more. */
static inline size_t spares_max(const pp_pool_t *pool)
{
    return 1 + (pool->nslabs - pool->nspares) / 4;
}

/* pagepool.c: `bytes` (whole pages) of fresh zeroed memory from mmap,
 * counted in a->mapped, or NULL with errno = ENOMEM. */
void *pages_map(pp_allocator_t *a, size_t bytes);

/* pagepool.c: gives a mapping back with munmap, or, if the OS refuses,
 * keeps it on a->refused to offer again later; either way the counts stay
 * true. May change errno: the public free-like functions restore it. */
void pages_unmap(pp_allocator_t *a, void *p, size_t bytes);

/* slabset.c: the slab set, which holds the address of every slab. */
size_t slabset_bytes(const pp_allocator_t *a); /* its mapping, 0 if none */
bool slabset_contains(const pp_allocator_t *a, uintptr_t slab);
/* Makes room for one more address; false (errno = ENOMEM) if it cannot. */
bool slabset_reserve(pp_allocator_t *a);
/* Adds an address, after slabset_reserve said there is room. */
void slabset_insert(pp_allocator_t *a, uintptr_t slab);
/* Removes an address that is in the set; may shrink the set's mapping. */
void slabset_remove(pp_allocator_t *a, uintptr_t slab);

#endif /* PAGEPOOL_INTERNAL_H */
