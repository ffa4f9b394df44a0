/*
 * bad_fl.c: deliberate misuse of a free-list heap, one bug per name, to
 * prove that Valgrind and ASan report misuse of the allocator's own blocks,
 * and that the allocator reports what it can see itself. Without the
 * annotations in fl.c, a region is one big mapping to the tools and the
 * first five bugs go unreported (`make clean misuse
 * EXTRA_CPPFLAGS=-DALLOC_TRACK_OFF` shows it); the last two are the
 * allocator's own checks and are reported either way.
 *
 *   build/valgrind/bad_fl --list     the bugs, with what each tool must say
 *   build/valgrind/bad_fl overflow   commit one (common/misuse.sh runs all)
 *
 * Run one by hand to read the report:
 *   valgrind build/valgrind/bad_fl use-after-free
 *   build/asan/bad_fl use-after-free
 */
#include "fl.h"
#include "misuse.h"

#include <stdio.h>
#include <string.h>

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"use-after-free", "Invalid read of size", "use-after-poison",
     "reads a block after fl_free (the quarantine keeps it unused)"},
    {"use-after-realloc", "Invalid write of size", "use-after-poison",
     "writes through the old pointer after fl_realloc moved the block"},
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 20-byte block, into its slack and the next "
     "header"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte never written (ASan tracks addressability, not "
     "initialisation: MSan would see it)"},
    {"leak", "bytes in [0-9]+ blocks are definitely lost", "-",
     "drops the only pointer to a block; the heap lives until exit, as "
     "malloc's does (ASan's leak check knows only its own malloc)"},
    {"double-free", "fl_free\\(0x[0-9a-f]+\\): double free",
     "fl_free\\(0x[0-9a-f]+\\): double free",
     "frees a block twice: the allocator's own check (header flags)"},
    {"foreign-free", "not a block of this heap", "not a block of this heap",
     "frees a pointer into a block, not one fl_alloc returned: the "
     "allocator's own check (alignment, region, header check bits)"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

static fl_heap heap; /* lives until exit, like malloc's heap */

/* Allocates and forgets: no pointer to the block survives the call. */
static void __attribute__((noinline)) leak_one(void)
{
    unsigned char *p = fl_alloc(&heap, 100);
    if (p != NULL)
        memset(p, 0x11, 100);
}

/* Sets up, then commits `bug` ("none": nothing); the exit status. */
static int commit(const char *bug)
{
    fl_init(&heap, FL_FIRST_FIT);
    unsigned char *p = fl_alloc(&heap, 20);
    unsigned char *q = fl_alloc(&heap, 64); /* p's neighbour */
    if (p == NULL || q == NULL)
        return 1;
    memset(p, 1, 20);
    memset(q, 2, 64);

    if (strcmp(bug, "use-after-free") == 0) {
        fl_free(&heap, q);
        sink = ((volatile unsigned char *)q)[10];
    } else if (strcmp(bug, "use-after-realloc") == 0) {
        unsigned char *moved = fl_realloc(&heap, p, 5000); /* q is in the
                                                              way: it moves */
        if (moved == NULL || moved == p)
            return 1;
        ((volatile unsigned char *)p)[0] = 7;
    } else if (strcmp(bug, "overflow") == 0) {
        ((volatile unsigned char *)p)[20] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = fl_alloc(&heap, 16);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on garbage */
            sink = 1;
        fl_free(&heap, fresh);
    } else if (strcmp(bug, "leak") == 0) {
        leak_one();
        fl_free(&heap, p);
        fl_free(&heap, q);
        printf("%s: done (the tool should report it at exit)\n", bug);
        return 0; /* no fl_destroy: the leaked block is still "live" */
    } else if (strcmp(bug, "double-free") == 0) {
        fl_free(&heap, q);
        fl_free(&heap, q);
    } else if (strcmp(bug, "foreign-free") == 0) {
        fl_free(&heap, q + 16);
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        fl_destroy(&heap);
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    fl_destroy(&heap);
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
