/* CLIP text encoder: transformers' CLIPTextModel and
 * CLIPTextModelWithProjection (SDXL's text_encoder_2), forward only (the
 * text encoders are frozen in ControlNet training).
 *
 * token + position embedding -> N pre-LN transformer layers (causal
 * self-attention, MLP with quick_gelu or gelu) -> final LayerNorm. As in
 * Stable Diffusion only the causal mask is used (no padding mask).
 * Two ways to read it:
 *  - clip_text_forward, SD 1.x: clip_skip = k runs the first N-k layers and
 *    applies the final LayerNorm to that output (StableDiffusionPipeline's
 *    encode_prompt with clip_skip);
 *  - clip_text_forward_states, SDXL: hidden_states[i] WITHOUT the final
 *    LayerNorm (StableDiffusionXLPipeline's encode_prompt reads
 *    hidden_states[-2]), plus the pooled output of the last layer and its
 *    text_projection (text_embeds).
 * Not implemented: attention masks, output_attentions, the vision tower.
 *
 * Sizes: B prompts, L tokens (<= max_position_embeddings), D hidden,
 * P projection_dim. */
#ifndef CNET_CLIP_TEXT_H
#define CNET_CLIP_TEXT_H

#include <stdint.h>

#include "engine/core/arena.h"
#include "engine/core/backend.h"
#include "engine/config/config.h"
#include "engine/core/nn.h"
#include "engine/core/params.h"

typedef struct clip_layer {
    nn_norm ln1, ln2;
    nn_linear q, k, v, out;
    nn_linear fc1, fc2;
} clip_layer;

typedef struct clip_text_model {
    cnet_params params;
    int n_layers, hidden, heads, intermediate, max_positions, vocab;
    int gelu_exact; /* 1: "gelu" (erf), 0: "quick_gelu" */
    int eos_token_id;
    int token_embedding, position_embedding; /* parameter indices */
    clip_layer *layers;
    nn_norm final_ln;
    int projection_dim;        /* P; 0 without text_projection */
    nn_linear text_projection; /* [P, D], no bias (CLIPTextModelWithProjection) */
} clip_text_model;

/* Declares the parameters (names and shapes) without allocating them;
 * clip_text_init also allocates. */
int clip_text_declare(clip_text_model *m, cnet_backend *be, const cnet_clip_text_config *cfg,
                      cnet_error *err);
int clip_text_init(clip_text_model *m, cnet_backend *be, const cnet_clip_text_config *cfg,
                   cnet_error *err);
void clip_text_free(clip_text_model *m);

/* Scratch bytes one forward of B prompts of L tokens takes from the arena. */
size_t clip_text_scratch_bytes(const clip_text_model *m, int B, int L);

/* last_hidden [B, L, D] (device) and optionally pooled [B, D] (device):
 * the hidden state at the EOS position of each prompt (transformers' rule:
 * argmax of the ids when eos_token_id == 2, else the first eos_token_id).
 * ids [B, L] are host int64. Temporaries come from `scratch` and are
 * released before returning. */
int clip_text_forward(clip_text_model *m, cnet_arena *scratch, float *last_hidden, float *pooled,
                      const int64_t *ids, int B, int L, int clip_skip, cnet_error *err);

/* hidden [B, L, D] (device) = hidden_states[hidden_index] of transformers
 * (0: the embedding output, k: the output of layer k, no final LayerNorm;
 * hidden_index in 0..N); optionally pooled [B, D] (device) = the final
 * LayerNorm of the LAST layer's output at the EOS position
 * (clip_text_eos_index) and text_embeds [B, P] (device) =
 * text_projection(pooled), which needs a model with text_projection.
 * Any of hidden, pooled and text_embeds may be NULL; all N layers run when
 * pooled or text_embeds is asked for, else hidden_index layers. ids [B, L] are host int64. */
int clip_text_forward_states(clip_text_model *m, cnet_arena *scratch, float *hidden,
                             int hidden_index, float *pooled, float *text_embeds,
                             const int64_t *ids, int B, int L, cnet_error *err);

/* The pooling position of one row of ids [L]: transformers' rule, the
 * position of the largest id when eos_token_id == 2 (legacy configs, first
 * maximum), else the first eos_token_id (0 when there is none). */
int clip_text_eos_index(const clip_text_model *m, const int64_t *ids, int L);

/* Loads a diffusers component folder: config.json and its weights
 * (engine/config/model_files.h). On failure m is left freed. */
int clip_text_open(clip_text_model *m, cnet_backend *be, const char *dir, cnet_error *err);

#endif
