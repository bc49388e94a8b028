/* One training step of a ControlNet, or of the whole UNet; see
 * train_step.h. */
#include "engine/train/train_step.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/train/adam_shard.h"

/* Arena sizes start here and double until a whole step fits (done once, at
 * init, by running a step on zeros); then nothing is allocated per step. */
#define TRAIN_ARENA_START (64u << 20)
#define TRAIN_ARENA_MAX ((size_t)64 << 30)

static float *dev_floats(cnet_backend *be, size_t n, cnet_error *err) {
    float *p = be->alloc(be, (n ? n : 1) * sizeof(float));
    if (!p)
        cnet_fail(err, CNET_ENOMEM, "train: cannot allocate %zu floats on %s", n, be->name);
    else
        be->zero(be, p, (n ? n : 1) * sizeof(float));
    return p;
}

/* The table the step trains: the ControlNet's, or the UNet's without one. */
static cnet_params *trained(const train_step *t) {
    return t->cn ? &t->cn->params : &t->unet->params;
}

/* The gradients of the step's first backward with set_grads_to_none: taken
 * from the top of the activation arena. */
static int take_grads(train_step *t, cnet_error *err) {
    cnet_backend *be = t->unet->params.be;
    if (!t->cfg.set_grads_to_none || t->grads.block) return 0;
    float *g = cnet_arena_alloc_top(&t->keep, t->grads.total * sizeof(float), err);
    if (!g) return err ? err->code : CNET_ENOMEM;
    be->zero(be, g, t->grads.total * sizeof(float));
    params_bind(&t->grads, g);
    return 0;
}

/* One forward + backward; gradients accumulate into t->grads. input_noise:
 * what add_noise uses (NULL: noise, the target's). */
static int run(train_step *t, int B, const float *latents, const float *noise,
               const float *input_noise, const int64_t *timesteps, const float *text,
               const float *cond, const unet_added_cond *added, float grad_scale, cnet_error *err) {
    cnet_backend *be = t->unet->params.be;
    const train_step_config *c = &t->cfg;
    if (B < 1 || B > c->B)
        return cnet_fail(err, CNET_EINVAL, "train: micro-batch of %d (1..%d)", B, c->B);
    if (!added != !t->unet->enc.cfg.add_text_time)
        return cnet_fail(err, CNET_EINVAL,
                         added ? "train: added conditions given to a UNet without text_time"
                               : "train: the SDXL (text_time) UNet needs text_embeds and time_ids");
    const long per = (long)c->h * c->w * t->unet->enc.cfg.in_channels;
    float ts[TRAIN_MAX_BATCH], w[TRAIN_MAX_BATCH];
    int rc = sched_add_noise(t->noise, t->noisy, latents, input_noise ? input_noise : noise,
                             timesteps, B, per, err);
    if (!rc && c->prediction == TRAIN_PRED_V)
        rc = sched_get_velocity(t->noise, t->target, latents, noise, timesteps, B, per, err);
    else if (!rc)
        be->copy(be, t->target, noise, (size_t)B * per * sizeof(float));
    if (rc) return rc;
    for (int b = 0; b < B; b++) {
        ts[b] = (float)timesteps[b];
        /* Min-SNR-gamma (Hang et al. 2023) as diffusers training_utils.compute_snr:
         * snr = (sqrt(acp) / sqrt(1 - acp))^2 in float32. */
        const float acp = t->noise->alphas_cumprod[timesteps[b]];
        const float alpha = sqrtf(acp), sigma = sqrtf(1.0f - acp);
        const float snr = (alpha / sigma) * (alpha / sigma);
        const float clipped = snr < c->snr_gamma ? snr : c->snr_gamma;
        w[b] = c->snr_gamma <= 0               ? 1.0f
               : c->prediction == TRAIN_PRED_V ? clipped / (snr + 1.0f)
                                               : clipped / snr;
    }
    be->upload(be, t->weights, w, (size_t)B * sizeof(float));

    controlnet_acts cn_acts = {.checkpoint = c->gradient_checkpointing};
    unet_acts un_acts = {.checkpoint = c->gradient_checkpointing, .all_params = !t->cn};
    cnet_arena_reset(&t->keep);
    const long n = per * t->unet->enc.cfg.out_channels / t->unet->enc.cfg.in_channels;
    if (!t->cn) { /* the whole UNet trains */
        if ((rc = unet_forward(t->unet, &t->scratch, t->pred, t->noisy, ts, text, added, NULL, NULL,
                               B, c->h, c->w, c->Nt, &t->keep, &un_acts, err)))
            return rc;
        be->mse_forward(be, t->loss, t->pred, t->target, t->weights, B, n);
        be->mse_backward(be, t->dpred, t->pred, t->target, t->weights, B, n, grad_scale);
        if ((rc = take_grads(t, err))) return rc;
        return unet_backward_params(t->unet, &t->grads, &t->scratch, t->dpred, &un_acts, err);
    }
    if ((rc = controlnet_forward(t->cn, &t->scratch, t->down, t->mid, t->noisy, cond, ts, text,
                                 added, 1.0f, 0, B, c->h, c->w, c->Nt, &t->keep, &cn_acts, err)))
        return rc;
    const size_t unet_keep = cnet_arena_mark(&t->keep);
    if ((rc = unet_forward(t->unet, &t->scratch, t->pred, t->noisy, ts, text, added,
                           (const float *const *)t->down, t->mid, B, c->h, c->w, c->Nt, &t->keep,
                           &un_acts, err)))
        return rc;
    be->mse_forward(be, t->loss, t->pred, t->target, t->weights, B, n);
    be->mse_backward(be, t->dpred, t->pred, t->target, t->weights, B, n, grad_scale);
    if ((rc = unet_backward(t->unet, &t->scratch, t->d_down, t->d_mid, t->dpred, &un_acts, B, err)))
        return rc;
    cnet_arena_restore(&t->keep, unet_keep); /* the ControlNet backward reuses the UNet's room */
    if ((rc = take_grads(t, err))) return rc;
    return controlnet_backward(t->cn, &t->grads, &t->scratch, (const float *const *)t->d_down,
                               t->d_mid, &cn_acts, err);
}

