/*
 * common/selftest/test_tracer.c: the allocation tracer (common/tracer/)
 * tested from the outside. A program whose allocations are known,
 * tracer_probe, is recorded with common/tracer/record.sh, and its trace
 * is read back and searched for what the probe did.
 *
 * What is proved, case by case:
 *   - the probe's trace reads back (trace_read validates it: every free and
 *     realloc names a live id, every alloc an id that is not live, ...), its
 *     header agrees with its ops (peak live payload, ids, ops, derived here
 *     independently of record.sh), and the probe ran to the end;
 *   - the probe's calls appear in the probe's order with the probe's sizes,
 *     as a subsequence: the loader and the C library may add ops of their
 *     own, but none of the probe's may go missing, move, or appear twice; a
 *     realloc keeps its block's id; no id is ever allocated twice;
 *   - with thousands of blocks live at once, every free is recorded, on the
 *     right id, in the probe's order;
 *   - every op of the probe's threads is there, each block's in its order;
 *   - a forked child and an exec'd child record nothing;
 *   - TRACER_MAX_OPS=N gives exactly the first N ops of the full trace;
 *   - the trace replays on the system malloc (trace_replay), to the same
 *     peak live payload;
 *   - real commands (sort, ls -l) give valid, non-empty traces that replay,
 *     and print exactly what they print without the tracer;
 *   - the checks reject traces broken the ways a tracer breaks them (a
 *     realloc dropped, a size wrong, two frees swapped, an op doubled, a
 *     realloc under a new id, frees lost or mixed up among many blocks, a
 *     thread's op lost, a child's op let in): they can fail, so their
 *     passes mean something.
 *
 * The probe runs with the tracer preloaded, so it is built plain, in no
 * flavour (build/plain/tracer_probe, see the Makefile). This checker is an
 * ordinary test in all four flavours: under Valgrind and ASan, the reading
 * and checking are watched; the recordings run in child processes (a shell,
 * record.sh, the probe) that are not.
 */
#include "test.h"
#include "trace.h"
#include "tracer_probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Paths and commands ------------------------------------------------- */

#define PATH_LEN 512

static char dir_bin[256]; /* this binary's folder: build/<flavour> */
static char dir_tmp[64];  /* scratch folder, removed at the end */

static const char *tmp_path(const char *name)
{
    static char paths[8][PATH_LEN]; /* a few live at once */
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, PATH_LEN, "%s/%s", dir_tmp, name);
    return p;
}

/* Reads up to size - 1 bytes of a file into buf ('\0'-ended); the length,
 * or 0 when the file cannot be read. */
