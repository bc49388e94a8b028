/* One cnet train-vae gradient computation: the forward, the loss and the
 * backward of both halves of the VAE for a batch of images, as train_vae.c
 * runs it each step and tests/unit/test_vae_train_golden.c checks it
 * against torch:
 *
 *   moments = vae_encode_train(pixels)
 *   z, KL   = vae_latent_sample(moments, eps)          (train_vae_loss.h)
 *   recon   = vae_decode_train(z)
 *   loss    = mse(recon, pixels) + kl_weight * KL      (the backend's mse:
 *             the mean over every pixel and channel)
 *   grads  += d loss / d params (vae_decoder_backward, vae_latent_backward,
 *             vae_encoder_backward)
 *
 * Not here: the optimizer, the data, the noise draw (the caller's eps). */
#ifndef CNET_TRAIN_VAE_STEP_H
#define CNET_TRAIN_VAE_STEP_H

#include "engine/models/vae.h"

typedef struct vae_step {
    vae_model *vae; /* borrowed */
    cnet_arena keep, scratch;
    int B, R, h, L;
    float *recon, *d_recon, *z, *dz, *moments, *dmom, *scalar; /* device */
    float *h_mom, *h_z, *h_dz, *h_dmom;                        /* host */
} vae_step;

/* Buffers for batches of up to B images of R x R. */
int vae_step_init(vae_step *s, vae_model *vae, int B, int R, cnet_error *err);
void vae_step_free(vae_step *s);

/* Adds the gradient of loss_scale * loss for n <= B images pixels (device
 * [n, R, R, in], -1..1) with latent noise eps (host [n, h, w, L]) into g
 * (loss_scale: --mixed_precision fp16's, engine/train/loss_scale.h; else
 * 1); *rec and *kl: the two losses. */
int vae_step_grads(vae_step *s, const cnet_params *g, const float *pixels, const float *eps, int n,
                   double kl_weight, float loss_scale, double *rec, double *kl, cnet_error *err);

#endif
