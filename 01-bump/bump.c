/*
 * bump.c: the bump allocator, the simplest and fastest allocator there is.
 *
 * The whole state is a region and an offset into it. To allocate n bytes:
 *
 *   1. Align: round the address base + offset up to the alignment asked for.
 *   2. Fit: if the block (and, in annotated builds, its redzone) does not fit
 *      between there and the end of the region, fail with ENOMEM and change
 *      nothing. This is the only slow path: there is nowhere else to look.
 *   3. Bump: move the offset past the block. Return the aligned address.
 *
 * To free, in bulk only:
 *
 *   4. Reset: the offset goes back to 0, every block dies, and the region's
 *      generation grows by one, so that every mark made so far is stale.
 *   5. Mark and rewind: a mark saves the offset (and the counters); a rewind
 *      moves the offset back to it, freeing every block allocated since.
 *
 * Costs: every operation is O(1). An allocation is a few additions, a mask
 * and a few comparisons: no search, no header, no lock, no memory touched but
 * the region's state. Bytes lost: alignment padding (up to align - 1 before a
 * block) and, in annotated builds, a 16-byte redzone after each block. Checked
 * builds pay O(bytes released) at a reset or a rewind (build/debug fills
 * them, the annotated builds make them no-access).
 *
 * The price: no block is freed on its own. A region suits memory whose
 * lifetimes nest (one request, one frame, one compiler pass, the scratch
 * space of one function): freeing is replaced by thinking in lifetimes.
 *
 * Deliberately left out: freeing one block (stage 02 frees fixed-size blocks
 * one by one, stage 04 blocks of any size), growing past the region (a chain
 * of regions is exercise 3 in the README; stage 03 gets memory from the OS a
 * page at a time), threads (one region per thread; stage 05 has an arena per
 * thread).
 *
 * The layout of a region in an annotated build, after blocks A, B and C, and
 * a scratch block after them that a rewind has released:
 *
 * <diagram region>
 * base                                                      base + capacity
 * |                                                                       |
 * [ A  ][rz][pad][  B   ][rz][ C ][rz]:::::::::::::::.......................
 * <-------------- offset ------------>
 * <---------------------- high_water ------------------>
 *
 * A, B, C  blocks, each aligned; pad is the alignment padding before B
 * rz       redzone: 16 no-access bytes after each block, annotated builds only
 * :        released: handed out once, freed by a reset or a rewind since
 * .        never used
 * </diagram>
 *
 * The state is bump_t, in bump.h (callers hold a region by value), with a
 * comment on every field and the invariants, which bump_check() (in
 * bump_check.c, with bump_dump()) verifies. The code below relies on two:
 * every byte below the offset belongs to a live block, its padding or its
 * redzone; the offset moves back only at a reset or a rewind.
 */
#include "bump.h"

#include "bump_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Do pad, then size, then redzone bytes fit in `left`? Each step subtracts
 * from what is left rather than adding to the request, so a size near
 * SIZE_MAX cannot wrap around and pass. */
static bool fits(size_t left, size_t pad, size_t size, size_t redzone)
{
    return pad <= left && size <= left - pad && redzone <= left - pad - size;
}

/* Checked builds note where each of the first BUMP_RECORDED live blocks is,
 * for bump_dump() and bump_check(). Block i is the i-th live one, so a reset
 * or a rewind needs no work here: restoring `allocations` forgets the rest. */
#ifdef ALLOC_DEBUG
static void record_block(bump_t *b, size_t start, size_t size)
{
    if (b->allocations < BUMP_RECORDED)
        b->recorded[b->allocations] = (bump_block_t){start, size};
}
#else
#define record_block(b, start, size) ((void)0)
#endif

/* ---- Allocating: the fast path ---- */

static void *no_room(void); /* the slow path, below */

/* Steps 1-3 of the file header, for an alignment already validated. */
static void *bump_place(bump_t *b, size_t size, size_t align)
{
    if (size == 0)
        size = 1; /* a unique address for every call */

    /* 1. Align the address, not the offset: a caller's buffer may start at
     *    any address. (-addr) & (align - 1) is the distance up to the next
     *    multiple of align (0 if addr already is one). */
    uintptr_t addr = (uintptr_t)(b->base + b->offset);
    size_t pad = (size_t)(-addr & (align - 1));

    /* 2. Fit: pad, then the block, then its redzone, in what is left. */
    if (!fits(b->capacity - b->offset, pad, size, BUMP_REDZONE))
        return no_room();

    /* 3. Bump. */
    unsigned char *p = b->base + b->offset + pad;
    record_block(b, b->offset + pad, size);
    b->offset += pad + size + BUMP_REDZONE;
    if (b->offset > b->high_water)
        b->high_water = b->offset;
    b->allocations++;
    b->requested += size;

    track_pool_alloc(b->base, p, size); /* accessible, undefined */
    track_fill_fresh(p, size);
    return p;
}

