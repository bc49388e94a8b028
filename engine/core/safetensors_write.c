/* safetensors writer: one call writes a whole file atomically.
 *
 * The bytes follow the Python library (huggingface/safetensors serialize):
 * compact ASCII JSON (\u escapes in lower case, like Python's json module),
 * `__metadata__` first, the header padded with spaces to a
 * multiple of 8, a contiguous data block with the tensors ordered by dtype
 * size (largest first) so that each is aligned. Unlike the Python library the
 * JSON keys keep the caller's order. Durability: write `path.tmp.<pid>`,
 * fsync, rename over path, fsync the directory; any failure before the rename
 * removes the temp file and leaves an existing file untouched. Not a
 * streaming writer: every tensor is in host memory when called. */
#include "engine/core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The header is padded with spaces to a multiple of this (the Python
 * library's alignment); with the data ordered by dtype size, every tensor
 * then starts at a multiple of its dtype size. */
#define ST_HEADER_ALIGN 8

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reports the first name that occurs twice in names[0..n). */
static int check_unique(const char *path, const char **names, int n, const char *what,
                        cnet_error *err) {
    const char **sorted = malloc((n ? (size_t)n : 1) * sizeof *sorted);
    if (!sorted) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    if (n > 0) memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, name_cmp);
    int rc = CNET_OK;
    for (int i = 1; i < n && rc == CNET_OK; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            rc = cnet_fail(err, CNET_EINVAL, "%s: %s '%s' given twice", path, what, sorted[i]);
    free(sorted);
    return rc;
}

static int check_items(const char *path, const st_write_item *items, int n,
                       const char *const *meta_keys, const char *const *meta_values, int n_meta,
                       cnet_error *err) {
    if (n < 0 || n_meta < 0 || (n > 0 && !items) || (n_meta > 0 && (!meta_keys || !meta_values)))
        return cnet_fail(err, CNET_EINVAL, "%s: bad item or metadata arrays", path);
    const char **names = malloc((n ? (size_t)n : 1) * sizeof *names);
    if (!names) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    int rc = CNET_OK;
    for (int i = 0; i < n && rc == CNET_OK; i++) {
        const st_write_item *it = &items[i];
        const cnet_tensor *t = &it->view;
        names[i] = it->name;
        if (!it->name || strcmp(it->name, "__metadata__") == 0) {
            rc = cnet_fail(err, CNET_EINVAL, "%s: item %d: tensor name '%s' is not allowed", path,
                           i, it->name ? it->name : "(null)");
            break;
        }
        if ((unsigned)t->dtype >= CNET_DTYPE_COUNT || t->ndim < 0 || t->ndim > CNET_MAX_DIMS) {
            rc = cnet_fail(err, CNET_EINVAL, "%s: tensor '%s': dtype %d / ndim %d out of range",
                           path, it->name, (int)t->dtype, t->ndim);
            break;
        }
        uint64_t bytes = cnet_dtype_size(t->dtype);
        int bad = 0;
        for (int d = 0; d < t->ndim; d++)
            bad |= t->shape[d] < 0 || __builtin_mul_overflow(bytes, (uint64_t)t->shape[d], &bytes);
        if (bad || bytes > (uint64_t)INT64_MAX) {
            char shp[96];
            rc = cnet_fail(err, CNET_EINVAL, "%s: tensor '%s': invalid shape %s", path, it->name,
                           cnet_shape_str(shp, sizeof shp, t->ndim, t->shape));
        } else if (bytes > 0 && !t->data) {
            rc = cnet_fail(err, CNET_EINVAL, "%s: tensor '%s': %llu bytes but no data", path,
                           it->name, (unsigned long long)bytes);
        }
    }
    if (rc == CNET_OK) rc = check_unique(path, names, n, "tensor", err);
    free(names);
    for (int i = 0; i < n_meta && rc == CNET_OK; i++)
        if (!meta_keys[i] || !meta_values[i])
            rc = cnet_fail(err, CNET_EINVAL, "%s: metadata entry %d is NULL", path, i);
    if (rc == CNET_OK) rc = check_unique(path, (const char **)meta_keys, n_meta, "metadata", err);
    return rc;
}

/* Data order: by dtype size, largest first; equal sizes keep the caller's
 * order (the index breaks ties, so qsort's instability does not matter). */
static int layout_cmp(const void *a, const void *b, void *ctx) {
    const st_write_item *items = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    size_t si = cnet_dtype_size(items[i].view.dtype), sj = cnet_dtype_size(items[j].view.dtype);
    if (si != sj) return si > sj ? -1 : 1;
    return (i > j) - (i < j);
}

/* jansson writes \u escapes with upper-case hex; the Python writer (json's
 * ensure_ascii) uses lower case. In JSON text every backslash starts an
 * escape, so walking escape by escape finds exactly the \u ones. */
