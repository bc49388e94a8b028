/* The ControlNet text-to-image pipeline: diffusers'
 * StableDiffusionControlNetPipeline.__call__ and, for a base with a second
 * text encoder, StableDiffusionXLControlNetPipeline.__call__ (v0.27.2) over
 * the engine's models, on one backend. A request without ControlNets
 * (n_controlnets 0) is StableDiffusionPipeline.__call__ (and the XL one):
 * the same loop, the UNet called without residuals.
 *
 *   embeds = text_encoder(tokens(prompt)) [+ negative first, for CFG]
 *   latents = N(0,1) (Philox, seed) or the given latents, * init_noise_sigma
 *   for each timestep t_i:
 *     x   = scale_model_input(cat([latents] * 2) if CFG else latents)
 *     res = sum over ControlNets k of controlnet_k(x, t, embeds, image_k,
 *           scale_k * keep_k(i))       keep = 0 outside [start_k, end_k)
 *           (guess mode + CFG: the ControlNets see only the conditional
 *           half; the unconditional half gets zero residuals)
 *     eps = unet(x, t, embeds, + res)
 *     (SDXL: UNet and ControlNets also get added_cond_kwargs, the pooled
 *      text_embeds and the time ids, pipeline_sdxl.h)
 *     eps = uncond + guidance * (cond - uncond)         (CFG: guidance > 1)
 *     latents = scheduler.step(eps, t, latents)
 *   image = clamp(vae.decode(latents / scaling_factor) / 2 + 0.5, 0, 1)
 *
 * Memory: the text encoders, the denoising loop and the VAE decode each run
 * in an arena of their own, sized for the request; the previous phase's is
 * freed first (and the loop's buffers before the decode), so the peak is
 * the largest phase's, not their sum.
 *
 * Every per-element update is a backend op; the host only tokenises, reads
 * the schedule tables and downloads the final image. Not here: image files
 * and preprocessing (the caller passes control images as float [0,1] NHWC
 * of the output size), model loading. */
#ifndef CNET_PIPELINE_H
#define CNET_PIPELINE_H

#include <stdint.h>

#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/sched/scheduler.h"
#include "engine/text/tokenizer.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"

#define PIPE_MAX_CONTROLNETS 8
#define PIPE_MAX_IMAGES 16

/* The frozen models of one base pipeline (borrowed). tok_2 and
 * text_encoder_2 are set for SDXL only and make the run an SDXL one. */
typedef struct pipe_models {
    tokenizer *tok, *tok_2;
    clip_text_model *text_encoder, *text_encoder_2;
    unet_model *unet;
    vae_model *vae;
    int force_zeros_for_empty_prompt; /* SDXL: model_index.json's flag */
    int vae_upcast;                   /* decode in float32 whatever the precision */
} pipe_models;

/* SDXL's micro-conditioning, each a (height, width) pair as diffusers'
 * tuples; a size of {0, 0} is None. Defaults: original_size = target_size
 * = (height, width), crops (0, 0); the negative time ids differ from the
 * positive ones only when BOTH negative sizes are given (the negative crops
 * alone are ignored, as in diffusers). */
typedef struct pipe_micro {
    int original_size[2], crops_coords_top_left[2], target_size[2];
    int negative_original_size[2], negative_crops_coords_top_left[2], negative_target_size[2];
} pipe_micro;

typedef struct pipe_controlnet {
    controlnet_model *model; /* borrowed */
    const float *image;      /* host [n_images, H, W, 3] float in [0, 1] at the output size */
    int n_images;            /* 0 or 1: one image for every prompt; else one per prompt */
    float scale;             /* controlnet_conditioning_scale */
    double start, end;       /* control_guidance_start / end, fractions of the steps (doubles:
                                the keep test compares Python floats i / n with them) */
} pipe_controlnet;

/* img2img and inpainting (StableDiffusionControlNetImg2ImgPipeline and
 * StableDiffusionControlNetInpaintPipeline, v0.27.2; engine/pipeline/pipeline_init.h
 * has the algorithm). image NULL: text-to-image. */
typedef struct pipe_init {
    const float *image; /* host [n_images, H, W, 3] in [-1, 1] at the output size */
    int n_images;       /* 1, or one per prompt (row j of the batch takes image j % n_images) */
    const float *mask;  /* host [n_images, H, W] in {0, 1} (1 = repaint); NULL: img2img */
    double strength;    /* 0 < strength <= 1, a double as Python's (S * strength truncates) */
    /* Optional injected N(0,1) draws of latent_dist.sample(), host NCHW
     * [n_images, L, h, w]: [0] for the init image, [1] for the masked image
     * (inpainting). NULL: drawn from the seed's Philox stream. */
    const float *vae_noise[2];
} pipe_init;

