/*
 * test_bump.c: unit tests of every bump_* function and error path (the OS's
 * refusals included, made on purpose with common/fault.h), exact placement
 * of every block against the README's contract, every stale mark that is
 * reported, a randomized run with bump_check() after every operation, proof
 * that bump_check() catches a broken region, and the conformance suite in
 * its no-free mode.
 */
#include "annotate.h" /* TRACK_ENABLED: is a memory tool watching? */
#include "bump.h"
#include "conform.h"
#include "fault.h"
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(TRACK_ASAN)
#include <sanitizer/asan_interface.h>
#elif defined(ALLOC_TRACK_VALGRIND)
#include <valgrind/memcheck.h>
#endif

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* The contract, not the allocator's own constant: 16 bytes after every block
 * in annotated builds (a memory tool watches), none in the others. A test
 * that read the allocator's value would accept a wrong one. */
#define REDZONE ((size_t)(TRACK_ENABLED ? 16 : 0))

/* A caller's buffer that starts 1 byte past a 16-byte boundary, so that the
 * allocator has to align addresses, not offsets. */
static _Alignas(16) unsigned char buffer[4096 + 1];
#define ODD_BUF (buffer + 1)
#define ODD_LEN (sizeof buffer - 1)

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

/* ---- Creating and ending regions ---- */

/* In annotated builds: is every byte of [p, p + n) addressable to the tool
 * watching? Valgrind's GET_VBITS says 3 for an unaddressable byte without
 * reporting an error, as CHECK_MEM_IS_ADDRESSABLE would. */
#if TRACK_ENABLED
static bool tool_says_addressable(const void *p, size_t n)
{
#if defined(TRACK_ASAN)
    return __asan_region_is_poisoned((void *)(uintptr_t)p, n) == NULL;
#else
    bool ok = true;
    unsigned char vbits[64];
    for (size_t i = 0; i < n && ok; i += sizeof vbits) {
        size_t k = n - i < sizeof vbits ? n - i : sizeof vbits;
        ok = VALGRIND_GET_VBITS((const char *)p + i, vbits, k) != 3;
    }
    return ok;
#endif
}
#endif

static void test_init_over_caller_buffer(void)
{
    bump_t b;
    REQUIRE(bump_init(&b, ODD_BUF, ODD_LEN) == 0);
    bump_stats_t s = bump_stats(&b);
    CHECK_EQ(s.capacity, ODD_LEN);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.allocations, 0);
    CHECK(bump_check(&b));
    CHECK(!b.owns_memory);
    unsigned char *p = bump_alloc(&b, 10);
    CHECK(p >= ODD_BUF && p + 10 <= ODD_BUF + ODD_LEN);
#if TRACK_ENABLED
    /* what is not handed out is no-access to the tool (so the check below
     * can tell the difference) */
    CHECK(!tool_says_addressable(ODD_BUF + ODD_LEN - 1, 1));
#endif
    fault_disarm(); /* count the OS calls of bump_destroy */
    bump_destroy(&b);
    /* The buffer is the caller's again: never unmapped (it is not the
     * region's to give back), and, to the tool, addressable everywhere. */
    CHECK_EQ(fault_calls(FAULT_MUNMAP), 0);
#if TRACK_ENABLED
    CHECK(tool_says_addressable(buffer, sizeof buffer));
#endif
}

static void test_init_rejects_bad_arguments(void)
{
    bump_t b;
    errno = 0;
    CHECK_INT_EQ(bump_init(&b, NULL, 100), -1);
    CHECK_INT_EQ(errno, EINVAL);
    errno = 0;
    CHECK_INT_EQ(bump_init(&b, buffer, 0), -1);
    CHECK_INT_EQ(errno, EINVAL);
}

