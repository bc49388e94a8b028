/* Internals shared by the engine/data/dataset*.c files (see dataset.h for the
 * module's story). Not for callers outside the module. */
#ifndef CNET_DATASET_IMPL_H
#define CNET_DATASET_IMPL_H

#include <jansson.h>

#include "engine/data/dataset.h"

/* dataset.c: the growing listing. Offsets >= 0, or a negative CNET_E*. */
int64_t dataset_pool_add(dataset *ds, const char *s, size_t len, cnet_error *err);
dataset_entry *dataset_entry_add(dataset *ds, cnet_error *err);
int dataset_caption_add(dataset *ds, dataset_entry *e, const char *s, size_t len, cnet_error *err);
/* path = root "/" ref into out; CNET_ELIMIT when it does not fit. */
int dataset_join(char out[DATASET_PATH_MAX], const char *root, const char *ref, cnet_error *err);

/* dataset_index.c: parses root/index_name into the listing. */
int dataset_index_load(dataset *ds, cnet_error *err);

/* dataset_csv.c: calls on_row with each record of the CSV text (modified in
 * place) as a JSON object {column: cell}, and its first line's number. */
typedef int (*dataset_row_fn)(void *ctx, const json_t *row, int line, cnet_error *err);
int dataset_csv_parse(char *text, const char *path, dataset_row_fn on_row, void *ctx,
                      cnet_error *err);

/* dataset_tar.c */
int dataset_tar_index(dataset *ds, cnet_error *err); /* scans every shard */
void dataset_tar_close(dataset *ds);                 /* frees the stream state */
/* Prepares a pass: want[id] = 1 for the ids still to be yielded. Owns want. */
int dataset_tar_start(dataset *ds, uint8_t *want, cnet_error *err);
/* Loads listing id (streaming forward as needed) into *s. */
int dataset_tar_fetch(dataset *ds, int64_t id, dataset_sample *s, cnet_error *err);

/* dataset_parquet.c: 1 when dir holds a parquet layout (shards listed). */
int dataset_parquet_detect(dataset *ds, const char *dir, cnet_error *err);
int dataset_parquet_index(dataset *ds, cnet_error *err); /* reads every caption column */
void dataset_parquet_close(dataset *ds);
int dataset_parquet_start(dataset *ds, uint8_t *want, cnet_error *err); /* owns want */
int dataset_parquet_fetch(dataset *ds, int64_t id, dataset_sample *s, cnet_error *err);

/* dataset_order.c: the Philox draws. Each decision has its own stream tag in
 * counter word 3, the epoch in word 2, the draw's index in words 0-1. */
enum {
    DATASET_STREAM_SUBSET = 1,
    DATASET_STREAM_SHUFFLE = 2,
    DATASET_STREAM_SHARDS = 3,
    DATASET_STREAM_BUFFER = 4,
    DATASET_STREAM_CAPTION = 5,
    DATASET_STREAM_EMPTY = 6,
    DATASET_STREAM_FILL = 7, /* make-fill's circles */
};
/* A uniform integer in [0, n) (n > 0). Modulo of 64 random bits: the bias is
 * below n / 2^64, nothing for any listing size. */
uint64_t dataset_draw_below(uint64_t seed, int stream, uint64_t epoch, uint64_t i, uint64_t n);
/* A uniform double in [0, 1) with 53 random bits. */
double dataset_draw_unit(uint64_t seed, int stream, uint64_t epoch, uint64_t i);
/* Fisher-Yates over ids[n] with draws (seed, stream, epoch, i). */
void dataset_permute(int64_t *ids, int64_t n, uint64_t seed, int stream, uint64_t epoch);
/* Fills ds->order (and ds->shard_order for tar) for epoch. */
int dataset_order_build(dataset *ds, int64_t epoch, cnet_error *err);

#endif