/* Runs one step on zeros, doubling the arenas until it fits, then shrinks
 * them to what the step used. */
static int size_arenas(train_step *t, const float *zeros_latent, const float *zeros_text,
                       const float *zeros_cond, const unet_added_cond *added, cnet_error *err) {
    cnet_backend *be = t->unet->params.be;
    int64_t ts[TRAIN_MAX_BATCH] = {0};
    size_t keep_cap = TRAIN_ARENA_START, scratch_cap = TRAIN_ARENA_START;
    for (;;) {
        int rc;
        if ((rc = cnet_arena_init(&t->keep, be, keep_cap, "training activations", err)) ||
            (rc = cnet_arena_init(&t->scratch, be, scratch_cap, "training scratch", err)))
            return rc;
        rc = run(t, t->cfg.B, zeros_latent, zeros_latent, NULL, ts, zeros_text, zeros_cond, added,
                 1.0f, err);
        if (!rc && t->cfg.set_grads_to_none && t->cfg.gradient_accumulation_steps > 1)
            rc = run(t, t->cfg.B, zeros_latent, zeros_latent, NULL, ts, zeros_text, zeros_cond,
                     added, 1.0f, err); /* a forward beside the live gradients */
        size_t keep_used = t->keep.high_water, scratch_used = t->scratch.high_water;
        if (t->cfg.set_grads_to_none)
            params_bind(&t->grads, NULL); /* they were in the arena freed next */
        else if (rc == 0)
            be->zero(be, t->grads.block, t->grads.total * sizeof(float));
        cnet_arena_free(&t->keep);
        cnet_arena_free(&t->scratch);
        if (rc == 0) {
            if ((rc = cnet_arena_init(&t->keep, be, keep_used + (1u << 20), "training activations",
                                      err)))
                return rc;
            return cnet_arena_init(&t->scratch, be, scratch_used + (1u << 20), "training scratch",
                                   err);
        }
        if (rc != CNET_ENOMEM) return rc;
        keep_cap *= 2, scratch_cap *= 2; /* which of the two ran out is not told apart */
        if (keep_cap > TRAIN_ARENA_MAX || scratch_cap > TRAIN_ARENA_MAX)
            return cnet_fail(err, CNET_ENOMEM, "train: a step needs more than %zu GiB",
                             TRAIN_ARENA_MAX >> 30);
    }
}