static void test_init_mmap_rounds_to_pages(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE + 1) == 0);
    CHECK_EQ(b.capacity, 2 * PAGE);
    CHECK(b.owns_memory);
    CHECK(is_aligned(b.base, PAGE));
    CHECK(bump_check(&b));
    /* the whole capacity is usable */
    unsigned char *p = bump_alloc(&b, PAGE);
    REQUIRE(p != NULL);
    memset(p, 1, PAGE);
    bump_destroy(&b);
}

static void test_init_mmap_refuses_impossible_sizes(void)
{
    bump_t b;
    size_t sizes[] = {0, SIZE_MAX, SIZE_MAX - PAGE + 2, SIZE_MAX / 2 + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        CHECK_INT_EQ(bump_init_mmap(&b, sizes[i]), -1);
        CHECK_INT_EQ(errno, ENOMEM);
    }
}

static void test_init_mmap_says_enomem_when_the_os_refuses(void)
{
    bump_t b;
    fault_arm(FAULT_MMAP, 0, 1);
    errno = 0;
    CHECK_INT_EQ(bump_init_mmap(&b, PAGE), -1);
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);
    fault_disarm();
}

/* Ending a region is a free: it leaves errno as it found it, even when the
 * OS refuses to take the pages back (munmap fails at the limit on the
 * number of mappings, for one). */
static void test_destroy_keeps_errno_when_munmap_fails(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, 4 * PAGE) == 0);
    (void)bump_alloc(&b, 100);
    void *base = b.base;
    size_t capacity = b.capacity;
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    bump_destroy(&b);
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1); /* the failing path ran */
    fault_disarm();
    CHECK_INT_EQ(munmap(base, capacity), 0); /* what the refusal left */
    /* and when munmap works, errno is left alone too */
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    errno = 4321;
    bump_destroy(&b);
    CHECK_INT_EQ(errno, 4321);
}

/* A reset keeps the region's pages: it is the reuse of pages already
 * touched that makes a region reused across requests fast. So it makes no
 * call to the OS at all, and leaves errno alone. */
static void test_reset_keeps_pages_and_errno(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, 4 * PAGE) == 0);
    (void)bump_alloc(&b, 3 * PAGE);
    bump_mark_t m = bump_mark(&b);
    (void)bump_alloc(&b, 100);
    fault_disarm(); /* counters to 0, nothing fails */
    errno = 1234;
    bump_rewind(&b, m);
    bump_reset(&b);
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_calls(FAULT_MUNMAP), 0);
    CHECK_EQ(fault_calls(FAULT_MADVISE), 0);
    CHECK_EQ(fault_calls(FAULT_MMAP), 0);
    bump_destroy(&b);
}

/* ---- Allocating ---- */

static void test_alloc_aligns_in_unaligned_buffer(void)
{
    bump_t b;
    REQUIRE(bump_init(&b, ODD_BUF, ODD_LEN) == 0);
    for (size_t size = 1; size <= 40; size++) {
        void *p = bump_alloc(&b, size);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, BUMP_DEFAULT_ALIGN));
    }
    bump_destroy(&b);
}

static void test_blocks_follow_each_other(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    unsigned char *prev = bump_alloc(&b, 24);
    size_t prev_size = 24;
    for (int i = 0; i < 20; i++) {
        size_t size = 1 + (size_t)i * 7;
        unsigned char *p = bump_alloc(&b, size);
        REQUIRE(p != NULL);
        /* exactly at the previous block's end, past its redzone, rounded up
         * to the alignment: no byte more, no byte less */
        uintptr_t end = (uintptr_t)(prev + prev_size) + REDZONE;
        uintptr_t want = (end + BUMP_DEFAULT_ALIGN - 1) &
                         ~(uintptr_t)(BUMP_DEFAULT_ALIGN - 1);
        CHECK_PTR_EQ(p, (void *)want);
        prev = p;
        prev_size = size;
    }
    bump_destroy(&b);
}

