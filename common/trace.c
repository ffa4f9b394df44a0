/*
 * common/trace.c: allocation traces: the reader, the writer, the replay that
 * measures utilization and throughput, resident memory, and the seeded
 * workload generator. See trace.h for the format and for the definition of
 * every measurement (peak live payload, footprint, utilization, ops/sec).
 *
 * Reading a trace, in steps:
 *   1. Read a line; skip it if it is blank or starts with '#'.
 *   2. The first four such lines are the header: one number each.
 *   3. Every later line is an op: a kind letter, an id, and a size for 'a'
 *      and 'r'. The op is checked against the live set at once (op_check),
 *      so a bad op is reported with the line it stands on.
 *   4. At the end, the count of ops must match the header.
 *
 * Replaying a trace, in steps:
 *   1. Validate it (trace_validate): the replay may then trust every id.
 *   2. Map the replay's own tables (pointer, size and liveness per id) with
 *      mmap, not malloc, so that they never show in the system malloc's
 *      counts that the footprint is read from.
 *   3. Measuring pass: run each op, write or verify the payload pattern,
 *      track live payload, sample the footprint, call check() if asked.
 *   4. Verify and free what the trace left live; destroy the allocator.
 *   5. Timing pass, timing_reps times: the ops alone between two clock
 *      reads; the median of the runs is the figure.
 *
 * What it costs: the measuring pass touches every payload byte twice (write,
 * verify) and samples a footprint per op (mallinfo2 walks glibc's bins, some
 * microseconds): it is for correctness and memory, never for speed.
 *
 * Generating a trace, in steps:
 *   1. Draw every choice from one splitmix64 stream seeded by spec->seed:
 *      the same spec gives the same ops on every machine and compiler.
 *   2. Keep the live set as an array of ids (a random one is freed by
 *      swapping the last into its place: O(1)).
 *   3. Choose each op by the mix (ramp, churn, realloc), within a budget
 *      that leaves room for the closing frees (see trace_generate).
 *   4. Free what is still live, in random order: every trace ends empty.
 *
 * Memory layout of the state this file keeps while it works:
 *
 *   trace_t.ops  (mmap)   [ a 0 24 | a 1 7 | r 0 1000 | f 1 | ... ]
 *   replay tables (mmap)  [ ptr[num_ids] | size[num_ids] | live[num_ids] ]
 *   reader, validator     live[num_ids] bytes (malloc'd, freed before any
 *                         replay samples malloc's counts)
 *
 * What it leaves out: threads (a replay runs on one thread; stage 05 on
 * measure threads with their own benches), calloc and aligned requests
 * (the malloc-lab format has neither), and traces of programs (record one
 * with a preloaded shim and write it with trace_write).
 */
#include "trace.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* mallinfo2 is glibc's (2.33 on); elsewhere the system footprint is none. */
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define TRACE_HAVE_MALLINFO2 1
#else
#define TRACE_HAVE_MALLINFO2 0
#endif

/* ---- Small helpers ------------------------------------------------------ */

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, one add per draw.
 * Ours, not rand(): the generator must give the same trace everywhere. */
static uint64_t trace_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A uniform integer in [lo, hi]. The modulo bias is below 2^-40 for the
 * ranges used here, far under anything a trace could show. */
static size_t trace_rng_range(uint64_t *state, size_t lo, size_t hi)
{
    uint64_t span = (uint64_t)(hi - lo); /* the count of values, minus 1 */
    uint64_t r = trace_rng_next(state);
    return lo + (size_t)(span == UINT64_MAX ? r : r % (span + 1));
}

/* snprintf into an error buffer that may be NULL or empty. */
__attribute__((format(printf, 3, 4))) static void
trace_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * ops[] of the traces this file makes comes from mmap, not malloc: a trace
 * in memory must not show in the system malloc's footprint. (With malloc,
 * glibc's dynamic mmap threshold puts a second large trace inside the
 * arena, where mallinfo2 counts it as the replay's: +3 MB on a 200000-op
 * trace.) t->ops_mapped remembers the length for trace_free.
 */
