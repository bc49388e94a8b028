/* The part a UNet2DConditionModel and a ControlNetModel share: timestep
 * embedding (Timesteps + TimestepEmbedding), conv_in, the down blocks and
 * the mid block — same parameter names in both checkpoints, which is what
 * makes ControlNetModel.from_unet a copy. Forward and backward, NHWC.
 *
 *   temb     = linear_2(silu(linear_1(sinusoidal(t))))      [B, 4*C0]
 *              (+ aug_emb with addition_embed_type "text_time", SDXL:
 *               aug_emb = add_embedding(cat(text_embeds, time_embeds)),
 *               time_embeds = add_time_proj(time_ids) [B, 6*A])
 *   h        = conv_in(sample) (+ cond, the ControlNet's conditioning
 *              embedding, when given)                       [B, h, w, C0]
 *   skips    = h, then every down-block output              (encoder order)
 *   mid      = mid_block(last skip)                         [B, h/2^k, w/2^k, Ck]
 *
 * Sizes: B batch, h/w latent size, C0 = block_out_channels[0], Nt text
 * tokens, T = 4*C0, A = addition_time_embed_dim, Dp = text_embeds width,
 * P = Dp + 6*A = projection_class_embeddings_input_dim. */
#ifndef CNET_UNET_ENCODER_H
#define CNET_UNET_ENCODER_H

#include "engine/models/unet_blocks.h"

/* The added conditions of an SDXL ("text_time") UNet or ControlNet, the
 * diffusers forward's added_cond_kwargs; pass NULL for SD 1.x / 2.x models
 * (and a text_time model refuses NULL). Both borrowed. */
typedef struct unet_added_cond {
    const float *text_embeds; /* DEVICE [B, Dp]: the pooled, projected text_encoder_2 output */
    const float *time_ids;    /* HOST [B, 6]: orig_h, orig_w, crop_top, crop_left, target_h,
                                 target_w (float32, as diffusers' time_ids) */
} unet_added_cond;

typedef struct unet_encoder {
    cnet_unet_config cfg;
    nn_conv conv_in;
    nn_linear time_linear_1, time_linear_2;
    nn_linear add_linear_1, add_linear_2; /* add_embedding.linear_1/2 (text_time only) */
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
    float *temb;        /* linear_2 output (+ aug_emb) [B, T] */
    float *add_embeds;  /* text_time: add_embedding's input [B, P]; else NULL */
    float *a1, *a1_act; /* text_time: add_embedding.linear_1 output and its SiLU [B, T] */
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

/* Floats unet_encoder_time takes from scratch without acts (for the
 * models' scratch bounds). */
size_t unet_encoder_time_floats(const unet_encoder *e, int B);
/* aug_emb [B, T] = add_embedding(add_embeds) of a text_time encoder, with
 * add_embeds [B, P] = cat(added->text_embeds, time_embeds) written to
 * add_embeds (a device buffer the caller owns). a1 and a1_act [B, T]
 * receive linear_1's output and its SiLU (backward reads them). Fails when
 * the encoder has no text_time embedding or added is NULL. */
int unet_encoder_added(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch, float *aug,
                       float *add_embeds, float *a1, float *a1_act, const unet_added_cond *added,
                       int B, cnet_error *err);
/* temb[B, 4*C0] and temb_act = silu(temb) from host timesteps [B], plus
 * aug_emb for a text_time encoder (added required then, ignored
 * otherwise); proj [B, C0] (the sinusoidal features) is also written when
 * non-NULL. With acts, the buffers backward reads are allocated from keep. */
int unet_encoder_time(const unet_encoder *e, const cnet_params *p, cnet_arena *scratch,
                      float *temb_act, float *temb, float *proj, const float *timesteps,
                      const unet_added_cond *added, int B, cnet_arena *keep, unet_time_acts *acts,
                      cnet_error *err);
/* Weight gradients of time_embedding.linear_1/2 (and add_embedding.linear_1/2
 * of a text_time encoder) from dtemb_act. */
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
