/* libFuzzer target: the WebDataset tar reader (engine/data/dataset_tar.c,
 * libarchive underneath) on an arbitrary shard: dataset_open scans it (member
 * names, refused links and paths, captions), dataset_check streams every
 * sample and decodes both images, then a few samples of the shuffled training
 * order are read as the trainer reads them. Corpus:
 * tests/fuzz/corpus/webdataset. */
#include <limits.h>

#include "engine/data/dataset.h"
#include "tests/fuzz/lib_fuzz.h"

#define FUZZ_WDS_MAX_PIXELS (1 << 16) /* pixels of one decoded image */
#define FUZZ_WDS_SAMPLES 8            /* training-order samples read */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[PATH_MAX];
    fuzz_file(path, sizeof path, "shard-000000.tar", data, size);
    dataset ds;
    dataset_options opt = {.seed = 1, .shuffle_buffer = 4, .proportion_empty_prompts = 0.5};
    cnet_error err = {0};
    if (dataset_open(&ds, path, &opt, &err)) return 0;
    dataset_report rep;
    if (dataset_check(&ds, 1, FUZZ_WDS_MAX_PIXELS, &rep, &err) == 0) {
        dataset_report_verdict(&rep, DATASET_BAD_FRACTION_DEFAULT, &err);
        if (dataset_exclude(&ds, rep.bad, &err) == 0 && dataset_size(&ds) > 0 &&
            dataset_seek(&ds, (dataset_cursor){0, 0}, &err) == 0)
            for (int i = 0; i < FUZZ_WDS_SAMPLES; i++) {
                dataset_sample s; /* a bad sample is skipped, as the trainer does */
                dataset_next(&ds, &s, &err);
            }
        dataset_report_free(&rep);
    }
    dataset_free(&ds);
    return 0;
}
