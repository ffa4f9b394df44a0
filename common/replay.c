/*
 * common/replay.c: a trace replay in a process of its own. See replay.h.
 */
#include "replay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
    size_t put = 0;
    while (put < len) {
        ssize_t n = write(fd, (const char *)buf + put, len - put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        put += (size_t)n;
    }
    return 0;
}

static void fail_result(trace_result *r, const char *what, int status)
{
    memset(r, 0, sizeof *r);
    snprintf(r->error, sizeof r->error, "%s (child status %d)", what, status);
}

/* Waits for pid; true when it exited with 0. */
static bool reap(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

int replay_isolated(const trace_t *t, const trace_alloc *a,
                    const trace_options *opt, trace_result *r)
{
    int fds[2];
    if (pipe(fds) != 0)
        return trace_replay(t, a, opt, r); /* no pipe: in this process */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return trace_replay(t, a, opt, r);
    }
    if (pid == 0) {
        close(fds[0]);
        trace_result mine;
        memset(&mine, 0, sizeof mine);
        int rc = trace_replay(t, a, opt, &mine);
        _exit(write_all(fds[1], &mine, sizeof mine) == 0 ? (rc == 0 ? 0 : 1)
                                                         : 2);
    }
    close(fds[1]);
    int got = read_all(fds[0], r, sizeof *r);
    close(fds[0]);
    int status = 0;
    bool ok = reap(pid, &status);
    if (got != 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 2) {
        fail_result(r, "replay child died", status);
        return -1;
    }
    return ok ? 0 : -1;
}
