/*
 * arena_internal.h: what the five files of the allocator share (arena.c,
 * arena_heap.c, arena_thread.c, arena_process.c, arena_check.c): the chunk
 * layout as constants and accessors, the arena, heap and thread structures, the
 * settings, and the functions one file calls in another. Not part of the
 * API; the layout diagram and the overview are in arena.c.
 */
#ifndef ARENA_INTERNAL_H
#define ARENA_INTERNAL_H

#include "arena.h"

#include "annotate.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAGE "05-arena"

#if defined(ALLOC_DEBUG)
#define CHECKED 1
#else
#define CHECKED 0
#endif

/* ---- Chunks ----------------------------------------------------------------
 *
 * A chunk is an address; its fields are words at fixed offsets, read and
 * written through word_get and word_set only (see below). struct mchunk is
 * never defined: it gives chunk pointers a type of their own.
 */
typedef struct mchunk mchunk;

/* Misuse: "05-arena: fn(p): what" on stderr, then abort (arena_thread.c). */
_Noreturn void arena_fatal(const char *fn, const void *p, const char *what);

#define SIZE_SZ    ((size_t)8)  /* one header word */
#define CHUNK_HDR  ((size_t)16) /* prev_size + size: payload offset */
#define MINSIZE    ((size_t)32) /* header, fd, bk, and the next prev_size */
#define ALIGN_MASK ((size_t)15)

/* The low bits of the size word. */
#define PREV_INUSE     ((size_t)1) /* P: the chunk before this one is in use */
#define IS_MMAPPED     ((size_t)2) /* M: this chunk has a mapping of its own */
#define NON_MAIN_ARENA ((size_t)4) /* A: this chunk is not the main arena's */
#define SIZE_BITS      ((size_t)7)

/* Word offsets inside a chunk. */
#define OFF_PREV_SIZE   0  /* the previous chunk's size, if it is free */
#define OFF_SIZE        8  /* this chunk's size | A | M | P */
#define OFF_FD          16 /* free: next chunk in its bin */
#define OFF_BK          24 /* free: previous chunk in its bin */
#define OFF_FD_NEXTSIZE 32 /* free, large bin: next smaller size */
#define OFF_BK_NEXTSIZE 40 /* free, large bin: next larger size */

/* Checked builds end every chunk's payload with a trailer word that holds
 * the size requested (the memory tools need it exactly; see arena_thread.c,
 * "Checked builds"). */
#define TRAILER ((size_t)(CHECKED ? 8 : 0))

/*
 * Every header and link word goes through these two. They are relaxed
 * atomic accesses, which on x86-64 are plain moves: a thread freeing its
 * own chunk reads that chunk's size word without a lock while the arena's
 * lock holder may set or clear its P bit (when the chunk before it is
 * freed or allocated), and C calls that a data race unless both sides are
 * atomic. In annotated builds they also open the word to the memory tool
 * for the access alone, so that the word stays no-access to the program:
 * a stray write into a header or a free chunk is reported where it
 * happens, not at the next free.
 */
static inline size_t word_get(const void *at)
{
    track_mem_defined(at, SIZE_SZ);
    size_t w = __atomic_load_n((const size_t *)at, __ATOMIC_RELAXED);
    track_mem_noaccess(at, SIZE_SZ);
    return w;
}

static inline void word_set(void *at, size_t w)
{
    track_mem_undefined(at, SIZE_SZ);
    __atomic_store_n((size_t *)at, w, __ATOMIC_RELAXED);
    track_mem_noaccess(at, SIZE_SZ);
}

/*
 * A header word read with no lock held: free's, realloc's and
 * usable_size's first look at their own chunk (whose P bit the arena's lock
 * holder may be changing at that moment, when the chunk before it is freed
 * or handed out) and at the next chunk's P bit. word_get opens the word to
 * the memory tool, reads it and closes it; another thread's open and close
 * of the same word in between would leave it closed for this read, and the
 * tool would report the allocator itself. So this read leaves the tool's
 * state alone: ASan does not instrument it, and Valgrind does not report
 * it. (test_frees_from_other_threads caught that race under ASan.)
 */
