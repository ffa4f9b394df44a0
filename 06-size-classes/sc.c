/*
 * sc.c: a size-class allocator. Every small request (up to 32 KiB) is
 * rounded up to one of 67 size classes, and the objects of one class live
 * together in a span: a run of whole 8 KiB pages cut into equal slots, with
 * one bit per slot saying whether it is taken. A slot has no header, and a
 * span holds one size only, so there is nothing to search for and nothing
 * to coalesce: no external fragmentation inside a span, at the price of the
 * rounding (internal fragmentation, bounded by the table). Spans come from
 * a page heap that hands out runs of pages and merges them back; memory
 * comes in 64 MiB arenas; a page map finds the span of any pointer in two
 * loads. This is the design of the Go runtime's allocator (and of TCMalloc,
 * its ancestor) without the per-thread caches, which stage 07 adds.
 *
 * Allocating n bytes (sc_alloc; steps 5 and 6 are the slow path):
 *   1. Class: n <= 1016: size_to_class8[(n + 7) / 8]; n <= 32768:
 *      size_to_class128[(n + 127 - 1024) / 128]; above, step 7. The two
 *      tables, like the class list, are sc_gen.c's output.
 *   2. Span: the head of the class's partial list, a span with a free slot.
 *   3. Slot: the span's alloc_cache holds the complement of its alloc_bits
 *      from freeindex on, so the next free slot is freeindex + ctz(cache):
 *      one count-trailing-zeros, as Go's nextFreeFast.
 *   4. Take it: set its bit, freeindex = slot + 1, shift the cache. A span
 *      that is now full leaves the partial list. The block is
 *      base + slot * size.
 *   5. An empty cache is refilled from the next 64 bits of alloc_bits; at
 *      the end of the bitmap the search starts again from slot 0: a rescan,
 *      which finds the slots freed behind freeindex (see "Freed slots").
 *   6. No span with a free slot: a new span of the class's page count from
 *      the page heap (pageheap.c), which maps a new arena when no free run
 *      is big enough.
 *   7. Large (over 32 KiB): whole pages straight from the page heap, a span
 *      of its own.
 *
 * Freeing p (sc_free):
 *   1. Span: the page map, index[p >> 26]->spans[(p >> 13) & 8191]. A
 *      pointer in no span in use is reported.
 *   2. Slot: i = ((p - base) * div_mul) >> 32, a multiplication instead of
 *      a division; unless i * size == p - base and i < nelems, p is not the
 *      start of a block: reported. A clear bit is a double free: reported.
 *   3. Clear the bit. A span that was full goes back on its class's partial
 *      list (at the tail, so that the head's scan goes on undisturbed); a
 *      span that is now empty goes back to the page heap, unless it is
 *      one page and its class's only span with room (then it is kept, so
 *      that a loop of one malloc and one free does not make and unmake a
 *      span each time).
 *   4. The page heap merges the freed run with its free neighbours and
 *      applies the release policy: resident free pages beyond `retain`
 *      (4 MiB) go back to the OS with madvise(MADV_DONTNEED), largest run
 *      first. A large block goes straight to this step.
 *
 * Freed slots. Go never frees one object: after a collection its sweeper
 * makes each span's mark bits the new alloc bits in one swap, and
 * freeindex starts again from 0. C frees one object at a time, so here
 * free clears the slot's bit, and the slot is found again by the rescan of
 * step 5, when freeindex has reached the end: a sweep, done lazily, one
 * span at a time. The cache never lies: a set bit is a free slot (it was
 * free when the cache was loaded, and only this span's takes consume it);
 * a slot freed after the load is simply not in it until the next load.
 * The cost: a free touches one word; a freed slot waits until the slots
 * ahead of freeindex are used up, and a rescan reads at most 16 words.
 *
 * Costs (release builds): a small alloc is O(1) with no search, a few
 * loads, a ctz and a store; a free is O(1), two loads of the page map and
 * a multiplication. A new span is O(1) from a free run of under 128 pages
 * (a bitmap of the non-empty lists), O(free runs of 128 pages or more)
 * otherwise, plus O(pages) to fill in its page map entries; a new arena is
 * an mmap. Memory: a small block is its slot and one bit, nothing else;
 * each span costs its tail and its 208-byte struct; the page map 8 bytes
 * a page (0.1%); the arena index 32 MiB of reserved address space, of
 * which only the pages it uses are ever touched.
 *
 * Left out on purpose, and the stage that adds it:
 *   - threads: a heap belongs to one thread at a time; libmalloc.so
 *     (malloc_shim.c) puts one lock around it. Stage 07 gives every thread
 *     a cache of spans (mcache, no lock), one list per class behind a lock
 *     of its own (mcentral), and the page heap behind one lock (mheap);
 *   - the tiny allocator (several requests under 16 bytes in one 16-byte
 *     block) and a scavenger that returns free pages in the background,
 *     oldest first (stage 07); here pages go back when a free pushes the
 *     resident free pages above `retain`.
 *
 * Where the ideas come from: the Go runtime (malloc.go's overview,
 * mheap.go's spans and arena index, mbitmap.go's allocCache and
 * nextFreeFast, mksizeclasses.go's table), TCMalloc (its page heap of free
 * lists by run length, neighbours merged through the page map, and an
 * explicit free), Bonwick's slab allocator (1994; stage 03's one-page
 * slabs are the span's ancestor), and Lemire, Kaser and Kurz (2019) for
 * the division by multiplication.
 *
 * Files: sc.h is the API and the structures; this file the classes, the
 * spans, the request and free paths, large blocks, realloc; pageheap.c the
 * page heap, the arenas and the page map, the release policy and the
 * metadata allocator; sc_internal.h what they share; sc_check.c the
 * checker, the dump and the waste report, which only read; sc_gen.c the
 * generator of the class table.
 */
