/* `cnet bench --model DIR --task T`: whole-model timings (server/bench/bench_model.c),
 * and what the other benchmarks of server/bench/ share with them (opening
 * the backend, the report line). The command line is server/cli/cmd_bench.c's. */
#ifndef CNET_BENCH_MODEL_H
#define CNET_BENCH_MODEL_H

#include "engine/core/backend.h"

/* Largest --batch of the training-step tasks. */
#define BENCH_MAX_BATCH 64
#define BENCH_MODEL_DEFAULT_ITERS 5
#define BENCH_MODEL_MAX_ITERS 1000 /* timed runs: a stack array of times */
/* The generate task: diffusers' defaults, with UniPC. */
#define BENCH_GENERATE_STEPS 20
#define BENCH_GENERATE_GUIDANCE 7.5f

/* What `cnet bench --model` was asked. */
typedef struct bench_model_opts {
    const char *model, *task;
    const char *device;       /* cpu, cuda, cuda:N (falls back to the CPU with a note) */
    cnet_precision precision; /* --mixed_precision: the products' compute precision on cuda */
    int iters, json;          /* iters: 1..BENCH_MODEL_MAX_ITERS */
    int batch; /* samples per training step (train tasks only); 0: the task's default */
    /* train tasks: cnet train's --use_8bit_adam, --gradient_checkpointing,
     * --set_grads_to_none */
    int use_8bit_adam, gradient_checkpointing, set_grads_to_none;
} bench_model_opts;

/* Runs o->task on o->model and prints its report; errors go to stderr.
 * Returns the exit status: 0 ok, 1 failure, 2 the options are invalid (no
 * model or task, a training option on a task that does not train). */
int bench_model_run(const bench_model_opts *o);

/* Opens device at compute precision; a fallback to the CPU and a precision
 * the backend does not apply are reported on stderr. */
int bench_open_backend(cnet_backend *be, const char *device, cnet_precision precision,
                       cnet_error *err);

/* Prints the median of times[o->iters] (milliseconds; sorted here), the
 * backend, the process's peak RSS and, on a GPU, the device memory
 * high-water mark, as a line or as one JSON object. flop: the FLOPs of one
 * run through the backend's products (bench_flops.h), reported with the
 * GFLOP/s they make at the median. extra (NULL: none): more `"key":value`
 * members for the JSON object. */
void bench_report(const bench_model_opts *o, const char *task, double *times, cnet_backend *be,
                  double flop, const char *extra);

/* The training-step tasks (server/bench/bench_train.c): "train_step" (VAE encode,
 * text encode, ControlNet + UNet forward and backward, AdamW, o->batch
 * samples at the UNet's sample size), "train_step_cached" (the same from
 * cached latents), with cnet train's optimizer and memory options from o.
 * Returns 2 when o->task is not one of them. */
int bench_train(const bench_model_opts *o);

#endif
