/* Training batches: samples from the dataset reader turned into what one
 * train_step needs, as train_controlnet.py's dataloader + the top of its
 * loop do:
 *
 *   pixel_values  = Normalize(0.5, 0.5)(ToTensor(CenterCrop(Resize(image))))
 *   conditioning  = ToTensor(CenterCrop(Resize(conditioning_image)))
 *   input_ids     = tokenizer(caption)            (padding max_length)
 *   latents       = vae.encode(pixel_values).latent_dist.sample() * scaling_factor
 *   text          = text_encoder(input_ids)[0]
 *
 * With cache_latents the VAE's mean and std of each sample are computed once
 * and kept (the VAE is frozen); the sampling noise is still drawn per step,
 * so cached and uncached runs are the same computation. The host half
 * (reading, decoding, tokenizing, with --dataloader_num_workers threads and
 * prefetch) is train_decode.h's; unreadable samples met during training are
 * skipped and counted there.
 *
 * SDXL (train_controlnet_sdxl.py, a train_sdxl given): text is both
 * encoders' prompt_embeds, with text_embeds and the time ids beside it
 * (engine/train/train_sdxl.h); the image transforms are the same (v0.27.2
 * has no random crop or flip).
 *
 * Data parallel (ranks > 1): the reader makes the global micro-batch of
 * B x ranks samples on every rank (the host half: reading, decoding,
 * tokenizing, cheap beside a step), so an unreadable sample shifts every
 * rank's slice alike; each rank uploads and encodes only its slice, samples
 * [rank x B, rank x B + B) of it, and draws its VAE noise where one process
 * with the global batch would.
 *
 * Sizes: B batch (per rank), R resolution, h = w = R / vae factor, L latent channels,
 * Nt tokens, D text dim. */
#ifndef CNET_TRAIN_BATCH_H
#define CNET_TRAIN_BATCH_H

#include <stdint.h>

#include "engine/core/arena.h"
#include "engine/data/dataset.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/train_decode.h"
#include "engine/train/train_sdxl.h"

typedef struct train_batcher {
    sd_base *base; /* borrowed */
    train_decode decode;
    vae_model *vae;       /* borrowed: the base's, or --pretrained_vae_model_name_or_path's */
    train_sdxl *sdxl;     /* borrowed; NULL: SD 1.x / 2.x */
    int crops_h, crops_w; /* SDXL: --crops_coords_top_left_h/_w */
    cnet_arena scratch;
    int B, R, h, w, L, Nt, D;
    int rank, ranks; /* this rank's slice of the global micro-batch of B x ranks */
    uint64_t seed;
    int cache_latents;
    float **cache; /* [dataset entries] host moments mean|std [h*w*L*2], lazily */
    int64_t n_cache;
    /* device */
    float *pixels, *cond, *latents, *text, *moments;
    float *text_embeds; /* SDXL [B, P] */
    /* host */
    float *host_lat;
    float *time_ids; /* SDXL [B, 6] */
} train_batcher;

/* B: the batch of this rank, one of ranks (1: one process). vae: the VAE
 * to encode with (borrowed; base's when NULL). sdxl: NULL, or
 * an SDXL base's text conditioning (train_sdxl.h; then crops_h/w are the
 * time ids' crop). workers: --dataloader_num_workers, tf: the random
 * transforms (zeroed: CenterCrop; train_decode.h). */
int train_batcher_init(train_batcher *tb, sd_base *base, dataset *ds, int B, int rank, int ranks,
                       int resolution, uint64_t seed, int cache_latents, int workers,
                       vae_model *vae, train_sdxl *sdxl, int crops_h, int crops_w,
                       const train_transforms *tf, cnet_error *err);
void train_batcher_free(train_batcher *tb);

/* Fills the device buffers with this rank's slice of the next global
 * micro-batch of up to B x ranks samples from the current epoch; *n
 * receives the slice's count (0: this rank has none of a short batch) and
 * *n_all the global batch's (a short batch ends the epoch; 0 means the
 * epoch had no sample left). rng_offset: the Philox block
 * offset of this micro-batch's VAE sampling noise. *epoch_end is set when
 * the reader reached the end of its epoch. An error of the decode threads
 * is returned here. The training position is train_decode_tell(&tb->decode). */
int train_batcher_next(train_batcher *tb, uint64_t rng_offset, int *n, int *n_all, int *epoch_end,
                       cnet_error *err);

#endif