#include "sc_internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

// clang-format off
/*
 * ---- Layout -----------------------------------------------------------------
 *
 * Memory comes in arenas of 64 MiB, 64 MiB-aligned, found through the
 * arena index; each arena's page map (outside the arena) says which span
 * every one of its 8192 pages belongs to:
 *
 * <diagram page-map>
 * index[p >> 26]        2^22 entries (48-bit addresses / 64 MiB); NULL:
 *       |               not an arena of this heap
 *       v
 * sc_arena.spans[(p >> 13) & 8191], one entry per 8 KiB page:
 *       [ A ][ A ][ B ][ C ][ - ][ - ][ C ][ D ][ D ][ D ][ D ][ D ] ...
 *
 * the arena's pages:
 *       [ A: 2 pages ][ B  ][ C: free run, 4 pages ][ D: large, 5 pages     ]
 *        class 35      class 5                       one block of 40000 B
 *        11 x 1408 B   170 x 48 B
 *
 * a span in use: every page maps to it; a free run: its first and last
 * pages map to it, the pages between are NULL ("-")
 * </diagram>
 *
 * A small span, its struct (Go's mspan: outside the pages, in metadata of
 * the allocator's own) and its page:
 *
 * <diagram span>
 * sc_span                              the page (8192 bytes)
 *   page, npages 1, class 5            [ s0 ][ s1 ][ s2 ][ s3 ] .. [s169][tail]
 *   elemsize 48, nelems 170,             48 B each, no header,       32 B
 *   divmul = 2^32 / 48 + 1               slot i at base + 48 * i
 *   alloc_bits   1 1 0 1 0 0 0 ...     (1: taken)
 *   freeindex    2                     the search goes on from slot 2
 *   alloc_cache  ...11111101           bit j: slot 2 + j is free
 *   alloc_count  3
 *   next, prev   the class's partial list
 * </diagram>
 *
 * A large block is a span of its own (class 0, one slot: the whole pages);
 * a free run is a span too, on one of the page heap's lists (pageheap.c).
 */
// clang-format on

// clang-format off
/*
 * ---- State ------------------------------------------------------------------
 *
 * The heap is an sc_heap (sc.h: public, every field commented there): one
 * partial list per class, the page heap's lists and their bitmaps, the
 * arena index, the arenas, two fixallocs for the metadata, the release
 * threshold, the counters and (checked builds) the quarantine.
 *
 * Invariants (sc_check() verifies each; the tests call it after every
 * operation of their random runs):
 *   arenas:      each is 64 MiB-aligned, in the index at its address >> 26;
 *                a mapping of k arenas is covered exactly by its spans and
 *                free runs, side by side, none crossing out of it
 *   page map:    a span in use maps all its pages to itself; a free run its
 *                first and last page; the pages between are NULL
 *   small span:  npages, nelems, elemsize, divmul are its class's;
 *                alloc_count == popcount(alloc_bits); no bit at or beyond
 *                nelems; freeindex <= nelems; every bit of alloc_cache is a
 *                free slot at or after freeindex, in freeindex's 64-slot
 *                word; on its class's partial list <=> alloc_count < nelems;
 *                at most one span per class on it is empty, and it is
 *                one page
 *   large span:  nelems 1, alloc_count 1, bit 0 set, on no list
 *   free run:    on runs[released][run_list_of(npages)], and that list's
 *                run_map bit set (and clear for every empty list); no two
 *                free runs of the same kind (resident or released) touch
 *                inside one mapping: merging is complete
 *   counters:    span_pages, free_pages, released_pages, free_runs,
 *                small_spans, large_spans are what the walk counts;
 *                footprint == (span_pages + free_pages) * 8 KiB + metadata;
 *                peak_footprint >= footprint
 *   quarantine:  checked builds: its entries are exactly the blocks marked
 *                SC_REQ_QUARANTINED (their bits still set); empty otherwise
 */
