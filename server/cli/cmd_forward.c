/* cnet forward --model DIR --component C --inputs IN.safetensors
 *              --out OUT.safetensors [options]
 *
 * Runs one component of a diffusers pipeline folder (on the CPU, or on the
 * GPU with --device cuda[:N], falling back to the CPU with a note) on
 * tensors named as in the goldens (tests/fixtures/goldens/README.md), in
 * PyTorch layout (NCHW), so anyone can compare cnet with diffusers on their
 * own model by dumping the same names from Python:
 *
 *   text_encoder  text_encoder.input_ids [P,L] int64
 *                 -> text_encoder.last_hidden_state [P,L,D], .pooler_output [P,D]
 *                 (--clip-skip K: run all but the last K layers, as diffusers)
 *   vae.encode    vae.encode.input [B,3,H,W]
 *                 -> vae.encode.moments [B,2L,h,w], .mean, .logvar, .std [B,L,h,w]
 *   vae.decode    vae.decode.input [B,L,h,w] -> vae.decode.output [B,3,H,W]
 *   unet          unet.in.sample [B,C,h,w], unet.in.encoder_hidden_states [B,N,D],
 *                 a timestep unet.in.t_batch | t_scalar | t_float (scalar or [B]),
 *                 optional unet.in.down_residual.<i> and unet.in.mid_residual
 *                 -> unet.out [B,C,h,w]
 *   controlnet    controlnet.in.sample, .encoder_hidden_states, .controlnet_cond
 *                 [B,3,H,W] in [0,1], a timestep controlnet.in.t_batch | ...
 *                 (--conditioning-scale S, --guess-mode)
 *                 -> controlnet.down.<i>, controlnet.mid
 *
 * When the file holds several timestep inputs, --timestep NAME (t_batch,
 * t_scalar or t_float) picks one. Other tensors in the file are ignored.
 * Exit status 0 ok, 1 failure, 2 usage error. */
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/golden/model_io.h"

/* Most output tensors one run writes (ControlNet: every skip + mid). */
#define FORWARD_MAX_OUTPUTS (UNET_MAX_SKIPS + 4)
#define FORWARD_NAME_MAX 96
#define FORWARD_MAX_CLIP_SKIP 1000

typedef enum { C_TEXT, C_VAE_ENCODE, C_VAE_DECODE, C_UNET, C_CONTROLNET, C_COUNT } fwd_component;
static const char *const component_names[C_COUNT] = {"text_encoder", "vae.encode", "vae.decode",
                                                     "unet", "controlnet"};
/* The folder of each component in the pipeline. */
static const char *const component_dirs[C_COUNT] = {"text_encoder", "vae", "vae", "unet",
                                                    "controlnet"};
static const char *const timestep_names[] = {"t_batch", "t_scalar", "t_float"};

typedef struct fwd_args {
    const char *model, *inputs, *out, *timestep;
    const char *device; /* cpu, cuda, cuda:N */
    fwd_component component;
    int clip_skip, guess_mode;
    float scale;
} fwd_args;

/* The outputs of a run: host tensors in PyTorch layout, owned. */
typedef struct fwd_outputs {
    int n;
    char names[FORWARD_MAX_OUTPUTS][FORWARD_NAME_MAX];
    cnet_tensor t[FORWARD_MAX_OUTPUTS];
} fwd_outputs;

/* Runs: the backend, the inputs and the outputs. */
typedef struct fwd_run {
    cnet_backend be;
    cnet_arena scratch;
    const st_file *in;
    fwd_outputs out;
    char dir[PATH_MAX];
} fwd_run;

static void usage(FILE *f) {
    fprintf(f, "usage: cnet forward --model DIR --component "
               "text_encoder|vae.encode|vae.decode|unet|controlnet\n"
               "                    --inputs IN.safetensors --out OUT.safetensors\n"
               "                    [--timestep t_batch|t_scalar|t_float] [--clip-skip K]\n"
               "                    [--conditioning-scale S] [--guess-mode] [--device D]\n"
               "  --device cpu (default), cuda or cuda:N (the CPU, with a note, without a GPU)\n"
               "  Runs one model component on tensors named as in the goldens (PyTorch\n"
               "  layout); see the header of server/cli/cmd_forward.c for the names.\n");
}

