/*
 * fl.h: a free-list allocator for blocks of any size: headers and boundary
 * tags, one explicit doubly linked free list, first/next/best fit chosen at
 * run time, splitting, coalescing with both neighbours, regions from mmap.
 *
 * Words used here (the series' glossary):
 *   block   what fl_alloc hands out: the bytes asked for, and any rounding
 *   chunk   a block plus its 8-byte header (glibc's sense); a free chunk
 *           also has a footer, its header's copy, in its last 8 bytes
 *   region  one mapping obtained from the OS with mmap (64 KiB or more),
 *           cut into chunks
 *   heap    an fl_heap: all the regions one instance manages, and its state
 * See fl.c for the algorithm, the layout and the invariants.
 *
 * Not thread-safe: one heap belongs to one thread at a time (libmalloc.so,
 * built from malloc_shim.c, puts one lock around it).
 */
#ifndef FL_H
#define FL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every block is aligned to this (alignof(max_align_t) on x86_64). */
#define FL_ALIGN 16

/* Requests above this many bytes fail with ENOMEM (a header holds 48 bits
 * of size, and no machine maps 64 TiB anyway). */
#define FL_MAX_REQUEST ((size_t)1 << 46)

/* A new region is at least this big (see "Growth" in fl.c). */
#define FL_REGION_MIN ((size_t)64 * 1024)

/* Freed chunks that checked builds hold back before reusing them. */
#define FL_QUARANTINE 16

/* Where a search for a free chunk stops: see fl.c, "Placement". */
typedef enum fl_policy {
    FL_FIRST_FIT, /* the first chunk in list order that fits */
    FL_NEXT_FIT,  /* the same, starting where the last search stopped */
    FL_BEST_FIT,  /* the smallest chunk that fits (stops at an exact fit) */
} fl_policy;

typedef struct fl_stats {
    size_t live_bytes;     /* bytes the live blocks asked for */
    size_t live_blocks;    /* blocks handed out and not yet freed */
    size_t peak_live;      /* the most live_bytes ever */
    size_t footprint;      /* bytes mapped from the OS now */
    size_t peak_footprint; /* the most footprint ever */
    size_t regions;        /* regions mapped now */
    size_t free_chunks;    /* chunks on the free list */
    size_t free_bytes;     /* bytes in them, headers included */
    size_t mmaps, munmaps; /* regions mapped, and given back, since init */
} fl_stats_t;

/*
 * A heap. Fields are public so that a caller can own one (on the stack, in
 * a struct), a student can print them in a debugger and the tests can break
 * a heap on purpose; only the fl_* functions change them. Its invariants
 * are listed in fl.c ("State"); fl_check() verifies every one.
 */
typedef struct fl_heap {
    fl_policy policy; /* where find_fit stops */
    void *regions;    /* newest region first, linked through its header */
    void *free_head;  /* the first free chunk (its header address), or NULL */
    void *rover;      /* next fit: the free chunk where the next search
                         starts, or NULL for the head */
    fl_stats_t stats; /* bytes, blocks and counts; see fl_stats_t */
    /* Checked builds: freed chunks waiting to be really freed, a FIFO
     * ring of chunk (header) addresses: q_count of them from q_first. */
    void *quarantine[FL_QUARANTINE];
    size_t q_first, q_count;
} fl_heap;

/* Starts an empty heap (no memory is mapped until the first alloc).
 * Returns 0, or -1 with errno = EINVAL for an unknown policy. */
int fl_init(fl_heap *h, fl_policy policy);

/* Unmaps every region. Blocks still live die with it (the memory tools are
 * told they are freed); returns how many there were. errno is left as it
 * was; a region the OS refuses to unmap stays mapped, forgotten. */
size_t fl_destroy(fl_heap *h);

/* Changes the placement policy; takes effect at the next search. */
void fl_set_policy(fl_heap *h, fl_policy policy);
const char *fl_policy_name(fl_policy policy);

/*
 * A block of at least `size` bytes aligned to FL_ALIGN, or NULL with
 * errno = ENOMEM (size above FL_MAX_REQUEST, or the OS refused a region).
 * size 0 gives a unique block that can be freed, as glibc's malloc(0) does.
 */
void *fl_alloc(fl_heap *h, size_t size);

/* nmemb * size bytes, zeroed; NULL with errno = ENOMEM if the product
 * overflows. */
void *fl_calloc(fl_heap *h, size_t nmemb, size_t size);

/*
 * A block aligned to `align`, any power of two. NULL with errno = EINVAL if
 * align is not a power of two, ENOMEM if size or align is too big.
 */
void *fl_aligned_alloc(fl_heap *h, size_t align, size_t size);

/*
 * Frees a block from this heap; NULL does nothing. Misuse it can see is
 * reported through alloc_fatal and stops the program: a pointer that is not
 * 16-byte aligned, a header whose check bits are wrong (a pointer it never
 * returned, or a header overwritten), a double free; in checked builds also
 * a pointer outside every region. errno is left as it was, even when the
 * OS refuses to take an emptied region back (the region is then kept).
 */
void fl_free(fl_heap *h, void *p);

/*
 * glibc's realloc: NULL p is fl_alloc(size); size 0 frees p and returns
 * NULL. Shrinks in place, grows in place into a free next chunk, else moves
 * (alloc, copy, free). On failure returns NULL with errno = ENOMEM and p is
 * untouched.
 */
void *fl_realloc(fl_heap *h, void *p, size_t size);

/* Bytes usable at p: the chunk's payload (the requested size when a memory
 * tool watches, since the rest is no-access to it). 0 for NULL. */
size_t fl_usable_size(const fl_heap *h, const void *p);

/* Checked builds: releases every chunk held in quarantine now (errno left
 * as it was). */
void fl_quarantine_flush(fl_heap *h);

fl_stats_t fl_stats(const fl_heap *h);

/* Bytes mapped from the OS now (stats.footprint), for trace replays. */
size_t fl_footprint(const fl_heap *h);

/* True when every invariant above holds. */
bool fl_check(const fl_heap *h);

/* The first broken invariant, in words, or NULL when the heap is sound. */
const char *fl_check_why(const fl_heap *h);

/*
 * Draws every region as rows of cells ('|' a chunk's header, '#' used,
 * '.' free, 'q' quarantined), the free list in order, and the figures:
 * external fragmentation = 1 - largest free chunk / free bytes, and
 * occupancy = live bytes / footprint, both at this moment (utilization, in
 * the trace tables, is peak live / peak footprint over a whole run).
 */
void fl_dump(const fl_heap *h, FILE *out);

// clang-format off
/* ---- The chunk layout, for white-box tests ------------------------------ */
// clang-format on

/* The header word of a chunk: its picture is in fl.c (diagram header-word);
 * the fourth flag, F, and the masks are in fl_internal.h. */
#define FL_HEADER         8  /* bytes of a header (and of a footer) */
#define FL_MIN_CHUNK      32 /* header, next, prev, footer */
#define FL_USED           1u /* U: handed out (or in the quarantine) */
#define FL_PREV_USED      2u /* P: the chunk before it is not free */
#define FL_QUARANTINE_BIT 4u /* Q: freed, waiting in the quarantine */

/* The header word for a chunk at `chunk` (check bits computed). */
uint64_t fl_header_word(const void *chunk, size_t size, unsigned flags,
                        size_t slack);

#endif /* FL_H */