// clang-format on

/* The table sc_gen.c computed: here, once, from its initialiser lists. */
const uint16_t sc_size_of_class[SC_NCLASSES] = SC_CLASS_SIZE_INIT;
const uint8_t sc_pages_of_class[SC_NCLASSES] = SC_CLASS_PAGES_INIT;
const uint16_t sc_objects_of_class[SC_NCLASSES] = SC_CLASS_OBJECTS_INIT;
const uint32_t sc_divmul_of_class[SC_NCLASSES] = SC_CLASS_DIVMUL_INIT;
const uint8_t sc_size_to_class8[SC_N_TO_CLASS8] = SC_SIZE_TO_CLASS8_INIT;
const uint8_t sc_size_to_class128[SC_N_TO_CLASS128] = SC_SIZE_TO_CLASS128_INIT;

/* The slow paths stay out of line, so that the fast paths around them need
 * no stack frame: a few instructions fewer on every call. */
#if defined(__GNUC__)
#define SC_NOINLINE __attribute__((noinline))
#else
#define SC_NOINLINE
#endif

/* The steps, in the order this file shows them. */
static void *alloc_slow(sc_heap *h, size_t size);
static size_t span_take(sc_heap *h, sc_span *s);
static sc_span *class_grow(sc_heap *h, unsigned cls);
static uint64_t span_refill(sc_heap *h, sc_span *s);
static void *alloc_done(sc_heap *h, sc_span *s, size_t slot, size_t size);
static void *large_alloc(sc_heap *h, size_t size, size_t align_pages);
static void free_slow(sc_heap *h, void *p);
static sc_span *block_span(const sc_heap *h, const void *p, const char *fn);
static bool slot_lookup(const sc_span *s, const void *p, size_t *slot);
static size_t slot_index(const sc_span *s, const void *p, const char *fn);
static void slot_clear(sc_span *s, size_t slot);
static bool block_quarantined(const sc_span *s, size_t slot);
static void free_checked(sc_heap *h, sc_span *s, size_t slot, void *p);
static void slot_release(sc_heap *h, sc_span *s, size_t slot);
static void span_emptied(sc_heap *h, sc_span *s);
static void large_release(sc_heap *h, sc_span *s);
static void partial_push_back(sc_heap *h, sc_span *s);
static void partial_remove(sc_heap *h, sc_span *s);
static size_t block_request(const sc_span *s, size_t slot);
static void *enomem(void);

/* ---- Step 1: the size class ---------------------------------------------- */

/* Two lookups in sc_gen.c's tables; a request of 0 is entry 0, served as a
 * 1-byte request. (n + 127 - 1024) cannot wrap: n > 1016 here. */
static inline unsigned class_of(size_t n)
{
    return n <= 1016 ? sc_size_to_class8[(n + 7) >> 3]
                     : sc_size_to_class128[(n + 127 - 1024) >> 7];
}

/* ---- Steps 2 to 5: the fast path ----------------------------------------- */

/*
 * Step 4 on span s, whose cache (non-zero) names its next free slot: the
 * cache's bit 0 is slot freeindex, so ctz gives the slot at once. The
 * shift in two steps, because a shift by 64 (bit 63 taken) is undefined.
 */
static inline size_t span_take_cached(sc_span *s, uint64_t cache)
{
    unsigned bit = (unsigned)__builtin_ctzll(cache);
    size_t slot = s->freeindex + bit;
    s->alloc_cache = (cache >> bit) >> 1;
    s->freeindex = (uint16_t)(slot + 1);
    s->alloc_bits[slot >> 6] |= (uint64_t)1 << (slot & 63);
    s->alloc_count++;
    return slot;
}

/*
 * Steps 1 to 4 when nothing else is needed: the class's head span has a
 * loaded cache. Everything else (no span yet, an empty cache, a large
 * request) is alloc_slow's, called in tail position: so in a release build
 * this function calls nothing, needs no stack frame and saves no register,
 * about 30 instructions. A checked build records the request (alloc_done).
 */
void *sc_alloc(sc_heap *h, size_t size)
{
    if (size <= SC_MAX_SMALL) {
        sc_span *s = h->partial[class_of(size)];
        if (s != NULL && s->alloc_cache != 0) {
            size_t slot = span_take_cached(s, s->alloc_cache);
            if (s->alloc_count == s->nelems)
                partial_remove(h, s); /* full: the next span is the head */
            if (SC_CHECKED)
                return alloc_done(h, s, slot, size);
            return span_base(s) + slot * s->elemsize;
        }
    }
    return alloc_slow(h, size);
}

/* Steps 2 to 6 in full: a new span if the class has none with room, a
 * refill of an empty cache, a full span off its list. */
