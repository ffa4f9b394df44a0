/*
 * arena_check.c: arena_check() and arena_dump(). They read the structures,
 * under each arena's lock in turn, and never change them. See arena.c for
 * the layout and arena_internal.h for the invariants, which are checked
 * here in this order:
 *
 *   1. each arena's heaps: header (magic, arena, sizes), then chunk by
 *      chunk from the first to the top (or to a closed heap's fenceposts):
 *      every chunk aligned, at least MINSIZE, inside its heap; its P bit
 *      equal to the previous chunk's state; a free chunk's footer equal to
 *      its size, no two free chunks side by side, none before the top; A
 *      set on the used chunks of a thread arena only;
 *   2. its bins: every chunk on a bin list is a free chunk of that arena,
 *      of the bin's size (small) or range (large), the list's links agree
 *      both ways, a large bin is sorted largest first with its nextsize
 *      ring on the first chunk of each size; the bins hold exactly the free
 *      chunks the walk found; a non-empty bin has its binmap bit set;
 *   3. its fast bins: aligned, decoded links, chunks of the bin's size, in
 *      use to their neighbours, carrying fastbin_key; have_fastchunks set
 *      if any is non-empty;
 *   4. the calling thread's cache (and quarantine): each list as long as
 *      its count, of chunks in use of its size carrying tcache_key;
 *   5. the mapped chunks: each mapping's header, offset and size;
 *   6. the counters: footprint = the heaps' sizes + the mappings' bytes,
 *      peak >= now. (Checked only when no other thread is allocating:
 *      between two arenas' checks, the totals can move.)
 *
 * A pointer is followed only after it has been found inside one of the
 * arena's heaps, so that a broken heap gives an answer, not a crash.
 */
#include "arena_internal.h"

#include <string.h>

/* Is chunk c (its header, 16 bytes) inside the used part of one of a's
 * heaps, past the heap's header? */
static bool in_arena(arena_t *a, const mchunk *c)
{
    for (heap_info *h = a->heap; h != NULL; h = h->prev)
        if ((const char *)c >= (const char *)heap_first_chunk(h) &&
            (const char *)c + CHUNK_HDR <= (const char *)h + h->size)
            return true;
    return false;
}

/* Figures that step 1 collects for the later steps. */
typedef struct walk_sums {
    size_t free_chunks; /* chunks that are free by their neighbours' P */
    size_t heap_bytes;
} walk_sums;

/* Step 1 for heap h of arena a. */
static const char *check_heap(arena_t *a, heap_info *h, walk_sums *sum)
{
    size_t page = page_size();
    if (h->magic != (HEAP_MAGIC ^ (uintptr_t)h))
        return "heap header damaged (magic)";
    if (h->ar != a)
        return "heap header names another arena";
    if ((uintptr_t)h % ARENA_HEAP_SIZE != 0)
        return "heap not aligned to its size";
    if (h->size % page != 0 || h->committed % page != 0 ||
        h->reserved % page != 0 || h->size > h->committed ||
        h->committed > h->reserved || h->reserved > ARENA_HEAP_SIZE)
        return "heap sizes not page multiples in order";
    mchunk *first = heap_first_chunk(h);
    if (h->clean < (char *)first || h->clean > (char *)h + h->committed)
        return "heap clean mark outside the heap";
    sum->heap_bytes += h->size;
    char *end = (char *)h + h->size;
    bool newest = h == a->heap, prev_used = true;
    mchunk *c = first;
    for (;;) {
        if ((char *)c + CHUNK_HDR > end)
            return "chunks run past their heap's end";
        if (!aligned_ok(c))
            return "chunk not aligned";
        size_t hd = head(c), size = hd & ~SIZE_BITS;
        if (((hd & PREV_INUSE) != 0) != prev_used)
            return "P bit disagrees with the previous chunk";
        if (hd & IS_MMAPPED)
            return "M bit set on a heap chunk";
        if (newest && c == a->top) {
            if ((char *)c + size != end)
                return "top chunk does not end at its heap's end";
            if (size < MINSIZE)
                return "top chunk smaller than MINSIZE";
            if (!prev_used)
                return "a free chunk touches the top chunk";
            return NULL;
        }
        if (size == 0) { /* a closed heap's last word */
            if (newest)
                return "a zero-size chunk before the top";
            if ((char *)c != end - CHUNK_HDR || !(hd & PREV_INUSE))
                return "closed heap's end marker misplaced";
            return NULL;
        }
        mchunk *next = chunk_at(c, size);
        bool fence = !newest && (char *)next == end - CHUNK_HDR;
        if (size < MINSIZE && !fence)
            return "chunk smaller than MINSIZE";
        if ((char *)next + CHUNK_HDR > end)
            return "chunk runs past its heap's end";
        bool is_free = !prev_inuse(next);
        if (is_free) {
            if (fence)
                return "a heap's fencepost is free";
            if (prev_size(next) != size)
                return "free chunk's footer disagrees with its size";
            if (!prev_used)
                return "two free chunks side by side (not merged)";
            if (hd & NON_MAIN_ARENA)
                return "A bit set on a free chunk";
            sum->free_chunks++;
        } else if (!fence &&
                   ((hd & NON_MAIN_ARENA) != 0) != (a != &main_arena)) {
            return "A bit wrong on a chunk in use";
        }
        prev_used = !is_free;
        c = next;
    }
}

