/*
 * edges/burst_idle.c: 128 MiB allocated in blocks of 16 B to 4 KiB, all but
 * one in a thousand freed, then no call to the allocator at all: resident
 * memory (smaps_rollup) read every 50 ms for up to 3 s. Run by edges.sh on
 * libmalloc.so, which must give the memory back by itself (its scavenger);
 * the system malloc keeps most of it, so its output is not compared.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t rss(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    size_t kb = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Rss: %zu kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

int main(void)
{
    size_t cap = (size_t)128 << 10, n = 0, total = 0;
    char **b = mmap(NULL, cap * sizeof *b, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return 2;
    size_t start = rss();
    uint64_t s = 88172645463325252u;
    while (total < (size_t)128 << 20 && n < cap) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t size = 16 + s % 4081;
        if ((b[n] = malloc(size)) == NULL)
            return 3;
        memset(b[n++], 1, size);
        total += size;
    }
    size_t peak = rss();
    for (size_t i = 0; i < n; i++)
        if (i % 1000 != 999)
            free(b[i]);
    int ms = 0;
    size_t now = rss();
    while (ms < 3000 && now > start + 8192) {
        usleep(50000);
        ms += 50;
        now = rss();
    }
    if (now <= start + 8192)
        printf("burst of 128 MiB freed: back within 8 MiB of the start "
               "(%zu MiB at the peak) after %d ms idle\n",
               peak >> 10, ms);
    else
        printf("burst of 128 MiB freed: %zu MiB above the start after 3 s "
               "idle (%zu MiB at the peak)\n",
               (now - start) >> 10, peak >> 10);
    return now <= start + 8192 ? 0 : 1;
}
