/*
 * free_errno.c: free leaves errno alone, even when giving memory back to the
 * OS fails. POSIX.1-2024 requires it ("The free() function shall not modify
 * errno"), and programs rely on it: `if (fd < 0) { free(buf); return errno; }`.
 *
 * munmap can fail in real life (at the limit on the number of mappings,
 * vm.max_map_count, unmapping part of a mapping splits it and needs one more);
 * so can madvise and mprotect. To make them fail on purpose, this program
 * defines its own munmap, madvise and mprotect and exports them (-rdynamic):
 * the dynamic linker binds the preloaded libmalloc.so's calls to the first
 * definition it finds, and the executable comes first. While `refuse` is set,
 * each call fails as the kernel would (-1, errno ENOMEM or EAGAIN); otherwise
 * it goes to the kernel through syscall(2). The C library's own calls are
 * internal and do not come here, so on the system malloc nothing is refused.
 *
 * For blocks of several sizes, small to 64 MiB: malloc, then free with the
 * calls refused and errno set to a sentinel; errno must still hold it. Then
 * everything is allocated and freed again with the calls allowed, to show
 * that the refusal lost or broke nothing. Prints one line and exits 0 when
 * errno was kept every time, and says how many frees reached the OS (a free
 * that never calls it cannot change errno this way: the line says so).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SENTINEL 4242 /* no system call sets this errno */

static volatile int refuse;   /* refuse the calls now */
static volatile long refused; /* calls refused so far */

int munmap(void *addr, size_t len)
{
    if (refuse) {
        refused++;
        errno = ENOMEM;
        return -1;
    }
    return (int)syscall(SYS_munmap, addr, len);
}

int madvise(void *addr, size_t len, int advice)
{
    if (refuse) {
        refused++;
        errno = EAGAIN;
        return -1;
    }
    return (int)syscall(SYS_madvise, addr, len, advice);
}

int mprotect(void *addr, size_t len, int prot)
{
    if (refuse) {
        refused++;
        errno = ENOMEM;
        return -1;
    }
    return (int)syscall(SYS_mprotect, addr, len, prot);
}

/* Called through a volatile pointer: the compiler may assume that the
 * standard free keeps errno and fold the check away. */
static void (*volatile free_fn)(void *) = free;

int main(void)
{
    static const size_t sizes[] = {16,       100,     4000,    70000,
                                   140000,   300000,  1 << 20, 4 << 20,
                                   16 << 20, 64 << 20};
    enum { N = sizeof sizes / sizeof sizes[0], SMALL = 2000 };
    int changed = 0, reached = 0, frees = 0;

    for (int round = 0; round < 2; round++) {
        /* One block of each size, freed one at a time with the OS refusing. */
        for (int i = 0; i < N; i++) {
            char *p = malloc(sizes[i]);
            if (p == NULL)
                return 2;
            memset(p, 'x', sizes[i]);
            long before = refused;
            refuse = 1;
            errno = SENTINEL;
            free_fn(p);
            int e = errno;
            refuse = 0;
            frees++;
            reached += refused != before;
            if (e != SENTINEL) {
                changed++;
                printf("free(%zu bytes) changed errno to %d (%s)\n", sizes[i],
                       e, strerror(e));
            }
        }
        /* Many small blocks, the last ones freed with the OS refusing: an
         * allocator that gives back a page or a region when it empties. */
        static char *small[SMALL];
        for (int i = 0; i < SMALL; i++)
            if ((small[i] = malloc(48 + (size_t)i % 200)) == NULL)
                return 2;
        for (int i = 0; i < SMALL; i++) {
            long before = refused;
            refuse = i >= SMALL / 2;
            errno = SENTINEL;
            free_fn(small[i]);
            int e = errno;
            refuse = 0;
            frees++;
            reached += refused != before;
            if (e != SENTINEL) {
                changed++;
                if (changed < 10)
                    printf("free(small block %d) changed errno to %d (%s)\n", i,
                           e, strerror(e));
            }
        }
    }
    /* With the calls allowed again, the heap still serves every size. */
    for (int i = 0; i < N; i++) {
        char *p = malloc(sizes[i]);
        if (p == NULL)
            return 3;
        memset(p, 'y', sizes[i]);
        free(p);
    }
    printf("free with munmap/madvise/mprotect refused: errno %s "
           "(%s)\n",
           changed ? "CHANGED" : "kept every time",
           reached ? "some frees reached the OS" : "no free reached the OS");
    fprintf(stderr, "%d frees, %d reached the OS, %ld calls refused\n", frees,
            reached, refused);
    return changed ? 1 : 0;
}
