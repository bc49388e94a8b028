/* Random-weight diffusers pipelines; see model_init.h. */
#include "engine/init/model_init.h"
#include "engine/init/model_init_internal.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/atomic_file.h"
#include "engine/models/clip_text.h"
#include "engine/init/controlnet_init.h"
#include "engine/text/tokenizer_train.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "engine/init/weights_init.h"

/* Merges the tiny preset's tokenizer learns (CLIP has 48894). */
#define MINIT_TINY_MERGES 480
/* CLIP ViT-L/14's vocabulary (the sd15 text encoder's vocab_size); the
 * generated tokenizer uses its first ids only. */
#define MINIT_SD15_VOCAB 49408

/* The tiny tokenizer's text: captions of the kind ControlNet datasets have. */
static const char tiny_corpus[] =
    "a red circle on a blue background. a green square next to a yellow triangle. "
    "two small white stars above a black line. a large orange hexagon in the middle. "
    "a purple ellipse inside a pink rectangle. three gray dots on a white canvas. "
    "a photo of a cat sitting on a wooden table. a dog running on green grass. "
    "a house with a red door and two windows. a tree beside a river under a blue sky. "
    "mountains behind a lake at sunset. a bird flying over the sea. "
    "a painting of flowers in a vase. a drawing of a boat on the water. "
    "a bright sun and white clouds. a dark room with a single lamp. "
    "an apple and a banana on a plate. a bicycle leaning against a brick wall. "
    "a person walking in the rain with an umbrella. a city street at night with lights. "
    "a close up of a face, smiling. a portrait of a woman with long hair. "
    "a man wearing a hat and a coat. children playing in a park. "
    "a car parked near a building. a bridge over a river in autumn. "
    "snow on the roof of a small house. a forest path with tall trees. "
    "a bowl of fruit, high quality, detailed. blurry, low quality, bad drawing. "
    "a sketch of a horse, black and white. a colorful abstract pattern of lines. "
    "a cup of coffee on a desk beside a book. a window with curtains and plants. "
    "a beach with sand, waves and a palm tree. a field of yellow flowers in spring. "
    "an old castle on a hill. a train crossing a bridge. a robot standing in a room. "
    "the edges of a building, canny lines. a depth map of a street. a pose of a dancer.";

int minit_mkdir(const char *path, cnet_error *err) {
    if (mkdir(path, 0755) == 0) return 0;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    return cnet_fail(err, CNET_EIO, "%s: cannot create the folder", path);
}

int minit_path_join(char *buf, const char *dir, const char *rel, cnet_error *err) {
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, rel);
    if (n < 0 || n >= PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s/%s: path too long", dir, rel);
    return 0;
}

int minit_write_json(const char *out, const char *rel, json_t *j, cnet_error *err) {
    char path[PATH_MAX];
    if (!j) return cnet_fail(err, CNET_ENOMEM, "out of memory building %s", rel);
    int rc = minit_path_join(path, out, rel, err);
    if (!rc) rc = atomic_write_json(path, j, err);
    json_decref(j);
    return rc;
}

/* Stable Diffusion 1.5's scheduler (runwayml/stable-diffusion-v1-5
 * scheduler/scheduler_config.json), used by both presets. */
static int write_sd15_scheduler(const char *out, cnet_error *err) {
    json_t *sched = json_pack("{s:s,s:s,s:f,s:s,s:f,s:b,s:i,s:b,s:b,s:i,s:n}", "_class_name",
                              "PNDMScheduler", "_diffusers_version", "0.27.2", "beta_end", 0.012,
                              "beta_schedule", "scaled_linear", "beta_start", 0.00085,
                              "clip_sample", 0, "num_train_timesteps", 1000, "set_alpha_to_one", 0,
                              "skip_prk_steps", 1, "steps_offset", 1, "trained_betas");
    return minit_write_json(out, "scheduler/scheduler_config.json", sched, err);
}

int minit_write_tokenizer(const char *out, const char *rel, int64_t *vocab, cnet_error *err) {
    char dir[PATH_MAX];
    int rc = minit_path_join(dir, out, rel, err);
    if (!rc) rc = tokenizer_train_write(dir, tiny_corpus, MINIT_TINY_MERGES, vocab, err);
    return rc;
}

int minit_write_controlnet_config(const char *out, const int *cond, int n_cond, cnet_error *err) {
    char unet_cfg[PATH_MAX];
    json_t *cn = NULL;
    int rc;
    if ((rc = minit_path_join(unet_cfg, out, "unet/config.json", err)) ||
        (rc = controlnet_config_from_unet(&cn, unet_cfg, cond, n_cond, err)))
        return rc;
    return minit_write_json(out, "controlnet/config.json", cn, err);
}

