/*
 * pageheap.c: the page heap of sc.c's allocator, and what it stands on:
 * arenas from the OS, the page map, the release policy, and the allocator
 * for the metadata. See sc.c for the overview; this file is what sc.c's
 * steps 6 and 4 call.
 *
 * The page heap hands out runs of whole 8 KiB pages and takes them back.
 * A free run is an sc_span of state SC_SPAN_FREE, on one of two sets of
 * lists: resident runs (pages that were used and are still in memory) and
 * released runs (given back with madvise, or never touched since the arena
 * was mapped: not resident, and they read as zero). In each set, list n
 * holds the runs of exactly n pages for n = 1..127, and list 0 the runs of
 * 128 pages or more; a bitmap says which lists are not empty.
 *
 * Taking npages (pageheap_alloc):
 *   1. Best fit by length: the first non-empty list of at least npages in
 *      each set (one ctz in each bitmap), the shorter run of the two, the
 *      resident one on a tie; for 128 pages or more, a walk of the two
 *      lists 0 for the smallest run that fits. That is TCMalloc's classic
 *      page heap. (Go's is address-ordered first fit over a bitmap of
 *      pages with a radix tree of summaries: better locality, and a search
 *      in O(log) of the address space; here O(1) for short runs, and
 *      simpler to read.)
 *   2. None fits: map a new arena (64 MiB, 64 MiB-aligned; several at once
 *      for a bigger request): one released run, and it fits.
 *   3. Split: the front npages pages (after the first page that is a
 *      multiple of the alignment, the pages before it staying free) become
 *      the span; the rest stays a free run of the same kind, on the list
 *      of its new length. Every page of the span is mapped to it.
 * Giving a span back (pageheap_free):
 *   4. Merge with the free run that ends just before it and the one that
 *      starts just after it (two page map lookups), when they are of the
 *      same kind and in the same mapping; the result goes on its list.
 *      Resident and released runs are not merged (as TCMalloc does), so
 *      that a resident run never hides released pages, and the count of
 *      resident memory stays exact.
 *   5. The release policy: while more than `retain` bytes (4 MiB) of free
 *      pages are resident, the largest resident run goes back to the OS
 *      with madvise(MADV_DONTNEED), then merges with released neighbours.
 *      Largest first: the fewest system calls for the bytes released. A
 *      failed madvise leaves the run resident (and errno as it was); the
 *      next free tries again.
 *
 * Costs: taking or giving back a run of under 128 pages is O(1) plus
 * O(pages) of page map entries to write; a bigger one adds a walk of the
 * big runs. An arena costs one mmap of 64 MiB of address space (128 MiB,
 * trimmed to its alignment: one more munmap or two) and one of its page
 * map (64 KiB). Memory is never unmapped before sc_destroy: free pages go
 * back with madvise, and the address space stays reserved, as Go does.
 *
 * The metadata (span structs, and checked builds' request arrays) comes
 * from a fixed-size allocator of the allocator's own, Go's fixalloc: a
 * free list of objects of one size, then a bump pointer in a 64 KiB chunk
 * mapped with mmap. It never lives in the arenas it describes, so a wild
 * write into a block cannot corrupt a span, and the memory tools see
 * nothing of it. Span structs name their pages by number (address >> 13),
 * not by pointer, so that Valgrind's leak check never reads one as a
 * reference to the block that starts there.
 */
#include "sc_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define INDEX_BYTES (((size_t)1 << SC_INDEX_BITS) * sizeof(sc_arena *))

static void footprint_update(sc_heap *h)
{
    sc_stats_t *st = &h->stats;
    st->metadata = metadata_written(h);
    st->footprint = (st->span_pages + st->free_pages) * SC_PAGE + st->metadata;
    if (st->footprint > st->peak_footprint)
        st->peak_footprint = st->footprint;
}

/* ---- The lists of free runs ---------------------------------------------- */

/* Doubly linked, NULL-terminated, newest first. */
static void run_insert(sc_heap *h, sc_span *r)
{
    unsigned set = r->released, n = run_list_of(r->npages);
    r->prev = NULL;
    r->next = h->runs[set][n];
    if (r->next != NULL)
        r->next->prev = r;
    h->runs[set][n] = r;
    h->run_map[set][n / 64] |= (uint64_t)1 << (n % 64);
    h->stats.free_runs++;
}

