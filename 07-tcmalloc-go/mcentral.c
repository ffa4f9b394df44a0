/*
 * mcentral.c: the central list of each size class. See gm.c for an
 * overview; this file is steps 3 and 4 of malloc and 3 and 4 of free.
 *
 * An mcentral holds no list of free objects of its own: the free objects
 * of a class live in its spans' bitmaps (a clear bit is a free slot), and,
 * on their way between threads, in its transfer cache, an array of full
 * batches (each exactly one batch of objects, linked through their first
 * words). All of it is under the class's lock, which a thread takes once
 * per batch:
 *
 *   mcentral_get   a batch from the transfer cache, in O(1); else the free
 *                  slots of the partial spans, a 64-slot word at a time
 *                  (ctz), linked in address order; a span left with no
 *                  free slot moves to the full list; no partial span: a
 *                  new span from the mheap (mheap_alloc_small)
 *   mcentral_put   a full batch into the transfer cache, in O(1), while
 *                  it has room; else each object's bit cleared in its span
 *                  (found through the page map); a span that was full goes
 *                  back to the partial list, one left empty back to the
 *                  mheap
 *   mcentral_drain the transfer cache into the spans (the scavenger, when
 *                  the heap is idle; gm_trim)
 *
 * The transfer cache is what makes producer and consumer threads cheap: a
 * consumer's overflowing list hands whole batches in, the producer's empty
 * list takes them out, and neither walks a bitmap. Its room is 256 KiB
 * worth of batches (4 to 64), so that it cannot hold much memory away from
 * the spans that the scavenger could give back.
 */
#include "gm_internal.h"

#include <sched.h>
#include <string.h>

void gm_lock_wait(gm_lock *l)
{
    for (unsigned spins = 0;; spins++) {
        if (__atomic_load_n(&l->held, __ATOMIC_RELAXED) == 0 &&
            !__atomic_exchange_n(&l->held, 1, __ATOMIC_ACQUIRE))
            return;
#if defined(__x86_64__) || defined(__i386__)
        if (spins < 64) {
            __builtin_ia32_pause();
            continue;
        }
#endif
        sched_yield();
    }
}

/* A counter that the scavenger reads without the lock: written under the
 * lock with a relaxed store (a plain store on x86-64). */
