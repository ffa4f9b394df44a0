/*
 * mheap.c: the page heap, and what it stands on: arenas from the OS, the
 * page map and the class map, large blocks, the release policy, and the
 * allocator of the metadata. See gm.c for an overview; this file is steps
 * 4 and 5 of malloc and step 4 of free. Stage 06's page heap, with a lock
 * around it, the class map for the fast free path, and the age list that
 * the scavenger (mscavenge.c) reads.
 *
 * The page heap hands out runs of whole 8 KiB pages and takes them back.
 * A free run is an mspan of state MSPAN_FREE, on one of two sets of lists:
 * resident runs (pages used before and still in memory) and scavenged runs
 * (given back with madvise, or never touched since the arena was mapped:
 * not resident, and they read as zero). In each set, list n holds the runs
 * of exactly n pages for n = 1..127, list 0 the runs of 128 pages or more;
 * a bitmap says which lists are not empty. The resident runs are also on
 * an age list, in the order they became free.
 *
 * Taking npages (pages_alloc):
 *   1. Best fit by length: the first non-empty list of at least npages in
 *      each set (one ctz in each bitmap), the shorter run of the two, the
 *      resident one on a tie (it costs no page fault); for 128 pages or
 *      more, a walk of the two lists 0. TCMalloc's classic page heap.
 *   2. None fits: map a new arena (64 MiB, 64 MiB-aligned; several at once
 *      for a bigger request): one scavenged run, and it fits.
 *   3. Split: the front npages (after the alignment) become the span; what
 *      is left stays free, of the same kind, with the same age. Every page
 *      of a small span maps to it (an object's free may look up any of
 *      them), the first and last pages of a large one.
 * Giving a span back (pages_free):
 *   4. Merge with the free runs just before and just after it, when they
 *      are of the same kind and in the same mapping (two page map
 *      lookups). A merged run takes the age of its larger part, so that a
 *      page churning beside an old free run does not keep it young.
 *   5. The release policy: with the background scavenger (the default),
 *      nothing here but a flag that wakes it, unless more than 64 MiB
 *      beyond the goal is resident (it is late): then this free gives the
 *      excess back itself. In sync mode, this free gives back, oldest
 *      first, everything beyond the goal. A failed madvise leaves the run
 *      resident, and errno as it was.
 *
 * Costs: taking or giving back a run of under 128 pages is O(1), plus
 * O(pages) page map entries to write; a bigger one adds a walk of the big
 * runs. An arena costs 64 MiB of address space, found aligned in one to
 * three mmaps (reserve_aligned), and one of its maps (76 KiB).
 * Address space is never unmapped before gm_destroy, as in Go.
 *
 * Locking: everything here is under the mheap's lock (the functions with
 * _locked in their name expect the caller to hold it); the public ones
 * take it. An mcentral may call in while holding its own lock; nothing
 * here takes an mcentral's.
 */
#include "gm_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define FIX_CHUNK  ((size_t)64 << 10) /* bytes of a fixalloc chunk */
#define ARENA_META ((sizeof(gm_arena) + 4095) & ~(size_t)4095)
#define LATE_BYTES ((size_t)64 << 20) /* the scavenger is late beyond */
#define TINY_META  (GM_PAGE / 16 * (sizeof(uint16_t) + sizeof(uint8_t)))

static void *fixalloc_get(mheap *h, fixalloc *f);
static void fixalloc_put(fixalloc *f, void *p);
static size_t release_locked(mheap *h, size_t keep);

static void footprint_update(mheap *h)
{
    h->footprint = (h->span_pages + h->free_pages) * GM_PAGE + h->metadata;
    if (h->footprint > h->peak_footprint)
        h->peak_footprint = h->footprint;
}

/* ---- The age list of resident free runs ---------------------------------- */

static void age_unlink(mheap *h, mspan *r)
{
    if (r->older != NULL)
        r->older->newer = r->newer;
    else
        h->oldest = r->newer;
    if (r->newer != NULL)
        r->newer->older = r->older;
    else
        h->newest = r->older;
    r->older = r->newer = NULL;
}

