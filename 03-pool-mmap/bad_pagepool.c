/*
 * bad_pagepool.c: deliberate misuse of the page pools, one bug per name, to
 * prove that Valgrind and ASan report misuse of the allocator's own blocks.
 * Without the annotations in pagepool.c, a slab is ordinary mapped memory
 * to the tools, and the tool-detected bugs below go unreported (try it:
 * `make clean-03 && make misuse-03 EXTRA_CPPFLAGS=-DALLOC_TRACK_OFF`).
 *
 *   build/valgrind/bad_pagepool --list           the bugs, with what each
 *                                                tool must say
 *   build/valgrind/bad_pagepool use-after-free   commit one (common/misuse.sh
 *                                                runs them all)
 *
 * Run one by hand to read the report:
 *   valgrind build/valgrind/bad_pagepool overflow
 *   build/asan/bad_pagepool overflow
 */
#include "misuse.h"
#include "pagepool.h"

#include <stdio.h>
#include <string.h>

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"use-after-free", "Invalid write of size", "use-after-poison",
     "writes a freed 48-B block after another 48-B alloc (the quarantine "
     "keeps it from being handed out again at once)"},
    {"read-after-free", "Invalid read of size", "use-after-poison",
     "reads a freed block"},
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 32-B block, into the redzone before its live "
     "neighbour"},
    {"underflow", "Invalid read of size", "use-after-poison",
     "reads the byte before the first block of a slab (its leading "
     "redzone; the slab header is further down)"},
    {"double-free", "pp_free\\(0x[0-9a-f]+\\): double free",
     "pp_free\\(0x[0-9a-f]+\\): double free",
     "frees a block twice: the live bitmap of its slab tells (checked "
     "builds)"},
    {"free-foreign", "not a block of this allocator",
     "not a block of this allocator",
     "frees a stack address: its page is not in the slab set (checked "
     "builds)"},
    {"free-misaligned", "not the start of a block", "not the start of a block",
     "frees a pointer 16 bytes into a block (checked builds)"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte of a fresh block never written (ASan tracks "
     "addressability, not initialisation; MSan would not see it either: "
     "fresh mmap memory is zeros, initialised to MSan, and annotate.h tells "
     "MSan nothing)"},
    {"leak", "bytes in [0-9]+ blocks are definitely lost", "-",
     "loses the only pointer to a block while the allocator lives on (ASan "
     "has no leak check for blocks inside our pages)"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

/* The allocator of the leak: reachable from here, so only the block is
 * lost, not the pages. */
static pp_allocator_t *leaky;

/* Sets up, then commits `bug` ("none": nothing); the exit status. */
static int commit(const char *bug)
{
    pp_allocator_t *a = pp_create();
    if (a == NULL)
        return 1;
    unsigned char *p = pp_alloc(a, 32);
    unsigned char *q = pp_alloc(a, 32); /* p's neighbour in its slab */
    if (p == NULL || q == NULL)
        return 1;
    memset(p, 1, 32);
    memset(q, 2, 32);

    if (strcmp(bug, "use-after-free") == 0) {
        unsigned char *r = pp_alloc(a, 48);
        pp_free(a, r);
        unsigned char *s = pp_alloc(a, 48); /* not r: r is held back */
        ((volatile unsigned char *)r)[0] = 7;
        pp_free(a, s);
    } else if (strcmp(bug, "read-after-free") == 0) {
        pp_free(a, q);
        sink = ((volatile unsigned char *)q)[5];
    } else if (strcmp(bug, "overflow") == 0) {
        ((volatile unsigned char *)p)[32] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "underflow") == 0) {
        sink = ((volatile unsigned char *)p)[-1]; /* p: block 0 */
    } else if (strcmp(bug, "double-free") == 0) {
        pp_free(a, q);
        pp_free(a, q);
    } else if (strcmp(bug, "free-foreign") == 0) {
        int local = 0;
        pp_free(a, &local);
    } else if (strcmp(bug, "free-misaligned") == 0) {
        pp_free(a, p + 16);
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = pp_alloc(a, 64);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on garbage */
            sink = 1;
        pp_free(a, fresh);
    } else if (strcmp(bug, "leak") == 0) {
        leaky = pp_create();
        unsigned char *lost = leaky ? pp_alloc(leaky, 100) : NULL;
        if (lost == NULL)
            return 1;
        memset(lost, 3, 100);
        lost = NULL; /* the only pointer to it is gone; leaky lives on */
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        pp_destroy(a);
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    pp_destroy(a);
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
