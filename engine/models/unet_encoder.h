/* The part a UNet2DConditionModel and a ControlNetModel share: timestep
 * embedding (Timesteps + TimestepEmbedding), conv_in, the down blocks and
 * the mid block — same parameter names in both checkpoints, which is what
 * makes ControlNetModel.from_unet a copy. Forward and backward, NHWC.
 *
 *   temb     = linear_2(silu(linear_1(sinusoidal(t))))      [B, 4*C0]
 *   h        = conv_in(sample) (+ cond, the ControlNet's conditioning
 *              embedding, when given)                       [B, h, w, C0]
 *   skips    = h, then every down-block output              (encoder order)
 *   mid      = mid_block(last skip)                         [B, h/2^k, w/2^k, Ck]
 *
 * Sizes: B batch, h/w latent size, C0 = block_out_channels[0], Nt text
 * tokens. */
#ifndef CNET_UNET_ENCODER_H
#define CNET_UNET_ENCODER_H

#include "engine/models/unet_blocks.h"

typedef struct unet_encoder {
    cnet_unet_config cfg;
    nn_conv conv_in;
    nn_linear time_linear_1, time_linear_2;
    unet_down_block down[UNET_MAX_LEVELS];
    unet_mid_block mid;
    int temb_channels;
} unet_encoder;

/* Activation sizes of one forward, for the caller's buffers. */
typedef struct unet_sizes {
    int n_skips;
    size_t skip_floats[UNET_MAX_SKIPS];
    int skip_h[UNET_MAX_SKIPS], skip_w[UNET_MAX_SKIPS];
    int mid_h, mid_w;
    size_t mid_floats, max_floats; /* max: the largest activation of any block */
} unet_sizes;

int unet_encoder_declare(unet_encoder *e, cnet_params *p, const cnet_unet_config *L,
                         cnet_error *err);
void unet_encoder_free(unet_encoder *e);
/* Checks h/w (the down path must halve evenly) and fills the sizes. */
int unet_encoder_sizes(const unet_encoder *e, int B, int h, int w, unet_sizes *s, cnet_error *err);

/* What the time embedding's backward reads. */
typedef struct unet_time_acts {
    float *proj;        /* sinusoidal features [B, C0] */
    float *h1, *h1_act; /* linear_1 output and its SiLU [B, T] */
    float *temb;        /* linear_2 output [B, T] */
} unet_time_acts;

/* Gradient checkpointing (diffusers' enable_gradient_checkpointing), per
 * block: with checkpoint set (by the caller, before the forward), the
 * forward still runs each down / mid block with its activations but into
 * keep's tail, which it releases right after, so keep holds only what
 * outlives the blocks (the skips, which are the blocks' inputs and outputs).
 * The backward re-runs each block's forward into keep's tail, then its
 * backward, then releases the tail. Same kernels in the same order: the
 * gradients are bit-identical on the CPU backend. */
typedef struct unet_encoder_acts {
    int checkpoint;               /* input */
    cnet_arena *keep;             /* the forward's keep arena (recompute space) */
    const float *temb_act, *text; /* borrowed: the caller keeps them alive */
    int Nt;
    unet_down_acts down[UNET_MAX_LEVELS];
    unet_mid_acts mid;
} unet_encoder_acts;

/* temb[B, 4*C0] and temb_act = silu(temb) from host timesteps [B];
 * proj [B, C0] (the sinusoidal features) is also written when non-NULL.
 * With acts, the buffers backward reads are allocated from keep. */
int unet_encoder_time(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch,
                      float *temb_act, float *temb, float *proj, const float *timesteps, int B,
                      cnet_arena *keep, unet_time_acts *acts, cnet_error *err);
/* Weight gradients of time_embedding.linear_1/2 from dtemb_act. */
int unet_encoder_time_backward(const unet_encoder *e, const cnet_params *p, const cnet_params *g,
                               cnet_arena *scratch, const float *dtemb_act,
                               const unet_time_acts *acts, int B, cnet_error *err);
/* sample [B,h,w,in] (+ cond [B,h,w,C0] or NULL) -> skips[0..n_skips-1] and
 * mid [B,mid_h,mid_w,Ck]. Training (acts non-NULL): skips must be buffers
 * that stay alive until backward. */
int unet_encoder_forward(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch,
                         float *const *skips, float *mid, const float *sample, const float *cond,
                         const float *temb_act, const float *text, int B, int h, int w, int Nt,
                         cnet_arena *keep, unet_encoder_acts *acts, cnet_error *err);
/* Backward of the encoder: dskips hold the gradient that reached each skip
 * from outside and are updated in place; on return dskips[0] is the full
 * gradient of conv_in's output (= of the added cond). dtemb_act
 * accumulates. conv_in gets weight gradients only (no gradient to the
 * sample). */
int unet_encoder_backward(const unet_encoder *e, const cnet_params *p, const cnet_params *g,
                          cnet_arena *scratch, float *const *dskips, float *dtemb_act,
                          const float *dmid, float *const *skips, const float *sample,
                          const unet_encoder_acts *acts, int B, int h, int w, cnet_error *err);

#endif