static SC_NOINLINE void *alloc_slow(sc_heap *h, size_t size)
{
    if (size > SC_MAX_SMALL)
        return large_alloc(h, size, 1);
    unsigned cls = class_of(size);
    sc_span *s = h->partial[cls];
    if (s == NULL && (s = class_grow(h, cls)) == NULL)
        return enomem();
    size_t slot = span_take(h, s);
    if (SC_CHECKED)
        return alloc_done(h, s, slot, size);
    return span_base(s) + slot * s->elemsize;
}

/* Step 4 on a span with room, from the slow path: the cache refilled if it
 * is empty, and a span that becomes full taken off its class's list (the
 * next span becomes the head). */
static size_t span_take(sc_heap *h, sc_span *s)
{
    uint64_t cache = s->alloc_cache;
    if (cache == 0)
        cache = span_refill(h, s);
    size_t slot = span_take_cached(s, cache);
    if (s->alloc_count == s->nelems)
        partial_remove(h, s);
    return slot;
}

/* ---- Step 5: refilling the cache, and the rescan ------------------------- */

/*
 * The cache is empty: every slot from freeindex to the end of its 64-slot
 * word was taken when the cache was loaded. Loads the next word of the
 * bitmap with a free slot, and when the bitmap ends starts again from slot
 * 0: the rescan that finds slots freed behind freeindex. Ends, because the
 * span has a free slot (alloc_count < nelems). Sets freeindex to the first
 * slot of the word it returns the free bits of.
 */
static SC_NOINLINE uint64_t span_refill(sc_heap *h, sc_span *s)
{
    size_t i = ((size_t)s->freeindex + 63) & ~(size_t)63;
    for (unsigned wraps = 0;;) {
        if (i >= s->nelems) {
            /* Twice round: alloc_count promised a free slot, the bitmap has
             * none. A broken span; stop rather than loop for ever. */
            if (++wraps == 2)
                alloc_fatal(STAGE, "sc_alloc", span_base(s),
                            "internal: a span on its class's list has no "
                            "free slot (alloc_count and alloc_bits disagree)");
            i = 0;
            s->zero_pass = false; /* slots from here on may have been used */
            h->stats.rescans++;
        }
        uint64_t free_bits = ~s->alloc_bits[i / 64] & slots_mask(s, i);
        if (free_bits != 0) {
            s->freeindex = (uint16_t)i;
            return free_bits;
        }
        i += 64;
    }
}

/* ---- Step 6: a new span for a class -------------------------------------- */

/* A span of the class's page count, cut into its slots, pushed on the
 * class's (empty) partial list. NULL when the page heap has no memory. */
static SC_NOINLINE sc_span *class_grow(sc_heap *h, unsigned cls)
{
    uint16_t *requests = NULL;
    if (SC_CHECKED && (requests = fixalloc_get(h, &h->request_meta)) == NULL)
        return NULL;
    sc_span *s = pageheap_alloc(h, sc_pages_of_class[cls], 1);
    if (s == NULL) {
        if (requests != NULL)
            fixalloc_put(&h->request_meta, requests);
        return NULL;
    }
    s->state = SC_SPAN_SMALL;
    s->cls = (uint8_t)cls;
    s->nelems = sc_objects_of_class[cls];
    s->elemsize = sc_size_of_class[cls];
    s->divmul = sc_divmul_of_class[cls];
    s->alloc_count = 0;
    s->freeindex = 0;
    s->alloc_cache = 0; /* the first take loads word 0 */
    memset(s->alloc_bits, 0, sizeof s->alloc_bits);
    s->requests = requests;
    /* Nothing in the span is a block yet: no-access to the tools. */
    track_mem_noaccess(span_base(s), span_bytes(s));
    h->stats.small_spans++;
    partial_push_back(h, s);
    return s;
}

/* Checked builds: the rest of sc_alloc, the request recorded (the tools and
 * the waste report need it), fill bytes, then the tools told: the last
 * thing alloc does. */
static void *alloc_done(sc_heap *h, sc_span *s, size_t slot, size_t size)
{
    (void)h;
    char *p = span_base(s) + slot * s->elemsize;
    s->requests[slot] = (uint16_t)size;
    track_fill_fresh(p, size); /* (off when a tool watches) */
    track_malloc(p, size, 0, 0);
    return p;
}

/* ---- Step 7: large blocks ------------------------------------------------ */

/* size bytes (over 32 KiB, or an alignment no class gives) as a span of its
 * own, its first page a multiple of align_pages. */
