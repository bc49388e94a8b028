/* `cnet bench --model DIR --task T`: whole-model timings (server/bench/bench_model.c). */
#ifndef CNET_BENCH_MODEL_H
#define CNET_BENCH_MODEL_H

#include "engine/core/backend.h"

/* Largest --batch of the training-step tasks. */
#define BENCH_MAX_BATCH 64

/* What `cnet bench --model` was asked. */
typedef struct bench_model_opts {
    const char *model, *task;
    const char *device;       /* cpu, cuda, cuda:N (falls back to the CPU with a note) */
    cnet_precision precision; /* --mixed_precision: the products' compute precision on cuda */
    int iters, json;
    int batch; /* samples per training step (train tasks only) */
    /* train tasks: cnet train's --use_8bit_adam, --gradient_checkpointing,
     * --set_grads_to_none */
    int use_8bit_adam, gradient_checkpointing, set_grads_to_none;
} bench_model_opts;

/* argv[0] is "bench"; returns the exit status (0 ok, 1 failure, 2 usage). */
int bench_model(int argc, char **argv);
void bench_model_usage(void *file);

/* Opens o->device at compute precision o->precision; a fallback to the CPU
 * and a precision the backend does not apply are reported on stderr. */
int bench_open_backend(cnet_backend *be, const bench_model_opts *o, cnet_error *err);

/* Prints the median of times[o->iters] (milliseconds; sorted here), the
 * backend, the process's peak RSS and, on a GPU, the device memory
 * high-water mark, as a line or as one JSON object. extra (NULL: none): more
 * `"key":value` members for the JSON object. */
void bench_report(const bench_model_opts *o, const char *task, double *times, cnet_backend *be,
                  const char *extra);

/* The training-step tasks (server/bench/bench_train.c): "train_step" (VAE encode,
 * text encode, ControlNet + UNet forward and backward, AdamW, o->batch
 * samples at the UNet's sample size), "train_step_cached" (the same from
 * cached latents), with cnet train's optimizer and memory options from o.
 * Returns 2 when o->task is not one of them. */
int bench_train(const bench_model_opts *o);

#endif
