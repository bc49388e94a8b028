/* Slow, obvious double-precision references of the BLAS-backed ops
 * (gemm, batched gemm, linear, conv2d), for tests only.
 *
 * Same arguments and semantics as the cpu_* ops of cpu_ops.h (read
 * engine/core/backend.h), minus the backend pointer and with double buffers:
 * outputs first; gradient outputs may be NULL; dinp overwrites, dweight and
 * dbias accumulate. Plain loops straight from the definitions, no blocking,
 * no BLAS, no threads. */
#ifndef CNET_CPU_REF_LINALG_H
#define CNET_CPU_REF_LINALG_H

#include "engine/core/backend.h"

void ref_gemm(double *C, const double *A, const double *B, int M, int N, int K, int trans_a,
              int trans_b, double alpha, double beta);
void ref_gemm_batched(double *C, const double *A, const double *B, int batch, int M, int N, int K,
                      int trans_a, int trans_b, double alpha, double beta, long stride_a,
                      long stride_b, long stride_c);
void ref_linear_forward(double *out, const double *inp, const double *weight, const double *bias,
                        int M, int K, int N);
void ref_linear_backward(double *dinp, double *dweight, double *dbias, const double *dout,
                         const double *inp, const double *weight, int M, int K, int N);
void ref_conv2d_forward(double *out, const double *inp, const double *weight, const double *bias,
                        const cnet_conv2d *shape);
void ref_conv2d_backward(double *dinp, double *dweight, double *dbias, const double *dout,
                         const double *inp, const double *weight, const cnet_conv2d *shape);

#endif