static void run_remove(sc_heap *h, sc_span *r)
{
    unsigned set = r->released, n = run_list_of(r->npages);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        h->runs[set][n] = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    if (h->runs[set][n] == NULL)
        h->run_map[set][n / 64] &= ~((uint64_t)1 << (n % 64));
    r->next = r->prev = NULL;
    h->stats.free_runs--;
}

/* The first non-empty exact-length list of at least n pages (n >= 1) in
 * one set's bitmap, or SC_HEAP_LISTS when there is none. Bit 0 (the big
 * runs' list) is not an exact length: it is left out. */
static unsigned list_at_least(const uint64_t map[SC_HEAP_LISTS / 64], size_t n)
{
    for (size_t w = n / 64; w < SC_HEAP_LISTS / 64; w++) {
        uint64_t bits = map[w];
        if (w == n / 64)
            bits &= ~(uint64_t)0 << (n % 64);
        if (w == 0)
            bits &= ~(uint64_t)1;
        if (bits != 0)
            return (unsigned)(w * 64 + (unsigned)__builtin_ctzll(bits));
    }
    return SC_HEAP_LISTS;
}

/* Step 1: the best-fitting free run of at least n pages, or NULL. */
static sc_span *run_find(const sc_heap *h, size_t n)
{
    if (n < SC_HEAP_LISTS) {
        unsigned r = list_at_least(h->run_map[0], n);
        unsigned z = list_at_least(h->run_map[1], n);
        if (r < SC_HEAP_LISTS && r <= z)
            return h->runs[0][r];
        if (z < SC_HEAP_LISTS)
            return h->runs[1][z];
    }
    sc_span *best = NULL;
    for (unsigned set = 0; set < 2; set++)
        for (sc_span *r = h->runs[set][0]; r != NULL; r = r->next)
            if (r->npages >= n && (best == NULL || r->npages < best->npages))
                best = r;
    return best;
}

/* The largest resident free run, or NULL: what step 5 releases first. */
static sc_span *run_largest_resident(const sc_heap *h)
{
    sc_span *best = NULL;
    for (sc_span *r = h->runs[0][0]; r != NULL; r = r->next)
        if (best == NULL || r->npages > best->npages)
            best = r;
    if (best != NULL)
        return best;
    for (unsigned n = SC_HEAP_LISTS - 1; n >= 1; n--)
        if (h->runs[0][n] != NULL)
            return h->runs[0][n];
    return NULL;
}

/* ---- The page map -------------------------------------------------------- */

static void pagemap_set(sc_heap *h, uintptr_t page, sc_span *s)
{
    *pagemap_entry(h, page) = s;
}

/* Pages first .. first + n - 1 map to s (which may be NULL): one arena's
 * stretch at a time, a plain loop over its page map, so that a big span
 * costs a store a page, not a lookup. */
static void pagemap_fill(sc_heap *h, uintptr_t first, size_t n, sc_span *s)
{
    while (n > 0) {
        sc_span **e = pagemap_entry(h, first);
        size_t m = SC_ARENA_PAGES - (first & (SC_ARENA_PAGES - 1));
        if (m > n)
            m = n;
        for (size_t i = 0; i < m; i++)
            e[i] = s;
        first += m;
        n -= m;
    }
}

/* A free run maps its first and last page to itself (the pages between
 * stay NULL): enough for the neighbours that step 4 looks up. */
static void run_mark(sc_heap *h, sc_span *r)
{
    pagemap_set(h, r->page, r);
    pagemap_set(h, r->page + r->npages - 1, r);
}

/* The free run of the same kind as r that touches r on the side of
 * `page` (r->page - 1 or the page after r) in r's mapping, or NULL. */
static sc_span *run_neighbour(const sc_heap *h, const sc_span *r,
                              uintptr_t page)
{
    const sc_arena *mine = arena_of(h, r->page), *theirs = arena_of(h, page);
    if (theirs == NULL || theirs->map_page != mine->map_page)
        return NULL;
    sc_span *n = pagemap_get(h, page);
    if (n == NULL || n->state != SC_SPAN_FREE || n->released != r->released)
        return NULL;
    return n;
}

/* Step 4: r (a free run on no list, its first and last pages mapped)
 * absorbs its free neighbours of the same kind, then goes on its list. */
