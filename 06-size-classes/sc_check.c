/*
 * sc_check.c: the heap checker, the heap drawing and the waste report of
 * sc.c's allocator. All three read the heap and never change it. Optional
 * reading: the allocator is sc.c and pageheap.c.
 *
 * sc_check_why() verifies the invariants listed in sc.c ("State"), in four
 * passes: the arenas and the index; each mapping walked span by span (the
 * page map, each span's fields and bitmap, free runs not merged), which
 * counts what the counters should say; the page heap's lists and bitmaps
 * and the partial lists against that count; the counters and the
 * quarantine. Every pointer is tested before it is followed (a span must
 * lie in one of the metadata chunks, an arena must be on the heap's list),
 * so a corrupted heap gives an answer, not a crash.
 */
#include "sc_internal.h"

#include <stdio.h>
#include <string.h>

/* Under libFuzzer the checker runs after every operation, and clang's
 * coverage counters on each of its comparisons made it two thirds of the
 * fuzzer's time (20 inputs a second). Its branches tell the fuzzer nothing
 * about the allocator's, which it passes when the heap is sound: it is
 * left out of the coverage feedback, and the fuzzer runs several times
 * faster. (gcc knows no such attribute and builds no fuzzer.) */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

const sc_span *sc_span_of(const sc_heap *h, const void *p)
{
    const sc_span *s = pagemap_get(h, page_of(p));
    return s == NULL || s->state == SC_SPAN_FREE ? NULL : s;
}

// clang-format off
/* ---- The checker --------------------------------------------------------- */
// clang-format on

/* Is s the address of an object of fixalloc f (inside one of its chunks,
 * on an object boundary)? Tested before any span pointer is followed. */
NO_COVERAGE static bool in_fixalloc(const sc_fixalloc *f, const void *s)
{
    size_t n = 0;
    for (const char *c = f->chunks; c != NULL; n++) {
        if (n > f->mapped / SC_FIX_CHUNK)
            return false; /* a cycle: the caller reports the heap broken */
        const char *lo = c + 16;
        if ((const char *)s >= lo && (const char *)s < c + SC_FIX_CHUNK)
            return ((size_t)((const char *)s - lo)) % f->size == 0;
        const char *next;
        memcpy(&next, c, sizeof next);
        c = next;
    }
    return false;
}

NO_COVERAGE static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

/* Do the page map entries of pages first .. first + n - 1 all equal want?
 * One arena's stretch at a time, as a plain array: the checker runs after
 * every operation of the tests and the fuzzer, and a free run can cover a
 * whole arena. NULL entries (a free run's inside) are compared with one
 * memcmp of the stretch against itself shifted by one entry. */
NO_COVERAGE static bool pages_all(const sc_heap *h, uintptr_t first, size_t n,
                                  const sc_span *want)
{
    while (n > 0) {
        sc_span **e = pagemap_entry(h, first);
        if (e == NULL)
            return false;
        size_t m = SC_ARENA_PAGES - (first & (SC_ARENA_PAGES - 1));
        if (m > n)
            m = n;
        if (want == NULL) {
            if (e[0] != NULL ||
                (m > 1 && memcmp(e, e + 1, (m - 1) * sizeof(sc_span *)) != 0))
                return false;
        } else {
            for (size_t i = 0; i < m; i++)
                if (e[i] != want)
                    return false;
        }
        first += m;
        n -= m;
    }
    return true;
}

/* What the walk of the mappings counts, for the later passes. */
typedef struct walk_sums {
    size_t small_spans, large_spans, span_pages, free_pages, released_pages;
    size_t free_runs, with_room, quarantined, arenas;
} walk_sums;

