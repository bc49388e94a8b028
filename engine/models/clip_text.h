/* CLIP text encoder: transformers' CLIPTextModel, forward only (the text
 * encoder is frozen in ControlNet training).
 *
 * token + position embedding -> N pre-LN transformer layers (causal
 * self-attention, MLP with quick_gelu or gelu) -> final LayerNorm. As in
 * Stable Diffusion only the causal mask is used (no padding mask).
 * clip_skip = k runs the first N-k layers and applies the final LayerNorm to
 * that output (diffusers' encode_prompt with clip_skip).
 *
 * Sizes: B prompts, L tokens (<= max_position_embeddings), D hidden. */
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

/* Loads a diffusers component folder: config.json and its weights
 * (engine/config/model_files.h). On failure m is left freed. */
int clip_text_open(clip_text_model *m, cnet_backend *be, const char *dir, cnet_error *err);

#endif
