/*
 * test_pagepool.c: unit tests of every pp_* function and error path: size
 * classes, lazy pools and slabs, root pages chained, the slab found by
 * masking, the footprint falling after frees, the spare slab, the
 * quarantine, each misuse report, the out-of-memory paths (checked builds),
 * the slab set's removal where its table wraps around, proof that
 * pp_check() catches a broken heap, a randomized run with pp_check() after
 * every operation, and the conformance suite.
 */
#include "annotate.h"
#include "conform.h"
#include "fault.h"
#include "pagepool.h"
#include "pagepool_internal.h" /* the slab set's functions, asked directly */
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

static bool is_aligned(const void *p, size_t a)
{
    return (uintptr_t)p % a == 0;
}

/* Room for the pointers of the tests that allocate many blocks. */
#define MANY (1u << 17)
static void *many[MANY];

/* TEST_VERBOSE set (and not 0): the cases print their figures too. */
static bool verbose(void)
{
    const char *v = getenv("TEST_VERBOSE");
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

/* Checked builds (ALLOC_DEBUG) check frees and keep a quarantine. */
static bool checked_build(void)
{
    return PP_CHECKED;
}

static uintptr_t page_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(PAGE - 1);
}

/* Is [p, p + n) mapped? mincore() answers ENOMEM for an unmapped range,
 * without touching it. */
static bool is_mapped(const void *p, size_t n)
{
    unsigned char vec[64];
    return mincore((void *)page_of(p), n, vec) == 0;
}

/* pp_check holds; if not, prints which invariant broke (the harness then
 * prints the line of the check). */
static bool sound(const pp_allocator_t *a)
{
    if (pp_check(a))
        return true;
    printf("    pp_check: %s\n", pp_check_failure());
    return false;
}

/* The footprint equation every state must satisfy. */
static bool footprint_adds_up(const pp_stats_t *s)
{
    return s->mapped == s->page_size * (s->root_pages + s->slabs) +
                            s->set_bytes + s->refused_bytes;
}

// clang-format off
/* ---- Creating and ending ------------------------------------------------ */
// clang-format on

static void test_create_maps_one_root_page(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    pp_stats_t s = pp_stats(a);
    CHECK_EQ(s.page_size, PAGE); /* asked of the OS, not assumed */
    CHECK_EQ(s.max_size, PAGE / 4);
    CHECK_EQ(s.mapped, PAGE);
    CHECK_EQ(s.root_pages, 1);
    CHECK_EQ(s.pools, 0);
    CHECK_EQ(s.slabs, 0);
    CHECK_EQ(s.maps, 1);
    CHECK_GE(s.pool_slots, 1);
    CHECK_EQ(page_of(a), (uintptr_t)a->roots); /* lives in root page 0 */
    CHECK(sound(a));
    pp_destroy(a);
    pp_destroy(NULL); /* ignored */
}

static void test_destroy_unmaps_everything(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    /* Every class once (so a second root page is chained), some blocks
     * left live on purpose: they die with the allocator. */
    void *blocks[256];
    size_t n = 0;
    for (size_t size = 16; size <= a->max_size && n < 256; size += 16)
        blocks[n++] = pp_alloc(a, size);
    for (size_t i = 0; i < n; i++)
        REQUIRE(blocks[i] != NULL);
    for (size_t i = 0; i < n; i += 2)
        pp_free(a, blocks[i]);
    const void *pages[512];
    size_t npages = 0;
    for (const pp_root_t *r = a->roots; r != NULL; r = r->next)
        pages[npages++] = r;
    for (size_t i = 1; i < n; i += 2)
        pages[npages++] = pp_slab_of(a, blocks[i]);
    const void *set = a->set;
    REQUIRE(set != NULL);
    for (size_t i = 0; i < npages; i++)
        REQUIRE(is_mapped(pages[i], PAGE));
    pp_destroy(a);
    for (size_t i = 0; i < npages; i++)
        CHECK(!is_mapped(pages[i], PAGE));
    CHECK(!is_mapped(set, PAGE));
}

// clang-format off
/* ---- Sizes and classes -------------------------------------------------- */
// clang-format on

static void test_every_size_gets_its_class(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    CHECK_EQ(pp_class_size(a, 0), 16);
    CHECK_EQ(pp_class_size(a, 1), 16);
    CHECK_EQ(pp_class_size(a, 16), 16);
    CHECK_EQ(pp_class_size(a, 17), 32);
    CHECK_EQ(pp_class_size(a, a->max_size), a->max_size);
    CHECK_EQ(pp_class_size(a, a->max_size + 1), 0);
    CHECK_EQ(pp_class_size(a, SIZE_MAX), 0);
    for (size_t size = 0; size <= a->max_size; size++) {
        unsigned char *p = pp_alloc(a, size);
        REQUIRE(p != NULL);
        size_t block = pp_block_size(a, p);
        /* the smallest multiple of 16 that holds the request (required:
         * a smaller block would be overrun by the memset below) */
        REQUIRE(block >= size && block >= 16 && block % 16 == 0);
        CHECK(block == 16 || block - 16 < size);
        CHECK_EQ(block, pp_class_size(a, size));
        CHECK(is_aligned(p, 16));
        memset(p, 0x5A, size); /* the whole request is writable */
        pp_free(a, p);
        /* Checked builds: the quarantine holds 16 blocks, more than a
         * slab of the larger classes (16 sizes each), whose pools then
         * get a second slab: some of these frees sweep. */
        REQUIRE(sound(a));
    }
    CHECK_EQ(pp_stats(a).pools, a->nclasses);
    CHECK(sound(a));
    pp_destroy(a);
}

static void test_sizes_above_the_limit_are_refused(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    (void)pp_alloc(a, 40); /* something mapped already */
    pp_stats_t before = pp_stats(a);
    size_t sizes[] = {a->max_size + 1, PAGE, SIZE_MAX, SIZE_MAX - 15,
                      SIZE_MAX / 2 + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        CHECK_NULL(pp_alloc(a, sizes[i]));
        CHECK_INT_EQ(errno, ENOMEM);
    }
    pp_stats_t after = pp_stats(a);
    CHECK_EQ(after.mapped, before.mapped);
    CHECK_EQ(after.pools, before.pools);
    CHECK_EQ(after.live_blocks, before.live_blocks);
    CHECK(sound(a));
    pp_destroy(a);
}

