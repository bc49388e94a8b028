/* Parameter tables: declaration, one-block allocation, loading from
 * safetensors (single or sharded) with strict key/shape checks, and saving
 * back in PyTorch layout. See params.h. */
#include "engine/core/params.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/core/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/core/weights_file.h"

/* A sharded checkpoint lists at most this many distinct shard files. */
#define PARAMS_MAX_SHARDS 256

void params_init(cnet_params *p, cnet_backend *be) {
    memset(p, 0, sizeof *p);
    p->be = be;
}

/* Closes the files params_load mapped; the parameters that pointed into
 * them must be rebound by the caller. */
static void params_close_maps(cnet_params *p) {
    for (int i = 0; i < p->n_maps; i++) st_close(&p->maps[i]);
    free(p->maps);
    p->maps = NULL, p->n_maps = 0, p->mapped = 0;
}

/* Every parameter back into the block (whatever it holds) and the mappings
 * closed. */
static void params_unmap(cnet_params *p) {
    if (!p->n_maps) return;
    params_bind(p, p->block);
    params_close_maps(p);
}

static int is_mapped(const cnet_params *p, const cnet_param *q) {
    return p->n_maps && q->data != p->block + q->offset;
}

int params_own(cnet_params *p, cnet_error *err) {
    for (int i = 0; i < p->n; i++) {
        cnet_param *q = &p->items[i];
        if (is_mapped(p, q))
            p->be->upload(p->be, p->block + q->offset, q->data, q->numel * sizeof(float));
    }
    params_unmap(p);
    p->owns = 1;
    return cnet_backend_status(p->be, err);
}

void params_free(cnet_params *p) {
    params_close_maps(p);
    if (p->block) p->be->free(p->be, p->block);
    if (p->block16) p->be->free(p->be, p->block16);
    for (int i = 0; i < p->n_extra_ok; i++) free(p->extra_ok[i]);
    free(p->extra_ok);
    for (int i = 0; i < 2 * p->n_aliases; i++) free(p->aliases[i]);
    free(p->aliases);
    free(p->items);
    memset(p, 0, sizeof *p);
}

int params_add(cnet_params *p, const char *name, int ndim, const int64_t *shape,
               param_layout layout, cnet_error *err) {
    if (strlen(name) >= PARAM_NAME_MAX)
        return cnet_fail(err, CNET_EINVAL, "parameter name '%s' longer than %d bytes", name,
                         PARAM_NAME_MAX - 1);
    if (ndim < 1 || ndim > 4 || (layout == PARAM_CONV && ndim != 4))
        return cnet_fail(err, CNET_EINVAL, "parameter '%s': bad rank %d", name, ndim);
    if (params_find(p, name))
        return cnet_fail(err, CNET_EINVAL, "parameter '%s' declared twice", name);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        cnet_param *items = realloc(p->items, (size_t)cap * sizeof *items);
        if (!items) return cnet_fail(err, CNET_ENOMEM, "out of memory declaring '%s'", name);
        p->items = items;
        p->cap = cap;
    }
    cnet_param *q = &p->items[p->n];
    memset(q, 0, sizeof *q);
    strcpy(q->name, name);
    q->ndim = ndim;
    q->layout = layout;
    q->numel = 1;
    for (int d = 0; d < ndim; d++) {
        q->shape[d] = shape[d];
        q->numel *= (size_t)shape[d];
    }
    /* 16-float alignment keeps every parameter on a 64-byte boundary. */
    q->offset = (p->total + 15) & ~(size_t)15;
    p->total = q->offset + q->numel;
    return p->n++;
}

int params_allow_extra(cnet_params *p, const char *name, cnet_error *err) {
    char **list = realloc(p->extra_ok, (size_t)(p->n_extra_ok + 1) * sizeof *list);
    if (!list) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    p->extra_ok = list;
    if (!(list[p->n_extra_ok] = strdup(name))) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    p->n_extra_ok++;
    return 0;
}

