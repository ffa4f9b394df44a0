/*
 * common/tracer/tracer.c: a preloadable library that records a program's
 * malloc, free and realloc calls as an allocation trace (common/trace.h's
 * format), so that any program's pattern can be replayed against any stage.
 *
 *     common/tracer/record.sh out.rep sort big.txt     (the usual way)
 *
 * It lives in a folder of its own because it defines malloc: every .c file
 * directly in common/ is linked into every stage's programs.
 *
 * How it works:
 *   1. Each call is passed on to glibc's own allocator through the names
 *      glibc exports for exactly this (__libc_malloc, __libc_free, ...): no
 *      dlsym, so no allocation while starting.
 *   2. A successful call is written as one op line: "a ID SIZE" for malloc,
 *      calloc and the aligned family (the alignment is not recorded: the
 *      format has no place for it), "f ID" for free and realloc(p, 0),
 *      "r ID SIZE" for a realloc that keeps its block's identity.
 *   3. IDs: every allocation gets a fresh id; a hash table (open addressing,
 *      linear probing, in memory from mmap, never malloc) maps each live
 *      pointer to its id. A free of a pointer the table does not know (one
 *      allocated before recording began) is not recorded.
 *   4. Lines collect in a 64 KiB buffer, written with write(2) when full and
 *      at exit; record.sh adds the header (ids, ops, peak live bytes).
 *
 * One mutex serialises recording, so threaded programs give a valid trace
 * (in one of the orders their calls could have taken). A forked child stops
 * recording (pthread_atfork), and a program it execs does not record
 * (TRACER_OUT is removed from the environment at start): the trace is the
 * first process's alone.
 *
 * Environment: TRACER_OUT=FILE (required; nothing is recorded without it),
 * TRACER_MAX_OPS=N stops recording after N ops (0 or unset: no limit).
 *
 * Tested by common/selftest/test_tracer.c, which records a probe program
 * whose allocations are known (tracer_probe.c) and finds them in the trace.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* glibc's allocator under its own names. */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

/* ---- State (guarded by lock) ----------------------------------------------
 */

typedef struct slot {
    uintptr_t key; /* a live pointer; 0 = empty */
    uint32_t id;
} slot;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int fd;                /* TRACER_OUT, or -1: not recording */
    bool started;          /* the constructor ran */
    unsigned long max_ops; /* TRACER_MAX_OPS, 0: no limit */
    unsigned long ops;     /* ops recorded so far */
    uint32_t next_id;      /* the id the next allocation gets */
    slot *table;           /* pointer -> id, capacity a power of two */
    size_t cap, used;      /* slots, and slots in use (load <= 1/2) */
    char buf[65536];       /* op lines not yet written */
    size_t len;
} T = {.fd = -1};

/* ---- Output ------------------------------------------------------------- */

