/* Model tensors at the file boundary; see model_io.h. */
#include "server/golden/model_io.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"

int mio_need(const st_file *f, const char *name, cnet_dtype dtype, int ndim, const st_entry **out,
             cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e) return cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    if (e->view.dtype != dtype || (ndim >= 0 && e->view.ndim != ndim))
        return cnet_fail(
            err, CNET_EFORMAT, "%s: tensor '%s' is %s with %d dims; expected %s with %d", f->path,
            name, cnet_dtype_name(e->view.dtype), e->view.ndim, cnet_dtype_name(dtype), ndim);
    *out = e;
    return 0;
}

float *mio_upload(cnet_backend *be, const st_entry *e, cnet_error *err) {
    const cnet_tensor *t = &e->view;
    size_t n = (size_t)cnet_tensor_numel(t);
    float *host = malloc((n ? n : 1) * sizeof(float)), *conv = NULL;
    float *dev = be->alloc(be, (n ? n : 1) * sizeof(float));
    if (!host || !dev) goto oom;
    cnet_to_f32(host, t->data, t->dtype, n);
    if (t->ndim == 4) {
        if (!(conv = malloc((n ? n : 1) * sizeof(float)))) goto oom;
        layout_nchw_to_nhwc(conv, host, (int)t->shape[0], (int)t->shape[1], (int)t->shape[2],
                            (int)t->shape[3]);
    }
    be->upload(be, dev, conv ? conv : host, n * sizeof(float));
    free(host);
    free(conv);
    return dev;
oom:
    free(host);
    free(conv);
    if (dev) be->free(be, dev);
    cnet_fail(err, CNET_ENOMEM, "out of memory for '%s'", e->name);
    return NULL;
}

float *mio_download(cnet_backend *be, const float *dev, int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float *host = malloc((n ? n : 1) * sizeof(float));
    float *nhwc = ndim == 4 ? malloc((n ? n : 1) * sizeof(float)) : NULL;
    if (!host || (ndim == 4 && !nhwc)) {
        free(host);
        free(nhwc);
        return NULL;
    }
    be->download(be, nhwc ? nhwc : host, dev, n * sizeof(float));
    if (nhwc)
        layout_nhwc_to_nchw(host, nhwc, (int)shape[0], (int)shape[1], (int)shape[2], (int)shape[3]);
    free(nhwc);
    return host;
}

int mio_timesteps(const st_file *f, const char *name, int B, float *t, cnet_error *err) {
    const st_entry *e = st_find(f, name);
    if (!e) return cnet_fail(err, CNET_ENOTFOUND, "%s: no tensor '%s'", f->path, name);
    int64_t n = cnet_tensor_numel(&e->view);
    if (e->view.ndim > 1 || (n != 1 && n != B) ||
        (e->view.dtype != CNET_I64 && e->view.dtype != CNET_F32))
        return cnet_fail(err, CNET_EFORMAT, "%s: '%s' is not a scalar or [%d] timestep", f->path,
                         name, B);
    float v[MIO_MAX_BATCH];
    if (B > MIO_MAX_BATCH)
        return cnet_fail(err, CNET_ELIMIT, "%s: batch %d larger than %d", f->path, B,
                         MIO_MAX_BATCH);
    cnet_to_f32(v, e->view.data, e->view.dtype, (size_t)n);
    for (int b = 0; b < B; b++) t[b] = v[n == 1 ? 0 : b];
    return 0;
}

