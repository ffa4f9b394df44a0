/*
 * gm.c: memory allocator, after the Go runtime's (which began as TCMalloc
 * and has diverged from it), as a malloc for C programs with many threads.
 *
 * The idea. Small requests (up to 32 KiB) are rounded up to one of 67 size
 * classes, and every object of a class is the same size, so that any free
 * page can be cut into objects of one class and the objects of a class are
 * interchangeable: whichever thread frees one, any thread can reuse it.
 * Each thread keeps a list of free objects per class and serves itself
 * from it without a lock; the lists are refilled and drained a batch at a
 * time from a central list per class, which gets its objects from spans of
 * pages, which come from one page heap, which gets memory from the OS in
 * 64 MiB arenas. Each level pays for the one below it once for many calls
 * from above.
 *
 * The allocator's structures (gm_internal.h defines them):
 *
 *   fixalloc: a free-list allocator for the allocator's own metadata (span
 *             structs, side arrays), never in the heap it describes
 *   mheap:    the page heap, one per process, one lock: free runs of 8 KiB
 *             allocator pages, the arenas and their page maps, large blocks
 *   mspan:    a run of pages in use: cut into the slots of one class (with
 *             a bitmap of the slots taken), or one large block
 *   mcentral: per class, the spans of that class and a transfer cache of
 *             batches of free objects; one lock each
 *   mcache:   per thread, a free list per class; no lock
 *
 * Allocating a small object proceeds up the hierarchy (gm_malloc):
 *
 *   1. Round the size up to its class with one table lookup, and pop the
 *      head of that class's list in the thread's mcache. No lock, no
 *      atomic instruction, no call: 16 instructions on x86-64.
 *   2. If the list is empty, take objects from the class's mcentral
 *      (mcache_alloc): as many as the list's bound, which starts at one
 *      and grows to a batch (64 KiB worth, 2 to 32 objects) and beyond
 *      (slow start, mcache.c). Taking many amortises the cost of locking
 *      the mcentral over them.
 *   3. The mcentral hands over a batch from its transfer cache in O(1), or
 *      cuts one from its spans' bitmaps: the slots with a clear bit,
 *      found with count-trailing-zeros a 64-slot word at a time, linked
 *      together through their first words (mcentral_get).
 *   4. If no span of the class has a free slot, the mcentral gets a span
 *      of the class's page count from the mheap (mheap_alloc_small).
 *      Getting a whole span amortises the cost of locking the mheap.
 *   5. If the mheap has no free run large enough, it maps a new arena:
 *      64 MiB of address space, touched only where it is used. Mapping
 *      large regions amortises the cost of talking to the OS.
 *
 * Requests under 16 bytes take another road, the tiny allocator: several
 * of them share one 16-byte block (see "The tiny allocator" below).
 *
 * Freeing an object proceeds down a matching hierarchy (gm_free). Go has
 * no free: its sweeper finds dead objects. C frees objects one at a time,
 * from any thread, and this is TCMalloc's answer:
 *
 *   1. The class map gives the class of the object's page (two loads: the
 *      arena index, then the arena's class map), and the object is pushed
 *      on that class's list in the freeing thread's mcache, whichever
 *      thread allocated it. No lock, no atomic instruction, no call.
 *   2. If the list is now longer than its bound, a batch is taken off it
 *      and given to the mcentral (mcache_overflow): one lock per batch.
 *      The bound adapts: it grows when the list runs dry and shrinks when
 *      it keeps overflowing.
 *   3. The mcentral keeps the batch whole in its transfer cache, for the
 *      next thread that runs dry; when that is full, it clears each
 *      object's bit in its span (mcentral_put).
 *   4. A span whose slots are all free again goes back to the mheap, which
 *      merges it with its free neighbours.
 *   5. The scavenger gives free pages back to the OS with madvise: a
 *      background thread takes the runs that have been free the longest,
 *      beyond a goal of resident free memory (mscavenge.c).
 *
 * A thread that exits gives its cache back (a pthread key's destructor);
 * calls that arrive later in that thread (other destructors, atexit
 * handlers) are served uncached, from the central lists.
 *
 * Allocating and freeing a large object (over 32 KiB) uses the mheap
 * directly, bypassing the mcache and the mcentral: whole pages, a span of
 * their own.
 *
 * Memory layout. The heap is a set of arenas, 64 MiB each and 64 MiB
 * aligned. Each arena's metadata (gm_arena, Go's heapArena) lives outside
 * it and maps each of its 8192 pages to its span, and, for the fast free
 * path, to its class. The arena index maps every 64 MiB frame of the
 * 48-bit address space to its arena's metadata (Go's arenas[L1][L2] with a
 * single L1 entry, as on Go's 64-bit Linux); it is 32 MiB of zeroed
 * memory, touched only where arenas are. The diagram:
 *
 * <diagram layout>
 * address p:  | arena number: p >> 26 | page: (p >> 13) & 8191 | offset |
 *
 * gm_arena_index[p >> 26] ---> gm_arena (outside the arena)
 *                                class_of_page[8192]  1 byte a page:
 *                                                     the free path's map
 *                                spans[8192]          the page map
 *                                      |
 *          +---------------------------+
 *          v
 * the arena: [ span, class 5 ][ span, class 36 ][ free run ] ...
 *              170 x 48 B        5 x 1536 B + 512 B tail
 *
 * thread A's mcache            mcentral[5] (lock)          mheap (lock)
 *   head[5] -> o -> o -> NULL    transfer cache: batches     free runs by
 *   room[5], max[5]              partial spans, full spans   length; arenas
 * </diagram>
 *
 * What changes from Go, and why: a free path (above); one mcache per
 * thread rather than per P, since C has no scheduler to bind a cache to;
 * free lists in the mcache instead of a span per class (a free from
 * another thread must land somewhere without a lock, and a list takes it:
 * TCMalloc's answer, beside mimalloc's and Go's in the README); a
 * transfer cache in the mcentral (TCMalloc's) for the batches that
 * producer and consumer threads pass along; the tiny allocator with a
 * count per block, since its objects die one by one; the page heap of
 * stage 06 (free runs by length, TCMalloc's) rather than Go's bitmap and
 * radix tree of summaries.
 *
 * Files: gm.h (the API); this file (the paths: malloc, free, the tiny
 * allocator, large blocks, the rest of the API, start and fork); mcache.c,
 * mcentral.c, mheap.c (the three levels), mscavenge.c (the scavenger),
 * gm_internal.h (their structures), gm_check.c (the checker, the dumps,
 * the statistics), mksizeclasses.c (the class table's generator),
 * malloc_shim.c (the C library's names).
 */