static int init_parts(train_step *t, unet_model *unet, controlnet_model *cn, sched *noise,
                      const train_step_config *cfg, cnet_error *err) {
    memset(t, 0, sizeof *t);
    t->cfg = *cfg, t->unet = unet, t->cn = cn, t->noise = noise;
    cnet_backend *be = unet->params.be;
    const cnet_unet_config *uc = &unet->enc.cfg;
    if (cfg->B < 1 || cfg->B > TRAIN_MAX_BATCH)
        return cnet_fail(err, CNET_EINVAL, "train: batch size %d (supported 1..%d)", cfg->B,
                         TRAIN_MAX_BATCH);
    if (uc->in_channels != uc->out_channels)
        return cnet_fail(err, CNET_EINVAL, "train: UNet in_channels %d != out_channels %d",
                         uc->in_channels, uc->out_channels);
    unet_sizes s;
    int rc = unet_encoder_sizes(&unet->enc, cfg->B, cfg->h, cfg->w, &s, err);
    if (rc) return rc;
    /* trained: the table's own copy, not a weights file's read-only mapping */
    if ((rc = params_own(trained(t), err))) return rc;
    const cnet_params *p = trained(t);
    size_t lo = 0, hi = p->total;
    if (cfg->shard_optimizer && cfg->comm && cfg->comm->size > 1) {
        const int r = cfg->comm->rank;
        if (!(t->shards = malloc(((size_t)cfg->comm->size + 1) * sizeof *t->shards)))
            return cnet_fail(err, CNET_ENOMEM, "out of memory");
        adam_shard_bounds(p, cfg->use_8bit_adam, cfg->comm->size, t->shards);
        lo = t->shards[r], hi = t->shards[r + 1];
    }
    if ((rc = cfg->set_grads_to_none ? params_like(&t->grads, p, err)
                                     : params_alloc_like(&t->grads, p, err)) ||
        (rc = adam_state_init_shard(&t->adam, p, cfg->use_8bit_adam, lo, hi, err)))
        return rc;
    const size_t lat = (size_t)cfg->B * cfg->h * cfg->w * uc->in_channels;
    const int f = cn ? controlnet_image_factor(cn) : 0;
    const size_t img = cn ? (size_t)cfg->B * cfg->h * f * cfg->w * f * cn->cond_channels : 0;
    const size_t txt = (size_t)cfg->B * cfg->Nt * uc->cross_attention_dim[0];
    t->n_skips = s.n_skips;
    /* SDXL: the sizing step takes zero added conditions too */
    const int Dp = uc->add_text_time ? uc->projection_class_embeddings_input_dim -
                                           CNET_TIME_IDS * uc->addition_time_embed_dim
                                     : 0;
    float zero_ids[TRAIN_MAX_BATCH * CNET_TIME_IDS] = {0};
    float *zl = NULL, *zt = NULL, *zc = NULL, *zp = NULL;
    if (!(t->noisy = dev_floats(be, lat, err)) || !(t->target = dev_floats(be, lat, err)) ||
        !(t->pred = dev_floats(be, lat, err)) || !(t->dpred = dev_floats(be, lat, err)) ||
        !(t->weights = dev_floats(be, (size_t)cfg->B, err)) ||
        (cn && !(t->mid = dev_floats(be, s.mid_floats, err))) ||
        (cn && !(t->d_mid = dev_floats(be, s.mid_floats, err))) ||
        !(t->loss = dev_floats(be, 1, err)) || !(t->sumsq = dev_floats(be, 1, err)))
        return err ? err->code : CNET_ENOMEM;
    for (int i = 0; i < s.n_skips && cn; i++)
        if (!(t->down[i] = dev_floats(be, s.skip_floats[i], err)) ||
            !(t->d_down[i] = dev_floats(be, s.skip_floats[i], err)))
            return err ? err->code : CNET_ENOMEM;
    if (!(zl = dev_floats(be, lat, err)) || !(zt = dev_floats(be, txt, err)) ||
        (cn && !(zc = dev_floats(be, img, err))) ||
        (Dp && !(zp = dev_floats(be, (size_t)cfg->B * Dp, err))))
        rc = err ? err->code : CNET_ENOMEM;
    const unet_added_cond zero_added = {.text_embeds = zp, .time_ids = zero_ids};
    if (!rc) rc = size_arenas(t, zl, zt, zc, Dp ? &zero_added : NULL, err);
    if (zp) be->free(be, zp);
    if (zl) be->free(be, zl);
    if (zt) be->free(be, zt);
    if (zc) be->free(be, zc);
    return rc;
}

int train_step_init(train_step *t, unet_model *unet, controlnet_model *cn, sched *noise,
                    const train_step_config *cfg, cnet_error *err) {
    int rc = init_parts(t, unet, cn, noise, cfg, err);
    if (rc) train_step_free(t); /* what was allocated before the failure */
    return rc;
}

void train_step_free(train_step *t) {
    if (!t->unet) return;
    cnet_backend *be = t->unet->params.be;
    float *bufs[] = {t->noisy, t->target, t->pred, t->dpred, t->weights,
                     t->mid,   t->d_mid,  t->loss, t->sumsq};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    for (int i = 0; i < UNET_MAX_SKIPS; i++) {
        if (t->down[i]) be->free(be, t->down[i]);
        if (t->d_down[i]) be->free(be, t->d_down[i]);
    }
    if (t->cfg.set_grads_to_none) params_bind(&t->grads, NULL); /* an arena slice */
    cnet_arena_free(&t->keep);
    cnet_arena_free(&t->scratch);
    params_free(&t->grads);
    adam_state_free(&t->adam);
    free(t->shards);
    dist_stage_free(&t->stage);
    memset(t, 0, sizeof *t);
}