int mio_added_load(mio_added *a, cnet_backend *be, const st_file *f, const char *stem,
                   const cnet_unet_config *cfg, int B, cnet_error *err) {
    memset(a, 0, sizeof *a);
    if (!cfg->add_text_time) return 0;
    char tn[MIO_NAME_MAX], in[MIO_NAME_MAX];
    const st_entry *te, *ie;
    const int Dp =
        cfg->projection_class_embeddings_input_dim - CNET_TIME_IDS * cfg->addition_time_embed_dim;
    snprintf(tn, sizeof tn, "%s.in.text_embeds", stem);
    snprintf(in, sizeof in, "%s.in.time_ids", stem);
    int rc;
    if ((rc = mio_need(f, tn, CNET_F32, 2, &te, err)) ||
        (rc = mio_need(f, in, CNET_F32, 2, &ie, err)))
        return rc;
    if (B > MIO_MAX_BATCH)
        return cnet_fail(err, CNET_ELIMIT, "%s: batch %d larger than %d", f->path, B,
                         MIO_MAX_BATCH);
    if (te->view.shape[0] != B || te->view.shape[1] != Dp || ie->view.shape[0] != B ||
        ie->view.shape[1] != CNET_TIME_IDS)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: '%s' must be [%d,%d] and '%s' [%d,%d] for this SDXL model and batch",
                         f->path, tn, B, Dp, in, B, CNET_TIME_IDS);
    if (!(a->text_dev = mio_upload(be, te, err))) return CNET_ENOMEM;
    memcpy(a->ids, ie->view.data, (size_t)B * CNET_TIME_IDS * sizeof(float));
    a->cond = (unet_added_cond){.text_embeds = a->text_dev, .time_ids = a->ids};
    a->present = 1;
    return 0;
}

const unet_added_cond *mio_added_cond(const mio_added *a) { return a->present ? &a->cond : NULL; }

void mio_added_free(mio_added *a, cnet_backend *be) {
    if (a->text_dev) be->free(be, a->text_dev);
    memset(a, 0, sizeof *a);
}

/* DiagonalGaussianDistribution of NCHW VAE moments [B,2L,h,w] (hw = h*w):
 * mean = the first L channels, logvar = the last L clamped to [-30, 20],
 * std = exp(logvar / 2); each output [B,L,h,w]. */
static void mio_vae_distribution(float *mean, float *logvar, float *std, const float *moments,
                                 int B, int L, size_t hw) {
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < (size_t)L * hw; i++) {
            size_t o = (size_t)b * L * hw + i, src = (size_t)b * 2 * L * hw + i;
            float lv = moments[src + (size_t)L * hw];
            mean[o] = moments[src];
            logvar[o] = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
            std[o] = expf(0.5f * logvar[o]);
        }
}

/* ---- components ---- */

const char *const mio_component_names[MIO_COMPONENTS] = {"text_encoder", "vae.encode", "vae.decode",
                                                         "unet", "controlnet"};
/* The folder of each component in the pipeline. */
static const char *const component_folders[MIO_COMPONENTS] = {"text_encoder", "vae", "vae", "unet",
                                                              "controlnet"};
static const char *const timestep_names[] = {"t_batch", "t_scalar", "t_float"};

mio_component mio_component_by_name(const char *name) {
    for (int c = 0; c < MIO_COMPONENTS; c++)
        if (strcmp(name, mio_component_names[c]) == 0) return (mio_component)c;
    return MIO_COMPONENTS;
}

/* ---- outputs ---- */

const cnet_tensor *mio_output(const mio_outputs *o, const char *name) {
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->names[i], name) == 0) return &o->t[i];
    return NULL;
}

void mio_outputs_free(mio_outputs *o) {
    for (int i = 0; i < o->n; i++) free(o->t[i].data);
    memset(o, 0, sizeof *o);
}

/* A new output slot named `name` of the given shape, data not yet set. */
static cnet_tensor *new_output(mio_outputs *o, const char *name, int ndim, const int64_t *shape,
                               cnet_error *err) {
    if (o->n == MIO_MAX_OUTPUTS) {
        cnet_fail(err, CNET_ELIMIT, "more than %d outputs", MIO_MAX_OUTPUTS);
        return NULL;
    }
    cnet_tensor *t = &o->t[o->n];
    memset(t, 0, sizeof *t);
    t->dtype = CNET_F32, t->ndim = ndim, t->device = -1;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    snprintf(o->names[o->n], MIO_NAME_MAX, "%s", name);
    return t;
}

