/* Training checkpoints: `checkpoint-<step>/` in the output dir, as
 * train_controlnet.py's accelerator.save_state, holding everything a bit-exact
 * resume needs:
 *
 *   controlnet/config.json, controlnet/diffusion_pytorch_model.safetensors
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

typedef struct checkpoint_tables {
    const cnet_params *weights;  /* borrowed */
    const adam_state *optimizer; /* borrowed */
} checkpoint_tables;

/* Saves step's checkpoint; total_limit <= 0: keep all. */
/* Removes every partial checkpoint folder under output_dir: a run's first
 * act, when it owns the folder (an older run still writing one then fails
 * its save, as it should). */
void checkpoint_remove_partials(const char *output_dir);

int checkpoint_save(const char *output_dir, int step, const json_t *controlnet_config,
                    const checkpoint_tables *t, const json_t *state, int total_limit,
                    cnet_error *err);

/* The directory of the newest complete checkpoint (highest step) in
 * output_dir; CNET_ENOTFOUND when there is none. */
int checkpoint_latest(const char *output_dir, char *path, size_t cap, cnet_error *err);

/* Loads a checkpoint directory into the weights and optimizer state (same
 * layout and form as saved) and returns its trainer_state.json (*state: new
 * reference). */
int checkpoint_load(const char *dir, cnet_params *weights, adam_state *optimizer, json_t **state,
                    cnet_error *err);

#endif