static size_t read_text(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

/*
 * Records CMD with record.sh into tmp/NAME.rep: its stdout goes to
 * tmp/NAME.out, record.sh's and CMD's stderr to tmp/NAME.log. env holds
 * extra VAR=value words for the command ("" for none). The recording runs
 * without the make variables of the `make test` that started this test: a
 * jobserver that the child cannot reach only makes record.sh's own make
 * complain; and a minute at most (a tracer that deadlocks must fail the
 * test, not hang it). Returns whether record.sh succeeded; prints the log
 * if not.
 */
static bool record(const char *name, const char *env, const char *cmd)
{
    char rep[128], out[128], log[128], line[2048];
    snprintf(rep, sizeof rep, "%s/%s.rep", dir_tmp, name);
    snprintf(out, sizeof out, "%s/%s.out", dir_tmp, name);
    snprintf(log, sizeof log, "%s/%s.log", dir_tmp, name);
    snprintf(line, sizeof line,
             "env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL %s timeout 60 "
             "'%s/../../../tracer/record.sh' '%s' %s >'%s' 2>'%s'",
             env, dir_bin, rep, cmd, out, log);
    if (system(line) == 0)
        return true;
    static char text[4096];
    read_text(log, text, sizeof text);
    printf("    failed: %s\n    its stderr:\n%s\n", line, text);
    return false;
}

/* The probe: build/plain/tracer_probe, beside this flavour's folder. */
static const char *probe_path(void)
{
    static char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/../plain/tracer_probe", dir_bin);
    return path;
}

/* The same, quoted for the shell. */
static const char *probe_cmd(void)
{
    static char cmd[PATH_LEN + 2];
    snprintf(cmd, sizeof cmd, "'%s'", probe_path());
    return cmd;
}

/* Whether the trace file at path says the command exited with status 0
 * (record.sh writes it on its second comment line). */
static bool exited_zero(const char *path)
{
    static char text[1024];
    read_text(path, text, sizeof text);
    return strstr(text, "(exit status 0)") != NULL;
}

/* ---- The probe's trace, recorded once ------------------------------------ */

static trace_t probe;      /* the full trace; num_ops 0 until recorded */
static bool probe_tried;   /* record once, even if that failed */
static bool probe_read_ok; /* record.sh and trace_read both succeeded */

/* The probe's trace, recording it on first use; NULL (with the reason
 * printed) if it could not be recorded or read. */
static const trace_t *probe_trace(void)
{
    if (!probe_tried) {
        probe_tried = true;
        if (access(probe_path(), X_OK) != 0)
            printf("    %s is not built (make -C common/selftest "
                   "build/plain/tracer_probe)\n",
                   probe_path());
        else if (record("probe", "TRACER_MAX_OPS=0", probe_cmd()))
            probe_read_ok = trace_read(tmp_path("probe.rep"), &probe) == 0;
        if (!probe_read_ok)
            printf("    no trace of the probe to check (see above)\n");
    }
    return probe_read_ok ? &probe : NULL;
}

/* ---- The probe's calls, as the trace must show them --------------------- */

typedef struct probe_op {
    char kind;   /* 'a', 'r' or 'f', as in the trace */
    char block;  /* the probe's name for the block, 'A' .. 'Z' */
    bool pages;  /* the size is rounded up to whole pages (pvalloc) */
    size_t size; /* bytes ('a', 'r'); 0 for 'f' */
} probe_op;

/* tracer_probe.c's step 1, in its order. */
static const probe_op probe_ops[] = {
    {'a', 'A', false, PROBE_A},
    {'a', 'B', false, PROBE_B},
    {'a', 'C', false, PROBE_C_BYTES}, /* calloc: the product */
    {'r', 'A', false, PROBE_A_GROWN}, /* realloc: the same id */
    {'r', 'A', false, PROBE_A_SHRUNK},
    {'a', 'D', false, PROBE_D},       /* posix_memalign */
    {'a', 'E', false, PROBE_E},       /* aligned_alloc */
    {'a', 'F', false, PROBE_F},       /* memalign */
    {'a', 'G', false, PROBE_G},       /* valloc */
    {'f', 'B', false, 0},             /* then free(NULL): nothing */
    {'a', 'H', false, PROBE_H},       /* realloc(NULL, n) */
    {'f', 'C', false, 0},             /* realloc(C, 0) */
    {'a', 'I', false, PROBE_I_BYTES}, /* reallocarray */
    {'r', 'I', false, PROBE_I_GROWN_BYTES},
    /* then calls that fail: nothing, and A stays live under its id */
    {'a', 'K', true, PROBE_K}, /* pvalloc */
    {'f', 'E', false, 0},
    {'f', 'A', false, 0},
    {'f', 'G', false, 0},
    {'f', 'D', false, 0},
    {'f', 'I', false, 0},
    {'f', 'H', false, 0},
    {'f', 'F', false, 0},
    {'f', 'K', false, 0},
    {'a', 'X', false, PROBE_X}, /* the same address twice: */
    {'f', 'X', false, 0},
    {'a', 'Y', false, PROBE_X}, /* a new id */
    {'f', 'Y', false, 0},
};
#define NPROBE (sizeof probe_ops / sizeof probe_ops[0])

static size_t probe_op_size(const probe_op *p)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return p->pages ? (p->size + page - 1) / page * page : p->size;
}

/* Whether some 'a' or 'r' of probe_ops[] has this size. */
static bool is_probe_size(size_t size)
{
    for (size_t k = 0; k < NPROBE; k++)
        if (probe_ops[k].kind != 'f' && probe_op_size(&probe_ops[k]) == size)
            return true;
    return false;
}

