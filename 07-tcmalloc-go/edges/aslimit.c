/*
 * aslimit.c: run under an address-space limit (edges.sh sets ulimit -v):
 * allocate blocks of 100 B, 10 KB and 1 MB, each written, until malloc
 * returns NULL; that NULL must come with errno ENOMEM, and after freeing
 * everything the heap must serve again. Prints the same two lines on any
 * malloc that behaves (the counts it reaches differ, so they are not
 * printed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 400000

static void *blocks[MAX_BLOCKS];

int main(void)
{
    static const size_t sizes[] = {100, 10000, 1000000};
    size_t n = 0;
    int err = 0;
    while (n < MAX_BLOCKS) {
        size_t size = sizes[n % 3];
        errno = 0;
        void *p = malloc(size);
        if (p == NULL) {
            err = errno;
            break;
        }
        memset(p, (int)(n & 0xff), size);
        blocks[n++] = p;
    }
    if (n == MAX_BLOCKS) {
        printf("the limit was never reached\n");
        return 1;
    }
    printf("malloc ran out with %s\n", err == ENOMEM ? "ENOMEM" : "another errno");
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = blocks[i];
        if (p[0] != (unsigned char)(i & 0xff) ||
            p[sizes[i % 3] - 1] != (unsigned char)(i & 0xff)) {
            printf("block %zu damaged\n", i);
            return 1;
        }
        free(p);
    }
    void *again = malloc(1000000);
    printf("after freeing everything, malloc %s\n",
           again != NULL ? "serves again" : "still fails");
    free(again);
    return again == NULL;
}
