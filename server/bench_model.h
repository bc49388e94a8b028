/* `cnet bench --model DIR --task T`: whole-model timings (server/bench_model.c). */
#ifndef CNET_BENCH_MODEL_H
#define CNET_BENCH_MODEL_H

/* argv[0] is "bench"; returns the exit status (0 ok, 1 failure, 2 usage). */
int bench_model(int argc, char **argv);
void bench_model_usage(void *file);

/* Prints the median of times[iters] (milliseconds; sorted here) and the
 * process's peak RSS as a line, or as one JSON object. extra (NULL: none):
 * more `"key":value` members for the JSON object. */
void bench_report(const char *task, double *times, int iters, int json, const char *extra);

/* The training-step tasks (server/bench_train.c): "train_step" (VAE encode,
 * text encode, ControlNet + UNet forward and backward, AdamW, batch 1 at the
 * UNet's sample size) and "train_step_cached" (the same from cached
 * latents), with cnet train's memory levers when asked. Returns 2 when task
 * is not one of them. */
int bench_train(const char *model, const char *task, int iters, int json,
                int gradient_checkpointing, int set_grads_to_none);

#endif
