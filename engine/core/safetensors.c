/* safetensors reader: maps a file read-only and validates every byte of its
 * header before any tensor view is handed out.
 *
 * Follows the format of huggingface/safetensors (docs/ and the Rust crate's
 * Metadata::validate): an 8-byte little-endian header length, a UTF-8 JSON
 * object, then the data block that data_offsets index. Deliberately stricter
 * than "whatever loads": duplicate keys, unknown dtypes, more than 4 dims,
 * offsets outside the data block, byte sizes that differ from numel * dtype
 * size and overlapping tensors are all refused. Gaps between tensors and bytes
 * after the last tensor are tolerated (nothing reads them). Not a writer: see
 * safetensors_write.c. */
#include "engine/core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes of the little-endian header length that opens every file. */
#define ST_LEN_BYTES 8

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Where one tensor's bytes lie, for the overlap check. */
typedef struct st_range {
    uint64_t begin, end;
    int index;
} st_range;

static int range_cmp(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Reads a non-negative JSON integer into *out, or reports `what` of tensor
 * `name` with the JSON kind it got. */
static int read_uint(const json_t *v, uint64_t *out, const char *path, const char *name,
                     const char *what, int idx, cnet_error *err) {
    if (!json_is_integer(v))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': %s[%d] is a JSON %s, expected a non-negative integer",
                         path, name, what, idx, json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': %s[%d] is %lld, expected a non-negative integer", path,
                         name, what, idx, (long long)x);
    *out = (uint64_t)x;
    return CNET_OK;
}

/* Validates one header entry and fills e (except name); the data block is
 * data_size bytes at data. */
static int parse_entry(st_entry *e, st_range *r, const char *path, const char *name,
                       const json_t *v, const unsigned char *data, uint64_t data_size,
                       cnet_error *err) {
    int rc;
    if (!json_is_object(v))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': entry is a JSON %s, expected an object with dtype, "
                         "shape and data_offsets",
                         path, name, json_kind(v));
    const json_t *dt = json_object_get(v, "dtype");
    const json_t *shape = json_object_get(v, "shape");
    const json_t *offs = json_object_get(v, "data_offsets");
    if (!dt || !shape || !offs)
        return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s': missing field '%s'", path, name,
                         !dt      ? "dtype"
                         : !shape ? "shape"
                                  : "data_offsets");
    if (!json_is_string(dt))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': dtype is a JSON %s, expected a string", path, name,
                         json_kind(dt));
    int dtype = cnet_dtype_from_name(json_string_value(dt));
    if (dtype < 0)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': unknown/unsupported dtype '%s' (supported: F32, F16, "
                         "BF16, I64, U8)",
                         path, name, json_string_value(dt));
    e->view.dtype = (cnet_dtype)dtype;
    e->view.device = -1;

    if (!json_is_array(shape))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': shape is a JSON %s, expected an array of at most %d "
                         "non-negative integers",
                         path, name, json_kind(shape), CNET_MAX_DIMS);
    if (json_array_size(shape) > CNET_MAX_DIMS)
        return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s': shape has %zu dims, at most %d", path,
                         name, json_array_size(shape), CNET_MAX_DIMS);
    e->view.ndim = (int)json_array_size(shape);
    uint64_t bytes = cnet_dtype_size(e->view.dtype);
    int overflow = 0;
    for (int i = 0; i < e->view.ndim; i++) {
        uint64_t d;
        if ((rc = read_uint(json_array_get(shape, (size_t)i), &d, path, name, "shape", i, err)))
            return rc;
        e->view.shape[i] = (int64_t)d;
        overflow |= __builtin_mul_overflow(bytes, d, &bytes);
    }
    char shp[96];
    cnet_shape_str(shp, sizeof shp, e->view.ndim, e->view.shape);
    if (overflow || bytes > INT64_MAX)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': shape %s of %s is too large (byte size overflows)", path,
                         name, shp, cnet_dtype_name(e->view.dtype));

    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': data_offsets is a JSON %s%s, expected [begin, end]",
                         path, name, json_kind(offs),
                         json_is_array(offs) ? " of the wrong length" : "");
    uint64_t begin, end;
    if ((rc = read_uint(json_array_get(offs, 0), &begin, path, name, "data_offsets", 0, err)) ||
        (rc = read_uint(json_array_get(offs, 1), &end, path, name, "data_offsets", 1, err)))
        return rc;
    if (begin > end)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] begin after end", path, name,
                         (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] reach past the data block "
                         "of %llu bytes (truncated file?)",
                         path, name, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)data_size);
    if (end - begin != bytes)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s "
                         "of %s needs %llu",
                         path, name, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)(end - begin), shp, cnet_dtype_name(e->view.dtype),
                         (unsigned long long)bytes);
    e->view.data = (void *)(data + begin);
    e->nbytes = (size_t)bytes;
    r->begin = begin;
    r->end = end;
    return CNET_OK;
}

