/*
 * fuzz_gm.c: stage 07 under libFuzzer (make fuzz-07) and the soak run
 * (make soak-07): common/fuzz.h's operations on the one heap, from three
 * threads, gm_check() after every op (under libFuzzer) or every ten
 * thousand (soak).
 *
 *   lane % 3         which thread performs the op: this one, or one of two
 *                    workers, one op at a time (the others wait, so a run
 *                    replays exactly); a block allocated by one lane and
 *                    freed or resized by another crosses threads
 *   ALLOC            gm_malloc (lane / 3 odd: gm_calloc, every byte checked
 *                    zero); aligned 16 from 16 bytes on, below that to the
 *                    largest power of two at most the size
 *   ALIGNED          gm_aligned_alloc
 *   FREE, REALLOC    gm_free, gm_realloc of a live block
 *   RESET            every thread's quarantine flushed (no reset here)
 *   SPECIAL          arg % 6: 0 gm_trim, 1 gm_thread_release (in the
 *                    lane's thread), 2 the tiny allocator switched, 3
 *                    scavenging in the freeing thread, 4 scavenging off,
 *                    5 the goal switched between 0 and 1 MiB
 *   MARK, REWIND     no-ops
 *
 * A refusal is a failure, except for sizes above GM_MAX_REQUEST (and
 * alignments that make the request too big): the heap grows on demand.
 * At the end every block is freed, each thread gives its cache back, and
 * the heap must be sound and empty before gm_destroy.
 */
#include "fuzz.h"
#include "gm.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* ---- The workers: one op at a time, on request ------------------------- */

typedef struct worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void (*fn)(void *); /* the op to run; NULL: none pending */
    void *arg;
} worker;

static worker workers[2];

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->fn == NULL)
            pthread_cond_wait(&w->cond, &w->lock);
        w->fn(w->arg);
        w->fn = NULL;
        pthread_cond_broadcast(&w->cond);
    }
    return NULL;
}

