/*
 * pool_check.c: pool_check() and pool_dump(), which read a pool and never
 * change it. The invariants they rely on are written at the top of pool.c;
 * the tests call pool_check() after every operation of their randomized
 * runs, and on copies of a pool damaged on purpose.
 */
#include "pool_internal.h"

#include <stdlib.h>
#include <string.h>

static bool check_failed(const pool_t *pool, const char *what,
                         const void *where)
{
    fprintf(stderr, STAGE ": pool_check(%p): %s (at %p)\n", (const void *)pool,
            what, where);
    return false;
}

/* Reads the link of a free block, opening it to the tools for the read:
 * the link is no-access while the block is free (see pool.c). */
static pool_free_block_t *link_of(const pool_free_block_t *block)
{
    track_mem_defined(block, sizeof *block);
    pool_free_block_t *next = block->next;
    track_mem_noaccess(block, sizeof *block);
    return next;
}

/* Is `p` a free block of the pool: a block, at its start, not live? (In
 * release builds there are no live bits: any block of the pool will do.) */
static bool is_free_block(const pool_t *pool, const void *p)
{
    pool_slab_t *slab = NULL;
    size_t i = 0;
    if (pool_find(pool, p, &slab, &i) != POOL_IS_BLOCK)
        return false;
    return slab->live_bits == NULL || !bit_get(slab->live_bits, i);
}

/*
 * The invariants of pool.c, in the order that makes each step safe: the
 * counters, the slab list, then the free list, whose every node is proved
 * to be a free block of the pool before its link is read (a corrupted link
 * must not make the checker itself crash). A cycle shows as a list longer
 * than it should be: a bounded walk needs no second pointer (Floyd's)
 * because the length is known. O(free * slabs); malloc per block,
 * O(free * capacity).
 */
bool pool_check(const pool_t *pool)
{
    if (pool == NULL)
        return check_failed(pool, "no pool", NULL);
    /* 1. Sizes and counters. The stride is the block and its redzone (16
     *    bytes with one buffer per slab in annotated builds, else none):
     *    nothing else, since pool_find() divides by it. */
    size_t redzone = is_malloc_backed(pool) ? 0 : POOL_REDZONE;
    if (pool->block_size < sizeof(pool_free_block_t) ||
        pool->block_size % POOL_ALIGN != 0 ||
        pool->block_size > SIZE_MAX - redzone ||
        pool->stride != pool->block_size + redzone)
        return check_failed(pool, "bad block size or stride", NULL);
    if (pool->q_count > (POOL_CHECKED ? POOL_QUARANTINE : 0) ||
        pool->q_first >= POOL_QUARANTINE)
        return check_failed(pool, "bad quarantine count", NULL);
    if (pool->live > pool->capacity ||
        pool->q_count > pool->capacity - pool->live)
        return check_failed(pool, "quarantined + live > capacity", NULL);
    if (pool->capacity != pool->slab_count * pool->blocks_per_slab ||
        ((pool->flags & POOL_FIXED) && pool->slab_count != 1))
        return check_failed(pool, "capacity does not match the slabs", NULL);

    /* 2. The slab list: slab_count slabs, numbered newest first. */
    size_t k = 0;
    const pool_slab_t *slab = pool->slabs;
    for (; slab != NULL && k < pool->slab_count; slab = slab->next, k++)
        if (slab->number != pool->slab_count - 1 - k ||
            (slab->blocks == NULL) == is_malloc_backed(pool) ||
            (slab->live_bits == NULL) == POOL_CHECKED)
            return check_failed(pool, "slab list damaged", slab);
    if (slab != NULL || k != pool->slab_count)
        return check_failed(pool, "slab list length != slab_count", slab);

    /* 3. The free list: every other block, each a free block, then NULL. */
    size_t free_count = pool_free_count(pool);
    size_t seen = 0;
    for (const pool_free_block_t *b = pool->free_head; b != NULL;
         b = link_of(b), seen++) {
        if (seen == free_count)
            return check_failed(
                pool,
                "free list longer than capacity - live - quarantined "
                "(a cycle?)",
                b);
        if (!is_free_block(pool, b))
            return check_failed(pool,
                                "free-list node is not a free block "
                                "of this pool",
                                b);
    }
    if (seen != free_count)
        return check_failed(
            pool, "free list shorter than capacity - live - quarantined", NULL);

    /* 4. Quarantined blocks are free blocks, each in one slot only (at most
     *    8 x 7 / 2 compares), and not on the free list too. With the counts
     *    above, every free block is then in exactly one place: none is lost,
     *    none handed out twice. */
    for (size_t q = 0; q < pool->q_count; q++) {
        const void *p = pool->quarantine[(pool->q_first + q) % POOL_QUARANTINE];
        if (!is_free_block(pool, p))
            return check_failed(pool, "quarantined block is not a free block",
                                p);
        for (size_t r = q + 1; r < pool->q_count; r++)
            if (pool->quarantine[(pool->q_first + r) % POOL_QUARANTINE] == p)
                return check_failed(pool, "block quarantined twice", p);
        for (const pool_free_block_t *b = pool->free_head; b != NULL;
             b = link_of(b))
            if ((const void *)b == p)
                return check_failed(pool, "block both quarantined and free", p);
    }

    /* 5. Checked builds: the live bits count the live blocks. */
    if (POOL_CHECKED) {
        size_t set = 0;
        for (slab = pool->slabs; slab != NULL; slab = slab->next)
            for (size_t i = 0; i < pool->blocks_per_slab; i++)
                set += bit_get(slab->live_bits, i);
        if (set != pool->live)
            return check_failed(pool, "live bits do not count live blocks",
                                NULL);
    }
    return true;
}

