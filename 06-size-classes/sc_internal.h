/*
 * sc_internal.h: what the allocator's three files share, and nothing a
 * caller needs (sc.h is the API): the class table that sc_gen.c computed,
 * the page map lookup, the few helpers on spans, and the page heap's calls
 * into pageheap.c. sc.c, pageheap.c and sc_check.c include it; the layout
 * it describes is drawn in sc.c.
 */
#ifndef SC_INTERNAL_H
#define SC_INTERNAL_H

#include "annotate.h"
#include "sc.h"
#include "sc_classes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAGE "06-size-classes"

/* A checked build is one compiled with -DALLOC_DEBUG (build/debug,
 * build/valgrind, build/asan, build/tsan): it records every request, keeps
 * a quarantine and fills blocks. An annotated build (a memory tool
 * watching) is always a checked one: the tools need the exact requests. */
#if defined(ALLOC_DEBUG) || TRACK_ENABLED
#define SC_CHECKED 1
#else
#define SC_CHECKED 0
#endif

_Static_assert(SC_NCLASSES == 68, "sc_gen.c computes Go's 67 classes");
_Static_assert(sizeof(((sc_heap *)0)->partial) / sizeof(sc_span *) ==
                   SC_NCLASSES,
               "one partial list per class");

#pragma GCC visibility push(hidden) /* (see sc.h) */

/* The table sc_gen.c computed (sc.c instantiates it). */
extern const uint16_t sc_size_of_class[SC_NCLASSES];
extern const uint8_t sc_pages_of_class[SC_NCLASSES];
extern const uint16_t sc_objects_of_class[SC_NCLASSES];
extern const uint32_t sc_divmul_of_class[SC_NCLASSES];
extern const uint8_t sc_size_to_class8[SC_N_TO_CLASS8];
extern const uint8_t sc_size_to_class128[SC_N_TO_CLASS128];

/* Bytes of a request array (checked builds): one uint16_t per slot. */
#define SC_REQUESTS_BYTES (SC_MAX_SLOTS * sizeof(uint16_t))

/* The metadata's mappings: fixalloc chunks, and one arena's page map. */
#define SC_FIX_CHUNK  ((size_t)64 << 10)
#define SC_OS_PAGE    ((size_t)4096)
#define SC_ARENA_META ((sizeof(sc_arena) + SC_OS_PAGE - 1) & ~(SC_OS_PAGE - 1))

static inline size_t os_pages_of(size_t bytes)
{
    return (bytes + SC_OS_PAGE - 1) & ~(SC_OS_PAGE - 1);
}

/*
 * The metadata's part of the footprint: the OS pages of its mappings that
 * have been written, since only those are resident. A fixalloc's chunks
 * are filled in order, so all but the newest are written through; an
 * arena's page map is written from its start up to the pages handed out
 * so far, and on its last page (the arena's first free run ends there).
 */
static inline size_t metadata_written(const sc_heap *h)
{
    size_t n = 0;
    const sc_fixalloc *f[2] = {&h->span_meta, &h->request_meta};
    for (size_t i = 0; i < 2; i++)
        if (f[i]->mapped != 0)
            n += f[i]->mapped - SC_FIX_CHUNK +
                 os_pages_of(SC_FIX_CHUNK - f[i]->left);
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next) {
        size_t m = os_pages_of(sizeof(sc_arena) - sizeof a->spans +
                               a->touched * sizeof a->spans[0]) +
                   SC_OS_PAGE;
        n += m < SC_ARENA_META ? m : SC_ARENA_META;
    }
    return n;
}

/* ---- Addresses and pages ------------------------------------------------- */

static inline uintptr_t page_of(const void *p)
{
    return (uintptr_t)p >> SC_PAGE_SHIFT;
}

static inline char *page_addr(uintptr_t page)
{
    return (char *)(page << SC_PAGE_SHIFT);
}

static inline char *span_base(const sc_span *s)
{
    return page_addr(s->page);
}

static inline size_t span_bytes(const sc_span *s)
{
    return s->npages << SC_PAGE_SHIFT;
}

/* ---- The page map (sc.c, diagram page-map) ------------------------------- */

/* The arena holding `page`, or NULL when it is in no arena of this heap. */
static inline sc_arena *arena_of(const sc_heap *h, uintptr_t page)
{
    uintptr_t i = page >> (SC_ARENA_SHIFT - SC_PAGE_SHIFT);
    return i < h->index_len ? h->index[i] : NULL;
}

/* The page map's entry for `page`, or NULL when the page is in no arena.
 * Two loads: index[p >> 26], then its spans[(p >> 13) & 8191]. */
static inline sc_span **pagemap_entry(const sc_heap *h, uintptr_t page)
{
    sc_arena *a = arena_of(h, page);
    return a == NULL ? NULL : &a->spans[page & (SC_ARENA_PAGES - 1)];
}

static inline sc_span *pagemap_get(const sc_heap *h, uintptr_t page)
{
    sc_span **e = pagemap_entry(h, page);
    return e == NULL ? NULL : *e;
}

/* ---- Bits ---------------------------------------------------------------- */

static inline bool slot_taken(const sc_span *s, size_t i)
{
    return (s->alloc_bits[i / 64] >> (i % 64)) & 1u;
}

/* Bits of slots lo..lo+63 that exist (slot < nelems), from bit 0. */
static inline uint64_t slots_mask(const sc_span *s, size_t lo)
{
    size_t n = s->nelems - lo;
    return n >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
}

/* ---- pageheap.c: the page heap, the arenas, the metadata ----------------- */

/* An in-use span of exactly npages pages, its first page a multiple of
 * align_pages, every page mapped to it; zero_pass says whether its pages
 * were all zero. NULL when the OS refuses memory (errno unspecified). */
sc_span *pageheap_alloc(sc_heap *h, size_t npages, size_t align_pages);

/* The pages of in-use span s go back: s becomes a free run, merged with
 * its free neighbours; then the release policy. Keeps errno. */
void pageheap_free(sc_heap *h, sc_span *s);

/* Large span s grows in place to npages, into a free run right after it;
 * false (nothing changed) when there is none big enough. */
bool pageheap_extend(sc_heap *h, sc_span *s, size_t npages);

/* Large span s keeps its first npages pages; the rest becomes free. Keeps
 * errno; false (nothing changed) when no metadata is left for the tail. */
bool pageheap_shrink(sc_heap *h, sc_span *s, size_t npages);

/* Gives resident free runs back (madvise), largest first, until at most
 * `keep` bytes of them are left. Returns the bytes given back; keeps
 * errno. */
size_t pageheap_release(sc_heap *h, size_t keep);

/* Unmaps every arena, page map, the index and the metadata. Keeps errno. */
void pageheap_destroy(sc_heap *h);

/* The metadata allocator: objects of f->size bytes, zeroed; NULL when the
 * OS refuses a chunk. */
void *fixalloc_get(sc_heap *h, sc_fixalloc *f);
void fixalloc_put(sc_fixalloc *f, void *p);
void fixalloc_init(sc_fixalloc *f, size_t size);

/* The run list a free run of npages pages belongs on. */
static inline unsigned run_list_of(size_t npages)
{
    return npages < SC_HEAP_LISTS ? (unsigned)npages : 0;
}

#pragma GCC visibility pop

#endif /* SC_INTERNAL_H */
