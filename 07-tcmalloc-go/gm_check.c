/*
 * gm_check.c: the checker, the drawings (mcache_dump, mcentral_dump,
 * mheap_dump) and the statistics. All of them read the heap and never
 * change it. Optional reading: the allocator is gm.c, mcache.c,
 * mcentral.c and mheap.c.
 *
 * Each takes every lock of the heap (gm_lock_all), so the central lists
 * and the page heap hold still, and reads the threads' caches directly, so
 * the other threads must be out of the allocator (the tests stop theirs at
 * a barrier first); the statistics alone read other threads' caches only
 * through what those threads published.
 *
 * gm_check_why() verifies the invariants of gm.c ("State"), in passes:
 *   1. every object held anywhere but in its span: on a thread's list, in
 *      a transfer cache, in a quarantine; gathered into one array (mapped,
 *      never from the heap being checked), sorted by address: an object
 *      held twice (a double free in a release build) is caught here;
 *   2. each arena's mapping, walked span by span in address order: the
 *      page map and the class map, each span's fields and bitmap, the
 *      objects of step 1 that fall in it (each at a slot start whose bit
 *      is set, of the span's class), the equation
 *          alloc_count == held + live        (live: checked builds)
 *      the tiny counts, free runs merged and on their lists;
 *   3. the lists: page heap lists, the age list (oldest first), each
 *      class's partial and full lists; the caches' bounds and rooms;
 *   4. the counters.
 * Every pointer is tested before it is followed (a list entry must lie in
 * an arena, a span in the metadata), so a broken heap gives an answer,
 * not a crash.
 */
#include "gm_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// clang-format off
/* ---- Step 1: what is held outside the spans ------------------------------ */
// clang-format on

enum held_kind { HELD_THREAD = 1, HELD_TRANSFER, HELD_QUARANTINE };

typedef struct held {
    uintptr_t p;
    uint8_t kind; /* enum held_kind */
    uint8_t cls;  /* the list's class (0: a quarantined block) */
} held;

typedef struct held_set {
    held *v;
    size_t n, cap;
    const char *why; /* set when a list is broken */
} held_set;

/* The array, mapped once and grown when a heap holds more, kept between
 * calls: a mapping made and unmade at every check would cost far more
 * than the check on a small heap (munmap is slow on virtual machines).
 * The callers hold every lock of the heap, so one array serves them all. */
static held *scratch;
static size_t scratch_bytes;

/* Is p an address some arena holds? */
static bool in_heap(const void *p)
{
    return arena_of(page_of(p)) != NULL;
}

static void held_add(held_set *h, const void *p, uint8_t kind, uint8_t cls)
{
    if (h->v != NULL && h->n < h->cap)
        h->v[h->n] = (held){(uintptr_t)p, kind, cls};
    h->n++;
}

/* The caches to look at: every registered one, and the caller's. */
static void caches_each(void (*fn)(const mcache *, void *), void *arg)
{
    const mcache *me = &gm_mcache;
    if (!me->registered)
        fn(me, arg);
    for (const mcache *mc = gm_heap.threads; mc != NULL; mc = mc->next)
        fn(mc, arg);
}

static void held_from_cache(const mcache *mc, void *arg)
{
    held_set *h = arg;
    /* A list longer than its bound is check_cache's to report; the walk
     * stops there, so that a cycle (a double free: p -> p) shows as an
     * object held twice. */
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        size_t n = 0, limit = (size_t)mc->max[c] + 1;
        for (void *p = mc->head[c]; p != NULL && n++ < limit; p = link_get(p)) {
            if (!in_heap(p)) {
                h->why = "a thread's list holds a pointer into no arena";
                break;
            }
            held_add(h, p, HELD_THREAD, (uint8_t)c);
        }
    }
#if GM_CHECKED
    for (uint32_t i = 0; i < mc->q_count; i++)
        held_add(h, mc->quarantine[(mc->q_first + i) % GM_QUARANTINE],
                 HELD_QUARANTINE, 0);
#endif
}

static void held_gather(held_set *h)
{
    caches_each(held_from_cache, h);
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        const mcentral *m = &gm_heap.central[c];
        for (uint32_t b = 0; b < m->nbatch && b < GM_MAX_BATCHES; b++) {
            size_t n = 0;
            for (void *p = m->batch[b]; p != NULL; p = link_get(p)) {
                if (!in_heap(p) || ++n > gm_batch_of_class[c]) {
                    h->why = "a transfer cache's batch holds a pointer into "
                             "no arena, or more than a batch";
                    break;
                }
                held_add(h, p, HELD_TRANSFER, (uint8_t)c);
            }
            if (n != gm_batch_of_class[c] && h->why == NULL)
                h->why = "a transfer cache's entry is not exactly one batch";
        }
    }
}

