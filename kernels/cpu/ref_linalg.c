/* See ref_linalg.h. Each output element is computed from its definition;
 * the convolution walks (output pixel, tap) pairs directly on the padded
 * coordinates, without im2col, so it shares no code or idea with conv.c
 * beyond the index formula of torch.nn.functional.conv2d. */
#include "kernels/cpu/ref_linalg.h"

#include <string.h>

void ref_gemm(double *C, const double *A, const double *B, int M, int N, int K, int trans_a,
              int trans_b, double alpha, double beta) {
    // C [M,N]; A [M,K] or [K,M] (trans_a); B [K,N] or [N,K] (trans_b)
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                double a = trans_a ? A[(long)k * M + i] : A[(long)i * K + k];
                double b = trans_b ? B[(long)j * K + k] : B[(long)k * N + j];
                acc += a * b;
            }
            double *c = &C[(long)i * N + j];
            *c = alpha * acc + (beta == 0 ? 0 : beta * *c);
        }
}

void ref_gemm_batched(double *C, const double *A, const double *B, int batch, int M, int N, int K,
                      int trans_a, int trans_b, double alpha, double beta, long stride_a,
                      long stride_b, long stride_c) {
    for (int i = 0; i < batch; i++)
        ref_gemm(C + i * stride_c, A + i * stride_a, B + i * stride_b, M, N, K, trans_a, trans_b,
                 alpha, beta);
}

void ref_linear_forward(double *out, const double *inp, const double *weight, const double *bias,
                        int M, int K, int N) {
    // out [M,N], inp [M,K], weight [N,K], bias [N]
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = bias ? bias[j] : 0;
            for (int k = 0; k < K; k++) acc += inp[(long)i * K + k] * weight[(long)j * K + k];
            out[(long)i * N + j] = acc;
        }
}

void ref_linear_backward(double *dinp, double *dweight, double *dbias, const double *dout,
                         const double *inp, const double *weight, int M, int K, int N) {
    // dinp [M,K] (=), dweight [N,K] (+=), dbias [N] (+=), dout [M,N]
    if (dinp)
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++) {
                double acc = 0;
                for (int j = 0; j < N; j++) acc += dout[(long)i * N + j] * weight[(long)j * K + k];
                dinp[(long)i * K + k] = acc;
            }
    if (dweight)
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) {
                double acc = 0;
                for (int i = 0; i < M; i++) acc += dout[(long)i * N + j] * inp[(long)i * K + k];
                dweight[(long)j * K + k] += acc;
            }
    if (dbias)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int i = 0; i < M; i++) acc += dout[(long)i * N + j];
            dbias[j] += acc;
        }
}

/* Input element feeding output pixel (b, oy, ox) through tap (ky, kx), or -1
 * when the tap lies in the padding. */
static long tap_index(const cnet_conv2d *s, int b, int oy, int ox, int ky, int kx) {
    int iy = oy * s->stride + ky - s->pad_top;
    int ix = ox * s->stride + kx - s->pad_left;
    if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) return -1;
    return (((long)b * s->H + iy) * s->W + ix) * s->C_in;
}

void ref_conv2d_forward(double *out, const double *inp, const double *weight, const double *bias,
                        const cnet_conv2d *s) {
    // out [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in], bias [C_out]
    const int Ho = cnet_conv2d_out_h(s), Wo = cnet_conv2d_out_w(s), Ci = s->C_in;
    for (int b = 0; b < s->B; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int co = 0; co < s->C_out; co++) {
                    double acc = bias ? bias[co] : 0;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            long in = tap_index(s, b, oy, ox, ky, kx);
                            if (in < 0) continue;
                            const double *w = weight + (((long)co * s->kh + ky) * s->kw + kx) * Ci;
                            for (int ci = 0; ci < Ci; ci++) acc += inp[in + ci] * w[ci];
                        }
                    out[(((long)b * Ho + oy) * Wo + ox) * s->C_out + co] = acc;
                }
}

void ref_conv2d_backward(double *dinp, double *dweight, double *dbias, const double *dout,
                         const double *inp, const double *weight, const cnet_conv2d *s) {
    // dinp [B,H,W,C_in] (=), dweight [C_out,kh,kw,C_in] (+=), dbias [C_out] (+=)
    const int Ho = cnet_conv2d_out_h(s), Wo = cnet_conv2d_out_w(s), Ci = s->C_in;
    if (dinp) memset(dinp, 0, sizeof(double) * (size_t)s->B * s->H * s->W * Ci);
    for (int b = 0; b < s->B; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int co = 0; co < s->C_out; co++) {
                    double g = dout[(((long)b * Ho + oy) * Wo + ox) * s->C_out + co];
                    if (dbias) dbias[co] += g;
                    for (int ky = 0; ky < s->kh; ky++)
                        for (int kx = 0; kx < s->kw; kx++) {
                            long in = tap_index(s, b, oy, ox, ky, kx);
                            if (in < 0) continue;
                            long w = (((long)co * s->kh + ky) * s->kw + kx) * Ci;
                            for (int ci = 0; ci < Ci; ci++) {
                                if (dinp) dinp[in + ci] += g * weight[w + ci];
                                if (dweight) dweight[w + ci] += g * inp[in + ci];
                            }
                        }
                }
}
