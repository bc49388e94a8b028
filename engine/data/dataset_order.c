/* The dataset's random decisions, all from Philox4x32-10 (engine/core/philox.h)
 * keyed by the seed, so they are reproducible across runs and machines:
 *   counter = { lo32(i), hi32(i), lo32(epoch), stream tag }, 64 bits = x0 | x1 << 32.
 * The stream tags keep the subset, the epoch shuffle, the shard order, the
 * shuffle buffer, the caption draw and the empty-prompt draw independent of
 * each other and of the training noise (which uses counter words 2-3 = 0).
 * Epoch order (see dataset.h): folder layouts get a Fisher-Yates permutation
 * of the samples in use; tar and parquet shards get a permutation of the shards, then a
 * shuffle buffer of opt.shuffle_buffer samples over the concatenated stream:
 * each incoming sample, once the buffer is full, evicts (yields) a uniformly
 * drawn slot and takes its place; at the end the buffer drains by uniform
 * draws. Not here: reading (dataset_read.c, dataset_tar.c). */
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset_impl.h"
#include "engine/core/philox.h"

static uint64_t draw64(uint64_t seed, int stream, uint64_t epoch, uint64_t i) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)epoch, (uint32_t)stream};
    uint32_t x[4];
    philox4x32_10(x, ctr, key);
    return (uint64_t)x[0] | (uint64_t)x[1] << 32;
}

uint64_t dataset_draw_below(uint64_t seed, int stream, uint64_t epoch, uint64_t i, uint64_t n) {
    return draw64(seed, stream, epoch, i) % n;
}

double dataset_draw_unit(uint64_t seed, int stream, uint64_t epoch, uint64_t i) {
    return (double)(draw64(seed, stream, epoch, i) >> 11) * 0x1p-53;
}

void dataset_permute(int64_t *ids, int64_t n, uint64_t seed, int stream, uint64_t epoch) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)dataset_draw_below(seed, stream, epoch, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = ids[i];
        ids[i] = ids[j], ids[j] = t;
    }
}

/* Tar: shard permutation, then the shuffle buffer over the stream of ids. */
static int order_tar(dataset *ds, int64_t epoch, cnet_error *err) {
    int ns = ds->n_shards, cap = ds->opt.shuffle_buffer;
    int64_t *sh = malloc((size_t)ns * sizeof *sh);
    int64_t *first = calloc((size_t)ns + 1, sizeof *first); /* active ids by shard */
    int64_t *buffer = malloc((size_t)cap * sizeof *buffer);
    if (!sh || !first || !buffer) {
        free(sh), free(first), free(buffer);
        return cnet_fail(err, CNET_ENOMEM, "dataset order: out of memory");
    }
    for (int i = 0; i < ns; i++) sh[i] = i;
    dataset_permute(sh, ns, ds->opt.seed, DATASET_STREAM_SHARDS, (uint64_t)epoch);
    for (int i = 0; i < ns; i++) ds->shard_order[i] = (int)sh[i];
    /* active is ascending and listing ids are grouped by shard, ascending. */
    for (int64_t k = 0; k < ds->n_active; k++) first[ds->entries[ds->active[k]].shard + 1]++;
    for (int i = 0; i < ns; i++) first[i + 1] += first[i];
    int64_t out = 0, held = 0, t = 0;
    for (int i = 0; i < ns; i++) {
        int s = ds->shard_order[i];
        for (int64_t k = first[s]; k < first[s + 1]; k++, t++) {
            if (held < cap) {
                buffer[held++] = ds->active[k];
                continue;
            }
            int64_t j = (int64_t)dataset_draw_below(ds->opt.seed, DATASET_STREAM_BUFFER,
                                                    (uint64_t)epoch, (uint64_t)t, (uint64_t)cap);
            ds->order[out++] = buffer[j];
            buffer[j] = ds->active[k];
        }
    }
    for (; held > 0; held--, t++) {
        int64_t j = (int64_t)dataset_draw_below(ds->opt.seed, DATASET_STREAM_BUFFER,
                                                (uint64_t)epoch, (uint64_t)t, (uint64_t)held);
        ds->order[out++] = buffer[j];
        buffer[j] = buffer[held - 1];
    }
    free(sh), free(first), free(buffer);
    return 0;
}

int dataset_order_build(dataset *ds, int64_t epoch, cnet_error *err) {
    if (!ds->order) {
        ds->order = malloc((size_t)(ds->n_entries ? ds->n_entries : 1) * sizeof *ds->order);
        if (ds->n_shards) ds->shard_order = malloc((size_t)ds->n_shards * sizeof *ds->shard_order);
        if (!ds->order || (ds->n_shards && !ds->shard_order))
            return cnet_fail(err, CNET_ENOMEM, "dataset order: out of memory");
    }
    ds->order_epoch = -1;
    if (ds->listing) {
        memcpy(ds->order, ds->active, (size_t)ds->n_active * sizeof *ds->order);
        for (int i = 0; i < ds->n_shards; i++) ds->shard_order[i] = i;
    } else if (ds->layout == DATASET_LAYOUT_WEBDATASET || ds->layout == DATASET_LAYOUT_PARQUET) {
        int rc = order_tar(ds, epoch, err);
        if (rc) return rc;
    } else {
        memcpy(ds->order, ds->active, (size_t)ds->n_active * sizeof *ds->order);
        dataset_permute(ds->order, ds->n_active, ds->opt.seed, DATASET_STREAM_SHUFFLE,
                        (uint64_t)epoch);
    }
    ds->order_epoch = epoch;
    return 0;
}
