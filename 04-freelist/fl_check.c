/*
 * fl_check.c: the heap checker and the heap map of fl.c's allocator. Both
 * read the heap and never change it: fl_check_why() walks every region
 * chunk by chunk, then the free list, then the quarantine and the
 * statistics, and names the first invariant broken (fl.c, "State", lists
 * them); fl_dump() draws each region as a row of cells, the free list in
 * its order, and the figures. Optional reading: the allocator is fl.c.
 *
 * Every pointer is tested against the regions before it is followed, so a
 * corrupted heap gives an answer, not a crash. Metadata words are read
 * through word_get (fl_internal.h), which opens each for the memory tools
 * for the instant of the read, exactly as the allocator does.
 */
#include "fl.h"

#include "fl_internal.h"

#include <stdint.h>
#include <stdio.h>

// clang-format off
/* ---- The heap checker --------------------------------------------------- */
// clang-format on

/* Sums that the walk of the regions collects, for the later checks. */
typedef struct walk_sums {
    size_t free_chunks, live_bytes, live_blocks, quarantined, footprint;
    size_t regions;
} walk_sums;

/* Walks one region chunk by chunk. NULL, or the first broken invariant. */
static const char *check_region(const fl_region *r, walk_sums *sum)
{
    char *base = (char *)(uintptr_t)r;
    if ((uintptr_t)r % page_size() != 0)
        return "region not page-aligned";
    if (r->magic != (REGION_MAGIC ^ (uintptr_t)r))
        return "region header damaged (magic)";
    if (r->size < FL_REGION_MIN || r->size % page_size() != 0)
        return "region size not whole pages of at least FL_REGION_MIN";
    if (r->next != NULL && r->next->prev != r)
        return "region list links disagree";
    uint64_t fw = word_get(base + 32);
    if (fw != fl_header_word(base + 32, FENCE_SIZE, FL_USED | FL_PREV_USED, 0))
        return "start fencepost damaged";
    char *c = base + REGION_FIRST, *end = base + r->size - 8;
    bool prev_used = true, prev_free = false;
    while (c < end) {
        if ((uintptr_t)(c + 8) % FL_ALIGN != 0)
            return "chunk not aligned";
        uint64_t w = word_get(c);
        unsigned f = w_flags(w);
        size_t s = w_size(w);
        if (!w_ok(c, w))
            return "chunk header check bits wrong";
        if (s < FL_MIN_CHUNK || s > (size_t)(end - c))
            return "chunk size below the minimum or past its region";
        if (((f & FL_FIRST) != 0) != (c == base + REGION_FIRST))
            return "first-chunk bit wrong";
        if (((f & FL_PREV_USED) != 0) != prev_used)
            return "previous-in-use bit disagrees with the previous chunk";
        if (!(f & FL_USED)) {
            if (f & FL_QUARANTINE_BIT)
                return "free chunk marked quarantined";
            if (word_get(c + s - 8) != w)
                return "footer does not match header";
            if (prev_free)
                return "two adjacent free chunks (not coalesced)";
            sum->free_chunks++;
        } else if (f & FL_QUARANTINE_BIT) {
            sum->quarantined++;
        } else {
            sum->live_bytes += w_request(w);
            sum->live_blocks++;
        }
        prev_used = (f & FL_USED) != 0;
        prev_free = !prev_used;
        c += s;
    }
    if (c != end)
        return "chunk sizes do not add up to the region";
    if (word_get(end) !=
        fl_header_word(end, FENCE_SIZE,
                       FL_USED | (prev_used ? FL_PREV_USED : 0), 0))
        return "end fencepost damaged";
    sum->footprint += r->size;
    sum->regions++;
    return NULL;
}

/* True when c is the start of a chunk area's word inside some region. */
static bool in_some_region(const fl_heap *h, const void *c)
{
    return region_find(h, c) != NULL;
}

