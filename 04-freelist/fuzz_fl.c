/*
 * fuzz_fl.c: stage 04 under libFuzzer (make fuzz-04) and the soak run
 * (make soak): common/fuzz.h's operations on one fl heap, fl_check() after
 * every op (under libFuzzer) or every ten thousand (soak).
 *
 *   ALLOC, ALIGNED   fl_alloc, fl_aligned_alloc (lane 1: fl_calloc)
 *   FREE, REALLOC    fl_free, fl_realloc of a live block
 *   RESET            fl_quarantine_flush (a heap has no reset)
 *   SPECIAL          arg % 3 picks the policy: first, next, best fit
 *   MARK, REWIND     no-ops
 *
 * A refusal is a failure, except for sizes above FL_MAX_REQUEST (and
 * alignments that make the request too big): the heap grows on demand.
 */
#include "fl.h"
#include "fuzz.h"

#include <errno.h>
#include <string.h>

static bool check(void *h)
{
    return fl_check(h);
}

/* May fl refuse this request? Only when it is too big to serve. */
static bool too_big(size_t size, size_t align)
{
    return size > FL_MAX_REQUEST || align > FL_MAX_REQUEST ||
           size + align > FL_MAX_REQUEST;
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    static const fl_policy policies[] = {FL_FIRST_FIT, FL_NEXT_FIT,
                                         FL_BEST_FIT};
    fl_heap h;
    fl_init(&h, FL_FIRST_FIT);
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "04-freelist", FL_ALIGN);
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        fuzz_block b;
        void *p;
        switch (op.kind) {
        case FUZZ_ALLOC:
        case FUZZ_ALIGNED:
            if (fuzz_full(&t))
                break;
            errno = 0;
            if (op.kind == FUZZ_ALIGNED)
                p = fl_aligned_alloc(&h, op.align, op.size);
            else if (op.lane == 1)
                p = fl_calloc(&h, 1, op.size);
            else
                p = fl_alloc(&h, op.size);
            if (p != NULL && op.kind == FUZZ_ALLOC && op.lane == 1)
                for (size_t i = 0; i < op.size; i++)
                    if (((unsigned char *)p)[i] != 0)
                        fuzz_fail(&t, "fl_calloc(%zu): byte %zu not zero",
                                  op.size, i);
            fuzz_added(&t, p, op.size, op.kind == FUZZ_ALIGNED ? op.align : 1,
                       too_big(op.size, op.align), errno);
            break;
        case FUZZ_FREE:
            if (fuzz_take(&t, op.index, &b))
                fl_free(&h, b.p);
            break;
        case FUZZ_REALLOC:
            if (op.size == 0 || !fuzz_take(&t, op.index, &b))
                break; /* realloc(p, 0) is a free: FUZZ_FREE covers it */
            errno = 0;
            p = fl_realloc(&h, b.p, op.size);
            fuzz_resized(&t, b, p, op.size, too_big(op.size, FL_ALIGN), errno);
            break;
        case FUZZ_RESET:
            fl_quarantine_flush(&h);
            break;
        case FUZZ_SPECIAL:
            fl_set_policy(&h, policies[op.arg % 3]);
            break;
        case FUZZ_MARK:
        case FUZZ_REWIND:
            break;
        }
        fuzz_step(&t, check_every, check, &h, "fl_check");
    }
    while (t.live > 0) {
        fuzz_block b;
        fuzz_take(&t, 0, &b);
        fl_free(&h, b.p);
    }
    if (!fl_check(&h))
        fuzz_fail(&t, "fl_check() found the heap broken at the end");
    size_t ops = t.ops;
    fl_destroy(&h);
    return ops;
}