/* A small span's fields and bitmap. NULL, or what is broken. */
NO_COVERAGE static const char *check_small(const sc_span *s, walk_sums *sum)
{
    unsigned c = s->cls;
    if (c == 0 || c >= SC_NCLASSES)
        return "small span with no size class";
    if (s->npages != sc_pages_of_class[c] ||
        s->nelems != sc_objects_of_class[c] ||
        s->elemsize != sc_size_of_class[c] ||
        s->divmul != sc_divmul_of_class[c])
        return "small span's pages, slots, size or divmul are not its class's";
    unsigned taken = 0;
    for (size_t w = 0; w < SC_MAX_SLOTS / 64; w++) {
        if (w * 64 >= s->nelems) {
            if (s->alloc_bits[w] != 0)
                return "a bit is set beyond the span's last slot";
            continue;
        }
        if (s->alloc_bits[w] & ~slots_mask(s, w * 64))
            return "a bit is set beyond the span's last slot";
        taken += popcount64(s->alloc_bits[w]);
    }
    if (taken != s->alloc_count)
        return "alloc_count is not the number of bits set (popcount)";
    if (s->freeindex > s->nelems)
        return "freeindex beyond the span's last slot";
    if (s->alloc_cache != 0) {
        size_t f = s->freeindex, word = f / 64, shift = f % 64;
        if (shift != 0 && (s->alloc_cache >> (64 - shift)) != 0)
            return "alloc_cache reaches past freeindex's 64-slot word";
        uint64_t slots = s->alloc_cache << shift;
        if (word >= SC_MAX_SLOTS / 64 || (slots & ~slots_mask(s, word * 64)))
            return "alloc_cache names a slot past the span's last";
        if (slots & s->alloc_bits[word])
            return "alloc_cache names a slot that is taken";
    }
    bool listed = s->next != NULL;
    if (listed != (s->alloc_count < s->nelems))
        return s->alloc_count < s->nelems
                   ? "a span with a free slot is not on its partial list"
                   : "a full span is on a partial list";
    sum->with_room += listed;
    if (SC_CHECKED) {
        if (s->requests == NULL)
            return "checked build: small span without its request array";
        for (size_t i = 0; i < s->nelems; i++) {
            uint16_t r = s->requests[i];
            if (!slot_taken(s, i) && r != 0)
                return "a free slot still records a request";
            if (r == SC_REQ_QUARANTINED)
                sum->quarantined++;
            else if (r > s->elemsize)
                return "a slot records a request bigger than the slot";
        }
    }
    return NULL;
}

/* One mapping, span by span, from its first page to its last. */
NO_COVERAGE static const char *check_mapping(const sc_heap *h,
                                             const sc_arena *a, walk_sums *sum)
{
    uintptr_t q = a->map_page, end = a->map_page + a->map_pages;
    const sc_span *prev = NULL;
    while (q < end) {
        const sc_span *s = pagemap_get(h, q);
        if (s == NULL)
            return "a page map entry is NULL where a span should start";
        if (!in_fixalloc(&h->span_meta, s))
            return "a page map entry is not a span struct";
        if (s->page != q)
            return "a span's first page is not where the page map says";
        if (s->npages == 0 || s->npages > end - q)
            return "a span has no pages, or runs past its mapping";
        if (s->state == SC_SPAN_FREE) {
            if (pagemap_get(h, q + s->npages - 1) != s)
                return "a free run's last page does not map to it";
            if (s->npages > 2 && !pages_all(h, q + 1, s->npages - 2, NULL))
                return "a page inside a free run maps to a span";
            if (prev != NULL && prev->state == SC_SPAN_FREE &&
                prev->released == s->released)
                return "two free runs of the same kind touch (not merged)";
            sum->free_runs++;
            if (s->released)
                sum->released_pages += s->npages;
            else
                sum->free_pages += s->npages;
        } else {
            if (!pages_all(h, q, s->npages, s))
                return "a page of a span in use does not map to it";
            sum->span_pages += s->npages;
            if (s->state == SC_SPAN_SMALL) {
                const char *why = check_small(s, sum);
                if (why != NULL)
                    return why;
                sum->small_spans++;
            } else if (s->state == SC_SPAN_LARGE) {
                if (s->nelems != 1 || s->alloc_count != 1 ||
                    s->alloc_bits[0] != 1 || s->next != NULL)
                    return "a large span is not one taken slot on no list";
                if (SC_CHECKED && s->large_request == SIZE_MAX)
                    sum->quarantined++;
                else if (SC_CHECKED && s->large_request > span_bytes(s))
                    return "a large block's request is bigger than its pages";
                sum->large_spans++;
            } else {
                return "a span's state is unknown";
            }
        }
        prev = s;
        q += s->npages;
    }
    return NULL;
}

