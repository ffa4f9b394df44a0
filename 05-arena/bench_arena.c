/*
 * bench_arena.c: the arena allocator against the system malloc, side by
 * side (common/bench.h). `make bench-05` runs it through common/bench.sh,
 * which runs the system side again with stage 04's libmalloc.so preloaded
 * (best fit, one lock) and counts instructions per request inside the
 * allocator under callgrind; then replay_arena.c replays the traces (own
 * counts), threads_arena.c counts the lock acquisitions, and
 * common/mallocbench puts every malloc side by side as the program's
 * malloc.
 *
 *   churn-64-1            one live 64-byte block: each step frees it and
 *                         allocates it again (the per-thread cache alone)
 *   churn-64-1000         1000 live 64-byte blocks, a random one replaced
 *   churn-64-1000-nofast  the same with the fast bins off, then with the
 *   churn-64-1000-nocache cache off, then with both off: what each buys on
 *   churn-64-1000-bins    a size both serve (glibc's development tree has
 *                         dropped the fast bins: the cache does their job)
 *   churn-rand-1000       1000 live blocks of random sizes 1..1024
 *   churn-rand-1000-nocache   the same ops with the per-thread cache off
 *   churn-rand-1000-bins  the cache and the fast bins off: the bins alone
 *   churn-rand-10000      10000 live blocks of random sizes
 *   fifo-64               allocate 64-byte blocks, then free them in order
 *   realloc-double        32 blocks doubling 16 B -> 64 KiB by realloc
 *   big-256k              allocate and free one 256 KiB block: a mapping
 *                         each time until the mmap threshold moves up
 *   threads-N             N threads (1, 2, 4) churning 256 live blocks of
 *                         16..512 bytes each; a quarter of the frees are of
 *                         a block another thread allocated (handed over
 *                         through an exchange of one atomic pointer, the
 *                         same on every malloc)
 *   trace-NAME            the ops of common/traces/NAME.rep (the first
 *                         `ops` of them when scaled down), replayed with no
 *                         pattern and no footprint: the allocator and one
 *                         table lookup per op. replay_arena.c measures the
 *                         traces' utilization; this measures their speed,
 *                         and, under callgrind, instructions per request
 *
 * The churn cases follow common/bench.c's rule (bench_churn_system is the
 * system side); the stage's side calls the arena API directly, as a
 * program would. One allocator serves every case and repetition, as a
 * program keeps its malloc; a case that changes a setting restores it.
 */
#include "arena.h"
#include "bench.h"
#include "trace.h"

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHURN_OPS 400000

/* ---- churn -------------------------------------------------------------- */

static void churn_stage(bench_t *b, size_t ops, size_t size, size_t live,
                        size_t cache, size_t max_fast)
{
    arena_set(ARENA_TCACHE_COUNT, cache);
    arena_set(ARENA_MAX_FAST, max_fast);
    void **s = bench_slots(live);
    uint64_t x = BENCH_SEED;
    for (size_t i = 0; i < live; i++)
        s[i] = arena_malloc(bench_churn_size(size, bench_random(&x)));
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, live);
        arena_free(s[k]);
        s[k] = arena_malloc(bench_churn_size(size, r));
    }
    bench_stop(b);
    bench_keep(s[0]);
    for (size_t i = 0; i < live; i++)
        arena_free(s[i]);
    arena_set(ARENA_TCACHE_COUNT, 7);
    arena_set(ARENA_MAX_FAST, 120);
}

#define CHURN(name, size, live, cache, fast)                                   \
    static void name##_stage(bench_t *b, size_t ops)                           \
    {                                                                          \
        churn_stage(b, ops, size, live, cache, fast);                          \
    }                                                                          \
    static void name##_system(bench_t *b, size_t ops)                          \
    {                                                                          \
        bench_churn_system(b, ops, size, live);                                \
    }

CHURN(churn_64_1, 64, 1, 7, 120)
CHURN(churn_64_1000, 64, 1000, 7, 120)
CHURN(churn_64_1000_nofast, 64, 1000, 7, 0)
CHURN(churn_64_1000_nocache, 64, 1000, 0, 120)
CHURN(churn_64_1000_bins, 64, 1000, 0, 0)
CHURN(churn_rand_1000, BENCH_SIZE_RANDOM, 1000, 7, 120)
CHURN(churn_rand_1000_nocache, BENCH_SIZE_RANDOM, 1000, 0, 120)
CHURN(churn_rand_1000_bins, BENCH_SIZE_RANDOM, 1000, 0, 0)
CHURN(churn_rand_10000, BENCH_SIZE_RANDOM, 10000, 7, 120)

