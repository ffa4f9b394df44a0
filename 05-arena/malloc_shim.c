/*
 * malloc_shim.c: the C library's malloc family on this stage's allocator,
 * so that any program can run on it:
 *
 *     LD_PRELOAD=05-arena/build/libmalloc.so sort big.txt
 *     make run-05 CMD='python3 -c "print(sum(range(10**6)))"'
 *
 * The dynamic linker binds every malloc, free, realloc... of the program
 * and of its libraries to the first definition it finds, and a preloaded
 * library comes first. Each function here is a call to arena.h, with
 * glibc's documented semantics:
 *
 *   malloc(0)            a unique pointer that free accepts
 *   realloc(NULL, n)     malloc(n); realloc(p, 0) frees p, returns NULL
 *   calloc, reallocarray NULL + ENOMEM when nmemb * size overflows
 *   posix_memalign       EINVAL unless the alignment is a power of two and
 *                        a multiple of sizeof(void *); ENOMEM; *memptr
 *                        untouched on failure
 *   aligned_alloc        NULL + EINVAL unless alignment is a power of two
 *                        (glibc 2.38's rule; older glibc rounds it up)
 *   memalign             the alignment rounded up to a power of two (0 as
 *                        1), as every glibc does; EINVAL above SIZE_MAX / 2 + 1
 *   valloc, pvalloc      page-aligned; pvalloc rounds the size up to pages
 *   malloc_usable_size   bytes usable at p (0 for NULL)
 *   free                 leaves errno alone (POSIX.1-2024), always
 * and glibc's own extensions that programs call: mallopt (M_MXFAST,
 * M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX), malloc_trim,
 * mallinfo2 (arena: heap bytes, hblks/hblkhd: mapped chunks, uordblks and
 * fordblks: in use and free, keepcost: top chunks).
 *
 * Unlike stage 04's shim, this one adds no lock: the allocator is
 * thread-safe itself, with a lock per arena and none on the per-thread
 * cache. Nothing on the start-up path allocates (no stdio, no dlsym), and
 * fork is handled in arena_process.c.
 *
 * Environment, read when the library is loaded: ARENA_TCACHE=N chunks per
 * size in each thread's cache (0: no cache), ARENA_MAX_FAST=N (0: no fast
 * bins), ARENA_MMAP_THRESHOLD=N, ARENA_ARENA_MAX=N; LIBMALLOC_STATS=FILE
 * appends a line of figures to FILE at exit ("stderr": to descriptor 2),
 * which the tests use to prove that a program really ran on this library.
 */
#include "arena.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *stats_path; /* LIBMALLOC_STATS, read at load time */

/* A number from the environment, or -1 (no variable, or not a number). */
static long env_number(const char *name)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v >= 0 ? v : -1;
}

/* Writes the figures with write(2): stdio might allocate at exit. */
static void print_stats(void)
{
    arena_stats_t s = arena_stats();
    char line[320];
    int n = snprintf(line, sizeof line,
                     "libmalloc (05-arena): %zu arenas, %zu heaps, peak "
                     "footprint %zu bytes, %zu mmaps, %zu munmaps, %zu "
                     "mprotects, %zu madvises, %zu arena locks (%zu "
                     "waited), cache %zu\n",
                     s.arenas, s.heaps, s.peak_footprint, s.mmaps, s.munmaps,
                     s.mprotects, s.madvises, s.lock_acquisitions,
                     s.lock_contended, arena_get(ARENA_TCACHE_COUNT));
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

__attribute__((constructor)) static void shim_start(void)
{
    long v;
    if ((v = env_number("ARENA_TCACHE")) >= 0)
        arena_set(ARENA_TCACHE_COUNT, (size_t)v);
    if ((v = env_number("ARENA_MAX_FAST")) >= 0)
        arena_set(ARENA_MAX_FAST, (size_t)v);
    if ((v = env_number("ARENA_MMAP_THRESHOLD")) >= 0)
        arena_set(ARENA_MMAP_THRESHOLD, (size_t)v);
    if ((v = env_number("ARENA_ARENA_MAX")) >= 0)
        arena_set(ARENA_ARENA_MAX, (size_t)v);
    stats_path = getenv("LIBMALLOC_STATS");
    if (stats_path != NULL && *stats_path != '\0')
        atexit(print_stats);
}

/* ---- The family --------------------------------------------------------- */

void *malloc(size_t size)
{
    return arena_malloc(size);
}

void free(void *p)
{
    arena_free(p); /* keeps errno itself */
}

void *calloc(size_t nmemb, size_t size)
{
    return arena_calloc(nmemb, size);
}

void *realloc(void *p, size_t size)
{
    return arena_realloc(p, size);
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return arena_realloc(p, nmemb * size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return arena_memalign(alignment, size); /* EINVAL, ENOMEM */
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
    return arena_memalign(a, size);
}

int posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 ||
        alignment == 0)
        return EINVAL;
    int saved = errno; /* posix_memalign reports through its result */
    void *p = arena_memalign(alignment, size);
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
    return arena_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    return arena_memalign(page, rounded);
}

size_t malloc_usable_size(void *p)
{
    return arena_usable_size(p);
}

/* ---- glibc's extensions ------------------------------------------------- */

int malloc_trim(size_t pad)
{
    return arena_trim(pad);
}

/* glibc's mallopt: 1 on success, 0 on a value it refuses. Options this
 * allocator does not have are accepted and ignored, as glibc ignores
 * M_MMAP_MAX's and M_ARENA_TEST's effects in ways no program can see. */
int mallopt(int param, int value)
{
    if (value < 0)
        return 0;
    size_t v = (size_t)value;
    switch (param) {
    case M_MXFAST:
        return arena_set(ARENA_MAX_FAST, v) == 0;
    case M_TRIM_THRESHOLD:
        return arena_set(ARENA_TRIM_THRESHOLD, v) == 0;
    case M_TOP_PAD:
        return arena_set(ARENA_TOP_PAD, v) == 0;
    case M_MMAP_THRESHOLD:
        return arena_set(ARENA_MMAP_THRESHOLD, v) == 0;
    case M_ARENA_MAX:
        return arena_set(ARENA_ARENA_MAX, v) == 0;
    default:
        return 1;
    }
}

struct mallinfo2 mallinfo2(void)
{
    arena_stats_t s = arena_stats();
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = s.heap_bytes;
    mi.hblks = s.mmapped_chunks;
    mi.hblkhd = s.mmapped_bytes;
    mi.uordblks = s.in_use_bytes;
    mi.fordblks = s.free_bytes + s.top_bytes;
    mi.keepcost = s.top_bytes;
    return mi;
}