static void held_sort(held *v, size_t n) /* heapsort: no allocation */
{
    for (size_t i = n / 2; i-- > 0;) {
        for (size_t r = i;;) {
            size_t c = 2 * r + 1;
            if (c >= n)
                break;
            if (c + 1 < n && v[c + 1].p > v[c].p)
                c++;
            if (v[r].p >= v[c].p)
                break;
            held t = v[r];
            v[r] = v[c];
            v[c] = t;
            r = c;
        }
    }
    for (size_t end = n; end-- > 1;) {
        held t = v[0];
        v[0] = v[end];
        v[end] = t;
        for (size_t r = 0;;) {
            size_t c = 2 * r + 1;
            if (c >= end)
                break;
            if (c + 1 < end && v[c + 1].p > v[c].p)
                c++;
            if (v[r].p >= v[c].p)
                break;
            held u = v[r];
            v[r] = v[c];
            v[c] = u;
            r = c;
        }
    }
}

/* Counts, maps room, gathers again, sorts. False when no room could be
 * mapped (the answer is then "cannot check"). */
static bool held_collect(held_set *h)
{
    memset(h, 0, sizeof *h);
    held_gather(h); /* counting only */
    if (h->why != NULL)
        return true;
    size_t want = ((h->n + 1) * sizeof(held) + 65535) & ~(size_t)65535;
    if (want > scratch_bytes) {
        void *v = mmap(NULL, want, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (v == MAP_FAILED)
            return false;
        if (scratch != NULL)
            munmap(scratch, scratch_bytes);
        scratch = v;
        scratch_bytes = want;
    }
    h->v = scratch;
    h->cap = scratch_bytes / sizeof(held);
    h->n = 0;
    held_gather(h);
    if (h->n > h->cap)
        h->n = h->cap; /* a list grew between the two walks: a broken heap */
    held_sort(h->v, h->n);
    for (size_t k = 1; k < h->n && h->why == NULL; k++)
        if (h->v[k].p == h->v[k - 1].p)
            h->why = "an object is held twice (on two lists, or twice on "
                     "one: a double free)";
    return true;
}

static void held_free(held_set *h)
{
    h->v = NULL; /* the array stays for the next call */
}

/* The first entry at or after address p (binary search). */
static size_t held_find(const held_set *h, uintptr_t p)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->v[mid].p < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// clang-format off
/* ---- Step 2: the mappings, span by span ---------------------------------- */
// clang-format on

typedef struct walk_sums {
    size_t span_pages, free_pages, released_pages, free_runs, resident_runs;
    size_t small_spans, large_spans, spans_of[GM_NLISTS], full_of[GM_NLISTS];
    size_t held_seen;
} walk_sums;

/* Is s the address of a span struct (in a chunk of the span fixalloc)? */
static bool is_span(const void *s)
{
    const fixalloc *f = &gm_heap.mheap.span_meta;
    size_t n = 0;
    for (const char *c = f->chunks; c != NULL; n++) {
        if (n > f->mapped / ((size_t)64 << 10))
            return false;
        const char *lo = c + 16;
        if ((const char *)s >= lo && (const char *)s < c + ((size_t)64 << 10))
            return ((size_t)((const char *)s - lo)) % f->size == 0;
        const char *next;
        memcpy(&next, c, sizeof next);
        c = next;
    }
    return false;
}

static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

/* Is some thread's current tiny block at `block`? Its cache, if so. */
static const mcache *tiny_owner(uintptr_t block)
{
    const mcache *me = &gm_mcache;
    if (me->tiny == block >> 4)
        return me;
    for (const mcache *mc = gm_heap.threads; mc != NULL; mc = mc->next)
        if (mc->tiny == block >> 4)
            return mc;
    return NULL;
}

/* A tiny span's blocks: those taken from the span and held by no cache
 * are current or have live objects, and their counts say so. */
static const char *check_tiny(const mspan *s, const held_set *h)
{
    for (size_t i = 0; i < s->nelems; i++) {
        uintptr_t block = (uintptr_t)span_base(s) + i * 16;
        size_t k = held_find(h, block);
        bool cached =
            k < h->n && h->v[k].p == block && h->v[k].kind != HELD_QUARANTINE;
        /* After a fork, a lost thread's block (current, or on its lists)
         * is counted by no one. */
        if (!slot_taken(s, i) || cached || gm_heap.stranded)
            continue;
        unsigned count = s->tiny_live[i];
        const mcache *owner = tiny_owner(block);
#if GM_CHECKED
        unsigned alive = 0; /* live objects, and quarantined ones */
        for (unsigned off = 0; off < 16; off++)
            alive += s->tiny_req[i * 16 + off] != 0;
        for (size_t j = k; j < h->n && h->v[j].p < block + 16; j++)
            alive += h->v[j].kind == HELD_QUARANTINE;
        unsigned want =
            owner != NULL ? GM_TINY_BIAS - owner->tiny_count + alive : alive;
        if (count != want)
            return "a tiny block's count is not its live objects (plus "
                   "the bias while a thread fills it)";
#endif
        if (count == 0)
            return "a tiny block taken from its span with a count of 0 "
                   "(it should be free)";
        if (owner == NULL && count >= GM_TINY_BIAS)
            return "a tiny block keeps its bias but no thread fills it";
    }
    return NULL;
}

static const char *check_small(const mspan *s, const held_set *h,
                               walk_sums *sum)
{
    unsigned c = s->cls;
    if (c < 1 || c >= GM_NLISTS)
        return "a small span's class is out of range";
    if (s->npages != gm_pages_of_class[c] ||
        s->nelems != gm_objects_of_class[c] ||
        s->elemsize != gm_size_of_class[c] ||
        s->divmul != gm_divmul_of_class[c])
        return "a small span's geometry is not its class's";
    if (s->alloc_bits != s->bits_inline && s->nelems <= 128)
        return "a small span of 128 slots or fewer keeps its bitmap away";
    unsigned taken = 0;
    for (size_t w = 0; w < span_words(s); w++)
        taken += popcount64(s->alloc_bits[w]);
    if (taken != s->alloc_count)
        return "a small span's alloc_count is not the bits set";
    for (size_t w = 0; w < span_words(s); w++) {
        size_t lo = w * 64;
        uint64_t valid = lo >= s->nelems ? 0
                         : s->nelems - lo >= 64
                             ? ~(uint64_t)0
                             : ((uint64_t)1 << (s->nelems - lo)) - 1;
        if (s->alloc_bits[w] & ~valid)
            return "a bit is set beyond the span's last slot";
    }
    if (s->alloc_count == 0)
        return "an empty small span was not given back to the page heap";
    if (s->freeindex % 64 != 0 || s->freeindex > s->nelems + 63)
        return "a small span's freeindex is not a word of its bitmap";
    if (s->full != (s->alloc_count == s->nelems) || s->next == NULL)
        return "a small span is not on the list its count says";
    /* The objects held outside the span. */
    uintptr_t base = (uintptr_t)span_base(s), end = base + span_bytes(s);
    size_t held_n = 0;
    for (size_t k = held_find(h, base); k < h->n && h->v[k].p < end; k++) {
        const held *e = &h->v[k];
        size_t slot = slot_of(s, (void *)e->p);
        bool is_slot = slot < s->nelems && base + slot * s->elemsize == e->p;
        if (e->kind != HELD_QUARANTINE) {
            if (!is_slot)
                return "a list holds a pointer that is not a slot's start";
            if (e->cls != c)
                return "a list holds an object of another class";
            held_n++;
        } else if (c != GM_TINY_CLASS) {
            if (!is_slot)
                return "a quarantined block is not a slot's start";
            held_n++;
        }
        if (!slot_taken(s, slot))
            return "an object held outside its span has a clear bit";
        sum->held_seen++;
    }
    sum->spans_of[c]++;
    sum->full_of[c] += s->full;
    if (c == GM_TINY_CLASS)
        return check_tiny(s, h);
#if GM_CHECKED
    unsigned live = 0;
    for (size_t w = 0; w < span_words(s); w++)
        live += popcount64(s->live_bits[w]);
    /* After a fork, objects of the threads that did not come along are
     * lost: counted by no one. */
    if (gm_heap.stranded ? s->alloc_count < held_n + live
                         : s->alloc_count != held_n + live)
        return "a span's count is not what is held plus what is live "
               "(an object lost, or counted twice)";
    for (size_t w = 0; w < span_words(s); w++)
        if (s->live_bits[w] & ~s->alloc_bits[w])
            return "a live block's bit is clear in its span";
#else
    if (s->alloc_count < held_n)
        return "a span holds fewer taken slots than are held outside it";
#endif
    return NULL;
}

/* Do the page map entries of pages first .. first + n - 1 all equal want
 * (unless want is (mspan *)1: any), and their class map entries all equal
 * cls (unless cls < 0)? One arena's stretch at a time, as plain arrays: a
 * free run can cover a whole arena, and the checker runs after every
 * operation of the tests and the fuzzer. Entries that must all be equal
 * are compared with one memcmp of the stretch against itself shifted by
 * one entry. */
static bool pages_all(uintptr_t first, size_t n, const mspan *want, int cls)
{
    while (n > 0) {
        const gm_arena *a = arena_of(first);
        if (a == NULL)
            return false;
        size_t k = first & (GM_ARENA_PAGES - 1);
        size_t m = GM_ARENA_PAGES - k < n ? GM_ARENA_PAGES - k : n;
        mspan *const *e = &a->spans[k];
        if (want != (const mspan *)1 &&
            (e[0] != want ||
             (m > 1 && memcmp(e, e + 1, (m - 1) * sizeof(mspan *)) != 0)))
            return false;
        const uint8_t *cm = &a->class_of_page[k];
        if (cls >= 0 &&
            (cm[0] != cls || (m > 1 && memcmp(cm, cm + 1, m - 1) != 0)))
            return false;
        first += m;
        n -= m;
    }
    return true;
}

static const char *check_mapping(const gm_arena *a, const held_set *h,
                                 walk_sums *sum)
{
    uintptr_t end = a->map_page + a->map_pages;
    const mspan *prev = NULL;
    for (uintptr_t q = a->map_page; q < end;) {
        const mspan *s = span_of_page(q);
        if (s == NULL || !is_span(s))
            return "the page map names no span where one should start";
        if (s->page != q || s->npages == 0 || q + s->npages > end)
            return "a span does not start where the page map says, or "
                   "crosses out of its mapping";
        if (s->state == MSPAN_FREE) {
            if (s->busy)
                return "a free run is still busy under the scavenger's lock";
            if (!pages_all(q, 1, s, 0) ||
                !pages_all(q + s->npages - 1, 1, s, 0) ||
                (s->npages > 2 && !pages_all(q + 1, s->npages - 2, NULL, 0)))
                return "a free run's page map or class map is wrong";
            if (prev != NULL && prev->state == MSPAN_FREE &&
                prev->scavenged == s->scavenged)
                return "two free runs of the same kind touch: merging is "
                       "incomplete";
            sum->free_runs++;
            if (s->scavenged)
                sum->released_pages += s->npages;
            else {
                sum->free_pages += s->npages;
                sum->resident_runs++;
            }
        } else if (s->state == MSPAN_SMALL) {
            int cls = s->cls == GM_TINY_CLASS ? 0 : s->cls;
            if (!pages_all(q, s->npages, s, cls))
                return "a small span's pages do not all map to it and its "
                       "class";
            const char *why = check_small(s, h, sum);
            if (why != NULL)
                return why;
            sum->small_spans++;
            sum->span_pages += s->npages;
        } else if (s->state == MSPAN_LARGE) {
            if (!pages_all(q, 1, s, 0) ||
                !pages_all(q + s->npages - 1, 1, s, 0) ||
                (s->npages > 2 && !pages_all(q + 1, s->npages - 2, NULL, 0)))
                return "a large block's first and last pages do not map to "
                       "it, or the others to nothing";
            if (s->nelems != 1 || s->alloc_count != 1)
                return "a large span is not one block";
            uintptr_t base = (uintptr_t)span_base(s);
            size_t k = held_find(h, base);
            bool quarantined = k < h->n && h->v[k].p == base;
            if (quarantined && h->v[k].kind != HELD_QUARANTINE)
                return "a list holds a large block";
            sum->held_seen += quarantined;
#if GM_CHECKED
            if (quarantined == (s->live_bits[0] & 1))
                return "a large block is neither live nor quarantined, or "
                       "both";
#endif
            sum->large_spans++;
            sum->span_pages += s->npages;
        } else {
            return "a span has no valid state";
        }
        prev = s;
        q += s->npages;
    }
    return NULL;
}

// clang-format off
/* ---- Steps 3 and 4: the lists and the counters --------------------------- */
// clang-format on

static const char *check_lists(const walk_sums *sum)
{
    const mheap *m = &gm_heap.mheap;
    size_t runs = 0;
    for (unsigned set = 0; set < 2; set++)
        for (unsigned n = 0; n < GM_HEAP_LISTS; n++) {
            bool bit = (m->run_map[set][n / 64] >> (n % 64)) & 1u;
            if (bit != (m->runs[set][n] != NULL))
                return "the page heap's bitmap disagrees with its lists";
            for (const mspan *r = m->runs[set][n]; r != NULL; r = r->next) {
                if (!is_span(r) || r->state != MSPAN_FREE ||
                    r->scavenged != set || (n != 0 && r->npages != n) ||
                    (n == 0 && r->npages < GM_HEAP_LISTS))
                    return "a page heap list holds a run of the wrong kind "
                           "or length";
                if (++runs > sum->free_runs)
                    break;
            }
        }
    if (runs != sum->free_runs)
        return "the page heap's lists do not hold every free run";
    size_t aged = 0;
    for (const mspan *r = m->oldest; r != NULL; r = r->newer) {
        if (!is_span(r) || r->state != MSPAN_FREE || r->scavenged)
            return "the age list holds a run that is not resident and free";
        if (r->newer != NULL && r->newer->freed_pass < r->freed_pass)
            return "the age list is not oldest first";
        if (++aged > sum->resident_runs)
            break;
    }
    if (aged != sum->resident_runs)
        return "the age list does not hold every resident free run";
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        const mcentral *mc = &gm_heap.central[c];
        size_t spans = 0, full = 0;
        for (int k = 0; k < 2; k++) {
            const mspan *head = k == 0 ? mc->partial : mc->full;
            const mspan *s = head;
            if (s == NULL)
                continue;
            do {
                if (!is_span(s) || s->state != MSPAN_SMALL || s->cls != c ||
                    s->full != (k == 1) || s->next->prev != s)
                    return "an mcentral's list holds a span of another class "
                           "or fullness";
                spans++;
                full += k;
                s = s->next;
            } while (s != head && spans <= sum->spans_of[c]);
        }
        if (spans != sum->spans_of[c] || full != sum->full_of[c] ||
            mc->nspans != spans)
            return "an mcentral's lists do not hold each of its spans once";
        if (mc->nbatch > mc->max_batch)
            return "a transfer cache holds more than its room";
    }
    return NULL;
}

