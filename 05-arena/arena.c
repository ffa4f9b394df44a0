/*
 * arena.c: stage 05, glibc's malloc design (ptmalloc2), rebuilt to be read:
 * the chunk, the bins, and the request and free paths of one arena.
 *
 * Stage 04 kept every free chunk on one list and walked it for each request:
 * its best fit packed well and paid a walk per request. Here free chunks are
 * sorted by size into bins, so that a request looks at the one or two bins
 * where a fitting chunk can be, and a bitmap of the non-empty bins (the
 * binmap) finds the next larger one in a few instructions. The free chunk at
 * the end of memory, the top chunk, is what every bin falls back on; it
 * grows into a 64 MB reservation (a heap) as needed. Threads get arenas of
 * their own (an arena: bins, a top chunk and a lock), and in front of the
 * arenas each thread keeps a few free chunks of each small size with no lock
 * at all (the per-thread cache, glibc's tcache).
 *
 * The files, in reading order:
 *   arena.h          the API
 *   arena.c          this file: the layout, the bins, the request and free
 *                    paths of one arena (called with its lock held)
 *   arena_heap.c     heaps: reserving, committing, the top chunk's growth,
 *                    trimming; chunks with a mapping of their own
 *   arena_thread.c   the public calls: the per-thread cache in front, then
 *                    the thread's arena; the checked builds' extra checks
 *   arena_process.c  what the threads share: the arenas and which one a
 *                    thread gets, a thread's start and exit, fork, the
 *                    settings, trim, the figures
 *   arena_check.c    arena_check() and arena_dump() (optional: they read the
 *                    structures and never change them)
 *   arena_internal.h what the five share: constants, accessors, structs
 *   malloc_shim.c    the C library's names, for LD_PRELOAD (optional)
 *
 * Allocating n bytes (malloc), the steps as glibc takes them:
 *   0. The per-thread cache (arena_thread.c): a chunk of this exact size,
 *      if the thread keeps one: no lock, a dozen instructions.
 *   1. Size: nb = n + 8 rounded up to 16, at least 32. Lock the thread's
 *      arena. Every later step runs under that lock.
 *   2. Fast bin (nb <= 128): the exact-size LIFO list; take its head. Put
 *      more chunks of the same size into the thread's cache while there.
 *   3. Small bin (nb < 1024): the exact-size list; take its oldest chunk
 *      (and, again, fill the cache from it).
 *   4. A large request first merges every fast-bin chunk with its free
 *      neighbours (malloc_consolidate): a large request wants big chunks,
 *      and fast chunks are fragments that were never merged.
 *   5. The unsorted bin: freed and split chunks wait here one pass before
 *      they are sorted. Walk it: a small request may take the rest of the
 *      last split (the last remainder) at once; an exact fit is taken (or,
 *      for a cacheable size, put in the cache and the walk goes on); every
 *      other chunk is sorted into its small or large bin.
 *   6. A large request: best fit in its own large bin, which is kept sorted
 *      by size; split off the rest into the unsorted bin.
 *   7. The binmap: the next larger non-empty bin, its smallest chunk, split.
 *   8. The top chunk, if it is big enough: split it.
 *   9. If fast-bin chunks remain, merge them (step 4) and go back to step 5.
 *  10. More memory (arena_heap.c): grow the top into the heap's reserve,
 *      chain a new heap to the arena, or give the request a mapping of its
 *      own (a request at or above the mmap threshold, 128 KiB at first).
 *
 * Freeing a block:
 *   0. (arena_thread.c) The cheap checks (alignment, size); a chunk with a
 *      mapping of its own is unmapped (and the mmap threshold moves up to
 *      its size); otherwise the thread's cache takes it if it has room.
 *   1. Lock the chunk's arena, found from the chunk's address: its heap
 *      starts at address & ~(64 MB - 1), and the heap's header names it.
 *   2. Fast bin (size <= 128): push it, unmerged (it stays "in use").
 *   3. Otherwise merge it with a free chunk before it (found through its
 *      prev_size word) and after it (unlinked from its bin), or into top.
 *   4. Put the result at the head of the unsorted bin.
 *   5. If the result is 64 KiB or more: merge the fast bins, and if the top
 *      chunk is above the trim threshold, give its end back to the OS.
 *
 * Costs: steps 0, 2 and 3 are O(1); step 5 is O(chunks waiting), each
 * chunk sorted once (a large one in O(distinct sizes in its bin)); step 6
 * is O(distinct sizes in one bin); step 7 is a few bit scans. A free is
 * O(1) outside step 5 of free, whose consolidation is O(fast chunks).
 *
 * Left out, each for a later stage: memory of a size class kept apart from
 * other sizes (stage 06's spans: no external fragmentation inside them),
 * and the per-thread cache as the whole design, with central lists per size
 * instead of arenas (stage 07). Kept out on purpose: glibc's brk-based main
 * arena (here every arena lives in mmap'd heaps), its lock-free fast bins
 * (here they are under the arena lock), its tunables and hooks.
 *
 * ---- Layout ---------------------------------------------------------------
 *
 * <diagram chunk>
 *  A chunk in use, and a free one (each row one 8-byte word):
 *
 *  chunk -> +------------------------------+
 *           | prev_size                    |  the previous chunk's size if
 *           +------------------------------+  it is free (P clear); else
 *           | size                 | A M P |  its last word of payload
 *    mem -> +------------------------------+
 *           | payload ...                  |  A: not the main arena's
 *           :                              :  M: mapped on its own
 *   next -> +------------------------------+  P: previous chunk in use
 *           | payload's last word          |  (the next prev_size is this
 *           +------------------------------+  chunk's while it is in use)
 *           | next's size          | A M 1 |
 *           +------------------------------+
 *
 *  chunk -> +------------------------------+
 *           | prev_size                    |
 *           +------------------------------+
 *           | size                 | 0 0 P |
 *    mem -> +------------------------------+
 *           | fd: next in its bin          |
 *           | bk: previous in its bin      |
 *           | fd_nextsize, bk_nextsize     |  large bins only: links between
 *           | ... unused ...               |  the first chunks of each size
 *   next -> +------------------------------+
 *           | prev_size = size (footer)    |
 *           +------------------------------+
 *           | next's size          | A M 0 |
 *           +------------------------------+
 * </diagram>
 *
 * A chunk is 16-byte aligned, its payload 16 bytes further; 32 bytes at
 * least (a free chunk holds its header, fd, bk, and the next chunk's
 * prev_size). A used chunk has no footer: the next chunk's P bit says it is
 * used, so its last word is payload. Fast-bin chunks and chunks in a
 * per-thread cache keep P set in their next chunk: to their neighbours they
 * are in use, which is why they are never merged until consolidated.
 *
 * <diagram bins>
 *  An arena's bins (fast bins and bins[] live in its struct):
 *
 *  fast bins  [32] -> c -> c -> 0      LIFO, single links, safe-linked,
 *             [48] -> c -> 0           chunks to 128 B, never merged
 *  bin 1      unsorted  <-> c <-> c    freed and split chunks, one pass
 *  bins 2-63  small     <-> c <-> c    one size each, 32 .. 1008 B, FIFO
 *  bins 64-126 large    <-> c <-> c    a range each, largest first, plus
 *                                      links between the sizes
 *  binmap     0110 0000 ... 1000 ...   a bit per bin: may be non-empty
 *  top        -> the rest of the newest heap, grown on demand
 * </diagram>
 */
