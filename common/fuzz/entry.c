/*
 * common/fuzz/entry.c: libFuzzer's entry point for every stage. libFuzzer
 * calls it with each input it makes; the stage's fuzz_stage_run() (fuzz.h)
 * runs the input's operations with the checker after every one.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stage_run(data, size, 1);
    return 0;
}
