/*
 * demo_pagepool.c: a guided tour of the page pools. Each step says what it
 * does, does it, and draws the heap: lazy pools and pages, the mask, the
 * quarantine, pages given back by pp_trim and then by pp_free's own sweep,
 * a refused size, a second root page. Run it with `make demo-03` (a checked
 * build: freed blocks wait in the quarantine, drawn 'q').
 */
#include "pagepool.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Prints text wrapped at 76 columns, the first line after `lead`, the
 * others indented as far. */
static void say(const char *lead, const char *text)
{
    size_t indent = strlen(lead), col = indent;
    printf("%s", lead);
    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + word > 76) {
            printf("\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            putchar(' ');
            col++;
        }
        printf("%.*s", (int)word, text);
        col += word;
        text += word;
        text += strspn(text, " ");
    }
    putchar('\n');
}

static void step(const char *what, const pp_allocator_t *a)
{
    printf("\n");
    say("-- ", what);
    pp_dump(a, stdout);
}

int main(void)
{
    pp_allocator_t *a = pp_create();
    if (a == NULL) {
        perror("pp_create");
        return 1;
    }
    say("", "03-pool-mmap: pools of blocks of one size each, cut from "
            "pages that come from mmap.");
    step("a new allocator: one root page holds it; no pool, no slab yet", a);

    char *name = pp_alloc(a, 200);
    strcpy(name, "hello, pages");
    void *rec[4];
    for (int i = 0; i < 4; i++)
        rec[i] = pp_alloc(a, 1000);
    step("200 B (rounded up to the 208-B class) and 4 x 1000 B (class "
         "1008): each class gets its pool, each pool its pages, lazily; "
         "3 blocks of 1008 B fit in a page, so that pool has two",
         a);

    uintptr_t page_mask = ~(uintptr_t)(pp_stats(a).page_size - 1);
    printf("\nname = %p; name & ~(page - 1) = %p:\n", (void *)name,
           (void *)((uintptr_t)name & page_mask));
    say("", "the slab's header, found without a search, which is how "
            "pp_free finds the pool of a block.");

    pp_free(a, rec[1]);
    step("free a 1008-B block: a checked build holds it in the quarantine "
         "('q') for a while, so a stale pointer meets dead memory",
         a);

    pp_trim(a);
    step("pp_trim empties the quarantine: the block goes on the pool's free "
         "list, where the next alloc of the class takes it (last in, first "
         "out)",
         a);

    pp_free(a, rec[0]);
    pp_free(a, rec[2]);
    pp_free(a, rec[3]);
    pp_trim(a);
    step("free the other three and trim: both pages of the pool have no "
         "block out; they go back to the OS (munmap)",
         a);

    /* The sweep: pages go back by pp_free alone, without pp_trim. */
    enum { SWEEP_BLOCKS = 30 };
    void *blk[SWEEP_BLOCKS];
    for (int i = 0; i < SWEEP_BLOCKS; i++)
        blk[i] = pp_alloc(a, 1000);
    const pp_pool_t *pool = pp_slab_of(a, blk[0])->pool;
    char line[640];
    snprintf(line, sizeof line,
             "%d blocks of 1008 B: the pool has %zu pages now. Free them in "
             "the order they came, so that its pages empty one after another. "
             "No pp_trim this time: a page whose blocks are all free is a "
             "spare, and when the spares are more than 1 + a quarter of the "
             "pages in use, that pp_free sweeps: it gives all spares but 1 "
             "+ an eighth of the pages in use back to the OS (munmap). In "
             "this checked build a freed block first waits in the "
             "quarantine (16 blocks), so nothing empties before the 17th "
             "free.",
             SWEEP_BLOCKS, pool->nslabs);
    printf("\n");
    say("-- ", line);
    size_t slabs = pool->nslabs, spares = pool->nspares;
    size_t unmaps = pp_stats(a).unmaps;
    for (int i = 0; i < SWEEP_BLOCKS; i++) {
        pp_free(a, blk[i]);
        pp_stats_t s = pp_stats(a);
        if (pool->nslabs == slabs && pool->nspares == spares)
            continue;
        printf("   free #%-2d: %2zu pages in the pool, %zu of them spare%s",
               i + 1, pool->nslabs, pool->nspares,
               pool->nspares == 1 ? "" : "s");
        if (s.unmaps != unmaps)
            printf("  <- the sweep: %zu page%s back (munmap)",
                   s.unmaps - unmaps, s.unmaps - unmaps == 1 ? "" : "s");
        printf("\n");
        slabs = pool->nslabs, spares = pool->nspares, unmaps = s.unmaps;
    }
    step("after the 30 frees: the last 16 blocks still wait in the "
         "quarantine ('q') and keep their pages; of the pages emptied, the "
         "pool keeps as many spares as 1 + a quarter of its pages in use "
         "allow, and pp_free gave the others back by itself",
         a);

    errno = 0;
    void *big = pp_alloc(a, 2000);
    printf("\npp_alloc(2000) = %p, errno %s: above a quarter of a page,\n", big,
           errno == ENOMEM ? "ENOMEM" : "?");
    say("", "which is stage 04's job.");

    void *one_of_each[64];
    size_t n = 0;
    for (size_t size = 16; size <= pp_stats(a).max_size && n < 64; size += 16)
        one_of_each[n++] = pp_alloc(a, size);
    pp_stats_t s = pp_stats(a);
    snprintf(line, sizeof line,
             "one block of every class: %zu pools, whose headers fill root "
             "page 0, so a second root page is chained: %zu root pages, "
             "%zu pool slots.",
             s.pools, s.root_pages, s.pool_slots);
    printf("\n");
    say("", line);

    for (size_t i = 0; i < n; i++)
        pp_free(a, one_of_each[i]);
    pp_free(a, name);
    pp_trim(a);
    s = pp_stats(a);
    snprintf(line, sizeof line,
             "all freed and trimmed: %zu slabs, %zu B mapped (the root "
             "pages); %zu mmap and %zu munmap calls in all.",
             s.slabs, s.mapped, s.maps, s.unmaps);
    say("", line);
    printf("pp_check: %s\n", pp_check(a) ? "sound" : pp_check_failure());
    pp_destroy(a);
    printf("\n");
    say("", "Stage 04 serves any size from one heap, with headers, "
            "splitting and coalescing.");
    return 0;
}
