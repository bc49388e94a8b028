/* cnet train-vae: the whole AutoencoderKL (encoder and decoder) trained on
 * a dataset's images with loss = MSE(reconstruction, image) + kl_weight *
 * KL(q(z|x) || N(0, 1)), the pixel MSE of diffusers' VAE fine-tuning
 * recipes (the LDM autoencoder's L2 pixel loss without its LPIPS and
 * discriminator terms) and the KL as engine/train/train_vae_loss.h
 * averages it. The options are train_options' (trainer.h) with
 * train_text_to_image.py's meaning: --resolution, --train_batch_size,
 * --max_train_steps (else --num_train_epochs), the LR schedule and
 * --scale_lr, AdamW (--max_grad_norm),
 * --checkpointing_steps / --checkpoints_total_limit /
 * --resume_from_checkpoint, --seed, --mixed_precision (fp16 with
 * GradScaler's loss scaling, engine/train/loss_scale.h, as train-unet),
 * --center_crop / --random_flip (random_crop, random_flip), plus kl_weight.
 * The loop: engine/train/train_vae.c. */
#ifndef CNET_TRAIN_VAE_H
#define CNET_TRAIN_VAE_H

#include "engine/train/trainer.h"

/* The default --kl_weight (as the LDM autoencoder configs' kl_weight). */
#define TRAIN_VAE_KL_WEIGHT 1e-6
/* The largest --kl_weight: the KL as heavy as the reconstruction. */
#define TRAIN_VAE_KL_WEIGHT_MAX 1.0

/* Trains o->pretrained_model_name_or_path's VAE (its vae/ folder, or the
 * folder itself) on o->train_data_dir into o->output_dir; 0 when
 * max_train_steps were done or a hook stopped it (*stopped set). */
int train_vae_run(const train_options *o, cnet_backend *be, const train_hooks *hooks, int *stopped,
                  cnet_error *err);

#endif
