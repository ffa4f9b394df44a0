/*
 * fl.c: a free-list allocator: blocks of any size, boundary tags, one
 * explicit free list, and a choice of placement policy.
 *
 * Stage 03 could only hand out blocks of a few fixed sizes, each from a page
 * of its own. Here a request of any size is cut from a bigger free chunk, and
 * a freed chunk melts back into its free neighbours. The price is the seeds'
 * central problem made visible: external fragmentation, free memory in pieces
 * too small to use.
 *
 * Allocating n bytes:
 *   1. Size: need = n + 8 (the header), rounded up to 16, at least 32.
 *   2. Search the free list for a chunk of at least `need` bytes, by the
 *      heap's policy: first fit (the first that fits), next fit (the same,
 *      starting where the previous search stopped), best fit (the smallest
 *      that fits). The list is in LIFO order: freed chunks go to its head.
 *   3. If none fits, map a new region from the OS (slow path, see Growth):
 *      its whole chunk area is one free chunk, and it fits.
 *   4. Split: if the chunk is bigger than need by at least 32 bytes (the
 *      smallest chunk), cut it in two; the tail stays free and takes the
 *      chunk's place in the list. Otherwise hand out the whole chunk.
 *   5. Mark it used, in its header and in the next chunk's P bit.
 *
 * Freeing a block:
 *   1. Check the pointer (alignment, header check bits, not already free).
 *   2. Coalesce: if the next chunk is free, take it off the list and merge;
 *      if the previous one is free (P bit clear), find its start from its
 *      footer, take it off the list and merge. Both are O(1): that is what
 *      the boundary tags (footers) are for.
 *   3. Write the merged chunk's header and footer, clear the next chunk's P
 *      bit, and push the chunk on the list head. If it now spans its whole
 *      region, give the region back to the OS instead.
 *
 * Cost: a search is O(free chunks) (best fit always walks the whole list
 * unless it finds an exact fit); freeing is O(1); a region costs one mmap.
 * Left out on purpose: bins that make the search fast and threads with
 * their own arenas (stage 05), size classes with no external fragmentation
 * at all (stage 06). Not thread-safe: malloc_shim.c adds one lock.
 *
 * ---- Layout -------------------------------------------------------------
 *
 * A region, as mapped (64 KiB or more, page-aligned):
 *
 *   base       +32      +40                                  base+size-8
 *   |          |        |                                    |
 *   [ region   ][fence ][ chunk ][ chunk ][ chunk ] ...      [fence ]
 *   [ header   ][post  ]                                     [post  ]
 *    next, prev, size,    payloads start 16-byte aligned       size 0,
 *    magic (32 bytes)     (chunks start at 8 mod 16)           used
 *
 * The fenceposts are chunk headers of size 0 marked used, so that
 * coalescing stops at a region's ends without a bounds test.
 *
 * A used chunk and a free chunk (each cell 8 bytes):
 *
 *   used:  [ header ][ payload ............................ ]
 *                    ^ pointer handed out (16-byte aligned)
 *   free:  [ header ][ next   ][ prev   ][ ... unused ...   ][ footer ]
 *                     free list links                         = header
 *
 * A used chunk has no footer: its next neighbour's P bit ("previous in
 * use") says it is used, so nobody needs its size from behind. That saves 8
 * bytes in every used chunk and is why the smallest chunk is 32 bytes.
 *
 * The header word (see fl.h for the picture): the chunk's size (a multiple
 * of 16, bits 4..47), four flags (U used, P previous in use, Q quarantined,
 * F first chunk of its region), slack (bits 48..53: payload bytes beyond
 * the request, so that the exact request is known for statistics and for
 * the memory tools), and 10 check bits (54..63), a hash of the rest of the
 * word and of the header's own address. The check bits are how a corrupted
 * header, or a pointer this heap never returned, is noticed: garbage passes
 * with probability 1/1024, and a header copied elsewhere fails, because its
 * address is in the hash. A footer is the header's exact copy.
 *
 * ---- Growth -------------------------------------------------------------
 *
 * A new region is FL_REGION_MIN (64 KiB) or the request plus 48 bytes of
 * region overhead rounded up to whole pages, whichever is more. A fixed size
 * keeps the footprint close to the live payload on small heaps (a geometric
 * growth would map more than it needs); a big request gets a region of its
 * own, which goes back to the OS when it is freed, as glibc's mmap'd chunks
 * do. A region whose chunks are all free again is unmapped at once, except
 * the heap's last 64 KiB region, which is kept so that a program that
 * allocates and frees one block in a loop does not mmap and munmap each time.
 *
 * ---- Checked and annotated builds ---------------------------------------
 *
 * Always on: the alignment and check-bit tests of a pointer given to free or
 * realloc, and the double-free test (U clear, or Q set): a few instructions.
 * Checked builds (-DALLOC_DEBUG, and every annotated build) add: a pointer
 * outside every region is refused (a walk of the region list), fill bytes
 * (off when a memory tool watches: a fill would make uninitialised memory
 * look initialised), and a quarantine: a freed chunk waits in a FIFO of
 * FL_QUARANTINE chunks (flag Q) before it is really freed, so that a
 * use-after-free does not land in a block handed out again at once.
 *
 * Annotated builds (build/valgrind, build/asan) also tell the tool about
 * the blocks: blocks are MALLOCLIKE (track_malloc), everything else in a
 * region is no-access, and the allocator opens each metadata word for the
 * instant it reads or writes it (word_get, word_set). The header of the next
 * chunk, and the slack after a request, are the redzone: an overflow lands
 * in no-access memory and is reported.
 */