/*
 * Three passes: the regions chunk by chunk (which counts the free chunks and
 * the live bytes), the free list against that count, then the quarantine
 * and the statistics. Every pointer is tested against the regions before it
 * is followed, so a corrupted heap gives an answer, not a crash.
 */
const char *fl_check_why(const fl_heap *h)
{
    walk_sums sum = {0};
    /* STEP 1: every region, chunk by chunk. */
    const fl_region *prev_r = NULL;
    for (const fl_region *r = h->regions; r != NULL; r = r->next) {
        if (sum.regions > h->stats.regions)
            return "more regions on the list than counted (a cycle?)";
        if (r->prev != prev_r)
            return "region list links disagree";
        const char *why = check_region(r, &sum);
        if (why != NULL)
            return why;
        prev_r = r;
    }
    if (sum.regions != h->stats.regions || sum.footprint != h->stats.footprint)
        return "footprint or region count disagrees with the regions";
    if (h->stats.peak_footprint < h->stats.footprint ||
        h->stats.peak_live < h->stats.live_bytes)
        return "a peak is below the current value";

    /* STEP 2: the free list holds exactly the free chunks. */
    size_t n = 0;
    bool rover_seen = h->rover == NULL;
    void *prev = NULL;
    for (void *c = h->free_head; c != NULL; c = link_next(c)) {
        if (++n > sum.free_chunks)
            return "free list longer than the free chunks (a cycle, or a "
                   "chunk on it twice)";
        if ((uintptr_t)((char *)c + 8) % FL_ALIGN != 0)
            return "free-list node not aligned";
        if (!in_some_region(h, c))
            return "free-list node outside every region";
        uint64_t w = word_get(c);
        if (!w_ok(c, w) || (w_flags(w) & FL_USED))
            return "a chunk on the free list is not a free chunk";
        if (link_prev(c) != prev)
            return "free-list links disagree (next->prev != node)";
        if (c == h->rover)
            rover_seen = true;
        prev = c;
    }
    if (n != sum.free_chunks)
        return "free list lost a chunk (fewer nodes than free chunks)";
    if (!rover_seen)
        return "next-fit rover is not on the free list";

    /* STEP 3: the quarantine and the counts. */
    if (h->q_count > FL_QUARANTINE || h->q_count != sum.quarantined ||
        (!FL_CHECKED && h->q_count != 0))
        return "quarantine count disagrees with the chunks marked Q";
    /* As many entries as Q chunks, each one of them, none twice: then the
     * entries are exactly the Q chunks (a ring holding X twice could hide
     * a Q chunk Y that no entry names, and that would never be freed). */
    for (size_t i = 0; i < h->q_count; i++) {
        void *c = h->quarantine[(h->q_first + i) % FL_QUARANTINE];
        if (!in_some_region(h, c) ||
            !(w_flags(word_get(c)) & FL_QUARANTINE_BIT))
            return "quarantine holds a chunk not marked Q";
        for (size_t j = 0; j < i; j++)
            if (h->quarantine[(h->q_first + j) % FL_QUARANTINE] == c)
                return "quarantine holds a chunk twice";
    }
    if (sum.live_bytes != h->stats.live_bytes ||
        sum.live_blocks != h->stats.live_blocks)
        return "live bytes or blocks disagree with the used chunks";
    return NULL;
}

bool fl_check(const fl_heap *h)
{
    return fl_check_why(h) == NULL;
}

// clang-format off
/* ---- The heap map ------------------------------------------------------- */
// clang-format on

#define DUMP_CELLS 256 /* cells per region at most: 4 rows of 64 */
#define DUMP_ROW   64

/* "r1+4096": a chunk as its region's number (0 = newest) and offset. */
static void dump_where(const fl_heap *h, const void *c, FILE *out)
{
    size_t i = 0;
    for (const fl_region *r = h->regions; r != NULL; r = r->next, i++)
        if ((const char *)c >= (const char *)r &&
            (const char *)c < (const char *)r + r->size) {
            fprintf(out, "r%zu+%zu", i,
                    (size_t)((const char *)c - (const char *)r));
            return;
        }
    fprintf(out, "%p", c);
}