/*
 * Finds probe_ops[] in ops[0..n) as a subsequence, greedily: each probe op
 * matches the first trace op after the previous match with its kind and
 * size, and ('r', 'f') the id that the block's 'a' got. pos[k] (may be
 * NULL) gets the index of probe op k. Then, so that an op recorded twice
 * or a stray op cannot hide among the others: every unmatched op must be on
 * an id that is none of the probe's blocks, with a size that is none of
 * the probe's. Returns true, or false with the first problem in why.
 */
static bool probe_match(const trace_op *ops, size_t n, size_t *pos, char *why,
                        size_t whylen)
{
    uint32_t id_of[26] = {0}; /* block 'A' + i -> its id */
    bool bound[26] = {false};
    bool *matched = calloc(n + 1, sizeof *matched);
    if (matched == NULL) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    bool ok = true;
    size_t j = 0; /* where the search for the next probe op starts */
    for (size_t k = 0; k < NPROBE && ok; k++) {
        const probe_op *want = &probe_ops[k];
        int b = want->block - 'A';
        size_t size = probe_op_size(want);
        while (j < n &&
               !(ops[j].kind == want->kind &&
                 (want->kind == 'f' || ops[j].size == size) &&
                 (want->kind == 'a' || (bound[b] && ops[j].id == id_of[b]))))
            j++;
        if (j == n) {
            snprintf(why, whylen,
                     "probe call %zu (%c, block %c, %zu bytes) is not in the "
                     "trace after the previous one",
                     k + 1, want->kind, want->block, size);
            ok = false;
            break;
        }
        if (want->kind == 'a') {
            id_of[b] = ops[j].id;
            bound[b] = true;
        }
        matched[j] = true;
        if (pos != NULL)
            pos[k] = j;
        j++;
    }
    for (size_t i = 0; i < n && ok; i++) {
        if (matched[i])
            continue;
        for (int b = 0; b < 26; b++)
            if (bound[b] && ops[i].id == id_of[b]) {
                snprintf(why, whylen,
                         "trace op %zu (%c %u %zu) is on the probe's block "
                         "%c, but the probe made no such call",
                         i + 1, ops[i].kind, (unsigned)ops[i].id, ops[i].size,
                         'A' + b);
                ok = false;
                break;
            }
        if (ok && ops[i].kind != 'f' && is_probe_size(ops[i].size)) {
            snprintf(why, whylen,
                     "trace op %zu (%c %u %zu) has a probe size but is not "
                     "one of the probe's calls",
                     i + 1, ops[i].kind, (unsigned)ops[i].id, ops[i].size);
            ok = false;
        }
    }
    free(matched);
    return ok;
}

/* 1 + the largest id in ops. */
static size_t ids_used(const trace_op *ops, size_t n)
{
    size_t ids = 0;
    for (size_t i = 0; i < n; i++)
        if (ops[i].id + (size_t)1 > ids)
            ids = ops[i].id + (size_t)1;
    return ids;
}

/* The tracer's promise: every allocation gets an id never seen before (the
 * format would allow a freed id again; this tracer never reuses one). */
static bool ids_fresh(const trace_op *ops, size_t n, char *why, size_t whylen)
{
    size_t ids = ids_used(ops, n);
    bool *seen = calloc(ids + 1, sizeof *seen);
    bool ok = seen != NULL;
    for (size_t i = 0; i < n && ok; i++) {
        if (ops[i].kind == 'a' && seen[ops[i].id]) {
            snprintf(why, whylen, "trace op %zu allocates id %u again", i + 1,
                     (unsigned)ops[i].id);
            ok = false;
        }
        seen[ops[i].id] = true;
    }
    free(seen);
    return ok;
}

/*
 * The many blocks (tracer_probe.c's step 2): the PROBE_MANY allocations of
 * PROBE_MANY_SIZE bytes, block j the j-th of them, must be freed k-th in
 * the order block (k * PROBE_MANY_STRIDE) % PROBE_MANY, each exactly once.
 */
