/* Double-precision references of the non-linalg ops; see ref_nn.h. Plain
 * loops, no OpenMP, no BLAS, no cleverness: each is the textbook formula of
 * the torch/diffusers function named in the fast op's file. */
#include "kernels/cpu/ref_nn.h"

#include <math.h>

#include "engine/core/backend.h"
#include <stdlib.h>
#include <string.h>

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ---- norms ---- */

void ref_group_norm_forward(double *out, double *mean, double *rstd, const double *inp,
                            const double *gamma, const double *beta, int B, int HW, int C, int G,
                            double eps, int fuse_silu) {
    const int Cg = C / G;
    const double N = (double)HW * Cg;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            double s = 0, ss = 0;
            for (int i = 0; i < HW; i++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) s += inp[((long)b * HW + i) * C + c];
            const double mu = s / N;
            for (int i = 0; i < HW; i++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                    double d = inp[((long)b * HW + i) * C + c] - mu;
                    ss += d * d;
                }
            const double rs = 1.0 / sqrt(ss / N + eps);
            if (mean) mean[b * G + g] = mu;
            if (rstd) rstd[b * G + g] = rs;
            for (int i = 0; i < HW; i++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                    const long idx = ((long)b * HW + i) * C + c;
                    double y = (inp[idx] - mu) * rs * gamma[c] + beta[c];
                    out[idx] = fuse_silu ? y * sigmoid(y) : y;
                }
        }
}

/* Chain rule through y = gamma*(x - mu)*rstd + beta with
 * rstd = (var + eps)^-1/2, var = mean((x - mu)^2), mu = mean(x):
 *   dvar = sum dxhat (x - mu) * (-1/2) rstd^3
 *   dmu  = -rstd sum dxhat + dvar * (-2/N) sum (x - mu)
 *   dx   = dxhat rstd + dvar 2 (x - mu) / N + dmu / N. */
void ref_group_norm_backward(double *dinp, double *dgamma, double *dbeta, const double *dout,
                             const double *inp, const double *mean, const double *rstd,
                             const double *gamma, const double *beta, int B, int HW, int C, int G,
                             int fuse_silu) {
    const int Cg = C / G;
    const double N = (double)HW * Cg;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            const double mu = mean[b * G + g], rs = rstd[b * G + g];
            double dvar = 0, dmu = 0, sdev = 0;
            for (int i = 0; i < HW; i++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                    const long idx = ((long)b * HW + i) * C + c;
                    const double xhat = (inp[idx] - mu) * rs;
                    double dy = dout[idx];
                    if (fuse_silu) {
                        double y = gamma[c] * xhat + beta[c], s = sigmoid(y);
                        dy *= s + y * s * (1 - s);
                    }
                    if (dgamma) dgamma[c] += dy * xhat;
                    if (dbeta) dbeta[c] += dy;
                    const double dxhat = dy * gamma[c];
                    dvar += dxhat * (inp[idx] - mu) * -0.5 * rs * rs * rs;
                    dmu += -dxhat * rs;
                    sdev += inp[idx] - mu;
                }
            dmu += dvar * (-2.0 / N) * sdev;
            if (!dinp) continue;
            for (int i = 0; i < HW; i++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                    const long idx = ((long)b * HW + i) * C + c;
                    const double xhat = (inp[idx] - mu) * rs;
                    double dy = dout[idx];
                    if (fuse_silu) {
                        double y = gamma[c] * xhat + beta[c], s = sigmoid(y);
                        dy *= s + y * s * (1 - s);
                    }
                    dinp[idx] = dy * gamma[c] * rs + dvar * 2.0 * (inp[idx] - mu) / N + dmu / N;
                }
        }
}

/* A layer norm of [M, C] is a group norm with M samples of one pixel and
 * one group. */
void ref_layer_norm_forward(double *out, double *mean, double *rstd, const double *inp,
                            const double *gamma, const double *beta, int M, int C, double eps) {
    ref_group_norm_forward(out, mean, rstd, inp, gamma, beta, M, 1, C, 1, eps, 0);
}

void ref_layer_norm_backward(double *dinp, double *dgamma, double *dbeta, const double *dout,
                             const double *inp, const double *mean, const double *rstd,
                             const double *gamma, int M, int C) {
    double *zero_beta = calloc((size_t)C, sizeof *zero_beta); /* unused without SiLU */
    ref_group_norm_backward(dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, zero_beta, M, 1, C,
                            1, 0);
    free(zero_beta);
}

/* ---- activations ---- */

static double gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double gelu_grad(double x) {
    return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
}

