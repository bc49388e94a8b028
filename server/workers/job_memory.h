/* A queued job's memory need, estimated before it is claimed, for
 * placement (a node claims only jobs that fit its --memory-limit,
 * server/workers/runner.h's runner_fits). From the base model's weight
 * files on disk (engine/config/model_files.h picks each component's):
 *   generate  W                                 the pipeline's weights
 *   train     W + JOB_MEMORY_TRAIN_COPIES × U   plus the ControlNet (at most
 *                                               the UNet's size U) with its
 *                                               gradients and Adam's moments
 * where W sums the unet, vae and text encoders' files.
 *
 * What it is not: a measurement. It is a lower bound: activations (which
 * grow with resolution × batch), scratch and a wider in-memory dtype than
 * the files' are not counted, so a job under a node's limit may still run
 * out (the engine's own failure, retried within the job's attempts); a job
 * over it can never run there, which is what placement must know. */
#ifndef CNET_JOB_MEMORY_H
#define CNET_JOB_MEMORY_H

#include <stdint.h>

#include "engine/core/error.h"

/* The ControlNet's weights, gradients and two Adam moments. */
#define JOB_MEMORY_TRAIN_COPIES 4

/* The need of a job of kind ("train" or "generate") on the base model in
 * model_dir, in bytes. CNET_ENOTFOUND when the model or a component's
 * weights are not there (e.g. a Hub model not downloaded yet). */
int job_memory_need(const char *model_dir, const char *kind, int64_t *bytes, cnet_error *err);

#endif
