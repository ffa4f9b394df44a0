/*
 * common/selftest/tracer_probe.h: the sizes that tracer_probe.c asks for,
 * in one place, so that test_tracer.c looks for exactly what the probe did.
 *
 * The sizes are odd numbers that neither the dynamic loader nor stdio asks
 * for, so the probe's ops stand out among the C library's own in a trace.
 * The alignments are not recorded (the trace format has no place for
 * them): an aligned call is a plain allocation in the trace.
 */
#ifndef TRACER_PROBE_H
#define TRACER_PROBE_H

enum {
    /* Step 1, the sequence (tracer_probe.c's probe_sequence). */
    PROBE_A = 1001,     /* A = malloc(1001) */
    PROBE_B = 2003,     /* B = malloc(2003) */
    PROBE_C_N = 3,      /* C = calloc(3, 337): recorded as the */
    PROBE_C_SIZE = 337, /*   product, 1011 bytes */
    PROBE_C_BYTES = PROBE_C_N * PROBE_C_SIZE,
    PROBE_A_GROWN = 3001, /* A = realloc(A, 3001): the same id */
    PROBE_A_SHRUNK = 501, /* A = realloc(A, 501) */
    PROBE_D = 1237,       /* posix_memalign(&D, 64, 1237) */
    PROBE_D_ALIGN = 64,
    PROBE_E = 2304,      /* E = aligned_alloc(256, 2304), */
    PROBE_E_ALIGN = 256, /*   a multiple of 256 as C11 asked */
    PROBE_F = 773,       /* F = memalign(128, 773) */
    PROBE_F_ALIGN = 128,
    PROBE_G = 1789,      /* G = valloc(1789) */
    PROBE_H = 907,       /* H = realloc(NULL, 907): an allocation */
    PROBE_I_N = 7,       /* I = reallocarray(NULL, 7, 113), */
    PROBE_I_GROWN_N = 9, /*   then reallocarray(I, 9, 113) */
    PROBE_I_SIZE = 113,
    PROBE_I_BYTES = PROBE_I_N * PROBE_I_SIZE,
    PROBE_I_GROWN_BYTES = PROBE_I_GROWN_N * PROBE_I_SIZE,
    PROBE_K = 5000, /* K = pvalloc(5000): whole pages recorded */
    PROBE_X = 1499, /* malloc, free, malloc, free: one address, */
                    /*   two ids */
    /* Step 2, many blocks live at once: block j is the j-th allocated,
     * and the k-th free is block (k * PROBE_MANY_STRIDE) % PROBE_MANY
     * (2003 is prime to 5000, so every block is freed once). */
    PROBE_MANY = 5000,
    PROBE_MANY_SIZE = 93,
    PROBE_MANY_STRIDE = 2003,
    /* Steps 3 and 4, children: their sizes must not be in the trace. */
    PROBE_FORK_SIZE = 4409,
    PROBE_EXEC_SIZE = 4423,
    /* Step 5, threads: thread t, PROBE_THREAD_ITERS times,
     * p = malloc(PROBE_THREAD_SIZE + t), p = realloc(p, PROBE_THREAD_GROWN
     * + t), free(p). */
    PROBE_THREADS = 4,
    PROBE_THREAD_ITERS = 300,
    PROBE_THREAD_SIZE = 3701,
    PROBE_THREAD_GROWN = 3801,
};

#endif /* TRACER_PROBE_H */
