/*
 * fl_internal.h: the layout of fl.c's diagrams, written as C, for the two
 * files that need it: fl.c, which writes chunks and regions, and
 * fl_check.c, which only reads them. Not part of the API (fl.h is).
 *
 * Everything here reads: the header word's fields, the region header, a
 * metadata word opened for the memory tools for the instant of the read,
 * the free-list links, and the walk that finds an address's region. The
 * pictures are in fl.c, "Layout".
 */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H

#include "annotate.h"
#include "fl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define STAGE "04-freelist"

/* A checked build is one compiled with -DALLOC_DEBUG (build/debug,
 * build/valgrind, build/asan, build/tsan); an annotated build, one that
 * tells a memory tool about the blocks (build/valgrind, build/asan), must
 * be a checked build: the quarantine is what lets the tool see a use after
 * free. A tool build without ALLOC_DEBUG is refused, as stages 02 and 03
 * refuse it, rather than quietly made a checked one. */
#if defined(ALLOC_DEBUG)
#define FL_CHECKED 1
#else
#define FL_CHECKED 0
#endif
#if TRACK_ENABLED && !FL_CHECKED
#error                                                                         \
    "04-freelist: an annotated build must be a checked build: add -DALLOC_DEBUG"
#endif

// clang-format off
/* ---- The header word (fl.c's diagram header-word) ----------------------- */
// clang-format on

/* Flags U, P, Q are in fl.h (the tests write headers); F is private. */
// clang-format off
#define FL_FIRST     8u  /* F: the first chunk of its region */
#define FLAGS_MASK   15u /* U | P | Q | F: bits 0..3 */
#define SIZE_MASK    ((uint64_t)0x0000FFFFFFFFFFF0u) /* bits 4..47 */
#define SLACK_SHIFT  48  /* bits 48..53 */
#define SLACK_MAX    63u
#define CHECK_SHIFT  54  /* bits 54..63 */
#define FENCE_SIZE   0   /* a fencepost is a used chunk of size 0 */
#define REGION_MAGIC ((uintptr_t)0x46726565C4A11A57u)
// clang-format on

/* 10 bits of a hash of the word's other 54 bits and of its address
 * (splitmix64's finisher): a header copied elsewhere no longer matches. */
static inline uint64_t check_bits(const void *at, uint64_t body)
{
    uint64_t x = body ^ ((uint64_t)(uintptr_t)at * 0x9E3779B97F4A7C15u);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 29;
    return x >> CHECK_SHIFT;
}

/* The fields of a header word w. */
static inline size_t w_size(uint64_t w)
{
    return (size_t)(w & SIZE_MASK);
}
static inline unsigned w_flags(uint64_t w)
{
    return (unsigned)(w & FLAGS_MASK);
}
static inline size_t w_slack(uint64_t w)
{
    return (size_t)((w >> SLACK_SHIFT) & SLACK_MAX);
}
/* True when w's check bits match the rest of w and the address it is at. */
static inline bool w_ok(const void *at, uint64_t w)
{
    uint64_t body = w & ~((uint64_t)0x3FF << CHECK_SHIFT);
    return (w >> CHECK_SHIFT) == check_bits(at, body);
}
/* Bytes the block's owner asked for: payload (size - header) minus slack. */
static inline size_t w_request(uint64_t w)
{
    return w_size(w) - FL_HEADER - w_slack(w);
}

// clang-format off
/* ---- The region header (fl.c's diagram region) -------------------------- */
// clang-format on

/* At the start of every mapping. It stays accessible to the memory tools:
 * it holds no pointer to a block, and nothing but the allocator uses it. */
typedef struct fl_region {
    struct fl_region *next, *prev; /* the heap's regions, newest first */
    size_t size;                   /* bytes mapped, this header included */
    uintptr_t magic;               /* REGION_MAGIC ^ its own address */
} fl_region;

_Static_assert(sizeof(fl_region) == 32, "region header is 32 bytes");
#define REGION_FIRST    40 /* offset of the first chunk: header + fencepost */
#define REGION_OVERHEAD 48 /* region header and both fenceposts */

// clang-format off
/* ---- Reading metadata --------------------------------------------------- */
// clang-format on

static inline char *at(const void *chunk, size_t off)
{
    return (char *)(uintptr_t)chunk + off;
}

/*
 * Every read of a header, footer or link goes through word_get (and every
 * write through fl.c's word_set). In plain builds it is a memcpy (one move);
 * in annotated builds it opens the word to the memory tool for the instant
 * of the read, so that the same word stays no-access to the program: a
 * stray write into a header is reported where it happens, not at the next
 * free. memcpy, not a cast, because the word may sit in memory that C sees
 * as another object (a block's payload): memcpy is the aliasing-safe read.
 */
static inline uint64_t word_get(const void *at)
{
    uint64_t w;
    track_mem_defined(at, 8);
    memcpy(&w, at, sizeof w);
    track_mem_noaccess(at, 8);
    return w;
}

/* Free-list links live in the first two payload words of a free chunk. */
static inline void *link_next(const void *c)
{
    return (void *)(uintptr_t)word_get(at(c, 8));
}
static inline void *link_prev(const void *c)
{
    return (void *)(uintptr_t)word_get(at(c, 16));
}

/* The size of a free chunk on the list. Not verified (fl_check does): the
 * search reads it for every chunk it passes. */
static inline size_t free_size(const void *c)
{
    return w_size(word_get(c));
}

static inline size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* The region whose chunk area holds address p, or NULL: a walk of the
 * region list, O(regions), so fl.c does it in checked builds only. */
static inline fl_region *region_find(const fl_heap *h, const void *p)
{
    for (fl_region *r = h->regions; r != NULL; r = r->next) {
        const char *lo = (const char *)r + REGION_FIRST;
        const char *hi = (const char *)r + r->size - FL_HEADER;
        if ((const char *)p >= lo && (const char *)p < hi)
            return r;
    }
    return NULL;
}

#endif /* FL_INTERNAL_H */