static void test_alloc_zero_gives_unique_pointers(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    void *a = bump_alloc(&b, 0);
    void *c = bump_alloc(&b, 0);
    CHECK_NOT_NULL(a);
    CHECK_NOT_NULL(c);
    CHECK(a != c);
    CHECK_EQ(bump_stats(&b).allocations, 2);
    bump_destroy(&b);
}

/* Fill a region, then use exactly what is left. The region is 4000 bytes so
 * that 100-byte blocks leave a remainder in every build (92 bytes without a
 * redzone, 44 with), and the remainder is computed, not guessed. */
#define FILL_CAPACITY 4000

static void test_alloc_until_full_then_the_rest_fits(void)
{
    bump_t b;
    REQUIRE(bump_init(&b, buffer, FILL_CAPACITY) == 0); /* 16-aligned */
    size_t n = 0;
    errno = 0;
    while (bump_alloc(&b, 100) != NULL)
        n++;
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_GE(n * 100, FILL_CAPACITY / 2); /* most of it went to blocks */
    /* a failed call consumes nothing */
    bump_stats_t before = bump_stats(&b);
    CHECK_NULL(bump_alloc(&b, 100));
    bump_stats_t after = bump_stats(&b);
    CHECK_EQ(after.used, before.used);
    CHECK_EQ(after.allocations, n);
    CHECK_EQ(after.requested, before.requested);
    /* What is left: the padding up to the next 16-byte boundary, then a
     * block, then its redzone. One byte more does not fit; exactly that
     * fits, and fills the region to its last byte. */
    size_t left = FILL_CAPACITY - before.used;
    size_t pad =
        (size_t)(-(uintptr_t)(buffer + before.used) & (BUMP_DEFAULT_ALIGN - 1));
    REQUIRE(left > pad + REDZONE); /* the setup leaves room, every build */
    size_t rest = left - pad - REDZONE;
    CHECK_LT(rest, 100);
    errno = 0;
    CHECK_NULL(bump_alloc(&b, rest + 1));
    CHECK_INT_EQ(errno, ENOMEM);
    unsigned char *p = bump_alloc(&b, rest);
    CHECK_PTR_EQ(p, buffer + before.used + pad);
    CHECK_EQ(bump_stats(&b).used, FILL_CAPACITY);
    /* full: not even a 1-byte block without padding */
    CHECK_NULL(bump_alloc_aligned(&b, 1, 1));
    CHECK(bump_check(&b));
    bump_destroy(&b);
}

static void test_huge_sizes_do_not_wrap(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    (void)bump_alloc(&b, 3); /* so the offset is not 0 */
    bump_stats_t before = bump_stats(&b);
    size_t sizes[] = {SIZE_MAX,     SIZE_MAX - 1, SIZE_MAX - 15,
                      SIZE_MAX / 2, PAGE,         PAGE - before.used + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        CHECK_NULL(bump_alloc(&b, sizes[i]));
        CHECK_INT_EQ(errno, ENOMEM);
        errno = 0;
        CHECK_NULL(bump_alloc_aligned(&b, sizes[i], 64));
        CHECK_INT_EQ(errno, ENOMEM);
    }
    bump_stats_t after = bump_stats(&b);
    CHECK_EQ(after.used, before.used);
    CHECK_EQ(after.allocations, before.allocations);
    bump_destroy(&b);
}

static void test_alloc_aligned_every_power_of_two(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, 16 * PAGE) == 0);
    for (size_t align = 1; align <= PAGE; align *= 2) {
        (void)bump_alloc(&b, 1); /* disturb the alignment */
        void *p = bump_alloc_aligned(&b, 5, align);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, align));
    }
    CHECK(bump_check(&b));
    bump_destroy(&b);
}

/* The address is what is aligned, so an alignment above the page size works
 * as any other: the block lands on the next multiple, whatever the region's
 * own alignment. */
