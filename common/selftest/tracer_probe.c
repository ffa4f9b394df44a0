/*
 * common/selftest/tracer_probe.c: a program whose allocations are known in
 * advance, for test_tracer.c to record with common/tracer/record.sh and
 * then find again, op for op, in the trace.
 *
 * It runs with the tracer preloaded, so it is built plain, outside the four
 * flavours (the selftest Makefile makes build/plain/tracer_probe): ASan
 * refuses to start behind another preloaded malloc, and under Valgrind the
 * tracer's malloc would not be called at all.
 *
 * What it does, in order (the sizes are in tracer_probe.h):
 *   1. The sequence: malloc, calloc, realloc up and down, the aligned
 *      family, free(NULL), realloc(NULL, n), realloc(p, 0), reallocarray,
 *      calls that fail (malloc, calloc, realloc, reallocarray too large,
 *      posix_memalign with a bad alignment), pvalloc, frees in a
 *      scrambled order, then a block freed and allocated again (the same
 *      address, which must get a new id). test_tracer.c's probe_ops[] is
 *      this list as the trace must show it.
 *   2. PROBE_MANY blocks live at once (the tracer's pointer table grows
 *      twice and its probe runs get long), freed in a scrambled order: a
 *      table that loses or mixes up entries shows as frees missing or on
 *      the wrong ids. These ops also fill the tracer's 64 KiB buffer, so
 *      the trace file has lines in it before step 4.
 *   3. A forked child allocates and returns through exit() (destructors
 *      run): it must not write to the parent's trace.
 *   4. A forked child execs this program with --exec-child, which fails if
 *      it can still see TRACER_OUT, and allocates: nothing of it may be
 *      recorded. (A child that reopened TRACER_OUT would truncate the
 *      trace under the parent, which goes on writing at its own offset.)
 *   5. PROBE_THREADS threads malloc, realloc and free at the same time: the
 *      trace must hold all of their ops, each block's in its order.
 *
 * Along the way it checks what the tracer must leave as glibc made it: the
 * payload survives realloc, calloc's memory is zero, aligned calls give
 * aligned pointers. It prints "tracer_probe: ok" and exits 0 when all of it
 * held; otherwise it says what failed and exits 1.
 *
 * Every pointer goes through a volatile sink: a compiler may delete a
 * malloc/free pair whose memory is never used, or turn malloc + memset(0)
 * into calloc, and then the trace would not show what the source says.
 */
#include "tracer_probe.h"

#include <errno.h>
#include <malloc.h> /* memalign, pvalloc: glibc's obsolete calls */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile probe_sink; /* where every pointer escapes to */
static bool probe_ok = true;      /* false once any check failed */

/* A check that failed: say so, and go on (the exit status will be 1). */
static void probe_expect(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "tracer_probe: %s\n", what);
        probe_ok = false;
    }
}

/* A failure the probe cannot go on after (a NULL it needs). */
_Noreturn static void probe_die(const char *what)
{
    fprintf(stderr, "tracer_probe: %s\n", what);
    exit(1);
}

/* Fills n bytes of p with a pattern made from seed, and keeps p. */
static void probe_fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 7);
    probe_sink = p;
}

/* Whether the first n bytes of p still hold probe_fill(p, n, seed). */
static bool probe_holds(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 7))
            return false;
    return true;
}

static bool probe_aligned(const void *p, size_t align)
{
    return p != NULL && (uintptr_t)p % align == 0;
}

/*
 * Requests that cannot succeed: nothing may be recorded, the answer and
 * errno must be glibc's, and a failed realloc must leave its block alone
 * (a tracer that dropped the block from its table first would lose it: its
 * free would go unrecorded). The calls go through volatile pointers:
 * clang 14 takes malloc and friends to write no memory the program can
 * see, so it would read errno back as the 0 stored before the call, and it
 * drops a call whose result is only compared with NULL.
 */
