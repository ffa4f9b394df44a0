/*
 * malloc_shim.c: the C library's malloc API over one fl heap, so that any
 * program can run on this stage's allocator:
 *
 *     LD_PRELOAD=04-freelist/build/libmalloc.so sort big.txt
 *     LIBMALLOC_STATS=stderr PYTHONMALLOC=malloc \
 *         make run-04 CMD='python3 -c "print(sum(range(10**6)))"'
 *
 * (PYTHONMALLOC=malloc: Python then asks malloc for its small objects too,
 * instead of serving them from its own pymalloc arenas; LIBMALLOC_STATS
 * prints the heap's figures at exit, the proof that it ran on this heap.)
 *
 * The dynamic linker binds every malloc, free, realloc... of the program and
 * of its libraries to the first definition it finds, and a preloaded library
 * comes first. So this file defines the whole glibc family, with glibc's
 * documented semantics:
 *
 *   malloc(0)            a unique pointer that free accepts
 *   realloc(NULL, n)     malloc(n)
 *   realloc(p, 0)        free(p), returns NULL (what glibc does)
 *   calloc, reallocarray NULL + ENOMEM when nmemb * size overflows
 *   posix_memalign       returns EINVAL unless alignment is a power of two
 *                        and a multiple of sizeof(void *); ENOMEM; *memptr
 *                        untouched on failure
 *   aligned_alloc        NULL + EINVAL unless alignment is a power of two
 *                        (glibc 2.38's rule; older glibc rounds it up)
 *   memalign             the alignment rounded up to a power of two (0 as
 *                        1), as every glibc does; EINVAL above SIZE_MAX / 2 + 1
 *   valloc, pvalloc      page-aligned; pvalloc rounds the size up to pages
 *   malloc_usable_size   bytes usable at p (0 for NULL)
 *
 * Three rules make a preloaded malloc safe:
 *   1. One lock. A pthread mutex, statically initialised, serialises every
 *      call: correct, and the reason stage 05 gives threads arenas of their
 *      own (under contention this lock is the whole cost).
 *   2. No recursion while starting. The heap starts at the first call, under
 *      the lock, with nothing that can allocate: fl_init only fills a struct,
 *      getenv reads environ, mmap is a system call. No stdio, no dlsym.
 *   3. fork in a threaded program. A child has only the thread that called
 *      fork; if another thread held the lock at that instant, the child's
 *      copy stays locked forever. pthread_atfork handlers take the lock
 *      before fork and release it after, in the parent and in the child, so
 *      the heap is copied in a consistent state with the lock free. The
 *      prepare handler takes stdio's list lock first, and only then the
 *      heap's: glibc's fork takes the list lock itself after the prepare
 *      handlers, and a thread inside stdio can hold a FILE lock while it
 *      waits for malloc (getline allocates its buffer under the FILE lock)
 *      while another holds the list lock and waits for that FILE
 *      (fflush(NULL)). Taking the heap's lock first closes that cycle into
 *      a deadlock; taking it second, as glibc's own malloc does, cannot.
 *
 *      What fork cannot be made safe against: a signal handler that forks
 *      while its thread is inside malloc, holding the lock. The prepare
 *      handler would wait for a lock that its own thread holds. POSIX.1-2024
 *      no longer lists fork as async-signal-safe, and glibc's own malloc
 *      hangs in that case too; a handler that must create a process calls
 *      _Fork() (no handlers run; the child may only call async-signal-safe
 *      functions, then exec or _exit) or posix_spawn. The shim tests check
 *      that _Fork from such a handler works.
 *
 * Environment: FL_POLICY=first|next|best (default first); LIBMALLOC_STATS=FILE
 * appends the heap's figures to FILE at exit ("stderr": to file descriptor
 * 2). The tests use it to prove that a program really ran on this
 * allocator. A file, because programs like sort close stderr at exit before
 * the handler runs.
 */
#include "fl.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t shim_lock = PTHREAD_MUTEX_INITIALIZER;
static fl_heap shim_heap;      /* the one heap; guarded by shim_lock */
static bool shim_started;      /* shim_heap initialised; guarded by shim_lock */
static const char *stats_path; /* LIBMALLOC_STATS, read before main */

