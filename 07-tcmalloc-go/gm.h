/*
 * gm.h: the Go runtime's allocator design as a C malloc: a cache per thread
 * (mcache) over a central list per size class (mcentral) over one page heap
 * (mheap), with a tiny allocator and a scavenger. gm.c opens with the
 * overview; this file is the API, one contract a function.
 *
 * There is one heap per process, as there is one malloc: the functions take
 * no heap argument, and any thread may call any of them at any time (a
 * block allocated by one thread may be freed or resized by another).
 * build/libmalloc.so (malloc_shim.c) puts the C library's names on them.
 *
 * Words (the series' glossary): an allocator page is 8 KiB; a span is a run
 * of pages holding objects of one size class, or one large block; an arena
 * is a 64 MiB, 64 MiB-aligned reservation of address space; a block is what
 * gm_malloc hands out.
 */
#ifndef GM_H
#define GM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* None of these names leave build/libmalloc.so: only the C library's
 * names, which malloc_shim.c defines, do. Within the library and in the
 * test programs they are ordinary calls. */
#pragma GCC visibility push(hidden)

// clang-format off
#define GM_PAGE_SHIFT  13
#define GM_PAGE        ((size_t)1 << GM_PAGE_SHIFT) /* 8 KiB allocator page */
#define GM_MAX_SMALL   32768   /* larger requests get a span of their own */
#define GM_TINY_SIZE   16      /* requests under 16 B share 16-byte blocks */
#define GM_ARENA_SHIFT 26
#define GM_ARENA       ((size_t)1 << GM_ARENA_SHIFT) /* 64 MiB */
#define GM_MAX_REQUEST ((size_t)1 << 46) /* above: ENOMEM at once */
// clang-format on

/* Blocks of 16 bytes or more are 16-byte aligned (glibc's promise, which
 * programs rely on). A request of n < 16 bytes gets its class, 8 or 16
 * bytes, so 8-byte alignment at least (as jemalloc and TCMalloc give).
 * With the tiny allocator on (GM_TINY=1), it gets the largest power of two
 * that is at most n (8 for 8 to 15 bytes, 4 for 4 to 7, 2 for 2 and 3, 1
 * for 1): the alignment of every object that fits in n bytes, which is
 * what C asks of malloc, and less than some programs assume (gm.c, "The
 * tiny allocator"). */
#define GM_ALIGN 16

/* A block of at least `size` bytes, aligned as above; NULL with errno =
 * ENOMEM when size is above GM_MAX_REQUEST or the OS refuses memory. size 0
 * gives a unique block that can be freed, as glibc's malloc(0) does. */
void *gm_malloc(size_t size);

/* Frees a block of this heap, from any thread; NULL does nothing; errno is
 * left as it was, even when giving pages back to the OS fails. A pointer in
 * no span, inside a large block, or into a free run is reported and stops
 * the program in every build; a pointer inside a small block or a double
 * free only in checked builds (the fast path cannot afford the test). */
void gm_free(void *p);

/* nmemb * size bytes, zeroed; NULL with errno = ENOMEM on overflow. */
void *gm_calloc(size_t nmemb, size_t size);

/* A block aligned to `align`, any power of two; NULL with errno = EINVAL
 * when align is not a power of two, ENOMEM when too big. */
void *gm_aligned_alloc(size_t align, size_t size);

/* glibc's realloc: NULL p is gm_malloc(size); size 0 frees p and returns
 * NULL. In place when the new size keeps the block's class (or a large
 * block's pages shrink, or grow into the free run after them); else
 * allocate, copy, free. On failure NULL with errno = ENOMEM, p untouched. */
void *gm_realloc(void *p, size_t size);

/* Bytes usable at p (the request itself when a memory tool watches); 0 for
 * NULL. */
size_t gm_usable_size(const void *p);

/* malloc_trim(0): the calling thread's cache, every class's transfer cache
 * and every free page go back (the pages with madvise). Returns the bytes
 * of pages given back; errno is left as it was. */
size_t gm_trim(void);

/* The calling thread's cache goes back to the central lists, as at thread
 * exit; the thread may go on allocating (its cache starts again). */
void gm_thread_release(void);

/* Checked builds: the blocks the calling thread's quarantine holds back
 * are really freed now (a no-op in release builds). */
void gm_quarantine_flush(void);

/* Starts the heap now rather than at the first call (the shim's
 * constructor calls it). Never needed for correctness. */
void gm_init(void);

/*
 * Unmaps everything and returns the heap to its state before the first
 * call; returns how many blocks were still live (the memory tools are told
 * they are freed). For tests and the fuzzer: no other thread may hold a
 * cache (threads that allocated must have exited or called
 * gm_thread_release), and every block dies. Stops the scavenger thread.
 */