/* Downloads dev as output `name` of the given PyTorch shape. */
static int add_output(fwd_run *r, const char *name, const float *dev, int ndim,
                      const int64_t *shape, cnet_error *err) {
    if (r->out.n == FORWARD_MAX_OUTPUTS)
        return cnet_fail(err, CNET_ELIMIT, "more than %d outputs", FORWARD_MAX_OUTPUTS);
    cnet_tensor *t = &r->out.t[r->out.n];
    memset(t, 0, sizeof *t);
    t->dtype = CNET_F32, t->ndim = ndim, t->device = -1;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    if (!(t->data = mio_download(&r->be, dev, ndim, shape)))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for output '%s'", name);
    snprintf(r->out.names[r->out.n++], FORWARD_NAME_MAX, "%s", name);
    return 0;
}

/* Adds a host tensor (copied) as an output. */
static int add_host_output(fwd_run *r, const char *name, const float *host, int ndim,
                           const int64_t *shape, cnet_error *err) {
    if (r->out.n == FORWARD_MAX_OUTPUTS)
        return cnet_fail(err, CNET_ELIMIT, "more than %d outputs", FORWARD_MAX_OUTPUTS);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    cnet_tensor *t = &r->out.t[r->out.n];
    memset(t, 0, sizeof *t);
    t->dtype = CNET_F32, t->ndim = ndim, t->device = -1;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    if (!(t->data = malloc((n ? n : 1) * sizeof(float))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for output '%s'", name);
    memcpy(t->data, host, n * sizeof(float));
    snprintf(r->out.names[r->out.n++], FORWARD_NAME_MAX, "%s", name);
    return 0;
}

static int scratch(fwd_run *r, size_t bytes, cnet_error *err) {
    return cnet_arena_init(&r->scratch, &r->be, bytes, "forward scratch", err);
}

static int run_text(fwd_run *r, const fwd_args *a, cnet_error *err) {
    const st_entry *ids;
    int rc = mio_need(r->in, "text_encoder.input_ids", CNET_I64, 2, &ids, err);
    if (rc) return rc;
    const int P = (int)ids->view.shape[0], L = (int)ids->view.shape[1];
    clip_text_model m;
    if ((rc = clip_text_open(&m, &r->be, r->dir, err))) return rc;
    const int D = m.hidden;
    int64_t *host_ids = malloc(((size_t)P * L + 1) * sizeof *host_ids);
    float *hidden = r->be.alloc(&r->be, ((size_t)P * L * D + 1) * sizeof(float));
    float *pooled = r->be.alloc(&r->be, ((size_t)P * D + 1) * sizeof(float));
    if (!host_ids || !hidden || !pooled) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(host_ids, ids->view.data, (size_t)P * L * sizeof *host_ids);
        rc = scratch(r, clip_text_scratch_bytes(&m, P, L), err);
    }
    if (!rc)
        rc = clip_text_forward(&m, &r->scratch, hidden, pooled, host_ids, P, L, a->clip_skip, err);
    const int64_t hs[3] = {P, L, D}, ps[2] = {P, D};
    if (!rc) rc = add_output(r, "text_encoder.last_hidden_state", hidden, 3, hs, err);
    if (!rc) rc = add_output(r, "text_encoder.pooler_output", pooled, 2, ps, err);
    free(host_ids);
    if (hidden) r->be.free(&r->be, hidden);
    if (pooled) r->be.free(&r->be, pooled);
    clip_text_free(&m);
    return rc;
}

/* vae.encode.mean, .logvar and .std from NCHW moments [B,2L,h,w]. */
static int add_distribution(fwd_run *r, const float *moments, const int64_t *ms, cnet_error *err) {
    const int B = (int)ms[0], Lc = (int)ms[1] / 2;
    const size_t hw = (size_t)(ms[2] * ms[3]), n = (size_t)B * Lc * hw;
    float *buf = malloc(3 * (n ? n : 1) * sizeof(float));
    if (!buf) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    float *mean = buf, *logvar = buf + n, *stdev = buf + 2 * n;
    mio_vae_distribution(mean, logvar, stdev, moments, B, Lc, hw);
    const int64_t ds[4] = {B, Lc, ms[2], ms[3]};
    int rc = add_host_output(r, "vae.encode.mean", mean, 4, ds, err);
    if (!rc) rc = add_host_output(r, "vae.encode.logvar", logvar, 4, ds, err);
    if (!rc) rc = add_host_output(r, "vae.encode.std", stdev, 4, ds, err);
    free(buf);
    return rc;
}

static int run_vae(fwd_run *r, int encode, cnet_error *err) {
    const st_entry *x;
    int rc =
        mio_need(r->in, encode ? "vae.encode.input" : "vae.decode.input", CNET_F32, 4, &x, err);
    if (rc) return rc;
    vae_model m;
    if ((rc = vae_open(&m, &r->be, r->dir, err))) return rc;
    const int B = (int)x->view.shape[0], C = (int)x->view.shape[1], H = (int)x->view.shape[2],
              W = (int)x->view.shape[3], f = vae_factor(&m), Lc = m.cfg.latent_channels;
    const int want_c = encode ? m.cfg.in_channels : Lc;
    if (C != want_c || (encode && (H % f || W % f)))
        rc = cnet_fail(err, CNET_EINVAL,
                       "%s: '%s' has %d channels and size %dx%d; the VAE wants %d channels%s%d",
                       r->in->path, x->name, C, H, W, want_c,
                       encode ? " and a size divisible by " : ", any size; factor ", f);
    const int h = encode ? H / f : H, w = encode ? W / f : W;
    float *in = rc ? NULL : mio_upload(&r->be, x, err);
    const size_t out_n =
        encode ? (size_t)B * h * w * 2 * Lc : (size_t)B * H * f * W * f * m.cfg.out_channels;
    float *out = rc ? NULL : r->be.alloc(&r->be, (out_n + 1) * sizeof(float));
    if (!rc && (!in || !out)) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = scratch(r, vae_scratch_bytes(&m, B, h * f, w * f), err);
    if (!rc && encode) {
        rc = vae_encode(&m, &r->scratch, out, in, B, H, W, err);
        const int64_t ms[4] = {B, 2 * Lc, h, w};
        if (!rc) rc = add_output(r, "vae.encode.moments", out, 4, ms, err);
        if (!rc) rc = add_distribution(r, r->out.t[r->out.n - 1].data, ms, err);
    } else if (!rc) {
        rc = vae_decode(&m, &r->scratch, out, in, B, H, W, err);
        const int64_t os[4] = {B, m.cfg.out_channels, H * f, W * f};
        if (!rc) rc = add_output(r, "vae.decode.output", out, 4, os, err);
    }
    if (in) r->be.free(&r->be, in);
    if (out) r->be.free(&r->be, out);
    vae_free(&m);
    return rc;
}

/* The timestep input "<stem>.in.<t>": --timestep's, or the only one present. */
static int pick_timesteps(const fwd_run *r, const fwd_args *a, const char *stem, int B, float *t,
                          cnet_error *err) {
    char name[FORWARD_NAME_MAX], found[FORWARD_NAME_MAX] = "";
    int n_found = 0;
    for (size_t i = 0; i < sizeof timestep_names / sizeof timestep_names[0]; i++) {
        if (a->timestep && strcmp(a->timestep, timestep_names[i]) != 0) continue;
        snprintf(name, sizeof name, "%s.in.%s", stem, timestep_names[i]);
        if (!st_find(r->in, name)) continue;
        n_found++;
        snprintf(found, sizeof found, "%s", name);
    }
    if (n_found != 1)
        return cnet_fail(
            err, CNET_EINVAL, "%s: %s timestep input %s%s.in.t_batch, t_scalar or t_float%s",
            r->in->path, n_found ? "more than one" : "no", n_found ? "among " : "(looked for ",
            stem, n_found ? "; pick one with --timestep" : ")");
    return mio_timesteps(r->in, found, B, t, err);
}

/* Frees the device buffers of a list (NULL entries skipped). */
static void free_all(fwd_run *r, float **bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i]) r->be.free(&r->be, bufs[i]);
}

