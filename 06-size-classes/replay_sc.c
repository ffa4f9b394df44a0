/*
 * replay_sc.c: every committed trace replayed on a size-class heap and on
 * the system malloc, side by side, with each one's own count of its
 * footprint: for the heap, the pages of its spans in use, its free pages
 * not yet given back and the metadata it has written (sc_footprint); for
 * glibc, mallinfo2 (see common/trace.h). `make bench-06` runs it after the
 * bench cases; common/mallocbench then replays the same traces on every
 * malloc with the footprint as resident memory.
 *
 *   build/release/replay_sc [--reps N] [--csv PATH] TRACE.rep...
 *
 * Every replay runs in a child process of its own, so that what one replay
 * leaves in glibc's arena does not count in the next (stage 04 measured
 * the pairs trace at 26% in one process and 72% in another). The CSV has
 * one row per trace and allocator:
 *   stage,trace,allocator,ops,peak_live,peak_footprint,utilization,
 *   footprint_source,seconds,ops_per_sec
 */
#include "sc.h"
#include "trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* trace_replay() in a forked child, its result back through a pipe
 * (trace_result is plain data; footprint_source points into this same
 * program image). What trace_replay returned, or -1 if the child died. */
static int replay_isolated(const trace_t *t, const trace_alloc *a,
                           const trace_options *opt, trace_result *r)
{
    int fds[2];
    if (pipe(fds) != 0)
        return trace_replay(t, a, opt, r);
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

static void *heap_new(void)
{
    sc_heap *h = malloc(sizeof *h);
    if (h != NULL)
        sc_init(h);
    return h;
}
static void heap_end(void *h)
{
    sc_destroy(h);
    free(h);
}
static void *h_alloc(void *h, size_t n)
{
    return sc_alloc(h, n);
}
static void h_free(void *h, void *p)
{
    sc_free(h, p);
}
static void *h_realloc(void *h, void *p, size_t n)
{
    return sc_realloc(h, p, n);
}
static size_t h_footprint(void *h)
{
    return sc_footprint(h);
}
static bool h_check(void *h)
{
    return sc_check(h);
}

enum { NALLOC = 2 };

int main(int argc, char **argv)
{
    trace_alloc all[NALLOC] = {
        {
            .name = "06-size-classes",
            .create = heap_new,
            .destroy = heap_end,
            .alloc = h_alloc,
            .free = h_free,
            .realloc = h_realloc,
            .footprint = h_footprint,
            .check = h_check,
            .align = SC_MIN_ALIGN,
        },
        trace_system_malloc,
    };
    all[1].name = "system";

    unsigned reps = 5;
    const char *csv_path = NULL;
    int first_trace = argc;
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
        return 2;
    }
    FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
    if (csv_path != NULL && csv == NULL) {
        perror(csv_path);
        return 1;
    }
    if (csv != NULL)
        fprintf(csv, "stage,trace,allocator,ops,peak_live,peak_footprint,"
                     "utilization,footprint_source,seconds,ops_per_sec\n");

    printf("\n== 06-size-classes trace replays, each allocator's own count: "
           "utilization (peak live / peak footprint) and Mops/s (median of "
           "%u)\n",
           reps);
    printf("%-24s %6s", "trace", "ops");
    for (int a = 0; a < NALLOC; a++)
        printf(" | %-15s", all[a].name);
    printf("\n");
    double util_sum[NALLOC] = {0}, rate_sum[NALLOC] = {0};
    int ntraces = 0, failures = 0;
    for (int i = first_trace; i < argc; i++) {
        trace_t t;
        if (trace_read(argv[i], &t) != 0) {
            failures++;
            continue;
        }
        printf("%-24s %6zu", t.name, t.num_ops);
        for (int a = 0; a < NALLOC; a++) {
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
                fprintf(csv,
                        "06-size-classes,%s,%s,%zu,%zu,%zu,%.4f,%s,%.6f,%.0f\n",
                        t.name, all[a].name, t.num_ops, r.peak_live,
                        r.peak_footprint, r.utilization, r.footprint_source,
                        r.seconds, r.ops_per_sec);
        }
        printf("\n");
        ntraces++;
        trace_free(&t);
    }
    if (ntraces > 0) {
        printf("%-31s", "average");
        for (int a = 0; a < NALLOC; a++)
            printf(" | %5.1f%% %8.2f", 100.0 * util_sum[a] / ntraces,
                   rate_sum[a] / ntraces / 1e6);
        printf("\n");
    }
    if (csv != NULL) {
        fclose(csv);
        printf("CSV: %s\n", csv_path);
    }
    printf("replay_sc: %d traces, %d failures\n", ntraces, failures);
    return failures ? 1 : 0;
}