static void dump_region(const fl_region *r, size_t index, FILE *out)
{
    char cells[DUMP_CELLS];
    char *base = (char *)(uintptr_t)r;
    size_t area = r->size - REGION_OVERHEAD;
    size_t cell = (area + DUMP_CELLS - 1) / DUMP_CELLS;
    cell = cell < 16 ? 16 : (cell + 15) & ~(size_t)15;
    size_t ncells = (area + cell - 1) / cell;
    size_t used = 0, nfree = 0;
    char *c = base + REGION_FIRST, *end = base + r->size - 8;
    while (c < end) {
        uint64_t w = word_get(c);
        size_t s = w_size(w);
        if (s == 0)
            break; /* damaged: draw what can be drawn */
        unsigned f = w_flags(w);
        char body = (char)(!(f & FL_USED)            ? '.'
                           : (f & FL_QUARANTINE_BIT) ? 'q'
                                                     : '#');
        size_t off = (size_t)(c - (base + REGION_FIRST));
        size_t first = off / cell, last = (off + s - 1) / cell;
        for (size_t i = first; i <= last && i < ncells; i++)
            cells[i] = body;
        cells[first] = '|';
        if (f & FL_USED)
            used++;
        else
            nfree++;
        c += s;
    }
    fprintf(out,
            "region r%zu at %p: %zu bytes, %zu used and %zu free chunks, "
            "one cell = %zu bytes\n",
            index, (void *)base, r->size, used, nfree, cell);
    for (size_t i = 0; i < ncells; i += DUMP_ROW) {
        size_t n = ncells - i < DUMP_ROW ? ncells - i : DUMP_ROW;
        fprintf(out, "  %7zu %.*s\n", i * cell + REGION_FIRST, (int)n,
                cells + i);
    }
}

void fl_dump(const fl_heap *h, FILE *out)
{
    fl_stats_t s = fl_stats(h);
    fprintf(out,
            "heap (%s): %zu region%s, legend: | header  # used  . free  "
            "q quarantined\n",
            fl_policy_name(h->policy), s.regions, s.regions == 1 ? "" : "s");
    size_t i = 0;
    for (const fl_region *r = h->regions; r != NULL; r = r->next)
        dump_region(r, i++, out);

    /* The free list in its order, and the largest free chunk. */
    size_t largest = 0, shown = 0;
    fprintf(out, "free list:");
    for (void *c = h->free_head; c != NULL; c = link_next(c)) {
        size_t sz = free_size(c);
        largest = sz > largest ? sz : largest;
        if (shown++ < 8) {
            fprintf(out, "%s", shown > 1 ? " ->" : "");
            fputc(' ', out);
            dump_where(h, c, out);
            fprintf(out, " (%zu)", sz);
        }
    }
    if (shown > 8)
        fprintf(out, " -> ... (%zu more)", shown - 8);
    fprintf(out, "%s\n", shown == 0 ? " (empty)" : "");

    double frag =
        s.free_bytes ? 1.0 - (double)largest / (double)s.free_bytes : 0.0;
    /* Occupancy, not utilization: live and footprint now, where
     * utilization (the trace tables) is peak live over peak footprint. */
    double occupancy =
        s.footprint ? (double)s.live_bytes / (double)s.footprint : 0.0;
    fprintf(out,
            "live %zu bytes in %zu blocks; footprint %zu bytes; "
            "occupancy (live / footprint, now) %.1f%%\n",
            s.live_bytes, s.live_blocks, s.footprint, 100.0 * occupancy);
    fprintf(out,
            "free %zu bytes in %zu chunks, largest %zu: external "
            "fragmentation 1 - largest/free = %.1f%%\n",
            s.free_bytes, s.free_chunks, largest, 100.0 * frag);
}
