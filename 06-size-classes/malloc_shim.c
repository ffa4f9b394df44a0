/*
 * malloc_shim.c: the C library's malloc API over one sc heap, so that any
 * program can run on this stage's allocator:
 *
 *     LD_PRELOAD=06-size-classes/build/libmalloc.so sort big.txt
 *     make run-06 CMD='python3 -c "print(sum(range(10**6)))"'
 *
 * A preloaded library's definitions come first, so every malloc, free,
 * realloc... of the program and of its libraries lands here. This file
 * defines the whole glibc family with glibc's documented semantics, as
 * stage 04's shim does:
 *
 *   malloc(0)            a unique pointer that free accepts
 *   realloc(NULL, n)     malloc(n)
 *   realloc(p, 0)        free(p), returns NULL (what glibc does)
 *   calloc, reallocarray NULL + ENOMEM when nmemb * size overflows
 *   posix_memalign       EINVAL unless alignment is a power of two and a
 *                        multiple of sizeof(void *); ENOMEM; *memptr
 *                        untouched on failure
 *   aligned_alloc        NULL + EINVAL unless alignment is a power of two
 *                        (glibc 2.38's rule; older glibc rounds it up)
 *   memalign             the alignment rounded up to a power of two (0 as
 *                        1), as every glibc does; EINVAL above SIZE_MAX / 2 + 1
 *   valloc, pvalloc      page-aligned; pvalloc rounds the size up to pages
 *   malloc_usable_size   bytes usable at p (0 for NULL)
 *   malloc_trim          gives every free page back (sc_release)
 *
 * Alignment: 16 bytes for every block of 16 bytes or more, as glibc
 * promises; a request of 8 bytes or less gets an 8-byte slot, aligned to 8,
 * which is all that any object of that size can need (C17 7.22.3).
 *
 * The rules that make a preloaded malloc safe (stage 04's README says more):
 *   1. One lock serialises every call: correct for any number of threads,
 *      and stage 07 takes it off the common path with a cache per thread.
 *      It is a three-state futex lock (Drepper, "Futexes Are Tricky",
 *      2011: 0 free, 1 held, 2 held and someone may sleep), not a pthread
 *      mutex: uncontended, a lock is one compare-and-swap and an unlock one
 *      atomic decrement, about 8 instructions together, where glibc's
 *      pthread_mutex_lock and unlock cost 53 on this path (its type, its
 *      owner, its counters): as much as the allocator's own work. A thread
 *      that finds it held sleeps in the kernel (FUTEX_WAIT), not spinning.
 *   2. No recursion while starting. The heap starts at the first call under
 *      the lock, with nothing that can allocate: sc_init fills a struct,
 *      the first arena is mmap'd. No stdio, no dlsym.
 *   3. fork in a threaded program: pthread_atfork handlers take the lock
 *      before fork and release it after, in the parent and in the child. The
 *      prepare handler takes stdio's list lock first and the heap's second,
 *      as glibc's own malloc orders them: a thread inside stdio can hold a
 *      FILE lock while it waits for malloc (getline) while another holds
 *      the list lock and waits for that FILE (fflush(NULL)), and glibc's
 *      fork takes the list lock after the prepare handlers. A signal handler
 *      that forks while its thread is inside malloc would wait for a lock
 *      that thread holds: POSIX.1-2024 no longer lists fork as
 *      async-signal-safe, glibc's malloc hangs there too, and such a handler
 *      must use _Fork (which the shim tests check) or posix_spawn.
 *   4. free leaves errno alone (POSIX.1-2024), even when madvise fails
 *      under it: sc_free keeps it (its only call to the OS is in the page
 *      heap's release, which saves and restores errno).
 *
 * Environment: SC_RETAIN=BYTES sets the release policy (free resident pages
 * kept before madvise gives them back; default 4 MiB, 0 gives every free
 * run back at once). LIBMALLOC_STATS=FILE appends the heap's figures to
 * FILE at exit ("stderr": to file descriptor 2); the tests use it to prove
 * that a program really ran on this allocator.
 */
#include "sc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int shim_lock;   /* 0 free, 1 held, 2 held with sleepers */
static sc_heap shim_heap;      /* the one heap; guarded by shim_lock */
static bool shim_started;      /* shim_heap initialised; guarded by shim_lock */
static const char *stats_path; /* LIBMALLOC_STATS, read before main */

/* ---- The lock (rule 1) ------------------------------------------------------
 */

static void futex(atomic_int *word, int op, int value)
{
    syscall(SYS_futex, word, op | FUTEX_PRIVATE_FLAG, value, NULL, NULL, 0);
}

/* Held by someone: say that a sleeper may be here (2), and sleep until the
 * word is no longer 2; whoever held it wakes one sleeper when it unlocks.
 * Leaves with the lock held, as 2 (there may be other sleepers). */
static void __attribute__((noinline)) lock_wait(int seen)
{
    if (seen != 2)
        seen = atomic_exchange_explicit(&shim_lock, 2, memory_order_acquire);
    while (seen != 0) {
        futex(&shim_lock, FUTEX_WAIT, 2);
        seen = atomic_exchange_explicit(&shim_lock, 2, memory_order_acquire);
    }
}

