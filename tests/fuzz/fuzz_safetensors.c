/* libFuzzer target: the safetensors reader (engine/core/safetensors.c) on an
 * arbitrary file: st_open maps and validates it (header length, JSON header,
 * dtypes, shapes, offsets against the data), and every entry it accepts must
 * be consistent and inside the mapping (fuzz_check_tensors). Corpus:
 * tests/fuzz/corpus/safetensors. */
#include <limits.h>

#include "engine/core/safetensors.h"
#include "tests/fuzz/lib_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[PATH_MAX];
    fuzz_file(path, sizeof path, "model.safetensors", data, size);
    st_file f;
    cnet_error err = {0};
    if (st_open(&f, path, &err) == 0) {
        fuzz_check_tensors(&f);
        st_close(&f);
    }
    return 0;
}
