/* Golden check of goldens/train.safetensors: one exact run of diffusers'
 * train_controlnet.py — latents from the VAE (mean + std * the recorded
 * noise, times scaling_factor), text states, then for every recorded
 * variant (`train.<v>.loss.0`: epsilon or v prediction, with or without
 * Min-SNR gamma, e.g. "eps", "v_snr5") two optimisation steps from the
 * fixture's ControlNet: noisy latents, target, model prediction, ControlNet
 * residuals, loss, every parameter gradient, the gradient norm and the
 * parameters after clip_grad_norm_ + AdamW.
 *
 * The optimiser settings are the goldens README's (lr 1e-3, betas 0.9 /
 * 0.999, weight decay 1e-2, eps 1e-8, max_grad_norm 1.0); metadata keys
 * "train.adamw" (JSON with the same names) override them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/models/clip_text.h"
#include "engine/core/layout.h"
#include "engine/sched/scheduler.h"
#include "engine/train/train_step.h"
#include "engine/models/vae.h"
#include "server/golden/golden.h"
#include "server/golden/golden_io.h"
#include "server/golden/model_io.h"

#define TRAIN_STEPS 2

static train_adamw adamw_settings(const st_file *f) {
    train_adamw opt = {.lr = 1e-3f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .eps = 1e-8f,
                       .weight_decay = 1e-2f,
                       .max_grad_norm = 1.0f};
    const char *meta = st_meta(f, "train.adamw");
    json_t *j = meta ? json_loads(meta, 0, NULL) : NULL;
    if (json_is_object(j)) {
        const char *keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay", "max_grad_norm"};
        float *dst[] = {&opt.lr,  &opt.beta1,        &opt.beta2,
                        &opt.eps, &opt.weight_decay, &opt.max_grad_norm};
        for (int i = 0; i < 6; i++) {
            json_t *v = json_object_get(j, keys[i]);
            if (json_is_number(v)) *dst[i] = (float)json_number_value(v);
        }
    }
    json_decref(j);
    return opt;
}

int golden_train_latents_from(golden_ctx *ctx, golden_env *env, const st_file *f,
                              const char *noise_name, const char *latents_name, float **latents,
                              int *B, int *h, int *w, int *Lc, cnet_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/vae", ctx->model_dir);
    const st_entry *px, *vn;
    int rc;
    if ((rc = mio_need(f, "train.in.pixel_values", CNET_F32, 4, &px, err)) ||
        (rc = mio_need(f, noise_name, CNET_F32, 4, &vn, err)))
        return rc;
    vae_model vae;
    if ((rc = vae_open(&vae, &env->be, dir, err))) return rc;
    const int Bn = (int)px->view.shape[0], H = (int)px->view.shape[2], W = (int)px->view.shape[3];
    const int fct = vae_factor(&vae), L = vae.cfg.latent_channels;
    *B = Bn, *h = H / fct, *w = W / fct, *Lc = L;
    const size_t n = (size_t)Bn * *h * *w * L;
    float *x = mio_upload(&env->be, px, err);
    float *moments = env->be.alloc(&env->be, 2 * n * sizeof(float));
    float *host = malloc(4 * n * sizeof(float));
    *latents = env->be.alloc(&env->be, n * sizeof(float));
    if (!x || !moments || !host || !*latents) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) rc = golden_env_scratch(env, vae_scratch_bytes(&vae, Bn, H, W), err);
    if (!rc) rc = vae_encode(&vae, &env->scratch, moments, x, Bn, H, W, err);
    if (!rc) rc = cnet_backend_status(&env->be, err); /* moments unwritten by a failed one */
    if (!rc) {
        /* Host arithmetic on the batch's moments: data preparation, not
         * part of the step (cached latents skip it entirely). */
        float *mom = host, *noise = host + 2 * n, *lat = host + 3 * n;
        env->be.download(&env->be, mom, moments, 2 * n * sizeof(float));
        layout_nchw_to_nhwc(noise, (const float *)vn->view.data, Bn, L, *h, *w);
        for (size_t i = 0; i < n; i++) {
            size_t pix = i / (size_t)L, c = i % (size_t)L;
            float mean = mom[pix * 2 * L + c], logvar = mom[pix * 2 * L + L + c];
            logvar = logvar < -30.0f ? -30.0f : logvar > 20.0f ? 20.0f : logvar;
            lat[i] = (mean + expf(0.5f * logvar) * noise[i]) * vae.cfg.scaling_factor;
        }
        env->be.upload(&env->be, *latents, lat, n * sizeof(float));
        const int64_t ls[4] = {Bn, L, *h, *w};
        golden_compare_nhwc(ctx, env, f, latents_name, *latents, 4, ls);
    }
    free(host);
    if (x) env->be.free(&env->be, x);
    if (moments) env->be.free(&env->be, moments);
    vae_free(&vae);
    return rc;
}