/* Pass 1 and 2: the arenas, the index, each mapping. */
NO_COVERAGE static const char *check_arenas(const sc_heap *h, walk_sums *sum)
{
    if (h->arenas != NULL && h->index == NULL)
        return "arenas but no arena index";
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next) {
        if (++sum->arenas > h->stats.arenas)
            return "more arenas on the list than counted (a cycle?)";
        if (a->page % SC_ARENA_PAGES != 0)
            return "an arena is not 64 MiB-aligned";
        if (arena_of(h, a->page) != a)
            return "an arena is not in the index at its address";
        if (a->map_pages == 0 || a->map_pages % SC_ARENA_PAGES != 0 ||
            a->page < a->map_page || a->page >= a->map_page + a->map_pages)
            return "an arena is not inside the mapping it names";
    }
    if (sum->arenas != h->stats.arenas)
        return "fewer arenas on the list than counted";
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next) {
        if (a->page != a->map_page)
            continue;
        for (uintptr_t p = a->page; p < a->page + a->map_pages;
             p += SC_ARENA_PAGES) {
            const sc_arena *b = arena_of(h, p);
            if (b == NULL || b->map_page != a->map_page)
                return "an arena of a mapping is missing from the index";
        }
        const char *why = check_mapping(h, a, sum);
        if (why != NULL)
            return why;
    }
    return NULL;
}

/* Pass 3: the page heap's lists and bitmaps, then the partial lists. */
NO_COVERAGE static const char *check_lists(const sc_heap *h,
                                           const walk_sums *sum)
{
    size_t runs = 0;
    for (unsigned set = 0; set < 2; set++)
        for (unsigned n = 0; n < SC_HEAP_LISTS; n++) {
            const sc_span *prev = NULL;
            for (const sc_span *r = h->runs[set][n]; r != NULL; r = r->next) {
                if (++runs > sum->free_runs)
                    return "the page heap's lists hold more runs than the "
                           "arenas (a cycle, or a run twice)";
                if (!in_fixalloc(&h->span_meta, r))
                    return "a page heap list node is not a span struct";
                if (r->state != SC_SPAN_FREE || r->released != set ||
                    run_list_of(r->npages) != n)
                    return "a run is on the wrong page heap list";
                if (r->prev != prev)
                    return "page heap list links disagree (next->prev)";
                prev = r;
            }
            bool bit = (h->run_map[set][n / 64] >> (n % 64)) & 1u;
            if (bit != (h->runs[set][n] != NULL))
                return "the page heap's bitmap disagrees with its lists";
        }
    if (runs != sum->free_runs)
        return "a free run is on no page heap list (lost)";

    size_t listed = 0;
    for (unsigned c = 0; c < SC_NCLASSES; c++) {
        const sc_span *head = h->partial[c];
        if (head == NULL)
            continue;
        if (c == 0)
            return "a partial list for class 0";
        size_t empties = 0;
        const sc_span *s = head;
        do {
            if (++listed > sum->with_room)
                return "the partial lists hold more spans than have room "
                       "(a cycle, or a span twice)";
            if (!in_fixalloc(&h->span_meta, s) || s->state != SC_SPAN_SMALL ||
                s->cls != c)
                return "a partial list holds a span of another class";
            if (s->next == NULL || s->next->prev != s)
                return "partial list links disagree (next->prev)";
            if (s->alloc_count == 0 && s->npages != 1)
                return "an empty span of more than one page is kept";
            empties += s->alloc_count == 0;
            s = s->next;
        } while (s != head);
        if (empties > 1)
            return "a class keeps more than one empty span";
    }
    if (listed != sum->with_room)
        return "a span with room is on no partial list (lost)";
    return NULL;
}

/* Pass 4: the counters, and the quarantine. */
NO_COVERAGE static const char *check_counters(const sc_heap *h,
                                              const walk_sums *sum)
{
    const sc_stats_t *st = &h->stats;
    if (st->small_spans != sum->small_spans ||
        st->large_spans != sum->large_spans)
        return "span counters disagree with the spans";
    if (st->span_pages != sum->span_pages ||
        st->free_pages != sum->free_pages ||
        st->released_pages != sum->released_pages ||
        st->free_runs != sum->free_runs)
        return "page counters disagree with the spans and runs";
    size_t meta = metadata_written(h);
    if (st->metadata != meta)
        return "the metadata counter disagrees with the chunks and page maps";
    if (st->footprint != (st->span_pages + st->free_pages) * SC_PAGE + meta)
        return "footprint is not (span pages + free pages) * 8 KiB + "
               "metadata";
    if (st->peak_footprint < st->footprint)
        return "peak footprint below the footprint";
    if (st->reserved != st->arenas * SC_ARENA)
        return "reserved bytes are not 64 MiB an arena";
    if (h->q_count > SC_QUARANTINE || h->q_first >= SC_QUARANTINE ||
        (!SC_CHECKED && h->q_count != 0) || h->q_count != sum->quarantined)
        return "the quarantine's count disagrees with the blocks marked";
    for (size_t i = 0; i < h->q_count; i++) {
        const void *p = h->quarantine[(h->q_first + i) % SC_QUARANTINE];
        const sc_span *s = sc_span_of(h, p);
        if (s == NULL)
            return "the quarantine holds a pointer in no span";
        uintptr_t off = (uintptr_t)p - (uintptr_t)span_base(s);
        size_t slot = s->state == SC_SPAN_LARGE ? 0 : off / s->elemsize;
        bool marked = s->state == SC_SPAN_LARGE
                          ? off == 0 && s->large_request == SIZE_MAX
                          : off % s->elemsize == 0 && slot < s->nelems &&
                                s->requests[slot] == SC_REQ_QUARANTINED;
        if (!marked || !slot_taken(s, slot))
            return "the quarantine holds a block not marked quarantined";
    }
    return NULL;
}

