/*
 * arena.h: stage 05, glibc's malloc design (ptmalloc2) as one allocator per
 * process: chunks with boundary tags, fast, small, large and unsorted bins
 * with a binmap, a top chunk in 64 MB heaps, large chunks mapped on their
 * own, several arenas with a lock each, and a per-thread cache in front.
 *
 * Words used here (the series' glossary):
 *   chunk   a block plus its 8-byte header (glibc's sense)
 *   bin     a list of free chunks of one size or one range of sizes
 *   arena   one heap state: its bins, its top chunk, its lock
 *   heap    one 64 MB, 64 MB-aligned reservation that belongs to an arena
 *   top     the free chunk at the end of an arena's newest heap, which
 *           grows into the rest of the reservation when nothing else fits
 *   tcache  the per-thread cache: a few free chunks of each small size,
 *           taken and given back with no lock
 * See arena.c for the overview and the reading order of the files.
 *
 * One allocator per process, like malloc: the functions take no heap
 * argument. They are thread-safe. build/libmalloc.so (malloc_shim.c) puts
 * the C library's names on them.
 */
#ifndef ARENA_H
#define ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every block is aligned to this (alignof(max_align_t) on x86-64). */
#define ARENA_ALIGN 16

/* Requests above this many bytes fail with ENOMEM (2^46: no machine maps
 * 64 TiB, and it keeps every size sum below overflow). */
#define ARENA_MAX_REQUEST ((size_t)1 << 46)

/* The heap: each arena reserves address space in pieces of this size,
 * aligned to it, so that a chunk's heap is found by masking its address. */
#define ARENA_HEAP_SIZE ((size_t)64 << 20)

/* ---- The malloc family -----------------------------------------------------
 * glibc's semantics in each case; errno is ENOMEM on every refusal below
 * unless another is named.
 */

/* A block of at least n bytes, 16-byte aligned; n == 0 gives a unique
 * block that arena_free accepts. NULL above ARENA_MAX_REQUEST or when the
 * OS refuses memory. */
void *arena_malloc(size_t n);

/* Frees a block from any thread; NULL does nothing. Never changes errno,
 * not even when giving memory back to the OS fails. Misuse that it sees
 * (double free, a pointer it never returned, a damaged header or list) is
 * reported through alloc_fatal and stops the program: see the README. */
void arena_free(void *p);

/* nmemb * size zeroed bytes; NULL if the product overflows. Memory that is
 * fresh from the OS is known to be zero and is not cleared again. */
void *arena_calloc(size_t nmemb, size_t size);

/* p == NULL: arena_malloc(n); n == 0: frees p and returns NULL (glibc).
 * Grows in place into a free next chunk or the top chunk; a mapped chunk
 * is grown with mremap. On failure p is untouched. */
void *arena_realloc(void *p, size_t n);

/* A block aligned to `align`, any power of two; NULL with EINVAL if align
 * is not a power of two. */
void *arena_memalign(size_t align, size_t n);

/* Bytes usable at p (0 for NULL). In checked builds, the size requested:
 * the bytes after it are no-access to the memory tools and guarded. */
size_t arena_usable_size(const void *p);

/* ---- Settings (glibc's mallopt) ----------------------------------------- */

typedef enum arena_param {
    ARENA_TCACHE_COUNT,   /* chunks kept per size in a per-thread cache
                             (0..65535, default 7; 0 turns the cache off) */
    ARENA_MAX_FAST,       /* the largest request served by the fast bins
                             (0..160 bytes, default 120; 0: no fast bins) */
    ARENA_MMAP_THRESHOLD, /* requests from this size on get a mapping of
                             their own (default 128 KiB; setting it stops
                             the threshold from moving, as in glibc) */
    ARENA_TRIM_THRESHOLD, /* a top chunk larger than this is trimmed
                             (default 128 KiB; moves with the mmap one) */
    ARENA_TOP_PAD,        /* extra bytes committed each time a heap grows,
                             and kept when it is trimmed (default 128 KiB) */
    ARENA_ARENA_MAX,      /* arenas at most (0: 8 per core, the default) */
} arena_param;

