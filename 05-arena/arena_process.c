/*
 * arena_process.c: what the threads of a process share: the arenas and the
 * rules that attach a thread to one, a thread's start and exit, fork, the
 * settings, trim, the figures, and teardown. The calls themselves and the
 * per-thread cache are in arena_thread.c; see arena.c for the overview.
 *
 * ---- Arenas and threads --------------------------------------------------
 *
 * The first thread that allocates gets the main arena. Every other thread,
 * at its first call, gets an arena of its own, glibc's rule:
 *   1. an arena whose threads have all exited, if there is one (the free
 *      list of arenas);
 *   2. else a new arena, while there are fewer than 8 per core (or
 *      ARENA_ARENA_MAX): a new heap, whose start holds the arena struct;
 *   3. else an existing one, round robin from the last one handed out,
 *      preferring one whose lock is free at that instant.
 * A thread stays on its arena and blocks on its lock when another thread
 * holds it; it moves only when an allocation fails in its arena: from a
 * thread arena to the main arena for that one request, from the main arena
 * to another (and it stays there). The original ptmalloc moved a thread to
 * another arena whenever its lock was busy; glibc gave that up because a
 * thread's data then spreads over every arena. This stage does what glibc
 * does and does not offer the other rule.
 *
 * Locks, and the order they are taken in: list_lock (the list of arenas)
 * before any arena's lock; an arena's lock before mmap_lock (the mapped
 * chunks); free_lock (attached counts, the free list) and threads_lock (the
 * running threads) are taken with no other lock held. No lock is global to
 * allocation: a free locks the chunk's own arena.
 *
 * ---- fork ------------------------------------------------------------------
 *
 * The child of a threaded program has one thread, and a copy of every lock
 * as it was: one held by another thread at that instant stays held forever.
 * So the prepare handler takes every lock (stdio's list lock first, then
 * ours, in the order above), the parent handler releases them, and the
 * child handler re-initialises them and rebuilds the free list of arenas
 * (every arena but the forking thread's has no thread left). Stdio's lock
 * comes first because glibc's fork takes it after the prepare handlers:
 * a thread in getline holds a FILE lock and waits for an arena lock, a
 * thread in fflush(NULL) holds the list lock and waits for that FILE; a
 * prepare handler that took the arena locks first would then wait for the
 * list lock forever. glibc exports the list lock for this (_IO_list_lock,
 * declared weak here so that the code still links elsewhere). What cannot be
 * made safe: a signal handler that calls fork while its own thread is
 * inside malloc (the prepare handler would wait for a lock its thread
 * holds). POSIX.1-2024 no longer lists fork as async-signal-safe and
 * glibc's own malloc hangs there too; a handler calls _Fork instead, which
 * runs no handlers (the shim tests check that it works).
 */
#include "arena_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

arena_t main_arena = {.lock = PTHREAD_MUTEX_INITIALIZER};

arena_params mp = {
    .tcache_count = TCACHE_DEFAULT,
    .max_fast = DEFAULT_MAX_FAST,
    .mmap_threshold = (size_t)128 * 1024,
    .trim_threshold = (size_t)128 * 1024,
    .top_pad = (size_t)128 * 1024,
    .arena_max = 0,
    .dyn_threshold = 1,
};
static const arena_params mp_defaults = {
    .tcache_count = TCACHE_DEFAULT,
    .max_fast = DEFAULT_MAX_FAST,
    .mmap_threshold = (size_t)128 * 1024,
    .trim_threshold = (size_t)128 * 1024,
    .top_pad = (size_t)128 * 1024,
    .arena_max = 0,
    .dyn_threshold = 1,
};

uintptr_t tcache_key, fastbin_key;

pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t narenas = 1;     /* arenas created (list_lock) */
static size_t narenas_limit;   /* computed at the first need (list_lock) */
static arena_t *next_to_use;   /* round robin of rule 3 (list_lock) */
static arena_t *free_list;     /* arenas with no thread (free_lock) */
static bool main_taken;        /* the main arena went to a thread */
static arena_thread *threads;  /* running threads (threads_lock) */
static unsigned thread_ids;    /* the last id given (threads_lock) */
static pthread_key_t exit_key; /* its destructor flushes a cache */
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg);
static arena_t *arena_get2(const arena_t *avoid);

