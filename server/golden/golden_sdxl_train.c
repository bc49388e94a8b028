/* Golden check of goldens-sdxl/train_sdxl.safetensors: two optimisation
 * steps of diffusers v0.27.2 examples/controlnet/train_controlnet_sdxl.py
 * through the trainer's own code — the captions of metadata
 * "train.captions" encoded by both text encoders (engine/train/train_sdxl.h:
 * prompt_embeds, text_embeds), the time ids built from metadata
 * "train.args" (resolution, crops_coords_top_left_h/_w), latents from the
 * VAE (mean + std * the recorded noise), the captions' ids of both
 * tokenizers (train.in.input_ids_<k>), then train_step with the added
 * conditions from the fixture's ControlNet: noisy latents, target, model
 * prediction, ControlNet residuals, loss, every gradient, the gradient norm
 * and the parameters after clip_grad_norm_ + AdamW (atol 1e-4, the README's
 * rule for the first Adam step); step 1 through its loss and gradient norm.
 *
 * Everything is read from the fixture (sizes, captions, arguments, the
 * noise scheduler's prediction_type), nothing about it is built in. Not
 * here: the data pipeline (images come as train.in.*_pixel_values; the
 * transforms are goldens-sdxl/preprocess_sdxl's). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pipeline/sd_base.h"
#include "engine/sched/scheduler.h"
#include "engine/train/train_sdxl.h"
#include "engine/train/train_step.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

#define SDXL_TRAIN_STEPS 2
/* The README's absolute tolerance of train.param_after.0.* */
#define SDXL_PARAM_AFTER_ATOL 1e-4
/* Captions one golden batch may hold (train.captions). */
#define SDXL_TRAIN_MAX_CAPTIONS 64

typedef struct sdxl_run {
    golden_env env;
    sd_base base;
    int have_base;
    train_sdxl sx;
    cnet_sched_config scfg;
    sched ddpm;
    controlnet_model cn;
    int have_cn;
    train_step ts;
    json_t *args, *captions;
    float *text, *text_embeds, *latents, *cond, *noise;
    float time_ids[SDXL_TRAIN_MAX_CAPTIONS * CNET_TIME_IDS];
    int B, h, w, L;
} sdxl_run;

static int meta_json(const st_file *f, const char *key, json_t **out, cnet_error *err) {
    const char *s = st_meta(f, key);
    json_error_t je;
    if (!s) return cnet_fail(err, CNET_EFORMAT, "%s: no metadata '%s'", f->path, key);
    if (!(*out = json_loads(s, 0, &je)))
        return cnet_fail(err, CNET_EFORMAT, "%s: metadata '%s': %s", f->path, key, je.text);
    return 0;
}

static int arg_int(const sdxl_run *r, const char *name, int *out, cnet_error *err) {
    json_t *v = json_object_get(r->args, name);
    if (!json_is_integer(v))
        return cnet_fail(err, CNET_EFORMAT, "train.args: no integer '%s'", name);
    *out = (int)json_integer_value(v);
    return 0;
}

static float arg_float(const sdxl_run *r, const char *name, float def) {
    json_t *v = json_object_get(r->args, name);
    return json_is_number(v) ? (float)json_number_value(v) : def;
}

/* train.in.input_ids_<k>: the captions through tokenizer k (1, 2), exact. */
static int compare_ids(golden_ctx *ctx, const st_file *f, tokenizer *tok, int k,
                       const char *const *caps, int B, cnet_error *err) {
    const int L = tokenizer_max_length(tok);
    int64_t *ids = malloc((size_t)B * L * sizeof *ids), *mask = malloc((size_t)L * sizeof *mask);
    int rc = ids && mask ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
    for (int b = 0; b < B && !rc; b++)
        rc = tokenizer_encode(tok, caps[b], strlen(caps[b]), ids + (size_t)b * L, mask, err);
    if (!rc) {
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "train.in.input_ids_%d", k);
        cnet_tensor t = {CNET_I64, 2, {B, L}, ids, -1};
        golden_compare(ctx, f, name, &t);
    }
    free(ids);
    free(mask);
    return rc;
}

