/*
 * demo_gm.c: a guided tour of the hierarchy. Each step says what it does,
 * does it, and draws what changed: a thread's first malloc taking a batch
 * from a span, frees pushed on the thread's list, a list too long handing
 * a batch to the transfer cache, another thread taking that batch whole,
 * the tiny allocator packing strings into one block, a large block in the
 * page heap, a thread's exit giving its cache back, and the scavenger
 * giving a burst back to the OS. Run it with `make demo-07` (a checked
 * build: its quarantine holds freed blocks back, and the tour flushes it
 * where a step is about reuse).
 */
#include "gm.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void say(const char *what)
{
    printf("\n-- %s\n", what);
}

/* The lines of a drawing that mention `what` (and a header line). */
static void show(void (*draw)(FILE *), const char *what, int max)
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f == NULL)
        return;
    draw(f);
    fclose(f);
    buf[sizeof buf - 1] = '\0';
    int shown = 0;
    for (char *line = strtok(buf, "\n"); line != NULL && shown < max;
         line = strtok(NULL, "\n"))
        if (what == NULL || strstr(line, what) != NULL) {
            printf("   %s\n", line);
            shown++;
        }
}

/* A class's central list and its first span (the lines after its header). */
static void show_class(const char *header)
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (f == NULL)
        return;
    mcentral_dump(f);
    fclose(f);
    buf[sizeof buf - 1] = '\0';
    char *at = strstr(buf, header);
    if (at == NULL)
        return;
    int lines = 0;
    for (char *line = strtok(at, "\n"); line != NULL && lines < 4;
         line = strtok(NULL, "\n"), lines++)
        printf("   %s\n", line);
}

static void *blocks[2000];
static void *taken[40];

static void *other_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 32; i++)
        taken[i] = gm_malloc(48);
    printf("   the other thread took 32 blocks of 48 B: its first refill "
           "took one object from a span, its second a whole batch from the "
           "transfer cache\n");
    show_class("class 5 (48 B");
    for (int i = 0; i < 32; i++)
        gm_free(taken[i]);
    return NULL;
}

int main(void)
{
    gm_set_scavenge(GM_SCAVENGE_OFF);
    printf("07-tcmalloc-go: a cache of free lists per thread (mcache), a "
           "central list per class (mcentral), one page heap (mheap).\n");

    say("the first malloc of 40 B (class 5, 48 B slots) finds this thread's "
        "list empty: the first refill of a class takes one object (slow "
        "start), cut from a new span");
    blocks[0] = gm_malloc(40);
    show(mcache_dump, "class  5", 2);
    show_class("class 5 (48 B");

    say("31 more mallocs of that class: each time the list runs dry, the "
        "refill takes one object more than the last (1, 2, 3, ... up to a "
        "batch of 32), one lock each; in between, pops with no lock. Eight "
        "refills bring 36 objects: 4 wait on the list");
    for (int i = 1; i < 32; i++)
        blocks[i] = gm_malloc(40);
    show(mcache_dump, "class  5", 1);
    printf("   the blocks are 48 bytes apart: %p, %p, %p\n", blocks[0],
           blocks[1], blocks[2]);

    say("free 3 of them: each is pushed on this thread's list (the last "
        "freed is the next handed out)");
    gm_free(blocks[5]);
    gm_free(blocks[6]);
    gm_free(blocks[7]);
    gm_quarantine_flush();
    show(mcache_dump, "class  5", 1);
    void *again = gm_malloc(40);
    printf("   the next malloc of 40 B returns %p: the last freed, %p\n", again,
           blocks[7]);
    blocks[7] = again;

    say("allocate 1700 more: each refill raised the list's bound by a batch "
        "(a list that runs dry may keep more), up to its cap of 64 KiB "
        "worth; then free all 1732: the list fills to its bound, and each "
        "batch beyond goes, whole, to the transfer cache (t)");
    for (int i = 32; i < 1732; i++)
        blocks[i] = gm_malloc(40);
    for (int i = 0; i < 1732; i++)
        if (i != 5 && i != 6)
            gm_free(blocks[i]);
    gm_quarantine_flush();
    show(mcache_dump, "class  5", 1);
    show_class("class 5 (48 B");

    say("a second thread allocates 32 blocks of the class: its first refill "
        "asks for one object and gets it from a span; its second asks for "
        "more, and takes a whole batch from the transfer cache in O(1)");
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);

    say("when that thread exits, its cache goes back (a pthread key's "
        "destructor): one thread with a cache again");
    show(mcache_dump, "mcache:", 1);

    say("the tiny allocator (off by default; GM_TINY=1 or gm_set_tiny "
        "turns it on): strings of 3, 2, 5 and 1 bytes share one 16-byte "
        "block, each at the alignment C asks for its size");
    gm_set_tiny(true);
    char *s1 = gm_malloc(3), *s2 = gm_malloc(2), *s3 = gm_malloc(5);
    char *s4 = gm_malloc(1);
    printf("   offsets in the block: %d, %d, %d, %d\n", 0, (int)(s2 - s1),
           (int)(s3 - s1), (int)(s4 - s1));
    show(mcache_dump, "tiny block", 1);
    printf("   the block goes back when all four are freed and the thread "
           "has moved on to another block\n");

    say("a large block (40000 B) is whole pages from the mheap: L, with "
        "its 4 other pages l; . free pages still resident, ~ scavenged");
    char *large = gm_malloc(40000);
    show(mheap_dump, "  pages ", 1);

    say("a burst of 8 MiB in 2 KiB blocks, freed: the free pages stay "
        "resident until the scavenger gives them back");
    static void *burst[4096];
    for (int i = 0; i < 4096; i++)
        burst[i] = memset(gm_malloc(2048), 1, 2048);
    for (int i = 0; i < 4096; i++)
        gm_free(burst[i]);
    gm_quarantine_flush();
    gm_thread_release();
    show(mheap_dump, "pages:", 1);
    gm_set_scavenge_delay(20);
    gm_set_scavenge(GM_SCAVENGE_BACKGROUND);
    void *kick = gm_malloc(100000);
    gm_free(kick);
    gm_quarantine_flush();
    for (int i = 0; i < 20; i++) /* the thread needs a pass or two */
        usleep(20000);
    printf("   after 400 ms of doing nothing:\n");
    show(mheap_dump, "pages:", 1);
    show(mheap_dump, "free runs, scavenged", 1);

    gm_free(large);
    gm_free(s1);
    gm_free(s2);
    gm_free(s3);
    gm_free(s4);
    printf("\nheap sound: %s\n", gm_check() ? "yes" : "NO");
    gm_destroy();
    return 0;
}
