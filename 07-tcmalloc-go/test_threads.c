/*
 * test_threads.c: the allocator with threads, and the edges where fast
 * allocators have failed their users. A block freed by another thread than
 * its allocator's lands in the freer's cache and is reused; a thread whose
 * first call is a free (or a realloc) of another thread's block; the first
 * call coming from a thread that a constructor starts before main; a cache
 * given back at thread exit, and calls from thread-specific-data
 * destructors and atexit handlers after that teardown, served uncached;
 * the heap's footprint steady while hundreds of threads come and go;
 * producer and consumer threads passing batches through the transfer
 * cache; fork while other threads allocate; the background scavenger
 * giving a burst back to the OS (resident memory read from smaps_rollup);
 * the dump of several threads' caches.
 */
#include "gm.h"
#include "gm_internal.h"
#include "test.h"
#include "trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
/* Resident memory follows the heap, not a sanitizer's shadow of it. */
#if UNDER_TSAN || TRACK_ENABLED
#define RSS_MEANINGFUL 0
#else
#define RSS_MEANINGFUL 1
#endif

/* A fresh heap, no background thread, tiny on. */
static void fresh(void)
{
    gm_destroy();
    gm_set_scavenge(GM_SCAVENGE_OFF);
    gm_set_tiny(true);
}

static bool sound(void)
{
    const char *why = gm_check_why();
    if (why != NULL)
        printf("    gm_check: %s\n", why);
    return why == NULL;
}

static size_t list_len(unsigned c)
{
    size_t n = 0;
    for (void *p = gm_mcache.head[c]; p != NULL; p = link_get(p))
        n++;
    return n;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) == 0)
        pthread_join(t, NULL);
    else
        CHECK(!"pthread_create");
}

// clang-format off
/* ---- Before main: the first call from a thread a constructor starts ------ */
// clang-format on

static struct {
    bool ran, ok;
} early;

static void *early_thread(void *arg)
{
    (void)arg;
    gm_free(NULL);
    char *p = gm_malloc(100), *q = gm_realloc(NULL, 7000);
    early.ok = p != NULL && q != NULL && (uintptr_t)p % 16 == 0;
    if (p != NULL)
        memset(p, 1, 100);
    q = gm_realloc(q, 70000);
    early.ok = early.ok && q != NULL;
    gm_free(p);
    gm_free(q);
    early.ran = true;
    return NULL;
}

/* Runs before main, before anything has called the allocator: the heap
 * starts in this thread's first call. */
__attribute__((constructor)) static void before_main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, early_thread, NULL) == 0)
        pthread_join(t, NULL);
}

static void test_first_call_before_main_from_a_thread(void)
{
    CHECK(early.ran);
    CHECK(early.ok);
    CHECK(sound());
}

// clang-format off
/* ---- Frees from another thread ------------------------------------------- */
// clang-format on

enum { N_CROSS = 3000 };
static void *cross[N_CROSS];

static void *free_them(void *arg)
{
    size_t *left = arg;
    unsigned c = gm_size_class(200);
    for (size_t i = 0; i < N_CROSS; i++)
        gm_free(cross[i]);
    gm_quarantine_flush();
    *left = list_len(c); /* what this thread's cache kept */
    return NULL;
}

/* The freer's cache keeps them (up to its bound), the rest goes back in
 * batches, and when the freer exits its cache goes back too: the
 * allocating thread then reuses every block without a new span. */
static void test_frees_from_another_thread_are_reused(void)
{
    fresh();
    unsigned c = gm_size_class(200);
    for (size_t i = 0; i < N_CROSS; i++)
        cross[i] = gm_malloc(200);
    size_t spans = gm_heap.central[c].nspans, kept = 0;
    run_thread(free_them, &kept);
    CHECK(kept > 0);
    CHECK_LE(kept, mcache_cap(c));
    CHECK_EQ(gm_stats().threads, 1); /* the freer's cache went back */
    CHECK(sound());
    for (size_t i = 0; i < N_CROSS; i++)
        cross[i] = gm_malloc(200);
    CHECK_LE(gm_heap.central[c].nspans, spans); /* no new span */
    for (size_t i = 0; i < N_CROSS; i++)
        gm_free(cross[i]);
    CHECK(sound());
}

static struct {
    void *block;
    char *grown;
    bool started, listed;
} first;

