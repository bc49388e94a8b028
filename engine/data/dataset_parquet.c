/* Hugging Face Hub datasets in Parquet (engine/parquet/parquet.h), the
 * layouts a dataset repository snapshot has:
 *   data/<split>-NNNNN-of-NNNNN.parquet   (what `push_to_hub` writes)
 *   <config>/<split>/NNNN.parquet          (the refs/convert/parquet branch
 *                                           the Hub writes for every dataset;
 *                                           config dataset_config_name, else
 *                                           "default", else the only one)
 *   *.parquet directly in the folder
 * The split is read off the file name as HF's data-files patterns do (a name
 * starting with train/test/validation/valid/dev/eval followed by - . or _);
 * the train split is used, and when no file names a split, every file is
 * train. Shards are taken in name order.
 *
 * Columns as train_controlnet.py picks them: --image_column,
 * --conditioning_image_column, --caption_column; when not given, the
 * script's defaults "image", "conditioning_image", "text" if the dataset has
 * them, else (its `is None` branch) column_names[0], [2] and [1]: image,
 * conditioning image, caption. An image column is the datasets library's
 * Image feature, a struct {bytes, path} (the bytes, or when they are null the
 * file at path relative to the snapshot: no absolute paths, no `..`), or
 * plain binary; a caption is a string or a list of strings (one drawn per
 * epoch, see dataset.h).
 *
 * Opening reads every shard's footer and caption column (the listing);
 * reading streams shards in the epoch's shard order one row group at a time,
 * decoding only the image columns, through the shard stream the tar layout
 * uses too (dataset_stream.c: shuffle_buffer + 1 slots hold the bytes of
 * wanted samples until they are yielded; the order is dataset_order.c's), so
 * memory holds one row group's images and the slots. A shard that fails makes its unread samples
 * return the error, without stopping the others. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset_stream.h"
#include "engine/parquet/parquet.h"

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The split a file name names, its length in *n; NULL when none. */
static const char *split_of(const char *name, size_t *n) {
    static const char *const splits[] = {"train", "test", "validation", "valid", "dev", "eval"};
    for (size_t i = 0; i < sizeof splits / sizeof *splits; i++) {
        size_t k = strlen(splits[i]);
        if (!strncmp(name, splits[i], k) && name[k] && strchr("-._", name[k])) {
            *n = k;
            return splits[i];
        }
    }
    return NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Does path have a ".." segment? */
static int has_dotdot(const char *path) {
    for (const char *seg = path; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL)
        if (seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == '\0')) return 1;
    return 0;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The train-split *.parquet files of dir into ds->shards; their count. */
static int list_train(dataset *ds, const char *dir, cnet_error *err) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int named = 0, rc = 0;
    char **found = NULL;
    int n = 0, cap = 0;
    for (struct dirent *de; !rc && (de = readdir(d));) {
        char p[DATASET_PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".parquet")) continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= sizeof p) {
            rc = cnet_fail(err, CNET_ELIMIT, "path %s/%s is longer than %d bytes", dir, de->d_name,
                           DATASET_PATH_MAX - 1);
            break;
        }
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        size_t k;
        const char *split = split_of(de->d_name, &k);
        named |= split != NULL;
        if (split && strcmp(split, "train")) continue;
        if (n == DATASET_SHARDS_MAX) {
            rc = cnet_fail(err, CNET_ELIMIT, "%s: more than %d parquet files", dir,
                           DATASET_SHARDS_MAX);
            break;
        }
        if (n == cap) {
            char **f = realloc(found, (size_t)(cap ? 2 * cap : 16) * sizeof *f);
            if (!f) {
                rc = cnet_fail(err, CNET_ENOMEM, "parquet file list: out of memory");
                break;
            }
            found = f, cap = cap ? 2 * cap : 16;
        }
        if (!(found[n] = strdup(p))) {
            rc = cnet_fail(err, CNET_ENOMEM, "parquet file list: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    /* Without a split in any name every file is train; with one, an
     * unnamed file is not (HF's patterns would not match it). */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        size_t k;
        if (!rc && (!named || split_of(base_name(found[i]), &k)))
            found[kept++] = found[i];
        else
            free(found[i]);
    }
    if (rc || !kept) {
        free(found);
        return rc;
    }
    qsort(found, (size_t)kept, sizeof *found, by_string);
    ds->shards = found;
    ds->n_shards = kept;
    return kept;
}

int dataset_parquet_detect(dataset *ds, const char *dir, cnet_error *err) {
    const char *config = ds->opt.dataset_config_name;
    char p[DATASET_PATH_MAX];
    const char *where[4] = {"data", NULL, "train", "."};
    char conf[DATASET_PATH_MAX];
    snprintf(conf, sizeof conf, "%s/train", config ? config : "default");
    where[1] = conf;
    for (int i = 0; i < 4; i++) {
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, where[i]) >= sizeof p)
            return cnet_fail(err, CNET_ELIMIT, "path %s/%s is longer than %d bytes", dir, where[i],
                             DATASET_PATH_MAX - 1);
        int n = list_train(ds, p, err);
        if (n < 0) return n;
        if (n > 0) {
            ds->layout = DATASET_LAYOUT_PARQUET;
            return 1;
        }
    }
    if (config)
        return cnet_fail(err, CNET_ENOTFOUND, "%s: no parquet files of config %s (%s/%s/train)",
                         dir, config, dir, config);
    return 0;
}