void ref_silu_forward(double *out, const double *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = inp[i] * sigmoid(inp[i]);
}

void ref_silu_backward(double *dinp, const double *dout, const double *inp, long n) {
    for (long i = 0; i < n; i++) {
        double s = sigmoid(inp[i]);
        dinp[i] = dout[i] * (s + inp[i] * s * (1 - s));
    }
}

void ref_gelu_forward(double *out, const double *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = gelu(inp[i]);
}

void ref_gelu_backward(double *dinp, const double *dout, const double *inp, long n) {
    for (long i = 0; i < n; i++) dinp[i] = dout[i] * gelu_grad(inp[i]);
}

void ref_geglu_forward(double *out, const double *inp, int M, int F) {
    for (int m = 0; m < M; m++)
        for (int f = 0; f < F; f++)
            out[(long)m * F + f] = inp[2L * m * F + f] * gelu(inp[2L * m * F + F + f]);
}

void ref_geglu_backward(double *dinp, const double *dout, const double *inp, int M, int F) {
    for (int m = 0; m < M; m++)
        for (int f = 0; f < F; f++) {
            const double h = inp[2L * m * F + f], gate = inp[2L * m * F + F + f];
            const double d = dout[(long)m * F + f];
            dinp[2L * m * F + f] = d * gelu(gate);
            dinp[2L * m * F + F + f] = d * h * gelu_grad(gate);
        }
}

void ref_quick_gelu_forward(double *out, const double *inp, long n) {
    for (long i = 0; i < n; i++) out[i] = inp[i] * sigmoid(1.702 * inp[i]);
}

/* ---- attention ---- */

/* P[Nq, Nk] = softmax(scale * q k^T + mask) of head h of batch b; returns
 * the row log-sum-exps in lse_row[Nq] when non-NULL. */
static void ref_attention_probs(double *P, double *lse_row, const double *q, const double *k, int b,
                                int h, int Nq, int Nk, int heads, int D, double scale, int causal) {
    const long HD = (long)heads * D;
    for (int i = 0; i < Nq; i++) {
        double mx = -INFINITY;
        for (int j = 0; j < Nk; j++) {
            double s = 0;
            for (int d = 0; d < D; d++)
                s +=
                    q[((long)b * Nq + i) * HD + h * D + d] * k[((long)b * Nk + j) * HD + h * D + d];
            s = causal && j > i ? -INFINITY : scale * s;
            P[(long)i * Nk + j] = s;
            if (s > mx) mx = s;
        }
        double sum = 0;
        for (int j = 0; j < Nk; j++) sum += exp(P[(long)i * Nk + j] - mx);
        for (int j = 0; j < Nk; j++) P[(long)i * Nk + j] = exp(P[(long)i * Nk + j] - mx) / sum;
        if (lse_row) lse_row[i] = mx + log(sum);
    }
}

void ref_attention_forward(double *out, double *lse, const double *q, const double *k,
                           const double *v, int B, int Nq, int Nk, int heads, int D, double scale,
                           int causal) {
    const long HD = (long)heads * D;
    double *P = malloc((size_t)Nq * Nk * sizeof *P);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++) {
            ref_attention_probs(P, lse ? lse + ((long)b * heads + h) * Nq : NULL, q, k, b, h, Nq,
                                Nk, heads, D, scale, causal);
            for (int i = 0; i < Nq; i++)
                for (int d = 0; d < D; d++) {
                    double s = 0;
                    for (int j = 0; j < Nk; j++)
                        s += P[(long)i * Nk + j] * v[((long)b * Nk + j) * HD + h * D + d];
                    out[((long)b * Nq + i) * HD + h * D + d] = s;
                }
        }
    free(P);
}

/* dV = P^T dO; dP = dO V^T; dS_ij = P_ij (dP_ij - sum_l P_il dP_il) (the
 * softmax Jacobian); dQ = scale dS K; dK = scale dS^T Q. */