static void *first_call_free(void *arg)
{
    (void)arg;
    gm_free(first.block); /* this thread's first call */
    gm_quarantine_flush();
    first.started = gm_mcache.state == MCACHE_ACTIVE && gm_mcache.registered;
    first.listed = gm_mcache.head[gm_size_class(100)] == first.block;
    return NULL;
}

static void *first_call_realloc(void *arg)
{
    (void)arg;
    first.grown = gm_realloc(first.block, 5000); /* its first call */
    return NULL;
}

static void test_first_call_is_a_free_or_realloc_of_another_threads_block(void)
{
    fresh();
    first.block = gm_malloc(100);
    REQUIRE(first.block != NULL);
    run_thread(first_call_free, NULL);
    CHECK(first.started);
    CHECK(GM_CHECKED || first.listed);
    CHECK(sound());
    char *b = gm_malloc(100);
    REQUIRE(b != NULL);
    memcpy(b, "kept", 5);
    first.block = b;
    run_thread(first_call_realloc, NULL);
    REQUIRE(first.grown != NULL);
    CHECK_EQ(strcmp(first.grown, "kept"), 0);
    gm_free(first.grown);
    CHECK(sound());
}

// clang-format off
/* ---- The end of a thread ------------------------------------------------- */
// clang-format on

static void *churn_and_exit(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    void **p = calloc(n, sizeof *p);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = gm_malloc(1 + (i * 37) % 3000);
    for (size_t i = 0; i < n; i += 2)
        gm_free(p[i]);
    for (size_t i = 1; i < n; i += 2)
        gm_free(p[i]);
    free(p);
    return NULL;
}

static void test_thread_exit_gives_the_cache_back(void)
{
    fresh();
    run_thread(churn_and_exit, (void *)(uintptr_t)5000);
    gm_stats_t st = gm_stats();
    CHECK_EQ(st.threads, 0); /* main has not allocated since fresh() */
    CHECK_EQ(st.cached_thread, 0);
    CHECK_EQ(st.live_small, 0);
    CHECK(sound());
    gm_trim(); /* everything back in the spans: the spans go */
    CHECK_EQ(gm_stats().small_spans, 0);
}

/* A key created after the allocator's: glibc runs the destructors in the
 * order of the keys, so this one runs after the allocator's own. */
static pthread_key_t late_key;
static struct {
    int state; /* the cache's state when the destructor ran */
    bool ok;
} late;

static void late_destructor(void *v)
{
    (void)v;
    late.state = gm_mcache.state;
    void *p[50];
    bool ok = true;
    for (int i = 0; i < 50; i++) {
        p[i] = gm_malloc(1 + (size_t)i * 41);
        ok = ok && p[i] != NULL;
    }
    p[7] = gm_realloc(p[7], 50000);
    ok = ok && p[7] != NULL;
    for (int i = 0; i < 50; i++)
        gm_free(p[i]);
    late.ok = ok && gm_mcache.head[gm_size_class(100)] == NULL;
}

static void *set_late_key(void *arg)
{
    (void)arg;
    void *p = gm_malloc(64); /* starts this thread's cache */
    gm_free(p);
    pthread_setspecific(late_key, &late);
    return NULL;
}

static void test_destructors_after_the_teardown_are_served(void)
{
    fresh();
    gm_init(); /* the allocator's key exists before ours */
    REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
    run_thread(set_late_key, NULL);
    CHECK_EQ(late.state, MCACHE_DEAD);
    CHECK(late.ok);
    gm_stats_t st = gm_stats();
    CHECK_EQ(st.threads, 0);
    CHECK_EQ(st.cached_thread, 0); /* nothing stranded in a dead cache */
    CHECK_EQ(st.live_small + st.live_large, 0);
    CHECK(sound());
    pthread_key_delete(late_key);
}

static void at_exit_after_teardown(void)
{
    bool ok = gm_mcache.state == MCACHE_DEAD;
    for (int i = 0; i < 200 && ok; i++) {
        char *p = gm_malloc(1 + (size_t)i * 13);
        ok = p != NULL;
        p = gm_realloc(p, 3000);
        ok = ok && p != NULL;
        gm_free(p);
    }
    ok = ok && gm_check() && gm_stats().cached_thread == 0;
    _exit(ok ? 0 : 3);
}