#include "gm_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// clang-format off
/*
 * ---- State --------------------------------------------------------------
 *
 * gm_heap (gm_internal.h, every field commented there) is the whole
 * heap: the mcentrals, the mheap, the list of thread caches, the
 * scavenger's state; gm_mcache is the calling thread's cache; the arena
 * index maps addresses to arenas. Invariants (gm_check verifies each):
 *   a small span's pages map to it and to its class (tiny spans: to class
 *   0); every other page of an arena maps to class 0;
 *   every slot of a small span is in exactly one place: free in its span
 *   (bit clear), on a thread's list, in its mcentral's transfer cache, in
 *   a quarantine (checked builds), or the program's (bit set for the last
 *   four), so that
 *     alloc_count == cached + quarantined + live   (checked builds, exact)
 *   a transfer cache's entries are each exactly one batch of their class;
 *   a span is on its mcentral's partial list when alloc_count < nelems,
 *   on its full list otherwise; free runs as in stage 06 (merged, on the
 *   list of their length), resident ones also on the age list, oldest
 *   first.
 */
// clang-format on

/* The table mksizeclasses.c computed: here, once. */
const uint16_t gm_size_of_class[GM_NLISTS] = GM_CLASS_SIZE_INIT;
const uint8_t gm_pages_of_class[GM_NLISTS] = GM_CLASS_PAGES_INIT;
const uint16_t gm_objects_of_class[GM_NLISTS] = GM_CLASS_OBJECTS_INIT;
const uint8_t gm_batch_of_class[GM_NLISTS] = GM_CLASS_BATCH_INIT;
const uint32_t gm_divmul_of_class[GM_NLISTS] = GM_CLASS_DIVMUL_INIT;
const uint8_t gm_size_to_class8[GM_N_TO_CLASS8] = GM_SIZE_TO_CLASS8_INIT;
const uint8_t gm_size_to_class128[GM_N_TO_CLASS128] = GM_SIZE_TO_CLASS128_INIT;

gm_heap_t gm_heap;
uintptr_t gm_arena_index[(size_t)1 << GM_INDEX_BITS];

static void *malloc_slow(size_t size);
static void free_slow(void *p, uintptr_t map);

/* ---- Allocation, step 1: the fast path ----------------------------------- */

/*
 * One unsigned comparison keeps both the tiny requests (under 16 bytes:
 * n - 16 wraps) and those over 1 KiB out of the first table; the second
 * catches 1 KiB to 32 KiB. Everything else (tiny, large, size 0) and an
 * empty list go to malloc_slow. On x86-64 the path is 15 or 16
 * instructions (objdump -d build/pic/gm.o; the README shows them).
 */
void *gm_malloc(size_t size)
{
    size_t c;
    if (GM_LIKELY(size - 16 <= 1024 - 16))
        c = gm_size_to_class8[(size + 7) >> 3];
    else if (size - 1025 <= GM_MAX_SMALL - 1025)
        c = gm_size_to_class128[(size + 127 - 1024) >> 7];
    else
        return malloc_slow(size);
    void *p = gm_mcache.head[c];
    if (GM_UNLIKELY(p == NULL))
        return malloc_slow(size); /* step 2: a batch from the mcentral */
    gm_mcache.head[c] = link_get(p);
    gm_mcache.room[c]++;
    if (GM_CHECKED)
        return alloc_checked(p, size, (unsigned)c);
    return p;
}

/* ---- Freeing, step 1: the fast path -------------------------------------- */

/*
 * The arena index entry is 0 for NULL and for any address in no arena;
 * the class map is 0 for large blocks, tiny blocks and free pages: both go
 * to free_slow, which sorts them out (and reports what is not a block).
 * cache_push (gm_internal.h) then costs four instructions and a branch:
 * about eighteen in all. A list pushed past its bound, or the first free
 * of a thread, finds room[c] negative: mcache_overflow.
 */
void gm_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    uintptr_t map = gm_arena_index[a >> GM_ARENA_SHIFT];
    if (GM_UNLIKELY(map == 0)) {
        free_slow(p, 0);
        return;
    }
    size_t c = *(const uint8_t *)(map + (a >> GM_PAGE_SHIFT));
    if (GM_UNLIKELY(c == 0)) {
        free_slow(p, map);
        return;
    }
    if (GM_CHECKED) {
        free_checked(p, (unsigned)c);
        return;
    }
    cache_push(c, p);
}

/* ---- The slow paths of malloc -------------------------------------------- */

/* The class of a small request, as the fast path computes it; 0 is served
 * as 1 byte. */
static inline unsigned class_of(size_t n)
{
    return n <= 1024 ? gm_size_to_class8[(n + 7) >> 3]
                     : gm_size_to_class128[(n + 127 - 1024) >> 7];
}

