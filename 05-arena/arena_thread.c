/*
 * arena_thread.c: the calls a thread makes (malloc, free, calloc, realloc,
 * memalign), with the per-thread cache in front of its arena, and the
 * checked builds' trailer and quarantine. The arenas themselves, the
 * threads attached to them, fork and the settings are in arena_process.c.
 * See arena.c for the overview.
 *
 * ---- The per-thread cache (glibc's tcache, since 2.26) ------------------
 *
 * Each thread keeps, in thread-local storage, 64 singly linked lists of
 * free chunks, one per chunk size from 32 to 1040 bytes (requests up to
 * 1032), at most 7 chunks each by default. malloc takes from the list of
 * its size and free puts back onto it, with no lock and no atomic
 * instruction: a dozen instructions each way (arena_malloc, arena_free).
 * To its arena a cached chunk is still in use, so it is never merged with
 * its neighbours; the cost is up to 7 x 64 chunks per thread kept out of
 * reach of other threads and of coalescing. A miss goes to the arena (its
 * lock), and the arena refills the list with chunks of the same size while
 * it is there (arena.c, steps 2, 3 and 5), so that the next requests of that
 * size hit. A thread's cache goes back to the arenas when it exits (a
 * pthread key's destructor). ARENA_TCACHE_COUNT = 0 turns it off, so that
 * the bench can show what it buys. Stage 07 makes this idea the whole
 * design: a per-thread cache for every size class in front of central
 * lists, and no arenas at all.
 *
 * A chunk in a cache holds, in its payload's first word, the link to the
 * next (safe-linked, see arena_internal.h) and in its second, tcache_key, a
 * random number: free finds a double free by finding the key there and the
 * chunk on the list (glibc's check). The cache accepts any thread's chunks;
 * a chunk goes back to its own arena only when it leaves a cache.
 *
 * ---- Checked builds (ALLOC_DEBUG) -----------------------------------------
 *
 * Every block is followed by a trailer word holding the size requested and
 * 16 check bits (a hash of the size and the chunk's address), written at
 * allocation and verified at free and realloc: an overflow that reaches it
 * is reported. The memory tools need the exact size too (realloc in place
 * tells Valgrind the old size). Without a tool, the bytes between the
 * request and the trailer are filled with SLACK_FILL and verified, so an
 * overflow of a single byte is caught. A free also checks that the block
 * lies in a heap or a mapping of this allocator (a walk of the arenas'
 * heaps), and puts it in the thread's quarantine, a FIFO of 16 blocks,
 * before really freeing the oldest: a use after free then reads memory
 * nobody has been given yet, which the tools report and the fill bytes
 * make visible.
 */
#include "arena_internal.h"

#include <errno.h>
#include <string.h>

#define THREAD_LOCAL __thread __attribute__((tls_model("initial-exec")))

/* This thread's cache and arena (arena_internal.h). Initial-exec TLS: the
 * fast path reaches it at a fixed offset from the thread pointer, with no
 * call (the price: libmalloc.so is for LD_PRELOAD, not for dlopen). */
static THREAD_LOCAL arena_thread self;

arena_thread *thread_self(void)
{
    return &self;
}

_Noreturn void arena_fatal(const char *fn, const void *p, const char *what)
{
    alloc_fatal(STAGE, fn, p, what);
    abort();
}

static void tcache_double_free(arena_thread *t, char *e, size_t tidx,
                               const char *fn);

/* ---- Checked builds: the trailer, the slack, the quarantine ------------- */

#if CHECKED
#define SLACK_FILL 0xC5

/* The word after a block's usable bytes: the next chunk's prev_size word
 * for a heap chunk, the mapping's last word for a mapped one. */
char *trailer_at(const mchunk *c)
{
    size_t h = head_peek(c);
    return (char *)c + (h & ~SIZE_BITS) - ((h & IS_MMAPPED) ? SIZE_SZ : 0);
}

static size_t trailer_word(const mchunk *c, size_t n)
{
    uint64_t x = ((uint64_t)(uintptr_t)c ^ (n * 0x9E3779B97F4A7C15u));
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 29;
    return n | (size_t)(x << 48);
}

/* The size requested for used chunk c, its trailer and slack verified. */
static size_t checked_request(const mchunk *c, const char *fn)
{
    char *tr = trailer_at(c);
    size_t w = word_peek(tr), n = w & (((size_t)1 << 48) - 1);
    char *p = chunk2mem(c);
    if ((size_t)(tr - p) < n || w != trailer_word(c, n))
        arena_fatal(fn, p,
                    "write past the end of the block (its trailer is "
                    "damaged), or not a block of this allocator");
    if (!TRACK_ENABLED)
        for (char *s = p + n; s < tr; s++)
            if ((unsigned char)*s != SLACK_FILL)
                arena_fatal(fn, p,
                            "write past the end of the block (into the bytes "
                            "after it)");
    return n;
}

