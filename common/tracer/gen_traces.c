/*
 * common/tracer/gen_traces.c: writes the synthetic traces that sit beside
 * the recorded ones in common/traces/, from common/trace.c's generator, so
 * that every stage replays the same files.
 *
 *   make -C common/tracer traces      (runs build/gen_traces ../traces)
 *
 * The textbook pathologies (see trace.h for each pattern):
 *   holes          small and large blocks alternate; the large ones are
 *                  freed, then blocks a little too big for the holes come
 *   realloc-grow   one block realloc'd larger and larger between small ones
 *   pairs          pairs freed so that holes merge only when the second of
 *                  each pair goes, then one block as big as all of them
 * and two seeded workloads: a small-biased churn, and a churn with reallocs.
 * The generator is deterministic: the same files on every machine.
 */
#include "trace.h"

#include <stdio.h>

static int write_one(trace_t *t, int made, const char *dir, const char *file,
                     const char *how)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.rep", dir, file);
    char comment[512];
    snprintf(comment, sizeof comment,
             "synthetic: %s\nwritten by common/tracer/gen_traces.c "
             "(make -C common/tracer traces)",
             how);
    int rc = made == 0 ? trace_write(t, path, comment) : -1;
    if (rc != 0)
        perror(path);
    else
        printf("%s: %zu ops, %zu ids\n", path, t->num_ops, t->num_ids);
    trace_free(t);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "../traces";
    trace_t t;
    int bad = 0;
    int made; /* what the generator returned: 0, or it failed */
    made = trace_gen_holes(400, 48, 2000, &t);
    bad |= write_one(&t, made, dir, "holes",
                     "trace_gen_holes(400 pairs, small 48, large 2000)");
    made = trace_gen_realloc_grow(1500, 64, 48, 40, &t);
    bad |= write_one(&t, made, dir, "realloc-grow",
                     "trace_gen_realloc_grow(1500 steps, start 64, step 48, "
                     "small 40)");
    made = trace_gen_pairs(1000, 200, &t);
    bad |= write_one(&t, made, dir, "pairs",
                     "trace_gen_pairs(1000 pairs of 200 bytes)");
    trace_gen churn = {.seed = 0x04f1,
                       .num_ops = 20000,
                       .max_live = 800,
                       .dist = TRACE_SIZE_SMALL,
                       .lo = 8,
                       .hi = 4096,
                       .mix = TRACE_MIX_CHURN};
    made = trace_generate(&churn, &t);
    bad |= write_one(&t, made, dir, "churn-small",
                     "trace_generate(churn, 20000 ops, 800 live, sizes "
                     "log-uniform 8..4096, seed 0x4f1)");
    trace_gen mixed = {.seed = 0x04f2,
                       .num_ops = 20000,
                       .max_live = 500,
                       .dist = TRACE_SIZE_BIMODAL,
                       .lo = 16,
                       .hi = 256,
                       .large_lo = 4096,
                       .large_hi = 65536,
                       .large_pct = 5,
                       .mix = TRACE_MIX_REALLOC,
                       .realloc_pct = 20};
    made = trace_generate(&mixed, &t);
    bad |= write_one(&t, made, dir, "realloc-bimodal",
                     "trace_generate(realloc 20%, 20000 ops, 500 live, 16..256 "
                     "with 5% 4096..65536, seed 0x4f2)");
    return bad ? 1 : 0;
}