/* Downloads dev as output `name` of the given PyTorch shape. */
static int add_output(mio_model *m, mio_outputs *o, const char *name, const float *dev, int ndim,
                      const int64_t *shape, cnet_error *err) {
    cnet_tensor *t = new_output(o, name, ndim, shape, err);
    if (!t) return CNET_ELIMIT;
    if (!(t->data = mio_download(m->be, dev, ndim, shape)))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for output '%s'", name);
    o->n++;
    return 0;
}

/* Adds a host tensor (copied) as an output. */
static int add_host_output(mio_outputs *o, const char *name, const float *host, int ndim,
                           const int64_t *shape, cnet_error *err) {
    cnet_tensor *t = new_output(o, name, ndim, shape, err);
    if (!t) return CNET_ELIMIT;
    const size_t n = (size_t)cnet_tensor_numel(t);
    if (!(t->data = malloc((n ? n : 1) * sizeof(float))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for output '%s'", name);
    memcpy(t->data, host, n * sizeof(float));
    o->n++;
    return 0;
}

/* ---- the model ---- */

int mio_open(mio_model *m, cnet_backend *be, mio_component c, const char *model_dir,
             cnet_error *err) {
    memset(m, 0, sizeof *m);
    if ((int)c < 0 || c >= MIO_COMPONENTS)
        return cnet_fail(err, CNET_EINVAL, "no model component %d", (int)c);
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", model_dir, component_folders[c]) >= (int)sizeof dir)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", model_dir);
    m->be = be;
    int rc;
    switch (c) {
    case MIO_TEXT_ENCODER:
        rc = clip_text_open(&m->m.text, be, dir, err);
        break;
    case MIO_VAE_ENCODE:
    case MIO_VAE_DECODE:
        rc = vae_open(&m->m.vae, be, dir, err);
        break;
    case MIO_UNET:
        rc = unet_open(&m->m.unet, be, dir, err);
        break;
    case MIO_CONTROLNET:
    default:
        rc = controlnet_open(&m->m.controlnet, be, dir, err);
        break;
    }
    if (!rc) m->folder = component_folders[c];
    return rc;
}

int mio_scratch(mio_model *m, size_t bytes, cnet_error *err) {
    if (m->scratch.base && m->scratch.capacity >= bytes) return 0;
    cnet_arena_free(&m->scratch);
    return cnet_arena_init(&m->scratch, m->be, bytes, "model scratch", err);
}

void mio_close(mio_model *m) {
    if (!m->folder) return;
    cnet_arena_free(&m->scratch);
    if (strcmp(m->folder, "text_encoder") == 0)
        clip_text_free(&m->m.text);
    else if (strcmp(m->folder, "vae") == 0)
        vae_free(&m->m.vae);
    else if (strcmp(m->folder, "unet") == 0)
        unet_free(&m->m.unet);
    else
        controlnet_free(&m->m.controlnet);
    memset(m, 0, sizeof *m);
}

/* ---- the runs ---- */

static int run_text(mio_model *mm, const st_file *in, const mio_options *o, mio_outputs *out,
                    cnet_error *err) {
    clip_text_model *m = &mm->m.text;
    cnet_backend *be = mm->be;
    const st_entry *ids;
    int rc = mio_need(in, "text_encoder.input_ids", CNET_I64, 2, &ids, err);
    if (rc) return rc;
    const int P = (int)ids->view.shape[0], L = (int)ids->view.shape[1], D = m->hidden;
    int64_t *host_ids = malloc(((size_t)P * L + 1) * sizeof *host_ids);
    float *hidden = be->alloc(be, ((size_t)P * L * D + 1) * sizeof(float));
    float *pooled = be->alloc(be, ((size_t)P * D + 1) * sizeof(float));
    if (!host_ids || !hidden || !pooled) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(host_ids, ids->view.data, (size_t)P * L * sizeof *host_ids);
        rc = mio_scratch(mm, clip_text_scratch_bytes(m, P, L), err);
    }
    if (!rc)
        rc = clip_text_forward(m, &mm->scratch, hidden, pooled, host_ids, P, L, o->clip_skip, err);
    const int64_t hs[3] = {P, L, D}, ps[2] = {P, D};
    if (!rc) rc = add_output(mm, out, "text_encoder.last_hidden_state", hidden, 3, hs, err);
    if (!rc) rc = add_output(mm, out, "text_encoder.pooler_output", pooled, 2, ps, err);
    free(host_ids);
    if (hidden) be->free(be, hidden);
    if (pooled) be->free(be, pooled);
    return rc;
}

