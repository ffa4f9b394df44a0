/*
 * fuzz_arena.c: stage 05 under libFuzzer (make fuzz-05) and the soak run
 * (make soak): common/fuzz.h's operations on a fresh allocator per input
 * (arena_teardown before and after), arena_check() after every op (under
 * libFuzzer) or every ten thousand (soak).
 *
 *   ALLOC            arena_malloc; lane 1: arena_calloc (every byte zero)
 *   ALIGNED          arena_memalign
 *   FREE, REALLOC    arena_free, arena_realloc of a live block
 *   RESET            arena_trim(0): every arena consolidated, trimmed, its
 *                    free chunks' pages released (the blocks stay)
 *   SPECIAL          arg % 5: 0 the per-thread cache on or off (arg bit 3),
 *                    1 the fast bins on or off, 2 the calling thread's cache
 *                    and quarantine flushed, 3 the mmap threshold set to
 *                    arg * 4 KiB (which also stops it moving), 4 arena_dump
 *                    into a memory stream
 *   MARK, REWIND     no-ops
 *
 * One thread: the lanes do not pick threads (the tests and the shim suite
 * run the threaded paths; a fuzzer's input would not replay the same
 * interleaving twice). A refusal is a failure, except for sizes too big to
 * serve (above ARENA_MAX_REQUEST, or an alignment that makes them so).
 */
#include "arena.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool check(void *unused)
{
    (void)unused;
    return arena_check();
}

static bool too_big(size_t size, size_t align)
{
    return size > ARENA_MAX_REQUEST || align > ARENA_MAX_REQUEST;
}

static void special(const fuzz_blocks *t, unsigned arg)
{
    switch (arg % 5) {
    case 0:
        arena_set(ARENA_TCACHE_COUNT, (arg & 8) ? 0 : 7);
        break;
    case 1:
        arena_set(ARENA_MAX_FAST, (arg & 8) ? 0 : 120);
        break;
    case 2:
        arena_thread_flush();
        break;
    case 3:
        arena_set(ARENA_MMAP_THRESHOLD, (size_t)(arg % 64) * 4096);
        break;
    default: {
        static char out[1 << 16];
        FILE *f = fmemopen(out, sizeof out, "w");
        if (f == NULL)
            return;
        arena_dump(f);
        fclose(f);
        if (strncmp(out, "arena 0 (main)", 14) != 0)
            fuzz_fail(t, "arena_dump wrote \"%.40s\"", out);
    }
    }
}

size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every)
{
    arena_teardown();
    static fuzz_blocks t;
    fuzz_blocks_init(&t, "05-arena", ARENA_ALIGN);
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
                p = arena_memalign(op.align, op.size);
            else if (op.lane == 1)
                p = arena_calloc(1, op.size);
            else
                p = arena_malloc(op.size);
            if (p != NULL && op.kind == FUZZ_ALLOC && op.lane == 1)
                for (size_t i = 0; i < op.size; i++)
                    if (((unsigned char *)p)[i] != 0)
                        fuzz_fail(&t, "arena_calloc(%zu): byte %zu not zero",
                                  op.size, i);
            fuzz_added(&t, p, op.size, op.kind == FUZZ_ALIGNED ? op.align : 1,
                       too_big(op.size, op.align), errno);
            break;
        case FUZZ_FREE:
            if (fuzz_take(&t, op.index, &b)) {
                errno = 4242;
                arena_free(b.p);
                if (errno != 4242)
                    fuzz_fail(&t, "arena_free changed errno to %d", errno);
            }
            break;
        case FUZZ_REALLOC:
            if (op.size == 0 || !fuzz_take(&t, op.index, &b))
                break; /* realloc(p, 0) is a free: FUZZ_FREE covers it */
            errno = 0;
            p = arena_realloc(b.p, op.size);
            fuzz_resized(&t, b, p, op.size, too_big(op.size, ARENA_ALIGN),
                         errno);
            break;
        case FUZZ_RESET:
            arena_trim(0);
            break;
        case FUZZ_SPECIAL:
            special(&t, op.arg);
            break;
        case FUZZ_MARK:
        case FUZZ_REWIND:
            break;
        }
        fuzz_step(&t, check_every, check, NULL, "arena_check");
    }
    while (t.live > 0) {
        fuzz_block b;
        fuzz_take(&t, 0, &b);
        arena_free(b.p);
    }
    arena_thread_flush();
    if (!arena_check())
        fuzz_fail(&t, "arena_check() found the heap broken at the end: %s",
                  arena_check_why());
    size_t ops = t.ops;
    if (arena_teardown() != 0)
        fuzz_fail(&t, "blocks still live after every block was freed");
    return ops;
}
