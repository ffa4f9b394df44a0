/*
 * common/trace.h: allocation traces in the CMU malloc-lab format: read,
 * write, validate, replay against any allocator, and a seeded workload
 * generator. Stage 04 and later use it to measure utilization and
 * throughput, and to compare placement policies with the system malloc.
 *
 * ---- The format ---------------------------------------------------------
 *
 * A text file. Four header numbers, one per line, then one op per line:
 *
 *     # recorded from: sort -n big.txt      <- '#' lines: comments
 *     20000                                 <- suggested heap size (bytes)
 *     3                                     <- num_ids: ids are 0..num_ids-1
 *     5                                     <- num_ops: ops that follow
 *     1                                     <- weight (for grading; 0 or 1)
 *     a 0 512                               <- alloc 512 bytes, call it id 0
 *     a 1 128
 *     r 0 640                               <- realloc id 0 to 640 bytes
 *     f 1                                   <- free id 1
 *     f 0
 *
 * Blank lines and lines starting with '#' may appear anywhere. An op must
 * make sense where it stands: `a` names an id that is not live, `f` and `r`
 * an id that is live; ids are below num_ids; `r` to size 0 is refused (C17
 * leaves realloc(p, 0) to the implementation: write `f` instead). `a` of
 * size 0 is allowed; the allocator may answer NULL or a unique pointer. An
 * id may be allocated again after it is freed.
 *
 * ---- The measurements (trace_replay) ----------------------------------
 *
 * After op k of the trace (k = 1..num_ops), with L_k the set of live ids:
 *
 *     live(k)        = sum of requested sizes of the ids in L_k
 *     peak_live      = max over k of live(k)       ("peak live payload")
 *     footprint(k)   = bytes the allocator holds from the OS after op k:
 *                      its own count, alloc->footprint(ctx); when that is
 *                      NULL (the system malloc), glibc's mallinfo2():
 *                          arena(k) + hblkhd(k) - hblkhd(0)
 *                      arena = bytes of sbrk'd and thread-heap memory,
 *                      hblkhd = bytes of mmap'd chunks, (0) = before the
 *                      first op. glibc's own count of what it holds from
 *                      the OS, less the mmap'd chunks that existed before
 *                      the replay (each is its owner's alone, such as a
 *                      large trace's ops[]: the trace cannot use them).
 *                      The arena is counted whole, in use or free: a
 *                      subtraction of "in use at the start" would be
 *                      wrong, because glibc's tcache keeps freed chunks
 *                      that mallinfo2 counts as in use, and a trace that
 *                      took them back would be measured below its own
 *                      payload. So a heap that earlier work left large
 *                      (glibc cannot return free memory below a live
 *                      chunk) counts too: when the system malloc's figure
 *                      is compared, measure it before other heavy work in
 *                      the process, or in a process of its own. The
 *                      replay's own tables come from mmap, not malloc.
 *     peak_footprint = max over k of footprint(k)
 *     utilization    = peak_live / peak_footprint            (0 < U <= 1)
 *
 * A footprint is sampled after every op of a measuring pass, which is
 * therefore slow; a separate timing pass runs the ops alone:
 *
 *     seconds        = median over `timing_reps` runs of the wall-clock time
 *                      of the ops alone (no sampling, no pattern writes;
 *                      create/destroy and the final frees are not timed)
 *     ops_per_sec    = num_ops / seconds
 *
 * Resident memory, trace_rss_bytes(), is a third view, for comparing with
 * allocators that keep no count: the "Rss:" line of /proc/self/smaps_rollup
 * (a page-table walk, exact), not statm or ru_maxrss, which Linux updates in
 * batches and which are off by hundreds of KB on heaps of a few MB.
 *
 * ---- Correctness, checked by the measuring pass -----------------------
 *
 * Every payload byte is written at alloc with a pattern made from the id and
 * the byte's offset, and verified at free, at realloc (the kept prefix) and
 * at the end: a block that overlaps another, or an allocator that writes
 * into a live block, is caught. Pointers are checked against alloc->align.
 * With options->check_each_op, alloc->check(ctx) runs after every op.
 */
#ifndef COMMON_TRACE_H
#define COMMON_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Traces -------------------------------------------------------------- */

#define TRACE_NAME_MAX  64  /* bytes of trace_t.name, '\0' included */
#define TRACE_ERROR_MAX 256 /* a good size for the err buffers below */

