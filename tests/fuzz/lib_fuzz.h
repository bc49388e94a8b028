/* What the libFuzzer targets of tests/fuzz share: a scratch folder of the
 * process (made on first use under $TMPDIR, removed at exit); the input
 * written there as a named file, for the readers that take a path (the
 * safetensors, config, Parquet, pickle and archive readers map or stream
 * files); the API roots the request seeds' references name; and the check
 * both tensor readers' results get (safetensors, torch pickles). Not a
 * harness of its own: each fuzz_<target>.c holds its LLVMFuzzerTestOneInput,
 * and tests/fuzz/fuzz_test.sh runs them. Setup failures abort: a target that
 * cannot write its input tests nothing. */
#ifndef CNET_TEST_LIB_FUZZ_H
#define CNET_TEST_LIB_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/safetensors.h"

/* Bytes a target reads to prove them readable are XORed in here (volatile:
 * the reads are not optimized away). */
extern volatile uint8_t fuzz_sink;

/* The process's scratch folder. */
const char *fuzz_dir(void);
/* Writes data[n] to <fuzz_dir>/name (folders in name are made) and its path
 * into path[cap]. */
void fuzz_file(char *path, size_t cap, const char *name, const uint8_t *data, size_t n);

/* The roots the API validates references against, made once under
 * fuzz_dir(): models/base (a base model: model_index.json), models/cn (a
 * ControlNet: config.json), jobs/ and datasets/<FUZZ_DATASET_ID> (an
 * uploaded dataset: report.json) — the names the api seeds use — and the Hub
 * cache pointed at an empty folder, offline, so hf:// references resolve to
 * "not cached" without a network. */
#define FUZZ_DATASET_ID "d_0123456789abcdef0123456789abcdef"
const char *fuzz_models_dir(void);
const char *fuzz_jobs_dir(void);
const char *fuzz_datasets_dir(void);

/* Aborts unless every entry of f is consistent: its byte count is its
 * shape's, its first and last bytes are readable (ASan catches a view past
 * the mapping or heap), st_find finds its name and st_meta every key. */
void fuzz_check_tensors(const st_file *f);

#endif