static void probe_failures(char *a)
{
    void *(*volatile malloc_fn)(size_t) = malloc;
    void *(*volatile calloc_fn)(size_t, size_t) = calloc;
    void *(*volatile realloc_fn)(void *, size_t) = realloc;
    void *(*volatile reallocarray_fn)(void *, size_t, size_t) = reallocarray;
    int (*volatile posix_memalign_fn)(void **, size_t, size_t) = posix_memalign;
    errno = 0;
    if (malloc_fn(SIZE_MAX) != NULL)
        probe_die("malloc(SIZE_MAX) succeeded");
    probe_expect(errno == ENOMEM, "malloc(SIZE_MAX): errno is not ENOMEM");
    errno = 0;
    if (calloc_fn(SIZE_MAX / 2 + 1, 2) != NULL)
        probe_die("calloc overflowing succeeded");
    probe_expect(errno == ENOMEM, "calloc overflowing: errno is not ENOMEM");
    errno = 0;
    if (realloc_fn(a, SIZE_MAX) != NULL)
        probe_die("realloc(p, SIZE_MAX) succeeded");
    probe_expect(errno == ENOMEM, "realloc(p, SIZE_MAX): errno is not ENOMEM");
    errno = 0;
    if (reallocarray_fn(a, SIZE_MAX, 2) != NULL)
        probe_die("reallocarray overflowing succeeded");
    probe_expect(errno == ENOMEM,
                 "reallocarray overflowing: errno is not ENOMEM");
    probe_expect(probe_holds(a, PROBE_A_SHRUNK, 1),
                 "a failed realloc changed the block");
    void *p = NULL;
    probe_expect(posix_memalign_fn(&p, 24, 16) == EINVAL && p == NULL,
                 "posix_memalign with alignment 24 did not fail with EINVAL");
}

/* ---- 1. The sequence ----------------------------------------------------- */

static void probe_sequence(void)
{
    char *a = malloc(PROBE_A);
    char *b = malloc(PROBE_B);
    unsigned char *c = calloc(PROBE_C_N, PROBE_C_SIZE);
    if (a == NULL || b == NULL || c == NULL)
        probe_die("malloc or calloc returned NULL");
    probe_fill(b, PROBE_B, 2);
    for (size_t i = 0; i < PROBE_C_BYTES; i++)
        probe_expect(c[i] == 0, "calloc's memory is not zero");
    probe_sink = c;

    /* realloc up, then down: the payload must follow the block. */
    probe_fill(a, PROBE_A, 1);
    a = realloc(a, PROBE_A_GROWN);
    if (a == NULL)
        probe_die("realloc up returned NULL");
    probe_expect(probe_holds(a, PROBE_A, 1), "realloc up lost data");
    a = realloc(a, PROBE_A_SHRUNK);
    if (a == NULL)
        probe_die("realloc down returned NULL");
    probe_expect(probe_holds(a, PROBE_A_SHRUNK, 1), "realloc down lost data");

    /* The aligned family: recorded as plain allocations. */
    void *d = NULL;
    probe_expect(posix_memalign(&d, PROBE_D_ALIGN, PROBE_D) == 0,
                 "posix_memalign failed");
    probe_expect(probe_aligned(d, PROBE_D_ALIGN), "posix_memalign: alignment");
    void *e = aligned_alloc(PROBE_E_ALIGN, PROBE_E);
    probe_expect(probe_aligned(e, PROBE_E_ALIGN), "aligned_alloc: alignment");
    void *f = memalign(PROBE_F_ALIGN, PROBE_F);
    probe_expect(probe_aligned(f, PROBE_F_ALIGN), "memalign: alignment");
    long page = sysconf(_SC_PAGESIZE);
    void *g = valloc(PROBE_G);
    probe_expect(probe_aligned(g, (size_t)page), "valloc: alignment");
    probe_sink = d;
    probe_sink = e;
    probe_sink = f;
    probe_sink = g;

    free(b);
    free(NULL);                       /* nothing to record */
    char *h = realloc(NULL, PROBE_H); /* an allocation */
    probe_expect(h != NULL, "realloc(NULL, n) returned NULL");
    probe_sink = h;
    /* glibc frees the block and returns NULL: recorded as a free. */
    void *c_after = realloc(c, 0);
    probe_expect(c_after == NULL, "realloc(p, 0) did not free");
    free(c_after); /* NULL, unless that check failed */

    char *i = reallocarray(NULL, PROBE_I_N, PROBE_I_SIZE);
    if (i == NULL)
        probe_die("reallocarray(NULL, ...) returned NULL");
    probe_fill(i, PROBE_I_BYTES, 3);
    i = reallocarray(i, PROBE_I_GROWN_N, PROBE_I_SIZE);
    if (i == NULL)
        probe_die("reallocarray up returned NULL");
    probe_expect(probe_holds(i, PROBE_I_BYTES, 3), "reallocarray lost data");

    probe_failures(a);

    void *k = pvalloc(PROBE_K);
    probe_expect(probe_aligned(k, (size_t)page), "pvalloc: alignment");
    probe_sink = k;

    /* Frees in an order unlike the allocations'. */
    free(e);
    free(a);
    free(g);
    free(d);
    free(i);
    free(h);
    free(f);
    free(k);

    /* The same size again at once: glibc hands back the same address,
     * which the tracer must file under a new id. */
    void *x = malloc(PROBE_X);
    probe_sink = x;
    free(x);
    void *y = malloc(PROBE_X);
    probe_sink = y;
    free(y);
}