typedef struct trace_op {
    char kind;   /* 'a' alloc, 'f' free, 'r' realloc */
    uint32_t id; /* which block: 0 .. num_ids - 1 */
    size_t size; /* bytes requested ('a', 'r'); 0 for 'f' */
} trace_op;

typedef struct trace {
    size_t heap_hint; /* header line 1: suggested heap size, bytes */
    size_t num_ids;   /* header line 2: ids are 0 .. num_ids - 1 */
    size_t num_ops;   /* header line 3: entries in ops[] */
    int weight;       /* header line 4: weight in a graded run */
    trace_op *ops;    /* num_ops ops, owned by the trace (trace_free) */
    char name[TRACE_NAME_MAX]; /* file name, no folder, no extension */
    /* Bytes of ops[] mapped with mmap by trace_read and the generators, so
     * that a trace never shows in malloc's counts; 0 for a trace built by
     * hand, whose ops[] trace_free gives to free() (if it calls it). */
    size_t ops_mapped;
} trace_t;

/*
 * Reads a trace file into *out (which the caller then frees with
 * trace_free). Returns 0, or -1 with "path:line: what is wrong" printed to
 * stderr and *out left empty (ops == NULL). The file is validated as it is
 * read (see "The format").
 */
int trace_read(const char *path, trace_t *out);

/* The same, but the message goes into err (errlen bytes) instead of stderr. */
int trace_read_err(const char *path, trace_t *out, char *err, size_t errlen);

/*
 * Writes t to path in the format above. comment (may be NULL, may hold
 * several lines) is written first, each line as a '#' line: say where the
 * trace came from. Returns 0, or -1 with errno set.
 */
int trace_write(const trace_t *t, const char *path, const char *comment);

/* Releases t's ops and empties it. trace_free of an empty trace is a no-op. */
void trace_free(trace_t *t);

/*
 * Checks an in-memory trace by the rules of "The format" (and num_ops ==
 * the ops given). Returns 0, or -1 with "op N: what is wrong" in err
 * (N counts from 1).
 */
int trace_validate(const trace_t *t, char *err, size_t errlen);

/* ---- Replay ---------------------------------------------------------------
 *
 * An allocator, described by function pointers on an opaque context.
 */
typedef struct trace_alloc {
    const char *name;        /* for tables: "04-freelist first-fit" */
    void *(*create)(void);   /* a fresh allocator (NULL: ctx is NULL) */
    void (*destroy)(void *); /* releases everything (NULL: nothing to do) */
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *p);
    /* NULL: the replay does alloc + copy + free instead */
    void *(*realloc)(void *ctx, void *p, size_t size);
    /* bytes held from the OS now; NULL: use mallinfo2 (see the top) */
    size_t (*footprint)(void *ctx);
    bool (*check)(void *ctx); /* true when the heap is sound; may be NULL */
    size_t align;             /* every pointer a multiple of it; 0: any */
} trace_alloc;

/* malloc / free / realloc of the C library, footprint from mallinfo2. */
extern const trace_alloc trace_system_malloc;

/* All zero is a good default: measuring pass only, no check() per op. */
typedef struct trace_options {
    bool check_each_op;   /* call alloc->check() (if any) after every op */
    unsigned timing_reps; /* timed runs for the median; 0: no timing pass */
    /* alloc->footprint is resident memory above a baseline, not the
       allocator's own count: a reading below the live payload is then no
       error (the first requests can land in pages that were resident
       before the baseline) and counts as the live payload itself. */
    bool footprint_at_least_live;
} trace_options;

typedef struct trace_result {
    bool ok;                      /* every op succeeded, every check passed */
    char error[TRACE_ERROR_MAX];  /* the first failure, "op N (a 3 512): ..."*/
    size_t peak_live;             /* bytes, see the top */
    size_t peak_footprint;        /* bytes, see the top */
    double utilization;           /* peak_live / peak_footprint, 0 if none */
    const char *footprint_source; /* "allocator", "mallinfo2", or "none
                                     (...)" when malloc keeps no count:
                                     under Valgrind and ASan, mallinfo2
                                     reads 0, and utilization is 0 */
    double seconds;               /* median time of the ops; 0: not timed */
    double ops_per_sec;           /* num_ops / seconds; 0: not timed */
} trace_result;

