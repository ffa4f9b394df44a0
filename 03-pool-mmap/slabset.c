/*
 * slabset.c: a side road, kept out of pagepool.c: the hash set of our slabs'
 * addresses, which only checked frees, pp_slab_of and pp_check ask; the
 * allocation and free paths of a release build never read it.
 *
 * Masking a pointer gives the page it lies in, but is that page one of our
 * slabs? Reading a magic number from it would crash if the page is not
 * mapped (a stale pointer into a slab given back, a random integer). So the
 * addresses of our slabs are kept in a set of their own, in a mapping of
 * its own: open addressing, linear probing, Fibonacci hashing of the page
 * number, at most half full, so that a lookup reads one or two slots on
 * average. It doubles when it would be more than half full, halves when an
 * eighth full, and goes away with the last slab; a key is removed by moving
 * the keys after it back (no tombstones).
 *
 * Cost: 16 bytes of set per slab of 4096 bytes (0.4% of the footprint), an
 * mmap and a munmap each time it doubles or halves, and, on each checked
 * free, a multiply and a probe. A sorted array would cost 8 bytes per slab
 * but O(slabs) per insertion. Stage 06 replaces the set with a page map, a
 * direct table over the address space that any page can be looked up in.
 */
#include "pagepool_internal.h"

size_t slabset_bytes(const pp_allocator_t *a)
{
    return round_up(a->set_cap * sizeof(uintptr_t), a->page_size);
}

/* Fibonacci hashing: multiply the page number by 2^64 / golden ratio and
 * keep the top bits, which depend on every bit of the page number. */
static size_t set_home(const pp_allocator_t *a, uintptr_t slab)
{
    uint64_t page_number = (uint64_t)slab >> a->page_shift;
    return (size_t)((page_number * 0x9E3779B97F4A7C15u) >> a->set_shift);
}

bool slabset_contains(const pp_allocator_t *a, uintptr_t slab)
{
    if (a->set_cap == 0)
        return false;
    for (size_t i = set_home(a, slab);; i = (i + 1) & (a->set_cap - 1)) {
        if (a->set[i] == slab)
            return true;
        if (a->set[i] == 0)
            return false;
    }
}

void slabset_insert(pp_allocator_t *a, uintptr_t slab)
{
    size_t i = set_home(a, slab);
    while (a->set[i] != 0)
        i = (i + 1) & (a->set_cap - 1);
    a->set[i] = slab;
    a->set_count++;
}

/* Moves the set to a mapping of `cap` slots (a power of two, or 0 to drop
 * it). False if the OS refuses the new mapping; the old one is kept. If it
 * refuses to take the old one back, pages_unmap keeps that on the refused
 * list: the set itself has moved either way. */
static bool set_resize(pp_allocator_t *a, size_t cap)
{
    uintptr_t *old = a->set;
    size_t old_cap = a->set_cap, old_bytes = slabset_bytes(a);
    uintptr_t *fresh = NULL;
    if (cap != 0) {
        fresh = pages_map(a, round_up(cap * sizeof *fresh, a->page_size));
        if (fresh == NULL)
            return false;
    }
    a->set = fresh;
    a->set_cap = cap;
    a->set_count = 0;
    a->set_shift = 64;
    for (size_t c = cap; c > 1; c >>= 1)
        a->set_shift--;
    for (size_t i = 0; cap != 0 && i < old_cap; i++)
        if (old[i] != 0)
            slabset_insert(a, old[i]);
    if (old != NULL)
        pages_unmap(a, old, old_bytes);
    return true;
}

bool slabset_reserve(pp_allocator_t *a)
{
    if (2 * (a->set_count + 1) <= a->set_cap)
        return true;
    size_t min_cap = a->page_size / sizeof(uintptr_t); /* one page */
    return set_resize(a, a->set_cap ? 2 * a->set_cap : min_cap);
}

/*
 * Linear probing cannot just empty the slot: a key further along the same
 * run would become unreachable. So the keys after the hole move back into
 * it when their home is not between the hole and where they sit (Knuth,
 * The Art of Computer Programming, vol. 3, section 6.4, Algorithm R), and
 * no tombstone is needed.
 */
void slabset_remove(pp_allocator_t *a, uintptr_t slab)
{
    size_t mask = a->set_cap - 1;
    size_t hole = set_home(a, slab);
    while (a->set[hole] != slab)
        hole = (hole + 1) & mask;
    for (size_t j = (hole + 1) & mask; a->set[j] != 0; j = (j + 1) & mask) {
        size_t home = set_home(a, a->set[j]);
        /* Can the key at j move back to the hole? Only if its home is not
         * in the cyclic range (hole, j]. */
        bool home_after_hole =
            hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!home_after_hole) {
            a->set[hole] = a->set[j];
            hole = j;
        }
    }
    a->set[hole] = 0;
    a->set_count--;
    /* Shrink when 1/8 full (so that a grow is far off), and give the
     * mapping back when no slab is left. A failed shrink changes nothing. */
    if (a->set_count == 0)
        set_resize(a, 0);
    else if (8 * a->set_count < a->set_cap &&
             a->set_cap > a->page_size / sizeof(uintptr_t))
        set_resize(a, a->set_cap / 2);
}
