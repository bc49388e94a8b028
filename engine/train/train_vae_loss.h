/* cnet train-vae's latent sample and KL term, on the host (the latents are
 * small; train_batch.c samples its latents there too): diffusers'
 * DiagonalGaussianDistribution (models/autoencoders/vae.py) of the
 * encoder's moments [B, h, w, 2L] (per pixel L means, then L log-variances):
 *
 *   logvar_c = clamp(logvar, -30, 20), std = exp(0.5 logvar_c)
 *   z = mean + std * eps                          (eps ~ N(0, 1), seeded)
 *   KL = 0.5 sum (mean^2 + exp(logvar_c) - 1 - logvar_c)
 *
 * KL summed over a sample's latent elements, as DiagonalGaussian.kl()
 * does, then averaged over the batch, as the LDM autoencoder's loss
 * (torch.sum(kl) / batch). The clamp passes no gradient to a logvar outside
 * [-30, 20] (torch.clamp's backward). Not here: the reconstruction loss
 * (the backend's mse), the models. */
#ifndef CNET_TRAIN_VAE_LOSS_H
#define CNET_TRAIN_VAE_LOSS_H

#define VAE_LOGVAR_CLAMP_MIN -30.0f
#define VAE_LOGVAR_CLAMP_MAX 20.0f

/* z [B, hw, L] from moments and eps (same layout as z); returns the
 * batch-mean KL. hw = h * w. */
double vae_latent_sample(float *z, const float *moments, const float *eps, int B, long hw, int L);

/* dmoments [B, hw, 2L] (overwrite) from dz (the gradient of the loss to z)
 * and kl_weight, the KL's factor in the loss (the 1/B of the batch mean is
 * applied here). */
void vae_latent_backward(float *dmoments, const float *moments, const float *eps, const float *dz,
                         double kl_weight, int B, long hw, int L);

#endif