static void test_zero_and_null(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *x = pp_alloc(a, 0);
    void *y = pp_alloc(a, 0);
    CHECK_NOT_NULL(x);
    CHECK_NOT_NULL(y);
    CHECK(x != y);
    pp_stats_t before = pp_stats(a);
    pp_free(a, NULL); /* does nothing */
    pp_stats_t after = pp_stats(a);
    CHECK_EQ(after.live_blocks, 2);
    CHECK_EQ(after.live_blocks, before.live_blocks);
    CHECK_EQ(after.quarantined, before.quarantined);
    pp_free(a, x);
    pp_free(a, y);
    CHECK_EQ(pp_stats(a).live_blocks, 0);
    CHECK(sound(a));
    pp_destroy(a);
}

// clang-format off
/* ---- Pools, slabs, root pages ------------------------------------------- */
// clang-format on

static void test_pools_and_slabs_come_lazily(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    CHECK_EQ(pp_stats(a).pools, 0);
    void *p = pp_alloc(a, 24);
    REQUIRE(p != NULL);
    pp_stats_t s = pp_stats(a);
    CHECK_EQ(s.pools, 1);
    CHECK_EQ(s.slabs, 1);
    CHECK_EQ(s.set_bytes, PAGE); /* the set's first mapping */
    CHECK(footprint_adds_up(&s));
    (void)pp_alloc(a, 30); /* same class (32 B): same pool, same slab */
    CHECK_EQ(pp_stats(a).slabs, 1);
    (void)pp_alloc(a, 100); /* class 112: a second pool and slab */
    s = pp_stats(a);
    CHECK_EQ(s.pools, 2);
    CHECK_EQ(s.slabs, 2);
    CHECK(footprint_adds_up(&s));
    CHECK(sound(a));
    pp_destroy(a);
}

/* Allocates blocks of `size` while they land in the page of the first one;
 * returns how many did (their pointers in out[]). */
static size_t fill_one_slab(pp_allocator_t *a, size_t size, void **out,
                            size_t max)
{
    size_t n = 0;
    while (n < max) {
        void *p = pp_alloc(a, size);
        if (p == NULL || (n > 0 && page_of(p) != page_of(out[0]))) {
            pp_free(a, p);
            break;
        }
        out[n++] = p;
    }
    return n;
}

static int by_address(const void *x, const void *y)
{
    uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
    return (a > b) - (a < b);
}

static void test_a_slab_is_one_page_found_by_mask(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    static void *blocks[4096];
    size_t k = fill_one_slab(a, 48, blocks, 4096);
    REQUIRE(k > 0);
    pp_slab_t *c = pp_slab_of(a, blocks[0]);
    REQUIRE(c != NULL);
    CHECK(is_aligned(c, PAGE));
    CHECK_EQ(c->pool->block_size, 48);
    CHECK_EQ(c->pool->nblocks, k);
    CHECK_EQ(c->used, k);
    /* As many blocks as fit after the header, and most of the page. */
    CHECK_LE(c->pool->first + k * c->pool->stride, PAGE);
    CHECK_GE(c->pool->first + (k + 1) * c->pool->stride, PAGE + 1);
    CHECK_GE(k * 48, PAGE / 2);
    qsort(blocks, k, sizeof blocks[0], by_address);
    for (size_t i = 0; i < k; i++) {
        CHECK_EQ(page_of(blocks[i]), (uintptr_t)c); /* the mask finds it */
        CHECK_PTR_EQ(pp_slab_of(a, blocks[i]), c);
        CHECK((uintptr_t)blocks[i] + 48 <= (uintptr_t)c + PAGE);
        CHECK((uintptr_t)blocks[i] > (uintptr_t)c); /* header comes first */
        if (i > 0) /* distinct, and no overlap */
            CHECK_GE((uintptr_t)blocks[i] - (uintptr_t)blocks[i - 1], 48);
    }
    /* The next block of the class is in another page. */
    void *next = pp_alloc(a, 48);
    REQUIRE(next != NULL);
    CHECK(page_of(next) != (uintptr_t)c);
    CHECK(sound(a));
    pp_destroy(a);
}

static void test_slab_of_answers_for_foreign_addresses(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *p = pp_alloc(a, 64);
    REQUIRE(p != NULL);
    int local = 0;
    void *heap = malloc(64);
    CHECK_NOT_NULL(pp_slab_of(a, p));
    CHECK_NULL(pp_slab_of(a, &local));
    CHECK_NULL(pp_slab_of(a, heap));
    free(heap);
    CHECK_NULL(pp_slab_of(a, a)); /* a root page is not a slab */
    CHECK_NULL(pp_slab_of(a, NULL));
    /* An address in a page that is not mapped at all: answered from the
     * set, without touching the page. */
    void *gone = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (CHECK(gone != MAP_FAILED)) {
        munmap(gone, PAGE);
        CHECK_NULL(pp_slab_of(a, (char *)gone + 100));
    }
    /* A slab given back to the OS is no longer ours. */
    uintptr_t slab = page_of(p);
    pp_free(a, p);
    pp_trim(a);
    CHECK(!is_mapped((void *)slab, PAGE));
    CHECK_NULL(pp_slab_of(a, (void *)slab));
    pp_destroy(a);
}

static void test_root_pages_chain_when_full(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    static void *blocks[1024];
    size_t n = 0;
    for (size_t size = 16; size <= a->max_size; size += 16) {
        pp_stats_t before = pp_stats(a);
        void *p = pp_alloc(a, size);
        REQUIRE(p != NULL);
        blocks[n++] = p;
        pp_stats_t after = pp_stats(a);
        CHECK_EQ(after.pools, before.pools + 1); /* a new class, a new pool */
        /* A root page is chained exactly when the slots ran out. */
        CHECK_EQ(after.root_pages,
                 before.root_pages + (before.pools == before.pool_slots));
        CHECK_LE(after.pools, after.pool_slots);
        CHECK(footprint_adds_up(&after));
        CHECK_EQ(pp_slab_of(a, p)->pool->block_size, size);
        REQUIRE(sound(a));
    }
    /* With 4 KB pages, 64 pool headers of 64 B cannot share one page. */
    if (PAGE == 4096)
        CHECK_EQ(pp_stats(a).root_pages, 2);
    for (size_t i = 0; i < n; i++)
        pp_free(a, blocks[i]);
    CHECK(sound(a));
    pp_destroy(a);
}

// clang-format off
/* ---- Giving memory back ------------------------------------------------- */
// clang-format on

