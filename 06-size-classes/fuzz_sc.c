/*
 * fuzz_sc.c: stage 06 under libFuzzer (make fuzz-06) and the soak run
 * (make soak-06): common/fuzz.h's operations on one sc heap, sc_check()
 * after every op (under libFuzzer) or every ten thousand (soak).
 *
 *   ALLOC            sc_alloc (lane 1: sc_calloc, and every byte checked
 *                    zero); the block must be 16-byte aligned from 16 bytes
 *                    on, 8-byte aligned below
 *   ALIGNED          sc_aligned_alloc
 *   FREE, REALLOC    sc_free, sc_realloc of a live block
 *   RESET            sc_quarantine_flush (a heap has no reset)
 *   SPECIAL          arg % 4: 0 sc_release (every free page back), 1 retain
 *                    0 (every free run back at once), 2 retain 4 MiB (the
 *                    default), 3 retain 64 KiB
 *   MARK, REWIND     no-ops
 *
 * A refusal is a failure, except for sizes above SC_MAX_REQUEST (and
 * alignments that make the request too big): the heap grows on demand.
 */
#include "fuzz.h"
#include "sc.h"

#include <errno.h>
#include <string.h>

static bool check(void *h)
{
    return sc_check(h);
}

/* May sc refuse this request? Only when it is too big to serve. */
static bool too_big(size_t size, size_t align)
{
    return size > SC_MAX_REQUEST || align > SC_MAX_REQUEST ||
           size + align > SC_MAX_REQUEST;
}

/* The alignment every block of this size must have. */
static size_t align_for(size_t size)
{
    return size >= 16 ? SC_ALIGN : SC_MIN_ALIGN;
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    static const size_t retains[] = {0, 0, SC_RETAIN_DEFAULT, 64 << 10};
    sc_heap h;
    sc_init(&h);
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "06-size-classes", SC_MIN_ALIGN);
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        fuzz_block b;
        void *p;
        switch (op.kind) {
        case FUZZ_ALLOC:
        case FUZZ_ALIGNED: {
            if (fuzz_full(&t))
                break;
            errno = 0;
            size_t align = align_for(op.size);
            if (op.kind == FUZZ_ALIGNED) {
                p = sc_aligned_alloc(&h, op.align, op.size);
                if (op.align > align)
                    align = op.align;
            } else if (op.lane == 1) {
                p = sc_calloc(&h, 1, op.size);
            } else {
                p = sc_alloc(&h, op.size);
            }
            if (p != NULL && op.kind == FUZZ_ALLOC && op.lane == 1)
                for (size_t i = 0; i < op.size; i++)
                    if (((unsigned char *)p)[i] != 0)
                        fuzz_fail(&t, "sc_calloc(%zu): byte %zu not zero",
                                  op.size, i);
            fuzz_added(&t, p, op.size, align, too_big(op.size, op.align),
                       errno);
            break;
        }
        case FUZZ_FREE:
            if (fuzz_take(&t, op.index, &b))
                sc_free(&h, b.p);
            break;
        case FUZZ_REALLOC:
            if (op.size == 0 || !fuzz_take(&t, op.index, &b))
                break; /* realloc(p, 0) is a free: FUZZ_FREE covers it */
            errno = 0;
            p = sc_realloc(&h, b.p, op.size);
            if (p != NULL && (uintptr_t)p % align_for(op.size) != 0)
                fuzz_fail(&t, "sc_realloc(%zu) returned %p: misaligned",
                          op.size, p);
            fuzz_resized(&t, b, p, op.size, too_big(op.size, SC_ALIGN), errno);
            break;
        case FUZZ_RESET:
            sc_quarantine_flush(&h);
            break;
        case FUZZ_SPECIAL:
            if (op.arg % 4 == 0)
                sc_release(&h);
            else
                sc_set_retain(&h, retains[op.arg % 4]);
            break;
        case FUZZ_MARK:
        case FUZZ_REWIND:
            break;
        }
        fuzz_step(&t, check_every, check, &h, "sc_check");
    }
    while (t.live > 0) {
        fuzz_block b;
        fuzz_take(&t, 0, &b);
        sc_free(&h, b.p);
    }
    sc_quarantine_flush(&h);
    if (!sc_check(&h))
        fuzz_fail(&t, "sc_check() found the heap broken at the end");
    if (sc_stats(&h).live_blocks != 0)
        fuzz_fail(&t, "%zu blocks still live after every block was freed",
                  sc_stats(&h).live_blocks);
    size_t ops = t.ops;
    sc_destroy(&h);
    return ops;
}