#include "fl.h"

#include "annotate.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STAGE "04-freelist"

/* A checked build is one compiled with -DALLOC_DEBUG (build/debug,
 * build/valgrind, build/asan, build/tsan); an annotated build, one that
 * tells a memory tool about the blocks (build/valgrind, build/asan), is
 * always a checked build, even compiled without ALLOC_DEBUG: the quarantine
 * is what lets the tool see a use after free. */
#if defined(ALLOC_DEBUG) || TRACK_ENABLED
static const bool FL_CHECKED = true;
#else
static const bool FL_CHECKED = false;
#endif

/* ---- The header word ------------------------------------------------------
 */

#define FL_FIRST     8u  /* F: the first chunk of its region */
#define FLAGS_MASK   15u /* U | P | Q | F */
#define SIZE_MASK    ((uint64_t)0x0000FFFFFFFFFFF0u)
#define SLACK_SHIFT  48
#define SLACK_MAX    63u
#define CHECK_SHIFT  54
#define FENCE_SIZE   0 /* a fencepost is a used chunk of size 0 */
#define REGION_MAGIC ((uintptr_t)0x46726565C4A11A57u)

/* The region header, at the start of every mapping. Stays accessible to the
 * memory tools: it holds no pointer to a block. */
typedef struct fl_region {
    struct fl_region *next, *prev; /* the heap's regions, newest first */
    size_t size;                   /* bytes mapped, this header included */
    uintptr_t magic;               /* REGION_MAGIC ^ its own address */
} fl_region;

_Static_assert(sizeof(fl_region) == 32, "region header is 32 bytes");
#define REGION_FIRST    40 /* offset of the first chunk: header + fencepost */
#define REGION_OVERHEAD 48 /* region header and both fenceposts */

/* 10 bits of a hash of the word and its address (splitmix64's finisher). */
static uint64_t check_bits(const void *at, uint64_t body)
{
    uint64_t x = body ^ ((uint64_t)(uintptr_t)at * 0x9E3779B97F4A7C15u);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 29;
    return x >> CHECK_SHIFT;
}

uint64_t fl_header_word(const void *chunk, size_t size, unsigned flags,
                        size_t slack)
{
    uint64_t body = ((uint64_t)slack << SLACK_SHIFT) |
                    ((uint64_t)size & SIZE_MASK) | (flags & FLAGS_MASK);
    return body | (check_bits(chunk, body) << CHECK_SHIFT);
}

static size_t w_size(uint64_t w)
{
    return (size_t)(w & SIZE_MASK);
}
static unsigned w_flags(uint64_t w)
{
    return (unsigned)(w & FLAGS_MASK);
}
static size_t w_slack(uint64_t w)
{
    return (size_t)((w >> SLACK_SHIFT) & SLACK_MAX);
}
static bool w_ok(const void *at, uint64_t w)
{
    uint64_t body = w & ~((uint64_t)0x3FF << CHECK_SHIFT);
    return (w >> CHECK_SHIFT) == check_bits(at, body);
}
/* Bytes the block's owner asked for: payload minus slack. */
static size_t w_request(uint64_t w)
{
    return w_size(w) - 8 - w_slack(w);
}

/* ---- Metadata access, opened for the tools one word at a time ------------ */