/* ---- fifo-64, realloc-double, big-256k ------------------------------------
 */

static void fifo_stage(bench_t *b, size_t ops)
{
    size_t n = ops / 2;
    void **s = bench_slots(n);
    bench_start(b);
    for (size_t i = 0; i < n; i++)
        s[i] = arena_malloc(64);
    for (size_t i = 0; i < n; i++)
        arena_free(s[i]);
    bench_stop(b);
}

static void fifo_system(bench_t *b, size_t ops)
{
    size_t n = ops / 2;
    void **s = bench_slots(n);
    bench_start(b);
    for (size_t i = 0; i < n; i++)
        s[i] = malloc(64);
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    bench_stop(b);
}

enum { GROWERS = 32, DOUBLINGS = 12 }; /* 16 B << 12 = 64 KiB */

static void grow_stage(bench_t *b, size_t ops)
{
    void *p[GROWERS];
    size_t rounds = ops / ((size_t)GROWERS * (DOUBLINGS + 2));
    bench_start(b);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t g = 0; g < GROWERS; g++)
            p[g] = arena_malloc(16);
        for (size_t d = 1; d <= DOUBLINGS; d++)
            for (size_t g = 0; g < GROWERS; g++)
                p[g] = arena_realloc(p[g], (size_t)16 << d);
        for (size_t g = 0; g < GROWERS; g++)
            arena_free(p[g]);
    }
    bench_stop(b);
}

static void grow_system(bench_t *b, size_t ops)
{
    void *p[GROWERS];
    size_t rounds = ops / ((size_t)GROWERS * (DOUBLINGS + 2));
    bench_start(b);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t g = 0; g < GROWERS; g++)
            p[g] = malloc(16);
        for (size_t d = 1; d <= DOUBLINGS; d++)
            for (size_t g = 0; g < GROWERS; g++) {
                void *q = realloc(p[g], (size_t)16 << d);
                if (q != NULL)
                    p[g] = q;
            }
        for (size_t g = 0; g < GROWERS; g++)
            free(p[g]);
    }
    bench_stop(b);
}

#define BIG ((size_t)256 * 1024)

static void big_stage(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        char *p = arena_malloc(BIG);
        p[0] = p[BIG - 1] = 1; /* touch it, as a program would */
        bench_keep(p);
        arena_free(p);
    }
    bench_stop(b);
}

static void big_system(bench_t *b, size_t ops)
{
    bench_start(b);
    for (size_t i = 0; i + 2 <= ops; i += 2) {
        char *p = malloc(BIG);
        if (p == NULL)
            break;
        p[0] = p[BIG - 1] = 1;
        bench_keep(p);
        free(p);
    }
    bench_stop(b);
}

/* ---- threads ---------------------------------------------------------------
 *
 * Each thread keeps 256 live blocks and replaces a random one per step;
 * one step in four, the freed block is first swapped with the one in a
 * shared exchange slot (an atomic pointer), so that the block freed is one
 * that some other thread allocated. The exchange costs every malloc the
 * same: one atomic exchange.
 */
enum { THREAD_LIVE = 256, EXCHANGE = 64 };

typedef struct thread_job {
    size_t ops;    /* steps for this thread (two requests each) */
    uint64_t seed; /* its own picker */
    bool stage;    /* the arena API, or malloc/free */
} thread_job;

static void *exchange[EXCHANGE];

