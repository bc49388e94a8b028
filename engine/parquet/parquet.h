/* A Parquet file reader for what Hugging Face Hub dataset files use
 * (apache/parquet-format, parquet.thrift): the footer (FileMetaData in the
 * Thrift compact protocol: schema tree, row groups, column chunks), pages
 * (DATA_PAGE v1, DATA_PAGE_V2, DICTIONARY_PAGE), encodings PLAIN,
 * PLAIN_DICTIONARY / RLE_DICTIONARY and the RLE / bit-packed hybrid (levels,
 * dictionary indices, booleans), codecs UNCOMPRESSED, SNAPPY, GZIP, ZSTD, and
 * nested columns (struct fields such as an image's {bytes, path}, lists such
 * as a list of captions) through definition and repetition levels.
 * The map header of the parquet room:
 *   parquet_thrift.c  the Thrift compact protocol
 *   parquet_meta.c    opening a file: magic, footer, schema tree, row groups
 *   parquet_codec.c   decompression with the declared size as a hard cap
 *   parquet_rle.c     the RLE / bit-packed hybrid and bit widths
 *   parquet_page.c    one column chunk of one row group: pages → values
 *
 * Reading streams: parquet_open reads only the footer; parquet_read_column
 * reads one column chunk of one row group (the caller picks the columns it
 * needs), so memory holds one row group's chosen columns at a time.
 *
 * Every length is checked against the file and the limits below; a file that
 * lies (truncated footer, lengths past the end, dictionary indices past the
 * dictionary, a page that inflates past its declared size, schemas nested
 * too deep) is CNET_EFORMAT or CNET_ELIMIT with a message naming the file,
 * and the row group and column where it applies. Not here: writing, the
 * DELTA_* and BYTE_STREAM_SPLIT encodings, INT96, LZ4/BROTLI/LZO codecs
 * (each a clear error when a chosen column uses it), encryption, page
 * indexes and statistics (ignored), column chunks in other files. */
#ifndef CNET_PARQUET_H
#define CNET_PARQUET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

#define PARQUET_FOOTER_MAX (64 << 20)  /* bytes of FileMetaData → CNET_ELIMIT */
#define PARQUET_SCHEMA_MAX 10000       /* schema elements → CNET_ELIMIT */
#define PARQUET_DEPTH_MAX 16           /* nesting of the schema tree → CNET_EFORMAT */
#define PARQUET_ROW_GROUPS_MAX 1000000 /* row groups in one file → CNET_ELIMIT */
#define PARQUET_CHUNK_MAX (1LL << 31)  /* compressed bytes of one column chunk → CNET_ELIMIT */
#define PARQUET_PAGE_MAX (256 << 20)   /* uncompressed bytes of one page → CNET_ELIMIT */
#define PARQUET_VALUES_MAX (1 << 26)   /* level entries in one column chunk → CNET_ELIMIT */
#define PARQUET_VALUE_BYTES_MAX (1LL << 31) /* decoded bytes of one column chunk → CNET_ELIMIT */
#define PARQUET_NAME_MAX 256                /* bytes of a column path "a.b.c" → CNET_ELIMIT */

/* Physical types (parquet.thrift Type). */
typedef enum parquet_type {
    PARQUET_BOOLEAN = 0,
    PARQUET_INT32 = 1,
    PARQUET_INT64 = 2,
    PARQUET_INT96 = 3,
    PARQUET_FLOAT = 4,
    PARQUET_DOUBLE = 5,
    PARQUET_BYTE_ARRAY = 6,
    PARQUET_FIXED_LEN_BYTE_ARRAY = 7,
} parquet_type;

/* "BOOLEAN", "INT32", ... */
const char *parquet_type_name(int type);

typedef struct parquet_file parquet_file; /* parquet_meta.c */

/* Opens path and reads its footer. On failure *out is NULL. */
int parquet_open(parquet_file **out, const char *path, cnet_error *err);
void parquet_close(parquet_file *pf);

const char *parquet_path(const parquet_file *pf);
int64_t parquet_num_rows(const parquet_file *pf);
int parquet_num_row_groups(const parquet_file *pf);
int64_t parquet_row_group_rows(const parquet_file *pf, int rg);

/* Top-level fields of the schema, in order (the dataset's column_names). */
int parquet_num_fields(const parquet_file *pf);
const char *parquet_field_name(const parquet_file *pf, int field);

/* Leaf columns, in file order; path "image.bytes", "text.list.element". */
int parquet_num_columns(const parquet_file *pf);
const char *parquet_column_path(const parquet_file *pf, int col);
parquet_type parquet_column_type(const parquet_file *pf, int col);
int parquet_column_field(const parquet_file *pf, int col); /* its top-level field */
int parquet_column_max_rep(const parquet_file *pf, int col);
/* 1 when the column is annotated as text (STRING / UTF8), not raw binary. */
int parquet_column_is_string(const parquet_file *pf, int col);
/* The leaf whose path is `path`, or -1. */
int parquet_column_find(const parquet_file *pf, const char *path);

/* The values of one column chunk, per row. A row holds zero or more present
 * values (a required or optional leaf: 0 or 1; inside a list: any number).
 * Owned; reusable across reads (parquet_values_free once). */
typedef struct parquet_values {
    parquet_type type;
    int64_t n_rows;
    int64_t *row_first; /* [n_rows + 1]: a row's values are row_first[r] .. row_first[r + 1] */
    int64_t n_values;   /* present (non-null) values */
    int64_t *ints;      /* BOOLEAN (0/1), INT32, INT64 [n_values] */
    double *reals;      /* FLOAT, DOUBLE [n_values] */
    int64_t *offsets;   /* BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY [n_values + 1] into bytes */
    uint8_t *bytes;
    /* capacities, the chunk's raw bytes, its dictionary and levels, reused between reads */
    int64_t cap_rows, cap_ints, cap_reals, cap_offsets;
    size_t cap_bytes, n_bytes;
    uint8_t *raw, *page;
    size_t cap_raw, cap_page;
    struct parquet_values *dict; /* the chunk's dictionary page, decoded */
    int has_dict;
    int32_t *def, *rep, *idx; /* levels [n_levels], dictionary indices */
    int64_t n_levels, cap_levels, cap_idx;
} parquet_values;

/* Reads column chunk `col` of row group `rg` into *v. */
int parquet_read_column(parquet_file *pf, int rg, int col, parquet_values *v, cnet_error *err);
void parquet_values_free(parquet_values *v);

/* Values of row r: how many are present, and the k-th of them. */
static inline int64_t parquet_row_count(const parquet_values *v, int64_t r) {
    return v->row_first[r + 1] - v->row_first[r];
}
static inline const uint8_t *parquet_row_bytes(const parquet_values *v, int64_t r, int64_t k,
                                               size_t *len) {
    int64_t i = v->row_first[r] + k;
    *len = (size_t)(v->offsets[i + 1] - v->offsets[i]);
    return v->bytes + v->offsets[i];
}

#endif