size_t gm_destroy(void);

/* ---- Settings (the environment sets them at the first call; these
 * change them later) ---------------------------------------------------- */

/* The tiny allocator on or off for the calling thread's requests that
 * follow, and for other threads' from their next tiny block on. It is
 * off unless GM_TINY=1 turns it on from the start (gm.c, "The tiny
 * allocator": it aligns a request under 8 bytes to less than 8). Blocks
 * handed out are unaffected. */
void gm_set_tiny(bool on);
bool gm_tiny_enabled(void);

/*
 * How free pages go back to the OS (GM_SCAVENGE=background|sync|off):
 *   GM_SCAVENGE_BACKGROUND  a thread of the allocator's, started when there
 *                           is work, gives back pages free for a while
 *                           (the default);
 *   GM_SCAVENGE_SYNC        the free that leaves too many free pages
 *                           resident gives them back itself, at once;
 *   GM_SCAVENGE_OFF         never (gm_trim still does).
 * Switching away from BACKGROUND stops the thread.
 */
typedef enum gm_scavenge_mode {
    GM_SCAVENGE_BACKGROUND,
    GM_SCAVENGE_SYNC,
    GM_SCAVENGE_OFF,
} gm_scavenge_mode;
void gm_set_scavenge(gm_scavenge_mode mode);

/* The scavenger's goal: free pages kept resident, at most `bytes` plus a
 * sixteenth of the pages in use (GM_RETAIN=bytes; default 1 MiB). */
void gm_set_retain(size_t bytes);

/* The background scavenger gives back only pages free for at least this
 * many milliseconds (GM_SCAVENGE_DELAY_MS; default 100). */
void gm_set_scavenge_delay(unsigned ms);

/* ---- Figures ---------------------------------------------------------- */

typedef struct gm_stats {
    size_t arenas;         /* arenas reserved */
    size_t reserved;       /* bytes of address space reserved */
    size_t pages_in_use;   /* allocator pages of spans in use */
    size_t pages_free;     /* free pages still resident */
    size_t pages_released; /* free pages given back (or never touched) */
    size_t metadata;       /* bytes of the allocator's own (spans, page
                              maps), resident or not */
    size_t footprint;      /* (pages_in_use + pages_free) * 8 KiB +
                              metadata: what the heap holds from the OS */
    size_t peak_footprint;
    size_t small_spans, large_spans;
    size_t live_small, live_large; /* blocks handed out and not freed
                                      (tiny blocks with a live object
                                      count as one small block each) */
    size_t live_bytes;             /* their slots' and pages' bytes */
    size_t cached_thread;          /* objects in threads' caches */
    size_t cached_central;         /* objects in transfer caches */
    size_t threads;                /* threads with a cache now */
    size_t mmaps, madvises;        /* system calls since the start */
    size_t scavenged_bytes;        /* given back by the scavenger */
    size_t sync_releases;          /* frees that gave pages back themselves */
} gm_stats_t;

/* The figures, walking the heap (other threads' caches read as they last
 * published them: every 64th refill or flush, and when they go back). */
gm_stats_t gm_stats(void);

/*
 * The statistics, which libmalloc.so prints at exit when GM_STATS=1 is set
 * (and its malloc_stats() prints on demand): per class, the
 * objects in use, spans, bytes wasted inside objects (checked builds, which
 * record requests) and at span ends; the pages in use, free and scavenged;
 * what each thread's cache holds. Written with write(2) to fd.
 */
void gm_print_stats(int fd);

/* ---- Checking and drawing (gm_check.c) -------------------------------
 *
 * These take every lock of the heap, and read other threads' caches
 * directly: call them when no other thread is inside the allocator (the
 * tests stop their threads at a barrier first). */

/* True when every invariant holds. */
bool gm_check(void);

/* The first broken invariant, in words, or NULL when the heap is sound. */
const char *gm_check_why(void);

/* Each thread's cache: per class, its objects in order and its bound. */
void mcache_dump(FILE *out);

/* Each class's central list: its transfer cache, its partial and full
 * spans with their bitmaps. */
void mcentral_dump(FILE *out);

/* The arenas (one cell per run of pages), the page heap's free runs,
 * resident and scavenged, the figures. */
void mheap_dump(FILE *out);

/* The size class of a request (1..67), 0 above GM_MAX_SMALL; and the
 * class table's entries (0 for class 0 and beyond the table). */
unsigned gm_size_class(size_t size);
size_t gm_class_size(unsigned cls);
size_t gm_class_pages(unsigned cls);
size_t gm_class_objects(unsigned cls);
size_t gm_class_batch(unsigned cls);

#pragma GCC visibility pop

#endif /* GM_H */