/* ---- Locks -------------------------------------------------------------- */

arena_t *arena_list_first(void)
{
    return &main_arena;
}

void threads_foreach(void (*fn)(const arena_thread *t, void *arg), void *arg)
{
    pthread_mutex_lock(&threads_lock);
    for (arena_thread *t = threads; t != NULL; t = t->next)
        fn(t, arg);
    pthread_mutex_unlock(&threads_lock);
}

/* ---- Arenas and threads ------------------------------------------------- */

/* A random key, from getrandom if it can, else from the clock and an
 * address (then it is only hard to guess, not secret). */
static uintptr_t random_key(void)
{
    uintptr_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uintptr_t)ts.tv_nsec * 0x9E3779B97F4A7C15u ^ (uintptr_t)&k;
    }
    return k | 1; /* never 0, which a fresh payload often holds */
}

/* Once per process: the main arena's bins, the keys, the exit hook. Nothing
 * here allocates (the shim's malloc may be the caller). */
static void process_start(void)
{
    arena_init_state(&main_arena);
    tcache_key = random_key();
    fastbin_key = random_key();
    pthread_key_create(&exit_key, thread_exit);
}

void process_start_once(void)
{
    pthread_once(&start_once, process_start);
}

static size_t arena_limit(void)
{
    size_t max = param_get(&mp.arena_max);
    if (max != 0)
        return max;
    if (narenas_limit == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        narenas_limit = 8 * (size_t)(n > 0 ? n : 2);
    }
    return narenas_limit;
}

/* Rule 2: a new arena, in a new heap whose start holds the arena struct. */
static arena_t *new_arena(void)
{
    heap_info *h =
        new_heap(sizeof(heap_info) + sizeof(arena_t) + CHUNK_HDR + MINSIZE,
                 param_get(&mp.top_pad), false);
    if (h == NULL)
        return NULL;
    arena_t *a = (arena_t *)(h + 1);
    track_mem_undefined(a, sizeof *a);
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    arena_init_state(a);
    h->ar = a;
    a->heap = h;
    a->nheaps = 1;
    a->system_mem = h->size;
    mchunk *top = heap_first_chunk(h);
    set_head(top, (size_t)((char *)h + h->size - (char *)top) | PREV_INUSE);
    h->clean = (char *)top + CHUNK_HDR;
    a->top = top;
    a->attached = 1;
    pthread_mutex_lock(&list_lock);
    arena_t *last = &main_arena;
    while (last->next != NULL)
        last = last->next;
    a->index = last->index + 1;
    last->next = a;
    pthread_mutex_unlock(&list_lock);
    return a;
}

/* Rule 3: an existing arena, round robin, one whose lock is free if any. */
static arena_t *reused_arena(const arena_t *avoid)
{
    pthread_mutex_lock(&list_lock);
    if (next_to_use == NULL)
        next_to_use = &main_arena;
    arena_t *r = next_to_use;
    do {
        if (r != avoid && pthread_mutex_trylock(&r->lock) == 0) {
            pthread_mutex_unlock(&r->lock);
            goto out;
        }
        r = r->next != NULL ? r->next : &main_arena;
    } while (r != next_to_use);
    if (r == avoid) /* every lock is busy: the next in line, waited for */
        r = r->next != NULL ? r->next : &main_arena;
out:
    next_to_use = r->next != NULL ? r->next : &main_arena;
    pthread_mutex_unlock(&list_lock);
    pthread_mutex_lock(&free_lock);
    for (arena_t **pp = &free_list; *pp != NULL; pp = &(*pp)->next_free)
        if (*pp == r) {
            *pp = r->next_free;
            break;
        }
    r->attached++;
    pthread_mutex_unlock(&free_lock);
    return r;
}