static void check_cache(const mcache *mc, void *arg)
{
    const char **why = arg;
    if (*why != NULL)
        return;
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        uint32_t len = 0;
        for (void *p = mc->head[c]; p != NULL && len <= mc->max[c] + 1;
             p = link_get(p))
            len++;
        if (mc->state == MCACHE_ACTIVE) {
            if (mc->room[c] < 0 || (uint32_t)mc->room[c] > mc->max[c] ||
                len != mc->max[c] - (uint32_t)mc->room[c])
                *why = "a thread's list is not its bound minus its room long";
            else if (mc->max[c] < 1 || mc->max[c] > mcache_cap(c))
                *why = "a thread's bound is 0 or above its cap";
        } else if (mc->room[c] != 0 || mc->max[c] != 0 || len != 0) {
            *why = "a cache that is not caching holds objects or room";
        }
    }
    if (*why == NULL && mc->state != MCACHE_ACTIVE && mc->tiny != 0)
        *why = "a cache that is not caching keeps a tiny block";
}

static const char *check_counters(const walk_sums *sum)
{
    const mheap *m = &gm_heap.mheap;
    if (m->span_pages != sum->span_pages || m->free_pages != sum->free_pages ||
        m->released_pages != sum->released_pages ||
        m->free_runs != sum->free_runs || m->small_spans != sum->small_spans ||
        m->large_spans != sum->large_spans)
        return "the mheap's counters disagree with its spans";
    if (m->footprint !=
            (m->span_pages + m->free_pages) * GM_PAGE + m->metadata ||
        m->peak_footprint < m->footprint)
        return "the footprint is not pages in use, free resident pages and "
               "metadata";
    size_t n = 0;
    for (const mcache *mc = gm_heap.threads;
         mc != NULL && n <= gm_heap.nthreads; mc = mc->next)
        n++;
    if (n != gm_heap.nthreads)
        return "the list of caches does not count its caches";
    return NULL;
}

