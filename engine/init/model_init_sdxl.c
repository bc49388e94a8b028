/* The SDXL presets of `cnet init-model` (see model_init.h): Stable
 * Diffusion XL base 1.0's architecture, and the same layout at reduced
 * width for CPU benchmarks.
 *
 * The configs follow stabilityai/stable-diffusion-xl-base-1.0's
 * {unet,vae,text_encoder,text_encoder_2,scheduler}/ files with diffusers'
 * defaults made explicit, at diffusers v0.27.2; model_index.json is a
 * StableDiffusionXLControlNetPipeline (the folder holds a ControlNet made
 * from_unet, as the SD 1.5 preset's does). Both tokenizers are generated
 * like the tiny one (their ids are the first of CLIP's 49408);
 * tokenizer_2 pads with "!" as OpenCLIP's does.
 *
 * Not here: the weights (model_init.c's minit_pipeline). */
#include <limits.h>
#include <stdio.h>

#include "engine/init/controlnet_init.h"
#include "engine/init/model_init.h"
#include "engine/init/model_init_internal.h"

/* CLIP's vocabulary, both SDXL text encoders' vocab_size. */
#define SDXL_CLIP_VOCAB 49408
/* SDXL's size conditioning: 6 time ids of addition_time_embed_dim each, next to
 * text_encoder_2's projection (1280 + 6 * 256 = 2816). */
#define SDXL_TIME_IDS 6

/* What differs between the two SDXL presets. */
typedef struct sdxl_shape {
    int unet_channels[3], head_dim[3], depth[3];
    int sample_size; /* latent size */
    int vae_channels[4];
    int te_layers, te2_layers; /* text_encoder (768 wide), text_encoder_2 (1280 wide) */
    int full_vocab;            /* vocab_size 49408 (else the generated tokenizer's size) */
} sdxl_shape;

/* stabilityai/stable-diffusion-xl-base-1.0. */
static const sdxl_shape sdxl_base = {{320, 640, 1280},     {5, 10, 20}, {1, 2, 10}, 128,
                                     {128, 256, 512, 512}, 12,          32,         1};
/* sdxl-small: the same blocks, depths, 64-wide heads and text interfaces at a
 * fifth of the UNet width (64/128/256), small-sd's VAE widths, 4-layer text
 * encoders and the generated vocabulary; 32x32 latents, 256x256 images. */
static const sdxl_shape sdxl_small = {{64, 128, 256},     {1, 2, 4}, {1, 2, 10}, 32,
                                      {32, 64, 128, 128}, 4,         4,          0};

/* text_encoder_2's width and projection, text_encoder's width: the UNet's
 * cross_attention_dim is their sum, its added embedding reads the
 * projection. */
#define SDXL_TE_WIDTH 768
#define SDXL_TE2_WIDTH 1280
#define SDXL_TIME_EMBED_DIM 256

static json_t *unet_config(const sdxl_shape *s) {
    const int *c = s->unet_channels, *h = s->head_dim, *d = s->depth;
    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:[i,i,i],s:[i,i,i],s:i,s:i,s:i,s:i,s:[s,s,s],s:i,s:"
                     "b,s:i,s:i,s:i,"
                     "s:i,s:s,s:f,s:i,s:i,s:i,s:b,s:[i,i,i],s:[s,s,s],s:b,s:b}",
                     "_class_name", "UNet2DConditionModel", "_diffusers_version", "0.27.2",
                     "act_fn", "silu", "addition_embed_type", "text_time",
                     "addition_embed_type_num_heads", 64, "addition_time_embed_dim",
                     SDXL_TIME_EMBED_DIM, "attention_head_dim", h[0], h[1], h[2],
                     "block_out_channels", c[0], c[1], c[2], "conv_in_kernel", 3, "conv_out_kernel",
                     3, "cross_attention_dim", SDXL_TE_WIDTH + SDXL_TE2_WIDTH, "downsample_padding",
                     1, "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D",
                     "CrossAttnDownBlock2D", "freq_shift", 0, "flip_sin_to_cos", 1, "in_channels",
                     4, "layers_per_block", 2, "mid_block_scale_factor", 1, "norm_num_groups", 32,
                     "mid_block_type", "UNetMidBlock2DCrossAttn", "norm_eps", 1e-5, "out_channels",
                     4, "projection_class_embeddings_input_dim",
                     SDXL_TE2_WIDTH + SDXL_TIME_IDS * SDXL_TIME_EMBED_DIM, "sample_size",
                     s->sample_size, "center_input_sample", 0, "transformer_layers_per_block", d[0],
                     d[1], d[2], "up_block_types", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                     "UpBlock2D", "upcast_attention", 0, "use_linear_projection", 1);
}

static json_t *vae_config(const sdxl_shape *s) {
    const int *c = s->vae_channels;
    return json_pack(
        "{s:s,s:s,s:i,s:i,s:[s,s,s,s],s:[s,s,s,s],s:[i,i,i,i],s:i,s:s,s:i,s:i,s:i,s:f,s:b}",
        "_class_name", "AutoencoderKL", "_diffusers_version", "0.27.2", "in_channels", 3,
        "out_channels", 3, "down_block_types", "DownEncoderBlock2D", "DownEncoderBlock2D",
        "DownEncoderBlock2D", "DownEncoderBlock2D", "up_block_types", "UpDecoderBlock2D",
        "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "block_out_channels", c[0],
        c[1], c[2], c[3], "layers_per_block", 2, "act_fn", "silu", "latent_channels", 4,
        "norm_num_groups", 32, "sample_size", s->sample_size * 8, "scaling_factor", 0.13025,
        "force_upcast", 1);
}