/* Step 2: bin i's list. Counts its chunks into *n. */
static const char *check_bin(arena_t *a, unsigned i, size_t limit, size_t *n)
{
    mchunk *bin = bin_at(a, i), *prev = bin;
    size_t last_size = SIZE_MAX;
    size_t count = 0;
    for (mchunk *c = fd(bin); c != bin; prev = c, c = fd(c)) {
        if (++count > limit)
            return "a bin holds more chunks than there are free ones (a "
                   "loop?)";
        if (!aligned_ok(c) || !in_arena(a, c))
            return "a bin holds a chunk outside its arena's heaps";
        if (bk(c) != prev)
            return "bin links disagree (fd->bk != chunk)";
        size_t size = chunksize(c);
        if (!in_arena(a, chunk_at(c, size)))
            return "a bin's chunk runs past its heap";
        if (prev_inuse(chunk_at(c, size)))
            return "a bin holds a chunk in use";
        if (i == 1)
            continue; /* the unsorted bin: any size, no order */
        if (bin_index(size) != i)
            return "a chunk in the wrong bin for its size";
        if (i >= NSMALLBINS) {
            if (size > last_size)
                return "large bin not sorted (largest first)";
            bool first_of_size = size != last_size;
            if (first_of_size != (fd_nextsize(c) != NULL))
                return "large bin: size links on the wrong chunks";
            if (first_of_size && (bk_nextsize(fd_nextsize(c)) != c ||
                                  fd_nextsize(bk_nextsize(c)) != c))
                return "large bin: size links disagree";
            last_size = size;
        }
    }
    if (bk(bin) != prev)
        return "bin links disagree at the head (bk != last chunk)";
    if (count > 0 && i >= 2 && !(a->binmap[i / 64] & ((uint64_t)1 << (i % 64))))
        return "a non-empty bin has its binmap bit clear";
    *n = count;
    return NULL;
}

/* Step 3. */
static const char *check_fastbins(arena_t *a, size_t limit)
{
    bool any = false;
    for (unsigned i = 0; i < NFASTBINS; i++) {
        size_t count = 0;
        for (mchunk *c = a->fastbins[i]; c != NULL;
             c = protect_ptr(chunk2mem(c),
                             (void *)(uintptr_t)word_get(chunk2mem(c)))) {
            any = true;
            if (++count > limit)
                return "a fast bin holds more chunks than the heaps (a loop?)";
            if (!aligned_ok(c) || !in_arena(a, c))
                return "a fast bin holds a chunk outside its arena's heaps";
            if (fastbin_index(chunksize(c)) != i)
                return "a fast bin holds a chunk of another size";
            if (!inuse_at(c, chunksize(c)))
                return "a fast-bin chunk is marked free";
            if (word_get((char *)chunk2mem(c) + SIZE_SZ) != fastbin_key)
                return "a fast-bin chunk lost its key";
        }
    }
    if (any && !a->have_fastchunks)
        return "fast bins hold chunks but have_fastchunks is clear";
    return NULL;
}