/* In order of freed_pass, from the newest end (where new runs go). */
static void age_link(mheap *h, mspan *r)
{
    mspan *x = h->newest;
    while (x != NULL && x->freed_pass > r->freed_pass)
        x = x->older;
    r->older = x;
    r->newer = x != NULL ? x->newer : h->oldest;
    if (r->newer != NULL)
        r->newer->older = r;
    else
        h->newest = r;
    if (x != NULL)
        x->newer = r;
    else
        h->oldest = r;
}

/* ---- The lists of free runs ---------------------------------------------- */

static unsigned run_list_of(size_t npages)
{
    return npages < GM_HEAP_LISTS ? (unsigned)npages : 0;
}

/* Doubly linked, NULL-terminated, newest first; resident runs also join
 * the age list. */
static void run_insert(mheap *h, mspan *r)
{
    unsigned set = r->scavenged, n = run_list_of(r->npages);
    r->prev = NULL;
    r->next = h->runs[set][n];
    if (r->next != NULL)
        r->next->prev = r;
    h->runs[set][n] = r;
    h->run_map[set][n / 64] |= (uint64_t)1 << (n % 64);
    h->free_runs++;
    if (!r->scavenged)
        age_link(h, r);
}

static void run_remove(mheap *h, mspan *r)
{
    unsigned set = r->scavenged, n = run_list_of(r->npages);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        h->runs[set][n] = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    if (h->runs[set][n] == NULL)
        h->run_map[set][n / 64] &= ~((uint64_t)1 << (n % 64));
    r->next = r->prev = NULL;
    h->free_runs--;
    if (!r->scavenged)
        age_unlink(h, r);
}

/* The first non-empty exact-length list of at least n pages in one set's
 * bitmap (list 0, the big runs, left out), or GM_HEAP_LISTS. */
static unsigned list_at_least(const uint64_t map[GM_HEAP_LISTS / 64], size_t n)
{
    for (size_t w = n / 64; w < GM_HEAP_LISTS / 64; w++) {
        uint64_t bits = map[w];
        if (w == n / 64)
            bits &= ~(uint64_t)0 << (n % 64);
        if (w == 0)
            bits &= ~(uint64_t)1;
        if (bits != 0)
            return (unsigned)(w * 64 + (unsigned)__builtin_ctzll(bits));
    }
    return GM_HEAP_LISTS;
}

/* Step 1: the best-fitting free run of at least n pages, or NULL. */
static mspan *run_find(const mheap *h, size_t n)
{
    if (n < GM_HEAP_LISTS) {
        unsigned r = list_at_least(h->run_map[0], n);
        unsigned z = list_at_least(h->run_map[1], n);
        if (r < GM_HEAP_LISTS && r <= z)
            return h->runs[0][r];
        if (z < GM_HEAP_LISTS)
            return h->runs[1][z];
    }
    mspan *best = NULL;
    for (unsigned set = 0; set < 2; set++)
        for (mspan *r = h->runs[set][0]; r != NULL; r = r->next)
            if (r->npages >= n && (best == NULL || r->npages < best->npages ||
                                   (r->npages == best->npages && set == 0)))
                best = r;
    return best;
}

/* ---- The page map and the class map -------------------------------------- */

static void pagemap_set(uintptr_t page, mspan *s)
{
    arena_of(page)->spans[page & (GM_ARENA_PAGES - 1)] = s;
}

/* Pages first .. first + n - 1 map to s, one arena's stretch at a time
 * (a span may cross from one arena into the next of a mapping). */
static void pagemap_fill(uintptr_t first, size_t n, mspan *s)
{
    while (n > 0) {
        gm_arena *a = arena_of(first);
        size_t k = first & (GM_ARENA_PAGES - 1);
        size_t m = GM_ARENA_PAGES - k < n ? GM_ARENA_PAGES - k : n;
        for (size_t i = 0; i < m; i++)
            a->spans[k + i] = s;
        first += m;
        n -= m;
    }
}

static void classmap_set(uintptr_t first, size_t n, uint8_t c)
{
    while (n > 0) {
        gm_arena *a = arena_of(first);
        size_t k = first & (GM_ARENA_PAGES - 1);
        size_t m = GM_ARENA_PAGES - k < n ? GM_ARENA_PAGES - k : n;
        memset(&a->class_of_page[k], c, m);
        first += m;
        n -= m;
    }
}