/* Pushes every block out of the quarantine of a checked build by freeing
 * PP_QUARANTINE blocks of 16 B (room for their pointers in `held`); does
 * nothing in release builds, which have no quarantine. */
static void quarantine_rotate(pp_allocator_t *a, void **held)
{
    for (int i = 0; i < PP_QUARANTINE; i++)
        held[i] = pp_alloc(a, 16);
    for (int i = 0; i < PP_QUARANTINE; i++)
        pp_free(a, held[i]);
}

#define FOOTPRINT_SLABS 100

static void test_footprint_falls_after_frees(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *first = pp_alloc(a, 64);
    REQUIRE(first != NULL);
    size_t per_slab = pp_slab_of(a, first)->pool->nblocks;
    size_t n = per_slab * FOOTPRINT_SLABS;
    REQUIRE(n <= MANY);
    void **blocks = many;
    blocks[0] = first;
    for (size_t i = 1; i < n; i++) {
        blocks[i] = pp_alloc(a, 64);
        REQUIRE(blocks[i] != NULL);
    }
    pp_stats_t peak = pp_stats(a);
    CHECK_EQ(peak.slabs, FOOTPRINT_SLABS);
    CHECK(footprint_adds_up(&peak));
    /* Free in random order, so slabs empty at random moments. */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = test_rand_range(0, i);
        void *t = blocks[i];
        blocks[i] = blocks[j];
        blocks[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        pp_free(a, blocks[i]);
    pp_stats_t after = pp_stats(a);
    CHECK(sound(a));
    CHECK(footprint_adds_up(&after));
    CHECK_EQ(after.live_blocks, 0);
    /* What is left: the slabs of quarantined blocks (checked builds),
     * and 1 + (those) / 4 spares. */
    size_t q = after.quarantined;
    CHECK_LE(after.slabs, q + 1 + q / 4);
    CHECK_GE(after.unmaps, FOOTPRINT_SLABS - (q + 1 + q / 4));
    CHECK_LT(after.mapped, peak.mapped / 4);
    CHECK_EQ(after.peak_mapped, peak.mapped);
    /* Trim gives back the rest: only the root page remains. */
    size_t released = pp_trim(a);
    pp_stats_t trimmed = pp_stats(a);
    CHECK_EQ(released, after.mapped - trimmed.mapped);
    CHECK_EQ(trimmed.slabs, 0);
    CHECK_EQ(trimmed.set_bytes, 0);
    CHECK_EQ(trimmed.mapped, PAGE);
    CHECK(sound(a));
    pp_destroy(a);
}

/* A pool that churns at the edge of a page keeps that page as a spare
 * instead of a munmap and a mmap on every round. In checked builds each
 * freed block first waits in the quarantine, which would keep the slab in
 * use; the rotation pushes it out, so that the slab empties on every round
 * in every build. */
static void test_spare_slab_prevents_thrashing(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *held[PP_QUARANTINE + 1];
    void *p = pp_alloc(a, 64);
    REQUIRE(p != NULL);
    pp_slab_t *slab = pp_slab_of(a, p);
    pp_free(a, p);
    quarantine_rotate(a, held);
    pp_stats_t before = pp_stats(a);
    CHECK_PTR_EQ(pp_slab_of(a, p), slab); /* kept, empty */
    CHECK_EQ(slab->used, 0);
    for (int i = 0; i < 1000; i++) {
        p = pp_alloc(a, 64);
        REQUIRE(p != NULL);
        pp_free(a, p);
        quarantine_rotate(a, held);
        REQUIRE(pp_slab_of(a, p) == slab && slab->used == 0);
    }
    pp_stats_t after = pp_stats(a);
    CHECK_EQ(after.maps, before.maps); /* no syscall at all */
    CHECK_EQ(after.unmaps, before.unmaps);
    CHECK_EQ(after.slabs, before.slabs);
    CHECK(sound(a));
    pp_destroy(a);
}

/* Empty slabs stay mapped as spares, in proportion to the slabs in use
 * (pp_check holds that bound after every free), and go back to the OS in
 * sweeps; with nothing in use, a pool keeps one. */
static void test_spares_kept_in_proportion(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    enum { SLABS = 24 };
    void *first = pp_alloc(a, 256);
    REQUIRE(first != NULL);
    pp_pool_t *pool = pp_slab_of(a, first)->pool;
    size_t n = (size_t)SLABS * pool->nblocks;
    REQUIRE(n <= MANY);
    void **blocks = many;
    blocks[0] = first;
    for (size_t i = 1; i < n; i++) {
        blocks[i] = pp_alloc(a, 256);
        REQUIRE(blocks[i] != NULL);
    }
    CHECK_EQ(pool->nslabs, SLABS);
    /* In address order, the blocks of one slab come together: freeing in
     * that order empties the slabs one after the other. */
    qsort(blocks, n, sizeof blocks[0], by_address);
    size_t most_spares = 0, unmaps = pp_stats(a).unmaps;
    for (size_t i = 0; i < n; i++) {
        pp_free(a, blocks[i]);
        if ((i + 1) % pool->nblocks == 0) {
            REQUIRE(sound(a)); /* includes spares <= 1 + in use / 4 */
            if (pool->nspares > most_spares)
                most_spares = pool->nspares;
        }
    }
    void *held[PP_QUARANTINE + 1];
    quarantine_rotate(a, held); /* checked builds: the last 256-B blocks */
    /* The spares pile up to the bound before the first sweep: k of them
     * with SLABS - k in use, for the largest k <= 1 + (SLABS - k) / 4 (5 of
     * 24). A pool that sweeps sooner keeps fewer. */
    size_t bound = 0;
    while (bound + 1 <= 1 + (SLABS - bound - 1) / 4)
        bound++;
    CHECK_EQ(most_spares, bound);
    if (verbose()) /* the figure of the README's exercise 7 */
        printf("    most spares before a sweep: %zu of %d slabs\n", most_spares,
               SLABS);
    CHECK_GE(pp_stats(a).unmaps, unmaps + SLABS / 2); /* and swept */
    CHECK_EQ(pool->nspares, 1);
    CHECK_EQ(pool->nslabs, 1);
    CHECK(sound(a));
    pp_destroy(a);
}

/* When munmap fails (it can: ENOMEM, at the limit on the number of
 * mappings), pp_free leaves errno alone, as POSIX asks of free, and the
 * page it could not give back is neither lost nor miscounted: it is kept,
 * and given back at the next chance. Here the sweep that pp_free starts by
 * itself is refused: two slabs of the largest class (3 blocks each) are
 * emptied, one spare too many. */
static void test_sweep_keeps_errno_and_the_page_when_munmap_fails(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *held[PP_QUARANTINE + 1];
    for (int i = 0; i < PP_QUARANTINE; i++) /* checked builds: see below */
        REQUIRE((held[i] = pp_alloc(a, 16)) != NULL);
    void *b[8];
    size_t per_slab = 0, n = 0;
    do {
        REQUIRE((b[n++] = pp_alloc(a, a->max_size)) != NULL);
        per_slab = pp_slab_of(a, b[0])->pool->nblocks;
    } while (n < 2 * per_slab && n < 8);
    REQUIRE(n == 2 * per_slab);
    pp_slab_t *first = pp_slab_of(a, b[0]), *second = pp_slab_of(a, b[n - 1]);
    REQUIRE(first != second);
    pp_stats_t before = pp_stats(a);

    fault_arm(FAULT_MUNMAP, 0, 1); /* the next munmap fails */
    errno = 1234;
    for (size_t i = 0; i < n; i++)
        pp_free(a, b[i]);
    /* Checked builds: the blocks wait in the quarantine; these frees push
     * them out, so that the same sweep runs inside one of them. */
    for (int i = 0; i < PP_QUARANTINE; i++)
        pp_free(a, held[i]);
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_calls(FAULT_MUNMAP), 1);  /* the sweep ran, once */
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1); /* and was refused */
    fault_disarm();
    CHECK(sound(a));
    pp_stats_t after = pp_stats(a);
    CHECK_EQ(after.slabs, before.slabs - 1); /* one page left its pool */
    CHECK_NULL(pp_slab_of(a, first));        /* the older one */
    CHECK(is_mapped(first, PAGE));           /* but the OS kept it */
    CHECK_EQ(after.refused_bytes, PAGE);     /* and so did we */
    CHECK_EQ(after.mapped, before.mapped);
    CHECK_EQ(after.unmaps, before.unmaps);

    /* Offered again at the next chance, here pp_trim: refused again, it
     * stays; then taken. */
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    (void)pp_trim(a); /* gives back the other spares */
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    CHECK(sound(a));
    CHECK_EQ(pp_stats(a).refused_bytes, PAGE);
    CHECK(is_mapped(first, PAGE));
    errno = 1234;
    CHECK_EQ(pp_trim(a), PAGE);
    CHECK_INT_EQ(errno, 1234);
    CHECK(!is_mapped(first, PAGE));
    CHECK_EQ(pp_stats(a).refused_bytes, 0);
    CHECK(sound(a));
    pp_destroy(a);
}

