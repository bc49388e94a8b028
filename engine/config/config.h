/* Model and scheduler configurations: diffusers / transformers config.json
 * files loaded into plain C structs, with the libraries' defaults for absent
 * fields and their derived values resolved once here (per-block head counts,
 * the time embedding width, scheduler quirks), so model code never reads JSON.
 *
 * References: diffusers v0.27.2 UNet2DConditionModel / ControlNetModel /
 * AutoencoderKL __init__ and the scheduler classes' __init__ signatures;
 * transformers CLIPTextConfig. Unknown fields are ignored (as from_config
 * does); a field of the wrong type is an error naming the file, the field and
 * what was expected; features cnet does not implement are refused as
 * "unsupported" naming the field and its value. Not a writer. */
#ifndef CNET_CONFIG_H
#define CNET_CONFIG_H

#include <stdbool.h>

#include "engine/core/error.h"

/* Most UNet/VAE levels a config may have (block_out_channels entries). */
#define CNET_MAX_BLOCKS 8
/* Most resnets a UNet down block may have (layers_per_block; up blocks one more). */
#define CNET_MAX_LAYERS 8
/* Largest config.json accepted (a trained_betas list of 1000 floats is ~25 KB). */
#define CNET_CONFIG_MAX_BYTES (4u << 20)

/* Block types, with one name table (the diffusers class names). */
typedef enum cnet_block_type {
    CNET_BLOCK_DOWN = 0,        /* DownBlock2D */
    CNET_BLOCK_CROSS_ATTN_DOWN, /* CrossAttnDownBlock2D */
    CNET_BLOCK_UP,              /* UpBlock2D */
    CNET_BLOCK_CROSS_ATTN_UP,   /* CrossAttnUpBlock2D */
    CNET_BLOCK_MID_CROSS_ATTN,  /* UNetMidBlock2DCrossAttn */
    CNET_BLOCK_MID,             /* UNetMidBlock2D (ControlNet: one resnet, no attention) */
    CNET_BLOCK_DOWN_ENCODER,    /* DownEncoderBlock2D (VAE) */
    CNET_BLOCK_UP_DECODER,      /* UpDecoderBlock2D (VAE) */
    CNET_BLOCK_TYPE_COUNT
} cnet_block_type;

const char *cnet_block_type_name(cnet_block_type t);

/* UNet2DConditionModel and ControlNetModel (the ControlNet is the UNet's
 * encoder half plus the fields at the end). Per-block arrays are indexed by
 * down block; up-block values are the reversed ones, resolved in up_*. */
typedef struct cnet_unet_config {
    bool is_controlnet;
    int in_channels, out_channels; /* out_channels: UNet only */
    int sample_size;               /* 0 when null */
    int n_blocks;                  /* = len(down_block_types) = len(block_out_channels) */
    cnet_block_type down_block_types[CNET_MAX_BLOCKS];
    cnet_block_type up_block_types[CNET_MAX_BLOCKS]; /* UNet only */
    cnet_block_type mid_block_type;
    int block_out_channels[CNET_MAX_BLOCKS];
    int layers_per_block[CNET_MAX_BLOCKS]; /* resnets per down block (up: +1) */
    /* BasicTransformerBlocks of each Transformer2DModel, resolved per layer
     * from transformer_layers_per_block (an int, one entry per down block,
     * or per-layer lists) and, for the UNet's up blocks,
     * reverse_transformer_layers_per_block (default: the down entries
     * reversed). Entries of blocks without attention are unused. */
    int down_transformer_layers[CNET_MAX_BLOCKS][CNET_MAX_LAYERS];
    int mid_transformer_layers; /* the last down entry (its first layer when a list) */
    int up_transformer_layers[CNET_MAX_BLOCKS][CNET_MAX_LAYERS + 1]; /* by up block; UNet only */
    int cross_attention_dim[CNET_MAX_BLOCKS];
    bool only_cross_attention[CNET_MAX_BLOCKS];
    bool mid_block_only_cross_attention;
    /* Attention heads, resolved as diffusers does: the head COUNT is
     * num_attention_heads, or attention_head_dim when that is null (the
     * SD naming quirk); head dim = channels / heads. */
    int attention_head_dim[CNET_MAX_BLOCKS]; /* as written in the config, per block */
    int heads[CNET_MAX_BLOCKS];              /* per down block */
    int mid_heads;                           /* = heads[n_blocks-1] */
    int up_heads[CNET_MAX_BLOCKS];           /* per up block: heads reversed */
    bool use_linear_projection, upcast_attention, center_input_sample, flip_sin_to_cos;
    int freq_shift;
    int time_embed_dim; /* time_embedding_dim, or 4 * block_out_channels[0] */
    int norm_num_groups;
    float norm_eps;
    int downsample_padding;
    float mid_block_scale_factor;
    int conv_in_kernel, conv_out_kernel; /* ControlNet: always 3 */
    /* addition_embed_type "text_time" (SDXL): aug_emb = add_embedding(
     * cat(text_embeds [Dp], Timesteps(A)(each of the 6 time ids) [6*A])) is
     * added to the time embedding. A = addition_time_embed_dim,
     * projection_class_embeddings_input_dim = Dp + 6*A. */
    bool add_text_time;
#define CNET_TIME_IDS 6 /* orig_h, orig_w, crop_top, crop_left, target_h, target_w */
    int addition_time_embed_dim;
    int projection_class_embeddings_input_dim;
    /* ControlNetModel only: */
    int conditioning_channels;
    int n_cond_blocks;
    int conditioning_embedding_out_channels[CNET_MAX_BLOCKS];
    bool cond_bgr; /* controlnet_conditioning_channel_order == "bgr" */
    bool global_pool_conditions;
} cnet_unet_config;

