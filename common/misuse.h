/*
 * common/misuse.h: the command line of a stage's deliberate-bug program
 * (bad_*.c), the protocol that common/misuse.sh speaks (see README.md).
 *
 * A bad_* program is a table of bugs and one function that commits them:
 *
 *     static const misuse_bug bugs[] = {
 *         {"overflow", "Invalid write of size", "use-after-poison",
 *          "writes one byte past a 32-byte block, into its redzone"},
 *     };
 *     static int commit(const char *bug) { ...setup...; if (strcmp(bug,
 *         "overflow") == 0) p[32] = 1; ...; return 0; }
 *     int main(int argc, char **argv) {
 *         return misuse_main(argc, argv, bugs, 1, commit);
 *     }
 *
 *   PROGRAM --list   prints the table, one bug a line, tab-separated
 *   PROGRAM none     commit("none"): the control run, the same setup, no bug
 *   PROGRAM NAME     commit(NAME) for a name in the table
 *   anything else    a usage message, exit status 2
 */
#ifndef COMMON_MISUSE_H
#define COMMON_MISUSE_H

#include <stddef.h>

typedef struct misuse_bug {
    const char *name;     /* the argument that commits it: "use-after-free" */
    const char *valgrind; /* a regex Valgrind's report must contain, or "-" */
    const char *asan;     /* a regex ASan's report must contain, or "-" */
    const char *what;     /* what it does, and why a tool marked "-" is blind */
} misuse_bug;

/* Runs the protocol above; returns the program's exit status. */
int misuse_main(int argc, char **argv, const misuse_bug *bugs, size_t nbugs,
                int (*commit)(const char *bug));

#endif /* COMMON_MISUSE_H */