static bool many_freed_in_order(const trace_op *ops, size_t n, char *why,
                                size_t whylen)
{
    size_t ids = ids_used(ops, n);
    size_t *block = malloc((ids + 1) * sizeof *block); /* id -> j, or none */
    if (block == NULL) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    const size_t none = SIZE_MAX;
    for (size_t i = 0; i <= ids; i++)
        block[i] = none;
    size_t allocs = 0, frees = 0;
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const trace_op *op = &ops[i];
        if (op->kind == 'a' && op->size == PROBE_MANY_SIZE) {
            block[op->id] = allocs++;
        } else if (op->kind == 'a') {
            block[op->id] = none;
        } else if (block[op->id] != none) {
            size_t want = frees * PROBE_MANY_STRIDE % PROBE_MANY;
            ok = op->kind == 'f' && allocs == PROBE_MANY &&
                 block[op->id] == want;
            if (!ok)
                snprintf(why, whylen,
                         "trace op %zu (%c %u): free number %zu of the many "
                         "blocks should be block %zu's, after all %d "
                         "allocations; it is block %zu's, after %zu",
                         i + 1, op->kind, (unsigned)op->id, frees + 1, want,
                         PROBE_MANY, block[op->id], allocs);
            block[op->id] = none;
            frees++;
        }
    }
    if (ok && (allocs != PROBE_MANY || frees != PROBE_MANY)) {
        snprintf(why, whylen,
                 "%zu blocks of %d bytes allocated and %zu "
                 "freed, not %d",
                 allocs, PROBE_MANY_SIZE, frees, PROBE_MANY);
        ok = false;
    }
    free(block);
    return ok;
}

/*
 * The threads' ops (tracer_probe.c's step 5): thread t's blocks are the
 * 'a' ops of PROBE_THREAD_SIZE + t bytes; each must be realloc'd once, to
 * PROBE_THREAD_GROWN + t, under the same id, then freed; and each thread
 * must show PROBE_THREAD_ITERS such blocks.
 */
static bool threads_complete(const trace_op *ops, size_t n, char *why,
                             size_t whylen)
{
    size_t ids = ids_used(ops, n);
    int *thread = malloc((ids + 1) * sizeof *thread); /* -1: not a thread's */
    int *step = malloc((ids + 1) * sizeof *step);     /* 1 after a, 2 after r */
    if (thread == NULL || step == NULL) {
        free(thread);
        free(step);
        snprintf(why, whylen, "out of memory");
        return false;
    }
    for (size_t i = 0; i <= ids; i++)
        thread[i] = -1;
    size_t done[PROBE_THREADS] = {0};
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const trace_op *op = &ops[i];
        int t = thread[op->id];
        if (op->kind == 'a') {
            bool mine = op->size >= PROBE_THREAD_SIZE &&
                        op->size < PROBE_THREAD_SIZE + PROBE_THREADS;
            thread[op->id] = mine ? (int)(op->size - PROBE_THREAD_SIZE) : -1;
            step[op->id] = 1;
        } else if (op->kind == 'r' && op->size >= PROBE_THREAD_GROWN &&
                   op->size < PROBE_THREAD_GROWN + PROBE_THREADS) {
            ok = t == (int)(op->size - PROBE_THREAD_GROWN) && step[op->id] == 1;
            step[op->id] = 2;
        } else if (t >= 0 && op->kind == 'r') {
            ok = false; /* a thread's block realloc'd to another size */
        } else if (t >= 0) {
            ok = step[op->id] == 2; /* freed after its realloc */
            done[t]++;
            thread[op->id] = -1;
        }
        if (!ok)
            snprintf(why, whylen,
                     "trace op %zu (%c %u %zu) is out of place "
                     "in its thread's malloc, realloc, free",
                     i + 1, op->kind, (unsigned)op->id, op->size);
    }
    for (int t = 0; t < PROBE_THREADS && ok; t++)
        if (done[t] != PROBE_THREAD_ITERS) {
            snprintf(why, whylen,
                     "thread %d: %zu blocks allocated, realloc'd "
                     "and freed, not %d",
                     t, done[t], PROBE_THREAD_ITERS);
            ok = false;
        }
    free(thread);
    free(step);
    return ok;
}

