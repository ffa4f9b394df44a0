/*
 * mksizeclasses.c: the generator of the size-class table (Go's
 * mksizeclasses.go in C). make builds it and runs it before anything else
 * of the stage is compiled; it writes build/gen/gm_classes.h, which the
 * allocator includes. Nobody types the table in: change a rule here and
 * every class follows. Stage 06 made the same table with the same rules;
 * this copy adds what the caches need (batch sizes, list offsets, the tiny
 * blocks' class).
 *
 *     build/gen/mksizeclasses build/gen/gm_classes.h   # what make runs
 *     build/gen/mksizeclasses --table                  # for people
 *                                                      # (make classes)
 *
 * The rules of Go's generator, for an allocator page of 8 KiB and objects
 * of 8 B to 32 KiB:
 *
 *   1. Walk the sizes from 8 to 32768 in steps of `step`, starting at 8. At
 *      each power of two the step grows: 16 from 32 B, size / 8 from 128 B
 *      (16, 32, 64, 128), 256 from 2048 B. From 128 B on, a step of at most
 *      1/8 of the size keeps the round-up waste of a request near 12.5%.
 *   2. For each size, the fewest pages whose span leaves a tail (the bytes
 *      after the last whole object) of at most 1/8 of the span.
 *   3. A size whose page count and object count are the same as the
 *      previous class's replaces that class instead of adding one.
 *   4. Then each class grows to span_bytes / objects, rounded down to a
 *      multiple of 128, when that is larger (8448 B becomes 9472 B).
 *   5. There must be exactly 67 classes (and class 0, "large").
 *
 * What this stage adds to each class:
 *   - div_mul = UINT32_MAX / size + 1: the slot of offset o is
 *     (o * div_mul) >> 32, exact for every offset of every span (checked
 *     here by trying them all; Lemire, Kaser and Kurz, 2019).
 *   - batch: how many objects move at once between a thread's cache and
 *     its class's central list, 64 KiB worth, at least 2 and at most 32
 *     (TCMalloc's rule): one lock per batch.
 *   - class 68, the tiny blocks: 16-byte blocks, 512 to a one-page span,
 *     that the tiny allocator packs requests under 16 bytes into. Its own
 *     class, because its spans keep a count of live objects per block and
 *     its frees take another road (gm.c, "The tiny allocator").
 *   - the lookup tables from a request to its class, one entry per 8
 *     bytes up to 1024, one per 128 bytes above (one byte each: the fast
 *     path reads one entry and indexes the thread's lists with it). An entry
 * names the smallest class that holds the entry's largest size, and for
 * requests of 16 bytes or more a class whose size is a multiple of 16 (glibc's
 *     alignment, which programs rely on): requests of 17 to 24 bytes go to
 *     the 32-byte class, and nothing to Go's 24-byte class.
 *
 * The rules' goal, 12.5%, is a goal of each rule, not a bound on the result:
 * a request one byte over the previous class pays both the round-up and the
 * span's tail; --table shows the 22 classes where that is above 12.5%.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// clang-format off
enum {
    PAGE_SHIFT  = 13,
    PAGE        = 1 << PAGE_SHIFT, /* the allocator's page: 8 KiB */
    MAX_SMALL   = 32768,           /* larger objects get a span of their own */
    SMALL_DIV   = 8,               /* the fine lookup table's step... */
    SMALL_MAX   = 1024,            /* ...up to this size */
    LARGE_DIV   = 128,             /* the coarse table's step, above */
    NCLASSES    = 68,              /* class 0 ("large") and 67 real ones */
    TINY_CLASS  = 68,              /* the tiny allocator's 16-byte blocks */
    NLISTS      = 69,              /* a free list per class, tiny's too */
    ALIGN_FROM  = 16,              /* requests of 16 B or more: 16-aligned */
    BATCH_BYTES = 64 << 10,        /* a batch moves about this much */
    BATCH_MIN   = 2,
    BATCH_MAX   = 32,
    N_TO_CLASS8   = SMALL_MAX / SMALL_DIV + 1,                /* 129 */
    N_TO_CLASS128 = (MAX_SMALL - SMALL_MAX) / LARGE_DIV + 1,  /* 249 */
};
// clang-format on

typedef struct gen_class {
    int size;   /* bytes of one object */
    int npages; /* pages of one span */
} gen_class;

static gen_class classes[NLISTS + 8]; /* room to notice too many */
static int nclasses;                  /* classes[0] is "large" */

static int is_pow2(int x)
{
    return x > 0 && (x & (x - 1)) == 0;
}

/* Rules 1 to 4 of the header. Returns the number of entries, class 0 with
 * them; the caller checks that it is NCLASSES. */
