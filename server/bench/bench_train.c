/* cnet bench --model DIR --task train_step|train_step_cached [--batch N]
 * [--device D]: one optimizer step of ControlNet training on a batch of N
 * samples (default 1) at the UNet's sample size, as cnet train runs it
 * (engine/train/train_batch.c + engine/train/train_step.c):
 *
 *   train_step         VAE encode of the N 3-channel images, text encoder on
 *                      N prompts of 77 tokens, ControlNet + UNet forward, the backward of
 *                      the UNet's up path and of the whole ControlNet,
 *                      clip_grad_norm_ + AdamW (with fp16, the loss scaling's
 *                      unscale pass and finiteness check too, engine/train/loss_scale.h);
 *   train_step_cached  the same without the VAE encode (--cache_latents).
 *
 * --use_8bit_adam, --gradient_checkpointing and --set_grads_to_none as in
 * cnet train; the memory line gives the high-water marks of the activation
 * arena (which holds the gradients too with --set_grads_to_none) and of the
 * scratch arena, and the separate gradient block (none with
 * --set_grads_to_none); the optimizer state's cut shows in the peak memory.
 *
 * The ControlNet is the model folder's controlnet/ (or from_unet's shape).
 * Inputs are Philox values; they do not change the time. */
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/train_step.h"
#include "server/bench/bench_flops.h"
#include "server/bench/bench_model.h"

#define BENCH_TRAIN_MAX_ITERS 1000

typedef struct bench_train_state {
    cnet_backend be;
    sd_base base;
    controlnet_model cn;
    cnet_sched_config scfg;
    sched ddpm;
    train_step ts;
    loss_scale ls; /* used with --mixed_precision fp16, as cnet train does */
    int loss_scaling;
    cnet_arena scratch;
    float *image, *cond, *latents, *moments, *noise, *text;
    int64_t *ids; /* host [B, Nt] */
    int64_t *t;   /* host [B] timesteps */
    int B, R, h, Nt, cached;
} bench_train_state;

static int one_step(bench_train_state *s, int step, cnet_error *err) {
    int rc = 0;
    if (!s->cached)
        rc = vae_encode(&s->base.vae, &s->scratch, s->moments, s->image, s->B, s->R, s->R, err);
    if (!rc)
        rc = clip_text_forward(&s->base.text_encoder, &s->scratch, s->text, NULL, s->ids, s->B,
                               s->Nt, 0, err);
    if (!rc)
        rc = train_step_accumulate(&s->ts, s->B, s->latents, s->noise, s->t, s->text, s->cond,
                                   s->loss_scaling ? s->ls.scale : 1.0f, NULL, err);
    const train_adamw opt = {.lr = 1e-5f,
                             .beta1 = 0.9f,
                             .beta2 = 0.999f,
                             .eps = 1e-8f,
                             .weight_decay = 1e-2f,
                             .max_grad_norm = 1.0f};
    if (!rc) train_step_optimize(&s->ts, &opt, step + 1, s->loss_scaling ? &s->ls : NULL, NULL);
    s->be.synchronize(&s->be);
    return rc;
}

static float *buffer(bench_train_state *s, size_t n, int *rc, cnet_error *err) {
    if (*rc) return NULL;
    float *p = s->be.alloc(&s->be, n * sizeof(float));
    if (!p)
        *rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    else
        s->be.philox_normal(&s->be, p, (long)n, 3, n);
    return p;
}