/* The children's sizes (tracer_probe.c's steps 3 and 4) must not appear. */
static bool children_absent(const trace_op *ops, size_t n, char *why,
                            size_t whylen)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].kind != 'f' && (ops[i].size == PROBE_FORK_SIZE ||
                                   ops[i].size == PROBE_EXEC_SIZE)) {
            snprintf(why, whylen, "trace op %zu (%c %u %zu) is a child's",
                     i + 1, ops[i].kind, (unsigned)ops[i].id, ops[i].size);
            return false;
        }
    return true;
}

/* The peak over the ops of the sum of live sizes (the header's first
 * number, as record.sh should have computed it). */
static size_t peak_live(const trace_op *ops, size_t n)
{
    size_t ids = ids_used(ops, n);
    size_t *size = calloc(ids + 1, sizeof *size);
    size_t live = 0, peak = 0;
    for (size_t i = 0; i < n && size != NULL; i++) {
        live -= size[ops[i].id];
        size[ops[i].id] = ops[i].kind == 'f' ? 0 : ops[i].size;
        live += size[ops[i].id];
        if (live > peak)
            peak = live;
    }
    free(size);
    return peak;
}

/* ---- The probe's trace --------------------------------------------------- */

static void test_probe_trace_is_valid_and_its_header_agrees(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL); /* trace_read refused it, or it was not recorded */
    static char out[256];
    read_text(tmp_path("probe.out"), out, sizeof out);
    CHECK(exited_zero(tmp_path("probe.rep")));
    if (!CHECK(strcmp(out, "tracer_probe: ok\n") == 0)) {
        static char log[2048];
        read_text(tmp_path("probe.log"), log, sizeof log);
        printf("    the probe's stdout:\n%s    its stderr:\n%s", out, log);
    }
    CHECK_EQ(t->heap_hint, peak_live(t->ops, t->num_ops));
    CHECK_EQ(t->num_ids, ids_used(t->ops, t->num_ops));
    CHECK_INT_EQ(t->weight, 1);
    /* Everything the probe does is there at least once. */
    CHECK_GE(t->num_ops, NPROBE + 2 * (size_t)PROBE_MANY +
                             3 * (size_t)PROBE_THREADS * PROBE_THREAD_ITERS);
}

static void test_probe_calls_appear_in_order_with_their_sizes(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    char why[TRACE_ERROR_MAX] = "";
    if (!CHECK(probe_match(t->ops, t->num_ops, NULL, why, sizeof why)))
        printf("    %s\n", why);
    if (!CHECK(ids_fresh(t->ops, t->num_ops, why, sizeof why)))
        printf("    %s\n", why);
}

static void test_many_live_blocks_are_freed_in_order(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    char why[TRACE_ERROR_MAX] = "";
    if (!CHECK(many_freed_in_order(t->ops, t->num_ops, why, sizeof why)))
        printf("    %s\n", why);
}

static void test_probe_threads_ops_are_all_there(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    char why[TRACE_ERROR_MAX] = "";
    if (!CHECK(threads_complete(t->ops, t->num_ops, why, sizeof why)))
        printf("    %s\n", why);
}

static void test_forked_and_execd_children_record_nothing(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    char why[TRACE_ERROR_MAX] = "";
    if (!CHECK(children_absent(t->ops, t->num_ops, why, sizeof why)))
        printf("    %s\n", why);
    /* The exec'd child exits 1 when it can see TRACER_OUT, and then so
     * does the probe. */
    CHECK(exited_zero(tmp_path("probe.rep")));
}

static void test_max_ops_gives_the_first_n_ops(void)
{
    const size_t n = 20; /* inside the probe's step 1: no threads yet */
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    REQUIRE(t->num_ops > n);
    char env[32];
    snprintf(env, sizeof env, "TRACER_MAX_OPS=%zu", n);
    REQUIRE(record("probe-max", env, probe_cmd()));
    trace_t cut;
    REQUIRE(trace_read(tmp_path("probe-max.rep"), &cut) == 0);
    CHECK_EQ(cut.num_ops, n);
    for (size_t i = 0; i < n && i < cut.num_ops; i++)
        if (!CHECK(cut.ops[i].kind == t->ops[i].kind &&
                   cut.ops[i].id == t->ops[i].id &&
                   cut.ops[i].size == t->ops[i].size))
            printf("    op %zu: %c %u %zu, in the full trace %c %u %zu\n",
                   i + 1, cut.ops[i].kind, (unsigned)cut.ops[i].id,
                   cut.ops[i].size, t->ops[i].kind, (unsigned)t->ops[i].id,
                   t->ops[i].size);
    trace_free(&cut);
}

