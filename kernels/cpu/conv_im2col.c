/* im2col and its adjoint for NHWC convolutions with OHWI weights (see
 * linalg_util.h). A row of the column matrix is one output pixel's receptive
 * field in (ky, kx, c) order, so for a fixed ky the kw taps are kw
 * consecutive input pixels: one memcpy per kernel row plus zeros at the
 * padded edges. This file does no arithmetic beyond the adjoint's adds;
 * the products are sgemm calls in conv.c. */
#include <string.h>

#include "kernels/cpu/linalg_util.h"

static int clampi(int x, int lo, int hi) { return x < lo ? lo : x > hi ? hi : x; }

void cpu_im2col(float *cols, const float *inp, const cnet_conv2d *s, long p0, long np) {
    // cols [np, kh*kw*C], inp [B,H,W,C]
    const int Ho = cnet_conv2d_out_h(s), Wo = cnet_conv2d_out_w(s);
    const int C = s->C_in, kw = s->kw;
    const long K = (long)s->kh * kw * C;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < np; r++) {
        long p = p0 + r;
        int b = (int)(p / ((long)Ho * Wo));
        int oy = (int)(p / Wo % Ho), ox = (int)(p % Wo);
        int ix0 = ox * s->stride - s->pad_left;
        /* Taps kx in [kx_lo, kx_hi) fall inside the image (0 <= lo <= hi <= kw). */
        int kx_lo = clampi(-ix0, 0, kw);
        int kx_hi = clampi(s->W - ix0, kx_lo, kw);
        float *row = cols + r * K;
        for (int ky = 0; ky < s->kh; ky++) {
            float *dst = row + (long)ky * kw * C;
            int iy = oy * s->stride - s->pad_top + ky;
            if (iy < 0 || iy >= s->H || kx_hi == kx_lo) {
                memset(dst, 0, (size_t)kw * C * sizeof *dst);
                continue;
            }
            const float *src = inp + (((long)b * s->H + iy) * s->W + ix0 + kx_lo) * C;
            memset(dst, 0, (size_t)kx_lo * C * sizeof *dst);
            memcpy(dst + (long)kx_lo * C, src, (size_t)(kx_hi - kx_lo) * C * sizeof *dst);
            memset(dst + (long)kx_hi * C, 0, (size_t)(kw - kx_hi) * C * sizeof *dst);
        }
    }
}

void cpu_col2im_add(float *dinp, const float *dcols, const cnet_conv2d *s, long p0, long np) {
    // dinp [B,H,W,C], dcols [np, kh*kw*C]
    if (np <= 0) return;
    const int Ho = cnet_conv2d_out_h(s), Wo = cnet_conv2d_out_w(s);
    const int C = s->C_in, kh = s->kh, kw = s->kw, st = s->stride;
    const long K = (long)kh * kw * C, HoWo = (long)Ho * Wo, p1 = p0 + np;
    /* Input pixels these output pixels can touch: from the first output
     * row's top tap to the last output row's bottom tap. */
    long b0 = p0 / HoWo, b1 = (p1 - 1) / HoWo;
    int oy0 = (int)(p0 % HoWo / Wo), oy1 = (int)((p1 - 1) % HoWo / Wo);
    int iy_lo = oy0 * st - s->pad_top, iy_hi = oy1 * st - s->pad_top + kh;
    if (iy_lo < 0) iy_lo = 0;
    if (iy_hi > s->H) iy_hi = s->H;
    if (iy_hi < 0) iy_hi = 0;
    long q0 = (b0 * s->H + iy_lo) * s->W, q1 = (b1 * s->H + iy_hi) * s->W;
#pragma omp parallel for schedule(static)
    for (long q = q0; q < q1; q++) {
        long b = q / ((long)s->H * s->W);
        int iy = (int)(q / s->W % s->H), ix = (int)(q % s->W);
        float *d = dinp + q * C;
        for (int ky = 0; ky < kh; ky++) {
            int ty = iy + s->pad_top - ky;
            if (ty < 0 || ty % st) continue;
            int oy = ty / st;
            if (oy >= Ho) continue;
            for (int kx = 0; kx < kw; kx++) {
                int tx = ix + s->pad_left - kx;
                if (tx < 0 || tx % st) continue;
                int ox = tx / st;
                if (ox >= Wo) continue;
                long p = (b * Ho + oy) * Wo + ox;
                if (p < p0 || p >= p1) continue;
                const float *src = dcols + (p - p0) * K + ((long)ky * kw + kx) * C;
                for (int c = 0; c < C; c++) d[c] += src[c];
            }
        }
    }
}