static void *large_alloc(size_t size, size_t align_pages);

static void *tiny_alloc(size_t n);
static void *malloc_slower(size_t size);

/* Requests under 16 bytes first. With the tiny allocator off (the
 * default: see "The tiny allocator" below for why), the request's own
 * class, 8 or 16 bytes, popped as the fast path pops; with it on (or while
 * this thread still has a current block from before it was switched off),
 * the tiny allocator, a dozen instructions more than the fast path when
 * the request fits in the current block. Then steps 2 to 5 and large
 * blocks in malloc_slower. Out of line, so that gm_malloc needs no stack
 * frame. */
static GM_NOINLINE void *malloc_slow(size_t size)
{
    if (size < GM_TINY_SIZE) {
        if (GM_LIKELY(gm_mcache.tiny == 0 &&
                      !__atomic_load_n(&gm_heap.tiny, __ATOMIC_RELAXED))) {
            unsigned c = class_of(size);
            void *p = gm_mcache.head[c];
            if (GM_LIKELY(p != NULL)) {
                gm_mcache.head[c] = link_get(p);
                gm_mcache.room[c]++;
                if (GM_CHECKED)
                    return alloc_checked(p, size, c);
                return p;
            }
        } else {
            void *p = tiny_alloc(size | (size == 0)); /* 0 is served as 1 */
            if (GM_LIKELY(p != NULL))
                return p;
        }
        /* an empty list; tiny off, a dying thread's cache, memory gone: an
         * object of the request's own class */
    }
    return malloc_slower(size);
}

static GM_NOINLINE void *malloc_slower(size_t size)
{
    gm_init_once();
    if (size > GM_MAX_SMALL)
        return large_alloc(size, 1);
    unsigned c = class_of(size);
    void *p = mcache_alloc(c);
    scav_kick();
    if (p == NULL)
        return gm_enomem();
    if (GM_CHECKED)
        return alloc_checked(p, size, c);
    return p;
}

void *gm_enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

// clang-format off
/*
 * ---- The tiny allocator ------------------------------------------------------
 *
 * Requests under 16 bytes are packed into 16-byte blocks, as Go packs its
 * pointer-free objects: the thread's current block hands out objects one
 * after the other until the next does not fit, then a new block starts.
 * Strings of a few bytes (names, keys, short lines) are common in C, and a
 * 3-byte request costs 3 or 4 bytes here instead of an 8-byte slot.
 *
 * Alignment. C asks that malloc's result suit any object that fits in the
 * space (C17 7.22.3: "any type of object with a fundamental alignment
 * requirement ... in the space allocated"; C23 7.24.3 says "and size less
 * than or equal to the size requested"). A 12-byte request can hold a
 * double, so it needs 8, not the 4 that Go's rule (the size's own
 * divisibility) would give. So a request of n bytes is aligned to the
 * largest power of two at most n: 8 for 8 to 15 bytes, 4 for 4 to 7, 2 for
 * 2 and 3, 1 for 1. That is C's rule exactly, and it is why the tiny
 * allocator is off unless GM_TINY=1 (or gm_set_tiny) asks for it: real
 * programs and test suites assume more than C promises (GCC's own test
 * suite checks that malloc(1) is aligned to a machine word; glibc gives
 * 16 to every block; jemalloc and TCMalloc give 8 under 16 bytes), and a
 * malloc that runs other people's programs must not break them for a few
 * bytes. Off, a request under 16 bytes gets its class, 8 or 16 bytes,
 * aligned to 8 or 16. Under a memory tool every tiny object is aligned to
 * 8, so that ASan's 8-byte granules separate neighbours.
 *
 * When a request does not fit, a new block comes, and whichever of the two
 * has more room left stays the current one (Go's rule).
 *
 * When is a block free? Go frees one when its sweeper finds every object
 * in it dead. Here each block has a count in its span (tiny_live): the
 * owning thread sets it to GM_TINY_BIAS when it starts the block and
 * counts what it hands out in its cache, without an atomic instruction;
 * each free subtracts 1 (atomically: its objects may die in any thread);
 * when the owner moves on, it subtracts the bias minus what it handed out
 * (tiny_retire). The count reaches 0 exactly when the owner has moved on
 * and every object is dead, and whoever brings it there pushes the block
 * on its own cache's tiny list, like any freed object. A per-block mask
 * marks where each object starts and where it ends (tiny_starts): an
 * object's extent runs to the next mark, so malloc_usable_size and realloc
 * know it although a release build records no tiny request, and never
 * reach bytes that the owner has yet to hand out.
 */
// clang-format on

/* The largest power of two that is at most n (1 <= n < 16). */
static inline size_t tiny_align(size_t n)
{
    if (TRACK_ENABLED)
        return 8;
    return (size_t)1 << (31 - __builtin_clz((unsigned)n));
}

/* Marks an object of n bytes at offset off of a tiny block (the word
 * `starts`): its start, and a fence at its end, since the bytes after it
 * are the next object's, or the owner's to hand out, and no realloc or
 * malloc_usable_size may reach them (a fence at 16 falls off the word).
 * Only the owner writes the marks: a relaxed load and store, not a
 * read-modify-write. Checked builds record the request and tell the tools. */
static inline void *tiny_done(uint16_t *starts, char *block, size_t off,
                              size_t n)
{
    uint32_t marks = (uint32_t)1 << off | (uint32_t)1 << (off + n);
    uint16_t old = __atomic_load_n(starts, __ATOMIC_RELAXED);
    __atomic_store_n(starts, (uint16_t)(old | marks), __ATOMIC_RELAXED);
    char *p = block + off;
#if GM_CHECKED
    mspan *s = span_of_page(page_of(p));
    __atomic_store_n(&s->tiny_req[p - span_base(s)], (uint8_t)n,
                     __ATOMIC_RELAXED);
    track_fill_fresh(p, n);
    track_malloc(p, n, 0, 0);
#endif
    return p;
}

