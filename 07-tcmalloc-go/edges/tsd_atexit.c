/*
 * edges/tsd_atexit.c: malloc and free from thread-specific-data
 * destructors that run after the allocator's own (a key created later runs
 * later), and from an atexit handler that runs after the main thread's
 * destructors (main calls pthread_exit; the last thread to exit runs the
 * handlers). Run by edges.sh on libmalloc.so and on the system malloc:
 * the output must be the same.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8

static pthread_key_t key;
static int served[THREADS];

static int churn(int rounds)
{
    int ok = 1;
    for (int i = 0; i < rounds; i++) {
        char *p = malloc((size_t)(1 + i * 37 % 3000));
        char *q = realloc(p, (size_t)(1 + i * 91 % 70000));
        ok = ok && q != NULL;
        if (q != NULL)
            q[0] = 'x';
        free(q);
    }
    return ok;
}

static void destructor(void *v)
{
    int *slot = v;
    *slot = churn(500);
}

static void *thread_main(void *arg)
{
    int me = (int)(size_t)arg;
    free(malloc(100)); /* the allocator's per-thread state starts */
    pthread_setspecific(key, &served[me]);
    return NULL;
}

static void at_exit(void)
{
    const char *line = churn(500) ? "atexit handler after main's teardown: "
                                    "served\n"
                                  : "atexit handler: FAILED\n";
    if (write(STDOUT_FILENO, line, strlen(line)) < 0) {
    }
}

int main(void)
{
    free(malloc(10)); /* the allocator's key exists before ours */
    pthread_key_create(&key, destructor);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)(size_t)i);
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += served[i];
    }
    printf("destructors after the allocator's: %d of %d threads served\n", ok,
           THREADS);
    fflush(stdout);
    atexit(at_exit);
    pthread_setspecific(key, &served[0]);
    pthread_exit(NULL);
}