#include "arena_internal.h"

#include <errno.h>
#include <string.h>

/* Helpers of the request path, defined after it. */
static void fastbin_pop(arena_t *a, unsigned idx, mchunk *victim);
static void stash_fast(arena_t *a, unsigned idx, arena_thread *t, size_t tidx);
static void stash_small(arena_t *a, mchunk *bin, size_t nb, arena_thread *t,
                        size_t tidx);
static void *take_unsorted_remainder(arena_t *a, mchunk *victim, size_t size,
                                     size_t nb);
static void place_in_bin(arena_t *a, mchunk *victim, size_t size);
static void *split_off(arena_t *a, mchunk *victim, size_t size, size_t nb,
                       bool remember);
static unsigned next_marked_bin(arena_t *a, unsigned from);

/* Most unsorted chunks sorted in one walk (glibc's bound): a request is
 * not made to pay for all of a long backlog at once. */
#define MAX_UNSORTED_ITERS 10000

static size_t arena_flag(const arena_t *a)
{
    return a == &main_arena ? 0 : NON_MAIN_ARENA;
}

/*
 * The request path, steps 2 to 10 of the overview, for a chunk of nb bytes
 * (a multiple of 16, at least MINSIZE). The caller holds a's lock. Returns
 * the payload, or NULL with errno ENOMEM.
 */