/* Rules 1 to 3 (glibc's arena_get2). The arena comes attached. */
static arena_t *arena_get2(const arena_t *avoid)
{
    pthread_mutex_lock(&free_lock);
    arena_t *a = free_list;
    if (a != NULL) {
        free_list = a->next_free;
        a->attached = 1;
    }
    pthread_mutex_unlock(&free_lock);
    if (a != NULL)
        return a;
    pthread_mutex_lock(&list_lock);
    bool room = narenas < arena_limit();
    if (room)
        narenas++;
    pthread_mutex_unlock(&list_lock);
    if (room && (a = new_arena()) == NULL) {
        pthread_mutex_lock(&list_lock);
        narenas--; /* no heap (an address-space limit?): share instead */
        pthread_mutex_unlock(&list_lock);
    }
    return a != NULL ? a : reused_arena(avoid);
}

/*
 * An arena to try after `failed` could not serve a request (glibc's
 * arena_get_retry): from a thread arena, the main arena for this request;
 * from the main arena, another one, which the thread keeps. NULL if none.
 */
arena_t *retry_arena(arena_thread *t, arena_t *failed)
{
    if (failed != &main_arena)
        return &main_arena;
    if (t->state != THREAD_RUNNING)
        return NULL;
    arena_t *a = arena_get2(failed);
    if (a == NULL || a == failed)
        return NULL;
    pthread_mutex_lock(&free_lock);
    if (t->arena != NULL)
        t->arena->attached--; /* stays off the free list: glibc's rule */
    pthread_mutex_unlock(&free_lock);
    t->arena = a;
    return a;
}

/*
 * A thread's first call: its cache's bound, its arena, its place among the
 * running threads, and the destructor that flushes its cache at exit. A
 * thread that has ended (a destructor that allocates) uses the main arena
 * without a cache, attached to nothing.
 */
arena_t *thread_start(arena_thread *t)
{
    pthread_once(&start_once, process_start);
    if (t->state == THREAD_DEAD)
        return &main_arena;
    arena_t *a = NULL;
    pthread_mutex_lock(&free_lock);
    if (!main_taken) {
        main_taken = true;
        main_arena.attached = 1;
        a = &main_arena;
    }
    pthread_mutex_unlock(&free_lock);
    if (a == NULL)
        a = arena_get2(NULL);
    t->arena = a;
    t->limit = (uint16_t)param_get(&mp.tcache_count);
    t->state = THREAD_RUNNING;
    pthread_mutex_lock(&threads_lock);
    t->id = ++thread_ids;
    t->prev = NULL;
    t->next = threads;
    if (threads != NULL)
        threads->prev = t;
    threads = t;
    pthread_mutex_unlock(&threads_lock);
    /* Last, with no lock held: with many keys in use, glibc allocates the
     * thread's second-level key table here, with calloc, which may be ours:
     * the thread is ready for it now. */
    pthread_setspecific(exit_key, t);
    return a;
}

/* Gives every chunk of t's cache (and quarantine) back to its arena. */
void flush_cache(arena_thread *t)
{
    uint16_t limit = t->limit;
    t->limit = 0; /* nothing is cached while it empties */
#if CHECKED
    while (t->q_count > 0) {
        void *p = t->quarantine[t->q_first];
        t->q_first = (t->q_first + 1) % QUARANTINE;
        t->q_count--;
        release_chunk(t, mem2chunk(p), "arena_thread_flush");
    }
    t->q_first = 0;
#endif
    for (size_t i = 0; i < TCACHE_BINS; i++)
        while (t->counts[i] != 0) {
            mchunk *c = mem2chunk(tcache_get(t, i));
            size_t h = head(c);
            free_to_arena(c, h & ~SIZE_BITS, h, "arena_thread_flush");
        }
    t->limit = limit;
}

void arena_thread_flush(void)
{
    flush_cache(thread_self());
}

/* The pthread key's destructor, at the thread's exit: its cache goes back,
 * its arena loses a thread (and joins the free list with its last). */