int params_alias(cnet_params *p, const char *file_name, const char *param_name, cnet_error *err) {
    char **list = realloc(p->aliases, (size_t)(2 * p->n_aliases + 2) * sizeof *list);
    if (!list) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    p->aliases = list;
    list[2 * p->n_aliases] = strdup(file_name);
    list[2 * p->n_aliases + 1] = strdup(param_name);
    p->n_aliases++;
    if (!list[2 * p->n_aliases - 2] || !list[2 * p->n_aliases - 1])
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    return 0;
}

/* The parameter name a file's key stands for (itself unless aliased). */
static const char *params_alias_of(const cnet_params *p, const char *file_name) {
    for (int i = 0; i < p->n_aliases; i++)
        if (strcmp(p->aliases[2 * i], file_name) == 0) return p->aliases[2 * i + 1];
    return file_name;
}

int params_alloc(cnet_params *p, cnet_error *err) {
    size_t bytes = (p->total ? p->total : 1) * sizeof(float);
    p->block = p->be->alloc(p->be, bytes);
    if (!p->block)
        return cnet_fail(err, CNET_ENOMEM, "cannot allocate %zu bytes of parameters on %s", bytes,
                         p->be->name);
    p->be->zero(p->be, p->block, bytes);
    for (int i = 0; i < p->n; i++) p->items[i].data = p->block + p->items[i].offset;
    return 0;
}

int params_like(cnet_params *dst, const cnet_params *src, cnet_error *err) {
    params_init(dst, src->be);
    if (src->n_maps)
        return cnet_fail(err, CNET_EINVAL,
                         "the parameters are read in place from %s (a frozen model's): a table "
                         "to train must own them first (params_own)",
                         src->maps[0].path);
    if (src->block16)
        return cnet_fail(err, CNET_EINVAL,
                         "the parameters are stored in %s for a frozen model: no gradient or "
                         "optimizer table can be made from them",
                         cnet_dtype_name(src->dtype16));
    dst->items = malloc((size_t)(src->n ? src->n : 1) * sizeof *dst->items);
    if (!dst->items) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    memcpy(dst->items, src->items, (size_t)src->n * sizeof *dst->items);
    dst->n = dst->cap = src->n;
    dst->total = src->total;
    dst->owns = 1;
    params_bind(dst, NULL);
    return 0;
}

void params_bind(cnet_params *p, float *block) {
    p->block = block;
    for (int i = 0; i < p->n; i++) p->items[i].data = block ? block + p->items[i].offset : NULL;
}

int params_alloc_like(cnet_params *dst, const cnet_params *src, cnet_error *err) {
    int rc = params_like(dst, src, err);
    return rc ? rc : params_alloc(dst, err);
}

cnet_param *params_find(const cnet_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0) return &p->items[i];
    return NULL;
}

static int is_extra_ok(const cnet_params *p, const char *name) {
    for (int i = 0; i < p->n_extra_ok; i++)
        if (strcmp(p->extra_ok[i], name) == 0) return 1;
    return 0;
}

/* [O, I, kh, kw] -> [O, kh, kw, I] */
static void conv_oihw_to_ohwi(float *dst, const float *src, const int64_t *s) {
    int64_t O = s[0], I = s[1], KH = s[2], KW = s[3];
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            for (int64_t y = 0; y < KH; y++)
                for (int64_t x = 0; x < KW; x++)
                    dst[((o * KH + y) * KW + x) * I + i] = src[((o * I + i) * KH + y) * KW + x];
}

static void conv_ohwi_to_oihw(float *dst, const float *src, const int64_t *s) {
    int64_t O = s[0], I = s[1], KH = s[2], KW = s[3];
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            for (int64_t y = 0; y < KH; y++)
                for (int64_t x = 0; x < KW; x++)
                    dst[((o * I + i) * KH + y) * KW + x] = src[((o * KH + y) * KW + x) * I + i];
}

/* Whether parameter q can read file tensor e in place: see params.h. */
static int can_map(const cnet_params *p, const cnet_param *q, const st_entry *e) {
    return p->be->reads_host && !p->owns && q->layout == PARAM_PLAIN && e->view.dtype == CNET_F32 &&
           (uintptr_t)e->view.data % sizeof(float) == 0;
}

