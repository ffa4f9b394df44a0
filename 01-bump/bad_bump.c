/*
 * bad_bump.c: deliberate misuse of a bump region, one bug per name, to prove
 * that Valgrind and ASan report misuse of the allocator's own memory. Without
 * the annotations in bump.c, every byte of the region is ordinary mapped
 * memory to the tools, and none of these would be reported.
 *
 *   build/valgrind/bad_bump --list     the bugs, with what each tool must say
 *   build/valgrind/bad_bump overflow   commit one (common/misuse.sh runs all)
 *
 * Run one by hand to read the report:
 *   valgrind build/valgrind/bad_bump use-after-reset
 *   build/asan/bad_bump use-after-reset
 */
#include "bump.h"
#include "misuse.h"

#include <stdio.h>
#include <string.h>

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 32-byte block, into its redzone"},
    {"use-after-reset", "Invalid read of size", "use-after-poison",
     "reads a block after bump_reset released it"},
    {"use-after-rewind", "Invalid write of size", "use-after-poison",
     "writes a scratch block after bump_rewind released it"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte never written (ASan tracks addressability, not "
     "initialisation; Valgrind sees it because bump.c marks each fresh block "
     "undefined)"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

/* Sets up, then commits `bug` ("none": nothing); the exit status. */
static int commit(const char *bug)
{
    bump_t b;
    if (bump_init_mmap(&b, 4096) != 0)
        return 1;
    unsigned char *p = bump_alloc(&b, 32);
    unsigned char *q = bump_alloc(&b, 32); /* a neighbour after p */
    if (p == NULL || q == NULL)
        return 1;
    memset(p, 1, 32);
    memset(q, 2, 32);

    if (strcmp(bug, "overflow") == 0) {
        volatile unsigned char *vp = p;
        vp[32] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "use-after-reset") == 0) {
        bump_reset(&b);
        sink = ((volatile unsigned char *)p)[0];
    } else if (strcmp(bug, "use-after-rewind") == 0) {
        bump_mark_t m = bump_mark(&b);
        unsigned char *scratch = bump_alloc(&b, 64);
        if (scratch == NULL)
            return 1;
        bump_rewind(&b, m);
        ((volatile unsigned char *)scratch)[10] = 7;
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = bump_alloc(&b, 16);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on garbage */
            sink = 1;
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        bump_destroy(&b);
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    bump_destroy(&b);
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