static void run_merge_insert(sc_heap *h, sc_span *r)
{
    sc_span *prev = run_neighbour(h, r, r->page - 1);
    if (prev != NULL) {
        run_remove(h, prev);
        pagemap_set(h, prev->page + prev->npages - 1, NULL);
        pagemap_set(h, r->page, NULL);
        prev->npages += r->npages;
        fixalloc_put(&h->span_meta, r);
        r = prev;
        run_mark(h, r);
    }
    sc_span *next = run_neighbour(h, r, r->page + r->npages);
    if (next != NULL) {
        run_remove(h, next);
        pagemap_set(h, r->page + r->npages - 1, NULL);
        pagemap_set(h, next->page, NULL);
        r->npages += next->npages;
        fixalloc_put(&h->span_meta, next);
        run_mark(h, r);
    }
    run_insert(h, r);
}

/* ---- Arenas: memory from the OS ------------------------------------------ */

static void *os_map(sc_heap *h, size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    h->stats.mmaps++;
    return p == MAP_FAILED ? NULL : p;
}

static void os_unmap(sc_heap *h, void *p, size_t bytes)
{
    if (bytes == 0)
        return;
    h->stats.munmaps++;
    munmap(p, bytes); /* a failure leaves the range mapped: nothing lost */
}

/* Would the OS commit `bytes` to one mapping? Arenas are reserved with
 * MAP_NORESERVE, which the kernel's overcommit check lets through at any
 * size, so without this a request for more memory than the machine has
 * (malloc(1 << 40)) would succeed, after writing a page map per 64 MiB of
 * it, where glibc's own mmap of the block fails with ENOMEM. A mapping
 * without MAP_NORESERVE, unmapped at once, asks the kernel's check: two
 * system calls per growth of more than one arena, which only a request of
 * over 64 MiB causes. Keeps errno. */
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

/*
 * Step 2: maps enough arenas for a run of npages, in one reservation
 * aligned to 64 MiB (mapped 64 MiB too big, then trimmed), with a page map
 * for each, and puts them on the page heap as one released run. The arena
 * index (32 MiB of address space, touched only where arenas are) is mapped
 * with the first arena. False when the OS refuses, or would not commit a
 * run that needs more than one arena; nothing is left behind.
 */
static bool arena_grow(sc_heap *h, size_t npages)
{
    size_t narenas = (npages + SC_ARENA_PAGES - 1) / SC_ARENA_PAGES;
    if (narenas > ((size_t)1 << SC_INDEX_BITS) / 2)
        return false;
    if (narenas > 1 && !os_would_commit(npages * SC_PAGE))
        return false;
    if (h->index == NULL) {
        if ((h->index = os_map(h, INDEX_BYTES)) == NULL)
            return false;
        h->index_len = (size_t)1 << SC_INDEX_BITS;
    }
    sc_span *run = fixalloc_get(h, &h->span_meta);
    if (run == NULL)
        return false;
    size_t bytes = narenas * SC_ARENA;
    char *m = os_map(h, bytes + SC_ARENA);
    if (m == NULL) {
        fixalloc_put(&h->span_meta, run);
        return false;
    }
    char *start = (char *)(((uintptr_t)m + SC_ARENA - 1) & ~(SC_ARENA - 1));
    os_unmap(h, m, (size_t)(start - m));
    os_unmap(h, start + bytes,
             (size_t)(m + bytes + SC_ARENA - (start + bytes)));
    size_t i;
    for (i = 0; i < narenas; i++) {
        sc_arena *a = os_map(h, SC_ARENA_META);
        if (a == NULL)
            break;
        a->page = page_of(start + i * SC_ARENA);
        a->map_page = page_of(start);
        a->map_pages = narenas * SC_ARENA_PAGES;
        a->next = h->arenas;
        h->arenas = a;
        h->index[(uintptr_t)(start + i * SC_ARENA) >> SC_ARENA_SHIFT] = a;
    }
    if (i < narenas) { /* undo: the page maps made, then the reservation */
        for (size_t k = 0; k < i; k++) {
            sc_arena *a = h->arenas;
            h->arenas = a->next;
            h->index[a->page >> (SC_ARENA_SHIFT - SC_PAGE_SHIFT)] = NULL;
            os_unmap(h, a, SC_ARENA_META);
        }
        os_unmap(h, start, bytes);
        fixalloc_put(&h->span_meta, run);
        return false;
    }
    h->stats.arenas += narenas;
    h->stats.reserved += bytes;
    h->stats.released_pages += narenas * SC_ARENA_PAGES;
    run->page = page_of(start);
    run->npages = narenas * SC_ARENA_PAGES;
    run->state = SC_SPAN_FREE;
    run->released = true;
    run_mark(h, run);
    run_insert(h, run);
    footprint_update(h);
    return true;
}