/* A child whose main thread calls pthread_exit: its destructors (the
 * allocator's among them) run, then, as the last thread, it runs the
 * atexit handlers, which allocate. */
static void test_atexit_handlers_after_the_teardown_are_served(void)
{
    if (UNDER_TSAN) {
        /* its own thread outlives pthread_exit of main: the child would
         * never end */
        test_skip("ThreadSanitizer keeps a thread of its own alive");
        return;
    }
    fresh();
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        void *p = gm_malloc(100); /* this thread's cache starts */
        gm_free(p);
        atexit(at_exit_after_teardown);
        pthread_exit(NULL);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_INT_EQ(WEXITSTATUS(status), 0);
}

/* Hundreds of threads, a few at a time, each allocating and freeing some
 * of its blocks, the others freed by the main thread: the heap's
 * footprint stops growing once the first waves have run. */
enum { WAVE = 4, KEEP = 200 };
static void *handed[WAVE][KEEP];

static void *wave_thread(void *arg)
{
    size_t me = (size_t)(uintptr_t)arg;
    void *mine[KEEP];
    for (size_t i = 0; i < KEEP; i++) {
        mine[i] = gm_malloc(16 + (i * 53 + me * 7) % 2000);
        handed[me][i] = gm_malloc(16 + (i * 31) % 900);
    }
    for (size_t i = 0; i < KEEP; i++)
        gm_free(mine[i]);
    return NULL;
}

static void test_footprint_steady_as_threads_come_and_go(void)
{
    fresh();
    size_t waves = test_scale(200), at_half = 0;
    for (size_t w = 0; w < waves; w++) {
        pthread_t t[WAVE];
        for (size_t i = 0; i < WAVE; i++)
            pthread_create(&t[i], NULL, wave_thread, (void *)(uintptr_t)i);
        for (size_t i = 0; i < WAVE; i++)
            pthread_join(t[i], NULL);
        for (size_t i = 0; i < WAVE; i++)
            for (size_t k = 0; k < KEEP; k++)
                gm_free(handed[i][k]);
        if (w == waves / 2)
            at_half = gm_stats().footprint;
    }
    /* A cache that a thread's exit left behind would cost ~100 KiB a
     * thread: 80 MiB here. */
    gm_stats_t st = gm_stats();
    CHECK_LE(st.footprint, 2 * at_half);
    CHECK_LE(st.footprint, (size_t)8 << 20);
    CHECK_LE(st.threads, 1);
    CHECK(sound());
    printf("    %zu threads: footprint %zu KiB half way, %zu KiB at the end\n",
           waves * WAVE, at_half >> 10, st.footprint >> 10);
}

// clang-format off
/* ---- Producer and consumer ----------------------------------------------- */
// clang-format on

enum { RING = 1024 };
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void *item[RING];
    size_t head, tail;
    size_t total;
} ring = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0};

static void *producer(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < ring.total; i++) {
        void *p = gm_malloc(64);
        pthread_mutex_lock(&ring.lock);
        while (ring.tail - ring.head == RING)
            pthread_cond_wait(&ring.cond, &ring.lock);
        ring.item[ring.tail++ % RING] = p;
        pthread_cond_broadcast(&ring.cond);
        pthread_mutex_unlock(&ring.lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < ring.total; i++) {
        pthread_mutex_lock(&ring.lock);
        while (ring.head == ring.tail)
            pthread_cond_wait(&ring.cond, &ring.lock);
        void *p = ring.item[ring.head++ % RING];
        pthread_cond_broadcast(&ring.cond);
        pthread_mutex_unlock(&ring.lock);
        gm_free(p);
    }
    return NULL;
}

/* Every block crosses threads: the consumer's overflowing list hands
 * whole batches to the transfer cache, the producer's empty list takes
 * them back, and memory stays at what the queue holds. */
static void test_producer_consumer_through_the_transfer_cache(void)
{
    fresh();
    ring.total = test_scale(200000);
    ring.head = ring.tail = 0;
    pthread_t p, c;
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c, NULL, consumer, NULL);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    const mcentral *m = &gm_heap.central[gm_size_class(64)];
    size_t batches = ring.total / gm_class_batch(gm_size_class(64));
    CHECK_GE(m->batches_out, batches / 2); /* most refills: a batch */
    CHECK_LE(m->nspans, 1 +
                            (RING + 2 * mcache_cap(gm_size_class(64))) /
                                gm_class_objects(gm_size_class(64)) +
                            4);
    CHECK(sound());
    printf("    %zu blocks: %llu batches in and %llu out of the transfer "
           "cache, %llu objects to and %llu from the spans, %zu spans\n",
           ring.total, (unsigned long long)m->batches_in,
           (unsigned long long)m->batches_out, (unsigned long long)m->to_spans,
           (unsigned long long)m->from_spans, m->nspans);
}