static void test_alloc_aligned_above_the_page_size(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, 64 * PAGE) == 0);
    for (size_t align = 2 * PAGE; align <= 16 * PAGE; align *= 2) {
        (void)bump_alloc(&b, 1); /* disturb the alignment */
        void *p = bump_alloc_aligned(&b, 100, align);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p, align));
    }
    CHECK(bump_check(&b));
    /* An alignment whose padding cannot fit: ENOMEM, nothing consumed. The
     * next multiple of 2^62 or 2^63 above a user address is 2^62 or 2^63
     * itself, far past any region (user addresses are below 2^57). */
    size_t huge[] = {(SIZE_MAX >> 2) + 1, (SIZE_MAX >> 1) + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        (void)bump_alloc(&b, 1);
        bump_stats_t before = bump_stats(&b);
        errno = 0;
        CHECK_NULL(bump_alloc_aligned(&b, 1, huge[i]));
        CHECK_INT_EQ(errno, ENOMEM);
        CHECK_EQ(bump_stats(&b).used, before.used);
        CHECK_EQ(bump_stats(&b).allocations, before.allocations);
    }
    bump_destroy(&b);
}

static void test_alloc_aligned_rejects_bad_alignment(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    size_t bad[] = {0, 3, 24, 48, PAGE + 16, SIZE_MAX, (SIZE_MAX >> 1) + 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK_NULL(bump_alloc_aligned(&b, 8, bad[i]));
        CHECK_INT_EQ(errno, EINVAL);
    }
    CHECK_EQ(bump_stats(&b).used, 0);
    bump_destroy(&b);
}

/* ---- Freeing in bulk ---- */

static void test_reset_frees_everything(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    void *first = bump_alloc(&b, 40);
    for (int i = 0; i < 10; i++)
        (void)bump_alloc(&b, 64);
    size_t used = bump_stats(&b).used;
    bump_reset(&b);
    bump_stats_t s = bump_stats(&b);
    CHECK_EQ(s.used, 0);
    CHECK_EQ(s.allocations, 0);
    CHECK_EQ(s.requested, 0);
    CHECK_EQ(s.high_water, used); /* the high-water mark survives a reset */
    CHECK(bump_check(&b));
    CHECK_PTR_EQ(bump_alloc(&b, 40), first);   /* the memory is reused */
    CHECK_EQ(bump_stats(&b).high_water, used); /* and the mark stays put */
    bump_destroy(&b);
}

static void test_mark_rewind_restores_position_and_stats(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    (void)bump_alloc(&b, 10);
    bump_stats_t at_mark = bump_stats(&b);
    bump_mark_t m = bump_mark(&b);
    void *scratch = bump_alloc(&b, 200);
    (void)bump_alloc(&b, 300);
    bump_rewind(&b, m);
    bump_stats_t s = bump_stats(&b);
    CHECK_EQ(s.used, at_mark.used);
    CHECK_EQ(s.allocations, at_mark.allocations);
    CHECK_EQ(s.requested, at_mark.requested);
    CHECK_GE(s.high_water, at_mark.used + 500);
    CHECK_PTR_EQ(bump_alloc(&b, 200), scratch);
    CHECK_GE(bump_stats(&b).high_water, at_mark.used + 500); /* stays put */
    CHECK(bump_check(&b));
    bump_destroy(&b);
}

static void test_marks_nest(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    bump_mark_t outer = bump_mark(&b);
    (void)bump_alloc(&b, 30);
    bump_mark_t inner = bump_mark(&b);
    (void)bump_alloc(&b, 30);
    bump_rewind(&b, inner);
    CHECK_EQ(bump_stats(&b).allocations, 1);
    bump_rewind(&b, inner); /* rewinding to the same mark twice is fine */
    bump_rewind(&b, outer);
    CHECK_EQ(bump_stats(&b).allocations, 0);
    CHECK_EQ(bump_stats(&b).used, 0);
    CHECK(bump_check(&b));
    bump_destroy(&b);
}

