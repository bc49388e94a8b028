/* Helpers shared by the model golden checks (server/golden/golden_io.c). */
#ifndef CNET_GOLDEN_IO_H
#define CNET_GOLDEN_IO_H

#include "engine/core/arena.h"
#include "engine/core/backend.h"
#include "engine/core/params.h"
#include "engine/models/controlnet.h"
#include "engine/pipeline/sd_base.h"
#include "server/golden/golden.h"

/* One model run's memory: the backend of ctx->device and a scratch arena. */
typedef struct golden_env {
    cnet_backend be;
    cnet_arena scratch;
} golden_env;

int golden_env_init(golden_env *env, const golden_ctx *ctx, cnet_error *err);
/* Grows the scratch arena to at least `bytes`. */
int golden_env_scratch(golden_env *env, size_t bytes, cnet_error *err);
void golden_env_free(golden_env *env);

/* The model folder's base pipeline and its controlnet/ (the pipeline
 * checks: golden_pipeline.c, golden_img2img.c). On failure the open part
 * stays for golden_pipe_models_free. */
typedef struct golden_pipe_models {
    sd_base base;
    controlnet_model cn;
    int have_base, have_cn;
} golden_pipe_models;

int golden_pipe_models_open(golden_pipe_models *m, cnet_backend *be, const char *model_dir,
                            cnet_error *err);
void golden_pipe_models_free(golden_pipe_models *m);

/* Downloads an NHWC [B,H,W,C] (or any non-4-d) result and compares it in
 * PyTorch layout with the golden `name` of that shape. */
void golden_compare_nhwc(golden_ctx *ctx, golden_env *env, const st_file *f, const char *name,
                         const float *dev, int ndim, const int64_t *shape);

/* Shared by the training checks (server/golden/golden_train.c,
 * golden_sdxl_train.c). latents [B,h,w,L] NHWC device (caller frees) =
 * (mean + std * train.in.vae_noise) * scaling_factor of the model folder's
 * VAE on train.in.pixel_values, compared with train.latents. */
int golden_train_latents(golden_ctx *ctx, golden_env *env, const st_file *f, float **latents,
                         int *B, int *h, int *w, int *Lc, cnet_error *err);
/* The same from the N(0,1) draw noise_name, compared with latents_name
 * (goldens-unet-train draws one per step: train.in.vae_noise.<s>). */
int golden_train_latents_from(golden_ctx *ctx, golden_env *env, const st_file *f,
                              const char *noise_name, const char *latents_name, float **latents,
                              int *B, int *h, int *w, int *Lc, cnet_error *err);
/* text [B,Nt,D] device (caller frees) = the model folder's text encoder on
 * train.in.input_ids, compared with train.encoder_hidden_states. */
int golden_train_text(golden_ctx *ctx, golden_env *env, const st_file *f, float **text, int *Nt,
                      cnet_error *err);
/* Compares every parameter of p (prefix "train.<v>.grad." or
 * "train.<v>.param_after.<s>.") in PyTorch layout. atol raises the allowed
 * error: the README's rule for parameters after the first Adam steps, where
 * elements with |grad| ~ 1e-8 move by ~lr * g / (|g| + eps) and are
 * ill-conditioned in float32. */
void golden_train_params(golden_ctx *ctx, const st_file *f, const cnet_params *p,
                         const char *prefix, double atol);

/* Shared by the pipeline checks (golden_pipeline.c, golden_sdxl_pipeline.c):
 * 1 with the run of a metadata key "pipe.<run>.args" in run, 0 when key is
 * not one, CNET_EFORMAT when the run is longer than GOLDEN_RUN_MAX. */
int golden_pipe_run(const st_file *f, const char *key, char run[GOLDEN_RUN_MAX + 1],
                    cnet_error *err);
/* The B strings of a JSON list in the metadata (strdup'ed into out[]);
 * 0, or -1 when the key is missing or not a list of B strings. */
int golden_meta_strings(const st_file *f, const char *key, char **out, int B);
/* The scheduler kind of a diffusers class name ("DDIMScheduler"), or -1. */
int golden_sched_kind(const char *class_name);

#endif