// clang-format off
/* ---- fork while other threads allocate ----------------------------------- */
// clang-format on

static int churn_stop; /* atomic */

static void *churner(void *arg)
{
    uint64_t x = (uintptr_t)arg * 7919 + 1;
    void *slot[64] = {NULL};
    while (!__atomic_load_n(&churn_stop, __ATOMIC_RELAXED)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = x % 64;
        gm_free(slot[k]);
        slot[k] = gm_malloc(1 + (x >> 8) % 20000);
    }
    for (size_t k = 0; k < 64; k++)
        gm_free(slot[k]);
    return NULL;
}

/* The child has the forking thread's cache only, every lock free, a sound
 * heap, and allocates. */
static void test_fork_while_threads_allocate(void)
{
    fresh();
    __atomic_store_n(&churn_stop, 0, __ATOMIC_RELAXED);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)(i + 1));
    int forks = (int)test_scale(30), bad = 0;
    for (int i = 0; i < forks; i++) {
        void *mine = gm_malloc(300);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            const char *why = gm_check_why();
            if (why == NULL && gm_stats().threads > 1)
                why = "other threads' caches are still listed";
            for (int k = 0; k < 1000 && why == NULL; k++) {
                void *p = gm_malloc((size_t)(1 + k * 17 % 5000));
                if (p == NULL)
                    why = "a malloc failed";
                gm_free(p);
            }
            gm_free(mine);
            if (why == NULL)
                why = gm_check_why();
            if (why != NULL)
                fprintf(stderr, "    child: %s\n", why);
            /* The answer through an exec, as a program forked with
             * threads should end: under Valgrind an _exit here would run
             * its leak check, and the threads that did not come along
             * leave blocks behind, some of them halfway through a free. */
            execl("/bin/sh", "sh", "-c", why == NULL ? "exit 0" : "exit 1",
                  (char *)NULL);
            _exit(why == NULL ? 0 : 1);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            bad++;
            printf("    child %d: status %#x\n", (int)pid, (unsigned)status);
        }
        gm_free(mine);
    }
    __atomic_store_n(&churn_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK_INT_EQ(bad, 0);
    CHECK(sound());
}

// clang-format off
/* ---- The background scavenger -------------------------------------------- */
// clang-format on

/* A burst of small blocks, all but one in a thousand freed, then no call
 * at all: the scavenger thread gives the pages back by itself, and
 * resident memory falls back near where it started. */