/* ---- Drawing ------------------------------------------------------------- */

#define DUMP_ROW  64 /* cells per row */
#define DUMP_LIST 16 /* free-list entries written out */

static const char dump_order[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* The number and index of a block, for the free-list line: "s1.5". */
static void dump_name(const pool_t *pool, const void *p, FILE *out)
{
    pool_slab_t *slab = NULL;
    size_t i = 0;
    if (pool_find(pool, p, &slab, &i) == POOL_IS_BLOCK)
        fprintf(out, "s%zu.%zu", slab->number, i);
    else
        fprintf(out, "%p?", p);
}

/*
 * One row of cells per DUMP_ROW blocks of each slab, oldest slab first:
 *
 *   #  live (handed out)      q  freed, held in the quarantine
 *   0-9, a-z  free: its place on the free list (0 is handed out next)
 *   .  free, further down the list than z
 *
 * then the free list itself. Meant for small pools: it draws every block.
 */
void pool_dump(const pool_t *pool, FILE *out)
{
    fprintf(out, "pool %p: %zu-B blocks (stride %zu), %zu per slab, %s, %s\n",
            (const void *)pool, pool->block_size, pool->stride,
            pool->blocks_per_slab,
            (pool->flags & POOL_FIXED) ? "fixed" : "grows",
            is_malloc_backed(pool) ? "a malloc per block"
                                   : "a buffer (mmap) per slab");
    fprintf(out,
            "  %zu slab%s, %zu blocks: %zu live, %zu free, %zu quarantined; "
            "footprint %zu B\n",
            pool->slab_count, pool->slab_count == 1 ? "" : "s", pool->capacity,
            pool->live, pool_free_count(pool), pool->q_count, pool->footprint);

    /* cell[number * blocks_per_slab + index]: what to draw for a block */
    char *cell = malloc(pool->capacity ? pool->capacity : 1);
    const pool_slab_t **by_number =
        calloc(pool->slab_count + 1, sizeof(const pool_slab_t *));
    if (cell == NULL || by_number == NULL) {
        fprintf(out, "  (no memory to draw the slabs)\n");
        free(cell);
        free(by_number);
        return;
    }
    memset(cell, '#', pool->capacity);
    size_t pos = 0;
    for (const pool_free_block_t *b = pool->free_head;
         b != NULL && pos <= pool_free_count(pool); b = link_of(b), pos++) {
        pool_slab_t *slab = NULL;
        size_t i = 0;
        if (pool_find(pool, b, &slab, &i) == POOL_IS_BLOCK)
            cell[slab->number * pool->blocks_per_slab + i] =
                (char)(pos < sizeof dump_order - 1 ? dump_order[pos] : '.');
    }
    for (size_t q = 0; q < pool->q_count; q++) {
        pool_slab_t *slab = NULL;
        size_t i = 0;
        const void *p = pool->quarantine[(pool->q_first + q) % POOL_QUARANTINE];
        if (pool_find(pool, p, &slab, &i) == POOL_IS_BLOCK)
            cell[slab->number * pool->blocks_per_slab + i] = 'q';
    }
    for (const pool_slab_t *slab = pool->slabs; slab != NULL; slab = slab->next)
        if (slab->number < pool->slab_count)
            by_number[slab->number] = slab;

    for (size_t k = 0; k < pool->slab_count; k++) {
        const pool_slab_t *slab = by_number[k];
        if (slab == NULL)
            continue; /* a damaged pool: pool_check() says more */
        if (slab->blocks == NULL)
            fprintf(out, "  slab %zu at %p, blocks from %p:\n", k,
                    (const void *)slab, (void *)slab->first);
        else
            fprintf(out,
                    "  slab %zu (record %p), blocks anywhere malloc "
                    "put them:\n",
                    k, (const void *)slab);
        const char *row = cell + k * pool->blocks_per_slab;
        for (size_t i = 0; i < pool->blocks_per_slab; i += DUMP_ROW) {
            size_t len = pool->blocks_per_slab - i;
            fprintf(out, "    |%.*s|\n", (int)(len < DUMP_ROW ? len : DUMP_ROW),
                    row + i);
        }
    }

    fprintf(out, "  free list:");
    pos = 0;
    for (const pool_free_block_t *b = pool->free_head; b != NULL;
         b = link_of(b), pos++) {
        if (pos == DUMP_LIST) {
            fprintf(out, " -> ... (%zu more)", pool_free_count(pool) - pos);
            break;
        }
        fprintf(out, pos ? " -> " : " ");
        dump_name(pool, b, out);
    }
    fprintf(out, "%s\n", pos < DUMP_LIST ? (pos ? " -> NULL" : " NULL") : "");
    fprintf(out, "  (# live, 0-9a-z free in list order, . free further "
                 "down, q quarantined)\n");
    free(cell);
    free(by_number);
}