/* ---- 2. Many blocks live at once ---------------------------------------- */

static void probe_many(void)
{
    static void *blocks[PROBE_MANY];
    for (size_t j = 0; j < PROBE_MANY; j++) {
        blocks[j] = malloc(PROBE_MANY_SIZE);
        probe_sink = blocks[j];
    }
    /* k * stride mod n visits every block once: gcd(stride, n) = 1. */
    for (size_t k = 0; k < PROBE_MANY; k++)
        free(blocks[k * PROBE_MANY_STRIDE % PROBE_MANY]);
}

/* ---- 3, 4. Children -------------------------------------------------------
 */

/* A forked child: allocates and leaves through exit(), which runs the
 * tracer's destructor in the child too. */
static void probe_fork_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        void *p = malloc(PROBE_FORK_SIZE);
        probe_sink = p;
        free(p);
        exit(0);
    }
    int status = 0;
    probe_expect(pid > 0 && waitpid(pid, &status, 0) == pid &&
                     WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "the forked child failed");
}

/* A forked child that execs this program again (--exec-child). */
static void probe_exec_child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "tracer_probe", "--exec-child", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    probe_expect(pid > 0 && waitpid(pid, &status, 0) == pid &&
                     WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "the exec'd child failed, or saw TRACER_OUT");
}

/* The exec'd program: inherits LD_PRELOAD but must not inherit TRACER_OUT
 * (with it, the tracer would reopen the trace and truncate it). */
static int probe_as_exec_child(void)
{
    if (getenv("TRACER_OUT") != NULL) {
        fprintf(stderr, "tracer_probe --exec-child: TRACER_OUT is set\n");
        return 1;
    }
    for (int n = 0; n < 10; n++) {
        void *p = malloc(PROBE_EXEC_SIZE);
        probe_sink = p;
        free(p);
    }
    return 0;
}

/* ---- 5. Threads ---------------------------------------------------------- */

static void *probe_thread(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    for (int n = 0; n < PROBE_THREAD_ITERS; n++) {
        char *p = malloc(PROBE_THREAD_SIZE + t);
        if (p == NULL)
            return p;
        probe_fill(p, 8, (unsigned)t);
        char *q = realloc(p, PROBE_THREAD_GROWN + t);
        if (q == NULL) {
            free(p);
            return q;
        }
        probe_sink = q;
        free(q);
    }
    return &probe_ok; /* non-NULL: all iterations ran */
}

static void probe_threads(void)
{
    pthread_t th[PROBE_THREADS];
    size_t started = 0;
    while (started < PROBE_THREADS &&
           pthread_create(&th[started], NULL, probe_thread,
                          (void *)(uintptr_t)started) == 0)
        started++;
    probe_expect(started == PROBE_THREADS, "pthread_create failed");
    for (size_t t = 0; t < started; t++) {
        void *ret = NULL;
        pthread_join(th[t], &ret);
        probe_expect(ret != NULL, "a thread's malloc or realloc failed");
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--exec-child") == 0)
        return probe_as_exec_child();
    probe_sequence();
    probe_many();
    fflush(stdout); /* a forked child must not print our buffer again */
    probe_fork_child();
    probe_exec_child();
    probe_threads();
    if (probe_ok)
        printf("tracer_probe: ok\n");
    return probe_ok ? 0 : 1;
}
