/*
 * common/annotate.h: what an allocator of the series tells the memory tools,
 * and how it reports misuse. The only piece of common/ an allocator includes.
 *
 * An allocator hands out pieces of memory that Valgrind and ASan know nothing
 * about: to them, a pool's blocks are one big mapping, always accessible. So
 * each allocator describes its own blocks in one tool-neutral vocabulary
 * (mimalloc's idea), and this header maps the words to the tool in use:
 *
 *   word                              Valgrind memcheck    ASan
 *   track_malloc(p, n, rz, zeroed)    MALLOCLIKE_BLOCK     unpoison n bytes
 *   track_free(p, n, rz)              FREELIKE_BLOCK       poison n bytes
 *   track_resize(p, old, new, rz)     RESIZEINPLACE_BLOCK  (un)poison the tail
 *   track_mem_noaccess(p, n)          MAKE_MEM_NOACCESS    poison
 *   track_mem_undefined(p, n)         MAKE_MEM_UNDEFINED   unpoison
 *   track_mem_defined(p, n)           MAKE_MEM_DEFINED     unpoison
 *   track_pool_create(pool, rz, z)    CREATE_MEMPOOL       -
 *   track_pool_alloc(pool, p, n)      MEMPOOL_ALLOC        unpoison
 *   track_pool_trim(pool, p, n)       MEMPOOL_TRIM         -
 *   track_pool_destroy(pool)          DESTROY_MEMPOOL      -
 *   track_is_poisoned(p)              false                is p poisoned?
 *                                     (__asan_address_is_poisoned)
 *
 * Which tool: compile with -DALLOC_TRACK_VALGRIND for Valgrind; ASan is
 * detected from the compiler (-fsanitize=address). Otherwise every word
 * compiles to nothing, and TRACK_ENABLED is 0. -DALLOC_TRACK_OFF silences
 * every word even under a tool: the experiment that shows what the tools miss
 * without the annotations (`make misuse-01 EXTRA_CPPFLAGS=-DALLOC_TRACK_OFF`
 * after a `make clean-01`).
 *
 * Rules that make the reports right (checked with Valgrind 3.19, GCC 12 ASan):
 *   - Get superblocks from mmap, and mark them no-access at once.
 *   - Metadata inside free memory (a `next` link, a header) is opened for each
 *     access and closed after: track_mem_defined, read, track_mem_noaccess.
 *   - track_malloc is the last thing alloc does, track_free the first thing
 *     free does, both in the public function, so reports name the public call.
 *   - Memory freed all at once (bump reset) is a mempool; track_pool_trim only
 *     tells Valgrind which chunks survive: also call track_mem_noaccess on the
 *     released bytes, which is what ASan sees.
 *   - ASan sees neither double frees nor leaks of pool blocks by itself; a
 *     free that finds its block poisoned (track_is_poisoned) is a double free.
 *   - ASan poisons in 8-byte granules: keep block starts 16-byte aligned.
 *
 * Debug fills: a checked build (-DALLOC_DEBUG) fills fresh blocks with
 * TRACK_FILL_FRESH and freed ones with TRACK_FILL_FREED, so a read of
 * uninitialised or dead memory shows a recognisable pattern in a debugger.
 * The fills are off when a tool watches, because a fill makes uninitialised
 * memory look initialised to Valgrind.
 */
#ifndef COMMON_ANNOTATE_H
#define COMMON_ANNOTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Which tool is watching ------------------------------------------- */

#if defined(ALLOC_TRACK_OFF)
#undef ALLOC_TRACK_VALGRIND
#elif defined(__SANITIZE_ADDRESS__)
#define TRACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRACK_ASAN 1
#endif
#endif

#if defined(ALLOC_TRACK_VALGRIND) && defined(TRACK_ASAN)
#error "annotate.h: build for Valgrind or for ASan, not both"
#endif

#if defined(ALLOC_TRACK_VALGRIND)
#include <valgrind/memcheck.h>
#define TRACK_ENABLED 1

#define track_malloc(p, n, rz, zeroed)                                         \
    VALGRIND_MALLOCLIKE_BLOCK((p), (n), (rz), (zeroed))
#define track_free(p, n, rz)                                                   \
    do {                                                                       \
        (void)(n);                                                             \
        VALGRIND_FREELIKE_BLOCK((p), (rz));                                    \
    } while (0)
#define track_resize(p, oldn, newn, rz)                                        \
    VALGRIND_RESIZEINPLACE_BLOCK((p), (oldn), (newn), (rz))