static const char *check_locked(void)
{
    held_set h;
    if (!held_collect(&h))
        return "the checker could not map its scratch memory";
    const char *why = h.why;
    walk_sums sum;
    memset(&sum, 0, sizeof sum);
    for (const gm_arena *a = gm_heap.mheap.arenas; a != NULL && why == NULL;
         a = a->next) {
        uintptr_t e =
            gm_arena_index[a->page >> (GM_ARENA_SHIFT - GM_PAGE_SHIFT)];
        if ((a->page & (GM_ARENA_PAGES - 1)) != 0 || arena_of(a->page) != a ||
            e != (uintptr_t)a->class_of_page - a->page)
            why = "an arena is misaligned or not in the index at its address";
        else if (a->page == a->map_page)
            why = check_mapping(a, &h, &sum);
    }
    if (why == NULL && sum.held_seen != h.n)
        why = "an object held on a list lies in no small span";
    if (why == NULL)
        why = check_lists(&sum);
    if (why == NULL)
        caches_each(check_cache, &why);
    if (why == NULL)
        why = check_counters(&sum);
    held_free(&h);
    return why;
}

const char *gm_check_why(void)
{
    if (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) != 2)
        return NULL; /* a heap not started is empty, and sound */
    gm_lock_all();
    const char *why = check_locked();
    gm_unlock_all();
    return why;
}

