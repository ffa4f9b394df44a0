/*
 * mcache.c: the per-thread caches. See gm.c for an overview; this file is
 * steps 2 of both paths: what happens when a thread's list for a class is
 * empty (malloc) or too long (free), how a thread's cache starts, and how
 * it goes back when the thread exits.
 *
 * A cache is one struct in the thread's static TLS block (gm_internal.h,
 * struct mcache), reached from the fast paths with two instructions. Its
 * lists are touched only by its thread, so nothing here takes a lock but
 * the mcentral's (once a batch) and the list of caches' (once a thread).
 *
 * The bound of a list (max[c]) adapts, as TCMalloc's does. It starts at 1
 * (slow start): each refill takes max[c] objects and raises it by one, and
 * each overflow gives the list back and raises it by one, until it reaches
 * a batch; so a class a thread uses once costs it one object, not a
 * batch carved from up to eight spans. From there a refill (the list ran
 * dry) takes a batch and raises the bound by a batch, up to a cap of
 * 64 KiB worth (at least two batches); three overflows in a row without a
 * refill lower it by a batch. A list that is only freed into (a consumer
 * thread) so holds one batch at most, and one that is freed into and
 * allocated from alike grows until the batches stop moving. A refill that
 * asks for more than one object and finds a batch in the transfer cache
 * takes it whole, whatever the bound (which rises to it); a first refill,
 * which asks for one, never does. The cap bounds a thread's cache: the
 * sum over the classes, about 6 MiB if a thread filled every list (the
 * classes from 1152 B up cap at two batches), far less in practice.
 */
#include "gm_internal.h"

#include <sys/syscall.h>
#include <unistd.h>

_Thread_local mcache gm_mcache GM_TLS_MODEL;

uint32_t mcache_cap(unsigned c)
{
    uint32_t b = gm_batch_of_class[c];
    uint32_t by_bytes = (uint32_t)((64u << 10) / gm_size_of_class[c]);
    return by_bytes > 2 * b ? by_bytes : 2 * b;
}

/* Objects on a list, by walking it (slow paths only). */
static uint32_t list_len(void *head)
{
    uint32_t n = 0;
    for (void *p = head; p != NULL; p = link_get(p))
        n++;
    return n;
}

/* For the statistics: what this cache holds, published now and then
 * (every 64 slow paths), so that another thread can read it safely. */
static void publish(mcache *mc)
{
    size_t objects = 0, bytes = 0;
    if (mc->state == MCACHE_ACTIVE)
        for (unsigned c = 1; c < GM_NLISTS; c++) {
            size_t n = (size_t)(mc->max[c] - (uint32_t)mc->room[c]);
            objects += n;
            bytes += n * gm_size_of_class[c];
        }
    __atomic_store_n(&mc->snapshot_objects, objects, __ATOMIC_RELAXED);
    __atomic_store_n(&mc->snapshot_bytes, bytes, __ATOMIC_RELAXED);
}

/* The whole of list c goes to the mcentral (a cache that is not caching:
 * starting or dead), and the list is empty with room = max. */
static void give_all(mcache *mc, unsigned c)
{
    void *head = mc->head[c];
    mc->head[c] = NULL;
    mc->room[c] = (int32_t)mc->max[c];
    if (head != NULL)
        mcentral_put(c, head, list_len(head));
}

/*
 * The first slow path of a thread: bounds for every list, the destructor
 * armed, the cache on the heap's list. pthread_setspecific may allocate
 * (glibc's second-level key array, for keys from 32 on): the calls that
 * arrive meanwhile find the cache STARTING and are served uncached, so
 * nothing recurses into this function.
 */
static void mcache_start(mcache *mc)
{
    mc->state = MCACHE_STARTING;
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        uint32_t len = list_len(mc->head[c]);
        mc->max[c] = len > 1 ? len : 1; /* slow start */
        mc->room[c] = (int32_t)(mc->max[c] - len);
        mc->overages[c] = 0;
    }
    if (!gm_heap.key_made || pthread_setspecific(gm_heap.key, mc) != 0) {
        /* No destructor could give the cache back at exit: serve this
         * thread uncached instead. */
        for (unsigned c = 1; c < GM_NLISTS; c++) {
            mc->max[c] = 0;
            give_all(mc, c);
        }
        mc->state = MCACHE_DEAD;
        return;
    }
    pthread_mutex_lock(&gm_heap.registry_lock);
    mc->prev = NULL;
    mc->next = gm_heap.threads;
    if (mc->next != NULL)
        mc->next->prev = mc;
    gm_heap.threads = mc;
    gm_heap.nthreads++;
    mc->registered = true;
    pthread_mutex_unlock(&gm_heap.registry_lock);
    mc->tid = (int)syscall(SYS_gettid);
    mc->state = MCACHE_ACTIVE;
}

/* Step 2 of malloc: list c is empty. Objects from the mcentral (the bound's
 * worth, up to a batch; a whole batch when its transfer cache has one):
 * the first is the caller's, the rest the list's. Then the bound grows:
 * by one up to a batch (slow start), by a batch beyond, up to the cap. */
