/*
 * common/fuzz.c: the operation language and the block table of fuzz.h.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const size_t fuzz_edge_sizes[FUZZ_EDGE_SIZES] = {0,
                                                 1,
                                                 15,
                                                 16,
                                                 17,
                                                 32,
                                                 1008,
                                                 1024,
                                                 4096,
                                                 128 << 10,
                                                 256 << 10,
                                                 SIZE_MAX,
                                                 SIZE_MAX - 15,
                                                 SIZE_MAX - 4095,
                                                 SIZE_MAX / 2 + 1};

/* ---- Reading ----------------------------------------------------------- */

void fuzz_input_init(fuzz_input *in, const uint8_t *data, size_t size)
{
    in->p = data;
    in->end = data + size;
}

bool fuzz_more(const fuzz_input *in)
{
    return in->p < in->end;
}

static unsigned get_u8(fuzz_input *in)
{
    return in->p < in->end ? *in->p++ : 0;
}

static unsigned get_u16(fuzz_input *in)
{
    unsigned lo = get_u8(in);
    return lo | get_u8(in) << 8;
}

static size_t get_size(fuzz_input *in)
{
    unsigned t = get_u8(in);
    switch (t >> 6) {
    case 0:
        return t & 63;
    case 1:
        return get_u16(in) % 1024;
    case 2: {
        size_t lo = get_u16(in);
        return (lo | (size_t)get_u8(in) << 16) % ((size_t)1 << 20);
    }
    default:
        return fuzz_edge_sizes[(t & 63) % FUZZ_EDGE_SIZES];
    }
}

fuzz_op fuzz_next(fuzz_input *in)
{
    fuzz_op op = {0};
    unsigned code = get_u8(in);
    unsigned k = code % 16;
    op.lane = code >> 4;
    if (k <= 5) {
        op.kind = FUZZ_ALLOC;
        op.size = get_size(in);
    } else if (k == 6) {
        op.kind = FUZZ_ALIGNED;
        op.align = (size_t)1 << (get_u8(in) % 13);
        op.size = get_size(in);
    } else if (k <= 9) {
        op.kind = FUZZ_FREE;
        op.index = get_u16(in);
    } else if (k <= 11) {
        op.kind = FUZZ_REALLOC;
        op.index = get_u16(in);
        op.size = get_size(in);
    } else if (k == 12) {
        op.kind = FUZZ_RESET;
    } else if (k == 13) {
        op.kind = FUZZ_MARK;
    } else if (k == 14) {
        op.kind = FUZZ_REWIND;
    } else {
        op.kind = FUZZ_SPECIAL;
        op.arg = get_u8(in);
    }
    return op;
}

/* ---- Writing (the inverse, for trace2fuzz) ---------------------------- */

static size_t put_size(size_t size, uint8_t *buf)
{
    if (size < 64) {
        buf[0] = (uint8_t)size;
        return 1;
    }
    if (size < ((size_t)1 << 20)) {
        buf[0] = 2 << 6;
        buf[1] = (uint8_t)size;
        buf[2] = (uint8_t)(size >> 8);
        buf[3] = (uint8_t)(size >> 16);
        return 4;
    }
    unsigned best = 0; /* the nearest edge size (1 MiB and up: the largest
                          below SIZE_MAX / 2, 256 KiB, is as near as any) */
    for (unsigned i = 0; i < FUZZ_EDGE_SIZES; i++)
        if (fuzz_edge_sizes[i] <= size &&
            fuzz_edge_sizes[i] > fuzz_edge_sizes[best])
            best = i;
    buf[0] = (uint8_t)(3 << 6 | best);
    return 1;
}

size_t fuzz_encode(const fuzz_op *op, uint8_t *buf)
{
    static const unsigned code_of[] = {
        [FUZZ_ALLOC] = 0,    [FUZZ_ALIGNED] = 6, [FUZZ_FREE] = 7,
        [FUZZ_REALLOC] = 10, [FUZZ_RESET] = 12,  [FUZZ_MARK] = 13,
        [FUZZ_REWIND] = 14,  [FUZZ_SPECIAL] = 15};
    size_t n = 0;
    buf[n++] = (uint8_t)(code_of[op->kind] | (op->lane & 15) << 4);
    switch (op->kind) {
    case FUZZ_ALIGNED: {
        unsigned shift = 0;
        while (shift < 12 && ((size_t)1 << shift) < op->align)
            shift++;
        buf[n++] = (uint8_t)shift;
    }
        /* fall through */
    case FUZZ_ALLOC:
        n += put_size(op->size, buf + n);
        break;
    case FUZZ_REALLOC:
    case FUZZ_FREE:
        buf[n++] = (uint8_t)op->index;
        buf[n++] = (uint8_t)(op->index >> 8);
        if (op->kind == FUZZ_REALLOC)
            n += put_size(op->size, buf + n);
        break;
    case FUZZ_SPECIAL:
        buf[n++] = (uint8_t)op->arg;
        break;
    default:
        break;
    }
    return n;
}

/* ---- The block table ---------------------------------------------------- */

