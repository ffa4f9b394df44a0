/*
 * mscavenge.c: the scavenger, which gives free pages back to the OS. See
 * gm.c for an overview; this is step 5 of free.
 *
 * Why a thread. The case that matters is the idle one: a program frees a
 * burst of memory and then makes no more calls for a while (a server
 * between requests, a tool waiting for input). Work paid for by later
 * malloc or free calls (a budget on the slow path, mimalloc's and jemalloc's
 * way without their background threads) never runs then, and the memory
 * stays resident. So, as Go does, a background thread does the work; the
 * allocator starts it lazily, the first time a free leaves more free pages
 * resident than the goal, so that a program that never frees much never
 * has one. It blocks every signal (they are the program's), sleeps until a
 * free wakes it, and when it has had nothing to do for a quarter of a
 * second it ends (the next free that needs it starts another): POSIX has
 * no daemon threads, and a program whose main thread calls pthread_exit
 * would otherwise never end. After fork the child has no such thread, and
 * the next free that needs one starts it again. GM_SCAVENGE=sync (or a
 * pthread_create that fails) falls back to the budget: the free that
 * leaves too much resident gives it back itself.
 *
 * The goal: at most GM_RETAIN (1 MiB) plus a sixteenth of the pages in use
 * of free pages stay resident (Go keeps about a tenth over its heap goal).
 * Pages that become free are not given back at once: a run must have been
 * free for GM_SCAVENGE_DELAY_MS (100 ms), so that a program that frees and
 * allocates again soon does not pay a madvise and a page fault for each
 * page every time. Oldest first (the mheap keeps the resident runs in the
 * order they became free): the page heap is best fit by length, not by
 * address as Go's is, so the longest-free run, not the highest one, is the
 * one least likely to be wanted next.
 *
 * One pass (scav_pass), every delay while there is work:
 *   1. If no span has been made or unmade and no batch has moved since the
 *      last pass, the heap is idle: every class's transfer cache goes back
 *      to its spans, and the spans left empty to the page heap. (Threads'
 *      own caches are theirs alone; their bounds limit what they keep.)
 *   2. Under the mheap's lock, the oldest resident runs that were free
 *      before the previous pass began (so for a delay at least) go back,
 *      while more than the goal is resident. The lock is dropped around
 *      each madvise (the run is off every list meanwhile), so that the
 *      program's threads are not held up by it. A free run records the
 *      pass it was freed in: the age costs the free path no clock read.
 *   3. Anything left beyond the goal (runs not old enough yet), or an idle
 *      test still to come: another pass after the delay. Otherwise sleep
 *      until kicked.
 *
 * Cost to the program: a free that crosses the goal sets a flag; the next
 * slow path sees it, takes scav_lock and signals (scav_kick). The thread's
 * own passes take each lock briefly.
 */
#include "gm_internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

/* Everything that moved between the levels: if it has not changed since
 * the last pass, the program made no slow-path call in between. */
static uint64_t activity(void)
{
    uint64_t sum = 0;
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        const mcentral *m = &gm_heap.central[c];
        sum += __atomic_load_n(&m->batches_in, __ATOMIC_RELAXED) +
               __atomic_load_n(&m->batches_out, __ATOMIC_RELAXED) +
               __atomic_load_n(&m->to_spans, __ATOMIC_RELAXED) +
               __atomic_load_n(&m->from_spans, __ATOMIC_RELAXED);
    }
    return sum;
}

/* One pass (steps 1 to 3 of the header). True: pass again after the
 * delay. */
static bool scav_pass(uint64_t *seen, bool *drained)
{
    mheap *h = &gm_heap.mheap;
    pthread_mutex_lock(&gm_heap.scav_busy);
    gm_lock_take(&h->lock);
    uint64_t act = activity() + h->activity;
    gm_lock_give(&h->lock);
    bool idle = act == *seen;
    *seen = act;
    if (!idle)
        *drained = false;
    if (idle && !*drained) {
        for (unsigned c = 1; c < GM_NLISTS; c++)
            mcentral_drain(c);
        *drained = true;
    }
    gm_lock_take(&h->lock);
    uint64_t pass = __atomic_add_fetch(&gm_heap.scav_pass, 1, __ATOMIC_RELAXED);
    while (mheap_scavenge_one_locked(h, pass - 1, true) > 0) {
    }
    bool more = h->free_pages * GM_PAGE > mheap_goal_locked(h);
    gm_lock_give(&h->lock);
    pthread_mutex_unlock(&gm_heap.scav_busy);
    return more || !*drained;
}

/* Waits up to ms milliseconds, or until stopped, or (for_work) until a
 * kick has set scav_work; true when stopped. The wait between passes does
 * not end for work: its length is what ages the free runs. Caller holds
 * scav_lock. */
static bool scav_sleep(unsigned ms, bool for_work)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!gm_heap.scav_stopping && !(for_work && gm_heap.scav_work) &&
           pthread_cond_timedwait(&gm_heap.scav_cond, &gm_heap.scav_lock,
                                  &until) == 0) {
    }
    return gm_heap.scav_stopping;
}

/* How long the thread waits for work before it ends (a new one starts at
 * the next kick): POSIX has no daemon threads, so a program whose main
 * thread calls pthread_exit ends only when every other thread has, this
 * one too. */
#define SCAV_LINGER_MS 250

/* scav_lock is only ever held alone here (the waits), so that fork's
 * prepare handler, which takes it last, cannot meet this thread holding
 * it while it waits for another lock. */