/*
 * Changes a setting; returns 0, or -1 with EINVAL for a value out of range.
 * ARENA_TCACHE_COUNT applies to the calling thread at once (its cache is
 * flushed first) and to threads that start using the allocator later; a
 * thread that already has a cache keeps its own bound.
 */
int arena_set(arena_param param, size_t value);
size_t arena_get(arena_param param);

/* ---- Memory back to the OS ---------------------------------------------- */

/* glibc's malloc_trim: consolidates every arena, gives back the top of
 * each above `pad` bytes, empty heaps, and the whole pages inside free
 * chunks (madvise). Returns 1 if memory went back, else 0. */
int arena_trim(size_t pad);

/* Gives the calling thread's cache (and, in checked builds, its
 * quarantine) back to the arenas. */
void arena_thread_flush(void);

/* ---- Figures ------------------------------------------------------------ */

typedef struct arena_stats {
    size_t arenas;         /* arenas created (the main one included) */
    size_t heaps;          /* heaps mapped now */
    size_t heap_bytes;     /* bytes the heaps use now: from each heap's
                              start to the end of its used part, page-
                              rounded (glibc's mallinfo arena) */
    size_t mmapped_chunks; /* chunks with a mapping of their own, now */
    size_t mmapped_bytes;  /* their mappings' bytes */
    size_t footprint;      /* heap_bytes + mmapped_bytes */
    size_t peak_footprint; /* the most footprint ever */
    size_t in_use_bytes;   /* chunk bytes handed out (headers included,
                              and the chunks in per-thread caches, which
                              are in use to their arenas, as in glibc) */
    size_t free_bytes;     /* chunk bytes in the bins and fast bins */
    size_t top_bytes;      /* bytes in the top chunks */
    size_t mmap_threshold; /* now (it moves up: see arena_heap.c) */
    size_t trim_threshold; /* now */
    size_t mmaps, munmaps, mprotects, madvises, mremaps; /* system calls */
    size_t lock_acquisitions; /* arena locks taken, all arenas (counted
                                 too while the process has one thread and
                                 the lock is skipped: arena_internal.h) */
    size_t lock_contended;    /* of which the lock was held by another */
    size_t consolidations;    /* fast bins merged into the other bins */
} arena_stats_t;

/* Takes every arena's lock in turn; O(arenas + heaps + free chunks). */
arena_stats_t arena_stats(void);

/* footprint alone, in O(arenas): for trace replays, after every op. */
size_t arena_footprint(void);

/* ---- Checking and drawing (arena_check.c) ------------------------------- */

/* True when every invariant holds (see the README and arena_check.c): for
 * every arena, its heaps chunk by chunk, its bins, binmap and fast bins;
 * the calling thread's cache; the mapped chunks; the counters. */
bool arena_check(void);

/* The first broken invariant, in words, or NULL when all hold. */
const char *arena_check_why(void);

/* Draws each arena: its heaps as rows of cells, the top chunk, every
 * non-empty bin with its count and sizes, the binmap, the mapped chunks,
 * and each thread's cache. Takes each arena's lock while it draws it. */
void arena_dump(FILE *out);

/* ---- For tests ---------------------------------------------------------- */

/* The chunk size a request of n bytes gets (headers and rounding; checked
 * builds add an 8-byte trailer), for tests that predict a layout. */
size_t arena_chunk_size(size_t n);

/* Checked builds: frees for real the blocks the calling thread's
 * quarantine holds back. */
void arena_quarantine_flush(void);

/*
 * Unmaps every heap and mapped chunk and starts again from nothing, the
 * settings back to their defaults. Blocks still live die with it (the memory
 * tools are told); returns how many there were. The caller must be the only
 * thread that has used the allocator and has not exited: another thread's
 * cache would point into memory that is gone.
 */
size_t arena_teardown(void);

#endif /* ARENA_H */