int minit_tiny_configs(const char *out, cnet_error *err) {
    int64_t vocab = 0;
    int rc = minit_write_tokenizer(out, "tokenizer", &vocab, err);
    if (rc) return rc;
    json_t *unet = json_pack(
        "{s:s,s:s,s:i,s:i,s:i,s:b,s:b,s:i,s:[s,s],s:s,s:[s,s],s:b,s:[i,i],s:i,s:i,s:i,s:s,s:i,"
        "s:f,s:i,s:i,s:b,s:b}",
        "_class_name", "UNet2DConditionModel", "_diffusers_version", "0.27.2", "sample_size", 8,
        "in_channels", 4, "out_channels", 4, "center_input_sample", 0, "flip_sin_to_cos", 1,
        "freq_shift", 0, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D",
        "mid_block_type", "UNetMidBlock2DCrossAttn", "up_block_types", "UpBlock2D",
        "CrossAttnUpBlock2D", "only_cross_attention", 0, "block_out_channels", 32, 64,
        "layers_per_block", 1, "downsample_padding", 1, "mid_block_scale_factor", 1, "act_fn",
        "silu", "norm_num_groups", 8, "norm_eps", 1e-5, "cross_attention_dim", 32,
        "attention_head_dim", 4, "use_linear_projection", 0, "upcast_attention", 0);
    if ((rc = minit_write_json(out, "unet/config.json", unet, err))) return rc;
    json_t *vae = json_pack(
        "{s:s,s:s,s:i,s:i,s:[s,s],s:[s,s],s:[i,i],s:i,s:s,s:i,s:i,s:i,s:f,s:b}", "_class_name",
        "AutoencoderKL", "_diffusers_version", "0.27.2", "in_channels", 3, "out_channels", 3,
        "down_block_types", "DownEncoderBlock2D", "DownEncoderBlock2D", "up_block_types",
        "UpDecoderBlock2D", "UpDecoderBlock2D", "block_out_channels", 16, 32, "layers_per_block", 1,
        "act_fn", "silu", "latent_channels", 4, "norm_num_groups", 8, "sample_size", 16,
        "scaling_factor", 0.18215, "force_upcast", 1);
    if ((rc = minit_write_json(out, "vae/config.json", vae, err))) return rc;
    json_t *text =
        json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:i,s:i,s:i,s:i,s:s}",
                  "architectures", "CLIPTextModel", "model_type", "clip_text_model", "hidden_size",
                  32, "intermediate_size", 64, "num_hidden_layers", 2, "num_attention_heads", 4,
                  "max_position_embeddings", 77, "projection_dim", 32, "hidden_act", "quick_gelu",
                  "layer_norm_eps", 1e-5, "vocab_size", (int)vocab, "pad_token_id", 1,
                  "bos_token_id", 0, "eos_token_id", 2, "torch_dtype", "float32");
    if ((rc = minit_write_json(out, "text_encoder/config.json", text, err))) return rc;
    if ((rc = write_sd15_scheduler(out, err))) return rc;
    /* The ControlNet's conditioning embedding must bring images to latent
     * size: one stride-2 level per VAE level but the last. */
    const int cond[2] = {8, 16};
    return minit_write_controlnet_config(out, cond, 2, err);
}

/* Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5): its unet/, vae/
 * and text_encoder/ configs written out in full (diffusers' defaults made
 * explicit), CLIP ViT-L/14's text tower, the PNDM scheduler. */
