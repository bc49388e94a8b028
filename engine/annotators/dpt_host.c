/* Host-side DPT ops; see dpt_host.h. */
#include "engine/annotators/dpt_host.h"

#include <stdlib.h>

/* Source index and weight of output position o along one axis. */
static void axis_coord(int o, int out, int in, int align_corners, int *i0, int *i1, float *t) {
    float src;
    if (align_corners)
        src = out > 1 ? ((float)(in - 1) / (float)(out - 1)) * (float)o : 0.f;
    else {
        src = ((float)o + 0.5f) * ((float)in / (float)out) - 0.5f;
        if (src < 0) src = 0;
    }
    int lo = (int)src;
    if (lo > in - 1) lo = in - 1;
    *i0 = lo;
    *i1 = lo < in - 1 ? lo + 1 : lo;
    *t = src - (float)lo;
}

void dpt_bilinear(float *out, int oh, int ow, const float *in, int ih, int iw, int C,
                  int align_corners) {
    for (int y = 0; y < oh; y++) {
        int y0, y1;
        float ty;
        axis_coord(y, oh, ih, align_corners, &y0, &y1, &ty);
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            float tx;
            axis_coord(x, ow, iw, align_corners, &x0, &x1, &tx);
            const float *a = in + ((size_t)y0 * iw + x0) * C, *b = in + ((size_t)y0 * iw + x1) * C;
            const float *c = in + ((size_t)y1 * iw + x0) * C, *d = in + ((size_t)y1 * iw + x1) * C;
            float *o = out + ((size_t)y * ow + x) * C;
            for (int k = 0; k < C; k++)
                o[k] =
                    (1 - ty) * ((1 - tx) * a[k] + tx * b[k]) + ty * ((1 - tx) * c[k] + tx * d[k]);
        }
    }
}

int dpt_bilinear_dev(cnet_backend *be, float *out, int oh, int ow, const float *in, int ih, int iw,
                     int C, int align_corners, cnet_error *err) {
    const size_t n_in = (size_t)ih * iw * C, n_out = (size_t)oh * ow * C;
    float *src = malloc(n_in * sizeof *src), *dst = malloc(n_out * sizeof *dst);
    if (!src || !dst) {
        free(src);
        free(dst);
        return cnet_fail(err, CNET_ENOMEM, "dpt: out of memory resizing %dx%d to %dx%d", ih, iw, oh,
                         ow);
    }
    be->download(be, src, in, n_in * sizeof *src);
    dpt_bilinear(dst, oh, ow, src, ih, iw, C, align_corners);
    be->upload(be, out, dst, n_out * sizeof *dst);
    free(src);
    free(dst);
    return 0;
}

int dpt_relu_dev(cnet_backend *be, float *out, const float *in, long n, cnet_error *err) {
    float *h = malloc((size_t)n * sizeof *h);
    if (!h) return cnet_fail(err, CNET_ENOMEM, "dpt: out of memory (relu of %ld values)", n);
    be->download(be, h, in, (size_t)n * sizeof *h);
    for (long i = 0; i < n; i++) h[i] = h[i] > 0 ? h[i] : 0;
    be->upload(be, out, h, (size_t)n * sizeof *h);
    free(h);
    return 0;
}

int dpt_conv_transpose_dev(cnet_backend *be, float *out, float *tmp, const float *in,
                           const float *weight, const float *bias, int h, int w, int cin, int cout,
                           int up, cnet_error *err) {
    const int M = h * w, N = cout * up * up, W = w * up;
    be->gemm(be, tmp, in, weight, M, N, cin, 0, 0, 1.f, 0.f);
    float *t = malloc((size_t)M * N * sizeof *t), *o = malloc((size_t)M * N * sizeof *o);
    float *b = malloc((size_t)cout * sizeof *b);
    if (!t || !o || !b) {
        free(t);
        free(o);
        free(b);
        return cnet_fail(err, CNET_ENOMEM, "dpt: out of memory (transposed conv %dx%d)", h, w);
    }
    be->download(be, t, tmp, (size_t)M * N * sizeof *t);
    be->download(be, b, bias, (size_t)cout * sizeof *b);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const float *src = t + ((size_t)y * w + x) * N; /* [cout, up, up] */
            for (int co = 0; co < cout; co++)
                for (int i = 0; i < up; i++)
                    for (int j = 0; j < up; j++)
                        o[(((size_t)y * up + i) * W + (size_t)x * up + j) * cout + co] =
                            src[(co * up + i) * up + j] + b[co];
        }
    be->upload(be, out, o, (size_t)M * N * sizeof *o);
    free(t);
    free(o);
    free(b);
    return 0;
}
