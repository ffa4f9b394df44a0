/*
 * fl.c: a free-list allocator for blocks of any size. Every chunk (a block
 * with its 8-byte header) says how big it is; a free chunk also ends with a
 * copy of its header, a boundary tag, so that a freed chunk merges with a
 * free neighbour on either side in O(1); the free chunks sit on one
 * explicit, doubly linked list, searched by first, next or best fit (chosen
 * at run time); memory comes from the OS in regions of 64 KiB or more.
 *
 * Stage 03 handed out blocks of a few fixed sizes, each size from pages of
 * its own. Here a request of any size is cut from a bigger free chunk, and
 * a freed chunk melts back into its free neighbours. The price is external
 * fragmentation: free memory in pieces too small for the request at hand.
 *
 * Allocating n bytes (fl_alloc; step 3 is the slow path):
 *   1. Size: need = n + 8 (the header), rounded up to 16, at least 32 (a
 *      free chunk must hold a header, two links and a footer).
 *   2. Search the free list for a chunk of at least `need` bytes, by the
 *      heap's policy: first fit takes the first that fits; next fit does
 *      the same but starts where the previous search stopped (the rover);
 *      best fit takes the smallest that fits, stopping early at an exact
 *      fit. The list is LIFO: a freed chunk goes to its head.
 *   3. If none fits, map a new region (region_grow): its whole chunk area is
 *      one free chunk, and it fits.
 *   4. Split: if the chunk is bigger than need by at least 32 bytes (the
 *      smallest chunk), cut it in two; the tail stays free and takes the
 *      chunk's place in the list. Otherwise hand out the whole chunk.
 *   5. Mark it used: its header, and the next chunk's P ("previous in use").
 *
 * Freeing a block (fl_free):
 *   1. Check the pointer: 16-byte aligned, header check bits right, in use,
 *      the next chunk's header intact.
 *   2. Coalesce: if the next chunk is free, take it off the list and merge;
 *      if the previous one is free (P clear), the word just before this
 *      chunk is its footer, which gives its size, hence its start: take it
 *      off the list and merge, and mark the freed chunk's old header free
 *      (a second free of the block then reads "double free"). Both O(1):
 *      that is what the footers are for.
 *   3. Write the merged chunk's header and footer, clear the next chunk's P,
 *      and push the chunk on the list head; or, if it now spans its whole
 *      region, give the region back to the OS (munmap), unless it is the
 *      heap's only region and 64 KiB.
 *
 * Costs: a search is O(free chunks) (best fit walks the whole list unless
 * it finds an exact fit); a split, a free and an in-place realloc are O(1);
 * a new region is one mmap, an emptied one a munmap. Memory: 8 bytes of
 * header a block, payloads rounded up to 16, chunks of 32 bytes at least,
 * 48 bytes a region.
 *
 * Left out on purpose, and the stage that adds it:
 *   - a fast search: bins of free chunks sorted by size (stage 05);
 *   - threads: a heap belongs to one thread at a time (libmalloc.so puts
 *     one lock around one heap); arenas per thread (stage 05), a cache per
 *     thread with no lock at all (stage 07);
 *   - freedom from external fragmentation: size classes, each in spans of
 *     its own (stage 06);
 *   - keeping emptied memory for a while: a region goes back at once here;
 *     stage 07's scavenger returns idle pages lazily.
 *
 * Where the ideas come from: the boundary tag is Knuth's (The Art of
 * Computer Programming, vol. 1, section 2.5). Keeping the footer in free
 * chunks only, with a "previous in use" bit in the next header instead, is
 * Doug Lea's, from dlmalloc, the allocator glibc's malloc grew from. The
 * three policies and their trade-offs: Wilson, Johnstone, Neely and Boles,
 * "Dynamic Storage Allocation: A Survey and Critical Review" (1995).
 *
 * Files: fl.h is the API; this file the allocator, top to bottom;
 * fl_internal.h the layout below written as C (the header word's fields, the
 * region header, reading a metadata word); fl_check.c the heap checker and
 * the heap map, which read the heap and never change it.
 */
#include "fl.h"

#include "annotate.h"
#include "fl_internal.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