static int make_classes(void)
{
    int n = 1; /* classes[0] = {0, 0}: "large" */
    int step = 8;
    for (int size = 8; size <= MAX_SMALL; size += step) {
        if (is_pow2(size)) { /* rule 1: the step grows at powers of two */
            if (size >= 2048)
                step = 256;
            else if (size >= 128)
                step = size / 8;
            else if (size >= 32)
                step = 16;
        }
        /* Rule 2: the fewest pages with a tail of at most 1/8 of the span. */
        int span = PAGE;
        while (span % size > span / 8)
            span += PAGE;
        int npages = span / PAGE;
        /* Rule 3: the same pages and objects as the class before: grow it. */
        if (n > 1 && classes[n - 1].npages == npages &&
            span / classes[n - 1].size == span / size) {
            classes[n - 1].size = size;
            continue;
        }
        if (n == NCLASSES + 8)
            return n; /* far too many: main says so */
        classes[n].size = size;
        classes[n].npages = npages;
        n++;
    }
    /* Rule 4: as big as the span allows for the same number of objects, in
     * steps of 128 so that the coarse lookup table stays exact. */
    for (int c = 1; c < n; c++) {
        int span = classes[c].npages * PAGE;
        int grown = (span / (span / classes[c].size)) & ~(LARGE_DIV - 1);
        if (grown > classes[c].size)
            classes[c].size = grown;
    }
    return n;
}

static uint32_t div_mul(int size)
{
    return UINT32_MAX / (uint32_t)size + 1;
}

/* Every offset of a span, divided by multiplication, against the division;
 * the span's end too ((span * div_mul) >> 32 is the object count). */
static int div_mul_exact(const gen_class *c)
{
    uint64_t m = div_mul(c->size);
    uint64_t span = (uint64_t)c->npages * PAGE;
    for (uint64_t off = 0; off <= span; off++)
        if (((off * m) >> 32) != off / (uint64_t)c->size)
            return 0;
    return 1;
}

/* TCMalloc's batch: 64 KiB worth of objects, between 2 and 32. */
static int batch_of(int c)
{
    if (c == 0)
        return 0;
    int b = BATCH_BYTES / classes[c].size;
    return b < BATCH_MIN ? BATCH_MIN : b > BATCH_MAX ? BATCH_MAX : b;
}

/* The class an entry of a lookup table names: the smallest class that holds
 * `largest` bytes, a multiple of 16 when the request is 16 bytes or more. */
static int class_for(int largest)
{
    for (int c = 1; c < nclasses; c++) {
        if (classes[c].size < largest)
            continue;
        if (largest >= ALIGN_FROM && classes[c].size % ALIGN_FROM != 0)
            continue;
        return c;
    }
    return -1;
}

/* Entry i of the fine table stands for requests of 8i-7 .. 8i bytes (entry
 * 0 for a request of 0, served as 1 byte). */
static int to_class8(int i)
{
    return class_for(i == 0 ? 1 : i * SMALL_DIV);
}

/* Entry i of the coarse table stands for requests up to 1024 + 128i. */
static int to_class128(int i)
{
    return class_for(SMALL_MAX + i * LARGE_DIV);
}

/* ---- The human table (make classes) -------------------------------------- */

/* Worst-case waste of class c for requests from `lo` up to its size:
 * ((size - lo) * objects + tail) / span. */
static double worst_waste(int c, int lo)
{
    int span = classes[c].npages * PAGE;
    int objects = span / classes[c].size;
    int tail = span - objects * classes[c].size;
    return (double)((classes[c].size - lo) * objects + tail) / span;
}

/* The smallest request the lookup tables send to class c, or 0. */
static int smallest_routed(int c)
{
    for (int n = 1; n <= MAX_SMALL; n++) {
        int cls = n <= SMALL_MAX - 8 ? to_class8((n + 7) / 8)
                                     : to_class128((n + 127 - SMALL_MAX) / 128);
        if (cls == c)
            return n;
        if (cls > c)
            return 0;
    }
    return 0;
}

static void print_table(void)
{
    printf("07-tcmalloc-go: the %d size classes, computed by mksizeclasses.c "
           "(allocator page %d B)\n\n",
           nclasses - 1, PAGE);
    printf("class  bytes/obj  bytes/span  pages  objects  tail  batch  "
           "max waste  as routed\n");
    int prev = 0, over = 0, over_small = 0;
    for (int c = 1; c < nclasses; c++) {
        int span = classes[c].npages * PAGE;
        int objects = span / classes[c].size;
        int tail = span - objects * classes[c].size;
        double go_worst = worst_waste(c, prev + 1);
        int lo = smallest_routed(c);
        char routed[32];
        if (lo == 0)
            snprintf(routed, sizeof routed, "%s", "(unused)");
        else
            snprintf(routed, sizeof routed, "%6.2f%%",
                     100.0 * worst_waste(c, lo));
        printf("%5d  %9d  %10d  %5d  %7d  %4d  %5d  %8.2f%%  %9s\n", c,
               classes[c].size, span, classes[c].npages, objects, tail,
               batch_of(c), 100.0 * go_worst, routed);
        if (go_worst > 0.125) {
            over++;
            over_small += c <= 9;
        }
        prev = classes[c].size;
    }
    printf("%5d  %9d  %10d  %5d  %7d  %4d  %5d  %9s  %9s\n", TINY_CLASS, 16,
           PAGE, 1, PAGE / 16, 0, batch_of(2), "-", "(tiny)");
    printf("\ntail: the bytes after the last whole object of a span; batch: "
           "objects moved at once\nbetween a thread's cache and the central "
           "list; max waste: a request one byte over\nthe previous class, "
           "((size - prev - 1) * objects + tail) / span; as routed: the "
           "same\nfor the smallest request sent to the class (17-24 B go to "
           "32 B, for 16-byte alignment).\nClass %d holds the tiny "
           "allocator's 16-byte blocks.\n",
           TINY_CLASS);
    printf("%d of the %d classes waste more than 12.5%% in the worst case: "
           "the %d smallest, and %d others.\n",
           over, nclasses - 1, over_small, over - over_small);
}