/* ---- Taking and giving back runs ----------------------------------------- */

/* Pages that become a span's: the arenas remember how far they have been
 * used (each span is made no-access to the tools when it is made, and
 * sc_destroy leaves no poison behind up to that mark). */
static void mark_touched(sc_heap *h, uintptr_t first, size_t n)
{
    for (uintptr_t end = first + n; first < end;) {
        sc_arena *a = arena_of(h, first);
        size_t upto = end - a->page;
        if (upto > SC_ARENA_PAGES)
            upto = SC_ARENA_PAGES;
        if (upto > a->touched)
            a->touched = upto;
        first = a->page + SC_ARENA_PAGES;
    }
}

/* Splits free run r (on no list) after its first n pages: r keeps them,
 * `rest` (a fresh struct) the others, of the same kind; both marked. */
static void run_split(sc_heap *h, sc_span *r, size_t n, sc_span *rest)
{
    rest->page = r->page + n;
    rest->npages = r->npages - n;
    rest->state = SC_SPAN_FREE;
    rest->released = r->released;
    r->npages = n;
    run_mark(h, rest);
    run_mark(h, r);
}

sc_span *pageheap_alloc(sc_heap *h, size_t npages, size_t align_pages)
{
    size_t want = npages + align_pages - 1; /* room for any misalignment */
    if (want < npages)
        return NULL;
    /* The structs a split may need, first: then nothing can fail later. */
    sc_span *front = fixalloc_get(h, &h->span_meta);
    sc_span *tail = front ? fixalloc_get(h, &h->span_meta) : NULL;
    if (tail == NULL) {
        if (front != NULL)
            fixalloc_put(&h->span_meta, front);
        return NULL;
    }
    sc_span *r = run_find(h, want);
    if (r == NULL && arena_grow(h, want))
        r = run_find(h, want);
    if (r == NULL) {
        fixalloc_put(&h->span_meta, front);
        fixalloc_put(&h->span_meta, tail);
        return NULL;
    }
    /* Step 3: the pages before the aligned start stay free... */
    run_remove(h, r);
    uintptr_t start = (r->page + align_pages - 1) / align_pages * align_pages;
    if (start > r->page) {
        run_split(h, r, start - r->page, front);
        run_insert(h, r); /* the front, free */
        r = front;
        front = NULL;
    }
    /* ...and so do the pages after the span. (Neither piece can merge with
     * anything: r was a whole run, merged with its neighbours already.) */
    if (r->npages > npages) {
        run_split(h, r, npages, tail);
        run_insert(h, tail);
        tail = NULL;
    }
    if (front != NULL)
        fixalloc_put(&h->span_meta, front);
    if (tail != NULL)
        fixalloc_put(&h->span_meta, tail);
    /* r is the span: every page maps to it. */
    pagemap_fill(h, r->page, npages, r);
    mark_touched(h, r->page, npages);
    if (r->released)
        h->stats.released_pages -= npages;
    else
        h->stats.free_pages -= npages;
    h->stats.span_pages += npages;
    r->zero_pass = r->released;
    r->released = false;
    r->next = r->prev = NULL;
    footprint_update(h);
    return r;
}

void pageheap_free(sc_heap *h, sc_span *s)
{
    /* The pages between the first and the last are no longer looked up. */
    if (s->npages > 2)
        pagemap_fill(h, s->page + 1, s->npages - 2, NULL);
    h->stats.span_pages -= s->npages;
    h->stats.free_pages += s->npages;
    s->state = SC_SPAN_FREE;
    s->cls = 0;
    s->released = false;
    s->zero_pass = false;
    s->requests = NULL;
    s->next = s->prev = NULL;
    run_mark(h, s); /* (a shrunk block's tail still maps to the block) */
    run_merge_insert(h, s);
    footprint_update(h);
    if (h->stats.free_pages * SC_PAGE > h->retain)
        pageheap_release(h, h->retain);
}

