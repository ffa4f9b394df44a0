/*
 * common/selftest/test_trace.c: the trace toolkit tests itself.
 *
 * What is proved, case by case:
 *   - a written trace reads back op for op; comments and blank lines are
 *     skipped; every kind of malformed file is refused with "file:line:"
 *     and the right reason;
 *   - a replay on the system malloc keeps every payload intact, and its
 *     peak live payload and utilization agree with values derived here from
 *     the ops, independently of trace.c;
 *   - a replay catches broken allocators (overlapping blocks, a realloc
 *     that loses data, a misaligned pointer, a failing check(), a footprint
 *     below the live payload, NULL): it can fail, so its passes mean
 *     something;
 *   - the generator is deterministic per seed, its traces are valid and
 *     keep their promises (live set bound, sizes, op mix), and the
 *     pathologies produce the heap states they claim;
 *   - resident memory is read, and grows when 8 MB of fresh pages are
 *     touched;
 *   - a replay in a child of its own (replay.h) brings back the same result
 *     as one in this process, and a child that dies is reported, not taken
 *     for a result.
 */
#include "annotate.h" /* TRACK_ENABLED: is a tool replacing malloc? */
#include "replay.h"
#include "test.h"
#include "trace.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Helpers ------------------------------------------------------------ */

/* Writes text to a fresh file in /tmp; path gets its name (>= 32 bytes). */
static bool tmp_file_with(const char *text, char *path)
{
    strcpy(path, "/tmp/test_trace_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    return ok;
}

/*
 * What a trace should measure, derived here from its ops alone: the peak
 * of the sum of live requested sizes, and the peak of the sum of
 * (size + overhead) for an allocator that adds `overhead` bytes per block.
 * Also checks the ops' legality with its own live table.
 */
typedef struct walk {
    bool legal;       /* every f/r named a live id, every a a dead one */
    size_t peak_live; /* max of sum(size) over the prefixes */
    size_t peak_held; /* max of sum(size + overhead) over the prefixes */
    size_t max_live_blocks;
    size_t live_at_end;
} walk_t;

static walk_t walk_ops(const trace_t *t, size_t overhead)
{
    walk_t w = {.legal = true};
    size_t *size = calloc(t->num_ids + 1, sizeof *size);
    bool *live = calloc(t->num_ids + 1, sizeof *live);
    if (!size || !live) {
        w.legal = false;
        goto out;
    }
    size_t bytes = 0, held = 0, blocks = 0;
    for (size_t k = 0; k < t->num_ops; k++) {
        const trace_op *op = &t->ops[k];
        if (op->id >= t->num_ids || (op->kind == 'a') == live[op->id]) {
            w.legal = false;
            break;
        }
        if (op->kind != 'a') { /* f and r give the old block back */
            bytes -= size[op->id];
            held -= size[op->id] + overhead;
            blocks--;
        }
        live[op->id] = op->kind != 'f';
        if (op->kind != 'f') {
            size[op->id] = op->size;
            bytes += op->size;
            held += op->size + overhead;
            blocks++;
        }
        if (bytes > w.peak_live)
            w.peak_live = bytes;
        if (held > w.peak_held)
            w.peak_held = held;
        if (blocks > w.max_live_blocks)
            w.max_live_blocks = blocks;
    }
    w.live_at_end = blocks;
out:
    free(size);
    free(live);
    return w;
}

static bool same_ops(const trace_t *a, const trace_t *b)
{
    if (a->num_ops != b->num_ops || a->num_ids != b->num_ids)
        return false;
    for (size_t k = 0; k < a->num_ops; k++)
        if (a->ops[k].kind != b->ops[k].kind || a->ops[k].id != b->ops[k].id ||
            a->ops[k].size != b->ops[k].size)
            return false;
    return true;
}

/* A generator spec with the run's random seed and sensible defaults. */
static trace_gen spec_for(trace_mix mix, trace_size_dist dist, size_t ops)
{
    return (trace_gen){.seed = test_rand(),
                       .num_ops = ops,
                       .max_live = 40,
                       .dist = dist,
                       .lo = 16,
                       .hi = 4095,
                       .large_lo = (size_t)64 << 10,
                       .large_hi = (size_t)256 << 10,
                       .large_pct = 10,
                       .mix = mix,
                       .realloc_pct = 40};
}

/* ---- Reading and writing ------------------------------------------------ */

static void test_write_read_round_trip(void)
{
    trace_gen spec =
        spec_for(TRACE_MIX_REALLOC, TRACE_SIZE_SMALL, 2 * test_scale(1000) + 1);
    trace_t gen, back;
    REQUIRE(trace_generate(&spec, &gen) == 0);
    char path[64];
    REQUIRE(tmp_file_with("", path));
    CHECK_INT_EQ(trace_write(&gen, path, "recorded from: a test\nline two"), 0);

    char err[TRACE_ERROR_MAX] = "";
    int rc = trace_read_err(path, &back, err, sizeof err);
    if (!CHECK_INT_EQ(rc, 0))
        printf("    %s\n", err);
    CHECK_EQ(back.heap_hint, gen.heap_hint);
    CHECK_EQ(back.num_ids, gen.num_ids);
    CHECK_EQ(back.num_ops, gen.num_ops);
    CHECK_INT_EQ(back.weight, gen.weight);
    CHECK(same_ops(&gen, &back));
    /* The name is the file name: mkstemp's has no extension to drop. */
    CHECK(strcmp(back.name, strrchr(path, '/') + 1) == 0);

    /* The comment went in as '#' lines, before the header. */
    FILE *f = fopen(path, "r");
    char line[128] = "", line2[128] = "";
    if (CHECK_NOT_NULL(f)) {
        CHECK(fgets(line, sizeof line, f) != NULL);
        CHECK(fgets(line2, sizeof line2, f) != NULL);
        fclose(f);
    }
    CHECK(strcmp(line, "# recorded from: a test\n") == 0);
    CHECK(strcmp(line2, "# line two\n") == 0);
    unlink(path);
    trace_free(&gen);
    trace_free(&back);
    CHECK_NULL(back.ops);
    trace_free(&back); /* a second free of an empty trace does nothing */
}

static void test_read_skips_comments_and_blank_lines(void)
{
    char path[64];
    REQUIRE(tmp_file_with("# provenance: hand-made\n\n  100\n3\r\n"
                          "# between header lines\n4\n0\n\n"
                          "a 0 24\n\t# indented comment\n"
                          "a 2   7   \nr 0 1000\r\n\nf 2\n",
                          path));
    trace_t t;
    char err[TRACE_ERROR_MAX] = "";
    int rc = trace_read_err(path, &t, err, sizeof err);
    unlink(path);
    if (!CHECK_INT_EQ(rc, 0)) {
        printf("    %s\n", err);
        return;
    }
    CHECK_EQ(t.heap_hint, 100);
    CHECK_EQ(t.num_ids, 3);
    CHECK_EQ(t.num_ops, 4);
    CHECK_INT_EQ(t.weight, 0);
    const trace_op want[4] = {
        {'a', 0, 24}, {'a', 2, 7}, {'r', 0, 1000}, {'f', 2, 0}};
    for (size_t k = 0; k < 4 && k < t.num_ops; k++) {
        CHECK_EQ(t.ops[k].kind, want[k].kind);
        CHECK_EQ(t.ops[k].id, want[k].id);
        CHECK_EQ(t.ops[k].size, want[k].size);
    }
    trace_free(&t);
}

/* One malformed file: its text, the line to blame, and the reason. */
typedef struct bad_file {
    const char *text;
    int line;
    const char *reason;
} bad_file;

#define HDR "100\n2\n2\n1\n" /* lines 1-4: 2 ids, 2 ops */

static const bad_file bad_files[] = {
    {HDR "a 0 8\nx 0 5\n", 6, "unknown op 'x 0 5'"},
    {HDR "a 0 8\nfree 0\n", 6, "unknown op 'free 0'"},
    {HDR "a 2 8\nf 2\n", 5, "id 2 out of range (the header says 2 ids"},
    {HDR "f 0\na 0 8\n", 5, "free of id 0, which is not live"},
    {HDR "a 0 8\na 0 8\n", 6, "alloc of id 0, which is already live"},
    {HDR "r 1 8\nf 1\n", 5, "realloc of id 1, which is not live"},
    {HDR "a 0 8\nr 0 0\n", 6, "realloc of id 0 to size 0"},
    {HDR "a 0 8\na 1 8\nf 0\n", 7, "more ops than the header's 2"},
    {HDR "a 0 8\n", 5, "the header says 2 ops, the file has 1"},
    {HDR "a 0\nf 0\n", 5, "missing size"},
    {HDR "a 0 ten\nf 0\n", 5, "bad size 'ten'"},
    {HDR "a zero 8\nf 0\n", 5, "bad id 'zero 8'"},
    {HDR "a -1 8\nf 0\n", 5, "bad id '-1 8'"},
    {HDR "a 0 8 9\nf 0\n", 5, "unexpected text after the op: '9'"},
    {HDR "a 0 99999999999999999999999\nf 0\n", 5, "size too large"},
    {"a 0 8\nf 0\n", 1, "missing header: expected 4 numbers"},
    {"100\n2\n# no more header\n", 3, "missing header: expected 4 numbers"},
    {"", 1, "missing header"},
    {"100 2 2 1\na 0 8\nf 0\n", 1, "unexpected text after the heap size"},
};

static void test_read_rejects_malformed_files(void)
{
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        const bad_file *b = &bad_files[i];
        char path[64];
        REQUIRE(tmp_file_with(b->text, path));
        char err[TRACE_ERROR_MAX] = "";
        trace_t t;
        int rc = trace_read_err(path, &t, err, sizeof err);
        unlink(path);
        char where[96];
        snprintf(where, sizeof where, "%s:%d: ", path, b->line);
        bool said = strncmp(err, where, strlen(where)) == 0 &&
                    strstr(err, b->reason) != NULL;
        if (!CHECK_INT_EQ(rc, -1) || !CHECK(said))
            printf("    case %zu: got \"%s\", want \"%s%s...\"\n", i, err,
                   where, b->reason);
        CHECK_NULL(t.ops);
        CHECK_EQ(t.num_ops, 0);
    }
}

