/* AdamW state, float32 or 8-bit; see adam_state.h. */
#include "engine/train/adam_state.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/safetensors.h"

#define ADAM_FILE_M "optimizer_exp_avg.safetensors"
#define ADAM_FILE_V "optimizer_exp_avg_sq.safetensors"
#define ADAM_FILE_8BIT "optimizer_8bit.safetensors"
/* bnb's per-parameter state names, in file order. */
static const char *const adam8_keys[4] = {"state1", "state2", "absmax1", "absmax2"};
#define ADAM8_KEY_MAX (PARAM_NAME_MAX + 16)

static void *dev_zeroed(cnet_backend *be, size_t bytes, cnet_error *err, int *rc) {
    if (*rc) return NULL;
    void *p = be->alloc(be, bytes ? bytes : 1);
    if (!p) {
        *rc = cnet_fail(err, CNET_ENOMEM, "optimizer state: cannot allocate %zu bytes on %s", bytes,
                        be->name);
        return NULL;
    }
    be->zero(be, p, bytes ? bytes : 1);
    return p;
}

/* Tensor i's elements [*a, *b) inside [lo, hi) of the block. */
static void piece_of(const cnet_param *q, size_t lo, size_t hi, size_t *a, size_t *b) {
    const size_t end = q->offset + q->numel;
    *a = lo > q->offset ? (lo < end ? lo - q->offset : q->numel) : 0;
    *b = hi > q->offset ? (hi < end ? hi - q->offset : q->numel) : 0;
    if (*b < *a) *b = *a;
}

adam8_extent adam8_extent_of(const cnet_params *params, size_t lo, size_t hi) {
    adam8_extent e = {0, 0, 0};
    for (int i = 0; i < params->n; i++) {
        const cnet_param *q = &params->items[i];
        size_t a, b;
        piece_of(q, lo, hi, &a, &b);
        if (q->numel >= ADAM8_MIN_SIZE)
            e.n_8bit += b - a, e.n_blocks += (size_t)adam8_blocks((long)(b - a));
        else
            e.n_small += b - a;
    }
    return e;
}

int adam_state_init(adam_state *s, const cnet_params *params, int use_8bit, cnet_error *err) {
    return adam_state_init_shard(s, params, use_8bit, 0, params->total, err);
}

int adam_state_init_shard(adam_state *s, const cnet_params *params, int use_8bit, size_t lo,
                          size_t hi, cnet_error *err) {
    memset(s, 0, sizeof *s);
    s->be = params->be, s->params = params, s->use_8bit = use_8bit, s->lo = lo, s->hi = hi;
    if (lo > hi || hi > params->total)
        return cnet_fail(err, CNET_EINVAL, "optimizer shard [%zu, %zu) of %zu parameters", lo, hi,
                         params->total);
    if (!use_8bit) {
        int rc = 0;
        s->m = dev_zeroed(params->be, (hi - lo) * sizeof(float), err, &rc);
        s->v = dev_zeroed(params->be, (hi - lo) * sizeof(float), err, &rc);
        return rc;
    }
    if (!(s->slots = calloc((size_t)(params->n ? params->n : 1), sizeof *s->slots)))
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    s->before = adam8_extent_of(params, 0, lo);
    for (int i = 0; i < params->n; i++) {
        const cnet_param *q = &params->items[i];
        adam8_slot *slot = &s->slots[i];
        piece_of(q, lo, hi, &slot->a, &slot->b);
        const size_t len = slot->b - slot->a;
        slot->is_8bit = q->numel >= ADAM8_MIN_SIZE;
        if (slot->is_8bit && len && slot->a % CNET_ADAM8_BLOCK)
            return cnet_fail(err, CNET_EINVAL,
                             "optimizer shard from %zu cuts %s inside a %d-element 8-bit block", lo,
                             q->name, CNET_ADAM8_BLOCK);
        if (slot->is_8bit) {
            slot->offset = s->n_8bit, slot->block = s->n_blocks;
            s->n_8bit += len, s->n_blocks += (size_t)adam8_blocks((long)len);
        } else {
            slot->offset = s->n_small;
            s->n_small += len;
        }
    }
    cnet_backend *be = s->be;
    int rc = 0;
    s->codes_m = dev_zeroed(be, s->n_8bit, err, &rc);
    s->codes_v = dev_zeroed(be, s->n_8bit, err, &rc);
    s->absmax_m = dev_zeroed(be, s->n_blocks * sizeof(float), err, &rc);
    s->absmax_v = dev_zeroed(be, s->n_blocks * sizeof(float), err, &rc);
    s->small_m = dev_zeroed(be, s->n_small * sizeof(float), err, &rc);
    s->small_v = dev_zeroed(be, s->n_small * sizeof(float), err, &rc);
    s->qmaps = dev_zeroed(be, 2 * ADAM8_MAP_SIZE * sizeof(float), err, &rc);
    if (rc) return rc;
    float maps[2 * ADAM8_MAP_SIZE];
    adam8_dynamic_map(maps, 1);
    adam8_dynamic_map(maps + ADAM8_MAP_SIZE, 0);
    be->upload(be, s->qmaps, maps, sizeof maps);
    return 0;
}