static SC_NOINLINE void *large_alloc(sc_heap *h, size_t size,
                                     size_t align_pages)
{
    if (size > SC_MAX_REQUEST)
        return enomem();
    size_t npages = (size + SC_PAGE - 1) >> SC_PAGE_SHIFT;
    if (npages == 0)
        npages = 1; /* an aligned request of 0 bytes */
    sc_span *s = pageheap_alloc(h, npages, align_pages);
    if (s == NULL)
        return enomem();
    s->state = SC_SPAN_LARGE;
    s->cls = 0;
    s->nelems = 1;
    s->alloc_count = 1;
    s->elemsize = 0;
    memset(s->alloc_bits, 0, sizeof s->alloc_bits);
    s->alloc_bits[0] = 1;
    s->large_request = size;
    h->stats.large_spans++;
    char *p = span_base(s);
    track_mem_noaccess(p, span_bytes(s));
    track_fill_fresh(p, size > 65536 ? 65536 : size);
    track_malloc(p, size, 0, 0);
    return p;
}

/* ---- Freeing ------------------------------------------------------------- */

/*
 * Steps 1 to 3 when nothing else is needed: a small block of a span that
 * is not about to be empty (no pages to give back). The same checks as
 * free_slow, which takes every other case and reports misuse: a pointer
 * that fails any test here goes there, called in tail position, so that
 * this function calls nothing and needs no stack frame either. NULL goes
 * there too (index[0] is no arena: nothing is mapped at address 0).
 * errno: only the page heap can reach the OS, and it keeps errno.
 */
void sc_free(sc_heap *h, void *p)
{
    if (!SC_CHECKED) {
        uintptr_t a = (uintptr_t)p >> SC_ARENA_SHIFT;
        const sc_arena *ar = a < h->index_len ? h->index[a] : NULL;
        sc_span *s = ar ? ar->spans[page_of(p) & (SC_ARENA_PAGES - 1)] : NULL;
        size_t slot;
        if (s != NULL && s->state == SC_SPAN_SMALL && s->alloc_count > 1 &&
            slot_lookup(s, p, &slot) && slot_taken(s, slot)) {
            bool was_full = s->alloc_count == s->nelems;
            slot_clear(s, slot);
            if (was_full)
                partial_push_back(h, s);
            return;
        }
    }
    free_slow(h, p);
}

/* Steps 1 to 3 of the header in full for a small block, step 4 for a large
 * one, with the reports of misuse; checked builds always come here. */
static SC_NOINLINE void free_slow(sc_heap *h, void *p)
{
    if (p == NULL)
        return;
    sc_span *s = block_span(h, p, "sc_free");
    if (s->state == SC_SPAN_SMALL) {
        size_t slot = slot_index(s, p, "sc_free");
        if (!slot_taken(s, slot) || block_quarantined(s, slot))
            alloc_fatal(STAGE, "sc_free", p, "double free");
        if (SC_CHECKED)
            free_checked(h, s, slot, p);
        else
            slot_release(h, s, slot);
        return;
    }
    if (p != span_base(s))
        alloc_fatal(STAGE, "sc_free", p,
                    "not the start of a block (a pointer inside a large "
                    "block)");
    if (block_quarantined(s, 0))
        alloc_fatal(STAGE, "sc_free", p, "double free");
    if (SC_CHECKED)
        free_checked(h, s, 0, p);
    else
        large_release(h, s);
}

/*
 * Step 1: the span of p, through the page map. A pointer that no arena
 * holds, or that falls between the first and last page of a free run, has
 * no span; one on a free run's first or last page names a run not in use.
 */
static sc_span *block_span(const sc_heap *h, const void *p, const char *fn)
{
    sc_span *s = pagemap_get(h, page_of(p));
    if (s == NULL)
        alloc_fatal(STAGE, fn, p, "not a block of this heap (in no span)");
    if (s->state == SC_SPAN_FREE)
        alloc_fatal(STAGE, fn, p,
                    "not a block of this heap (in a free run of pages: a "
                    "large block freed twice, or never handed out)");
    return s;
}

/* Step 2: the slot that p starts, by multiplication: false when p is not
 * the first byte of a slot of s (inside one, or past the last). */
static inline bool slot_lookup(const sc_span *s, const void *p, size_t *slot)
{
    uintptr_t off = (uintptr_t)p - (uintptr_t)span_base(s);
    *slot = (size_t)(((uint64_t)off * s->divmul) >> 32);
    return *slot < s->nelems && *slot * s->elemsize == off;
}

/* The same, reported when it fails. */
static size_t slot_index(const sc_span *s, const void *p, const char *fn)
{
    size_t slot;
    if (!slot_lookup(s, p, &slot))
        alloc_fatal(STAGE, fn, p,
                    "not the start of a block (a pointer inside a slot, or "
                    "past the span's last one)");
    return slot;
}

/* Step 3's core: the slot's bit cleared, the span's count down. */
static inline void slot_clear(sc_span *s, size_t slot)
{
    s->alloc_bits[slot >> 6] &= ~((uint64_t)1 << (slot & 63));
    s->alloc_count--;
}

