/* UNet2DConditionModel with optional ControlNet residuals (diffusers
 * models/unets/unet_2d_condition.py), NHWC: forward, and the backward of
 * the frozen UNet from its output's gradient to the residuals' (training).
 *
 *   skips, mid = encoder(sample, t, text)
 *   skips[i] += down_residuals[i];  mid += mid_residual      (ControlNet)
 *   h = up_blocks(mid, skips)
 *   out = conv_out(silu(conv_norm_out(h)))
 *
 *   (SDXL, addition_embed_type "text_time": the time embedding gets
 *   aug_emb from the added conditions, see unet_encoder.h)
 *
 * Not here: class embeddings and other addition embeddings (the config
 * loader refuses them). Sizes: B batch, h/w latent size, Nt text tokens, Dt text dim. */
#ifndef CNET_UNET_H
#define CNET_UNET_H

#include "engine/models/unet_encoder.h"

typedef struct unet_model {
    cnet_params params;
    unet_encoder enc;
    unet_up_block up[UNET_MAX_LEVELS];
    nn_norm norm_out;
    nn_conv conv_out;
} unet_model;

/* Declares every parameter of the config (names and shapes) without
 * allocating them; unet_init also allocates. */
int unet_declare(unet_model *m, cnet_backend *be, const cnet_unet_config *L, cnet_error *err);
int unet_init(unet_model *m, cnet_backend *be, const cnet_unet_config *L, cnet_error *err);
void unet_free(unet_model *m);

/* Scratch bytes a forward at this size takes (skips, temporaries). */
size_t unet_scratch_bytes(const unet_model *m, int B, int h, int w, int Nt);

/* What the up-path backward reads (nothing of the down and mid blocks).
 * checkpoint (input, set before the forward): gradient checkpointing per up
 * block, as in unet_encoder_acts: the forward keeps each up block's input,
 * the skips (with the residuals added) and silu(temb); the backward
 * re-runs one block's forward into keep's tail before its backward. */
typedef struct unet_acts {
    int checkpoint;
    cnet_arena *keep;             /* the forward's keep arena (recompute space) */
    float *skips[UNET_MAX_SKIPS]; /* in keep when checkpointing */
    const float *up_in[UNET_MAX_LEVELS], *temb_act, *text;
    int Nt;
    unet_up_acts up[UNET_MAX_LEVELS];
    float *h, *act; /* conv_norm_out input and silu(norm(h)) = conv_out input */
    float *mean, *rstd;
    int H, W;
} unet_acts;

/* out[B,h,w,out_channels] from sample[B,h,w,in_channels], host timesteps
 * [B] and text[B,Nt,Dt] (all device buffers but timesteps); added: SDXL's
 * text_embeds and time_ids (unet_encoder.h), NULL for SD 1.x / 2.x.
 * down_residuals (n_skips device buffers in skip order) and mid_residual may
 * be NULL. With acts (training), the up path keeps what backward reads in
 * keep. */
int unet_forward(unet_model *m, cnet_arena *scratch, float *out, const float *sample,
                 const float *timesteps, const float *text, const unet_added_cond *added,
                 const float *const *down_residuals, const float *mid_residual, int B, int h, int w,
                 int Nt, cnet_arena *keep, unet_acts *acts, cnet_error *err);
/* The frozen UNet's backward through the up path only (activation
 * gradients, no weight gradients): d_down[i] (overwrite) = dL/d(residual i)
 * and d_mid (overwrite) = dL/d(mid residual) from dout = dL/d(out). */
int unet_backward(unet_model *m, cnet_arena *scratch, float *const *d_down, float *d_mid,
                  const float *dout, const unet_acts *acts, int B, cnet_error *err);

/* Loads a diffusers component folder: config.json and its weights
 * (engine/config/model_files.h). On failure m is left freed. */
int unet_open(unet_model *m, cnet_backend *be, const char *dir, cnet_error *err);

#endif