/* Does chunk c, `size` bytes, lie in a heap of some arena, or in a mapping?
 * A walk of every arena's heaps and of the mapped chunks. */
static bool known_chunk(const mchunk *c, size_t size)
{
    bool found = false;
    const char *end = (const char *)c + size;
    if (end < (const char *)c)
        return false;
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = &main_arena; a != NULL && !found; a = a->next) {
        arena_lock(a);
        for (heap_info *h = a->heap; h != NULL && !found; h = h->prev)
            found = (heap_info *)heap_of(c) == h &&
                    (const char *)c >= (const char *)heap_first_chunk(h) &&
                    end + CHUNK_HDR <= (const char *)h + h->size;
        arena_unlock(a);
    }
    pthread_mutex_unlock(&list_lock);
    pthread_mutex_lock(&mmap_lock);
    for (mmap_link *l = mmap_list.next; l != &mmap_list && !found; l = l->next)
        found = (const char *)c >= (const char *)l + MMAP_LINKS &&
                end <= (const char *)l + l->len;
    pthread_mutex_unlock(&mmap_lock);
    return found;
}
#endif

/* A block handed out: the checked builds' trailer and fills, then (the last
 * thing malloc does) the memory tool is told. */
static inline void *block_out(void *p, size_t n, bool zeroed)
{
#if CHECKED
    mchunk *c = mem2chunk(p);
    char *tr = trailer_at(c);
    word_set(tr, trailer_word(c, n));
    if (!TRACK_ENABLED)
        memset((char *)p + n, SLACK_FILL, (size_t)(tr - (char *)p) - n);
    if (!zeroed)
        track_fill_fresh(p, n);
#endif
    track_malloc(p, n, 0, zeroed);
    return p;
}

#if CHECKED
/*
 * A checked build's free, before anything else touches the block: the
 * block must be one of ours, in use, not in the quarantine or this
 * thread's cache or a fast bin (a double free), its trailer intact. Then
 * the tool is told, the bytes filled, and the block waits in the
 * quarantine; the oldest waiting block is freed for real.
 */
static void checked_free(arena_thread *t, mchunk *c, void *p, const char *fn)
{
    size_t h = head_peek(c), size = h & ~SIZE_BITS;
    if (!known_chunk(c, size))
        arena_fatal(fn, p,
                    "not a block of this allocator (outside every heap and "
                    "mapping)");
    if (!(h & IS_MMAPPED) && !inuse_peek(c, size))
        arena_fatal(fn, p, "double free (the chunk is already free)");
    for (size_t i = 0; i < t->q_count; i++)
        if (t->quarantine[(t->q_first + i) % QUARANTINE] == p)
            arena_fatal(fn, p,
                        "double free (the block waits in the "
                        "quarantine)");
    size_t tidx = csize2tidx(size);
    if (!(h & IS_MMAPPED) && tidx < TCACHE_BINS &&
        word_get((char *)p + SIZE_SZ) == tcache_key)
        tcache_double_free(t, p, tidx, fn);
    if (!(h & IS_MMAPPED) && size <= param_get(&mp.max_fast) &&
        word_get((char *)p + SIZE_SZ) == fastbin_key) {
        arena_t *a = (h & NON_MAIN_ARENA) ? heap_of(c)->ar : &main_arena;
        arena_lock(a);
        bool in_fast = fastbin_holds(a, fastbin_index(size), c);
        arena_unlock(a);
        if (in_fast)
            arena_fatal(fn, p, "double free (the chunk is in a fast bin)");
    }
    size_t n = checked_request(c, fn);
    track_free(p, n, 0);
    track_fill_freed(p, n);
    if (t->q_count == QUARANTINE) {
        void *oldest = t->quarantine[t->q_first];
        t->q_first = (t->q_first + 1) % QUARANTINE;
        t->q_count--;
        release_chunk(t, mem2chunk(oldest), fn);
    }
    t->quarantine[(t->q_first + t->q_count) % QUARANTINE] = p;
    t->q_count++;
}
#endif

void arena_quarantine_flush(void)
{
#if CHECKED
    arena_thread *t = &self;
    while (t->q_count > 0) {
        void *p = t->quarantine[t->q_first];
        t->q_first = (t->q_first + 1) % QUARANTINE;
        t->q_count--;
        release_chunk(t, mem2chunk(p), "arena_quarantine_flush");
    }
    t->q_first = 0;
#endif
}

