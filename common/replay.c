/*
 * common/replay.c: replay_main, a stage's trace replays side by side with
 * the malloc it runs on. See replay.h.
 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPLAY_MAX_ALLOCS 16

/*
 * trace_replay() in a forked child, its result sent back through a pipe.
 * trace_result is plain data (footprint_source points at a string constant
 * of this same program image, valid in the parent too). Returns what
 * trace_replay returned, or -1 with r->error set if the child died.
 */
static int replay_isolated(const trace_t *t, const trace_alloc *a,
                           const trace_options *opt, trace_result *r)
{
    int fds[2];
    if (pipe(fds) != 0)
        return trace_replay(t, a, opt, r); /* no pipe: replay in process */
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
        ssize_t n = write(fds[1], &mine, sizeof mine);
        _exit(n == (ssize_t)sizeof mine ? (rc == 0 ? 0 : 1) : 2);
    }
    close(fds[1]);
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(fds[0], (char *)r + got, sizeof *r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof *r || !WIFEXITED(status) || WEXITSTATUS(status) == 2) {
        memset(r, 0, sizeof *r);
        snprintf(r->error, sizeof r->error, "replay child died (status %d)",
                 status);
        return -1;
    }
    return WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--reps N] [--csv PATH] [--append] [--only "
            "stage|system] [--label NAME] [--align N] [--rss] TRACE.rep...\n",
            prog);
    return 2;
}

int replay_main(int argc, char **argv, const char *stage,
                const trace_alloc *allocs, size_t nallocs)
{
    unsigned reps = 5;
    const char *csv_path = NULL, *only = NULL, *label = "system";
    bool append = false, rss = false;
    size_t align = 0; /* the system side's: trace_system_malloc's */
    int first_trace = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
            csv_path = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
            label = argv[++i];
        else if (strcmp(argv[i], "--append") == 0)
            append = true;
        else if (strcmp(argv[i], "--rss") == 0)
            rss = true;
        else if (strcmp(argv[i], "--align") == 0 && i + 1 < argc)
            align = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strncmp(argv[i], "--", 2) == 0)
            return usage(argv[0]);
        else {
            first_trace = i;
            break;
        }
    }
    if (first_trace >= argc || nallocs > REPLAY_MAX_ALLOCS - 1 ||
        (only != NULL && strcmp(only, "stage") != 0 &&
         strcmp(only, "system") != 0))
        return usage(argv[0]);

    /* The allocators that run: the stage's, then the system malloc. */
    trace_alloc all[REPLAY_MAX_ALLOCS];
    size_t n = 0;
    if (only == NULL || strcmp(only, "stage") == 0)
        for (size_t i = 0; i < nallocs; i++)
            all[n++] = allocs[i];
    if (only == NULL || strcmp(only, "system") == 0) {
        all[n] = trace_system_malloc;
        all[n].name = label;
        if (align != 0)
            all[n].align = align;
        n++;
    }

    FILE *csv = csv_path ? fopen(csv_path, append ? "a" : "w") : NULL;
    if (csv_path != NULL && csv == NULL) {
        perror(csv_path);
        return 1;
    }
    if (csv != NULL && !append)
        fprintf(csv, "stage,trace,allocator,ops,peak_live,peak_footprint,"
                     "utilization,footprint_source,seconds,ops_per_sec\n");

    printf("\n== %s trace replays: utilization (peak live / peak footprint, "
           "footprint %s) and Mops/s (median of %u)\n",
           stage,
           rss ? "as resident memory for all"
               : "as each allocator's own count, glibc's mallinfo2",
           reps);
    printf("%-24s %6s", "trace", "ops");
    for (size_t a = 0; a < n; a++)
        printf(" | %-15.15s", all[a].name);
    printf("\n");
    double util_sum[REPLAY_MAX_ALLOCS] = {0}, rate_sum[REPLAY_MAX_ALLOCS] = {0};
    int ntraces = 0, failures = 0;
    for (int i = first_trace; i < argc; i++) {
        trace_t t;
        if (trace_read(argv[i], &t) != 0) {
            failures++;
            continue;
        }
        printf("%-24s %6zu", t.name, t.num_ops);
        for (size_t a = 0; a < n; a++) {
            trace_options opt = {.check_each_op = false,
                                 .timing_reps = reps,
                                 .footprint_rss = rss};
            trace_result r;
            if (replay_isolated(&t, &all[a], &opt, &r) != 0) {
                printf(" | FAILED: %s", r.error);
                failures++;
                continue;
            }
            printf(" | %5.1f%% %7.2f", 100.0 * r.utilization,
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
        fflush(stdout);
        ntraces++;
        trace_free(&t);
    }
    if (ntraces > 0) {
        printf("%-31s", "average");
        for (size_t a = 0; a < n; a++)
            printf(" | %5.1f%% %7.2f", 100.0 * util_sum[a] / ntraces,
                   rate_sum[a] / ntraces / 1e6);
        printf("\n");
    }
    if (csv != NULL) {
        fclose(csv);
        printf("CSV: %s\n", csv_path);
    }
    printf("%s replay: %d traces, %d failures\n", stage, ntraces, failures);
    return failures ? 1 : 0;
}