void ref_attention_backward(double *dq, double *dk, double *dv, const double *dout, const double *q,
                            const double *k, const double *v, const double *out, const double *lse,
                            int B, int Nq, int Nk, int heads, int D, double scale, int causal) {
    (void)out, (void)lse;
    const long HD = (long)heads * D;
    double *P = malloc((size_t)Nq * Nk * sizeof *P);
    double *dS = malloc((size_t)Nq * Nk * sizeof *dS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++) {
            ref_attention_probs(P, NULL, q, k, b, h, Nq, Nk, heads, D, scale, causal);
            for (int i = 0; i < Nq; i++) {
                double row = 0;
                for (int j = 0; j < Nk; j++) {
                    double dp = 0;
                    for (int d = 0; d < D; d++)
                        dp += dout[((long)b * Nq + i) * HD + h * D + d] *
                              v[((long)b * Nk + j) * HD + h * D + d];
                    dS[(long)i * Nk + j] = dp;
                    row += P[(long)i * Nk + j] * dp;
                }
                for (int j = 0; j < Nk; j++)
                    dS[(long)i * Nk + j] = P[(long)i * Nk + j] * (dS[(long)i * Nk + j] - row);
            }
            for (int d = 0; d < D; d++) {
                for (int i = 0; i < Nq && dq; i++) {
                    double s = 0;
                    for (int j = 0; j < Nk; j++)
                        s += dS[(long)i * Nk + j] * k[((long)b * Nk + j) * HD + h * D + d];
                    dq[((long)b * Nq + i) * HD + h * D + d] = scale * s;
                }
                for (int j = 0; j < Nk && (dk || dv); j++) {
                    double sk = 0, sv = 0;
                    for (int i = 0; i < Nq; i++) {
                        sk += dS[(long)i * Nk + j] * q[((long)b * Nq + i) * HD + h * D + d];
                        sv += P[(long)i * Nk + j] * dout[((long)b * Nq + i) * HD + h * D + d];
                    }
                    if (dk) dk[((long)b * Nk + j) * HD + h * D + d] = scale * sk;
                    if (dv) dv[((long)b * Nk + j) * HD + h * D + d] = sv;
                }
            }
        }
    free(P);
    free(dS);
}

/* ---- elementwise ---- */

void ref_add(double *out, const double *a, const double *b, long n) {
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ref_axpby(double *out, double alpha, const double *a, double beta, const double *b, long n) {
    for (long i = 0; i < n; i++) out[i] = alpha * a[i] + beta * b[i];
}

void ref_scale(double *out, const double *inp, double alpha, long n) {
    for (long i = 0; i < n; i++) out[i] = alpha * inp[i];
}

void ref_axpy(double *y, double alpha, const double *x, long n) {
    for (long i = 0; i < n; i++) y[i] += alpha * x[i];
}

void ref_add_broadcast(double *out, const double *inp, const double *vec, int B, int HW, int C) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < C; c++)
                out[((long)b * HW + i) * C + c] = inp[((long)b * HW + i) * C + c] + vec[b * C + c];
}

void ref_add_broadcast_backward(double *dvec, const double *dout, int B, int HW, int C) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int i = 0; i < HW; i++) s += dout[((long)b * HW + i) * C + c];
            dvec[b * C + c] = s;
        }
}

void ref_concat_channels(double *out, const double *a, const double *b, int M, int C1, int C2) {
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C1 + C2; c++)
            out[(long)m * (C1 + C2) + c] =
                c < C1 ? a[(long)m * C1 + c] : b[(long)m * C2 + (c - C1)];
}

void ref_split_channels(double *a, double *b, const double *inp, int M, int C1, int C2) {
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C1 + C2; c++) {
            const double x = inp[(long)m * (C1 + C2) + c];
            if (c < C1 && a) a[(long)m * C1 + c] = x;
            if (c >= C1 && b) b[(long)m * C2 + (c - C1)] = x;
        }
}

/* Output pixel (oh, ow) reads input pixel (oh / 2, ow / 2). */
void ref_upsample2x_forward(double *out, const double *inp, int B, int H, int W, int C) {
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < 2 * H; oh++)
            for (int ow = 0; ow < 2 * W; ow++)
                for (int c = 0; c < C; c++)
                    out[(((long)b * 2 * H + oh) * 2 * W + ow) * C + c] =
                        inp[(((long)b * H + oh / 2) * W + ow / 2) * C + c];
}

void ref_upsample2x_backward(double *dinp, const double *dout, int B, int H, int W, int C) {
    memset(dinp, 0, (size_t)B * H * W * C * sizeof *dinp);
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < 2 * H; oh++)
            for (int ow = 0; ow < 2 * W; ow++)
                for (int c = 0; c < C; c++)
                    dinp[(((long)b * H + oh / 2) * W + ow / 2) * C + c] +=
                        dout[(((long)b * 2 * H + oh) * 2 * W + ow) * C + c];
}

/* ---- embeddings ---- */

void ref_embedding_forward(double *out, const int64_t *ids, const double *table, int M, int D) {
    for (int m = 0; m < M; m++)
        for (int d = 0; d < D; d++) out[(long)m * D + d] = table[ids[m] * D + d];
}