/* ---- malloc ------------------------------------------------------------- */

static void *malloc_slow(arena_thread *t, size_t n);

/*
 * Step 0 of the request path: the thread's cache, with no lock. The size
 * test, the list's index, a count, a pop: the common case of a program
 * that frees and allocates blocks of the same small sizes. (realloc and
 * memalign call it by this name, not as arena_malloc, so that a count of
 * the instructions inside each public function counts each request once.)
 */
static inline void *thread_malloc(size_t n)
{
    arena_thread *t = &self;
    if (n <= TCACHE_MAX_REQUEST) {
        size_t tidx = csize2tidx(request2size(n));
        if (t->counts[tidx] != 0)
            return block_out(tcache_get(t, tidx), n, false);
    }
    void *p = malloc_slow(t, n);
    return p != NULL ? block_out(p, n, false) : NULL;
}

void *arena_malloc(size_t n)
{
    return thread_malloc(n);
}

/* Steps 1 to 10: the thread's arena under its lock (arena.c). */
static void *malloc_slow(arena_thread *t, size_t n)
{
    if (n > ARENA_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    size_t nb = request2size(n);
    arena_t *a = t->arena != NULL ? t->arena : thread_start(t);
    arena_lock(a);
    void *p = int_malloc(a, nb, t->limit > 0 ? t : NULL);
    arena_unlock(a);
    if (p == NULL && (a = retry_arena(t, a)) != NULL) {
        arena_lock(a);
        p = int_malloc(a, nb, NULL);
        arena_unlock(a);
    }
    return p;
}

/* ---- free --------------------------------------------------------------- */

/* The double-free search of the thread's cache list tidx, once the key
 * was found in the block (glibc's "double free detected in tcache 2"). */
static void tcache_double_free(arena_thread *t, char *e, size_t tidx,
                               const char *fn)
{
    size_t n = 0;
    for (char *x = t->entries[tidx]; x != NULL;
         x = protect_ptr(x, (void *)(uintptr_t)word_get(x))) {
        if (++n > TCACHE_MAX_COUNT || !aligned_ok(x))
            arena_fatal(fn, e, "corrupted per-thread cache list");
        if (x == e)
            arena_fatal(fn, e,
                        "double free (the block is in this thread's "
                        "cache)");
    }
}

/* The arena of a heap chunk: the main one (A clear), or the one its heap's
 * header names, that header checked first. */
static arena_t *arena_of(const mchunk *c, size_t h, const char *fn)
{
    if (!(h & NON_MAIN_ARENA))
        return &main_arena;
    heap_info *hp = heap_of(c);
    if (hp->magic != (HEAP_MAGIC ^ (uintptr_t)hp))
        arena_fatal(fn, chunk2mem(c),
                    "invalid pointer (no heap of this allocator holds it)");
    return hp->ar;
}

/* Steps 1 to 5 of free, in the chunk's own arena. The chunk must lie inside
 * one of the arena's heaps (glibc checks the main arena's bounds the same
 * way). errno is kept by heap_trim, which is what may call the OS here. */
static inline void to_arena(mchunk *c, size_t size, size_t h, const char *fn)
{
    arena_t *a = arena_of(c, h, fn);
    arena_lock(a);
    heap_info *hp = a->heap;
    while (hp != NULL && hp != heap_of(c))
        hp = hp->prev;
    if (hp == NULL || (char *)c < (char *)heap_first_chunk(hp) ||
        (char *)c + size > (char *)hp + hp->size)
        arena_fatal(fn, chunk2mem(c),
                    "invalid pointer (outside every heap of its arena)");
    int_free(a, c, size);
    arena_unlock(a);
}

/* The same, for the cache's flush (arena_process.c); free's own path has
 * it inline. */
void free_to_arena(mchunk *c, size_t size, size_t h, const char *fn)
{
    to_arena(c, size, h, fn);
}

/*
 * The part of a free after the per-thread cache said no: a mapped chunk is
 * unmapped; a thread that frees before it ever allocated starts (so that
 * it gets a cache, as glibc's free gives it one) and offers the chunk to
 * its new cache; else the chunk goes to its arena. Never inlined: free's
 * fast path (the cache) then saves no registers for it, and calls it last.
 */
__attribute__((noinline)) static void free_chunk(arena_thread *t, mchunk *c,
                                                 size_t h, const char *fn)
{
    size_t size = h & ~SIZE_BITS;
    if (h & IS_MMAPPED) {
        free_mmapped(c, fn);
        return;
    }
    if (size < MINSIZE || (size & ALIGN_MASK) != 0)
        arena_fatal(fn, chunk2mem(c), "invalid size");
    size_t tidx = csize2tidx(size);
    if (t->state == THREAD_NEW && tidx < TCACHE_BINS) {
        thread_start(t);
        if (t->counts[tidx] < t->limit) {
            tcache_put(t, c, tidx);
            return;
        }
    }
    to_arena(c, size, h, fn);
}

#if CHECKED
/* A checked build's free for real, when a block leaves the quarantine: the
 * thread's cache if it has room (the double-free search when the key is
 * there), else free_chunk: what arena_free does in a release build. */
void release_chunk(arena_thread *t, mchunk *c, const char *fn)
{
    size_t h = head_peek(c), size = h & ~SIZE_BITS;
    size_t tidx = csize2tidx(size);
    if (tidx < TCACHE_BINS && !(h & IS_MMAPPED) && (size & ALIGN_MASK) == 0) {
        char *e = chunk2mem(c);
        if (word_get(e + SIZE_SZ) == tcache_key)
            tcache_double_free(t, e, tidx, fn);
        if (t->counts[tidx] < t->limit) {
            tcache_put(t, c, tidx);
            return;
        }
    }
    free_chunk(t, c, h, fn);
}
#endif

/*
 * Step 0 of free. The cheap checks glibc makes on every free (the pointer
 * aligned, the size not running past the end of memory), then the cache.
 * errno is saved only where the OS is called (heap_trim and free_mmapped
 * keep it): nothing on the other paths can change it.
 */
static inline void thread_free(void *p)
{
    if (p == NULL)
        return;
    mchunk *c = mem2chunk(p);
    size_t h = head_peek(c), size = h & ~SIZE_BITS;
    if ((uintptr_t)c > (uintptr_t)0 - size || !aligned_ok(c))
        arena_fatal("arena_free", p,
                    "invalid pointer (misaligned, or not a block)");
#if CHECKED
    checked_free(&self, c, p, "arena_free");
#else
    arena_thread *t = &self;
    size_t tidx = csize2tidx(size);
    if (tidx < TCACHE_BINS && !(h & IS_MMAPPED) && (size & ALIGN_MASK) == 0) {
        char *e = p;
        if (word_get(e + SIZE_SZ) == tcache_key)
            tcache_double_free(t, e, tidx, "arena_free");
        if (t->counts[tidx] < t->limit) {
            tcache_put(t, c, tidx);
            return;
        }
    }
    free_chunk(t, c, h, "arena_free");
#endif
}

void arena_free(void *p)
{
    thread_free(p);
}

/* ---- calloc, realloc, memalign, usable size ----------------------------- */

/* Bytes at the start of block p (n bytes, just handed out by arena a, whose
 * lock the caller holds) that may hold old data: all of them, unless p was
 * just cut from the top, where only those below the clean mark of that
 * moment may (or it has a mapping of its own: all fresh). */
static size_t dirty_bytes(const arena_t *a, const char *p, size_t n)
{
    const mchunk *c = mem2chunk(p);
    if (head(c) & IS_MMAPPED)
        return 0;
    if (c != a->fresh_chunk)
        return n;
    if (p >= a->fresh_from)
        return 0;
    return (size_t)(a->fresh_from - p) < n ? (size_t)(a->fresh_from - p) : n;
}

/* A chunk of nb bytes from arena a for a calloc of n, and in *dirty how
 * many of its first bytes must be cleared. The arena records the top cut
 * for this request only: a pointer to a block's start left in the arena
 * would make the memory tools' leak check see a leaked block as reachable. */
static char *calloc_in(arena_t *a, size_t nb, size_t n, arena_thread *t,
                       size_t *dirty)
{
    arena_lock(a);
    a->want_fresh = true;
    a->fresh_chunk = NULL;
    char *p = int_malloc(a, nb, t);
    if (p != NULL)
        *dirty = dirty_bytes(a, p, n);
    a->want_fresh = false;
    a->fresh_chunk = NULL;
    a->fresh_from = NULL;
    arena_unlock(a);
    return p;
}

/* calloc, as glibc's: it goes to the arena (not the cache), which knows how
 * much of the chunk it hands out has never been written. */
void *arena_calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n) || n > ARENA_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    arena_thread *t = &self;
    arena_t *a = t->arena != NULL ? t->arena : thread_start(t);
    size_t nb = request2size(n), dirty = n;
    char *p = calloc_in(a, nb, n, t->limit > 0 ? t : NULL, &dirty);
    if (p == NULL && (a = retry_arena(t, a)) != NULL)
        p = calloc_in(a, nb, n, NULL, &dirty);
    if (p == NULL)
        return NULL;
    block_out(p, n, true);
    memset(p, 0, dirty);
    return p;
}

