/* Counting the floating-point work of a model run through the backend
 * table (issue 21, model-level efficiency): the product entries (gemm,
 * gemm_batched, linear, conv2d and their 16-bit-weight twins, attention
 * forward and backward) are wrapped by shims that add each call's FLOPs to
 * a counter, then call the backend's own entry. FLOPs as `cnet bench ops`
 * counts them: 2 per multiply-add of the direct product (a Winograd conv
 * counts its direct FLOPs; bias, im2col, softmax and the elementwise ops
 * are not counted; a causal attention counts its full score matrix). Not
 * a timer and not thread-safe: one wrapped backend per process, driven
 * from one thread, as the benchmarks run it. */
#ifndef CNET_BENCH_FLOPS_H
#define CNET_BENCH_FLOPS_H

#include "engine/core/backend.h"

/* Wraps be's product entries (once; be must outlive the counting). */
void bench_flops_wrap(cnet_backend *be);
/* The FLOPs counted since the last call (or the wrap), and restarts. */
double bench_flops_take(void);

#endif