/* ---- columns ----------------------------------------------------------- */

typedef struct pq_cols {
    int target, target_path, cond, cond_path, caption; /* leaf columns, -1 none */
} pq_cols;

static int field_index(const parquet_file *pf, const char *name) {
    for (int i = 0; i < parquet_num_fields(pf); i++)
        if (!strcmp(parquet_field_name(pf, i), name)) return i;
    return -1;
}

/* The column asked for, the script's default name, or its position. */
static int pick_field(const parquet_file *pf, const char *asked, const char *def, int pos,
                      const char *flag, cnet_error *err) {
    const char *name = asked ? asked : def;
    int f = field_index(pf, name);
    if (f >= 0) return f;
    if (!asked && pos < parquet_num_fields(pf)) return pos;
    char list[512] = "";
    for (int i = 0; i < parquet_num_fields(pf); i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 parquet_field_name(pf, i));
    return cnet_fail(err, CNET_EINVAL, "%s: %s column '%s' is not among the dataset's columns (%s)",
                     parquet_path(pf), flag, name, list);
}

/* An image field: its {bytes, path} leaves, or one binary leaf. */
static int image_leaves(const parquet_file *pf, int f, int *bytes, int *path, cnet_error *err) {
    char want[600];
    const char *name = parquet_field_name(pf, f);
    snprintf(want, sizeof want, "%s.bytes", name);
    *bytes = parquet_column_find(pf, want);
    snprintf(want, sizeof want, "%s.path", name);
    *path = parquet_column_find(pf, want);
    if (*bytes < 0) *bytes = parquet_column_find(pf, name);
    if (*bytes < 0 || parquet_column_type(pf, *bytes) != PARQUET_BYTE_ARRAY ||
        parquet_column_is_string(pf, *bytes) || parquet_column_max_rep(pf, *bytes) ||
        (*path >= 0 && (parquet_column_type(pf, *path) != PARQUET_BYTE_ARRAY ||
                        parquet_column_max_rep(pf, *path))))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: column %s is not an image (binary, or a struct "
                         "{bytes, path} as the datasets library writes)",
                         parquet_path(pf), name);
    return 0;
}

static int resolve_columns(const parquet_file *pf, const dataset_options *o, pq_cols *c,
                           cnet_error *err) {
    int fi = pick_field(pf, o->image_column, "image", 0, "--image_column", err);
    if (fi < 0) return fi;
    int fc = pick_field(pf, o->conditioning_image_column, "conditioning_image", 2,
                        "--conditioning_image_column", err);
    if (fc < 0) return fc;
    int ft = pick_field(pf, o->caption_column, "text", 1, "--caption_column", err);
    if (ft < 0) return ft;
    int rc = image_leaves(pf, fi, &c->target, &c->target_path, err);
    if (!rc) rc = image_leaves(pf, fc, &c->cond, &c->cond_path, err);
    if (rc) return rc;
    c->caption = -1;
    int leaves = 0;
    for (int i = 0; i < parquet_num_columns(pf); i++)
        if (parquet_column_field(pf, i) == ft) c->caption = i, leaves++;
    if (leaves != 1 || parquet_column_type(pf, c->caption) != PARQUET_BYTE_ARRAY)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: caption column %s is not a string or a list of "
                         "strings",
                         parquet_path(pf), parquet_field_name(pf, ft));
    return 0;
}

/* ---- the listing ------------------------------------------------------- */

