/*
 * misfree_arena.c: bad frees and reallocs through the C library's names,
 * each in a child process, for test_programs.sh to run on the system malloc
 * and on libmalloc.so: every misuse that the system malloc detects (the
 * child aborts), this stage must detect too. One line per case:
 *
 *   NAME  abort|crash|none  first line the child wrote to stderr
 *
 * "abort" is SIGABRT (a report), "crash" another signal (the misuse ran
 * into unmapped memory: nobody detected it, but nothing went on either),
 * "none" a normal exit (the misuse went unnoticed).
 *
 * The cases use the malloc family only, so that the same binary runs on
 * either malloc. Built by test_programs.sh, plain, with $CC.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The cases leak on purpose (a child that is about to die), which
 * clang-analyzer would report: it is told so once, here. */
// NOLINTBEGIN(clang-analyzer-unix.Malloc)

/* Called through volatile pointers: the compiler must not judge the
 * deliberate misuse at compile time (gcc warns of a free of a stack
 * object, and may drop a double free). */
static void (*volatile free_fn)(void *) = free;
static void *(*volatile realloc_fn)(void *, size_t) = realloc;

static void *keep[16];

/* Seven frees of `size`-byte blocks: the per-thread cache's list of that
 * size is full, so that the next free of that size goes past it. */
static void fill_cache(size_t size)
{
    for (int i = 0; i < 7; i++)
        keep[i] = malloc(size);
    for (int i = 0; i < 7; i++)
        free_fn(keep[i]);
}

static void double_free_cached(void)
{
    void *p = malloc(40);
    free_fn(p);
    free_fn(p);
}

static void double_free_fast(void)
{
    void *p = malloc(40);
    fill_cache(40);
    free_fn(p);
    free_fn(p);
}

static void fastbin_dup(void)
{
    void *a = malloc(40), *b = malloc(40);
    fill_cache(40);
    free_fn(a);
    free_fn(b);
    free_fn(a);
    for (int i = 0; i < 3; i++)
        keep[8 + i] = malloc(40); /* a, b, then a again: the same block */
    printf("%p %p %p\n", keep[8], keep[9], keep[10]);
}

static void double_free_500(void)
{
    void *p = malloc(500), *g = malloc(16);
    (void)g;
    fill_cache(500);
    free_fn(p);
    free_fn(p);
}

static void double_free_2000(void)
{
    void *p = malloc(2000), *g = malloc(16);
    (void)g;
    free_fn(p);
    free_fn(p);
}

static void double_free_mapped(void)
{
    void *p = malloc(4 << 20);
    free_fn(p);
    free_fn(p);
}

static void free_inside(void)
{
    char *p = malloc(200);
    memset(p, 0x41, 200);
    free_fn(p + 32);
}

static void free_misaligned(void)
{
    char *p = malloc(200);
    free_fn(p + 8);
}

static void free_stack(void)
{
    char buf[64] __attribute__((aligned(16)));
    memset(buf, 0, sizeof buf);
    free_fn(buf + 16);
}

static char global[4096] __attribute__((aligned(16)));
static void free_global(void)
{
    free_fn(global + 64);
}

static void free_global_header(void)
{
    /* A plausible 2048-byte "chunk" header in static memory. */
    size_t *h = (size_t *)(void *)global;
    h[1] = 2048 | 1;
    h[2048 / sizeof(size_t) + 1] = 32 | 1;
    free_fn(&h[2]);
}

static void realloc_freed(void)
{
    void *p = malloc(2000), *g = malloc(16);
    (void)g;
    free_fn(p);
    printf("%p\n", realloc_fn(p, 4000));
}

static void overflow_then_free(void)
{
    char *p = malloc(24), *q = malloc(24), *g = malloc(24);
    (void)g;
    keep[0] = p; /* escapes: the compiler must keep the writes */
    char *volatile end = p + 24;
    memset(end, 0xFF, 9); /* over q's size word */
    free_fn(q);
}

static void footer_overwrite(void)
{
    char *a = malloc(2000), *b = malloc(2000), *g = malloc(16);
    (void)g;
    keep[0] = b;
    free_fn(a);
    /* b's prev_size word, a's footer, through an address the compiler
     * cannot see is outside b (the overflow of a block before it). */
    char *volatile footer = b - 16;
    memset(footer, 0x20, 8);
    free_fn(b); /* merges backwards with a */
}

// NOLINTEND(clang-analyzer-unix.Malloc)

typedef struct misuse_case {
    const char *name;
    void (*run)(void);
} misuse_case;

static const misuse_case cases[] = {
    {"double-free-cached", double_free_cached},
    {"double-free-fast", double_free_fast},
    {"fastbin-dup", fastbin_dup},
    {"double-free-500", double_free_500},
    {"double-free-2000", double_free_2000},
    {"double-free-mapped", double_free_mapped},
    {"free-inside-block", free_inside},
    {"free-misaligned", free_misaligned},
    {"free-stack", free_stack},
    {"free-global", free_global},
    {"free-fake-header", free_global_header},
    {"realloc-freed", realloc_freed},
    {"overflow-then-free", overflow_then_free},
    {"footer-overwrite", footer_overwrite},
};

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fds[2];
        if (pipe(fds) != 0)
            return 2;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            dup2(fds[1], STDERR_FILENO);
            dup2(fds[1], STDOUT_FILENO);
            close(fds[1]);
            cases[i].run();
            _exit(0);
        }
        close(fds[1]);
        char buf[512] = {0};
        size_t len = 0;
        ssize_t n;
        while (len < sizeof buf - 1 &&
               (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
            len += (size_t)n;
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        const char *what = "none";
        if (WIFSIGNALED(status))
            what = WTERMSIG(status) == SIGABRT ? "abort" : "crash";
        buf[strcspn(buf, "\n")] = '\0';
        printf("%-20s %-6s %s\n", cases[i].name, what, buf);
    }
    return 0;
}