static void test_scavenger_gives_a_burst_back(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL && strstr(preload, "vgpreload") != NULL) {
        test_skip("resident memory means little under Valgrind");
        return;
    }
    fresh();
    gm_set_scavenge(GM_SCAVENGE_BACKGROUND);
    gm_set_scavenge_delay(50);
    size_t mb = test_scale(10) < 10 ? 16 : 64, n = 0, total = 0;
    size_t cap = mb << 10;
    char **blocks = mmap(NULL, cap * sizeof *blocks, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(blocks != MAP_FAILED);
    size_t start = trace_rss_bytes();
    uint64_t x = 88172645463325252u;
    while (total < mb << 20 && n < cap) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t size = 16 + x % 4081;
        blocks[n] = gm_malloc(size);
        REQUIRE(blocks[n] != NULL);
        memset(blocks[n++], 1, size);
        total += size;
    }
    size_t peak = trace_rss_bytes();
    for (size_t i = 0; i < n; i++)
        if (i % 1000 != 999)
            gm_free(blocks[i]);
    size_t after = trace_rss_bytes();
    int waited = 0;
    for (; waited < 3000; waited += 50) {
        usleep(50000);
        gm_stats_t st = gm_stats();
        if (st.cached_central == 0 &&
            st.pages_free * GM_PAGE <=
                ((size_t)1 << 20) + st.pages_in_use * GM_PAGE / 16)
            break; /* the scavenger has reached its goal */
    }
    size_t now = trace_rss_bytes();
    gm_stats_t st = gm_stats();
    printf("    resident: %zu MiB at the start, %zu at the peak, %zu after "
           "the free, %zu after %d ms; heap: %zu KiB in spans, %zu KiB free "
           "resident, %zu KiB metadata, %zu objects cached by this thread, "
           "%zu in transfer caches\n",
           start >> 20, peak >> 20, after >> 20, now >> 20, waited,
           st.pages_in_use * 8, st.pages_free * 8, st.metadata >> 10,
           st.cached_thread, st.cached_central);
    /* The scavenger reached its goal by itself and gave most of the burst
     * back. Resident memory fell with it: all but a quarter of the burst
     * and the metadata (a checked build keeps 2 KiB of requests a span,
     * never given back); a release build within a few MiB of the start.
     * Under ASan and TSan resident memory is mostly their shadow, which
     * does not shrink with the heap. */
    gm_stats_t end = gm_stats();
    CHECK_LE(end.pages_free * GM_PAGE,
             ((size_t)1 << 20) + end.pages_in_use * GM_PAGE / 16);
    CHECK_EQ(end.cached_central, 0); /* drained when the heap went idle */
    CHECK(end.scavenged_bytes > (mb << 19));
    if (RSS_MEANINGFUL) {
        CHECK_LE(now - start, (peak - start) / 4 + end.metadata);
        if (!GM_CHECKED)
            CHECK_LE(now, start + ((size_t)8 << 20));
    }
    int state = __atomic_load_n(&gm_heap.scav_state, __ATOMIC_ACQUIRE);
    CHECK(state == 2 || state == 4); /* running, or ended when idle */
    for (size_t i = 999; i < n; i += 1000)
        gm_free(blocks[i]);
    munmap(blocks, cap * sizeof *blocks);
    gm_set_scavenge(GM_SCAVENGE_OFF); /* stops the thread */
    CHECK_INT_EQ(gm_heap.scav_state, 0);
    CHECK(sound());
}

// clang-format off
/* ---- The dump of several threads' caches --------------------------------- */
// clang-format on

static pthread_barrier_t at_dump, after_dump;

static void *hold_and_wait(void *arg)
{
    void *p[40];
    for (int i = 0; i < 40; i++)
        p[i] = gm_malloc((size_t)(uintptr_t)arg);
    for (int i = 0; i < 40; i++)
        gm_free(p[i]);
    pthread_barrier_wait(&at_dump); /* main draws the caches now */
    pthread_barrier_wait(&after_dump);
    return NULL;
}

static void test_dump_draws_every_threads_cache(void)
{
    fresh();
    pthread_barrier_init(&at_dump, NULL, 4);
    pthread_barrier_init(&after_dump, NULL, 4);
    pthread_t t[3];
    static const size_t sizes[3] = {48, 300, 2000};
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, hold_and_wait, (void *)(uintptr_t)sizes[i]);
    pthread_barrier_wait(&at_dump);
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    REQUIRE(f != NULL);
    mcache_dump(f);
    fclose(f);
    buf[sizeof buf - 1] = '\0';
    CHECK(strstr(buf, "mcache: 3 threads with a cache") != NULL);
    CHECK(strstr(buf, "(   48 B)") != NULL);
    CHECK(strstr(buf, "(  320 B)") != NULL);
    CHECK(strstr(buf, "( 2048 B)") != NULL);
    CHECK(sound()); /* the other threads are at the barrier */
    pthread_barrier_wait(&after_dump);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&at_dump);
    pthread_barrier_destroy(&after_dump);
    CHECK(sound());
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_first_call_before_main_from_a_thread);
    RUN_TEST(test_frees_from_another_thread_are_reused);
    RUN_TEST(test_first_call_is_a_free_or_realloc_of_another_threads_block);
    RUN_TEST(test_thread_exit_gives_the_cache_back);
    RUN_TEST(test_destructors_after_the_teardown_are_served);
    RUN_TEST(test_atexit_handlers_after_the_teardown_are_served);
    RUN_TEST(test_footprint_steady_as_threads_come_and_go);
    RUN_TEST(test_producer_consumer_through_the_transfer_cache);
    RUN_TEST(test_fork_while_threads_allocate);
    RUN_TEST(test_scavenger_gives_a_burst_back);
    RUN_TEST(test_dump_draws_every_threads_cache);
    gm_destroy();
    return test_finish();
}