/*
 * Replays t on a fresh allocator from `a`: one measuring pass, then
 * options->timing_reps timing passes (options may be NULL: all zero).
 * Blocks still live at the end of the trace are verified and freed.
 * Returns 0 when result->ok, -1 otherwise (result->error says why; a
 * replay stops at its first failure).
 */
int trace_replay(const trace_t *t, const trace_alloc *a,
                 const trace_options *options, trace_result *result);

/* Resident bytes of this process (smaps_rollup "Rss:"), 0 if unavailable. */
size_t trace_rss_bytes(void);

/* ---- The workload generator ----------------------------------------------
 *
 * The same spec gives the same trace on every machine: the generator draws
 * from its own splitmix64 seeded with spec->seed, never from rand().
 * Every generated trace frees all its blocks by the end, gives each
 * allocation a fresh id (num_ids = number of 'a' ops), and sets heap_hint
 * to its peak live payload.
 */
typedef enum trace_size_dist {
    TRACE_SIZE_UNIFORM, /* uniform in [lo, hi] */
    TRACE_SIZE_SMALL,   /* small-biased: a power-of-two class between lo and
                           hi chosen uniformly, then uniform within the class
                           (log-uniform: as many 16-31 as 1024-2047) */
    TRACE_SIZE_FIXED,   /* always lo */
    TRACE_SIZE_BIMODAL, /* uniform in [lo, hi], but large_pct percent of
                           requests uniform in [large_lo, large_hi] */
} trace_size_dist;

typedef enum trace_mix {
    TRACE_MIX_RAMP,    /* allocate up to max_live blocks, then free them all
                          in random order; repeat */
    TRACE_MIX_CHURN,   /* fill to max_live, then random frees and allocs
                          that keep the live set near max_live */
    TRACE_MIX_REALLOC, /* churn, with realloc_pct percent of the ops a
                          realloc of a random live block to a new size */
} trace_mix;

typedef struct trace_gen {
    uint64_t seed;
    size_t num_ops;  /* ops in the trace, the closing frees included (>= 2;
                        even, unless TRACE_MIX_REALLOC: without reallocs
                        each block is one alloc and one free) */
    size_t max_live; /* live blocks at most (>= 1) */
    trace_size_dist dist;
    size_t lo, hi;             /* sizes (lo >= 1, lo <= hi) */
    size_t large_lo, large_hi; /* TRACE_SIZE_BIMODAL's large sizes */
    unsigned large_pct;        /* TRACE_SIZE_BIMODAL: percent large */
    trace_mix mix;
    unsigned realloc_pct; /* TRACE_MIX_REALLOC: percent of ops (1..90) */
} trace_gen;

/*
 * Generates the trace that spec describes into *out (free it with
 * trace_free). Returns 0, or -1 with errno = EINVAL for a spec that makes no
 * sense (sizes, counts) or ENOMEM.
 */
int trace_generate(const trace_gen *spec, trace_t *out);

/*
 * The textbook pathologies, for stage 04's synthetic traces. Each returns
 * 0, or -1 with errno = EINVAL / ENOMEM; the trace is named after it.
 *
 * "holes": n pairs (small, large) alternating, a s0 L0 s1 L1 ...; then
 *   every large block freed; then n blocks of large + small bytes, a little
 *   too big for any hole, so free memory exists only in useless pieces and
 *   the heap must grow; then everything freed. Needs small < large, and
 *   small at least the allocator's alignment (else large + small may still
 *   fit in a hole that alignment rounded up).
 *
 *     after the frees:  [s0][ hole ][s1][ hole ][s2][ hole ] ...
 */
int trace_gen_holes(size_t n, size_t small, size_t large, trace_t *out);

/*
 * "realloc-grow": one block (id 0) of `start` bytes realloc'd `steps` times,
 * `step` bytes larger each time, with a block of `small` bytes allocated
 * between two reallocs (they stay live until the end, so the growing block
 * keeps finding a neighbour in its way); then everything freed.
 */
int trace_gen_realloc_grow(size_t steps, size_t start, size_t step,
                           size_t small, trace_t *out);

/*
 * "pairs": n pairs (A_i, B_i) of `size` bytes allocated in order; every A
 * freed (holes that cannot merge: each sits between two live B's); then
 * every B freed (each free merges with the holes on both sides); then one
 * block of 2 * n * size bytes, which fits in the merged space only if
 * coalescing worked; then it is freed.
 */
int trace_gen_pairs(size_t n, size_t size, trace_t *out);

#endif /* COMMON_TRACE_H */