static void test_probe_trace_replays_on_the_system_malloc(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    trace_result res;
    if (!CHECK_INT_EQ(trace_replay(t, &trace_system_malloc, NULL, &res), 0))
        printf("    %s\n", res.error);
    CHECK(res.ok);
    CHECK_EQ(res.peak_live, t->heap_hint);
}

/* ---- The checks can fail ------------------------------------------------- */

/* A copy of t's ops without op `drop` and with op `twice` written twice
 * (SIZE_MAX: none); *n gets the count. The caller frees it. */
static trace_op *ops_edited(const trace_t *t, size_t drop, size_t twice,
                            size_t *n)
{
    trace_op *ops = calloc(t->num_ops + 1, sizeof *ops);
    size_t m = 0;
    for (size_t i = 0; i < t->num_ops && ops != NULL; i++) {
        if (i != drop)
            ops[m++] = t->ops[i];
        if (i == twice)
            ops[m++] = t->ops[i];
    }
    *n = m;
    return ops;
}

typedef bool (*ops_check)(const trace_op *, size_t, char *, size_t);

static bool probe_match_any(const trace_op *ops, size_t n, char *why,
                            size_t whylen)
{
    return probe_match(ops, n, NULL, why, whylen);
}

/* Checks that `check` rejects ops, with a reason containing `expect`. */
static void expect_rejected(ops_check check, trace_op *ops, size_t n,
                            const char *what, const char *expect)
{
    char why[TRACE_ERROR_MAX] = "";
    if (ops == NULL) {
        CHECK(!"out of memory for an edited copy of the trace");
        return;
    }
    bool passed = check(ops, n, why, sizeof why);
    if (!CHECK(!passed && strstr(why, expect) != NULL))
        printf("    %s: %s (wanted a reason with \"%s\")\n", what,
               passed ? "accepted" : why, expect);
    free(ops);
}

