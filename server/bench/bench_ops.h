/* `cnet bench ops`: GFLOP/s of the backend table's products at Stable
 * Diffusion shapes (server/bench/bench_ops.c). */
#ifndef CNET_BENCH_OPS_H
#define CNET_BENCH_OPS_H

#include "engine/core/backend.h"

#define BENCH_OPS_DEFAULT_ITERS 5
#define BENCH_OPS_MAX_ITERS 1000 /* timed runs per case: a stack array of times */

/* What `cnet bench ops` was asked. */
typedef struct bench_ops_opts {
    const char *device;       /* cpu, cuda, cuda:N (falls back to the CPU with a note) */
    cnet_precision precision; /* the products' compute precision on cuda */
    int iters;                /* timed runs per case, 1..BENCH_OPS_MAX_ITERS */
    int json;                 /* one JSON object per line instead of a table */
} bench_ops_opts;

/* Times every case on stdout; errors go to stderr. Returns the exit status:
 * 0 ok, 1 a case failed, 2 the options are invalid. */
int bench_ops_run(const bench_ops_opts *o);

#endif