/* text_encoder: CLIP ViT-L/14's text tower (CLIPTextModel); text_encoder_2:
 * OpenCLIP ViT-bigG/14's (CLIPTextModelWithProjection, exact GELU). */
static json_t *text_config(int second, int layers, int vocab) {
    const int width = second ? SDXL_TE2_WIDTH : SDXL_TE_WIDTH;
    return json_pack(
        "{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:i,s:i,s:i,s:i,s:s}", "architectures",
        second ? "CLIPTextModelWithProjection" : "CLIPTextModel", "model_type", "clip_text_model",
        "hidden_size", width, "intermediate_size", 4 * width, "num_hidden_layers", layers,
        "num_attention_heads", width / 64, "max_position_embeddings", 77, "projection_dim", width,
        "hidden_act", second ? "gelu" : "quick_gelu", "layer_norm_eps", 1e-5, "vocab_size", vocab,
        "pad_token_id", 1, "bos_token_id", 0, "eos_token_id", 2, "torch_dtype", "float32");
}

/* SDXL's EulerDiscreteScheduler config. */
static json_t *scheduler_config(void) {
    return json_pack("{s:s,s:s,s:f,s:s,s:f,s:b,s:s,s:i,s:s,s:f,s:b,s:b,s:i,s:s,s:n,s:b}",
                     "_class_name", "EulerDiscreteScheduler", "_diffusers_version", "0.27.2",
                     "beta_end", 0.012, "beta_schedule", "scaled_linear", "beta_start", 0.00085,
                     "clip_sample", 0, "interpolation_type", "linear", "num_train_timesteps", 1000,
                     "prediction_type", "epsilon", "sample_max_value", 1.0, "set_alpha_to_one", 0,
                     "skip_prk_steps", 1, "steps_offset", 1, "timestep_spacing", "leading",
                     "trained_betas", "use_karras_sigmas", 0);
}

static json_t *model_index(void) {
    return json_pack("{s:s,s:s,s:[s,s],s:[n,n],s:b,s:[n,n],s:[s,s],s:[s,s],s:[s,s],s:[s,s],"
                     "s:[s,s],s:[s,s],s:[s,s]}",
                     "_class_name", "StableDiffusionXLControlNetPipeline", "_diffusers_version",
                     "0.27.2", "controlnet", "diffusers", "ControlNetModel", "feature_extractor",
                     "force_zeros_for_empty_prompt", 1, "image_encoder", "scheduler", "diffusers",
                     "EulerDiscreteScheduler", "text_encoder", "transformers", "CLIPTextModel",
                     "text_encoder_2", "transformers", "CLIPTextModelWithProjection", "tokenizer",
                     "transformers", "CLIPTokenizer", "tokenizer_2", "transformers",
                     "CLIPTokenizer", "unet", "diffusers", "UNet2DConditionModel", "vae",
                     "diffusers", "AutoencoderKL");
}

/* Sets pad_token to "!" in the generated tokenizer's out/rel/file. */
static int set_pad_token(const char *out, const char *file, cnet_error *err) {
    char path[PATH_MAX];
    int rc = minit_path_join(path, out, file, err);
    if (rc) return rc;
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) return cnet_fail(err, CNET_EIO, "%s: %s", path, jerr.text);
    if (json_object_set_new(j, "pad_token", json_string("!"))) {
        json_decref(j);
        return cnet_fail(err, CNET_ENOMEM, "out of memory editing %s", path);
    }
    return minit_write_json(out, file, j, err);
}

/* model_index.json, both tokenizers, every component config. */
static int write_sdxl(const char *out, const sdxl_shape *s, cnet_error *err) {
    char dir[PATH_MAX];
    int64_t vocab = 0;
    int rc;
    for (int k = 0; k < 2; k++)
        if ((rc = minit_path_join(dir, out, k ? "tokenizer_2" : "text_encoder_2", err)) ||
            (rc = minit_mkdir(dir, err)))
            return rc;
    if ((rc = minit_write_tokenizer(out, "tokenizer", &vocab, err)) ||
        (rc = minit_write_tokenizer(out, "tokenizer_2", &vocab, err)) ||
        (rc = set_pad_token(out, "tokenizer_2/tokenizer_config.json", err)) ||
        (rc = set_pad_token(out, "tokenizer_2/special_tokens_map.json", err)))
        return rc;
    if (vocab > SDXL_CLIP_VOCAB)
        return cnet_fail(err, CNET_EINVAL, "generated tokenizer has %lld ids, CLIP has %d",
                         (long long)vocab, SDXL_CLIP_VOCAB);
    const int v = s->full_vocab ? SDXL_CLIP_VOCAB : (int)vocab;
    if ((rc = minit_write_json(out, "model_index.json", model_index(), err)) ||
        (rc = minit_write_json(out, "unet/config.json", unet_config(s), err)) ||
        (rc = minit_write_json(out, "vae/config.json", vae_config(s), err)) ||
        (rc = minit_write_json(out, "text_encoder/config.json", text_config(0, s->te_layers, v),
                               err)) ||
        (rc = minit_write_json(out, "text_encoder_2/config.json", text_config(1, s->te2_layers, v),
                               err)) ||
        (rc = minit_write_json(out, "scheduler/scheduler_config.json", scheduler_config(), err)))
        return rc;
    const int cond[CONTROLNET_DEFAULT_N_COND] = CONTROLNET_DEFAULT_COND_CHANNELS;
    return minit_write_controlnet_config(out, cond, CONTROLNET_DEFAULT_N_COND, err);
}

int minit_sdxl_configs(const char *out, cnet_error *err) {
    return write_sdxl(out, &sdxl_base, err);
}

int minit_sdxl_small_configs(const char *out, cnet_error *err) {
    return write_sdxl(out, &sdxl_small, err);
}