static void test_checks_reject_broken_traces(void)
{
    const trace_t *t = probe_trace();
    REQUIRE(t != NULL);
    size_t pos[NPROBE] = {0}, n = 0;
    char why[TRACE_ERROR_MAX] = "";
    REQUIRE(probe_match(t->ops, t->num_ops, pos, why, sizeof why));
    const size_t grow = 3, calloc_op = 2, free_e = 15, free_a = 16;
    REQUIRE(probe_ops[grow].kind == 'r' && probe_ops[calloc_op].block == 'C');
    REQUIRE(probe_ops[free_e].block == 'E' && probe_ops[free_a].block == 'A');

    /* A realloc not recorded. */
    trace_op *ops = ops_edited(t, pos[grow], SIZE_MAX, &n);
    expect_rejected(probe_match_any, ops, n, "realloc dropped",
                    "is not in the trace");
    /* calloc recorded with the element size, not the product. */
    ops = ops_edited(t, SIZE_MAX, SIZE_MAX, &n);
    if (ops != NULL)
        ops[pos[calloc_op]].size = PROBE_C_SIZE;
    expect_rejected(probe_match_any, ops, n, "calloc's size",
                    "is not in the trace");
    /* Two frees in the wrong order. */
    ops = ops_edited(t, SIZE_MAX, SIZE_MAX, &n);
    if (ops != NULL) {
        trace_op e = ops[pos[free_e]];
        ops[pos[free_e]] = ops[pos[free_a]];
        ops[pos[free_a]] = e;
    }
    expect_rejected(probe_match_any, ops, n, "frees swapped",
                    "is not in the trace");
    /* One realloc recorded twice. */
    ops = ops_edited(t, SIZE_MAX, pos[grow], &n);
    expect_rejected(probe_match_any, ops, n, "realloc doubled",
                    "the probe made no such call");
    /* A realloc filed under a new id (as a new block would be). */
    ops = ops_edited(t, SIZE_MAX, SIZE_MAX, &n);
    if (ops != NULL)
        ops[pos[grow]].id = (uint32_t)t->num_ids;
    expect_rejected(probe_match_any, ops, n, "realloc under a new id",
                    "is not in the trace");
    /* The second of the same-address blocks under the first one's id
     * (a valid trace, but not this tracer's promise). */
    ops = ops_edited(t, SIZE_MAX, SIZE_MAX, &n);
    if (ops != NULL) {
        ops[pos[NPROBE - 2]].id = ops[pos[NPROBE - 4]].id;
        ops[pos[NPROBE - 1]].id = ops[pos[NPROBE - 4]].id;
    }
    expect_rejected(ids_fresh, ops, n, "an id allocated twice", "allocates id");
    /* Among the many blocks: the first free lost, the first two swapped.
     * The probe frees them right after the last allocation. */
    size_t last_a = 0;
    for (size_t i = 0; i < t->num_ops; i++)
        if (t->ops[i].kind == 'a' && t->ops[i].size == PROBE_MANY_SIZE)
            last_a = i;
    REQUIRE(last_a + 2 < t->num_ops && t->ops[last_a + 1].kind == 'f' &&
            t->ops[last_a + 2].kind == 'f');
    ops = ops_edited(t, last_a + 1, SIZE_MAX, &n);
    expect_rejected(many_freed_in_order, ops, n, "a free lost", "should be");
    ops = ops_edited(t, SIZE_MAX, SIZE_MAX, &n);
    if (ops != NULL) {
        trace_op first = ops[last_a + 1];
        ops[last_a + 1] = ops[last_a + 2];
        ops[last_a + 2] = first;
    }
    expect_rejected(many_freed_in_order, ops, n, "two frees swapped",
                    "should be");
    /* One thread's realloc lost, then one thread's free lost. */
    size_t thread_r = 0, thread_f = 0;
    for (size_t i = 0; i < t->num_ops; i++)
        if (t->ops[i].kind == 'r' && t->ops[i].size == PROBE_THREAD_GROWN) {
            thread_r = i;
            break;
        }
    for (size_t i = thread_r; i < t->num_ops; i++)
        if (t->ops[i].kind == 'f' && t->ops[i].id == t->ops[thread_r].id) {
            thread_f = i;
            break;
        }
    REQUIRE(thread_r > 0 && thread_f > thread_r);
    ops = ops_edited(t, thread_r, SIZE_MAX, &n);
    expect_rejected(threads_complete, ops, n, "a thread's realloc dropped",
                    "out of place");
    ops = ops_edited(t, thread_f, SIZE_MAX, &n);
    expect_rejected(threads_complete, ops, n, "a thread's free dropped",
                    "blocks allocated");
    /* A forked child's allocation let in. */
    ops = ops_edited(t, SIZE_MAX, SIZE_MAX, &n);
    if (ops != NULL)
        ops[pos[0]].size = PROBE_FORK_SIZE;
    expect_rejected(children_absent, ops, n, "a child's op", "a child's");
}

/* ---- Real commands ------------------------------------------------------ */

/*
 * Runs cmd (shell words, run with LC_ALL=C) plainly and under record.sh as
 * tmp/NAME: the output must be the same byte for byte, the trace valid,
 * with allocations in it, its header agreeing with its ops, and it must
 * replay on the system malloc.
 */