/* The request does not fit in the current block: a new block (the head of
 * the thread's list of free tiny blocks, else a refill), and, as Go does,
 * whichever of the two has more room left stays current; the other holds
 * what it holds (the new one: this object alone, its count 1). */
static GM_NOINLINE void *tiny_new_block(size_t n)
{
    mcache *mc = &gm_mcache;
    if (!__atomic_load_n(&gm_heap.tiny, __ATOMIC_RELAXED)) {
        tiny_retire(mc); /* switched off: this thread's block goes too */
        return NULL;
    }
    char *block = mc->head[GM_TINY_CLASS];
    if (GM_LIKELY(block != NULL)) {
        mc->head[GM_TINY_CLASS] = link_get(block);
        mc->room[GM_TINY_CLASS]++;
    } else if ((block = mcache_tiny_block()) == NULL) {
        return NULL;
    }
    mspan *s = span_of_page(page_of(block));
    size_t i = (size_t)(block - span_base(s)) >> 4;
    __atomic_store_n(&s->tiny_starts[i], 0, __ATOMIC_RELAXED);
    if (mc->tiny != 0 && n >= mc->tiny_off) {
        __atomic_store_n(&s->tiny_live[i], 1, __ATOMIC_RELAXED);
        return tiny_done(&s->tiny_starts[i], block, 0, n);
    }
    tiny_retire(mc); /* the old block: its bias goes */
    __atomic_store_n(&s->tiny_live[i], (uint8_t)GM_TINY_BIAS, __ATOMIC_RELAXED);
    mc->tiny = (uintptr_t)block >> 4;
    mc->tiny_off = (uint32_t)n;
    mc->tiny_count = 1;
    mc->tiny_starts = &s->tiny_starts[i];
    mc->tiny_live = &s->tiny_live[i];
    return tiny_done(mc->tiny_starts, block, 0, n);
}

/* 1 <= n < 16. The object goes at the next offset of the alignment it
 * needs in the current block, when it fits. (A thread with a current block
 * has the tiny allocator on: the switch is tested when a block starts.) */
static inline void *tiny_alloc(size_t n)
{
    mcache *mc = &gm_mcache;
    size_t align = tiny_align(n);
    size_t off = (mc->tiny_off + align - 1) & ~(align - 1);
    if (GM_UNLIKELY(mc->tiny == 0 || off + n > GM_TINY_SIZE))
        return tiny_new_block(n);
    mc->tiny_off = (uint32_t)(off + n);
    mc->tiny_count++;
    return tiny_done(mc->tiny_starts, (char *)(mc->tiny << 4), off, n);
}

/* The bytes an object at p of tiny span s may use: up to the next mark in
 * its block (its own end, or the start of the object after it), or the
 * block's end. */
static size_t tiny_extent(const mspan *s, const void *p)
{
    size_t at = (size_t)((const char *)p - span_base(s));
    uint16_t starts =
        __atomic_load_n(&s->tiny_starts[at >> 4], __ATOMIC_RELAXED);
    unsigned off = (unsigned)(at & 15);
    unsigned later = (unsigned)starts >> (off + 1);
    return later == 0 ? GM_TINY_SIZE - off : (size_t)__builtin_ctz(later) + 1;
}

/* ---- Large blocks -------------------------------------------------------- */

/* size bytes (over 32 KiB, or an alignment no class gives) in pages of
 * their own, straight from the mheap. */
static void *large_alloc(size_t size, size_t align_pages)
{
    if (size > GM_MAX_REQUEST)
        return gm_enomem();
    void *p = mheap_alloc_large(size, align_pages);
    if (p == NULL)
        return gm_enomem();
#if GM_CHECKED
    mspan *s = span_of_page(page_of(p));
    s->large_request = size;
    __atomic_store_n(&s->live_bits[0], 1, __ATOMIC_RELAXED);
    track_fill_fresh(p, size > 65536 ? 65536 : size);
    track_malloc(p, size, 0, 0);
#endif
    return p;
}

/* ---- The slow paths of free ---------------------------------------------- */

/* The span of p, for every path that is not the fast one. A pointer that
 * no arena holds, or one in a free run of pages, is not a block. */
mspan *block_span(const void *p, const char *fn)
{
    mspan *s = span_of_page(page_of(p));
    if (s == NULL)
        alloc_fatal(STAGE, fn, p, "not a block of this heap (in no span)");
    if (s->state == MSPAN_FREE)
        alloc_fatal(STAGE, fn, p,
                    "not a block of this heap (in a free run of pages: a "
                    "large block freed twice, or never handed out)");
    return s;
}

#if GM_CHECKED
static void quarantine_push(void *p);
static void free_checked_large(mspan *s, void *p);
static void free_checked_tiny(mspan *s, void *p);
#endif

static void free_other(void *p);

/* Tiny objects first (with the tiny allocator on they are common: requests
 * under 16 bytes are 27% and 35% of those of common/traces' ls -lR and
 * find traces): their span through the arena the fast path found. `map`
 * is the arena's index entry, the address of its class map less the
 * arena's first page number (gm_arena_index), so adding back that page
 * number's worth, p >> 26 << 13, gives the class map's address, which is
 * the gm_arena's own (the map is its first field); then the block's count.
 * Anything else: free_other. */
