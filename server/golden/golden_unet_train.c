/* Golden check of goldens-unet-train/train_unet.safetensors: two
 * optimisation steps of diffusers' examples/text_to_image/
 * train_text_to_image.py (v0.27.2) on the model folder's UNet, the whole
 * UNet trained, through the trainer's own step code (engine/train/
 * train_step.h without a ControlNet, train_noise.h, ema.h).
 *
 * Latents per step from the VAE (mean + std * train.in.vae_noise.<s>, times
 * scaling_factor), text states, then for every variant of the metadata
 * `train.variants` (each entry's prediction_type, snr_gamma, noise_offset
 * and whether it stores every tensor: `full`) a fresh UNet and EMA from the
 * model folder's weights, and
 * per step: the offset noise, noisy latents, target, model prediction,
 * dloss/dpred, Min-SNR weights, loss, the per-tensor statistics of the
 * gradients (before clipping), of the update (param - initial weight) and
 * of the EMA (ema - initial weight), the gradient norm and clip
 * coefficient, the EMA decay; for the variants that store them, every
 * gradient and parameter of step 0 and the subset tensors of step 1 and
 * of the EMA.
 *
 * AdamW settings come from the metadata `train.args` (the script's flag
 * names); EMAModel's from `train.ema`. Parameters after s+1 Adam steps are
 * compared with an absolute tolerance of (s+1)*lr (the README: elements
 * with |clip_coef*grad| ~ eps are ill-conditioned in the first step);
 * everything else with the recorded float32-vs-float64 figure x10. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/scheduler.h"
#include "engine/train/ema.h"
#include "engine/train/train_noise.h"
#include "engine/train/train_step.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

#define UNET_TRAIN_STEPS 2
/* Per-tensor statistics the golden stores (README: stats.<q>.<s>.<stat>). */
#define N_STATS 4
static const char *const stat_names[N_STATS] = {"sum", "sumsq", "absmax", "wsum"};

/* The optimiser and what each variant changes. */
typedef struct unet_train_args {
    train_adamw opt;
    ema_settings ema;
} unet_train_args;

typedef struct variant_args {
    char tag[GOLDEN_RUN_MAX + 1];
    train_prediction prediction;
    float snr_gamma;
    double noise_offset;
    int full; /* stores every gradient and parameter of step 0 */
} variant_args;