/* Misuse: each runs in a child process, which must abort with a message.
 *
 * A mark made before a reset, used right after it. The offset (0) is below
 * the mark too, but the generation is compared first, so this is the
 * generation check's case; the offset check's is the next one. */
static void rewind_across_a_reset(void *arg)
{
    (void)arg;
    bump_t b;
    bump_init(&b, buffer, sizeof buffer);
    (void)bump_alloc(&b, 30);
    bump_mark_t m = bump_mark(&b);
    bump_reset(&b);
    bump_rewind(&b, m);
}

/* A mark that an outer rewind passed, used while the offset is below it:
 * the generation is current, only the offset tells. */
static void rewind_to_passed_inner_mark(void *arg)
{
    (void)arg;
    bump_t b;
    bump_init(&b, buffer, sizeof buffer);
    bump_mark_t outer = bump_mark(&b);
    (void)bump_alloc(&b, 30);
    bump_mark_t inner = bump_mark(&b);
    bump_rewind(&b, outer); /* discards inner; the offset is below it */
    bump_rewind(&b, inner);
}

static void rewind_other_region(void *arg)
{
    (void)arg;
    static unsigned char other_buf[256];
    bump_t b, other;
    bump_init(&b, buffer, sizeof buffer);
    bump_init(&other, other_buf, sizeof other_buf);
    bump_mark_t m = bump_mark(&other);
    bump_rewind(&b, m);
}

/* The case a check of the offset alone lets through: after the reset, the
 * offset grows past the mark again, so the mark looks in range. */
static void rewind_after_reset_and_regrowth(void *arg)
{
    (void)arg;
    bump_t b;
    bump_init(&b, buffer, sizeof buffer);
    (void)bump_alloc(&b, 30);
    bump_mark_t m = bump_mark(&b);
    bump_reset(&b);
    (void)bump_alloc(&b, 500); /* the offset is past m's again */
    bump_rewind(&b, m);
}

static void test_rewind_misuse_is_reported(void)
{
    CHECK_ABORTS(rewind_across_a_reset, NULL, "01-bump: bump_rewind(0x");
    CHECK_ABORTS(rewind_across_a_reset, NULL,
                 "mark is older than the last reset");
    CHECK_ABORTS(rewind_after_reset_and_regrowth, NULL,
                 "01-bump: bump_rewind(0x");
    CHECK_ABORTS(rewind_after_reset_and_regrowth, NULL,
                 "mark is older than the last reset");
    CHECK_ABORTS(rewind_to_passed_inner_mark, NULL,
                 "mark is past the current offset");
    CHECK_ABORTS(rewind_other_region, NULL, "mark belongs to another region");
}

/* A mark made after resets works as any other: the count of resets is the
 * region's, and a new mark takes the current one. */
static void test_marks_after_resets_still_work(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    for (int round = 0; round < 3; round++) {
        (void)bump_alloc(&b, 40);
        bump_reset(&b);
    }
    (void)bump_alloc(&b, 10);
    bump_stats_t at_mark = bump_stats(&b);
    bump_mark_t m = bump_mark(&b);
    for (int round = 0; round < 3; round++) { /* one mark, many rewinds */
        (void)bump_alloc(&b, 500);
        bump_rewind(&b, m);
        CHECK_EQ(bump_stats(&b).used, at_mark.used);
        CHECK_EQ(bump_stats(&b).allocations, 1);
        CHECK_EQ(bump_stats(&b).requested, 10);
    }
    CHECK(bump_check(&b));
    bump_destroy(&b);
}

/* ---- The checker and the drawing ---- */