static GM_NOINLINE void free_slow(void *p, uintptr_t map)
{
    if (GM_LIKELY(map != 0)) {
        uintptr_t a = (uintptr_t)p;
        const gm_arena *ar =
            (const gm_arena *)(map + (a >> GM_ARENA_SHIFT << (GM_ARENA_SHIFT -
                                                              GM_PAGE_SHIFT)));
        mspan *s = ar->spans[(a >> GM_PAGE_SHIFT) & (GM_ARENA_PAGES - 1)];
        if (GM_LIKELY(s != NULL && s->cls == GM_TINY_CLASS &&
                      s->state == MSPAN_SMALL)) {
#if GM_CHECKED
            free_checked_tiny(s, p);
#else
            tiny_release(s, p); /* a block freed may overflow: that path
                                   kicks the scavenger */
#endif
            return;
        }
    }
    free_other(p);
}

/* NULL, large blocks; everything else is misuse. errno: only the mheap
 * reaches the OS here, and it keeps errno. */
static GM_NOINLINE void free_other(void *p)
{
    if (p == NULL)
        return;
    mspan *s = block_span(p, "gm_free");
    if (s->state == MSPAN_LARGE) {
        if (p != span_base(s))
            alloc_fatal(STAGE, "gm_free", p,
                        "not the start of a block (a pointer inside a "
                        "large block)");
#if GM_CHECKED
        free_checked_large(s, p);
#else
        mheap_free_large(s);
#endif
    } else {
        alloc_fatal(STAGE, "gm_free", p,
                    "the page map and the class map disagree");
    }
    scav_kick();
}

// clang-format off
/*
 * ---- Checked builds: the tools, the fill bytes, the quarantine ------------------
 *
 * A checked build records each block's request (for the tools and the
 * waste figures) and a live bit per slot, set at malloc and cleared at
 * free with atomic instructions (any thread may free): a clear bit at free
 * is a double free, a set bit at malloc a corrupt list. A freed block
 * waits in the freeing thread's quarantine (32 blocks, oldest out first)
 * before it really goes back, so that a use after free meets a dead block
 * for a while, not someone's new data.
 */
// clang-format on

#if GM_CHECKED
void *alloc_checked(void *p, size_t size, unsigned c)
{
    mspan *s = span_of_page(page_of(p));
    size_t slot = slot_of(s, p);
    uint64_t bit = (uint64_t)1 << (slot & 63);
    if (s->cls != c || (char *)p != span_base(s) + slot * s->elemsize)
        alloc_fatal(STAGE, "gm_malloc", p, "a free list holds a stranger");
    if (__atomic_fetch_or(&s->live_bits[slot >> 6], bit, __ATOMIC_ACQ_REL) &
        bit)
        alloc_fatal(STAGE, "gm_malloc", p,
                    "a free list holds a live block (freed twice?)");
    s->requests[slot] = (uint16_t)(size == 0 ? 0 : size);
    track_fill_fresh(p, size);
    track_malloc(p, size, 0, 0);
    return p;
}

/* The block at p of small span s is live, and its request, or misuse. */
static size_t checked_live(mspan *s, void *p, const char *fn, bool clear)
{
    size_t slot = slot_of(s, p);
    if (slot >= s->nelems || (char *)p != span_base(s) + slot * s->elemsize)
        alloc_fatal(STAGE, fn, p,
                    "not the start of a block (a pointer inside a slot, or "
                    "past the span's last one)");
    uint64_t bit = (uint64_t)1 << (slot & 63);
    uint64_t old =
        clear ? __atomic_fetch_and(&s->live_bits[slot >> 6], ~bit,
                                   __ATOMIC_ACQ_REL)
              : __atomic_load_n(&s->live_bits[slot >> 6], __ATOMIC_ACQUIRE);
    if (!(old & bit))
        alloc_fatal(STAGE, fn, p, clear ? "double free" : "a freed block");
    return s->requests[slot];
}

void free_checked(void *p, unsigned c)
{
    mspan *s = span_of_page(page_of(p));
    (void)c;
    size_t request = checked_live(s, p, "gm_free", true);
    track_free(p, request, 0);
    track_fill_freed(p, s->elemsize);
    quarantine_push(p);
}

static void free_checked_large(mspan *s, void *p)
{
    if (!(__atomic_fetch_and(&s->live_bits[0], ~(uint64_t)1, __ATOMIC_ACQ_REL) &
          1))
        alloc_fatal(STAGE, "gm_free", p, "double free");
    track_free(p, s->large_request, 0);
    track_fill_freed(p, s->large_request > 65536 ? 65536 : s->large_request);
    quarantine_push(p);
}

/* A tiny object's request, or misuse (not an object's start, or dead). */
static size_t tiny_checked_request(mspan *s, void *p, const char *fn,
                                   bool clear)
{
    size_t at = (size_t)((char *)p - span_base(s));
    uint8_t n = clear
                    ? __atomic_exchange_n(&s->tiny_req[at], 0, __ATOMIC_ACQ_REL)
                    : __atomic_load_n(&s->tiny_req[at], __ATOMIC_ACQUIRE);
    if (n == 0)
        alloc_fatal(STAGE, fn, p,
                    "not a live tiny object (freed twice, or not the start "
                    "of one)");
    return n;
}

static void free_checked_tiny(mspan *s, void *p)
{
    size_t n = tiny_checked_request(s, p, "gm_free", true);
    track_free(p, n, 0);
    track_fill_freed(p, n);
    quarantine_push(p);
}

/* Really frees a block that waited in the quarantine. */
static void release_block(void *p)
{
    mspan *s = span_of_page(page_of(p));
    if (s->state == MSPAN_LARGE)
        mheap_free_large(s);
    else if (s->cls == GM_TINY_CLASS)
        tiny_release(s, p);
    else
        cache_push(s->cls, p);
}