/* The whole pages of [ptr, ptr + bytes) given back to the kernel: host
 * memory from a reads_host backend's alloc (private anonymous), which then
 * reads as zeros and costs nothing until written; or a range of a kept
 * file mapping whose tensor was copied, which leaves this process's memory
 * (the pages stay in the page cache and come back if read again). */
static void release_pages(void *ptr, size_t bytes) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t begin = ((uintptr_t)ptr + page - 1) & ~(page - 1);
    const uintptr_t end = ((uintptr_t)ptr + bytes) & ~(page - 1);
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

/* Copies one file tensor into its parameter after checking dtype and shape,
 * or points the parameter at it (can_map; sets *mapped). */
static int load_entry(cnet_params *p, cnet_param *q, const st_entry *e, const char *file,
                      float *host, float *reordered, int *mapped, cnet_error *err) {
    const cnet_tensor *t = &e->view;
    int same = t->ndim == q->ndim;
    for (int d = 0; same && d < q->ndim; d++) same = t->shape[d] == q->shape[d];
    if (!same) {
        char want[64], got[64];
        cnet_shape_str(want, sizeof want, q->ndim, q->shape);
        cnet_shape_str(got, sizeof got, t->ndim, t->shape);
        return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' has shape %s but the model expects %s",
                         file, q->name, got, want);
    }
    if (t->dtype != CNET_F32 && t->dtype != CNET_F16 && t->dtype != CNET_BF16)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", file,
                         q->name, cnet_dtype_name(t->dtype));
    if (can_map(p, q, e)) {
        release_pages(p->block + q->offset, q->numel * sizeof(float));
        q->data = t->data;
        p->mapped += q->numel;
        *mapped = 1;
        return 0;
    }
    cnet_to_f32(host, t->data, t->dtype, q->numel);
    if (p->be->reads_host && !p->owns) /* the file may stay mapped */
        release_pages(t->data, e->nbytes);
    const float *src = host;
    if (q->layout == PARAM_CONV) {
        conv_oihw_to_ohwi(reordered, host, q->shape);
        src = reordered;
    }
    p->be->upload(p->be, q->data, src, q->numel * sizeof(float));
    return 0;
}

static int load_file(cnet_params *p, const char *file, char *seen, float *host, float *reordered,
                     cnet_error *err) {
    /* room for f among the mappings before any parameter points into it */
    st_file *maps = realloc(p->maps, (size_t)(p->n_maps + 1) * sizeof *maps);
    if (!maps) return cnet_fail(err, CNET_ENOMEM, "out of memory loading %s", file);
    p->maps = maps;
    st_file f;
    int rc = weights_file_open(&f, file, err);
    if (rc) return rc;
    int mapped = 0;
    for (int i = 0; i < f.n && rc == 0; i++) {
        const st_entry *e = &f.entries[i];
        cnet_param *q = params_find(p, params_alias_of(p, e->name));
        if (!q) {
            if (!is_extra_ok(p, e->name))
                rc = cnet_fail(err, CNET_EFORMAT,
                               "%s: unexpected tensor '%s' (not a parameter of this model)", file,
                               e->name);
            continue;
        }
        int idx = (int)(q - p->items);
        if (seen[idx]) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' appears in more than one shard",
                           file, e->name);
            break;
        }
        seen[idx] = 1;
        rc = load_entry(p, q, e, file, host, reordered, &mapped, err);
    }
    if (mapped)
        p->maps[p->n_maps++] = f;
    else
        st_close(&f);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Loads the shards named in a *.safetensors.index.json weight_map. */
