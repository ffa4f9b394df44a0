/*
 * common/replay.c: a trace replay in a process of its own. See replay.h.
 */
#include "replay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

int replay_bench(int argc, char **argv, const char *stage,
                 const trace_alloc *all, int n, int *ntraces)
{
    unsigned reps = 5;
    const char *csv_path = NULL;
    int first_trace = argc;
    *ntraces = 0;
    if (n > REPLAY_MAX_ALLOCATORS)
        n = REPLAY_MAX_ALLOCATORS;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc) {
            csv_path = argv[++i];
        } else {
            first_trace = i;
            break;
        }
    }
    if (first_trace >= argc) {
        fprintf(stderr, "usage: %s [--reps N] [--csv PATH] TRACE.rep...\n",
                argv[0]);
        return -1;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv_path != NULL && csv == NULL) {
        perror(csv_path);
        return -1;
    }
    if (csv != NULL)
        fprintf(csv, "stage,trace,allocator,ops,peak_live,peak_footprint,"
                     "utilization,footprint_source,seconds,ops_per_sec\n");

    printf("\n== %s trace replays, each allocator's own count: utilization "
           "(peak live / peak footprint) and Mops/s (median of %u)\n",
           stage, reps);
    printf("%-24s %6s", "trace", "ops");
    for (int a = 0; a < n; a++)
        printf(" | %-15s", all[a].name);
    printf("\n");
    double util_sum[REPLAY_MAX_ALLOCATORS] = {0};
    double rate_sum[REPLAY_MAX_ALLOCATORS] = {0};
    int failures = 0;
    for (int i = first_trace; i < argc; i++) {
        trace_t t;
        if (trace_read(argv[i], &t) != 0) {
            failures++;
            continue;
        }
        printf("%-24s %6zu", t.name, t.num_ops);
        for (int a = 0; a < n; a++) {
            trace_options opt = {.check_each_op = false, .timing_reps = reps};
            trace_result r;
            if (replay_isolated(&t, &all[a], &opt, &r) != 0) {
                printf(" | FAILED: %s", r.error);
                failures++;
                continue;
            }
            printf(" | %5.1f%% %8.2f", 100.0 * r.utilization,
                   r.ops_per_sec / 1e6);
            util_sum[a] += r.utilization;
            rate_sum[a] += r.ops_per_sec;
            if (csv != NULL)
                fprintf(csv, "%s,%s,%s,%zu,%zu,%zu,%.4f,%s,%.6f,%.0f\n", stage,
                        t.name, all[a].name, t.num_ops, r.peak_live,
                        r.peak_footprint, r.utilization, r.footprint_source,
                        r.seconds, r.ops_per_sec);
        }
        printf("\n");
        (*ntraces)++;
        trace_free(&t);
    }
    if (*ntraces > 0) {
        printf("%-31s", "average");
        for (int a = 0; a < n; a++)
            printf(" | %5.1f%% %8.2f", 100.0 * util_sum[a] / *ntraces,
                   rate_sum[a] / *ntraces / 1e6);
        printf("\n");
    }
    if (csv != NULL) {
        fclose(csv);
        printf("CSV: %s\n", csv_path);
    }
    return failures;
}