static void quarantine_push(void *p)
{
    mcache *mc = &gm_mcache;
    if (mc->state != MCACHE_ACTIVE) { /* no cache to hold it back */
        release_block(p);
        return;
    }
    if (mc->q_count == GM_QUARANTINE) {
        void *oldest = mc->quarantine[mc->q_first];
        mc->q_first = (mc->q_first + 1) % GM_QUARANTINE;
        mc->q_count--;
        release_block(oldest);
    }
    mc->quarantine[(mc->q_first + mc->q_count) % GM_QUARANTINE] = p;
    mc->q_count++;
}

/* Checked builds: every block the calling thread holds back goes. */
void gm_quarantine_flush(void)
{
    mcache *mc = &gm_mcache;
    int saved = errno;
    while (mc->q_count > 0) {
        void *p = mc->quarantine[mc->q_first];
        mc->q_first = (mc->q_first + 1) % GM_QUARANTINE;
        mc->q_count--;
        release_block(p);
    }
    mc->q_first = 0;
    errno = saved;
}
#else
void *alloc_checked(void *p, size_t size, unsigned c)
{
    (void)size;
    (void)c;
    return p;
}
void free_checked(void *p, unsigned c)
{
    cache_push(c, p);
}
void gm_quarantine_flush(void) {}
#endif

/* ---- calloc, aligned blocks, realloc, usable size ------------------------ */

/* The product is tested before it is formed: nmemb * size wraps silently.
 * A large block from pages never written (or given back) is not cleared
 * again: that saves a page fault for each page of a big calloc. */
void *gm_calloc(size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size)
        return gm_enomem();
    size_t n = nmemb * size;
    void *p = gm_malloc(n);
    if (p == NULL)
        return NULL;
    if (n > GM_MAX_SMALL && !GM_CHECKED) {
        const mspan *s = span_of_page(page_of(p));
        if (!s->needzero)
            return p;
    }
    memset(p, 0, n);
    return p;
}

/* A class whose size is a multiple of the alignment puts every slot on it
 * (a span starts on an 8 KiB page): every power of two up to 8 KiB is a
 * class, so one exists for any alignment up to a page and a size up to
 * 32 KiB. Alignments up to 16 are what gm_malloc gives a request at least
 * as big. Beyond, a large block whose first page is a multiple of it. */
void *gm_aligned_alloc(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (size > GM_MAX_REQUEST || align > GM_MAX_REQUEST)
        return gm_enomem();
    size_t n = size < align ? align : size;
    if (align <= GM_ALIGN)
        return gm_malloc(n);
    gm_init_once();
    if (n <= GM_MAX_SMALL && align <= GM_PAGE) {
        for (unsigned c = class_of(n); c < GM_NCLASSES; c++) {
            if (gm_size_of_class[c] % align != 0)
                continue;
            void *p = mcache_alloc(c);
            scav_kick();
            if (p == NULL)
                return gm_enomem();
            return alloc_checked(p, size, c);
        }
    }
    return large_alloc(size, align > GM_PAGE ? align / GM_PAGE : 1);
}

/* What the block at p can hold, and (checked builds) what was asked for:
 * the request under a memory tool (the rest is no-access to it). */
static size_t block_usable(mspan *s, void *p, const char *fn, size_t *request)
{
    if (s->state == MSPAN_LARGE) {
        if (p != span_base(s))
            alloc_fatal(STAGE, fn, p, "not the start of a block");
#if GM_CHECKED
        if (!(__atomic_load_n(&s->live_bits[0], __ATOMIC_ACQUIRE) & 1))
            alloc_fatal(STAGE, fn, p, "a freed block");
        *request = s->large_request;
#else
        *request = span_bytes(s);
#endif
        return span_bytes(s);
    }
    if (s->cls == GM_TINY_CLASS) {
#if GM_CHECKED
        *request = tiny_checked_request(s, p, fn, false);
#else
        *request = tiny_extent(s, p);
#endif
        return tiny_extent(s, p);
    }
#if GM_CHECKED
    *request = checked_live(s, p, fn, false);
#else
    *request = s->elemsize;
#endif
    return s->elemsize;
}

size_t gm_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    void *q = (void *)(uintptr_t)p;
    mspan *s = block_span(q, "gm_usable_size");
    size_t request;
    size_t usable = block_usable(s, q, "gm_usable_size", &request);
    return TRACK_ENABLED ? request : usable;
}

/* In place when the new size keeps the block's class (a tiny object: when
 * it still fits before the next object), or, for a large block, stays
 * large (its pages shrink, or grow into the free run after them). Else
 * allocate, copy the smaller of the two sizes, free. */