static void *scav_main(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    bool drained = false;
    for (;;) {
        pthread_mutex_lock(&gm_heap.scav_lock);
        while (!gm_heap.scav_work && !gm_heap.scav_stopping) {
            if (!scav_sleep(SCAV_LINGER_MS, true) && !gm_heap.scav_work) {
                /* idle for the whole linger: end; the next kick (under
                 * this lock) sees the state and starts a new thread */
                __atomic_store_n(&gm_heap.scav_state, 4, __ATOMIC_RELEASE);
                pthread_mutex_unlock(&gm_heap.scav_lock);
                return NULL;
            }
        }
        bool stopped = gm_heap.scav_stopping;
        gm_heap.scav_work = false;
        pthread_mutex_unlock(&gm_heap.scav_lock);
        if (stopped)
            return NULL;
        __atomic_store_n(&gm_heap.scav_awake, true, __ATOMIC_RELAXED);
        for (;;) {
            if (!scav_pass(&seen, &drained)) {
                /* Going to sleep: say so first, then look once more, so
                 * that a free between the pass and now is not missed (it
                 * saw this thread awake and did not kick). */
                __atomic_store_n(&gm_heap.scav_awake, false, __ATOMIC_RELAXED);
                gm_lock_take(&gm_heap.mheap.lock);
                bool more = gm_heap.mheap.free_pages * GM_PAGE >
                            mheap_goal_locked(&gm_heap.mheap);
                gm_lock_give(&gm_heap.mheap.lock);
                if (!more)
                    break;
                __atomic_store_n(&gm_heap.scav_awake, true, __ATOMIC_RELAXED);
            }
            unsigned delay =
                __atomic_load_n(&gm_heap.scav_delay_ms, __ATOMIC_RELAXED);
            pthread_mutex_lock(&gm_heap.scav_lock);
            stopped = scav_sleep(delay == 0 ? 1 : delay, false);
            pthread_mutex_unlock(&gm_heap.scav_lock);
            if (stopped) {
                __atomic_store_n(&gm_heap.scav_awake, false, __ATOMIC_RELAXED);
                return NULL;
            }
        }
    }
}

/* Starts the thread (after joining one that ended by itself): every
 * signal blocked in it (it inherits the mask), a small stack. A failure
 * falls back to the budget of sync mode. */
static void scav_start(int from)
{
    if (!__atomic_compare_exchange_n(&gm_heap.scav_state, &from, 1, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    int saved = errno;
    if (from == 4)
        pthread_join(gm_heap.scav_thread, NULL); /* it has ended already */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err == 0) {
        pthread_attr_setstacksize(&attr, (size_t)256 << 10);
        err = pthread_create(&gm_heap.scav_thread, &attr, scav_main, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    __atomic_store_n(&gm_heap.scav_state, err == 0 ? 2 : 3, __ATOMIC_RELEASE);
    errno = saved;
}

void scav_kick(void)
{
    if (GM_LIKELY(!__atomic_load_n(&gm_heap.scav_wanted, __ATOMIC_RELAXED)))
        return;
    if (!__atomic_exchange_n(&gm_heap.scav_wanted, false, __ATOMIC_ACQ_REL))
        return;
    if (__atomic_load_n(&gm_heap.scav_mode, __ATOMIC_RELAXED) !=
        GM_SCAVENGE_BACKGROUND)
        return;
    /* The work flag first, then the state, under the thread's lock: a
     * thread about to end either sees the work or has said it ended. */
    pthread_mutex_lock(&gm_heap.scav_lock);
    gm_heap.scav_work = true;
    int state = __atomic_load_n(&gm_heap.scav_state, __ATOMIC_ACQUIRE);
    if (state == 2)
        pthread_cond_signal(&gm_heap.scav_cond);
    pthread_mutex_unlock(&gm_heap.scav_lock);
    /* Kicked: no free asks again until the thread has gone back to sleep
     * (it says so, then looks once more). */
    __atomic_store_n(&gm_heap.scav_awake, true, __ATOMIC_RELAXED);
    if (state == 0 || state == 4)
        scav_start(state);
}

void scav_stop(void)
{
    int state = __atomic_load_n(&gm_heap.scav_state, __ATOMIC_ACQUIRE);
    if (state == 1) { /* another thread is starting it: wait for that */
        while ((state = __atomic_load_n(&gm_heap.scav_state,
                                        __ATOMIC_ACQUIRE)) == 1)
            sched_yield();
    }
    if (state == 2 || state == 4) { /* running, or ended and not joined */
        pthread_mutex_lock(&gm_heap.scav_lock);
        gm_heap.scav_stopping = true;
        pthread_cond_broadcast(&gm_heap.scav_cond);
        pthread_mutex_unlock(&gm_heap.scav_lock);
        pthread_join(gm_heap.scav_thread, NULL);
        pthread_mutex_lock(&gm_heap.scav_lock);
        gm_heap.scav_stopping = false;
        gm_heap.scav_work = false;
        pthread_mutex_unlock(&gm_heap.scav_lock);
    }
    __atomic_store_n(&gm_heap.scav_state, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&gm_heap.scav_wanted, false, __ATOMIC_RELAXED);
}

/* The parent's scavenger (if any) does not exist in the child; its
 * condition variable may name waiters that do not either. Called by the
 * fork child handler with every lock held. */
void scav_after_fork_child(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&gm_heap.scav_cond, &ca);
    pthread_condattr_destroy(&ca);
    gm_heap.scav_state = 0;
    gm_heap.scav_work = false;
    gm_heap.scav_stopping = false;
    gm_heap.scav_awake = false;
    gm_heap.scav_wanted =
        gm_heap.mheap.free_pages * GM_PAGE > mheap_goal_locked(&gm_heap.mheap);
}
