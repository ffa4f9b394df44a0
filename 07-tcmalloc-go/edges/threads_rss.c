/*
 * edges/threads_rss.c: resident memory while a thousand threads come and
 * go, four at a time, each allocating and freeing 256 KiB in small blocks
 * and handing a quarter of them to the main thread to free. Run by edges.sh
 * on libmalloc.so and on the system malloc: both must print "steady".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAVE   4
#define BLOCKS 2000

static void *handed[WAVE][BLOCKS / 4];

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

static void *worker(void *arg)
{
    size_t me = (size_t)arg;
    static __thread void *mine[BLOCKS];
    for (size_t i = 0; i < BLOCKS; i++) {
        mine[i] = malloc(16 + (i * 53 + me) % 240);
        memset(mine[i], 1, 16);
    }
    for (size_t i = 0; i < BLOCKS; i++) {
        if (i % 4 == 0)
            handed[me][i / 4] = mine[i];
        else
            free(mine[i]);
    }
    return NULL;
}

int main(void)
{
    size_t mid = 0;
    for (int wave = 0; wave < 250; wave++) {
        pthread_t t[WAVE];
        for (size_t i = 0; i < WAVE; i++)
            pthread_create(&t[i], NULL, worker, (void *)i);
        for (size_t i = 0; i < WAVE; i++)
            pthread_join(t[i], NULL);
        for (size_t i = 0; i < WAVE; i++)
            for (size_t k = 0; k < BLOCKS / 4; k++)
                free(handed[i][k]);
        if (wave == 50)
            mid = rss();
    }
    size_t end = rss();
    if (end <= mid + 4096)
        printf("1000 threads came and went: resident memory steady\n");
    else
        printf("1000 threads came and went: resident memory grew by %zu KiB "
               "(%zu to %zu)\n",
               end - mid, mid, end);
    return 0;
}
