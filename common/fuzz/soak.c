/*
 * common/fuzz/soak.c: a long randomized run of a stage, without libFuzzer:
 * FUZZ_OPS operations (default ten million) of random bytes read as fuzz.h's
 * operation language, on one allocator, with every payload verified and the
 * stage's checker every FUZZ_CHECK_EVERY operations (default 10000).
 *
 *     build/soak/soak_fl                    # a seed from the clock
 *     TEST_SEED=0x1234 build/soak/soak_fl   # replay a run
 *
 * Prints the seed first, so that a failure can be replayed.
 */
#include "fuzz.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t env_size(const char *name, size_t fallback)
{
    const char *s = getenv(name);
    return s != NULL && *s != '\0' ? (size_t)strtoull(s, NULL, 0) : fallback;
}

int main(int argc, char **argv)
{
    (void)argc;
    size_t ops = env_size("FUZZ_OPS", 10000000);
    size_t every = env_size("FUZZ_CHECK_EVERY", 10000);
    uint64_t seed = env_size("TEST_SEED", 0);
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^
               (uint64_t)getpid() << 40;
    }
    printf("%s: seed 0x%016" PRIx64 " (replay with TEST_SEED=0x%016" PRIx64
           "), %zu ops, check every %zu\n",
           argv[0], seed, seed, ops, every);
    fflush(stdout);

    /* Exactly `ops` operations of random bytes: each op is drawn as up to
     * FUZZ_OP_MAX random bytes, of which it keeps what fuzz_next reads. The
     * input comes from mmap, so that it is not in the heap under test. */
    size_t bytes = ops * FUZZ_OP_MAX;
    uint8_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return 2;
    uint64_t s = seed;
    size_t len = 0;
    for (size_t i = 0; i < ops; i++) {
        uint64_t r = splitmix(&s);
        uint8_t draw[FUZZ_OP_MAX];
        for (size_t j = 0; j < FUZZ_OP_MAX; j++)
            draw[j] = (uint8_t)(r >> (8 * j));
        fuzz_input one;
        fuzz_input_init(&one, draw, sizeof draw);
        fuzz_next(&one);
        size_t used = (size_t)(one.p - draw);
        memcpy(buf + len, draw, used);
        len += used;
    }
    clock_t start = clock();
    size_t done = fuzz_stage_run(buf, len, every);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("%s: %zu ops in %.1f s of CPU, every payload intact, checker "
           "passed every %zu ops: 1 passed, 0 failed\n",
           argv[0], done, secs, every);
    munmap(buf, bytes);
    return 0;
}
