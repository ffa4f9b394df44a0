/*
 * threads_arena.c: what threads cost this stage in locks. `make bench-05`
 * runs it after the bench cases; common/mallocbench (run last) gives the
 * throughput of the same kind of work on every malloc, stage 04 included.
 *
 *   build/release/threads_arena [--ops N]
 *
 * (other arguments, the trace files `make bench` passes to every bench
 * program, are ignored.)
 *
 * The work is bench_arena's threads-N case, on the stage API: N threads
 * (1, 2, 4), each keeping 256 live blocks of 16..512 bytes and replacing a
 * random one per step, N requests in all (default 2,000,000, shared
 * between the threads). Two kinds of free:
 *
 *   own      every block freed by the thread that allocated it
 *   remote   one free in four is of a block another thread allocated
 *            (swapped through one of 64 shared atomic slots first)
 *
 * and the per-thread cache on (7 a size, the default) and off. For each,
 * from arena_stats before and after: arenas created, arena locks taken per
 * request, and per million requests how many of those found the lock held
 * by another thread and waited. Stage 04 takes its one lock on every
 * request (its malloc_shim.c); glibc, whose design this is, takes an
 * arena's lock only past its cache, as this stage does.
 *
 * Every run starts from nothing (arena_teardown), so arenas are counted
 * from zero; the threads make their first blocks, then wait for each other
 * (a barrier), so that each is attached before any has finished (a thread
 * that exits early leaves its arena to the next one). Rates are of one run on a
 * shared machine: for throughput, read mallocbench's medians.
 */
#include "arena.h"
#include "bench.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { LIVE = 256, SLOTS = 64, MAXT = 4 };

typedef struct job {
    size_t steps;  /* each one free and one malloc */
    uint64_t seed; /* this thread's picker */
    bool remote;   /* a quarter of the frees from the shared slots */
} job;

static void *slot[SLOTS];
static pthread_barrier_t ready; /* the threads and main: all attached */

static void *worker(void *arg)
{
    const job *j = arg;
    void *live[LIVE];
    uint64_t x = j->seed;
    for (size_t i = 0; i < LIVE; i++)
        live[i] = arena_malloc(16 + bench_below(bench_random(&x), 497));
    pthread_barrier_wait(&ready);
    for (size_t i = 0; i < j->steps; i++) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, LIVE);
        void *victim = live[k];
        if (j->remote && (r & 3) == 0)
            victim = __atomic_exchange_n(&slot[bench_below(r << 16, SLOTS)],
                                         victim, __ATOMIC_ACQ_REL);
        arena_free(victim);
        live[k] = arena_malloc(16 + (size_t)(r & 511) % 497);
    }
    for (size_t i = 0; i < LIVE; i++)
        arena_free(live[i]);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One run; prints its row. */
static int run(int threads, bool remote, size_t cache, size_t requests)
{
    arena_teardown();
    arena_set(ARENA_TCACHE_COUNT, cache);
    arena_stats_t s0 = arena_stats();
    job jobs[MAXT];
    pthread_t t[MAXT];
    size_t steps = requests / 2 / (size_t)threads;
    pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        jobs[i] =
            (job){steps, BENCH_SEED + 0x9E3779B97F4A7C15u * (uint64_t)(i + 1),
                  remote};
        if (pthread_create(&t[i], NULL, worker, &jobs[i]) != 0) {
            fprintf(stderr, "threads_arena: pthread_create failed\n");
            return -1;
        }
    }
    pthread_barrier_wait(&ready); /* every thread has its arena now */
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&ready);
    double secs = now() - t0;
    for (int i = 0; i < SLOTS; i++) { /* the blocks left in the slots */
        arena_free(slot[i]);
        slot[i] = NULL;
    }
    arena_stats_t s1 = arena_stats();
    if (!arena_check()) {
        fprintf(stderr, "threads_arena: arena_check: %s\n", arena_check_why());
        return -1;
    }
    double done = (double)((steps + (size_t)LIVE) * 2 * (size_t)threads);
    double locks = (double)(s1.lock_acquisitions - s0.lock_acquisitions);
    double waits = (double)(s1.lock_contended - s0.lock_contended);
    printf("%-7s %-6s %7d %7zu %12.3f %14.1f %9.2f\n",
           remote ? "remote" : "own", cache ? "on" : "off", threads, s1.arenas,
           locks / done, 1e6 * waits / done, done / secs / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    size_t requests = 2000000;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
            requests = (size_t)strtoull(argv[++i], NULL, 10);
    printf("\n== 05-arena threads: arena locks per request (%zu requests, "
           "256 live blocks of 16..512 B a thread)\n",
           requests);
    printf("%-7s %-6s %7s %7s %12s %14s %9s\n", "frees", "cache", "threads",
           "arenas", "locks/req", "waits/M req", "Mreq/s");
    static const int counts[] = {1, 2, 4};
    for (int remote = 0; remote <= 1; remote++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 3; k++)
                if (run(counts[k], remote, c == 0 ? 7 : 0, requests) != 0)
                    return 1;
    arena_set(ARENA_TCACHE_COUNT, 7);
    printf("locks/req: arena locks taken per malloc or free (stage 04: 1, its "
           "one lock);\nwaits: of those, the ones that found the lock held "
           "by another thread\n");
    return 0;
}
