/*
 * replay_fl.c: replays allocation traces against the three placement
 * policies and the system malloc, side by side in one run: utilization
 * (peak live payload / peak footprint) and throughput (ops per second, the
 * median of timed runs). `make bench-04` runs it on every trace in
 * common/traces/ after the bench cases.
 *
 *   build/release/replay_fl [--reps N] [--csv PATH] TRACE.rep...
 *
 * Footprint: for fl, the bytes it has mapped from the OS (its own count);
 * for the system malloc, what glibc's mallinfo2 says it holds (arena + mmap'd
 * chunks, beyond what the process held before the replay: see trace.h).
 *
 * Every replay runs in a child process of its own. glibc keeps freed memory
 * in its arena, so in one process the system malloc's figure for a trace
 * depended on the replays before it (pairs read 26% in one run and 72% in
 * another); a fresh child starts every allocator from the same heap.
 * The CSV has one row per trace and allocator:
 *   stage,trace,allocator,ops,peak_live,peak_footprint,utilization,
 *   footprint_source,seconds,ops_per_sec
 *
 * Last, it measures what the OS costs on this machine: a mmap of a 64 KiB
 * region, the first write to each of its pages (a page fault), and its
 * munmap. fl's throughput above includes them (a region is mapped when no
 * chunk fits and unmapped as soon as it empties), and they differ widely
 * from machine to machine: a README's figure is its machine's, this one
 * is yours.
 */
#include "fl.h"
#include "replay.h"
#include "trace.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

// clang-format off
/* ---- What the OS costs on this machine --------------------------------- */
// clang-format on

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return v[n / 2];
}

/* Medians of OS_ROUNDS rounds, each: map a region of FL_REGION_MIN bytes,
 * write one byte to each of its pages, unmap it; and map and unmap one that
 * is never touched. Returns -1 if the OS refused. */
enum { OS_ROUNDS = 201 };
static int os_costs(void)
{
    static double map[OS_ROUNDS], touch[OS_ROUNDS], unmap[OS_ROUNDS],
        unmap_cold[OS_ROUNDS];
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = FL_REGION_MIN;
    size_t pages = bytes / page;
    for (size_t i = 0; i < OS_ROUNDS; i++) {
        double t0 = now_us();
        volatile char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        double t1 = now_us();
        if (p == MAP_FAILED)
            return -1;
        for (size_t k = 0; k < pages; k++)
            p[k * page] = 1;
        double t2 = now_us();
        munmap((void *)(uintptr_t)p, bytes);
        double t3 = now_us();
        void *q = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
            return -1;
        double t4 = now_us();
        munmap(q, bytes);
        double t5 = now_us();
        map[i] = t1 - t0;
        touch[i] = (t2 - t1) / (double)pages;
        unmap[i] = t3 - t2;
        unmap_cold[i] = t5 - t4;
    }
    printf("\n== what the OS costs on this machine (median of %d rounds; fl's "
           "rates above include it)\n",
           OS_ROUNDS);
    printf("mmap of a %zu KiB region                 %8.2f us\n", bytes / 1024,
           median(map, OS_ROUNDS));
    printf("first write to one of its %zu pages       %8.2f us (a page "
           "fault)\n",
           pages, median(touch, OS_ROUNDS));
    printf("munmap of it, every page written         %8.2f us\n",
           median(unmap, OS_ROUNDS));
    printf("munmap of one never written              %8.2f us\n",
           median(unmap_cold, OS_ROUNDS));
    return 0;
}

// clang-format off
/* ---- The replays -------------------------------------------------------- */
// clang-format on

static void *heap_new(fl_policy pol)
{
    fl_heap *h = malloc(sizeof *h);
    if (h != NULL)
        fl_init(h, pol);
    return h;
}
static void *new_first(void)
{
    return heap_new(FL_FIRST_FIT);
}
static void *new_next(void)
{
    return heap_new(FL_NEXT_FIT);
}
static void *new_best(void)
{
    return heap_new(FL_BEST_FIT);
}
static void heap_end(void *h)
{
    fl_destroy(h);
    free(h);
}
static void *h_alloc(void *h, size_t n)
{
    return fl_alloc(h, n);
}
static void h_free(void *h, void *p)
{
    fl_free(h, p);
}
static void *h_realloc(void *h, void *p, size_t n)
{
    return fl_realloc(h, p, n);
}
static size_t h_footprint(void *h)
{
    return fl_footprint(h);
}
static bool h_check(void *h)
{
    return fl_check(h);
}

#define FL_TRACE_ALLOC(label, make)                                            \
    {                                                                          \
        .name = (label), .create = (make), .destroy = heap_end,                \
        .alloc = h_alloc, .free = h_free, .realloc = h_realloc,                \
        .footprint = h_footprint, .check = h_check, .align = FL_ALIGN,         \
    }

enum { NALLOC = 4 };
static const trace_alloc allocators[NALLOC] = {
    FL_TRACE_ALLOC("first-fit", new_first),
    FL_TRACE_ALLOC("next-fit", new_next),
    FL_TRACE_ALLOC("best-fit", new_best),
};

int main(int argc, char **argv)
{
    trace_alloc all[NALLOC];
    memcpy(all, allocators, sizeof all);
    all[3] = trace_system_malloc;
    all[3].name = "system";

    int ntraces;
    int failures =
        replay_bench(argc, argv, "04-freelist", all, NALLOC, &ntraces);
    if (failures < 0)
        return 2;
    printf("fl footprint: bytes mapped (its own count); system: glibc's "
           "mallinfo2 (arena + mmap'd chunks)\n");
    if (os_costs() != 0) {
        perror("replay_fl: mmap");
        failures++;
    }
    printf("replay_fl: %d traces, %d failures\n", ntraces, failures);
    return failures ? 1 : 0;
}