static void test_check_catches_broken_regions(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    (void)bump_alloc(&b, 100);
    REQUIRE(bump_check(&b));
    /* Break copies of the state. The first case puts the offset past the
     * capacity, and so past the high-water mark too; the second breaks
     * offset <= high_water alone; the third, high_water past the capacity
     * with the offset in range, breaks high_water <= capacity alone. */
    bump_t bad = b;
    bad.offset = bad.capacity + 16;
    CHECK(!bump_check(&bad));
    bad = b;
    bad.high_water = bad.offset - 1;
    CHECK(!bump_check(&bad));
    bad = b;
    bad.high_water = bad.capacity + 1; /* past the end, the offset in range */
    CHECK(!bump_check(&bad));
    bad = b;
    bad.requested = bad.offset + 1;
    CHECK(!bump_check(&bad));
    bad = b;
    bad.allocations = 0;
    CHECK(!bump_check(&bad));
    bad = b;
    bad.base = NULL;
    CHECK(!bump_check(&bad));
    CHECK(bump_check(&b));
    bump_destroy(&b);
}

/* Checked builds record where blocks are, and the checker holds the record
 * against the counters: what a release build cannot see. */
static void test_check_catches_a_broken_record(void)
{
#ifndef ALLOC_DEBUG
    test_skip("checked builds only: release builds record no block places");
#else
    bump_t b;
    REQUIRE(bump_init_mmap(&b, PAGE) == 0);
    (void)bump_alloc(&b, 100);
    (void)bump_alloc(&b, 50);
    (void)bump_alloc(&b, 20);
    REQUIRE(bump_check(&b));
    /* B moved back onto A: the sizes still add up to `requested` and C still
     * ends at the offset, so only the order of the blocks tells. */
    bump_t bad = b;
    bad.recorded[1].start = bad.recorded[0].start + 10;
    CHECK(!bump_check(&bad));
    bad = b;
    bad.recorded[1].size = 0;
    CHECK(!bump_check(&bad));
    bad = b;
    bad.recorded[1].size = bad.offset; /* past the offset */
    CHECK(!bump_check(&bad));
    bad = b;
    bad.requested -= 1; /* not what the blocks asked for */
    CHECK(!bump_check(&bad));
    bad = b;
    bad.allocations = 1; /* one block forgotten: the offset is past A */
    CHECK(!bump_check(&bad));
    CHECK(bump_check(&b));
    bump_destroy(&b);
#endif
}

/* bump_dump's output for `b`, in `out`. */
static void dump_to(const bump_t *b, char *out, size_t size)
{
    memset(out, 0, size);
    FILE *f = fmemopen(out, size - 1, "w");
    if (f == NULL)
        return;
    bump_dump(b, f);
    fclose(f);
}

/* The cells of the drawing's first row: what is between "0 |" and "|". */
static size_t first_row(const char *out, char *row, size_t size)
{
    const char *bar = strstr(out, "0 |");
    size_t n = 0;
    if (bar != NULL)
        for (bar += 3; *bar != '|' && *bar != '\0' && n + 1 < size; bar++)
            row[n++] = *bar;
    row[n] = '\0';
    return n;
}

/* The row with each run of equal cells cut to one, redzones left out: the
 * order of what the region holds, whatever the build. */
static void runs_of(const char *row, char *runs)
{
    size_t n = 0;
    for (const char *c = row; *c; c++)
        if (*c != 'r' && (n == 0 || runs[n - 1] != *c))
            runs[n++] = *c;
    runs[n] = '\0';
}

static void test_dump_draws_the_region(void)
{
    bump_t b;
    REQUIRE(bump_init(&b, buffer, 4096) == 0);
    (void)bump_alloc(&b, 900);
    bump_mark_t m = bump_mark(&b);
    (void)bump_alloc(&b, 1000);
    bump_rewind(&b, m);
    char out[2048], row[80] = {0}, runs[80] = {0};
    dump_to(&b, out, sizeof out);
    CHECK(strstr(out, "4096 B capacity") != NULL);
    CHECK(strstr(out, "1 block") != NULL);
    /* 16 B a cell, 64 cells a row: the first row is bytes 0..1023. The
     * block (900 B, and a redzone in annotated builds), then released
     * bytes up to the high-water mark, which is in the second row. */
    REQUIRE(first_row(out, row, sizeof row) == 64);
    size_t in_use = strspn(row, "A#");
    CHECK(in_use == 57); /* 900 / 16 = 56.25: the block's 57 cells */
    runs_of(row, runs);
    CHECK(strcmp(runs, "A:") == 0 || strcmp(runs, "#:") == 0);
    CHECK(strstr(out, "\n      1024 |:") != NULL);
    CHECK(strstr(out, "\n      3072 |....") != NULL);
    bump_destroy(&b);
}