int train_step_accumulate(train_step *t, int B, const float *latents, const float *noise,
                          const int64_t *timesteps, const float *text, const float *cond,
                          float grad_scale, float *loss_out, cnet_error *err) {
    return train_step_accumulate_added(t, B, latents, noise, timesteps, text, cond, NULL,
                                       grad_scale, loss_out, err);
}

int train_step_accumulate_added(train_step *t, int B, const float *latents, const float *noise,
                                const int64_t *timesteps, const float *text, const float *cond,
                                const unet_added_cond *added, float grad_scale, float *loss_out,
                                cnet_error *err) {
    return train_step_accumulate_perturbed(t, B, latents, noise, NULL, timesteps, text, cond, added,
                                           grad_scale, loss_out, err);
}

int train_step_accumulate_perturbed(train_step *t, int B, const float *latents, const float *noise,
                                    const float *input_noise, const int64_t *timesteps,
                                    const float *text, const float *cond,
                                    const unet_added_cond *added, float grad_scale, float *loss_out,
                                    cnet_error *err) {
    cnet_backend *be = t->unet->params.be;
    int rc = run(t, B, latents, noise, input_noise, timesteps, text, cond, added, grad_scale, err);
    if (!rc && loss_out) be->download(be, loss_out, t->loss, sizeof(float));
    return rc;
}

/* After an optimizer step (taken or not): the gradients zeroed, or given back
 * with set_grads_to_none (no memset: the next backward takes fresh ones). */
static void release_grads(train_step *t, cnet_backend *be, long n) {
    if (t->cfg.set_grads_to_none) {
        cnet_arena_release_top(&t->keep);
        params_bind(&t->grads, NULL);
    } else {
        be->zero(be, t->grads.block, (size_t)n * sizeof(float));
    }
}

int train_step_sync_grads(train_step *t, cnet_error *err) {
    dist_comm *c = t->cfg.comm;
    cnet_params *g = &t->grads;
    if (!c || c->size == 1) return 0;
    if (t->shards) return dist_reduce_scatter_device(c, &t->stage, g->be, g->block, t->shards, err);
    return dist_allreduce_device(c, &t->stage, g->be, g->block, g->total, err);
}

/* Sharded: the ranks' shard sums of squares summed into t->sumsq (and
 * *sumsq). */
static void sum_shard_squares(train_step *t, cnet_backend *be, float *sumsq) {
    cnet_error err = {0};
    be->download(be, sumsq, t->sumsq, sizeof *sumsq);
    if (dist_allreduce_sum(t->cfg.comm, sumsq, 1, &err)) dist_comm_abort(t->cfg.comm, 1, err.msg);
    be->upload(be, t->sumsq, sumsq, sizeof *sumsq);
}

int train_step_optimize(train_step *t, const train_adamw *opt, int step, loss_scale *ls,
                        float *grad_norm_out) {
    cnet_backend *be = t->unet->params.be;
    const long n = (long)t->grads.total;
    assert(t->grads.block); /* set_grads_to_none: no backward since the last step */
    /* A failed backend skipped ops of the forward or backward (engine/core/
     * backend.h), so the gradients are garbage: leave the weights, AdamW's
     * state and the loss scale as they were. */
    const int failed = cnet_backend_status(be, NULL);
    if (failed) {
        if (grad_norm_out) *grad_norm_out = NAN;
        release_grads(t, be, n);
        return failed;
    }
    /* the gradients this rank steps: all, or its shard (the sum of which it
     * received) */
    float *g = t->grads.block + t->adam.lo;
    const long ng = (long)(t->adam.hi - t->adam.lo);
    if (ls) be->scale(be, g, g, 1.0f / ls->scale, ng); /* exact: 2^-k */
    be->sum_squares(be, t->sumsq, g, ng);
    float sumsq = 0;
    if (t->shards)
        sum_shard_squares(t, be, &sumsq);
    else if (grad_norm_out || ls)
        be->download(be, &sumsq, t->sumsq, sizeof sumsq);
    if (grad_norm_out) *grad_norm_out = sqrtf(sumsq);
    const int apply = !ls || isfinite(sumsq);
    if (apply)
        adam_state_step(&t->adam, &t->grads, opt, step, opt->max_grad_norm > 0 ? t->sumsq : NULL);
    if (apply && t->shards) { /* every rank's stepped shard to every rank */
        cnet_error err = {0};
        cnet_params *p = trained(t);
        if (dist_allgather_device(t->cfg.comm, &t->stage, be, p->block, t->shards, &err))
            dist_comm_abort(t->cfg.comm, 1, err.msg);
    }
    if (ls) loss_scale_update(ls, apply);
    release_grads(t, be, n);
    return apply;
}