static void check_real_command(const char *name, const char *cmd)
{
    char line[2 * PATH_LEN], plain_out[PATH_LEN];
    snprintf(plain_out, sizeof plain_out, "%s/%s-plain.out", dir_tmp, name);
    snprintf(line, sizeof line, "LC_ALL=C %s >'%s'", cmd, plain_out);
    REQUIRE(system(line) == 0);
    REQUIRE(record(name, "LC_ALL=C TRACER_MAX_OPS=0", cmd));

    static char plain[256 * 1024], traced[256 * 1024];
    char path[PATH_LEN];
    size_t n_plain = read_text(plain_out, plain, sizeof plain);
    snprintf(path, sizeof path, "%s/%s.out", dir_tmp, name);
    size_t n_traced = read_text(path, traced, sizeof traced);
    CHECK_LT(0, n_plain);
    CHECK_EQ(n_traced, n_plain);
    CHECK(memcmp(plain, traced, n_plain < n_traced ? n_plain : n_traced) == 0);

    trace_t t;
    snprintf(path, sizeof path, "%s/%s.rep", dir_tmp, name);
    CHECK(exited_zero(path));
    REQUIRE(trace_read(path, &t) == 0);
    size_t allocs = 0;
    for (size_t i = 0; i < t.num_ops; i++)
        allocs += t.ops[i].kind == 'a';
    CHECK_LT(0, allocs);
    CHECK_EQ(t.heap_hint, peak_live(t.ops, t.num_ops));
    CHECK_EQ(t.num_ids, ids_used(t.ops, t.num_ops));
    trace_result res;
    if (!CHECK_INT_EQ(trace_replay(&t, &trace_system_malloc, NULL, &res), 0))
        printf("    %s\n", res.error);
    CHECK_EQ(res.peak_live, t.heap_hint);
    printf("    %s: %zu ops, %zu ids, peak live %zu bytes\n", cmd, t.num_ops,
           t.num_ids, t.heap_hint);
    trace_free(&t);
}

static void test_sort_trace_is_valid_and_output_unchanged(void)
{
    /* A file of lines to sort, from the run's seed. */
    const char *in = tmp_path("lines.txt");
    FILE *f = fopen(in, "w");
    REQUIRE(f != NULL);
    size_t lines = test_scale(3000);
    for (size_t i = 0; i < lines; i++)
        fprintf(f, "%zu %c%c%c\n", test_rand_range(0, 999999),
                (char)test_rand_range('a', 'z'),
                (char)test_rand_range('a', 'z'),
                (char)test_rand_range('a', 'z'));
    fclose(f);
    char cmd[PATH_LEN];
    snprintf(cmd, sizeof cmd, "sort -k2 '%s'", in);
    check_real_command("sort", cmd);
}

/* Many small names, and the user and group lookups of -l. */
static void test_ls_trace_is_valid_and_output_unchanged(void)
{
    check_real_command("ls", "ls -l /usr/include");
}

/* ---- Scratch folder ------------------------------------------------------ */

static void remove_scratch(void)
{
    static const char *names[] = {
        "probe.rep",     "probe.out",     "probe.log", "probe-max.rep",
        "probe-max.out", "probe-max.log", "lines.txt", "sort-plain.out",
        "sort.rep",      "sort.out",      "sort.log",  "ls-plain.out",
        "ls.rep",        "ls.out",        "ls.log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        remove(tmp_path(names[i]));
    rmdir(dir_tmp);
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    snprintf(dir_bin, sizeof dir_bin, "%s", argv[0]);
    char *slash = strrchr(dir_bin, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir_bin, sizeof dir_bin, ".");
    snprintf(dir_tmp, sizeof dir_tmp, "/tmp/test_tracer.XXXXXX");
    if (mkdtemp(dir_tmp) == NULL) {
        perror("test_tracer: mkdtemp");
        return 1;
    }

    RUN_TEST(test_probe_trace_is_valid_and_its_header_agrees);
    RUN_TEST(test_probe_calls_appear_in_order_with_their_sizes);
    RUN_TEST(test_many_live_blocks_are_freed_in_order);
    RUN_TEST(test_probe_threads_ops_are_all_there);
    RUN_TEST(test_forked_and_execd_children_record_nothing);
    RUN_TEST(test_max_ops_gives_the_first_n_ops);
    RUN_TEST(test_probe_trace_replays_on_the_system_malloc);
    RUN_TEST(test_checks_reject_broken_traces);
    RUN_TEST(test_sort_trace_is_valid_and_output_unchanged);
    RUN_TEST(test_ls_trace_is_valid_and_output_unchanged);

    trace_free(&probe);
    remove_scratch();
    return test_finish();
}
