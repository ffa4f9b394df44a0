/*
 * bump_check.c: looking inside a region. bump_check() verifies the invariants
 * listed in bump.h; bump_dump() draws the region. Both read the region's state
 * only, never its bytes (which are no-access to a memory tool when they are
 * not handed out), and change nothing. Optional reading: bump.c does not need
 * this file to work.
 *
 * What they can see depends on the build. A release build keeps the counters
 * alone, so bump_check() verifies those and bump_dump() draws what is in use
 * as one run of '#'. A checked build also records where the first
 * BUMP_RECORDED live blocks are (bump.h), so bump_check() verifies each of
 * them against its neighbours and the counters, and bump_dump() draws every
 * block with its own letter, and the padding and the redzones between them.
 */
#include "bump.h"

#include "bump_internal.h"

#include <string.h>

/* ---- The checker ---- */

#ifdef ALLOC_DEBUG
/* Live blocks whose place is recorded: the first ones, up to BUMP_RECORDED. */
static size_t recorded_count(const bump_t *b)
{
    return b->allocations < BUMP_RECORDED ? b->allocations : BUMP_RECORDED;
}

/* The record agrees with itself and with the counters: blocks in address
 * order, each after the redzone of the one before, each of at least one
 * byte, all below the offset; when no live block is missing from it, their
 * sizes add up to `requested` and the last redzone ends at the offset. Each
 * comparison subtracts from the offset, so a wild size cannot wrap. */
static bool at_most(size_t a, size_t b) /* a comparison with BUMP_REDZONE,
                                           0 in most builds, without the
                                           compiler calling it always true */
{
    return a <= b;
}

static bool record_holds(const bump_t *b)
{
    size_t n = recorded_count(b);
    size_t end = 0; /* where the block before ends, with its redzone */
    size_t sum = 0; /* bytes the recorded blocks asked for */
    for (size_t i = 0; i < n; i++) {
        const bump_block_t *r = &b->recorded[i];
        if (r->size == 0 || r->start < end || r->start > b->offset ||
            r->size > b->offset - r->start ||
            !at_most(BUMP_REDZONE, b->offset - r->start - r->size))
            return false;
        end = r->start + r->size + BUMP_REDZONE;
        sum += r->size;
    }
    if (b->allocations <= BUMP_RECORDED)
        return sum == b->requested && end == b->offset;
    return sum <= b->requested;
}
#endif

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
#ifdef ALLOC_DEBUG
    if (!record_holds(b))
        return false;
#endif
    return true;
}

/* ---- The drawing ---- */

/*
 * The region as rows of DUMP_ROW cells, at most DUMP_CELLS cells in all, one
 * cell a power of two of bytes (16 B for a 4 KB region), each row labelled
 * with the offset of its first byte:
 *
 *   A B C ...  a recorded block (checked builds), one letter per block
 *   #          in use, not recorded (release builds, or past the first 32)
 *   -          alignment padding     r  redzone (annotated builds)
 *   :          released (below the high-water mark: touched once, free now)
 *   .          never used
 *
 * A cell shows the block that covers most of its bytes, if any block does,
 * so that no block disappears between padding; else whatever covers most.
 */
#define DUMP_CELLS 256
#define DUMP_ROW   64

#ifdef ALLOC_DEBUG
// clang-format off
static const char LETTERS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef";
// clang-format on
_Static_assert(sizeof LETTERS - 1 == BUMP_RECORDED, "a letter a block");
#endif

/* What byte x of the region holds, as its character in the drawing; *end is
 * where the run of bytes of that kind ends. */
static char what_at(const bump_t *b, size_t x, size_t *end)
{
    if (x >= b->high_water) {
        *end = b->capacity;
        return '.';
    }
    if (x >= b->offset) {
        *end = b->high_water;
        return ':';
    }
#ifdef ALLOC_DEBUG
    for (size_t i = 0; i < recorded_count(b); i++) {
        const bump_block_t *r = &b->recorded[i];
        size_t block_end = r->start + r->size;
        if (x < r->start) {
            *end = r->start;
            return '-';
        }
        if (x < block_end) {
            *end = block_end;
            return LETTERS[i];
        }
        if (x < block_end + BUMP_REDZONE) {
            *end = block_end + BUMP_REDZONE;
            return 'r';
        }
    }
#endif
    *end = b->offset; /* the blocks past the record, with their padding */
    return '#';
}

