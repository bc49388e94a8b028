/* Previews of an uploaded dataset: its first samples as the trainer reads
 * them (engine/data/dataset.h's listing pass, first caption of each), so the
 * dashboard shows what a job would train on in every layout the engine reads,
 * Parquet included. The samples are walked from the start, so a preview is
 * bounded to UPLOAD_PREVIEW_MAX samples: a look at the data, not a reader.
 *
 * What it is not: image decoding (the bytes are served as stored) or any
 * check of the dataset (uploads.c did that when it was ingested). */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset.h"
#include "server/store/uploads.h"

static uint8_t *copy_bytes(const uint8_t *p, size_t n) {
    uint8_t *out = malloc(n ? n : 1);
    if (out) memcpy(out, p, n);
    return out;
}

void upload_samples_free(upload_sample *s, int n) {
    for (int i = 0; i < n; i++) {
        free(s[i].name), free(s[i].cond_name), free(s[i].caption);
        free(s[i].image), free(s[i].cond);
    }
}

static int keep(upload_sample *o, const dataset_sample *s, int with_bytes, cnet_error *err) {
    *o = (upload_sample){
        .name = strdup(s->name), .cond_name = strdup(s->cond_name), .caption = strdup(s->caption)};
    int ok = o->name && o->cond_name && o->caption;
    if (ok && with_bytes) {
        o->image = copy_bytes(s->target, s->target_len), o->image_len = s->target_len;
        o->cond = copy_bytes(s->cond, s->cond_len), o->cond_len = s->cond_len;
        ok = o->image && o->cond;
    }
    if (!ok) upload_samples_free(o, 1);
    return ok ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
}

int upload_samples(const char *datasets_dir, const char *id, int64_t first, int count,
                   int with_bytes, upload_sample *out, int *n, cnet_error *err) {
    *n = 0;
    if (!upload_valid_id(id)) return cnet_fail(err, CNET_ENOTFOUND, "no dataset %.64s", id);
    if (first < 0 || count < 0 || first + count > UPLOAD_PREVIEW_MAX)
        return cnet_fail(err, CNET_ENOTFOUND,
                         "a preview shows samples 0 to %d; sample %lld is past it",
                         UPLOAD_PREVIEW_MAX - 1, (long long)(first + count - 1));
    char files[4200];
    snprintf(files, sizeof files, "%s/%s/files", datasets_dir, id);
    dataset ds;
    dataset_options o = {0};
    if (dataset_open(&ds, files, &o, err))
        return cnet_fail(err, CNET_ENOTFOUND, "no dataset %s", id);
    int rc = dataset_rewind(&ds, err);
    if (!rc && first >= dataset_size(&ds))
        rc = cnet_fail(err, CNET_ENOTFOUND, "dataset %s has %lld samples, no sample %lld", id,
                       (long long)dataset_size(&ds), (long long)first);
    for (int64_t i = 0; !rc && i < first + count; i++) {
        dataset_sample s;
        int r = dataset_next(&ds, &s, err);
        if (r == 1) break;
        if (r) rc = r;
        if (!rc && i >= first && (rc = keep(&out[*n], &s, with_bytes, err)) == 0) ++*n;
    }
    dataset_free(&ds);
    if (rc) {
        upload_samples_free(out, *n);
        *n = 0;
    }
    return rc;
}
