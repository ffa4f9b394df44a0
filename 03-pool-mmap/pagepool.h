/*
 * pagepool.h: pools of pages from the OS. An allocator object holds one pool
 * per block size; every pool cuts whole OS pages into blocks of its size.
 * This file holds the words, the structures (with their invariants) and the
 * API; pagepool.c holds the algorithm and draws the layout.
 *
 * Words, used the same way everywhere in this stage:
 *   page       the OS page, as sysconf(_SC_PAGESIZE) says (4096 B on x86-64,
 *              but never assumed): the unit of mmap and munmap
 *   block      what pp_alloc() hands out; its start is 16-byte aligned
 *   size class the block sizes a pool can have: 16, 32, 48, ... up to a
 *              quarter of a page; a request is rounded up to its class
 *   pool       all the blocks of one class, and the slabs that hold them
 *   slab       exactly one page, page-aligned, obtained with one mmap and
 *              cut into blocks of one pool's size (Bonwick's word; stage
 *              06's span is a slab of several pages)
 *   root page  a page of headers: the first holds the allocator and the
 *              first pool headers; when it is full, another is chained
 *   spare      a slab with no block out, kept mapped for a while rather
 *              than unmapped at once (at most 1 + a quarter of a pool's)
 *   sweep      what gives spares back to the OS, when a pool holds too
 *              many: run by pp_free itself, and by pp_trim
 *   checked build    any build with -DALLOC_DEBUG (build/debug, valgrind,
 *              asan): frees are checked (the slab set, the live bitmap),
 *              fresh and freed blocks are filled when no tool watches, and
 *              freed blocks wait in the quarantine
 *   quarantine in checked builds, a FIFO of the last PP_QUARANTINE freed
 *              blocks, not handed out again until they leave it, so that a
 *              use-after-free is not hidden by immediate reuse
 *   annotated build  a checked build that also tells a memory tool about
 *              the blocks: build/valgrind (client requests), build/asan
 *              (poisoning). Every annotated build is a checked build
 *              (pagepool.c refuses to compile otherwise); build/release is
 *              neither
 *   redzone    16 no-access bytes before and after every block, in
 *              annotated builds only, so that an overflow is reported
 *
 * Not thread-safe: one allocator belongs to one thread at a time (stage 05
 * adds locks and per-thread arenas, stage 07 per-thread caches).
 */
#ifndef PAGEPOOL_H
#define PAGEPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every block starts on a multiple of this, and classes are its multiples:
 * alignof(max_align_t) on x86-64, the series' promise. */
#define PP_ALIGN 16

/*
 * Checked builds look up every freed pointer's page in the slab set, check
 * that it is a live block's start (a live bitmap per slab), and hold the
 * last PP_QUARANTINE freed blocks back. Release builds do none of it: their
 * free is a push on a list (the README says what each check costs).
 */
#ifdef ALLOC_DEBUG
#define PP_CHECKED    1
#define PP_QUARANTINE 16
#else
#define PP_CHECKED    0
#define PP_QUARANTINE 0
#endif

/*
 * The structures are public so that a student can print them in a debugger
 * and the tests can break them on purpose; only pp_* functions change them.
 * pagepool.c draws how they lie in memory.
 */

/* A free block seen through its first 8 bytes: the link to the next free
 * block of the same pool, in this slab or in another (the `struct run` of
 * kalloc.c in xv6, MIT's teaching kernel, threads its free pages the same
 * way). */
typedef struct pp_free {
    struct pp_free *next;
} pp_free_t;

typedef struct pp_pool pp_pool_t;
typedef struct pp_slab pp_slab_t;

/*
 * The header at the start of every slab. A slab's blocks are numbered
 * 0 .. nblocks-1; block i starts at (char *)slab + first + i * stride.
 * Its free blocks are on its pool's free list, mixed with those of the
 * pool's other slabs: the slab only counts the blocks it has out.
 *
 * Every block is live, held in the quarantine, or on the pool's free list
 * (invariant, pp_check verifies):
 *     used == live + held
 *     used + (nodes of the pool's free list inside this slab) == nblocks
 *     checked builds: popcount(live_map) == live, no block on the free
 *     list or in the quarantine has its bit set, and no block is in the
 *     quarantine twice, or in the quarantine and on the free list
 */