static void thread_exit(void *arg)
{
    arena_thread *t = arg;
    flush_cache(t);
    t->limit = 0;
    t->state = THREAD_DEAD;
    arena_t *a = t->arena;
    t->arena = NULL;
    pthread_mutex_lock(&threads_lock);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        threads = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&threads_lock);
    if (a == NULL)
        return;
    pthread_mutex_lock(&free_lock);
    if (a->attached > 0 && --a->attached == 0) {
        a->next_free = free_list;
        free_list = a;
    }
    pthread_mutex_unlock(&free_lock);
}

/* ---- fork --------------------------------------------------------------- */

extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void)
{
    if (_IO_list_lock)
        _IO_list_lock(); /* stdio's first: see "fork" above */
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = &main_arena; a != NULL; a = a->next)
        pthread_mutex_lock(&a->lock);
    pthread_mutex_lock(&mmap_lock);
    pthread_mutex_lock(&free_lock);
    pthread_mutex_lock(&threads_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&threads_lock);
    pthread_mutex_unlock(&free_lock);
    pthread_mutex_unlock(&mmap_lock);
    for (arena_t *a = &main_arena; a != NULL; a = a->next)
        pthread_mutex_unlock(&a->lock);
    pthread_mutex_unlock(&list_lock);
    if (_IO_list_unlock)
        _IO_list_unlock();
}

/* The child's one thread: every lock new, every arena but its own free. The
 * list lock was already reset by fork in the child; resetting it again is
 * harmless (unlocking it would drive its count below zero). */
static void fork_child(void)
{
    arena_thread *self = thread_self();
    pthread_mutex_init(&threads_lock, NULL);
    pthread_mutex_init(&free_lock, NULL);
    pthread_mutex_init(&mmap_lock, NULL);
    free_list = NULL;
    for (arena_t *a = &main_arena; a != NULL; a = a->next) {
        pthread_mutex_init(&a->lock, NULL);
        a->attached = a == self->arena ? 1 : 0;
        if (a != self->arena) {
            a->next_free = free_list;
            free_list = a;
        }
    }
    main_taken = true;
    pthread_mutex_init(&list_lock, NULL);
    threads = self->state == THREAD_RUNNING ? self : NULL;
    self->next = self->prev = NULL;
    if (_IO_list_resetlock)
        _IO_list_resetlock();
}

/* At load time, before main: registered this early, the prepare handler
 * runs after the handlers of libraries loaded later, which may allocate. */
__attribute__((constructor)) static void arena_start(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- Settings ----------------------------------------------------------- */

/* Every arena's fast bins merged: before the fast-bin bound changes. */
static void consolidate_all(void)
{
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = &main_arena; a != NULL; a = a->next) {
        arena_lock(a);
        if (a->heap != NULL)
            malloc_consolidate(a);
        arena_unlock(a);
    }
    pthread_mutex_unlock(&list_lock);
}

int arena_set(arena_param param, size_t value)
{
    arena_thread *self = thread_self();
    pthread_once(&start_once, process_start);
    switch (param) {
    case ARENA_TCACHE_COUNT:
        if (value > TCACHE_MAX_COUNT)
            break;
        param_set(&mp.tcache_count, value);
        if (self->state == THREAD_RUNNING) {
            flush_cache(self);
            self->limit = (uint16_t)value;
        }
        return 0;
    case ARENA_MAX_FAST:
        if (value > MAX_FAST_REQUEST)
            break;
        consolidate_all();
        param_set(&mp.max_fast,
                  value == 0 ? CHUNK_HDR : (value + SIZE_SZ) & ~ALIGN_MASK);
        return 0;
    case ARENA_MMAP_THRESHOLD:
        if (value > ((size_t)32 << 20))
            break;
        param_set(&mp.mmap_threshold, value);
        param_set(&mp.dyn_threshold, 0);
        return 0;
    case ARENA_TRIM_THRESHOLD:
        param_set(&mp.trim_threshold, value);
        param_set(&mp.dyn_threshold, 0);
        return 0;
    case ARENA_TOP_PAD:
        if (value > ARENA_HEAP_SIZE)
            break;
        param_set(&mp.top_pad, value);
        return 0;
    case ARENA_ARENA_MAX:
        param_set(&mp.arena_max, value);
        return 0;
    }
    errno = EINVAL;
    return -1;
}

