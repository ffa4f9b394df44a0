/*
 * common/conform.h: the conformance suite that every stage runs against
 * itself.
 *
 * A stage describes its allocator with a small table of function pointers and
 * capability flags, and conform_run() runs, as named test cases of the
 * harness (test.h), the checks that any correct allocator must pass:
 *
 *   conform_alignment     every pointer is aligned to `align`, for sizes across
 *                         [1, max_size], and the whole block can be written
 *   conform_no_overlap    no two live blocks overlap, over a random run
 *   conform_integrity     every live block keeps its contents (a pattern made
 *                         from its id, written at alloc, verified at free, at
 *                         reset and at the end) through thousands of other
 *                         operations: nothing is lost or overwritten
 *   conform_edge_sizes    0, 1, max_size succeed (or 0 gives NULL, see below);
 *                         max_size + 1 (bounded allocators), SIZE_MAX and
 *                         sizes near it give NULL with errno == ENOMEM
 *   conform_check_each_op the stage's *_check() after every operation of a
 *                         small random run
 *   conform_free_null     free(NULL) does nothing            (CONFORM_FREE)
 *   conform_realloc       growing and shrinking keep the data (CONFORM_REALLOC)
 *   conform_reset         after reset everything can be allocated again, and
 *                         the blocks from before are gone    (reset != NULL)
 *   conform_threads       several threads churning at once keep their data
 *                                                             (CONFORM_THREADSAFE)
 *
 * Cases that a capability does not allow are reported as skipped, by name.
 *
 * Bounded allocators (capacity != 0) may return NULL when full; then errno
 * must be ENOMEM, and the suite frees or resets and goes on. Growing
 * allocators (capacity == 0) must never return NULL for a size in
 * [1, max_size].
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
                                     freeable pointer) */
};

typedef struct conform_ops {
    const char *name; /* the stage, for messages: "01-bump" */
    unsigned caps;    /* enum conform_caps, or'ed */
    size_t align;     /* every returned pointer is a multiple of this */
    size_t max_size;  /* the largest request that must succeed */
    size_t capacity;  /* bytes it can hold before it may say ENOMEM;
                         0 = it grows and never runs out in these tests */

    /* A fresh allocator, and its end. destroy must release everything. */
    void *(*create)(void);
    void (*destroy)(void *a);

    void *(*alloc)(void *a, size_t size);
    /* NULL without CONFORM_FREE. size is what was asked for (for the
       suite's bookkeeping; the allocator may ignore it). */
    void (*free)(void *a, void *p, size_t size);
    /* NULL without CONFORM_REALLOC. */
    void *(*realloc)(void *a, void *p, size_t old_size, size_t new_size);
    /* Frees every block at once; NULL if the allocator cannot. */
    void (*reset)(void *a);
    /* The stage's invariant checker: true when the heap is sound. */
    bool (*check)(void *a);
} conform_ops;

/* Runs every case above against `ops`, through the harness's test_run. */
void conform_run(const conform_ops *ops);

#endif /* COMMON_CONFORM_H */