void ref_timestep_embedding(double *out, const double *timesteps, int B, int dim,
                            int flip_sin_to_cos, double freq_shift, double max_period) {
    const int half = dim / 2;
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < half; k++) {
            const double freq = exp(-log(max_period) * k / (half - freq_shift));
            const double s = sin(timesteps[b] * freq), c = cos(timesteps[b] * freq);
            out[(long)b * dim + k] = flip_sin_to_cos ? c : s;
            out[(long)b * dim + half + k] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2) out[(long)b * dim + dim - 1] = 0;
    }
}

/* ---- loss and optimiser ---- */

void ref_mse_forward(double *loss, const double *pred, const double *target, const double *weights,
                     int B, long n) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (long i = 0; i < n; i++) {
            double d = pred[(long)b * n + i] - target[(long)b * n + i];
            s += d * d;
        }
        total += (weights ? weights[b] : 1.0) * s / n;
    }
    loss[0] = total / B;
}

void ref_mse_backward(double *dpred, const double *pred, const double *target,
                      const double *weights, int B, long n, double dloss_scale) {
    for (int b = 0; b < B; b++)
        for (long i = 0; i < n; i++)
            dpred[(long)b * n + i] = dloss_scale * (weights ? weights[b] : 1.0) * 2.0 *
                                     (pred[(long)b * n + i] - target[(long)b * n + i]) / B / n;
}

void ref_sum_squares(double *out, const double *inp, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += inp[i] * inp[i];
    out[0] = s;
}

void ref_adamw_step(double *params, double *m, double *v, const double *grads, long n, double lr,
                    double beta1, double beta2, double eps, double weight_decay, int step,
                    const double *grad_sumsq, double max_grad_norm) {
    double clip = 1.0;
    if (grad_sumsq) clip = fmin(1.0, max_grad_norm / (sqrt(grad_sumsq[0]) + 1e-6));
    const double bc1 = 1 - pow(beta1, step), bc2 = 1 - pow(beta2, step);
    for (long i = 0; i < n; i++) {
        const double g = grads[i] * clip;
        params[i] *= 1 - lr * weight_decay;
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        params[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
    }
}

/* The code of x in a block with this absmax: the map entry nearest to
 * x / absmax (the first of equally near ones; 0 when absmax is 0); with
 * keep_sign, an entry of the other sign than x is replaced by its
 * neighbour towards x's sign. */
static uint8_t ref_code(const float *map, double x, double absmax, int keep_sign) {
    const double xn = absmax > 0 ? x / absmax : 0;
    int best = 0;
    for (int k = 1; k < 256; k++)
        if (fabs(xn - map[k]) < fabs(xn - map[best])) best = k;
    if (keep_sign && !signbit((double)map[best]) != !signbit(x)) best += x > 0 ? 1 : -1;
    return (uint8_t)best;
}

void ref_adamw8bit_step(double *params, uint8_t *m_codes, uint8_t *v_codes, double *absmax_m,
                        double *absmax_v, const float *qmap_m, const float *qmap_v,
                        const double *grads, long n, double lr, double beta1, double beta2,
                        double eps, double weight_decay, int step, const double *grad_sumsq,
                        double max_grad_norm) {
    for (long b = 0, i0 = 0; i0 < n; b++, i0 += CNET_ADAM8_BLOCK) {
        const long len = n - i0 < CNET_ADAM8_BLOCK ? n - i0 : CNET_ADAM8_BLOCK;
        double m[CNET_ADAM8_BLOCK], v[CNET_ADAM8_BLOCK], amax_m = 0, amax_v = 0;
        for (long j = 0; j < len; j++) {
            m[j] = qmap_m[m_codes[i0 + j]] * absmax_m[b];
            v[j] = qmap_v[v_codes[i0 + j]] * absmax_v[b];
        }
        ref_adamw_step(params + i0, m, v, grads + i0, len, lr, beta1, beta2, eps, weight_decay,
                       step, grad_sumsq, max_grad_norm);
        for (long j = 0; j < len; j++) {
            amax_m = fmax(amax_m, fabs(m[j]));
            amax_v = fmax(amax_v, fabs(v[j]));
        }
        for (long j = 0; j < len; j++) {
            m_codes[i0 + j] = ref_code(qmap_m, m[j], amax_m, 1);
            v_codes[i0 + j] = ref_code(qmap_v, v[j], amax_v, 0);
        }
        absmax_m[b] = amax_m, absmax_v[b] = amax_v;
    }
}