int golden_train_latents(golden_ctx *ctx, golden_env *env, const st_file *f, float **latents,
                         int *B, int *h, int *w, int *Lc, cnet_error *err) {
    return golden_train_latents_from(ctx, env, f, "train.in.vae_noise", "train.latents", latents, B,
                                     h, w, Lc, err);
}

int golden_train_text(golden_ctx *ctx, golden_env *env, const st_file *f, float **text, int *Nt,
                      cnet_error *err) {
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/text_encoder", ctx->model_dir);
    const st_entry *ids;
    int rc = mio_need(f, "train.in.input_ids", CNET_I64, 2, &ids, err);
    if (rc) return rc;
    clip_text_model m;
    if ((rc = clip_text_open(&m, &env->be, dir, err))) return rc;
    const int B = (int)ids->view.shape[0], L = (int)ids->view.shape[1], D = m.hidden;
    *Nt = L;
    *text = env->be.alloc(&env->be, (size_t)B * L * D * sizeof(float));
    int64_t *host_ids = malloc((size_t)B * L * sizeof *host_ids);
    if (!*text || !host_ids) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(host_ids, ids->view.data, (size_t)B * L * sizeof *host_ids);
        rc = golden_env_scratch(env, clip_text_scratch_bytes(&m, B, L), err);
    }
    if (!rc) rc = clip_text_forward(&m, &env->scratch, *text, NULL, host_ids, B, L, 0, err);
    if (!rc) rc = cnet_backend_status(&env->be, err);
    if (!rc) {
        const int64_t ts[3] = {B, L, D};
        golden_compare_nhwc(ctx, env, f, "train.encoder_hidden_states", *text, 3, ts);
    }
    free(host_ids);
    clip_text_free(&m);
    return rc;
}

