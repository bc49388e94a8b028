/* Training checkpoints: `checkpoint-<step>/` in the output dir, as
 * train_controlnet.py's accelerator.save_state, holding everything a bit-exact
 * resume needs:
 *
 *   controlnet/config.json, controlnet/diffusion_pytorch_model.safetensors
 *     (unet/ when the whole UNet trains, cnet train-unet)
 *   unet_ema/diffusion_pytorch_model.safetensors  (--use_ema: EMAModel's
 *     shadow, as the script's save_model_hook writes it)
 *   optimizer_exp_avg.safetensors, optimizer_exp_avg_sq.safetensors  (AdamW)
 *     or optimizer_8bit.safetensors (--use_8bit_adam; engine/train/adam_state.h)
 *   trainer_state.json   (step, epoch, data cursor, seed, LR schedule, ...)
 *
 * A checkpoint is written under `checkpoint-<step>.partial-<random>` (a name
 * of its own: two runs writing the same step into one shared folder —
 * a worker that lost its lease and the one that took it over — never mix
 * their files) and renamed into place only when every file is complete and
 * synced, so a crash mid-write never leaves a directory that looks complete;
 * leftovers of such a crash are removed when the next run starts
 * (checkpoint_remove_partials; never by a save, which may be a run that no
 * longer owns the folder). checkpoints_total_limit removes the oldest once
 * the new one is in place (the script removes them before saving; after, a
 * failed save loses nothing). */
#ifndef CNET_CHECKPOINT_H
#define CNET_CHECKPOINT_H

#include <jansson.h>
#include <stddef.h>

#include "engine/train/adam_state.h"
#include "engine/core/params.h"

#define CHECKPOINT_PREFIX "checkpoint-"
#define CHECKPOINT_EMA_DIR "unet_ema"

typedef struct checkpoint_tables {
    cnet_params *weights;  /* borrowed (checkpoint_save only reads the tables) */
    adam_state *optimizer; /* borrowed */
    const char *model;     /* the weights' folder: "controlnet" (NULL) or "unet" */
    cnet_params *ema;      /* borrowed; NULL: no --use_ema */
} checkpoint_tables;

/* Saves step's checkpoint; total_limit <= 0: keep all. */
/* Removes every partial checkpoint folder under output_dir: a run's first
 * act, when it owns the folder (an older run still writing one then fails
 * its save, as it should). */
void checkpoint_remove_partials(const char *output_dir);

int checkpoint_save(const char *output_dir, int step, const json_t *model_config,
                    const checkpoint_tables *t, const json_t *state, int total_limit,
                    cnet_error *err);

/* The directory of the newest complete checkpoint (highest step) in
 * output_dir; CNET_ENOTFOUND when there is none. */
int checkpoint_latest(const char *output_dir, char *path, size_t cap, cnet_error *err);

/* Loads a checkpoint directory into the weights, optimizer state and EMA
 * (t's tables, written through; same layout and form as saved) and
 * returns its trainer_state.json (*state: new reference). */
int checkpoint_load(const char *dir, const checkpoint_tables *t, json_t **state, cnet_error *err);

#endif
