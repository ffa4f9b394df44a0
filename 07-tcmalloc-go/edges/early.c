/*
 * edges/early.c: the allocator's first call comes from a thread that a
 * constructor starts, before main, and the dynamic linker allocates too
 * (dlopen): run by edges.sh on libmalloc.so and on the system malloc, the
 * output must be the same.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ok;

static void *first(void *arg)
{
    (void)arg;
    free(NULL);
    char *p = malloc(100), *q = realloc(NULL, 5000), *z = calloc(10, 10);
    ok = p != NULL && q != NULL && z != NULL && z[99] == 0;
    if (ok) {
        strcpy(p, "early");
        q = realloc(q, 100000);
        ok = q != NULL && strcmp(p, "early") == 0;
    }
    free(p);
    free(q);
    free(z);
    void *lib = dlopen("libm.so.6", RTLD_NOW); /* ld.so allocates */
    ok = ok && lib != NULL;
    if (lib != NULL)
        dlclose(lib);
    return NULL;
}

__attribute__((constructor(101))) static void before_main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, first, NULL) == 0)
        pthread_join(t, NULL);
}

int main(void)
{
    printf("calls from a thread started before main: %s\n",
           ok ? "served" : "FAILED");
    return ok ? 0 : 1;
}