static void *refill(mcache *mc, unsigned c)
{
    uint32_t b = gm_batch_of_class[c];
    void *head;
    unsigned n = mcentral_get(c, mc->max[c] < b ? mc->max[c] : b, &head);
    if (n == 0)
        return NULL;
    uint32_t cap = mcache_cap(c);
    if (mc->max[c] < b)
        mc->max[c]++;
    else if (mc->max[c] < cap)
        mc->max[c] = mc->max[c] + b < cap ? mc->max[c] + b : cap;
    if (mc->max[c] < n)
        mc->max[c] = n; /* a whole batch came */
    mc->head[c] = link_get(head);
    mc->room[c] = (int32_t)(mc->max[c] - (n - 1));
    mc->overages[c] = 0;
    if ((++mc->refills & 63) == 0)
        publish(mc);
    return head;
}

void *mcache_alloc(unsigned c)
{
    mcache *mc = &gm_mcache;
    void *p = mc->head[c];
    if (p != NULL) {
        mc->head[c] = link_get(p);
        mc->room[c]++;
        return p;
    }
    if (mc->state == MCACHE_FRESH)
        mcache_start(mc);
    if (mc->state == MCACHE_ACTIVE)
        return refill(mc, c);
    /* Starting or dead: one object, uncached. */
    return mcentral_get(c, 1, &p) == 1 ? p : NULL;
}

/*
 * Step 2 of free: list c holds one object more than its bound. Below a
 * batch (slow start) the whole list goes to the mcentral and the bound
 * grows by one. Else a batch comes off its head (the objects freed last:
 * the walk stops after one batch) and goes to the mcentral; three
 * overflows without a refill mean the thread frees more of this class
 * than it allocates, and the bound drops a batch (down to one batch).
 */
static void flush(mcache *mc, unsigned c)
{
    uint32_t b = gm_batch_of_class[c];
    if (mc->max[c] < b) { /* slow start: all of it goes, the bound grows */
        mc->max[c]++;
        give_all(mc, c);
        return;
    }
    if (++mc->overages[c] >= 3 && mc->max[c] >= 2 * b) {
        mc->max[c] -= b;
        mc->room[c] -= (int32_t)b;
        mc->overages[c] = 0;
    }
    while (mc->room[c] < 0) {
        void *head = mc->head[c], *last = head;
        for (uint32_t i = 1; i < b && last != NULL; i++)
            last = link_get(last);
        if (last == NULL) /* a double free, or a fast path gone wrong */
            alloc_fatal(STAGE, "gm_free", head,
                        "a thread's list is shorter than its room says");
        mc->head[c] = link_get(last);
        link_set(last, NULL);
        mc->room[c] += (int32_t)b;
        mcentral_put(c, head, b);
    }
    if ((++mc->flushes & 63) == 0)
        publish(mc);
}

void mcache_overflow(unsigned c)
{
    mcache *mc = &gm_mcache;
    switch (mc->state) {
    case MCACHE_FRESH:
        mcache_start(mc); /* the object just pushed stays on the list */
        break;
    case MCACHE_ACTIVE:
        flush(mc, c);
        break;
    default:
        give_all(mc, c);
        break;
    }
    scav_kick();
}

/* ---- The tiny allocator's blocks (gm.c, "The tiny allocator") ---------- */

void *mcache_tiny_block(void)
{
    mcache *mc = &gm_mcache;
    if (mc->state == MCACHE_FRESH)
        mcache_start(mc);
    if (mc->state != MCACHE_ACTIVE)
        return NULL; /* a dead cache keeps no block: it could not give it
                        back */
    return mcache_alloc(GM_TINY_CLASS);
}

/* ---- The end of a cache -------------------------------------------------- */

/*
 * Everything the cache holds goes back: the quarantine (checked builds),
 * the tiny block, every list. The cache becomes FRESH (gm_thread_release:
 * it may start again) or DEAD (its thread is exiting: later calls are
 * served uncached, since no destructor would run a second time).
 */
void mcache_release(mcache *mc, uint8_t state)
{
    if (mc->state == MCACHE_ACTIVE) {
        gm_quarantine_flush();
        tiny_retire(mc);
    }
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        mc->max[c] = 0;
        give_all(mc, c);
        mc->overages[c] = 0;
    }
    if (mc->registered) {
        pthread_mutex_lock(&gm_heap.registry_lock);
        if (mc->prev != NULL)
            mc->prev->next = mc->next;
        else
            gm_heap.threads = mc->next;
        if (mc->next != NULL)
            mc->next->prev = mc->prev;
        mc->next = mc->prev = NULL;
        gm_heap.nthreads--;
        mc->registered = false;
        pthread_mutex_unlock(&gm_heap.registry_lock);
    }
    mc->state = state;
    publish(mc);
}

/* The pthread key's destructor: runs in the exiting thread, with its own
 * cache as the argument. */
void mcache_thread_exit(void *arg)
{
    mcache_release(arg, MCACHE_DEAD);
    scav_kick();
}
