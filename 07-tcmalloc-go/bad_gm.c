/*
 * bad_gm.c: deliberate misuse of the allocator, one bug per name, to prove
 * that Valgrind and ASan report misuse of its blocks (each block is told
 * to the tools one by one: per-object client requests, see README), and
 * that the allocator reports what it sees itself. Without the annotations
 * a span is plain mapped memory to the tools and the first eight bugs go
 * unreported (`make clean misuse EXTRA_CPPFLAGS=-DALLOC_TRACK_OFF` shows
 * it); the last three are the allocator's own checks (in checked builds,
 * which every annotated build is) and are reported either way.
 *
 *   build/valgrind/bad_gm --list     the bugs, with what each tool must say
 *   build/valgrind/bad_gm overflow   commit one (common/misuse.sh runs all)
 */
#include "gm.h"
#include "misuse.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"use-after-free", "Invalid read of size", "use-after-poison",
     "reads a block after gm_free (the quarantine keeps its slot unused)"},
    {"use-after-free-other-thread", "Invalid write of size", "use-after-poison",
     "another thread frees a block; this one writes to it afterwards"},
    {"use-after-realloc", "Invalid write of size", "use-after-poison",
     "writes through the old pointer after gm_realloc moved the block"},
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 20-byte block, into the rest of its 32-byte "
     "slot"},
    {"overflow-tiny", "Invalid write of size", "use-after-poison",
     "writes one byte past a 5-byte tiny object, into its block's free "
     "bytes"},
    {"overflow-large", "Invalid write of size", "use-after-poison",
     "writes one byte past a 40000-byte block, into the rest of its pages"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte never written (ASan tracks addressability, not "
     "initialisation)"},
    {"leak", "bytes in [0-9]+ blocks are definitely lost", "-",
     "drops the only pointer to a block; the heap lives until exit, as "
     "malloc's does (ASan's leak check knows only its own malloc)"},
    {"double-free", "gm_free\\(0x[0-9a-f]+\\): double free",
     "gm_free\\(0x[0-9a-f]+\\): double free",
     "frees a block twice: the allocator's own check (its live bit)"},
    {"interior-free", "not the start of a block", "not the start of a block",
     "frees a pointer 16 bytes into a block: the allocator's own check (the "
     "slot by multiplication, times the slot size, is not the offset)"},
    {"wild-free", "not a block of this heap \\(in no span\\)",
     "not a block of this heap \\(in no span\\)",
     "frees the address of a local variable: the allocator's own check (no "
     "arena holds it)"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

/* Allocates and forgets: no pointer to the block survives the call. */
static void __attribute__((noinline)) leak_one(void)
{
    unsigned char *p = gm_malloc(100);
    if (p != NULL)
        memset(p, 0x11, 100);
}

static void *free_it(void *p)
{
    gm_free(p);
    gm_thread_release(); /* its quarantine and cache go back */
    return NULL;
}

/* Sets up, then commits `bug` ("none": nothing); the exit status. */
static int commit(const char *bug)
{
    gm_set_scavenge(GM_SCAVENGE_OFF);
    unsigned char *p = gm_malloc(20);
    unsigned char *q = gm_malloc(64);
    unsigned char *t = gm_malloc(5);
    unsigned char *big = gm_malloc(40000);
    if (p == NULL || q == NULL || t == NULL || big == NULL)
        return 1;
    memset(p, 1, 20);
    memset(q, 2, 64);
    memset(t, 3, 5);
    memset(big, 3, 40000);

    if (strcmp(bug, "use-after-free") == 0) {
        gm_free(q);
        sink = ((volatile unsigned char *)q)[10];
    } else if (strcmp(bug, "use-after-free-other-thread") == 0) {
        pthread_t th;
        if (pthread_create(&th, NULL, free_it, q) != 0)
            return 1;
        pthread_join(th, NULL);
        ((volatile unsigned char *)q)[3] = 9;
    } else if (strcmp(bug, "use-after-realloc") == 0) {
        unsigned char *moved = gm_realloc(p, 5000); /* another class */
        if (moved == NULL || moved == p)
            return 1;
        ((volatile unsigned char *)p)[0] = 7;
        p = moved;
    } else if (strcmp(bug, "overflow") == 0) {
        ((volatile unsigned char *)p)[20] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "overflow-tiny") == 0) {
        ((volatile unsigned char *)t)[5] = 0xEE;
    } else if (strcmp(bug, "overflow-large") == 0) {
        ((volatile unsigned char *)big)[40000] = 0xEE;
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = gm_malloc(16);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on garbage */
            sink = 1;
        gm_free(fresh);
    } else if (strcmp(bug, "leak") == 0) {
        leak_one();
        gm_free(p);
        gm_free(q);
        gm_free(t);
        gm_free(big);
        printf("%s: done (the tool should report it at exit)\n", bug);
        return 0; /* no gm_destroy: the leaked block is still "live" */
    } else if (strcmp(bug, "double-free") == 0) {
        gm_free(q);
        gm_free(q);
    } else if (strcmp(bug, "interior-free") == 0) {
        gm_free(q + 16);
    } else if (strcmp(bug, "wild-free") == 0) {
        int local = 0;
        gm_free(&local);
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        gm_destroy();
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    if (strcmp(bug, "use-after-free") != 0 &&
        strcmp(bug, "use-after-free-other-thread") != 0)
        gm_free(q);
    gm_free(p);
    gm_free(t);
    gm_free(big);
    gm_destroy();
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