/* ---- The header for the allocator ---------------------------------------- */

static void print_list(FILE *f, const char *name, int n, int (*value)(int))
{
    fprintf(f, "#define %s \\\n    { \\\n", name);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d,%s", i % 12 == 0 ? "        " : " ", value(i),
                i % 12 == 11 || i == n - 1 ? " \\\n" : "");
    fprintf(f, "    }\n\n");
}

/* Class c's figures; index TINY_CLASS is the tiny blocks' class. */
static int v_size(int c)
{
    return c == TINY_CLASS ? 16 : classes[c].size;
}
static int v_pages(int c)
{
    return c == TINY_CLASS ? 1 : classes[c].npages;
}
static int v_objects(int c)
{
    return c == 0 ? 0 : v_pages(c) * PAGE / v_size(c);
}
static int v_batch(int c)
{
    return c == TINY_CLASS ? batch_of(2) : batch_of(c);
}

static int write_header(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fprintf(f, "/* Generated by mksizeclasses.c (make runs it): do not edit. "
               "The size-class\n * table as initialiser lists, for gm.c to "
               "instantiate once. */\n");
    fprintf(f, "#ifndef GM_CLASSES_H\n#define GM_CLASSES_H\n\n");
    fprintf(f, "// clang-format off\n");
    fprintf(f, "#define GM_NCLASSES %d\n", nclasses);
    fprintf(f, "#define GM_TINY_CLASS %d\n", TINY_CLASS);
    fprintf(f, "#define GM_NLISTS %d\n", NLISTS);
    fprintf(f, "#define GM_N_TO_CLASS8 %d\n", N_TO_CLASS8);
    fprintf(f, "#define GM_N_TO_CLASS128 %d\n\n", N_TO_CLASS128);
    print_list(f, "GM_CLASS_SIZE_INIT", NLISTS, v_size);
    print_list(f, "GM_CLASS_PAGES_INIT", NLISTS, v_pages);
    print_list(f, "GM_CLASS_OBJECTS_INIT", NLISTS, v_objects);
    print_list(f, "GM_CLASS_BATCH_INIT", NLISTS, v_batch);
    fprintf(f, "#define GM_CLASS_DIVMUL_INIT \\\n    { \\\n        0u, \\\n");
    for (int c = 1; c < NLISTS; c++)
        fprintf(f, "        %uu, /* %d B */ \\\n", div_mul(v_size(c)),
                v_size(c));
    fprintf(f, "    }\n\n");
    print_list(f, "GM_SIZE_TO_CLASS8_INIT", N_TO_CLASS8, to_class8);
    print_list(f, "GM_SIZE_TO_CLASS128_INIT", N_TO_CLASS128, to_class128);
    fprintf(f, "// clang-format on\n\n#endif\n");
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.h | --table\n", argv[0]);
        return 2;
    }
    nclasses = make_classes();
    if (nclasses != NCLASSES) { /* rule 5 */
        fprintf(stderr,
                "mksizeclasses: %d classes, not %d: the rules changed\n",
                nclasses - 1, NCLASSES - 1);
        return 1;
    }
    for (int c = 1; c < nclasses; c++) {
        if (classes[c].size % SMALL_DIV != 0 ||
            (classes[c].size > SMALL_MAX && classes[c].size % LARGE_DIV)) {
            fprintf(stderr,
                    "mksizeclasses: class %d (%d B) breaks the lookup "
                    "tables' steps\n",
                    c, classes[c].size);
            return 1;
        }
        if (!div_mul_exact(&classes[c])) {
            fprintf(stderr,
                    "mksizeclasses: class %d (%d B): (offset * div_mul) "
                    ">> 32 is not exact\n",
                    c, classes[c].size);
            return 1;
        }
    }
    for (int i = 0; i < N_TO_CLASS8; i++)
        if (to_class8(i) < 0)
            return 1;
    for (int i = 0; i < N_TO_CLASS128; i++)
        if (to_class128(i) < 0)
            return 1;
    if (strcmp(argv[1], "--table") == 0) {
        print_table();
        return 0;
    }
    return write_header(argv[1]);
}