static int run_unet(fwd_run *r, const fwd_args *a, cnet_error *err) {
    const st_entry *xs, *ehs;
    int rc;
    if ((rc = mio_need(r->in, "unet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(r->in, "unet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    float t[MIO_MAX_BATCH];
    if ((rc = pick_timesteps(r, a, "unet", B, t, err))) return rc;
    unet_model m;
    if ((rc = unet_open(&m, &r->be, r->dir, err))) return rc;
    unet_sizes s;
    float *bufs[UNET_MAX_SKIPS + 4] = {0}; /* residuals, mid, sample, text, out */
    float **res = bufs, **mid = &bufs[UNET_MAX_SKIPS], **x = mid + 1, **text = mid + 2,
          **out = mid + 3;
    const int Cout = m.enc.cfg.out_channels;
    if (!(rc = unet_encoder_sizes(&m.enc, B, h, w, &s, err)) && (int)ehs->view.shape[0] != B)
        rc = cnet_fail(err, CNET_EINVAL, "%s: encoder_hidden_states batch %lld, sample batch %d",
                       r->in->path, (long long)ehs->view.shape[0], B);
    const int with_res = st_find(r->in, "unet.in.mid_residual") != NULL;
    for (int i = 0; with_res && i < s.n_skips && !rc; i++) {
        char name[FORWARD_NAME_MAX];
        const st_entry *e;
        snprintf(name, sizeof name, "unet.in.down_residual.%d", i);
        if (!(rc = mio_need(r->in, name, CNET_F32, 4, &e, err)) &&
            cnet_tensor_numel(&e->view) != (int64_t)s.skip_floats[i])
            rc = cnet_fail(err, CNET_EINVAL, "%s: '%s' has %lld values; skip %d has %zu",
                           r->in->path, name, (long long)cnet_tensor_numel(&e->view), i,
                           s.skip_floats[i]);
        if (!rc && !(res[i] = mio_upload(&r->be, e, err))) rc = CNET_ENOMEM;
    }
    const st_entry *mr = NULL;
    if (with_res && !rc && !(rc = mio_need(r->in, "unet.in.mid_residual", CNET_F32, 4, &mr, err)) &&
        cnet_tensor_numel(&mr->view) != (int64_t)s.mid_floats)
        rc = cnet_fail(err, CNET_EINVAL, "%s: 'unet.in.mid_residual' has %lld values, want %zu",
                       r->in->path, (long long)cnet_tensor_numel(&mr->view), s.mid_floats);
    if (mr && !rc && !(*mid = mio_upload(&r->be, mr, err))) rc = CNET_ENOMEM;
    if (!rc && (!(*x = mio_upload(&r->be, xs, err)) || !(*text = mio_upload(&r->be, ehs, err))))
        rc = CNET_ENOMEM;
    if (!rc && !(*out = r->be.alloc(&r->be, (size_t)B * h * w * Cout * sizeof(float))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = scratch(r, unet_scratch_bytes(&m, B, h, w, Nt), err);
    if (!rc)
        rc = unet_forward(&m, &r->scratch, *out, *x, t, *text,
                          with_res ? (const float *const *)res : NULL, *mid, B, h, w, Nt, NULL,
                          NULL, err);
    const int64_t os[4] = {B, Cout, h, w};
    if (!rc) rc = add_output(r, "unet.out", *out, 4, os, err);
    free_all(r, bufs, UNET_MAX_SKIPS + 4);
    unet_free(&m);
    return rc;
}

static int run_controlnet(fwd_run *r, const fwd_args *a, cnet_error *err) {
    const st_entry *xs, *ehs, *cond;
    int rc;
    if ((rc = mio_need(r->in, "controlnet.in.sample", CNET_F32, 4, &xs, err)) ||
        (rc = mio_need(r->in, "controlnet.in.encoder_hidden_states", CNET_F32, 3, &ehs, err)) ||
        (rc = mio_need(r->in, "controlnet.in.controlnet_cond", CNET_F32, 4, &cond, err)))
        return rc;
    const int B = (int)xs->view.shape[0], h = (int)xs->view.shape[2], w = (int)xs->view.shape[3];
    const int Nt = (int)ehs->view.shape[1];
    float t[MIO_MAX_BATCH];
    if ((rc = pick_timesteps(r, a, "controlnet", B, t, err))) return rc;
    controlnet_model m;
    if ((rc = controlnet_open(&m, &r->be, r->dir, err))) return rc;
    const int f = controlnet_image_factor(&m);
    unet_sizes s;
    float *bufs[UNET_MAX_SKIPS + 4] = {0}; /* down, mid, sample, text, cond */
    float **down = bufs, **mid = &bufs[UNET_MAX_SKIPS], **x = mid + 1, **text = mid + 2,
          **c = mid + 3;
    if (!(rc = unet_encoder_sizes(&m.enc, B, h, w, &s, err)) &&
        (cond->view.shape[0] != B || cond->view.shape[1] != m.cond_channels ||
         cond->view.shape[2] != (int64_t)h * f || cond->view.shape[3] != (int64_t)w * f ||
         ehs->view.shape[0] != B))
        rc = cnet_fail(err, CNET_EINVAL,
                       "%s: controlnet_cond must be [%d,%d,%d,%d] for a [%d,..,%d,%d] sample "
                       "(and encoder_hidden_states of batch %d)",
                       r->in->path, B, m.cond_channels, h * f, w * f, B, h, w, B);
    for (int i = 0; i < s.n_skips && !rc; i++)
        if (!(down[i] = r->be.alloc(&r->be, s.skip_floats[i] * sizeof(float))))
            rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc && !(*mid = r->be.alloc(&r->be, s.mid_floats * sizeof(float))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc && (!(*x = mio_upload(&r->be, xs, err)) || !(*text = mio_upload(&r->be, ehs, err)) ||
                !(*c = mio_upload(&r->be, cond, err))))
        rc = CNET_ENOMEM;
    if (!rc) rc = scratch(r, controlnet_scratch_bytes(&m, B, h, w, Nt), err);
    if (!rc)
        rc = controlnet_forward(&m, &r->scratch, down, *mid, *x, *c, t, *text, a->scale,
                                a->guess_mode, B, h, w, Nt, NULL, NULL, err);
    for (int i = 0; i < s.n_skips && !rc; i++) {
        char name[FORWARD_NAME_MAX];
        snprintf(name, sizeof name, "controlnet.down.%d", i);
        const int64_t C = (int64_t)(s.skip_floats[i] / ((size_t)B * s.skip_h[i] * s.skip_w[i]));
        const int64_t ds[4] = {B, C, s.skip_h[i], s.skip_w[i]};
        rc = add_output(r, name, down[i], 4, ds, err);
    }
    const int64_t ms[4] = {B, m.enc.cfg.block_out_channels[m.enc.cfg.n_blocks - 1], s.mid_h,
                           s.mid_w};
    if (!rc) rc = add_output(r, "controlnet.mid", *mid, 4, ms, err);
    free_all(r, bufs, UNET_MAX_SKIPS + 4);
    controlnet_free(&m);
    return rc;
}

static int write_outputs(const fwd_run *r, const char *path, cnet_error *err) {
    st_write_item items[FORWARD_MAX_OUTPUTS];
    for (int i = 0; i < r->out.n; i++) items[i].name = r->out.names[i], items[i].view = r->out.t[i];
    const char *key = "format", *value = "pt";
    return st_write(path, items, r->out.n, &key, &value, 1, err);
}

static int parse_args(fwd_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->component = C_COUNT;
    a->scale = 1.0f;
    a->device = "cpu";
    const char *comp = NULL;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        double scale = 1.0;
        int rc = 0;
        if (cli_is_help(o)) {
            usage(stdout);
            return 1;
        } else if (cli_flag(o, "guess-mode", NULL)) {
            a->guess_mode = 1;
        } else if (cli_take(argc, argv, &i, "model", &a->model, &err)) {
            rc = !a->model;
        } else if (cli_take(argc, argv, &i, "device", &a->device, &err)) {
            rc = !a->device;
        } else if (cli_take(argc, argv, &i, "component", &comp, &err)) {
            rc = !comp;
        } else if (cli_take(argc, argv, &i, "inputs", &a->inputs, &err)) {
            rc = !a->inputs;
        } else if (cli_take(argc, argv, &i, "out", &a->out, &err)) {
            rc = !a->out;
        } else if (cli_take(argc, argv, &i, "timestep", &a->timestep, &err)) {
            rc = !a->timestep;
        } else if (cli_take(argc, argv, &i, "clip-skip", &v, &err)) {
            rc = !v || cli_int(o, v, 0, FORWARD_MAX_CLIP_SKIP, &a->clip_skip, &err);
        } else if (cli_take(argc, argv, &i, "conditioning-scale", &v, &err)) {
            rc = !v || cli_double(o, v, -FLT_MAX, FLT_MAX, &scale, &err);
            a->scale = (float)scale;
        } else {
            fprintf(stderr, "cnet forward: unknown option '%s'\n", o);
            usage(stderr);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "cnet forward: %s\n", err.msg);
            return 2;
        }
    }
    for (int c = 0; comp && c < C_COUNT; c++)
        if (strcmp(comp, component_names[c]) == 0) a->component = (fwd_component)c;
    if (!a->model || !a->inputs || !a->out || a->component == C_COUNT) {
        fprintf(stderr,
                "cnet forward: need --model, --component (%s|%s|%s|%s|%s), --inputs and "
                "--out\n",
                component_names[0], component_names[1], component_names[2], component_names[3],
                component_names[4]);
        return 2;
    }
    const fwd_component c = a->component;
    const char *misplaced = a->clip_skip && c != C_TEXT ? "--clip-skip"
                            : (a->guess_mode || a->scale != 1.0f) && c != C_CONTROLNET
                                ? "--conditioning-scale / --guess-mode"
                            : a->timestep && c != C_UNET && c != C_CONTROLNET ? "--timestep"
                                                                              : NULL;
    if (misplaced) {
        fprintf(stderr, "cnet forward: %s does not apply to --component %s\n", misplaced,
                component_names[c]);
        return 2;
    }
    if (a->timestep && strcmp(a->timestep, "t_batch") && strcmp(a->timestep, "t_scalar") &&
        strcmp(a->timestep, "t_float")) {
        fprintf(stderr, "cnet forward: --timestep wants t_batch, t_scalar or t_float\n");
        return 2;
    }
    return 0;
}

int cmd_forward(int argc, char **argv) {
    fwd_args a;
    int status = parse_args(&a, argc, argv);
    if (status) return status == 1 ? 0 : status;
    fwd_run r;
    memset(&r, 0, sizeof r);
    cnet_error err = {0};
    st_file in;
    int rc = st_open(&in, a.inputs, &err);
    if (rc) {
        fprintf(stderr, "cnet forward: %s\n", err.msg);
        return 1;
    }
    r.in = &in;
    if (snprintf(r.dir, sizeof r.dir, "%s/%s", a.model, component_dirs[a.component]) >=
        (int)sizeof r.dir)
        rc = cnet_fail(&err, CNET_ELIMIT, "%s: path too long", a.model);
    char note[320] = "";
    if (!rc && (rc = cnet_backend_open(&r.be, a.device, note, sizeof note, &err)) == CNET_EINVAL) {
        fprintf(stderr, "cnet forward: %s\n", err.msg);
        st_close(&in);
        return 2;
    }
    if (note[0]) fprintf(stderr, "cnet forward: %s\n", note);
    if (!rc) {
        switch (a.component) {
        case C_TEXT:
            rc = run_text(&r, &a, &err);
            break;
        case C_VAE_ENCODE:
        case C_VAE_DECODE:
            rc = run_vae(&r, a.component == C_VAE_ENCODE, &err);
            break;
        case C_UNET:
            rc = run_unet(&r, &a, &err);
            break;
        case C_CONTROLNET:
            rc = run_controlnet(&r, &a, &err);
            break;
        case C_COUNT:
            break;
        }
        if (!rc) rc = cnet_backend_status(&r.be, &err); /* no outputs from a failed device */
        if (!rc) rc = write_outputs(&r, a.out, &err);
        cnet_arena_free(&r.scratch);
        cnet_backend_free(&r.be);
    }
    for (int i = 0; i < r.out.n; i++) free(r.out.t[i].data);
    st_close(&in);
    if (rc) {
        fprintf(stderr, "cnet forward: %s\n", err.msg);
        return 1;
    }
    printf("cnet forward: %s -> %s (%d tensors)\n", component_names[a.component], a.out, r.out.n);
    return 0;
}