/*
 * Every read and write of a header, footer or link goes through these two.
 * In plain builds they are a memcpy (8 bytes, compiled to one move); in
 * annotated builds they open the word to the memory tool for the instant of
 * the access, so that the same word stays no-access to the program: a
 * stray write into a header is then reported where it happens, not at the
 * next free. memcpy, not a cast, because the word may sit in memory that C
 * sees as another object (a block's payload), and memcpy is the aliasing-
 * safe way to read it.
 */
static uint64_t word_get(const void *at)
{
    uint64_t w;
    track_mem_defined(at, 8);
    memcpy(&w, at, sizeof w);
    track_mem_noaccess(at, 8);
    return w;
}

static void word_set(void *at, uint64_t w)
{
    track_mem_undefined(at, 8);
    memcpy(at, &w, sizeof w);
    track_mem_noaccess(at, 8);
}

static char *at(void *chunk, size_t off)
{
    return (char *)chunk + off;
}

/* The chunk of a block: its header is the 8 bytes before it. */
static void *chunk_of(void *p)
{
    return (char *)p - 8;
}

/* Free-list links live in the first two payload words of a free chunk. */
static void *link_next(void *c)
{
    return (void *)(uintptr_t)word_get(at(c, 8));
}
static void *link_prev(void *c)
{
    return (void *)(uintptr_t)word_get(at(c, 16));
}
static void set_next(void *c, void *n)
{
    word_set(at(c, 8), (uintptr_t)n);
}
static void set_prev(void *c, void *p)
{
    word_set(at(c, 16), (uintptr_t)p);
}

/* A free chunk: header and footer, the same word. */
static void write_free(void *c, size_t size, unsigned flags)
{
    uint64_t w =
        fl_header_word(c, size, flags & ~(FL_USED | FL_QUARANTINE_BIT), 0);
    word_set(c, w);
    word_set(at(c, size - 8), w);
}