static double json_num(const json_t *o, const char *key, double fallback) {
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

static int read_args(const st_file *f, unet_train_args *a, cnet_error *err) {
    json_t *j = json_loads(st_meta(f, "train.args") ? st_meta(f, "train.args") : "", 0, NULL);
    json_t *e = json_loads(st_meta(f, "train.ema") ? st_meta(f, "train.ema") : "", 0, NULL);
    int rc = 0;
    if (!json_is_object(j) || !json_is_object(e))
        rc = cnet_fail(err, CNET_EFORMAT, "%s: metadata train.args / train.ema missing", f->path);
    if (!rc) {
        a->opt = (train_adamw){.lr = (float)json_num(j, "learning_rate", 1e-4),
                               .beta1 = (float)json_num(j, "adam_beta1", 0.9),
                               .beta2 = (float)json_num(j, "adam_beta2", 0.999),
                               .eps = (float)json_num(j, "adam_epsilon", 1e-8),
                               .weight_decay = (float)json_num(j, "adam_weight_decay", 1e-2),
                               .max_grad_norm = (float)json_num(j, "max_grad_norm", 1.0)};
        const json_t *init = json_object_get(e, "EMAModel_init");
        a->ema = ema_default_settings();
        a->ema.decay = json_num(init, "decay", a->ema.decay);
        a->ema.min_decay = json_num(init, "min_decay", a->ema.min_decay);
        a->ema.update_after_step = (long)json_num(init, "update_after_step", 0);
        a->ema.use_ema_warmup = json_is_true(json_object_get(init, "use_ema_warmup"));
        a->ema.inv_gamma = json_num(init, "inv_gamma", a->ema.inv_gamma);
        a->ema.power = json_num(init, "power", a->ema.power);
    }
    json_decref(j);
    json_decref(e);
    return rc;
}

/* Variant i of train.variants; the scheduler config decides the prediction
 * type when the variant does not override it (--prediction_type). */
static int read_variant(const json_t *list, size_t i, const cnet_sched_config *scfg,
                        variant_args *v, cnet_error *err) {
    const json_t *o = json_array_get(list, i);
    const char *tag = json_string_value(json_object_get(o, "tag"));
    if (!tag || strlen(tag) > GOLDEN_RUN_MAX)
        return cnet_fail(err, CNET_EFORMAT, "train.variants[%zu]: no tag of at most %d bytes", i,
                         GOLDEN_RUN_MAX);
    memset(v, 0, sizeof *v);
    snprintf(v->tag, sizeof v->tag, "%s", tag);
    const char *pt = json_string_value(json_object_get(o, "prediction_type"));
    if (pt && strcmp(pt, "v_prediction") != 0 && strcmp(pt, "epsilon") != 0)
        return cnet_fail(err, CNET_EFORMAT, "train.variants[%zu]: prediction_type '%s'", i, pt);
    v->prediction = pt ? (strcmp(pt, "v_prediction") == 0 ? TRAIN_PRED_V : TRAIN_PRED_EPSILON)
                       : (scfg->prediction_type == CNET_PRED_V ? TRAIN_PRED_V : TRAIN_PRED_EPSILON);
    v->snr_gamma = (float)json_num(o, "snr_gamma", 0);
    v->noise_offset = json_num(o, "noise_offset", 0);
    v->full = json_is_true(json_object_get(o, "full"));
    return 0;
}

/* Every tensor of p in PyTorch layout, at its offset in one host block. */
static float *read_all(const cnet_params *p) {
    size_t max_numel = 1;
    for (int i = 0; i < p->n; i++)
        if (p->items[i].numel > max_numel) max_numel = p->items[i].numel;
    float *all = malloc((p->total ? p->total : 1) * sizeof(float));
    float *tmp = malloc(max_numel * sizeof(float));
    for (int i = 0; i < p->n && all && tmp; i++) params_read(p, i, all + p->items[i].offset, tmp);
    free(tmp);
    if (!tmp) free(all);
    return tmp ? all : NULL;
}

/* Per-tensor statistics (double) of x = p - base (base NULL: p; both from
 * read_all), in the order of order (the metadata train.param_names:
 * PyTorch's named_parameters()), compared with stats.<q>.<s>.<stat>. A
 * name p does not have counts as a failure. */
static void compare_stats(golden_ctx *ctx, const st_file *f, const json_t *order, const char *v,
                          const char *q, int s, const cnet_params *p, const float *base) {
    const int P = (int)json_array_size(order);
    float *x = read_all(p), *stats = calloc((size_t)N_STATS * (P ? P : 1), sizeof(float));
    for (int i = 0; i < P && x && stats; i++) {
        const char *pname = json_string_value(json_array_get(order, (size_t)i));
        const cnet_param *item = pname ? params_find(p, pname) : NULL;
        if (!item) {
            golden_report(ctx, pname ? pname : "(not a string)", "-", INFINITY, 0, 0,
                          "in train.param_names but not a UNet parameter");
            continue;
        }
        const size_t n = item->numel, o = item->offset;
        double sum = 0, sumsq = 0, absmax = 0, wsum = 0;
        for (size_t k = 0; k < n; k++) {
            const double d = base ? (double)x[o + k] - (double)base[o + k] : (double)x[o + k];
            sum += d, sumsq += d * d, wsum += d * (double)k / (double)n;
            absmax = fabs(d) > absmax ? fabs(d) : absmax;
        }
        const double st[N_STATS] = {sum, sumsq, absmax, wsum};
        for (int k = 0; k < N_STATS; k++) stats[(size_t)k * P + i] = (float)st[k];
    }
    for (int k = 0; k < N_STATS && x && stats; k++) {
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "train.%s.stats.%s.%d.%s", v, q, s, stat_names[k]);
        cnet_tensor t = {CNET_F32, 1, {P}, stats + (size_t)k * P, -1};
        golden_compare(ctx, f, name, &t);
    }
    free(stats), free(x);
}

