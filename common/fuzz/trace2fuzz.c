/*
 * common/fuzz/trace2fuzz.c: the seed corpus of every stage's fuzzer, made
 * from the committed traces. Each trace becomes inputs of fuzz.h's
 * operation language: its allocs, frees and reallocs in order, the ids
 * turned into the table indices that the harness will see (the same
 * table: a new block at the end, a freed one replaced by the last).
 *
 *     trace2fuzz OUTDIR [--ops N] [--files K] TRACE.rep...
 *
 * writes OUTDIR/<trace>-<k>, one file for each of the first K windows of N
 * operations of the trace (default 3 of 300: libFuzzer's inputs should be
 * small, and a short run of `make test` reads every seed), each starting
 * from an empty heap. Blocks beyond the table's FUZZ_SLOTS are left out,
 * with their frees and reallocs.
 */
#include "fuzz.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: trace2fuzz OUTDIR [--ops N] TRACE...\n");
        return 2;
    }
    const char *outdir = argv[1];
    size_t per_file = 300, max_files = 3;
    int first = 2;
    while (first + 1 < argc && argv[first][0] == '-') {
        size_t v = (size_t)strtoull(argv[first + 1], NULL, 10);
        if (strcmp(argv[first], "--ops") == 0 && v > 0)
            per_file = v;
        else if (strcmp(argv[first], "--files") == 0 && v > 0)
            max_files = v;
        else {
            fprintf(stderr, "trace2fuzz: unknown option %s\n", argv[first]);
            return 2;
        }
        first += 2;
    }
    int files = 0;
    for (int a = first; a < argc; a++) {
        trace_t t;
        if (trace_read(argv[a], &t) != 0)
            return 1;
        /* slot_of[id]: where the live block of id sits in the harness's
         * table (or -1); id_at[k]: which id sits at slot k. */
        long *slot_of = calloc(t.num_ids, sizeof *slot_of);
        size_t id_at[FUZZ_SLOTS] = {0};
        uint8_t *buf = malloc(per_file * FUZZ_OP_MAX);
        if (slot_of == NULL || buf == NULL) {
            free(slot_of);
            free(buf);
            return 1;
        }
        for (size_t op0 = 0; op0 < t.num_ops && op0 < max_files * per_file;
             op0 += per_file) {
            size_t live = 0, n = 0;
            for (size_t i = 0; i < t.num_ids; i++)
                slot_of[i] = -1;
            size_t end =
                op0 + per_file < t.num_ops ? op0 + per_file : t.num_ops;
            for (size_t i = op0; i < end; i++) {
                const trace_op *o = &t.ops[i];
                fuzz_op f = {0};
                long k = slot_of[o->id];
                if (o->kind == 'a') {
                    if (live == FUZZ_SLOTS)
                        continue; /* the harness would skip it too */
                    f.kind = FUZZ_ALLOC;
                    f.size = o->size;
                    slot_of[o->id] = (long)live;
                    id_at[live++] = o->id;
                } else if (k < 0) {
                    continue; /* its alloc was left out, or before op0 */
                } else if (o->kind == 'r') {
                    /* The harness takes the block out and puts the new
                     * one at the end. */
                    f.kind = FUZZ_REALLOC;
                    f.index = (unsigned)k;
                    f.size = o->size;
                    size_t last = id_at[--live];
                    id_at[k] = last;
                    slot_of[last] = k;
                    slot_of[o->id] = (long)live;
                    id_at[live++] = o->id;
                } else {
                    f.kind = FUZZ_FREE;
                    f.index = (unsigned)k;
                    size_t last = id_at[--live];
                    id_at[k] = last;
                    slot_of[last] = k;
                    slot_of[o->id] = -1;
                }
                n += fuzz_encode(&f, buf + n);
            }
            if (n == 0)
                continue; /* a window whose ops all name older blocks */
            char path[4096];
            snprintf(path, sizeof path, "%s/%s-%zu", outdir, t.name,
                     op0 / per_file);
            FILE *out = fopen(path, "wb");
            if (out == NULL || fwrite(buf, 1, n, out) != n) {
                perror(path);
                if (out != NULL)
                    fclose(out);
                free(slot_of);
                free(buf);
                return 1;
            }
            fclose(out);
            files++;
        }
        free(buf);
        free(slot_of);
        trace_free(&t);
    }
    printf("trace2fuzz: %d seed inputs in %s\n", files, outdir);
    return 0;
}