void *int_malloc(arena_t *a, size_t nb, arena_thread *t)
{
    size_t tidx = csize2tidx(nb);
    bool cache = t != NULL && tidx < TCACHE_BINS && t->limit > 0;
    mchunk *unsorted = unsorted_chunks(a);
    unsigned idx;

    /* STEP 2: the fast bin of this exact size, LIFO. */
    if (nb <= param_get(&mp.max_fast)) {
        unsigned fi = fastbin_index(nb);
        mchunk *victim = a->fastbins[fi];
        if (victim != NULL) {
            fastbin_pop(a, fi, victim);
            if (cache)
                stash_fast(a, fi, t, tidx);
            return chunk2mem(victim);
        }
    }

    /* STEP 3: the small bin of this exact size; its oldest chunk (bk end). */
    if (in_smallbin_range(nb)) {
        idx = smallbin_index(nb);
        mchunk *bin = bin_at(a, idx);
        mchunk *victim = bk(bin);
        if (victim != bin) {
            mchunk *bck = bk(victim);
            if (fd(bck) != victim)
                arena_fatal("arena_malloc", chunk2mem(victim),
                            "corrupted small bin (its links do not point "
                            "back)");
            set_inuse_at(victim, nb);
            set_head(victim, head(victim) | arena_flag(a));
            set_bk(bin, bck);
            set_fd(bck, bin);
            if (cache)
                stash_small(a, bin, nb, t, tidx);
            return chunk2mem(victim);
        }
    } else {
        /* STEP 4: a large request merges the fast-bin fragments first. */
        idx = largebin_index(nb);
        if (a->have_fastchunks)
            malloc_consolidate(a);
    }

    bool return_cached = false; /* step 5 put exact fits in the cache */
    for (;;) {
        /* STEP 5: the unsorted bin, oldest first (bk end). */
        mchunk *victim;
        int iters = 0;
        while ((victim = bk(unsorted)) != unsorted) {
            mchunk *bck = bk(victim);
            size_t size = chunksize(victim);
            mchunk *next = chunk_at(victim, size);
            if (size <= CHUNK_HDR || size > a->system_mem)
                arena_fatal("arena_malloc", chunk2mem(victim),
                            "invalid size of a chunk in the unsorted bin");
            if (chunksize(next) < CHUNK_HDR || chunksize(next) > a->system_mem)
                arena_fatal("arena_malloc", chunk2mem(victim),
                            "invalid size of the chunk after an unsorted one");
            if (prev_size(next) != size)
                arena_fatal("arena_malloc", chunk2mem(victim),
                            "size of an unsorted chunk disagrees with the "
                            "next chunk's prev_size");
            if (fd(bck) != victim || fd(victim) != unsorted)
                arena_fatal("arena_malloc", chunk2mem(victim),
                            "corrupted unsorted bin (its links do not point "
                            "back)");
            if (prev_inuse(next))
                arena_fatal("arena_malloc", chunk2mem(victim),
                            "a chunk in the unsorted bin is marked in use");

            /* A small request takes from the last remainder when it is
             * the only chunk waiting: consecutive small requests then lie
             * next to each other in memory. */
            if (in_smallbin_range(nb) && bck == unsorted &&
                victim == a->last_remainder && size > nb + MINSIZE)
                return take_unsorted_remainder(a, victim, size, nb);

            set_bk(unsorted, bck); /* off the unsorted bin */
            set_fd(bck, unsorted);

            if (size == nb) { /* an exact fit */
                set_inuse_at(victim, size);
                set_head(victim, head(victim) | arena_flag(a));
                if (cache && t->counts[tidx] < t->limit) {
                    tcache_put(t, victim, tidx);
                    return_cached = true;
                    continue;
                }
                return chunk2mem(victim);
            }
            place_in_bin(a, victim, size);
            if (++iters >= MAX_UNSORTED_ITERS)
                break;
        }
        if (return_cached)
            return tcache_get(t, tidx);

        /* STEP 6: a large request, best fit in its own (sorted) bin. */
        if (!in_smallbin_range(nb)) {
            mchunk *bin = bin_at(a, idx);
            mchunk *first = fd(bin); /* the largest */
            if (first != bin && chunksize(first) >= nb) {
                victim = bk_nextsize(first); /* the smallest size */
                size_t size;
                while ((size = chunksize(victim)) < nb)
                    victim = bk_nextsize(victim);
                /* Take the second chunk of that size if there is one, so
                 * that the links between sizes need no change. */
                if (victim != bk(bin) && chunksize(fd(victim)) == size)
                    victim = fd(victim);
                unlink_chunk(a, victim, "arena_malloc");
                return split_off(a, victim, size, nb, false);
            }
        }

        /* STEP 7: the next larger non-empty bin, through the binmap. */
        for (unsigned b = idx + 1;;) {
            b = next_marked_bin(a, b);
            if (b >= NBINS)
                break;
            mchunk *bin = bin_at(a, b);
            victim = bk(bin); /* the smallest chunk of that bin */
            if (victim == bin) {
                /* Empty: the bit was stale. Clear it now (lazily). */
                a->binmap[b / 64] &= ~((uint64_t)1 << (b % 64));
                b++;
                continue;
            }
            size_t size = chunksize(victim);
            unlink_chunk(a, victim, "arena_malloc");
            return split_off(a, victim, size, nb, in_smallbin_range(nb));
        }

        /* STEP 8: the top chunk, keeping at least MINSIZE of it. */
        if (a->top != NULL && chunksize(a->top) >= nb + MINSIZE)
            return chunk2mem(split_top(a, nb));

        /* STEP 9: fast-bin fragments left? Merge them and walk again. */
        if (a->have_fastchunks) {
            malloc_consolidate(a);
            idx =
                in_smallbin_range(nb) ? smallbin_index(nb) : largebin_index(nb);
            continue;
        }

        /* STEP 10: more memory from the OS (arena_heap.c). */
        return sysmalloc(a, nb);
    }
}