/* vae.encode.mean, .logvar and .std from NCHW moments [B,2L,h,w]. */
static int add_distribution(mio_outputs *out, const float *moments, const int64_t *ms,
                            cnet_error *err) {
    const int B = (int)ms[0], Lc = (int)ms[1] / 2;
    const size_t hw = (size_t)(ms[2] * ms[3]), n = (size_t)B * Lc * hw;
    float *buf = malloc(3 * (n ? n : 1) * sizeof(float));
    if (!buf) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    float *mean = buf, *logvar = buf + n, *stdev = buf + 2 * n;
    mio_vae_distribution(mean, logvar, stdev, moments, B, Lc, hw);
    const int64_t ds[4] = {B, Lc, ms[2], ms[3]};
    int rc = add_host_output(out, "vae.encode.mean", mean, 4, ds, err);
    if (!rc) rc = add_host_output(out, "vae.encode.logvar", logvar, 4, ds, err);
    if (!rc) rc = add_host_output(out, "vae.encode.std", stdev, 4, ds, err);
    free(buf);
    return rc;
}

static int run_vae(mio_model *mm, int encode, const st_file *in, mio_outputs *out,
                   cnet_error *err) {
    vae_model *m = &mm->m.vae;
    cnet_backend *be = mm->be;
    const st_entry *x;
    int rc = mio_need(in, encode ? "vae.encode.input" : "vae.decode.input", CNET_F32, 4, &x, err);
    if (rc) return rc;
    const int B = (int)x->view.shape[0], C = (int)x->view.shape[1], H = (int)x->view.shape[2],
              W = (int)x->view.shape[3], f = vae_factor(m), Lc = m->cfg.latent_channels;
    const int want_c = encode ? m->cfg.in_channels : Lc;
    if (C != want_c || (encode && (H % f || W % f)))
        return cnet_fail(err, CNET_EINVAL,
                         "%s: '%s' has %d channels and size %dx%d; the VAE wants %d channels%s%d",
                         in->path, x->name, C, H, W, want_c,
                         encode ? " and a size divisible by " : ", any size; factor ", f);
    const int h = encode ? H / f : H, w = encode ? W / f : W;
    float *x_dev = mio_upload(be, x, err);
    const size_t out_n =
        encode ? (size_t)B * h * w * 2 * Lc : (size_t)B * H * f * W * f * m->cfg.out_channels;
    float *y = be->alloc(be, (out_n + 1) * sizeof(float));
    if (!x_dev || !y) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = mio_scratch(mm, vae_scratch_bytes(m, B, h * f, w * f), err);
    if (!rc && encode) {
        rc = vae_encode(m, &mm->scratch, y, x_dev, B, H, W, err);
        const int64_t ms[4] = {B, 2 * Lc, h, w};
        if (!rc) rc = add_output(mm, out, "vae.encode.moments", y, 4, ms, err);
        if (!rc) rc = add_distribution(out, out->t[out->n - 1].data, ms, err);
    } else if (!rc) {
        rc = vae_decode(m, &mm->scratch, y, x_dev, B, H, W, err);
        const int64_t os[4] = {B, m->cfg.out_channels, H * f, W * f};
        if (!rc) rc = add_output(mm, out, "vae.decode.output", y, 4, os, err);
    }
    if (x_dev) be->free(be, x_dev);
    if (y) be->free(be, y);
    return rc;
}