#if defined(TRACK_ASAN)
#define PEEK_FN static __attribute__((no_sanitize_address, noinline, unused))
#else
#define PEEK_FN static inline
#endif
PEEK_FN size_t word_peek(const void *at)
{
#if defined(ALLOC_TRACK_VALGRIND)
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
    size_t w = __atomic_load_n((const size_t *)at, __ATOMIC_RELAXED);
#if defined(ALLOC_TRACK_VALGRIND)
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    return w;
}

static inline mchunk *chunk_at(const mchunk *c, size_t off)
{
    return (mchunk *)((char *)(uintptr_t)c + off);
}
static inline mchunk *chunk_before(const mchunk *c, size_t off)
{
    return (mchunk *)((char *)(uintptr_t)c - off);
}
static inline void *chunk2mem(const mchunk *c)
{
    return (char *)(uintptr_t)c + CHUNK_HDR;
}
static inline mchunk *mem2chunk(const void *p)
{
    return (mchunk *)((char *)(uintptr_t)p - CHUNK_HDR);
}

static inline size_t head(const mchunk *c)
{
    return word_get((const char *)c + OFF_SIZE);
}
static inline void set_head(mchunk *c, size_t h)
{
    word_set((char *)c + OFF_SIZE, h);
}
static inline size_t chunksize(const mchunk *c)
{
    return head(c) & ~SIZE_BITS;
}
static inline size_t prev_size(const mchunk *c)
{
    return word_get(c);
}
static inline void set_prev_size(mchunk *c, size_t s)
{
    word_set(c, s);
}
/* A free chunk's footer: its size, in the next chunk's prev_size word. */
static inline void set_foot(mchunk *c, size_t s)
{
    set_prev_size(chunk_at(c, s), s);
}
static inline mchunk *next_chunk(const mchunk *c)
{
    return chunk_at(c, chunksize(c));
}
static inline bool prev_inuse(const mchunk *c)
{
    return (head(c) & PREV_INUSE) != 0;
}
/* In use: the P bit of the chunk `off` bytes further on (its size). */
static inline bool inuse_at(const mchunk *c, size_t off)
{
    return prev_inuse(chunk_at(c, off));
}
/* head and inuse_at with no lock held (see word_peek). */
static inline size_t head_peek(const mchunk *c)
{
    return word_peek((const char *)c + OFF_SIZE);
}
static inline bool inuse_peek(const mchunk *c, size_t off)
{
    return (head_peek(chunk_at(c, off)) & PREV_INUSE) != 0;
}
static inline void set_inuse_at(mchunk *c, size_t off)
{
    mchunk *n = chunk_at(c, off);
    set_head(n, head(n) | PREV_INUSE);
}
static inline void clear_inuse_at(mchunk *c, size_t off)
{
    mchunk *n = chunk_at(c, off);
    set_head(n, head(n) & ~PREV_INUSE);
}

static inline mchunk *link_get(const mchunk *c, size_t off)
{
    return (mchunk *)(uintptr_t)word_get((const char *)c + off);
}
static inline void link_set(mchunk *c, size_t off, const mchunk *to)
{
    word_set((char *)c + off, (size_t)(uintptr_t)to);
}
#define fd(c)                 link_get((c), OFF_FD)
#define bk(c)                 link_get((c), OFF_BK)
#define fd_nextsize(c)        link_get((c), OFF_FD_NEXTSIZE)
#define bk_nextsize(c)        link_get((c), OFF_BK_NEXTSIZE)
#define set_fd(c, v)          link_set((c), OFF_FD, (v))
#define set_bk(c, v)          link_set((c), OFF_BK, (v))
#define set_fd_nextsize(c, v) link_set((c), OFF_FD_NEXTSIZE, (v))
#define set_bk_nextsize(c, v) link_set((c), OFF_BK_NEXTSIZE, (v))

static inline bool aligned_ok(const void *p)
{
    return ((uintptr_t)p & ALIGN_MASK) == 0;
}

/* The chunk size of a request of n <= ARENA_MAX_REQUEST bytes: the header
 * word (the next chunk's prev_size word is this chunk's while it is in
 * use, so only one of the two header words is added), the trailer of
 * checked builds, rounded up to 16, at least MINSIZE. */