/* ---- The request path's helpers ----------------------------------------- */

/*
 * Takes fast bin idx's head, `victim`, off the list. Both safe-linking
 * checks are here: the head must be aligned, and so must the link it holds
 * once decoded (an overwritten link decodes to garbage); and the chunk's
 * size must be its bin's (a forged chunk must also forge a size).
 */
static void fastbin_pop(arena_t *a, unsigned idx, mchunk *victim)
{
    char *slot = (char *)chunk2mem(victim);
    if (!aligned_ok(victim))
        arena_fatal("arena_malloc", slot,
                    "corrupted fast bin: unaligned chunk");
    mchunk *next = protect_ptr(slot, (void *)(uintptr_t)word_get(slot));
    if (!aligned_ok(next))
        arena_fatal("arena_malloc", slot,
                    "corrupted fast bin: unaligned link (safe-linking: a "
                    "freed block's link was overwritten)");
    if (fastbin_index(chunksize(victim)) != idx)
        arena_fatal("arena_malloc", slot,
                    "corrupted fast bin: a chunk of the wrong size");
    a->fastbins[idx] = next;
    word_set(slot + SIZE_SZ, 0); /* no longer carries the fast-bin key */
}

/* Moves chunks of fast bin idx into the thread's cache while it has room:
 * the next requests of this size take no lock. */
static void stash_fast(arena_t *a, unsigned idx, arena_thread *t, size_t tidx)
{
    mchunk *c;
    while (t->counts[tidx] < t->limit && (c = a->fastbins[idx]) != NULL) {
        fastbin_pop(a, idx, c);
        tcache_put(t, c, tidx);
    }
}

/* The same from small bin `bin` (chunks of nb bytes), oldest first. */
static void stash_small(arena_t *a, mchunk *bin, size_t nb, arena_thread *t,
                        size_t tidx)
{
    mchunk *c;
    while (t->counts[tidx] < t->limit && (c = bk(bin)) != bin) {
        mchunk *bck = bk(c);
        if (fd(bck) != c)
            arena_fatal("arena_malloc", chunk2mem(c),
                        "corrupted small bin (its links do not point back)");
        set_inuse_at(c, nb);
        set_head(c, head(c) | arena_flag(a));
        set_bk(bin, bck);
        set_fd(bck, bin);
        tcache_put(t, c, tidx);
    }
}

/* Inserts free chunk c at the head of the unsorted bin, after checking
 * that the head's first chunk points back. */
static void unsorted_push(arena_t *a, mchunk *c, size_t size, const char *fn)
{
    mchunk *unsorted = unsorted_chunks(a);
    mchunk *fwd = fd(unsorted);
    if (bk(fwd) != unsorted)
        arena_fatal(fn, chunk2mem(c),
                    "corrupted unsorted bin (its first chunk does not point "
                    "back)");
    set_fd(c, fwd);
    set_bk(c, unsorted);
    set_fd(unsorted, c);
    set_bk(fwd, c);
    if (!in_smallbin_range(size)) { /* nextsize links: large bins only */
        set_fd_nextsize(c, NULL);
        set_bk_nextsize(c, NULL);
    }
}

/* A free chunk whose neighbours are both in use, filed in the unsorted bin
 * with no merge and no trim: the old top of a heap being closed
 * (arena_heap.c), whose trim would see the new heap empty and unmap it. */
void unsorted_insert(arena_t *a, mchunk *c, size_t size)
{
    set_head(c, size | PREV_INUSE);
    set_foot(c, size);
    clear_inuse_at(c, size);
    unsorted_push(a, c, size, "arena_malloc");
}

/* Step 5's shortcut: cut nb bytes from the last remainder, which is the
 * only chunk in the unsorted bin; the rest stays there and stays the last
 * remainder. */
static void *take_unsorted_remainder(arena_t *a, mchunk *victim, size_t size,
                                     size_t nb)
{
    mchunk *unsorted = unsorted_chunks(a);
    size_t rsize = size - nb;
    mchunk *rem = chunk_at(victim, nb);
    set_fd(unsorted, rem);
    set_bk(unsorted, rem);
    set_fd(rem, unsorted);
    set_bk(rem, unsorted);
    a->last_remainder = rem;
    if (!in_smallbin_range(rsize)) {
        set_fd_nextsize(rem, NULL);
        set_bk_nextsize(rem, NULL);
    }
    set_head(victim, nb | PREV_INUSE | arena_flag(a));
    set_head(rem, rsize | PREV_INUSE);
    set_foot(rem, rsize);
    return chunk2mem(victim);
}

