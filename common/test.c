/*
 * common/test.c: the test harness. See test.h for how to use it.
 */
#include "test.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_HAVE_VALGRIND 1
#endif
#endif

/* All harness state: one run at a time, one case at a time. */
static struct {
    const char *binary;  /* argv[0] without its directory, for the summary */
    const char *only;    /* TEST_ONLY filter, or NULL */
    int verbose;         /* TEST_VERBOSE: 1 prints passing cases too, 2 also
                            names each case before it runs (so a crash is
                            pinned on the case that was running) */
    bool quick;          /* TEST_QUICK or Valgrind: scale op counts down */
    uint64_t seed;       /* the run seed, printed and replayable */
    uint64_t rng;        /* the current case's random state */
    const char *current; /* name of the running case */
    int case_failed;     /* checks failed in the current case */
    bool case_skipped;
    int passed, failed, skipped; /* counts of cases */
    int matched;                 /* cases that TEST_ONLY let run */
} T;

/* FNV-1a over a name: mixes the case name into its seed. */
static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211u;
    }
    return h;
}

void test_init(int argc, char **argv)
{
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    T.binary = slash ? slash + 1 : argv[0];
    T.only = getenv("TEST_ONLY");
    const char *v = getenv("TEST_VERBOSE");
    T.verbose = v == NULL || *v == '\0' || strcmp(v, "0") == 0 ? 0
                : strcmp(v, "2") == 0                          ? 2
                                                               : 1;
    T.quick = getenv("TEST_QUICK") != NULL;
#ifdef TEST_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND)
        T.quick = true;
#endif
    const char *s = getenv("TEST_SEED");
    if (s && *s) {
        T.seed = strtoull(s, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        T.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                 ((uint64_t)getpid() << 40);
    }
    printf("%s: seed 0x%016" PRIx64 " (replay with TEST_SEED=0x%016" PRIx64
           ")%s\n",
           T.binary, T.seed, T.seed, T.quick ? ", quick mode" : "");
    fflush(stdout);
}

int test_finish(void)
{
    /* A filter that selects nothing is a mistake (a misspelt name, or a case
     * that was renamed), not a clean run: say so and fail. */
    if (T.only != NULL && T.matched == 0) {
        printf("%s: TEST_ONLY=%s matches no test case\n", T.binary, T.only);
        T.failed++;
    }
    printf("%s: %d passed, %d failed, %d skipped\n", T.binary, T.passed,
           T.failed, T.skipped);
    fflush(stdout);
    return T.failed ? 1 : 0;
}

void test_run(const char *name, void (*fn)(void))
{
    if (T.only && !strstr(name, T.only))
        return;
    T.matched++;
    if (T.verbose == 2) {
        printf("run  %s\n", name);
        fflush(stdout);
    }
    T.current = name;
    T.case_failed = 0;
    T.case_skipped = false;
    T.rng = T.seed ^ hash_name(name);
    fn();
    if (T.case_failed) {
        T.failed++;
        printf("FAIL %s (%d failed check%s)\n", name, T.case_failed,
               T.case_failed == 1 ? "" : "s");
    } else if (T.case_skipped) {
        T.skipped++;
    } else {
        T.passed++;
        if (T.verbose)
            printf("ok   %s\n", name);
    }
    fflush(stdout);
    T.current = NULL;
}

void test_skip(const char *reason)
{
    T.case_skipped = true;
    printf("skip %s: %s\n", T.current ? T.current : "?", reason);
}

uint64_t test_seed(void)
{
    return T.seed;
}

/* splitmix64: small, fast, and good enough to drive random workloads. */
uint64_t test_rand(void)
{
    uint64_t z = (T.rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

size_t test_rand_range(size_t lo, size_t hi)
{
    if (hi <= lo)
        return lo;
    if (hi - lo == SIZE_MAX) /* every value: the span would wrap to 0 */
        return (size_t)test_rand();
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (size_t)(test_rand() % span);
}

size_t test_scale(size_t n)
{
    if (!T.quick)
        return n;
    return n >= 10 ? n / 10 : 1;
}

static void fail_header(const char *file, int line, const char *expr)
{
    T.case_failed++;
    printf("  %s:%d: %s: check failed: %s\n", file, line,
           T.current ? T.current : "?", expr);
}

bool test_check(bool ok, const char *file, int line, const char *expr)
{
    if (!ok) {
        fail_header(file, line, expr);
        fflush(stdout);
    }
    return ok;
}

bool test_check_u(enum test_op op, uintmax_t a, uintmax_t b, const char *file,
                  int line, const char *expr)
{
    bool ok = op == TEST_EQ   ? a == b
              : op == TEST_NE ? a != b
              : op == TEST_LT ? a < b
              : op == TEST_LE ? a <= b
                              : a >= b;
    if (!ok) {
        fail_header(file, line, expr);
        printf("    left  = %ju (0x%jx)\n    right = %ju (0x%jx)\n", a, a, b,
               b);
        fflush(stdout);
    }
    return ok;
}

bool test_check_i(intmax_t a, intmax_t b, const char *file, int line,
                  const char *expr)
{
    bool ok = a == b;
    if (!ok) {
        fail_header(file, line, expr);
        printf("    left  = %jd\n    right = %jd\n", a, b);
        fflush(stdout);
    }
    return ok;
}

bool test_check_p(bool want_equal, const void *a, const void *b,
                  const char *file, int line, const char *expr)
{
    bool ok = (a == b) == want_equal;
    if (!ok) {
        fail_header(file, line, expr);
        printf("    left  = %p\n    right = %p\n", a, b);
        fflush(stdout);
    }
    return ok;
}

bool test_aborts_with(void (*fn)(void *), void *arg, const char *expect)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("test_aborts_with: pipe");
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("test_aborts_with: fork");
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        /* Child: stderr into the pipe, run the misuse, and if it returns
         * (nothing was reported) exit normally so the parent sees that. */
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    bool said = strstr(buf, expect) != NULL;
    if (!aborted || !said || T.verbose) {
        char how[64];
        if (aborted)
            snprintf(how, sizeof how, "aborted");
        else if (WIFSIGNALED(status))
            snprintf(how, sizeof how, "did not abort: killed by signal %d (%s)",
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
            snprintf(how, sizeof how, "did not abort: exited with status %d",
                     WEXITSTATUS(status));
        printf("    child %s; its stderr: %s", how, len ? buf : "(nothing)\n");
        if (len && buf[len - 1] != '\n')
            printf("\n");
    }
    return aborted && said;
}

/* Exit status of a child of test_child_fails whose own run counted a
 * failure; distinct from 1 (ASan, UBSan, exit(1)) and from the Valgrind
 * error exit code of our make rules (99). */
#define TEST_CHILD_FAILED 42

/* Reads a pipe to its end, keeping the first cap - 1 bytes (NUL-ended). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char sink[4096];
    for (;;) {
        char *to = len < cap - 1 ? buf + len : sink;
        size_t room = len < cap - 1 ? cap - 1 - len : sizeof sink;
        ssize_t n = read(fd, to, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (to != sink)
            len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

bool test_child_fails(void (*fn)(void *), void *arg, const char *expect)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("test_child_fails: pipe");
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("test_child_fails: fork");
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        /* Child: a fresh run of its own, both streams into the pipe. The
         * parent's current case stays the parent's: the child's cases
         * overwrite T.current, and the child never returns to it. */
        close(fds[0]);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        T.only = NULL;
        T.passed = T.failed = T.skipped = 0;
        fn(arg);
        int failed = test_finish();
        fflush(NULL);
        _exit(failed ? TEST_CHILD_FAILED : 0);
    }
    close(fds[1]);
    static char out[64 * 1024];
    size_t len = read_all(fds[0], out, sizeof out);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    bool failed = WIFEXITED(status) && WEXITSTATUS(status) == TEST_CHILD_FAILED;
    bool said = expect == NULL || strstr(out, expect) != NULL;
    if (!failed || !said || T.verbose) {
        if (WIFSIGNALED(status))
            printf("    child killed by signal %d", WTERMSIG(status));
        else if (WEXITSTATUS(status) == 0)
            printf("    child passed (it was expected to fail)");
        else if (!failed)
            printf("    child exited with status %d, not the harness's %d (a "
                   "memory tool's error exit code?)",
                   WEXITSTATUS(status), TEST_CHILD_FAILED);
        else
            printf("    child failed");
        if (expect != NULL)
            printf("; \"%s\" %s its output", expect,
                   said ? "is in" : "is NOT in");
        printf(":\n");
        /* Its output, indented, so that it does not look like our own. */
        for (const char *line = out; line < out + len;) {
            const char *nl = memchr(line, '\n', (size_t)(out + len - line));
            int n = (int)(nl ? nl - line : out + len - line);
            printf("    | %.*s\n", n, line);
            line += n + 1;
        }
    }
    fflush(stdout);
    return failed && said;
}
