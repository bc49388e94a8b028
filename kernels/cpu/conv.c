/* 2-D convolution of the CPU backend, NHWC activations and OHWI weights,
 * as im2col + sgemm (forward, backward-data via col2im, backward-weight);
 * the forward of large enough 3x3 stride-1 pad-1 convolutions goes to the
 * Winograd kernel of conv_winograd.c instead.
 *
 * Viewing the weight [C_out, kh, kw, C_in] as a matrix [C_out, K] with
 * K = kh*kw*C_in, and the receptive fields of the P = B*Ho*Wo output pixels
 * as cols [P, K], the convolution is out[P, C_out] = cols @ weight^T, i.e. a
 * linear layer over cols; its backward is the linear layer's backward with
 * col2im (the adjoint of im2col) on the input gradient. A 1x1, stride-1,
 * unpadded convolution is exactly a linear layer over the pixels and skips
 * im2col. The column matrix is built in chunks of output pixels so scratch
 * stays bounded (CONV_CHUNK_BYTES) whatever the image size.
 *
 * Not here: dilation and groups (Stable Diffusion uses neither).
 * Reference: torch.nn.functional.conv2d with padding applied as
 * F.pad(x, (left, right, top, bottom)) first.
 *
 * Size legend: B batch, H/W input size, Ho/Wo output size, P = B*Ho*Wo,
 * K = kh*kw*C_in. */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/linalg_util.h"
#include "kernels/cpu/scratch.h"

/* Bytes of one chunk of the column matrix (one scratch slot; the backward
 * pass holds two). Each chunk's sgemm gets hundreds of rows; at SD shapes
 * 4 MB to 64 MB measured the same within noise (Zen 4, 2 cores), so the
 * bound only keeps scratch modest. */
#define CONV_CHUNK_BYTES (8L << 20)
/* Never fewer output pixels per chunk than this, however large K is, so the
 * sgemm stays efficient (scratch then exceeds CONV_CHUNK_BYTES). */
#define CONV_MIN_CHUNK_ROWS 256L

enum { SLOT_COLS = 0, SLOT_DCOLS = 1 };

static int conv_is_pointwise(const cnet_conv2d *s) {
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad_top == 0 && s->pad_bottom == 0 &&
           s->pad_left == 0 && s->pad_right == 0;
}

/* Where the Winograd kernel (conv_winograd.c) beats im2col + sgemm, measured
 * on Zen 4 at 1 and 2 threads: 2.3-2.6x at the VAE's 32- to 128-channel
 * convs from 32x32 up; slower with fewer than 32 tiles of 4x4 output
 * pixels (the weight transform and the thread wake-up dominate) or with very
 * few input channels (the 4-channel latent input). */
#define WINOGRAD_MIN_TILES 32L
#define WINOGRAD_MIN_C_IN 16

static int conv_winograd_wins(const cnet_conv2d *s) {
    if (!cpu_conv2d_winograd_applies(s) || s->C_in < WINOGRAD_MIN_C_IN) return 0;
    const long tiles = (long)s->B * ((s->H + 3) / 4) * ((s->W + 3) / 4);
    return tiles >= WINOGRAD_MIN_TILES;
}

long cpu_conv2d_chunk_rows(const cnet_conv2d *s) {
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    const long K = (long)s->kh * s->kw * s->C_in;
    long rows = CONV_CHUNK_BYTES / ((long)sizeof(float) * (K > 0 ? K : 1));
    if (rows < CONV_MIN_CHUNK_ROWS) rows = CONV_MIN_CHUNK_ROWS;
    if (rows >= P) return P > 0 ? P : 1;
    /* Equal chunks: no small tail sgemm. */
    long chunks = (P + rows - 1) / rows;
    return (P + chunks - 1) / chunks;
}

void cpu_conv2d_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                        const float *bias, const cnet_conv2d *s) {
    // out [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in], bias [C_out]
    if (conv_is_pointwise(s)) {
        const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
        cpu_linear_forward(be, out, inp, weight, bias, (int)P, s->C_in, s->C_out);
        return;
    }
    if (conv_winograd_wins(s)) {
        cpu_conv2d_winograd_forward(be, out, inp, weight, bias, s);
        return;
    }
    cpu_conv2d_im2col_forward(be, out, inp, weight, bias, s);
}

void cpu_conv2d_im2col_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                               const float *bias, const cnet_conv2d *s) {
    // out [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in], bias [C_out]
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    const long K = (long)s->kh * s->kw * s->C_in;
    if (P <= 0 || s->C_out <= 0) return;
    if (bias) cpu_fill_rows(out, bias, P, s->C_out);
    const long chunk = cpu_conv2d_chunk_rows(s);
    float *cols = cpu_scratch(be, SLOT_COLS, (size_t)(chunk * K) * sizeof(float)); // [chunk, K]
    if (!cols) return; /* out of memory, recorded on the backend */
    for (long p0 = 0; p0 < P; p0 += chunk) {
        long np = P - p0 < chunk ? P - p0 : chunk;
        cpu_im2col(cols, inp, s, p0, np);
        cpu_gemm(be, out + p0 * s->C_out, cols, weight, (int)np, s->C_out, (int)K, 0, 1, 1.0f,
                 bias ? 1.0f : 0.0f);
    }
}

void cpu_conv2d_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight,
                         const cnet_conv2d *s) {
    // dinp [B,H,W,C_in] (=), dweight [C_out,kh,kw,C_in] (+=), dbias [C_out] (+=),
    // dout [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in]
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    const long K = (long)s->kh * s->kw * s->C_in;
    const int Co = s->C_out;
    if (conv_is_pointwise(s)) {
        cpu_linear_backward(be, dinp, dweight, dbias, dout, inp, weight, (int)P, s->C_in, Co);
        return;
    }
    if (dinp) {
        const long n = (long)s->B * s->H * s->W * s->C_in;
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) dinp[i] = 0.0f;
    }
    if (P <= 0 || Co <= 0) return;
    if (dbias) cpu_colsum_accumulate(dbias, dout, P, Co);
    if (!dinp && !dweight) return;
    const long chunk = cpu_conv2d_chunk_rows(s);
    const size_t chunk_bytes = (size_t)(chunk * K) * sizeof(float);
    float *cols = dweight ? cpu_scratch(be, SLOT_COLS, chunk_bytes) : NULL; // [chunk, K]
    float *dcols = dinp ? cpu_scratch(be, SLOT_DCOLS, chunk_bytes) : NULL;  // [chunk, K]
    if ((dweight && !cols) || (dinp && !dcols)) return; /* out of memory, recorded */
    for (long p0 = 0; p0 < P; p0 += chunk) {
        long np = P - p0 < chunk ? P - p0 : chunk;
        const float *dout_chunk = dout + p0 * Co; // [np, C_out]
        if (dweight) {
            cpu_im2col(cols, inp, s, p0, np);
            cpu_gemm(be, dweight, dout_chunk, cols, Co, (int)K, (int)np, 1, 0, 1.0f, 1.0f);
        }
        if (dinp) {
            cpu_gemm(be, dcols, dout_chunk, weight, (int)np, (int)K, Co, 0, 0, 1.0f, 0.0f);
            cpu_col2im_add(dinp, dcols, s, p0, np);
        }
    }
}