int dataset_parquet_index(dataset *ds, cnet_error *err) {
    parquet_values v = {0};
    int rc = 0;
    for (int s = 0; !rc && s < ds->n_shards; s++) {
        parquet_file *pf;
        if ((rc = parquet_open(&pf, ds->shards[s], err))) break;
        pq_cols c;
        rc = resolve_columns(pf, &ds->opt, &c, err);
        int64_t row = 0;
        for (int g = 0; !rc && g < parquet_num_row_groups(pf); g++) {
            if ((rc = parquet_read_column(pf, g, c.caption, &v, err))) break;
            for (int64_t r = 0; !rc && r < v.n_rows; r++, row++) {
                dataset_entry *e = dataset_entry_add(ds, err);
                if (!e) {
                    rc = err ? err->code : CNET_ENOMEM;
                    break;
                }
                e->shard = s;
                e->line = (int32_t)row;
                char label[DATASET_PATH_MAX + 32];
                int n = snprintf(label, sizeof label, "%s:row %lld", base_name(ds->shards[s]),
                                 (long long)row);
                int64_t off = dataset_pool_add(ds, label, (size_t)n, err);
                if (off < 0) {
                    rc = (int)off;
                    break;
                }
                e->name = e->target = e->cond = off;
                for (int64_t k = 0; !rc && k < parquet_row_count(&v, r); k++) {
                    size_t len;
                    const uint8_t *t = parquet_row_bytes(&v, r, k, &len);
                    if (len > DATASET_CAPTION_MAX || memchr(t, '\0', len))
                        rc = cnet_fail(err, CNET_EFORMAT,
                                       "%s: a caption is longer than %d bytes "
                                       "or holds a NUL byte",
                                       label, DATASET_CAPTION_MAX);
                    else
                        rc = dataset_caption_add(ds, e, (const char *)t, len, err);
                }
            }
        }
        parquet_close(pf);
    }
    parquet_values_free(&v);
    return rc;
}

/* ---- streaming --------------------------------------------------------- */

struct dataset_parquet_stream {
    dataset_stream base;
    parquet_file *f; /* the open shard, NULL between shards */
    pq_cols cols;
    int group;           /* loaded row group of f, -1 none */
    int64_t g_end;       /* end of the loaded group (base.e: next listing id to pass) */
    parquet_values v[4]; /* target bytes, target path, cond bytes, cond path */
    char cond_name[DATASET_PATH_MAX + 64];
};

static void close_shard(dataset *ds) {
    parquet_close(ds->pq->f);
    ds->pq->f = NULL;
}

void dataset_parquet_close(dataset *ds) {
    dataset_parquet_stream *st = ds->pq;
    if (!st) return;
    close_shard(ds);
    for (int i = 0; i < 4; i++) parquet_values_free(&st->v[i]);
    dataset_stream_free(&st->base);
    free(st);
    ds->pq = NULL;
}

static int pq_open(dataset *ds, int s, cnet_error *err) {
    dataset_parquet_stream *st = ds->pq;
    st->g_end = st->base.e;
    st->group = -1;
    int rc = parquet_open(&st->f, ds->shards[s], err);
    return rc ? rc : resolve_columns(st->f, &ds->opt, &st->cols, err);
}

/* The image of row r of the loaded group (k 0 target, 1 conditioning) into
 * the slot: its bytes, or the file its path names under the snapshot. */