bool gm_check(void)
{
    return gm_check_why() == NULL;
}

// clang-format off
/* ---- The drawings -------------------------------------------------------- */
// clang-format on

#define DUMP_PAGES 128 /* pages drawn per mapping, one cell each */
#define DUMP_SPANS 3   /* spans drawn per class */
#define DUMP_LIST  4   /* objects named per thread list */

static size_t kib(size_t bytes)
{
    return (bytes + 1023) / 1024;
}

static bool started(FILE *out)
{
    if (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) == 2)
        return true;
    fprintf(out, "heap: not started (no call yet)\n");
    return false;
}

static void dump_cache(const mcache *mc, void *arg)
{
    FILE *out = arg;
    static const char *const states[] = {"fresh", "starting", "active", "dead"};
    size_t objects = 0, bytes = 0;
    for (unsigned c = 1; c < GM_NLISTS; c++)
        for (void *p = mc->head[c]; p != NULL; p = link_get(p)) {
            objects++;
            bytes += gm_size_of_class[c];
        }
    fprintf(out,
            "thread %d%s: %s, %zu objects (%zu KiB) on its lists, %llu "
            "refills, %llu flushes\n",
            mc->tid, mc == &gm_mcache ? " (this one)" : "",
            states[mc->state & 3], objects, kib(bytes),
            (unsigned long long)mc->refills, (unsigned long long)mc->flushes);
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        if (mc->head[c] == NULL)
            continue;
        uint32_t len = mc->max[c] - (uint32_t)mc->room[c];
        fprintf(out, "  %s %2u (%5u B): %3u of at most %4u:",
                c == GM_TINY_CLASS ? "tiny " : "class", c, gm_size_of_class[c],
                len, mc->max[c]);
        unsigned k = 0;
        for (void *p = mc->head[c]; p != NULL && k < DUMP_LIST;
             p = link_get(p), k++)
            fprintf(out, " %s%p", k ? "-> " : "", p);
        fprintf(out, "%s\n", len > DUMP_LIST ? " -> ..." : " -> NULL");
    }
    if (mc->tiny != 0)
        fprintf(out,
                "  tiny block %p: %u of 16 bytes handed out, %u "
                "objects\n",
                (void *)(mc->tiny << 4), mc->tiny_off, mc->tiny_count);
}

