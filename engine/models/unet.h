/* UNet2DConditionModel with optional ControlNet residuals (diffusers
 * models/unets/unet_2d_condition.py), NHWC: forward, the backward of the
 * frozen UNet from its output's gradient to the residuals' (ControlNet
 * training), and the backward to every parameter (train_text_to_image.py,
 * the whole UNet trained).
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
 * re-runs one block's forward into keep's tail before its backward.
 * all_params (input, set before the forward): the forward also keeps what
 * the time embedding's and the encoder's backward read (the skips, the
 * down and mid blocks' activations, or with checkpoint only the skips), so
 * that unet_backward_params reaches every parameter. */
typedef struct unet_acts {
    int checkpoint, all_params;
    unet_time_acts time;          /* all_params */
    unet_encoder_acts enc;        /* all_params */
    const float *sample;          /* all_params: conv_in's input (borrowed) */
    int sample_h, sample_w, B;    /* the sample size */
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

/* The trained UNet's backward (acts from a forward with all_params set and
 * no residuals): the gradient of every parameter ACCUMULATES into g (same
 * layout as m->params) from dout = dL/d(out): conv_out, conv_norm_out, the
 * up blocks, the mid and down blocks, conv_in and the time embedding. */
int unet_backward_params(unet_model *m, const cnet_params *g, cnet_arena *scratch,
                         const float *dout, const unet_acts *acts, cnet_error *err);

/* Loads a diffusers component folder: config.json and its weights
 * (engine/config/model_files.h). On failure m is left freed. */
int unet_open(unet_model *m, cnet_backend *be, const char *dir, cnet_error *err);

#endif
