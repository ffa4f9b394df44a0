/*
 * bad_pool.c: deliberate misuse of a pool, one bug per name, to prove that
 * the bugs are reported: by Valgrind and ASan for the accesses (thanks to the
 * annotations in pool.c: without them a pool's slab is one ordinary mapping
 * to the tools), and by the pool's own checks for bad frees.
 *
 *   build/valgrind/bad_pool --list     the bugs, with what each tool must say
 *   build/valgrind/bad_pool overflow   commit one (common/misuse.sh runs all)
 *
 * Run one by hand to read the report:
 *   valgrind build/valgrind/bad_pool use-after-free
 *   build/asan/bad_pool use-after-free
 */
#include "misuse.h"
#include "pool.h"

#include <stdio.h>
#include <string.h>

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"use-after-free", "Invalid read of size", "use-after-poison",
     "reads a block after pool_free gave it back"},
    {"write-after-free", "Invalid write of size", "use-after-poison",
     "writes a block after pool_free gave it back"},
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 32-byte block whose neighbour is live: only "
     "the redzone between them makes it visible"},
    {"double-free", "pool_free\\(0x[0-9a-f]+\\): double free",
     "pool_free\\(0x[0-9a-f]+\\): double free",
     "frees a block twice, another free in between (the pool's live bits "
     "see it)"},
    {"foreign-free", "pointer not from this pool", "pointer not from this pool",
     "frees a block of another pool (the pool's range check sees it)"},
    {"inside-free", "pointer not at a block boundary",
     "pointer not at a block boundary",
     "frees a pointer into the middle of a 64-byte block"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte of a fresh block never written (ASan tracks "
     "addressability, not initialisation: MSan would see it)"},
    {"leak", "bytes in [0-9]+ blocks are definitely lost", "-",
     "drops the last pointer to a block while the pool lives on (ASan's "
     "leak checker knows only malloc's blocks)"},
    {"per-block-use-after-free", "Invalid read of size", "use-after-poison",
     "the pool's first version (a malloc per block): reads a freed block. "
     "Valgrind names the pool's malloc as the block's origin"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

/* Global, so the pool itself stays reachable and only the dropped block is
 * reported by the leak check. */
static pool_t *pool;

static int commit(const char *bug)
{
    pool = pool_create(32, 16, 0);
    if (pool == NULL)
        return 1;
    unsigned char *p = pool_alloc(pool);
    unsigned char *q = pool_alloc(pool); /* p's neighbour */
    if (p == NULL || q == NULL)
        return 1;
    memset(p, 1, 32);
    memset(q, 2, 32);

    if (strcmp(bug, "use-after-free") == 0) {
        pool_free(pool, p);
        sink = ((volatile unsigned char *)p)[20];
    } else if (strcmp(bug, "write-after-free") == 0) {
        pool_free(pool, q);
        ((volatile unsigned char *)q)[0] = 7;
    } else if (strcmp(bug, "overflow") == 0) {
        ((volatile unsigned char *)p)[32] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "double-free") == 0) {
        pool_free(pool, p);
        pool_free(pool, q);
        pool_free(pool, p);
    } else if (strcmp(bug, "foreign-free") == 0) {
        pool_t *other = pool_create(32, 16, 0);
        if (other == NULL)
            return 1;
        pool_free(pool, pool_alloc(other));
    } else if (strcmp(bug, "inside-free") == 0) {
        pool_t *big = pool_create(64, 16, 0);
        unsigned char *b = big ? pool_alloc(big) : NULL;
        if (b == NULL)
            return 1;
        pool_free(big, b + 16);
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = pool_alloc(pool);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on garbage */
            sink = 1;
    } else if (strcmp(bug, "leak") == 0) {
        pool_free(pool, p);
        pool_free(pool, q);
        (void)pool_alloc(pool); /* the only pointer to it, dropped */
        printf("%s: done; the pool is not destroyed\n", bug);
        return 0; /* the pool stays reachable, the block does not */
    } else if (strcmp(bug, "per-block-use-after-free") == 0) {
        pool_t *old = pool_create(32, 16, POOL_BACKING_MALLOC_PER_BLOCK);
        unsigned char *b = old ? pool_alloc(old) : NULL;
        if (b == NULL)
            return 1;
        b[0] = 1;
        pool_free(old, b);
        sink = ((volatile unsigned char *)b)[0];
        pool_destroy(old);
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        pool_destroy(pool);
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    pool_destroy(pool);
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
