/* ResnetBlock2D (diffusers models/resnet.py), forward, NHWC.
 *
 *   h = conv1(silu(norm1(x)))
 *   h = h + time_emb_proj(silu(temb))       (when the block has a time input)
 *   h = conv2(silu(norm2(h)))               (dropout is inference-off)
 *   out = (shortcut(x) + h) / output_scale_factor,
 *   shortcut = conv_shortcut (1x1) when in != out, else identity.
 *
 * The caller passes silu(temb) once per model (`temb_act`), since every
 * resnet of a UNet applies the same SiLU to the same embedding.
 * Only resnet_time_scale_shift "default" exists here (config refuses others).
 * Sizes: B batch, HW = H*W pixels, Cin/Cout channels, T temb channels. */
#ifndef CNET_RESNET_H
#define CNET_RESNET_H

#include "arena.h"
#include "nn.h"

typedef struct resnet_block {
    nn_norm norm1, norm2;
    nn_conv conv1, conv2, shortcut;
    nn_linear time_proj;
    int in, out, has_time, has_shortcut;
    float output_scale;
} resnet_block;

/* temb_channels 0: no time input (the VAE's resnets). */
int resnet_declare(resnet_block *r, cnet_params *p, const char *prefix, int in, int out,
                   int temb_channels, int groups, float eps, float output_scale, cnet_error *err);

/* out[B, HW, Cout] from x[B, H, W, Cin] and temb_act[B, T] (NULL without
 * time input). out must not alias x. */
int resnet_forward(const resnet_block *r, const cnet_params *p, cnet_arena *scratch, float *out,
                   const float *x, const float *temb_act, int B, int H, int W, cnet_error *err);

#endif
