/* One ControlNet training step as diffusers' examples/controlnet/
 * train_controlnet.py computes it, on device buffers (or, without a
 * ControlNet, one step of the whole UNet as examples/text_to_image/
 * train_text_to_image.py computes it: pred = unet(noisy, t, text) and
 * grads += dloss/d(every UNet parameter)):
 *
 *   noisy  = sqrt(acp[t]) x0 + sqrt(1 - acp[t]) noise          (DDPM add_noise)
 *   target = noise (epsilon) | sqrt(acp[t]) noise - sqrt(1 - acp[t]) x0  (v)
 *   down, mid = controlnet(noisy, t, text, cond (, added))
 *   pred  = unet(noisy, t, text, + down, + mid (, added))
 *   loss  = mean_b w_b * mean_i (pred - target)^2,  w_b = 1, or with Min-SNR
 *           (snr_gamma > 0): min(snr, gamma) / snr (epsilon), / (snr + 1) (v)
 *   grads += dloss/dparams (ControlNet only; the UNet is frozen)
 *
 * and the optimiser step: clip_grad_norm_(max_grad_norm) fused into
 * torch.optim.AdamW, or bitsandbytes' AdamW8bit with use_8bit_adam
 * (engine/train/adam_state.h). The VAE and text encoder run outside (their
 * outputs are inputs here, so latents and text states can be cached). Not
 * here: data loading, LR schedules, checkpoints (engine/train/trainer.c).
 *
 * SDXL (train_controlnet_sdxl.py): a UNet with addition_embed_type
 * "text_time" takes the added conditions (pooled text_embeds and the six
 * time ids) in both the ControlNet and the UNet forward; everything else
 * (loss, clipping, AdamW, the memory levers) is the same step.
 *
 * Sizes: B batch, h/w latent size, H/W image size, Nt text tokens. */
#ifndef CNET_TRAIN_STEP_H
#define CNET_TRAIN_STEP_H

#include <stdint.h>

#include "engine/dist/dist_device.h"
#include "engine/train/adam_state.h"
#include "engine/models/controlnet.h"
#include "engine/train/loss_scale.h"
#include "engine/sched/scheduler.h"
#include "engine/models/unet.h"

/* The largest (micro-)batch a step takes (--train_batch_size): the host
 * arrays of per-sample values (timesteps, loss weights, sample ids) hold
 * this many. */
#define TRAIN_MAX_BATCH 64

typedef enum { TRAIN_PRED_EPSILON = 0, TRAIN_PRED_V } train_prediction;

typedef struct train_step_config {
    train_prediction prediction;
    float snr_gamma; /* 0: plain MSE */
    int B, h, w, Nt; /* the batch shape every step uses */
    /* --gradient_checkpointing: keep only each block's inputs in the
     * forward, recompute the block in the backward (less activation memory,
     * about one more forward of time; same gradients). */
    int gradient_checkpointing;
    /* --set_grads_to_none (optimizer.zero_grad(set_to_none=True)): between
     * an optimizer step and the next backward the gradients do not exist;
     * the first backward of a step takes them from the top of the
     * activation arena, where the UNet's activations were during the
     * forward, and the optimizer step gives them back instead of zeroing
     * them. The activation arena then holds max(forward, backward +
     * gradients) instead of forward + a separate gradient block. */
    int set_grads_to_none;
    /* The most micro-batches a step accumulates (0 or 1: one): with
     * set_grads_to_none and more than one, the later micro-batches' forwards
     * run beside the live gradients, and the arena is sized for that. */
    int gradient_accumulation_steps;
    int use_8bit_adam; /* bitsandbytes-style 8-bit AdamW state (engine/train/adam_state.h) */
    /* The ranks of data-parallel training (borrowed; NULL: one process),
     * over which train_step_sync_grads sums the gradients. With
     * shard_optimizer (--shard_optimizer, ZeRO-1/2: engine/train/
     * adam_shard.h) and several ranks, this rank keeps AdamW's state for
     * its shard of the trained block only: the gradients are
     * reduce-scattered (each rank receives the sum of its shard), the
     * shard is clipped and stepped, and the weights all-gathered; with one
     * rank it changes nothing. */
    dist_comm *comm;
    int shard_optimizer;
} train_step_config;

