/* The training loop's state, shared by trainer.c (setup and loop) and
 * train_output.c (validation images, final save, model card). Private to
 * those two files. */
#ifndef CNET_TRAIN_INTERNAL_H
#define CNET_TRAIN_INTERNAL_H

#include <jansson.h>
#include <stdio.h>

#include "engine/core/atomic_file.h"
#include "engine/dist/dist_device.h"
#include "engine/models/controlnet.h"
#include "engine/data/dataset.h"
#include "engine/train/loss_scale.h"
#include "engine/train/lr_schedule.h"
#include "engine/sched/scheduler.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/ema.h"
#include "engine/train/train_batch.h"
#include "engine/train/train_sdxl.h"
#include "engine/train/train_step.h"
#include "engine/train/train_tracker.h"
#include "engine/train/trainer.h"

typedef struct trainer {
    const train_options *o;
    cnet_backend *be;
    const train_hooks *hooks;
    /* the ranks (train_options.comm, or solo: a group of one); rank 0 alone
     * writes and calls the hooks */
    dist_comm *comm, solo;
    dist_stage stage;  /* the host bucket of a device's allreduce */
    sd_base own_base;  /* loaded here when train_options.base is NULL */
    sd_base *base;     /* &own_base, or the caller's (borrowed, read-only) */
    vae_model own_vae; /* --pretrained_vae_model_name_or_path's */
    vae_model *vae;    /* &own_vae or the base's */
    train_sdxl sdxl;   /* an SDXL base's second text encoder */
    controlnet_model cn;
    json_t *cn_config; /* the trained model's config.json: the ControlNet's, or
                          the UNet's with train_unet */
    ema_model ema;     /* --use_ema */
    float *offset;     /* --noise_offset's draw, device [B, L] */
    float *perturbed;  /* --input_perturbation's noise, device [B, h, w, L] */
    cnet_sched_config ddpm_cfg;
    sched ddpm; /* the noise scheduler (DDPMScheduler of the base folder) */
    dataset ds;
    train_batcher tb;
    train_step ts;
    lr_schedule lr;
    float *noise; /* device [B, h, w, L] */
    FILE *metrics;
    train_tracker tracker; /* --report_to's event files */
    /* --mixed_precision fp16 (as asked, whatever the backend computes in):
     * GradScaler's dynamic loss scaling. Skipped steps count in global_step
     * but, as with accelerate, neither in AdamW's step nor the LR schedule's,
     * which both advance with global_step - scaler.skipped. */
    int loss_scaling;
    loss_scale scaler;
    int global_step, max_steps, updates_per_epoch, num_epochs;
    int64_t skipped_at_check;
    int have_base, have_ddpm_cfg, have_cn, have_ds, have_tb, have_ts, have_vae, have_sdxl;
    int have_ema;
    /* the most bytes of AdamW state any rank holds (--shard_optimizer: its
     * shard's; train_progress.optimizer_bytes_max) */
    size_t adam_bytes_max;
} trainer;

/* Validation images at the current step: images_<i>.png per (prompt, image)
 * pair, the conditioning image followed by num_validation_images results. */
int train_validate(trainer *t, cnet_error *err);
/* output_dir/config.json, diffusion_pytorch_model.safetensors, the final
 * validation images and README.md (the script's model card). */
int train_save_final(trainer *t, cnet_error *err);
/* train_unet: output_dir as StableDiffusionPipeline.save_pretrained writes
 * it: the base's text_encoder/, tokenizer/, vae/, scheduler/, a
 * StableDiffusionPipeline model_index.json, and unet/ with the trained
 * weights (the EMA's with --use_ema). train_unet_output.c. */
int train_unet_save_pipeline(trainer *t, cnet_error *err);
/* train_unet with --validation_prompts: log_validation now (the EMA weights
 * with --use_ema, the live ones restored after): logs/validation/
 * step_<step>_<i>.png and the trackers. train_unet_validation.c. */
int train_unet_validate(trainer *t, cnet_error *err);
/* train_unet, after train_unet_save_pipeline: the final round of images
 * (val_imgs_grid.png, with --validation_prompts) and README.md, the
 * script's model card. Leaves the saved weights in the UNet. */
int train_unet_finish(trainer *t, cnet_error *err);

#endif
