/* Internals shared by the engine/parquet/parquet_*.c files (see parquet.h
 * for the room's story). Not for callers outside the room. */
#ifndef CNET_PARQUET_IMPL_H
#define CNET_PARQUET_IMPL_H

#include "engine/parquet/parquet.h"

/* Codecs (parquet.thrift CompressionCodec). */
enum { PQ_UNCOMPRESSED = 0, PQ_SNAPPY = 1, PQ_GZIP = 2, PQ_ZSTD = 6 };
/* Encodings (parquet.thrift Encoding). */
enum { PQ_PLAIN = 0, PQ_PLAIN_DICTIONARY = 2, PQ_RLE = 3, PQ_RLE_DICTIONARY = 8 };
/* Page types (parquet.thrift PageType). */
enum { PQ_DATA_PAGE = 0, PQ_DICTIONARY_PAGE = 2, PQ_DATA_PAGE_V2 = 3 };

typedef struct pq_column {
    char path[PARQUET_NAME_MAX];
    int type, type_length;
    int max_def, max_rep;
    int field;     /* top-level field */
    int is_string; /* BYTE_ARRAY annotated as UTF-8 text */
} pq_column;

typedef struct pq_chunk {
    int codec;
    int64_t num_values;
    int64_t start, size; /* first page's offset, total compressed bytes */
} pq_chunk;

typedef struct pq_row_group {
    int64_t num_rows;
    pq_chunk *chunks; /* [n_columns] */
} pq_row_group;

struct parquet_file {
    char path[1024];
    int fd;
    int64_t file_size, num_rows;
    pq_column *columns;
    int n_columns;
    char (*fields)[PARQUET_NAME_MAX];
    int n_fields;
    pq_row_group *groups;
    int n_groups;
};

/* parquet_codec.c: decompresses src into dst of exactly dst_len bytes (the
 * page's declared size); anything else is CNET_EFORMAT naming `what`. */
int pq_decompress(int codec, const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                  const char *what, cnet_error *err);
const char *pq_codec_name(int codec);

/* parquet_rle.c: bits needed for values up to max. */
int pq_bit_width(uint64_t max);
/* Decodes n values of the RLE / bit-packed hybrid at p[len] with bit width
 * bw into out; 0, or -1 when the data ends first (*why says how). */
int pq_rle_decode(const uint8_t *p, size_t len, int bw, int64_t n, int32_t *out, const char **why);

#endif
