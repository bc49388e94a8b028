/* ZeRO's optimizer-state partitioning (Rajbhandari et al., "ZeRO: Memory
 * Optimizations Toward Training Trillion Parameter Models", SC 2020, stages
 * 1 and 2; DeepSpeed's zero_optimization): with N ranks each keeps AdamW's
 * state (engine/train/adam_state.h, float32 or 8-bit) for one contiguous
 * shard of the trained parameters' block and steps only that shard, after
 * which the weights are all-gathered (engine/dist/dist_device.h).
 *
 * Here: where the shards are cut, and the two moves between shards and a
 * whole state that checkpoints need (the checkpoint files hold the whole
 * state, as unsharded runs write it, so a run resumes on any number of
 * ranks, sharded or not): gathering every rank's shard into a whole state
 * on rank 0 before a save, and taking this rank's shard of a whole state
 * after a load.
 *
 * What it is not: the step (train_step.c reduce-scatters the gradients,
 * steps the shard, all-gathers the weights) or the files (adam_state.c). */
#ifndef CNET_ADAM_SHARD_H
#define CNET_ADAM_SHARD_H

#include <stddef.h>

#include "engine/dist/dist_device.h"
#include "engine/train/adam_state.h"

/* bounds[0..n_ranks]: rank r's shard is [bounds[r], bounds[r+1]) of
 * params->block. Cut at r * total / n_ranks, moved down (with use_8bit) to
 * the start of the 8-bit quantisation block it falls in, so a shard holds
 * at most CNET_ADAM8_BLOCK - 1 elements fewer or more than total / n_ranks
 * (none with float32 state). */
void adam_shard_bounds(const cnet_params *params, int use_8bit, int n_ranks, size_t *bounds);

/* shard's m and v = the same elements of whole's (same parameters and
 * form; whole covers the block). Device copies. */
int adam_shard_take(adam_state *shard, const adam_state *whole, cnet_error *err);

/* Every rank's shard (shards made with bounds, the same on every rank) into
 * whole on rank 0 (a whole state of the same parameters and form; NULL on
 * the other ranks). Every rank calls it. */
int adam_shard_gather(dist_comm *c, dist_stage *stage, const adam_state *shard,
                      const size_t *bounds, adam_state *whole, cnet_error *err);

#endif