NO_COVERAGE const char *sc_check_why(const sc_heap *h)
{
    walk_sums sum = {0};
    const char *why = check_arenas(h, &sum);
    if (why == NULL)
        why = check_lists(h, &sum);
    if (why == NULL)
        why = check_counters(h, &sum);
    return why;
}

bool sc_check(const sc_heap *h)
{
    return sc_check_why(h) == NULL;
}

// clang-format off
/* ---- The drawing --------------------------------------------------------- */
// clang-format on

#define DUMP_PAGES 128 /* pages drawn per mapping, one cell each */
#define DUMP_SPANS 4   /* spans drawn per class */
#define DUMP_ROW   64  /* slots per row of a bitmap */
#define DUMP_ROWS  4   /* rows of a bitmap drawn, at most */

static size_t kib(size_t bytes)
{
    return (bytes + 1023) / 1024;
}

static char page_cell(const sc_span *s, uintptr_t q)
{
    if (s->state == SC_SPAN_FREE)
        return s->released ? '~' : '.';
    bool first = q == s->page;
    if (s->state == SC_SPAN_LARGE)
        return first ? 'L' : 'l';
    return first ? 'S' : 's';
}

/* One mapping: a row of cells, then its spans and runs one a line. */
static void dump_mapping(const sc_heap *h, const sc_arena *a, FILE *out)
{
    fprintf(out, "arena at %p: %zu pages (%zu MiB)\n",
            (void *)page_addr(a->page), a->map_pages,
            a->map_pages * SC_PAGE >> 20);
    char cells[DUMP_PAGES + 1];
    size_t n = 0;
    uintptr_t end = a->map_page + a->map_pages;
    for (uintptr_t q = a->map_page; q < end && n < DUMP_PAGES;) {
        const sc_span *s = pagemap_get(h, q);
        if (s == NULL || s->npages == 0)
            break;
        for (size_t i = 0; i < s->npages && n < DUMP_PAGES; i++)
            cells[n++] = page_cell(s, q + i);
        q += s->npages;
    }
    cells[n] = '\0';
    fprintf(out, "  pages %s%s\n", cells,
            a->map_pages > DUMP_PAGES ? " ..." : "");
    size_t lines = 0;
    for (uintptr_t q = a->map_page; q < end;) {
        const sc_span *s = pagemap_get(h, q);
        if (s == NULL || s->npages == 0)
            break;
        size_t from = q - a->map_page, to = from + s->npages - 1;
        if (lines++ < 12) {
            fprintf(out, "  %5zu-%-5zu ", from, to);
            if (s->state == SC_SPAN_SMALL)
                fprintf(out,
                        "small span, class %u (%u B): %u of %u slots "
                        "taken\n",
                        s->cls, s->elemsize, s->alloc_count, s->nelems);
            else if (s->state == SC_SPAN_LARGE)
                fprintf(out, "large block, %zu pages\n", s->npages);
            else
                fprintf(out, "free run, %s, %zu pages\n",
                        s->released ? "released" : "resident", s->npages);
        }
        q += s->npages;
    }
    if (lines > 12)
        fprintf(out, "  ... (%zu spans and runs in all)\n", lines);
}

/* A span's bitmap, 64 slots a row: '#' taken, 'q' quarantined, '.' free;
 * the row under it marks freeindex with '^'. */
