/* The SDXL parts of pipeline_generate (internal to engine/pipeline): the
 * prompt embeddings of both text encoders and the added conditions,
 * following diffusers v0.27.2 StableDiffusionXLControlNetPipeline.__call__:
 *
 *   prompt_embeds   = cat([neg, pos])               [rows, L, D1+D2]
 *   add_text_embeds = cat([neg_pooled, pooled])     [rows, P]
 *   add_time_ids    = cat([neg_ids, pos_ids]).repeat(N, 1)   [rows, 6]
 *
 * each prompt's rows repeated num_images times (prompt-major). The time-id
 * rows ALTERNATE neg, pos, neg, pos for N > 1 images and are not aligned
 * with the embeddings' [neg..., pos...] rows: diffusers' order, kept as is.
 * Guess mode with CFG gives the ControlNets the second half of each
 * (chunk(2)[1]). Not here: the denoising loop (pipeline.c). */
#ifndef CNET_PIPELINE_SDXL_H
#define CNET_PIPELINE_SDXL_H

#include "engine/pipeline/pipeline.h"

/* Whether m is an SDXL base (it has the second text encoder). */
int pipeline_is_sdxl(const pipe_models *m);
/* The width P of the pooled text embeddings (0 for SD). */
int pipeline_sdxl_pooled_dim(const pipe_models *m);
/* Scratch bytes the encoding of n prompts takes. */
size_t pipeline_sdxl_scratch_bytes(const pipe_models *m, int n_prompts);
/* embeds [rows, L, D] and pooled [rows, P] (device) of request r: P
 * prompts, `per` images each, rows = 2 * P * per with cfg, else P * per. */
int pipeline_sdxl_encode(const pipe_models *m, cnet_arena *scratch, const pipe_request *r, int cfg,
                         int per, float *embeds, float *pooled, cnet_error *err);
/* Host time_ids [rows, 6] of a run of N images at height x width. */
void pipeline_sdxl_time_ids(const pipe_micro *micro, int height, int width, int cfg, int N,
                            float *time_ids);
/* Refuses what diffusers would refuse or silently misread: negative sizes
 * of 0 on one side, SDXL fields on an SD base. */
int pipeline_sdxl_check(const pipe_models *m, const pipe_request *r, cnet_error *err);

#endif
