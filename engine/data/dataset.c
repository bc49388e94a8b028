/* Opening a training dataset: which layout a path holds, the listing it
 * names, the --max_train_samples subset and exclusions (see dataset.h).
 * Not here: parsing the index files (dataset_index.c), tar shards
 * (dataset_tar.c), the visiting order (dataset_order.c) and reading
 * (dataset_read.c). */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/data/dataset_impl.h"

static const char *const layout_names[] = {"imagefolder", "fill50k", "webdataset", "parquet"};

const char *dataset_layout_name(dataset_layout layout) {
    return (unsigned)layout < 4 ? layout_names[layout] : "unknown";
}

int dataset_join(char out[DATASET_PATH_MAX], const char *root, const char *ref, cnet_error *err) {
    if ((size_t)snprintf(out, DATASET_PATH_MAX, "%s/%s", root, ref) >= DATASET_PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "path %s/%s is longer than %d bytes", root, ref,
                         DATASET_PATH_MAX - 1);
    return 0;
}

int64_t dataset_pool_add(dataset *ds, const char *s, size_t len, cnet_error *err) {
    if (ds->pool_len + len + 1 > ds->pool_cap) {
        size_t cap = ds->pool_cap ? ds->pool_cap : 1 << 16;
        while (cap < ds->pool_len + len + 1) cap *= 2;
        char *p = realloc(ds->pool, cap);
        if (!p) return cnet_fail(err, CNET_ENOMEM, "dataset listing: out of memory");
        ds->pool = p, ds->pool_cap = cap;
    }
    int64_t off = (int64_t)ds->pool_len;
    memcpy(ds->pool + off, s, len);
    ds->pool[off + (int64_t)len] = '\0';
    ds->pool_len += len + 1;
    return off;
}

dataset_entry *dataset_entry_add(dataset *ds, cnet_error *err) {
    if (ds->n_entries == DATASET_SAMPLES_MAX) {
        cnet_fail(err, CNET_ELIMIT, "%s: more than %d samples", ds->root, DATASET_SAMPLES_MAX);
        return NULL;
    }
    if (ds->n_entries == ds->cap_entries) {
        int64_t cap = ds->cap_entries ? 2 * ds->cap_entries : 1024;
        dataset_entry *e = realloc(ds->entries, (size_t)cap * sizeof *e);
        if (!e) {
            cnet_fail(err, CNET_ENOMEM, "dataset listing: out of memory");
            return NULL;
        }
        ds->entries = e, ds->cap_entries = cap;
    }
    dataset_entry *e = &ds->entries[ds->n_entries++];
    memset(e, 0, sizeof *e);
    e->caps = ds->n_caption_refs;
    e->shard = -1;
    return e;
}

int dataset_caption_add(dataset *ds, dataset_entry *e, const char *s, size_t len, cnet_error *err) {
    if (ds->n_caption_refs == ds->cap_caption_refs) {
        int64_t cap = ds->cap_caption_refs ? 2 * ds->cap_caption_refs : 1024;
        int64_t *r = realloc(ds->caption_refs, (size_t)cap * sizeof *r);
        if (!r) return cnet_fail(err, CNET_ENOMEM, "dataset captions: out of memory");
        ds->caption_refs = r, ds->cap_caption_refs = cap;
    }
    int64_t off = dataset_pool_add(ds, s, len, err);
    if (off < 0) return (int)off;
    ds->caption_refs[ds->n_caption_refs++] = off;
    e->n_caps++;
    return 0;
}