/* AutoencoderKL. GroupNorm eps is 1e-6 throughout (fixed in diffusers). */
typedef struct cnet_vae_config {
    int in_channels, out_channels, latent_channels, sample_size;
    int n_blocks;
    cnet_block_type down_block_types[CNET_MAX_BLOCKS];
    cnet_block_type up_block_types[CNET_MAX_BLOCKS];
    int block_out_channels[CNET_MAX_BLOCKS];
    int layers_per_block; /* encoder resnets per block; the decoder has +1 */
    int norm_num_groups;
    float scaling_factor;
    float shift_factor; /* 0 when null */
    bool force_upcast, mid_block_add_attention, use_quant_conv, use_post_quant_conv;
} cnet_vae_config;

typedef enum cnet_clip_act { CNET_CLIP_QUICK_GELU = 0, CNET_CLIP_GELU } cnet_clip_act;

/* transformers CLIPTextConfig (a full CLIPConfig's text_config is used). */
typedef struct cnet_clip_text_config {
    int vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
    int max_position_embeddings, projection_dim;
    cnet_clip_act hidden_act;
    float layer_norm_eps;
    /* eos_token_id == 2 selects the legacy pooling (argmax of the ids). */
    int eos_token_id, bos_token_id, pad_token_id;
    /* architectures names CLIPTextModelWithProjection: the model has
     * text_projection [projection_dim, hidden_size], no bias. */
    bool with_projection;
} cnet_clip_text_config;

typedef enum cnet_sched_kind {
    CNET_SCHED_DDPM = 0,
    CNET_SCHED_DDIM,
    CNET_SCHED_PNDM,
    CNET_SCHED_EULER,
    CNET_SCHED_EULER_ANCESTRAL,
    CNET_SCHED_DPMSOLVER_MULTISTEP,
    CNET_SCHED_UNIPC,
    CNET_SCHED_KIND_COUNT
} cnet_sched_kind;

/* Name tables of the scheduler enums (the diffusers spellings). */
const char *cnet_sched_kind_name(cnet_sched_kind k); /* "DDIMScheduler", ... */
typedef enum {
    CNET_BETA_LINEAR = 0,
    CNET_BETA_SCALED_LINEAR,
    CNET_BETA_SQUAREDCOS_CAP_V2,
    CNET_BETA_SIGMOID
} cnet_beta_schedule;
typedef enum { CNET_PRED_EPSILON = 0, CNET_PRED_V, CNET_PRED_SAMPLE } cnet_prediction_type;
typedef enum {
    CNET_SPACING_LEADING = 0,
    CNET_SPACING_TRAILING,
    CNET_SPACING_LINSPACE
} cnet_timestep_spacing;
typedef enum {
    CNET_ALGO_DPMSOLVER_PP = 0,
    CNET_ALGO_SDE_DPMSOLVER_PP,
    CNET_ALGO_DPMSOLVER,
    CNET_ALGO_SDE_DPMSOLVER
} cnet_dpm_algorithm;
typedef enum {
    CNET_SOLVER_MIDPOINT = 0,
    CNET_SOLVER_HEUN,
    CNET_SOLVER_BH1,
    CNET_SOLVER_BH2
} cnet_solver_type;
typedef enum { CNET_FINAL_SIGMA_ZERO = 0, CNET_FINAL_SIGMA_MIN } cnet_final_sigmas_type;
typedef enum { CNET_INTERP_LINEAR = 0, CNET_INTERP_LOG_LINEAR } cnet_interpolation_type;
typedef enum {
    CNET_VAR_NONE = 0, /* DPMSolver's null */
    CNET_VAR_FIXED_SMALL,
    CNET_VAR_FIXED_SMALL_LOG,
    CNET_VAR_FIXED_LARGE,
    CNET_VAR_FIXED_LARGE_LOG,
    CNET_VAR_LEARNED,
    CNET_VAR_LEARNED_RANGE
} cnet_variance_type;