/* The timestep input "<stem>.in.<t>": o->timestep's, or the only one present. */
static int pick_timesteps(const st_file *in, const mio_options *o, const char *stem, int B,
                          float *t, cnet_error *err) {
    char name[MIO_NAME_MAX], found[MIO_NAME_MAX] = "";
    int n_found = 0, known = !o->timestep;
    for (size_t i = 0; i < sizeof timestep_names / sizeof timestep_names[0]; i++) {
        if (o->timestep && strcmp(o->timestep, timestep_names[i]) != 0) continue;
        known = 1;
        snprintf(name, sizeof name, "%s.in.%s", stem, timestep_names[i]);
        if (!st_find(in, name)) continue;
        n_found++;
        snprintf(found, sizeof found, "%s", name);
    }
    if (!known)
        return cnet_fail(err, CNET_EINVAL, "timestep '%s': expected t_batch, t_scalar or t_float",
                         o->timestep);
    if (n_found != 1)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: %s timestep input %s%s.in.t_batch, t_scalar or t_float%s", in->path,
                         n_found ? "more than one" : "no", n_found ? "among " : "(looked for ",
                         stem, n_found ? "; pick one with --timestep" : ")");
    return mio_timesteps(in, found, B, t, err);
}

/* The inputs every run of a component needs: name, dtype and rank. */
typedef struct mio_input {
    const char *name;
    cnet_dtype dtype;
    int ndim;
} mio_input;

enum { MIO_MAX_INPUTS = 3 };

static const mio_input component_inputs[MIO_COMPONENTS][MIO_MAX_INPUTS] = {
    [MIO_TEXT_ENCODER] = {{"text_encoder.input_ids", CNET_I64, 2}},
    [MIO_VAE_ENCODE] = {{"vae.encode.input", CNET_F32, 4}},
    [MIO_VAE_DECODE] = {{"vae.decode.input", CNET_F32, 4}},
    [MIO_UNET] = {{"unet.in.sample", CNET_F32, 4}, {"unet.in.encoder_hidden_states", CNET_F32, 3}},
    [MIO_CONTROLNET] = {{"controlnet.in.sample", CNET_F32, 4},
                        {"controlnet.in.encoder_hidden_states", CNET_F32, 3},
                        {"controlnet.in.controlnet_cond", CNET_F32, 4}},
};

int mio_check_inputs(mio_component c, const st_file *in, const mio_options *o, cnet_error *err) {
    if ((int)c < 0 || c >= MIO_COMPONENTS)
        return cnet_fail(err, CNET_EINVAL, "no model component %d", (int)c);
    const st_entry *first = NULL;
    for (int i = 0; i < MIO_MAX_INPUTS && component_inputs[c][i].name; i++) {
        const mio_input *want = &component_inputs[c][i];
        const st_entry *e;
        int rc = mio_need(in, want->name, want->dtype, want->ndim, &e, err);
        if (rc) return rc;
        if (!first)
            first = e;
        else if (e->view.shape[0] != first->view.shape[0])
            return cnet_fail(err, CNET_EINVAL, "%s: '%s' has batch %lld, '%s' batch %lld", in->path,
                             e->name, (long long)e->view.shape[0], first->name,
                             (long long)first->view.shape[0]);
    }
    if (c != MIO_UNET && c != MIO_CONTROLNET) return 0;
    float t[MIO_MAX_BATCH];
    const int64_t B = first->view.shape[0];
    if (B > MIO_MAX_BATCH)
        return cnet_fail(err, CNET_ELIMIT, "%s: batch %lld larger than %d", in->path, (long long)B,
                         MIO_MAX_BATCH);
    return pick_timesteps(in, o, c == MIO_UNET ? "unet" : "controlnet", (int)B, t, err);
}

/* Frees the device buffers of a list (NULL entries skipped). */
static void free_all(cnet_backend *be, float **bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i]) be->free(be, bufs[i]);
}

/* The skip-shaped residual inputs unet.in.down_residual.<i> and
 * unet.in.mid_residual, uploaded (NHWC) after checking their sizes. */
