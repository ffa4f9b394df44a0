/*
 * common/mallocbench/burst_malloc.c: how much memory a malloc gives back
 * after a burst. Allocates about MB megabytes (default 256) in blocks of
 * 16 B to 4 KB (and one block in 64 of 64-256 KB), writes them all, frees
 * all but one block in KEEP (default 1000: the survivors a real burst
 * leaves, a cache entry here and a log line there, scattered through the
 * heap), then stays idle and reads its resident memory (smaps_rollup's Rss)
 * at moments after the free: what a background scavenger or a decay timer
 * gives back shows up in the later readings. A heap that returns memory
 * only from its top keeps nearly everything below the highest survivor.
 *
 *     burst_malloc [--mb MB] [--keep KEEP] [--label NAME] [--csv PATH]
 *                  [--trim]
 *
 * --keep 0 frees everything.
 * --trim calls malloc_trim(0) right after the frees (glibc's way to return
 * free memory from the middle of its heap; a no-op elsewhere). Prints one
 * line; appends
 *     case,allocator,start_kb,peak_kb,freed_kb,after_0.5s_kb,after_2s_kb,
 *     after_5s_kb
 * to PATH. The readings are the process's, so "start" includes the
 * program itself.
 */
#define _GNU_SOURCE
#include "trace.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static void sleep_until(double t0, double at)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = at - ((double)now.tv_sec + (double)now.tv_nsec * 1e-9 - t0);
    if (left > 0) {
        struct timespec d = {(time_t)left,
                             (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&d, NULL);
    }
}

int main(int argc, char **argv)
{
    size_t mb = 256;
    const char *label = "system", *csv = NULL;
    int trim = 0;
    size_t keep = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
            mb = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
            label = argv[++i];
        else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
            csv = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--trim") == 0)
            trim = 1;
    }
    size_t start = trace_rss_bytes();
    /* The pointers live outside the heap under test. */
    size_t cap = mb << 10; /* blocks: about 1 KB on average */
    char **blocks = mmap(NULL, cap * sizeof *blocks, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (blocks == MAP_FAILED)
        return 2;
    uint64_t s = 88172645463325252u, total = 0;
    size_t n = 0;
    while (total < (uint64_t)mb << 20 && n < cap) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t size = s % 64 == 0 ? 65536 + s % 196608 : 16 + s % 4081;
        char *p = malloc(size);
        if (p == NULL)
            return 3;
        memset(p, (int)(n & 0xff), size);
        blocks[n++] = p;
        total += size;
    }
    size_t peak = trace_rss_bytes();
    /* Every other block first, then the rest: an order unlike the
     * allocation's, which leaves holes before it empties the heap. */
    size_t kept = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (size_t i = (size_t)pass; i < n; i += 2) {
            if (keep != 0 && i % keep == keep - 1) {
                kept++;
                continue;
            }
            free(blocks[i]);
            blocks[i] = NULL;
        }
    if (trim)
        malloc_trim(0);
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double t0 = (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
    size_t freed = trace_rss_bytes();
    static const double at[] = {0.5, 2, 5};
    size_t later[3];
    for (int k = 0; k < 3; k++) {
        sleep_until(t0, at[k]);
        later[k] = trace_rss_bytes();
    }
    printf("burst %-14s %4zu MB in %zu blocks, %zu kept: resident %zu MB at "
           "the start, %zu at the peak, %zu after free%s, then %zu, %zu, %zu "
           "after 0.5, 2, 5 s\n",
           label, mb, n, kept, start >> 20, peak >> 20, freed >> 20,
           trim ? " and malloc_trim(0)" : "", later[0] >> 20, later[1] >> 20,
           later[2] >> 20);
    if (csv) {
        FILE *f = fopen(csv, "a");
        if (f) {
            fprintf(f, "burst%s,%s,%zu,%zu,%zu,%zu,%zu,%zu\n",
                    trim ? "-trim" : "", label, start >> 10, peak >> 10,
                    freed >> 10, later[0] >> 10, later[1] >> 10,
                    later[2] >> 10);
            fclose(f);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    munmap(blocks, cap * sizeof *blocks);
    return 0;
}