void mcache_dump(FILE *out)
{
    if (!started(out))
        return;
    gm_lock_all();
    fprintf(out, "mcache: %zu thread%s with a cache\n", gm_heap.nthreads,
            gm_heap.nthreads == 1 ? "" : "s");
    caches_each(dump_cache, out);
    gm_unlock_all();
}

/* One slot of a span: '.' free in the span, 'c' on a thread's list, 't'
 * in the transfer cache, 'q' quarantined, '#' the program's. */
static char slot_cell(const mspan *s, size_t i, const held_set *h)
{
    if (!slot_taken(s, i))
        return '.';
    uintptr_t p = (uintptr_t)span_base(s) + i * s->elemsize;
    size_t k = held_find(h, p);
    if (k >= h->n || h->v[k].p != p)
        return '#';
    if (h->v[k].kind == HELD_THREAD)
        return 'c';
    return h->v[k].kind == HELD_TRANSFER ? 't' : 'q';
}

static void dump_span(const mspan *s, const held_set *h, FILE *out)
{
    fprintf(out, "    span at %p: %u of %u slots taken from it%s\n",
            (void *)span_base(s), s->alloc_count, s->nelems,
            s->full ? " (full list)" : " (partial list)");
    for (size_t row = 0; row < s->nelems; row += 64) {
        char line[65];
        size_t k = 0;
        for (size_t i = row; i < s->nelems && i < row + 64; i++)
            line[k++] = slot_cell(s, i, h);
        line[k] = '\0';
        fprintf(out, "    %4zu %s%s\n", row, line,
                s->freeindex == row ? "  <- freeindex" : "");
    }
}

static void dump_class(unsigned c, const held_set *h, FILE *out)
{
    const mcentral *m = &gm_heap.central[c];
    if (m->nspans == 0 && m->nbatch == 0)
        return;
    size_t partial = 0, full = 0;
    for (int k = 0; k < 2; k++) {
        const mspan *head = k == 0 ? m->partial : m->full;
        const mspan *s = head;
        if (s != NULL)
            do {
                *(k == 0 ? &partial : &full) += 1;
                s = s->next;
            } while (s != head);
    }
    fprintf(out,
            "%s %u (%u B, batch %u): %u of %u batches in the transfer "
            "cache; %zu partial and %zu full spans\n",
            c == GM_TINY_CLASS ? "tiny blocks, class" : "class", c,
            gm_size_of_class[c], gm_batch_of_class[c], m->nbatch, m->max_batch,
            partial, full);
    size_t shown = 0;
    for (int k = 0; k < 2; k++) {
        const mspan *head = k == 0 ? m->partial : m->full;
        const mspan *s = head;
        if (s != NULL)
            do {
                if (shown++ < DUMP_SPANS)
                    dump_span(s, h, out);
                s = s->next;
            } while (s != head);
    }
    if (shown > DUMP_SPANS)
        fprintf(out, "    ... %zu more spans\n", shown - DUMP_SPANS);
}

void mcentral_dump(FILE *out)
{
    if (!started(out))
        return;
    gm_lock_all();
    held_set h;
    if (!held_collect(&h)) {
        fprintf(out, "mcentral: cannot map the drawing's scratch memory\n");
    } else {
        fprintf(out, "mcentral: legend . free in its span, c on a thread's "
                     "list, t in the transfer cache, q quarantined, # the "
                     "program's\n");
        for (unsigned c = 1; c < GM_NLISTS; c++)
            dump_class(c, &h, out);
    }
    held_free(&h);
    gm_unlock_all();
}

static char page_cell(const mspan *s, uintptr_t q)
{
    if (s->state == MSPAN_FREE)
        return s->scavenged ? '~' : '.';
    bool first = q == s->page;
    if (s->state == MSPAN_LARGE)
        return first ? 'L' : 'l';
    if (s->cls == GM_TINY_CLASS)
        return 'T';
    return first ? 'S' : 's';
}

