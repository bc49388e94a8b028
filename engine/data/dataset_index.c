/* The index files of the two folder layouts: imagefolder's metadata.jsonl (or
 * metadata.csv, whose records dataset_csv.c turns into the same objects) and
 * ControlNet's prompt.json (both JSON Lines), parsed into the listing. Every
 * line is checked (an object, references that are non-empty relative paths
 * without `..`, a caption that is a string or a non-empty list of strings);
 * the first bad line is CNET_EFORMAT naming the file and line. Blank lines
 * are skipped, as the JSON Lines readers of HF datasets do. Not here: whether
 * the referenced files exist or decode (dataset_check.c). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset_impl.h"

typedef struct columns {
    const char *image, *cond, *caption; /* the names asked for */
} columns;

static char *read_index(const char *path, cnet_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        cnet_fail(err, CNET_EIO, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    if (st.st_size > DATASET_INDEX_MAX) {
        close(fd);
        cnet_fail(err, CNET_ELIMIT, "%s is larger than %d bytes", path, DATASET_INDEX_MAX);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        cnet_fail(err, buf ? CNET_EIO : CNET_ENOMEM, "%s: %s", path,
                  buf ? "short read" : "out of memory");
        return NULL;
    }
    buf[got] = '\0';
    return buf;
}

/* The room for a column's key: the name and "_file_name" (names are
 * checked against DATASET_COLUMN_MAX when the index is loaded). */
#define COLUMN_KEY_CAP (DATASET_COLUMN_MAX + sizeof "_file_name")

/* The value of image column `col`: key col, else col_file_name, else (the
 * target only, for the default column "image") file_name; key gets the name. */
static const json_t *image_value(const json_t *o, const char *col, int is_target,
                                 char key[COLUMN_KEY_CAP]) {
    snprintf(key, COLUMN_KEY_CAP, "%s", col);
    const json_t *v = json_object_get(o, col);
    if (!v) {
        snprintf(key, COLUMN_KEY_CAP, "%s_file_name", col);
        v = json_object_get(o, key);
    }
    if (!v && is_target && strcmp(col, "image") == 0)
        v = json_object_get(o, strcpy(key, "file_name"));
    if (!v) snprintf(key, COLUMN_KEY_CAP, "%s", col);
    return v;
}

/* A reference: a non-empty relative path without `..` segments. */
static int check_ref(const dataset *ds, int line, const char *key, const json_t *v,
                     cnet_error *err) {
    const char *ref = json_string_value(v);
    if (!ref || !*ref)
        return cnet_fail(err, CNET_EFORMAT, "%s/%s line %d: %s must be a non-empty string",
                         ds->root, ds->index_name, line, key);
    size_t n = strlen(ref);
    int dotdot = strcmp(ref, "..") == 0 || strncmp(ref, "../", 3) == 0 || strstr(ref, "/../") ||
                 (n >= 3 && strcmp(ref + n - 3, "/..") == 0);
    if (ref[0] == '/' || dotdot)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s/%s line %d: %s '%s' must be a relative path inside the dataset",
                         ds->root, ds->index_name, line, key, ref);
    if (n >= DATASET_PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s/%s line %d: %s longer than %d bytes", ds->root,
                         ds->index_name, line, key, DATASET_PATH_MAX - 1);
    return 0;
}

static int add_captions(dataset *ds, dataset_entry *e, int line, const char *key, const json_t *v,
                        cnet_error *err) {
    if (json_is_string(v))
        return dataset_caption_add(ds, e, json_string_value(v), json_string_length(v), err);
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i;
        const json_t *c;
        json_array_foreach(v, i, c) {
            if (!json_is_string(c)) break;
            int rc = dataset_caption_add(ds, e, json_string_value(c), json_string_length(c), err);
            if (rc) return rc;
        }
        if (i == json_array_size(v)) return 0;
    }
    return cnet_fail(err, CNET_EFORMAT,
                     "%s/%s line %d: %s must be a string or a non-empty list of strings%s",
                     ds->root, ds->index_name, line, key, v ? "" : " (missing)");
}

static int add_line(dataset *ds, const columns *col, const json_t *o, int line, cnet_error *err) {
    char tkey[COLUMN_KEY_CAP], ckey[COLUMN_KEY_CAP];
    const json_t *t, *c;
    if (ds->layout == DATASET_LAYOUT_IMAGEFOLDER) {
        t = image_value(o, col->image, 1, tkey);
        c = image_value(o, col->cond, 0, ckey);
    } else {
        t = json_object_get(o, strcpy(tkey, col->image));
        c = json_object_get(o, strcpy(ckey, col->cond));
    }
    int rc = check_ref(ds, line, tkey, t, err);
    if (!rc) rc = check_ref(ds, line, ckey, c, err);
    if (rc) return rc;
    dataset_entry *e = dataset_entry_add(ds, err);
    if (!e) return err ? err->code : CNET_ENOMEM;
    e->line = line;
    int64_t to = dataset_pool_add(ds, json_string_value(t), json_string_length(t), err);
    int64_t co =
        to < 0 ? to : dataset_pool_add(ds, json_string_value(c), json_string_length(c), err);
    if (co < 0) return (int)co;
    e->target = e->name = to, e->cond = co;
    return add_captions(ds, e, line, col->caption, json_object_get(o, col->caption), err);
}

typedef struct csv_ctx {
    dataset *ds;
    const columns *col;
} csv_ctx;

static int add_csv_row(void *ctx, const json_t *row, int line, cnet_error *err) {
    csv_ctx *c = ctx;
    return add_line(c->ds, c->col, row, line, err);
}

int dataset_index_load(dataset *ds, cnet_error *err) {
    columns col = {"target", "source", "prompt"};
    if (ds->layout == DATASET_LAYOUT_IMAGEFOLDER) {
        const dataset_options *o = &ds->opt;
        col.image = o->image_column ? o->image_column : "image";
        col.cond =
            o->conditioning_image_column ? o->conditioning_image_column : "conditioning_image";
        col.caption = o->caption_column ? o->caption_column : "text";
        const char *const names[3] = {col.image, col.cond, col.caption};
        for (int i = 0; i < 3; i++)
            if (strlen(names[i]) > DATASET_COLUMN_MAX)
                return cnet_fail(err, CNET_ELIMIT, "column name '%.40s...' is longer than %d bytes",
                                 names[i], DATASET_COLUMN_MAX);
    }
    char path[DATASET_PATH_MAX];
    int rc = dataset_join(path, ds->root, ds->index_name, err);
    char *text = rc ? NULL : read_index(path, err);
    if (!text) return rc ? rc : err ? err->code : CNET_EIO;
    if (!strcmp(ds->index_name, "metadata.csv")) {
        csv_ctx c = {ds, &col};
        rc = dataset_csv_parse(text, path, add_csv_row, &c, err);
        free(text);
        return rc;
    }
    int line = 0;
    for (char *l = text, *nl; !rc && *l; l = nl ? nl + 1 : l + strlen(l)) {
        if ((nl = strchr(l, '\n'))) *nl = '\0';
        line++;
        if (strspn(l, " \t\r") == strlen(l)) continue;
        json_error_t jerr;
        json_t *o = json_loads(l, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o))
            rc = cnet_fail(err, CNET_EFORMAT, "%s line %d: not a JSON object (%s)", path, line,
                           o ? "wrong type" : jerr.text);
        else
            rc = add_line(ds, &col, o, line, err);
        json_decref(o);
    }
    free(text);
    return rc;
}