// clang-format off
/*
 * ---- Layout ----------------------------------------------------------------
 *
 * A region, as mapped (64 KiB or more, page-aligned):
 *
 * <diagram region>
 * base      +32     +40                                          base+size-8
 * |         |       |                                            |
 * [ region  ][fence ][ chunk ][ chunk ][ chunk ] ...             [fence ]
 * [ header  ][post  ]                                            [post  ]
 *  next, prev, size,  payloads start 16-byte aligned              size 0,
 *  magic (32 bytes)   (so chunks start at 8 mod 16)               used
 * </diagram>
 *
 * The fenceposts are chunk headers of size 0 marked used, so that a merge
 * stops at a region's ends without a bounds test. Chunks never span two
 * regions, even when two mappings happen to be adjacent.
 *
 * <diagram chunks>
 * one cell = 8 bytes
 *
 * used:  [ header ][ payload ......................................... ]
 *                  ^ the pointer fl_alloc returns (16-byte aligned)
 * free:  [ header ][ next   ][ prev   ][ ... unused ...       ][ footer ]
 *                   the free-list links                        = header
 * </diagram>
 *
 * A used chunk has no footer: its next neighbour's P bit says that it is in
 * use, so nobody needs its size from behind. That saves 8 bytes in every
 * used chunk (dlmalloc's trick), and it is why the smallest chunk is 32
 * bytes: a free one must hold the header, two links and the footer.
 *
 * <diagram header-word>
 *  63      54 53    48 47                               4   3   2   1   0
 * +----------+--------+----------------------------------+---+---+---+---+
 * |  check   | slack  |  chunk size / 16                 | F | Q | P | U |
 * +----------+--------+----------------------------------+---+---+---+---+
 *  U      in use: handed out, or waiting in the quarantine
 *  P      the chunk before this one is in use (so it has no footer)
 *  Q      waiting in the quarantine (checked builds)
 *  F      the first chunk of its region
 *  size   bytes, header included; a multiple of 16, so its low 4 bits
 *         are free for the flags: word & SIZE_MASK is the size itself
 *  slack  payload bytes beyond the request (0..40): the exact request
 *         is known, for the statistics, realloc and the memory tools
 *  check  10 bits of a hash of the other 54 bits and of the word's address
 * </diagram>
 *
 * A footer is its header's exact copy. The check bits are how a corrupted
 * header, or a pointer this heap never returned, is noticed: garbage passes
 * with probability 1/1024, and a header copied elsewhere always fails,
 * because its own address is in the hash.
 */
// clang-format on

// clang-format off
/*
 * ---- State -----------------------------------------------------------------
 *
 * The heap is an fl_heap (fl.h; the caller owns it, so its fields are
 * public): the policy, the list of regions (each starts with an fl_region
 * header, fl_internal.h, newest first), the free list's head, next fit's
 * rover, the statistics, and in checked builds the quarantine ring. All the
 * rest lives inside the regions, in the chunks' headers and footers.
 *
 * Invariants (fl_check() verifies each; the tests call it after every
 * operation of their random runs):
 *   region:     magic == REGION_MAGIC ^ address; page-aligned; both
 *               fenceposts intact; sum of its chunk sizes ==
 *               size - REGION_OVERHEAD
 *   chunk:      payload % 16 == 0; size % 16 == 0 and size >= 32; check bits
 *               match; F set exactly on its region's first chunk;
 *               P(c) == U(chunk before c), the end fencepost's too
 *   free chunk: footer == header; its neighbours are not free (coalescing
 *               is complete)
 *   free list:  its nodes == the free chunks, each once; next->prev == node;
 *               the rover is NULL or one of its nodes
 *   quarantine: its entries == the chunks with Q set; empty unless checked
 *   statistics: live_bytes == sum of the requests of the chunks with U set
 *               and Q clear; live_blocks == their number; footprint == sum
 *               of the region sizes; regions == their number; each peak >=
 *               its current value
 */
// clang-format on

/* The steps, in the order this file shows them. */
static size_t chunk_need(size_t n);
static void *find_fit(fl_heap *h, size_t need);
static void place(fl_heap *h, void *c, size_t need, size_t request);
static void *region_grow(fl_heap *h, size_t need);
static uint64_t block_validate(const fl_heap *h, const void *p, const char *fn,
                               const char *freed_what);
static void quarantine_push(fl_heap *h, void *c);
static void chunk_release(fl_heap *h, void *c, const void *p);
static bool region_unmap(fl_heap *h, fl_region *r);
static void shrink_in_place(fl_heap *h, void *c, uint64_t w, size_t need,
                            size_t request);
static bool grow_in_place(fl_heap *h, void *c, uint64_t w, size_t need,
                          size_t request);
