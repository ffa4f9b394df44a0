/*
 * common/misuse.c: the command line of the bad_* programs. See misuse.h.
 */
#include "misuse.h"

#include <stdio.h>
#include <string.h>

int misuse_main(int argc, char **argv, const misuse_bug *bugs, size_t nbugs,
                int (*commit)(const char *bug))
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < nbugs; i++)
            printf("%s\t%s\t%s\t%s\n", bugs[i].name, bugs[i].valgrind,
                   bugs[i].asan, bugs[i].what);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "none") == 0)
        return commit("none");
    for (size_t i = 0; argc == 2 && i < nbugs; i++)
        if (strcmp(argv[1], bugs[i].name) == 0)
            return commit(bugs[i].name);
    fprintf(stderr, "usage: %s --list | none | BUG (one of:", argv[0]);
    for (size_t i = 0; i < nbugs; i++)
        fprintf(stderr, " %s", bugs[i].name);
    fprintf(stderr, ")\n");
    return 2;
}