static bool is_block(char c)
{
    return c != '-' && c != 'r' && c != ':' && c != '.';
}

/* The character of the cell [from, to). */
static char cell_at(const bump_t *b, size_t from, size_t to)
{
    char best = '.';
    char best_block = '\0'; /* none yet */
    size_t best_len = 0, best_block_len = 0;
    for (size_t x = from; x < to;) {
        size_t end;
        char c = what_at(b, x, &end);
        if (end > to)
            end = to;
        if (is_block(c) && end - x > best_block_len) {
            best_block = c;
            best_block_len = end - x;
        }
        if (end - x > best_len) {
            best = c;
            best_len = end - x;
        }
        x = end;
    }
    if (best_block != '\0')
        return best_block;
    return best;
}

/* The recorded blocks in words, wrapped: where each is, and the padding
 * before it. */
static void dump_blocks(const bump_t *b, FILE *out)
{
#ifdef ALLOC_DEBUG
    size_t column = 0, end = 0;
    for (size_t i = 0; i < recorded_count(b); i++) {
        const bump_block_t *r = &b->recorded[i];
        char item[96];
        int len = snprintf(item, sizeof item, "%c %zu B at +%zu", LETTERS[i],
                           r->size, r->start);
        if (r->start > end && len > 0 && (size_t)len < sizeof item)
            snprintf(item + len, sizeof item - (size_t)len,
                     " after %zu B of padding", r->start - end);
        if (column > 0 && column + strlen(item) + 2 > 78) {
            fprintf(out, ",\n");
            column = 0;
        } else if (column > 0) {
            fprintf(out, ", ");
            column += 2;
        }
        if (column == 0) {
            fprintf(out, "  ");
            column = 2;
        }
        fprintf(out, "%s", item);
        column += strlen(item);
        end = r->start + r->size + BUMP_REDZONE;
    }
    if (b->allocations > BUMP_RECORDED)
        fprintf(out, ", and %zu more (#)", b->allocations - BUMP_RECORDED);
    if (column > 0)
        fprintf(out, "\n");
#else
    (void)b;
    (void)out;
#endif
}

void bump_dump(const bump_t *b, FILE *out)
{
    fprintf(out,
            "region %p: %zu B capacity, %zu B in use (%zu asked for, %zu "
            "padding%s), high water %zu B, %zu block%s\n",
            (void *)b->base, b->capacity, b->offset, b->requested,
            b->offset - b->requested, BUMP_REDZONE ? " and redzones" : "",
            b->high_water, b->allocations, b->allocations == 1 ? "" : "s");
    size_t cell = 1; /* bytes a cell: a power of two, DUMP_CELLS at most */
    while (cell <
           b->capacity / DUMP_CELLS + (b->capacity % DUMP_CELLS != 0 ? 1 : 0))
        cell *= 2;
    for (size_t row = 0; row < b->capacity; row += cell * DUMP_ROW) {
        char line[DUMP_ROW + 1];
        size_t n = 0;
        for (size_t x = row; x < b->capacity && n < DUMP_ROW; x += cell) {
            size_t to = b->capacity - x < cell ? b->capacity : x + cell;
            line[n++] = cell_at(b, x, to);
        }
        line[n] = '\0';
        fprintf(out, "  %8zu |%s|\n", row, line);
    }
#ifdef ALLOC_DEBUG
    fprintf(out,
            "  1 cell = %zu B: A-Z a-f the first %d blocks, # the others, - "
            "padding,\n  r redzone, : released, . never used\n",
            cell, BUMP_RECORDED);
#else
    fprintf(out,
            "  1 cell = %zu B: # in use (only checked builds record where "
            "blocks are),\n  : released, . never used\n",
            cell);
#endif
    dump_blocks(b, out);
}
