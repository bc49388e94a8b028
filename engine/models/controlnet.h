/* ControlNetModel (diffusers models/controlnet.py), NHWC: forward, and the
 * backward from the residuals' gradients to its parameters (training).
 *
 *   cond_emb = conv_out(silu(blocks(silu(conv_in(cond)))))   conditioning
 *              embedding: stride-2 convs bring the image to latent size
 *   skips, mid = encoder(sample, t (+ SDXL's added conditions), text,
 *                        + cond_emb after conv_in)
 *   down[i] = controlnet_down_blocks[i](skips[i]) * scale_i  (1x1 zero convs)
 *   mid_res = controlnet_mid_block(mid) * scale_mid
 *   scale_i = conditioning_scale, or in guess mode
 *             logspace(-1, 0, n+1)[i] * conditioning_scale (mid: the last).
 *
 * Sizes: B batch, h/w latent size, H/W = image size (h * 2^k), Nt tokens. */
#ifndef CNET_CONTROLNET_H
#define CNET_CONTROLNET_H

#include "engine/models/unet_encoder.h"

#define CONTROLNET_MAX_COND_LEVELS 8

typedef struct controlnet_model {
    cnet_params params;
    unet_encoder enc;
    nn_conv cond_in, cond_out;
    nn_conv cond_blocks[2 * CONTROLNET_MAX_COND_LEVELS];
    int n_cond_blocks, cond_channels;
    nn_conv zero_down[UNET_MAX_SKIPS];
    nn_conv zero_mid;
    int n_skips;
} controlnet_model;

/* cfg: a ControlNetModel config (cnet_controlnet_config_load). declare
 * names and shapes the parameters without allocating them; init also
 * allocates. */
int controlnet_declare(controlnet_model *m, cnet_backend *be, const cnet_unet_config *cfg,
                       cnet_error *err);
int controlnet_init(controlnet_model *m, cnet_backend *be, const cnet_unet_config *cfg,
                    cnet_error *err);
void controlnet_free(controlnet_model *m);
size_t controlnet_scratch_bytes(const controlnet_model *m, int B, int h, int w, int Nt);
/* The image size factor: H = h * controlnet_image_factor(m). */
int controlnet_image_factor(const controlnet_model *m);

/* What the conditioning embedding's backward reads: each conv's output
 * before (pre) and after (post) its SiLU. */
typedef struct controlnet_cond_acts {
    const float *cond;
    int H, W;
    float *pre[2 * CONTROLNET_MAX_COND_LEVELS + 1], *post[2 * CONTROLNET_MAX_COND_LEVELS + 1];
} controlnet_cond_acts;

/* Everything the full ControlNet backward reads. checkpoint (input, set
 * before the forward): gradient checkpointing of the conditioning embedding
 * and of every down / mid block (see unet_encoder_acts). */
typedef struct controlnet_acts {
    int checkpoint;
    unet_time_acts time;
    controlnet_cond_acts cond;
    unet_encoder_acts enc;
    float *skips[UNET_MAX_SKIPS]; /* encoder skips = zero conv inputs (in keep) */
    float *mid_h, *temb_act;
    const float *sample;
    float scale;
    int guess_mode, B, h, w;
} controlnet_acts;

/* The conditioning embedding alone: cond [B,H,W,cc] -> emb [B,H/f,W/f,C0]. */
int controlnet_cond_embedding(const controlnet_model *m, cnet_arena *scratch, float *emb,
                              const float *cond, int B, int H, int W, cnet_arena *keep,
                              controlnet_cond_acts *acts, cnet_error *err);

/* down[i] (n_skips device buffers sized as the UNet's skips) and mid from
 * sample [B,h,w,C], cond [B,H,W,conditioning_channels] in [0,1], host
 * timesteps [B], text [B,Nt,Dt], added (SDXL's text_embeds and time_ids,
 * unet_encoder.h; NULL for SD 1.x / 2.x). With acts (training), everything backward
 * reads is allocated from keep; sample, cond and text must stay alive. */
int controlnet_forward(controlnet_model *m, cnet_arena *scratch, float *const *down, float *mid,
                       const float *sample, const float *cond, const float *timesteps,
                       const float *text, const unet_added_cond *added, float conditioning_scale,
                       int guess_mode, int B, int h, int w, int Nt, cnet_arena *keep,
                       controlnet_acts *acts, cnet_error *err);
/* Full backward: every parameter gradient ACCUMULATES into g (same layout
 * as m->params, add_embedding.* included for SDXL) from d_down[i] =
 * dL/d(down[i]) and d_mid. */
int controlnet_backward(controlnet_model *m, const cnet_params *g, cnet_arena *scratch,
                        const float *const *d_down, const float *d_mid, const controlnet_acts *acts,
                        cnet_error *err);

/* Loads a diffusers component folder: config.json and its weights
 * (engine/config/model_files.h). On failure m is left freed. */
int controlnet_open(controlnet_model *m, cnet_backend *be, const char *dir, cnet_error *err);

#endif