int minit_sd15_configs(const char *out, cnet_error *err) {
    int64_t vocab = 0;
    int rc = minit_write_tokenizer(out, "tokenizer", &vocab, err);
    if (rc) return rc;
    if (vocab > MINIT_SD15_VOCAB)
        return cnet_fail(err, CNET_EINVAL, "generated tokenizer has %lld ids, CLIP has %d",
                         (long long)vocab, MINIT_SD15_VOCAB);
    json_t *unet = json_pack(
        "{s:s,s:s,s:i,s:i,s:i,s:b,s:b,s:i,s:[s,s,s,s],s:s,s:[s,s,s,s],s:b,s:[i,i,i,i],s:i,s:i,"
        "s:i,s:s,s:i,s:f,s:i,s:i,s:b,s:b}",
        "_class_name", "UNet2DConditionModel", "_diffusers_version", "0.27.2", "sample_size", 64,
        "in_channels", 4, "out_channels", 4, "center_input_sample", 0, "flip_sin_to_cos", 1,
        "freq_shift", 0, "down_block_types", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D", "DownBlock2D", "mid_block_type", "UNetMidBlock2DCrossAttn",
        "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D", "only_cross_attention", 0, "block_out_channels", 320, 640, 1280, 1280,
        "layers_per_block", 2, "downsample_padding", 1, "mid_block_scale_factor", 1, "act_fn",
        "silu", "norm_num_groups", 32, "norm_eps", 1e-5, "cross_attention_dim", 768,
        "attention_head_dim", 8, "use_linear_projection", 0, "upcast_attention", 0);
    if ((rc = minit_write_json(out, "unet/config.json", unet, err))) return rc;
    json_t *vae = json_pack(
        "{s:s,s:s,s:i,s:i,s:[s,s,s,s],s:[s,s,s,s],s:[i,i,i,i],s:i,s:s,s:i,s:i,s:i,s:f,s:b}",
        "_class_name", "AutoencoderKL", "_diffusers_version", "0.27.2", "in_channels", 3,
        "out_channels", 3, "down_block_types", "DownEncoderBlock2D", "DownEncoderBlock2D",
        "DownEncoderBlock2D", "DownEncoderBlock2D", "up_block_types", "UpDecoderBlock2D",
        "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "block_out_channels", 128, 256,
        512, 512, "layers_per_block", 2, "act_fn", "silu", "latent_channels", 4, "norm_num_groups",
        32, "sample_size", 512, "scaling_factor", 0.18215, "force_upcast", 1);
    if ((rc = minit_write_json(out, "vae/config.json", vae, err))) return rc;
    json_t *text = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:i,s:i,s:i,s:i,s:s}",
                             "architectures", "CLIPTextModel", "model_type", "clip_text_model",
                             "hidden_size", 768, "intermediate_size", 3072, "num_hidden_layers", 12,
                             "num_attention_heads", 12, "max_position_embeddings", 77,
                             "projection_dim", 768, "hidden_act", "quick_gelu", "layer_norm_eps",
                             1e-5, "vocab_size", MINIT_SD15_VOCAB, "pad_token_id", 1,
                             "bos_token_id", 0, "eos_token_id", 2, "torch_dtype", "float32");
    if ((rc = minit_write_json(out, "text_encoder/config.json", text, err))) return rc;
    if ((rc = write_sd15_scheduler(out, err))) return rc;
    const int cond[CONTROLNET_DEFAULT_N_COND] = CONTROLNET_DEFAULT_COND_CHANNELS;
    return minit_write_controlnet_config(out, cond, CONTROLNET_DEFAULT_N_COND, err);
}

