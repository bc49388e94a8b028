/* Reading a dataset: positioning at a cursor, yielding samples in the
 * epoch's order (or one listing pass), and the per-sample caption draws (see
 * dataset.h). Folder layouts read each file whole on demand; tar shards
 * (dataset_tar.c) and parquet shards (dataset_parquet.c) stream. Not here: decoding the bytes
 * (engine/image/image.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset_impl.h"

/* Builds the order of ds->cur.epoch and, for tar, restarts the stream with
 * the samples of positions cur.index.. still wanted. */
static int start(dataset *ds, cnet_error *err) {
    int rc = dataset_order_build(ds, ds->cur.epoch, err);
    if (rc || (ds->layout != DATASET_LAYOUT_WEBDATASET && ds->layout != DATASET_LAYOUT_PARQUET))
        return rc;
    uint8_t *want = calloc((size_t)ds->n_entries, 1);
    if (!want) return cnet_fail(err, CNET_ENOMEM, "dataset: out of memory");
    for (int64_t k = ds->cur.index; k < ds->n_active; k++)
        want[ds->order[k]] = ds->entries[ds->order[k]].absent == 0;
    return ds->layout == DATASET_LAYOUT_PARQUET ? dataset_parquet_start(ds, want, err)
                                                : dataset_tar_start(ds, want, err);
}

int dataset_seek(dataset *ds, dataset_cursor at, cnet_error *err) {
    if (at.epoch < 0 || at.index < 0 || at.index > ds->n_active)
        return cnet_fail(err, CNET_EINVAL,
                         "data cursor (epoch %lld, index %lld) is outside a dataset of %lld "
                         "samples",
                         (long long)at.epoch, (long long)at.index, (long long)ds->n_active);
    if (at.index == ds->n_active) at.epoch++, at.index = 0;
    ds->listing = 0;
    ds->cur = at;
    return start(ds, err);
}

int dataset_rewind(dataset *ds, cnet_error *err) {
    ds->listing = 1;
    ds->cur = (dataset_cursor){0, 0};
    return start(ds, err);
}

dataset_cursor dataset_tell(const dataset *ds) {
    dataset_cursor c = ds->cur;
    if (!ds->listing && c.index == ds->n_active) c.epoch++, c.index = 0;
    return c;
}

/* Reads root/ref whole into ds->buf[k]. */
static int read_file(dataset *ds, int k, const dataset_entry *e, int64_t ref, size_t *len,
                     cnet_error *err) {
    char path[DATASET_PATH_MAX];
    int rc = dataset_join(path, ds->root, ds->pool + ref, err);
    if (rc) return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int missing = errno == ENOENT || errno == ENOTDIR;
        return cnet_fail(err, missing ? CNET_ENOTFOUND : CNET_EIO, "%s: %s (%s line %d)", path,
                         missing ? "not found" : strerror(errno), ds->index_name, e->line);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cnet_fail(err, CNET_EIO, "%s: not a regular file (%s line %d)", path, ds->index_name,
                         e->line);
    }
    if (st.st_size > DATASET_FILE_MAX) {
        close(fd);
        return cnet_fail(err, CNET_ELIMIT, "%s is larger than %d bytes", path, DATASET_FILE_MAX);
    }
    size_t need = (size_t)st.st_size ? (size_t)st.st_size : 1;
    if (need > ds->buf_cap[k]) {
        uint8_t *b = realloc(ds->buf[k], need);
        if (!b) {
            close(fd);
            return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
        }
        ds->buf[k] = b, ds->buf_cap[k] = need;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, ds->buf[k] + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) return cnet_fail(err, CNET_EIO, "%s: short read", path);
    *len = got;
    return 0;
}

static const char *draw_caption(const dataset *ds, int64_t id) {
    const dataset_entry *e = &ds->entries[id];
    if (e->n_caps == 0) return "";
    if (ds->listing) return dataset_caption(ds, id, 0);
    uint64_t epoch = (uint64_t)ds->cur.epoch;
    double p = ds->opt.proportion_empty_prompts;
    if (p > 0 && dataset_draw_unit(ds->opt.seed, DATASET_STREAM_EMPTY, epoch, (uint64_t)id) < p)
        return "";
    int i = e->n_caps == 1 ? 0
                           : (int)dataset_draw_below(ds->opt.seed, DATASET_STREAM_CAPTION, epoch,
                                                     (uint64_t)id, (uint64_t)e->n_caps);
    return dataset_caption(ds, id, i);
}

int dataset_next(dataset *ds, dataset_sample *s, cnet_error *err) {
    memset(s, 0, sizeof *s);
    int rc;
    if (ds->cur.index >= ds->n_active) {
        if (ds->listing) return 1;
        ds->cur.epoch++, ds->cur.index = 0;
        if ((rc = start(ds, err))) return rc;
    } else if (ds->order_epoch != (ds->listing ? 0 : ds->cur.epoch)) {
        if ((rc = start(ds, err))) return rc;
    }
    int64_t id = ds->order[ds->cur.index];
    const dataset_entry *e = &ds->entries[id];
    s->id = id;
    s->caption = draw_caption(ds, id);
    ds->cur.index++;
    if (ds->layout == DATASET_LAYOUT_WEBDATASET) return dataset_tar_fetch(ds, id, s, err);
    if (ds->layout == DATASET_LAYOUT_PARQUET) return dataset_parquet_fetch(ds, id, s, err);
    s->name = ds->pool + e->target;
    s->cond_name = ds->pool + e->cond;
    rc = read_file(ds, 0, e, e->target, &s->target_len, err);
    if (!rc) rc = read_file(ds, 1, e, e->cond, &s->cond_len, err);
    s->target = ds->buf[0], s->cond = ds->buf[1];
    return rc;
}