static void *thread_main(void *arg)
{
    const thread_job *j = arg;
    void *live[THREAD_LIVE];
    uint64_t x = j->seed;
    for (size_t i = 0; i < THREAD_LIVE; i++) {
        size_t n = 16 + bench_below(bench_random(&x), 497);
        live[i] = j->stage ? arena_malloc(n) : malloc(n);
    }
    for (size_t i = 0; i < j->ops; i++) {
        uint64_t r = bench_random(&x);
        size_t k = bench_below(r, THREAD_LIVE);
        void *victim = live[k];
        if ((r & 3) == 0) /* a quarter: free another thread's block */
            victim =
                __atomic_exchange_n(&exchange[bench_below(r << 16, EXCHANGE)],
                                    victim, __ATOMIC_ACQ_REL);
        size_t n = 16 + (size_t)(r & 511) % 497;
        if (j->stage) {
            arena_free(victim);
            live[k] = arena_malloc(n);
        } else {
            free(victim);
            live[k] = malloc(n);
        }
    }
    for (size_t i = 0; i < THREAD_LIVE; i++) {
        if (j->stage)
            arena_free(live[i]);
        else
            free(live[i]);
    }
    return NULL;
}

static void threads_run(bench_t *b, size_t ops, int n, bool stage)
{
    thread_job jobs[4];
    pthread_t t[4];
    bench_start(b);
    for (int i = 0; i < n; i++) {
        jobs[i].ops = ops / 2 / (size_t)n;
        jobs[i].seed = BENCH_SEED + 0x9E3779B97F4A7C15u * (uint64_t)(i + 1);
        jobs[i].stage = stage;
        if (pthread_create(&t[i], NULL, thread_main, &jobs[i]) != 0) {
            fprintf(stderr, "bench_arena: pthread_create failed\n");
            exit(1);
        }
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    bench_stop(b);
    for (int i = 0; i < EXCHANGE; i++) { /* untimed: the blocks left */
        if (stage)
            arena_free(exchange[i]);
        else
            free(exchange[i]);
        exchange[i] = NULL;
    }
}

#define THREADS(n)                                                             \
    static void threads_##n##_stage(bench_t *b, size_t ops)                    \
    {                                                                          \
        threads_run(b, ops, n, true);                                          \
    }                                                                          \
    static void threads_##n##_system(bench_t *b, size_t ops)                   \
    {                                                                          \
        threads_run(b, ops, n, false);                                         \
    }

THREADS(1)
THREADS(2)
THREADS(4)

/* ---- the committed traces --------------------------------------------- */

enum { MAXTRACES = 12 };
static trace_t traces[MAXTRACES];
static int ntraces;

static void trace_run(bench_t *b, size_t ops, const trace_t *t, bool stage)
{
    void **p = bench_slots(t->num_ids ? t->num_ids : 1);
    memset(p, 0, (t->num_ids ? t->num_ids : 1) * sizeof *p);
    if (ops > t->num_ops)
        ops = t->num_ops;
    bench_start(b);
    for (size_t k = 0; k < ops; k++) {
        const trace_op *op = &t->ops[k];
        void **s = &p[op->id];
        if (op->kind == 'a')
            *s = stage ? arena_malloc(op->size) : malloc(op->size);
        else if (op->kind == 'f') {
            if (stage)
                arena_free(*s);
            else
                free(*s);
            *s = NULL;
        } else {
            void *q =
                stage ? arena_realloc(*s, op->size) : realloc(*s, op->size);
            if (q != NULL)
                *s = q;
        }
    }
    bench_stop(b);
    for (size_t id = 0; id < t->num_ids; id++) { /* untimed: the rest */
        if (stage)
            arena_free(p[id]);
        else
            free(p[id]);
    }
}

#define TRACE_CASE(k)                                                          \
    static void trace_##k##_stage(bench_t *b, size_t ops)                      \
    {                                                                          \
        trace_run(b, ops, &traces[k], true);                                   \
    }                                                                          \
    static void trace_##k##_system(bench_t *b, size_t ops)                     \
    {                                                                          \
        trace_run(b, ops, &traces[k], false);                                  \
    }
TRACE_CASE(0)
TRACE_CASE(1)
TRACE_CASE(2)
TRACE_CASE(3)
TRACE_CASE(4)
TRACE_CASE(5)
TRACE_CASE(6)
TRACE_CASE(7)
TRACE_CASE(8)
TRACE_CASE(9)
TRACE_CASE(10)
TRACE_CASE(11)
static const bench_fn trace_stage[MAXTRACES] = {
    trace_0_stage, trace_1_stage, trace_2_stage,  trace_3_stage,
    trace_4_stage, trace_5_stage, trace_6_stage,  trace_7_stage,
    trace_8_stage, trace_9_stage, trace_10_stage, trace_11_stage};
static const bench_fn trace_system[MAXTRACES] = {
    trace_0_system, trace_1_system, trace_2_system,  trace_3_system,
    trace_4_system, trace_5_system, trace_6_system,  trace_7_system,
    trace_8_system, trace_9_system, trace_10_system, trace_11_system};

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the .rep files of `dir` (sorted by name), at most MAXTRACES. */
static void read_traces(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    static char names[MAXTRACES][512];
    char *order[MAXTRACES] = {0};
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAXTRACES) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".rep") == 0) {
            snprintf(names[n], sizeof names[n], "%s/%s", dir, e->d_name);
            order[n] = names[n];
            n++;
        }
    }
    closedir(d);
    qsort(order, (size_t)n, sizeof order[0], by_name);
    for (int i = 0; i < n; i++)
        if (trace_read(order[i], &traces[ntraces]) == 0)
            ntraces++;
}