static inline size_t request2size(size_t n)
{
    size_t s = (n + SIZE_SZ + TRAILER + ALIGN_MASK) & ~ALIGN_MASK;
    return s < MINSIZE ? MINSIZE : s;
}

/*
 * Safe-linking (glibc 2.32): a single link (fast bins, the per-thread cache)
 * is stored as (address of the link >> 12) XOR the pointer. A link that an
 * attacker overwrote with a plain address decodes to garbage, which fails
 * the alignment check before it is followed (15 times in 16); the same
 * function decodes. The shift keeps the address bits that vary from run to
 * run (ASLR) and drops the page offset, which an attacker can guess.
 */
static inline void *protect_ptr(const void *pos, const void *ptr)
{
    return (void *)(((uintptr_t)pos >> 12) ^ (uintptr_t)ptr);
}

/* ---- Bins --------------------------------------------------------------- */

// clang-format off
#define NBINS              128   /* bin 0 unused, 1 unsorted, 2..63 small,
                                    64..126 large, 127 unused */
#define NSMALLBINS         64
#define MIN_LARGE_SIZE     ((size_t)1024) /* small bins: chunks < 1024 */
#define BINMAP_WORDS       2     /* one bit per bin, 64 to a word */
#define NFASTBINS          10    /* chunks 32..176 bytes (requests to 160) */
#define MAX_FAST_REQUEST   ((size_t)160)
#define DEFAULT_MAX_FAST   ((size_t)128) /* a chunk size: requests to 120 */
#define FASTBIN_CONSOLIDATION_THRESHOLD ((size_t)64 * 1024)
#define TCACHE_BINS        64    /* chunks 32..1040 bytes (requests to 1032) */
#define TCACHE_DEFAULT     7
#define TCACHE_MAX_COUNT   65535
// clang-format on

static inline bool in_smallbin_range(size_t sz)
{
    return sz < MIN_LARGE_SIZE;
}
static inline unsigned smallbin_index(size_t sz)
{
    return (unsigned)(sz >> 4);
}
/* glibc's spacing on 64-bit: 33 bins 64 B apart (1024..3135), then 15 of
 * 512 B, 9 of 4 KiB, 3 of 32 KiB, 2 of 256 KiB, one for the rest. */
static inline unsigned largebin_index(size_t sz)
{
    if ((sz >> 6) <= 48)
        return 48 + (unsigned)(sz >> 6);
    if ((sz >> 9) <= 20)
        return 91 + (unsigned)(sz >> 9);
    if ((sz >> 12) <= 10)
        return 110 + (unsigned)(sz >> 12);
    if ((sz >> 15) <= 4)
        return 119 + (unsigned)(sz >> 15);
    if ((sz >> 18) <= 2)
        return 124 + (unsigned)(sz >> 18);
    return 126;
}
static inline unsigned bin_index(size_t sz)
{
    return in_smallbin_range(sz) ? smallbin_index(sz) : largebin_index(sz);
}
static inline unsigned fastbin_index(size_t sz)
{
    return (unsigned)(sz >> 4) - 2;
}
/* The per-thread cache's list for a chunk size (32 -> 0, 48 -> 1, ...). */
static inline size_t csize2tidx(size_t sz)
{
    return (sz - MINSIZE + ALIGN_MASK) >> 4;
}
#define TCACHE_MAX_REQUEST ((size_t)1032 - TRAILER)

/* ---- Arenas and heaps --------------------------------------------------- */

struct heap_info;

/*
 * An arena: one heap state. Invariants (arena_check verifies them):
 *   - every free chunk that is not in a fast bin or a per-thread cache is
 *     in exactly one bin: the unsorted bin, or the small or large bin of
 *     its size; no two such chunks touch, and none touches the top;
 *   - small bin i holds chunks of 16 * i bytes; large bin i holds sizes in
 *     its range, sorted largest first, the first chunk of each size linked
 *     into the nextsize ring, the others with NULL nextsize links;
 *   - binmap bit i is set when bin i is non-empty (it may be set while the
 *     bin is empty: bits are cleared lazily, by the search that finds it so);
 *   - the top chunk is the last chunk of the newest heap, its P bit set;
 *   - system_mem == the sum of its heaps' sizes.
 */