void fuzz_fail(const fuzz_blocks *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz %s: after op %zu: ", t->stage, t->ops);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void fuzz_blocks_init(fuzz_blocks *t, const char *stage, size_t align)
{
    memset(t, 0, sizeof *t);
    t->stage = stage;
    t->align = align;
}

bool fuzz_full(const fuzz_blocks *t)
{
    return t->live == FUZZ_SLOTS;
}

/* The pattern byte at offset i of the block with this serial. */
static unsigned char pattern(uint32_t serial, size_t i)
{
    return (unsigned char)((size_t)serial * 131u + i + (i >> 8) * 7u + 1);
}

/* The offsets that carry the pattern: all of a small block; the first and
 * last 4 KiB of one over 8 KiB (a big block filled whole would make the
 * fuzzer spend its time in memset). Offset i is followed by next(size, i). */
#define FUZZ_EDGE ((size_t)4096)
static size_t next(size_t size, size_t i)
{
    i++;
    return size > 2 * FUZZ_EDGE && i == FUZZ_EDGE ? size - FUZZ_EDGE : i;
}

static void fill(const fuzz_block *b)
{
    for (size_t i = 0; i < b->size; i = next(b->size, i))
        b->p[i] = pattern(b->serial, i);
}

/* The first patterned offset below n whose byte is wrong; n if none. The
 * pattern's offsets are those of the block's own size (n may be less: the
 * prefix a realloc keeps). */
static size_t first_bad(const fuzz_block *b, size_t n)
{
    for (size_t i = 0; i < n; i = next(b->size, i))
        if (b->p[i] != pattern(b->serial, i))
            return i;
    return n;
}

static void verify(const fuzz_blocks *t, const fuzz_block *b, size_t n)
{
    size_t i = first_bad(b, n);
    if (i < n)
        fuzz_fail(t,
                  "block #%u at %p (%zu bytes): byte %zu is 0x%02x, not "
                  "0x%02x: something wrote into a live block",
                  (unsigned)b->serial, (void *)b->p, b->size, i, b->p[i],
                  pattern(b->serial, i));
}

void fuzz_verify_all(const fuzz_blocks *t)
{
    for (size_t k = 0; k < t->live; k++)
        verify(t, &t->b[k], t->b[k].size);
}

/* A new block at p of size bytes must not overlap a live one. */
static void check_placement(const fuzz_blocks *t, const void *p, size_t size,
                            size_t align)
{
    if ((uintptr_t)p % align != 0)
        fuzz_fail(t, "%p for %zu bytes is not aligned to %zu", p, size, align);
    uintptr_t lo = (uintptr_t)p, hi = lo + (size ? size : 1);
    for (size_t k = 0; k < t->live; k++) {
        uintptr_t blo = (uintptr_t)t->b[k].p;
        uintptr_t bhi = blo + (t->b[k].size ? t->b[k].size : 1);
        if (lo < bhi && blo < hi)
            fuzz_fail(t, "%p (%zu bytes) overlaps live block #%u at %p (%zu)",
                      p, size, (unsigned)t->b[k].serial, (void *)t->b[k].p,
                      t->b[k].size);
    }
}

static void refusal(const fuzz_blocks *t, const char *what, size_t size,
                    bool may_refuse, int err, bool bad_align)
{
    if (!may_refuse)
        fuzz_fail(t, "%s of %zu bytes refused (errno %d), which must not be",
                  what, size, err);
    if (err != ENOMEM && !(bad_align && err == EINVAL))
        fuzz_fail(t, "%s of %zu bytes refused with errno %d, not ENOMEM", what,
                  size, err);
}

void fuzz_added(fuzz_blocks *t, void *p, size_t size, size_t align,
                bool may_refuse, int err)
{
    if (align < t->align)
        align = t->align;
    if (p == NULL) {
        refusal(t, "alloc", size, may_refuse, err, (align & (align - 1)) != 0);
        return;
    }
    if (fuzz_full(t))
        fuzz_fail(t, "harness bug: table full");
    check_placement(t, p, size, align);
    fuzz_block b = {p, size, t->next_serial++};
    fill(&b);
    t->b[t->live++] = b;
}

bool fuzz_take(fuzz_blocks *t, unsigned index, fuzz_block *out)
{
    if (t->live == 0)
        return false;
    size_t k = index % t->live;
    *out = t->b[k];
    verify(t, out, out->size);
    t->b[k] = t->b[--t->live];
    return true;
}

void fuzz_resized(fuzz_blocks *t, fuzz_block old, void *q, size_t new_size,
                  bool may_refuse, int err)
{
    if (q == NULL) {
        refusal(t, "realloc", new_size, may_refuse, err, false);
        verify(t, &old, old.size); /* a refused realloc keeps the block */
        t->b[t->live++] = old;
        return;
    }
    fuzz_block moved = {q, old.size, old.serial};
    size_t keep = old.size < new_size ? old.size : new_size;
    size_t i = first_bad(&moved, keep);
    if (i < keep)
        fuzz_fail(t, "realloc of #%u to %zu bytes at %p lost byte %zu",
                  (unsigned)old.serial, new_size, q, i);
    check_placement(t, q, new_size, t->align);
    fuzz_block b = {q, new_size, t->next_serial++};
    fill(&b);
    t->b[t->live++] = b;
}

void fuzz_truncate(fuzz_blocks *t, size_t n)
{
    for (size_t k = n; k < t->live; k++)
        verify(t, &t->b[k], t->b[k].size);
    if (n < t->live)
        t->live = n;
}

void fuzz_step(fuzz_blocks *t, size_t check_every, bool (*check)(void *),
               void *ctx, const char *checker)
{
    t->ops++;
    if (check != NULL && check_every != 0 && t->ops % check_every == 0 &&
        !check(ctx))
        fuzz_fail(t, "%s() found the heap broken", checker);
}
