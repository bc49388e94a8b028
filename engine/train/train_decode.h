/* The host half of a training batch: the dataset's next samples read, their
 * images decoded and transformed and their captions tokenized, as
 * train_controlnet.py's DataLoader workers do (--dataloader_num_workers).
 *
 * With workers = 0 a batch is made when it is asked for, in the caller's
 * thread. With workers = N > 0 a batch's samples are decoded by N threads,
 * and once the caller has taken a batch (train_decode_take) and is done with
 * its host arrays (train_decode_release), the next one is made in the
 * background while the step runs (prefetch): at most one batch is being made
 * while the caller holds another, so at most 2 <= N + 1 batches are in
 * memory. Either way a batch holds the same samples, in the same order, with
 * the same pixels: samples are read one after another in the dataset's
 * order, and a batch keeps the first B that decode, as the sequential loop
 * does (an unreadable sample is skipped and counted). An error that is not a
 * sample's (out of memory) is returned by the train_decode_take that would
 * have received the batch.
 *
 * While a batch is being made in the background the reader belongs to it:
 * the caller reads the training position with train_decode_tell, not
 * dataset_tell, and seeks only before the first take.
 *
 * What it is not: the device half (upload, text encoder, VAE latents:
 * train_batch.h) or the dataset's order (engine/data/dataset.h).
 *
 * Sizes: B batch, R resolution, Nt tokens. */
#ifndef CNET_TRAIN_DECODE_H
#define CNET_TRAIN_DECODE_H

#include <pthread.h>
#include <stdint.h>

#include "engine/data/dataset.h"
#include "engine/text/tokenizer.h"
#include "engine/train/train_step.h"

#define TRAIN_DECODE_WORKERS_MAX 64 /* --dataloader_num_workers above → CNET_EINVAL */

/* One sample's bytes, copied from the reader (which keeps them only until
 * its next read). */
typedef struct train_raw {
    int64_t id;
    uint8_t *target, *cond; /* encoded images [target_len], [cond_len] */
    size_t target_len, cond_len, target_cap, cond_cap;
    char *name, *cond_name, *caption; /* NUL-terminated */
    size_t name_cap, cond_name_cap, caption_cap;
    int rc; /* of decoding it: 0, or the sample's error */
    cnet_error err;
} train_raw;

/* train_text_to_image.py's random transforms of the target images
 * (preprocess_train_t2i, engine/image/preprocess.h), zeroed: the ControlNet
 * scripts' CenterCrop. Sample id s of epoch e draws Philox(seed) blocks
 * rng_base + (e << 36 | s << 2 | k): k = 0 the crop's top, 1 its left,
 * 2 the flip (u32 < 2^31, p = 0.5); a sample's draws depend on the seed,
 * the epoch and the sample alone, so a resumed run draws them again. torch
 * draws from its own generator in the DataLoader: same distribution, other
 * values. */
typedef struct train_transforms {
    int random_crop, random_flip;
    uint64_t seed, rng_base;
} train_transforms;

typedef struct train_decode {
    dataset *ds;    /* borrowed */
    tokenizer *tok; /* borrowed */
    int B, R, Nt, workers;
    train_transforms tf;
    int64_t epoch; /* of the batch being made */
    /* the batch made last, the caller's between take and release */
    float *img;                         /* [2, B, R, R, 3]: pixels (-1..1), conditioning (0..1) */
    int64_t *tokens;                    /* [2, B, Nt]: input ids, attention mask */
    int64_t sample_id[TRAIN_MAX_BATCH]; /* listing ids of its samples */
    int n, epoch_end;
    int64_t skipped;                /* unreadable samples met while training, all batches */
    train_raw raw[TRAIN_MAX_BATCH]; /* raw[i] is slot i's sample (caption) for i < n */
    /* the background batch */
    pthread_t thread;
    int in_flight, made;   /* made: a batch is ready for the next take */
    int rc;                /* of making it */
    cnet_error err;        /* its message */
    dataset_cursor before; /* the reader's position before it */
} train_decode;

/* tok NULL: captions are not tokenized (d->tokens is empty). */
int train_decode_init(train_decode *d, dataset *ds, tokenizer *tok, int B, int resolution,
                      int workers, const train_transforms *tf, cnet_error *err);
/* Waits for a background batch, then frees. */
void train_decode_free(train_decode *d);

/* Makes (or waits for) the next batch of up to B samples of the current
 * epoch: d->n of them in d->img, d->tokens and d->sample_id; a short batch
 * ends the epoch (d->epoch_end), n = 0 means it had no sample left. */
int train_decode_take(train_decode *d, cnet_error *err);
/* The caller is done with the taken batch's host arrays: with workers, the
 * next batch starts in the background. */
void train_decode_release(train_decode *d);
/* The training position: the reader's, less what was read ahead. */
dataset_cursor train_decode_tell(const train_decode *d);

#endif