typedef struct train_step {
    train_step_config cfg;
    unet_model *unet;         /* borrowed, frozen; trained when cn is NULL */
    controlnet_model *cn;     /* borrowed, trained; NULL: the UNet trains */
    sched *noise;             /* borrowed: the DDPM noise scheduler (add_noise, alphas_cumprod) */
    cnet_params grads;        /* owned, same layout as the trained table; grads.block is
                                 NULL between steps with set_grads_to_none */
    adam_state adam;          /* owned: AdamW's m and v, float32 or 8-bit */
    cnet_arena keep, scratch; /* activations for backward; temporaries */
    float *noisy, *target, *pred, *dpred, *weights; /* device */
    float *down[UNET_MAX_SKIPS], *d_down[UNET_MAX_SKIPS], *mid, *d_mid;
    float *loss, *sumsq; /* device scalars */
    int n_skips;
    size_t *shards;   /* owned, [comm->size + 1]: adam_shard_bounds when sharded, else NULL */
    dist_stage stage; /* host bucket of the collectives on a device */
} train_step;

int train_step_init(train_step *t, unet_model *unet, controlnet_model *cn, sched *noise,
                    const train_step_config *cfg, cnet_error *err);
void train_step_free(train_step *t);

/* Forward + backward of one micro-batch of B <= cfg.B samples (the last
 * batch of an epoch may be short): gradients ACCUMULATE into t->grads,
 * scaled by grad_scale (1 / gradient_accumulation_steps, times the loss
 * scale with fp16).
 * latents, noise [B,h,w,4], text [B,Nt,D], cond [B,H,W,3] (NULL when
 * the UNet trains): device;
 * timesteps: host. *loss_out receives the (unscaled) loss. */
int train_step_accumulate(train_step *t, int B, const float *latents, const float *noise,
                          const int64_t *timesteps, const float *text, const float *cond,
                          float grad_scale, float *loss_out, cnet_error *err);

/* The same with SDXL's added conditions (text_embeds [B,Dp] device,
 * time_ids [B,6] host), which a "text_time" UNet requires and any other
 * refuses; train_step_accumulate is this with added NULL. */
int train_step_accumulate_added(train_step *t, int B, const float *latents, const float *noise,
                                const int64_t *timesteps, const float *text, const float *cond,
                                const unet_added_cond *added, float grad_scale, float *loss_out,
                                cnet_error *err);

/* The same with train_text_to_image.py's --input_perturbation: add_noise
 * uses input_noise (= noise + input_perturbation * N(0,1), the caller's)
 * while the target keeps noise; NULL: noise (train_step_accumulate_added
 * is this with NULL). */
int train_step_accumulate_perturbed(train_step *t, int B, const float *latents, const float *noise,
                                    const float *input_noise, const int64_t *timesteps,
                                    const float *text, const float *cond,
                                    const unet_added_cond *added, float grad_scale, float *loss_out,
                                    cnet_error *err);

/* Sums the accumulated gradients over cfg.comm's ranks (DDP's allreduce),
 * or, sharded, gives each rank the sum of its shard (reduce-scatter; the
 * rest of its gradients stays its own). Nothing with one rank. */
int train_step_sync_grads(train_step *t, cnet_error *err);

/* Clips the accumulated gradients to max_grad_norm and applies AdamW
 * (step counts from 1), then zeroes the gradients (set_grads_to_none: gives
 * them back). *grad_norm_out receives the norm before clipping. Sharded:
 * the norm is the ranks' summed shard sums of squares, only the shard is
 * stepped, then the weights are all-gathered (a failed collective aborts
 * the run, naming this rank: dist_comm_abort).
 *
 * With a loss scale ls (NULL: none; engine/train/loss_scale.h), as GradScaler's
 * unscale_ + step + update: the gradients are first multiplied by
 * 1 / ls->scale; when their sum of squares is not finite the weights and
 * AdamW's state are left untouched (the gradients are still zeroed or given
 * back); then ls is updated. Returns 1 when AdamW ran, 0 when skipped, and
 * CNET_EBACKEND, touching nothing but the gradients, when the backend had
 * failed (cnet_backend_status names the failure). */
int train_step_optimize(train_step *t, const train_adamw *opt, int step, loss_scale *ls,
                        float *grad_norm_out);

#endif