void *bump_alloc(bump_t *b, size_t size)
{
    return bump_place(b, size, BUMP_DEFAULT_ALIGN);
}

static bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

void *bump_alloc_aligned(bump_t *b, size_t size, size_t align)
{
    /* Any power of two: it is the address that is aligned, so the padding
     * (up to align - 1 bytes) is all an alignment costs, and the fit test
     * refuses with ENOMEM an alignment whose padding the region cannot
     * hold. */
    if (!is_power_of_two(align)) {
        errno = EINVAL;
        return NULL;
    }
    return bump_place(b, size, align);
}

/* ---- Allocating: the slow path ---- */

static void *no_room(void)
{
    errno = ENOMEM;
    return NULL;
}

/* ---- Freeing in bulk ---- */

/* Releases every byte from `to` up to the offset. Everything not handed out
 * is no-access to Valgrind and ASan, and the region is a Valgrind mempool,
 * whose blocks die all at once: so the tools forget the blocks past `to` and
 * make their bytes no-access again, and a use of a block after a reset or a
 * rewind is reported (bad_bump.c shows it). build/debug fills the bytes, so
 * that a stale pointer shows itself in a debugger there too. */
static void release_above(bump_t *b, size_t to)
{
    size_t n = b->offset - to;
    track_pool_trim(b->base, b->base, to); /* drop blocks past `to` */
    track_mem_noaccess(b->base + to, n);
    track_fill_freed(b->base + to, n);
    b->offset = to;
}

void bump_reset(bump_t *b)
{
    release_above(b, 0);
    b->allocations = 0;
    b->requested = 0;
    b->generation++; /* every mark made so far is stale */
}

bump_mark_t bump_mark(const bump_t *b)
{
    bump_mark_t m = {b->base, b->generation, b->offset, b->allocations,
                     b->requested};
    return m;
}

/*
 * Which stale marks are caught. A mark from another region: by its base. A
 * mark made before the last reset: always, by the generation, even when the
 * offset has grown past the mark again (alloc 30, mark, reset, alloc 500,
 * rewind: the offset alone would accept it, and the region would then hand
 * out bytes of the caller's 500-byte block a second time). A mark that an
 * outer rewind passed: only while the offset is below it. Catching that one
 * always would need the region to remember each rewind, or the marks still
 * valid, which a counter cannot do in O(1) space (exercise 5 in the README
 * asks why).
 */
void bump_rewind(bump_t *b, bump_mark_t m)
{
    if (m.base != b->base)
        alloc_fatal(STAGE, "bump_rewind", m.base,
                    "mark belongs to another region");
    if (m.generation != b->generation)
        alloc_fatal(STAGE, "bump_rewind", b->base + m.offset,
                    "mark is older than the last reset");
    if (m.offset > b->offset)
        alloc_fatal(STAGE, "bump_rewind", b->base + m.offset,
                    "mark is past the current offset (an outer rewind "
                    "passed it)");
    release_above(b, m.offset);
    b->allocations = m.allocations;
    b->requested = m.requested;
}

/* ---- Creating and ending a region ---- */

/* Common to both kinds of region: the fields, and the tools told that no
 * byte is handed out yet. The region's base is the mempool's handle. */
static void region_start(bump_t *b, void *mem, size_t size, bool owns)
{
    b->base = mem;
    b->capacity = size;
    b->offset = 0;
    b->high_water = 0;
    b->allocations = 0;
    b->requested = 0;
    b->generation = 0;
    b->owns_memory = owns;
    track_mem_noaccess(b->base, b->capacity);
    track_pool_create(b->base, 0, 0);
}

int bump_init(bump_t *b, void *buf, size_t size)
{
    if (buf == NULL || size == 0) {
        errno = EINVAL;
        return -1;
    }
    region_start(b, buf, size, false);
    return 0;
}

int bump_init_mmap(bump_t *b, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size == 0 || size > SIZE_MAX - page) {
        errno = ENOMEM;
        return -1;
    }
    size = (size + page - 1) & ~(page - 1); /* whole pages */
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        errno = ENOMEM;
        return -1;
    }
    region_start(b, mem, size, true);
    return 0;
}

/* Like every free of the series, leaves errno as it found it: munmap can
 * fail (at the limit on the number of mappings), and a caller that checks
 * errno after its own calls must not see ours. A refused munmap leaves the
 * mapping in place; there is nothing better to do with it. */
void bump_destroy(bump_t *b)
{
    int saved_errno = errno;
    track_pool_destroy(b->base);
    if (b->owns_memory) {
        (void)munmap(b->base, b->capacity);
    } else {
        /* The caller's buffer is the caller's again: accessible, contents
         * undefined (the blocks in it are dead). */
        track_mem_undefined(b->base, b->capacity);
    }
    memset(b, 0, sizeof *b);
    errno = saved_errno;
}

bump_stats_t bump_stats(const bump_t *b)
{
    bump_stats_t s = {b->capacity, b->offset, b->requested, b->high_water,
                      b->allocations};
    return s;
}