/* Steps 1 to 3 for one arena; its lock is held. */
static const char *check_arena(arena_t *a, size_t *heap_bytes)
{
    walk_sums sum = {0};
    if (a->heap == NULL) {
        if (a->top != NULL || a->system_mem != 0)
            return "an arena with no heap has a top chunk or memory";
        for (unsigned i = 1; i < NBINS; i++)
            if (fd(bin_at(a, i)) != bin_at(a, i))
                return "an arena with no heap has a non-empty bin";
        return NULL;
    }
    if (a->top == NULL || heap_of(a->top) != a->heap)
        return "top chunk not in the arena's newest heap";
    size_t nheaps = 0;
    for (heap_info *h = a->heap; h != NULL; h = h->prev) {
        if (++nheaps > a->nheaps)
            return "more heaps on the arena's list than it counts";
        const char *why = check_heap(a, h, &sum);
        if (why != NULL)
            return why;
    }
    if (nheaps != a->nheaps)
        return "fewer heaps on the arena's list than it counts";
    if (sum.heap_bytes != a->system_mem)
        return "arena's system_mem disagrees with its heaps' sizes";
    size_t limit = sum.heap_bytes / MINSIZE, in_bins = 0;
    for (unsigned i = 1; i < NBINS; i++) {
        size_t n = 0;
        const char *why = check_bin(a, i, limit, &n);
        if (why != NULL)
            return why;
        in_bins += n;
    }
    if (in_bins != sum.free_chunks)
        return "the bins do not hold exactly the free chunks";
    *heap_bytes += sum.heap_bytes;
    return check_fastbins(a, limit);
}

/* Step 4: the calling thread's cache (and quarantine). */
static const char *check_thread(const arena_thread *t)
{
    for (size_t i = 0; i < TCACHE_BINS; i++) {
        size_t n = 0;
        for (char *e = t->entries[i]; e != NULL;
             e = protect_ptr(e, (void *)(uintptr_t)word_get(e))) {
            if (++n > t->counts[i])
                return "a cache list is longer than its count";
            if (!aligned_ok(e))
                return "a cache list holds an unaligned chunk";
            mchunk *c = mem2chunk(e);
            size_t h = head(c);
            if (h & IS_MMAPPED)
                return "a cache list holds a mapped chunk";
            if ((h & ~SIZE_BITS) != MINSIZE + 16 * i)
                return "a cache list holds a chunk of another size";
            if (!inuse_at(c, h & ~SIZE_BITS))
                return "a cached chunk is marked free";
            if (word_get(e + SIZE_SZ) != tcache_key)
                return "a cached chunk lost its key";
        }
        if (n != t->counts[i])
            return "a cache list is shorter than its count";
        if (n > t->limit && t->state == THREAD_RUNNING)
            return "a cache list holds more than the thread's bound";
    }
#if CHECKED
    if (t->q_count > QUARANTINE)
        return "quarantine count out of range";
    for (size_t i = 0; i < t->q_count; i++) {
        const mchunk *c =
            mem2chunk(t->quarantine[(t->q_first + i) % QUARANTINE]);
        size_t h = head(c);
        if (!(h & IS_MMAPPED) && !inuse_at(c, h & ~SIZE_BITS))
            return "a quarantined chunk is marked free";
    }
#endif
    return NULL;
}

/* Step 5. */
static const char *check_mapped(size_t *bytes)
{
    size_t page = page_size(), n = 0, total = 0;
    const char *why = NULL;
    pthread_mutex_lock(&mmap_lock);
    mmap_link *prev = &mmap_list;
    for (mmap_link *l = mmap_list.next; l != &mmap_list && why == NULL;
         prev = l, l = l->next) {
        if (l->prev != prev)
            why = "mapped chunk list links disagree";
        else if ((uintptr_t)l % page != 0 || l->len % page != 0)
            why = "a mapping not page-aligned";
        else if (l->off < MMAP_LINKS || l->off >= l->len)
            why = "a mapped chunk's offset out of its mapping";
        else {
            mchunk *c = (mchunk *)((char *)l + l->off);
            size_t h = head(c);
            if (!(h & IS_MMAPPED) || prev_size(c) != l->off ||
                (h & ~SIZE_BITS) != l->len - l->off)
                why = "a mapped chunk's header disagrees with its mapping";
        }
        n++;
        total += l->len;
    }
    if (why == NULL &&
        (n != os_count.mmapped_chunks || total != os_count.mmapped_bytes))
        why = "mapped chunk counts disagree with the list";
    pthread_mutex_unlock(&mmap_lock);
    *bytes = total;
    return why;
}

const char *arena_check_why(void)
{
    process_start_once();
    size_t heap_bytes = 0, mapped = 0;
    const char *why = NULL;
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = arena_list_first(); a != NULL && why == NULL;
         a = a->next) {
        arena_lock(a);
        why = check_arena(a, &heap_bytes);
        arena_unlock(a);
    }
    pthread_mutex_unlock(&list_lock);
    if (why == NULL)
        why = check_thread(thread_self());
    if (why == NULL)
        why = check_mapped(&mapped);
    if (why == NULL) {
        size_t fp = arena_footprint();
        if (fp != heap_bytes + mapped)
            why = "footprint disagrees with the heaps and mappings";
        else if (__atomic_load_n(&os_count.peak_footprint, __ATOMIC_RELAXED) <
                 fp)
            why = "peak footprint below the footprint";
    }
    return why;
}