static fl_policy policy_from_env(void)
{
    const char *s = getenv("FL_POLICY");
    if (s != NULL && strcmp(s, "next") == 0)
        return FL_NEXT_FIT;
    if (s != NULL && strcmp(s, "best") == 0)
        return FL_BEST_FIT;
    return FL_FIRST_FIT;
}

/* Takes the lock, and starts the heap on the very first call. */
static fl_heap *heap_lock(void)
{
    pthread_mutex_lock(&shim_lock);
    if (!shim_started) {
        fl_init(&shim_heap, policy_from_env());
        shim_started = true;
    }
    return &shim_heap;
}

static void heap_unlock(void)
{
    pthread_mutex_unlock(&shim_lock);
}

/* ---- fork safety ------------------------------------------------------- */

/*
 * stdio's list lock, which glibc exports for exactly this use. Declared weak,
 * so that the library still links and runs on a C library without them
 * (there the calls are skipped, and the fork order is that library's
 * business). The lock is recursive: fork takes it again after the prepare
 * handlers, in the same thread.
 */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void)
{
    if (_IO_list_lock)
        _IO_list_lock(); /* stdio's lock first: see rule 3 above */
    pthread_mutex_lock(&shim_lock);
}
static void fork_parent(void)
{
    pthread_mutex_unlock(&shim_lock);
    if (_IO_list_unlock)
        _IO_list_unlock();
}
/* The child's only thread is the one that took the lock: it may unlock. The
 * list lock was already reset by fork in the child (which resets it rather
 * than unlocking it); resetting it again is harmless, unlocking it would
 * drive its count below zero. */
static void fork_child(void)
{
    pthread_mutex_unlock(&shim_lock);
    if (_IO_list_resetlock)
        _IO_list_resetlock();
}

/* Prints the figures with write(2): stdio might allocate at exit. */
static void print_stats(void)
{
    fl_heap *h = heap_lock();
    fl_stats_t s = fl_stats(h);
    heap_unlock();
    char line[256];
    int n = snprintf(line, sizeof line,
                     "libmalloc (04-freelist %s): peak live %zu bytes, peak "
                     "footprint %zu bytes, %zu mmaps, %zu munmaps\n",
                     fl_policy_name(h->policy), s.peak_live, s.peak_footprint,
                     s.mmaps, s.munmaps);
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

/*
 * Runs when the library is loaded, before main. Registered this early, the
 * prepare handler runs last before fork (handlers run in reverse order), so
 * other libraries' handlers may still allocate when theirs run.
 */
__attribute__((constructor)) static void shim_start(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    stats_path = getenv("LIBMALLOC_STATS");
    if (stats_path != NULL && *stats_path != '\0')
        atexit(print_stats);
}

/* ---- The API ------------------------------------------------------------ */

void *malloc(size_t size)
{
    fl_heap *h = heap_lock();
    void *p = fl_alloc(h, size);
    heap_unlock();
    return p;
}

/* free leaves errno as it found it (POSIX.1-2024), even when giving a region
 * back to the OS fails: fl_free keeps it, and so does this wrapper. */
void free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    fl_heap *h = heap_lock();
    fl_free(h, p);
    heap_unlock();
    errno = saved;
}

void *calloc(size_t nmemb, size_t size)
{
    fl_heap *h = heap_lock();
    void *p = fl_calloc(h, nmemb, size);
    heap_unlock();
    return p;
}

void *realloc(void *p, size_t size)
{
    fl_heap *h = heap_lock();
    void *q = fl_realloc(h, p, size);
    heap_unlock();
    return q;
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    fl_heap *h = heap_lock();
    void *q = fl_realloc(h, p, nmemb * size);
    heap_unlock();
    return q;
}

void *aligned_alloc(size_t alignment, size_t size)
{
    fl_heap *h = heap_lock();
    void *p = fl_aligned_alloc(h, alignment, size); /* EINVAL, ENOMEM */
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
    fl_heap *h = heap_lock();
    size_t n = fl_usable_size(h, p);
    heap_unlock();
    return n;
}
