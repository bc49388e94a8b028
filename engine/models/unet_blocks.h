/* The blocks of a SD UNet and of a ControlNet's encoder copy, forward and
 * backward, NHWC
 * (diffusers models/unets/unet_2d_blocks.py):
 *
 *   down block i:  resnets (+ Transformer2D after each when it is a
 *                  CrossAttnDownBlock2D), then a stride-2 conv downsampler
 *                  except on the last level. Every resnet/attention output
 *                  and the downsampler output is a skip sample.
 *   mid block:     resnet, Transformer2D, resnet (UNetMidBlock2DCrossAttn).
 *   up block i:    layers+1 resnets, each on concat(h, skip.pop()) (+
 *                  Transformer2D for CrossAttnUpBlock2D), then nearest 2x
 *                  + conv upsampler except on the last level.
 *
 * The architecture comes from a UNet2DConditionModel or ControlNetModel
 * config (engine/config/config.h), whose per-block lists are already
 * resolved. Sizes: B batch, H/W latent size at the current level, Nt text
 * tokens. */
#ifndef CNET_UNET_BLOCKS_H
#define CNET_UNET_BLOCKS_H

#include "engine/core/arena.h"
#include "engine/config/config.h"
#include "engine/core/nn.h"
#include "engine/models/resnet.h"
#include "engine/models/transformer2d.h"

#define UNET_MAX_LEVELS CNET_MAX_BLOCKS
#define UNET_MAX_LAYERS CNET_MAX_LAYERS
#define UNET_MAX_SKIPS (1 + UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1))

typedef struct unet_down_block {
    resnet_block resnets[UNET_MAX_LAYERS];
    transformer2d attns[UNET_MAX_LAYERS];
    nn_conv downsample;
    int n_layers, has_attn, has_downsample, in, out;
} unet_down_block;

typedef struct unet_mid_block {
    resnet_block resnets[2];
    transformer2d attn;
    int has_attn, channels; /* UNetMidBlock2D: one resnet, no attention */
} unet_mid_block;

typedef struct unet_up_block {
    resnet_block resnets[UNET_MAX_LAYERS + 1];
    transformer2d attns[UNET_MAX_LAYERS + 1];
    nn_conv upsample;
    int n_layers, has_attn, has_upsample, out;
    int skip_channels[UNET_MAX_LAYERS + 1]; /* channels of the skip each resnet concatenates */
} unet_up_block;

/* Number of skip samples the encoder produces (conv_in output included). */
int unet_n_skips(const cnet_unet_config *L);
/* Channels of skip sample i (encoder order). */
int unet_skip_channels(const cnet_unet_config *L, int i);

int unet_down_declare(unet_down_block *d, cnet_params *p, const cnet_unet_config *L, int level,
                      int temb_channels, cnet_error *err);
int unet_mid_declare(unet_mid_block *m, cnet_params *p, const cnet_unet_config *L,
                     int temb_channels, cnet_error *err);
int unet_up_declare(unet_up_block *u, cnet_params *p, const cnet_unet_config *L, int up_index,
                    int temb_channels, cnet_error *err);
void unet_down_free(unet_down_block *d);
void unet_mid_free(unet_mid_block *m);
void unet_up_free(unet_up_block *u);

/* What each block's backward reads (training forwards fill them). */
typedef struct unet_down_acts {
    const float *x;
    int H, W, first_skip; /* input size; index of the block's first skip */
    resnet_acts res[UNET_MAX_LAYERS];
    transformer2d_acts attn[UNET_MAX_LAYERS];
} unet_down_acts;

typedef struct unet_mid_acts {
    int H, W;
    resnet_acts res[2];
    transformer2d_acts attn;
} unet_mid_acts;

typedef struct unet_up_acts {
    int H, W; /* input size */
    int skip_index[UNET_MAX_LAYERS + 1];
    resnet_acts res[UNET_MAX_LAYERS + 1];
    transformer2d_acts attn[UNET_MAX_LAYERS + 1];
    float *upsampled; /* nearest-2x output = the upsampler conv's input */
} unet_up_acts;

/* Every forward takes (keep, acts): with acts non-NULL the activations its
 * backward reads are allocated from keep and recorded; the caller keeps the
 * block's inputs (x, skips, temb_act, text) alive until backward. */

/* x[B,H,W,in] -> skip samples written to skips[*n_skips ...] (device
 * buffers the caller sized with unet_skip_channels at each level);
 * the block's output is the last of them. *H and *W become the output size. */
int unet_down_forward(const unet_down_block *d, const cnet_params *p, cnet_arena *scratch,
                      const float *x, const float *temb_act, const float *text, int B, int *H,
                      int *W, int Nt, float *const *skips, int *n_skips, cnet_arena *keep,
                      unet_down_acts *acts, cnet_error *err);
/* Backward of a down block. dskips (indexed like skips) hold the gradient
 * that reached each of the block's skips from outside (zero convs, the next
 * block); they are updated in place as gradients flow back through the
 * block. The gradient of the block input ACCUMULATES into dx; so does
 * dtemb_act. */
int unet_down_backward(const unet_down_block *d, const cnet_params *p, const cnet_params *g,
                       cnet_arena *scratch, float *dx, float *dtemb_act, float *const *dskips,
                       float *const *skips, const unet_down_acts *acts, int B, cnet_error *err);
/* out[B,H,W,C] from x (out must not alias x). */
int unet_mid_forward(const unet_mid_block *m, const cnet_params *p, cnet_arena *scratch, float *out,
                     const float *x, const float *temb_act, const float *text, int B, int H, int W,
                     int Nt, cnet_arena *keep, unet_mid_acts *acts, cnet_error *err);
/* dx (overwrite) from dout; dtemb_act accumulates. */
int unet_mid_backward(const unet_mid_block *m, const cnet_params *p, const cnet_params *g,
                      cnet_arena *scratch, float *dx, float *dtemb_act, const float *dout,
                      const unet_mid_acts *acts, int B, cnet_error *err);
/* out from x, consuming skip samples from the end (*n_skips decreases);
 * *H and *W become the output size (doubled when the block upsamples). */
int unet_up_forward(const unet_up_block *u, const cnet_params *p, cnet_arena *scratch, float *out,
                    const float *x, const float *temb_act, const float *text, int B, int *H, int *W,
                    int Nt, const float *const *skips, int *n_skips, cnet_arena *keep,
                    unet_up_acts *acts, cnet_error *err);
/* dx (overwrite) and the gradient of every skip the block consumed,
 * written (overwrite) to dskips[skip index]; with g, the parameter
 * gradients accumulate into g, and with dtemb_act (NULL: not needed) the
 * time embedding's gradient accumulates there. */
int unet_up_backward(const unet_up_block *u, const cnet_params *p, const cnet_params *g,
                     cnet_arena *scratch, float *dx, float *dtemb_act, float *const *dskips,
                     const float *dout, const unet_up_acts *acts, int B, cnet_error *err);

#endif