static void dump_bitmap(const sc_span *s, FILE *out)
{
    size_t rows_max = (size_t)DUMP_ROWS * DUMP_ROW;
    for (size_t row = 0; row < s->nelems; row += DUMP_ROW) {
        if (row >= rows_max) {
            size_t taken = 0;
            for (size_t i = row; i < s->nelems; i++)
                taken += slot_taken(s, i);
            fprintf(out, "    %4zu ... %zu more slots, %zu taken\n", row,
                    s->nelems - row, taken);
            break;
        }
        char line[DUMP_ROW + 1], mark[DUMP_ROW + 1];
        size_t k = 0;
        for (size_t i = row; i < s->nelems && i < row + DUMP_ROW; i++, k++) {
            bool q = SC_CHECKED && s->requests != NULL &&
                     s->requests[i] == SC_REQ_QUARANTINED;
            line[k] = (char)(!slot_taken(s, i) ? '.' : q ? 'q' : '#');
            mark[k] = (char)(i == s->freeindex ? '^' : ' ');
        }
        line[k] = mark[k] = '\0';
        fprintf(out, "    %4zu %s\n", row, line);
        if (s->freeindex >= row && s->freeindex < row + DUMP_ROW &&
            s->freeindex < s->nelems) {
            while (k > 0 && mark[k - 1] == ' ')
                mark[--k] = '\0';
            fprintf(out, "         %s freeindex %u\n", mark, s->freeindex);
        }
    }
    if (s->freeindex == s->nelems)
        fprintf(out,
                "         (freeindex %u: at the end; the next take "
                "rescans from slot 0)\n",
                s->freeindex);
}

/* Every span of class c, in address order, the first DUMP_SPANS drawn. */
static void dump_class(const sc_heap *h, unsigned c, FILE *out)
{
    size_t spans = 0, taken = 0, slots = 0, on_list = 0;
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next) {
        if (a->page != a->map_page)
            continue;
        for (uintptr_t q = a->map_page; q < a->map_page + a->map_pages;) {
            const sc_span *s = pagemap_get(h, q);
            if (s == NULL || s->npages == 0)
                break;
            q += s->npages;
            if (s->state != SC_SPAN_SMALL || s->cls != c)
                continue;
            if (spans == 0)
                fprintf(out, "class %u: %u B slots, %u a span of %u page%s\n",
                        c, s->elemsize, s->nelems, sc_pages_of_class[c],
                        sc_pages_of_class[c] == 1 ? "" : "s");
            spans++;
            taken += s->alloc_count;
            slots += s->nelems;
            on_list += s->next != NULL;
            if (spans > DUMP_SPANS)
                continue;
            fprintf(out, "  span at page %zu: %u of %u taken%s%s\n",
                    (size_t)(s->page - a->map_page), s->alloc_count, s->nelems,
                    s == h->partial[c] ? ", head of the partial list"
                    : s->next != NULL  ? ", on the partial list"
                                       : ", full (on no list)",
                    s->zero_pass ? ", first pass" : "");
            dump_bitmap(s, out);
        }
    }
    if (spans > DUMP_SPANS)
        fprintf(out, "  ... %zu more span%s\n", spans - DUMP_SPANS,
                spans - DUMP_SPANS == 1 ? "" : "s");
    if (spans > 0)
        fprintf(out,
                "  %zu span%s, %zu of %zu slots taken, %zu on the "
                "partial list\n",
                spans, spans == 1 ? "" : "s", taken, slots, on_list);
}

/* The page heap's lists, the non-empty ones, in order of length. */
static void dump_runs(const sc_heap *h, FILE *out)
{
    static const char *const kind[2] = {"resident", "released"};
    for (unsigned set = 0; set < 2; set++) {
        fprintf(out, "page heap, %s runs:", kind[set]);
        size_t shown = 0;
        for (unsigned i = 1; i <= SC_HEAP_LISTS; i++) {
            unsigned n = i % SC_HEAP_LISTS; /* list 0 (the big runs) last */
            for (const sc_span *r = h->runs[set][n]; r != NULL; r = r->next)
                if (shown++ < 10)
                    fprintf(out, " %zu", r->npages);
        }
        if (shown > 10)
            fprintf(out, " ... (%zu runs)", shown);
        fprintf(out, "%s\n", shown == 0 ? " none" : " pages");
    }
}