/* Sets bin i's bit: the bin may be non-empty now. */
static void mark_bin(arena_t *a, unsigned i)
{
    a->binmap[i / 64] |= (uint64_t)1 << (i % 64);
}

/*
 * Step 5's sorting: free chunk `victim` goes into its bin. A small bin is
 * one size, so the chunk goes at the head (FIFO: requests take from the
 * tail). A large bin stays sorted largest first: a chunk of a size already
 * there goes second among those of its size (so that the first, which
 * carries the nextsize links, stays first); a new size gets its place in
 * the nextsize ring, found by walking that ring from the largest size.
 */
static void place_in_bin(arena_t *a, mchunk *victim, size_t size)
{
    unsigned i = bin_index(size);
    mchunk *bck = bin_at(a, i), *fwd = fd(bck);
    if (!in_smallbin_range(size)) {
        if (fwd == bck) { /* an empty bin: a ring of one size */
            set_fd_nextsize(victim, victim);
            set_bk_nextsize(victim, victim);
        } else if (size < chunksize(bk(bck))) {
            /* Smaller than everything: last, a new smallest size. */
            mchunk *first = fwd;
            fwd = bck;
            bck = bk(bck);
            set_fd_nextsize(victim, first);
            set_bk_nextsize(victim, bk_nextsize(first));
            set_fd_nextsize(bk_nextsize(first), victim);
            set_bk_nextsize(first, victim);
        } else {
            while (size < chunksize(fwd))
                fwd = fd_nextsize(fwd);
            if (size == chunksize(fwd)) {
                fwd = fd(fwd); /* second among its size */
            } else {           /* a new size, just before fwd's */
                set_fd_nextsize(victim, fwd);
                set_bk_nextsize(victim, bk_nextsize(fwd));
                if (fd_nextsize(bk_nextsize(fwd)) != fwd)
                    arena_fatal("arena_malloc", chunk2mem(fwd),
                                "corrupted large bin (its size links do "
                                "not point back)");
                set_bk_nextsize(fwd, victim);
                set_fd_nextsize(bk_nextsize(victim), victim);
            }
            bck = bk(fwd);
            if (fd(bck) != fwd)
                arena_fatal("arena_malloc", chunk2mem(fwd),
                            "corrupted large bin (its links do not point "
                            "back)");
        }
    }
    mark_bin(a, i);
    set_bk(victim, bck);
    set_fd(victim, fwd);
    set_bk(fwd, victim);
    set_fd(bck, victim);
}

/*
 * Hands out free chunk `victim` (already unlinked, `size` bytes) for a
 * request of nb: the whole chunk if the rest would be smaller than MINSIZE,
 * else split, the rest to the unsorted bin (and, after a small request's
 * binmap search, remembered as the last remainder).
 */
static void *split_off(arena_t *a, mchunk *victim, size_t size, size_t nb,
                       bool remember)
{
    size_t rsize = size - nb;
    if (rsize < MINSIZE) {
        set_inuse_at(victim, size);
        set_head(victim, head(victim) | arena_flag(a));
        return chunk2mem(victim);
    }
    mchunk *rem = chunk_at(victim, nb);
    unsorted_push(a, rem, rsize, "arena_malloc");
    if (remember)
        a->last_remainder = rem;
    set_head(victim, nb | PREV_INUSE | arena_flag(a));
    set_head(rem, rsize | PREV_INUSE);
    set_foot(rem, rsize);
    return chunk2mem(victim);
}

/* The first bin from `from` on whose binmap bit is set, or NBINS: a bit
 * scan per 64 bins (one or two instructions each), not a walk. */
static unsigned next_marked_bin(arena_t *a, unsigned from)
{
    for (unsigned w = from / 64; w < BINMAP_WORDS; w++) {
        uint64_t m = a->binmap[w];
        if (w == from / 64)
            m &= ~(uint64_t)0 << (from % 64);
        if (m != 0)
            return w * 64 + (unsigned)__builtin_ctzll(m);
    }
    return NBINS;
}

/* Step 8: cuts nb bytes from the top chunk (which holds nb + MINSIZE at
 * least); the rest is the new top. The heap's clean mark moves past the new
 * top's header, the first word written above it; for a calloc, the arena
 * remembers where the chunk's never-written part began. */
mchunk *split_top(arena_t *a, size_t nb)
{
    mchunk *victim = a->top;
    size_t size = chunksize(victim);
    mchunk *rem = chunk_at(victim, nb);
    heap_info *h = heap_of(victim);
    if (a->want_fresh) {
        a->fresh_chunk = victim;
        a->fresh_from = h->clean;
    }
    a->top = rem;
    set_head(victim, nb | PREV_INUSE | arena_flag(a));
    set_head(rem, (size - nb) | PREV_INUSE);
    char *mark = (char *)rem + CHUNK_HDR;
    if (h->clean < mark)
        h->clean = mark;
    return victim;
}