/* The parameters of p the file stores under prefix (the subset tensors). */
static void compare_present(golden_ctx *ctx, const st_file *f, const cnet_params *p,
                            const char *prefix, double atol) {
    size_t max_numel = 1;
    for (int i = 0; i < p->n; i++)
        if (p->items[i].numel > max_numel) max_numel = p->items[i].numel;
    float *host = malloc(max_numel * sizeof(float)), *tmp = malloc(max_numel * sizeof(float));
    for (int i = 0; i < p->n && host && tmp; i++) {
        const cnet_param *q = &p->items[i];
        char name[GOLDEN_NAME_MAX + PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix, q->name);
        if (!st_find(f, name)) continue;
        params_read(p, i, host, tmp);
        cnet_tensor t = {CNET_F32, q->ndim, {0}, host, -1};
        memcpy(t.shape, q->shape, sizeof q->shape);
        golden_compare_atol(ctx, f, name, &t, atol);
    }
    free(host), free(tmp);
}

static void compare_scalar(golden_ctx *ctx, const st_file *f, const char *name, float value) {
    cnet_tensor t = {CNET_F32, 0, {0}, &value, -1};
    golden_compare(ctx, f, name, &t);
}

static void compare_vec(golden_ctx *ctx, const st_file *f, const char *name, const float *v,
                        int B) {
    cnet_tensor t = {CNET_F32, 1, {B}, (float *)v, -1};
    golden_compare(ctx, f, name, &t);
}

/* What every variant shares. */
typedef struct shared_inputs {
    golden_env env;
    sched ddpm;
    cnet_sched_config scfg;
    float *latents[UNET_TRAIN_STEPS], *text;
    int B, h, w, Lc, Nt;
    unet_train_args args;
    json_t *param_names; /* the statistics' order */
} shared_inputs;

/* One step's noise (with the variant's offset) on the device. */
static int step_noise(golden_ctx *ctx, shared_inputs *in, const st_file *f, const variant_args *v,
                      int s, float **noise, cnet_error *err) {
    char name[GOLDEN_NAME_MAX];
    const st_entry *ne, *oe;
    snprintf(name, sizeof name, "train.in.noise.%d", s);
    int rc = mio_need(f, name, CNET_F32, 4, &ne, err);
    if (rc || !(*noise = mio_upload(&in->env.be, ne, err))) return rc ? rc : CNET_ENOMEM;
    if (v->noise_offset == 0) return 0;
    snprintf(name, sizeof name, "train.in.offset_noise.%d", s);
    if ((rc = mio_need(f, name, CNET_F32, 4, &oe, err))) return rc;
    float *draw = mio_upload(&in->env.be, oe, err);
    if (!draw) return err ? err->code : CNET_ENOMEM;
    train_noise_offset(&in->env.be, *noise, draw, v->noise_offset, in->B, in->h * in->w, in->Lc);
    in->env.be.free(&in->env.be, draw);
    snprintf(name, sizeof name, "train.%s.noise.%d", v->tag, s);
    const int64_t ls[4] = {in->B, in->Lc, in->h, in->w};
    golden_compare_nhwc(ctx, &in->env, f, name, *noise, 4, ls);
    return 0;
}

