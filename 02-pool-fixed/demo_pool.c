/*
 * demo_pool.c: a guided tour of a fixed-size pool. Each step says what it
 * does, does it, and draws the pool. Run it with `make demo-02`.
 */
#include "pool.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

/* The objects of the tour: 24 bytes, in blocks of 32 (8 wasted each). */
typedef struct point {
    double x, y, z;
} point;

static void step(const char *what, const pool_t *pool)
{
    printf("\n-- %s\n", what);
    pool_dump(pool, stdout);
}

int main(void)
{
    printf("02-pool-fixed: blocks of one size; the free list lives inside "
           "the free blocks.\n");

    /* No quarantine, so that this checked build reuses a freed block at
     * once, as a release build does (step 7 shows the quarantine). */
    pool_t *pool = pool_create(sizeof(point), 8, POOL_NO_QUARANTINE);
    if (pool == NULL)
        return 1;
    printf("\npool_create(%zu, 8, ...): a point is %zu B, a block %zu B: "
           "%zu B of each block are lost\n(internal fragmentation), "
           "the price of needing no size per block.\n",
           sizeof(point), sizeof(point), pool->block_size,
           pool->block_size - sizeof(point));
    step("1. a new pool: one slab of 8 free blocks, linked in address order",
         pool);

    point *p[16];
    for (int i = 0; i < 5; i++) {
        p[i] = pool_alloc(pool);
        *p[i] = (point){i, i, i};
    }
    step("2. five allocations: each pops the head of the list, O(1)", pool);

    pool_free(pool, p[1]);
    pool_free(pool, p[3]);
    step("3. free blocks 1 then 3: each is pushed on the head, O(1); "
         "3 is next out",
         pool);

    point *again = pool_alloc(pool);
    printf("\n-- 4. one more allocation gets %s: the block freed last comes "
           "back first (LIFO),\n   while it is still in the cache\n",
           again == p[3] ? "block 3" : "another block?!");
    p[3] = again;

    for (int i = 5; i < 12; i++)
        p[i] = pool_alloc(pool);
    step("5. seven more: the slab fills up and the pool grows by a slab "
         "(one mmap)",
         pool);
    pool_destroy(pool);

    pool_t *fixed = pool_create(sizeof(point), 4, POOL_FIXED);
    if (fixed == NULL)
        return 1;
    for (int i = 0; i < 4; i++)
        p[i] = pool_alloc(fixed);
    errno = 0;
    void *none = pool_alloc(fixed);
    printf("\n-- 6. a fixed pool of 4 blocks: the fifth pool_alloc returns %s "
           "with errno %s\n",
           none ? "a block?!" : "NULL", errno == ENOMEM ? "ENOMEM" : "?");
    pool_destroy(fixed);

    pool_t *checked = pool_create(sizeof(point), 8, 0);
    if (checked == NULL)
        return 1;
    p[0] = pool_alloc(checked);
    p[1] = pool_alloc(checked);
    pool_free(checked, p[0]);
    step("7. the default pool in a checked build: a freed block waits in the "
         "quarantine ('q'),\n   so that a use after free meets a dead block, "
         "not someone else's data",
         checked);
    pool_destroy(checked);

    pool_t *old = pool_create(
        sizeof(point), 8, POOL_BACKING_MALLOC_PER_BLOCK | POOL_NO_QUARANTINE);
    if (old == NULL)
        return 1;
    for (int i = 0; i < 4; i++)
        p[i] = pool_alloc(old);
    step("8. the pool's first version: the same list, but every block is "
         "its own malloc",
         old);
    printf("  distances between blocks handed out one after another:");
    for (int i = 1; i < 4; i++)
        printf(" %td B", (char *)p[i] - (char *)p[i - 1]);
    printf("\n  (a one-buffer pool puts them %zu B apart; malloc adds its own "
           "header to each, and the\n  pool can only tell its blocks from any "
           "other pointer by comparing with every one)\n",
           old->block_size);
    pool_destroy(old);

    printf("\nEvery block has one size. Stage 03 keeps one pool per size "
           "class, in slabs of one page\nthat go back to the OS when they "
           "empty.\n");
    return 0;
}
