/* Elementwise arithmetic and data movement on NHWC activations: add, axpby,
 * scale, axpy, the broadcast add of a per-channel vector (the time
 * embedding inside a diffusers ResnetBlock2D), channel concat/split (the
 * UNet's skip connections, torch.cat(dim=1) in NCHW) and nearest-neighbour
 * 2x upsampling (F.interpolate(scale_factor=2, mode="nearest")) with their
 * backward. Not a general broadcasting or strided-view engine.
 *
 * Sizes: n elements, B batch, HW pixels, H/W height/width, C channels,
 * M rows of a channel concat. */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

/* add_broadcast_backward sums this many channels per task. */
enum { BCAST_CHANNEL_BLOCK = 64 };

void cpu_add(cnet_backend *be, float *out, const float *a, const float *b, long n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_axpby(cnet_backend *be, float *out, float alpha, const float *a, float beta,
               const float *b, long n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) out[i] = alpha * a[i] + beta * b[i];
}

void cpu_scale(cnet_backend *be, float *out, const float *inp, float alpha, long n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) out[i] = alpha * inp[i];
}

void cpu_axpy(cnet_backend *be, float *y, float alpha, const float *x, long n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) y[i] += alpha * x[i];
}

void cpu_add_broadcast(cnet_backend *be, float *out, const float *inp, const float *vec, int B,
                       int HW, int C) {
    (void)be;
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * HW * C >= CPU_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++) {
            const long row = ((long)b * HW + i) * C;
            const float *vb = vec + (long)b * C; // [C]
            for (int c = 0; c < C; c++) out[row + c] = inp[row + c] + vb[c];
        }
}

void cpu_add_broadcast_backward(cnet_backend *be, float *dvec, const float *dout, int B, int HW,
                                int C) {
    (void)be;
    const int nblk = (C + BCAST_CHANNEL_BLOCK - 1) / BCAST_CHANNEL_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if ((long)B * HW * C >= CPU_PAR_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * BCAST_CHANNEL_BLOCK;
            const int nc = C - c0 < BCAST_CHANNEL_BLOCK ? C - c0 : BCAST_CHANNEL_BLOCK;
            double acc[BCAST_CHANNEL_BLOCK] = {0};
            for (int i = 0; i < HW; i++) {
                const float *d = dout + ((long)b * HW + i) * C + c0;
                for (int c = 0; c < nc; c++) acc[c] += d[c];
            }
            for (int c = 0; c < nc; c++) dvec[(long)b * C + c0 + c] = (float)acc[c];
        }
}

void cpu_concat_channels(cnet_backend *be, float *out, const float *a, const float *b, int M,
                         int C1, int C2) {
    (void)be;
    const int C = C1 + C2;
#pragma omp parallel for schedule(static) if ((long)M * C >= CPU_PAR_MIN_ELEMS)
    for (int m = 0; m < M; m++) {
        memcpy(out + (long)m * C, a + (long)m * C1, (size_t)C1 * sizeof(float));
        memcpy(out + (long)m * C + C1, b + (long)m * C2, (size_t)C2 * sizeof(float));
    }
}

void cpu_split_channels(cnet_backend *be, float *a, float *b, const float *inp, int M, int C1,
                        int C2) {
    (void)be;
    const int C = C1 + C2;
#pragma omp parallel for schedule(static) if ((long)M * C >= CPU_PAR_MIN_ELEMS)
    for (int m = 0; m < M; m++) {
        if (a) memcpy(a + (long)m * C1, inp + (long)m * C, (size_t)C1 * sizeof(float));
        if (b) memcpy(b + (long)m * C2, inp + (long)m * C + C1, (size_t)C2 * sizeof(float));
    }
}

/* out[b, 2h+dy, 2w+dx, :] = inp[b, h, w, :] for dy, dx in {0, 1}. */
void cpu_upsample2x_forward(cnet_backend *be, float *out, const float *inp, int B, int H, int W,
                            int C) {
    (void)be;
    const size_t px = (size_t)C * sizeof(float);
#pragma omp parallel for collapse(2) schedule(static) if (4L * B * H * W * C >= CPU_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < 2 * H; oh++) {
            const float *src = inp + ((long)b * H + oh / 2) * W * C; // [W, C]
            float *dst = out + ((long)b * 2 * H + oh) * 2 * W * C;   // [2W, C]
            for (int w = 0; w < W; w++) {
                memcpy(dst + (2L * w) * C, src + (long)w * C, px);
                memcpy(dst + (2L * w + 1) * C, src + (long)w * C, px);
            }
        }
}

void cpu_upsample2x_backward(cnet_backend *be, float *dinp, const float *dout, int B, int H, int W,
                             int C) {
    (void)be;
#pragma omp parallel for collapse(2) schedule(static) if (4L * B * H * W * C >= CPU_PAR_MIN_ELEMS)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *r0 = dout + ((long)b * 2 * H + 2 * h) * 2 * W * C; // [2W, C]
            const float *r1 = r0 + 2L * W * C;
            float *d = dinp + ((long)b * H + h) * W * C; // [W, C]
            for (int w = 0; w < W; w++)
                for (int c = 0; c < C; c++) {
                    const long o = 2L * w * C + c;
                    d[(long)w * C + c] = (r0[o] + r0[o + C]) + (r1[o] + r1[o + C]);
                }
        }
}