static void test_read_names_a_missing_file(void)
{
    trace_t t;
    char err[TRACE_ERROR_MAX] = "";
    CHECK_INT_EQ(trace_read_err("/nonexistent/x.rep", &t, err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/x.rep: ") == err);
    CHECK(strstr(err, strerror(ENOENT)) != NULL);
}

/* trace_read (not _err) prints its message: seen through a child. */
static void read_then_abort(void *path)
{
    trace_t t;
    if (trace_read(path, &t) != 0)
        abort();
}

static void test_read_prints_its_message(void)
{
    char path[64];
    REQUIRE(tmp_file_with(HDR "a 0 8\nf 1\n", path));
    CHECK_ABORTS(read_then_abort, path, ":6: free of id 1, which is not live");
    unlink(path);
}

static void test_write_to_a_bad_path_fails(void)
{
    trace_t t = {.num_ids = 0, .num_ops = 0};
    errno = 0;
    CHECK_INT_EQ(trace_write(&t, "/nonexistent/dir/x.rep", NULL), -1);
    CHECK_INT_EQ(errno, ENOENT);
}

/* trace_validate on two ops: a fine first one, then `second`. */
static int validate_pair(trace_op second, char *err)
{
    trace_op ops[2] = {{'a', 0, 8}, second};
    trace_t t = {.num_ids = 1, .num_ops = 2, .ops = ops};
    return trace_validate(&t, err, TRACE_ERROR_MAX);
}

static void test_validate_rejects_bad_ops(void)
{
    char err[TRACE_ERROR_MAX] = "";
    CHECK_INT_EQ(validate_pair((trace_op){'f', 0, 0}, err), 0); /* control */

    CHECK_INT_EQ(validate_pair((trace_op){'q', 0, 0}, err), -1);
    CHECK(strstr(err, "op 2: unknown op 'q'") == err);
    CHECK_INT_EQ(validate_pair((trace_op){'a', 1, 8}, err), -1);
    CHECK(strstr(err, "op 2: id 1 out of range") == err);
    CHECK_INT_EQ(validate_pair((trace_op){'a', 0, 8}, err), -1);
    CHECK(strstr(err, "op 2: alloc of id 0, which is already live") == err);
    CHECK_INT_EQ(validate_pair((trace_op){'r', 0, 0}, err), -1);
    CHECK(strstr(err, "op 2: realloc of id 0 to size 0") == err);

    trace_op ops[3] = {{'a', 0, 8}, {'f', 0, 0}, {'f', 0, 0}};
    trace_t t = {.num_ids = 1, .num_ops = 3, .ops = ops};
    CHECK_INT_EQ(trace_validate(&t, err, sizeof err), -1);
    CHECK(strcmp(err, "op 3: free of id 0, which is not live") == 0);
}

/* A trace built by hand owns malloc'd ops; trace_free gives them to free
 * (Valgrind and ASan see a leak or a bad free otherwise). */
static void test_free_of_a_hand_built_trace(void)
{
    trace_t t = {.num_ids = 1, .num_ops = 2};
    t.ops = malloc(2 * sizeof *t.ops);
    if (!t.ops) {
        CHECK_NOT_NULL(t.ops);
        return;
    }
    t.ops[0] = (trace_op){'a', 0, 8};
    t.ops[1] = (trace_op){'f', 0, 0};
    CHECK_INT_EQ(trace_validate(&t, NULL, 0), 0);
    trace_free(&t);
    CHECK_NULL(t.ops);
    CHECK_EQ(t.num_ops, 0);
}

#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
static size_t malloc_held(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.arena + mi.hblkhd;
}
#else
static size_t malloc_held(void)
{
    return 0;
}
#endif

/* A trace in memory stays out of malloc's counts (its ops[] is mmap'd), so
 * it does not show in the system malloc's footprint. */
static void test_trace_memory_is_not_malloc_memory(void)
{
    size_t before = malloc_held();
    trace_gen spec =
        spec_for(TRACE_MIX_CHURN, TRACE_SIZE_SMALL, 2 * test_scale(100000));
    trace_t t;
    REQUIRE(trace_generate(&spec, &t) == 0);
    size_t ops_bytes = t.num_ops * sizeof *t.ops;
    size_t after = malloc_held();
    CHECK_GE(t.ops_mapped, ops_bytes);
    /* The generator's own scratch (a few KB for 40 live blocks) may stay. */
    CHECK_LT(after, before + ops_bytes / 2);
    trace_free(&t);
}

/* ---- Replay on the system malloc -------------------------------------- */

/*
 * The system footprint is glibc's mallinfo2 count; under Valgrind or ASan
 * malloc is theirs and the count reads 0, so the replay must say "none"
 * there, and only there.
 */
static void check_system_footprint(const trace_result *r)
{
    if (strcmp(r->footprint_source, "mallinfo2") == 0) {
        CHECK(r->utilization > 0.0);
        CHECK(r->utilization <= 1.0);
        CHECK_GE(r->peak_footprint, r->peak_live);
    } else {
        CHECK(TRACK_ENABLED); /* a plain build must have the count */
        CHECK(strncmp(r->footprint_source, "none", 4) == 0);
        CHECK_EQ(r->peak_footprint, 0);
        CHECK(r->utilization == 0.0);
    }
}

static void test_replay_system_malloc_generated(void)
{
    static const trace_mix mixes[] = {TRACE_MIX_RAMP, TRACE_MIX_CHURN,
                                      TRACE_MIX_REALLOC};
    for (size_t m = 0; m < 3; m++) {
        trace_gen spec =
            spec_for(mixes[m], TRACE_SIZE_BIMODAL, 2 * test_scale(2000));
        trace_t t;
        REQUIRE(trace_generate(&spec, &t) == 0);
        trace_options opt = {.check_each_op = true, .timing_reps = 3};
        trace_result r;
        int rc = trace_replay(&t, &trace_system_malloc, &opt, &r);
        if (!CHECK_INT_EQ(rc, 0) || !CHECK(r.ok))
            printf("    %s: %s\n", t.name, r.error);
        walk_t w = walk_ops(&t, 0);
        CHECK(w.legal);
        CHECK_EQ(r.peak_live, w.peak_live);
        check_system_footprint(&r);
        CHECK(r.seconds > 0.0); /* the timing pass ran; no claim on speed */
        CHECK(r.ops_per_sec > 0.0);
        trace_free(&t);
    }
}

static void test_replay_without_timing_reports_no_time(void)
{
    trace_op ops[2] = {{'a', 0, 100}, {'f', 0, 0}};
    trace_t t = {.num_ids = 1, .num_ops = 2, .ops = ops};
    trace_result r;
    CHECK_INT_EQ(trace_replay(&t, &trace_system_malloc, NULL, &r), 0);
    CHECK(r.seconds == 0.0);
    CHECK(r.ops_per_sec == 0.0);
    CHECK_EQ(r.peak_live, 100);
}

/* ---- A counting allocator: malloc plus a header, with its own footprint */

#define COUNTED_HDR 16 /* bytes before each block: its size, padded */

typedef struct counted {
    size_t held;   /* bytes held: sum over live blocks of size + header */
    size_t checks; /* calls of check() */
} counted_t;

static void *counted_create(void)
{
    return calloc(1, sizeof(counted_t));
}
static void counted_destroy(void *ctx)
{
    free(ctx);
}

static void *counted_alloc(void *ctx, size_t size)
{
    unsigned char *b = malloc(COUNTED_HDR + size);
    if (!b)
        return NULL;
    memcpy(b, &size, sizeof size);
    ((counted_t *)ctx)->held += COUNTED_HDR + size;
    return b + COUNTED_HDR;
}

static void counted_free(void *ctx, void *p)
{
    if (!p)
        return;
    unsigned char *b = (unsigned char *)p - COUNTED_HDR;
    size_t size;
    memcpy(&size, b, sizeof size);
    ((counted_t *)ctx)->held -= COUNTED_HDR + size;
    free(b);
}

static size_t counted_footprint(void *ctx)
{
    return ((counted_t *)ctx)->held;
}

static bool counted_check(void *ctx)
{
    ((counted_t *)ctx)->checks++;
    return true;
}

static const trace_alloc counted_alloc_ops = {
    .name = "counted",
    .create = counted_create,
    .destroy = counted_destroy,
    .alloc = counted_alloc,
    .free = counted_free,
    /* no realloc: the replay must emulate it with alloc + copy + free */
    .footprint = counted_footprint,
    .check = counted_check,
    .align = 16,
};

static void test_replay_peak_live_matches_hand_count(void)
{
    /* Sizes drawn at random; the expected values come from walk_ops. */
    size_t s[6];
    for (size_t i = 0; i < 6; i++)
        s[i] = test_rand_range(1, 5000);
    trace_op ops[] = {
        {'a', 0, s[0]}, {'a', 1, s[1]}, {'r', 0, s[2]}, {'f', 1, 0},
        {'a', 2, s[3]}, {'r', 2, s[4]}, {'f', 0, 0},    {'a', 1, s[5]},
        {'f', 2, 0},    {'f', 1, 0},
    };
    trace_t t = {
        .num_ids = 3, .num_ops = sizeof ops / sizeof ops[0], .ops = ops};

    /* By hand, from the ops: live(k) is the running sum. */
    size_t live = 0, peak = 0;
    live += s[0]; /* a 0 */
    peak = live > peak ? live : peak;
    live += s[1]; /* a 1 */
    peak = live > peak ? live : peak;
    live = live - s[0] + s[2]; /* r 0 */
    peak = live > peak ? live : peak;
    live -= s[1]; /* f 1 */
    live += s[3]; /* a 2 */
    peak = live > peak ? live : peak;
    live = live - s[3] + s[4]; /* r 2 */
    peak = live > peak ? live : peak;
    live -= s[2]; /* f 0 */
    live += s[5]; /* a 1 */
    peak = live > peak ? live : peak;
    CHECK_EQ(walk_ops(&t, 0).peak_live, peak); /* the walker agrees */

    trace_options opt = {.check_each_op = true};
    trace_result r;
    int rc = trace_replay(&t, &counted_alloc_ops, &opt, &r);
    if (!CHECK_INT_EQ(rc, 0))
        printf("    %s\n", r.error);
    CHECK_EQ(r.peak_live, peak);
    /* The emulated realloc holds old and new at once for a moment, but the
     * footprint is sampled between ops, where it is sum(size + header). */
    size_t held = walk_ops(&t, COUNTED_HDR).peak_held;
    CHECK_EQ(r.peak_footprint, held);
    CHECK(r.utilization == (double)peak / (double)held);
    CHECK(strcmp(r.footprint_source, "allocator") == 0);
}

/* check() runs after every op when asked, and never when not. */
static size_t checks_seen;
static void counted_destroy_note(void *ctx)
{
    checks_seen = ((counted_t *)ctx)->checks;
    free(ctx);
}

static void test_replay_calls_check_after_every_op(void)
{
    trace_gen spec =
        spec_for(TRACE_MIX_CHURN, TRACE_SIZE_UNIFORM, 2 * test_scale(500));
    trace_t t;
    REQUIRE(trace_generate(&spec, &t) == 0);
    trace_alloc a = counted_alloc_ops;
    a.destroy = counted_destroy_note;
    trace_result r;
    trace_options on = {.check_each_op = true};
    checks_seen = 0;
    CHECK_INT_EQ(trace_replay(&t, &a, &on, &r), 0);
    CHECK_EQ(checks_seen, t.num_ops);
    trace_options off = {.check_each_op = false};
    checks_seen = 1;
    CHECK_INT_EQ(trace_replay(&t, &a, &off, &r), 0);
    CHECK_EQ(checks_seen, 0);
    trace_free(&t);
}

/* replay_isolated: the child's result is the one this process would get
 * (the counting allocator is deterministic), and a child killed mid-replay
 * is a failure with a reason. */
static void *dying_alloc(void *ctx, size_t n)
{
    (void)ctx;
    (void)n;
    raise(SIGKILL);
    return NULL;
}

static void test_replay_isolated_matches_and_reports_a_death(void)
{
    trace_gen spec =
        spec_for(TRACE_MIX_CHURN, TRACE_SIZE_UNIFORM, test_scale(2000));
    trace_t t;
    REQUIRE(trace_generate(&spec, &t) == 0);
    trace_options opt = {.check_each_op = true};
    trace_result here, there;
    CHECK_INT_EQ(trace_replay(&t, &counted_alloc_ops, &opt, &here), 0);
    CHECK_INT_EQ(replay_isolated(&t, &counted_alloc_ops, &opt, &there), 0);
    CHECK(there.ok);
    CHECK_EQ(there.peak_live, here.peak_live);
    CHECK_EQ(there.peak_footprint, here.peak_footprint);
    CHECK(strcmp(there.footprint_source, "allocator") == 0);

    trace_alloc dying = counted_alloc_ops;
    dying.alloc = dying_alloc;
    trace_result r;
    CHECK_INT_EQ(replay_isolated(&t, &dying, &opt, &r), -1);
    CHECK(!r.ok);
    if (!CHECK(strstr(r.error, "replay child died") != NULL))
        printf("    error: \"%s\"\n", r.error);
    trace_free(&t);
}

/* ---- Broken allocators: the replay must say what is wrong ---------------- */

/*
 * Each broken allocator is the counting one with one fault. A replay that
 * fails leaves its live blocks to destroy(), so this one keeps a list of
 * the blocks it handed out and destroy() frees what is left of them.
 */
#define BROKEN_MAX 8 /* blocks live at once: the test traces have two */

typedef struct broken {
    counted_t base;       /* first: the counted_* functions take ctx */
    int fault;            /* which fault, see the enum */
    size_t ops;           /* allocs so far, to time a fault */
    unsigned char *arena; /* the overlapping allocator's buffer */
    size_t arena_off;
    void *blocks[BROKEN_MAX]; /* counted blocks handed out, NULL = slot free */
} broken_t;

enum { F_OVERLAP, F_LOSSY_REALLOC, F_MISALIGNED, F_CHECK, F_FOOTPRINT, F_NULL };
static int broken_fault; /* set before each replay: create() reads it */

static void *broken_create(void)
{
    broken_t *b = calloc(1, sizeof *b);
    if (b) {
        b->fault = broken_fault;
        b->arena = calloc(1, 4096);
    }
    return b;
}

static void broken_destroy(void *ctx)
{
    broken_t *b = ctx;
    for (size_t i = 0; i < BROKEN_MAX; i++)
        counted_free(ctx, b->blocks[i]);
    free(b->arena);
    free(b);
}

/* A counted block, remembered for destroy(). */
static void *broken_counted(broken_t *b, size_t size)
{
    for (size_t i = 0; i < BROKEN_MAX; i++)
        if (!b->blocks[i])
            return b->blocks[i] = counted_alloc(b, size);
    return NULL;
}

static void *broken_alloc(void *ctx, size_t size)
{
    broken_t *b = ctx;
    b->ops++;
    switch (b->fault) {
    case F_OVERLAP: /* steps by half the size: each block eats the last */
        if (b->arena_off + size > 4096)
            return NULL;
        b->arena_off += size / 2;
        return b->arena + b->arena_off - size / 2;
    case F_MISALIGNED: { /* one byte past an aligned block */
        unsigned char *p = broken_counted(b, size + 1);
        return p ? p + 1 : NULL;
    }
    case F_NULL:
        return b->ops == 3 ? NULL : broken_counted(b, size);
    default:
        return broken_counted(b, size);
    }
}

static void broken_free(void *ctx, void *p)
{
    broken_t *b = ctx;
    if (!p || b->fault == F_OVERLAP)
        return; /* the arena goes with destroy */
    if (b->fault == F_MISALIGNED)
        p = (unsigned char *)p - 1;
    for (size_t i = 0; i < BROKEN_MAX; i++)
        if (b->blocks[i] == p)
            b->blocks[i] = NULL;
    counted_free(ctx, p);
}

/* Gives a fresh block of the new size, without copying the old contents. */
static void *broken_realloc(void *ctx, void *p, size_t size)
{
    void *q = broken_alloc(ctx, size);
    if (q) {
        memset(q, 0, size);
        broken_free(ctx, p);
    }
    return q;
}

static size_t broken_footprint(void *ctx)
{
    broken_t *b = ctx;
    return b->fault == F_FOOTPRINT ? 0 : b->base.held + 4096;
}

static bool broken_check(void *ctx)
{
    broken_t *b = ctx;
    return b->fault != F_CHECK || b->ops < 2; /* fails from the 2nd alloc */
}

typedef struct fault_case {
    int fault;
    bool with_realloc;
    const char *says; /* what the replay's error must contain */
} fault_case;

static void test_replay_catches_broken_allocators(void)
{
    /* a0 64, a1 64, r0 200, f1, f0: small enough to reason about. */
    trace_op ops[] = {
        {'a', 0, 64}, {'a', 1, 64}, {'r', 0, 200}, {'f', 1, 0}, {'f', 0, 0}};
    trace_t t = {.num_ids = 2, .num_ops = 5, .ops = ops};
    static const fault_case cases[] = {
        /* block 1 starts 32 bytes into block 0: r0 sees byte 32 changed */
        {F_OVERLAP, false, "op 3 (r 0 200): block "},
        {F_OVERLAP, false, "was overwritten at byte 32 before its realloc"},
        {F_LOSSY_REALLOC, true, "op 3 (r 0 200): realloc to "},
        {F_LOSSY_REALLOC, true, "lost the data at byte 0 of 64 kept"},
        {F_MISALIGNED, false, "op 1 (a 0 64): "},
        {F_MISALIGNED, false, "is not a multiple of 16"},
        {F_CHECK, false, "op 2 (a 1 64): check() found the heap broken"},
        {F_FOOTPRINT, false,
         "op 1 (a 0 64): footprint() says 0 bytes, but "
         "64 bytes of payload are live"},
        {F_NULL, false, "op 3 (r 0 200): realloc returned NULL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const fault_case *c = &cases[i];
        trace_alloc a = {.name = "broken",
                         .create = broken_create,
                         .destroy = broken_destroy,
                         .alloc = broken_alloc,
                         .free = broken_free,
                         .realloc = c->with_realloc ? broken_realloc : NULL,
                         .footprint = broken_footprint,
                         .check = broken_check,
                         .align = 16};
        broken_fault = c->fault;
        trace_options opt = {.check_each_op = true, .timing_reps = 1};
        trace_result r;
        int rc = trace_replay(&t, &a, &opt, &r);
        bool said = strstr(r.error, c->says) != NULL;
        if (!CHECK_INT_EQ(rc, -1) || !CHECK(!r.ok) || !CHECK(said))
            printf("    case %zu: got \"%s\", want \"%s\"\n", i, r.error,
                   c->says);
        CHECK(r.seconds == 0.0); /* a failed replay is not timed */
    }
}

static void test_replay_refuses_an_invalid_trace(void)
{
    trace_op ops[] = {{'a', 0, 8}, {'f', 1, 0}};
    trace_t t = {.num_ids = 2, .num_ops = 2, .ops = ops};
    trace_result r;
    CHECK_INT_EQ(trace_replay(&t, &trace_system_malloc, NULL, &r), -1);
    CHECK(!r.ok);
    CHECK(strcmp(r.error,
                 "invalid trace: op 2: free of id 1, which is not live") == 0);
}

/* ---- The generator ------------------------------------------------------ */

static const trace_mix all_mixes[] = {TRACE_MIX_RAMP, TRACE_MIX_CHURN,
                                      TRACE_MIX_REALLOC};
static const trace_size_dist all_dists[] = {
    TRACE_SIZE_UNIFORM, TRACE_SIZE_SMALL, TRACE_SIZE_FIXED, TRACE_SIZE_BIMODAL};

/* Is size one that spec's distribution can give? */
static bool size_in_spec(const trace_gen *s, size_t size)
{
    switch (s->dist) {
    case TRACE_SIZE_FIXED:
        return size == s->lo;
    case TRACE_SIZE_BIMODAL:
        return (size >= s->lo && size <= s->hi) ||
               (size >= s->large_lo && size <= s->large_hi);
    default:
        return size >= s->lo && size <= s->hi;
    }
}

static void test_generate_is_deterministic_and_valid(void)
{
    for (size_t m = 0; m < 3; m++) {
        for (size_t d = 0; d < 4; d++) {
            size_t n = 2 * test_scale(3000) + (m == 2); /* odd: realloc mix */
            trace_gen spec = spec_for(all_mixes[m], all_dists[d], n);
            trace_t a, b, c;
            REQUIRE(trace_generate(&spec, &a) == 0);
            REQUIRE(trace_generate(&spec, &b) == 0);
            CHECK(same_ops(&a, &b)); /* same seed: same trace */
            CHECK_EQ(a.heap_hint, b.heap_hint);
            spec.seed ^= 1;
            REQUIRE(trace_generate(&spec, &c) == 0);
            CHECK(!same_ops(&a, &c)); /* another seed: another trace */
            spec.seed ^= 1;

            char err[TRACE_ERROR_MAX] = "";
            if (!CHECK_INT_EQ(trace_validate(&a, err, sizeof err), 0))
                printf("    %s: %s\n", a.name, err);
            CHECK_EQ(a.num_ops, n);
            walk_t w = walk_ops(&a, 0);
            CHECK(w.legal);
            CHECK_EQ(w.live_at_end, 0);
            CHECK_LE(w.max_live_blocks, spec.max_live);
            if (all_mixes[m] == TRACE_MIX_RAMP) /* ramps reach the peak */
                CHECK_EQ(w.max_live_blocks, spec.max_live);
            CHECK_EQ(a.heap_hint, w.peak_live);
            size_t allocs = 0, reallocs = 0, off = 0;
            for (size_t k = 0; k < a.num_ops; k++) {
                const trace_op *op = &a.ops[k];
                if (op->kind == 'a')
                    CHECK_EQ(op->id, allocs++); /* fresh ids, in order */
                reallocs += op->kind == 'r';
                if (op->kind != 'f' && !size_in_spec(&spec, op->size))
                    off++;
            }
            CHECK_EQ(off, 0);
            CHECK_EQ(a.num_ids, allocs);
            if (all_mixes[m] == TRACE_MIX_REALLOC)
                CHECK_GE(reallocs * 100, n * spec.realloc_pct / 3);
            else
                CHECK_EQ(reallocs, 0);
            trace_free(&a);
            trace_free(&b);
            trace_free(&c);
        }
    }
}

/* Churn keeps the live set in [3/4 max_live, max_live] once it is there. */
static void test_generate_churn_stays_near_max_live(void)
{
    trace_gen spec =
        spec_for(TRACE_MIX_CHURN, TRACE_SIZE_UNIFORM, 2 * test_scale(5000));
    spec.max_live = 100;
    const size_t floor = spec.max_live - spec.max_live / 4;
    trace_t t;
    REQUIRE(trace_generate(&spec, &t) == 0);
    /* Walk until the closing frees: the last alloc is where they start. */
    size_t last_alloc = 0;
    for (size_t k = 0; k < t.num_ops; k++)
        if (t.ops[k].kind == 'a')
            last_alloc = k;
    size_t live = 0, low = SIZE_MAX, high = 0;
    bool there = false;
    for (size_t k = 0; k <= last_alloc; k++) {
        live += t.ops[k].kind == 'a' ? 1 : 0;
        live -= t.ops[k].kind == 'f' ? 1 : 0;
        there = there || live == floor;
        if (there && live < low)
            low = live;
        if (live > high)
            high = live;
    }
    CHECK(there);
    CHECK_GE(low, floor - 1); /* a free may dip one under, then it fills */
    CHECK_LE(high, spec.max_live);
    CHECK_LT(floor, high); /* and it does wander above the floor */
    trace_free(&t);
}

/* The small-biased sizes are log-uniform: every power-of-two class of
 * [16, 4095] (16-31, 32-63, ..., 2048-4095) comes up about 1/8 of the time,
 * where uniform sizes would put half of them in the last class. */
static void test_generate_small_sizes_are_log_uniform(void)
{
    trace_gen spec =
        spec_for(TRACE_MIX_RAMP, TRACE_SIZE_SMALL, 2 * test_scale(40000));
    spec.max_live = 1000;
    trace_t t;
    REQUIRE(trace_generate(&spec, &t) == 0);
    size_t per_class[8] = {0}, allocs = 0;
    for (size_t k = 0; k < t.num_ops; k++) {
        if (t.ops[k].kind != 'a')
            continue;
        size_t c = 0;
        while (((size_t)32 << c) <= t.ops[k].size)
            c++;
        REQUIRE(c < 8);
        per_class[c]++;
        allocs++;
    }
    for (size_t c = 0; c < 8; c++) {
        CHECK_GE(per_class[c] * 16, allocs); /* at least half of 1/8 */
        CHECK_LE(per_class[c] * 4, allocs);  /* at most twice 1/8 */
    }
    trace_free(&t);

    /* Bimodal: about large_pct percent are large. */
    spec.dist = TRACE_SIZE_BIMODAL;
    REQUIRE(trace_generate(&spec, &t) == 0);
    size_t large = 0;
    allocs = 0;
    for (size_t k = 0; k < t.num_ops; k++) {
        if (t.ops[k].kind != 'a')
            continue;
        allocs++;
        large += t.ops[k].size >= spec.large_lo;
    }
    CHECK_GE(large * 100 * 2, allocs * spec.large_pct);
    CHECK_LE(large * 100, allocs * spec.large_pct * 2);
    trace_free(&t);
}

static void test_generate_rejects_bad_specs(void)
{
    trace_gen good = spec_for(TRACE_MIX_CHURN, TRACE_SIZE_BIMODAL, 100);
    trace_gen bad[11];
    for (size_t i = 0; i < 11; i++)
        bad[i] = good;
    bad[0].lo = 0;
    bad[1].lo = bad[1].hi + 1;
    bad[2].num_ops = 101; /* odd without reallocs */
    bad[3].num_ops = 1;
    bad[4].max_live = 0;
    bad[5].large_lo = 0;
    bad[6].large_pct = 101;
    bad[7].mix = TRACE_MIX_REALLOC;
    bad[7].realloc_pct = 0;
    bad[8].dist = (trace_size_dist)99;
    bad[9].mix = (trace_mix)99;
    bad[10].dist = (trace_size_dist)-1;
    for (size_t i = 0; i < 11; i++) {
        trace_t t;
        errno = 0;
        if (!CHECK_INT_EQ(trace_generate(&bad[i], &t), -1))
            printf("    bad spec %zu accepted\n", i);
        CHECK_INT_EQ(errno, EINVAL);
        CHECK_NULL(t.ops);
    }
    trace_t t;
    CHECK_INT_EQ(trace_generate(&good, &t), 0); /* the control */
    trace_free(&t);
}

/* ---- The pathologies ---------------------------------------------------- */

static void replay_ok_on_system(const trace_t *t)
{
    trace_result r;
    if (!CHECK_INT_EQ(trace_replay(t, &trace_system_malloc, NULL, &r), 0))
        printf("    %s: %s\n", t->name, r.error);
    CHECK_EQ(r.peak_live, walk_ops(t, 0).peak_live);
    check_system_footprint(&r);
}

static void test_holes_leaves_only_useless_holes(void)
{
    size_t n = test_rand_range(2, 50);
    size_t small = test_rand_range(16, 64);
    size_t large = test_rand_range(256, 1024);
    trace_t t;
    REQUIRE(trace_gen_holes(n, small, large, &t) == 0);
    CHECK(strcmp(t.name, "holes") == 0);
    REQUIRE(walk_ops(&t, 0).legal);

    /* Phase 1: small, large, small, large ... allocated in turn. */
    for (size_t k = 0; k < 2 * n; k++) {
        CHECK_EQ(t.ops[k].kind, 'a');
        CHECK_EQ(t.ops[k].size, k % 2 ? large : small);
    }
    /* Phase 2 runs until the first alloc after a free. */
    size_t k = 2 * n;
    while (k < t.num_ops && t.ops[k].kind == 'f')
        k++;
    REQUIRE(k < t.num_ops);
    /* There: every large block is free and every small one live. */
    enum { MAX_IDS = 3 * 50 };  /* 3n ids, n <= 50 */
    size_t size[MAX_IDS] = {0}; /* by id */
    bool live[MAX_IDS] = {false};
    REQUIRE(t.num_ids <= MAX_IDS);
    for (size_t j = 0; j < k; j++) {
        live[t.ops[j].id] = t.ops[j].kind == 'a';
        if (t.ops[j].kind == 'a')
            size[t.ops[j].id] = t.ops[j].size;
    }
    size_t small_live = 0, large_freed = 0;
    for (size_t id = 0; id < t.num_ids; id++) {
        if (size[id] == small)
            small_live += live[id];
        if (size[id] == large)
            large_freed += !live[id];
    }
    CHECK_EQ(small_live, n);
    CHECK_EQ(large_freed, n);
    /* Phase 3: n requests, each bigger than any hole. */
    size_t bigger = 0;
    for (size_t j = k; j < t.num_ops && t.ops[j].kind == 'a'; j++)
        bigger += t.ops[j].size > large;
    CHECK_EQ(bigger, n);
    CHECK_EQ(walk_ops(&t, 0).live_at_end, 0);
    replay_ok_on_system(&t);
    trace_free(&t);
}

static void test_realloc_grow_grows_past_neighbours(void)
{
    size_t steps = test_rand_range(3, 60), start = test_rand_range(1, 100);
    size_t step = test_rand_range(1, 500), small = test_rand_range(1, 64);
    trace_t t;
    REQUIRE(trace_gen_realloc_grow(steps, start, step, small, &t) == 0);
    REQUIRE(walk_ops(&t, 0).legal);
    REQUIRE(t.num_ops >= 1);
    /* One block, reallocated `steps` times, each time larger... */
    uint32_t grower = t.ops[0].id;
    size_t size = t.ops[0].size, reallocs = 0, between = 0, last_r = 0;
    for (size_t k = 1; k < t.num_ops; k++) {
        const trace_op *op = &t.ops[k];
        if (op->kind == 'r') {
            CHECK_EQ(op->id, grower);
            CHECK_LT(size, op->size);
            size = op->size;
            CHECK_EQ(between, 1); /* ...with one small alloc in between */
            between = 0;
            reallocs++;
            last_r = k;
        } else if (op->kind == 'a') {
            CHECK_EQ(op->size, small);
            between++;
        }
    }
    CHECK_EQ(reallocs, steps);
    /* The small blocks stay live until the growing is over. */
    for (size_t k = 0; k < last_r; k++)
        CHECK(t.ops[k].kind != 'f');
    replay_ok_on_system(&t);
    trace_free(&t);
}

static void test_pairs_frees_so_neighbours_merge(void)
{
    size_t n = test_rand_range(2, 100), size = test_rand_range(16, 512);
    trace_t t;
    REQUIRE(trace_gen_pairs(n, size, &t) == 0);
    REQUIRE(walk_ops(&t, 0).legal);
    REQUIRE(t.num_ops == 4 * n + 2);
    /* 2n blocks allocated in order: A0 B0 A1 B1 ... */
    for (size_t k = 0; k < 2 * n; k++)
        CHECK_EQ(t.ops[k].kind, 'a');
    /* After the first n frees, every freed block's neighbours in address
     * order (allocation order, in a fresh heap) are live: no merge yet. */
    bool live[2 * 100] = {false}; /* by id: A_i = 2i, B_i = 2i + 1 */
    REQUIRE(n <= 100);
    for (size_t i = 0; i < 2 * n; i++)
        live[i] = true;
    for (size_t k = 2 * n; k < 3 * n; k++) {
        REQUIRE(t.ops[k].kind == 'f' && t.ops[k].id < 2 * n);
        live[t.ops[k].id] = false;
    }
    size_t lonely = 0;
    for (size_t i = 0; i < 2 * n; i++)
        if (!live[i] &&
            ((i > 0 && !live[i - 1]) || (i + 1 < 2 * n && !live[i + 1])))
            lonely++;
    CHECK_EQ(lonely, 0);
    /* The next n frees each land between free blocks: after them, all is
     * free, and one block of all the pairs' bytes is asked for. */
    size_t merging = 0;
    for (size_t k = 3 * n; k < 4 * n; k++) {
        size_t i = t.ops[k].id;
        REQUIRE(t.ops[k].kind == 'f' && i < 2 * n);
        merging += (i == 0 || !live[i - 1]) && (i + 1 == 2 * n || !live[i + 1]);
        live[i] = false;
    }
    CHECK_EQ(merging, n);
    CHECK_EQ(t.ops[4 * n].kind, 'a');
    CHECK_EQ(t.ops[4 * n].size, 2 * n * size);
    replay_ok_on_system(&t);
    trace_free(&t);
}

static void test_pathologies_reject_bad_arguments(void)
{
    trace_t t;
    errno = 0;
    CHECK_INT_EQ(trace_gen_holes(4, 64, 64, &t), -1); /* small !< large */
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_INT_EQ(trace_gen_holes(0, 16, 64, &t), -1);
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_INT_EQ(trace_gen_realloc_grow(10, 16, 0, 16, &t), -1);
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_INT_EQ(trace_gen_realloc_grow(2, 16, SIZE_MAX / 2, 16, &t), -1);
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_INT_EQ(trace_gen_pairs(4, SIZE_MAX / 4, &t), -1);
    CHECK_INT_EQ(errno, EINVAL);
}

/* ---- Resident memory ---------------------------------------------------- */

static void test_rss_grows_with_touched_pages(void)
{
    size_t before = trace_rss_bytes();
    CHECK_LT(0, before);
    const size_t len = 8u << 20;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    size_t untouched = trace_rss_bytes();
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < len; i += (size_t)page)
        p[i] = 1;
    size_t after = trace_rss_bytes();
    munmap(p, len);
    /* A fresh mapping costs nothing resident until touched; then all of
     * it is (a margin of 1 MB for whatever else moved meanwhile). */
    CHECK_LT(untouched, before + (1u << 20));
    CHECK_GE(after, untouched + len - (1u << 20));
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_write_read_round_trip);
    RUN_TEST(test_read_skips_comments_and_blank_lines);
    RUN_TEST(test_read_rejects_malformed_files);
    RUN_TEST(test_read_names_a_missing_file);
    RUN_TEST(test_read_prints_its_message);
    RUN_TEST(test_write_to_a_bad_path_fails);
    RUN_TEST(test_validate_rejects_bad_ops);
    RUN_TEST(test_free_of_a_hand_built_trace);
    RUN_TEST(test_trace_memory_is_not_malloc_memory);
    RUN_TEST(test_replay_system_malloc_generated);
    RUN_TEST(test_replay_without_timing_reports_no_time);
    RUN_TEST(test_replay_peak_live_matches_hand_count);
    RUN_TEST(test_replay_calls_check_after_every_op);
    RUN_TEST(test_replay_isolated_matches_and_reports_a_death);
    RUN_TEST(test_replay_catches_broken_allocators);
    RUN_TEST(test_replay_refuses_an_invalid_trace);
    RUN_TEST(test_generate_is_deterministic_and_valid);
    RUN_TEST(test_generate_churn_stays_near_max_live);
    RUN_TEST(test_generate_small_sizes_are_log_uniform);
    RUN_TEST(test_generate_rejects_bad_specs);
    RUN_TEST(test_holes_leaves_only_useless_holes);
    RUN_TEST(test_realloc_grow_grows_past_neighbours);
    RUN_TEST(test_pairs_frees_so_neighbours_merge);
    RUN_TEST(test_pathologies_reject_bad_arguments);
    RUN_TEST(test_rss_grows_with_touched_pages);
    return test_finish();
}