/* The drawing the demo relies on: each block its own letter, the padding
 * between them, recorded in checked builds only. */
static void test_dump_shows_blocks_and_padding(void)
{
#ifndef ALLOC_DEBUG
    test_skip("checked builds only: release builds record no block places");
#else
    static _Alignas(256) unsigned char region[4096];
    bump_t b;
    REQUIRE(bump_init(&b, region, sizeof region) == 0);
    (void)bump_alloc(&b, 12);
    (void)bump_alloc(&b, 400);
    (void)bump_alloc_aligned(&b, 200, 256);
    char out[2048], row[80] = {0}, runs[80] = {0};
    dump_to(&b, out, sizeof out);
    REQUIRE(first_row(out, row, sizeof row) == 64);
    runs_of(row, runs);
    CHECK(strcmp(runs, "AB-C.") == 0); /* padding before C, not before B */
    CHECK_EQ(strspn(row, "A"), 1);     /* 12 B: one cell */
    /* C is at +512, after B (400 B at +16 or +32) and its redzone */
    CHECK(row[512 / 16] == 'C' && row[512 / 16 - 1] == '-');
    CHECK(strstr(out, "A 12 B at +0") != NULL);
    CHECK(strstr(out, "C 200 B at +512 after") != NULL);
    /* the record follows rewinds: only the blocks still live are drawn */
    bump_mark_t m = bump_mark(&b);
    (void)bump_alloc(&b, 100);
    dump_to(&b, out, sizeof out);
    CHECK(strstr(out, "D 100 B at") != NULL);
    bump_rewind(&b, m);
    dump_to(&b, out, sizeof out);
    CHECK(strstr(out, "D 100 B at") == NULL);
    CHECK(bump_check(&b));
    bump_destroy(&b);
#endif
}

/* ---- A randomized run, checked after every operation ---- */

#define MAX_LIVE 512

typedef struct live_block {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} live_block;

/* Every live block still holds its tag, every byte of it. */
static bool blocks_intact(const live_block *live, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < live[i].size; j++)
            if (live[i].p[j] != live[i].tag)
                return false;
    return true;
}

static void test_random_ops_keep_invariants(void)
{
    bump_t b;
    REQUIRE(bump_init_mmap(&b, (size_t)64 * 1024) == 0);
    static live_block live[MAX_LIVE];
    size_t nlive = 0;
    bump_mark_t marks[8];
    size_t mark_nlive[8];
    size_t nmarks = 0;
    size_t most = 0; /* the most in use so far: what high_water must say */
    size_t ops = test_scale(4000);
    for (size_t op = 0; op < ops; op++) {
        unsigned r = (unsigned)test_rand_range(0, 99);
        if (r < 80 && nlive < MAX_LIVE) { /* allocate */
            size_t size = test_rand_range(0, 300);
            size_t align = (size_t)1 << test_rand_range(0, 8);
            unsigned char *p = r < 60 ? bump_alloc(&b, size)
                                      : bump_alloc_aligned(&b, size, align);
            if (p == NULL) {
                CHECK_INT_EQ(errno, ENOMEM);
                bump_reset(&b);
                nlive = 0;
                nmarks = 0;
            } else {
                CHECK(is_aligned(p, r < 60 ? BUMP_DEFAULT_ALIGN : align));
                CHECK(p >= b.base && p + size <= b.base + b.capacity);
                unsigned char tag = (unsigned char)test_rand();
                memset(p, tag, size);
                live[nlive++] = (live_block){p, size, tag};
            }
        } else if (r < 90 && nmarks < 8) { /* mark */
            mark_nlive[nmarks] = nlive;
            marks[nmarks++] = bump_mark(&b);
        } else if (r < 98 && nmarks > 0) { /* rewind to a random mark */
            size_t k = test_rand_range(0, nmarks - 1);
            bump_rewind(&b, marks[k]);
            nlive = mark_nlive[k];
            nmarks = k + 1; /* inner marks are gone; mark k stays valid */
            CHECK_EQ(bump_stats(&b).allocations, nlive);
        } else { /* reset */
            bump_reset(&b);
            nlive = 0;
            nmarks = 0;
        }
        REQUIRE(bump_check(&b));
        CHECK_EQ(bump_stats(&b).allocations, nlive);
        if (bump_stats(&b).used > most)
            most = bump_stats(&b).used;
        CHECK_EQ(bump_stats(&b).high_water, most);
        /* checking every byte after every op is O(n^2): do it often, not
         * always */
        if (op % 16 == 0)
            REQUIRE(blocks_intact(live, nlive));
    }
    CHECK(blocks_intact(live, nlive));
    bump_destroy(&b);
}