/* model_index.json of a StableDiffusionControlNetPipeline. */
static json_t *model_index(void) {
    return json_pack("{s:s,s:s,s:[s,s],s:[n,n],s:[n,n],s:b,s:[n,n],s:[s,s],s:[s,s],s:[s,s],"
                     "s:[s,s],s:[s,s]}",
                     "_class_name", "StableDiffusionControlNetPipeline", "_diffusers_version",
                     "0.27.2", "controlnet", "diffusers", "ControlNetModel", "feature_extractor",
                     "image_encoder", "requires_safety_checker", 0, "safety_checker", "scheduler",
                     "diffusers", "PNDMScheduler", "text_encoder", "transformers", "CLIPTextModel",
                     "tokenizer", "transformers", "CLIPTokenizer", "unet", "diffusers",
                     "UNet2DConditionModel", "vae", "diffusers", "AutoencoderKL");
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *const save_meta_keys[1] = {"format"};
static const char *const save_meta_values[1] = {"pt"};

/* Random weights for the parameter table p, saved as dir/<file>. */
static int save_random(cnet_params *p, const char *dir, const char *file, const minit_options *opt,
                       const char *tag, cnet_error *err) {
    char path[PATH_MAX];
    int rc = minit_path_join(path, dir, file, err);
    if (!rc) rc = winit_random(p, opt->seed, tag, err);
    if (!rc) rc = params_save_as(p, path, opt->dtype, save_meta_keys, save_meta_values, 1, err);
    if (rc) cnet_error_prefix(err, "%s", tag);
    return rc;
}

static int init_vae(cnet_backend *be, const char *out, const minit_options *opt, cnet_error *err) {
    char dir[PATH_MAX], cfg_path[PATH_MAX];
    int rc = minit_path_join(dir, out, "vae", err);
    if (!rc) rc = minit_path_join(cfg_path, dir, "config.json", err);
    if (rc) return rc;
    cnet_vae_config cfg;
    vae_model m;
    rc = cnet_vae_config_load(&cfg, cfg_path, err);
    if (rc) return rc;
    if (!(rc = vae_init(&m, be, &cfg, err)))
        rc = save_random(&m.params, dir, "diffusion_pytorch_model.safetensors", opt, "vae", err);
    vae_free(&m);
    return rc;
}

/* The text encoder in out/<name>/ (CLIPTextModel, or
 * CLIPTextModelWithProjection as its config says). */
static int init_text_encoder(cnet_backend *be, const char *out, const char *name,
                             const minit_options *opt, cnet_error *err) {
    char dir[PATH_MAX], cfg_path[PATH_MAX];
    int rc = minit_path_join(dir, out, name, err);
    if (!rc) rc = minit_path_join(cfg_path, dir, "config.json", err);
    if (rc) return rc;
    cnet_clip_text_config cfg;
    clip_text_model m;
    rc = cnet_clip_text_config_load(&cfg, cfg_path, err);
    if (rc) return rc;
    if (!(rc = clip_text_init(&m, be, &cfg, err)))
        rc = save_random(&m.params, dir, "model.safetensors", opt, name, err);
    clip_text_free(&m);
    return rc;
}

/* The UNet, then the ControlNet made from it. */
static int init_unet_controlnet(cnet_backend *be, const char *out, const minit_options *opt,
                                cnet_error *err) {
    char unet_dir[PATH_MAX], cn_dir[PATH_MAX], cfg_path[PATH_MAX], cn_path[PATH_MAX];
    char weights[PATH_MAX];
    cnet_unet_config cfg, cn_cfg;
    unet_model unet;
    controlnet_model cn;
    int rc;
    if ((rc = minit_path_join(unet_dir, out, "unet", err)) ||
        (rc = minit_path_join(cn_dir, out, "controlnet", err)) ||
        (rc = minit_path_join(cfg_path, unet_dir, "config.json", err)) ||
        (rc = minit_path_join(cn_path, cn_dir, "config.json", err)) ||
        (rc = minit_path_join(weights, cn_dir, "diffusion_pytorch_model.safetensors", err)) ||
        (rc = cnet_unet_config_load(&cfg, cfg_path, err)))
        return rc;
    if (!file_exists(cn_path)) {
        /* from_unet's default conditioning embedding, the levels the
         * pipeline's VAE has (a 4x VAE takes three) */
        const int cond[CONTROLNET_DEFAULT_N_COND] = CONTROLNET_DEFAULT_COND_CHANNELS;
        char vae_path[PATH_MAX];
        cnet_vae_config vae;
        json_t *j = NULL;
        if ((rc = minit_path_join(vae_path, out, "vae/config.json", err)) ||
            (rc = cnet_vae_config_load(&vae, vae_path, err)) || (rc = minit_mkdir(cn_dir, err)) ||
            (rc = controlnet_config_from_unet(
                 &j, cfg_path, cond, controlnet_default_cond_levels(1 << (vae.n_blocks - 1)), err)))
            return rc;
        if ((rc = minit_write_json(cn_dir, "config.json", j, err))) return rc;
    }
    if ((rc = cnet_controlnet_config_load(&cn_cfg, cn_path, err))) return rc;
    if ((rc = unet_init(&unet, be, &cfg, err))) {
        unet_free(&unet);
        return rc;
    }
    rc = save_random(&unet.params, unet_dir, "diffusion_pytorch_model.safetensors", opt, "unet",
                     err);
    if (!rc) {
        rc = controlnet_init(&cn, be, &cn_cfg, err); /* cn is freeable even on failure */
        if (!rc) rc = controlnet_from_unet(&cn, &unet, opt->seed, err);
        char prefix[64];
        for (int i = 0; !rc && opt->nonzero_controlnet && i <= cn.n_skips + 1; i++) {
            if (i < cn.n_skips)
                snprintf(prefix, sizeof prefix, "controlnet_down_blocks.%d", i);
            else
                strcpy(prefix, i == cn.n_skips ? "controlnet_mid_block"
                                               : "controlnet_cond_embedding.conv_out");
            rc = winit_torch_default(&cn.params, prefix, opt->seed, "controlnet_zero", err);
        }
        if (!rc)
            rc = params_save_as(&cn.params, weights, opt->dtype, save_meta_keys, save_meta_values,
                                1, err);
        if (rc) cnet_error_prefix(err, "controlnet");
        controlnet_free(&cn);
    }
    unet_free(&unet);
    return rc;
}

int minit_model_index(const char *out, cnet_error *err) {
    char path[PATH_MAX];
    int rc = minit_path_join(path, out, "model_index.json", err);
    if (!rc && !file_exists(path))
        rc = minit_write_json(out, "model_index.json", model_index(), err);
    return rc;
}

int minit_pipeline(const char *out, const minit_options *opt, cnet_error *err) {
    int rc = minit_model_index(out, err);
    cnet_backend be;
    if (rc || (rc = cnet_backend_open(&be, "cpu", NULL, 0, err))) return rc;
    char te2[PATH_MAX];
    if (!(rc = init_unet_controlnet(&be, out, opt, err)) && !(rc = init_vae(&be, out, opt, err)) &&
        !(rc = init_text_encoder(&be, out, "text_encoder", opt, err)) &&
        !(rc = minit_path_join(te2, out, "text_encoder_2/config.json", err)) && file_exists(te2))
        rc = init_text_encoder(&be, out, "text_encoder_2", opt, err);
    cnet_backend_free(&be);
    return rc;
}