/* Step 3: the slot is free again. A span that was full gets room: back on
 * its class's list, at the tail; one that is empty may go back. */
static inline void slot_release(sc_heap *h, sc_span *s, size_t slot)
{
    bool was_full = s->alloc_count == s->nelems;
    slot_clear(s, slot);
    if (was_full)
        partial_push_back(h, s);
    if (s->alloc_count == 0)
        span_emptied(h, s);
}

/* An empty span: kept when it is one page and the only span of its class
 * with room (a loop of one malloc and one free then costs no page heap
 * call), its search starting again from slot 0; otherwise its pages go back
 * (step 4). Only one page: a block that passes through many classes (a
 * realloc that grows) would otherwise leave an empty span of up to 10
 * pages in each, 1.2 MB on the realloc-grow trace. */
static SC_NOINLINE void span_emptied(sc_heap *h, sc_span *s)
{
    if (s->npages == 1 && h->partial[s->cls] == s && s->next == s) {
        s->freeindex = 0;
        s->alloc_cache = 0;
        s->zero_pass = false;
        return;
    }
    partial_remove(h, s);
    if (s->requests != NULL)
        fixalloc_put(&h->request_meta, s->requests);
    s->requests = NULL;
    h->stats.small_spans--;
    pageheap_free(h, s);
}

/* Step 4 for a large block: its pages go back to the page heap. */
static SC_NOINLINE void large_release(sc_heap *h, sc_span *s)
{
    h->stats.large_spans--;
    pageheap_free(h, s);
}

/* ---- The partial lists: a circular list per class ------------------------ */

/* Circular and doubly linked, so that a span can leave from anywhere (it
 * became full, or empty) in O(1), and join at the tail in O(1). next ==
 * NULL: on no list. */
static void partial_push_back(sc_heap *h, sc_span *s)
{
    sc_span *head = h->partial[s->cls];
    if (head == NULL) {
        s->next = s->prev = s;
        h->partial[s->cls] = s;
        return;
    }
    s->prev = head->prev;
    s->next = head;
    head->prev->next = s;
    head->prev = s;
}

static void partial_remove(sc_heap *h, sc_span *s)
{
    if (s->next == s) {
        h->partial[s->cls] = NULL;
    } else {
        s->prev->next = s->next;
        s->next->prev = s->prev;
        if (h->partial[s->cls] == s)
            h->partial[s->cls] = s->next;
    }
    s->next = s->prev = NULL;
}

/* ---- Checked builds: the tools, the fill bytes, the quarantine ----------- */

/* The block's request, as recorded (checked builds), or what it can hold. */
static size_t block_request(const sc_span *s, size_t slot)
{
    if (s->state == SC_SPAN_LARGE)
        return SC_CHECKED ? s->large_request : span_bytes(s);
    return SC_CHECKED ? s->requests[slot] : s->elemsize;
}

/* Checked builds: is the block waiting in the quarantine? */
static bool block_quarantined(const sc_span *s, size_t slot)
{
    if (!SC_CHECKED)
        return false;
    return s->state == SC_SPAN_LARGE ? s->large_request == SIZE_MAX
                                     : s->requests[slot] == SC_REQ_QUARANTINED;
}

/* Marks a block as waiting in the quarantine. */
static void block_mark_quarantined(sc_span *s, size_t slot)
{
    if (s->state == SC_SPAN_LARGE)
        s->large_request = SIZE_MAX;
    else
        s->requests[slot] = SC_REQ_QUARANTINED;
}

/* Really frees the block at p (it waited in the quarantine). */
static void block_release(sc_heap *h, void *p)
{
    sc_span *s = pagemap_get(h, page_of(p));
    if (s->state == SC_SPAN_LARGE) {
        large_release(h, s);
        return;
    }
    size_t slot = slot_index(s, p, "sc_free");
    s->requests[slot] = 0;
    slot_release(h, s, slot);
}

/*
 * The tools are told first (track_free: before any byte of the block is
 * touched again), then the block is filled and parked in the quarantine,
 * a FIFO ring: the oldest block there is really freed to make room, so a
 * use after free meets a dead block for a while, not someone's new data.
 */
static void free_checked(sc_heap *h, sc_span *s, size_t slot, void *p)
{
    size_t request = block_request(s, slot);
    size_t usable = s->state == SC_SPAN_LARGE ? span_bytes(s) : s->elemsize;
    track_free(p, request, 0);
    track_fill_freed(p, usable > 65536 ? 65536 : usable);
    block_mark_quarantined(s, slot);
    if (h->q_count == SC_QUARANTINE) {
        void *oldest = h->quarantine[h->q_first];
        h->q_first = (h->q_first + 1) % SC_QUARANTINE;
        h->q_count--;
        block_release(h, oldest);
    }
    h->quarantine[(h->q_first + h->q_count) % SC_QUARANTINE] = p;
    h->q_count++;
}