static int parse_metadata(st_file *f, const json_t *meta, cnet_error *err) {
    if (!json_is_object(meta))
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: __metadata__ is a JSON %s, expected an object of strings", f->path,
                         json_kind(meta));
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory for metadata", f->path);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v))
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: __metadata__ '%s' is a JSON %s, expected a string", f->path, key,
                             json_kind(v));
        f->meta_keys[f->n_meta] = strdup(key);
        f->meta_values[f->n_meta] = strdup(json_string_value(v));
        f->n_meta++;
        if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1])
            return cnet_fail(err, CNET_ENOMEM, "%s: out of memory for metadata", f->path);
    }
    return CNET_OK;
}

static int by_name_cmp(const void *a, const void *b, void *file) {
    const st_entry *entries = ((const st_file *)file)->entries;
    return strcmp(entries[*(const int *)a].name, entries[*(const int *)b].name);
}

/* Validates the header JSON and fills entries, metadata and the name index. */
static int parse_header(st_file *f, const json_t *root, const unsigned char *data,
                        uint64_t data_size, cnet_error *err) {
    int rc;
    if (!json_is_object(root))
        return cnet_fail(err, CNET_EFORMAT, "%s: header is a JSON %s, expected an object", f->path,
                         json_kind(root));
    size_t n = json_object_size(root);
    f->entries = calloc(n ? n : 1, sizeof *f->entries);
    st_range *ranges = calloc(n ? n : 1, sizeof *ranges);
    if (!f->entries || !ranges) {
        free(ranges);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory for %zu entries", f->path, n);
    }
    const char *key;
    const json_t *v;
    rc = CNET_OK;
    json_object_foreach((json_t *)root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(f, v, err))) break;
            continue;
        }
        st_entry *e = &f->entries[f->n];
        if (!(e->name = strdup(key))) {
            rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", f->path);
            break;
        }
        ranges[f->n].index = f->n;
        f->n++;
        if ((rc = parse_entry(e, &ranges[f->n - 1], f->path, key, v, data, data_size, err))) break;
    }
    if (rc == CNET_OK) {
        /* Sorted by begin, a non-empty range overlaps an earlier one exactly
         * when it starts before the furthest end seen so far. */
        qsort(ranges, (size_t)f->n, sizeof *ranges, range_cmp);
        int reach = -1; /* index into ranges of the furthest-reaching one */
        for (int i = 0; i < f->n && rc == CNET_OK; i++) {
            if (ranges[i].begin == ranges[i].end) continue;
            if (reach >= 0 && ranges[i].begin < ranges[reach].end) {
                const st_range *a = &ranges[reach], *b = &ranges[i];
                rc = cnet_fail(err, CNET_EFORMAT,
                               "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                               f->path, f->entries[a->index].name, (unsigned long long)a->begin,
                               (unsigned long long)a->end, f->entries[b->index].name,
                               (unsigned long long)b->begin, (unsigned long long)b->end);
            }
            if (reach < 0 || ranges[i].end > ranges[reach].end) reach = i;
        }
    }
    free(ranges);
    if (rc) return rc;
    if (!(f->by_name = calloc(f->n ? (size_t)f->n : 1, sizeof *f->by_name)))
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) f->by_name[i] = i;
    qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, by_name_cmp, f);
    return CNET_OK;
}

/* Maps the file and checks the length prefix; sets *header_len. */
static int map_file(st_file *f, const char *path, uint64_t *header_len, cnet_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cnet_fail(err, CNET_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cnet_fail(err, CNET_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < ST_LEN_BYTES) {
        close(fd);
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: file is %zu bytes, too short for the %d-byte header length", path,
                         size, ST_LEN_BYTES);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return cnet_fail(err, CNET_EIO, "%s: cannot map: %s", path, strerror(e));
    f->map = map;
    f->map_size = size;
    const unsigned char *p = map;
    uint64_t n = 0;
    for (int i = ST_LEN_BYTES - 1; i >= 0; i--) n = n << 8 | p[i];
    if (n > SAFETENSORS_MAX_HEADER)
        return cnet_fail(err, CNET_ELIMIT, "%s: header length %llu exceeds the limit of %u bytes",
                         path, (unsigned long long)n, SAFETENSORS_MAX_HEADER);
    if (n > size - ST_LEN_BYTES)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: header length %llu is larger than the %zu bytes that follow it "
                         "(truncated file?)",
                         path, (unsigned long long)n, size - ST_LEN_BYTES);
    *header_len = n;
    return CNET_OK;
}

int st_open(st_file *f, const char *path, cnet_error *err) {
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    uint64_t n = 0;
    int rc = map_file(f, path, &n, err);
    if (rc) {
        st_close(f);
        return rc;
    }
    const unsigned char *header = (const unsigned char *)f->map + ST_LEN_BYTES;
    json_error_t jerr;
    /* jansson checks the UTF-8 too; NUL bytes inside strings are refused. */
    json_t *root = json_loadb((const char *)header, (size_t)n,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: header is not a valid UTF-8 JSON text: %s (at byte %d of %llu)", path,
                       jerr.text, jerr.position, (unsigned long long)n);
    } else {
        rc = parse_header(f, root, header + n, f->map_size - ST_LEN_BYTES - n, err);
        json_decref(root);
    }
    if (rc) st_close(f);
    return rc;
}

void st_close(st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    free(f->entries);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->by_name);
    if (f->map) munmap(f->map, f->map_size);
    free(f->heap);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_entry *st_find(const st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const st_entry *e = &f->entries[f->by_name[mid]];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}