/* ---- The conformance suite, no-free mode ---- */

#define CONFORM_REGION (1u << 20)

static void *c_create(void)
{
    bump_t *b = malloc(sizeof *b);
    if (b && bump_init_mmap(b, CONFORM_REGION) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

static void c_destroy(void *a)
{
    bump_destroy(a);
    free(a);
}

static void *c_alloc(void *a, size_t size)
{
    return bump_alloc(a, size);
}
static void c_reset(void *a)
{
    bump_reset(a);
}
static bool c_check(void *a)
{
    return bump_check(a);
}

static const conform_ops bump_ops = {
    .name = "01-bump",
    .caps = CONFORM_ANY_SIZE,
    .align = BUMP_DEFAULT_ALIGN,
    .max_size = (size_t)64 * 1024,
    .capacity = CONFORM_REGION,
    .create = c_create,
    .destroy = c_destroy,
    .alloc = c_alloc,
    .reset = c_reset,
    .check = c_check,
};

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_init_over_caller_buffer);
    RUN_TEST(test_init_rejects_bad_arguments);
    RUN_TEST(test_init_mmap_rounds_to_pages);
    RUN_TEST(test_init_mmap_refuses_impossible_sizes);
    RUN_TEST(test_init_mmap_says_enomem_when_the_os_refuses);
    RUN_TEST(test_destroy_keeps_errno_when_munmap_fails);
    RUN_TEST(test_reset_keeps_pages_and_errno);
    RUN_TEST(test_alloc_aligns_in_unaligned_buffer);
    RUN_TEST(test_blocks_follow_each_other);
    RUN_TEST(test_alloc_zero_gives_unique_pointers);
    RUN_TEST(test_alloc_until_full_then_the_rest_fits);
    RUN_TEST(test_huge_sizes_do_not_wrap);
    RUN_TEST(test_alloc_aligned_every_power_of_two);
    RUN_TEST(test_alloc_aligned_above_the_page_size);
    RUN_TEST(test_alloc_aligned_rejects_bad_alignment);
    RUN_TEST(test_reset_frees_everything);
    RUN_TEST(test_mark_rewind_restores_position_and_stats);
    RUN_TEST(test_marks_nest);
    RUN_TEST(test_rewind_misuse_is_reported);
    RUN_TEST(test_marks_after_resets_still_work);
    RUN_TEST(test_check_catches_broken_regions);
    RUN_TEST(test_check_catches_a_broken_record);
    RUN_TEST(test_dump_draws_the_region);
    RUN_TEST(test_dump_shows_blocks_and_padding);
    RUN_TEST(test_random_ops_keep_invariants);
    conform_run(&bump_ops);
    return test_finish();
}