struct pp_slab {
    pp_pool_t *pool;     /* the pool this slab belongs to */
    pp_slab_t *prev;     /* neighbours in the pool's list of slabs */
    pp_slab_t *next;     /* (NULL at either end) */
    uint32_t used;       /* blocks not on the free list: live or held */
    uint32_t held;       /* freed blocks waiting in the quarantine */
    uint32_t doomed;     /* 1 only during a sweep: this page goes back */
    uint32_t unused_pad; /* keeps live_map 8-byte aligned */
    uint64_t live_map[]; /* checked builds only: bit i set when block i is
                            live; page_size / 1024 words (one bit for each
                            of at most page_size / 16 blocks). Release
                            builds reserve no room for it */
};

/*
 * A pool: the blocks of one size class, in slabs of one page each.
 * Invariants (pp_check verifies):
 *     nslabs == |slabs|,  nspares == slabs with used == 0
 *     nspares <= 1 + (nslabs - nspares) / 4: one more, and the sweep gives
 *     back all but 1 + (nslabs - nspares) / 8 (pagepool.c, step 4 of free)
 *     every node of `free` is a block start in one of `slabs`
 */
struct pp_pool {
    size_t block_size; /* bytes a block offers: its class, 16 * cls */
    size_t stride;     /* bytes from one block to the next: block_size
                          plus the redzone of annotated builds */
    size_t first;      /* offset of block 0 in a slab (same in all pools) */
    uint32_t nblocks;  /* blocks in one slab: (page - first) / stride */
    uint32_t cls;      /* its index in pool_of_class: block_size / 16 */
    pp_free_t *free;   /* free blocks of all its slabs, last freed first */
    pp_slab_t *slabs;  /* all its slabs, newest first */
    size_t nslabs;     /* length of `slabs` */
    size_t nspares;    /* slabs with no block out: "spares", mapped but
                          idle, their blocks still on `free` */
};

/* The header of a root page. Pools are only ever added (never removed
 * before pp_destroy), so only the last root page can have a free slot. */
typedef struct pp_root {
    struct pp_root *next; /* the next root page of the chain, or NULL */
    pp_pool_t *pools;     /* the first pool slot on this page */
    uint32_t npools;      /* slots in use */
    uint32_t cap;         /* slots on this page */
} pp_root_t;

/* A mapping that munmap refused to take back (it can: ENOMEM, when the
 * unmapping would split a mapping past the limit on their number), seen
 * through its first bytes. It stays on the allocator's list, counted in
 * `mapped`, and is offered again at the next sweep, pp_trim or pp_destroy:
 * a refusal loses no memory and leaves every count true. */
typedef struct pp_refused {
    struct pp_refused *next; /* the next refused mapping, or NULL */
    size_t bytes;            /* its length: a page, or the set's mapping */
} pp_refused_t;

/*
 * The allocator object. It lives in the first root page, right after that
 * page's pp_root_t, and pool_of_class[] runs on after it.
 *
 * The slab set answers "is this page one of my slabs?" without touching
 * the page (which may not be mapped at all): an open-addressing hash set of
 * slab addresses, linear probing, at most half full, in its own mapping
 * (slabset.c).
 *
 * Invariants (pp_check verifies):
 *     mapped == page_size * (nroots + nslabs) + the set's mapping
 *               + refused_bytes
 *     set_count == nslabs, and every slab of every pool is in the set
 *     pool_of_class[k] is NULL or the pool with block_size 16 * k, for
 *     k >= 1; pool_of_class[0] == pool_of_class[1] (size 0 gets 16 B)
 */
typedef struct pp_allocator {
    size_t page_size;      /* the OS page, from sysconf; a slab's size */
    uintptr_t page_mask;   /* ~(page_size - 1): block & page_mask = slab */
    unsigned page_shift;   /* log2(page_size) */
    size_t max_size;       /* the largest request: page_size / 4 */
    size_t nclasses;       /* max_size / 16: classes 1 .. nclasses */
    size_t first_block;    /* offset of block 0 in every slab: the header
                              (the bitmap in checked builds) and a redzone */
    pp_root_t *roots;      /* root page 0, where this struct lives */
    pp_root_t *last_root;  /* the end of the chain: new pools go there */
    size_t nroots;         /* root pages in the chain */
    size_t npools;         /* pools created so far */
    size_t nslabs;         /* slabs of all pools, spares included */
    uintptr_t *set;        /* slab set slots (0 = empty), or NULL */
    size_t set_cap;        /* slots: 0 or a power of two */
    size_t set_count;      /* slots in use */
    unsigned set_shift;    /* 64 - log2(set_cap): the hash keeps top bits */
    pp_refused_t *refused; /* mappings munmap refused, newest first */
    size_t refused_bytes;  /* their bytes, added up */
    size_t mapped;         /* bytes held from the OS right now */
    size_t peak_mapped;    /* the most ever held at once */
    size_t maps, unmaps;   /* mmap and munmap calls that succeeded */
#if PP_QUARANTINE
    void *quarantine[PP_QUARANTINE]; /* freed blocks, oldest at q_head */
    unsigned q_head, q_count;        /* a ring: first slot, and how many */
#endif
    pp_pool_t *pool_of_class[]; /* nclasses + 1 entries; [k]: the pool of
                                   blocks of 16 * k bytes, NULL until the
                                   first request of that class */
} pp_allocator_t;