static trace_op *ops_map(size_t n, size_t *len)
{
    if (n == 0)
        n = 1; /* mmap of 0 bytes fails */
    if (n > SIZE_MAX / sizeof(trace_op))
        return NULL;
    *len = n * sizeof(trace_op);
    void *p = mmap(NULL, *len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * Is op legal where it stands? live[] has one byte per id (1 = live) and is
 * updated when the op is legal. On a violation, returns false with the
 * reason in msg; the wording is shared by the reader and trace_validate.
 */
static bool op_check(const trace_op *op, size_t num_ids, unsigned char *live,
                     char *msg, size_t len)
{
    if (op->kind != 'a' && op->kind != 'f' && op->kind != 'r') {
        trace_set_err(msg, len, "unknown op '%c' (expected a, f or r)",
                      op->kind);
        return false;
    }
    if (op->id >= num_ids) {
        trace_set_err(msg, len,
                      "id %u out of range (the header says %zu ids: 0..%zu)",
                      op->id, num_ids, num_ids ? num_ids - 1 : 0);
        return false;
    }
    if (op->kind == 'a' && live[op->id]) {
        trace_set_err(msg, len, "alloc of id %u, which is already live",
                      op->id);
        return false;
    }
    if (op->kind != 'a' && !live[op->id]) {
        trace_set_err(msg, len, "%s of id %u, which is not live",
                      op->kind == 'f' ? "free" : "realloc", op->id);
        return false;
    }
    if (op->kind == 'r' && op->size == 0) {
        trace_set_err(msg, len,
                      "realloc of id %u to size 0 (C17 leaves it to the "
                      "implementation: write 'f %u')",
                      op->id, op->id);
        return false;
    }
    live[op->id] = op->kind != 'f';
    return true;
}

void trace_free(trace_t *t)
{
    if (!t)
        return;
    if (t->ops_mapped)
        munmap(t->ops, t->ops_mapped);
    else
        free(t->ops); /* a trace built by hand, ops from malloc */
    memset(t, 0, sizeof *t);
}

/* The reader's checks, for a trace made in memory: one pass, O(num_ops),
 * with one byte per id for the live set. */
int trace_validate(const trace_t *t, char *err, size_t errlen)
{
    if (t->num_ops && !t->ops) {
        trace_set_err(err, errlen, "no ops: ops is NULL, num_ops is %zu",
                      t->num_ops);
        return -1;
    }
    unsigned char *live = calloc(t->num_ids ? t->num_ids : 1, 1);
    if (!live) {
        trace_set_err(err, errlen, "out of memory for %zu ids", t->num_ids);
        return -1;
    }
    char msg[TRACE_ERROR_MAX];
    int rc = 0;
    for (size_t k = 0; k < t->num_ops; k++) {
        if (!op_check(&t->ops[k], t->num_ids, live, msg, sizeof msg)) {
            trace_set_err(err, errlen, "op %zu: %s", k + 1, msg);
            rc = -1;
            break;
        }
    }
    free(live);
    return rc;
}

/* ---- Reading ------------------------------------------------------------ */

/* Space, tab and line ends: the format's only separators. Not isspace(),
 * which depends on the locale and wants an unsigned char. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *skip_blanks(const char *s)
{
    while (*s && is_blank(*s))
        s++;
    return s;
}

/*
 * Parses a decimal number at *s (digits only: no sign, no hex, no spaces,
 * unlike strtoull) and moves *s past it. Returns 0, or -1 if there is no
 * digit, -2 if the number exceeds max.
 */
static int parse_number(const char **s, uint64_t max, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return -2;
        v = v * 10 + d;
    }
    if (*p && !is_blank(*p))
        return -1; /* "12abc" is not a number */
    *s = p;
    *out = v;
    return 0;
}

/* The file name without its folder and its extension: "traces/x.rep" -> x */
static void name_from_path(const char *path, char *name, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n >= len)
        n = len - 1;
    memcpy(name, base, n);
    name[n] = '\0';
}

/* The reader's state while it walks one file. */
typedef struct reader {
    const char *path;
    size_t line;         /* current line number, from 1 */
    int header_seen;     /* header numbers read so far (0..4) */
    uint64_t header[4];  /* heap hint, ids, ops, weight */
    trace_op *ops;       /* grown by doubling; header num_ops not trusted */
    size_t nops, cap;    /* ops read, ops room */
    size_t ops_len;      /* bytes mapped for ops (see ops_map) */
    unsigned char *live; /* one byte per id, once the header is read */
    char *err;           /* where the message goes */
    size_t errlen;
} reader_t;

/* Formats "path:line: what" into the caller's buffer; returns -1, so that
 * every failure reads `return reader_fail(...)`. */