static int load_image(dataset *ds, dataset_stream_slot *sl, int k, int64_t r, const char *label,
                      cnet_error *err) {
    dataset_parquet_stream *st = ds->pq;
    const parquet_values *b = &st->v[2 * k], *p = &st->v[2 * k + 1];
    const char *what = k ? "conditioning image" : "image";
    size_t len;
    const uint8_t *src;
    int fd = -1;
    char path[DATASET_PATH_MAX];
    if (parquet_row_count(b, r)) {
        src = parquet_row_bytes(b, r, 0, &len);
    } else {
        int has_path =
            (k ? st->cols.cond_path : st->cols.target_path) >= 0 && parquet_row_count(p, r);
        if (!has_path)
            return cnet_fail(err, CNET_ENOTFOUND, "%s: no %s (bytes and path are null)", label,
                             what);
        const uint8_t *ref = parquet_row_bytes(p, r, 0, &len);
        char rel[DATASET_PATH_MAX];
        if (len == 0 || len >= sizeof rel || memchr(ref, '\0', len))
            return cnet_fail(err, CNET_EFORMAT, "%s: the %s's path is empty or malformed", label,
                             what);
        memcpy(rel, ref, len);
        rel[len] = '\0';
        if (rel[0] == '/' || has_dotdot(rel))
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: the %s's path %s leaves the dataset "
                             "(absolute or '..'; refused)",
                             label, what, rel);
        int rc = dataset_join(path, ds->root, rel, err);
        if (rc) return rc;
        struct stat stt;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
            int missing = fd < 0 && (errno == ENOENT || errno == ENOTDIR);
            if (fd >= 0) close(fd);
            return cnet_fail(err, missing ? CNET_ENOTFOUND : CNET_EIO, "%s: %s %s: %s", label, what,
                             path, missing ? "not found" : "not a readable file");
        }
        len = (size_t)stt.st_size;
        src = NULL;
    }
    if (len > DATASET_FILE_MAX) {
        if (fd >= 0) close(fd);
        return cnet_fail(err, CNET_ELIMIT, "%s: the %s is larger than %d bytes", label, what,
                         DATASET_FILE_MAX);
    }
    if (len + 1 > sl->cap[k]) {
        uint8_t *q = realloc(sl->buf[k], len + 1);
        if (!q) {
            if (fd >= 0) close(fd);
            return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", label);
        }
        sl->buf[k] = q, sl->cap[k] = len + 1;
    }
    if (src) {
        memcpy(sl->buf[k], src, len);
    } else {
        size_t got = 0;
        while (got < len) {
            ssize_t n = read(fd, sl->buf[k] + got, len - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        close(fd);
        if (got != len) return cnet_fail(err, CNET_EIO, "%s: %s: short read", label, path);
    }
    sl->len[k] = len;
    return 0;
}

/* Loads row group g's image columns, or marks the shard broken. */
static void load_group(dataset *ds, int g) {
    dataset_parquet_stream *st = ds->pq;
    const int cols[4] = {st->cols.target, st->cols.target_path, st->cols.cond, st->cols.cond_path};
    cnet_error e;
    for (int i = 0; i < 4; i++) {
        if (cols[i] < 0) {
            st->v[i].n_rows = 0;
            continue;
        }
        if (parquet_read_column(st->f, g, cols[i], &st->v[i], &e)) {
            dataset_stream_break(ds, &st->base, e.msg);
            return;
        }
    }
    st->group = g;
}

/* One step inside the open shard: loads its next row group, or copies one
 * wanted row into a slot. CNET_ELIMIT if the slots overflow (a bug). */
static int pq_step(dataset *ds, cnet_error *err) {
    dataset_parquet_stream *ps = ds->pq;
    dataset_stream *st = &ps->base;
    int s = ds->shard_order[st->pos];
    if (st->e == ps->g_end) { /* the next row group, skipping those with no wanted row */
        int g = ps->group + 1;
        if (g >= parquet_num_row_groups(ps->f)) {
            dataset_stream_end_shard(ds, st);
            return 0;
        }
        int64_t rows = parquet_row_group_rows(ps->f, g), any = 0;
        if (st->e + rows > st->first[s + 1]) {
            dataset_stream_break(ds, st, "the shard's rows changed since it was indexed");
            return 0;
        }
        for (int64_t i = st->e; i < st->e + rows && !any; i++) any = st->want[i];
        ps->g_end = st->e + rows;
        if (!any) {
            ps->group = g;
            st->e = ps->g_end;
            return 0;
        }
        load_group(ds, g);
        if (!st->broken) ps->group = g;
        return 0;
    }
    int64_t id = st->e++;
    if (!st->want[id]) return 0;
    dataset_stream_slot *sl = dataset_stream_slot_for(st, id);
    if (!sl) return cnet_fail(err, CNET_ELIMIT, "parquet reader: shuffle slots overflow");
    int64_t r = id - (ps->g_end - parquet_row_group_rows(ps->f, ps->group));
    const char *label = ds->pool + ds->entries[id].name;
    cnet_error le;
    int rc = load_image(ds, sl, 0, r, label, &le);
    if (!rc) rc = load_image(ds, sl, 1, r, label, &le);
    if (rc) {
        sl->fail = rc;
        memcpy(sl->msg, le.msg, sizeof sl->msg);
    }
    sl->have = DATASET_SLOT_TARGET | DATASET_SLOT_COND; /* read, or fail says why not */
    return 0;
}

static const dataset_stream_ops pq_ops = {.open = pq_open, .step = pq_step, .close = close_shard};

int dataset_parquet_start(dataset *ds, uint8_t *want, cnet_error *err) {
    dataset_parquet_close(ds);
    ds->pq = calloc(1, sizeof *ds->pq);
    int rc = dataset_stream_start(ds, ds->pq ? &ds->pq->base : NULL, &pq_ops, want,
                                  "parquet reader", err);
    if (rc) dataset_parquet_close(ds);
    return rc;
}

int dataset_parquet_fetch(dataset *ds, int64_t id, dataset_sample *s, cnet_error *err) {
    dataset_parquet_stream *st = ds->pq;
    const char *label = ds->pool + ds->entries[id].name;
    snprintf(st->cond_name, sizeof st->cond_name, "%s (conditioning)", label);
    s->name = label, s->cond_name = st->cond_name;
    return dataset_stream_fetch(ds, &st->base, id, s, err);
}