static void flush_locked(void)
{
    size_t off = 0;
    while (off < T.len) {
        ssize_t n = write(T.fd, T.buf + off, T.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere to report it: the trace will be short */
        off += (size_t)n;
    }
    T.len = 0;
}

/* Appends one op line; stops recording at TRACER_MAX_OPS. */
static void emit_locked(char kind, uint32_t id, size_t size)
{
    if (T.len + 64 > sizeof T.buf)
        flush_locked();
    int n = kind == 'f' ? snprintf(T.buf + T.len, 64, "f %u\n", (unsigned)id)
                        : snprintf(T.buf + T.len, 64, "%c %u %zu\n", kind,
                                   (unsigned)id, size);
    if (n > 0)
        T.len += (size_t)n;
    if (T.max_ops != 0 && ++T.ops >= T.max_ops) {
        flush_locked();
        close(T.fd);
        T.fd = -1;
    }
}

/* ---- The pointer -> id table (linear probing, backward-shift delete) ---- */

static size_t hash_ptr(uintptr_t p, size_t cap)
{
    uint64_t x = (uint64_t)p * 0x9E3779B97F4A7C15u;
    return (size_t)(x >> 17) & (cap - 1);
}

static bool table_grow_locked(void)
{
    size_t cap = T.cap ? T.cap * 2 : 4096;
    slot *t = mmap(NULL, cap * sizeof *t, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return false;
    for (size_t i = 0; i < T.cap; i++) {
        if (T.table[i].key == 0)
            continue;
        size_t j = hash_ptr(T.table[i].key, cap);
        while (t[j].key != 0)
            j = (j + 1) & (cap - 1);
        t[j] = T.table[i];
    }
    if (T.table != NULL)
        munmap(T.table, T.cap * sizeof *T.table);
    T.table = t;
    T.cap = cap;
    return true;
}

static void table_put_locked(void *p, uint32_t id)
{
    if ((T.used + 1) * 2 > T.cap && !table_grow_locked()) {
        /* Out of memory for the table: stop recording, as TRACER_MAX_OPS
         * does, keeping the ops already buffered (they end at a whole
         * line, so the trace stays a valid prefix). */
        flush_locked();
        close(T.fd);
        T.fd = -1;
        return;
    }
    size_t i = hash_ptr((uintptr_t)p, T.cap);
    while (T.table[i].key != 0)
        i = (i + 1) & (T.cap - 1);
    T.table[i] = (slot){(uintptr_t)p, id};
    T.used++;
}

/* Removes p; returns its id through *id, false if p is unknown. */
static bool table_take_locked(void *p, uint32_t *id)
{
    if (T.cap == 0 || p == NULL)
        return false;
    size_t i = hash_ptr((uintptr_t)p, T.cap);
    while (T.table[i].key != (uintptr_t)p) {
        if (T.table[i].key == 0)
            return false;
        i = (i + 1) & (T.cap - 1);
    }
    *id = T.table[i].id;
    /* Backward-shift: move later entries of the run into the gap. */
    size_t gap = i;
    for (size_t j = (i + 1) & (T.cap - 1); T.table[j].key != 0;
         j = (j + 1) & (T.cap - 1)) {
        size_t home = hash_ptr(T.table[j].key, T.cap);
        /* j may move to gap if its home is not in (gap, j]. */
        bool movable =
            gap <= j ? (home <= gap || home > j) : (home <= gap && home > j);
        if (movable) {
            T.table[gap] = T.table[j];
            gap = j;
        }
    }
    T.table[gap].key = 0;
    T.used--;
    return true;
}

/* ---- Recording ------------------------------------------------------------
 */

static void record_alloc(void *p, size_t size)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (T.fd >= 0) {
        uint32_t id = T.next_id++;
        table_put_locked(p, id);
        if (T.fd >= 0)
            emit_locked('a', id, size);
    }
    pthread_mutex_unlock(&lock);
}

static void record_free(void *p)
{
    uint32_t id;
    pthread_mutex_lock(&lock);
    if (T.fd >= 0 && table_take_locked(p, &id))
        emit_locked('f', id, 0);
    pthread_mutex_unlock(&lock);
}

/* realloc(old, size) returned q (not NULL, size > 0). The caller holds the
 * lock across the realloc itself: once old is freed, another thread's
 * malloc may get the same address, and must find the table up to date. */
static void record_realloc_locked(void *old, void *q, size_t size)
{
    uint32_t id;
    if (T.fd >= 0) {
        if (old != NULL && table_take_locked(old, &id)) {
            table_put_locked(q, id);
            if (T.fd >= 0)
                emit_locked('r', id, size);
        } else {
            id = T.next_id++; /* a block recording never saw: a new one */
            table_put_locked(q, id);
            if (T.fd >= 0)
                emit_locked('a', id, size);
        }
    }
}

static void stop_in_child(void)
{
    /* The child has its own copy of the buffer: drop it, do not write. */
    T.len = 0;
    T.fd = -1;
    pthread_mutex_init(&lock, NULL);
}

static void lock_before_fork(void)
{
    pthread_mutex_lock(&lock);
}
static void unlock_after_fork(void)
{
    pthread_mutex_unlock(&lock);
}
static void child_after_fork(void)
{
    stop_in_child();
}

__attribute__((constructor)) static void tracer_start(void)
{
    const char *out = getenv("TRACER_OUT");
    const char *max = getenv("TRACER_MAX_OPS");
    pthread_atfork(lock_before_fork, unlock_after_fork, child_after_fork);
    pthread_mutex_lock(&lock);
    T.max_ops = max != NULL ? strtoul(max, NULL, 10) : 0;
    if (out != NULL && *out != '\0')
        T.fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    /* Programs this one execs inherit LD_PRELOAD, but must not reopen (and
     * truncate) the trace: the variable is this process's alone. */
    unsetenv("TRACER_OUT");
    T.started = true;
    pthread_mutex_unlock(&lock);
}

__attribute__((destructor)) static void tracer_stop(void)
{
    pthread_mutex_lock(&lock);
    if (T.fd >= 0) {
        flush_locked();
        close(T.fd);
        T.fd = -1;
    }
    pthread_mutex_unlock(&lock);
}

/* ---- The API: glibc's allocator, recorded ------------------------------- */

void *malloc(size_t size)
{
    void *p = __libc_malloc(size);
    record_alloc(p, size);
    return p;
}

void free(void *p)
{
    if (p == NULL)
        return;
    record_free(p);
    __libc_free(p);
}

void *calloc(size_t nmemb, size_t size)
{
    void *p = __libc_calloc(nmemb, size);
    record_alloc(p, nmemb * size); /* p != NULL: the product fits */
    return p;
}

void *realloc(void *p, size_t size)
{
    if (p != NULL && size == 0) { /* glibc frees the block, returns NULL */
        record_free(p);
        __libc_free(p);
        return NULL;
    }
    /* glibc's realloc calls no interposed function: safe under the lock. */
    pthread_mutex_lock(&lock);
    void *q = __libc_realloc(p, size);
    if (q != NULL)
        record_realloc_locked(p, q, size);
    pthread_mutex_unlock(&lock);
    return q;
}

void *reallocarray(void *p, size_t nmemb, size_t size)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    /* A zero product is realloc(p, 0), as in glibc's reallocarray. */
    return realloc(p, nmemb * size); // NOLINT(clang-analyzer-optin.*)
}

void *memalign(size_t align, size_t size)
{
    void *p = __libc_memalign(align, size);
    record_alloc(p, size);
    return p;
}

void *aligned_alloc(size_t align, size_t size)
{
    return memalign(align, size);
}

int posix_memalign(void **memptr, size_t align, size_t size)
{
    if (align == 0 || align % sizeof(void *) != 0 || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = memalign(align, size);
    if (p == NULL)
        return ENOMEM;
    *memptr = p;
    return 0;
}

void *valloc(size_t size)
{
    return memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign(page, size == 0 ? page : (size + page - 1) & ~(page - 1));
}