static inline void count(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

void mcentral_init(mcentral *m, unsigned c)
{
    memset(m, 0, sizeof *m);
    size_t batch_bytes = (size_t)gm_batch_of_class[c] * gm_size_of_class[c];
    size_t room = ((size_t)256 << 10) / batch_bytes;
    m->max_batch = (uint32_t)(room < 2                ? 2
                              : room > GM_MAX_BATCHES ? GM_MAX_BATCHES
                                                      : room);
}

/* ---- The two circular lists of spans ------------------------------------- */

static void list_push(mspan **list, mspan *s)
{
    mspan *head = *list;
    if (head == NULL) {
        s->next = s->prev = s;
        *list = s;
        return;
    }
    s->prev = head->prev;
    s->next = head;
    head->prev->next = s;
    head->prev = s;
}

static void list_remove(mspan **list, mspan *s)
{
    if (s->next == s) {
        *list = NULL;
    } else {
        s->prev->next = s->next;
        s->next->prev = s->prev;
        if (*list == s)
            *list = s->next;
    }
    s->next = s->prev = NULL;
}

/* ---- Step 3 of malloc: objects out of the spans -------------------------- */

/*
 * Takes up to `want` free slots of span s (which has one), setting their
 * bits, and links them after *tail (or as *head when it is NULL). The scan
 * goes on from freeindex, a word at a time, and starts again from word 0
 * at the end of the bitmap: slots freed behind freeindex are found then.
 */
static unsigned span_take(mspan *s, unsigned want, void **head, void **tail)
{
    unsigned got = 0;
    size_t words = ((size_t)s->nelems + 63) / 64;
    size_t w = s->freeindex / 64;
    char *base = span_base(s);
    while (got < want && s->alloc_count < s->nelems) {
        if (w >= words)
            w = 0;
        uint64_t valid = s->nelems - w * 64 >= 64
                             ? ~(uint64_t)0
                             : ((uint64_t)1 << (s->nelems - w * 64)) - 1;
        uint64_t free_bits = ~s->alloc_bits[w] & valid;
        while (free_bits != 0 && got < want) {
            unsigned bit = (unsigned)__builtin_ctzll(free_bits);
            free_bits &= free_bits - 1;
            s->alloc_bits[w] |= (uint64_t)1 << bit;
            s->alloc_count++;
            void *p = base + (w * 64 + bit) * s->elemsize;
            if (*head == NULL)
                *head = p;
            else
                link_set(*tail, p);
            *tail = p;
            got++;
        }
        if (free_bits == 0)
            w++;
    }
    s->freeindex = (uint16_t)((w >= words ? 0 : w) * 64);
    return got;
}

unsigned mcentral_get(unsigned c, unsigned want, void **head)
{
    mcentral *m = &gm_heap.central[c];
    *head = NULL;
    gm_lock_take(&m->lock);
    if (want > 1 && m->nbatch > 0) { /* a whole batch, even if fewer were
                                        asked for: it moves in O(1) */
        *head = m->batch[--m->nbatch];
        count(&m->batches_out, 1);
        gm_lock_give(&m->lock);
        return gm_batch_of_class[c];
    }
    void *tail = NULL;
    unsigned got = 0;
    while (got < want) {
        mspan *s = m->partial;
        if (s == NULL) {
            /* Step 4: a new span. The mheap's lock comes after ours. */
            s = mheap_alloc_small(c);
            if (s == NULL)
                break;
            m->nspans++;
            list_push(&m->partial, s);
        }
        got += span_take(s, want - got, head, &tail);
        if (s->alloc_count == s->nelems) {
            list_remove(&m->partial, s);
            list_push(&m->full, s);
            s->full = true;
        }
    }
    if (tail != NULL)
        link_set(tail, NULL);
    count(&m->from_spans, got);
    gm_lock_give(&m->lock);
    return got;
}

/* ---- Step 3 of free: objects back into the spans ------------------------- */

/* The object at p goes back to its span (of class c): its bit clears. A
 * span that was full rejoins the partial list; one now empty leaves the
 * class for the mheap, the class's lock still held (the mheap's comes
 * after it), so that no span is ever on neither side (a fork's child would
 * find it lost). */
static void span_put(mcentral *m, unsigned c, void *p)
{
    mspan *s = span_of_page(page_of(p));
    if (s == NULL || s->state != MSPAN_SMALL || s->cls != c)
        alloc_fatal(STAGE, "mcentral_put", p,
                    "a freed object in no span of its class");
    size_t slot = slot_of(s, p);
    uint64_t bit = (uint64_t)1 << (slot & 63);
    if (!(s->alloc_bits[slot >> 6] & bit))
        alloc_fatal(STAGE, "mcentral_put", p,
                    "a freed object that its span never handed out");
    s->alloc_bits[slot >> 6] &= ~bit;
    if (s->alloc_count-- == s->nelems) {
        list_remove(&m->full, s);
        list_push(&m->partial, s);
        s->full = false;
    }
    if (s->alloc_count == 0) {
        list_remove(&m->partial, s);
        m->nspans--;
        mheap_free_small(s);
    }
}

void mcentral_put(unsigned c, void *head, unsigned n)
{
    mcentral *m = &gm_heap.central[c];
    gm_lock_take(&m->lock);
    if (n == gm_batch_of_class[c] && m->nbatch < m->max_batch) {
        m->batch[m->nbatch++] = head;
        count(&m->batches_in, 1);
        gm_lock_give(&m->lock);
        return;
    }
    for (void *p = head; p != NULL;) {
        void *next = link_get(p);
        span_put(m, c, p);
        p = next;
    }
    count(&m->to_spans, n);
    gm_lock_give(&m->lock);
}

size_t mcentral_drain(unsigned c)
{
    mcentral *m = &gm_heap.central[c];
    size_t moved = 0;
    gm_lock_take(&m->lock);
    while (m->nbatch > 0) {
        for (void *p = m->batch[--m->nbatch]; p != NULL;) {
            void *next = link_get(p);
            span_put(m, c, p);
            p = next;
            moved++;
        }
    }
    count(&m->to_spans, moved);
    gm_lock_give(&m->lock);
    return moved;
}
