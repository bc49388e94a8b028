/* `cnet bench --model DIR --task T`: whole-model timings (server/bench_model.c). */
#ifndef CNET_BENCH_MODEL_H
#define CNET_BENCH_MODEL_H

/* argv[0] is "bench"; returns the exit status (0 ok, 1 failure, 2 usage). */
int bench_model(int argc, char **argv);
void bench_model_usage(void *file);

#endif