static void dump_mapping(const gm_arena *a, FILE *out)
{
    fprintf(out, "arena at %p: %zu pages (%zu MiB)\n",
            (void *)page_addr(a->page), a->map_pages,
            a->map_pages * GM_PAGE >> 20);
    char cells[DUMP_PAGES + 1];
    size_t n = 0;
    uintptr_t end = a->map_page + a->map_pages;
    for (uintptr_t q = a->map_page; q < end && n < DUMP_PAGES;) {
        const mspan *s = span_of_page(q);
        if (s == NULL || s->npages == 0)
            break;
        for (size_t i = 0; i < s->npages && n < DUMP_PAGES; i++)
            cells[n++] = page_cell(s, q + i);
        q += s->npages;
    }
    cells[n] = '\0';
    fprintf(out, "  pages %s%s\n", cells,
            a->map_pages > DUMP_PAGES ? " ..." : "");
}

void mheap_dump(FILE *out)
{
    if (!started(out))
        return;
    gm_lock_all();
    const mheap *m = &gm_heap.mheap;
    fprintf(out,
            "mheap: %zu arena%s (%zu MiB reserved); legend S/s small "
            "span (first page/others), T tiny blocks, L/l large block, "
            ". free, ~ scavenged\n",
            m->arenas_n, m->arenas_n == 1 ? "" : "s", m->reserved >> 20);
    for (const gm_arena *a = m->arenas; a != NULL; a = a->next)
        if (a->page == a->map_page)
            dump_mapping(a, out);
    static const char *const kind[2] = {"resident", "scavenged"};
    for (unsigned set = 0; set < 2; set++) {
        fprintf(out, "  free runs, %s:", kind[set]);
        size_t shown = 0;
        for (unsigned i = 1; i <= GM_HEAP_LISTS; i++) {
            unsigned n = i % GM_HEAP_LISTS; /* list 0 (the big runs) last */
            for (const mspan *r = m->runs[set][n]; r != NULL; r = r->next)
                if (shown++ < 10)
                    fprintf(out, " %zu", r->npages);
        }
        if (shown > 10)
            fprintf(out, " ... (%zu runs)", shown);
        fprintf(out, "%s\n", shown == 0 ? " none" : " pages");
    }
    uint64_t now = __atomic_load_n(&gm_heap.scav_pass, __ATOMIC_RELAXED);
    fprintf(out, "  resident free runs, oldest first:");
    size_t shown = 0;
    for (const mspan *r = m->oldest; r != NULL; r = r->newer)
        if (shown++ < 8)
            fprintf(out, " %zu pages (free %llu passes)", r->npages,
                    (unsigned long long)(now - r->freed_pass));
    fprintf(out, "%s\n", shown == 0 ? " none" : shown > 8 ? " ..." : "");
    fprintf(out,
            "  pages: %zu in spans, %zu free resident (goal %zu KiB), "
            "%zu scavenged; footprint %zu KiB, peak %zu KiB, metadata "
            "%zu KiB; %zu madvises\n",
            m->span_pages, m->free_pages, kib(mheap_goal_locked(m)),
            m->released_pages, kib(m->footprint), kib(m->peak_footprint),
            kib(m->metadata), m->madvises);
    gm_unlock_all();
}

// clang-format off
/* ---- The statistics ------------------------------------------------------ */
// clang-format on

typedef struct class_sums {
    size_t spans, taken, transfer, requested, live;
} class_sums;

/* Per class, walking the spans; caller holds every lock. */
static void class_walk(class_sums w[GM_NLISTS], gm_stats_t *st)
{
    memset(w, 0, GM_NLISTS * sizeof *w);
    for (const gm_arena *a = gm_heap.mheap.arenas; a != NULL; a = a->next) {
        if (a->page != a->map_page)
            continue;
        for (uintptr_t q = a->map_page; q < a->map_page + a->map_pages;) {
            const mspan *s = span_of_page(q);
            if (s == NULL || s->npages == 0)
                break;
            q += s->npages;
            if (s->state == MSPAN_LARGE) {
                st->live_large++;
                st->live_bytes += span_bytes(s);
                continue;
            }
            if (s->state != MSPAN_SMALL)
                continue;
            class_sums *c = &w[s->cls];
            c->spans++;
            c->taken += s->alloc_count;
#if GM_CHECKED
            for (size_t i = 0; i < s->nelems && s->cls != GM_TINY_CLASS; i++)
                if (s->live_bits[i / 64] >> (i % 64) & 1) {
                    c->live++;
                    c->requested += s->requests[i];
                }
#endif
        }
    }
    for (unsigned c = 1; c < GM_NLISTS; c++)
        w[c].transfer =
            (size_t)gm_heap.central[c].nbatch * gm_batch_of_class[c];
}