/* The same for pp_trim, whose first munmap here is the slab set's: the
 * last slab leaves the set, and the set's page goes back before the slab's.
 * The slab goes, the set's page is kept, and the next trim gives it back. */
static void test_trim_keeps_errno_and_the_set_when_munmap_fails(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *p = pp_alloc(a, 64);
    REQUIRE(p != NULL);
    pp_free(a, p);
    pp_stats_t before = pp_stats(a);
    REQUIRE(before.slabs == 1 && before.set_bytes == PAGE);
    fault_arm(FAULT_MUNMAP, 0, 1);
    errno = 1234;
    size_t back = pp_trim(a);
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_calls(FAULT_MUNMAP), 2); /* the set's page, the slab */
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 1);
    fault_disarm();
    CHECK(sound(a));
    pp_stats_t after = pp_stats(a);
    CHECK_EQ(back, PAGE); /* the slab */
    CHECK_EQ(after.slabs, 0);
    CHECK_EQ(after.set_bytes, 0);
    CHECK_EQ(after.refused_bytes, PAGE); /* the set's page, kept */
    CHECK_EQ(after.mapped, before.mapped - PAGE);
    CHECK_EQ(pp_trim(a), PAGE); /* offered again, taken */
    CHECK_EQ(pp_stats(a).mapped, PAGE);
    CHECK(sound(a));
    pp_destroy(a);
}

/* pp_destroy leaves errno alone too, even when every munmap fails (what it
 * could not give back stays mapped: there is no allocator left to keep it). */
static void test_destroy_keeps_errno_when_munmap_fails(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    REQUIRE(pp_alloc(a, 64) != NULL);
    fault_arm(FAULT_MUNMAP, 0, ~0u);
    errno = 1234;
    pp_destroy(a); /* a slab, the set, the root page */
    CHECK_INT_EQ(errno, 1234);
    CHECK_EQ(fault_failed(FAULT_MUNMAP), 3);
    fault_disarm();
}

// clang-format off
/* ---- Reuse and the quarantine ------------------------------------------- */
// clang-format on

static void test_freed_block_reuse(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *p = pp_alloc(a, 32);
    REQUIRE(p != NULL);
    pp_free(a, p);
    if (PP_QUARANTINE == 0) {
        /* Release builds: LIFO, the block just freed comes back first. */
        CHECK_PTR_EQ(pp_alloc(a, 32), p);
    } else {
        /* Checked builds: it is held back while PP_QUARANTINE other
         * blocks pass, so a stale pointer meets dead memory. */
        CHECK_EQ(pp_stats(a).quarantined, 1);
        for (int i = 0; i < 2 * PP_QUARANTINE; i++)
            CHECK(pp_alloc(a, 32) != p);
        pp_trim(a); /* the quarantine empties onto the free list */
        CHECK_EQ(pp_stats(a).quarantined, 0);
        CHECK_PTR_EQ(pp_alloc(a, 32), p);
    }
    CHECK(sound(a));
    pp_destroy(a);
}

// clang-format off
/* ---- Misuse: each runs in a child, which must abort with a message ------ */
// clang-format on

static void free_stack_address(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    (void)pp_alloc(a, 64);
    int local = 0;
    pp_free(a, &local);
}

static void free_heap_address(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    pp_free(a, malloc(64));
}

static void free_into_unmapped_slab(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    void *p = pp_alloc(a, 64);
    pp_free(a, p);
    pp_trim(a); /* its page goes back to the OS */
    pp_free(a, p);
}

static void free_misaligned(void *arg)
{
    pp_allocator_t *a = pp_create();
    char *p = pp_alloc(a, 48);
    pp_free(a, p + (uintptr_t)arg);
}

static void free_slab_header(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    char *p = pp_alloc(a, 48);
    pp_free(a, (char *)pp_slab_of(a, p) + 16);
}

