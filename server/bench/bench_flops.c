/* The FLOP-counting shims of bench_flops.h. Each shim adds its call's
 * FLOPs and forwards to the entry it replaced (saved in `inner`). */
#include "server/bench/bench_flops.h"

static cnet_backend inner; /* the wrapped backend's own entries */
static double counted;

static double conv_flops(const cnet_conv2d *s) {
    return 2.0 * s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s) * s->C_out * s->kh * s->kw *
           s->C_in;
}

static void gemm(cnet_backend *be, float *C, const float *A, const float *B, int M, int N, int K,
                 int ta, int tb, float alpha, float beta) {
    counted += 2.0 * M * N * K;
    inner.gemm(be, C, A, B, M, N, K, ta, tb, alpha, beta);
}

static void gemm_batched(cnet_backend *be, float *C, const float *A, const float *B, int batch,
                         int M, int N, int K, int ta, int tb, float alpha, float beta, long sa,
                         long sb, long sc) {
    counted += 2.0 * batch * M * N * K;
    inner.gemm_batched(be, C, A, B, batch, M, N, K, ta, tb, alpha, beta, sa, sb, sc);
}

static void linear_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                           const float *bias, int M, int K, int N) {
    counted += 2.0 * M * K * N;
    inner.linear_forward(be, out, inp, weight, bias, M, K, N);
}

static void linear_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight, int M, int K,
                            int N) {
    counted += 2.0 * M * K * N * ((dinp != 0) + (dweight != 0));
    inner.linear_backward(be, dinp, dweight, dbias, dout, inp, weight, M, K, N);
}

static void conv2d_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                           const float *bias, const cnet_conv2d *s) {
    counted += conv_flops(s);
    inner.conv2d_forward(be, out, inp, weight, bias, s);
}

static void conv2d_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight,
                            const cnet_conv2d *s) {
    counted += conv_flops(s) * ((dinp != 0) + (dweight != 0));
    inner.conv2d_backward(be, dinp, dweight, dbias, dout, inp, weight, s);
}

static void linear_forward_w16(cnet_backend *be, float *out, const float *inp,
                               const uint16_t *weight, cnet_dtype wdtype, const float *bias, int M,
                               int K, int N) {
    counted += 2.0 * M * K * N;
    inner.linear_forward_w16(be, out, inp, weight, wdtype, bias, M, K, N);
}

static void linear_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                     const uint16_t *weight, cnet_dtype wdtype, int M, int K,
                                     int N) {
    counted += 2.0 * M * K * N;
    inner.linear_backward_data_w16(be, dinp, dout, weight, wdtype, M, K, N);
}

static void conv2d_forward_w16(cnet_backend *be, float *out, const float *inp,
                               const uint16_t *weight, cnet_dtype wdtype, const float *bias,
                               const cnet_conv2d *s) {
    counted += conv_flops(s);
    inner.conv2d_forward_w16(be, out, inp, weight, wdtype, bias, s);
}

static void conv2d_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                     const uint16_t *weight, cnet_dtype wdtype,
                                     const cnet_conv2d *s) {
    counted += conv_flops(s);
    inner.conv2d_backward_data_w16(be, dinp, dout, weight, wdtype, s);
}

/* Two products forward (QK^T, PV); backward the recomputed QK^T, then
 * dV = P^T dO, dP = dO V^T (for dq or dk), dQ = dS K, dK = dS^T Q. */
static void attention_forward(cnet_backend *be, float *out, float *lse, const float *q,
                              const float *k, const float *v, int B, int Nq, int Nk, int heads,
                              int D, float scale, int causal) {
    counted += 2 * 2.0 * B * heads * Nq * Nk * D;
    inner.attention_forward(be, out, lse, q, k, v, B, Nq, Nk, heads, D, scale, causal);
}

static void attention_backward(cnet_backend *be, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *out,
                               const float *lse, int B, int Nq, int Nk, int heads, int D,
                               float scale, int causal) {
    const int products = (dq || dk || dv) + (dv != 0) + (dq || dk) + (dq != 0) + (dk != 0);
    counted += products * 2.0 * B * heads * Nq * Nk * D;
    inner.attention_backward(be, dq, dk, dv, dout, q, k, v, out, lse, B, Nq, Nk, heads, D, scale,
                             causal);
}

void bench_flops_wrap(cnet_backend *be) {
    inner = *be;
    be->gemm = gemm;
    be->gemm_batched = gemm_batched;
    be->linear_forward = linear_forward;
    be->linear_backward = linear_backward;
    be->conv2d_forward = conv2d_forward;
    be->conv2d_backward = conv2d_backward;
    be->linear_forward_w16 = linear_forward_w16;
    be->linear_backward_data_w16 = linear_backward_data_w16;
    be->conv2d_forward_w16 = conv2d_forward_w16;
    be->conv2d_backward_data_w16 = conv2d_backward_data_w16;
    be->attention_forward = attention_forward;
    be->attention_backward = attention_backward;
    counted = 0;
}

double bench_flops_take(void) {
    const double f = counted;
    counted = 0;
    return f;
}