bool arena_check(void)
{
    return arena_check_why() == NULL;
}

/* ---- The drawing -------------------------------------------------------- */

#define DUMP_CELLS 256 /* cells per heap at most: 4 rows of 64 */
#define DUMP_ROW   64
#define DUMP_MARKS 512 /* fast and cached chunks marked in the drawing */

/* Chunks to draw as 'f' (fast bins) or 't' (this thread's cache). */
typedef struct marks {
    const mchunk *at[DUMP_MARKS];
    char kind[DUMP_MARKS];
    size_t n;
} marks;

static char mark_of(const marks *m, const mchunk *c)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->at[i] == c)
            return m->kind[i];
    return 0;
}

static void mark_add(marks *m, const mchunk *c, char kind)
{
    if (m->n < DUMP_MARKS) {
        m->at[m->n] = c;
        m->kind[m->n++] = kind;
    }
}

static size_t kib(size_t n)
{
    return (n + 1023) / 1024;
}

/* One heap as rows of cells, from its first chunk to its top chunk (or to
 * its end, for an older heap): '|' a chunk's start, '#' in use, 't' in this
 * thread's cache, 'f' in a fast bin, '.' free in a bin. */
static void dump_heap(arena_t *a, heap_info *h, const marks *m, FILE *out)
{
    char cells[DUMP_CELLS];
    char *first = (char *)heap_first_chunk(h), *end = (char *)h + h->size;
    char *stop = heap_of(a->top) == h ? (char *)a->top : end;
    size_t area = (size_t)(stop - first);
    size_t cell = (area + DUMP_CELLS - 1) / DUMP_CELLS;
    cell = cell < 16 ? 16 : (cell + 15) & ~(size_t)15;
    size_t ncells = (area + cell - 1) / cell;
    memset(cells, ' ', sizeof cells);
    size_t used = 0, nfree = 0;
    for (mchunk *c = (mchunk *)first; (char *)c < stop;) {
        size_t size = chunksize(c);
        if (size == 0)
            break; /* a closed heap's end */
        char body = '#';
        if ((char *)c + size + CHUNK_HDR <= end && !inuse_at(c, size))
            body = '.';
        else if (mark_of(m, c) != 0)
            body = mark_of(m, c);
        if (body == '.')
            nfree++;
        else
            used++;
        size_t off = (size_t)((char *)c - first);
        size_t lo = off / cell, hi = (off + size - 1) / cell;
        for (size_t i = lo; i <= hi && i < ncells; i++)
            cells[i] = body;
        if (hi > lo) /* a chunk of several cells starts with a bar */
            cells[lo] = '|';
        c = chunk_at(c, size);
    }
    fprintf(out,
            "  heap %p: %zu KiB used of 64 MiB (%zu KiB committed), %zu "
            "chunks in use, %zu free",
            (void *)h, kib(h->size), kib(h->committed), used, nfree);
    if (ncells > 0)
        fprintf(out, "; one cell = %zu bytes", cell);
    fputc('\n', out);
    for (size_t i = 0; i < ncells; i += DUMP_ROW) {
        size_t k = ncells - i < DUMP_ROW ? ncells - i : DUMP_ROW;
        fprintf(out, "    %8zu %.*s\n", (size_t)(first - (char *)h) + i * cell,
                (int)k, cells + i);
    }
}

/* The non-empty bins of a: counts and sizes, then the binmap. */
static void dump_bins(arena_t *a, FILE *out)
{
    fprintf(out, "  fast bins:");
    bool any = false;
    for (unsigned i = 0; i < NFASTBINS; i++) {
        size_t n = 0;
        for (mchunk *c = a->fastbins[i]; c != NULL && n < 100000;
             c = protect_ptr(chunk2mem(c),
                             (void *)(uintptr_t)word_get(chunk2mem(c))))
            n++;
        if (n > 0) {
            fprintf(out, " [%u B] %zu", (i + 2) * 16, n);
            any = true;
        }
    }
    fprintf(out, "%s\n", any ? "" : " (empty)");
    for (unsigned i = 1; i < NBINS; i++) {
        mchunk *bin = bin_at(a, i);
        if (fd(bin) == bin)
            continue;
        size_t n = 0;
        for (mchunk *c = fd(bin); c != bin && n < 100000; c = fd(c))
            n++;
        if (i == 1)
            fprintf(out, "  unsorted bin: %zu chunk%s:", n, n == 1 ? "" : "s");
        else if (i < NSMALLBINS)
            fprintf(out, "  small bin %u (%u B): %zu chunk%s:", i, i * 16, n,
                    n == 1 ? "" : "s");
        else
            fprintf(out, "  large bin %u: %zu chunk%s:", i, n,
                    n == 1 ? "" : "s");
        size_t shown = 0;
        for (mchunk *c = fd(bin); c != bin && shown < 8; c = fd(c), shown++)
            fprintf(out, " %zu", chunksize(c));
        fprintf(out, "%s\n", n > shown ? " ..." : "");
    }
    fprintf(out, "  binmap (bins 0-127, a bit per bin that may be "
                 "non-empty):\n    ");
    for (unsigned i = 0; i < NBINS; i++) {
        fputc(a->binmap[i / 64] & ((uint64_t)1 << (i % 64)) ? '1' : '0', out);
        if (i % 64 == 63 && i + 1 < NBINS)
            fprintf(out, "\n    ");
        else if (i % 8 == 7)
            fputc(' ', out);
    }
    fputc('\n', out);
}