static void free_twice(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    void *p = pp_alloc(a, 48);
    pp_free(a, p);
    pp_free(a, p); /* p is in the quarantine */
}

static void free_twice_later(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    void *p = pp_alloc(a, 48);
    pp_free(a, p);
    void *held[PP_QUARANTINE + 1];
    quarantine_rotate(a, held); /* p leaves the quarantine */
    pp_free(a, p);
}

/* The address just past a slab's last block: inside the slab's page, in
 * its tail (what is left after the last block: 32 B of a 48-B pool's
 * 4 KB page), but no block's start. */
static void free_past_last_block(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    char *p = pp_alloc(a, 48);
    const pp_slab_t *s = pp_slab_of(a, p);
    const pp_pool_t *pool = s->pool;
    pp_free(a, (char *)s + pool->first + pool->nblocks * pool->stride);
}

static void free_never_handed_out(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    char *p = pp_alloc(a, 48);
    pp_free(a, p + 5 * pp_slab_of(a, p)->pool->stride); /* on the list */
}

static void block_size_of_freed(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    void *p = pp_alloc(a, 48);
    pp_free(a, p);
    (void)pp_block_size(a, p);
}

static void block_size_misaligned(void *arg)
{
    (void)arg;
    pp_allocator_t *a = pp_create();
    char *p = pp_alloc(a, 48);
    (void)pp_block_size(a, p + 8);
}

/* Release builds check nothing on free: misuse there is undefined
 * behaviour, so these run in checked builds only. */
static void test_misuse_reported(void)
{
    // cppcheck-suppress knownConditionTrueFalse ; constant in each build
    if (!checked_build()) {
        test_skip("checked builds only: release builds do not check frees");
        return;
    }
    CHECK_ABORTS(free_misaligned, (void *)1, "03-pool-mmap: pp_free(0x");
    CHECK_ABORTS(free_misaligned, (void *)1, "not the start of a block");
    CHECK_ABORTS(free_misaligned, (void *)16, "not the start of a block");
    CHECK_ABORTS(free_slab_header, NULL, "not the start of a block");
    CHECK_ABORTS(free_twice, NULL, "double free");
    CHECK_ABORTS(free_twice_later, NULL, "double free");
    CHECK_ABORTS(free_never_handed_out, NULL, "double free");
    CHECK_ABORTS(free_past_last_block, NULL, "not the start of a block");
    CHECK_ABORTS(block_size_of_freed, NULL, "pp_block_size(0x");
    CHECK_ABORTS(block_size_of_freed, NULL, "not a live block (it was freed)");
    CHECK_ABORTS(block_size_misaligned, NULL, "not the start of a block");
}

static void test_misuse_foreign_pointers_reported(void)
{
    // cppcheck-suppress knownConditionTrueFalse ; constant in each build
    if (!checked_build()) {
        test_skip("checked builds only: release builds do not check frees");
        return;
    }
    CHECK_ABORTS(free_stack_address, NULL, "not a block of this allocator");
    CHECK_ABORTS(free_heap_address, NULL, "not a block of this allocator");
    CHECK_ABORTS(free_into_unmapped_slab, NULL,
                 "not a block of this allocator");
}

// clang-format off
/* ---- Out of memory: the OS refuses a mapping (common/fault.h) ----------- */
// clang-format on

static void test_out_of_memory_leaves_a_sound_heap(void)
{
    fault_arm(FAULT_MMAP, 0, 1); /* pp_create's root page */
    errno = 0;
    CHECK_NULL(pp_create());
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);
    fault_disarm();

    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    fault_arm(FAULT_MMAP, 0, 1); /* the slab set's first mapping */
    errno = 0;
    CHECK_NULL(pp_alloc(a, 64));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);
    CHECK(sound(a));
    CHECK_EQ(pp_stats(a).set_bytes, 0);
    fault_arm(FAULT_MMAP, 1, 1); /* the set maps, the slab does not */
    errno = 0;
    CHECK_NULL(pp_alloc(a, 64));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);
    CHECK(sound(a));
    CHECK_EQ(pp_stats(a).slabs, 0);
    CHECK_EQ(pp_stats(a).set_bytes, PAGE);
    fault_disarm();
    CHECK_NOT_NULL(pp_alloc(a, 64)); /* and then it works */

    /* A root page to chain, refused. */
    pp_stats_t s = pp_stats(a);
    size_t size = 16;
    for (; s.pools < s.pool_slots && size <= a->max_size; size += 16) {
        CHECK_NOT_NULL(pp_alloc(a, size));
        s = pp_stats(a);
    }
    if (size <= a->max_size) {
        fault_arm(FAULT_MMAP, 0, 1);
        errno = 0;
        CHECK_NULL(pp_alloc(a, size));
        CHECK_INT_EQ(errno, ENOMEM);
        CHECK_EQ(fault_failed(FAULT_MMAP), 1);
        CHECK_EQ(pp_stats(a).root_pages, 1);
        CHECK(sound(a));
        fault_disarm();
        CHECK_NOT_NULL(pp_alloc(a, size));
        CHECK_EQ(pp_stats(a).root_pages, 2);
    }
    fault_disarm();
    pp_destroy(a);
}

/* The slab set grows when half full and shrinks when 1/8 full; a refused
 * mapping leaves it as it was, working, and the frees that would have
 * shrunk it leave errno alone. */