/*
 * Takes free chunk p off its doubly linked bin. glibc's checks, in the
 * order glibc makes them: p's size must equal the next chunk's prev_size
 * (its footer), both neighbours on the list must point back at p, and a
 * large chunk's size links must point back too. These are what stop the
 * classic "unlink" attack, where an overflow forges a free chunk whose fd
 * and bk make the unlink write an address of the attacker's choice.
 */
void unlink_chunk(arena_t *a, mchunk *p, const char *fn)
{
    size_t size = chunksize(p);
    if (size != prev_size(chunk_at(p, size)))
        arena_fatal(fn, chunk2mem(p),
                    "corrupted size vs. prev_size (a free chunk's size "
                    "disagrees with its footer)");
    mchunk *f = fd(p), *b = bk(p);
    if (bk(f) != p || fd(b) != p)
        arena_fatal(fn, chunk2mem(p),
                    "corrupted double-linked list (a free chunk's "
                    "neighbours do not point back)");
    set_bk(f, b);
    set_fd(b, f);
    if (in_smallbin_range(size) || fd_nextsize(p) == NULL)
        return; /* no size links: a small chunk, or not first of its size */
    if (bk_nextsize(fd_nextsize(p)) != p || fd_nextsize(bk_nextsize(p)) != p)
        arena_fatal(fn, chunk2mem(p),
                    "corrupted double-linked list of sizes (a large chunk's "
                    "size links do not point back)");
    mchunk *bin = bin_at(a, largebin_index(size));
    if (f != bin && chunksize(f) == size) {
        /* The next chunk has p's size: it becomes its size's first. */
        if (fd_nextsize(p) == p) {
            set_fd_nextsize(f, f);
            set_bk_nextsize(f, f);
        } else {
            set_fd_nextsize(f, fd_nextsize(p));
            set_bk_nextsize(f, bk_nextsize(p));
            set_bk_nextsize(fd_nextsize(p), f);
            set_fd_nextsize(bk_nextsize(p), f);
        }
    } else {
        set_bk_nextsize(fd_nextsize(p), bk_nextsize(p));
        set_fd_nextsize(bk_nextsize(p), fd_nextsize(p));
    }
}

/*
 * Every fast-bin chunk merged with its free neighbours and put in the
 * unsorted bin (or into the top). Runs before a large request (step 4),
 * when a free makes a chunk of 64 KiB or more, and before a trim. O(fast
 * chunks), each merge O(1). glibc's malloc_consolidate.
 */
void malloc_consolidate(arena_t *a)
{
    a->have_fastchunks = false;
    a->consolidations++;
    for (unsigned i = 0; i < NFASTBINS; i++) {
        mchunk *p = a->fastbins[i];
        a->fastbins[i] = NULL;
        while (p != NULL) {
            char *slot = chunk2mem(p);
            if (!aligned_ok(p))
                arena_fatal("malloc_consolidate", slot,
                            "corrupted fast bin: unaligned chunk");
            if (fastbin_index(chunksize(p)) != i)
                arena_fatal("malloc_consolidate", slot,
                            "corrupted fast bin: a chunk of the wrong size");
            mchunk *nextp =
                protect_ptr(slot, (void *)(uintptr_t)word_get(slot));
            size_t size = chunksize(p);
            mchunk *next = chunk_at(p, size);
            size_t nextsize = chunksize(next);
            if (!prev_inuse(p)) {
                size_t psize = prev_size(p);
                p = chunk_before(p, psize);
                if (chunksize(p) != psize)
                    arena_fatal("malloc_consolidate", chunk2mem(p),
                                "corrupted size vs. prev_size in fast bins");
                unlink_chunk(a, p, "malloc_consolidate");
                size += psize;
            }
            if (next != a->top) {
                if (!inuse_at(next, nextsize)) {
                    unlink_chunk(a, next, "malloc_consolidate");
                    size += nextsize;
                } else {
                    clear_inuse_at(next, 0);
                }
                unsorted_push(a, p, size, "malloc_consolidate");
                set_head(p, size | PREV_INUSE);
                set_foot(p, size);
            } else {
                set_head(p, (size + nextsize) | PREV_INUSE);
                a->top = p;
            }
            p = nextp;
        }
    }
}

/* ---- Free --------------------------------------------------------------- */

/* Is chunk p on fast bin idx? A walk of the bin (the caller holds a's
 * lock), made only when p carries fastbin_key: on a double free, or by a
 * chance of one in 2^64. */
bool fastbin_holds(const arena_t *a, unsigned idx, const mchunk *p)
{
    for (mchunk *c = a->fastbins[idx]; c != NULL;
         c = protect_ptr(chunk2mem(c),
                         (void *)(uintptr_t)word_get(chunk2mem(c)))) {
        if (!aligned_ok(c))
            arena_fatal("arena_free", chunk2mem(p),
                        "corrupted fast bin: unaligned link");
        if (c == p)
            return true;
    }
    return false;
}

