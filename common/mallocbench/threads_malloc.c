/*
 * common/mallocbench/threads_malloc.c: malloc and free from several threads
 * at once, through the C library's API (run it under LD_PRELOAD to measure
 * another malloc; compare.sh does, for every allocator).
 *
 *     threads_malloc [--threads N] [--mode local|cross] [--ops M]
 *                    [--label NAME] [--csv PATH] [--reps R]
 *
 *   local   each thread churns its own blocks (a slot array: free the
 *           block in a random slot, allocate a new one of a random size):
 *           what a malloc costs when threads share nothing
 *   cross   each thread allocates blocks and hands them to the next thread
 *           (a ring of single-producer, single-consumer queues), which
 *           frees them: every free is of a block another thread allocated,
 *           the producer/consumer pattern of pipelines and servers. With one
 *           thread, the thread frees its own blocks after a queue's delay.
 *
 * Sizes: 80% in 16-128 B, 15% up to 1 KB, 5% up to 8 KB. M is the total of
 * mallocs over all threads (default 2,000,000); the run's rate is
 * (mallocs + frees) / wall time, the median of R runs (default 5), each in
 * fresh threads. Prints one line; appends
 *     case,allocator,threads,ops,seconds,ops_per_sec
 * to PATH. Every block's first and last bytes are written by its allocating
 * thread and checked by the freeing one.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64
#define SLOTS       1024
#define QUEUE       4096 /* a power of two */

typedef struct queue {
    _Atomic size_t head; /* next to read, by the consumer */
    char pad1[64 - sizeof(size_t)];
    _Atomic size_t tail; /* next to write, by the producer */
    char pad2[64 - sizeof(size_t)];
    void *item[QUEUE];
} queue;

static struct {
    int threads;
    int cross;
    size_t ops_per_thread;
    queue *q; /* q[i]: from thread i to thread i + 1 */
    _Atomic int bad;
} B;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = next_rand(s);
    unsigned pct = (unsigned)(r % 100);
    r >>= 8;
    if (pct < 80)
        return 16 + r % 113;
    if (pct < 95)
        return 129 + r % 896;
    return 1025 + r % 7168;
}

/* A block remembers its size in its first 8 bytes and ends with a mark. */
static void *take(uint64_t *s)
{
    size_t n = pick_size(s);
    unsigned char *p = malloc(n);
    if (p == NULL) {
        atomic_fetch_add(&B.bad, 1);
        return NULL;
    }
    memcpy(p, &n, sizeof n);
    p[n - 1] = (unsigned char)n;
    return p;
}

static void give(void *v)
{
    unsigned char *p = v;
    if (p == NULL)
        return;
    size_t n;
    memcpy(&n, p, sizeof n);
    if (n < 16 || n > 8192 || p[n - 1] != (unsigned char)n)
        atomic_fetch_add(&B.bad, 1);
    free(p);
}

static void *run_local(void *arg)
{
    uint64_t s = (uintptr_t)arg * 7919 + 1;
    void **slot = calloc(SLOTS, sizeof *slot);
    if (slot == NULL)
        return NULL;
    for (size_t i = 0; i < B.ops_per_thread; i++) {
        size_t k = next_rand(&s) % SLOTS;
        give(slot[k]);
        slot[k] = take(&s);
    }
    for (size_t k = 0; k < SLOTS; k++)
        give(slot[k]);
    free(slot);
    return NULL;
}

/* Frees what has arrived from the previous thread; returns how many. */
static size_t drain(queue *in)
{
    size_t head = atomic_load_explicit(&in->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&in->tail, memory_order_acquire);
    for (size_t h = head; h != tail; h++)
        give(in->item[h % QUEUE]);
    atomic_store_explicit(&in->head, tail, memory_order_release);
    return tail - head;
}

static void *run_cross(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t s = (uintptr_t)arg * 7919 + 1;
    queue *out = &B.q[me];
    queue *in = &B.q[(me + B.threads - 1) % B.threads];
    size_t made = 0, freed = 0;
    while (made < B.ops_per_thread || freed < B.ops_per_thread) {
        size_t before = made + freed;
        /* Up to 64 blocks out, as long as the queue has room... */
        for (int k = 0; k < 64 && made < B.ops_per_thread; k++) {
            size_t tail =
                atomic_load_explicit(&out->tail, memory_order_relaxed);
            size_t head =
                atomic_load_explicit(&out->head, memory_order_acquire);
            if (tail - head == QUEUE)
                break;
            out->item[tail % QUEUE] = take(&s);
            atomic_store_explicit(&out->tail, tail + 1, memory_order_release);
            made++;
        }
        /* ...then free what has come in. In batches: a queue drained after
         * every block holds one block and turns the case into a ping-pong
         * of cache lines between the threads. */
        freed += drain(in);
        /* Nothing to do until the other thread runs: on a machine with
         * fewer cores than threads, spinning would only delay it. */
        if (made + freed == before)
            sched_yield();
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *label = "system", *csv = NULL, *mode = "local";
    size_t ops = 2000000;
    int reps = 5;
    B.threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--threads") == 0)
            B.threads = (int)strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--mode") == 0)
            mode = argv[i + 1];
        else if (strcmp(argv[i], "--ops") == 0)
            ops = (size_t)strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--label") == 0)
            label = argv[i + 1];
        else if (strcmp(argv[i], "--csv") == 0)
            csv = argv[i + 1];
        else if (strcmp(argv[i], "--reps") == 0)
            reps = (int)strtol(argv[i + 1], NULL, 10);
    }
    if (B.threads < 1 || B.threads > MAX_THREADS || reps < 1 ||
        (strcmp(mode, "local") != 0 && strcmp(mode, "cross") != 0)) {
        fprintf(stderr,
                "usage: threads_malloc [--threads 1-%d] [--mode "
                "local|cross] [--ops M] [--label NAME] [--csv PATH] "
                "[--reps R]\n",
                MAX_THREADS);
        return 2;
    }
    B.cross = strcmp(mode, "cross") == 0;
    B.ops_per_thread = ops / (size_t)B.threads;
    B.q = aligned_alloc(64, sizeof(queue) * (size_t)B.threads);
    double runs[64] = {0};
    if (reps > 64)
        reps = 64;
    for (int r = 0; r < reps; r++) {
        memset(B.q, 0, sizeof(queue) * (size_t)B.threads);
        pthread_t t[MAX_THREADS];
        double start = now();
        for (int i = 0; i < B.threads; i++)
            pthread_create(&t[i], NULL, B.cross ? run_cross : run_local,
                           (void *)(uintptr_t)i);
        for (int i = 0; i < B.threads; i++)
            pthread_join(t[i], NULL);
        runs[r] = now() - start;
    }
    free(B.q);
    qsort(runs, (size_t)reps, sizeof runs[0], cmp_double);
    double secs =
        reps % 2 ? runs[reps / 2] : (runs[reps / 2 - 1] + runs[reps / 2]) / 2;
    size_t done = 2 * B.ops_per_thread * (size_t)B.threads;
    double rate = (double)done / secs;
    printf("threads-%s %-14s %2d threads  %8.2f Mops/s%s\n", mode, label,
           B.threads, rate / 1e6,
           atomic_load(&B.bad) ? "  DAMAGED OR FAILED BLOCKS" : "");
    if (csv) {
        FILE *f = fopen(csv, "a");
        if (f) {
            fprintf(f, "threads-%s,%s,%d,%zu,%.6f,%.0f\n", mode, label,
                    B.threads, done, secs, rate);
            fclose(f);
        }
    }
    return atomic_load(&B.bad) ? 1 : 0;
}