/* A free run maps its first and last page to itself (the pages between
 * stay NULL): enough for the neighbours that step 4 looks up. */
static void run_mark(mspan *r)
{
    pagemap_set(r->page, r);
    pagemap_set(r->page + r->npages - 1, r);
}

/* The free run of the same kind as r that touches r on the side of
 * `page`, in r's mapping, and not busy being scavenged; or NULL. */
static mspan *run_neighbour(const mspan *r, uintptr_t page)
{
    const gm_arena *mine = arena_of(r->page), *theirs = arena_of(page);
    if (theirs == NULL || theirs->map_page != mine->map_page)
        return NULL;
    mspan *n = theirs->spans[page & (GM_ARENA_PAGES - 1)];
    if (n == NULL || n->state != MSPAN_FREE || n->busy ||
        n->scavenged != r->scavenged)
        return NULL;
    return n;
}

/* Step 4: r (a free run on no list, its first and last pages mapped)
 * absorbs its free neighbours of the same kind, then goes on its lists. */
static void run_merge_insert(mheap *h, mspan *r)
{
    mspan *prev = run_neighbour(r, r->page - 1);
    if (prev != NULL) {
        run_remove(h, prev);
        pagemap_set(prev->page + prev->npages - 1, NULL);
        pagemap_set(r->page, NULL);
        if (r->npages > prev->npages)
            prev->freed_pass = r->freed_pass;
        prev->npages += r->npages;
        fixalloc_put(&h->span_meta, r);
        r = prev;
        run_mark(r);
    }
    mspan *next = run_neighbour(r, r->page + r->npages);
    if (next != NULL) {
        run_remove(h, next);
        pagemap_set(r->page + r->npages - 1, NULL);
        pagemap_set(next->page, NULL);
        if (next->npages > r->npages)
            r->freed_pass = next->freed_pass;
        r->npages += next->npages;
        fixalloc_put(&h->span_meta, next);
        run_mark(r);
    }
    run_insert(h, r);
}

/* ---- Arenas: memory from the OS ------------------------------------------ */

static void *os_map(mheap *h, size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    h->mmaps++;
    return p == MAP_FAILED ? NULL : p;
}

static void os_unmap(mheap *h, void *p, size_t bytes)
{
    if (bytes == 0)
        return;
    h->munmaps++;
    munmap(p, bytes); /* a failure leaves the range mapped: nothing lost */
}

/* The index entry of arena a: see gm_arena_index in gm_internal.h. */
static uintptr_t index_entry(const gm_arena *a)
{
    return (uintptr_t)a->class_of_page - a->page;
}

/* Would the OS commit `bytes` to one mapping? Arenas are reserved with
 * MAP_NORESERVE, which the kernel's overcommit check lets through at any
 * size, so without this a request for more memory than the machine has
 * (malloc(1 << 40)) would succeed, and write an arena map per 64 MiB of
 * it, where glibc's own mmap of the block fails with ENOMEM. A mapping
 * without MAP_NORESERVE, unmapped at once, asks the kernel's check (its
 * heuristic by default, the commit limit in strict mode): two system calls
 * per arena growth of more than one arena, which only a request of over
 * 64 MiB causes. Keeps errno. */
static bool os_would_commit(size_t bytes)
{
    int saved = errno;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        munmap(p, bytes);
    errno = saved;
    return p != MAP_FAILED;
}

/* `bytes` of address space at an arena-aligned address, or NULL. Where
 * the kernel puts `bytes` first, if that is aligned; else at the aligned
 * address just below it (the kernel hands out addresses from the top
 * down, so the space just below a fresh mapping is usually free: a hint,
 * which the kernel takes only if the range is free); only then `bytes`
 * plus an arena, trimmed to the alignment. The first two never hold more
 * address space than they keep, which matters under an address-space
 * limit (ulimit -v), where the third needs 64 MiB more than it keeps. */