void sc_quarantine_flush(sc_heap *h)
{
    int saved = errno;
    while (h->q_count > 0) {
        void *p = h->quarantine[h->q_first];
        h->q_first = (h->q_first + 1) % SC_QUARANTINE;
        h->q_count--;
        block_release(h, p);
    }
    h->q_first = 0;
    errno = saved;
}

/* ---- calloc, aligned blocks, realloc ------------------------------------- */

/* The product is tested before it is formed: nmemb * size wraps silently,
 * and a wrapped small size would hand out a short block. A block fresh
 * from zeroed pages (a span's first pass, a large block from released
 * pages) is not cleared again: that saves a page fault for each page of a
 * big calloc. Checked builds fill every block, so they always clear. */
void *sc_calloc(sc_heap *h, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        return enomem();
    size_t n = nmemb * size;
    void *p = sc_alloc(h, n);
    if (p == NULL)
        return NULL;
    if (!SC_CHECKED && pagemap_get(h, page_of(p))->zero_pass)
        return p;
    memset(p, 0, n);
    return p;
}

/* A class whose size is a multiple of the alignment puts every slot on it
 * (a span starts on a page); powers of two up to 8 KiB are all classes, so
 * one exists for any alignment up to a page and a size up to 32 KiB.
 * Beyond, a large block whose first page is a multiple of it. */
void *sc_aligned_alloc(sc_heap *h, size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (size > SC_MAX_REQUEST || align > SC_MAX_REQUEST)
        return enomem();
    size_t n = size < align ? align : size;
    if (n <= SC_MAX_SMALL && align <= SC_PAGE) {
        for (unsigned cls = class_of(n); cls < SC_NCLASSES; cls++) {
            if (sc_size_of_class[cls] % align != 0)
                continue;
            sc_span *s = h->partial[cls];
            if (s == NULL && (s = class_grow(h, cls)) == NULL)
                return enomem();
            size_t slot = span_take(h, s);
            if (SC_CHECKED)
                return alloc_done(h, s, slot, size);
            return span_base(s) + slot * s->elemsize;
        }
    }
    return large_alloc(h, size, align > SC_PAGE ? align / SC_PAGE : 1);
}

/* Large block s resized in place to `size` bytes: fewer pages give their
 * tail back, more take the free run right after it. False: it must move. */
static bool large_resize(sc_heap *h, sc_span *s, size_t size)
{
    size_t npages = (size + SC_PAGE - 1) >> SC_PAGE_SHIFT;
    if (npages < s->npages)
        return pageheap_shrink(h, s, npages);
    if (npages > s->npages) {
        size_t old_bytes = span_bytes(s);
        if (!pageheap_extend(h, s, npages))
            return false;
        /* The new pages were free (perhaps never touched): no-access until
         * track_resize opens the block's new bytes. */
        track_mem_noaccess(span_base(s) + old_bytes, span_bytes(s) - old_bytes);
    }
    return true;
}

/* In place when the new size keeps the block's class, or, for a large
 * block, stays large (its pages shrink, or grow into a free neighbour):
 * the caller's pointer stays valid and nothing is copied. Otherwise a
 * move: alloc, copy the smaller of the two sizes, free. */
void *sc_realloc(sc_heap *h, void *p, size_t size)
{
    if (p == NULL)
        return sc_alloc(h, size);
    if (size == 0) {
        sc_free(h, p);
        return NULL;
    }
    if (size > SC_MAX_REQUEST)
        return enomem();
    sc_span *s = block_span(h, p, "sc_realloc");
    size_t slot = 0;
    if (s->state == SC_SPAN_SMALL)
        slot = slot_index(s, p, "sc_realloc");
    else if (p != span_base(s))
        alloc_fatal(STAGE, "sc_realloc", p,
                    "not the start of a block (a pointer inside a large "
                    "block)");
    if (!slot_taken(s, slot) || block_quarantined(s, slot))
        alloc_fatal(STAGE, "sc_realloc", p, "realloc of a freed block");
    size_t old = block_request(s, slot);
    bool in_place = s->state == SC_SPAN_SMALL
                        ? size <= SC_MAX_SMALL && class_of(size) == s->cls
                        : size > SC_MAX_SMALL && large_resize(h, s, size);
    if (in_place) {
        if (s->state == SC_SPAN_LARGE)
            s->large_request = size;
        else if (SC_CHECKED)
            s->requests[slot] = (uint16_t)size;
        track_resize(p, old, size, 0);
        return p;
    }
    void *q = sc_alloc(h, size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    sc_free(h, p);
    return q;
}

/* ---- The rest of the API ------------------------------------------------- */

static void *enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

int sc_init(sc_heap *h)
{
    memset(h, 0, sizeof *h);
    fixalloc_init(&h->span_meta, sizeof(sc_span));
    fixalloc_init(&h->request_meta, SC_REQUESTS_BYTES);
    h->retain = SC_RETAIN_DEFAULT;
    return 0;
}

/* Every in-use span, for the walks below: calls fn on each, in address
 * order within each mapping. A sound heap's spans and runs tile each
 * mapping, so the walk steps from one to the next by its page count. */
static void walk_spans(const sc_heap *h, void (*fn)(const sc_span *, void *),
                       void *arg)
{
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next) {
        if (a->page != a->map_page)
            continue; /* the mapping is walked from its first arena */
        for (uintptr_t q = a->map_page; q < a->map_page + a->map_pages;) {
            const sc_span *s = pagemap_get(h, q);
            if (s == NULL || s->npages == 0)
                break; /* a broken heap: sc_check says where */
            if (s->state != SC_SPAN_FREE)
                fn(s, arg);
            q += s->npages;
        }
    }
}

