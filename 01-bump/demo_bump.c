/*
 * demo_bump.c: a guided tour of a bump region. Each step says what it does,
 * does it, and draws the region. Run it with `make demo-01`, which runs
 * build/debug: a checked build, so each block is drawn with its own letter,
 * but no memory tool watches it, so the blocks have no redzones and the
 * drawing no 'r' (build/valgrind and build/asan have both).
 */
#include "annotate.h" /* TRACK_ENABLED: is a memory tool watching? */
#include "bump.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void step(const char *what, const bump_t *b)
{
    printf("\n-- %s\n", what);
    bump_dump(b, stdout);
}

int main(void)
{
    /* A small region over a buffer of our own, so the drawing is readable:
     * 4096 bytes, 16 bytes a cell. Aligned to 256, so that the padding
     * before the 256-aligned block below is the same on every run. */
    static _Alignas(256) unsigned char memory[4096];
    bump_t b;
    bump_init(&b, memory, sizeof memory);

    printf("01-bump: one region, one offset that only moves forward.\n");
    if (!TRACK_ENABLED)
        printf("(No memory tool watches this build, so blocks get no 16-byte "
               "redzone: the drawing\nhas no 'r'. Annotated builds put one "
               "after every block.)\n");
    step("a new region over a 4096-byte buffer: nothing in use", &b);

    char *name = bump_alloc(&b, 12);
    strcpy(name, "hello, heap");
    int *numbers = bump_alloc(&b, 100 * sizeof(int));
    for (int i = 0; i < 100; i++)
        numbers[i] = i * i;
    void *aligned = bump_alloc_aligned(&b, 200, 256);
    printf("\nname    = %p  (12 B, aligned to 16)\n", (void *)name);
    printf("numbers = %p  (400 B, aligned to 16)\n", (void *)numbers);
    printf("aligned = %p  (200 B, aligned to 256: the padding before it is "
           "lost)\n",
           aligned);
    step("three blocks, each placed right after the one before", &b);

    bump_mark_t before_scratch = bump_mark(&b);
    char *scratch = bump_alloc(&b, 1500);
    memset(scratch, 'x', 1500);
    step("mark, then 1500 B of scratch space for a temporary computation", &b);

    bump_rewind(&b, before_scratch);
    step("rewind to the mark: the scratch space is free again in O(1) "
         "(':' shows where the region has been)",
         &b);

    printf("\nname is still \"%s\", numbers[9] is still %d: blocks before "
           "the mark live on.\n",
           name, numbers[9]);

    size_t n = 0;
    while (bump_alloc(&b, 256) != NULL)
        n++;
    printf("\n%zu more blocks of 256 B fit; the next one fails with %s.\n", n,
           errno == ENOMEM ? "ENOMEM" : "another error");
    step("the region is full: a bump allocator cannot reuse a hole, only "
         "the end",
         &b);

    bump_reset(&b);
    step("reset: every block is gone at once, the offset is 0 again", &b);

    bump_destroy(&b);
    printf("\nNo block was ever freed on its own: lifetimes (a scope, a "
           "request, a frame)\nreplace free(). Stage 02 frees blocks one by "
           "one.\n");
    return 0;
}
