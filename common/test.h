/*
 * common/test.h: the small test harness that every stage's tests use.
 *
 * A test binary is a list of named test cases:
 *
 *     static void test_alloc_aligns(void) { CHECK_EQ((uintptr_t)p % 16, 0); }
 *
 *     int main(int argc, char **argv) {
 *         test_init(argc, argv);
 *         RUN_TEST(test_alloc_aligns);
 *         return test_finish();
 *     }
 *
 * A check that fails prints its file, line, expression and both values, and
 * marks the current test case failed; the case goes on, so one run shows every
 * failed check. REQUIRE stops the case at once (use it where going on would
 * crash, for example after a NULL pointer).
 *
 * test_finish() prints one line "<binary>: N passed, N failed, N skipped",
 * counting test cases, and returns the exit status (non-zero on any failure).
 *
 * Randomness: every case draws from test_rand(), seeded from one run seed.
 * The seed is printed at the start; TEST_SEED=<seed> replays a run exactly.
 * Each case is seeded from the run seed and its own name, so a case replays
 * the same way whether it runs alone (TEST_ONLY=<name>) or with the others.
 *
 * Environment:
 *     TEST_SEED=<n>      replay a run (decimal or 0x-hex)
 *     TEST_ONLY=<name>   run only the cases whose name contains <name>; a
 *                        filter that matches no case fails the run
 *     TEST_QUICK=1       scale op counts down (automatic under Valgrind)
 *     TEST_VERBOSE=1     print every passing case, not only the failures
 *     TEST_VERBOSE=2     also print "run  <name>" before each case starts
 */
#ifndef COMMON_TEST_H
#define COMMON_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void test_init(int argc, char **argv);
int test_finish(void);

/* Runs one named case (skipped when TEST_ONLY does not match it). */
void test_run(const char *name, void (*fn)(void));
#define RUN_TEST(fn) test_run(#fn, fn)

/* Marks the current case skipped, with the reason printed; return after it. */
void test_skip(const char *reason);

/* The run's seed, and the current case's random stream (splitmix64). */
uint64_t test_seed(void);
uint64_t test_rand(void);
/* A uniform integer in [lo, hi] (inclusive). */
size_t test_rand_range(size_t lo, size_t hi);

/*
 * n scaled for slow runs: n / 10 (at least 1) under Valgrind or with
 * TEST_QUICK set, n otherwise. Op counts in randomized tests go through it.
 */
size_t test_scale(size_t n);

/*
 * Runs fn(arg) in a child process and reports whether it was killed by
 * SIGABRT after writing `expect` somewhere on stderr. This is how tests prove
 * that a double free or a foreign pointer is reported and stops the program.
 */
bool test_aborts_with(void (*fn)(void *), void *arg, const char *expect);

/*
 * Runs fn(arg) in a child process as a test run of its own, and reports
 * whether that run failed, and failed as expected: the child starts with
 * no counts and no TEST_ONLY filter, fn runs cases with test_run() (and the
 * checks inside them count as usual), and the child ends with its own
 * test_finish(). True when the child exited with a failure count and its
 * output (stdout and stderr together) contains `expect` (NULL: anything).
 * A child that crashed, or whose exit status is not the harness's (a
 * memory tool's error exit code, for example), does not count: the bug was
 * meant to be caught by checks, not by luck.
 *
 * This is how the conformance suite proves that it fails on broken
 * allocators without failing the test that shows it. Under Valgrind, the
 * child is watched too (--child-silent-after-fork hides its report, not its
 * exit code), so a heap block live in the parent at the fork is a leak in
 * the child: call it with no heap blocks of your own live.
 */
bool test_child_fails(void (*fn)(void *), void *arg, const char *expect);

/*
 * Implementation of the check macros. Each operand is evaluated exactly once
 * (it may be a call such as bump_alloc()), and the comparison is made here.
 * They return whether the check held.
 */
enum test_op { TEST_EQ, TEST_NE, TEST_LT, TEST_LE, TEST_GE };
bool test_check(bool ok, const char *file, int line, const char *expr);
bool test_check_u(enum test_op op, uintmax_t a, uintmax_t b, const char *file,
                  int line, const char *expr);
bool test_check_i(intmax_t a, intmax_t b, const char *file, int line,
                  const char *expr);
bool test_check_p(bool want_equal, const void *a, const void *b,
                  const char *file, int line, const char *expr);

#define CHECK(cond) test_check((cond), __FILE__, __LINE__, #cond)

/* Unsigned comparisons (sizes, offsets, addresses as uintptr_t). */
#define CHECK_OP_U(op, a, b, sym)                                              \
    test_check_u(op, (uintmax_t)(a), (uintmax_t)(b), __FILE__, __LINE__,       \
                 #a " " sym " " #b)
#define CHECK_EQ(a, b) CHECK_OP_U(TEST_EQ, a, b, "==")
#define CHECK_NE(a, b) CHECK_OP_U(TEST_NE, a, b, "!=")
#define CHECK_LT(a, b) CHECK_OP_U(TEST_LT, a, b, "<")
#define CHECK_LE(a, b) CHECK_OP_U(TEST_LE, a, b, "<=")
#define CHECK_GE(a, b) CHECK_OP_U(TEST_GE, a, b, ">=")

/* Signed equality (return codes, errno). */
#define CHECK_INT_EQ(a, b)                                                     \
    test_check_i((intmax_t)(a), (intmax_t)(b), __FILE__, __LINE__, #a " == " #b)

#define CHECK_PTR_EQ(a, b)                                                     \
    test_check_p(true, (const void *)(a), (const void *)(b), __FILE__,         \
                 __LINE__, #a " == " #b)
#define CHECK_NULL(p) CHECK_PTR_EQ(p, NULL)
#define CHECK_NOT_NULL(p)                                                      \
    test_check_p(false, (const void *)(p), NULL, __FILE__, __LINE__,           \
                 #p " != NULL")

/* Like CHECK, but ends the current case when the condition is false. */
#define REQUIRE(cond)                                                          \
    do {                                                                       \
        if (!CHECK(cond))                                                      \
            return;                                                            \
    } while (0)

#define CHECK_ABORTS(fn, arg, expect)                                          \
    test_check(test_aborts_with((fn), (arg), (expect)), __FILE__, __LINE__,    \
               "aborts with \"" expect "\": " #fn)

#endif /* COMMON_TEST_H */