static char *reserve_aligned(mheap *h, size_t bytes)
{
    char *m = os_map(h, bytes);
    if (m == NULL)
        return NULL;
    if (((uintptr_t)m & (GM_ARENA - 1)) == 0)
        return m;
    char *down = (char *)((uintptr_t)m & ~(uintptr_t)(GM_ARENA - 1));
    os_unmap(h, m, bytes);
    void *t = mmap(down, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    h->mmaps++;
    if (t == (void *)down)
        return down;
    if (t != MAP_FAILED)
        os_unmap(h, t, bytes);
    m = os_map(h, bytes + GM_ARENA);
    if (m == NULL)
        return NULL;
    char *start = (char *)(((uintptr_t)m + GM_ARENA - 1) & ~(GM_ARENA - 1));
    os_unmap(h, m, (size_t)(start - m));
    os_unmap(h, start + bytes,
             (size_t)(m + bytes + GM_ARENA - (start + bytes)));
    return start;
}

/*
 * Step 2: maps enough arenas for a run of npages in one reservation
 * aligned to 64 MiB (reserve_aligned), a map for each,
 * and puts them on the page heap as one scavenged run. False when the OS
 * refuses, or would not commit a run that needs more than one arena;
 * nothing is left behind. Keeps errno (its caller reports ENOMEM).
 */
static bool arena_grow(mheap *h, size_t npages)
{
    size_t narenas = (npages + GM_ARENA_PAGES - 1) / GM_ARENA_PAGES;
    if (narenas > ((size_t)1 << GM_INDEX_BITS) / 2)
        return false;
    if (narenas > 1 && !os_would_commit(npages * GM_PAGE))
        return false;
    mspan *run = fixalloc_get(h, &h->span_meta);
    if (run == NULL)
        return false;
    size_t bytes = narenas * GM_ARENA;
    char *start = reserve_aligned(h, bytes);
    if (start == NULL) {
        fixalloc_put(&h->span_meta, run);
        return false;
    }
    size_t i;
    for (i = 0; i < narenas; i++) {
        gm_arena *a = os_map(h, ARENA_META);
        if (a == NULL)
            break;
        a->page = page_of(start + i * GM_ARENA);
        a->map_page = page_of(start);
        a->map_pages = narenas * GM_ARENA_PAGES;
        a->next = h->arenas;
        h->arenas = a;
        gm_arena_index[(uintptr_t)(start + i * GM_ARENA) >> GM_ARENA_SHIFT] =
            index_entry(a);
    }
    if (i < narenas) { /* undo: the maps made, then the reservation */
        for (size_t k = 0; k < i; k++) {
            gm_arena *a = h->arenas;
            h->arenas = a->next;
            gm_arena_index[a->page >> (GM_ARENA_SHIFT - GM_PAGE_SHIFT)] = 0;
            os_unmap(h, a, ARENA_META);
        }
        os_unmap(h, start, bytes);
        fixalloc_put(&h->span_meta, run);
        return false;
    }
    track_mem_noaccess(start, bytes); /* nothing here is a block yet */
    h->arenas_n += narenas;
    h->reserved += bytes;
    h->metadata += narenas * ARENA_META;
    h->released_pages += narenas * GM_ARENA_PAGES;
    run->page = page_of(start);
    run->npages = narenas * GM_ARENA_PAGES;
    run->state = MSPAN_FREE;
    run->scavenged = true;
    run_mark(run);
    run_insert(h, run);
    footprint_update(h);
    return true;
}

/* ---- Taking and giving back runs ----------------------------------------- */

/* Splits free run r (on no list) after its first n pages: r keeps them,
 * `rest` (a fresh struct) the others, of the same kind and age. */
static void run_split(mspan *r, size_t n, mspan *rest)
{
    rest->page = r->page + n;
    rest->npages = r->npages - n;
    rest->state = MSPAN_FREE;
    rest->scavenged = r->scavenged;
    rest->freed_pass = r->freed_pass;
    r->npages = n;
    run_mark(rest);
    run_mark(r);
}

/* Steps 1 to 3: an in-use span of npages, its first page a multiple of
 * align_pages; needzero says whether its pages may hold old bytes. A small
 * span (every_page) maps every page to itself, a large one its first and
 * last (a free goes through the first, a neighbour's merge through the
 * last: the others are never looked up). NULL when the OS refuses (errno
 * kept). With no metadata left for the struct of the pages after it, a
 * large span keeps them; a small one is refused. */
static mspan *pages_alloc_locked(mheap *h, size_t npages, size_t align_pages,
                                 bool every_page)
{
    size_t want = npages + align_pages - 1; /* room for any misalignment */
    if (want < npages)
        return NULL;
    mspan *r = run_find(h, want);
    if (r == NULL && arena_grow(h, want))
        r = run_find(h, want);
    if (r == NULL)
        return NULL;
    run_remove(h, r);
    uintptr_t start = (r->page + align_pages - 1) / align_pages * align_pages;
    if (start > r->page) { /* the pages before the aligned start stay free */
        mspan *front = fixalloc_get(h, &h->span_meta);
        if (front == NULL) {
            run_insert(h, r);
            return NULL;
        }
        run_split(r, start - r->page, front);
        run_insert(h, r);
        r = front;
    }
    if (r->npages > npages) { /* and so do the pages after the span */
        mspan *tail = fixalloc_get(h, &h->span_meta);
        if (tail == NULL && every_page) {
            run_insert(h, r);
            return NULL;
        }
        if (tail != NULL) {
            run_split(r, npages, tail);
            run_insert(h, tail);
        }
    }
    size_t n = r->npages; /* run_split marked its first and last pages */
    if (every_page)
        pagemap_fill(r->page, n, r);
    if (r->scavenged)
        h->released_pages -= n;
    else
        h->free_pages -= n;
    h->span_pages += n;
    r->needzero = !r->scavenged;
    r->scavenged = false;
    r->next = r->prev = NULL;
    h->activity++;
    footprint_update(h);
    return r;
}

/* Step 5 for the free that just happened. */
static void release_policy_locked(mheap *h)
{
    size_t goal = mheap_goal_locked(h);
    if (h->free_pages * GM_PAGE <= goal)
        return;
    int mode = __atomic_load_n(&gm_heap.scav_mode, __ATOMIC_RELAXED);
    if (mode == GM_SCAVENGE_OFF)
        return;
    bool thread = mode == GM_SCAVENGE_BACKGROUND &&
                  __atomic_load_n(&gm_heap.scav_state, __ATOMIC_RELAXED) != 3;
    if (!thread) {
        h->sync_releases++;
        release_locked(h, goal);
        return;
    }
    if (h->free_pages * GM_PAGE > goal + LATE_BYTES) {
        h->sync_releases++;
        release_locked(h, goal + LATE_BYTES / 2);
    }
    if (!__atomic_load_n(&gm_heap.scav_awake, __ATOMIC_RELAXED))
        __atomic_store_n(&gm_heap.scav_wanted, true, __ATOMIC_RELAXED);
}

/* Step 4: the pages of in-use span s become a free run, merged with its
 * free neighbours; then step 5. */
static void pages_free_locked(mheap *h, mspan *s)
{
    if (s->state == MSPAN_SMALL && s->npages > 2)
        pagemap_fill(s->page + 1, s->npages - 2, NULL);
    h->span_pages -= s->npages;
    h->free_pages += s->npages;
    s->state = MSPAN_FREE;
    s->cls = 0;
    s->scavenged = false;
    s->needzero = false;
    s->full = false;
    s->tiny_live = NULL;
    s->tiny_starts = NULL;
    s->next = s->prev = NULL;
    s->freed_pass = __atomic_load_n(&gm_heap.scav_pass, __ATOMIC_RELAXED);
    h->activity++;
    run_mark(s);
    run_merge_insert(h, s);
    footprint_update(h);
    release_policy_locked(h);
}

/* ---- Small spans and large blocks (the public side) ---------------------- */

mspan *mheap_alloc_small(unsigned c)
{
    mheap *h = &gm_heap.mheap;
    mspan *s = NULL;
    gm_lock_take(&h->lock);
    void *tiny = NULL, *req = NULL, *bits = NULL, *live = NULL;
    bool own_bits = gm_objects_of_class[c] > 128;
    if (c == GM_TINY_CLASS && (tiny = fixalloc_get(h, &h->tiny_meta)) == NULL)
        goto fail;
    if (own_bits && (bits = fixalloc_get(h, &h->bits_meta)) == NULL)
        goto fail;
#if GM_CHECKED
    if (own_bits && (live = fixalloc_get(h, &h->live_meta)) == NULL)
        goto fail;
#endif
#if GM_CHECKED
    req = fixalloc_get(h, c == GM_TINY_CLASS ? &h->tiny_req_meta
                                             : &h->request_meta);
    if (req == NULL)
        goto fail;
#endif
    s = pages_alloc_locked(h, gm_pages_of_class[c], 1, true);
    if (s == NULL)
        goto fail;
    s->state = MSPAN_SMALL;
    s->cls = (uint8_t)c;
    s->nelems = gm_objects_of_class[c];
    s->elemsize = gm_size_of_class[c];
    s->divmul = gm_divmul_of_class[c];
    s->alloc_count = 0;
    s->freeindex = 0;
    s->full = false;
    s->alloc_bits = own_bits ? bits : s->bits_inline;
    memset(s->alloc_bits, 0, span_words(s) * sizeof(uint64_t));
    if (tiny != NULL) {
        s->tiny_starts = tiny;
        s->tiny_live = (uint8_t *)tiny + GM_PAGE / 16 * sizeof(uint16_t);
    }
#if GM_CHECKED
    s->live_bits = own_bits ? live : s->live_inline;
    memset(s->live_bits, 0, span_words(s) * sizeof(uint64_t));
    if (c == GM_TINY_CLASS)
        s->tiny_req = req;
    else
        s->requests = req;
#endif
    (void)req;
    classmap_set(s->page, s->npages, c == GM_TINY_CLASS ? 0 : (uint8_t)c);
    h->small_spans++;
    gm_lock_give(&h->lock);
    track_mem_noaccess(span_base(s), span_bytes(s));
    return s;
fail:
    if (tiny != NULL)
        fixalloc_put(&h->tiny_meta, tiny);
    if (bits != NULL)
        fixalloc_put(&h->bits_meta, bits);
#if GM_CHECKED
    if (live != NULL)
        fixalloc_put(&h->live_meta, live);
#endif
    (void)live;
#if GM_CHECKED
    if (req != NULL)
        fixalloc_put(c == GM_TINY_CLASS ? &h->tiny_req_meta : &h->request_meta,
                     req);
#endif
    gm_lock_give(&h->lock);
    return NULL;
}

void mheap_free_small(mspan *s)
{
    mheap *h = &gm_heap.mheap;
    gm_lock_take(&h->lock);
    classmap_set(s->page, s->npages, 0);
    if (s->tiny_starts != NULL)
        fixalloc_put(&h->tiny_meta, s->tiny_starts);
    if (s->alloc_bits != s->bits_inline)
        fixalloc_put(&h->bits_meta, s->alloc_bits);
    s->alloc_bits = s->bits_inline;
#if GM_CHECKED
    if (s->live_bits != s->live_inline)
        fixalloc_put(&h->live_meta, s->live_bits);
    s->live_bits = s->live_inline;
    if (s->requests != NULL)
        fixalloc_put(&h->request_meta, s->requests);
    if (s->tiny_req != NULL)
        fixalloc_put(&h->tiny_req_meta, s->tiny_req);
    s->requests = NULL;
    s->tiny_req = NULL;
#endif
    h->small_spans--;
    pages_free_locked(h, s);
    gm_lock_give(&h->lock);
}

void *mheap_alloc_large(size_t size, size_t align_pages)
{
    mheap *h = &gm_heap.mheap;
    size_t npages = (size + GM_PAGE - 1) >> GM_PAGE_SHIFT;
    if (npages == 0)
        npages = 1; /* an aligned request of 0 bytes */
    gm_lock_take(&h->lock);
    mspan *s = pages_alloc_locked(h, npages, align_pages, false);
    if (s != NULL) {
        s->state = MSPAN_LARGE;
        s->cls = 0;
        s->nelems = 1;
        s->alloc_count = 1;
        s->elemsize = 0;
        s->alloc_bits = s->bits_inline;
        s->bits_inline[0] = 1;
#if GM_CHECKED
        s->live_bits = s->live_inline;
        s->live_inline[0] = 0;
#endif
        h->large_spans++;
    }
    gm_lock_give(&h->lock);
    if (s == NULL)
        return NULL;
    track_mem_noaccess(span_base(s), span_bytes(s));
    return span_base(s);
}

void mheap_free_large(mspan *s)
{
    mheap *h = &gm_heap.mheap;
    gm_lock_take(&h->lock);
    h->large_spans--;
    pages_free_locked(h, s);
    gm_lock_give(&h->lock);
}

/* Large span s grows in place into the free run right after it; its
 * first and last pages keep mapping to it, the pages between to nothing. */
static bool extend_locked(mheap *h, mspan *s, size_t npages)
{
    size_t extra = npages - s->npages;
    uintptr_t end = s->page + s->npages, old_last = end - 1;
    const gm_arena *mine = arena_of(s->page), *theirs = arena_of(end);
    if (theirs == NULL || theirs->map_page != mine->map_page)
        return false;
    mspan *next = theirs->spans[end & (GM_ARENA_PAGES - 1)];
    if (next == NULL || next->state != MSPAN_FREE || next->busy ||
        next->npages < extra)
        return false;
    run_remove(h, next);
    if (next->scavenged)
        h->released_pages -= extra;
    else {
        h->free_pages -= extra;
        s->needzero = true;
    }
    if (next->npages == extra) {
        fixalloc_put(&h->span_meta, next);
    } else {
        next->page += extra;
        next->npages -= extra;
        run_mark(next);
        run_insert(h, next);
    }
    s->npages = npages;
    if (old_last != s->page)
        pagemap_set(old_last, NULL);
    pagemap_set(end, NULL);
    pagemap_set(s->page + npages - 1, s);
    h->span_pages += extra;
    footprint_update(h);
    return true;
}

bool mheap_resize_large(mspan *s, size_t size)
{
    mheap *h = &gm_heap.mheap;
    size_t npages = (size + GM_PAGE - 1) >> GM_PAGE_SHIFT;
    if (npages == s->npages)
        return true;
    size_t old_bytes = span_bytes(s);
    bool ok = false;
    gm_lock_take(&h->lock);
    if (npages > s->npages) {
        ok = extend_locked(h, s, npages);
    } else {
        mspan *tail = fixalloc_get(h, &h->span_meta);
        if (tail != NULL) {
            tail->page = s->page + npages;
            tail->npages = s->npages - npages;
            tail->state = MSPAN_LARGE;
            s->npages = npages;
            pagemap_set(s->page + npages - 1, s); /* its new last page */
            pages_free_locked(h, tail);           /* which marks the tail's */
            ok = true;
        }
    }
    gm_lock_give(&h->lock);
    if (ok && span_bytes(s) > old_bytes) /* new pages: no-access until the
                                            caller's track_resize */
        track_mem_noaccess(span_base(s) + old_bytes, span_bytes(s) - old_bytes);
    return ok;
}

/* ---- Giving pages back (step 5, and the scavenger's own step) ------------ */

size_t mheap_goal_locked(const mheap *h)
{
    return h->retain + h->span_pages * GM_PAGE / 16;
}

/*
 * The pages of resident free run r go back to the OS. r leaves every list
 * (busy), and with drop_lock the lock is released around madvise, so that
 * other threads' spans come and go meanwhile; then r, scavenged, merges
 * with its scavenged neighbours. A failed madvise puts it back resident.
 * Returns the bytes given back. Keeps errno.
 */
static size_t scavenge_run_locked(mheap *h, mspan *r, bool drop_lock)
{
    int saved = errno;
    run_remove(h, r);
    r->busy = true;
    h->madvises++;
    if (drop_lock)
        gm_lock_give(&h->lock);
    bool ok = madvise(span_base(r), span_bytes(r), MADV_DONTNEED) == 0;
    if (drop_lock)
        gm_lock_take(&h->lock);
    r->busy = false;
    errno = saved;
    if (!ok) {
        run_insert(h, r); /* stays resident; the next pass tries again */
        return 0;
    }
    r->scavenged = true;
    h->free_pages -= r->npages;
    h->released_pages += r->npages;
    h->scavenged_bytes += span_bytes(r);
    size_t done = span_bytes(r);
    run_merge_insert(h, r);
    footprint_update(h);
    return done;
}

/* Oldest first, until at most `keep` bytes of free pages are resident. */
static size_t release_locked(mheap *h, size_t keep)
{
    size_t done = 0;
    while (h->free_pages * GM_PAGE > keep && h->oldest != NULL) {
        size_t n = scavenge_run_locked(h, h->oldest, false);
        if (n == 0)
            break; /* madvise refused: no use trying the others now */
        done += n;
    }
    return done;
}

size_t mheap_scavenge_one_locked(mheap *h, uint64_t pass, bool drop_lock)
{
    mspan *r = h->oldest;
    if (r == NULL || h->free_pages * GM_PAGE <= mheap_goal_locked(h) ||
        r->freed_pass >= pass)
        return 0; /* nothing beyond the goal, or not free a whole pass yet */
    return scavenge_run_locked(h, r, drop_lock);
}

size_t mheap_release_all(void)
{
    mheap *h = &gm_heap.mheap;
    gm_lock_take(&h->lock);
    size_t done = release_locked(h, 0);
    gm_lock_give(&h->lock);
    return done;
}

/* ---- The metadata allocator (Go's fixalloc) ------------------------------ */

static void fixalloc_init(fixalloc *f, size_t size)
{
    memset(f, 0, sizeof *f);
    f->size = (size + 15) & ~(size_t)15;
}

static void *fixalloc_get(mheap *h, fixalloc *f)
{
    void *p = f->free;
    if (p != NULL) {
        memcpy(&f->free, p, sizeof f->free);
    } else {
        if (f->left < f->size) {
            char *chunk = os_map(h, FIX_CHUNK);
            if (chunk == NULL)
                return NULL;
            memcpy(chunk, &f->chunks, sizeof f->chunks);
            f->chunks = chunk;
            f->bump = chunk + 16;
            f->left = FIX_CHUNK - 16;
            f->mapped += FIX_CHUNK;
            h->metadata += FIX_CHUNK;
            footprint_update(h);
        }
        p = f->bump;
        f->bump += f->size;
        f->left -= f->size;
    }
    memset(p, 0, f->size);
    f->in_use++;
    return p;
}

static void fixalloc_put(fixalloc *f, void *p)
{
    memcpy(p, &f->free, sizeof f->free);
    f->free = p;
    f->in_use--;
}

static void fixalloc_destroy(mheap *h, fixalloc *f)
{
    while (f->chunks != NULL) {
        void *chunk = f->chunks;
        memcpy(&f->chunks, chunk, sizeof f->chunks);
        os_unmap(h, chunk, FIX_CHUNK);
    }
}

/* ---- Start and end ------------------------------------------------------- */

void mheap_init(mheap *h)
{
    memset(h, 0, sizeof *h);
    fixalloc_init(&h->span_meta, sizeof(mspan));
    fixalloc_init(&h->bits_meta, GM_MAX_SLOTS / 8);
    fixalloc_init(&h->tiny_meta, TINY_META);
#if GM_CHECKED
    fixalloc_init(&h->live_meta, GM_MAX_SLOTS / 8);
    fixalloc_init(&h->request_meta, GM_MAX_SLOTS * sizeof(uint16_t));
    fixalloc_init(&h->tiny_req_meta, GM_PAGE);
#endif
    h->retain = (size_t)1 << 20;
}

void mheap_destroy(void)
{
    mheap *h = &gm_heap.mheap;
    int saved = errno;
    while (h->arenas != NULL) {
        gm_arena *a = h->arenas;
        h->arenas = a->next;
        gm_arena_index[a->page >> (GM_ARENA_SHIFT - GM_PAGE_SHIFT)] = 0;
        if (a->page == a->map_page) {
            /* Leave no poison behind for ASan at this address. */
            track_mem_undefined(page_addr(a->page), a->map_pages * GM_PAGE);
            os_unmap(h, page_addr(a->page), a->map_pages * GM_PAGE);
        }
        os_unmap(h, a, ARENA_META);
    }
    fixalloc_destroy(h, &h->span_meta);
    fixalloc_destroy(h, &h->bits_meta);
    fixalloc_destroy(h, &h->tiny_meta);
#if GM_CHECKED
    fixalloc_destroy(h, &h->live_meta);
    fixalloc_destroy(h, &h->request_meta);
    fixalloc_destroy(h, &h->tiny_req_meta);
#endif
    size_t retain = h->retain;
    mheap_init(h);
    h->retain = retain;
    errno = saved;
}