/* A used chunk's header; slack is what the payload holds beyond `request`. */
static void write_used(void *c, size_t size, unsigned flags, size_t request)
{
    size_t slack = size - 8 - request;
    /* Splitting leaves less than a smallest chunk behind: slack < 48. */
    if (slack > SLACK_MAX)
        alloc_fatal(STAGE, "write_used", at(c, 8), "internal: slack too big");
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

/* n bytes of payload as a chunk size: header added, multiple of 16, >= 32. */
static size_t chunk_need(size_t n)
{
    size_t need = (n + 8 + 15) & ~(size_t)15;
    return need < FL_MIN_CHUNK ? FL_MIN_CHUNK : need;
}

/* ---- The free list: doubly linked, NULL-terminated, LIFO ----------------
 *
 * Doubly linked, so that coalescing can unlink a neighbour it found by
 * address (not by walking the list) in O(1). LIFO, because pushing at the
 * head is O(1) and keeps recently freed (cache-warm) chunks first; the cost
 * is that first fit meets the small leftovers of recent splits first
 * (exercise 1 in the README tries address order instead).
 */

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

/* ---- Placement (the fast path) --------------------------------------------
 */

/* The size of a free chunk on the list. The search does not verify check
 * bits (fl_check does): it runs for every chunk it passes. */
static size_t free_size(void *c)
{
    return w_size(word_get(c));
}

/*
 * A free chunk of at least `need` bytes, or NULL. The one place where the
 * policies differ; the rest of the allocator does not know which is in use.
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
        /* From the rover to the end, then from the head to the rover. */
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
 */
static void place(fl_heap *h, void *c, size_t need, size_t request)
{
    uint64_t w = word_get(c);
    size_t size = w_size(w);
    unsigned keep = w_flags(w) & (FL_PREV_USED | FL_FIRST);
    if (size - need >= FL_MIN_CHUNK) {
        void *rest = at(c, need);
        write_free(rest, size - need, FL_PREV_USED);
        list_replace(h, c, rest); /* the next search resumes at the tail */
        h->rover = rest;
        write_used(c, need, keep, request);
        /* The chunk after the tail still follows a free chunk: P stays 0. */
    } else {
        h->rover = link_next(c);
        list_remove(h, c);
        write_used(c, size, keep, request);
        set_prev_used(at(c, size), true);
    }
}

static void stats_alloc(fl_heap *h, size_t request)
{
    h->stats.live_bytes += request;
    h->stats.live_blocks++;
    if (h->stats.live_bytes > h->stats.peak_live)
        h->stats.peak_live = h->stats.live_bytes;
}

/* ---- Regions (the slow path) -----------------------------------------
 *
 * A region is the unit of exchange with the OS: mmap when no free chunk
 * fits, munmap when all its chunks are free again. Chunks never span two
 * regions (the fenceposts stop every merge), so a free chunk at the end of
 * one region and another at the start of the next stay two chunks even when
 * the mappings happen to be adjacent in memory.
 */

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * Maps a region big enough for a chunk of `need` bytes, links it, and puts
 * its chunk area on the free list as one free chunk, which it returns.
 * NULL if the OS refuses. One mmap: this is the expensive step that the
 * 64 KiB minimum spreads over many allocations.
 */
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

    void *start_fence = at(mem, 32), *end_fence = at(mem, bytes - 8);
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

/*
 * Gives region r back to the OS and unlinks it. The OS may refuse (munmap
 * fails with ENOMEM at the limit on the number of mappings): then r is left
 * exactly as it was, linked and counted, and the caller keeps it. Returns
 * whether r is gone. errno is the caller's to restore.
 */
static bool region_unmap(fl_heap *h, fl_region *r)
{
    fl_region *next = r->next, *prev = r->prev;
    size_t bytes = r->size;
    /* Leave no poison behind for ASan (the region header has none). */
    track_mem_undefined(at(r, sizeof *r), bytes - sizeof *r);
    if (munmap(r, bytes) != 0) {
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

/* The region holding address p, or NULL (a walk: checked builds only). */
static fl_region *region_find(const fl_heap *h, const void *p)
{
    for (fl_region *r = h->regions; r != NULL; r = r->next) {
        const char *lo = (const char *)r + REGION_FIRST;
        const char *hi = (const char *)r + r->size - 8;
        if ((const char *)p >= lo && (const char *)p < hi)
            return r;
    }
    return NULL;
}

/* ---- Freeing: coalescing with both neighbours ---------------------------- */

/*
 * Makes chunk c (used or quarantined) free: merges it with a free next and
 * a free previous chunk, and puts the result on the list, or unmaps its
 * region if the region is now entirely free. p is the block's address, for
 * messages only.
 */
static void chunk_release(fl_heap *h, void *c, const void *p)
{
    uint64_t w = word_get(c);
    size_t size = w_size(w);
    unsigned flags = w_flags(w) & (FL_PREV_USED | FL_FIRST);

    /* STEP 1: the next chunk (a fencepost is "used": the merge stops). */
    uint64_t nw = neighbour_get(at(c, size), "fl_free", p);
    if (!(w_flags(nw) & FL_USED)) {
        list_remove(h, at(c, size));
        size += w_size(nw);
    }
    /* STEP 2: the previous chunk, found from its footer. */
    if (!(flags & FL_PREV_USED)) {
        uint64_t fw = word_get((char *)c - 8);
        void *prev = (char *)c - w_size(fw);
        uint64_t pw = word_get(prev);
        if (pw != fw || !w_ok(prev, pw) || (w_flags(pw) & FL_USED))
            alloc_fatal(STAGE, "fl_free", p,
                        "corrupted footer of the previous chunk");
        list_remove(h, prev);
        size += w_size(pw);
        c = prev;
        flags = w_flags(pw) & (FL_PREV_USED | FL_FIRST);
    }
    /* STEP 3: one free chunk; its next neighbour now follows a free one. */
    void *after = at(c, size);
    set_prev_used(after, false);
    write_free(c, size, flags);
    if ((flags & FL_FIRST) && w_size(word_get(after)) == FENCE_SIZE) {
        /* The whole region is free: give it back, but keep the heap's
         * last small region to avoid mmap/munmap ping-pong. */
        fl_region *r = (fl_region *)((char *)c - REGION_FIRST);
        if (!(h->stats.regions == 1 && r->size == FL_REGION_MIN) &&
            region_unmap(h, r))
            return;
        /* Kept (or refused by the OS): one free chunk, tried again the
         * next time the region empties. */
    }
    list_push(h, c);
}

/*
 * The checks every free and realloc makes, and their reports. Returns the
 * chunk's header word. `freed_what` names the misuse of a freed block.
 */
static uint64_t block_validate(const fl_heap *h, const void *p, const char *fn,
                               const char *freed_what)
{
    if ((uintptr_t)p % FL_ALIGN != 0)
        alloc_fatal(STAGE, fn, p, "not a block of this heap (misaligned)");
    if (FL_CHECKED && region_find(h, (const char *)p - 8) == NULL)
        alloc_fatal(STAGE, fn, p,
                    "not a block of this heap (outside every "
                    "region)");
    const void *c = (const char *)p - 8;
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

/* Checked builds: hold chunk c back; really free the oldest when full. */
static void quarantine_push(fl_heap *h, void *c)
{
    uint64_t w = word_get(c);
    word_set(c, fl_header_word(c, w_size(w), w_flags(w) | FL_QUARANTINE_BIT,
                               w_slack(w)));
    if (h->q_count == FL_QUARANTINE) {
        void *oldest = h->quarantine[h->q_first];
        h->q_first = (h->q_first + 1) % FL_QUARANTINE;
        h->q_count--;
        chunk_release(h, oldest, at(oldest, 8));
    }
    h->quarantine[(h->q_first + h->q_count) % FL_QUARANTINE] = c;
    h->q_count++;
}

void fl_quarantine_flush(fl_heap *h)
{
    int saved_errno = errno; /* a release may unmap, and munmap may fail */
    while (h->q_count > 0) {
        void *c = h->quarantine[h->q_first];
        h->q_first = (h->q_first + 1) % FL_QUARANTINE;
        h->q_count--;
        chunk_release(h, c, at(c, 8));
    }
    h->q_first = 0;
    errno = saved_errno;
}

/* ---- The public calls ---------------------------------------------------- */

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
    int saved_errno = errno;
    size_t live = 0;
    fl_region *next;
    for (fl_region *r = h->regions; r != NULL; r = next) {
        next = r->next;
        /* Tell the tools that blocks still live die here. */
        char *c = (char *)r + REGION_FIRST, *end = (char *)r + r->size - 8;
        while (c < end) {
            uint64_t w = word_get(c);
            if ((w_flags(w) & (FL_USED | FL_QUARANTINE_BIT)) == FL_USED) {
                track_free(c + 8, w_request(w), 0);
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
    errno = saved_errno;
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

/* The three steps of the file header: size, search (else grow), place. The
 * request is kept in the header's slack, so the tools can be told exactly
 * how many bytes the caller may touch. */
void *fl_alloc(fl_heap *h, size_t size)
{
    if (size > FL_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    size_t need = chunk_need(size);
    void *c = find_fit(h, need);
    if (c == NULL && (c = region_grow(h, need)) == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    place(h, c, need, size);
    stats_alloc(h, size);
    void *p = at(c, 8);
    track_fill_fresh(p, size);
    track_malloc(p, size, 0, 0);
    return p;
}

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
    uintptr_t p0 = (uintptr_t)c + 8;
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
    void *p = at(c, 8);
    track_fill_fresh(p, size);
    track_malloc(p, size, 0, 0);
    return p;
}

/* Checks first, then the tools are told (track_free) before any byte of
 * the block is touched again, then the chunk is freed: at once in release
 * builds, through the quarantine in checked ones. */
void fl_free(fl_heap *h, void *p)
{
    if (p == NULL)
        return;
    int saved_errno = errno; /* free leaves errno alone, even if munmap fails */
    uint64_t w = block_validate(h, p, "fl_free", "double free");
    size_t request = w_request(w);
    track_free(p, request, 0);
    h->stats.live_bytes -= request;
    h->stats.live_blocks--;
    track_fill_freed(p, w_size(w) - 8);
    if (FL_CHECKED)
        quarantine_push(h, chunk_of(p));
    else
        chunk_release(h, chunk_of(p), p);
    errno = saved_errno;
}

/* Shrinks used chunk c (header w) to `need`; a tail big enough to be a
 * chunk is freed (and merges with a free next chunk). */
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
        chunk_release(h, tail, at(c, 8));
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
    uint64_t nw = neighbour_get(next, "fl_realloc", at(c, 8));
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

/* In place when it can (no copy, the caller's pointer stays valid), else a
 * move. The memory tools see an in-place change as a resize of the same
 * block, so its bytes keep their "defined" state. */
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

size_t fl_usable_size(const fl_heap *h, const void *p)
{
    if (p == NULL)
        return 0;
    uint64_t w = block_validate(h, p, "fl_usable_size", "block already freed");
    return TRACK_ENABLED ? w_request(w) : w_size(w) - 8;
}

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

/* ---- The heap checker ------------------------------------------------------
 */

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
    for (size_t i = 0; i < h->q_count; i++) {
        void *c = h->quarantine[(h->q_first + i) % FL_QUARANTINE];
        if (!in_some_region(h, c) ||
            !(w_flags(word_get(c)) & FL_QUARANTINE_BIT))
            return "quarantine holds a chunk not marked Q";
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

/* ---- The heap map ----------------------------------------------------------
 */

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
