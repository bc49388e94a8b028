/* SDXL prompt encoding: diffusers v0.27.2
 * StableDiffusionXLControlNetPipeline.encode_prompt, as a pure function over
 * two tokenizers and two CLIP text encoders on one backend.
 *
 * What it computes, for n prompts:
 *   embeds [n, L, D1+D2] = cat(text_encoder(ids_1).hidden_states[-(c+2)],
 *                              text_encoder_2(ids_2).hidden_states[-(c+2)])
 *     (no final LayerNorm; c = clip_skip, 0 when unset), ids_k = tokenizer_k
 *     of the prompt (prompt_2 for the second encoder), padded/truncated to L;
 *   pooled [n, P] = text_encoder_2's text_embeds (text_projection of the
 *     pooled output) of prompt_2;
 *   with classifier-free guidance the same for the negative prompts, always
 *     with hidden_states[-2] (clip_skip is for the prompt only), or ZEROS for
 *     both when negative is None and force_zeros_for_empty_prompt is set.
 * None in diffusers is NULL here. Python's `prompt_2 or prompt` and
 * `negative_prompt or ""` treat an empty STRING like None: a caller that has
 * one string for all prompts passes NULL when it is empty (a list [""] is
 * not None and is encoded as ""). Without the first encoder (tok and te
 * NULL: the SDXL refiner) only the second runs, on prompt and negative (not
 * prompt_2/negative_2), as encode_prompt's zip does.
 *
 * What it is not: the num_images_per_prompt repeat and the CFG batch
 * concatenation (cat([neg, pos])) are the caller's, as are the time ids.
 * SDXL training (train_controlnet_sdxl.py's encode_prompt) calls it with
 * cfg = 0 and every caption, empty ones included, encoded.
 *
 * Sizes: n prompts, L = model_max_length (both tokenizers), D1, D2 the
 * encoders' widths, P text_encoder_2's projection_dim. */
#ifndef CNET_PROMPT_SDXL_H
#define CNET_PROMPT_SDXL_H

#include <stddef.h>

#include "engine/core/arena.h"
#include "engine/core/error.h"
#include "engine/models/clip_text.h"
#include "engine/text/tokenizer.h"

/* Borrowed; te_2 needs text_projection (CLIPTextModelWithProjection). */
typedef struct prompt_sdxl_models {
    tokenizer *tok, *tok_2;
    clip_text_model *te, *te_2;
} prompt_sdxl_models;

typedef struct prompt_sdxl_request {
    int n;                            /* prompts, >= 1 */
    const char *const *prompt;        /* [n] */
    const char *const *prompt_2;      /* [n], or NULL: prompt */
    const char *const *negative;      /* [n], or NULL: None */
    const char *const *negative_2;    /* [n], or NULL: the negative ("" if None) */
    int cfg;                          /* do_classifier_free_guidance */
    int force_zeros_for_empty_prompt; /* model_index.json's flag */
    int clip_skip;                    /* 0 (None) .. min(N1, N2) - 1 */
} prompt_sdxl_request;

/* Device buffers the caller owns; the negatives are written only with cfg. */
typedef struct prompt_sdxl_out {
    float *embeds, *neg_embeds; /* [n, L, D1+D2] */
    float *pooled, *neg_pooled; /* [n, P] */
} prompt_sdxl_out;

/* L, D1+D2 and P of the models; errors when the two tokenizers' lengths
 * differ or te_2 has no text_projection. */
int prompt_sdxl_dims(const prompt_sdxl_models *m, int *L, int *D, int *P, cnet_error *err);

/* Scratch bytes prompt_sdxl_encode takes for n prompts (0 when the models
 * do not fit together; prompt_sdxl_dims says why). */
size_t prompt_sdxl_scratch_bytes(const prompt_sdxl_models *m, int n);

/* Encodes r into out; temporaries come from scratch and are released. */
int prompt_sdxl_encode(const prompt_sdxl_models *m, cnet_arena *scratch,
                       const prompt_sdxl_request *r, const prompt_sdxl_out *out, cnet_error *err);

#endif