/* prompt_embeds, text_embeds and time ids of the captions, compared. */
static int conditioning(golden_ctx *ctx, sdxl_run *r, const st_file *f, cnet_error *err) {
    cnet_backend *be = &r->env.be;
    const char *caps[SDXL_TRAIN_MAX_CAPTIONS];
    int rc, R = 0, ch = 0, cw = 0;
    if ((rc = meta_json(f, "train.args", &r->args, err)) ||
        (rc = meta_json(f, "train.captions", &r->captions, err)))
        return rc;
    r->B = (int)json_array_size(r->captions);
    if (r->B < 1 || r->B > SDXL_TRAIN_MAX_CAPTIONS)
        return cnet_fail(err, CNET_EFORMAT, "train.captions: %d captions (1..%d)", r->B,
                         SDXL_TRAIN_MAX_CAPTIONS);
    for (int b = 0; b < r->B; b++)
        if (!(caps[b] = json_string_value(json_array_get(r->captions, b))))
            return cnet_fail(err, CNET_EFORMAT, "train.captions[%d] is not a string", b);
    if ((rc = compare_ids(ctx, f, r->sx.models.tok, 1, caps, r->B, err)) ||
        (rc = compare_ids(ctx, f, r->sx.models.tok_2, 2, caps, r->B, err)))
        return rc;
    if ((rc = arg_int(r, "resolution", &R, err)) ||
        (rc = arg_int(r, "crops_coords_top_left_h", &ch, err)) ||
        (rc = arg_int(r, "crops_coords_top_left_w", &cw, err)))
        return rc;
    const train_sdxl *s = &r->sx;
    r->text = be->alloc(be, (size_t)r->B * s->L * s->D * sizeof(float));
    r->text_embeds = be->alloc(be, (size_t)r->B * s->P * sizeof(float));
    if (!r->text || !r->text_embeds) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    if ((rc = golden_env_scratch(&r->env, train_sdxl_scratch_bytes(s, r->B), err)) ||
        (rc = train_sdxl_encode(&r->sx, &r->env.scratch, caps, r->B, r->text, r->text_embeds,
                                err)) ||
        (rc = cnet_backend_status(be, err)))
        return rc;
    const int64_t es[3] = {r->B, s->L, s->D}, ps[2] = {r->B, s->P};
    golden_compare_nhwc(ctx, &r->env, f, "train.prompt_embeds", r->text, 3, es);
    golden_compare_nhwc(ctx, &r->env, f, "train.text_embeds", r->text_embeds, 2, ps);
    train_sdxl_time_ids(r->time_ids, r->B, R, ch, cw);
    cnet_tensor ids = {CNET_F32, 2, {r->B, CNET_TIME_IDS}, r->time_ids, -1};
    golden_compare(ctx, f, "train.time_ids", &ids);
    r->L = s->L;
    return 0;
}

static void compare_scalar(golden_ctx *ctx, const st_file *f, const char *name, float value) {
    cnet_tensor t = {CNET_F32, 0, {0}, &value, -1};
    golden_compare(ctx, f, name, &t);
}

/* The residuals, prediction, target and gradients of step 0. */
static void compare_step0(golden_ctx *ctx, sdxl_run *r, const st_file *f, int Lc) {
    char name[GOLDEN_NAME_MAX];
    const int64_t ls[4] = {r->B, Lc, r->h, r->w};
    golden_compare_nhwc(ctx, &r->env, f, "train.noisy_latents.0", r->ts.noisy, 4, ls);
    golden_compare_nhwc(ctx, &r->env, f, "train.target.0", r->ts.target, 4, ls);
    golden_compare_nhwc(ctx, &r->env, f, "train.model_pred.0", r->ts.pred, 4, ls);
    unet_sizes s;
    unet_encoder_sizes(&r->cn.enc, r->B, r->h, r->w, &s, NULL);
    for (int i = 0; i < s.n_skips; i++) {
        snprintf(name, sizeof name, "train.cn_down.0.%d", i);
        const int64_t ds[4] = {
            r->B, (int64_t)(s.skip_floats[i] / ((size_t)r->B * s.skip_h[i] * s.skip_w[i])),
            s.skip_h[i], s.skip_w[i]};
        golden_compare_nhwc(ctx, &r->env, f, name, r->ts.down[i], 4, ds);
    }
    const int64_t ms[4] = {r->B, r->cn.enc.cfg.block_out_channels[r->cn.enc.cfg.n_blocks - 1],
                           s.mid_h, s.mid_w};
    golden_compare_nhwc(ctx, &r->env, f, "train.cn_mid.0", r->ts.mid, 4, ms);
    golden_train_params(ctx, f, &r->ts.grads, "train.grad.", 0);
}