static int load_index(cnet_params *p, const char *index_path, char *seen, float *host,
                      float *reordered, cnet_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return cnet_fail(err, CNET_EFORMAT, "%s: line %d: %s", index_path, jerr.line, jerr.text);
    int rc = 0;
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    const char *shards[PARAMS_MAX_SHARDS];
    int n_shards = 0;
    const char *key;
    json_t *value;
    json_object_foreach(map, key, value) {
        const char *shard = json_string_value(value);
        if (!shard || strchr(shard, '/') || strcmp(shard, "..") == 0) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: weight_map entry '%s' is not a shard file name",
                           index_path, key);
            goto done;
        }
        int known = 0;
        for (int i = 0; i < n_shards && !known; i++) known = strcmp(shards[i], shard) == 0;
        if (known) continue;
        if (n_shards == PARAMS_MAX_SHARDS) {
            rc = cnet_fail(err, CNET_ELIMIT, "%s: more than %d shards", index_path,
                           PARAMS_MAX_SHARDS);
            goto done;
        }
        shards[n_shards++] = shard;
    }
    const char *slash = strrchr(index_path, '/');
    int dir_len = slash ? (int)(slash - index_path) + 1 : 0;
    for (int i = 0; i < n_shards && rc == 0; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%.*s%s", dir_len, index_path, shards[i]) >=
            (int)sizeof path) {
            rc = cnet_fail(err, CNET_ELIMIT, "%s: shard path too long", index_path);
            break;
        }
        rc = load_file(p, path, seen, host, reordered, err);
    }
done:
    json_decref(root);
    return rc;
}

int params_load(cnet_params *p, const char *path, cnet_error *err) {
    if (p->block16)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: cannot load into parameters already stored in %s (load first)", path,
                         cnet_dtype_name(p->dtype16));
    params_unmap(p); /* a reload: the earlier files' mappings go */
    size_t max_numel = 1;
    for (int i = 0; i < p->n; i++)
        if (p->items[i].numel > max_numel) max_numel = p->items[i].numel;
    char *seen = calloc((size_t)p->n + 1, 1);
    float *host = malloc(max_numel * sizeof(float));
    float *reordered = malloc(max_numel * sizeof(float));
    int rc = 0;
    if (!seen || !host || !reordered) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory loading %s", path);
        goto done;
    }
    if (ends_with(path, ".index.json"))
        rc = load_index(p, path, seen, host, reordered, err);
    else
        rc = load_file(p, path, seen, host, reordered, err);
    /* a failed device skipped the uploads: the values are undefined */
    if (rc == 0) rc = cnet_backend_status(p->be, err);
    for (int i = 0; i < p->n && rc == 0; i++) {
        if (seen[i]) continue;
        char want[64];
        cnet_shape_str(want, sizeof want, p->items[i].ndim, p->items[i].shape);
        int missing = 0;
        for (int j = i; j < p->n; j++) missing += !seen[j];
        rc = cnet_fail(err, CNET_ENOTFOUND,
                       "%s: missing tensor '%s' (expected shape %s; %d parameter%s missing in all)",
                       path, p->items[i].name, want, missing, missing == 1 ? "" : "s");
    }
    if (rc) params_unmap(p); /* values undefined, as a failed copy leaves them */
done:
    free(seen);
    free(host);
    free(reordered);
    return rc;
}

void params_read(const cnet_params *p, int index, float *host, float *scratch) {
    const cnet_param *q = &p->items[index];
    if (q->data16) { /* the 16-bit values into host, widened into scratch */
        p->be->download(p->be, host, q->data16, q->numel * sizeof(uint16_t));
        cnet_to_f32(scratch, host, p->dtype16, q->numel);
        if (q->layout == PARAM_CONV)
            conv_ohwi_to_oihw(host, scratch, q->shape);
        else
            memcpy(host, scratch, q->numel * sizeof(float));
    } else if (q->layout == PARAM_CONV) {
        p->be->download(p->be, scratch, q->data, q->numel * sizeof(float));
        conv_ohwi_to_oihw(host, scratch, q->shape);
    } else {
        p->be->download(p->be, host, q->data, q->numel * sizeof(float));
    }
}

int params_save(const cnet_params *p, const char *path, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, cnet_error *err) {
    return params_save_as(p, path, CNET_F32, meta_keys, meta_values, n_meta, err);
}

