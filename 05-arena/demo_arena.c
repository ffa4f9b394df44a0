/*
 * demo_arena.c: a guided tour of the arena allocator. Each step says what
 * it does, does it, and draws the arenas (arena_dump): chunks cut from the
 * top, the per-thread cache filling, fast bins, the unsorted bin sorted
 * into small and large bins with their binmap bits, a consolidation, a
 * mapped chunk moving the mmap threshold, a second thread with an arena of
 * its own, and memory going back to the OS. Run it with `make demo-05`.
 */
#include "arena.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void step(const char *what)
{
    printf("\n-- %s\n", what);
    arena_dump(stdout);
}

/* The demo runs in the checked build, where a freed block first waits in
 * the quarantine (so that a use after free is not hidden by reuse):
 * release it at once, so that the tour shows where a freed chunk goes. */
static void release(void *p)
{
    arena_free(p);
    arena_quarantine_flush();
}

static void *other_thread(void *arg)
{
    void **out = arg;
    out[0] = arena_malloc(3000);
    out[1] = arena_malloc(40);
    release(out[1]); /* into this thread's own cache */
    printf("\n-- a second thread allocates: it gets an arena of its own (a "
           "new 64 MB heap whose\n   start holds the arena); its cache keeps "
           "the 40-byte block it freed, no lock taken\n");
    arena_dump(stdout);
    return NULL;
}

int main(void)
{
    printf("05-arena: glibc's design. Chunks in bins by size, a top chunk in "
           "a 64 MB heap,\narenas with a lock each, a per-thread cache in "
           "front. Legend of the heap rows:\n| a chunk's start, # in use, t "
           "in this thread's cache, f in a fast bin, . free in\na bin.\n");

    void *small[10], *mid[4], *big[3];
    for (int i = 0; i < 10; i++)
        small[i] = arena_malloc(40);
    for (int i = 0; i < 4; i++)
        mid[i] = arena_malloc(500 + 100 * (size_t)i);
    for (int i = 0; i < 3; i++) {
        big[i] = arena_malloc(3000 + 200 * (size_t)i);
        memset(big[i], i, 3000);
    }
    void *guard = arena_malloc(16);
    step("ten 40-byte blocks, four of 500-800, three of 3000-3400, each cut "
         "from the top chunk in turn (the first call made the main arena's "
         "heap: 64 MB reserved, 132 KiB committed)");

    for (int i = 0; i < 10; i++)
        release(small[i]);
    step("free the ten 40-byte blocks: seven go to this thread's cache (no "
         "lock), the other three to a fast bin; all stay 'in use' to their "
         "neighbours, unmerged");

    release(mid[1]);
    release(mid[3]);
    step("free a 600-byte and an 800-byte block: too big for a fast bin, "
         "but not for the cache, whose 64 lists go up to 1032-byte requests");

    arena_set(ARENA_TCACHE_COUNT, 0);
    step("turn the cache off (ARENA_TCACHE_COUNT = 0): this thread's cached "
         "chunks go back to the bins: 40-byte ones to the fast bin, the 600 "
         "and 800 to the unsorted bin, where freed chunks wait one pass");

    void *x = arena_malloc(700);
    step("malloc(700): the unsorted bin is walked, oldest first; neither "
         "chunk fits exactly, so each is sorted into its small bin (binmap "
         "bits set); then the binmap finds the 800-byte bin, the chunk is "
         "split, and its rest is the last remainder, in the unsorted bin");

    for (int i = 0; i < 3; i++)
        release(big[i]);
    void *y = arena_malloc(2000);
    step("free the three blocks of 3000-3400 (side by side: they merge into "
         "one chunk), then malloc(2000): a large request first merges the "
         "fast bins (malloc_consolidate: the ten 40-byte chunks become one), "
         "then walks the unsorted bin, sorting each chunk into its bin; the "
         "binmap finds the big chunk's large bin, and it is split");

    void *huge = arena_malloc(300000);
    step("malloc(300000): at or above the mmap threshold (128 KiB), and "
         "nothing in the bins or the top fits: a mapping of its own");
    release(huge);
    huge = arena_malloc(300000);
    step("free it, and ask again: the threshold moved up to its size when it "
         "was freed, so this time it comes from the heap (the top grows into "
         "the reserve with mprotect) instead of a new mapping");

    arena_set(ARENA_TCACHE_COUNT, 7);
    void *theirs[2];
    pthread_t t;
    if (pthread_create(&t, NULL, other_thread, theirs) == 0)
        pthread_join(t, NULL);
    release(theirs[0]); /* freed here, it goes back to its own arena */
    arena_thread_flush();
    step("the thread exited (its cache went back to its arena, which now "
         "waits on the free list for the next new thread); its 3000-byte "
         "block, freed here, went back to its own arena too: a chunk's heap "
         "is at its address & ~(64 MB - 1), and the heap names the arena");

    release(huge);
    release(x);
    release(y);
    for (int i = 0; i < 4; i++)
        if (i != 1 && i != 3)
            release(mid[i]);
    release(guard);
    arena_thread_flush();
    step("free everything. Not all of it merges: the last small block went "
         "to a fast bin (the cache flushed it), where it stays 'in use' and "
         "keeps the big free chunk before it from merging into the top; and "
         "the top, 423 KiB, is below the trim threshold, which the mapped "
         "chunk moved to twice its size");

    arena_trim(0);
    step("arena_trim(0), glibc's malloc_trim: the fast bins are merged, so "
         "everything is one top chunk, whose end goes back to the OS "
         "(madvise: the pages stay reserved and read-write, so growing again "
         "costs no system call); arena 1's free chunks give back their "
         "whole pages too. The binmap keeps its bits: they are cleared "
         "lazily, by the next search that finds a marked bin empty");

    arena_stats_t s = arena_stats();
    printf("\n%zu mmaps, %zu munmaps, %zu mprotects, %zu madvises; arena "
           "locks taken %zu times\n",
           s.mmaps, s.munmaps, s.mprotects, s.madvises, s.lock_acquisitions);
    printf("Stage 06 puts each size class in pages of its own (spans), so "
           "that one class cannot\nfragment another; stage 07 makes the "
           "per-thread cache the whole design.\n");
    arena_teardown();
    return 0;
}
