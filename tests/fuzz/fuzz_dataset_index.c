/* libFuzzer target: the imagefolder and fill50k index readers
 * (engine/data/dataset_index.c, dataset_csv.c): the input's first byte picks
 * the index — metadata.jsonl, metadata.csv or prompt.json — and the rest is
 * its text, in a folder beside one small image every line may name
 * (image.png). dataset_open parses the listing; the check then reads every
 * sample it lists. Corpus: tests/fuzz/corpus/dataset_index (a seed's first
 * byte names its index). */
#include <limits.h>
#include <stdio.h>

#include "engine/data/dataset.h"
#include "tests/fuzz/lib_fuzz.h"

#define FUZZ_INDEX_MAX_PIXELS (1 << 16)

static const char *const index_names[] = {"metadata.jsonl", "metadata.csv", "prompt.json"};
#define FUZZ_INDEXES ((int)(sizeof index_names / sizeof index_names[0]))

/* A 1x1 PNG (the seeds name it image.png). */
static const uint8_t png_1x1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
    0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00,
    0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92,
    0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int which = data[0] % FUZZ_INDEXES;
    char path[PATH_MAX], name[64], root[PATH_MAX];
    /* one folder per index: a folder holding two indexes is refused early */
    snprintf(name, sizeof name, "index%d/image.png", which);
    fuzz_file(path, sizeof path, name, png_1x1, sizeof png_1x1);
    snprintf(name, sizeof name, "index%d/%s", which, index_names[which]);
    fuzz_file(path, sizeof path, name, data + 1, size - 1);
    snprintf(root, sizeof root, "%s/index%d", fuzz_dir(), which);
    dataset ds;
    dataset_options opt = {.seed = 1};
    cnet_error err = {0};
    if (dataset_open(&ds, root, &opt, &err)) return 0;
    dataset_report rep;
    if (dataset_check(&ds, 1, FUZZ_INDEX_MAX_PIXELS, &rep, &err) == 0) dataset_report_free(&rep);
    dataset_free(&ds);
    return 0;
}