typedef struct pp_stats {
    size_t page_size;     /* bytes in an OS page, and in a slab */
    size_t max_size;      /* the largest request pp_alloc accepts */
    size_t mapped;        /* bytes held from the OS: root pages, slabs, the
                             set, refused mappings */
    size_t peak_mapped;   /* the most ever held at once */
    size_t root_pages;    /* pages of headers */
    size_t pool_slots;    /* pool headers the root pages have room for */
    size_t pools;         /* pools created */
    size_t slabs;         /* slabs held, spares included */
    size_t spares;        /* slabs held empty (see pp_pool_t) */
    size_t live_blocks;   /* blocks handed out and not freed */
    size_t live_bytes;    /* their block sizes added up (class, not request) */
    size_t quarantined;   /* freed blocks held back (checked builds) */
    size_t set_bytes;     /* the slab set's mapping */
    size_t refused_bytes; /* mappings munmap refused, held to retry */
    size_t maps;          /* mmap calls that succeeded */
    size_t unmaps;        /* munmap calls that succeeded */
} pp_stats_t;

/* A new allocator: one root page, no pool, no slab yet. NULL with
 * errno = ENOMEM if the OS refuses the page. */
pp_allocator_t *pp_create(void);

/* Gives every page back to the OS. Blocks still live die with it (as with
 * any pool); a NULL allocator is ignored; errno is left as it was. */
void pp_destroy(pp_allocator_t *a);

/*
 * A block of at least `size` bytes, 16-byte aligned: `size` rounded up to
 * its class (0 gets a 16-byte block, a unique pointer). A size above
 * max_size (a quarter of a page) gives NULL with errno = ENOMEM, and so
 * does an OS that refuses a page.
 */
void *pp_alloc(pp_allocator_t *a, size_t size);

/*
 * Frees a block; NULL is ignored; errno is left as it was, even when giving
 * pages back fails. In checked builds, a pointer that is not the start of a
 * live block of `a` is reported (stage, function, address) and the program
 * aborts: a pointer whose page is not one of a's slabs, misaligned or
 * inside a slab header, a double free. Release builds check nothing: misuse
 * there is undefined behaviour, as with free().
 */
void pp_free(pp_allocator_t *a, void *p);

/* The block size of a live block: its class. Misuse reported as pp_free,
 * but a freed block is "not a live block", not a double free. */
size_t pp_block_size(const pp_allocator_t *a, const void *p);

/* The block size a request of `size` would get, or 0 if it is refused. */
size_t pp_class_size(const pp_allocator_t *a, size_t size);

/* The slab that holds address p, or NULL if p's page is not one of a's
 * slabs. O(1): the address masked to its page, looked up in the set. */
pp_slab_t *pp_slab_of(const pp_allocator_t *a, const void *p);

/* Gives back what is held but unused: the quarantine is emptied, every
 * pool's spare slabs unmapped, refused mappings offered again. Returns the
 * bytes given back; errno is left as it was. */
size_t pp_trim(pp_allocator_t *a);

/* Counts, from the structures (O(root pages + pools + slabs)). */
pp_stats_t pp_stats(const pp_allocator_t *a);

/* True when every invariant above holds, walking every root page, pool,
 * slab and free list; changes nothing (pagepool_check.c). O(slabs x free
 * blocks). */
bool pp_check(const pp_allocator_t *a);

/* Why the last pp_check() returned false ("" if it returned true). */
const char *pp_check_failure(void);

/* Draws the root pages, the pools and one row per slab: '#' live block,
 * '.' free, 'q' quarantined; then each free list's order. Changes nothing. */
void pp_dump(const pp_allocator_t *a, FILE *out);

#endif /* PAGEPOOL_H */