/*
 * Frees chunk p of `size` bytes into arena a, whose lock the caller holds
 * (steps 2 to 5 of the overview). The caller has made the cheap checks and
 * offered the chunk to its thread's cache.
 */
void int_free(arena_t *a, mchunk *p, size_t size)
{
    /* STEP 2: a fast bin, unmerged. */
    if (size <= param_get(&mp.max_fast)) {
        char *slot = chunk2mem(p);
        size_t nexthead = head(chunk_at(p, size));
        if (nexthead <= CHUNK_HDR || (nexthead & ~SIZE_BITS) >= a->system_mem)
            arena_fatal("arena_free", slot,
                        "invalid size of the next chunk (fast)");
        unsigned idx = fastbin_index(size);
        mchunk *old = a->fastbins[idx];
        if (old == p)
            arena_fatal("arena_free", slot,
                        "double free (the chunk is the top of its fast bin)");
        /* glibc stops at the check above: "a, b, a" slips through it and
         * hands a out twice. A fast chunk carries fastbin_key, so a second
         * free finds it there and searches the bin to make sure. */
        if (word_get(slot + SIZE_SZ) == fastbin_key && fastbin_holds(a, idx, p))
            arena_fatal("arena_free", slot,
                        "double free (the chunk is in a fast bin)");
        if (old != NULL && fastbin_index(chunksize(old)) != idx)
            arena_fatal("arena_free", slot,
                        "corrupted fast bin: its top chunk has the wrong size");
        word_set(slot, (size_t)(uintptr_t)protect_ptr(slot, old));
        word_set(slot + SIZE_SZ, fastbin_key);
        a->fastbins[idx] = p;
        a->have_fastchunks = true;
        return;
    }
    /* STEPS 3-5. */
    int_free_merge(a, p, size);
}

/*
 * Steps 3 to 5: merges p with its free neighbours, files the result, and
 * consolidates and trims after a big free. glibc's checks on the way are the
 * ones that catch a double free of a chunk that is not in a fast bin: it
 * must not be the top chunk, and the next chunk's P bit must say it is in
 * use (a freed chunk has P clear there).
 */
void int_free_merge(arena_t *a, mchunk *p, size_t size)
{
    char *mem = chunk2mem(p);
    mchunk *next = chunk_at(p, size);
    if (p == a->top)
        arena_fatal("arena_free", mem, "double free (the top chunk)");
    if (!prev_inuse(next))
        arena_fatal("arena_free", mem,
                    "double free (the chunk is already free)");
    /* The flags are part of the lower bound, as in glibc: a heap's end
     * marker (arena_heap.c) is a 16-byte chunk whose word reads 16 | P. */
    size_t nextsize = chunksize(next);
    if (head(next) <= CHUNK_HDR || nextsize >= a->system_mem)
        arena_fatal("arena_free", mem, "invalid size of the next chunk");

    /* STEP 3: backwards, through the prev_size word, then forwards. */
    if (!prev_inuse(p)) {
        size_t psize = prev_size(p);
        p = chunk_before(p, psize);
        if (chunksize(p) != psize)
            arena_fatal("arena_free", mem,
                        "corrupted size vs. prev_size while consolidating");
        unlink_chunk(a, p, "arena_free");
        size += psize;
    }
    if (next != a->top) {
        if (!inuse_at(next, nextsize)) {
            unlink_chunk(a, next, "arena_free");
            size += nextsize;
        } else {
            clear_inuse_at(next, 0);
        }
        /* STEP 4: the unsorted bin's head. */
        unsorted_push(a, p, size, "arena_free");
        set_head(p, size | PREV_INUSE);
        set_foot(p, size);
    } else {
        size += nextsize;
        set_head(p, size | PREV_INUSE);
        a->top = p;
    }

    /* STEP 5: a big free chunk; fast fragments around may merge with it,
     * and the top may have grown past the trim threshold. */
    if (size >= FASTBIN_CONSOLIDATION_THRESHOLD) {
        if (a->have_fastchunks)
            malloc_consolidate(a);
        if (chunksize(a->top) >= param_get(&mp.trim_threshold) ||
            (a->heap->prev != NULL && a->top == heap_first_chunk(a->heap)))
            heap_trim(a, param_get(&mp.top_pad), false);
    }
}

/* ---- realloc and memalign, under the arena's lock ----------------------- */

/* Sets a used chunk's size, keeping its P bit, with a's A flag. */
static void set_head_size(arena_t *a, mchunk *c, size_t size)
{
    set_head(c, (head(c) & PREV_INUSE) | size | arena_flag(a));
}

/* Cuts used chunk p (`size` bytes) down to nb, freeing the rest if it
 * makes a chunk. */