void sc_dump(const sc_heap *h, FILE *out)
{
    sc_stats_t st = sc_stats(h);
    fprintf(out,
            "heap: %zu arena%s (%zu MiB reserved), %zu small and %zu large "
            "spans; legend: S/s small span (first page/others), L/l large, "
            ". free, ~ released\n",
            st.arenas, st.arenas == 1 ? "" : "s", st.reserved >> 20,
            st.small_spans, st.large_spans);
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next)
        if (a->page == a->map_page)
            dump_mapping(h, a, out);
    for (unsigned c = 1; c < SC_NCLASSES; c++)
        dump_class(h, c, out);
    dump_runs(h, out);
    fprintf(out,
            "live %zu blocks in %zu bytes of slots and pages; footprint %zu "
            "KiB (%zu pages in spans, %zu free resident, %zu released, %zu "
            "KiB metadata); occupancy %.1f%%\n",
            st.live_blocks, st.live_bytes, kib(st.footprint), st.span_pages,
            st.free_pages, st.released_pages, kib(st.metadata),
            st.footprint ? 100.0 * (double)st.live_bytes / (double)st.footprint
                         : 0.0);
}

// clang-format off
/* ---- The waste report ---------------------------------------------------- */
// clang-format on

typedef struct class_waste {
    size_t spans, taken, slots, requested, tail_bytes, free_slot_bytes;
} class_waste;

void sc_waste(const sc_heap *h, FILE *out)
{
    class_waste w[SC_NCLASSES];
    memset(w, 0, sizeof w);
    size_t large = 0, large_bytes = 0, large_requested = 0;
    for (const sc_arena *a = h->arenas; a != NULL; a = a->next) {
        if (a->page != a->map_page)
            continue;
        for (uintptr_t q = a->map_page; q < a->map_page + a->map_pages;) {
            const sc_span *s = pagemap_get(h, q);
            if (s == NULL || s->npages == 0)
                break;
            q += s->npages;
            if (s->state == SC_SPAN_LARGE) {
                large++;
                large_bytes += span_bytes(s);
                large_requested += SC_CHECKED ? s->large_request : 0;
                continue;
            }
            if (s->state != SC_SPAN_SMALL)
                continue;
            class_waste *c = &w[s->cls];
            c->spans++;
            c->slots += s->nelems;
            c->taken += s->alloc_count;
            c->tail_bytes += span_bytes(s) - (size_t)s->nelems * s->elemsize;
            c->free_slot_bytes +=
                (size_t)(s->nelems - s->alloc_count) * s->elemsize;
            for (size_t i = 0; SC_CHECKED && i < s->nelems; i++)
                if (slot_taken(s, i) && s->requests[i] != SC_REQ_QUARANTINED)
                    c->requested += s->requests[i];
        }
    }
    fprintf(out, "waste by class (internal: slot bytes beyond the requests; "
                 "tail: the ends of the spans;\nfree slots: room in spans "
                 "that hold live blocks)\n");
    fprintf(out, "class   size  spans  slots taken    requested   internal  "
                 "     tail   free slots\n");
    size_t t_req = 0, t_int = 0, t_tail = 0, t_free = 0, t_used = 0;
    for (unsigned c = 1; c < SC_NCLASSES; c++) {
        if (w[c].spans == 0)
            continue;
        size_t used = w[c].taken * sc_size_of_class[c];
        fprintf(out, "%5u %6u %6zu %6zu/%-6zu ", c, sc_size_of_class[c],
                w[c].spans, w[c].taken, w[c].slots);
        if (SC_CHECKED)
            fprintf(out, "%10zu %10zu", w[c].requested, used - w[c].requested);
        else
            fprintf(out, "%10s %10s", "-", "-");
        fprintf(out, " %10zu %12zu\n", w[c].tail_bytes, w[c].free_slot_bytes);
        t_req += w[c].requested;
        t_int += used - w[c].requested;
        t_tail += w[c].tail_bytes;
        t_free += w[c].free_slot_bytes;
        t_used += used;
    }
    if (SC_CHECKED)
        fprintf(out,
                "small: %zu bytes requested in %zu bytes of slots: %zu "
                "internal, %zu tail, %zu in free slots\n",
                t_req, t_used, t_int, t_tail, t_free);
    else
        fprintf(out,
                "small: %zu bytes of slots taken, %zu tail, %zu in free "
                "slots (a release build records no requests: internal "
                "waste unknown)\n",
                t_used, t_tail, t_free);
    if (SC_CHECKED)
        fprintf(out,
                "large: %zu blocks, %zu bytes requested in %zu bytes of "
                "pages: %zu internal\n",
                large, large_requested, large_bytes,
                large_bytes - large_requested);
    else
        fprintf(out, "large: %zu blocks in %zu bytes of pages\n", large,
                large_bytes);
    fprintf(out,
            "external (free pages of the page heap, resident): %zu "
            "bytes; released: %zu bytes\n",
            h->stats.free_pages * SC_PAGE, h->stats.released_pages * SC_PAGE);
}
