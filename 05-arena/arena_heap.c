/*
 * arena_heap.c: where an arena's memory comes from and where it goes back:
 * heaps, the top chunk's growth and trim, and chunks with a mapping of
 * their own. See arena.c for the overview; every function here that takes
 * an arena is called with its lock held.
 *
 * A heap is ARENA_HEAP_SIZE (64 MB) of address space, aligned to 64 MB, so
 * that the heap of any chunk in it is the chunk's address with the low 26
 * bits cleared, and the heap's header (heap_info) names its arena: that is
 * how free finds a chunk's arena with no search and no global lock.
 *
 * <diagram heap>
 *   heap (64 MB reserved, PROT_NONE; less under an address-space limit)
 *   +--------+--------------------------------+- - - - - - - - - - - - - -+
 *   | header | chunks ...      | top chunk    |  reserve: no access, not  |
 *   +--------+--------------------------------+  charged, not resident    |
 *   ^ address & ~(64 MB - 1)      size ^        committed ^          64 MB ^
 * </diagram>
 *
 * Reserve, commit, release. A heap is reserved with
 * mmap(PROT_NONE, MAP_NORESERVE): address space only, no memory charged to
 * the process, no access. It is committed with mprotect(PROT_READ |
 * PROT_WRITE) as its top chunk grows, TOP_PAD (128 KiB) beyond what the
 * request needs, so that a program that grows steadily makes one mprotect
 * per 128 KiB and not one per page. Both together, as glibc does: the
 * reservation alone would let a stray pointer into the reserve read and
 * write memory the allocator never handed out, and would charge 64 MB per
 * arena under strict overcommit accounting; mprotect makes the reserve
 * fault and charges only what is committed. When the top chunk grows past
 * the trim threshold (128 KiB at first), its end beyond TOP_PAD is released
 * with madvise(MADV_DONTNEED): the pages go back to the OS and read as
 * zero when touched again, but stay read-write, so that growing into them
 * again costs no system call (glibc does the same unless the commit charge
 * is strict). An arena's newest heap that holds nothing but its top chunk
 * is unmapped whole.
 *
 * When a heap is full, a new one is mapped and chained to the arena (each
 * heap points to the one before it); the old heap's top chunk becomes an
 * ordinary free chunk, closed off by two small in-use chunks (fenceposts)
 * so that no merge runs past the heap's end.
 *
 * The main arena's heaps are heaps like the others: this stage never uses
 * brk. glibc's main arena grows with brk, contiguously; here every chunk
 * that is not mapped on its own lives in a 64 MB-aligned heap, one rule for
 * every arena. (The A bit still tells the main arena's chunks apart, as in
 * glibc: their arena is found without reading the heap's header.)
 *
 * Requests at or above the mmap threshold (128 KiB at first) that no bin
 * or top chunk can serve get a mapping of their own, given back by munmap
 * when freed. When such a chunk is freed, the threshold moves up to its
 * size (up to 32 MiB), and the trim threshold to twice that: a program that
 * keeps allocating and freeing one big size then gets it from a heap after
 * the first time, instead of paying a mapping and its page faults each
 * time. Setting either threshold stops the movement (glibc's rule).
 *
 * Under an address-space limit (ulimit -v), a 64 MB reservation can fail
 * where a smaller mapping would not. Then, in order: a heap is reserved as
 * 64 MB at the next aligned address (enough room for one heap, no more),
 * then as a smaller heap (half, a quarter, ... down to what the request
 * needs): what the mask needs is the alignment, not the size; a new arena
 * that cannot get a heap is not created (the thread shares an existing
 * arena: arena_process.c); and a request that no heap can hold gets a
 * mapping of its own, whatever its size.
 */
#define _GNU_SOURCE /* mremap, MREMAP_MAYMOVE */
#include "arena_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEFAULT_MMAP_THRESHOLD_MAX ((size_t)32 << 20)

arena_os os_count;
pthread_mutex_t mmap_lock = PTHREAD_MUTEX_INITIALIZER;
mmap_link mmap_list = {&mmap_list, &mmap_list, 0, 0};

