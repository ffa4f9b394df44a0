/*
 * api_edges.c: the malloc API's documented edge cases, printed one per line,
 * for common/shimtest/run.sh to run on libmalloc.so and on the system malloc:
 * the outputs must be identical, line by line. Every line is a fact that
 * glibc's manual or man pages state (malloc(3), posix_memalign(3),
 * reallocarray).
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int line_no;

/* Called through volatile pointers, so that the compiler does not judge the
 * deliberate edge cases (a huge size, a pointer kept after a failed
 * realloc) at compile time: the library answers them at run time. */
static void *(*volatile malloc_fn)(size_t) = malloc;
static void *(*volatile calloc_fn)(size_t, size_t) = calloc;
static void *(*volatile realloc_fn)(void *, size_t) = realloc;
static void *(*volatile reallocarray_fn)(void *, size_t, size_t) = reallocarray;
static void *(*volatile aligned_alloc_fn)(size_t, size_t) = aligned_alloc;
static void *(*volatile memalign_fn)(size_t, size_t) = memalign;

static void say(const char *what, int fact)
{
    printf("%2d %-58s %s\n", ++line_no, what, fact ? "yes" : "NO");
}

static int aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

int main(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    void *a = malloc_fn(0), *b = malloc_fn(0);
    say("malloc(0) returns a pointer", a != NULL);
    say("two malloc(0) pointers differ", a != b);
    free(a);
    free(b);
    free(NULL);
    say("free(NULL) returns", 1);

    void *p = malloc(100);
    if (p == NULL)
        return 1;
    say("malloc(100) is 16-byte aligned", p != NULL && aligned(p, 16));
    say("malloc_usable_size(p) >= 100", malloc_usable_size(p) >= 100);
    say("malloc_usable_size(NULL) == 0", malloc_usable_size(NULL) == 0);
    memset(p, 'x', 100);
    char *q = realloc(p, 100000);
    if (q == NULL)
        return 1;
    say("realloc grows and keeps the data", q != NULL && q[99] == 'x');
    errno = 0;
    say("realloc(p, SIZE_MAX) fails with ENOMEM",
        realloc_fn(q, SIZE_MAX) == NULL && errno == ENOMEM);
    say("... and p is still valid", q[0] == 'x');
    say("realloc(p, 0) frees and returns NULL", realloc_fn(q, 0) == NULL);
    q = realloc(NULL, 10);
    say("realloc(NULL, 10) allocates", q != NULL);
    free(q);

    errno = 0;
    say("malloc(SIZE_MAX) fails with ENOMEM",
        malloc_fn(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    say("calloc(SIZE_MAX / 2 + 1, 2) overflows: ENOMEM",
        calloc_fn(SIZE_MAX / 2 + 1, 2) == NULL && errno == ENOMEM);
    unsigned char *z = calloc(1000, 10);
    int zero = z != NULL;
    for (size_t i = 0; zero && i < 10000; i++)
        zero = z[i] == 0;
    say("calloc(1000, 10) is zeroed", zero);
    errno = 0;
    say("reallocarray(z, SIZE_MAX, 2) overflows: ENOMEM",
        reallocarray_fn(z, SIZE_MAX, 2) == NULL && errno == ENOMEM);
    z = reallocarray_fn(z, 2000, 10);
    say("reallocarray(z, 2000, 10) keeps the zeros", z != NULL && z[9999] == 0);
    free(z);

    void *m = NULL;
    say("posix_memalign(64) returns 0, aligned",
        posix_memalign(&m, 64, 200) == 0 && aligned(m, 64));
    free(m);
    m = &line_no;
    say("posix_memalign(24) returns EINVAL",
        posix_memalign(&m, 24, 8) == EINVAL);
    say("posix_memalign(4) (not a multiple of void *): EINVAL",
        posix_memalign(&m, 4, 8) == EINVAL);
    say("... and leaves *memptr alone", m == (void *)&line_no);
    say("posix_memalign(huge size) returns ENOMEM",
        posix_memalign(&m, 64, SIZE_MAX - 100) == ENOMEM);
    void *al = aligned_alloc(4096, 4096);
    say("aligned_alloc(4096, 4096) is page-aligned", al && aligned(al, 4096));
    free(al);
    errno = 0;
    /* glibc before 2.38 accepts any alignment here (it rounds it up);
     * the man page and glibc 2.38 say EINVAL. The script does not compare
     * lines marked [2.38] with an older system malloc. */
    errno = 0;
    void *odd = aligned_alloc_fn(3, 8);
    say("aligned_alloc(3, 8) fails with EINVAL [2.38]",
        odd == NULL && errno == EINVAL);
    free(odd);
    void *ma = memalign(256, 10);
    say("memalign(256, 10) is aligned", ma && aligned(ma, 256));
    free(ma);
    /* memalign, unlike aligned_alloc, rounds an alignment up to a power of
     * two in every glibc (malloc.c's _mid_memalign). */
    void *m24 = memalign_fn(24, 10);
    say("memalign(24, 10) rounds up: 32-byte aligned", m24 && aligned(m24, 32));
    free(m24);
    void *m0 = memalign_fn(0, 10);
    say("memalign(0, 10) returns a block", m0 != NULL);
    free(m0);
    /* More than the kernel would commit to one mapping: glibc's mmap of the
     * block is refused, so its malloc gives ENOMEM; an allocator that
     * reserves address space with MAP_NORESERVE must not succeed instead.
     * Where the kernel would commit 1 TiB (it overcommits always), both
     * may succeed. */
    size_t tib = (size_t)1 << 40;
    void *probe = mmap(NULL, tib, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int commits = probe != MAP_FAILED;
    if (commits)
        munmap(probe, tib);
    errno = 0;
    void *huge = malloc_fn(tib);
    say("malloc(1 TiB) fails with ENOMEM unless the kernel commits it",
        commits || (huge == NULL && errno == ENOMEM));
    free(huge);
    errno = 0;
    void *hc = calloc_fn((size_t)1 << 20, (size_t)1 << 20);
    say("calloc(2^20, 2^20) fails with ENOMEM unless the kernel commits it",
        commits || (hc == NULL && errno == ENOMEM));
    free(hc);
    void *v = valloc(10);
    say("valloc(10) is page-aligned", v && aligned(v, page));
    free(v);
    void *pv = pvalloc(10);
    say("pvalloc(10) is page-aligned, a page usable",
        pv && aligned(pv, page) && malloc_usable_size(pv) >= page);
    free(pv);
    return 0;
}