typedef struct arena {
    pthread_mutex_t lock;        /* guards every field down to `next` */
    mchunk *fastbins[NFASTBINS]; /* LIFO heads, safe-linked through fd */
    bool have_fastchunks;        /* some fast bin may be non-empty */
    mchunk *top;                 /* the top chunk (NULL: no heap yet) */
    mchunk *last_remainder;      /* the rest of the last small split */
    /* The bins' heads: bin i's fd and bk are bins[2i-2] and bins[2i-1],
     * read through bin_at() as the fd and bk of a chunk that does not
     * exist, so that a list's head and its chunks are linked alike. */
    mchunk *bins[NBINS * 2 - 2];
    uint64_t binmap[BINMAP_WORDS];
    struct heap_info *heap; /* the newest heap (the top chunk's) */
    size_t system_mem;      /* bytes of its heaps in use, sum of sizes */
    size_t nheaps;          /* heaps it owns */
    size_t locks;           /* lock acquisitions */
    size_t contended;       /* of which another thread held the lock */
    size_t consolidations;  /* malloc_consolidate runs */
    bool want_fresh;        /* a calloc asks: record the next top cut */
    mchunk *fresh_chunk;    /* that chunk, and where its never-written */
    char *fresh_from;       /* bytes begin (NULL outside a calloc) */
    /* Guarded by list_lock (arena_process.c). */
    struct arena *next; /* every arena, the main one first */
    unsigned index;     /* 0 for the main arena, then 1, 2, ... */
    /* Guarded by free_lock (arena_process.c). */
    struct arena *next_free; /* arenas with no thread attached */
    size_t attached;         /* threads attached to it */
} arena_t;

/* The chunk that stands for bin i's head (see bins[] above). */
static inline mchunk *bin_at(arena_t *a, unsigned i)
{
    return (mchunk *)((char *)&a->bins[(i - 1) * 2] - OFF_FD);
}
#define unsorted_chunks(a) bin_at((a), 1)

/*
 * A heap: ARENA_HEAP_SIZE bytes of address space, aligned to that size,
 * reserved with no access; its first `size` bytes are in use, its first
 * `committed` bytes are read-write. The header sits at the start, so that
 * heap_of(chunk) is a mask. A thread arena's first heap holds the arena
 * struct right after the header.
 *
 *   size <= committed <= reserved <= ARENA_HEAP_SIZE, page multiples
 */
typedef struct heap_info {
    uintptr_t magic;        /* HEAP_MAGIC ^ its own address */
    arena_t *ar;            /* the arena it belongs to */
    struct heap_info *prev; /* the arena's next older heap, or NULL */
    size_t size;            /* bytes in use from the start (glibc's size) */
    size_t committed;       /* bytes read-write (glibc's mprotect_size) */
    size_t reserved;        /* bytes of address space: ARENA_HEAP_SIZE, or
                               less under an address-space limit */
    char *clean;            /* bytes from here on, up to `committed`, are
                               known to be zero: never written since the
                               OS gave them (calloc skips clearing them) */
} heap_info;

#define HEAP_MAGIC ((uintptr_t)0x05A7E4A45EA9u)

static inline heap_info *heap_of(const void *p)
{
    return (heap_info *)((uintptr_t)p & ~(ARENA_HEAP_SIZE - 1));
}

extern arena_t main_arena;

/* The first chunk of heap h: after the header, and for a thread arena's
 * first heap after its arena struct too, 16-byte aligned. */
static inline mchunk *heap_first_chunk(const heap_info *h)
{
    uintptr_t start = (uintptr_t)(h + 1);
    if (h->ar == (const arena_t *)(h + 1)) /* a thread arena's first heap */
        start = (uintptr_t)((const arena_t *)start + 1);
    return (mchunk *)((start + ALIGN_MASK) & ~(uintptr_t)ALIGN_MASK);
}

/* ---- Threads and their caches ------------------------------------------- */

/* Checked builds: freed blocks a thread holds back before really freeing
 * them, so that a use after free lands in memory nobody reuses yet. */
#define QUARANTINE 16

enum { THREAD_NEW, THREAD_RUNNING, THREAD_DEAD };