void *gm_realloc(void *p, size_t size)
{
    if (p == NULL)
        return gm_malloc(size);
    if (size == 0) {
        gm_free(p);
        return NULL;
    }
    if (size > GM_MAX_REQUEST)
        return gm_enomem();
    mspan *s = block_span(p, "gm_realloc");
    size_t old;
    size_t usable = block_usable(s, p, "gm_realloc", &old);
    bool in_place;
    if (s->state == MSPAN_LARGE)
        in_place = size > GM_MAX_SMALL && mheap_resize_large(s, size);
    else if (s->cls == GM_TINY_CLASS)
        in_place = size <= usable && size < GM_TINY_SIZE;
    else
        in_place = size <= GM_MAX_SMALL && class_of(size) == s->cls;
    if (in_place) {
#if GM_CHECKED
        if (s->state == MSPAN_LARGE)
            s->large_request = size;
        else if (s->cls == GM_TINY_CLASS)
            s->tiny_req[(char *)p - span_base(s)] = (uint8_t)size;
        else
            s->requests[slot_of(s, p)] = (uint16_t)size;
#endif
        track_resize(p, old, size, 0);
        return p;
    }
    void *q = gm_malloc(size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    gm_free(p);
    return q;
}

/* ---- Start, settings, the end -------------------------------------------- */

static void heap_start(void);
static void fork_handlers_register(void);

/* The first call of any thread starts the heap: one thread does the work,
 * the others wait. Nothing here allocates, so no call can come back in
 * before the heap is ready; what may allocate (pthread_atfork) runs after
 * the heap is ready, outside any lock. */
void gm_init_once(void)
{
    if (GM_LIKELY(__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) == 2))
        return;
    int expected = 0;
    if (__atomic_compare_exchange_n(&gm_heap.init, &expected, 1, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        heap_start();
        __atomic_store_n(&gm_heap.init, 2, __ATOMIC_RELEASE);
        fork_handlers_register();
        return;
    }
    while (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) != 2)
        sched_yield();
}

void gm_init(void)
{
    gm_init_once();
}

/* A setting from the environment (getenv allocates nothing). */
static const char *env(const char *name)
{
    const char *s = getenv(name);
    return s != NULL && *s != '\0' ? s : NULL;
}

static void heap_start(void)
{
    pthread_mutex_init(&gm_heap.registry_lock, NULL);
    pthread_mutex_init(&gm_heap.scav_busy, NULL);
    pthread_mutex_init(&gm_heap.scav_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&gm_heap.scav_cond, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned c = 1; c < GM_NLISTS; c++)
        mcentral_init(&gm_heap.central[c], c);
    mheap_init(&gm_heap.mheap);
    gm_heap.threads = NULL;
    gm_heap.nthreads = 0;
    const char *s = env("GM_TINY");
    gm_heap.tiny = s != NULL && strcmp(s, "0") != 0; /* off unless asked */
    s = env("GM_SCAVENGE");
    gm_heap.scav_mode = s == NULL                ? GM_SCAVENGE_BACKGROUND
                        : strcmp(s, "sync") == 0 ? GM_SCAVENGE_SYNC
                        : strcmp(s, "off") == 0  ? GM_SCAVENGE_OFF
                                                 : GM_SCAVENGE_BACKGROUND;
    s = env("GM_SCAVENGE_DELAY_MS");
    gm_heap.scav_delay_ms = s != NULL ? (unsigned)strtoul(s, NULL, 10) : 100;
    s = env("GM_RETAIN");
    if (s != NULL)
        gm_heap.mheap.retain = (size_t)strtoull(s, NULL, 0);
    gm_heap.scav_state = 0;
    gm_heap.scav_wanted = false;
    gm_heap.scav_awake = false;
    gm_heap.scav_work = false;
    gm_heap.scav_stopping = false;
    if (!gm_heap.key_made) {
        /* glibc's pthread_key_create allocates nothing */
        if (pthread_key_create(&gm_heap.key, mcache_thread_exit) == 0)
            gm_heap.key_made = true;
    }
}

void gm_set_tiny(bool on)
{
    gm_init_once();
    __atomic_store_n(&gm_heap.tiny, on, __ATOMIC_RELAXED);
    if (!on)
        tiny_retire(&gm_mcache); /* other threads: at their next block */
}

bool gm_tiny_enabled(void)
{
    gm_init_once();
    return __atomic_load_n(&gm_heap.tiny, __ATOMIC_RELAXED);
}

void gm_set_scavenge(gm_scavenge_mode mode)
{
    gm_init_once();
    if (mode != GM_SCAVENGE_BACKGROUND)
        scav_stop();
    __atomic_store_n(&gm_heap.scav_mode, (int)mode, __ATOMIC_RELAXED);
}

void gm_set_retain(size_t bytes)
{
    gm_init_once();
    gm_lock_take(&gm_heap.mheap.lock);
    gm_heap.mheap.retain = bytes;
    gm_lock_give(&gm_heap.mheap.lock);
}

void gm_set_scavenge_delay(unsigned ms)
{
    gm_init_once();
    __atomic_store_n(&gm_heap.scav_delay_ms, ms, __ATOMIC_RELAXED);
}

void gm_thread_release(void)
{
    if (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) != 2)
        return;
    int saved = errno;
    mcache_release(&gm_mcache, MCACHE_FRESH);
    scav_kick();
    errno = saved;
}

size_t gm_trim(void)
{
    gm_init_once();
    int saved = errno;
    mcache_release(&gm_mcache, MCACHE_FRESH);
    for (unsigned c = 1; c < GM_NLISTS; c++)
        mcentral_drain(c);
    pthread_mutex_lock(&gm_heap.scav_busy);
    size_t done = mheap_release_all();
    pthread_mutex_unlock(&gm_heap.scav_busy);
    errno = saved;
    return done;
}

/* Tells the tools that the blocks of small span s still live die. */
static size_t span_die(mspan *s)
{
    size_t live = 0;
    if (s->cls == GM_TINY_CLASS) {
        for (size_t i = 0; i < s->nelems; i++)
            live += s->tiny_live[i] != 0;
#if GM_CHECKED
        for (size_t at = 0; at < GM_PAGE; at++)
            if (s->tiny_req[at] != 0)
                track_free(span_base(s) + at, s->tiny_req[at], 0);
#endif
        return live;
    }
    for (size_t i = 0; i < s->nelems; i++) {
        if (!slot_taken(s, i))
            continue;
        live++;
#if GM_CHECKED
        if (s->live_bits[i / 64] >> (i % 64) & 1)
            track_free(span_base(s) + i * s->elemsize, s->requests[i], 0);
#endif
    }
    return live;
}

