/* libFuzzer target: the Parquet reader (engine/parquet/) on an arbitrary
 * file: the footer's Thrift FileMetaData and schema, then every column chunk
 * of every row group (pages, codecs, levels, dictionaries), and every row's
 * values read back through parquet_row_count / parquet_row_bytes as the
 * dataset reader does. Corpus: tests/fuzz/corpus/parquet. */
#include <limits.h>
#include <stdlib.h>

#include "engine/parquet/parquet.h"
#include "tests/fuzz/lib_fuzz.h"

/* Row groups and columns read per input: enough for the seeds' layouts. */
#define FUZZ_PARQUET_READS 64

static void read_rows(const parquet_values *v) {
    for (int64_t r = 0; r < v->n_rows; r++) {
        const int64_t n = parquet_row_count(v, r);
        if (n < 0 || v->row_first[r + 1] > v->n_values) abort();
        if (v->type != PARQUET_BYTE_ARRAY && v->type != PARQUET_FIXED_LEN_BYTE_ARRAY) continue;
        for (int64_t k = 0; k < n; k++) {
            size_t len;
            const uint8_t *b = parquet_row_bytes(v, r, k, &len);
            if (len) fuzz_sink ^= b[0], fuzz_sink ^= b[len - 1];
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[PATH_MAX];
    fuzz_file(path, sizeof path, "train.parquet", data, size);
    parquet_file *pf = NULL;
    cnet_error err = {0};
    if (parquet_open(&pf, path, &err)) return 0;
    for (int f = 0; f < parquet_num_fields(pf); f++) parquet_field_name(pf, f);
    parquet_values v = {0};
    int reads = 0;
    for (int rg = 0; rg < parquet_num_row_groups(pf); rg++)
        for (int c = 0; c < parquet_num_columns(pf) && reads < FUZZ_PARQUET_READS; c++, reads++) {
            parquet_column_find(pf, parquet_column_path(pf, c));
            if (parquet_read_column(pf, rg, c, &v, &err) == 0) read_rows(&v);
        }
    parquet_values_free(&v);
    parquet_close(pf);
    return 0;
}
