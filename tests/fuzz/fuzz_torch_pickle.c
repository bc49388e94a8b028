/* libFuzzer target: the restricted unpickler of PyTorch checkpoints
 * (engine/core/torch_pickle.c, over engine/core/zip_read.c) on an arbitrary
 * file: the zip directory, data.pkl's opcodes, the allowed globals, storages
 * and strided views. Whatever it accepts must be consistent tensors inside
 * the mapping or its heap (fuzz_check_tensors). Corpus:
 * tests/fuzz/corpus/torch_pickle. */
#include <limits.h>

#include "engine/core/torch_pickle.h"
#include "tests/fuzz/lib_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[PATH_MAX];
    fuzz_file(path, sizeof path, "model.ckpt", data, size);
    st_file f;
    cnet_error err = {0};
    if (torch_pickle_open(&f, path, &err) == 0) {
        fuzz_check_tensors(&f);
        st_close(&f);
    }
    return 0;
}
