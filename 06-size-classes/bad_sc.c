/*
 * bad_sc.c: deliberate misuse of a size-class heap, one bug per name, to
 * prove that Valgrind and ASan report misuse of the allocator's own blocks,
 * and that the allocator reports what it can see itself. Without the
 * annotations in sc.c, a span is plain mapped memory to the tools and the
 * first six bugs go unreported (`make clean misuse
 * EXTRA_CPPFLAGS=-DALLOC_TRACK_OFF` shows it); the last three
 * are the allocator's own checks and are reported either way.
 *
 *   build/valgrind/bad_sc --list     the bugs, with what each tool must say
 *   build/valgrind/bad_sc overflow   commit one (common/misuse.sh runs all)
 *
 * Run one by hand to read the report:
 *   valgrind build/valgrind/bad_sc use-after-free
 *   build/asan/bad_sc use-after-free
 */
#include "misuse.h"
#include "sc.h"

#include <stdio.h>
#include <string.h>

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"use-after-free", "Invalid read of size", "use-after-poison",
     "reads a block after sc_free (the quarantine keeps its slot unused)"},
    {"use-after-realloc", "Invalid write of size", "use-after-poison",
     "writes through the old pointer after sc_realloc moved the block to "
     "another class"},
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 20-byte block, into the rest of its 32-byte "
     "slot"},
    {"overflow-large", "Invalid write of size", "use-after-poison",
     "writes one byte past a 40000-byte block, into the rest of its pages"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte never written (ASan tracks addressability, not "
     "initialisation)"},
    {"leak", "bytes in [0-9]+ blocks are definitely lost", "-",
     "drops the only pointer to a block; the heap lives until exit, as "
     "malloc's does (ASan's leak check knows only its own malloc)"},
    {"double-free", "sc_free\\(0x[0-9a-f]+\\): double free",
     "sc_free\\(0x[0-9a-f]+\\): double free",
     "frees a block twice: the allocator's own check (its bit, or its mark "
     "in the quarantine)"},
    {"interior-free", "not the start of a block", "not the start of a block",
     "frees a pointer 16 bytes into a block: the allocator's own check (the "
     "slot index by multiplication, times the slot size, is not the offset)"},
    {"wild-free", "not a block of this heap \\(in no span\\)",
     "not a block of this heap \\(in no span\\)",
     "frees the address of a local variable: the allocator's own check (the "
     "page map has no span there)"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

static sc_heap heap; /* lives until exit, like malloc's heap */

/* Allocates and forgets: no pointer to the block survives the call. */
static void __attribute__((noinline)) leak_one(void)
{
    unsigned char *p = sc_alloc(&heap, 100);
    if (p != NULL)
        memset(p, 0x11, 100);
}

/* Sets up, then commits `bug` ("none": nothing); the exit status. */
static int commit(const char *bug)
{
    sc_init(&heap);
    unsigned char *p = sc_alloc(&heap, 20);
    unsigned char *q = sc_alloc(&heap, 64);
    unsigned char *big = sc_alloc(&heap, 40000);
    if (p == NULL || q == NULL || big == NULL)
        return 1;
    memset(p, 1, 20);
    memset(q, 2, 64);
    memset(big, 3, 40000);

    if (strcmp(bug, "use-after-free") == 0) {
        sc_free(&heap, q);
        sink = ((volatile unsigned char *)q)[10];
    } else if (strcmp(bug, "use-after-realloc") == 0) {
        unsigned char *moved = sc_realloc(&heap, p, 5000); /* another class */
        if (moved == NULL || moved == p)
            return 1;
        ((volatile unsigned char *)p)[0] = 7;
    } else if (strcmp(bug, "overflow") == 0) {
        ((volatile unsigned char *)p)[20] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "overflow-large") == 0) {
        ((volatile unsigned char *)big)[40000] = 0xEE;
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = sc_alloc(&heap, 16);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on garbage */
            sink = 1;
        sc_free(&heap, fresh);
    } else if (strcmp(bug, "leak") == 0) {
        leak_one();
        sc_free(&heap, p);
        sc_free(&heap, q);
        sc_free(&heap, big);
        printf("%s: done (the tool should report it at exit)\n", bug);
        return 0; /* no sc_destroy: the leaked block is still "live" */
    } else if (strcmp(bug, "double-free") == 0) {
        sc_free(&heap, q);
        sc_free(&heap, q);
    } else if (strcmp(bug, "interior-free") == 0) {
        sc_free(&heap, q + 16);
    } else if (strcmp(bug, "wild-free") == 0) {
        int local = 0;
        sc_free(&heap, &local);
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        sc_destroy(&heap);
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    sc_destroy(&heap);
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