static void test_slab_set_resizes_and_survives_refusals(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    size_t slots = PAGE / sizeof(uintptr_t); /* the set's first size */
    size_t per_slab = 0, n = 0, cap = 4 * slots;
    REQUIRE(cap * 4 <= MANY);
    void **blocks = many;
    /* The largest class: few blocks a slab, so many slabs quickly. */
    while (pp_stats(a).slabs < slots / 2) {
        blocks[n] = pp_alloc(a, a->max_size);
        REQUIRE(blocks[n] != NULL);
        n++;
    }
    per_slab = pp_slab_of(a, blocks[0])->pool->nblocks;
    while (pp_stats(a).live_blocks % per_slab != 0) /* fill the last */
        blocks[n++] = pp_alloc(a, a->max_size);
    CHECK_EQ(pp_stats(a).set_bytes, PAGE); /* exactly half full */
    fault_arm(FAULT_MMAP, 0, 1);           /* the grown set is refused */
    errno = 0;
    CHECK_NULL(pp_alloc(a, a->max_size));
    CHECK_INT_EQ(errno, ENOMEM);
    CHECK_EQ(fault_failed(FAULT_MMAP), 1);
    CHECK(sound(a));
    CHECK_EQ(pp_stats(a).set_bytes, PAGE);
    fault_disarm();
    blocks[n] = pp_alloc(a, a->max_size); /* now it grows */
    REQUIRE(blocks[n] != NULL);
    n++;
    CHECK_EQ(pp_stats(a).set_bytes, 2 * PAGE);
    CHECK(sound(a));
    /* Free everything, refusing every shrink: the set stays large but
     * correct, and goes away whole when the last slab does. */
    fault_arm(FAULT_MMAP, 0, ~0u);
    errno = 1234;
    for (size_t i = 0; i < n; i++) {
        pp_free(a, blocks[i]);
        if (i % 64 == 0)
            REQUIRE(sound(a));
    }
    CHECK_INT_EQ(errno, 1234); /* each refused shrink set ENOMEM, then */
    CHECK_GE(fault_failed(FAULT_MMAP), 1); /* pp_free put it back */
    fault_disarm();
    CHECK_EQ(pp_stats(a).set_bytes, 2 * PAGE);
    CHECK(sound(a));
    pp_trim(a);
    CHECK_EQ(pp_stats(a).set_bytes, 0);
    /* And without refusals it shrinks on the way down. */
    n = 0;
    while (pp_stats(a).slabs < slots / 2 + 1)
        blocks[n++] = pp_alloc(a, a->max_size);
    CHECK_EQ(pp_stats(a).set_bytes, 2 * PAGE);
    for (size_t i = 0; i < n; i++)
        pp_free(a, blocks[i]);
    void *held[PP_QUARANTINE + 1];
    quarantine_rotate(a, held);
    CHECK_EQ(pp_stats(a).set_bytes, PAGE);
    CHECK(sound(a));
    pp_destroy(a);
}

/* Where `key` lands alone in the slab set: its home slot. The set is
 * mapped for it and goes away with it (its last key). */
static size_t home_of(pp_allocator_t *a, uintptr_t key)
{
    if (!slabset_reserve(a))
        return SIZE_MAX;
    slabset_insert(a, key);
    size_t slot = 0;
    while (a->set[slot] != key)
        slot++;
    slabset_remove(a, key);
    return slot;
}

/* The first page address from *n on (made up: the set never touches the
 * pages it names) whose home is `slot`, or 0 if none is found soon. */
static uintptr_t key_at_home(pp_allocator_t *a, size_t slot, uintptr_t *n)
{
    unsigned shift = a->page_shift;
    for (size_t tries = 0; tries < 64 * (PAGE / sizeof(uintptr_t)); tries++) {
        uintptr_t key = (*n)++ << shift;
        if (home_of(a, key) == slot)
            return key;
    }
    return 0;
}

/* Adds a key to the set as slab_map does: room first, then the key. */
static void set_add(pp_allocator_t *a, uintptr_t key)
{
    if (CHECK(slabset_reserve(a)))
        slabset_insert(a, key);
}

/* A run of linear probing wraps from the set's last slot to slot 0. A
 * removal there must move back exactly the keys after the hole whose home
 * is not in the cyclic range (hole, where they sit]: a key in slot 0 at
 * its home stays, a key that wrapped from the last slot moves back into
 * it. Asked of the set directly (pagepool_internal.h), with made-up page
 * addresses, since the kernel decides where real slabs go. */
static void test_slab_set_removal_wraps_around(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    size_t last = PAGE / sizeof(uintptr_t) - 1; /* the first set's size */
    uintptr_t n = 1;
    uintptr_t at_last = key_at_home(a, last, &n);
    uintptr_t at_last2 = key_at_home(a, last, &n);
    uintptr_t at_zero = key_at_home(a, 0, &n);
    REQUIRE(at_last != 0 && at_last2 != 0 && at_zero != 0);

    /* [0]: at_zero, at home; [last]: at_last. Removing at_last moves
     * nothing. */
    set_add(a, at_last);
    set_add(a, at_zero);
    REQUIRE(a->set_cap == last + 1);
    REQUIRE(a->set[last] == at_last && a->set[0] == at_zero);
    slabset_remove(a, at_last);
    CHECK(!slabset_contains(a, at_last));
    CHECK(slabset_contains(a, at_zero));
    CHECK_EQ(a->set_count, 1);

    /* [last]: at_last; [0]: at_last2, wrapped; [1]: at_zero, pushed on.
     * Removing at_last moves both back. */
    slabset_remove(a, at_zero);
    CHECK_EQ(a->set_cap, 0); /* the last key took the set with it */
    set_add(a, at_last);
    set_add(a, at_last2);
    set_add(a, at_zero);
    REQUIRE(a->set[last] == at_last && a->set[0] == at_last2 &&
            a->set[1] == at_zero);
    slabset_remove(a, at_last);
    CHECK(!slabset_contains(a, at_last));
    CHECK(slabset_contains(a, at_last2));
    CHECK(slabset_contains(a, at_zero));
    CHECK_EQ(a->set_count, 2);
    slabset_remove(a, at_last2);
    CHECK(slabset_contains(a, at_zero));
    slabset_remove(a, at_zero);
    CHECK_EQ(a->set_count, 0);
    CHECK_EQ(a->set_cap, 0);
    CHECK(sound(a)); /* no slab, no set, nothing left mapped but the root */
    CHECK_EQ(pp_stats(a).mapped, PAGE);
    pp_destroy(a);
}

// clang-format off
/* ---- The checker catches a broken heap ---------------------------------- */
// clang-format on

/* Reads and writes the free-list link inside a free block, opening it for
 * the memory tools as the allocator does. */
static pp_free_t *peek_link(pp_free_t *f)
{
    track_mem_defined(f, sizeof *f);
    pp_free_t *next = f->next;
    track_mem_noaccess(f, sizeof *f);
    return next;
}

static void poke_link(pp_free_t *f, pp_free_t *next)
{
    track_mem_undefined(f, sizeof *f);
    f->next = next;
    track_mem_noaccess(f, sizeof *f);
}

/* pp_check fails, for the reason expected. */
#define CHECK_BROKEN(a, reason)                                                \
    do {                                                                       \
        CHECK(!pp_check(a));                                                   \
        CHECK(strstr(pp_check_failure(), reason) != NULL);                     \
    } while (0)

/* The same, where checked builds see the damage first in the live bitmap,
 * which the count being broken no longer matches. */
#define CHECK_BROKEN_COUNT(a, reason)                                          \
    CHECK_BROKEN(a, checked_build() ? "bitmap disagrees" : (reason))