/* Runs fn(arg) in lane's thread and waits for it. */
static void on_lane(unsigned lane, void (*fn)(void *), void *arg)
{
    static bool started;
    if (lane % 3 == 0) {
        fn(arg);
        return;
    }
    if (!started) {
        for (int i = 0; i < 2; i++) {
            pthread_mutex_init(&workers[i].lock, NULL);
            pthread_cond_init(&workers[i].cond, NULL);
            pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        }
        started = true;
    }
    worker *w = &workers[lane % 3 - 1];
    pthread_mutex_lock(&w->lock);
    w->fn = fn;
    w->arg = arg;
    pthread_cond_broadcast(&w->cond);
    while (w->fn != NULL)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

/* ---- The ops, as functions a lane runs ----------------------------------- */

typedef struct call {
    int kind; /* 0 malloc, 1 calloc, 2 aligned, 3 free, 4 realloc, 5 trim,
                 6 thread release, 7 quarantine flush */
    void *p;
    size_t size, align;
    void *result;
    int err;
} call;

static void run_call(void *arg)
{
    call *c = arg;
    errno = 0;
    switch (c->kind) {
    case 0:
        c->result = gm_malloc(c->size);
        break;
    case 1:
        c->result = gm_calloc(1, c->size);
        break;
    case 2:
        c->result = gm_aligned_alloc(c->align, c->size);
        break;
    case 3:
        gm_free(c->p);
        break;
    case 4:
        c->result = gm_realloc(c->p, c->size);
        break;
    case 5:
        gm_trim();
        break;
    case 6:
        gm_thread_release();
        break;
    default:
        gm_quarantine_flush();
        break;
    }
    c->err = errno;
}

static bool check(void *ctx)
{
    (void)ctx;
    return gm_check();
}

/* May the allocator refuse this request? Only when it is too big. */
static bool too_big(size_t size, size_t align)
{
    return size > GM_MAX_REQUEST || align > GM_MAX_REQUEST ||
           size + align > GM_MAX_REQUEST;
}

/* The alignment every block of this size must have: 16 from 16 bytes on,
 * below that the largest power of two at most the size (C's rule; the
 * tiny allocator off gives 8 or 16, the unit tests check that). */
static size_t align_for(size_t size)
{
    if (size >= 16)
        return 16;
    size_t a = 1;
    while (a * 2 <= size)
        a *= 2;
    return a;
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    gm_destroy();
    gm_set_scavenge(GM_SCAVENGE_SYNC);
    gm_set_tiny(true);
    gm_set_retain((size_t)1 << 20);
    bool tiny = true, retain_zero = false;
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "07-tcmalloc-go", 1);
    fuzz_input in;
    fuzz_input_init(&in, data, size);
    while (fuzz_more(&in)) {
        fuzz_op op = fuzz_next(&in);
        fuzz_block b;
        call c;
        memset(&c, 0, sizeof c);
        switch (op.kind) {
        case FUZZ_ALLOC:
        case FUZZ_ALIGNED: {
            if (fuzz_full(&t))
                break;
            /* With the tiny allocator switched off, another thread's
             * current block still serves it: C's alignment either way. */
            size_t align = align_for(op.size);
            c.size = op.size;
            if (op.kind == FUZZ_ALIGNED) {
                c.kind = 2;
                c.align = op.align;
                if (op.align > align)
                    align = op.align;
            } else {
                c.kind = (op.lane / 3) % 2 == 1 ? 1 : 0;
            }
            on_lane(op.lane, run_call, &c);
            if (c.result != NULL && c.kind == 1)
                for (size_t i = 0; i < op.size; i++)
                    if (((unsigned char *)c.result)[i] != 0)
                        fuzz_fail(&t, "gm_calloc(%zu): byte %zu not zero",
                                  op.size, i);
            fuzz_added(&t, c.result, op.size, align, too_big(op.size, op.align),
                       c.err);
            break;
        }
        case FUZZ_FREE:
            if (fuzz_take(&t, op.index, &b)) {
                c.kind = 3;
                c.p = b.p;
                on_lane(op.lane, run_call, &c);
                if (c.err != 0)
                    fuzz_fail(&t, "gm_free changed errno to %d", c.err);
            }
            break;
        case FUZZ_REALLOC:
            if (op.size == 0 || !fuzz_take(&t, op.index, &b))
                break; /* realloc(p, 0) is a free: FUZZ_FREE covers it */
            c.kind = 4;
            c.p = b.p;
            c.size = op.size;
            on_lane(op.lane, run_call, &c);
            if (c.result != NULL &&
                (uintptr_t)c.result % align_for(op.size) != 0)
                fuzz_fail(&t, "gm_realloc(%zu) returned %p: misaligned",
                          op.size, c.result);
            fuzz_resized(&t, b, c.result, op.size, too_big(op.size, 16), c.err);
            break;
        case FUZZ_RESET:
            for (unsigned lane = 0; lane < 3; lane++) {
                c.kind = 7;
                on_lane(lane, run_call, &c);
            }
            break;
        case FUZZ_SPECIAL:
            switch (op.arg % 6) {
            case 0:
            case 1:
                c.kind = op.arg % 6 == 0 ? 5 : 6;
                on_lane(op.lane, run_call, &c);
                break;
            case 2:
                tiny = !tiny;
                gm_set_tiny(tiny);
                break;
            case 3:
                gm_set_scavenge(GM_SCAVENGE_SYNC);
                break;
            case 4:
                gm_set_scavenge(GM_SCAVENGE_OFF);
                break;
            default:
                retain_zero = !retain_zero;
                gm_set_retain(retain_zero ? 0 : (size_t)1 << 20);
                break;
            }
            break;
        case FUZZ_MARK:
        case FUZZ_REWIND:
            break;
        }
        fuzz_step(&t, check_every, check, NULL, "gm_check");
    }
    while (t.live > 0) {
        fuzz_block b;
        fuzz_take(&t, 0, &b);
        gm_free(b.p);
    }
    for (unsigned lane = 0; lane < 3; lane++) {
        call c = {.kind = 6};
        on_lane(lane, run_call, &c);
    }
    if (!gm_check())
        fuzz_fail(&t, "gm_check() found the heap broken at the end: %s",
                  gm_check_why());
    gm_stats_t st = gm_stats();
    if (st.live_small + st.live_large != 0)
        fuzz_fail(&t, "%zu blocks still live after every block was freed",
                  st.live_small + st.live_large);
    size_t ops = t.ops;
    gm_destroy();
    return ops;
}
