/*
 * common/fault.h: makes the allocator's calls to the OS fail, on purpose, in
 * tests. An allocator must give a clear answer when mmap refuses memory and
 * must keep its promises when munmap or madvise fail (free leaves errno
 * alone, nothing is lost or corrupted); these paths cannot be reached by
 * ordinary tests, so the tests reach them here.
 *
 * How: the make rules link every test program with
 *
 *     -Wl,--wrap=mmap -Wl,--wrap=munmap -Wl,--wrap=madvise -Wl,--wrap=mprotect
 *
 * so that each call the allocator (or the test) makes to mmap goes to
 * __wrap_mmap in fault.c, which either fails it or passes it on to the C
 * library's mmap (__real_mmap). The allocator's source is unchanged: the
 * renaming is the linker's, in test programs only. Benches, demos and the
 * preloadable libmalloc.so call the OS directly.
 *
 *     fault_arm(FAULT_MUNMAP, 0, 1);   // the next munmap fails (ENOMEM)
 *     errno = 1234;
 *     fl_free(h, p);                   // gives its region back: refused
 *     CHECK_INT_EQ(errno, 1234);
 *     CHECK_EQ(fault_failed(FAULT_MUNMAP), 1); // and the path was taken
 *     fault_disarm();
 *
 * A failed call returns what the kernel would (MAP_FAILED or -1) with errno
 * set: ENOMEM for mmap, munmap and mprotect (the limit on the number of
 * mappings, vm.max_map_count, is the real-world cause for munmap), EAGAIN for
 * madvise. Counters are atomic, so a thread may call while another arms;
 * arming itself is for one thread at a time.
 */
#ifndef COMMON_FAULT_H
#define COMMON_FAULT_H

#include <stdbool.h>

enum fault_call { FAULT_MMAP, FAULT_MUNMAP, FAULT_MADVISE, FAULT_MPROTECT };
#define FAULT_NCALLS 4

/* After `pass` more calls of this kind have gone through, fails the next
   `count` (count 0: stop failing this kind). Resets its counters. */
void fault_arm(enum fault_call call, unsigned pass, unsigned count);
/* Every kind back to normal; counters reset. */
void fault_disarm(void);
/* Calls of this kind seen (failed or not), and failed, since the last arm. */
unsigned long fault_calls(enum fault_call call);
unsigned long fault_failed(enum fault_call call);

#endif /* COMMON_FAULT_H */
