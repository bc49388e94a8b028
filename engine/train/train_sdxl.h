/* The SDXL conditioning of a training step, as diffusers v0.27.2
 * examples/controlnet/train_controlnet_sdxl.py's compute_embeddings builds
 * it for every caption:
 *
 *   prompt_embeds [B, L, D1+D2] = encode_prompt(caption) of both encoders
 *     (hidden_states[-2], no final LayerNorm; empty captions are encoded,
 *     never zeroed: engine/pipeline/prompt_sdxl.h with cfg = 0)
 *   text_embeds   [B, P]        = text_encoder_2's pooled, projected output
 *   time_ids      [B, 6]        = [R, R, crops_h, crops_w, R, R]
 *     (original_size = target_size = (resolution, resolution) and the crop
 *     from --crops_coords_top_left_h/_w, whatever the image's real size and
 *     the CenterCrop actually taken: the script's rule, kept as it is).
 *
 * Both tokenizers and text encoders are the base's (sd_base loads
 * tokenizer_2/ and text_encoder_2/ of an SDXL folder). Not here: the step itself (train_step.h),
 * the images and latents (train_batch.h). */
#ifndef CNET_TRAIN_SDXL_H
#define CNET_TRAIN_SDXL_H

#include "engine/core/arena.h"
#include "engine/pipeline/prompt_sdxl.h"
#include "engine/pipeline/sd_base.h"

typedef struct train_sdxl {
    prompt_sdxl_models models; /* borrowed from the base */
    int L, D, P;               /* tokens, D1+D2, text_embeds width */
} train_sdxl;

/* Whether the base is SDXL (sd_base checked model_index.json against the
 * UNet's addition_embed_type "text_time"). */
int train_sdxl_is_sdxl(const sd_base *base);

/* Takes the base's two encoders and checks their widths against the UNet's
 * cross_attention_dim and projection input. base is borrowed and must
 * outlive s; nothing to free. */
int train_sdxl_open(train_sdxl *s, sd_base *base, cnet_error *err);

/* Scratch bytes train_sdxl_encode takes for n captions. */
size_t train_sdxl_scratch_bytes(const train_sdxl *s, int n);

/* embeds [n, L, D] and text_embeds [n, P] (device) of n captions. */
int train_sdxl_encode(train_sdxl *s, cnet_arena *scratch, const char *const *captions, int n,
                      float *embeds, float *text_embeds, cnet_error *err);

/* time_ids [n, 6] (host) = [R, R, crops_h, crops_w, R, R] per sample. */
void train_sdxl_time_ids(float *time_ids, int n, int resolution, int crops_h, int crops_w);

#endif