void adam_state_free(adam_state *s) {
    if (!s->be) return;
    void *bufs[] = {s->m,        s->v,       s->codes_m, s->codes_v, s->absmax_m,
                    s->absmax_v, s->small_m, s->small_v, s->qmaps};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) s->be->free(s->be, bufs[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

size_t adam_state_bytes(const adam_state *s) {
    if (!s->use_8bit) return 2 * (s->hi - s->lo) * sizeof(float);
    return 2 * (s->n_8bit + (s->n_blocks + s->n_small) * sizeof(float)) +
           2 * ADAM8_MAP_SIZE * sizeof(float);
}

/* The device view of parameter i's 8-bit state. */
static cnet_adam8_state slot_view(const adam_state *s, int i) {
    const adam8_slot *slot = &s->slots[i];
    cnet_adam8_state st = {.m = s->codes_m + slot->offset,
                           .v = s->codes_v + slot->offset,
                           .absmax_m = s->absmax_m + slot->block,
                           .absmax_v = s->absmax_v + slot->block,
                           .qmap_m = s->qmaps,
                           .qmap_v = s->qmaps + ADAM8_MAP_SIZE};
    return st;
}

void adam_state_step(adam_state *s, const cnet_params *grads, const train_adamw *opt, int step,
                     const float *grad_sumsq) {
    cnet_backend *be = s->be;
    const cnet_params *p = s->params;
    if (!s->use_8bit) {
        be->adamw_step(be, p->block + s->lo, s->m, s->v, grads->block + s->lo,
                       (long)(s->hi - s->lo), opt->lr, opt->beta1, opt->beta2, opt->eps,
                       opt->weight_decay, step, grad_sumsq, opt->max_grad_norm);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        const adam8_slot *slot = &s->slots[i];
        const size_t a = slot->a;
        const long n = (long)(slot->b - a);
        if (!n) continue;
        float *w = p->items[i].data + a;
        const float *g = grads->items[i].data + a;
        if (slot->is_8bit) {
            const cnet_adam8_state st = slot_view(s, i);
            be->adamw8bit_step(be, w, &st, g, n, opt->lr, opt->beta1, opt->beta2, opt->eps,
                               opt->weight_decay, step, grad_sumsq, opt->max_grad_norm);
        } else {
            const size_t o = slot->offset;
            be->adamw_step(be, w, s->small_m + o, s->small_v + o, g, n, opt->lr, opt->beta1,
                           opt->beta2, opt->eps, opt->weight_decay, step, grad_sumsq,
                           opt->max_grad_norm);
        }
    }
}

/* Save and load take a whole state. */
static int check_whole(const adam_state *s, cnet_error *err) {
    if (s->lo == 0 && s->hi == s->params->total) return 0;
    return cnet_fail(err, CNET_EINVAL,
                     "optimizer state: a shard [%zu, %zu) of %zu is saved or loaded only whole "
                     "(engine/train/adam_shard.h)",
                     s->lo, s->hi, s->params->total);
}

/* The float32 form's buffer as a table of the parameters' layout (for
 * params_save / params_load); unbound and freed by the caller. */
static int table_over(cnet_params *t, const adam_state *s, float *buf, cnet_error *err) {
    const int rc = params_like(t, s->params, err);
    if (!rc) params_bind(t, buf);
    return rc;
}

static int save_f32(const adam_state *s, float *buf, const char *path, cnet_error *err) {
    cnet_params t;
    int rc = table_over(&t, s, buf, err);
    if (rc) return rc;
    rc = params_save(&t, path, NULL, NULL, 0, err);
    params_bind(&t, NULL);
    params_free(&t);
    return rc;
}

static int load_f32(const adam_state *s, float *buf, const char *path, cnet_error *err) {
    cnet_params t;
    int rc = table_over(&t, s, buf, err);
    if (rc) return rc;
    rc = params_load(&t, path, err);
    params_bind(&t, NULL);
    params_free(&t);
    return rc;
}

static int path_in(char *out, const char *dir, const char *name, cnet_error *err) {
    if (snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s/%s: path too long", dir, name);
    return 0;
}

/* Parameter i's four tensors in the 8-bit file: device pointer, dtype and
 * element count of key k (adam8_keys order). */
static void slot_tensor(const adam_state *s, int i, int k, void **dev, cnet_dtype *dt,
                        size_t *numel) {
    const adam8_slot *slot = &s->slots[i];
    const size_t n = s->params->items[i].numel;
    if (!slot->is_8bit) {
        *dt = CNET_F32, *numel = k < 2 ? n : 0;
        *dev = k == 0 ? (void *)(s->small_m + slot->offset) : (void *)(s->small_v + slot->offset);
        return;
    }
    const cnet_adam8_state st = slot_view(s, i);
    *dt = k < 2 ? CNET_U8 : CNET_F32;
    *numel = k < 2 ? n : (size_t)adam8_blocks((long)n);
    void *ptrs[4] = {st.m, st.v, st.absmax_m, st.absmax_v};
    *dev = ptrs[k];
}

static int save_8bit(const adam_state *s, const char *path, cnet_error *err) {
    const int n = s->params->n, max_items = 4 * n + 2;
    const size_t host_bytes = 2 * (s->n_8bit + (s->n_blocks + s->n_small) * sizeof(float)) +
                              2 * ADAM8_MAP_SIZE * sizeof(float);
    st_write_item *items = calloc((size_t)max_items, sizeof *items);
    char(*names)[ADAM8_KEY_MAX] = calloc((size_t)max_items, sizeof *names);
    unsigned char *host = malloc(host_bytes), *at = host;
    int rc = 0, count = 0;
    if (!items || !names || !host) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory saving %s", path);
        goto done;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            void *dev;
            cnet_dtype dt;
            size_t numel;
            slot_tensor(s, i, k, &dev, &dt, &numel);
            if (!numel) continue; /* small tensors have no absmax */
            snprintf(names[count], ADAM8_KEY_MAX, "%s.%s", s->params->items[i].name, adam8_keys[k]);
            s->be->download(s->be, at, dev, numel * cnet_dtype_size(dt));
            items[count] = (st_write_item){
                .name = names[count],
                .view = {
                    .dtype = dt, .ndim = 1, .shape = {(int64_t)numel}, .data = at, .device = -1}};
            count++;
            at += numel * cnet_dtype_size(dt);
        }
    for (int k = 0; k < 2; k++) {
        s->be->download(s->be, at, s->qmaps + k * ADAM8_MAP_SIZE, ADAM8_MAP_SIZE * sizeof(float));
        items[count++] = (st_write_item){
            .name = k ? "qmap2" : "qmap1",
            .view = {
                .dtype = CNET_F32, .ndim = 1, .shape = {ADAM8_MAP_SIZE}, .data = at, .device = -1}};
        at += ADAM8_MAP_SIZE * sizeof(float);
    }
    char block[16], min_size[16];
    snprintf(block, sizeof block, "%d", CNET_ADAM8_BLOCK);
    snprintf(min_size, sizeof min_size, "%d", ADAM8_MIN_SIZE);
    const char *keys[] = {"optimizer", "block_size", "min_8bit_size", "layout"};
    const char *values[] = {"AdamW8bit", block, min_size, "cnet memory order (conv OHWI)"};
    rc = cnet_backend_status(s->be, err); /* nothing read from a failed device is saved */
    if (!rc) rc = st_write(path, items, count, keys, values, 4, err);
done:
    free(items);
    free(names);
    free(host);
    return rc;
}

int adam_state_save(const adam_state *s, const char *dir, cnet_error *err) {
    char path[PATH_MAX];
    int rc = check_whole(s, err);
    if (rc) return rc;
    if (s->use_8bit)
        return (rc = path_in(path, dir, ADAM_FILE_8BIT, err)) ? rc : save_8bit(s, path, err);
    if ((rc = path_in(path, dir, ADAM_FILE_M, err)) || (rc = save_f32(s, s->m, path, err)) ||
        (rc = path_in(path, dir, ADAM_FILE_V, err)))
        return rc;
    return save_f32(s, s->v, path, err);
}

static int file_exists(const char *dir, const char *name) {
    char path[PATH_MAX];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
           stat(path, &st) == 0;
}

/* Copies one tensor of the 8-bit file to the device after checking it. */
static int load_tensor(const adam_state *s, const st_file *f, const char *name, void *dev,
                       cnet_dtype dt, size_t numel, cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e) return cnet_fail(err, CNET_ENOTFOUND, "%s: missing tensor '%s'", f->path, name);
    if (e->view.dtype != dt || (size_t)cnet_tensor_numel(&e->view) != numel || e->view.ndim != 1)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: tensor '%s' is %s with %lld elements, expected %s [%zu]", f->path,
                         name, cnet_dtype_name(e->view.dtype),
                         (long long)cnet_tensor_numel(&e->view), cnet_dtype_name(dt), numel);
    s->be->upload(s->be, dev, e->view.data, e->nbytes);
    return 0;
}