int bench_train(const bench_model_opts *o) {
    bench_train_state s;
    memset(&s, 0, sizeof s);
    if (strcmp(o->task, "train_step_cached") == 0)
        s.cached = 1;
    else if (strcmp(o->task, "train_step") != 0) {
        fprintf(stderr, "cnet bench: unknown task '%s'\n", o->task);
        return 2;
    }
    const int iters = o->iters > BENCH_TRAIN_MAX_ITERS ? BENCH_TRAIN_MAX_ITERS : o->iters;
    cnet_error err = {0};
    char path[PATH_MAX];
    int rc = bench_open_backend(&s.be, o->device, o->precision, &err), have_base = 0, have_cn = 0,
        have_ts = 0;
    if (rc) {
        fprintf(stderr, "cnet bench: %s\n", err.msg);
        return rc == CNET_EINVAL ? 2 : 1;
    }
    if (!(rc = sd_base_open(&s.base, &s.be, o->model, &err))) have_base = 1;
    if (!rc) rc = sd_base_store16(&s.base, s.be.precision, &err); /* as cnet train does */
    snprintf(path, sizeof path, "%s/controlnet", o->model);
    if (!rc && !(rc = controlnet_open(&s.cn, &s.be, path, &err))) have_cn = 1;
    if (!rc) rc = sd_base_scheduler(&s.base, CNET_SCHED_DDPM, &s.scfg, &err);
    if (!rc) rc = sched_init(&s.ddpm, &s.be, &s.scfg, 0, &err);
    s.B = o->batch;
    s.loss_scaling = o->precision == CNET_PREC_F16;
    loss_scale_init(&s.ls);
    s.Nt = 77;
    s.ids = malloc((size_t)s.B * s.Nt * sizeof *s.ids);
    s.t = malloc((size_t)s.B * sizeof *s.t);
    if (!rc && (!s.ids || !s.t)) rc = cnet_fail(&err, CNET_ENOMEM, "out of memory");
    if (!rc) {
        const int f = vae_factor(&s.base.vae);
        s.h = s.base.unet.enc.cfg.sample_size ? s.base.unet.enc.cfg.sample_size : 64;
        s.R = s.h * f;
        const int64_t vocab = tokenizer_vocab_size(s.base.tok);
        for (int i = 0; i < s.B * s.Nt; i++) s.ids[i] = (i * 7919) % vocab;
        for (int b = 0; b < s.B; b++) s.t[b] = (500 + 97 * b) % 1000; /* spread, as sampled */
        train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                                .B = s.B,
                                .h = s.h,
                                .w = s.h,
                                .Nt = s.Nt,
                                .use_8bit_adam = o->use_8bit_adam,
                                .gradient_checkpointing = o->gradient_checkpointing,
                                .set_grads_to_none = o->set_grads_to_none};
        if (!(rc = train_step_init(&s.ts, &s.base.unet, &s.cn, &s.ddpm, &tc, &err))) have_ts = 1;
        const size_t lat = (size_t)s.B * s.h * s.h * s.base.vae.cfg.latent_channels;
        const size_t img = (size_t)s.B * s.R * s.R * 3;
        s.image = buffer(&s, img, &rc, &err);
        s.cond = buffer(&s, img, &rc, &err);
        s.latents = buffer(&s, lat, &rc, &err);
        s.moments = buffer(&s, 2 * lat, &rc, &err);
        s.noise = buffer(&s, lat, &rc, &err);
        s.text = buffer(&s, (size_t)s.B * s.Nt * s.base.text_encoder.hidden, &rc, &err);
        size_t a = vae_scratch_bytes(&s.base.vae, s.B, s.R, s.R),
               b = clip_text_scratch_bytes(&s.base.text_encoder, s.B, s.Nt);
        if (!rc) rc = cnet_arena_init(&s.scratch, &s.be, a > b ? a : b, "bench scratch", &err);
    }
    double t[BENCH_TRAIN_MAX_ITERS];
    bench_flops_wrap(&s.be);
    if (!rc) rc = one_step(&s, 0, &err); /* warm-up, its FLOPs those of every step */
    const double flop = bench_flops_take();
    for (int i = 0; i < iters && !rc; i++) {
        double t0 = omp_get_wtime();
        rc = one_step(&s, i + 1, &err);
        t[i] = (omp_get_wtime() - t0) * 1e3;
    }
    if (!rc) rc = cnet_backend_status(&s.be, &err);
    const double mb = 1.0 / (1 << 20);
    const double act_mb = s.ts.keep.high_water * mb, scratch_mb = s.ts.scratch.high_water * mb;
    const double grads_mb = o->set_grads_to_none ? 0 : s.ts.grads.total * sizeof(float) * mb;
    const double adam_mb = have_ts ? adam_state_bytes(&s.ts.adam) * mb : 0;
    if (!rc) {
        /* fp16: steps whose AdamW the loss scaler skipped (they time short) */
        char extra[240];
        snprintf(extra, sizeof extra,
                 "\"activations_mb\":%.1f,\"scratch_mb\":%.1f,\"separate_grads_mb\":%.1f,"
                 "\"optimizer_state_mb\":%.1f,\"skipped_steps\":%lld",
                 act_mb, scratch_mb, grads_mb, adam_mb, (long long)s.ls.skipped);
        bench_model_opts shown = *o;
        shown.iters = iters;
        bench_report(&shown, o->task, t, &s.be, flop, extra);
        if (!o->json)
            printf(
                "train memory: activations %.1f MB (arena high-water%s), scratch %.1f MB, separate "
                "gradient block %.1f MB; total %.1f MB; AdamW state %.1f MB%s%s%s\n",
                act_mb, o->set_grads_to_none ? ", gradients included" : "", scratch_mb, grads_mb,
                act_mb + scratch_mb + grads_mb, adam_mb,
                o->gradient_checkpointing ? " [--gradient_checkpointing]" : "",
                o->set_grads_to_none ? " [--set_grads_to_none]" : "",
                o->use_8bit_adam ? " [--use_8bit_adam]" : "");
        if (!rc && s.ls.skipped)
            fprintf(stderr, "cnet bench: the fp16 loss scaler skipped %lld of the steps' AdamW\n",
                    (long long)s.ls.skipped);
    }
    float *bufs[] = {s.image, s.cond, s.latents, s.moments, s.noise, s.text};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) s.be.free(&s.be, bufs[i]);
    cnet_arena_free(&s.scratch);
    if (have_ts) train_step_free(&s.ts);
    sched_free(&s.ddpm);
    cnet_sched_config_free(&s.scfg);
    if (have_cn) controlnet_free(&s.cn);
    if (have_base) sd_base_free(&s.base);
    cnet_backend_free(&s.be);
    free(s.ids);
    free(s.t);
    if (rc) {
        fprintf(stderr, "cnet bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}