void golden_train_params(golden_ctx *ctx, const st_file *f, const cnet_params *p,
                         const char *prefix, double atol) {
    size_t max_numel = 1;
    for (int i = 0; i < p->n; i++)
        if (p->items[i].numel > max_numel) max_numel = p->items[i].numel;
    float *host = malloc(max_numel * sizeof(float)), *scratch = malloc(max_numel * sizeof(float));
    for (int i = 0; i < p->n && host && scratch; i++) {
        const cnet_param *q = &p->items[i];
        char name[PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s%s", prefix, q->name);
        params_read(p, i, host, scratch);
        cnet_tensor t = {CNET_F32, q->ndim, {0}, host, -1};
        memcpy(t.shape, q->shape, sizeof q->shape);
        golden_compare_atol(ctx, f, name, &t, atol);
    }
    free(host);
    free(scratch);
}

static void compare_scalar(golden_ctx *ctx, const st_file *f, const char *name, float value) {
    cnet_tensor t = {CNET_F32, 0, {0}, &value, -1};
    golden_compare(ctx, f, name, &t);
}

/* One variant: two optimisation steps from the fixture's ControlNet. */
static int run_variant(golden_ctx *ctx, golden_env *env, const st_file *f, const char *v,
                       unet_model *unet, sched *ddpm, const float *latents, const float *text,
                       const float *cond, int B, int h, int w, int Lc, int Nt, cnet_error *err) {
    char dir[PATH_MAX + 16], name[256];
    snprintf(dir, sizeof dir, "%s/controlnet", ctx->model_dir);
    train_step_config cfg = {.prediction = v[0] == 'v' ? TRAIN_PRED_V : TRAIN_PRED_EPSILON,
                             .B = B,
                             .h = h,
                             .w = w,
                             .Nt = Nt};
    const char *snr = strstr(v, "_snr");
    if (snr) cfg.snr_gamma = strtof(snr + 4, NULL);
    const train_adamw opt = adamw_settings(f);
    controlnet_model cn;
    train_step t;
    memset(&t, 0, sizeof t);
    int rc = controlnet_open(&cn, &env->be, dir, err);
    if (rc) return rc;
    float *noise = NULL;
    if ((rc = train_step_init(&t, unet, &cn, ddpm, &cfg, err))) goto done;
    const int64_t ls[4] = {B, Lc, h, w};
    for (int step = 0; step < TRAIN_STEPS && !rc; step++) {
        const st_entry *ne, *te;
        snprintf(name, sizeof name, "train.in.noise.%d", step);
        if ((rc = mio_need(f, name, CNET_F32, 4, &ne, err))) break;
        snprintf(name, sizeof name, "train.in.timesteps.%d", step);
        if ((rc = mio_need(f, name, CNET_I64, 1, &te, err))) break;
        if (noise) env->be.free(&env->be, noise);
        if (!(noise = mio_upload(&env->be, ne, err))) {
            rc = err ? err->code : CNET_ENOMEM;
            break;
        }
        float loss, grad_norm;
        if ((rc = train_step_accumulate(&t, B, latents, noise, (const int64_t *)te->view.data, text,
                                        cond, 1.0f, &loss, err)) ||
            (rc = cnet_backend_status(&env->be, err)))
            break;
        if (step == 0) {
            snprintf(name, sizeof name, "train.%s.noisy_latents.0", v);
            golden_compare_nhwc(ctx, env, f, name, t.noisy, 4, ls);
            snprintf(name, sizeof name, "train.%s.target.0", v);
            golden_compare_nhwc(ctx, env, f, name, t.target, 4, ls);
            snprintf(name, sizeof name, "train.%s.model_pred.0", v);
            golden_compare_nhwc(ctx, env, f, name, t.pred, 4, ls);
            snprintf(name, sizeof name, "train.%s.grad.", v);
            golden_train_params(ctx, f, &t.grads, name, 0);
        }
        snprintf(name, sizeof name, "train.%s.loss.%d", v, step);
        compare_scalar(ctx, f, name, loss);
        if (train_step_optimize(&t, &opt, step + 1, NULL, &grad_norm) < 0) {
            rc = cnet_backend_status(&env->be, err);
            break;
        }
        snprintf(name, sizeof name, "train.%s.grad_norm.%d", v, step);
        compare_scalar(ctx, f, name, grad_norm);
        snprintf(name, sizeof name, "train.%s.param_after.%d.", v, step);
        golden_train_params(ctx, f, &cn.params, name, 0.1 * opt.lr);
    }
done:
    if (noise) env->be.free(&env->be, noise);
    train_step_free(&t);
    controlnet_free(&cn);
    return rc;
}

/* The ControlNet residuals of step 0 ("train.eps.cn_down.0.<i>", "cn_mid.0")
 * are the same for every variant: checked once with the epsilon run's.
 * That run uses the memory levers (gradient checkpointing,
 * set_grads_to_none), so its gradients are checked against diffusers' too. */
static int check_residuals(golden_ctx *ctx, golden_env *env, const st_file *f, unet_model *unet,
                           sched *ddpm, const float *latents, const float *text, const float *cond,
                           int B, int h, int w, int Nt, cnet_error *err) {
    char dir[PATH_MAX + 16], name[128];
    snprintf(dir, sizeof dir, "%s/controlnet", ctx->model_dir);
    train_step_config cfg = {.prediction = TRAIN_PRED_EPSILON,
                             .B = B,
                             .h = h,
                             .w = w,
                             .Nt = Nt,
                             .gradient_checkpointing = 1,
                             .set_grads_to_none = 1};
    controlnet_model cn;
    train_step t;
    memset(&t, 0, sizeof t);
    const st_entry *ne, *te;
    int rc = mio_need(f, "train.in.noise.0", CNET_F32, 4, &ne, err);
    if (!rc) rc = mio_need(f, "train.in.timesteps.0", CNET_I64, 1, &te, err);
    if (rc) return rc;
    if ((rc = controlnet_open(&cn, &env->be, dir, err))) return rc;
    float *noise = mio_upload(&env->be, ne, err);
    if (!noise) rc = err ? err->code : CNET_ENOMEM;
    if (!rc) rc = train_step_init(&t, unet, &cn, ddpm, &cfg, err);
    if (!rc)
        rc = train_step_accumulate(&t, B, latents, noise, (const int64_t *)te->view.data, text,
                                   cond, 1.0f, NULL, err);
    if (!rc) rc = cnet_backend_status(&env->be, err);
    if (!rc) {
        unet_sizes s;
        unet_encoder_sizes(&cn.enc, B, h, w, &s, NULL);
        for (int i = 0; i < s.n_skips; i++) {
            snprintf(name, sizeof name, "train.eps.cn_down.0.%d", i);
            const int64_t ds[4] = {
                B, (int64_t)(s.skip_floats[i] / ((size_t)B * s.skip_h[i] * s.skip_w[i])),
                s.skip_h[i], s.skip_w[i]};
            golden_compare_nhwc(ctx, env, f, name, t.down[i], 4, ds);
        }
        const int64_t ms[4] = {B, cn.enc.cfg.block_out_channels[cn.enc.cfg.n_blocks - 1], s.mid_h,
                               s.mid_w};
        golden_compare_nhwc(ctx, env, f, "train.eps.cn_mid.0", t.mid, 4, ms);
        golden_train_params(ctx, f, &t.grads, "train.eps.grad.", 0);
    }
    if (noise) env->be.free(&env->be, noise);
    train_step_free(&t);
    controlnet_free(&cn);
    return rc;
}

int golden_check_train(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    char path[PATH_MAX + 32];
    golden_env env;
    int rc = golden_env_init(&env, ctx, err);
    if (rc) return rc;
    float *latents = NULL, *text = NULL, *cond = NULL;
    int B, h, w, Lc, Nt;
    unet_model unet;
    int have_unet = 0;
    sched ddpm;
    memset(&ddpm, 0, sizeof ddpm);
    cnet_sched_config scfg;
    memset(&scfg, 0, sizeof scfg);
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", ctx->model_dir);
    if ((rc = cnet_sched_config_load(&scfg, path, CNET_SCHED_DDPM, err)) ||
        (rc = sched_init(&ddpm, &env.be, &scfg, 0, err)))
        goto done;
    if ((rc = golden_train_latents(ctx, &env, f, &latents, &B, &h, &w, &Lc, err)) ||
        (rc = golden_train_text(ctx, &env, f, &text, &Nt, err)))
        goto done;
    const st_entry *ce;
    if ((rc = mio_need(f, "train.in.conditioning_pixel_values", CNET_F32, 4, &ce, err))) goto done;
    if (!(cond = mio_upload(&env.be, ce, err))) {
        rc = err ? err->code : CNET_ENOMEM;
        goto done;
    }
    snprintf(path, sizeof path, "%s/unet", ctx->model_dir);
    if ((rc = unet_open(&unet, &env.be, path, err))) goto done;
    have_unet = 1;
    if ((rc = check_residuals(ctx, &env, f, &unet, &ddpm, latents, text, cond, B, h, w, Nt, err)))
        goto done;
    /* Variants: every "train.<v>.loss.0". */
    for (int i = 0; i < f->n && !rc; i++) {
        const char *n = f->entries[i].name;
        size_t len = strlen(n);
        if (strncmp(n, "train.", 6) != 0 || len < 13 || strcmp(n + len - 7, ".loss.0") != 0)
            continue;
        if (len - 13 > GOLDEN_RUN_MAX) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: the variant of '%s' is longer than %d bytes",
                           f->path, n, GOLDEN_RUN_MAX);
            break;
        }
        char v[GOLDEN_RUN_MAX + 1];
        snprintf(v, sizeof v, "%.*s", (int)(len - 13), n + 6);
        rc = run_variant(ctx, &env, f, v, &unet, &ddpm, latents, text, cond, B, h, w, Lc, Nt, err);
    }
done:
    if (have_unet) unet_free(&unet);
    float *bufs[] = {latents, text, cond};
    for (int i = 0; i < 3; i++)
        if (bufs[i]) env.be.free(&env.be, bufs[i]);
    sched_free(&ddpm);
    cnet_sched_config_free(&scfg);
    golden_env_free(&env);
    return rc;
}
