/*
 * common/selftest/test_harness.c: the harness tests itself: its random
 * range stays in range, and test_aborts_with tells an abort with the right
 * message from every other ending.
 */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

static void says_and_aborts(void *arg)
{
    fprintf(stderr, "01-bump: bump_rewind(%p): mark past the offset\n", arg);
    abort();
}

static void returns_quietly(void *arg)
{
    (void)arg;
}

static void aborts_silently(void *arg)
{
    (void)arg;
    abort();
}

static void exits_with_message(void *arg)
{
    fprintf(stderr, "01-bump: bump_rewind(%p): mark past the offset\n", arg);
    exit(3);
}

static void test_aborts_with_tells_endings_apart(void)
{
    CHECK(test_aborts_with(says_and_aborts, NULL, "mark past the offset"));
    CHECK(!test_aborts_with(says_and_aborts, NULL, "double free"));
    CHECK(!test_aborts_with(returns_quietly, NULL, "mark past the offset"));
    CHECK(!test_aborts_with(aborts_silently, NULL, "mark past the offset"));
    CHECK(!test_aborts_with(exits_with_message, NULL, "mark past the offset"));
}

static void test_rand_range_stays_in_range(void)
{
    int seen[8] = {0};
    for (int i = 0; i < 10000; i++) {
        size_t v = test_rand_range(3, 10);
        REQUIRE(v >= 3 && v <= 10);
        seen[v - 3]++;
    }
    for (int i = 0; i < 8; i++)
        CHECK_NE(seen[i], 0); /* every value comes up in 10000 draws */
    CHECK_EQ(test_rand_range(5, 5), 5);
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_aborts_with_tells_endings_apart);
    RUN_TEST(test_rand_range_stays_in_range);
    return test_finish();
}