static int has_file(const char *dir, const char *name) {
    char p[DATASET_PATH_MAX];
    struct stat st;
    return (size_t)snprintf(p, sizeof p, "%s/%s", dir, name) < sizeof p && stat(p, &st) == 0 &&
           S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_shard(dataset *ds, const char *path, cnet_error *err) {
    if (ds->n_shards == DATASET_SHARDS_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: more than %d tar shards", ds->root,
                         DATASET_SHARDS_MAX);
    if (strlen(path) >= DATASET_PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "shard path longer than %d bytes: %.64s...",
                         DATASET_PATH_MAX - 1, path);
    if ((ds->n_shards & (ds->n_shards - 1)) == 0) { /* grow at powers of two */
        char **s = realloc(ds->shards, (size_t)(ds->n_shards ? 2 * ds->n_shards : 1) * sizeof *s);
        if (!s) return cnet_fail(err, CNET_ENOMEM, "shard list: out of memory");
        ds->shards = s;
    }
    if (!(ds->shards[ds->n_shards] = strdup(path)))
        return cnet_fail(err, CNET_ENOMEM, "shard list: out of memory");
    ds->n_shards++;
    return 0;
}

/* The *.tar files directly in dir (none is not an error here). */
static int list_shards(dataset *ds, const char *dir, cnet_error *err) {
    DIR *d = opendir(dir);
    if (!d) return cnet_fail(err, CNET_EIO, "%s: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".tar") || !has_file(dir, de->d_name))
            continue;
        char p[DATASET_PATH_MAX];
        rc = dataset_join(p, dir, de->d_name, err);
        if (!rc) rc = add_shard(ds, p, err);
    }
    closedir(d);
    if (!rc && ds->n_shards) qsort(ds->shards, (size_t)ds->n_shards, sizeof *ds->shards, by_string);
    return rc;
}

/* Picks the layout of folder dir; 1 found, 0 none, < 0 error. */
static int detect_in(dataset *ds, const char *dir, cnet_error *err) {
    if (strlen(dir) >= DATASET_PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "path longer than %d bytes", DATASET_PATH_MAX - 1);
    snprintf(ds->root, sizeof ds->root, "%s", dir);
    if (has_file(dir, "metadata.jsonl")) {
        ds->layout = DATASET_LAYOUT_IMAGEFOLDER, ds->index_name = "metadata.jsonl";
        return 1;
    }
    if (has_file(dir, "metadata.csv")) {
        ds->layout = DATASET_LAYOUT_IMAGEFOLDER, ds->index_name = "metadata.csv";
        return 1;
    }
    if (has_file(dir, "prompt.json")) {
        ds->layout = DATASET_LAYOUT_FILL50K, ds->index_name = "prompt.json";
        return 1;
    }
    int rc = dataset_parquet_detect(ds, dir, err);
    if (rc) return rc;
    rc = list_shards(ds, dir, err);
    if (rc) return rc;
    ds->layout = DATASET_LAYOUT_WEBDATASET;
    return ds->n_shards > 0;
}

/* The folder itself, else its only (non-hidden) subfolder. */
static int detect_folder(dataset *ds, const char *path, cnet_error *err) {
    int rc = detect_in(ds, path, err);
    if (rc) return rc < 0 ? rc : 0;
    DIR *d = opendir(path);
    if (!d) return cnet_fail(err, CNET_EIO, "%s: %s", path, strerror(errno));
    char sub[DATASET_PATH_MAX] = "";
    int dirs = 0;
    for (struct dirent *de; (de = readdir(d));) {
        char p[DATASET_PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.' ||
            (size_t)snprintf(p, sizeof p, "%s/%s", path, de->d_name) >= sizeof p ||
            stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        dirs++;
        memcpy(sub, p, sizeof sub);
    }
    closedir(d);
    if (dirs == 1 && (rc = detect_in(ds, sub, err)) != 0) return rc < 0 ? rc : 0;
    return cnet_fail(err, CNET_EINVAL,
                     "%s holds no metadata.jsonl or metadata.csv (imagefolder), prompt.json "
                     "(fill50k), Parquet files (data/*.parquet, <config>/train/*.parquet, "
                     "*.parquet) or *.tar shards (webdataset), at its top or in its only folder",
                     path);
}

static int detect(dataset *ds, const char *path, cnet_error *err) {
    if (strpbrk(path, "*?[")) {
        glob_t g;
        int r = glob(path, GLOB_ERR, NULL, &g);
        if (r == GLOB_NOMATCH)
            return cnet_fail(err, CNET_ENOTFOUND, "no tar shard matches %s", path);
        if (r != 0) return cnet_fail(err, CNET_EIO, "cannot expand %s", path);
        int rc = 0;
        for (size_t i = 0; !rc && i < g.gl_pathc; i++) rc = add_shard(ds, g.gl_pathv[i], err);
        globfree(&g);
        ds->layout = DATASET_LAYOUT_WEBDATASET;
        snprintf(ds->root, sizeof ds->root, "%s", path);
        return rc;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return cnet_fail(err, CNET_ENOTFOUND, "dataset %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return detect_folder(ds, path, err);
    if (!ends_with(path, ".tar"))
        return cnet_fail(err, CNET_EINVAL, "dataset %s: not a folder or a .tar shard", path);
    ds->layout = DATASET_LAYOUT_WEBDATASET;
    snprintf(ds->root, sizeof ds->root, "%s", path);
    return add_shard(ds, path, err);
}

static int by_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* active = every listing id, or the script's shuffle(seed).select(range(n)). */
static int choose_active(dataset *ds, cnet_error *err) {
    ds->active = malloc((size_t)(ds->n_entries ? ds->n_entries : 1) * sizeof *ds->active);
    if (!ds->active) return cnet_fail(err, CNET_ENOMEM, "dataset: out of memory");
    for (int64_t i = 0; i < ds->n_entries; i++) ds->active[i] = i;
    ds->n_active = ds->n_entries;
    int64_t max = ds->opt.max_train_samples;
    if (max > 0 && max < ds->n_entries) {
        dataset_permute(ds->active, ds->n_entries, ds->opt.seed, DATASET_STREAM_SUBSET, 0);
        ds->n_active = max;
        qsort(ds->active, (size_t)max, sizeof *ds->active, by_id);
    }
    return 0;
}

static int check_options(const dataset *ds, cnet_error *err) {
    const dataset_options *o = &ds->opt;
    if (!(o->proportion_empty_prompts >= 0 && o->proportion_empty_prompts <= 1))
        return cnet_fail(err, CNET_EINVAL, "proportion_empty_prompts must be in [0, 1], got %g",
                         o->proportion_empty_prompts);
    if (ds->layout != DATASET_LAYOUT_IMAGEFOLDER && ds->layout != DATASET_LAYOUT_PARQUET &&
        (o->image_column || o->conditioning_image_column || o->caption_column))
        return cnet_fail(err, CNET_EINVAL,
                         "%s: column names apply to the imagefolder (metadata.jsonl or "
                         "metadata.csv) and parquet layouts, this is %s",
                         ds->root, dataset_layout_name(ds->layout));
    return 0;
}

int dataset_open(dataset *ds, const char *path, const dataset_options *opt, cnet_error *err) {
    memset(ds, 0, sizeof *ds);
    ds->opt = *opt;
    if (ds->opt.shuffle_buffer <= 0) ds->opt.shuffle_buffer = DATASET_SHUFFLE_BUFFER_DEFAULT;
    ds->order_epoch = -1;
    int rc = detect(ds, path, err);
    if (!rc) rc = check_options(ds, err);
    if (!rc)
        rc = ds->layout == DATASET_LAYOUT_WEBDATASET ? dataset_tar_index(ds, err)
             : ds->layout == DATASET_LAYOUT_PARQUET  ? dataset_parquet_index(ds, err)
                                                     : dataset_index_load(ds, err);
    if (!rc && ds->n_entries == 0)
        rc = cnet_fail(err, CNET_EINVAL, "dataset %s lists no samples", ds->root);
    if (!rc) rc = choose_active(ds, err);
    if (rc) dataset_free(ds);
    return rc;
}

void dataset_free(dataset *ds) {
    dataset_tar_close(ds);
    dataset_parquet_close(ds);
    for (int i = 0; i < ds->n_shards; i++) free(ds->shards[i]);
    free(ds->shards);
    free(ds->entries);
    free(ds->pool);
    free(ds->caption_refs);
    free(ds->active);
    free(ds->order);
    free(ds->shard_order);
    free(ds->buf[0]);
    free(ds->buf[1]);
    memset(ds, 0, sizeof *ds);
}

int64_t dataset_size(const dataset *ds) { return ds->n_active; }

int dataset_caption_count(const dataset *ds, int64_t id) { return ds->entries[id].n_caps; }

const char *dataset_caption(const dataset *ds, int64_t id, int i) {
    return ds->pool + ds->caption_refs[ds->entries[id].caps + i];
}

const char *dataset_entry_name(const dataset *ds, int64_t id) {
    return ds->pool + ds->entries[id].name;
}

int dataset_exclude(dataset *ds, const uint8_t *bad, cnet_error *err) {
    int64_t n = 0;
    for (int64_t i = 0; i < ds->n_active; i++)
        if (!bad[ds->active[i]]) ds->active[n++] = ds->active[i];
    ds->n_active = n;
    ds->order_epoch = -1;
    ds->cur = (dataset_cursor){0, 0};
    ds->listing = 0;
    dataset_tar_close(ds);
    dataset_parquet_close(ds);
    if (n == 0) return cnet_fail(err, CNET_EINVAL, "dataset %s: no usable sample left", ds->root);
    return 0;
}
