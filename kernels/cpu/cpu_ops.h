/* The CPU backend's ops: one function per entry of the table in
 * engine/core/backend.h, same arguments and semantics (read the comments there).
 * linalg.c and conv.c hold the BLAS-backed ops; the other files one family of
 * ops each. cpu_backend.c wires them into the table. */
#ifndef CNET_CPU_OPS_H
#define CNET_CPU_OPS_H

#include "engine/core/backend.h"

/* ---- matrix products and convolution (linalg.c, conv.c) ---- */
void cpu_gemm(cnet_backend *be, float *C, const float *A, const float *B, int M, int N, int K,
              int trans_a, int trans_b, float alpha, float beta);
void cpu_gemm_batched(cnet_backend *be, float *C, const float *A, const float *B, int batch, int M,
                      int N, int K, int trans_a, int trans_b, float alpha, float beta,
                      long stride_a, long stride_b, long stride_c);
void cpu_linear_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                        const float *bias, int M, int K, int N);
void cpu_linear_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight, int M, int K,
                         int N);
void cpu_conv2d_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                        const float *bias, const cnet_conv2d *shape);
void cpu_conv2d_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight,
                         const cnet_conv2d *shape);

/* ---- products with a 16-bit stored weight (weights16.c) ---- */
void cpu_linear_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                            cnet_dtype wdtype, const float *bias, int M, int K, int N);
void cpu_linear_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                  const uint16_t *weight, cnet_dtype wdtype, int M, int K, int N);
void cpu_conv2d_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                            cnet_dtype wdtype, const float *bias, const cnet_conv2d *shape);
void cpu_conv2d_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                  const uint16_t *weight, cnet_dtype wdtype,
                                  const cnet_conv2d *shape);

/* ---- everything else ---- */
void cpu_group_norm_forward(cnet_backend *be, float *out, float *mean, float *rstd,
                            const float *inp, const float *gamma, const float *beta, int B, int HW,
                            int C, int G, float eps, int fuse_silu);
void cpu_group_norm_backward(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                             const float *dout, const float *inp, const float *mean,
                             const float *rstd, const float *gamma, const float *beta, int B,
                             int HW, int C, int G, int fuse_silu);
void cpu_layer_norm_forward(cnet_backend *be, float *out, float *mean, float *rstd,
                            const float *inp, const float *gamma, const float *beta, int M, int C,
                            float eps);
void cpu_layer_norm_backward(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                             const float *dout, const float *inp, const float *mean,
                             const float *rstd, const float *gamma, int M, int C);
void cpu_silu_forward(cnet_backend *be, float *out, const float *inp, long n);
void cpu_silu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, long n);
void cpu_gelu_forward(cnet_backend *be, float *out, const float *inp, long n);
void cpu_gelu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, long n);
void cpu_geglu_forward(cnet_backend *be, float *out, const float *inp, int M, int F);
void cpu_geglu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, int M,
                        int F);
void cpu_quick_gelu_forward(cnet_backend *be, float *out, const float *inp, long n);
void cpu_attention_forward(cnet_backend *be, float *out, float *lse, const float *q, const float *k,
                           const float *v, int B, int Nq, int Nk, int heads, int D, float scale,
                           int causal);
void cpu_attention_backward(cnet_backend *be, float *dq, float *dk, float *dv, const float *dout,
                            const float *q, const float *k, const float *v, const float *out,
                            const float *lse, int B, int Nq, int Nk, int heads, int D, float scale,
                            int causal);
void cpu_add(cnet_backend *be, float *out, const float *a, const float *b, long n);
void cpu_axpby(cnet_backend *be, float *out, float alpha, const float *a, float beta,
               const float *b, long n);
void cpu_scale(cnet_backend *be, float *out, const float *inp, float alpha, long n);
void cpu_axpy(cnet_backend *be, float *y, float alpha, const float *x, long n);
void cpu_add_broadcast(cnet_backend *be, float *out, const float *inp, const float *vec, int B,
                       int HW, int C);
void cpu_add_broadcast_backward(cnet_backend *be, float *dvec, const float *dout, int B, int HW,
                                int C);
void cpu_concat_channels(cnet_backend *be, float *out, const float *a, const float *b, int M,
                         int C1, int C2);
void cpu_split_channels(cnet_backend *be, float *a, float *b, const float *inp, int M, int C1,
                        int C2);
void cpu_upsample2x_forward(cnet_backend *be, float *out, const float *inp, int B, int H, int W,
                            int C);
void cpu_upsample2x_backward(cnet_backend *be, float *dinp, const float *dout, int B, int H, int W,
                             int C);
void cpu_embedding_forward(cnet_backend *be, float *out, const int64_t *ids, const float *table,
                           int M, int D);
void cpu_timestep_embedding(cnet_backend *be, float *out, const float *timesteps, int B, int dim,
                            int flip_sin_to_cos, float freq_shift, float max_period);
void cpu_mse_forward(cnet_backend *be, float *loss, const float *pred, const float *target,
                     const float *weights, int B, long n);
void cpu_mse_backward(cnet_backend *be, float *dpred, const float *pred, const float *target,
                      const float *weights, int B, long n, float dloss_scale);
void cpu_sum_squares(cnet_backend *be, float *out, const float *inp, long n);
void cpu_adamw_step(cnet_backend *be, float *params, float *m, float *v, const float *grads, long n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int step,
                    const float *grad_sumsq, float max_grad_norm);
void cpu_adamw8bit_step(cnet_backend *be, float *params, const cnet_adam8_state *state,
                        const float *grads, long n, float lr, float beta1, float beta2, float eps,
                        float weight_decay, int step, const float *grad_sumsq, float max_grad_norm);
void cpu_philox_normal(cnet_backend *be, float *out, long n, uint64_t seed, uint64_t offset);

#endif