static int upload_residuals(cnet_backend *be, const st_file *in, const unet_sizes *s, float **res,
                            float **mid, cnet_error *err) {
    int rc = 0;
    for (int i = 0; i < s->n_skips && !rc; i++) {
        char name[MIO_NAME_MAX];
        const st_entry *e;
        snprintf(name, sizeof name, "unet.in.down_residual.%d", i);
        if (!(rc = mio_need(in, name, CNET_F32, 4, &e, err)) &&
            cnet_tensor_numel(&e->view) != (int64_t)s->skip_floats[i])
            rc = cnet_fail(err, CNET_EINVAL, "%s: '%s' has %lld values; skip %d has %zu", in->path,
                           name, (long long)cnet_tensor_numel(&e->view), i, s->skip_floats[i]);
        if (!rc && !(res[i] = mio_upload(be, e, err))) rc = CNET_ENOMEM;
    }
    const st_entry *mr = NULL;
    if (!rc && !(rc = mio_need(in, "unet.in.mid_residual", CNET_F32, 4, &mr, err)) &&
        cnet_tensor_numel(&mr->view) != (int64_t)s->mid_floats)
        rc = cnet_fail(err, CNET_EINVAL, "%s: 'unet.in.mid_residual' has %lld values, want %zu",
                       in->path, (long long)cnet_tensor_numel(&mr->view), s->mid_floats);
    if (!rc && !(*mid = mio_upload(be, mr, err))) rc = CNET_ENOMEM;
    return rc;
}