static void test_check_catches_broken_heaps(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *b[8];
    for (int i = 0; i < 8; i++)
        b[i] = pp_alloc(a, 64);
    void *other = pp_alloc(a, 128); /* another pool, another slab */
    pp_free(a, b[1]);
    pp_free(a, b[3]);
    pp_free(a, b[5]);
    pp_trim(a); /* checked builds: out of the quarantine, onto the list */
    REQUIRE(sound(a));
    pp_slab_t *c = pp_slab_of(a, b[0]);
    REQUIRE(c != NULL && c->used == 5);
    pp_pool_t *pool = c->pool;
    pp_free_t *head = pool->free, *second = peek_link(head);
    CHECK_PTR_EQ(head, b[5]); /* last freed, first out */

    /* Counts in the slab header. */
    c->used++;
    CHECK_BROKEN_COUNT(a, "longer than the free blocks");
    c->used -= 2;
    CHECK_BROKEN_COUNT(a, "shorter than the free blocks");
    c->used++;
    c->held = c->used + 1;
    CHECK_BROKEN(a, "out of range");
    c->held = 0;
    REQUIRE(sound(a));
    // cppcheck-suppress knownConditionTrueFalse ; constant in each build
    if (checked_build()) { /* the bitmap: a free block marked live */
        uint32_t i1 =
            (uint32_t)(((char *)b[1] - (char *)c - pool->first) / pool->stride);
        c->live_map[i1 / 64] ^= (uint64_t)1 << (i1 % 64);
        CHECK_BROKEN(a, "bitmap disagrees");
        c->live_map[i1 / 64] ^= (uint64_t)1 << (i1 % 64);
        c->live_map[0] ^= 1; /* block 0 is live: its bit cleared */
        CHECK_BROKEN(a, "bitmap disagrees");
        c->live_map[0] ^= 1;
        REQUIRE(sound(a));
    }

    /* The free list: a cycle, a node in another pool, a node off a block
     * boundary, a node that is a live block, a lost tail. */
    poke_link(head, head);
    CHECK_BROKEN(a, "a cycle?");
    poke_link(head, other);
    CHECK_BROKEN(a, "not in one of its pool's slabs");
    poke_link(head, (pp_free_t *)((char *)second + 8));
    CHECK_BROKEN(a, "not a block's start");
    // cppcheck-suppress knownConditionTrueFalse ; constant in each build
    if (checked_build()) { /* release builds cannot tell a live block */
        poke_link(head, b[0]);
        CHECK_BROKEN(a, "is a live block");
    }
    poke_link(head, NULL);
    CHECK_BROKEN(a, "shorter than the free blocks");
    poke_link(head, second);
    REQUIRE(sound(a));

    /* Two slabs of one pool whose counts are swapped: the totals agree,
     * the slab-by-slab count does not. */
    void *big[4];
    for (int i = 0; i < 4; i++)
        big[i] = pp_alloc(a, 1024); /* 3 blocks a slab: 2 slabs */
    pp_slab_t *c1 = pp_slab_of(a, big[0]), *c2 = pp_slab_of(a, big[3]);
    REQUIRE(c1 != c2 && c1->used == 3 && c2->used == 1);
    c1->used--;
    c2->used++;
    CHECK_BROKEN_COUNT(a, "disagrees with the free list");
    c1->used++;
    c2->used--;
    REQUIRE(sound(a));
    // cppcheck-suppress knownConditionTrueFalse ; constant in each build
    if (PP_QUARANTINE) {
        /* The same damage the bitmap cannot see: a quarantined block of
         * c1 linked into the free list in place of a free block of c2
         * (a block on the list and in the quarantine at once, another
         * lost). Every total and every bit agrees; only the count of
         * each slab's nodes on the list does not. */
        pp_pool_t *bp = c1->pool;
        pp_free(a, big[0]); /* held: dead, not on the list */
        REQUIRE(c1->held == 1 && c2->used == 1);
        pp_free_t *was = bp->free; /* a free block of c2 */
        REQUIRE(pp_slab_of(a, was) == c2);
        poke_link((pp_free_t *)big[0], peek_link(was));
        bp->free = big[0];
        CHECK_BROKEN(a, "disagrees with the free list");
        bp->free = was;
        REQUIRE(sound(a));
#if PP_QUARANTINE /* the ring's fields exist in checked builds only */
        /* Within one slab, the counts cannot see it at all: big[0], held,
         * pushed on the free list too, c1 counting one block fewer out,
         * and the live block big[1] in no place (its bit cleared). Every
         * count, every bit and every slab's share of the list agree. */
        uint32_t i1 = block_index(bp, c1, big[1]);
        uint64_t bit1 = (uint64_t)1 << (i1 % 64);
        REQUIRE(c1->used == 3 && c1->held == 1 && a->q_count == 1);
        poke_link((pp_free_t *)big[0], was);
        bp->free = big[0];
        c1->used--;
        c1->live_map[i1 / 64] ^= bit1;
        CHECK_BROKEN(a, "also on the free list");
        bp->free = was;
        c1->used++;
        c1->live_map[i1 / 64] ^= bit1;
        REQUIRE(sound(a));
        /* The same with the quarantine holding big[0] twice (held counts
         * both entries) and big[1] again in no place. */
        a->quarantine[(a->q_head + a->q_count) % PP_QUARANTINE] = big[0];
        a->q_count++;
        c1->held++;
        c1->live_map[i1 / 64] ^= bit1;
        CHECK_BROKEN(a, "in the quarantine twice");
        a->q_count--;
        c1->held--;
        c1->live_map[i1 / 64] ^= bit1;
        REQUIRE(sound(a));
#endif
    }

    /* The pool's slab list and counts. */
    pool->nspares++;
    CHECK_BROKEN(a, "slab or spare count");
    pool->nspares--;
    pool->nblocks++;
    CHECK_BROKEN(a, "geometry");
    pool->nblocks--;
    c2->prev = c2;
    CHECK_BROKEN(a, "prev link is wrong");
    c2->prev = NULL; /* c2 is the newest slab: the first of its list */
    REQUIRE(sound(a));
    pp_pool_t *op = pp_slab_of(a, other)->pool;

    size_t slot = 0;
    while (a->set[slot] != (uintptr_t)c)
        slot++;
    a->set[slot] = 0;
    CHECK_BROKEN(a, "missing from the slab set");
    a->set[slot] = (uintptr_t)c;
    a->mapped += PAGE;
    CHECK_BROKEN(a, "mapped byte count");
    a->mapped -= PAGE;
    a->pool_of_class[3] = op;
    CHECK_BROKEN(a, "pool_of_class");
    a->pool_of_class[3] = NULL;
    a->pool_of_class[0] = op;
    CHECK_BROKEN(a, "pool_of_class[0]");
    a->pool_of_class[0] = NULL;
    a->nroots++;
    CHECK_BROKEN(a, "root chain");
    a->nroots--;
    CHECK(sound(a));
    CHECK_EQ(strlen(pp_check_failure()), 0);
    pp_destroy(a);
}