static inline void lock_take(void)
{
    int free_word = 0;
    if (!atomic_compare_exchange_strong_explicit(&shim_lock, &free_word, 1,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        lock_wait(free_word);
}

/* 1 -> 0: nobody waits. 2 -> 1 -> 0: wake one sleeper, which takes it as 2. */
static inline void lock_give(void)
{
    if (atomic_fetch_sub_explicit(&shim_lock, 1, memory_order_release) != 1) {
        atomic_store_explicit(&shim_lock, 0, memory_order_release);
        futex(&shim_lock, FUTEX_WAKE, 1);
    }
}

/* Takes the lock, and starts the heap on the very first call. */
static sc_heap *heap_lock(void)
{
    lock_take();
    if (!shim_started) {
        sc_init(&shim_heap);
        shim_started = true;
    }
    return &shim_heap;
}

static void heap_unlock(void)
{
    lock_give();
}

/* ---- fork safety (rule 3) ------------------------------------------------ */

/* stdio's list lock, which glibc exports for this use; weak, so that the
 * library still links on a C library without them. It is recursive: fork
 * takes it again after the prepare handlers, in the same thread. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void)
{
    if (_IO_list_lock)
        _IO_list_lock();
    lock_take();
}
static void fork_parent(void)
{
    lock_give();
    if (_IO_list_unlock)
        _IO_list_unlock();
}
/* The child's only thread took the lock, and no sleeper came with it: the
 * word is simply free again. fork already reset the list lock in the
 * child; resetting it again is harmless, unlocking it would drive its
 * count below zero. */
static void fork_child(void)
{
    atomic_store_explicit(&shim_lock, 0, memory_order_relaxed);
    if (_IO_list_resetlock)
        _IO_list_resetlock();
}

/* ---- Start and end ------------------------------------------------------- */

/* Prints the figures with write(2): stdio might allocate at exit. */
static void print_stats(void)
{
    sc_heap *h = heap_lock();
    sc_stats_t s = sc_stats(h);
    heap_unlock();
    char line[320];
    int n = snprintf(line, sizeof line,
                     "libmalloc (06-size-classes): peak footprint %zu bytes, "
                     "%zu arenas, %zu small and %zu large spans at exit, %zu "
                     "mmaps, %zu madvises, %zu rescans\n",
                     s.peak_footprint, s.arenas, s.small_spans, s.large_spans,
                     s.mmaps, s.madvises, s.rescans);
    bool to_stderr = strcmp(stats_path, "stderr") == 0;
    int fd = to_stderr ? STDERR_FILENO
                       : open(stats_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || n <= 0)
        return;
    if (write(fd, line, (size_t)n) < 0) { /* nowhere left to say so */
    }
    if (!to_stderr)
        close(fd);
}

/* Runs when the library is loaded, before main. Registered this early, the
 * prepare handler runs last before fork (handlers run in reverse order), so
 * that other libraries' handlers may still allocate when theirs run. */
__attribute__((constructor)) static void shim_start(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    const char *retain = getenv("SC_RETAIN");
    if (retain != NULL && *retain != '\0') {
        sc_heap *h = heap_lock();
        sc_set_retain(h, (size_t)strtoull(retain, NULL, 0));
        heap_unlock();
    }
    stats_path = getenv("LIBMALLOC_STATS");
    if (stats_path != NULL && *stats_path != '\0')
        atexit(print_stats);
}

/* ---- The API ------------------------------------------------------------- */

void *malloc(size_t size)
{
    sc_heap *h = heap_lock();
    void *p = sc_alloc(h, size);
    heap_unlock();
    return p;
}

void free(void *p)
{
    if (p == NULL)
        return;
    sc_heap *h = heap_lock();
    sc_free(h, p); /* keeps errno (rule 4) */
    heap_unlock();
}

void *calloc(size_t nmemb, size_t size)
{
    sc_heap *h = heap_lock();
    void *p = sc_calloc(h, nmemb, size);
    heap_unlock();
    return p;
}

void *realloc(void *p, size_t size)
{
    sc_heap *h = heap_lock();
    void *q = sc_realloc(h, p, size);
    heap_unlock();
    return q;
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    sc_heap *h = heap_lock();
    void *q = sc_realloc(h, p, nmemb * size);
    heap_unlock();
    return q;
}

void *aligned_alloc(size_t alignment, size_t size)
{
    sc_heap *h = heap_lock();
    void *p = sc_aligned_alloc(h, alignment, size); /* EINVAL, ENOMEM */
    heap_unlock();
    return p;
}

void *memalign(size_t alignment, size_t size)
{
    /* glibc's rule, in every version: an alignment that is not a power of
     * two is rounded up to one (0 and 1: none); above the largest, EINVAL */
    if (alignment > (SIZE_MAX >> 1) + 1) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < alignment)
        a <<= 1;
    return aligned_alloc(a, size);
}

int posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 ||
        alignment == 0)
        return EINVAL;
    int saved = errno; /* posix_memalign reports through its result */
    void *p = aligned_alloc(alignment, size);
    if (p == NULL) {
        int err = errno;
        errno = saved;
        return err;
    }
    *memptr = p;
    return 0;
}

void *valloc(size_t size)
{
    return aligned_alloc((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    return aligned_alloc(page, rounded);
}

size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    sc_heap *h = heap_lock();
    size_t n = sc_usable_size(h, p);
    heap_unlock();
    return n;
}

int malloc_trim(size_t pad)
{
    (void)pad;
    sc_heap *h = heap_lock();
    size_t released = sc_release(h);
    heap_unlock();
    return released > 0;
}
