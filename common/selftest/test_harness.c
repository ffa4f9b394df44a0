/*
 * common/selftest/test_harness.c: the harness tests itself: its random
 * range stays in range, test_aborts_with tells an abort with the right
 * message from every other ending, and a TEST_ONLY filter that selects no
 * case fails the run instead of reporting success.
 */
#include "fault.h"
#include "test.h"

#include <errno.h>
#include <sys/mman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void says_and_aborts(void *arg)
{
    fprintf(stderr, "01-bump: bump_rewind(%p): mark past the offset\n", arg);
    abort();
}

static void returns_quietly(void *arg)
{
    (void)arg;
}

static void aborts_silently(void *arg)
{
    (void)arg;
    abort();
}

static void exits_with_message(void *arg)
{
    fprintf(stderr, "01-bump: bump_rewind(%p): mark past the offset\n", arg);
    exit(3);
}

static void test_aborts_with_tells_endings_apart(void)
{
    CHECK(test_aborts_with(says_and_aborts, NULL, "mark past the offset"));
    CHECK(!test_aborts_with(says_and_aborts, NULL, "double free"));
    CHECK(!test_aborts_with(returns_quietly, NULL, "mark past the offset"));
    CHECK(!test_aborts_with(aborts_silently, NULL, "mark past the offset"));
    CHECK(!test_aborts_with(exits_with_message, NULL, "mark past the offset"));
}

static void test_rand_range_stays_in_range(void)
{
    int seen[8] = {0};
    for (int i = 0; i < 10000; i++) {
        size_t v = test_rand_range(3, 10);
        REQUIRE(v >= 3 && v <= 10);
        seen[v - 3]++;
    }
    for (int i = 0; i < 8; i++)
        CHECK_NE(seen[i], 0); /* every value comes up in 10000 draws */
    CHECK_EQ(test_rand_range(5, 5), 5);
}

static const char *self_path; /* argv[0]: under Valgrind, /proc/self/exe is
                                  Valgrind's own binary */

/* Runs this binary again with TEST_ONLY=`only`; returns its exit status
 * (-1 if it did not exit) and whether its output contained `expect`. */
static int run_self_only(const char *only, const char *expect, bool *said)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        setenv("TEST_ONLY", only, 1);
        execl(self_path, self_path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char out[4096];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 &&
           (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
        return -1;
    *said = strstr(out, expect) != NULL;
    return WEXITSTATUS(status);
}

static void test_only_that_matches_nothing_fails(void)
{
    bool said = false;
    CHECK_INT_EQ(run_self_only("nosuchtest", "matches no test case", &said), 1);
    CHECK(said);
    /* The same filter spelt right runs its case and passes. */
    said = false;
    CHECK_INT_EQ(run_self_only("rand_range", "1 passed, 0 failed", &said), 0);
    CHECK(said);
}

/* The linker-wrapped OS calls: an armed kind fails after its passes, the
 * counters say so, and a disarmed kind goes through to the kernel. */
static void test_fault_fails_the_armed_calls(void)
{
    fault_arm(FAULT_MMAP, 1, 1);
    void *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(a != MAP_FAILED); /* the one let through */
    errno = 0;
    void *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(b == MAP_FAILED);
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_calls(FAULT_MMAP), 2);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);

    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 0;
    CHECK_INT_EQ(munmap(a, 4096), -1);
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_INT_EQ(madvise(a, 4096, MADV_DONTNEED), 0); /* not armed */
    fault_disarm();
    CHECK_INT_EQ(munmap(a, 4096), 0);
    CHECK_EQ(fault_calls(FAULT_MUNMAP), 1);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 0);
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    self_path = argv[0];
    RUN_TEST(test_aborts_with_tells_endings_apart);
    RUN_TEST(test_rand_range_stays_in_range);
    RUN_TEST(test_only_that_matches_nothing_fails);
    RUN_TEST(test_fault_fails_the_armed_calls);
    return test_finish();
}