typedef struct thread_dump {
    FILE *out;
    const arena_thread *me;
} thread_dump;

/* One thread's cache: chunks per size (counts only for other threads:
 * their lists are theirs alone). */
static void dump_thread(const arena_thread *t, void *arg)
{
    thread_dump *d = arg;
    size_t total = 0;
    fprintf(d->out, "  thread %u%s, arena %u, bound %u:", t->id,
            t == d->me ? " (this one)" : "",
            t->arena != NULL ? t->arena->index : 0, t->limit);
    for (size_t i = 0; i < TCACHE_BINS; i++) {
        uint16_t n = __atomic_load_n(&t->counts[i], __ATOMIC_RELAXED);
        if (n > 0)
            fprintf(d->out, " [%zu B] %u", MINSIZE + 16 * i, n);
        total += n;
    }
    fprintf(d->out, "%s\n", total == 0 ? " (empty)" : "");
}

void arena_dump(FILE *out)
{
    process_start_once();
    const arena_thread *me = thread_self();
    marks m;
    m.n = 0;
    for (size_t i = 0; i < TCACHE_BINS; i++)
        for (char *e = me->entries[i]; e != NULL;
             e = protect_ptr(e, (void *)(uintptr_t)word_get(e)))
            mark_add(&m, mem2chunk(e), 't');
    pthread_mutex_lock(&list_lock);
    for (arena_t *a = arena_list_first(); a != NULL; a = a->next) {
        arena_lock(a);
        size_t mine = m.n;
        for (unsigned i = 0; i < NFASTBINS; i++)
            for (mchunk *c = a->fastbins[i]; c != NULL;
                 c = protect_ptr(chunk2mem(c),
                                 (void *)(uintptr_t)word_get(chunk2mem(c))))
                mark_add(&m, c, 'f');
        fprintf(out,
                "arena %u%s: %zu heap%s, %zu KiB, %zu thread%s attached; lock "
                "taken %zu times (%zu waited)\n",
                a->index, a == arena_list_first() ? " (main)" : "", a->nheaps,
                a->nheaps == 1 ? "" : "s", kib(a->system_mem), a->attached,
                a->attached == 1 ? "" : "s", a->locks, a->contended);
        for (heap_info *h = a->heap; h != NULL; h = h->prev)
            dump_heap(a, h, &m, out);
        if (a->top != NULL)
            fprintf(out, "  top chunk: %zu bytes, then the heap's reserve\n",
                    chunksize(a->top));
        dump_bins(a, out);
        m.n = mine;
        arena_unlock(a);
    }
    pthread_mutex_unlock(&list_lock);
    pthread_mutex_lock(&mmap_lock);
    size_t n = 0, bytes = 0;
    for (mmap_link *l = mmap_list.next; l != &mmap_list; l = l->next) {
        n++;
        bytes += l->len;
    }
    pthread_mutex_unlock(&mmap_lock);
    fprintf(out,
            "mapped chunks: %zu, %zu KiB (mmap threshold %zu KiB, trim "
            "threshold %zu KiB)\n",
            n, kib(bytes), kib(param_get(&mp.mmap_threshold)),
            kib(param_get(&mp.trim_threshold)));
    fprintf(out, "per-thread caches:\n");
    thread_dump d = {out, me};
    threads_foreach(dump_thread, &d);
    fprintf(out, "footprint %zu KiB (peak %zu KiB)\n", kib(arena_footprint()),
            kib(__atomic_load_n(&os_count.peak_footprint, __ATOMIC_RELAXED)));
}