static void shrink_used(arena_t *a, mchunk *p, size_t size, size_t nb)
{
    size_t rsize = size - nb;
    if (rsize < MINSIZE) {
        set_head_size(a, p, size);
        set_inuse_at(p, size);
        return;
    }
    mchunk *rem = chunk_at(p, nb);
    set_head_size(a, p, nb);
    set_head(rem, rsize | PREV_INUSE | arena_flag(a));
    set_inuse_at(rem, rsize);
    int_free(a, rem, rsize);
}

/*
 * realloc in place (glibc's _int_realloc, without its copy): used chunk
 * oldp of oldsize bytes becomes a chunk of nb bytes where it stands, by
 * shrinking it, or by growing it into the top chunk or into a free next
 * chunk. Returns the payload, or NULL when it must move (the caller then
 * allocates, copies and frees: arena_thread.c).
 */
void *int_realloc(arena_t *a, mchunk *oldp, size_t oldsize, size_t nb)
{
    mchunk *next = chunk_at(oldp, oldsize);
    size_t nextsize = chunksize(next);
    if (oldsize <= CHUNK_HDR || oldsize >= a->system_mem)
        arena_fatal("arena_realloc", chunk2mem(oldp), "invalid old size");
    if (head(next) <= CHUNK_HDR || nextsize >= a->system_mem)
        arena_fatal("arena_realloc", chunk2mem(oldp),
                    "invalid size of the next chunk");
    if (oldsize >= nb) {
        shrink_used(a, oldp, oldsize, nb);
        return chunk2mem(oldp);
    }
    if (next == a->top && oldsize + nextsize >= nb + MINSIZE) {
        /* Into the top: the chunk and the top become one top, cut again. */
        size_t p_bit = head(oldp) & PREV_INUSE;
        set_head(oldp, (oldsize + nextsize) | PREV_INUSE);
        a->top = oldp;
        split_top(a, nb);
        set_head(oldp, nb | p_bit | arena_flag(a));
        return chunk2mem(oldp);
    }
    if (next != a->top && !inuse_at(next, nextsize) &&
        oldsize + nextsize >= nb) {
        unlink_chunk(a, next, "arena_realloc");
        set_inuse_at(oldp, oldsize + nextsize);
        shrink_used(a, oldp, oldsize + nextsize, nb);
        return chunk2mem(oldp);
    }
    return NULL;
}

/*
 * A chunk of nb bytes whose payload is a multiple of align (a power of two
 * above 16): allocate nb + align + MINSIZE, then free the piece in front of
 * the aligned payload (at least MINSIZE, so it is a chunk) and the piece
 * after it. A mapped chunk (a large request) keeps its mapping: only its
 * start moves, recorded in its prev_size word. glibc's _int_memalign.
 */
void *int_memalign(arena_t *a, size_t align, size_t nb)
{
    char *m = int_malloc(a, nb + align + MINSIZE, NULL);
    if (m == NULL)
        return NULL;
    mchunk *p = mem2chunk(m);
    if ((uintptr_t)m % align != 0) {
        char *aligned = (char *)(((uintptr_t)m + align - 1) & ~(align - 1));
        mchunk *newp = mem2chunk(aligned);
        if ((size_t)((char *)newp - (char *)p) < MINSIZE)
            newp = chunk_at(newp, align);
        size_t lead = (size_t)((char *)newp - (char *)p);
        size_t newsize = chunksize(p) - lead;
        if (head(p) & IS_MMAPPED) {
            size_t off = prev_size(p) + lead;
            set_prev_size(newp, off);
            set_head(newp, newsize | IS_MMAPPED);
            mmap_link *l = (mmap_link *)((char *)newp - off);
            pthread_mutex_lock(&mmap_lock);
            l->off = off;
            pthread_mutex_unlock(&mmap_lock);
            return chunk2mem(newp);
        }
        set_head(newp, newsize | PREV_INUSE | arena_flag(a));
        set_inuse_at(newp, newsize);
        set_head_size(a, p, lead);
        int_free(a, p, lead);
        p = newp;
    }
    if (!(head(p) & IS_MMAPPED)) {
        size_t size = chunksize(p);
        if (size >= nb + MINSIZE)
            shrink_used(a, p, size, nb);
    }
    return chunk2mem(p);
}

/* An arena's bins, empty: each bin's head points at itself. */
void arena_init_state(arena_t *a)
{
    for (unsigned i = 1; i < NBINS; i++) {
        mchunk *bin = bin_at(a, i);
        set_fd(bin, bin);
        set_bk(bin, bin);
    }
    memset(a->fastbins, 0, sizeof a->fastbins);
    memset(a->binmap, 0, sizeof a->binmap);
    a->have_fastchunks = false;
    a->top = NULL;
    a->last_remainder = NULL;
    a->heap = NULL;
    a->system_mem = 0;
    a->nheaps = 0;
    a->locks = a->contended = a->consolidations = 0;
    a->want_fresh = false;
    a->fresh_chunk = NULL;
    a->fresh_from = NULL;
}
