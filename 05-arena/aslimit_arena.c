/*
 * aslimit_arena.c: eight threads allocating under an address-space limit
 * (test_programs.sh runs it with `ulimit -v`, on the system malloc and on
 * libmalloc.so). Each new arena reserves 64 MB of address space (and, for a
 * moment, 128 MB to align it), so under a tight limit only a few can be
 * made; the others' threads must share an existing arena rather than fail.
 * Prints one line, the same on any malloc that keeps serving.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 8
#define ROUNDS  3000

static int refused;

static void *worker(void *arg)
{
    size_t seed = (size_t)(uintptr_t)arg * 2654435761u + 1;
    void *live[32] = {0};
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        int k = (int)(seed >> 59) % 32;
        size_t n =
            (seed >> 33) % 4 == 0 ? (seed >> 20) % 300000 : (seed >> 40) % 600;
        free(live[k]);
        live[k] = malloc(n + 1);
        if (live[k] == NULL)
            __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        else
            memset(live[k], 1, n + 1);
    }
    for (int k = 0; k < 32; k++)
        free(live[k]);
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)256 * 1024);
    int started = 0;
    for (int i = 0; i < THREADS; i++)
        started +=
            pthread_create(&t[i], &attr, worker, (void *)(uintptr_t)i) == 0;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    printf("%d threads under the address-space limit: %s\n", started,
           refused == 0 ? "every allocation served" : "some refused");
    return refused == 0 && started == THREADS ? 0 : 1;
}
