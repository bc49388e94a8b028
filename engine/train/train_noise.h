/* train_text_to_image.py's --noise_offset on the sampled noise, on device
 * buffers:
 *
 *   noise += noise_offset * torch.randn((B, C, 1, 1))
 *
 * in place, so the offset noise is both what add_noise uses and the epsilon
 * target (for v-prediction it enters get_velocity). torch rounds the Python
 * float noise_offset to float32 and multiplies (one rounding), then adds
 * (a second), one N(0,1) value per (sample, channel) broadcast over the
 * latent's pixels. Not here: drawing the values (the caller's Philox
 * stream), the rest of the step (engine/train/train_step.h). */
#ifndef CNET_TRAIN_NOISE_H
#define CNET_TRAIN_NOISE_H

#include "engine/core/backend.h"

/* noise [B,HW,C] (NHWC) += float32(noise_offset) * draw[B,C]; draw is
 * scaled in place. */
void train_noise_offset(cnet_backend *be, float *noise, float *draw, double noise_offset, int B,
                        int HW, int C);

#endif
