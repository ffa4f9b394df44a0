/*
 * bump.c: the bump allocator, the simplest and fastest allocator there is.
 *
 * The whole state is a region and an offset into it. To allocate n bytes:
 *
 *   1. Align: round the address base + offset up to the alignment asked for.
 *   2. Fit: if the block (and, in annotated builds, its redzone) does not fit
 *      between there and the end of the region, fail with ENOMEM and change
 *      nothing.
 *   3. Bump: move the offset past the block. Return the aligned address.
 *
 * That is two additions, a mask and a comparison: no search, no header, no
 * lock. The price is that a block cannot be freed on its own. Memory goes back
 * only in bulk: bump_reset() moves the offset to 0, bump_rewind() moves it back
 * to a saved mark. So a bump region suits memory whose lifetimes nest: all the
 * allocations of one request, one frame, one compiler pass, a scratch buffer
 * inside one function. Freeing is replaced by thinking in lifetimes.
 *
 * Guarantee: every operation is O(1); no memory is wasted but alignment
 * padding (and redzones in annotated builds).
 *
 * Deliberately left out: freeing one block (stage 02 frees fixed-size blocks
 * one by one; stage 04 any size), growing past the region (a chain of regions
 * is exercise 3 in the README), threads (one region per thread).
 *
 * Layout of a region, after three allocations in an annotated build:
 *
 *   base                                                   base + capacity
 *   |                                                                    |
 *   [ A  ][rz][pad][  B   ][rz][ C ][rz]..................................
 *   <------------- offset -------------> <------- never used ----------->
 *
 *   A, B, C  blocks, each aligned (pad is the alignment padding before B)
 *   rz       redzone: no-access bytes after each block, only when a memory
 *            tool watches (BUMP_REDZONE), so that an overflow is reported
 *   .        free: no-access to the tools until handed out
 *
 * Memory-tool annotations: the region is a Valgrind mempool (its blocks die
 * all at once), and everything not handed out is no-access to Valgrind and
 * ASan. Reset and rewind make the released bytes no-access again, so a stale
 * pointer into them is reported.
 */
#include "bump.h"

#include "annotate.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STAGE "01-bump"

/* Bytes left unused after every block when a tool watches, so that writing
 * past a block lands in no-access memory and is reported. 16 keeps blocks
 * 16-byte aligned, which ASan's 8-byte granules need. */
static const size_t BUMP_REDZONE = TRACK_ENABLED ? 16 : 0;

static bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static size_t os_page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Do pad, then size, then redzone bytes fit in `left`? Each step subtracts
 * from what is left rather than adding to the request, so a size near
 * SIZE_MAX cannot wrap around and pass. */
static bool fits(size_t left, size_t pad, size_t size, size_t redzone)
{
    return pad <= left && size <= left - pad && redzone <= left - pad - size;
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
    size_t page = os_page_size();
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

/* ---- Allocating: the fast path ---- */

/* Steps 1-3 of the file header, for an alignment already validated. */
static void *bump_alloc_unchecked(bump_t *b, size_t size, size_t align)
{
    if (size == 0)
        size = 1; /* a unique address for every call */

    /* 1. Align the address, not the offset: a caller's buffer may start at
     *    any address. (-addr) & (align - 1) is the distance up to the next
     *    multiple of align (0 if addr already is one). */
    uintptr_t addr = (uintptr_t)(b->base + b->offset);
    size_t pad = (size_t)(-addr & (align - 1));

    /* 2. Fit: pad, then the block, then its redzone, in what is left. */
    if (!fits(b->capacity - b->offset, pad, size, BUMP_REDZONE)) {
        errno = ENOMEM;
        return NULL;
    }

    /* 3. Bump. */
    unsigned char *p = b->base + b->offset + pad;
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
    return bump_alloc_unchecked(b, size, BUMP_DEFAULT_ALIGN);
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
    return bump_alloc_unchecked(b, size, align);
}

/* ---- Freeing in bulk ---- */

/* Releases every byte from `to` up to the offset: the tools forget the blocks
 * there and make the bytes no-access, and checked builds fill them, so a
 * stale pointer shows itself. */
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

/* ---- Looking inside ---- */

bump_stats_t bump_stats(const bump_t *b)
{
    bump_stats_t s = {b->capacity, b->offset, b->requested, b->high_water,
                      b->allocations};
    return s;
}

bool bump_check(const bump_t *b)
{
    if (b->base == NULL || b->capacity == 0)
        return false;
    if (!(b->requested <= b->offset && b->offset <= b->high_water &&
          b->high_water <= b->capacity))
        return false;
    if (b->allocations > b->offset)
        return false;
    if (b->allocations == 0 && b->offset != 0)
        return false;
    return true;
}

/*
 * One row of DUMP_CELLS cells over the whole region, each cell showing what
 * most of its bytes are:
 *
 *   # in use (below the offset)   : released (above the offset, below the
 *   high-water mark: touched once, free now)   . never used
 */
#define DUMP_CELLS 64

void bump_dump(const bump_t *b, FILE *out)
{
    fprintf(out,
            "region %p: %zu B capacity, %zu B in use (%zu asked for, %zu "
            "padding%s), high water %zu B, %zu block%s\n",
            (void *)b->base, b->capacity, b->offset, b->requested,
            b->offset - b->requested, BUMP_REDZONE ? " and redzones" : "",
            b->high_water, b->allocations, b->allocations == 1 ? "" : "s");
    char row[DUMP_CELLS + 1];
    for (size_t i = 0; i < DUMP_CELLS; i++) {
        /* the byte in the middle of the cell decides its look */
        size_t mid =
            (size_t)(((double)i + 0.5) * (double)b->capacity / DUMP_CELLS);
        row[i] = (char)(mid < b->offset       ? '#'
                        : mid < b->high_water ? ':'
                                              : '.');
    }
    row[DUMP_CELLS] = '\0';
    fprintf(out, "  0%*zu\n", DUMP_CELLS + 1, b->capacity);
    fprintf(out, "  |%s|\n", row);
    fprintf(out,
            "  # in use   : released (below the high-water mark)   "
            ". never used   (1 cell = %zu B)\n",
            (b->capacity + DUMP_CELLS - 1) / DUMP_CELLS);
}