/* The plumbing, at the end: metadata words, list links, statistics. */
static void word_set(void *at, uint64_t w);
static void write_free(void *c, size_t size, unsigned flags);
static void write_used(void *c, size_t size, unsigned flags, size_t request);
static void set_prev_used(void *c, bool used);
static uint64_t neighbour_get(void *c, const char *fn, const void *p);
static void *chunk_of(void *p);
static void list_push(fl_heap *h, void *c);
static void list_remove(fl_heap *h, void *c);
static void list_replace(fl_heap *h, void *old, void *fresh);
static void stats_alloc(fl_heap *h, size_t request);

// clang-format off
/* ---- The fast path: fl_alloc -------------------------------------------- */
// clang-format on

/* The steps of the header comment. The request is kept in the header's
 * slack, so that the tools can be told exactly how many bytes the caller
 * may touch. */
void *fl_alloc(fl_heap *h, size_t size)
{
    if (size > FL_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    /* STEP 1: the chunk size. */
    size_t need = chunk_need(size);
    /* STEP 2: search the free list; STEP 3: else map a region. */
    void *c = find_fit(h, need);
    if (c == NULL && (c = region_grow(h, need)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    /* STEPS 4 and 5: split, mark used. */
    place(h, c, need, size);
    stats_alloc(h, size);
    void *p = at(c, FL_HEADER);
    track_fill_fresh(p, size);
    track_malloc(p, size, 0, 0);
    return p;
}

/* n bytes of payload as a chunk size: header added, multiple of 16, >= 32.
 * n <= FL_MAX_REQUEST, so the sum cannot wrap. */
static size_t chunk_need(size_t n)
{
    size_t need = (n + FL_HEADER + 15) & ~(size_t)15;
    return need < FL_MIN_CHUNK ? FL_MIN_CHUNK : need;
}

/*
 * A free chunk of at least `need` bytes, or NULL. The one place where the
 * policies differ; the rest of the allocator does not know which is in use.
 * Each pass reads two words per chunk it passes, its size (free_size) and
 * its next link (link_next): this loop is what grows with fragmentation,
 * and what stage 05's bins shorten.
 */
static void *find_fit(fl_heap *h, size_t need)
{
    void *c, *best = NULL;
    size_t best_size = SIZE_MAX;
    switch (h->policy) {
    case FL_FIRST_FIT:
        for (c = h->free_head; c != NULL; c = link_next(c))
            if (free_size(c) >= need)
                return c;
        return NULL;
    case FL_NEXT_FIT: {
        /* From the rover to the end, then from the head up to the rover. */
        void *start = h->rover != NULL ? h->rover : h->free_head;
        for (c = start; c != NULL; c = link_next(c))
            if (free_size(c) >= need)
                return c;
        for (c = h->free_head; c != start; c = link_next(c))
            if (free_size(c) >= need)
                return c;
        return NULL;
    }
    case FL_BEST_FIT:
        for (c = h->free_head; c != NULL; c = link_next(c)) {
            size_t s = free_size(c);
            if (s >= need && s < best_size) {
                best = c;
                best_size = s;
                if (s == need)
                    break; /* nothing fits better than exactly */
            }
        }
        return best;
    }
    return NULL;
}

/*
 * Hands out free chunk c for a request of `request` bytes (chunk size
 * need): split when the tail would be a chunk of its own, else take it all.
 * Either way the rover moves to where the next search should resume.
 */
static void place(fl_heap *h, void *c, size_t need, size_t request)
{
    uint64_t w = word_get(c);
    size_t size = w_size(w);
    unsigned keep = w_flags(w) & (FL_PREV_USED | FL_FIRST);
    if (size - need >= FL_MIN_CHUNK) {
        /* STEP 4: the tail takes c's place in the list. */
        void *rest = at(c, need);
        write_free(rest, size - need, FL_PREV_USED);
        list_replace(h, c, rest);
        h->rover = rest;
        /* STEP 5: the chunk after the tail still follows a free chunk,
         * so its P bit stays clear. */
        write_used(c, need, keep, request);
    } else {
        h->rover = link_next(c);
        list_remove(h, c);
        write_used(c, size, keep, request); /* STEP 5 */
        set_prev_used(at(c, size), true);
    }
}

// clang-format off
/*
 * ---- The slow path: a new region -------------------------------------------
 *
 * A region is the unit of exchange with the OS: mmap when no free chunk
 * fits, munmap when all its chunks are free again. A new region is
 * FL_REGION_MIN (64 KiB) or the request plus 48 bytes of region overhead
 * rounded up to whole pages, whichever is more. A fixed size keeps the
 * footprint close to the live payload on small heaps (a geometric growth
 * would map more than they use); a big request gets a region of its own,
 * which goes back to the OS when it is freed, as glibc's mmap'd chunks do.
 */
// clang-format on

/* Maps a region big enough for a chunk of `need` bytes, links it, and puts
 * its chunk area on the free list as one free chunk, which it returns. NULL
 * if the OS refuses (errno set by mmap). One mmap: the expensive step that
 * the 64 KiB minimum spreads over many allocations. */
static void *region_grow(fl_heap *h, size_t need)
{
    size_t page = page_size();
    size_t bytes = (need + REGION_OVERHEAD + page - 1) & ~(page - 1);
    if (bytes < FL_REGION_MIN)
        bytes = FL_REGION_MIN;
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    /* ASan keeps shadow of memory someone unmapped here before: clear it. */
    track_mem_undefined(mem, bytes);
    fl_region *r = mem;
    r->next = h->regions;
    r->prev = NULL;
    r->size = bytes;
    r->magic = REGION_MAGIC ^ (uintptr_t)r;
    if (r->next != NULL)
        r->next->prev = r;
    h->regions = r;
    track_mem_noaccess(at(mem, sizeof *r), bytes - sizeof *r);

    void *start_fence = at(mem, sizeof *r), *end_fence = at(mem, bytes - 8);
    void *c = at(mem, REGION_FIRST);
    word_set(start_fence, fl_header_word(start_fence, FENCE_SIZE,
                                         FL_USED | FL_PREV_USED, 0));
    write_free(c, bytes - REGION_OVERHEAD, FL_PREV_USED | FL_FIRST);
    word_set(end_fence, fl_header_word(end_fence, FENCE_SIZE, FL_USED, 0));
    list_push(h, c);

    h->stats.mmaps++;
    h->stats.regions++;
    h->stats.footprint += bytes;
    if (h->stats.footprint > h->stats.peak_footprint)
        h->stats.peak_footprint = h->stats.footprint;
    return c;
}

// clang-format off
/* ---- Free: coalescing with both neighbours ------------------------------ */
// clang-format on

/* Checks first, then the tools are told (track_free) before any byte of the
 * block is touched again, then the chunk is freed: at once in release
 * builds, through the quarantine in checked ones. errno stays as it was:
 * the one call here that can change it is the munmap of an emptied
 * region, and region_unmap saves and restores it there, so that this fast
 * path does not pay for it (reading errno is a call to __errno_location). */
void fl_free(fl_heap *h, void *p)
{
    if (p == NULL)
        return;
    uint64_t w = block_validate(h, p, "fl_free", "double free"); /* STEP 1 */
    size_t request = w_request(w);
    track_free(p, request, 0);
    h->stats.live_bytes -= request;
    h->stats.live_blocks--;
    track_fill_freed(p, w_size(w) - FL_HEADER);
    if (FL_CHECKED)
        quarantine_push(h, chunk_of(p));
    else
        chunk_release(h, chunk_of(p), p); /* STEPS 2 and 3 */
}

/*
 * Step 1: the checks every free and realloc makes, and their reports.
 * Returns the chunk's header word. `freed_what` names the misuse of a freed
 * block. All but the region walk cost a few instructions and stay on in
 * every build.
 */
static uint64_t block_validate(const fl_heap *h, const void *p, const char *fn,
                               const char *freed_what)
{
    if ((uintptr_t)p % FL_ALIGN != 0)
        alloc_fatal(STAGE, fn, p, "not a block of this heap (misaligned)");
    const void *c = (const char *)p - FL_HEADER;
    if (FL_CHECKED && region_find(h, c) == NULL)
        alloc_fatal(STAGE, fn, p,
                    "not a block of this heap (outside every region)");
    uint64_t w = word_get(c);
    if (!w_ok(c, w) || w_size(w) < FL_MIN_CHUNK)
        alloc_fatal(STAGE, fn, p,
                    "corrupted header, or not a block of this heap "
                    "(check bits do not match)");
    if (!(w_flags(w) & FL_USED) || (w_flags(w) & FL_QUARANTINE_BIT))
        alloc_fatal(STAGE, fn, p, freed_what);
    /* The next header is the first thing an overflow hits: glibc's
     * "free(): invalid next size", at the cost of one more word read. */
    const void *next = (const char *)c + w_size(w);
    if (!w_ok(next, word_get(next)))
        alloc_fatal(STAGE, fn, p,
                    "corrupted header of the next chunk (a write past the "
                    "end of this block?)");
    return w;
}

/* Checked builds: holds chunk c back (flag Q); when the ring is full, the
 * oldest chunk in it is really freed. */
static void quarantine_push(fl_heap *h, void *c)
{
    uint64_t w = word_get(c);
    word_set(c, fl_header_word(c, w_size(w), w_flags(w) | FL_QUARANTINE_BIT,
                               w_slack(w)));
    if (h->q_count == FL_QUARANTINE) {
        void *oldest = h->quarantine[h->q_first];
        h->q_first = (h->q_first + 1) % FL_QUARANTINE;
        h->q_count--;
        chunk_release(h, oldest, at(oldest, FL_HEADER));
    }
    h->quarantine[(h->q_first + h->q_count) % FL_QUARANTINE] = c;
    h->q_count++;
}

/*
 * Steps 2 and 3: makes chunk c (used or quarantined) free, merged with a
 * free next and a free previous chunk, and puts the result on the list, or
 * unmaps its region if the region is now entirely free. p is the block's
 * address, for messages only.
 */
static void chunk_release(fl_heap *h, void *c, const void *p)
{
    uint64_t w = word_get(c);
    size_t size = w_size(w);
    unsigned flags = w_flags(w) & (FL_PREV_USED | FL_FIRST);

    /* STEP 2a: the next chunk (a fencepost is "used": the merge stops). */
    uint64_t nw = neighbour_get(at(c, size), "fl_free", p);
    if (!(w_flags(nw) & FL_USED)) {
        list_remove(h, at(c, size));
        size += w_size(nw);
    }
    /* STEP 2b: the previous chunk, found from its footer. */
    if (!(flags & FL_PREV_USED)) {
        uint64_t fw = word_get((char *)c - FL_HEADER);
        void *prev = (char *)c - w_size(fw);
        uint64_t pw = word_get(prev);
        if (pw != fw || !w_ok(prev, pw) || (w_flags(pw) & FL_USED))
            alloc_fatal(STAGE, "fl_free", p,
                        "corrupted footer of the previous chunk");
        list_remove(h, prev);
        /* c's header now lies inside prev's chunk, where nothing reads it
         * but a second free (or a realloc) of c's block. Marked free, it
         * makes block_validate say "double free" in every build; left as
         * it was (U set), it would pass, and this step would then read a
         * stale footer and report a corrupted one. One word a merge. */
        word_set(c, fl_header_word(c, w_size(w), 0, 0));
        size += w_size(pw);
        c = prev;
        flags = w_flags(pw) & (FL_PREV_USED | FL_FIRST);
    }
    /* STEP 3: one free chunk; its next neighbour now follows a free one. */
    void *after = at(c, size);
    set_prev_used(after, false);
    write_free(c, size, flags);
    if ((flags & FL_FIRST) && w_size(word_get(after)) == FENCE_SIZE) {
        /* The whole region is free: give it back, unless it is the heap's
         * only region and a 64 KiB one (FL_REGION_MIN), so that a program
         * that allocates and frees one block in a loop does not mmap and
         * munmap every time. (A bigger one, a big block's own, goes back
         * even when it is the only one.) */
        fl_region *r = (fl_region *)((char *)c - REGION_FIRST);
        if (!(h->stats.regions == 1 && r->size == FL_REGION_MIN) &&
            region_unmap(h, r))
            return;
        /* Kept, or refused by the OS: one free chunk, which goes back the
         * next time the region empties. */
    }
    list_push(h, c);
}

/*
 * Gives region r back to the OS and unlinks it. The OS may refuse: munmap
 * fails with ENOMEM at the limit on the number of mappings
 * (vm.max_map_count). Then r is left exactly as it was, linked and counted,
 * and the caller keeps it. Returns whether r is gone.
 *
 * errno is left as it was, refused or not: every free-like function of the
 * API (fl_free, fl_realloc, fl_quarantine_flush, fl_destroy) promises it,
 * as POSIX asks of free, and this is the only place where they call the OS.
 * Saved here, in the slow path, the promise costs the fast path nothing.
 */
static bool region_unmap(fl_heap *h, fl_region *r)
{
    fl_region *next = r->next, *prev = r->prev;
    size_t bytes = r->size;
    /* Leave no poison behind for ASan (the region header has none). */
    track_mem_undefined(at(r, sizeof *r), bytes - sizeof *r);
    int saved_errno = errno;
    int refused = munmap(r, bytes);
    errno = saved_errno;
    if (refused != 0) {
        /* Still ours, and empty: no-access again past its header. */
        track_mem_noaccess(at(r, sizeof *r), bytes - sizeof *r);
        return false;
    }
    if (prev != NULL)
        prev->next = next;
    else
        h->regions = next;
    if (next != NULL)
        next->prev = prev;
    h->stats.munmaps++;
    h->stats.regions--;
    h->stats.footprint -= bytes;
    return true;
}

void fl_quarantine_flush(fl_heap *h)
{
    while (h->q_count > 0) { /* errno: see region_unmap */
        void *c = h->quarantine[h->q_first];
        h->q_first = (h->q_first + 1) % FL_QUARANTINE;
        h->q_count--;
        chunk_release(h, c, at(c, FL_HEADER));
    }
    h->q_first = 0;
}

// clang-format off
/* ---- realloc: in place when it can -------------------------------------- */
// clang-format on

/* In place when it can (no copy, the caller's pointer stays valid), else a
 * move. The memory tools see an in-place change as a resize of the same
 * block, so its bytes keep their "defined" state. Its frees go through
 * fl_free, which leaves errno alone. */
void *fl_realloc(fl_heap *h, void *p, size_t size)
{
    if (p == NULL)
        return fl_alloc(h, size);
    if (size == 0) {
        fl_free(h, p);
        return NULL;
    }
    if (size > FL_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    uint64_t w = block_validate(h, p, "fl_realloc", "realloc of a freed block");
    void *c = chunk_of(p);
    size_t old = w_request(w), need = chunk_need(size);
    if (need <= w_size(w) || grow_in_place(h, c, w, need, size)) {
        if (need <= w_size(w))
            shrink_in_place(h, c, w, need, size);
        h->stats.live_bytes = h->stats.live_bytes - old + size;
        if (h->stats.live_bytes > h->stats.peak_live)
            h->stats.peak_live = h->stats.live_bytes;
        track_resize(p, old, size, 0);
        return p;
    }
    /* Neither: move. The old block stays valid if the new one fails. */
    void *q = fl_alloc(h, size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old);
    fl_free(h, p);
    return q;
}

/* Shrinks used chunk c (header w) to `need`; a tail big enough to be a
 * chunk is freed (and merges with a free next chunk). The block itself
 * stays, so its region cannot empty: no munmap here. */
static void shrink_in_place(fl_heap *h, void *c, uint64_t w, size_t need,
                            size_t request)
{
    size_t size = w_size(w);
    unsigned flags = w_flags(w) & (FL_PREV_USED | FL_FIRST);
    if (size - need >= FL_MIN_CHUNK) {
        write_used(c, need, flags, request);
        void *tail = at(c, need);
        word_set(tail,
                 fl_header_word(tail, size - need, FL_USED | FL_PREV_USED, 0));
        chunk_release(h, tail, at(c, FL_HEADER));
    } else {
        write_used(c, size, flags, request);
    }
}

/* Grows used chunk c into a free next chunk, if together they hold `need`
 * bytes. Returns false (and changes nothing) when they do not. */
static bool grow_in_place(fl_heap *h, void *c, uint64_t w, size_t need,
                          size_t request)
{
    size_t size = w_size(w);
    unsigned flags = w_flags(w) & (FL_PREV_USED | FL_FIRST);
    void *next = at(c, size);
    uint64_t nw = neighbour_get(next, "fl_realloc", at(c, FL_HEADER));
    if ((w_flags(nw) & FL_USED) || size + w_size(nw) < need)
        return false;
    size_t total = size + w_size(nw);
    /* Unlink first: the remainder's header may land on next's links. */
    list_remove(h, next);
    if (total - need >= FL_MIN_CHUNK) {
        void *rest = at(c, need);
        write_free(rest, total - need, FL_PREV_USED);
        list_push(h, rest);
        write_used(c, need, flags, request);
    } else {
        write_used(c, total, flags, request);
        set_prev_used(at(c, total), true);
    }
    return true;
}

// clang-format off
/* ---- The rest of the API ------------------------------------------------ */
// clang-format on

/* The product is tested before it is formed: nmemb * size wraps silently
 * in size_t, and a wrapped small size would hand out a short block. */
void *fl_calloc(fl_heap *h, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = fl_alloc(h, nmemb * size);
    if (p != NULL)
        memset(p, 0, nmemb * size);
    return p;
}

/* A search for room enough for any misalignment, then two splits: the free
 * piece in front of the aligned payload, and the tail after the block. */
void *fl_aligned_alloc(fl_heap *h, size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (align <= FL_ALIGN)
        return fl_alloc(h, size);
    if (size > FL_MAX_REQUEST || align > FL_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    /* STEP 1: a chunk with room for any misalignment plus a free front. */
    size_t need = chunk_need(size);
    size_t want = need + align + FL_MIN_CHUNK;
    void *c = find_fit(h, want);
    if (c == NULL && (c = region_grow(h, want)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    uint64_t w = word_get(c);
    size_t total = w_size(w);
    unsigned flags = w_flags(w) & (FL_PREV_USED | FL_FIRST);
    h->rover = link_next(c);
    list_remove(h, c);

    /* STEP 2: the aligned payload, at least a smallest chunk past c's, so
     * that the front is a free chunk of its own (align >= 32 here). */
    uintptr_t p0 = (uintptr_t)c + FL_HEADER;
    uintptr_t q = (p0 + align - 1) & ~(uintptr_t)(align - 1);
    if (q != p0 && q - p0 < FL_MIN_CHUNK)
        q += align;
    size_t front = (size_t)(q - p0);
    if (front > 0) {
        write_free(c, front, flags);
        list_push(h, c);
        c = at(c, front);
        total -= front;
        flags = 0; /* its previous chunk (the front) is free */
    }
    /* STEP 3: keep need bytes, free the tail (its next chunk is used: c
     * was free, and free chunks never touch). */
    if (total - need >= FL_MIN_CHUNK) {
        write_used(c, need, flags, size);
        write_free(at(c, need), total - need, FL_PREV_USED);
        list_push(h, at(c, need));
    } else {
        write_used(c, total, flags, size);
        set_prev_used(at(c, total), true);
    }
    stats_alloc(h, size);
    void *p = at(c, FL_HEADER);
    track_fill_fresh(p, size);
    track_malloc(p, size, 0, 0);
    return p;
}

int fl_init(fl_heap *h, fl_policy policy)
{
    if (policy != FL_FIRST_FIT && policy != FL_NEXT_FIT &&
        policy != FL_BEST_FIT) {
        errno = EINVAL;
        return -1;
    }
    memset(h, 0, sizeof *h);
    h->policy = policy;
    return 0;
}

size_t fl_destroy(fl_heap *h)
{
    size_t live = 0; /* errno: region_unmap keeps it */
    fl_region *next;
    for (fl_region *r = h->regions; r != NULL; r = next) {
        next = r->next;
        /* Tell the tools that blocks still live die here. */
        char *c = at(r, REGION_FIRST), *end = at(r, r->size - FL_HEADER);
        while (c < end) {
            uint64_t w = word_get(c);
            if ((w_flags(w) & (FL_USED | FL_QUARANTINE_BIT)) == FL_USED) {
                track_free(c + FL_HEADER, w_request(w), 0);
                live++;
            }
            if (w_size(w) == 0)
                break; /* a damaged heap: do not loop */
            c += w_size(w);
        }
        /* A region the OS refuses to take back stays mapped, forgotten:
         * the heap is empty after fl_destroy either way. */
        if (!region_unmap(h, r))
            track_mem_undefined(r, r->size);
    }
    fl_policy policy = h->policy;
    fl_init(h, policy);
    return live;
}

void fl_set_policy(fl_heap *h, fl_policy policy)
{
    h->policy = policy;
}

const char *fl_policy_name(fl_policy policy)
{
    switch (policy) {
    case FL_FIRST_FIT:
        return "first-fit";
    case FL_NEXT_FIT:
        return "next-fit";
    case FL_BEST_FIT:
        return "best-fit";
    }
    return "?";
}

size_t fl_usable_size(const fl_heap *h, const void *p)
{
    if (p == NULL)
        return 0;
    uint64_t w = block_validate(h, p, "fl_usable_size", "block already freed");
    return TRACK_ENABLED ? w_request(w) : w_size(w) - FL_HEADER;
}

/* The free-list figures are counted by a walk of the list: O(free chunks). */
fl_stats_t fl_stats(const fl_heap *h)
{
    fl_stats_t s = h->stats;
    s.free_chunks = s.free_bytes = 0;
    for (void *c = h->free_head; c != NULL; c = link_next(c)) {
        s.free_chunks++;
        s.free_bytes += free_size(c);
    }
    return s;
}

size_t fl_footprint(const fl_heap *h)
{
    return h->stats.footprint;
}

// clang-format off
/* ---- Plumbing: metadata words, list links, statistics ------------------- */
// clang-format on

uint64_t fl_header_word(const void *chunk, size_t size, unsigned flags,
                        size_t slack)
{
    uint64_t body = ((uint64_t)slack << SLACK_SHIFT) |
                    ((uint64_t)size & SIZE_MASK) | (flags & FLAGS_MASK);
    return body | (check_bits(chunk, body) << CHECK_SHIFT);
}

/* word_get's counterpart (fl_internal.h): a write, opened for the memory
 * tool for the instant of the write, no-access again after it. */
static void word_set(void *at, uint64_t w)
{
    track_mem_undefined(at, 8);
    memcpy(at, &w, sizeof w);
    track_mem_noaccess(at, 8);
}

/* A free chunk: header and footer, the same word. */
static void write_free(void *c, size_t size, unsigned flags)
{
    uint64_t w =
        fl_header_word(c, size, flags & ~(FL_USED | FL_QUARANTINE_BIT), 0);
    word_set(c, w);
    word_set(at(c, size - FL_HEADER), w);
}

/* A used chunk's header; slack is what the payload holds beyond `request`. */
static void write_used(void *c, size_t size, unsigned flags, size_t request)
{
    size_t slack = size - FL_HEADER - request;
    /* Splitting leaves less than a smallest chunk behind: slack <= 40. */
    if (slack > SLACK_MAX)
        alloc_fatal(STAGE, "write_used", at(c, FL_HEADER),
                    "internal: slack too big");
    word_set(c, fl_header_word(c, size, flags | FL_USED, slack));
}

/* Sets or clears the P bit of chunk c (a used chunk or a fencepost). */
static void set_prev_used(void *c, bool used)
{
    uint64_t w = word_get(c);
    unsigned f = w_flags(w);
    f = used ? (f | FL_PREV_USED) : (f & ~FL_PREV_USED);
    word_set(c, fl_header_word(c, w_size(w), f, w_slack(w)));
}

/* The header of a neighbour; a bad one means the heap is corrupted (most
 * often: the block before it was written past its end). */
static uint64_t neighbour_get(void *c, const char *fn, const void *p)
{
    uint64_t w = word_get(c);
    if (!w_ok(c, w))
        alloc_fatal(STAGE, fn, p,
                    "corrupted header of a neighbouring chunk "
                    "(a write past the end of a block?)");
    return w;
}

/* The chunk of a block: its header is the 8 bytes before it. */
static void *chunk_of(void *p)
{
    return (char *)p - FL_HEADER;
}

/*
 * The free list: doubly linked, so that coalescing can unlink a neighbour
 * it found by address (not by walking the list) in O(1); NULL-terminated;
 * LIFO, because a push at the head is O(1) and keeps recently freed
 * (cache-warm) chunks first. The cost: first fit meets the small leftovers
 * of recent splits first (the README's exercise 1 tries address order).
 */
static void set_next(void *c, void *n)
{
    word_set(at(c, 8), (uintptr_t)n);
}
static void set_prev(void *c, void *p)
{
    word_set(at(c, 16), (uintptr_t)p);
}

static void list_push(fl_heap *h, void *c)
{
    set_next(c, h->free_head);
    set_prev(c, NULL);
    if (h->free_head != NULL)
        set_prev(h->free_head, c);
    h->free_head = c;
}

static void list_remove(fl_heap *h, void *c)
{
    void *n = link_next(c), *p = link_prev(c);
    if (p != NULL)
        set_next(p, n);
    else
        h->free_head = n;
    if (n != NULL)
        set_prev(n, p);
    if (h->rover == c)
        h->rover = n;
}

/* `fresh` takes `old`'s place in the list (a split chunk's remainder). */
static void list_replace(fl_heap *h, void *old, void *fresh)
{
    void *n = link_next(old), *p = link_prev(old);
    set_next(fresh, n);
    set_prev(fresh, p);
    if (p != NULL)
        set_next(p, fresh);
    else
        h->free_head = fresh;
    if (n != NULL)
        set_prev(n, fresh);
    if (h->rover == old)
        h->rover = fresh;
}

static void stats_alloc(fl_heap *h, size_t request)
{
    h->stats.live_bytes += request;
    h->stats.live_blocks++;
    if (h->stats.live_bytes > h->stats.peak_live)
        h->stats.peak_live = h->stats.live_bytes;
}
