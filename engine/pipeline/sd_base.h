/* A loaded base pipeline: the frozen components of a diffusers Stable
 * Diffusion folder (tokenizer/, text_encoder/, unet/, vae/ and the
 * scheduler/ config), loaded once and shared read-only by generation and
 * training (the service's model cache holds these).
 *
 * The model type comes from model_index.json as diffusers'
 * DiffusionPipeline.from_pretrained reads it: a _class_name that starts
 * with "StableDiffusionXL" (StableDiffusionXLPipeline,
 * StableDiffusionXLControlNetPipeline, ...) is SDXL, which adds tokenizer_2/
 * and text_encoder_2/ (CLIPTextModelWithProjection) and the
 * force_zeros_for_empty_prompt flag (default true, as the XL pipelines'
 * __init__ has it); anything else, or no model_index.json, is SD 1.x / 2.x.
 * An SDXL folder whose UNet has no "text_time" added embedding, or an SD
 * folder whose UNet has one, is refused. */
#ifndef CNET_SD_BASE_H
#define CNET_SD_BASE_H

#include <limits.h>

#include "engine/models/clip_text.h"
#include "engine/pipeline/pipeline.h"
#include "engine/text/tokenizer.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"

typedef struct sd_base {
    char dir[PATH_MAX];
    tokenizer *tok;
    clip_text_model text_encoder;
    unet_model unet;
    vae_model vae;
    /* SDXL only (xl set): the second tokenizer and text encoder. */
    int xl, force_zeros_for_empty_prompt;
    tokenizer *tok_2;
    clip_text_model text_encoder_2;
    int loaded; /* components opened so far, for sd_base_free */
} sd_base;

/* Opens every component of the pipeline folder dir; on failure nothing is
 * left to free and err names the component. */
int sd_base_open(sd_base *b, cnet_backend *be, const char *dir, cnet_error *err);
void sd_base_free(sd_base *b);
/* Stores the product weights of the text encoder(s), UNet and VAE in the
 * 16-bit type of prec (params_store16), as train_controlnet.py casts them to
 * weight_dtype and a pipeline loaded with torch_dtype keeps them: half the
 * memory, and the 16-bit products read them without converting. Does
 * nothing for CNET_PREC_F32, so pass the backend's precision after
 * cnet_backend_set_precision: a CPU backend that computes in float32 (no
 * AVX512-BF16, or fp16 asked) keeps float32 weights. One-way: the models stay frozen, and
 * controlnet_from_unet needs the float32 UNet (run it first). On failure
 * the models already narrowed stay so and work as before. A VAE whose
 * config sets force_upcast stays float32 (diffusers' upcast_vae: the
 * pipeline decodes it in float32). */
int sd_base_store16(sd_base *b, cnet_precision prec, cnet_error *err);
/* Whether the VAE decodes in float32 whatever the precision: an SDXL VAE
 * with force_upcast (the SD 1.x pipelines ignore the flag). */
int sd_base_vae_upcast(const sd_base *b);
/* Bytes of backend memory the models' weights occupy. */
size_t sd_base_bytes(const sd_base *b);
/* The models as the pipeline takes them (borrowed from b). */
pipe_models sd_base_models(sd_base *b);
/* <dir>/scheduler/scheduler_config.json read as class `kind` (-1: its own). */
int sd_base_scheduler(const sd_base *b, int kind, cnet_sched_config *cfg, cnet_error *err);

#endif