typedef struct pipe_request {
    const char *prompt, *negative_prompt; /* negative may be NULL ("") */
    /* A batch of prompts instead (diffusers' list of prompts): n_prompts > 0
     * uses prompts[i] and negative_prompts[i] (that may be NULL) and ignores
     * prompt/negative_prompt. Images are ordered prompt-major:
     * prompt 0's num_images, then prompt 1's. */
    const char *const *prompts, *const *negative_prompts;
    int n_prompts;
    /* SDXL: the second encoder's texts (NULL: prompt / negative, see
     * prompt_sdxl.h; an empty prompt_2 / negative_prompt_2 string counts as
     * NULL, as Python's `or` does), and with n_prompts the lists (NULL: the
     * first encoder's). An SD request leaves them NULL. For SDXL a NULL
     * negative_prompt (list) is None: zeros with force_zeros_for_empty_prompt. */
    const char *prompt_2, *negative_prompt_2;
    const char *const *prompts_2, *const *negative_prompts_2;
    pipe_micro micro;
    int steps;
    float guidance; /* CFG when > 1 */
    uint64_t seed;  /* Philox stream of the initial latents and ancestral noise */
    /* optional host NCHW [prompts * num_images, C, h, w] initial latents;
     * with init.image the N(0,1) `noise` of prepare_latents instead */
    const float *latents;
    int width, height; /* multiples of 8 x the VAE factor's need; = control image size */
    int num_images;    /* per prompt */
    int guess_mode, clip_skip;
    float eta; /* DDIM */
    pipe_controlnet controlnets[PIPE_MAX_CONTROLNETS];
    int n_controlnets; /* 0: no ControlNet (StableDiffusionPipeline) */
    pipe_init init;
} pipe_request;

/* Observes a run (progress, golden checks); any callback may be NULL.
 * Device pointers are valid only during the call. */
typedef struct pipe_observer {
    void *user;
    /* prompt_embeds [rows, Nt, D]: rows = 2N with CFG (negative first), else N. */
    void (*on_embeds)(void *user, const float *embeds, int rows, int Nt, int D);
    /* SDXL: added_cond_kwargs, text_embeds [rows, P] (device) and time_ids
     * [rows, 6] (host), in the UNet's batch order. */
    void (*on_added)(void *user, const float *text_embeds, int rows, int P, const float *time_ids);
    void (*on_timesteps)(void *user, const float *timesteps, int n);
    /* Step i's inputs: the UNet's x [rows, h, w, C] and the ControlNets'
     * cn_x [cn_rows, h, w, C] (guess mode with CFG: the conditional half). */
    void (*on_inputs)(void *user, int i, const float *x, int rows, const float *cn_x, int cn_rows,
                      int h, int w, int C);
    /* ControlNet k at step i: its conditioning scale (window applied) and
     * its residuals (n_skips down [cn_rows, ...] NHWC and mid), NULL when it
     * did not run because the scale is 0. */
    void (*on_control)(void *user, int i, int k, float scale, const float *const *down, int n_skips,
                       const float *mid);
    /* img2img / inpainting set-up (host NHWC [n, h, w, C]): "vae_mean.<j>",
     * "vae_std.<j>" of VAE encode call j, "noise.vae_sample.<j>",
     * "noise.latents", "init_latents" (img2img) or "image_latents" and
     * "masked_image_latents" (inpainting), "mask_latent", "latents_init". */
    void (*on_init)(void *user, const char *what, const float *x, int n, int h, int w, int C);
    /* Inpainting with a 4-channel UNet, step i: the scheduler's result
     * before the blend and the re-noised image latents it is blended with
     * (NULL at the last step, which blends with the image latents); device
     * [N, h, w, C]. */
    void (*on_blend)(void *user, int i, const float *step_latents, const float *proper, int N,
                     int h, int w, int C);
    /* After step i: the raw UNet output [rows, h, w, C] (NHWC) and the new
     * latents [N, h, w, C] (inpainting: after the blend). Returns nonzero to
     * cancel the run. */
    int (*on_step)(void *user, int i, int n, const float *noise_pred, int rows,
                   const float *latents, int N, int h, int w, int C);
} pipe_observer;

/* Whether ControlNet cn can steer the base models m: the same cross-attention
 * width, input channels, down blocks (count, widths, layers), RGB
 * conditioning, and a conditioning embedding that downsamples as the VAE
 * does. CNET_EINVAL names the first field that differs (pipeline_generate
 * runs this check for every ControlNet of a request). */
int pipeline_check_controlnet(const pipe_models *m, const controlnet_model *cn, cnet_error *err);

/* Runs the request with scheduler config sched_cfg and writes images [N,
 * height, width, 3] float in [0, 1] (host) to out. */
int pipeline_generate(const pipe_models *models, const cnet_sched_config *sched_cfg,
                      const pipe_request *req, float *out, const pipe_observer *obs,
                      cnet_error *err);

#endif