int params_save_as(const cnet_params *p, const char *path, cnet_dtype dtype,
                   const char *const *meta_keys, const char *const *meta_values, int n_meta,
                   cnet_error *err) {
    if (dtype != CNET_F32 && dtype != CNET_F16 && dtype != CNET_BF16)
        return cnet_fail(err, CNET_EINVAL, "%s: cannot save parameters as %s (F32, F16 or BF16)",
                         path, cnet_dtype_name(dtype));
    const size_t esize = cnet_dtype_size(dtype);
    size_t max_numel = 1;
    for (int i = 0; i < p->n; i++)
        if (p->items[i].numel > max_numel) max_numel = p->items[i].numel;
    size_t numel = 0;
    for (int i = 0; i < p->n; i++) numel += p->items[i].numel;
    char *host = malloc((numel ? numel : 1) * esize);
    /* Twice the largest tensor: params_read's scratch, then the float32
     * values a half-precision file is converted from. */
    float *scratch = malloc(2 * max_numel * sizeof(float));
    st_write_item *items = calloc((size_t)p->n + 1, sizeof *items);
    int rc;
    if (!host || !scratch || !items) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory saving %s", path);
        goto done;
    }
    size_t at = 0; /* elements of host filled so far */
    for (int i = 0; i < p->n; i++) {
        const cnet_param *q = &p->items[i];
        char *dst = host + at * esize;
        at += q->numel;
        if (dtype == CNET_F32) {
            params_read(p, i, (float *)dst, scratch);
        } else {
            float *values = scratch + max_numel;
            uint16_t *half = (uint16_t *)dst;
            params_read(p, i, values, scratch);
#pragma omp parallel for schedule(static) if (q->numel > 65536)
            for (size_t k = 0; k < q->numel; k++)
                half[k] =
                    dtype == CNET_F16 ? cnet_f32_to_f16(values[k]) : cnet_f32_to_bf16(values[k]);
        }
        items[i].name = q->name;
        items[i].view.dtype = dtype;
        items[i].view.ndim = q->ndim;
        memcpy(items[i].view.shape, q->shape, sizeof q->shape);
        items[i].view.data = dst;
        items[i].view.device = -1;
    }
    /* a failed device (CUDA records its first error) left garbage in host */
    rc = cnet_backend_status(p->be, err);
    if (!rc) rc = st_write(path, items, p->n, meta_keys, meta_values, n_meta, err);
done:
    free(host);
    free(scratch);
    free(items);
    return rc;
}

size_t params_bytes(const cnet_params *p) {
    return p->total * sizeof(float) + p->total16 * sizeof(uint16_t);
}

/* The new offsets of params_store16: products into the 16-bit block, the
 * rest packed into a smaller float32 block; returns the two sizes. */
static void store16_layout(const cnet_params *p, size_t *offsets, size_t *total32,
                           size_t *total16) {
    *total32 = *total16 = 0;
    for (int i = 0; i < p->n; i++) {
        size_t *total = p->items[i].product ? total16 : total32;
        /* 32-element alignment keeps 16-bit weights on 64-byte boundaries */
        const size_t align = p->items[i].product ? 31 : 15;
        offsets[i] = (*total + align) & ~align;
        *total = offsets[i] + p->items[i].numel;
    }
}

/* After params_store16 freed the float32 block: a new one holding the
 * staged values (0), or every pointer NULL when even that cannot be had. */
static int store16_restore(cnet_params *p, const float *staged) {
    cnet_backend *be = p->be;
    float *block = be->alloc(be, (p->total ? p->total : 1) * sizeof(float));
    if (block) be->upload(be, block, staged, p->total * sizeof(float));
    if (block && cnet_backend_status(be, NULL)) { /* a failed device skipped the upload */
        be->free(be, block);
        block = NULL;
    }
    params_bind(p, block);
    return block ? 0 : -1;
}