static void lowercase_unicode_escapes(char *s) {
    for (; *s; s++) {
        if (*s != '\\') continue;
        if (s[1] == 'u')
            for (int i = 2; i < 6 && s[i]; i++)
                if (s[i] >= 'A' && s[i] <= 'F') s[i] = (char)(s[i] - 'A' + 'a');
        if (s[1]) s++;
    }
}

/* The padded header text (without the length prefix); NULL with err set. */
static char *build_header(const char *path, const st_write_item *items, int n, const int *order,
                          const char *const *meta_keys, const char *const *meta_values, int n_meta,
                          size_t *len, cnet_error *err) {
    uint64_t *begin = malloc((n ? (size_t)n : 1) * sizeof *begin);
    json_t *root = json_object();
    json_t *meta = n_meta > 0 ? json_object() : NULL;
    char *text = NULL, *padded = NULL;
    int ok = begin && root && (n_meta == 0 || meta);
    uint64_t off = 0;
    for (int k = 0; ok && k < n; k++) {
        begin[order[k]] = off;
        off += cnet_tensor_bytes(&items[order[k]].view);
    }
    /* json_string() and json_object_set_new() refuse invalid UTF-8. */
    const char *bad = NULL;
    for (int i = 0; ok && i < n_meta; i++) {
        json_t *v = json_string(meta_values[i]);
        if (!v || json_object_set_new(meta, meta_keys[i], v)) {
            bad = meta_keys[i];
            ok = 0;
        }
    }
    if (ok && meta) ok = json_object_set_new(root, "__metadata__", meta) == 0, meta = NULL;
    for (int i = 0; ok && i < n; i++) {
        const cnet_tensor *t = &items[i].view;
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->ndim; d++)
            json_array_append_new(shape, json_integer(t->shape[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", cnet_dtype_name(t->dtype), "shape",
                              shape, "data_offsets", (json_int_t)begin[i],
                              (json_int_t)(begin[i] + cnet_tensor_bytes(t)));
        if (!e || json_object_set_new(root, items[i].name, e)) {
            bad = items[i].name;
            ok = 0;
        }
    }
    if (ok) text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (text) {
        lowercase_unicode_escapes(text);
        size_t raw = strlen(text);
        *len = (raw + ST_HEADER_ALIGN - 1) / ST_HEADER_ALIGN * ST_HEADER_ALIGN;
        if ((padded = malloc(*len))) {
            memcpy(padded, text, raw);
            memset(padded + raw, ' ', *len - raw);
        }
    }
    if (!padded) {
        if (bad)
            cnet_fail(err, CNET_EINVAL, "%s: name '%s' is not valid UTF-8 (or its value is not)",
                      path, bad);
        else
            cnet_fail(err, CNET_ENOMEM, "%s: out of memory building the header", path);
    }
    free(text);
    json_decref(meta);
    json_decref(root);
    free(begin);
    return padded;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len > (size_t)SSIZE_MAX ? (size_t)SSIZE_MAX : len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* fsyncs the directory holding path, so the rename itself is durable. */
static int sync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes the whole file to tmp and fsyncs it. On failure returns -1 with
 * errno set and *step naming the call that failed. */
static int write_temp(const char *tmp, const char *header, size_t hlen, const st_write_item *items,
                      const int *order, int n, const char **step) {
    *step = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    *step = "write";
    int bad = write_all(fd, len8, sizeof len8) || write_all(fd, header, hlen);
    for (int k = 0; !bad && k < n; k++) {
        const cnet_tensor *t = &items[order[k]].view;
        bad = write_all(fd, t->data, cnet_tensor_bytes(t));
    }
    if (!bad) *step = "fsync", bad = fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) *step = "close", bad = 1, e = errno;
    errno = e;
    return bad ? -1 : 0;
}

int st_write(const char *path, const st_write_item *items, int n, const char *const *meta_keys,
             const char *const *meta_values, int n_meta, cnet_error *err) {
    int rc = check_items(path, items, n, meta_keys, meta_values, n_meta, err);
    if (rc) return rc;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return cnet_fail(err, CNET_EINVAL, "%s: path too long", path);
    int *order = malloc((n ? (size_t)n : 1) * sizeof *order);
    if (!order) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, layout_cmp, (void *)items);
    size_t hlen = 0;
    char *header = build_header(path, items, n, order, meta_keys, meta_values, n_meta, &hlen, err);
    if (!header) {
        free(order);
        return err ? err->code : CNET_ENOMEM;
    }
    const char *step;
    int bad = write_temp(tmp, header, hlen, items, order, n, &step);
    if (!bad) step = "rename", bad = rename(tmp, path) != 0;
    int e = errno;
    free(order);
    free(header);
    if (bad) {
        unlink(tmp);
        return cnet_fail(err, CNET_EIO, "%s: cannot %s %s: %s", path, step, tmp, strerror(e));
    }
    if (sync_parent(path) != 0)
        return cnet_fail(err, CNET_EIO, "%s: written, but syncing its directory failed: %s", path,
                         strerror(errno));
    return CNET_OK;
}
