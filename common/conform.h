/*
 * common/conform.h: the conformance suite that every stage runs against
 * itself.
 *
 * A stage describes its allocator with a small table of function pointers and
 * capability flags, and conform_run() runs, as named test cases of the
 * harness (test.h), the checks that any correct allocator must pass. Each
 * case is named "<case>[<ops->name>]", e.g. "conform_integrity[01-bump]",
 * so TEST_ONLY=conform_integrity selects it in every stage:
 *
 *   conform_ops           the description itself is consistent (flags match
 *                         the function pointers, align is a power of two,
 *                         a bounded allocator holds a max_size block); when
 *                         it fails, every other case is skipped
 *   conform_alignment     every pointer is aligned to `align`, for sizes across
 *                         [1, max_size], and the whole block can be written
 *   conform_no_overlap    no two live blocks overlap, over a random run
 *   conform_integrity     every live block keeps its contents (a pattern made
 *                         from its id and size, written at alloc, verified at
 *                         free, at reset, after realloc and at the end)
 *                         through thousands of other operations
 *   conform_edge_sizes    0, 1 and max_size on a fresh allocator; max_size + 1;
 *                         SIZE_MAX and sizes near it give NULL, ENOMEM, and
 *                         leave the heap as it was (see "Edge sizes")
 *   conform_check_each_op the stage's *_check() after every operation of a
 *                         small random run                (ops->check)
 *   conform_free_null     free(NULL) does nothing            (CONFORM_FREE)
 *   conform_realloc       growing and shrinking keep the data; realloc(NULL)
 *                         is alloc; a refused realloc keeps the block
 *                                                            (CONFORM_REALLOC)
 *   conform_reset         after reset everything can be allocated again, and
 *                         the blocks from before are gone    (reset != NULL)
 *   conform_threads       4 threads churning their own blocks on one allocator
 *                         keep their data; the main thread then frees what
 *                         they left (CONFORM_THREADSAFE)
 *
 * Cases that a capability does not allow are reported as skipped, by name.
 * Every check runs in every case (alignment and overlap on each new block,
 * the pattern at each free); the names say what each case stresses. A case
 * stops at its first failed check and prints the operation number, so
 * TEST_SEED=... TEST_ONLY=<case> replays it to that point.
 *
 * Refusals (NULL from alloc or realloc):
 *   - errno must be ENOMEM, always.
 *   - Growing allocators (capacity == 0) must never refuse a size in
 *     [1, max_size].
 *   - Bounded allocators (capacity != 0) may refuse when full, and the suite
 *     then frees half its blocks (or resets) and goes on. An empty one must
 *     serve any size up to max_size. "Full" is counted where it is well
 *     defined, for allocators without free (a bump region) and fixed-size
 *     ones (a pool): each live block costs its size rounded up to `align`
 *     (a pool block: max_size rounded up), and a refusal is a failure while
 *     those costs plus the request fit in half the capacity. The other half
 *     is slack for what the suite cannot see: headers, redzones, padding.
 *     An any-size allocator with free may be fragmented, so it is held only
 *     to the "empty" rule.
 *
 * Edge sizes:
 *   - 0: with CONFORM_ZERO_NULL, NULL; otherwise a pointer that is aligned,
 *     freeable and unique (two alloc(0) calls give different addresses).
 *   - max_size + 1: a refusal must say ENOMEM; a fixed-size allocator must
 *     refuse; an any-size allocator may serve it instead (a bump region
 *     larger than max_size will), and the block is then checked like any.
 *   - SIZE_MAX, SIZE_MAX - align + 1, SIZE_MAX - 4095, SIZE_MAX / 2 + 1,
 *     SIZE_MAX / 2 - 4095: NULL with ENOMEM, from alloc and from realloc,
 *     and nothing else changes (check() holds, older blocks keep their
 *     bytes, new ones do not overlap them). The suite never writes into
 *     what a wrong answer returns; it hands it back with free if it can.
 *
 * Sizes in random runs: 60% in [1, 64], 25% up to 512, 12% up to 4096, 2%
 * log-uniform up to max_size, 1% max_size itself, all capped at 1 MiB (and
 * at max_size). Blocks over 1 MiB carry the pattern only in their first and
 * last 512 KiB. Op counts go through test_scale(), so Valgrind runs are a
 * tenth as long.
 */
#ifndef COMMON_CONFORM_H
#define COMMON_CONFORM_H

#include <stdbool.h>
#include <stddef.h>

enum conform_caps {
    CONFORM_ANY_SIZE = 1u << 0,   /* sizes 1..max_size; else every block is
                                     max_size bytes and smaller requests get
                                     a whole block (a fixed-size pool) */
    CONFORM_FREE = 1u << 1,       /* blocks are freed one by one */
    CONFORM_REALLOC = 1u << 2,    /* realloc is provided */
    CONFORM_THREADSAFE = 1u << 3, /* alloc/free may be called from several
                                     threads at once on one allocator */
    CONFORM_ZERO_NULL = 1u << 4,  /* alloc(0) returns NULL (else a unique,
                                     aligned, freeable pointer) */
};

typedef struct conform_ops {
    const char *name; /* the stage, for messages: "01-bump" */
    unsigned caps;    /* enum conform_caps, or'ed */
    size_t align;     /* every returned pointer is a multiple of this */
    size_t max_size;  /* the largest request that must succeed */
    size_t capacity;  /* bytes it can hold before it may say ENOMEM
                         (see "Refusals" above for how the suite counts);
                         0 = it grows and never runs out in these tests */

    /* A fresh allocator, and its end. destroy must release everything. */
    void *(*create)(void);
    void (*destroy)(void *a);

    void *(*alloc)(void *a, size_t size);
    /* NULL without CONFORM_FREE. size is what was asked for (for the
       suite's bookkeeping; the allocator may ignore it). free(a, NULL, 0)
       must do nothing. */
    void (*free)(void *a, void *p, size_t size);
    /* NULL without CONFORM_REALLOC. realloc(a, NULL, 0, n) must act as
       alloc(a, n), as C's realloc does; new_size is never 0 (C17 leaves
       realloc(p, 0) to the implementation). */
    void *(*realloc)(void *a, void *p, size_t old_size, size_t new_size);
    /* Frees every block at once; NULL if the allocator cannot. */
    void (*reset)(void *a);
    /* The stage's invariant checker: true when the heap is sound. */
    bool (*check)(void *a);
} conform_ops;

/* Runs every case above against `ops`, through the harness's test_run.
   May be called several times in one test binary (one per configuration),
   each with its own ops->name. Not thread-safe: one run at a time. */
void conform_run(const conform_ops *ops);

/* `inner` behind one pthread mutex, as a libmalloc.so with one lock uses
 * it: every call taken under the lock, CONFORM_THREADSAFE added (so that
 * conform_run's threaded cases run too), everything else as inner's, and
 * `name` for the messages ("04-freelist + lock"). The instances the result
 * creates call `inner`, which the wrapper keeps: one inner at a time. */
conform_ops conform_locked(const conform_ops *inner, const char *name);

#endif /* COMMON_CONFORM_H */