static int run_unet(mio_model *mm, const st_file *in, const mio_options *o, mio_outputs *out,
                    cnet_error *err) {
    unet_model *m = &mm->m.unet;
    cnet_backend *be = mm->be;
    const st_entry *xs, *ehs;
    int rc;
    if ((rc = mio_need(in, "unet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(in, "unet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    float t[MIO_MAX_BATCH];
    if ((rc = pick_timesteps(in, o, "unet", B, t, err))) return rc;
    unet_sizes s;
    float *bufs[UNET_MAX_SKIPS + 4] = {0}; /* residuals, mid, sample, text, out */
    float **res = bufs, **mid = &bufs[UNET_MAX_SKIPS], **x = mid + 1, **text = mid + 2,
          **y = mid + 3;
    const int Cout = m->enc.cfg.out_channels;
    if (!(rc = unet_encoder_sizes(&m->enc, B, h, w, &s, err)) && (int)ehs->view.shape[0] != B)
        rc = cnet_fail(err, CNET_EINVAL, "%s: encoder_hidden_states batch %lld, sample batch %d",
                       in->path, (long long)ehs->view.shape[0], B);
    const int with_res = !o->no_residuals && st_find(in, "unet.in.mid_residual") != NULL;
    if (!rc && with_res) rc = upload_residuals(be, in, &s, res, mid, err);
    if (!rc && (!(*x = mio_upload(be, xs, err)) || !(*text = mio_upload(be, ehs, err))))
        rc = CNET_ENOMEM;
    if (!rc && !(*y = be->alloc(be, (size_t)B * h * w * Cout * sizeof(float))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    mio_added added;
    if (!rc) rc = mio_scratch(mm, unet_scratch_bytes(m, B, h, w, Nt), err);
    if (!rc) rc = mio_added_load(&added, be, in, "unet", &m->enc.cfg, B, err);
    if (!rc) {
        rc = unet_forward(m, &mm->scratch, *y, *x, t, *text, mio_added_cond(&added),
                          with_res ? (const float *const *)res : NULL, *mid, B, h, w, Nt, NULL,
                          NULL, err);
        mio_added_free(&added, be);
    }
    const int64_t os[4] = {B, Cout, h, w};
    if (!rc) rc = add_output(mm, out, "unet.out", *y, 4, os, err);
    free_all(be, bufs, UNET_MAX_SKIPS + 4);
    return rc;
}

static int run_controlnet(mio_model *mm, const st_file *in, const mio_options *o, mio_outputs *out,
                          cnet_error *err) {
    controlnet_model *m = &mm->m.controlnet;
    cnet_backend *be = mm->be;
    const st_entry *xs, *ehs, *cond;
    int rc;
    if ((rc = mio_need(in, "controlnet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(in, "controlnet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)) ||
        (rc = mio_need(in, "controlnet.in.controlnet_cond", CNET_F32, 4, &cond, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    float t[MIO_MAX_BATCH];
    if ((rc = pick_timesteps(in, o, "controlnet", B, t, err))) return rc;
    const int f = controlnet_image_factor(m);
    unet_sizes s;
    float *bufs[UNET_MAX_SKIPS + 4] = {0}; /* down, mid, sample, text, cond */
    float **down = bufs, **mid = &bufs[UNET_MAX_SKIPS], **x = mid + 1, **text = mid + 2,
          **c = mid + 3;
    if (!(rc = unet_encoder_sizes(&m->enc, B, h, w, &s, err)) &&
        (cond->view.shape[0] != B || cond->view.shape[1] != m->cond_channels ||
         cond->view.shape[2] != (int64_t)h * f || cond->view.shape[3] != (int64_t)w * f ||
         ehs->view.shape[0] != B))
        rc = cnet_fail(err, CNET_EINVAL,
                       "%s: controlnet_cond must be [%d,%d,%d,%d] for a [%d,..,%d,%d] sample "
                       "(and encoder_hidden_states of batch %d)",
                       in->path, B, m->cond_channels, h * f, w * f, B, h, w, B);
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(down[i] = be->alloc(be, s.skip_floats[i] * sizeof(float))))
            rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc && !(*mid = be->alloc(be, s.mid_floats * sizeof(float))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc && (!(*x = mio_upload(be, xs, err)) || !(*text = mio_upload(be, ehs, err)) ||
                !(*c = mio_upload(be, cond, err))))
        rc = CNET_ENOMEM;
    mio_added added;
    if (!rc) rc = mio_scratch(mm, controlnet_scratch_bytes(m, B, h, w, Nt), err);
    if (!rc) rc = mio_added_load(&added, be, in, "controlnet", &m->enc.cfg, B, err);
    if (!rc) {
        rc = controlnet_forward(m, &mm->scratch, down, *mid, *x, *c, t, *text,
                                mio_added_cond(&added), o->scale, o->guess_mode, B, h, w, Nt, NULL,
                                NULL, err);
        mio_added_free(&added, be);
    }
    for (int i = 0; i < s.n_skips && !rc; i++) {
        char name[MIO_NAME_MAX];
        snprintf(name, sizeof name, "controlnet.down.%d", i);
        const int64_t C = (int64_t)(s.skip_floats[i] / ((size_t)B * s.skip_h[i] * s.skip_w[i]));
        const int64_t ds[4] = {B, C, s.skip_h[i], s.skip_w[i]};
        rc = add_output(mm, out, name, down[i], 4, ds, err);
    }
    const int64_t ms[4] = {B, m->enc.cfg.block_out_channels[m->enc.cfg.n_blocks - 1], s.mid_h,
                           s.mid_w};
    if (!rc) rc = add_output(mm, out, "controlnet.mid", *mid, 4, ms, err);
    free_all(be, bufs, UNET_MAX_SKIPS + 4);
    return rc;
}

int mio_run(mio_model *m, mio_component c, const st_file *in, const mio_options *o,
            mio_outputs *out, cnet_error *err) {
    mio_outputs_free(out);
    if ((int)c < 0 || c >= MIO_COMPONENTS || !m->folder ||
        strcmp(m->folder, component_folders[c]) != 0)
        return cnet_fail(err, CNET_EINVAL, "component %s is not the loaded %s/",
                         (int)c >= 0 && c < MIO_COMPONENTS ? mio_component_names[c] : "?",
                         m->folder ? m->folder : "(none)");
    int rc = mio_check_inputs(c, in, o, err);
    if (rc) return rc;
    switch (c) {
    case MIO_TEXT_ENCODER:
        rc = run_text(m, in, o, out, err);
        break;
    case MIO_VAE_ENCODE:
    case MIO_VAE_DECODE:
        rc = run_vae(m, c == MIO_VAE_ENCODE, in, out, err);
        break;
    case MIO_UNET:
        rc = run_unet(m, in, o, out, err);
        break;
    case MIO_CONTROLNET:
    default:
        rc = run_controlnet(m, in, o, out, err);
        break;
    }
    /* a failed backend skipped ops: its outputs were never written */
    if (!rc) rc = cnet_backend_status(m->be, err);
    if (rc) mio_outputs_free(out);
    return rc;
}
