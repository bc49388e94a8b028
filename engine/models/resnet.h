/* ResnetBlock2D (diffusers models/resnet.py), forward and backward, NHWC.
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

#include "engine/core/arena.h"
#include "engine/core/nn.h"

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

/* What resnet_backward reads, kept by a training forward (llm.c style).
 * x and temb_act are borrowed: the caller keeps them alive. */
typedef struct resnet_acts {
    const float *x, *temb_act;
    float *mean1, *rstd1, *a1; /* a1 = silu(norm1(x))      [B, HW, Cin] */
    float *h1;                 /* conv1(a1) + time proj    [B, HW, Cout] */
    float *mean2, *rstd2, *a2; /* a2 = silu(norm2(h1))     [B, HW, Cout] */
} resnet_acts;

/* out[B, HW, Cout] from x[B, H, W, Cin] and temb_act[B, T] (NULL without
 * time input). out must not alias x. When acts is non-NULL the buffers
 * backward reads are allocated from `keep` and recorded there. */
int resnet_forward(const resnet_block *r, const cnet_params *p, cnet_arena *scratch, float *out,
                   const float *x, const float *temb_act, int B, int H, int W, cnet_arena *keep,
                   resnet_acts *acts, cnet_error *err);

/* dx[B, HW, Cin] (overwrite) from dout; dtemb_act[B, T] ACCUMULATES (every
 * resnet of a model reads the same temb_act; NULL: not needed). g: gradient
 * table of p or NULL (frozen). */
int resnet_backward(const resnet_block *r, const cnet_params *p, const cnet_params *g,
                    cnet_arena *scratch, float *dx, float *dtemb_act, const float *dout,
                    const resnet_acts *acts, int B, int H, int W, cnet_error *err);

#endif
