/*
 * threads_fork.c: a multi-threaded program for common/shimtest/run.sh to run on
 * libmalloc.so and on the system malloc, comparing what it prints.
 *
 * Four threads churn through malloc, realloc and free with sizes from 1 byte
 * to 64 KiB, writing a pattern into every block and verifying it before the
 * block is resized or freed; a quarter of the frees are of blocks another
 * thread allocated (handed over through a shared mailbox). Halfway, one
 * thread forks while the others keep allocating: the child must be able to
 * allocate too (a malloc lock copied in the locked state would hang it; the
 * parent gives it 10 seconds). Output is deterministic: the same on any
 * correct malloc.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 4
#define SLOTS   64
#define OPS     20000

typedef struct block {
    unsigned char *p;
    size_t n;
    unsigned char seed;
} block;

static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;
static block mailbox; /* one block in transit between threads */
static int bad_blocks, fork_result = -1;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void fill(block *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->p[i] = (unsigned char)(b->seed + i);
}

static bool intact(const block *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != (unsigned char)(b->seed + i))
            return false;
    return true;
}

/* clang-analyzer reports leaks in drop() and churn() that are not there: it
 * loses blocks through the slot array and the mailbox swap. Valgrind and
 * ASan runs of this program are the real check. */
// NOLINTBEGIN(clang-analyzer-unix.Malloc)
static void drop(block *b)
{
    if (b->p != NULL && !intact(b))
        __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
    free(b->p);
    b->p = NULL;
}

/* Forks; the child allocates, frees and exits 0 if its data held. */
static void fork_and_check(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        block b = {malloc(1000), 1000, 7};
        if (b.p == NULL)
            _exit(2);
        fill(&b);
        int status = intact(&b) ? 0 : 3;
        free(b.p);
        _exit(status);
    }
    int status = 0;
    for (int waited = 0; waited < 1000; waited++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fork_result = WIFEXITED(status) ? WEXITSTATUS(status) : 100;
            return;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL); /* hung: the lock was copied while held */
    waitpid(pid, &status, 0);
    fork_result = 99;
}

static void *churn(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 7919u + 1;
    block slot[SLOTS] = {{0}};
    for (int op = 0; op < OPS; op++) {
        if ((uintptr_t)arg == 0 && op == OPS / 2)
            fork_and_check();
        block *b = &slot[next_rand(&rng) % SLOTS];
        unsigned r = (unsigned)(next_rand(&rng) % 100);
        size_t n =
            r < 90 ? 1 + next_rand(&rng) % 512 : 1 + next_rand(&rng) % 65536;
        if (b->p == NULL) {
            b->p = malloc(n);
            b->n = n;
            b->seed = (unsigned char)next_rand(&rng);
            if (b->p == NULL)
                __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
            else
                fill(b);
        } else if (r < 30) {
            if (!intact(b))
                __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
            unsigned char *q = realloc(b->p, n);
            if (q == NULL) {
                __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
                continue;
            }
            b->p = q;
            b->n = n;
            fill(b);
        } else if (r < 55) {
            /* Swap with the mailbox: the block is freed by another thread. */
            pthread_mutex_lock(&mailbox_lock);
            block other = mailbox;
            mailbox = *b;
            pthread_mutex_unlock(&mailbox_lock);
            drop(&other);
            b->p = NULL;
        } else {
            drop(b);
        }
    }
    for (int i = 0; i < SLOTS; i++)
        drop(&slot[i]);
    return NULL;
}

// NOLINTEND(clang-analyzer-unix.Malloc)

int main(void)
{
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, churn, (void *)i) != 0)
            return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    drop(&mailbox);
    printf("threads: %d x %d ops, damaged or failed blocks: %d\n", THREADS, OPS,
           bad_blocks);
    printf("fork from a busy thread: child %s\n",
           fork_result == 0    ? "allocated and exited normally"
           : fork_result == 99 ? "HUNG (lock copied while held)"
                               : "FAILED");
    return bad_blocks == 0 && fork_result == 0 ? 0 : 1;
}