size_t gm_destroy(void)
{
    if (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) != 2)
        return 0;
    int saved = errno;
    scav_stop();
    mcache_release(&gm_mcache, MCACHE_FRESH);
    pthread_mutex_lock(&gm_heap.registry_lock);
    bool others = gm_heap.threads != NULL;
    pthread_mutex_unlock(&gm_heap.registry_lock);
    if (others)
        alloc_fatal(STAGE, "gm_destroy", gm_heap.threads,
                    "another thread still holds a cache");
    for (unsigned c = 1; c < GM_NLISTS; c++)
        mcentral_drain(c);
    /* What is still taken from a span now is the program's. */
    size_t live = 0;
    for (gm_arena *a = gm_heap.mheap.arenas; a != NULL; a = a->next) {
        if (a->page != a->map_page)
            continue;
        for (uintptr_t q = a->map_page; q < a->map_page + a->map_pages;) {
            mspan *s = span_of_page(q);
            if (s == NULL || s->npages == 0)
                break;
            if (s->state == MSPAN_SMALL)
                live += span_die(s);
            else if (s->state == MSPAN_LARGE) {
                live++;
#if GM_CHECKED
                if (s->live_bits[0] & 1)
                    track_free(span_base(s), s->large_request, 0);
#endif
            }
            q += s->npages;
        }
    }
    mheap_destroy();
    gm_heap.stranded = false;
    memset(&gm_mcache, 0, sizeof gm_mcache);
    __atomic_store_n(&gm_heap.init, 0, __ATOMIC_RELEASE);
    errno = saved;
    return live;
}

// clang-format off
/*
 * ---- fork --------------------------------------------------------------------
 *
 * A child has only the thread that called fork. If another thread held a
 * lock of the heap at that instant, the child's copy would stay locked
 * forever, so the prepare handler takes every lock, in lock order, and the
 * parent and the child release them. stdio's list lock comes first: a
 * thread inside stdio can hold a FILE lock while it waits for malloc
 * (getline allocates under it) while another holds the list lock and waits
 * for that FILE (fflush(NULL)); glibc's fork takes the list lock after the
 * prepare handlers, so taking the heap's locks first would close that
 * cycle. In the child, the other threads' caches are dropped from the list
 * of caches: their objects stay lost to the child, at most a cache's bound
 * each, as in glibc, jemalloc and TCMalloc (taking them back would mean
 * trusting lists that their threads may have been halfway through
 * changing), and gm_check then counts them as lost (gm_heap.stranded). No
 * scavenger thread exists in the child: the next kick starts one.
 * A signal handler that forks while its thread is inside the allocator
 * must use _Fork (POSIX.1-2024, which no longer lists fork as
 * async-signal-safe): it runs no handlers.
 */
// clang-format on

extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

void gm_lock_all(void)
{
    pthread_mutex_lock(&gm_heap.registry_lock);
    pthread_mutex_lock(&gm_heap.scav_busy);
    for (unsigned c = 1; c < GM_NLISTS; c++)
        gm_lock_take(&gm_heap.central[c].lock);
    gm_lock_take(&gm_heap.mheap.lock);
    pthread_mutex_lock(&gm_heap.scav_lock);
}

void gm_unlock_all(void)
{
    pthread_mutex_unlock(&gm_heap.scav_lock);
    gm_lock_give(&gm_heap.mheap.lock);
    for (unsigned c = GM_NLISTS - 1; c >= 1; c--)
        gm_lock_give(&gm_heap.central[c].lock);
    pthread_mutex_unlock(&gm_heap.scav_busy);
    pthread_mutex_unlock(&gm_heap.registry_lock);
}

static void fork_prepare(void)
{
    if (_IO_list_lock)
        _IO_list_lock();
    while (__atomic_load_n(&gm_heap.init, __ATOMIC_ACQUIRE) == 1)
        sched_yield(); /* a heap half started cannot be copied */
    gm_lock_all();
}

static void fork_parent(void)
{
    gm_unlock_all();
    if (_IO_list_unlock)
        _IO_list_unlock();
}

static void fork_child(void)
{
    mcache *me = &gm_mcache;
    if (gm_heap.nthreads > (me->registered ? 1u : 0u))
        gm_heap.stranded = true; /* other threads' caches are lost here */
    gm_heap.threads = me->registered ? me : NULL;
    gm_heap.nthreads = me->registered ? 1 : 0;
    me->next = me->prev = NULL;
    scav_after_fork_child();
    gm_unlock_all();
    if (_IO_list_resetlock)
        _IO_list_resetlock();
}

static void fork_handlers_register(void)
{
    static bool done; /* once per process, gm_destroy or not */
    if (!__atomic_exchange_n(&done, true, __ATOMIC_ACQ_REL))
        pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- The class table, for tests and tools -------------------------------- */

unsigned gm_size_class(size_t size)
{
    return size > GM_MAX_SMALL ? 0 : class_of(size);
}

size_t gm_class_size(unsigned cls)
{
    return cls >= 1 && cls < GM_NLISTS ? gm_size_of_class[cls] : 0;
}

size_t gm_class_pages(unsigned cls)
{
    return cls >= 1 && cls < GM_NLISTS ? gm_pages_of_class[cls] : 0;
}

size_t gm_class_objects(unsigned cls)
{
    return cls >= 1 && cls < GM_NLISTS ? gm_objects_of_class[cls] : 0;
}

size_t gm_class_batch(unsigned cls)
{
    return cls >= 1 && cls < GM_NLISTS ? gm_batch_of_class[cls] : 0;
}