size_t arena_get(arena_param param)
{
    switch (param) {
    case ARENA_TCACHE_COUNT:
        return param_get(&mp.tcache_count);
    case ARENA_MAX_FAST: {
        size_t f = param_get(&mp.max_fast);
        return f <= CHUNK_HDR ? 0 : f - SIZE_SZ;
    }
    case ARENA_MMAP_THRESHOLD:
        return param_get(&mp.mmap_threshold);
    case ARENA_TRIM_THRESHOLD:
        return param_get(&mp.trim_threshold);
    case ARENA_TOP_PAD:
        return param_get(&mp.top_pad);
    case ARENA_ARENA_MAX:
        return param_get(&mp.arena_max);
    }
    return 0;
}

/* ---- Memory back to the OS, figures, teardown --------------------------- */

int arena_trim(size_t pad)
{
    pthread_once(&start_once, process_start);
    int saved = errno;
    bool released = false;
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = &main_arena; a != NULL; a = a->next) {
        arena_lock(a);
        if (a->heap != NULL) {
            malloc_consolidate(a);
            released |= heap_trim(a, pad, true);
            released |= trim_interiors(a) > 0;
        }
        arena_unlock(a);
    }
    pthread_mutex_unlock(&list_lock);
    errno = saved;
    return released ? 1 : 0;
}

size_t arena_footprint(void)
{
    return __atomic_load_n(&os_count.footprint, __ATOMIC_RELAXED);
}

/* Adds one arena to the figures (its lock held): O(free chunks), as glibc's
 * mallinfo, which walks the bins and not the chunks in use. */
static void stats_arena(arena_t *a, arena_stats_t *s)
{
    s->arenas++;
    s->lock_acquisitions += a->locks;
    s->lock_contended += a->contended;
    s->consolidations += a->consolidations;
    size_t overhead = 0, free_bytes = 0;
    for (heap_info *h = a->heap; h != NULL; h = h->prev) {
        s->heaps++;
        s->heap_bytes += h->size;
        overhead += (size_t)((char *)heap_first_chunk(h) - (char *)h);
    }
    for (unsigned i = 1; i < NBINS; i++)
        for (mchunk *c = fd(bin_at(a, i)); c != bin_at(a, i); c = fd(c))
            free_bytes += chunksize(c);
    for (unsigned i = 0; i < NFASTBINS; i++)
        for (mchunk *c = a->fastbins[i]; c != NULL;
             c = protect_ptr(chunk2mem(c),
                             (void *)(uintptr_t)word_get(chunk2mem(c))))
            free_bytes += chunksize(c);
    size_t top = a->top != NULL ? chunksize(a->top) : 0;
    s->free_bytes += free_bytes;
    s->top_bytes += top;
    s->in_use_bytes += a->system_mem - overhead - free_bytes - top;
}

arena_stats_t arena_stats(void)
{
    pthread_once(&start_once, process_start);
    arena_stats_t s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = &main_arena; a != NULL; a = a->next) {
        arena_lock(a);
        stats_arena(a, &s);
        arena_unlock(a);
    }
    pthread_mutex_unlock(&list_lock);
    pthread_mutex_lock(&mmap_lock);
    s.mmapped_chunks = os_count.mmapped_chunks;
    s.mmapped_bytes = os_count.mmapped_bytes;
    pthread_mutex_unlock(&mmap_lock);
    s.footprint = __atomic_load_n(&os_count.footprint, __ATOMIC_RELAXED);
    s.peak_footprint =
        __atomic_load_n(&os_count.peak_footprint, __ATOMIC_RELAXED);
    s.mmap_threshold = param_get(&mp.mmap_threshold);
    s.trim_threshold = param_get(&mp.trim_threshold);
    s.mmaps = __atomic_load_n(&os_count.mmaps, __ATOMIC_RELAXED);
    s.munmaps = __atomic_load_n(&os_count.munmaps, __ATOMIC_RELAXED);
    s.mprotects = __atomic_load_n(&os_count.mprotects, __ATOMIC_RELAXED);
    s.madvises = __atomic_load_n(&os_count.madvises, __ATOMIC_RELAXED);
    s.mremaps = __atomic_load_n(&os_count.mremaps, __ATOMIC_RELAXED);
    return s;
}