/* The step's per-sample values: SNR (compute_snr) and the loss weights. */
static void compare_snr(golden_ctx *ctx, shared_inputs *in, const st_file *f, const variant_args *v,
                        const train_step *t, const int64_t *ts, int s) {
    char name[GOLDEN_NAME_MAX];
    float snr[TRAIN_MAX_BATCH], w[TRAIN_MAX_BATCH];
    for (int b = 0; b < in->B; b++) {
        const float acp = in->ddpm.alphas_cumprod[ts[b]];
        const float alpha = sqrtf(acp), sigma = sqrtf(1.0f - acp);
        snr[b] = (alpha / sigma) * (alpha / sigma);
    }
    in->env.be.download(&in->env.be, w, t->weights, (size_t)in->B * sizeof(float));
    snprintf(name, sizeof name, "train.%s.snr.%d", v->tag, s);
    compare_vec(ctx, f, name, snr, in->B);
    snprintf(name, sizeof name, "train.%s.loss_weights.%d", v->tag, s);
    compare_vec(ctx, f, name, w, in->B);
}

static int run_variant(golden_ctx *ctx, shared_inputs *in, const st_file *f, const variant_args *v,
                       cnet_error *err) {
    char dir[PATH_MAX + 16], name[GOLDEN_NAME_MAX];
    cnet_backend *be = &in->env.be;
    const float lr = in->args.opt.lr;
    snprintf(dir, sizeof dir, "%s/unet", ctx->model_dir);
    const train_step_config cfg = {.prediction = v->prediction,
                                   .snr_gamma = v->snr_gamma,
                                   .B = in->B,
                                   .h = in->h,
                                   .w = in->w,
                                   .Nt = in->Nt};
    unet_model unet;
    train_step t;
    ema_model ema;
    memset(&t, 0, sizeof t), memset(&ema, 0, sizeof ema);
    int rc = unet_open(&unet, be, dir, err);
    if (!rc) rc = params_own(&unet.params, err); /* trained: not the file's mapping */
    if (rc) return rc;
    float *noise = NULL, *initial = read_all(&unet.params);
    if (!initial) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = ema_init(&ema, &unet.params, &in->args.ema, err);
    if (!rc) rc = train_step_init(&t, &unet, NULL, &in->ddpm, &cfg, err);
    const int64_t ls[4] = {in->B, in->Lc, in->h, in->w};
    for (int s = 0; s < UNET_TRAIN_STEPS && !rc; s++) {
        const st_entry *te;
        snprintf(name, sizeof name, "train.in.timesteps.%d", s);
        if ((rc = mio_need(f, name, CNET_I64, 1, &te, err))) break;
        const int64_t *ts = (const int64_t *)te->view.data;
        if (noise) be->free(be, noise), noise = NULL;
        if ((rc = step_noise(ctx, in, f, v, s, &noise, err))) break;
        float loss, grad_norm;
        if ((rc = train_step_accumulate(&t, in->B, in->latents[s], noise, ts, in->text, NULL, 1.0f,
                                        &loss, err)) ||
            (rc = cnet_backend_status(be, err)))
            break;
        const char *acts[] = {"noisy_latents", "target", "model_pred", "dloss_dpred"};
        const float *bufs[] = {t.noisy, t.target, t.pred, t.dpred};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "train.%s.%s.%d", v->tag, acts[k], s);
            golden_compare_nhwc(ctx, &in->env, f, name, bufs[k], 4, ls);
        }
        if (v->snr_gamma > 0) compare_snr(ctx, in, f, v, &t, ts, s);
        snprintf(name, sizeof name, "train.%s.loss.%d", v->tag, s);
        compare_scalar(ctx, f, name, loss);
        compare_stats(ctx, f, in->param_names, v->tag, "grad", s, &t.grads, NULL);
        snprintf(name, sizeof name, "train.%s.grad.%d.", v->tag, s);
        if (v->full && s == 0) golden_train_params(ctx, f, &t.grads, name, 0);
        if (v->full && s > 0) compare_present(ctx, f, &t.grads, name, 0);
        if (train_step_optimize(&t, &in->args.opt, s + 1, NULL, &grad_norm) < 0) {
            rc = cnet_backend_status(be, err);
            break;
        }
        snprintf(name, sizeof name, "train.%s.grad_norm.%d", v->tag, s);
        compare_scalar(ctx, f, name, grad_norm);
        /* torch: clamp(max_norm / (total + 1e-6), max=1) in float32 */
        float coef = in->args.opt.max_grad_norm / (grad_norm + 1e-6f);
        snprintf(name, sizeof name, "train.%s.clip_coef.%d", v->tag, s);
        compare_scalar(ctx, f, name, coef < 1.0f ? coef : 1.0f);
        compare_stats(ctx, f, in->param_names, v->tag, "update", s, &unet.params, initial);
        snprintf(name, sizeof name, "train.%s.param_after.%d.", v->tag, s);
        if (v->full && s == 0) golden_train_params(ctx, f, &unet.params, name, (s + 1) * lr);
        if (v->full && s > 0) compare_present(ctx, f, &unet.params, name, (s + 1) * lr);
        ema_step(&ema, &unet.params);
        snprintf(name, sizeof name, "train.%s.ema_decay.%d", v->tag, s);
        compare_scalar(ctx, f, name, (float)ema.cur_decay);
        compare_stats(ctx, f, in->param_names, v->tag, "ema", s, &ema.shadow, initial);
        snprintf(name, sizeof name, "train.%s.ema.%d.", v->tag, s);
        if (v->full) compare_present(ctx, f, &ema.shadow, name, (s + 1) * lr);
    }
    if (noise) be->free(be, noise);
    free(initial);
    train_step_free(&t);
    ema_free(&ema);
    unet_free(&unet);
    return rc;
}