/*
 * A thread's own state, in thread-local storage: its cache, its arena, and
 * (checked builds) its quarantine. No lock: only its thread changes it.
 * counts[] is stored with relaxed atomics so that arena_dump, in another
 * thread, may read it; the lists themselves are never read from outside.
 *
 *   counts[i] == the length of list i <= limit
 *   every chunk on list i is in use (to its arena) and of size 32 + 16 i
 */
typedef struct arena_thread {
    uint16_t counts[TCACHE_BINS]; /* chunks on each list */
    void *entries[TCACHE_BINS];   /* each list's first payload, a plain
                                     pointer; the next ones are linked
                                     through each payload's first word,
                                     safe-linked, and its second word holds
                                     tcache_key (a double free's sign) */
    uint16_t limit; /* chunks per list at most: 0 until the thread has
                       started, and again once it has ended */
    uint8_t state;  /* THREAD_NEW, THREAD_RUNNING, THREAD_DEAD */
    arena_t *arena; /* the arena it allocates from, once started */
    unsigned id;    /* 1, 2, 3, ... in the order threads started */
    struct arena_thread *next, *prev; /* running threads (threads_lock) */
#if CHECKED
    void *quarantine[QUARANTINE]; /* payloads, oldest at q_first */
    size_t q_first, q_count;
#endif
} arena_thread;

/* The random value a per-thread cache entry's second word holds, and the
 * one a fast-bin chunk's holds: a free that finds it there is probably a
 * double free, and the list is searched to make sure. */
extern uintptr_t tcache_key, fastbin_key;

/* Puts chunk c (size index tidx) on the calling thread's list. */
static inline void tcache_put(arena_thread *t, mchunk *c, size_t tidx)
{
    char *e = chunk2mem(c);
    word_set(e, (size_t)(uintptr_t)protect_ptr(e, t->entries[tidx]));
    word_set(e + SIZE_SZ, tcache_key);
    t->entries[tidx] = e;
    __atomic_store_n(&t->counts[tidx], (uint16_t)(t->counts[tidx] + 1),
                     __ATOMIC_RELAXED);
}

/* Takes the first chunk of list tidx (which is not empty) off the calling
 * thread's cache; its payload. The head must be aligned: a link that an
 * overflow or a use after free overwrote decodes (safe-linking) to a
 * misaligned address, caught here before it is handed out. */
static inline void *tcache_get(arena_thread *t, size_t tidx)
{
    char *e = t->entries[tidx];
    if (!aligned_ok(e))
        arena_fatal("arena_malloc", e,
                    "corrupted per-thread cache: an unaligned chunk "
                    "(safe-linking: a freed block's link was overwritten)");
    t->entries[tidx] = protect_ptr(e, (void *)(uintptr_t)word_get(e));
    __atomic_store_n(&t->counts[tidx], (uint16_t)(t->counts[tidx] - 1),
                     __ATOMIC_RELAXED);
    word_set(e + SIZE_SZ, 0); /* no longer carries the cache's key */
    return e;
}

/* ---- Settings and counters -------------------------------------------------
 *
 * Read and written with relaxed atomics through param_get/param_set: any
 * thread may change a setting while others read it, and a moving threshold
 * is written by whichever thread frees a mapped chunk.
 */
typedef struct arena_params {
    size_t tcache_count;   /* for threads that start from now on */
    size_t max_fast;       /* a chunk size: fast bins take chunks <= it */
    size_t mmap_threshold; /* chunk sizes from this on: a mapping */
    size_t trim_threshold; /* a top chunk above it is trimmed */
    size_t top_pad;        /* committed beyond a request; kept at a trim */
    size_t arena_max;      /* 0: 8 per core */
    size_t dyn_threshold;  /* 1: the mmap threshold moves (until set) */
} arena_params;

extern arena_params mp;