bool pageheap_extend(sc_heap *h, sc_span *s, size_t npages)
{
    size_t extra = npages - s->npages;
    uintptr_t end = s->page + s->npages;
    const sc_arena *mine = arena_of(h, s->page), *theirs = arena_of(h, end);
    if (theirs == NULL || theirs->map_page != mine->map_page)
        return false;
    sc_span *next = pagemap_get(h, end);
    if (next == NULL || next->state != SC_SPAN_FREE || next->npages < extra)
        return false;
    run_remove(h, next);
    if (next->released)
        h->stats.released_pages -= extra;
    else
        h->stats.free_pages -= extra;
    if (next->npages == extra) {
        fixalloc_put(&h->span_meta, next);
    } else {
        next->page += extra;
        next->npages -= extra;
        run_mark(h, next);
        run_insert(h, next);
    }
    pagemap_fill(h, end, extra, s);
    mark_touched(h, end, extra);
    s->npages = npages;
    h->stats.span_pages += extra;
    footprint_update(h);
    return true;
}

bool pageheap_shrink(sc_heap *h, sc_span *s, size_t npages)
{
    sc_span *tail = fixalloc_get(h, &h->span_meta);
    if (tail == NULL)
        return false;
    tail->page = s->page + npages;
    tail->npages = s->npages - npages;
    tail->state = SC_SPAN_LARGE; /* in use until pageheap_free takes it */
    s->npages = npages;
    pageheap_free(h, tail); /* which counts the tail's pages as free */
    return true;
}

/* ---- Step 5: the release policy ------------------------------------------ */

size_t pageheap_release(sc_heap *h, size_t keep)
{
    int saved = errno;
    size_t done = 0;
    while (h->stats.free_pages * SC_PAGE > keep) {
        sc_span *r = run_largest_resident(h);
        if (r == NULL)
            break;
        h->stats.madvises++;
        if (madvise(span_base(r), span_bytes(r), MADV_DONTNEED) != 0)
            break; /* stays resident; the next free tries again */
        run_remove(h, r);
        r->released = true;
        h->stats.free_pages -= r->npages;
        h->stats.released_pages += r->npages;
        done += span_bytes(r);
        run_merge_insert(h, r);
    }
    footprint_update(h);
    errno = saved;
    return done;
}

/* ---- The metadata allocator (Go's fixalloc) ------------------------------ */

void fixalloc_init(sc_fixalloc *f, size_t size)
{
    memset(f, 0, sizeof *f);
    f->size = (size + 15) & ~(size_t)15;
}

void *fixalloc_get(sc_heap *h, sc_fixalloc *f)
{
    void *p = f->free;
    if (p != NULL) {
        memcpy(&f->free, p, sizeof f->free);
    } else {
        if (f->left < f->size) {
            char *chunk = os_map(h, SC_FIX_CHUNK);
            if (chunk == NULL)
                return NULL;
            memcpy(chunk, &f->chunks, sizeof f->chunks);
            f->chunks = chunk;
            f->bump = chunk + 16;
            f->left = SC_FIX_CHUNK - 16;
            f->mapped += SC_FIX_CHUNK;
        }
        p = f->bump;
        f->bump += f->size;
        f->left -= f->size;
        footprint_update(h); /* a page of the chunk may be written now */
    }
    memset(p, 0, f->size);
    f->in_use++;
    return p;
}

void fixalloc_put(sc_fixalloc *f, void *p)
{
    memcpy(p, &f->free, sizeof f->free);
    f->free = p;
    f->in_use--;
}

static void fixalloc_destroy(sc_heap *h, sc_fixalloc *f)
{
    while (f->chunks != NULL) {
        void *chunk = f->chunks;
        memcpy(&f->chunks, chunk, sizeof f->chunks);
        os_unmap(h, chunk, SC_FIX_CHUNK);
    }
}

/* ---- The end ------------------------------------------------------------- */

void pageheap_destroy(sc_heap *h)
{
    int saved = errno;
    while (h->arenas != NULL) {
        sc_arena *a = h->arenas;
        h->arenas = a->next;
        /* Leave no poison behind for ASan at these addresses. */
        track_mem_undefined(page_addr(a->page), a->touched * SC_PAGE);
        if (a->page == a->map_page)
            os_unmap(h, page_addr(a->page), a->map_pages * SC_PAGE);
        os_unmap(h, a, SC_ARENA_META);
    }
    if (h->index != NULL)
        os_unmap(h, h->index, INDEX_BYTES);
    h->index = NULL;
    h->index_len = 0;
    fixalloc_destroy(h, &h->span_meta);
    fixalloc_destroy(h, &h->request_meta);
    errno = saved;
}