#define track_mem_noaccess(p, n)  VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define track_mem_undefined(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define track_mem_defined(p, n)   VALGRIND_MAKE_MEM_DEFINED((p), (n))
#define track_pool_create(pool, rz, zeroed)                                    \
    VALGRIND_CREATE_MEMPOOL((pool), (rz), (zeroed))
#define track_pool_alloc(pool, p, n) VALGRIND_MEMPOOL_ALLOC((pool), (p), (n))
#define track_pool_trim(pool, p, n)  VALGRIND_MEMPOOL_TRIM((pool), (p), (n))
#define track_pool_destroy(pool)     VALGRIND_DESTROY_MEMPOOL((pool))
#define track_is_poisoned(p)         ((void)(p), false)

#elif defined(TRACK_ASAN)
#include <sanitizer/asan_interface.h>
#define TRACK_ENABLED 1

#define track_malloc(p, n, rz, zeroed)                                         \
    ((void)(rz), (void)(zeroed), ASAN_UNPOISON_MEMORY_REGION((p), (n)))
#define track_free(p, n, rz) ((void)(rz), ASAN_POISON_MEMORY_REGION((p), (n)))
#define track_resize(p, oldn, newn, rz)                                        \
    do {                                                                       \
        (void)(rz);                                                            \
        if ((newn) > (oldn))                                                   \
            ASAN_UNPOISON_MEMORY_REGION((char *)(p) + (oldn),                  \
                                        (newn) - (oldn));                      \
        else                                                                   \
            ASAN_POISON_MEMORY_REGION((char *)(p) + (newn), (oldn) - (newn));  \
    } while (0)
#define track_mem_noaccess(p, n)  ASAN_POISON_MEMORY_REGION((p), (n))
#define track_mem_undefined(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define track_mem_defined(p, n)   ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define track_pool_create(pool, rz, zeroed)                                    \
    ((void)(pool), (void)(rz), (void)(zeroed))
#define track_pool_alloc(pool, p, n)                                           \
    ((void)(pool), ASAN_UNPOISON_MEMORY_REGION((p), (n)))
#define track_pool_trim(pool, p, n) ((void)(pool), (void)(p), (void)(n))
#define track_pool_destroy(pool)    ((void)(pool))
#define track_is_poisoned(p)        (__asan_address_is_poisoned((p)) != 0)

#else /* no tool: every word is free */
#define TRACK_ENABLED 0

#define track_malloc(p, n, rz, zeroed)                                         \
    ((void)(p), (void)(n), (void)(rz), (void)(zeroed))
#define track_free(p, n, rz) ((void)(p), (void)(n), (void)(rz))
#define track_resize(p, oldn, newn, rz)                                        \
    ((void)(p), (void)(oldn), (void)(newn), (void)(rz))
#define track_mem_noaccess(p, n)  ((void)(p), (void)(n))
#define track_mem_undefined(p, n) ((void)(p), (void)(n))
#define track_mem_defined(p, n)   ((void)(p), (void)(n))
#define track_pool_create(pool, rz, zeroed)                                    \
    ((void)(pool), (void)(rz), (void)(zeroed))
#define track_pool_alloc(pool, p, n) ((void)(pool), (void)(p), (void)(n))
#define track_pool_trim(pool, p, n)  ((void)(pool), (void)(p), (void)(n))
#define track_pool_destroy(pool)     ((void)(pool))
#define track_is_poisoned(p)         ((void)(p), false)
#endif

/* ---- Debug fills -------------------------------------------------------- */

#define TRACK_FILL_FRESH 0xAA /* "allocated, never written" */
#define TRACK_FILL_FREED 0xDD /* "dead: freed or released" */

#if defined(ALLOC_DEBUG) && !TRACK_ENABLED
#define track_fill_fresh(p, n) memset((p), TRACK_FILL_FRESH, (n))
#define track_fill_freed(p, n) memset((p), TRACK_FILL_FREED, (n))
#else
#define track_fill_fresh(p, n) ((void)(p), (void)(n))
#define track_fill_freed(p, n) ((void)(p), (void)(n))
#endif

/* ---- Reporting misuse --------------------------------------------------- */

/*
 * A caller broke the allocator's contract (double free, foreign pointer,
 * bad mark). Says which stage, which function and which address, then stops:
 * going on would corrupt memory that is still in use.
 * Example: "02-pool-fixed: pool_free(0x7f12a4c01040): double free".
 */
static inline void alloc_fatal(const char *stage, const char *func,
                               const void *ptr, const char *what)
{
    fprintf(stderr, "%s: %s(%p): %s\n", stage, func, ptr, what);
    fflush(stderr);
    abort();
}

#endif /* COMMON_ANNOTATE_H */