/* Teardown: the blocks still live in one arena, told to the tools. */
static size_t forget_live_blocks(arena_t *a)
{
    size_t live = 0;
    malloc_consolidate(a);
    for (heap_info *h = a->heap; h != NULL; h = h->prev) {
        char *end = (char *)h + h->size;
        for (mchunk *c = heap_first_chunk(h); (char *)c < end;) {
            size_t size = chunksize(c);
            if (c == a->top || size == 0)
                break;
            if (size > CHUNK_HDR && inuse_at(c, size)) {
#if CHECKED
                size_t n = word_get(trailer_at(c)) & (((size_t)1 << 48) - 1);
#else
                size_t n = size - SIZE_SZ;
#endif
                track_free(chunk2mem(c), n, 0);
                live++;
            }
            c = chunk_at(c, size);
        }
    }
    return live;
}

size_t arena_teardown(void)
{
    arena_thread *self = thread_self();
    pthread_once(&start_once, process_start);
    flush_cache(self);
    size_t live = 0;
    pthread_mutex_lock(&list_lock);
    arena_t *a = &main_arena;
    while (a != NULL) {
        arena_t *next = a->next;
        arena_lock(a);
        live += forget_live_blocks(a);
        heap_info *first = NULL;
        for (heap_info *h = a->heap, *prev; h != NULL; h = prev) {
            prev = h->prev;
            if (h->ar == (arena_t *)(h + 1) && prev == NULL)
                first = h; /* holds the arena itself: unmapped last */
            else
                delete_heap(h);
        }
        arena_unlock(a);
        if (first != NULL) {
            pthread_mutex_destroy(&a->lock);
            delete_heap(first);
        }
        a = next;
    }
    pthread_mutex_lock(&mmap_lock);
    while (mmap_list.next != &mmap_list) {
        mmap_link *l = mmap_list.next;
        mchunk *c = (mchunk *)((char *)l + l->off);
#if CHECKED
        size_t n = word_get(trailer_at(c)) & (((size_t)1 << 48) - 1);
#else
        size_t n = chunksize(c) - CHUNK_HDR;
#endif
        track_free(chunk2mem(c), n, 0);
        live++;
        mmap_list.next = l->next;
        size_t len = l->len; /* read before the tools forget the mapping */
        track_mem_undefined(l, len);
        if (munmap(l, len) == 0)
            os_add(&os_count.munmaps, 1);
    }
    mmap_list.prev = &mmap_list;
    pthread_mutex_unlock(&mmap_lock);

    /* Everything as before the first call (the keys and exit hook stay). */
    track_mem_undefined(main_arena.bins, sizeof main_arena.bins);
    arena_init_state(&main_arena);
    main_arena.next = NULL;
    main_arena.attached = 0;
    main_arena.next_free = NULL;
    narenas = 1;
    narenas_limit = 0;
    next_to_use = NULL;
    pthread_mutex_unlock(&list_lock);
    pthread_mutex_lock(&free_lock);
    free_list = NULL;
    main_taken = false;
    pthread_mutex_unlock(&free_lock);
    pthread_mutex_lock(&threads_lock);
    threads = NULL;
    thread_ids = 0;
    pthread_mutex_unlock(&threads_lock);
    memset(self, 0, sizeof *self);
    memset(&os_count, 0, sizeof os_count);
    mp = mp_defaults;
    return live;
}
