/* Slow, obvious double-precision references of the CPU backend's non-linalg
 * ops (norms, activations, attention, elementwise, embeddings, loss,
 * optimiser), used only by tests.
 *
 * Each ref_X has the arguments of cpu_X in the same order with `double *`
 * buffers and without the backend. Same conventions: parameter gradients
 * accumulate (+=), activation gradients overwrite (=), NULL = not needed.
 * The references are written for clarity, not speed: the attention one
 * materialises the whole score matrix, the norm backward follows the
 * textbook chain rule through mean and variance, and the timestep embedding
 * is the exact formula in double (the fast op rounds like torch's float32;
 * tests bound that difference separately). */
#ifndef CNET_REF_NN_H
#define CNET_REF_NN_H

#include <stdint.h>

void ref_group_norm_forward(double *out, double *mean, double *rstd, const double *inp,
                            const double *gamma, const double *beta, int B, int HW, int C, int G,
                            double eps, int fuse_silu);
void ref_group_norm_backward(double *dinp, double *dgamma, double *dbeta, const double *dout,
                             const double *inp, const double *mean, const double *rstd,
                             const double *gamma, const double *beta, int B, int HW, int C, int G,
                             int fuse_silu);
void ref_layer_norm_forward(double *out, double *mean, double *rstd, const double *inp,
                            const double *gamma, const double *beta, int M, int C, double eps);
void ref_layer_norm_backward(double *dinp, double *dgamma, double *dbeta, const double *dout,
                             const double *inp, const double *mean, const double *rstd,
                             const double *gamma, int M, int C);

void ref_silu_forward(double *out, const double *inp, long n);
void ref_silu_backward(double *dinp, const double *dout, const double *inp, long n);
void ref_gelu_forward(double *out, const double *inp, long n);
void ref_gelu_backward(double *dinp, const double *dout, const double *inp, long n);
void ref_geglu_forward(double *out, const double *inp, int M, int F);
void ref_geglu_backward(double *dinp, const double *dout, const double *inp, int M, int F);
void ref_quick_gelu_forward(double *out, const double *inp, long n);

void ref_attention_forward(double *out, double *lse, const double *q, const double *k,
                           const double *v, int B, int Nq, int Nk, int heads, int D, double scale,
                           int causal);
/* Recomputes the probabilities from q and k; out and lse are not read. */
void ref_attention_backward(double *dq, double *dk, double *dv, const double *dout, const double *q,
                            const double *k, const double *v, const double *out, const double *lse,
                            int B, int Nq, int Nk, int heads, int D, double scale, int causal);

void ref_add(double *out, const double *a, const double *b, long n);
void ref_axpby(double *out, double alpha, const double *a, double beta, const double *b, long n);
void ref_scale(double *out, const double *inp, double alpha, long n);
void ref_axpy(double *y, double alpha, const double *x, long n);
void ref_add_broadcast(double *out, const double *inp, const double *vec, int B, int HW, int C);
void ref_add_broadcast_backward(double *dvec, const double *dout, int B, int HW, int C);
void ref_concat_channels(double *out, const double *a, const double *b, int M, int C1, int C2);
void ref_split_channels(double *a, double *b, const double *inp, int M, int C1, int C2);
void ref_upsample2x_forward(double *out, const double *inp, int B, int H, int W, int C);
void ref_upsample2x_backward(double *dinp, const double *dout, int B, int H, int W, int C);

void ref_embedding_forward(double *out, const int64_t *ids, const double *table, int M, int D);
void ref_timestep_embedding(double *out, const double *timesteps, int B, int dim,
                            int flip_sin_to_cos, double freq_shift, double max_period);

void ref_mse_forward(double *loss, const double *pred, const double *target, const double *weights,
                     int B, long n);
void ref_mse_backward(double *dpred, const double *pred, const double *target,
                      const double *weights, int B, long n, double dloss_scale);
void ref_sum_squares(double *out, const double *inp, long n);
/* torch.optim.AdamW's formula in exact arithmetic (no float32 rounding). */
void ref_adamw_step(double *params, double *m, double *v, const double *grads, long n, double lr,
                    double beta1, double beta2, double eps, double weight_decay, int step,
                    const double *grad_sumsq, double max_grad_norm);
/* bitsandbytes' block-wise 8-bit AdamW (engine/core/adam8.h) with the moments in
 * exact arithmetic: per block of CNET_ADAM8_BLOCK, decode m and v with the old
 * absmax, ref_adamw_step's update, new absmax = max |moment|, and each code
 * the nearest entry of the map by exhaustive search (the first of equally
 * near ones), with the first moment's sign rule. Codes [n], absmax
 * [ceil(n / CNET_ADAM8_BLOCK)], maps [256] as in cnet_adam8_state. */
void ref_adamw8bit_step(double *params, uint8_t *m_codes, uint8_t *v_codes, double *absmax_m,
                        double *absmax_v, const float *qmap_m, const float *qmap_v,
                        const double *grads, long n, double lr, double beta1, double beta2,
                        double eps, double weight_decay, int step, const double *grad_sumsq,
                        double max_grad_norm);

#endif
