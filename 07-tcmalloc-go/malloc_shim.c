/*
 * malloc_shim.c: the C library's names on this stage's allocator, so that
 * any program can run on it:
 *
 *     LD_PRELOAD=07-tcmalloc-go/build/libmalloc.so sort big.txt
 *     make run-07 CMD='python3 -c "print(sum(range(10**6)))"'
 *
 * A preloaded library's definitions come first, so every malloc, free,
 * realloc... of the program and of its libraries lands here. Each is one
 * jump to the gm_* function (gm.h's names are hidden inside the library,
 * so the calls are direct). glibc's documented semantics:
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
 *   malloc_trim          the caller's cache, the transfer caches and every
 *                        free page go back (gm_trim)
 *   malloc_stats         the statistics report, on stderr
 *
 * What makes it safe as a program's malloc is in gm.c: no lock on the
 * fast paths, the heap started by the first call of any thread with
 * nothing that allocates (the first call may come from the dynamic linker
 * or from pthread_create, before main and before the constructor below),
 * fork handlers that take stdio's list lock and then every lock of the
 * heap, free that leaves errno alone, and a thread's cache given back by a
 * pthread key's destructor, with later calls of that thread served
 * uncached.
 *
 * Environment: GM_TINY=1 (the tiny allocator on; off by default), GM_SCAVENGE=
 * background|sync|off, GM_RETAIN=BYTES, GM_SCAVENGE_DELAY_MS=MS (gm.h);
 * GM_STATS=1 prints the statistics report to stderr at exit;
 * LIBMALLOC_STATS=FILE appends a line "libmalloc (07-tcmalloc-go ...)"
 * and the report to FILE at exit ("stderr": to file descriptor 2). The
 * tests use it to prove that a program really ran on this allocator. A
 * file, because programs like sort close stderr before exit handlers run.
 */
#include "gm.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *stats_path; /* LIBMALLOC_STATS, read before main */
static bool stats_stderr;      /* GM_STATS=1 */

/* Written with write(2): stdio might allocate at exit. */
static void print_stats(void)
{
    if (stats_stderr)
        gm_print_stats(STDERR_FILENO);
    if (stats_path == NULL)
        return;
    bool to_stderr = strcmp(stats_path, "stderr") == 0;
    int fd = to_stderr ? STDERR_FILENO
                       : open(stats_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        return;
    gm_stats_t s = gm_stats();
    char line[320];
    int n = snprintf(line, sizeof line,
                     "libmalloc (07-tcmalloc-go%s): peak footprint %zu bytes, "
                     "%zu arenas, %zu small and %zu large spans at exit, %zu "
                     "threads with a cache, %zu mmaps, %zu madvises\n",
                     gm_tiny_enabled() ? "" : ", tiny off", s.peak_footprint,
                     s.arenas, s.small_spans, s.large_spans, s.threads, s.mmaps,
                     s.madvises);
    if (n > 0 && write(fd, line, (size_t)n) < 0) { /* nowhere to say so */
    }
    gm_print_stats(fd);
    if (!to_stderr)
        close(fd);
}

/* Runs when the library is loaded, before main (the heap may have started
 * earlier: the dynamic linker allocates too). */
__attribute__((constructor)) static void shim_start(void)
{
    gm_init();
    const char *s = getenv("GM_STATS");
    stats_stderr = s != NULL && strcmp(s, "1") == 0;
    stats_path = getenv("LIBMALLOC_STATS");
    if (stats_path != NULL && *stats_path == '\0')
        stats_path = NULL;
    if (stats_stderr || stats_path != NULL)
        atexit(print_stats);
}

/* ---- The API ------------------------------------------------------------ */

void *malloc(size_t size)
{
    return gm_malloc(size);
}

void free(void *p)
{
    gm_free(p);
}

void *calloc(size_t nmemb, size_t size)
{
    return gm_calloc(nmemb, size);
}

void *realloc(void *p, size_t size)
{
    return gm_realloc(p, size);
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return gm_realloc(p, nmemb * size);
}

void *aligned_alloc(size_t alignment, size_t size)
{
    return gm_aligned_alloc(alignment, size); /* EINVAL, ENOMEM */
}

void *memalign(size_t alignment, size_t size)
{
    size_t top = (SIZE_MAX >> 1) + 1; /* the largest power of two */
    if (alignment > top) {
        errno = EINVAL;
        return NULL;
    }
    size_t a = 1;
    while (a < alignment)
        a <<= 1; /* at most 63 doublings, and never past top */
    return gm_aligned_alloc(a, size);
}

int posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 ||
        alignment == 0)
        return EINVAL;
    int saved = errno; /* posix_memalign reports through its result */
    void *p = gm_aligned_alloc(alignment, size);
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
    return gm_aligned_alloc((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    return gm_aligned_alloc(page, rounded);
}

size_t malloc_usable_size(void *p)
{
    return gm_usable_size(p);
}

int malloc_trim(size_t pad)
{
    (void)pad;
    return gm_trim() > 0;
}

void malloc_stats(void)
{
    gm_print_stats(STDERR_FILENO);
}