/* memalign through the thread's arena (int_memalign, arena.c). */
void *arena_memalign(size_t align, size_t n)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (align <= ARENA_ALIGN)
        return thread_malloc(n);
    if (n > ARENA_MAX_REQUEST || align > ARENA_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < MINSIZE)
        align = MINSIZE;
    arena_thread *t = &self;
    arena_t *a = t->arena != NULL ? t->arena : thread_start(t);
    size_t nb = request2size(n);
    arena_lock(a);
    void *p = int_memalign(a, align, nb);
    arena_unlock(a);
    if (p == NULL && (a = retry_arena(t, a)) != NULL) {
        arena_lock(a);
        p = int_memalign(a, align, nb);
        arena_unlock(a);
    }
    return p != NULL ? block_out(p, n, false) : NULL;
}

/*
 * realloc: in place when it can (shrink, grow into the next free chunk or
 * the top, or mremap a mapped chunk), else a move: malloc, copy, free. The
 * memory tools see an in-place change as a resize of the same block. Under
 * a tool a mapped chunk is moved by copying, not mremap: the tools would
 * not follow the pages.
 */
void *arena_realloc(void *p, size_t n)
{
    if (p == NULL)
        return thread_malloc(n);
    if (n == 0) {
        thread_free(p);
        return NULL;
    }
    if (n > ARENA_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    mchunk *c = mem2chunk(p);
    size_t h = head_peek(c), size = h & ~SIZE_BITS;
    if ((uintptr_t)c > (uintptr_t)0 - size || !aligned_ok(c))
        arena_fatal("arena_realloc", p, "invalid pointer");
    size_t old;
#if CHECKED
    arena_thread *t = &self;
    if (!known_chunk(c, size))
        arena_fatal("arena_realloc", p,
                    "not a block of this allocator (outside every heap and "
                    "mapping)");
    for (size_t i = 0; i < t->q_count; i++)
        if (t->quarantine[(t->q_first + i) % QUARANTINE] == p)
            arena_fatal("arena_realloc", p, "realloc of a freed block");
    if (!(h & IS_MMAPPED) && !inuse_peek(c, size))
        arena_fatal("arena_realloc", p, "realloc of a freed block");
    old = checked_request(c, "arena_realloc");
#else
    if (!(h & IS_MMAPPED) && !inuse_peek(c, size))
        arena_fatal("arena_realloc", p, "realloc of a freed block");
    old = size - ((h & IS_MMAPPED) ? CHUNK_HDR : SIZE_SZ);
#endif
    size_t nb = request2size(n);
    char *q = NULL;
    if (h & IS_MMAPPED) {
        if (!TRACK_ENABLED) {
            mchunk *nc = mremap_chunk(c, nb);
            q = nc != NULL ? chunk2mem(nc) : NULL;
        }
        if (q == NULL && size >= nb + SIZE_SZ && size < 2 * nb)
            q = p; /* it fits: keep it (and its mapping) */
    } else {
        if (size < MINSIZE || (size & ALIGN_MASK) != 0)
            arena_fatal("arena_realloc", p, "invalid size");
        arena_t *a = arena_of(c, h, "arena_realloc");
        arena_lock(a);
        q = int_realloc(a, c, size, nb);
        arena_unlock(a);
    }
    if (q != NULL) {
#if CHECKED
        mchunk *qc = mem2chunk(q);
        char *tr = trailer_at(qc);
        word_set(tr, trailer_word(qc, n));
        if (!TRACK_ENABLED) {
            if (n > old)
                track_fill_fresh(q + old, n - old);
            memset(q + n, SLACK_FILL, (size_t)(tr - q) - n);
        }
#endif
        track_resize(q, old, n, 0);
        return q;
    }
    q = thread_malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    thread_free(p);
    return q;
}

size_t arena_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    const mchunk *c = mem2chunk(p);
    size_t h = head_peek(c), size = h & ~SIZE_BITS;
#if CHECKED
    if (!(h & IS_MMAPPED) && !inuse_peek(c, size))
        arena_fatal("arena_usable_size", p, "block already freed");
    return checked_request(c, "arena_usable_size");
#else
    if (h & IS_MMAPPED)
        return size - CHUNK_HDR;
    return inuse_peek(c, size) ? size - SIZE_SZ : 0;
#endif
}

size_t arena_chunk_size(size_t n)
{
    return request2size(n);
}
