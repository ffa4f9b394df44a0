/*
 * common/fuzz.h: one operation language for every stage's fuzzer and soak
 * run, and the bookkeeping that checks the allocator's answers.
 *
 * A fuzz input is a byte string read as a sequence of operations. Each stage
 * has a small harness, fuzz_NAME.c, that defines fuzz_stage_run(): it makes
 * a fresh allocator, reads operations with fuzz_next(), performs the ones
 * its allocator supports (the others are no-ops), hands every answer to the
 * block table below, and calls its *_check() every `check_every` operations.
 * The same function runs under libFuzzer (common/fuzz/entry.c: check after
 * every op, ASan and UBSan watching) and in the soak run (common/fuzz/soak.c:
 * ten million random operations, a check every ten thousand).
 *
 * ---- The operation language ------------------------------------------
 *
 * Each operation is one code byte and its arguments:
 *
 *   code % 16   operation      arguments        meaning
 *   0-5         FUZZ_ALLOC     size             allocate size bytes
 *   6           FUZZ_ALIGNED   u8, size         alignment 1 << (u8 % 13)
 *   7-9         FUZZ_FREE      u16 index        free live block index % live
 *   10-11       FUZZ_REALLOC   u16 index, size  resize that block
 *   12          FUZZ_RESET     -                free everything at once
 *   13          FUZZ_MARK      -                remember the current state
 *   14          FUZZ_REWIND    -                go back to the last mark
 *   15          FUZZ_SPECIAL   u8               the stage's own (calloc, a
 *                                               policy switch, a trim...)
 *   code >> 4   lane (0-15): which thread or heap, for stages with several
 *
 * A size is one byte t, and more bytes by its top two bits:
 *   t >> 6 == 0   size = t & 63                       (0..63)
 *   t >> 6 == 1   size = u16 % 1024                   (0..1023)
 *   t >> 6 == 2   size = (u16 | u8 << 16) % 2^20      (0..1 MiB - 1)
 *   t >> 6 == 3   an edge size: one of fuzz_edge_sizes[], by (t & 63):
 *                 0, 1, 15, 16, 17, 32, 1008, 1024, 4096, 128 KiB, 256 KiB,
 *                 SIZE_MAX, SIZE_MAX - 15, SIZE_MAX - 4095, SIZE_MAX / 2 + 1
 * Integers are little-endian; an input that ends early reads zeros.
 *
 * ---- The block table -------------------------------------------------
 *
 * The live blocks, in a table of at most FUZZ_SLOTS: a new block goes at the
 * end, a freed one is replaced by the last (so "index" means the same thing
 * to the harness and to fuzz/trace2fuzz.c, which turns the committed traces
 * into the seed corpus). Every block is filled with a pattern made from its
 * serial number (first and last 4 KiB of a big block), checked at free, at
 * realloc (the kept prefix), before a reset or rewind, and at the end. Each
 * new block is checked for alignment and for overlap with every live block;
 * a refusal (NULL) must come with errno == ENOMEM (EINVAL for a bad
 * alignment), and is a failure unless the stage says it may refuse. A
 * failure prints what went wrong and aborts: libFuzzer keeps the input.
 */
#ifndef COMMON_FUZZ_H
#define COMMON_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Implemented by each stage's fuzz_NAME.c: runs the operations in data on a
   fresh allocator, calling its checker every check_every operations (1
   under libFuzzer), and frees everything at the end. Returns the number of
   operations run. */
size_t fuzz_stage_run(const uint8_t *data, size_t size, size_t check_every);

/* ---- Reading operations ---------------------------------------------- */

enum fuzz_kind {
    FUZZ_ALLOC,
    FUZZ_ALIGNED,
    FUZZ_FREE,
    FUZZ_REALLOC,
    FUZZ_RESET,
    FUZZ_MARK,
    FUZZ_REWIND,
    FUZZ_SPECIAL
};

typedef struct fuzz_op {
    enum fuzz_kind kind;
    unsigned lane;  /* code >> 4 */
    size_t size;    /* ALLOC, ALIGNED, REALLOC */
    size_t align;   /* ALIGNED: a power of two, 1 to 4096 */
    unsigned index; /* FREE, REALLOC: raw; reduce modulo the live count */
    unsigned arg;   /* SPECIAL */
} fuzz_op;

typedef struct fuzz_input {
    const uint8_t *p; /* next unread byte */
    const uint8_t *end;
} fuzz_input;

void fuzz_input_init(fuzz_input *in, const uint8_t *data, size_t size);
bool fuzz_more(const fuzz_input *in);
fuzz_op fuzz_next(fuzz_input *in);

#define FUZZ_EDGE_SIZES 15
extern const size_t fuzz_edge_sizes[FUZZ_EDGE_SIZES];

/* The inverse, for making inputs (trace2fuzz, tests): appends the encoding
   of op to buf (at most FUZZ_OP_MAX bytes) and returns the bytes written.
   Sizes of 1 MiB or more are written as the nearest edge size. */
#define FUZZ_OP_MAX 8
size_t fuzz_encode(const fuzz_op *op, uint8_t *buf);

/* ---- The block table ------------------------------------------------- */

#define FUZZ_SLOTS 512

typedef struct fuzz_block {
    unsigned char *p;
    size_t size;     /* bytes requested */
    uint32_t serial; /* seeds the pattern */
} fuzz_block;

typedef struct fuzz_blocks {
    const char *stage; /* for messages */
    size_t align;      /* every block must be aligned to this */
    fuzz_block b[FUZZ_SLOTS];
    size_t live;
    uint32_t next_serial;
    size_t ops; /* operations so far, for messages */
} fuzz_blocks;

void fuzz_blocks_init(fuzz_blocks *t, const char *stage, size_t align);
bool fuzz_full(const fuzz_blocks *t);

/* An allocation's answer: p for a request of size bytes aligned to align
   (at least the table's), err the errno it left. A NULL with ENOMEM (or
   EINVAL, when bad_align) is accepted when may_refuse; a block is checked,
   filled and added. The table must not be full (check fuzz_full first). */
void fuzz_added(fuzz_blocks *t, void *p, size_t size, size_t align,
                bool may_refuse, int err);

/* Removes live block index % live after checking its pattern; false if
   none is live. */
bool fuzz_take(fuzz_blocks *t, unsigned index, fuzz_block *out);

/* A realloc's answer for block `old` (already taken out): q NULL keeps old
   (which must still be intact, and is put back) and is accepted when
   may_refuse with errno ENOMEM; otherwise q must hold old's first
   min(old, new) bytes, and becomes a block of new_size bytes. */
void fuzz_resized(fuzz_blocks *t, fuzz_block old, void *q, size_t new_size,
                  bool may_refuse, int err);

/* Checks every live block's pattern. */
void fuzz_verify_all(const fuzz_blocks *t);

/* Forgets the blocks from n on (after a rewind), or all (after a reset),
   checking them first. */
void fuzz_truncate(fuzz_blocks *t, size_t n);

/* Reports a failure (printf-style) with the stage and op number, aborts. */
void fuzz_fail(const fuzz_blocks *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* After an op: counts it, and runs check (if not NULL) every check_every
   operations; a false result is a failure named after `checker`. */
void fuzz_step(fuzz_blocks *t, size_t check_every, bool (*check)(void *),
               void *ctx, const char *checker);

#endif /* COMMON_FUZZ_H */