static int load_8bit(adam_state *s, const char *path, cnet_error *err) {
    st_file f;
    int rc = st_open(&f, path, err), expected = 2;
    if (rc) return rc;
    const char *bs = st_meta(&f, "block_size");
    char want[16];
    snprintf(want, sizeof want, "%d", CNET_ADAM8_BLOCK);
    if (!bs || strcmp(bs, want) != 0)
        rc = cnet_fail(err, CNET_EFORMAT, "%s: block_size %s, this build quantises blocks of %s",
                       path, bs ? bs : "(missing)", want);
    /* The codes mean entries of the maps they were written with: those
     * must be this build's maps. */
    float maps[2 * ADAM8_MAP_SIZE];
    adam8_dynamic_map(maps, 1);
    adam8_dynamic_map(maps + ADAM8_MAP_SIZE, 0);
    for (int k = 0; k < 2 && !rc; k++) {
        const char *name = k ? "qmap2" : "qmap1";
        const st_entry *e = st_find(&f, name);
        if (!e || e->view.dtype != CNET_F32 || e->nbytes != ADAM8_MAP_SIZE * sizeof(float) ||
            memcmp(e->view.data, maps + k * ADAM8_MAP_SIZE, e->nbytes) != 0)
            rc = cnet_fail(err, CNET_EFORMAT,
                           "%s: '%s' is missing or differs from this build's dynamic map", path,
                           name);
    }
    for (int i = 0; i < s->params->n && !rc; i++)
        for (int k = 0; k < 4 && !rc; k++) {
            void *dev;
            cnet_dtype dt;
            size_t numel;
            slot_tensor(s, i, k, &dev, &dt, &numel);
            if (!numel) continue;
            char name[ADAM8_KEY_MAX];
            snprintf(name, sizeof name, "%s.%s", s->params->items[i].name, adam8_keys[k]);
            rc = load_tensor(s, &f, name, dev, dt, numel, err);
            expected++;
        }
    if (!rc && f.n != expected)
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: %d tensors, expected %d (a checkpoint of another ControlNet?)", path,
                       f.n, expected);
    st_close(&f);
    return rc;
}

int adam_state_load(adam_state *s, const char *dir, cnet_error *err) {
    char path[PATH_MAX];
    int rc = check_whole(s, err);
    if (rc) return rc;
    if (s->use_8bit) {
        if (!file_exists(dir, ADAM_FILE_8BIT) && file_exists(dir, ADAM_FILE_M))
            return cnet_fail(err, CNET_EINVAL,
                             "%s holds float32 AdamW state (" ADAM_FILE_M
                             "): resume it without --use_8bit_adam",
                             dir);
        return (rc = path_in(path, dir, ADAM_FILE_8BIT, err)) ? rc : load_8bit(s, path, err);
    }
    if (!file_exists(dir, ADAM_FILE_M) && file_exists(dir, ADAM_FILE_8BIT))
        return cnet_fail(
            err, CNET_EINVAL,
            "%s holds 8-bit AdamW state (" ADAM_FILE_8BIT "): resume it with --use_8bit_adam", dir);
    if ((rc = path_in(path, dir, ADAM_FILE_M, err)) || (rc = load_f32(s, s->m, path, err)) ||
        (rc = path_in(path, dir, ADAM_FILE_V, err)))
        return rc;
    return load_f32(s, s->v, path, err);
}