int golden_check_train_unet(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    char path[PATH_MAX + 64], noise_name[GOLDEN_NAME_MAX], lat_name[GOLDEN_NAME_MAX];
    shared_inputs in;
    memset(&in, 0, sizeof in);
    int rc = golden_env_init(&in.env, ctx, err);
    if (rc) return rc;
    json_t *variants = NULL;
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", ctx->model_dir);
    if ((rc = read_args(f, &in.args, err)) ||
        (rc = cnet_sched_config_load(&in.scfg, path, CNET_SCHED_DDPM, err)) ||
        (rc = sched_init(&in.ddpm, &in.env.be, &in.scfg, 0, err)))
        goto done;
    for (int s = 0; s < UNET_TRAIN_STEPS && !rc; s++) {
        snprintf(noise_name, sizeof noise_name, "train.in.vae_noise.%d", s);
        snprintf(lat_name, sizeof lat_name, "train.latents.%d", s);
        rc = golden_train_latents_from(ctx, &in.env, f, noise_name, lat_name, &in.latents[s], &in.B,
                                       &in.h, &in.w, &in.Lc, err);
    }
    if (!rc) rc = golden_train_text(ctx, &in.env, f, &in.text, &in.Nt, err);
    if (rc) goto done;
    const char *names = st_meta(f, "train.param_names");
    in.param_names = names ? json_loads(names, 0, NULL) : NULL;
    if (!json_is_array(in.param_names)) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: metadata train.param_names is not a list", f->path);
        goto done;
    }
    const char *meta = st_meta(f, "train.variants");
    variants = meta ? json_loads(meta, 0, NULL) : NULL;
    if (!json_is_array(variants) || json_array_size(variants) == 0) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: metadata train.variants is not a list", f->path);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(variants) && !rc; i++) {
        variant_args v;
        if (!(rc = read_variant(variants, i, &in.scfg, &v, err)))
            rc = run_variant(ctx, &in, f, &v, err);
    }
done:
    json_decref(variants);
    json_decref(in.param_names);
    for (int s = 0; s < UNET_TRAIN_STEPS; s++)
        if (in.latents[s]) in.env.be.free(&in.env.be, in.latents[s]);
    if (in.text) in.env.be.free(&in.env.be, in.text);
    sched_free(&in.ddpm);
    cnet_sched_config_free(&in.scfg);
    golden_env_free(&in.env);
    return rc;
}
