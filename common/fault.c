/*
 * common/fault.c: the linker-wrapped mmap, munmap, madvise and mprotect of
 * test programs. See fault.h.
 */
#include "fault.h"

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

/* The C library's own functions, under the names --wrap gives them. */
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
int __real_munmap(void *addr, size_t len);
int __real_madvise(void *addr, size_t len, int advice);
int __real_mprotect(void *addr, size_t len, int prot);

/* One kind of call: how many to let through, how many to fail, and what was
 * seen. Accessed with atomic builtins: an allocator's threads may call while
 * a test reads the counters. */
typedef struct {
    unsigned long pass;   /* calls still to let through before failing */
    unsigned long fail;   /* calls still to fail after that */
    unsigned long calls;  /* seen since the last arm */
    unsigned long failed; /* failed since the last arm */
} fault_state;

static fault_state F[FAULT_NCALLS];

static unsigned long load(const unsigned long *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store(unsigned long *p, unsigned long v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

/* Counts a call and says whether it must fail. */
static bool fault_now(enum fault_call call)
{
    fault_state *s = &F[call];
    __atomic_fetch_add(&s->calls, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        unsigned long pass = load(&s->pass);
        if (pass == 0)
            break;
        if (__atomic_compare_exchange_n(&s->pass, &pass, pass - 1, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return false;
    }
    for (;;) {
        unsigned long fail = load(&s->fail);
        if (fail == 0)
            return false;
        if (__atomic_compare_exchange_n(&s->fail, &fail, fail - 1, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            __atomic_fetch_add(&s->failed, 1, __ATOMIC_SEQ_CST);
            return true;
        }
    }
}

void fault_arm(enum fault_call call, unsigned pass, unsigned count)
{
    fault_state *s = &F[call];
    store(&s->fail, 0); /* nothing fails while the counts change */
    store(&s->calls, 0);
    store(&s->failed, 0);
    store(&s->pass, pass);
    store(&s->fail, count);
}

void fault_disarm(void)
{
    for (int c = 0; c < FAULT_NCALLS; c++)
        fault_arm((enum fault_call)c, 0, 0);
}

unsigned long fault_calls(enum fault_call call)
{
    return load(&F[call].calls);
}

unsigned long fault_failed(enum fault_call call)
{
    return load(&F[call].failed);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    if (fault_now(FAULT_MMAP)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
    if (fault_now(FAULT_MUNMAP)) {
        errno = ENOMEM;
        return -1;
    }
    return __real_munmap(addr, len);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
    if (fault_now(FAULT_MADVISE)) {
        errno = EAGAIN;
        return -1;
    }
    return __real_madvise(addr, len, advice);
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
    if (fault_now(FAULT_MPROTECT)) {
        errno = ENOMEM;
        return -1;
    }
    return __real_mprotect(addr, len, prot);
}
