/* Elementwise arithmetic and data movement of the CUDA backend on NHWC
 * activations: add, axpby, scale, axpy, the broadcast add of a per-channel
 * vector and its backward (a deterministic column sum), channel concat and
 * split, nearest 2x upsampling and its backward.
 * Grid-stride kernels, one thread per output element. Reference:
 * kernels/cpu/elementwise.c (same formulas, same order of the four adds of
 * the upsample backward).
 *
 * Sizes: n elements, B batch, HW pixels, H/W height/width, C channels,
 * M rows of a channel concat. */
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

__global__ void add_kernel(float *out, const float *a, const float *b, long n) {
    CU_FOR(i, n) out[i] = a[i] + b[i];
}

__global__ void axpby_kernel(float *out, float alpha, const float *a, float beta, const float *b,
                             long n) {
    CU_FOR(i, n) out[i] = alpha * a[i] + beta * b[i];
}

__global__ void scale_kernel(float *out, const float *inp, float alpha, long n) {
    CU_FOR(i, n) out[i] = alpha * inp[i];
}

__global__ void axpy_kernel(float *y, float alpha, const float *x, long n) {
    CU_FOR(i, n) y[i] += alpha * x[i];
}

// out[B,HW,C] = inp + vec[B,C]
__global__ void add_broadcast_kernel(float *out, const float *inp, const float *vec, long HW, int C,
                                     long n) {
    CU_FOR(i, n) {
        const long b = i / (HW * C);
        out[i] = inp[i] + vec[b * C + i % C];
    }
}

// out[M, C1+C2] = [a | b]
__global__ void concat_kernel(float *out, const float *a, const float *b, int C1, int C2, long n) {
    const int C = C1 + C2;
    CU_FOR(i, n) {
        const long m = i / C;
        const int c = (int)(i % C);
        out[i] = c < C1 ? a[m * C1 + c] : b[m * C2 + (c - C1)];
    }
}

// a[M,C1], b[M,C2] from inp[M, C1+C2]; a or b may be NULL
__global__ void split_kernel(float *a, float *b, const float *inp, int C1, int C2, long n) {
    const int C = C1 + C2;
    CU_FOR(i, n) {
        const long m = i / C;
        const int c = (int)(i % C);
        if (c < C1) {
            if (a) a[m * C1 + c] = inp[i];
        } else if (b) {
            b[m * C2 + (c - C1)] = inp[i];
        }
    }
}

// out[B,2H,2W,C] from inp[B,H,W,C]
__global__ void upsample2x_kernel(float *out, const float *inp, int H, int W, int C, long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const long px = i / C; // over B*2H*2W
        const int ow = (int)(px % (2 * W));
        const long r = px / (2 * W); // over B*2H
        const int oh = (int)(r % (2 * H));
        const long b = r / (2 * H);
        out[i] = inp[((b * H + oh / 2) * W + ow / 2) * C + c];
    }
}

// dinp[B,H,W,C] = sum of the 4 dout pixels, in the CPU's order
__global__ void upsample2x_backward_kernel(float *dinp, const float *dout, int H, int W, int C,
                                           long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const long px = i / C; // over B*H*W
        const int w = (int)(px % W);
        const long r = px / W; // over B*H
        const int h = (int)(r % H);
        const long b = r / H;
        const float *r0 = dout + (b * 2 * H + 2 * h) * 2L * W * C; // [2W, C]
        const float *r1 = r0 + 2L * W * C;
        const long o = 2L * w * C + c;
        dinp[i] = (r0[o] + r0[o + C]) + (r1[o] + r1[o + C]);
    }
}

void cuda_add(cnet_backend *be, float *out, const float *a, const float *b, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, add_kernel, n, out, a, b, n);
}

void cuda_axpby(cnet_backend *be, float *out, float alpha, const float *a, float beta,
                const float *b, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, axpby_kernel, n, out, alpha, a, beta, b, n);
}

void cuda_scale(cnet_backend *be, float *out, const float *inp, float alpha, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, scale_kernel, n, out, inp, alpha, n);
}

void cuda_axpy(cnet_backend *be, float *y, float alpha, const float *x, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, axpy_kernel, n, y, alpha, x, n);
}

void cuda_add_broadcast(cnet_backend *be, float *out, const float *inp, const float *vec, int B,
                        int HW, int C) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)B * HW * C;
    if (cu && n > 0) CU_LAUNCH(cu, add_broadcast_kernel, n, out, inp, vec, (long)HW, C, n);
}

void cuda_add_broadcast_backward(cnet_backend *be, float *dvec, const float *dout, int B, int HW,
                                 int C) {
    // dvec [B,C] (=), dout [B,HW,C]
    cu_impl *cu = cu_enter(be);
    if (!cu) return;
    for (int b = 0; b < B; b++)
        cu_colsum(cu, dvec + (long)b * C, dout + (long)b * HW * C, HW, C, 0);
}

void cuda_concat_channels(cnet_backend *be, float *out, const float *a, const float *b, int M,
                          int C1, int C2) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)M * (C1 + C2);
    if (cu && n > 0) CU_LAUNCH(cu, concat_kernel, n, out, a, b, C1, C2, n);
}

void cuda_split_channels(cnet_backend *be, float *a, float *b, const float *inp, int M, int C1,
                         int C2) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)M * (C1 + C2);
    if (cu && n > 0 && (a || b)) CU_LAUNCH(cu, split_kernel, n, a, b, inp, C1, C2, n);
}

void cuda_upsample2x_forward(cnet_backend *be, float *out, const float *inp, int B, int H, int W,
                             int C) {
    cu_impl *cu = cu_enter(be);
    const long n = 4L * B * H * W * C;
    if (cu && n > 0) CU_LAUNCH(cu, upsample2x_kernel, n, out, inp, H, W, C, n);
}

void cuda_upsample2x_backward(cnet_backend *be, float *dinp, const float *dout, int B, int H, int W,
                              int C) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)B * H * W * C;
    if (cu && n > 0) CU_LAUNCH(cu, upsample2x_backward_kernel, n, dinp, dout, H, W, C, n);
}