// clang-format off
/* ---- The drawing -------------------------------------------------------- */
// clang-format on

static void test_dump_draws_the_heap(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    void *x = pp_alloc(a, 256);
    void *y = pp_alloc(a, 256);
    void *z = pp_alloc(a, 256);
    REQUIRE(x && y && z);
    pp_free(a, y);
    char out[4096] = {0};
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    REQUIRE(f != NULL);
    pp_dump(a, f);
    fclose(f);
    CHECK(strstr(out, "1 root page,") != NULL);
    CHECK(strstr(out, "1 pool,") != NULL);
    CHECK(strstr(out, "pool 256 B") != NULL);
    CHECK(strstr(out, "2 live") != NULL);
    /* live, freed (on the list, or held in checked builds), live, free */
    CHECK(strstr(out, PP_QUARANTINE ? "|#q#." : "|#.#.") != NULL);
    pp_trim(a);
    f = fmemopen(out, sizeof out - 1, "w");
    REQUIRE(f != NULL);
    pp_dump(a, f);
    fclose(f);
    CHECK(strstr(out, "|#.#.") != NULL);
    CHECK(strstr(out, "free list: A1 -> A3 -> A4") != NULL); /* LIFO */
    pp_destroy(a);
}

// clang-format off
/* ---- A randomized run, checked after every operation -------------------- */
// clang-format on

#define MAX_LIVE 600

typedef struct live_block {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} live_block;

static bool block_intact(const live_block *b)
{
    for (size_t j = 0; j < b->size; j++)
        if (b->p[j] != b->tag)
            return false;
    return true;
}

static void test_random_ops_keep_invariants(void)
{
    pp_allocator_t *a = pp_create();
    REQUIRE(a != NULL);
    static live_block live[MAX_LIVE];
    size_t nlive = 0;
    size_t ops = test_scale(4000);
    for (size_t op = 0; op < ops; op++) {
        unsigned r = (unsigned)test_rand_range(0, 99);
        if (r < 55 && nlive < MAX_LIVE) {
            /* mostly small, sometimes up to the limit, sometimes 0 */
            size_t size = r < 40 ? test_rand_range(0, 128)
                                 : test_rand_range(0, a->max_size);
            unsigned char *p = pp_alloc(a, size);
            REQUIRE(p != NULL);
            CHECK(is_aligned(p, 16));
            CHECK_GE(pp_block_size(a, p), size);
            unsigned char tag = (unsigned char)test_rand();
            memset(p, tag, size);
            live[nlive++] = (live_block){p, size, tag};
        } else if (r < 98 && nlive > 0) {
            size_t k = test_rand_range(0, nlive - 1);
            REQUIRE(block_intact(&live[k]));
            pp_free(a, live[k].p);
            live[k] = live[--nlive];
        } else {
            pp_trim(a);
        }
        REQUIRE(sound(a));
        pp_stats_t s = pp_stats(a);
        CHECK_EQ(s.live_blocks, nlive);
        CHECK(footprint_adds_up(&s));
    }
    for (size_t k = 0; k < nlive; k++) {
        CHECK(block_intact(&live[k]));
        pp_free(a, live[k].p);
    }
    CHECK(sound(a));
    pp_destroy(a);
}

// clang-format off
/* ---- The conformance suite ---------------------------------------------- */
// clang-format on

static void *c_create(void)
{
    return pp_create();
}
static void c_destroy(void *a)
{
    pp_destroy(a);
}
static void *c_alloc(void *a, size_t size)
{
    return pp_alloc(a, size);
}
static void c_free(void *a, void *p, size_t size)
{
    (void)size;
    pp_free(a, p);
}
static bool c_check(void *a)
{
    return pp_check(a);
}

int main(int argc, char **argv)
{
    test_init(argc, argv);
    RUN_TEST(test_create_maps_one_root_page);
    RUN_TEST(test_destroy_unmaps_everything);
    RUN_TEST(test_every_size_gets_its_class);
    RUN_TEST(test_sizes_above_the_limit_are_refused);
    RUN_TEST(test_zero_and_null);
    RUN_TEST(test_pools_and_slabs_come_lazily);
    RUN_TEST(test_a_slab_is_one_page_found_by_mask);
    RUN_TEST(test_slab_of_answers_for_foreign_addresses);
    RUN_TEST(test_root_pages_chain_when_full);
    RUN_TEST(test_footprint_falls_after_frees);
    RUN_TEST(test_spare_slab_prevents_thrashing);
    RUN_TEST(test_spares_kept_in_proportion);
    RUN_TEST(test_sweep_keeps_errno_and_the_page_when_munmap_fails);
    RUN_TEST(test_trim_keeps_errno_and_the_set_when_munmap_fails);
    RUN_TEST(test_destroy_keeps_errno_when_munmap_fails);
    RUN_TEST(test_freed_block_reuse);
    RUN_TEST(test_misuse_reported);
    RUN_TEST(test_misuse_foreign_pointers_reported);
    RUN_TEST(test_out_of_memory_leaves_a_sound_heap);
    RUN_TEST(test_slab_set_resizes_and_survives_refusals);
    RUN_TEST(test_slab_set_removal_wraps_around);
    RUN_TEST(test_check_catches_broken_heaps);
    RUN_TEST(test_dump_draws_the_heap);
    RUN_TEST(test_random_ops_keep_invariants);

    /* The page size is known at run time only: the suite's limits too. */
    conform_ops ops = {
        .name = "03-pool-mmap",
        .caps = CONFORM_ANY_SIZE | CONFORM_FREE,
        .align = PP_ALIGN,
        .max_size = PAGE / 4,
        .capacity = 0, /* grows a page at a time */
        .create = c_create,
        .destroy = c_destroy,
        .alloc = c_alloc,
        .free = c_free,
        .check = c_check,
    };
    conform_run(&ops);
    return test_finish();
}
