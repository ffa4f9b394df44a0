/*
 * common/selftest/test_fuzz.c: the fuzzers' operation language and block
 * table (common/fuzz.h) are right: what fuzz_encode writes, fuzz_next reads
 * back; and the table catches each wrong answer an allocator can give (a
 * misaligned or overlapping block, a byte changed in a live block, a lost
 * byte in a realloc, a refusal with the wrong errno or where none is
 * allowed), while it accepts right ones.
 */
#include "fuzz.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_encode_then_decode_is_the_same_op(void)
{
    for (int i = 0; i < 20000; i++) {
        fuzz_op op = {0};
        op.kind = (enum fuzz_kind)test_rand_range(FUZZ_ALLOC, FUZZ_SPECIAL);
        op.lane = (unsigned)test_rand_range(0, 15);
        size_t r = test_rand_range(0, 3);
        op.size = r == 0   ? test_rand_range(0, 63)
                  : r == 1 ? test_rand_range(64, 1023)
                  : r == 2 ? test_rand_range(1024, (1u << 20) - 1)
                           : fuzz_edge_sizes[test_rand_range(0, 14)];
        bool sized = op.kind == FUZZ_ALLOC || op.kind == FUZZ_ALIGNED ||
                     op.kind == FUZZ_REALLOC;
        if (!sized)
            op.size = 0;
        if (op.kind == FUZZ_ALIGNED)
            op.align = (size_t)1 << test_rand_range(0, 12);
        if (op.kind == FUZZ_FREE || op.kind == FUZZ_REALLOC)
            op.index = (unsigned)test_rand_range(0, 65535);
        if (op.kind == FUZZ_SPECIAL)
            op.arg = (unsigned)test_rand_range(0, 255);
        uint8_t buf[FUZZ_OP_MAX];
        size_t n = fuzz_encode(&op, buf);
        REQUIRE(n <= FUZZ_OP_MAX);
        fuzz_input in;
        fuzz_input_init(&in, buf, n);
        fuzz_op back = fuzz_next(&in);
        CHECK(!fuzz_more(&in)); /* read exactly what was written */
        CHECK_EQ(back.kind, op.kind);
        CHECK_EQ(back.lane, op.lane);
        CHECK_EQ(back.size, op.size);
        CHECK_EQ(back.align, op.align);
        CHECK_EQ(back.index, op.index);
        if (!CHECK_EQ(back.arg, op.arg))
            return;
    }
}

static void test_short_input_reads_zeros(void)
{
    const uint8_t one = 7; /* FUZZ_FREE, with its index missing */
    fuzz_input in;
    fuzz_input_init(&in, &one, 1);
    fuzz_op op = fuzz_next(&in);
    CHECK_EQ(op.kind, FUZZ_FREE);
    CHECK_EQ(op.index, 0);
    CHECK(!fuzz_more(&in));
}

static fuzz_blocks T; /* static: 12 KiB */
static unsigned char arena[4096] __attribute__((aligned(64)));

static void table_with_two(void)
{
    fuzz_blocks_init(&T, "selftest", 16);
    fuzz_added(&T, arena, 100, 1, false, 0);
    fuzz_added(&T, arena + 128, 50, 1, false, 0);
}

static void add_misaligned(void *arg)
{
    (void)arg;
    table_with_two();
    fuzz_added(&T, arena + 264, 10, 1, false, 0);
}
static void add_overlapping(void *arg)
{
    (void)arg;
    table_with_two();
    fuzz_added(&T, arena + 160, 10, 1, false, 0);
}
static void add_refused_when_not_allowed(void *arg)
{
    (void)arg;
    table_with_two();
    fuzz_added(&T, NULL, 10, 1, false, ENOMEM);
}
static void add_refused_with_wrong_errno(void *arg)
{
    (void)arg;
    table_with_two();
    fuzz_added(&T, NULL, SIZE_MAX, 1, true, EINVAL);
}
static void take_after_a_write(void *arg)
{
    (void)arg;
    table_with_two();
    arena[7] ^= 1;
    fuzz_block b;
    fuzz_take(&T, 0, &b);
}
static void realloc_that_lost_a_byte(void *arg)
{
    (void)arg;
    table_with_two();
    fuzz_block b;
    fuzz_take(&T, 0, &b);
    memmove(arena + 256, arena, 100);
    arena[256 + 99] ^= 1;
    fuzz_resized(&T, b, arena + 256, 200, false, 0);
}

static void test_table_catches_wrong_answers(void)
{
    CHECK_ABORTS(add_misaligned, NULL, "is not aligned to 16");
    CHECK_ABORTS(add_overlapping, NULL, "overlaps live block");
    CHECK_ABORTS(add_refused_when_not_allowed, NULL, "which must not be");
    CHECK_ABORTS(add_refused_with_wrong_errno, NULL, "not ENOMEM");
    CHECK_ABORTS(take_after_a_write, NULL, "wrote into a live block");
    CHECK_ABORTS(realloc_that_lost_a_byte, NULL, "lost byte 99");
}

static void test_table_accepts_right_answers(void)
{
    table_with_two();
    fuzz_added(&T, NULL, SIZE_MAX, 1, true, ENOMEM); /* allowed refusal */
    CHECK_EQ(T.live, 2);
    fuzz_block b;
    REQUIRE(fuzz_take(&T, 2, &b)); /* 2 % 2: the first block */
    CHECK_PTR_EQ(b.p, arena);
    CHECK_EQ(T.live, 1);
    CHECK_PTR_EQ(T.b[0].p, arena + 128); /* the last moved into its slot */
    memmove(arena + 256, arena, 100);    /* a realloc that moved it */
    fuzz_resized(&T, b, arena + 256, 300, false, 0);
    CHECK_EQ(T.live, 2);
    CHECK_EQ(T.b[1].size, 300);
    fuzz_verify_all(&T);
    fuzz_truncate(&T, 1);
    CHECK_EQ(T.live, 1);
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_encode_then_decode_is_the_same_op);
    RUN_TEST(test_short_input_reads_zeros);
    RUN_TEST(test_table_catches_wrong_answers);
    RUN_TEST(test_table_accepts_right_answers);
    return test_finish();
}
