/*
 * bad_arena.c: deliberate misuse of the arena allocator, one bug per name,
 * to show two things. First, that Valgrind and ASan see inside this
 * allocator's chunks: without the annotations in arena_thread.c and the
 * word accessors of arena_internal.h, a heap is one big mapping to them and
 * the first five bugs go unreported (`make -C 05-arena clean misuse
 * EXTRA_CPPFLAGS=-DALLOC_TRACK_OFF` shows it). Second, that glibc's own
 * checks, which this stage makes too, stop the misuse they are for, and the
 * two classic attacks on the free lists: a double free that would hand one
 * chunk out twice, and a freed chunk's link overwritten so that malloc
 * returns an address of the attacker's choice.
 *
 * The attacks write into freed memory, which the memory tools would report
 * at the write itself. An attacker in a release build has no tool watching,
 * so these bugs open the word to the tool first (track_mem_undefined): what
 * is shown is the allocator's own check, the same under both tools and in
 * a release build (test_arena.c proves each there too).
 *
 *   build/valgrind/bad_arena --list      the bugs, with what each tool says
 *   build/valgrind/bad_arena overflow    commit one (common/misuse.sh: all)
 *   valgrind build/valgrind/bad_arena use-after-free    read one report
 */
#include "annotate.h"
#include "arena.h"
#include "misuse.h"

#include <stdio.h>
#include <string.h>

#define OURS(what) "05-arena: arena_[a-z_]+\\(0x[0-9a-f]+\\): " what

/* name, Valgrind's words, ASan's words ("-": cannot see it), what it does */
static const misuse_bug bugs[] = {
    {"use-after-free", "Invalid read of size", "use-after-poison",
     "reads a block after arena_free (the quarantine keeps it unused)"},
    {"use-after-realloc", "Invalid write of size", "use-after-poison",
     "writes through the old pointer after arena_realloc moved the block"},
    {"overflow", "Invalid write of size", "use-after-poison",
     "writes one byte past a 20-byte block (into its slack and trailer)"},
    {"uninitialised-read", "uninitialised value", "-",
     "branches on a byte never written (ASan tracks addressability, not "
     "initialisation)"},
    {"leak", "bytes in [0-9]+ blocks are definitely lost", "-",
     "drops the only pointer to a block; the heap lives until exit, as "
     "malloc's does (ASan's leak check knows only its own malloc)"},
    {"double-free", OURS("double free"), OURS("double free"),
     "frees a block twice (it waits in the quarantine: checked builds)"},
    {"double-free-cached", OURS("double free \\(the block is in this"),
     OURS("double free \\(the block is in this"),
     "frees a block twice, the first one in the per-thread cache: the key in "
     "its second word, then the cache's list (glibc's check)"},
    {"double-free-small", OURS("double free \\(the chunk is already free"),
     OURS("double free \\(the chunk is already free"),
     "frees a 2000-byte block twice: the next chunk's P bit says it is free "
     "(glibc's check)"},
    {"fastbin-dup", OURS("double free \\(the chunk is in a fast bin"),
     OURS("double free \\(the chunk is in a fast bin"),
     "ATTACK: frees a, b, a with the cache off, so that the fast bin would "
     "hold a twice and malloc hand it out twice; glibc checks only the top "
     "(b), the fast-bin key finds a"},
    {"cache-poison", OURS("corrupted per-thread cache.*safe-linking"),
     OURS("corrupted per-thread cache.*safe-linking"),
     "ATTACK: overwrites a cached chunk's link with an address, so that the "
     "second malloc would return it; safe-linking decodes it to a misaligned "
     "pointer"},
    {"fastbin-poison", OURS("corrupted fast bin.*safe-linking"),
     OURS("corrupted fast bin.*safe-linking"),
     "ATTACK: the same on a fast bin (cache off): stopped at the first "
     "malloc, which decodes the link it is about to install"},
    {"unlink-corrupt", OURS("corrupted double-linked list"),
     OURS("corrupted double-linked list"),
     "overwrites a free chunk's fd and bk (the unlink attack's first step); "
     "the merge that unlinks it finds they do not point back"},
    {"footer-corrupt", OURS(".*prev_size"), OURS(".*prev_size"),
     "overwrites a free chunk's footer: its size and the next chunk's "
     "prev_size disagree (glibc's check)"},
    {"foreign-free", OURS("(invalid|not a block)"),
     OURS("(invalid|not a block)"),
     "frees a pointer into the middle of a block"},
    {"misaligned-free", OURS("invalid pointer"), OURS("invalid pointer"),
     "frees a pointer 8 bytes past a block's start"},
    {"realloc-freed", OURS("realloc of a freed block"),
     OURS("realloc of a freed block"), "reallocs a block after freeing it"},
};

/* The compiler must not see through these accesses and remove them. */
static volatile unsigned char sink;

/* Where an attacker would like malloc to point. */
static _Alignas(16) unsigned char target[256];

/* Allocates and forgets: no pointer to the block survives the call. */
static void __attribute__((noinline)) leak_one(void)
{
    unsigned char *p = arena_malloc(100);
    if (p != NULL)
        memset(p, 0x11, 100);
}

/* The attacker's write of one word into freed memory, with the memory
 * tool told to look away (see the top of the file). */
static void attacker_writes(void *at, const void *value)
{
    track_mem_undefined(at, sizeof value);
    memcpy(at, &value, sizeof value);
}

/* A 40-byte block whose address has a bit among 12-15 set: safe-linking
 * XORs the link with address >> 12, and with those four bits all zero the
 * decoded garbage could happen to be aligned (1 time in 16). */
