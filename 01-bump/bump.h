/*
 * bump.h: a bump allocator (also called a linear allocator).
 *
 * One region of memory, one offset. Allocating aligns the address at the
 * offset and moves the offset forward; nothing is freed one by one.
 * bump_reset() frees everything at once; bump_mark() and bump_rewind() free
 * everything allocated since a mark, for scoped, temporary memory. See bump.c
 * for the algorithm and the layout.
 *
 * Not thread-safe: one region belongs to one thread at a time.
 */
#ifndef BUMP_H
#define BUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The alignment of bump_alloc(): enough for any C object (max_align_t). */
#define BUMP_DEFAULT_ALIGN 16

/* Checked builds (-DALLOC_DEBUG) record where the first BUMP_RECORDED live
 * blocks are, for bump_dump() to draw them and bump_check() to verify them.
 * Release builds record nothing: the state below is then smaller, so every
 * file of a program must be built with the same flags. */
#define BUMP_RECORDED 32

typedef struct bump_block {
    size_t start; /* offset of the block from the region's base, in bytes */
    size_t size;  /* bytes it asked for (0 counts as 1) */
} bump_block_t;

/*
 * A region. Fields are public so that a student can print them in a debugger,
 * but only the bump_* functions change them.
 *
 * Invariants (bump_check() verifies them):
 *     requested <= offset <= high_water <= capacity
 *     allocations <= offset          (every allocation takes at least 1 byte)
 *     allocations == 0  implies  offset == 0
 * and in checked builds, for the min(allocations, BUMP_RECORDED) recorded
 * blocks: in address order, none overlapping the one before or its redzone,
 * all below the offset; when every live block is recorded, their sizes add up
 * to `requested` and the last one's redzone ends at `offset`.
 */
typedef struct bump {
    unsigned char *base; /* first byte of the region */
    size_t capacity;     /* bytes in the region */
    size_t offset;       /* bytes in use: the next block starts at or after
                            base + offset (after alignment) */
    size_t high_water;   /* the largest offset reached since init, bytes */
    size_t allocations;  /* live blocks: handed out since init or the last
                            reset, and not released by a rewind */
    size_t requested;    /* bytes those blocks asked for: offset - requested
                            is what alignment and redzones cost */
    uint64_t generation; /* resets since init: a mark made before the last
                            reset carries an older one, and is refused */
    bool owns_memory;    /* region came from mmap: bump_destroy unmaps it */
#ifdef ALLOC_DEBUG
    bump_block_t recorded[BUMP_RECORDED]; /* the first live blocks, in order
                                             (checked builds only) */
#endif
} bump_t;

/* A saved position; bump_rewind() goes back to it. Cheap to copy. */
typedef struct bump_mark {
    const unsigned char *base; /* the region it belongs to (checked) */
    uint64_t generation;       /* the region's generation then (checked) */
    size_t offset, allocations, requested;
} bump_mark_t;

typedef struct bump_stats {
    size_t capacity;    /* bytes in the region */
    size_t used;        /* bytes in use, padding and redzones included */
    size_t requested;   /* bytes the live blocks asked for */
    size_t high_water;  /* the most ever in use at once */
    size_t allocations; /* live blocks */
} bump_stats_t;

/*
 * A block of `size` bytes aligned to BUMP_DEFAULT_ALIGN, or NULL with
 * errno = ENOMEM when the region cannot hold it (nothing is consumed then).
 * size 0 gives a unique 1-byte block, so two calls never return one pointer.
 */
void *bump_alloc(bump_t *b, size_t size);

/*
 * The same with an explicit alignment: any power of two (above the page size
 * too; the padding it needs must fit, or NULL with errno = ENOMEM). Any other
 * alignment gives NULL with errno = EINVAL.
 */
void *bump_alloc_aligned(bump_t *b, size_t size, size_t align);

/* Frees every block at once: the offset goes back to 0; every mark made so
 * far becomes stale. O(1); no call to the OS (the pages stay, for reuse). */
void bump_reset(bump_t *b);

/* Saves the current position. */
bump_mark_t bump_mark(const bump_t *b);

/*
 * Frees every block allocated since mark `m`. Marks nest like a stack:
 * rewinding to an outer mark also discards the inner ones. A stale mark is a
 * caller bug, reported before the program stops: one from another region,
 * one made before the last reset (always caught), one past the current
 * offset (an outer rewind passed it; caught only while the offset is still
 * below it, see bump.c).
 */
void bump_rewind(bump_t *b, bump_mark_t m);

/*
 * Starts a region over the caller's buffer (any alignment; the buffer must
 * outlive the region). Returns 0, or -1 with errno = EINVAL if buf is NULL
 * or size is 0.
 */
int bump_init(bump_t *b, void *buf, size_t size);

/*
 * Starts a region of at least `size` bytes obtained from the OS with mmap
 * (rounded up to whole pages). Returns 0, or -1 with errno = ENOMEM.
 */
int bump_init_mmap(bump_t *b, size_t size);

/* Ends a region: unmaps it if it came from mmap. Every block dies. Leaves
 * errno as it found it, even when munmap fails. */
void bump_destroy(bump_t *b);

bump_stats_t bump_stats(const bump_t *b);

/* True when the invariants above hold (bump_check.c). */
bool bump_check(const bump_t *b);

/* Draws the region: in use (each recorded block with its own letter in
 * checked builds), padding, redzones, released, never used (bump_check.c). */
void bump_dump(const bump_t *b, FILE *out);

#endif /* BUMP_H */