__attribute__((format(printf, 2, 3))) static int
reader_fail(reader_t *r, const char *fmt, ...)
{
    char msg[TRACE_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    trace_set_err(r->err, r->errlen, "%s:%zu: %s", r->path, r->line, msg);
    return -1;
}

/* One header line: a number alone. The first header line that is not a
 * number is most likely an op, which means the header is missing. */
static int reader_header_line(reader_t *r, const char *s)
{
    static const char *const what[4] = {"heap size", "number of ids",
                                        "number of ops", "weight"};
    static const uint64_t max[4] = {SIZE_MAX, (uint64_t)UINT32_MAX + 1,
                                    SIZE_MAX / sizeof(trace_op), 1000000};
    uint64_t v;
    int rc = parse_number(&s, max[r->header_seen], &v);
    if (rc == -1)
        return reader_fail(r,
                           "missing header: expected 4 numbers (heap size, "
                           "ids, ops, weight), one a line, found %d before "
                           "'%.20s'",
                           r->header_seen, s);
    if (rc == -2)
        return reader_fail(r, "%s too large (at most %llu)",
                           what[r->header_seen],
                           (unsigned long long)max[r->header_seen]);
    s = skip_blanks(s);
    if (*s)
        return reader_fail(r, "unexpected text after the %s: '%.20s'",
                           what[r->header_seen], s);
    r->header[r->header_seen++] = v;
    if (r->header_seen == 4) {
        r->live = calloc(r->header[1] ? r->header[1] : 1, 1);
        if (!r->live)
            return reader_fail(r, "out of memory for %llu ids",
                               (unsigned long long)r->header[1]);
    }
    return 0;
}

/* One op line: "a <id> <size>", "f <id>" or "r <id> <size>". */
static int reader_op_line(reader_t *r, const char *s)
{
    trace_op op = {.kind = *s};
    if ((s[1] && !is_blank(s[1])) ||
        (op.kind != 'a' && op.kind != 'f' && op.kind != 'r'))
        return reader_fail(r, "unknown op '%.10s' (expected a, f or r)", s);
    s = skip_blanks(s + 1);
    uint64_t v;
    int rc = parse_number(&s, UINT32_MAX, &v);
    if (rc == -1)
        return reader_fail(r, "%s '%.20s' (expected a number)",
                           *s ? "bad id" : "missing id", s);
    if (rc == -2)
        return reader_fail(r, "id too large (ids are 32-bit)");
    op.id = (uint32_t)v;
    s = skip_blanks(s);
    if (op.kind != 'f') {
        rc = parse_number(&s, SIZE_MAX, &v);
        if (rc == -1)
            return reader_fail(r, "%s '%.20s' (expected a size in bytes)",
                               *s ? "bad size" : "missing size", s);
        if (rc == -2)
            return reader_fail(r, "size too large (at most %zu)",
                               (size_t)SIZE_MAX);
        op.size = (size_t)v;
        s = skip_blanks(s);
    }
    if (*s)
        return reader_fail(r, "unexpected text after the op: '%.20s'", s);

    char msg[TRACE_ERROR_MAX];
    if (!op_check(&op, (size_t)r->header[1], r->live, msg, sizeof msg))
        return reader_fail(r, "%s", msg);
    if (r->nops == r->header[2])
        return reader_fail(r, "more ops than the header's %llu",
                           (unsigned long long)r->header[2]);
    if (r->nops == r->cap) { /* grow: map twice the room, copy, unmap */
        size_t cap = r->cap ? 2 * r->cap : 1024, len;
        trace_op *ops = ops_map(cap, &len);
        if (!ops)
            return reader_fail(r, "out of memory for %zu ops", cap);
        if (r->ops) {
            memcpy(ops, r->ops, r->nops * sizeof *ops);
            munmap(r->ops, r->ops_len);
        }
        r->ops = ops;
        r->cap = cap;
        r->ops_len = len;
    }
    r->ops[r->nops++] = op;
    return 0;
}

/* Steps 1-4 of "Reading a trace" at the top. getline, not fgets: a line
 * of any length is read whole, so "line too long" is never an answer. */
int trace_read_err(const char *path, trace_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    reader_t r = {.path = path, .err = err, .errlen = errlen};
    FILE *f = fopen(path, "r");
    if (!f) {
        trace_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t bufcap = 0;
    int rc = 0;
    while (rc == 0 && getline(&buf, &bufcap, f) >= 0) {
        r.line++;
        buf[strcspn(buf, "\r\n")] = '\0'; /* messages quote the line */
        const char *s = skip_blanks(buf);
        if (*s == '\0' || *s == '#')
            continue;
        rc = r.header_seen < 4 ? reader_header_line(&r, s)
                               : reader_op_line(&r, s);
    }
    if (r.line == 0)
        r.line = 1; /* an empty file: its line 1 lacks the header */
    if (rc == 0 && ferror(f))
        rc = reader_fail(&r, "read error: %s", strerror(errno));
    if (rc == 0 && r.header_seen < 4)
        rc = reader_fail(&r,
                         "missing header: expected 4 numbers (heap size, "
                         "ids, ops, weight), found %d",
                         r.header_seen);
    if (rc == 0 && r.nops != r.header[2])
        rc = reader_fail(&r, "the header says %llu ops, the file has %zu",
                         (unsigned long long)r.header[2], r.nops);
    free(buf);
    free(r.live);
    fclose(f);
    if (rc != 0) {
        if (r.ops)
            munmap(r.ops, r.ops_len);
        return -1;
    }
    out->heap_hint = (size_t)r.header[0];
    out->num_ids = (size_t)r.header[1];
    out->num_ops = r.nops;
    out->weight = (int)r.header[3];
    out->ops = r.ops;
    out->ops_mapped = r.ops_len;
    name_from_path(path, out->name, sizeof out->name);
    return 0;
}

int trace_read(const char *path, trace_t *out)
{
    char err[TRACE_ERROR_MAX];
    int rc = trace_read_err(path, out, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    return rc;
}

/* ---- Writing ------------------------------------------------------------ */

int trace_write(const trace_t *t, const char *path, const char *comment)
{
    if (t->num_ops && !t->ops) {
        errno = EINVAL;
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    /* The comment first, one '#' line per line of it. */
    for (const char *c = comment; c && *c;) {
        const char *nl = strchr(c, '\n');
        int n = nl ? (int)(nl - c) : (int)strlen(c);
        fprintf(f, "# %.*s\n", n, c);
        c = nl ? nl + 1 : c + n;
    }
    fprintf(f, "%zu\n%zu\n%zu\n%d\n", t->heap_hint, t->num_ids, t->num_ops,
            t->weight);
    for (size_t k = 0; k < t->num_ops; k++) {
        const trace_op *op = &t->ops[k];
        if (op->kind == 'f')
            fprintf(f, "f %u\n", op->id);
        else
            fprintf(f, "%c %u %zu\n", op->kind, op->id, op->size);
    }
    int bad = ferror(f);
    int saved = errno;
    if (fclose(f) != 0)
        return -1;
    if (bad) {
        errno = saved ? saved : EIO;
        return -1;
    }
    return 0;
}

/* ---- Resident memory ---------------------------------------------------- */

/*
 * The "Rss:" line of /proc/self/smaps_rollup, in bytes. Read with open and
 * read into a stack buffer, not stdio: fopen would malloc, and a footprint
 * reader must not move the heap it reads.
 */
size_t trace_rss_bytes(void)
{
    int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    const char *rss = strstr(buf, "\nRss:");
    if (!rss)
        return 0;
    const char *s = skip_blanks(rss + 5);
    uint64_t kb;
    if (parse_number(&s, SIZE_MAX / 1024, &kb) != 0)
        return 0;
    return (size_t)kb * 1024;
}

/* ---- The system malloc ------------------------------------------------ */

static void *sys_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void sys_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void *sys_realloc(void *ctx, void *p, size_t size)
{
    (void)ctx;
    return realloc(p, size);
}

const trace_alloc trace_system_malloc = {
    .name = "system malloc",
    .alloc = sys_alloc,
    .free = sys_free,
    .realloc = sys_realloc,
    .align = 16, /* glibc on 64-bit: 2 * sizeof(size_t); also ASan, Valgrind */
};

/*
 * What the system malloc holds from the OS, by its own count: arena (sbrk'd
 * and thread-heap memory) and hblkhd (mmap'd chunks). 0 and 0 when no count
 * exists (not glibc, or a tool such as Valgrind or ASan replaced malloc:
 * then mallinfo2 reads 0).
 */
static void sys_counts(size_t *arena, size_t *mmapped)
{
#if TRACE_HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    *arena = mi.arena;
    *mmapped = mi.hblkhd;
#else
    *arena = 0;
    *mmapped = 0;
#endif
}

/* ---- Replay ------------------------------------------------------------- */

/*
 * The payload pattern: byte k of the block of id i is byte (k % 8), least
 * significant first, of pattern_word(i, k / 8). Different for every id and
 * every word, so a byte that lands in the wrong block, or a block written over
 * by another, shows.
 */
static uint64_t pattern_word(uint32_t id, size_t word)
{
    uint64_t s = ((uint64_t)id << 32) ^ (uint64_t)word;
    return trace_rng_next(&s);
}

static void pattern_fill(unsigned char *p, uint32_t id, size_t from, size_t to)
{
    for (size_t k = from; k < to;) {
        uint64_t w = pattern_word(id, k / 8); /* one draw per 8 bytes */
        for (size_t b = k % 8; b < 8 && k < to; b++, k++)
            p[k] = (unsigned char)(w >> (8 * b));
    }
}

/* Returns the offset of the first wrong byte in [0, n), or n if none. */
static size_t pattern_find_bad(const unsigned char *p, uint32_t id, size_t n)
{
    for (size_t k = 0; k < n;) {
        uint64_t w = pattern_word(id, k / 8);
        for (size_t b = 0; b < 8 && k < n; b++, k++)
            if (p[k] != (unsigned char)(w >> (8 * b)))
                return k;
    }
    return n;
}

/*
 * The replay's state. The three tables live in one private mapping:
 *
 *   +-------------------------+---------------------------+--------------+
 *   | ptr[num_ids] (void *)   | size[num_ids] (size_t)    | live[num_ids]|
 *   +-------------------------+---------------------------+--------------+
 *
 * ptr may be NULL for a live block (an allocator may answer alloc(0) with
 * NULL), which is why liveness has its own byte.
 */
typedef struct replay {
    const trace_t *t;
    const trace_alloc *a;
    void *ctx;           /* the allocator under test */
    void **ptr;          /* block of each id */
    size_t *size;        /* requested size of each id */
    unsigned char *live; /* 1 = the id is live */
    void *map;           /* the mapping that holds the three tables */
    size_t map_len;      /* its length, bytes */
    trace_result *res;
} replay_t;

__attribute__((format(printf, 3, 4))) static int
replay_fail(replay_t *rp, size_t k, const char *fmt, ...)
{
    char msg[160]; /* with the op's prefix, fits TRACE_ERROR_MAX */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const trace_op *op = &rp->t->ops[k];
    char what[48];
    if (op->kind == 'f')
        snprintf(what, sizeof what, "f %u", op->id);
    else
        snprintf(what, sizeof what, "%c %u %zu", op->kind, op->id, op->size);
    rp->res->ok = false;
    snprintf(rp->res->error, sizeof rp->res->error, "op %zu (%s): %s", k + 1,
             what, msg);
    return -1;
}

static int replay_tables_map(replay_t *rp)
{
    size_t n = rp->t->num_ids ? rp->t->num_ids : 1;
    size_t per_id = sizeof(void *) + sizeof(size_t) + 1;
    if (n > SIZE_MAX / per_id)
        return -1;
    rp->map_len = n * per_id;
    rp->map = mmap(NULL, rp->map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rp->map == MAP_FAILED) {
        rp->map = NULL;
        return -1;
    }
    /* Pointers first, then sizes: both arrays stay naturally aligned. */
    rp->ptr = rp->map;
    rp->size = (size_t *)(rp->ptr + n);
    rp->live = (unsigned char *)(rp->size + n);
    return 0;
}

static void replay_tables_clear(replay_t *rp)
{
    memset(rp->map, 0, rp->map_len);
}

/* Does p satisfy the allocator's promised alignment? NULL always does. */
static bool replay_aligned(const replay_t *rp, const void *p)
{
    return !p || rp->a->align == 0 || (uintptr_t)p % rp->a->align == 0;
}

/* Realloc through the allocator, or as alloc + copy + free without one.
 * A NULL block (alloc(0) answered NULL) is grown by a plain alloc. */
static void *replay_realloc(replay_t *rp, void *p, size_t old, size_t size)
{
    const trace_alloc *a = rp->a;
    if (!p)
        return a->alloc(rp->ctx, size);
    if (a->realloc)
        return a->realloc(rp->ctx, p, size);
    void *q = a->alloc(rp->ctx, size);
    if (q) {
        memcpy(q, p, old < size ? old : size);
        a->free(rp->ctx, p);
    }
    return q;
}

/* One op of the measuring pass, with the pattern written and verified. */
static int replay_measured_op(replay_t *rp, size_t k, size_t *live_bytes)
{
    const trace_op *op = &rp->t->ops[k];
    uint32_t id = op->id;
    unsigned char *p = rp->ptr[id];
    size_t old = rp->size[id];
    size_t bad;

    switch (op->kind) {
    case 'a':
        p = rp->a->alloc(rp->ctx, op->size);
        if (!p && op->size)
            return replay_fail(rp, k, "alloc returned NULL");
        if (!replay_aligned(rp, p))
            return replay_fail(rp, k, "%p is not a multiple of %zu", (void *)p,
                               rp->a->align);
        if (p)
            pattern_fill(p, id, 0, op->size);
        rp->ptr[id] = p;
        rp->size[id] = op->size;
        rp->live[id] = 1;
        *live_bytes += op->size;
        return 0;
    case 'f':
        if (p && (bad = pattern_find_bad(p, id, old)) < old)
            return replay_fail(rp, k,
                               "block %p (%zu bytes) was overwritten at "
                               "byte %zu before its free",
                               (void *)p, old, bad);
        rp->a->free(rp->ctx, p);
        rp->live[id] = 0;
        rp->ptr[id] = NULL;
        *live_bytes -= old;
        return 0;
    default: /* 'r' */
        if (p && (bad = pattern_find_bad(p, id, old)) < old)
            return replay_fail(rp, k,
                               "block %p (%zu bytes) was overwritten at "
                               "byte %zu before its realloc",
                               (void *)p, old, bad);
        p = replay_realloc(rp, p, old, op->size);
        if (!p)
            return replay_fail(rp, k, "realloc returned NULL");
        rp->ptr[id] = p; /* before the checks: the cleanup frees it */
        rp->size[id] = op->size;
        *live_bytes = *live_bytes - old + op->size;
        if (!replay_aligned(rp, p))
            return replay_fail(rp, k, "%p is not a multiple of %zu", (void *)p,
                               rp->a->align);
        size_t kept = old < op->size ? old : op->size;
        if ((bad = pattern_find_bad(p, id, kept)) < kept)
            return replay_fail(rp, k,
                               "realloc to %p lost the data at byte %zu of "
                               "%zu kept",
                               (void *)p, bad, kept);
        if (op->size > old)
            pattern_fill(p, id, old, op->size);
        return 0;
    }
}

/*
 * The measuring pass (steps 3 and 4 of the file header). On a failure the
 * live blocks are left to destroy(), which must release everything: a
 * broken heap could crash on the frees and hide the message. Without a
 * destroy (the system malloc) they are freed one by one.
 */
static int replay_measure(replay_t *rp, const trace_options *opt)
{
    const trace_t *t = rp->t;
    const trace_alloc *a = rp->a;
    trace_result *res = rp->res;
    size_t live_bytes = 0;
    bool sys_ok = a->footprint == NULL; /* is mallinfo2's count believable? */
    size_t arena0, mmapped0;            /* glibc's counts before the first op */
    sys_counts(&arena0, &mmapped0);
    res->footprint_source = a->footprint ? "allocator" : "mallinfo2";

    replay_tables_clear(rp);
    rp->ctx = a->create ? a->create() : NULL;
    if (a->create && !rp->ctx) {
        res->ok = false;
        snprintf(res->error, sizeof res->error, "create() returned NULL");
        return -1;
    }
    int rc = 0;
    for (size_t k = 0; k < t->num_ops && rc == 0; k++) {
        rc = replay_measured_op(rp, k, &live_bytes);
        if (rc != 0)
            break;
        if (live_bytes > res->peak_live)
            res->peak_live = live_bytes;

        /* Footprint after the op: the allocator's count, or glibc's. */
        size_t fp;
        if (a->footprint) {
            fp = a->footprint(rp->ctx);
            if (fp < live_bytes && opt->footprint_at_least_live)
                fp = live_bytes; /* a resident-memory footprint: see .h */
            else if (fp < live_bytes)
                rc = replay_fail(rp, k,
                                 "footprint() says %zu bytes, but %zu "
                                 "bytes of payload are live",
                                 fp, live_bytes);
        } else {
            /* See trace.h for why this formula and no other. */
            size_t arena, mmapped;
            sys_counts(&arena, &mmapped);
            fp = arena + (mmapped > mmapped0 ? mmapped - mmapped0 : 0);
            if (fp < live_bytes)
                sys_ok = false; /* malloc replaced by a tool: no count */
        }
        if (fp > res->peak_footprint)
            res->peak_footprint = fp;

        if (rc == 0 && opt->check_each_op && a->check && !a->check(rp->ctx))
            rc = replay_fail(rp, k, "check() found the heap broken");
    }

    /* Step 4: verify and free what the trace left live. */
    for (size_t id = 0; id < t->num_ids; id++) {
        if (!rp->live[id])
            continue;
        unsigned char *p = rp->ptr[id];
        size_t n = rp->size[id], bad;
        if (rc == 0 && p && (bad = pattern_find_bad(p, (uint32_t)id, n)) < n) {
            res->ok = false;
            snprintf(res->error, sizeof res->error,
                     "end of trace: block of id %zu at %p (%zu bytes) was "
                     "overwritten at byte %zu",
                     id, (void *)p, n, bad);
            rc = -1;
        }
        if (rc == 0 || !a->destroy)
            a->free(rp->ctx, p);
    }
    if (a->destroy)
        a->destroy(rp->ctx);
    rp->ctx = NULL;

    if (!a->footprint && (!sys_ok || res->peak_footprint == 0)) {
        res->footprint_source = "none (no mallinfo2 count: not glibc, or "
                                "malloc replaced by a tool)";
        res->peak_footprint = 0;
    }
    if (res->peak_footprint)
        res->utilization = (double)res->peak_live / (double)res->peak_footprint;
    return rc;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One timed run: the ops alone, then (untimed) the leftovers and destroy. */
/*
 * Each run gets a fresh allocator, as the measuring pass did, so every run
 * times the same work from the same empty heap. The loop is the measuring
 * pass's without its pattern, footprint and check: what is timed is the
 * allocator and one table lookup per op, nothing else.
 */
static int replay_timed(replay_t *rp, double *seconds)
{
    const trace_t *t = rp->t;
    const trace_alloc *a = rp->a;
    replay_tables_clear(rp);
    rp->ctx = a->create ? a->create() : NULL;
    if (a->create && !rp->ctx) {
        rp->res->ok = false;
        snprintf(rp->res->error, sizeof rp->res->error,
                 "timing pass: create() returned NULL");
        return -1;
    }
    int rc = 0;
    double t0 = now_seconds();
    for (size_t k = 0; k < t->num_ops; k++) {
        const trace_op *op = &t->ops[k];
        void *p = rp->ptr[op->id];
        if (op->kind == 'a') {
            p = a->alloc(rp->ctx, op->size);
            rp->live[op->id] = 1;
        } else if (op->kind == 'f') {
            a->free(rp->ctx, p);
            p = NULL;
            rp->live[op->id] = 0;
        } else {
            p = replay_realloc(rp, p, rp->size[op->id], op->size);
        }
        if (!p && op->kind != 'f' && op->size) {
            rc = replay_fail(rp, k, "timing pass: %s returned NULL",
                             op->kind == 'a' ? "alloc" : "realloc");
            break;
        }
        rp->ptr[op->id] = p;
        rp->size[op->id] = op->size;
    }
    *seconds = now_seconds() - t0;
    for (size_t id = 0; id < t->num_ids; id++)
        if (rp->live[id] && (rc == 0 || !a->destroy))
            a->free(rp->ctx, rp->ptr[id]);
    if (a->destroy)
        a->destroy(rp->ctx);
    rp->ctx = NULL;
    return rc;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int trace_replay(const trace_t *t, const trace_alloc *a,
                 const trace_options *options, trace_result *result)
{
    static const trace_options defaults = {0};
    const trace_options *opt = options ? options : &defaults;
    memset(result, 0, sizeof *result);
    result->ok = true;
    result->footprint_source = "none";

    /* Step 1: a valid trace, so that every id below can be trusted. */
    char msg[TRACE_ERROR_MAX - 16]; /* leaves room for "invalid trace: " */
    if (trace_validate(t, msg, sizeof msg) != 0) {
        result->ok = false;
        snprintf(result->error, sizeof result->error, "invalid trace: %s", msg);
        return -1;
    }
    if (!a->alloc || !a->free) {
        result->ok = false;
        snprintf(result->error, sizeof result->error,
                 "%s: alloc and free are required",
                 a->name ? a->name : "allocator");
        return -1;
    }

    /* Step 2: the tables, outside malloc's counts. */
    replay_t rp = {.t = t, .a = a, .res = result};
    if (replay_tables_map(&rp) != 0) {
        result->ok = false;
        snprintf(result->error, sizeof result->error,
                 "cannot map tables for %zu ids", t->num_ids);
        return -1;
    }

    /* Steps 3 and 4. */
    int rc = replay_measure(&rp, opt);

    /* Step 5: only a correct run is worth timing. */
    if (rc == 0 && opt->timing_reps > 0) {
        double *runs = calloc(opt->timing_reps, sizeof *runs);
        if (!runs) {
            result->ok = false;
            snprintf(result->error, sizeof result->error,
                     "out of memory for %u timing runs", opt->timing_reps);
            rc = -1;
        }
        for (unsigned i = 0; rc == 0 && i < opt->timing_reps; i++)
            rc = replay_timed(&rp, &runs[i]);
        if (rc == 0) {
            qsort(runs, opt->timing_reps, sizeof *runs, cmp_double);
            unsigned n = opt->timing_reps;
            result->seconds =
                n % 2 ? runs[n / 2] : (runs[n / 2 - 1] + runs[n / 2]) / 2;
            if (result->seconds > 0)
                result->ops_per_sec = (double)t->num_ops / result->seconds;
        }
        free(runs);
    }
    munmap(rp.map, rp.map_len);
    return rc;
}

/* ---- The workload generator ------------------------------------------- */

/* The generator's state: the trace being built and the live set. */
typedef struct gen {
    uint64_t rng;
    const trace_gen *spec;
    trace_op *ops;
    size_t n;          /* ops emitted */
    uint32_t next_id;  /* ids are handed out in order, never reused */
    uint32_t *live;    /* ids of live blocks, unordered (swap-remove) */
    size_t *live_size; /* their sizes, same order */
    size_t nlive;
    size_t live_bytes; /* sum of live_size: for heap_hint */
    size_t peak_bytes;
} gen_t;

/* A size from the spec's distribution (see trace_size_dist). */
static size_t gen_size(gen_t *g)
{
    const trace_gen *s = g->spec;
    switch (s->dist) {
    case TRACE_SIZE_FIXED:
        return s->lo;
    case TRACE_SIZE_SMALL: {
        /* Classes [2^c, 2^(c+1)) from lo's class to hi's, one at random,
         * then uniform inside it, clipped to [lo, hi]. */
        unsigned clo = 0, chi = 0;
        while (clo < 63 && ((size_t)2 << clo) <= s->lo)
            clo++;
        while (chi < 63 && ((size_t)2 << chi) <= s->hi)
            chi++;
        unsigned c = (unsigned)trace_rng_range(&g->rng, clo, chi);
        size_t from = (size_t)1 << c;
        size_t to = c < 63 ? ((size_t)2 << c) - 1 : SIZE_MAX;
        if (from < s->lo)
            from = s->lo;
        if (to > s->hi)
            to = s->hi;
        return trace_rng_range(&g->rng, from, to);
    }
    case TRACE_SIZE_BIMODAL:
        if (trace_rng_range(&g->rng, 1, 100) <= s->large_pct)
            return trace_rng_range(&g->rng, s->large_lo, s->large_hi);
        return trace_rng_range(&g->rng, s->lo, s->hi);
    default: /* TRACE_SIZE_UNIFORM */
        return trace_rng_range(&g->rng, s->lo, s->hi);
    }
}

static void gen_alloc(gen_t *g)
{
    size_t size = gen_size(g);
    g->ops[g->n++] = (trace_op){.kind = 'a', .id = g->next_id, .size = size};
    g->live[g->nlive] = g->next_id++;
    g->live_size[g->nlive++] = size;
    g->live_bytes += size;
    if (g->live_bytes > g->peak_bytes)
        g->peak_bytes = g->live_bytes;
}

/* Frees the live block at a random position of the live set. */
static void gen_free(gen_t *g)
{
    size_t i = trace_rng_range(&g->rng, 0, g->nlive - 1);
    g->ops[g->n++] = (trace_op){.kind = 'f', .id = g->live[i]};
    g->live_bytes -= g->live_size[i];
    g->nlive--;
    g->live[i] = g->live[g->nlive];
    g->live_size[i] = g->live_size[g->nlive];
}

/* Reallocs a random live block to a fresh size from the distribution. */
static void gen_realloc(gen_t *g)
{
    size_t i = trace_rng_range(&g->rng, 0, g->nlive - 1);
    size_t size = gen_size(g);
    g->ops[g->n++] = (trace_op){.kind = 'r', .id = g->live[i], .size = size};
    g->live_bytes = g->live_bytes - g->live_size[i] + size;
    g->live_size[i] = size;
    if (g->live_bytes > g->peak_bytes)
        g->peak_bytes = g->live_bytes;
}

/* Does the spec make sense? Each rule below is a promise of trace.h. */
static bool gen_spec_ok(const trace_gen *s)
{
    if (s->num_ops < 2 || s->num_ops > (size_t)UINT32_MAX || s->max_live < 1 ||
        s->lo < 1 || s->lo > s->hi)
        return false;
    /* Through unsigned: an enum may be signed, and a negative one would
     * index the name tables below. */
    if ((unsigned)s->dist > TRACE_SIZE_BIMODAL ||
        (unsigned)s->mix > TRACE_MIX_REALLOC)
        return false;
    if (s->dist == TRACE_SIZE_BIMODAL &&
        (s->large_lo < 1 || s->large_lo > s->large_hi || s->large_pct > 100))
        return false;
    /* Without reallocs every block is allocated once and freed once. */
    if (s->mix != TRACE_MIX_REALLOC && s->num_ops % 2 != 0)
        return false;
    if (s->mix == TRACE_MIX_REALLOC &&
        (s->realloc_pct < 1 || s->realloc_pct > 90))
        return false;
    return true;
}

static const char *const gen_mix_name[] = {"ramp", "churn", "realloc"};
static const char *const gen_dist_name[] = {"uniform", "small", "fixed",
                                            "bimodal"};

/*
 * Builds the trace one op at a time. The budget: with n ops emitted and
 * nlive blocks live, the trace needs n + nlive ops at least (each live
 * block still needs its free), so `left` = num_ops - n - nlive. An alloc
 * costs 2 of it (itself and its free), a realloc 1, a free 0. When left is
 * 0 the closing frees finish the trace at exactly num_ops ops. When left is
 * 1 (realloc mix only; the others keep it even) a realloc spends it, and a
 * block is live then, because left reaches 1 only after an alloc or a
 * realloc.
 */
int trace_generate(const trace_gen *spec, trace_t *out)
{
    memset(out, 0, sizeof *out);
    if (!gen_spec_ok(spec)) {
        errno = EINVAL;
        return -1;
    }
    gen_t g = {.rng = spec->seed, .spec = spec};
    size_t cap =
        spec->max_live < spec->num_ops ? spec->max_live : spec->num_ops;
    size_t ops_len = 0;
    g.ops = ops_map(spec->num_ops, &ops_len);
    g.live = calloc(cap, sizeof *g.live);
    g.live_size = calloc(cap, sizeof *g.live_size);
    if (!g.ops || !g.live || !g.live_size) {
        if (g.ops)
            munmap(g.ops, ops_len);
        free(g.live);
        free(g.live_size);
        errno = ENOMEM;
        return -1;
    }
    bool ramp_up = true;
    for (;;) {
        size_t left = spec->num_ops - g.n - g.nlive;
        if (left == 0)
            break;
        bool full = g.nlive == cap;
        if (left == 1) {
            gen_realloc(&g);
            continue;
        }
        switch (spec->mix) {
        case TRACE_MIX_RAMP:
            /* Up to the peak, then down to nothing, and again. */
            if (ramp_up && full)
                ramp_up = false;
            else if (!ramp_up && g.nlive == 0)
                ramp_up = true;
            if (ramp_up)
                gen_alloc(&g);
            else
                gen_free(&g);
            break;
        case TRACE_MIX_REALLOC:
            if (g.nlive > 0 &&
                trace_rng_range(&g.rng, 1, 100) <= spec->realloc_pct) {
                gen_realloc(&g);
                break;
            }
            /* Otherwise this op is a churn op. */
            /* fall through */
        default: /* TRACE_MIX_CHURN */
            /* Below three quarters of max_live: fill; above: a coin flip,
             * so the live set wanders in [3/4 max_live, max_live]. */
            if (g.nlive < cap - cap / 4 ||
                (!full && trace_rng_next(&g.rng) & 1))
                gen_alloc(&g);
            else
                gen_free(&g);
            break;
        }
    }
    while (g.nlive > 0)
        gen_free(&g); /* the closing frees, in random order */

    free(g.live);
    free(g.live_size);
    out->ops = g.ops;
    out->ops_mapped = ops_len;
    out->num_ops = g.n;
    out->num_ids = g.next_id;
    out->heap_hint = g.peak_bytes;
    out->weight = 1;
    snprintf(out->name, sizeof out->name, "%s-%s-%llx", gen_mix_name[spec->mix],
             gen_dist_name[spec->dist], (unsigned long long)spec->seed);
    return 0;
}

/* ---- The pathologies ---------------------------------------------------- */

/* An empty trace of `num_ops` ops, to be filled by a pathology. */
static int path_start(trace_t *out, const char *name, size_t num_ops,
                      size_t num_ids)
{
    memset(out, 0, sizeof *out);
    out->ops = ops_map(num_ops, &out->ops_mapped);
    if (!out->ops) {
        out->ops_mapped = 0;
        errno = ENOMEM;
        return -1;
    }
    out->num_ops = num_ops;
    out->num_ids = num_ids;
    out->weight = 1;
    snprintf(out->name, sizeof out->name, "%s", name);
    return 0;
}

static void path_op(trace_t *t, size_t *k, char kind, size_t id, size_t size)
{
    t->ops[(*k)++] = (trace_op){.kind = kind, .id = (uint32_t)id, .size = size};
}

int trace_gen_holes(size_t n, size_t small, size_t large, trace_t *out)
{
    /* ids: small i = 2i, large i = 2i + 1, too-big i = 2n + i. */
    if (n < 1 || small < 1 || small >= large || n > UINT32_MAX / 4 ||
        large > SIZE_MAX - small || large > SIZE_MAX / (2 * n)) {
        errno = EINVAL;
        return -1;
    }
    if (path_start(out, "holes", 6 * n, 3 * n) != 0)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        path_op(out, &k, 'a', 2 * i, small);
        path_op(out, &k, 'a', 2 * i + 1, large);
    }
    for (size_t i = 0; i < n; i++)
        path_op(out, &k, 'f', 2 * i + 1, 0);
    for (size_t i = 0; i < n; i++)
        path_op(out, &k, 'a', 2 * n + i, large + small);
    for (size_t i = 0; i < n; i++)
        path_op(out, &k, 'f', 2 * i, 0);
    for (size_t i = 0; i < n; i++)
        path_op(out, &k, 'f', 2 * n + i, 0);
    assert(k == out->num_ops);
    /* Peak: n small + n too-big blocks once the holes are left behind. */
    out->heap_hint = n * (small + large + small);
    return 0;
}

int trace_gen_realloc_grow(size_t steps, size_t start, size_t step,
                           size_t small, trace_t *out)
{
    /* ids: the growing block is 0, the small block after step i is i. */
    if (steps < 1 || start < 1 || step < 1 || small < 1 ||
        steps > UINT32_MAX / 4 || step > (SIZE_MAX - start) / steps) {
        errno = EINVAL;
        return -1;
    }
    if (path_start(out, "realloc-grow", 3 * steps + 2, steps + 1) != 0)
        return -1;
    size_t k = 0;
    path_op(out, &k, 'a', 0, start);
    for (size_t i = 1; i <= steps; i++) {
        path_op(out, &k, 'a', i, small);
        path_op(out, &k, 'r', 0, start + i * step);
    }
    path_op(out, &k, 'f', 0, 0);
    for (size_t i = 1; i <= steps; i++)
        path_op(out, &k, 'f', i, 0);
    assert(k == out->num_ops);
    out->heap_hint = start + steps * step + steps * small;
    return 0;
}

int trace_gen_pairs(size_t n, size_t size, trace_t *out)
{
    /* ids: A_i = 2i, B_i = 2i + 1, the merged block 2n. */
    if (n < 1 || size < 1 || n > UINT32_MAX / 4 || size > SIZE_MAX / (2 * n)) {
        errno = EINVAL;
        return -1;
    }
    if (path_start(out, "pairs", 4 * n + 2, 2 * n + 1) != 0)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < 2 * n; i++)
        path_op(out, &k, 'a', i, size);
    for (size_t i = 0; i < n; i++)
        path_op(out, &k, 'f', 2 * i, 0);
    for (size_t i = 0; i < n; i++)
        path_op(out, &k, 'f', 2 * i + 1, 0);
    path_op(out, &k, 'a', 2 * n, 2 * n * size);
    path_op(out, &k, 'f', 2 * n, 0);
    assert(k == out->num_ops);
    out->heap_hint = 2 * n * size;
    return 0;
}