static void own_cache(size_t per_class[GM_NLISTS])
{
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        per_class[c] = 0;
        for (void *p = gm_mcache.head[c]; p != NULL; p = link_get(p))
            per_class[c]++;
    }
}

gm_stats_t gm_stats(void)
{
    gm_stats_t st;
    memset(&st, 0, sizeof st);
    if (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) != 2)
        return st;
    class_sums w[GM_NLISTS];
    size_t mine[GM_NLISTS];
    gm_lock_all();
    const mheap *m = &gm_heap.mheap;
    class_walk(w, &st);
    own_cache(mine);
    size_t others = 0;
    for (const mcache *mc = gm_heap.threads; mc != NULL; mc = mc->next)
        if (mc != &gm_mcache)
            others += __atomic_load_n(&mc->snapshot_objects, __ATOMIC_RELAXED);
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        st.cached_thread += mine[c];
        st.cached_central += w[c].transfer;
        if (c == GM_TINY_CLASS) {
            st.live_small += w[c].taken - mine[c] - w[c].transfer;
            continue;
        }
        size_t held = mine[c] + w[c].transfer;
        size_t live = w[c].taken > held ? w[c].taken - held : 0;
        st.live_small += live;
        st.live_bytes += live * gm_size_of_class[c];
    }
    st.cached_thread += others;
    st.live_small = st.live_small > others ? st.live_small - others : 0;
    st.arenas = m->arenas_n;
    st.reserved = m->reserved;
    st.pages_in_use = m->span_pages;
    st.pages_free = m->free_pages;
    st.pages_released = m->released_pages;
    st.metadata = m->metadata;
    st.footprint = m->footprint;
    st.peak_footprint = m->peak_footprint;
    st.small_spans = m->small_spans;
    st.large_spans = m->large_spans;
    st.threads = gm_heap.nthreads;
    st.mmaps = m->mmaps;
    st.madvises = m->madvises;
    st.scavenged_bytes = m->scavenged_bytes;
    st.sync_releases = m->sync_releases;
    gm_unlock_all();
    return st;
}

/* snprintf into a line, then write(2): stdio might allocate at exit. */
static void say(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 &&
        write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) <
            0) {
        /* nowhere left to say so */
    }
}

void gm_print_stats(int fd)
{
    if (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) != 2)
        return;
    gm_stats_t st = gm_stats();
    class_sums w[GM_NLISTS];
    size_t mine[GM_NLISTS];
    gm_stats_t walked;
    memset(&walked, 0, sizeof walked);
    gm_lock_all();
    class_walk(w, &walked);
    own_cache(mine);
    say(fd, "class   size  spans   in use  cached  internal waste  tail "
            "waste\n");
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        if (w[c].spans == 0)
            continue;
        size_t span = (size_t)gm_pages_of_class[c] * GM_PAGE;
        size_t tail =
            span - (size_t)gm_objects_of_class[c] * gm_size_of_class[c];
        size_t held = mine[c] + w[c].transfer;
        size_t in_use = w[c].taken > held ? w[c].taken - held : 0;
        char internal[32] = "-";
        if (GM_CHECKED && c != GM_TINY_CLASS)
            snprintf(internal, sizeof internal, "%zu",
                     w[c].live * gm_size_of_class[c] - w[c].requested);
        say(fd, "%5u %6u %6zu %8zu %7zu %15s %10zu%s\n", c, gm_size_of_class[c],
            w[c].spans, in_use, held, internal, w[c].spans * tail,
            c == GM_TINY_CLASS ? "  (tiny blocks)" : "");
    }
    say(fd, "(in use: taken from the spans, less this thread's cache and the "
            "transfer caches; internal waste: checked builds, which record "
            "requests)\n");
    say(fd,
        "pages: %zu in use, %zu free resident, %zu scavenged (%zu KiB "
        "given back by the scavenger, %zu frees gave back themselves); "
        "footprint %zu KiB, peak %zu KiB, metadata %zu KiB\n",
        st.pages_in_use, st.pages_free, st.pages_released,
        kib(st.scavenged_bytes), st.sync_releases, kib(st.footprint),
        kib(st.peak_footprint), kib(st.metadata));
    for (const mcache *mc = gm_heap.threads; mc != NULL; mc = mc->next) {
        if (mc == &gm_mcache)
            continue;
        say(fd,
            "thread %d: %zu objects (%zu KiB) in its cache at its last "
            "slow path\n",
            mc->tid, __atomic_load_n(&mc->snapshot_objects, __ATOMIC_RELAXED),
            kib(__atomic_load_n(&mc->snapshot_bytes, __ATOMIC_RELAXED)));
    }
    size_t objects = 0, bytes = 0;
    for (unsigned c = 1; c < GM_NLISTS; c++) {
        objects += mine[c];
        bytes += mine[c] * gm_size_of_class[c];
    }
    say(fd, "thread %d (this one): %zu objects (%zu KiB) in its cache\n",
        (int)gm_mcache.tid, objects, kib(bytes));
    gm_unlock_all();
}