/* Most entries of UniPC's disable_corrector list. */
#define CNET_SCHED_MAX_DISABLE_CORRECTOR 64

/* Every scheduler field that changes the math; fields of other classes keep
 * the file's value or a neutral default and are not read by that class. */
typedef struct cnet_sched_config {
    cnet_sched_kind kind;
    int num_train_timesteps;
    double beta_start, beta_end;
    cnet_beta_schedule beta_schedule;
    double *trained_betas; /* owned, n_trained_betas entries; NULL when null */
    int n_trained_betas;
    cnet_prediction_type prediction_type;
    cnet_timestep_spacing timestep_spacing;
    int steps_offset;
    bool set_alpha_to_one, clip_sample, thresholding, rescale_betas_zero_snr;
    double clip_sample_range, dynamic_thresholding_ratio, sample_max_value;
    cnet_variance_type variance_type;
    bool skip_prk_steps;                        /* PNDM */
    cnet_interpolation_type interpolation_type; /* Euler */
    bool use_karras_sigmas;
    double sigma_min, sigma_max; /* Euler; NAN when null */
    bool timestep_continuous;    /* Euler timestep_type == "continuous" */
    int solver_order;            /* DPM-Solver, UniPC */
    cnet_dpm_algorithm algorithm_type;
    cnet_solver_type solver_type; /* remapped per class as diffusers does */
    bool lower_order_final, euler_at_final, use_lu_lambdas;
    cnet_final_sigmas_type final_sigmas_type;
    double lambda_min_clipped; /* -INFINITY by default */
    bool predict_x0;           /* UniPC */
    int n_disable_corrector;
    int disable_corrector[CNET_SCHED_MAX_DISABLE_CORRECTOR];
} cnet_sched_config;

/* model_index.json: component -> [library, class]; both empty for [null, null]. */
#define CNET_MODEL_INDEX_MAX 32
#define CNET_CONFIG_NAME_MAX 64
typedef struct cnet_model_component {
    char name[CNET_CONFIG_NAME_MAX];
    char library[CNET_CONFIG_NAME_MAX];
    char class_name[CNET_CONFIG_NAME_MAX];
} cnet_model_component;

typedef struct cnet_model_index {
    char class_name[CNET_CONFIG_NAME_MAX]; /* the pipeline's _class_name */
    /* The SDXL pipelines' register_to_config flag; -1 when absent. */
    int force_zeros_for_empty_prompt;
    int n;
    cnet_model_component components[CNET_MODEL_INDEX_MAX];
} cnet_model_index;

int cnet_unet_config_load(cnet_unet_config *c, const char *path, cnet_error *err);
int cnet_controlnet_config_load(cnet_unet_config *c, const char *path, cnet_error *err);
int cnet_vae_config_load(cnet_vae_config *c, const char *path, cnet_error *err);
int cnet_clip_text_config_load(cnet_clip_text_config *c, const char *path, cnet_error *err);
/* kind < 0: the file's _class_name decides. Otherwise the file is read as
 * that class would read it (Cls.from_config): absent fields take that class's
 * defaults. Free with cnet_sched_config_free. */
int cnet_sched_config_load(cnet_sched_config *c, const char *path, int kind, cnet_error *err);
void cnet_sched_config_free(cnet_sched_config *c);
int cnet_model_index_load(cnet_model_index *m, const char *path, cnet_error *err);
/* NULL when the component is absent. */
const cnet_model_component *cnet_model_index_find(const cnet_model_index *m, const char *name);

#endif