int params_store16(cnet_params *p, cnet_dtype dtype, cnet_error *err) {
    if (dtype != CNET_BF16 && dtype != CNET_F16 && dtype != CNET_F32)
        return cnet_fail(err, CNET_EINVAL, "weights can be stored in BF16 or F16, not %s",
                         cnet_dtype_name(dtype));
    if (p->block16 || dtype == CNET_F32) {
        if (!p->block16 || p->dtype16 == dtype) return 0;
        return cnet_fail(err, CNET_EINVAL, "the weights are already stored in %s, not %s",
                         cnet_dtype_name(p->dtype16), cnet_dtype_name(dtype));
    }
    if (!p->block)
        return cnet_fail(err, CNET_EINVAL, "no parameters to store in %s (not allocated)",
                         cnet_dtype_name(dtype));
    cnet_backend *be = p->be;
    size_t max_numel = 1, total32, total16;
    for (int i = 0; i < p->n; i++)
        if (p->items[i].product && p->items[i].numel > max_numel) max_numel = p->items[i].numel;
    /* Staged on the host: the float32 block is freed before the new blocks
     * are allocated, so the device never holds both (SD 1.5's UNet would
     * need 3.4 + 1.7 GB for a moment). */
    size_t *offsets = malloc((size_t)(p->n ? p->n : 1) * sizeof *offsets);
    float *staged = malloc((p->total ? p->total : 1) * sizeof *staged);
    uint16_t *narrow = malloc(max_numel * sizeof *narrow);
    float *block = NULL;
    uint16_t *block16 = NULL;
    int rc = 0;
    if (!offsets || !staged || !narrow) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of host memory storing weights in %s",
                       cnet_dtype_name(dtype));
        goto done;
    }
    be->download(be, staged, p->block, p->total * sizeof(float));
    for (int i = 0; i < p->n; i++) /* host memory: reads_host */
        if (is_mapped(p, &p->items[i]))
            memcpy(staged + p->items[i].offset, p->items[i].data,
                   p->items[i].numel * sizeof(float));
    if ((rc = cnet_backend_status(be, err))) goto done;
    store16_layout(p, offsets, &total32, &total16);
    be->free(be, p->block);
    p->block = NULL;
    params_close_maps(p); /* staged holds their values; both ways below rebind */
    block = be->alloc(be, (total32 ? total32 : 1) * sizeof(float));
    block16 = block ? be->alloc(be, (total16 ? total16 : 1) * sizeof(uint16_t)) : NULL;
    if (!block16) {
        rc = cnet_fail(err, CNET_ENOMEM, "cannot allocate %zu bytes for weights in %s on %s",
                       total32 * sizeof(float) + total16 * sizeof(uint16_t), cnet_dtype_name(dtype),
                       be->name);
        goto restore;
    }
    for (int i = 0; i < p->n; i++) {
        const cnet_param *q = &p->items[i];
        const float *values = staged + q->offset;
        if (!q->product) {
            be->upload(be, block + offsets[i], values, q->numel * sizeof(float));
            continue;
        }
#pragma omp parallel for schedule(static) if (q->numel > 65536)
        for (size_t k = 0; k < q->numel; k++)
            narrow[k] =
                dtype == CNET_F16 ? cnet_f32_to_f16(values[k]) : cnet_f32_to_bf16(values[k]);
        be->upload(be, block16 + offsets[i], narrow, q->numel * sizeof(uint16_t));
    }
    if ((rc = cnet_backend_status(be, err))) goto restore;
    p->block = block, p->block16 = block16;
    p->total = total32, p->total16 = total16, p->dtype16 = dtype;
    for (int i = 0; i < p->n; i++) {
        cnet_param *q = &p->items[i];
        q->offset = offsets[i];
        q->data = q->product ? NULL : block + offsets[i];
        q->data16 = q->product ? block16 + offsets[i] : NULL;
    }
    block = NULL, block16 = NULL;
    goto done;
restore: /* the table as it was, from the staged copy */
    if (block) be->free(be, block);
    if (block16) be->free(be, block16);
    block = NULL, block16 = NULL;
    if (store16_restore(p, staged))
        cnet_error_prefix(err, "the float32 weights could not be put back either (reload the "
                               "model)");
done:
    free(offsets);
    free(staged);
    free(narrow);
    return rc;
}