size_t page_size(void)
{
    static size_t page;
    size_t p = __atomic_load_n(&page, __ATOMIC_RELAXED);
    if (p == 0) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        __atomic_store_n(&page, p, __ATOMIC_RELAXED);
    }
    return p;
}

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

void footprint_add(size_t n)
{
    size_t now = __atomic_add_fetch(&os_count.footprint, n, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&os_count.peak_footprint, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(
                             &os_count.peak_footprint, &peak, now, true,
                             __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

void footprint_sub(size_t n)
{
    __atomic_sub_fetch(&os_count.footprint, n, __ATOMIC_RELAXED);
}

/* Newly committed chunk memory is no-access to the memory tools until a
 * block is handed out in it (and any shadow left by an earlier mapping at
 * the same address is cleared first). */
void heap_commit_noaccess(char *from, size_t n)
{
    track_mem_undefined(from, n);
    track_mem_noaccess(from, n);
}

/* ---- Heaps -------------------------------------------------------------- */

/* `len` bytes of address space, no access: at exactly `at` if at is not
 * NULL (a hint, not MAP_FIXED: if the kernel puts it elsewhere, the try
 * failed), else where the kernel likes. NULL if refused. */
static char *reserve_at(char *at, size_t len)
{
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *p = mmap(at, len, PROT_NONE, flags, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    os_add(&os_count.mmaps, 1);
    if (at == NULL || p == at)
        return p;
    if (munmap(p, len) == 0)
        os_add(&os_count.munmaps, 1);
    return NULL;
}

static void unreserve(char *p, size_t len)
{
    if (len > 0 && munmap(p, len) == 0)
        os_add(&os_count.munmaps, 1);
}

/*
 * `len` bytes (at most ARENA_HEAP_SIZE) of address space at an address
 * aligned to ARENA_HEAP_SIZE, no access; NULL if the OS refuses. First
 * twice the heap size, trimmed to its aligned part (glibc's way); when that
 * much address space is not to be had (an address-space limit), `len`
 * bytes where the kernel puts them, if that is aligned, else at the aligned
 * addresses just above and just below.
 */
static char *reserve_aligned(size_t len)
{
    char *p = reserve_at(NULL, 2 * ARENA_HEAP_SIZE);
    if (p != NULL) {
        char *h = (char *)align_up((uintptr_t)p, ARENA_HEAP_SIZE);
        unreserve(p, (size_t)(h - p));
        unreserve(h + len, (size_t)(p + 2 * ARENA_HEAP_SIZE - (h + len)));
        return h;
    }
    if ((p = reserve_at(NULL, len)) == NULL)
        return NULL;
    if (((uintptr_t)p & (ARENA_HEAP_SIZE - 1)) == 0)
        return p;
    unreserve(p, len);
    char *up = (char *)align_up((uintptr_t)p, ARENA_HEAP_SIZE);
    char *h = reserve_at(up, len);
    return h != NULL ? h : reserve_at(up - ARENA_HEAP_SIZE, len);
}

/*
 * A new heap whose first `size` bytes (its header included) are committed,
 * plus `pad` more if the reservation has room; NULL if the OS refuses.
 * It reserves ARENA_HEAP_SIZE; under an address-space limit that refuses
 * so much, and if `smaller` allows it, half as much, and so on down to what
 * `size` needs (1 MiB at least): a smaller heap still starts at an aligned
 * address, so that the mask finds its header. Only a request that must be
 * served asks for a smaller heap: a new arena that took what address space
 * is left would leave none for the next thread's stack, and the thread can
 * share an arena instead. The caller sets h->ar and links it.
 */
heap_info *new_heap(size_t size, size_t pad, bool smaller)
{
    size_t page = page_size();
    if (size > ARENA_HEAP_SIZE)
        return NULL;
    size_t least = align_up(size, page);
    if (least < ((size_t)1 << 20))
        least = (size_t)1 << 20;
    if (!smaller)
        least = ARENA_HEAP_SIZE;
    size_t reserved = ARENA_HEAP_SIZE;
    char *p;
    while ((p = reserve_aligned(reserved)) == NULL) {
        if (reserved <= least)
            return NULL;
        reserved = reserved / 2 > least ? reserved / 2 : least;
    }
    size = align_up(size + pad <= reserved ? size + pad : size, page);
    if (mprotect(p, size, PROT_READ | PROT_WRITE) != 0) {
        unreserve(p, reserved);
        return NULL;
    }
    os_add(&os_count.mprotects, 1);
    track_mem_undefined(p, sizeof(heap_info));
    heap_commit_noaccess(p + sizeof(heap_info), size - sizeof(heap_info));
    heap_info *h = (heap_info *)p;
    h->magic = HEAP_MAGIC ^ (uintptr_t)h;
    h->ar = NULL;
    h->prev = NULL;
    h->size = size;
    h->committed = size;
    h->reserved = reserved;
    h->clean = p + size;
    footprint_add(size);
    return h;
}

/* Gives heap h back to the OS; the caller has unlinked it. */
void delete_heap(heap_info *h)
{
    footprint_sub(h->size);
    size_t committed = h->committed, reserved = h->reserved;
    h->magic = 0;
    track_mem_undefined(h, committed); /* no poison left behind */
    if (munmap(h, reserved) == 0)
        os_add(&os_count.munmaps, 1);
}

/* Grows heap h's used part by diff bytes (a multiple of the page size),
 * committing what is not yet committed. 0, or -1 if it has no room or the
 * OS refuses. */
static int grow_heap(heap_info *h, size_t diff)
{
    size_t new_size = h->size + diff;
    if (new_size > h->reserved)
        return -1;
    if (new_size > h->committed) {
        char *from = (char *)h + h->committed;
        if (mprotect(from, new_size - h->committed, PROT_READ | PROT_WRITE) !=
            0)
            return -1;
        os_add(&os_count.mprotects, 1);
        heap_commit_noaccess(from, new_size - h->committed);
        h->committed = new_size;
    }
    footprint_add(diff);
    h->size = new_size;
    return 0;
}

/* Releases the last diff bytes of heap h's used part (madvise). 0, or -1 if
 * the OS refuses (then nothing changes: the pages are still resident). */
static int shrink_heap(heap_info *h, size_t diff)
{
    char *from = (char *)h + h->size - diff;
    if (madvise(from, diff, MADV_DONTNEED) != 0)
        return -1;
    os_add(&os_count.madvises, 1);
    if (h->clean > from)
        h->clean = from; /* released pages read as zero */
    footprint_sub(diff);
    h->size -= diff;
    return 0;
}

/*
 * Closes heap h, which is no longer the arena's newest: its top chunk,
 * `oldtop`, becomes a free chunk followed by two fenceposts, a 16-byte
 * chunk marked in use and a zero-size header after it:
 *
 *   ... | free chunk (old top - 32) | fence: 16, in use | 0 | P | end
 *
 * A top of 32 or 48 bytes has no room for a free chunk: the fence takes it
 * all. The fencepost's size is in the last prev_size word, so that
 * heap_trim can find it again when the newer heap goes away.
 */
static void close_heap(arena_t *a, heap_info *h, mchunk *oldtop)
{
    size_t size = chunksize(oldtop);
    char *end = (char *)h + h->size;
    mchunk *last = (mchunk *)(end - CHUNK_HDR);
    size_t fence = size >= 2 * MINSIZE ? CHUNK_HDR : size - CHUNK_HDR;
    mchunk *post = chunk_before(last, fence);
    set_head(last, PREV_INUSE); /* size 0, the fence before it in use */
    set_prev_size(last, fence);
    h->clean = end; /* nothing fresh is promised in a closed heap */
    if (post == oldtop) {
        set_head(post, fence | PREV_INUSE);
        return;
    }
    set_head(post, fence | PREV_INUSE);
    unsorted_insert(a, oldtop, size - fence - CHUNK_HDR);
}

/*
 * Step 10 of the request path: memory for a chunk of nb bytes that no bin
 * and no top chunk can give. In order: a mapping of its own for a request
 * at or above the mmap threshold; growing the newest heap (committing
 * nb + MINSIZE - top, plus TOP_PAD if there is room); a new heap chained to
 * the arena; and, when no heap can be had, a mapping of its own whatever
 * the size. Returns the payload, or NULL with errno ENOMEM.
 */
void *sysmalloc(arena_t *a, size_t nb)
{
    size_t page = page_size(), pad = param_get(&mp.top_pad);
    bool tried_mmap = false;
    if (nb >= param_get(&mp.mmap_threshold)) {
        void *m = mmap_chunk(nb);
        if (m != NULL)
            return m;
        tried_mmap = true;
    }

    if (a->top == NULL) { /* the main arena's very first heap */
        heap_info *h =
            new_heap(sizeof(heap_info) + CHUNK_HDR + nb + MINSIZE, pad, true);
        if (h != NULL) {
            h->ar = a;
            a->heap = h;
            a->nheaps = 1;
            a->system_mem = h->size;
            mchunk *top = heap_first_chunk(h);
            set_head(top,
                     (size_t)((char *)h + h->size - (char *)top) | PREV_INUSE);
            h->clean = (char *)top + CHUNK_HDR;
            a->top = top;
        }
    } else if (chunksize(a->top) < nb + MINSIZE) {
        mchunk *top = a->top;
        size_t tsize = chunksize(top);
        heap_info *h = heap_of(top);
        size_t need = nb + MINSIZE - tsize;
        size_t diff = align_up(need + pad, page);
        if (h->size + diff > h->reserved)
            diff = align_up(need, page);
        if (grow_heap(h, diff) == 0) {
            a->system_mem += diff;
            set_head(top, (tsize + diff) | PREV_INUSE);
        } else {
            heap_info *h2 = new_heap(
                sizeof(heap_info) + CHUNK_HDR + nb + MINSIZE, pad, true);
            if (h2 != NULL) {
                h2->ar = a;
                h2->prev = h;
                a->heap = h2;
                a->nheaps++;
                a->system_mem += h2->size;
                mchunk *top2 = heap_first_chunk(h2);
                set_head(top2, (size_t)((char *)h2 + h2->size - (char *)top2) |
                                   PREV_INUSE);
                h2->clean = (char *)top2 + CHUNK_HDR;
                a->top = top2; /* first: closing frees the old top */
                close_heap(a, h, top);
            }
        }
    }
    if (a->top != NULL && chunksize(a->top) >= nb + MINSIZE)
        return chunk2mem(split_top(a, nb));
    if (!tried_mmap) {
        void *m = mmap_chunk(nb);
        if (m != NULL)
            return m;
    }
    errno = ENOMEM;
    return NULL;
}

/*
 * Free, step 5 (and arena_trim): gives back what the newest heap does not
 * need, keeping `pad` bytes of top. First, while the newest heap holds
 * nothing but its top chunk and the heap before it can take the pad, the
 * newest heap is unmapped and the older one's tail (its fenceposts, and the
 * free chunk before them) becomes the top again. Then, if the top chunk is
 * at least the trim threshold, its end beyond pad + MINSIZE is released,
 * whole pages (arena_trim forces this step whatever the threshold).
 * Returns true if anything went back.
 */
static bool heap_release(arena_t *a, heap_info *h, mchunk *top, size_t pad,
                         bool force);

bool heap_trim(arena_t *a, size_t pad, bool force)
{
    heap_info *h = a->heap;
    if (h == NULL)
        return false;
    mchunk *top = a->top;
    if (!force && chunksize(top) < param_get(&mp.trim_threshold) &&
        (h->prev == NULL || top != heap_first_chunk(h)))
        return false;  /* the common case: nothing to give back */
    int saved = errno; /* free keeps errno, whatever munmap and madvise do */
    bool released = heap_release(a, h, top, pad, force);
    errno = saved;
    return released;
}

/* heap_trim's work, once it is known that there may be some. */
static bool heap_release(arena_t *a, heap_info *h, mchunk *top, size_t pad,
                         bool force)
{
    size_t page = page_size();
    bool released = false;
    while (top == heap_first_chunk(h) && h->prev != NULL) {
        heap_info *ph = h->prev;
        char *pend = (char *)ph + ph->size;
        mchunk *last = (mchunk *)(pend - CHUNK_HDR);
        if (head(last) != PREV_INUSE) /* size 0 */
            arena_fatal("arena_free", last,
                        "corrupted heap: its end marker is damaged");
        mchunk *newtop = chunk_before(last, prev_size(last));
        size_t newsize = (size_t)(pend - (char *)newtop);
        mchunk *before = NULL;
        if (!prev_inuse(newtop)) {
            before = chunk_before(newtop, prev_size(newtop));
            newsize += prev_size(newtop);
        }
        if (newsize + (ph->reserved - ph->size) < pad + MINSIZE + page)
            break; /* the older heap could not hold the pad */
        if (before != NULL) {
            unlink_chunk(a, before, "arena_free");
            newtop = before;
        }
        a->system_mem -= h->size;
        a->nheaps--;
        delete_heap(h);
        h = ph;
        a->heap = h;
        set_head(newtop, newsize | PREV_INUSE);
        a->top = top = newtop;
        released = true;
    }
    size_t tsize = chunksize(top);
    if ((!force && tsize < param_get(&mp.trim_threshold)) ||
        tsize <= pad + MINSIZE + 1)
        return released;
    size_t extra = (tsize - MINSIZE - 1 - pad) & ~(page - 1);
    if (extra == 0 || shrink_heap(h, extra) != 0)
        return released;
    a->system_mem -= extra;
    set_head(top, (tsize - extra) | PREV_INUSE);
    return true;
}

/*
 * arena_trim's extra step (glibc's malloc_trim): the whole pages inside
 * every free chunk in a's bins go back to the OS with madvise. The chunks
 * stay where they are, their headers and links untouched (the released
 * range starts past them); the pages read as zero when used again. Returns
 * the bytes released.
 */
size_t trim_interiors(arena_t *a)
{
    size_t page = page_size(), released = 0;
    for (unsigned i = 1; i < NBINS; i++) {
        mchunk *bin = bin_at(a, i);
        for (mchunk *p = bk(bin); p != bin; p = bk(p)) {
            uintptr_t from = align_up((uintptr_t)p + 6 * SIZE_SZ, page);
            uintptr_t to = ((uintptr_t)p + chunksize(p)) & ~(page - 1);
            if (to > from &&
                madvise((void *)from, to - from, MADV_DONTNEED) == 0) {
                os_add(&os_count.madvises, 1);
                released += to - from;
            }
        }
    }
    return released;
}

/* ---- Chunks with a mapping of their own ------------------------------------
 *
 *   mapping (page-aligned)
 *   +-----------------+-----------+-----------+-----------------------+
 *   | next, prev, len | prev_size | size |M|  | payload ...           |
 *   +-----------------+-----------+-----------+-----------------------+
 *    the list of       = offset of the chunk from the mapping's start
 *    mapped chunks       (32, more after an aligned allocation moved it)
 *
 * The links (mmap_lock) let arena_check, arena_dump and arena_teardown find
 * every mapped chunk, and let free refuse a forged "mapped" header whose
 * links do not point back (glibc checks only the page alignment).
 */

/* A mapped chunk for a chunk of nb bytes; its payload, or NULL. */
void *mmap_chunk(size_t nb)
{
    size_t page = page_size();
    if (nb > ARENA_MAX_REQUEST + MINSIZE)
        return NULL;
    size_t len = align_up(nb + MMAP_LINKS + SIZE_SZ, page);
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    track_mem_undefined(m, len); /* clear an earlier mapping's shadow */
    track_mem_noaccess(m + MMAP_LINKS, len - MMAP_LINKS);
    mchunk *c = (mchunk *)(m + MMAP_LINKS);
    set_prev_size(c, MMAP_LINKS);
    set_head(c, (len - MMAP_LINKS) | IS_MMAPPED);
    mmap_link *l = (mmap_link *)m;
    l->len = len;
    l->off = MMAP_LINKS;
    pthread_mutex_lock(&mmap_lock);
    l->next = mmap_list.next;
    l->prev = &mmap_list;
    mmap_list.next->prev = l;
    mmap_list.next = l;
    os_count.mmapped_chunks++;
    os_count.mmapped_bytes += len;
    pthread_mutex_unlock(&mmap_lock);
    os_add(&os_count.mmaps, 1);
    footprint_add(len);
    return chunk2mem(c);
}

/* The mapping of mapped chunk c, checked: page-aligned, its links sound. */
static mmap_link *mapping_of(mchunk *c, const char *fn, size_t *len)
{
    size_t page = page_size(), off = prev_size(c);
    char *base = (char *)c - off;
    *len = off + chunksize(c);
    if ((((uintptr_t)base | *len) & (page - 1)) != 0 || off < MMAP_LINKS)
        arena_fatal(fn, chunk2mem(c),
                    "invalid pointer (not page-aligned for a mapped chunk)");
    mmap_link *l = (mmap_link *)base;
    if (l->len != *len || l->off != off || l->next->prev != l ||
        l->prev->next != l)
        arena_fatal(fn, chunk2mem(c),
                    "invalid pointer (a mapped chunk whose links do not "
                    "point back)");
    return l;
}

/*
 * Frees mapped chunk c: the mmap threshold moves up to its size (and the
 * trim threshold to twice it) if it is bigger and at most 32 MiB, then the
 * mapping goes back to the OS. A failed munmap loses the mapping (nothing
 * else can be done); errno is kept, as free must.
 */
void free_mmapped(mchunk *c, const char *fn)
{
    size_t len, size = chunksize(c);
    pthread_mutex_lock(&mmap_lock);
    mmap_link *l = mapping_of(c, fn, &len);
    l->prev->next = l->next;
    l->next->prev = l->prev;
    os_count.mmapped_chunks--;
    os_count.mmapped_bytes -= len;
    pthread_mutex_unlock(&mmap_lock);
    if (param_get(&mp.dyn_threshold) && size > param_get(&mp.mmap_threshold) &&
        size <= DEFAULT_MMAP_THRESHOLD_MAX) {
        param_set(&mp.mmap_threshold, size);
        param_set(&mp.trim_threshold, 2 * size);
    }
    footprint_sub(len);
    track_mem_undefined(l, len); /* no poison left behind */
    int saved = errno;           /* free keeps errno, whatever munmap does */
    if (munmap(l, len) == 0)
        os_add(&os_count.munmaps, 1);
    errno = saved;
}

/*
 * Resizes mapped chunk c to hold a chunk of nb bytes with mremap, which may
 * move it (the kernel moves the pages, it copies nothing). Returns the
 * chunk, or NULL if the OS refuses (c is then untouched).
 */
mchunk *mremap_chunk(mchunk *c, size_t nb)
{
    size_t page = page_size(), len, off = prev_size(c);
    size_t new_len = align_up(off + nb + SIZE_SZ, page);
    pthread_mutex_lock(&mmap_lock);
    mmap_link *l = mapping_of(c, "arena_realloc", &len);
    if (new_len == len) {
        pthread_mutex_unlock(&mmap_lock);
        return c;
    }
    mmap_link *m = mremap(l, len, new_len, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) {
        pthread_mutex_unlock(&mmap_lock);
        return NULL;
    }
    m->next->prev = m; /* the links moved with the mapping */
    m->prev->next = m;
    m->len = new_len;
    os_count.mmapped_bytes = os_count.mmapped_bytes - len + new_len;
    pthread_mutex_unlock(&mmap_lock);
    os_add(&os_count.mremaps, 1);
    if (new_len > len)
        footprint_add(new_len - len);
    else
        footprint_sub(len - new_len);
    mchunk *nc = (mchunk *)((char *)m + off);
    set_head(nc, (new_len - off) | IS_MMAPPED);
    return nc;
}
