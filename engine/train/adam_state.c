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

int adam_state_init(adam_state *s, const cnet_params *params, int use_8bit, cnet_error *err) {
    memset(s, 0, sizeof *s);
    s->be = params->be, s->params = params, s->use_8bit = use_8bit;
    if (!use_8bit) {
        int rc = params_alloc_like(&s->m, params, err);
        return rc ? rc : params_alloc_like(&s->v, params, err);
    }
    if (!(s->slots = calloc((size_t)(params->n ? params->n : 1), sizeof *s->slots)))
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int i = 0; i < params->n; i++) {
        const size_t numel = params->items[i].numel;
        adam8_slot *slot = &s->slots[i];
        slot->is_8bit = numel >= ADAM8_MIN_SIZE;
        if (slot->is_8bit) {
            slot->offset = s->n_8bit, slot->block = s->n_blocks;
            s->n_8bit += numel, s->n_blocks += (size_t)adam8_blocks((long)numel);
        } else {
            slot->offset = s->n_small;
            s->n_small += numel;
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
    params_free(&s->m);
    params_free(&s->v);
    void *bufs[] = {s->codes_m, s->codes_v, s->absmax_m, s->absmax_v,
                    s->small_m, s->small_v, s->qmaps};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) s->be->free(s->be, bufs[i]);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

size_t adam_state_bytes(const adam_state *s) {
    if (!s->use_8bit) return 2 * s->params->total * sizeof(float);
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
        be->adamw_step(be, p->block, s->m.block, s->v.block, grads->block, (long)p->total, opt->lr,
                       opt->beta1, opt->beta2, opt->eps, opt->weight_decay, step, grad_sumsq,
                       opt->max_grad_norm);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        const cnet_param *q = &p->items[i];
        const float *g = grads->items[i].data;
        const long n = (long)q->numel;
        if (s->slots[i].is_8bit) {
            const cnet_adam8_state st = slot_view(s, i);
            be->adamw8bit_step(be, q->data, &st, g, n, opt->lr, opt->beta1, opt->beta2, opt->eps,
                               opt->weight_decay, step, grad_sumsq, opt->max_grad_norm);
        } else {
            const size_t o = s->slots[i].offset;
            be->adamw_step(be, q->data, s->small_m + o, s->small_v + o, g, n, opt->lr, opt->beta1,
                           opt->beta2, opt->eps, opt->weight_decay, step, grad_sumsq,
                           opt->max_grad_norm);
        }
    }
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
    int rc;
    if (s->use_8bit)
        return (rc = path_in(path, dir, ADAM_FILE_8BIT, err)) ? rc : save_8bit(s, path, err);
    if ((rc = path_in(path, dir, ADAM_FILE_M, err)) ||
        (rc = params_save(&s->m, path, NULL, NULL, 0, err)) ||
        (rc = path_in(path, dir, ADAM_FILE_V, err)))
        return rc;
    return params_save(&s->v, path, NULL, NULL, 0, err);
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
    int rc;
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
    if ((rc = path_in(path, dir, ADAM_FILE_M, err)) || (rc = params_load(&s->m, path, err)) ||
        (rc = path_in(path, dir, ADAM_FILE_V, err)))
        return rc;
    return params_load(&s->v, path, err);
}
