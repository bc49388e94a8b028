/* The AdamW state of the trained parameters and the optimiser step over it,
 * in one of two forms chosen at init:
 *
 * - float32 (the default): m and v as two buffers in the parameters' block
 *   layout, one fused clip_grad_norm_ + torch.optim.AdamW op over the whole
 *   block (or the shard);
 * - 8-bit (--use_8bit_adam, bitsandbytes' AdamW8bit as train_controlnet.py
 *   uses it): every tensor of at least ADAM8_MIN_SIZE elements keeps uint8
 *   codes plus a float32 absmax per block of CNET_ADAM8_BLOCK for m and v
 *   (engine/core/adam8.h), stepped by adamw8bit_step; smaller tensors keep
 *   float32 m and v and step with adamw_step. About 2 bytes per parameter
 *   instead of 8.
 *
 * In checkpoints (engine/train/checkpoint.c) the float32 form is
 * optimizer_exp_avg.safetensors + optimizer_exp_avg_sq.safetensors (PyTorch
 * layout, one tensor per parameter); the 8-bit form is
 * optimizer_8bit.safetensors with bnb's state names per parameter,
 * `<name>.state1` / `.state2` (U8 codes, or F32 for small tensors) and
 * `<name>.absmax1` / `.absmax2`, plus the maps `qmap1` / `qmap2`. Its
 * tensors are 1-D in cnet's memory order (conv weights OHWI), because the
 * quantisation blocks are cut in that order; so it is not a bnb state dict
 * (whose blocks run over PyTorch's OIHW order), only cnet resumes from it.
 *
 * A state may cover only a shard [lo, hi) of the parameters' block (ZeRO's
 * optimizer-state partitioning, --shard_optimizer): then it holds m and v
 * for those elements only and steps only them; the 8-bit form's shards are
 * cut at quantisation-block boundaries (adam_shard.h plans the cuts), so a
 * shard's step is the whole state's step restricted to the shard, bit for
 * bit. Only a whole state (lo 0, hi the block's size) is saved or loaded
 * (engine/train/adam_shard.h gathers a whole one and takes a shard of it).
 *
 * Not here: gradients, clipping's sum of squares (engine/train/train_step.c). */
#ifndef CNET_ADAM_STATE_H
#define CNET_ADAM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/adam8.h"
#include "engine/core/params.h"

/* AdamW's settings for one step (clip_grad_norm_ first when
 * max_grad_norm > 0). */
typedef struct train_adamw {
    float lr, beta1, beta2, eps, weight_decay, max_grad_norm;
} train_adamw;

/* Where one parameter's 8-bit-form state lives. */
typedef struct adam8_slot {
    int is_8bit;   /* the whole tensor's numel >= ADAM8_MIN_SIZE */
    size_t a, b;   /* the tensor's elements [a, b) in the state's shard (a == b: none) */
    size_t offset; /* into codes_* (8-bit) or small_* (float32), elements */
    size_t block;  /* into absmax_* (8-bit only) */
} adam8_slot;

/* How much 8-bit-form state a range of the block holds: codes, absmax
 * blocks, float32 elements of small tensors. */
typedef struct adam8_extent {
    size_t n_8bit, n_blocks, n_small;
} adam8_extent;

typedef struct adam_state {
    cnet_backend *be;          /* borrowed */
    const cnet_params *params; /* borrowed: the trained table, whose layout the state follows */
    int use_8bit;
    size_t lo, hi; /* the shard of params->block the state covers; [0, total): whole */
    float *m, *v;  /* float32 form: owned device buffers of hi - lo floats */
    /* 8-bit form: owned device buffers, and the host table of slots */
    adam8_slot *slots;          /* [params->n] */
    uint8_t *codes_m, *codes_v; /* [n_8bit] */
    float *absmax_m, *absmax_v; /* [n_blocks] */
    float *small_m, *small_v;   /* [n_small] */
    float *qmaps;               /* [2, 256]: signed map (m), unsigned map (v) */
    size_t n_8bit, n_blocks, n_small;
    adam8_extent before; /* of [0, lo): where the shard's arrays start in a whole state's */
} adam_state;

/* Zeroed state for params (which must outlive it). */
int adam_state_init(adam_state *s, const cnet_params *params, int use_8bit, cnet_error *err);
/* The same for the shard [lo, hi) of params->block only; with use_8bit, lo
 * and hi must not cut an 8-bit tensor inside a quantisation block
 * (adam_shard_bounds' cuts never do; CNET_EINVAL otherwise). */
int adam_state_init_shard(adam_state *s, const cnet_params *params, int use_8bit, size_t lo,
                          size_t hi, cnet_error *err);
/* The 8-bit-form state of [lo, hi) of params->block (lo, hi as above). */
adam8_extent adam8_extent_of(const cnet_params *params, size_t lo, size_t hi);
void adam_state_free(adam_state *s);

/* Device bytes the state holds (the figure --use_8bit_adam cuts ~4x). */
size_t adam_state_bytes(const adam_state *s);

/* One AdamW step on s->params from grads (same layout; not modified);
 * grad_sumsq: device [1] sum of squares of all grads when clipping, or
 * NULL. step counts from 1. */
void adam_state_step(adam_state *s, const cnet_params *grads, const train_adamw *opt, int step,
                     const float *grad_sumsq);

/* Writes the state's checkpoint file(s) into dir (see above); a whole
 * state only (a shard: CNET_EINVAL). */
int adam_state_save(const adam_state *s, const char *dir, cnet_error *err);
/* Reads them back from a checkpoint dir into a whole state; a checkpoint
 * of the other form is refused with a message saying which flag resumes
 * it. */
int adam_state_load(adam_state *s, const char *dir, cnet_error *err);

#endif