static unsigned char *victim_block(void)
{
    unsigned char *pad = arena_malloc(5000), *a = arena_malloc(40);
    (void)pad;
    if (a != NULL && (((uintptr_t)a >> 12) & 15) == 0)
        a = arena_malloc(40 + 4096);
    return a;
}

/* Sets up, then commits `bug` ("none": nothing); the exit status. */
static int commit(const char *bug)
{
    unsigned char *p = arena_malloc(20);
    unsigned char *q = arena_malloc(64); /* p's neighbour */
    if (p == NULL || q == NULL)
        return 1;
    memset(p, 1, 20);
    memset(q, 2, 64);

    if (strcmp(bug, "use-after-free") == 0) {
        arena_free(q);
        sink = ((volatile unsigned char *)q)[10];
    } else if (strcmp(bug, "use-after-realloc") == 0) {
        unsigned char *moved = arena_realloc(p, 5000); /* q is in the way */
        if (moved == NULL || moved == p)
            return 1;
        ((volatile unsigned char *)p)[0] = 7;
    } else if (strcmp(bug, "overflow") == 0) {
        ((volatile unsigned char *)p)[20] = 0xEE; /* one past the end */
    } else if (strcmp(bug, "uninitialised-read") == 0) {
        unsigned char *fresh = arena_malloc(16);
        if (fresh == NULL)
            return 1;
        if (fresh[3] == 42) /* never written: the branch depends on it */
            sink = 1;
        arena_free(fresh);
    } else if (strcmp(bug, "leak") == 0) {
        leak_one();
        arena_free(p);
        arena_free(q);
        printf("%s: done (the tool should report it at exit)\n", bug);
        return 0; /* no teardown: the leaked block is still "live" */
    } else if (strcmp(bug, "double-free") == 0) {
        arena_free(q);
        arena_free(q);
    } else if (strcmp(bug, "double-free-cached") == 0) {
        arena_free(q);
        arena_quarantine_flush(); /* into the cache */
        arena_free(q);
    } else if (strcmp(bug, "double-free-small") == 0) {
        arena_set(ARENA_TCACHE_COUNT, 0);
        unsigned char *big = arena_malloc(2000), *guard = arena_malloc(8);
        (void)guard;
        arena_free(big);
        arena_quarantine_flush();
        arena_free(big);
    } else if (strcmp(bug, "fastbin-dup") == 0) {
        arena_set(ARENA_TCACHE_COUNT, 0);
        unsigned char *a = arena_malloc(40), *b = arena_malloc(40);
        arena_free(a);
        arena_free(b);
        arena_quarantine_flush();
        arena_free(a);
        printf("would get %p and %p\n", arena_malloc(40), arena_malloc(40));
    } else if (strcmp(bug, "cache-poison") == 0) {
        unsigned char *a = victim_block(), *b = arena_malloc(40);
        arena_free(b);
        arena_free(a);
        arena_quarantine_flush(); /* the cache's list: a -> b */
        attacker_writes(a, target);
        unsigned char *x = arena_malloc(40), *y = arena_malloc(40);
        printf("got %p, then %p (target %p)\n", (void *)x, (void *)y,
               (void *)target);
    } else if (strcmp(bug, "fastbin-poison") == 0) {
        arena_set(ARENA_TCACHE_COUNT, 0);
        unsigned char *a = victim_block();
        arena_free(a);
        arena_quarantine_flush();
        attacker_writes(a, target);
        printf("got %p\n", arena_malloc(40));
    } else if (strcmp(bug, "unlink-corrupt") == 0) {
        arena_set(ARENA_TCACHE_COUNT, 0);
        arena_set(ARENA_MAX_FAST, 0);
        unsigned char *a = arena_malloc(500), *b = arena_malloc(500);
        unsigned char *guard = arena_malloc(8);
        (void)guard;
        arena_free(a);
        arena_quarantine_flush();
        attacker_writes(a, target);           /* a's fd */
        attacker_writes(a + 8, target + 128); /* a's bk */
        arena_free(b); /* merges backwards with a: unlinks a */
        arena_quarantine_flush();
    } else if (strcmp(bug, "footer-corrupt") == 0) {
        arena_set(ARENA_TCACHE_COUNT, 0);
        arena_set(ARENA_MAX_FAST, 0);
        unsigned char *a = arena_malloc(504), *b = arena_malloc(500);
        (void)b;
        size_t chunk = arena_chunk_size(504);
        arena_free(a);
        arena_quarantine_flush();
        /* the footer: the word at the end of a's chunk (b's prev_size) */
        attacker_writes(a - 16 + chunk, (void *)(uintptr_t)(chunk + 16));
        arena_malloc(504);
    } else if (strcmp(bug, "foreign-free") == 0) {
        arena_free(q + 16);
    } else if (strcmp(bug, "misaligned-free") == 0) {
        arena_free(q + 8);
    } else if (strcmp(bug, "realloc-freed") == 0) {
        arena_set(ARENA_TCACHE_COUNT, 0);
        unsigned char *big = arena_malloc(2000), *guard = arena_malloc(8);
        (void)guard;
        arena_free(big);
        arena_quarantine_flush();
        arena_realloc(big, 4000);
    } else if (strcmp(bug, "none") != 0) { /* "none": the control run */
        fprintf(stderr, "unknown bug '%s' (see --list)\n", bug);
        arena_teardown();
        return 2;
    }
    printf("%s: done (the tool should have reported it above)\n", bug);
    arena_teardown(); /* the blocks still live die here (and the tools know) */
    return 0;
}

int main(int argc, char **argv)
{
    return misuse_main(argc, argv, bugs, sizeof bugs / sizeof bugs[0], commit);
}