// clang-format off
static const bench_case fixed_cases[] = {
    {"churn-64-1", "one live 64-byte block freed and allocated again",
     CHURN_OPS, churn_64_1_stage, churn_64_1_system},
    {"churn-64-1000", "1000 live 64-byte blocks, a random one replaced",
     CHURN_OPS, churn_64_1000_stage, churn_64_1000_system},
    {"churn-64-1000-nofast", "the same, the stage's fast bins off",
     CHURN_OPS, churn_64_1000_nofast_stage, churn_64_1000_nofast_system},
    {"churn-64-1000-nocache", "the same, the stage's per-thread cache off",
     CHURN_OPS, churn_64_1000_nocache_stage, churn_64_1000_nocache_system},
    {"churn-64-1000-bins", "the same, the stage's cache and fast bins off",
     CHURN_OPS, churn_64_1000_bins_stage, churn_64_1000_bins_system},
    {"churn-rand-1000", "1000 live blocks of 1..1024 B, a random one replaced",
     CHURN_OPS, churn_rand_1000_stage, churn_rand_1000_system},
    {"churn-rand-1000-nocache", "the same, the stage's per-thread cache off",
     CHURN_OPS, churn_rand_1000_nocache_stage, churn_rand_1000_nocache_system},
    {"churn-rand-1000-bins", "the same, the stage's cache and fast bins off",
     CHURN_OPS, churn_rand_1000_bins_stage, churn_rand_1000_bins_system},
    {"churn-rand-10000", "10000 live blocks of 1..1024 B",
     CHURN_OPS, churn_rand_10000_stage, churn_rand_10000_system},
    {"fifo-64", "allocate 64-byte blocks, then free them in order",
     CHURN_OPS / 2, fifo_stage, fifo_system},
    {"realloc-double", "32 blocks doubling 16 B -> 64 KiB by realloc, freed",
     (size_t)GROWERS * (DOUBLINGS + 2) * 200, grow_stage, grow_system},
    {"big-256k", "allocate, touch and free one 256 KiB block",
     20000, big_stage, big_system},
    {"threads-1", "1 thread, 256 live blocks of 16..512 B, 1/4 remote frees",
     CHURN_OPS, threads_1_stage, threads_1_system},
    {"threads-2", "2 threads, the same work split between them",
     CHURN_OPS, threads_2_stage, threads_2_system},
    {"threads-4", "4 threads, the same work split between them",
     CHURN_OPS, threads_4_stage, threads_4_system},
};
// clang-format on

int main(int argc, char **argv)
{
    enum { NFIXED = sizeof fixed_cases / sizeof fixed_cases[0] };
    static bench_case cases[NFIXED + MAXTRACES];
    static char names[MAXTRACES][TRACE_NAME_MAX + 8];
    static char whats[MAXTRACES][TRACE_NAME_MAX + 48];
    memcpy(cases, fixed_cases, sizeof fixed_cases);
    read_traces("../common/traces");
    for (int k = 0; k < ntraces; k++) {
        snprintf(names[k], sizeof names[k], "trace-%s", traces[k].name);
        snprintf(whats[k], sizeof whats[k], "the ops of common/traces/%s.rep",
                 traces[k].name);
        cases[NFIXED + k] = (bench_case){names[k], whats[k], traces[k].num_ops,
                                         trace_stage[k], trace_system[k]};
    }
    return bench_main(argc, argv, "05-arena", cases, NFIXED + (size_t)ntraces);
}