static inline size_t param_get(const size_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void param_set(size_t *p, size_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Counters of the calls to the OS and of the footprint, for arena_stats. */
typedef struct arena_os {
    size_t mmaps, munmaps, mprotects, madvises, mremaps;
    size_t footprint, peak_footprint;
    size_t mmapped_chunks, mmapped_bytes;
} arena_os;

extern arena_os os_count;

static inline void os_add(size_t *counter, size_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
void footprint_add(size_t n);
void footprint_sub(size_t n);

/* The list of chunks with a mapping of their own (arena_heap.c): each
 * mapping starts with this header, then the chunk. */
typedef struct mmap_link {
    struct mmap_link *next, *prev; /* a ring through mmap_list */
    size_t len;                    /* bytes of the mapping */
    size_t off;                    /* where its chunk starts: 32, more
                                      after an aligned allocation */
} mmap_link;
#define MMAP_LINKS ((size_t)sizeof(mmap_link)) /* 32: chunk offset */
extern pthread_mutex_t mmap_lock;
extern mmap_link mmap_list; /* a ring through its head */

/* ---- Between the files -------------------------------------------------- */

/* arena.c: the bins and the request and free paths; the caller holds a's
 * lock. int_malloc returns a payload or NULL (errno ENOMEM); t, if not
 * NULL, receives spare chunks of the requested size in its cache. */
void arena_init_state(arena_t *a);
void *int_malloc(arena_t *a, size_t nb, arena_thread *t);
void int_free(arena_t *a, mchunk *p, size_t size);
void int_free_merge(arena_t *a, mchunk *p, size_t size);
bool fastbin_holds(const arena_t *a, unsigned idx, const mchunk *p);
void unsorted_insert(arena_t *a, mchunk *c, size_t size);
void malloc_consolidate(arena_t *a);
void unlink_chunk(arena_t *a, mchunk *p, const char *fn);
mchunk *split_top(arena_t *a, size_t nb);
void *int_realloc(arena_t *a, mchunk *oldp, size_t oldsize, size_t nb);
void *int_memalign(arena_t *a, size_t align, size_t nb);

/* arena_heap.c: heaps, the top chunk's growth and trim, mapped chunks. */
void *sysmalloc(arena_t *a, size_t nb);
heap_info *new_heap(size_t size, size_t pad, bool smaller);
void delete_heap(heap_info *h);
bool heap_trim(arena_t *a, size_t pad, bool force);
void *mmap_chunk(size_t nb);
void free_mmapped(mchunk *c, const char *fn);
mchunk *mremap_chunk(mchunk *c, size_t nb);
size_t trim_interiors(arena_t *a);
void heap_commit_noaccess(char *from, size_t n);
size_t page_size(void);

/*
 * An arena's lock. glibc's flag that the process has one thread, which its
 * pthread_create clears before the new thread runs: while it is set, no
 * other thread can hold or take an arena lock, and the lock is skipped
 * (glibc's own malloc does the same, its SINGLE_THREAD_P). The flag can
 * change only in the thread that creates a thread, never between a lock
 * and its unlock (the allocator creates none). Declared weak: on a C
 * library without it the locks are always taken. The counts are for the
 * figures (arena_stats): acquisitions, and those that had to wait.
 */
extern char __libc_single_threaded __attribute__((weak));

static inline bool single_threaded(void)
{
    return &__libc_single_threaded != NULL &&
           __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED) != 0;
}

static inline void arena_lock(arena_t *a)
{
    if (!single_threaded() && pthread_mutex_trylock(&a->lock) != 0) {
        pthread_mutex_lock(&a->lock);
        a->contended++;
    }
    a->locks++;
}

static inline void arena_unlock(arena_t *a)
{
    if (!single_threaded())
        pthread_mutex_unlock(&a->lock);
}

/* arena_thread.c: the calling thread's state; a chunk given back to its
 * arena (the cache's flush); in checked builds, the trailer word's place
 * and a block's free for real (a quarantine's flush). */
arena_thread *thread_self(void);
void free_to_arena(mchunk *c, size_t size, size_t h, const char *fn);
#if CHECKED
char *trailer_at(const mchunk *c);
void release_chunk(arena_thread *t, mchunk *c, const char *fn);
#endif

/* arena_process.c: a thread's first call (its arena and cache), the arena
 * to try when its own failed, the cache given back; the arena list and the
 * threads, for the checker. */
arena_t *thread_start(arena_thread *t);
arena_t *retry_arena(arena_thread *t, arena_t *failed);
void flush_cache(arena_thread *t);
arena_t *arena_list_first(void);
void process_start_once(void);
void threads_foreach(void (*fn)(const arena_thread *t, void *arg), void *arg);
extern pthread_mutex_t list_lock;

#endif /* ARENA_INTERNAL_H */
