/* cnet bench --model DIR --task train_step|train_step_cached: one optimizer
 * step of ControlNet training at batch 1 and the UNet's sample size, as
 * cnet train runs it (engine/train_batch.c + engine/train_step.c):
 *
 *   train_step         VAE encode of the 3-channel image, text encoder on 77
 *                      tokens, ControlNet + UNet forward, the backward of
 *                      the UNet's up path and of the whole ControlNet,
 *                      clip_grad_norm_ + AdamW;
 *   train_step_cached  the same without the VAE encode (--cache_latents).
 *
 * --gradient_checkpointing and --set_grads_to_none as in cnet train; the
 * memory line gives the high-water marks of the activation arena (which
 * holds the gradients too with --set_grads_to_none) and of the scratch
 * arena, and the separate gradient block (none with --set_grads_to_none).
 *
 * The ControlNet is the model folder's controlnet/ (or from_unet's shape).
 * Inputs are Philox values; they do not change the time. */
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "engine/philox.h"
#include "engine/sd_base.h"
#include "engine/train_step.h"
#include "server/bench_model.h"

#define BENCH_TRAIN_MAX_ITERS 1000

typedef struct bench_train_state {
    cnet_backend be;
    sd_base base;
    controlnet_model cn;
    cnet_sched_config scfg;
    sched ddpm;
    train_step ts;
    cnet_arena scratch;
    float *image, *cond, *latents, *moments, *noise, *text;
    int64_t ids[77];
    int R, h, Nt, cached;
} bench_train_state;

static int one_step(bench_train_state *s, int step, cnet_error *err) {
    int rc = 0;
    if (!s->cached)
        rc = vae_encode(&s->base.vae, &s->scratch, s->moments, s->image, 1, s->R, s->R, err);
    if (!rc)
        rc = clip_text_forward(&s->base.text_encoder, &s->scratch, s->text, NULL, s->ids, 1, s->Nt,
                               0, err);
    const int64_t t[1] = {500};
    if (!rc)
        rc = train_step_accumulate(&s->ts, 1, s->latents, s->noise, t, s->text, s->cond, 1.0f, NULL,
                                   err);
    const train_adamw opt = {.lr = 1e-5f,
                             .beta1 = 0.9f,
                             .beta2 = 0.999f,
                             .eps = 1e-8f,
                             .weight_decay = 1e-2f,
                             .max_grad_norm = 1.0f};
    if (!rc) train_step_optimize(&s->ts, &opt, step + 1, NULL);
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

int bench_train(const char *model, const char *task, int iters, int json,
                int gradient_checkpointing, int set_grads_to_none) {
    bench_train_state s;
    memset(&s, 0, sizeof s);
    if (strcmp(task, "train_step_cached") == 0)
        s.cached = 1;
    else if (strcmp(task, "train_step") != 0) {
        fprintf(stderr, "cnet bench: unknown task '%s'\n", task);
        return 2;
    }
    if (iters > BENCH_TRAIN_MAX_ITERS) iters = BENCH_TRAIN_MAX_ITERS;
    cnet_error err = {0};
    char path[PATH_MAX];
    int rc = cnet_backend_cpu_init(&s.be, &err), have_base = 0, have_cn = 0, have_ts = 0;
    if (!rc && !(rc = sd_base_open(&s.base, &s.be, model, &err))) have_base = 1;
    snprintf(path, sizeof path, "%s/controlnet", model);
    if (!rc && !(rc = controlnet_open(&s.cn, &s.be, path, &err))) have_cn = 1;
    if (!rc) rc = sd_base_scheduler(&s.base, CNET_SCHED_DDPM, &s.scfg, &err);
    if (!rc) rc = sched_init(&s.ddpm, &s.be, &s.scfg, 0, &err);
    if (!rc) {
        const int f = vae_factor(&s.base.vae);
        s.h = s.base.unet.enc.cfg.sample_size ? s.base.unet.enc.cfg.sample_size : 64;
        s.R = s.h * f;
        s.Nt = 77;
        for (int i = 0; i < s.Nt; i++) s.ids[i] = i % tokenizer_vocab_size(s.base.tok);
        train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                                .B = 1,
                                .h = s.h,
                                .w = s.h,
                                .Nt = s.Nt,
                                .gradient_checkpointing = gradient_checkpointing,
                                .set_grads_to_none = set_grads_to_none};
        if (!(rc = train_step_init(&s.ts, &s.base.unet, &s.cn, &s.ddpm, &tc, &err))) have_ts = 1;
        const size_t lat = (size_t)s.h * s.h * s.base.vae.cfg.latent_channels;
        s.image = buffer(&s, (size_t)s.R * s.R * 3, &rc, &err);
        s.cond = buffer(&s, (size_t)s.R * s.R * 3, &rc, &err);
        s.latents = buffer(&s, lat, &rc, &err);
        s.moments = buffer(&s, 2 * lat, &rc, &err);
        s.noise = buffer(&s, lat, &rc, &err);
        s.text = buffer(&s, (size_t)s.Nt * s.base.text_encoder.hidden, &rc, &err);
        size_t a = vae_scratch_bytes(&s.base.vae, 1, s.R, s.R),
               b = clip_text_scratch_bytes(&s.base.text_encoder, 1, s.Nt);
        if (!rc) rc = cnet_arena_init(&s.scratch, &s.be, a > b ? a : b, "bench scratch", &err);
    }
    double t[BENCH_TRAIN_MAX_ITERS];
    if (!rc) rc = one_step(&s, 0, &err); /* warm-up */
    for (int i = 0; i < iters && !rc; i++) {
        double t0 = omp_get_wtime();
        rc = one_step(&s, i + 1, &err);
        t[i] = (omp_get_wtime() - t0) * 1e3;
    }
    const double mb = 1.0 / (1 << 20);
    const double act_mb = s.ts.keep.high_water * mb, scratch_mb = s.ts.scratch.high_water * mb;
    const double grads_mb = set_grads_to_none ? 0 : s.ts.grads.total * sizeof(float) * mb;
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
    if (rc) {
        fprintf(stderr, "cnet bench: %s\n", err.msg);
        return 1;
    }
    char extra[160];
    snprintf(extra, sizeof extra,
             "\"activations_mb\":%.1f,\"scratch_mb\":%.1f,\"separate_grads_mb\":%.1f", act_mb,
             scratch_mb, grads_mb);
    bench_report(task, t, iters, json, extra);
    if (!json)
        printf("train memory: activations %.1f MB (arena high-water%s), scratch %.1f MB, separate "
               "gradient block %.1f MB; total %.1f MB%s%s\n",
               act_mb, set_grads_to_none ? ", gradients included" : "", scratch_mb, grads_mb,
               act_mb + scratch_mb + grads_mb,
               gradient_checkpointing ? " [--gradient_checkpointing]" : "",
               set_grads_to_none ? " [--set_grads_to_none]" : "");
    return 0;
}