static int train_steps(golden_ctx *ctx, sdxl_run *r, const st_file *f, int Lc, cnet_error *err) {
    cnet_backend *be = &r->env.be;
    char name[GOLDEN_NAME_MAX];
    const train_adamw opt = {.lr = arg_float(r, "learning_rate", 1e-3f),
                             .beta1 = arg_float(r, "adam_beta1", 0.9f),
                             .beta2 = arg_float(r, "adam_beta2", 0.999f),
                             .eps = arg_float(r, "adam_epsilon", 1e-8f),
                             .weight_decay = arg_float(r, "adam_weight_decay", 1e-2f),
                             .max_grad_norm = arg_float(r, "max_grad_norm", 1.0f)};
    const unet_added_cond added = {.text_embeds = r->text_embeds, .time_ids = r->time_ids};
    int rc = 0;
    for (int step = 0; step < SDXL_TRAIN_STEPS && !rc; step++) {
        const st_entry *ne, *te;
        snprintf(name, sizeof name, "train.in.noise.%d", step);
        if ((rc = mio_need(f, name, CNET_F32, 4, &ne, err))) break;
        snprintf(name, sizeof name, "train.in.timesteps.%d", step);
        if ((rc = mio_need(f, name, CNET_I64, 1, &te, err))) break;
        if (te->view.shape[0] != r->B) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: %lld timesteps for %d captions", name,
                           (long long)te->view.shape[0], r->B);
            break;
        }
        if (r->noise) be->free(be, r->noise);
        if (!(r->noise = mio_upload(be, ne, err))) {
            rc = err ? err->code : CNET_ENOMEM;
            break;
        }
        float loss, grad_norm;
        if ((rc = train_step_accumulate_added(&r->ts, r->B, r->latents, r->noise,
                                              (const int64_t *)te->view.data, r->text, r->cond,
                                              &added, 1.0f, &loss, err)) ||
            (rc = cnet_backend_status(be, err)))
            break;
        if (step == 0) compare_step0(ctx, r, f, Lc);
        snprintf(name, sizeof name, "train.loss.%d", step);
        compare_scalar(ctx, f, name, loss);
        if (train_step_optimize(&r->ts, &opt, step + 1, NULL, &grad_norm) < 0) {
            rc = cnet_backend_status(be, err);
            break;
        }
        snprintf(name, sizeof name, "train.grad_norm.%d", step);
        compare_scalar(ctx, f, name, grad_norm);
        if (step == 0)
            golden_train_params(ctx, f, &r->cn.params, "train.param_after.0.",
                                SDXL_PARAM_AFTER_ATOL);
    }
    return rc;
}

static int run(golden_ctx *ctx, sdxl_run *r, const st_file *f, cnet_error *err) {
    char dir[PATH_MAX + 16];
    int rc, B, Lc;
    if ((rc = sd_base_open(&r->base, &r->env.be, ctx->model_dir, err))) return rc;
    r->have_base = 1;
    if ((rc = train_sdxl_open(&r->sx, &r->base, err))) return rc;
    if ((rc = conditioning(ctx, r, f, err))) return rc;
    if ((rc = golden_train_latents(ctx, &r->env, f, &r->latents, &B, &r->h, &r->w, &Lc, err)))
        return rc;
    if (B != r->B)
        return cnet_fail(err, CNET_EFORMAT, "%s: %d images for %d captions", f->path, B, r->B);
    const st_entry *ce;
    if ((rc = mio_need(f, "train.in.conditioning_pixel_values", CNET_F32, 4, &ce, err))) return rc;
    if (!(r->cond = mio_upload(&r->env.be, ce, err))) return err ? err->code : CNET_ENOMEM;
    if ((rc = sd_base_scheduler(&r->base, CNET_SCHED_DDPM, &r->scfg, err)) ||
        (rc = sched_init(&r->ddpm, &r->env.be, &r->scfg, 0, err)))
        return rc;
    if (r->scfg.prediction_type != CNET_PRED_EPSILON && r->scfg.prediction_type != CNET_PRED_V)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: the noise scheduler predicts neither epsilon nor v", ctx->model_dir);
    snprintf(dir, sizeof dir, "%s/controlnet", ctx->model_dir);
    if ((rc = controlnet_open(&r->cn, &r->env.be, dir, err))) return rc;
    r->have_cn = 1;
    const train_step_config cfg = {
        .prediction = r->scfg.prediction_type == CNET_PRED_V ? TRAIN_PRED_V : TRAIN_PRED_EPSILON,
        .B = r->B,
        .h = r->h,
        .w = r->w,
        .Nt = r->L};
    if ((rc = train_step_init(&r->ts, &r->base.unet, &r->cn, &r->ddpm, &cfg, err))) return rc;
    return train_steps(ctx, r, f, Lc, err);
}

int golden_check_train_sdxl(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    sdxl_run *r = calloc(1, sizeof *r);
    if (!r) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    int rc = golden_env_init(&r->env, ctx, err);
    if (rc) {
        free(r);
        return rc;
    }
    rc = run(ctx, r, f, err);
    cnet_backend *be = &r->env.be;
    train_step_free(&r->ts);
    float *bufs[] = {r->text, r->text_embeds, r->latents, r->cond, r->noise};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    if (r->have_cn) controlnet_free(&r->cn);
    sched_free(&r->ddpm);
    cnet_sched_config_free(&r->scfg);
    if (r->have_base) sd_base_free(&r->base);
    json_decref(r->args);
    json_decref(r->captions);
    golden_env_free(&r->env);
    free(r);
    return rc;
}