/* Tells the tools that the blocks of s still live die with the heap. */
static void span_die(const sc_span *s, void *count)
{
    for (size_t i = 0; i < s->nelems; i++) {
        if (!slot_taken(s, i))
            continue;
        if (block_quarantined(s, i))
            continue; /* the tools were told at its free */
        track_free(span_base(s) + i * s->elemsize, block_request(s, i), 0);
        ++*(size_t *)count;
    }
}

size_t sc_destroy(sc_heap *h)
{
    int saved = errno;
    size_t live = 0;
    walk_spans(h, span_die, &live);
    pageheap_destroy(h);
    size_t retain = h->retain;
    sc_init(h);
    h->retain = retain;
    errno = saved;
    return live;
}

/* Live blocks and bytes, by walking: the fast paths keep no such count. */
static void span_count(const sc_span *s, void *stats)
{
    sc_stats_t *st = stats;
    for (size_t i = 0; i < s->nelems; i++) {
        if (!slot_taken(s, i))
            continue;
        if (block_quarantined(s, i))
            continue;
        st->live_blocks++;
        st->live_bytes +=
            s->state == SC_SPAN_LARGE ? span_bytes(s) : s->elemsize;
        st->requested += SC_CHECKED ? block_request(s, i) : 0;
    }
}

sc_stats_t sc_stats(const sc_heap *h)
{
    sc_stats_t st = h->stats;
    st.live_blocks = st.live_bytes = st.requested = 0;
    walk_spans(h, span_count, &st);
    return st;
}

size_t sc_footprint(const sc_heap *h)
{
    return h->stats.footprint;
}

size_t sc_usable_size(const sc_heap *h, const void *p)
{
    if (p == NULL)
        return 0;
    const sc_span *s = block_span(h, p, "sc_usable_size");
    size_t slot = 0;
    if (s->state == SC_SPAN_SMALL)
        slot = slot_index(s, p, "sc_usable_size");
    else if (p != span_base(s))
        alloc_fatal(STAGE, "sc_usable_size", p, "not the start of a block");
    if (!slot_taken(s, slot))
        alloc_fatal(STAGE, "sc_usable_size", p, "block already freed");
    if (TRACK_ENABLED)
        return block_request(s, slot);
    return s->state == SC_SPAN_LARGE ? span_bytes(s) : s->elemsize;
}

void sc_set_retain(sc_heap *h, size_t bytes)
{
    int saved = errno;
    h->retain = bytes;
    pageheap_release(h, bytes);
    errno = saved;
}

/* The empty spans that classes keep go back first, then every free page. */
size_t sc_release(sc_heap *h)
{
    int saved = errno;
    for (unsigned cls = 1; cls < SC_NCLASSES; cls++) {
        sc_span *s = h->partial[cls];
        if (s != NULL && s->alloc_count == 0) {
            partial_remove(h, s);
            if (s->requests != NULL)
                fixalloc_put(&h->request_meta, s->requests);
            s->requests = NULL;
            h->stats.small_spans--;
            pageheap_free(h, s);
        }
    }
    size_t done = pageheap_release(h, 0);
    errno = saved;
    return done;
}

unsigned sc_size_class(size_t size)
{
    return size > SC_MAX_SMALL ? 0 : class_of(size);
}

size_t sc_class_size(unsigned cls)
{
    return cls < SC_NCLASSES ? sc_size_of_class[cls] : 0;
}

size_t sc_class_pages(unsigned cls)
{
    return cls < SC_NCLASSES ? sc_pages_of_class[cls] : 0;
}

size_t sc_class_objects(unsigned cls)
{
    return cls < SC_NCLASSES ? sc_objects_of_class[cls] : 0;
}

uint32_t sc_class_divmul(unsigned cls)
{
    return cls < SC_NCLASSES ? sc_divmul_of_class[cls] : 0;
}

unsigned sc_nclasses(void)
{
    return SC_NCLASSES;
}
