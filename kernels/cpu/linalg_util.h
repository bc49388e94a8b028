/* Helpers shared by the BLAS-backed ops (linalg.c, conv.c, conv_im2col.c);
 * not part of the backend table. Shapes follow engine/core/backend.h: rows are
 * tokens or output pixels, NHWC activations, OHWI conv weights. */
#ifndef CNET_CPU_LINALG_UTIL_H
#define CNET_CPU_LINALG_UTIL_H

#include "engine/core/backend.h"

/* out[M,N] = row[N] repeated on every row (the bias, before sgemm adds
 * with beta = 1). */
void cpu_fill_rows(float *out, const float *row, long M, int N);
/* dbias[N] += sum over the M rows of x[M,N] (summed in double). */
void cpu_colsum_accumulate(float *dbias, const float *x, long M, int N);

/* Output pixels per im2col chunk of a non-pointwise convolution (the whole
 * of B*Ho*Wo when it fits the scratch bound); tests use it to pick shapes
 * that cross chunk boundaries. */
long cpu_conv2d_chunk_rows(const cnet_conv2d *s);

/* cols[np, kh*kw*C_in] = the receptive fields of output pixels p0..p0+np-1
 * (flat over B*Ho*Wo), each row ordered (ky, kx, c) like an OHWI weight row;
 * taps in the padding are zero. inp [B,H,W,C_in]. */
void cpu_im2col(float *cols, const float *inp, const cnet_conv2d *s, long p0, long np);
/* The adjoint of cpu_im2col: dinp[B,H,W,C_in] += the entries of
 * dcols[np, kh*kw*C_in] that output pixels p0..p0+np-1 read from each input
 * pixel. Written as a gather over input pixels, so threads never collide. */
void cpu_col2im_add(float *dinp, const float *dcols, const cnet_conv2d *s, long p0, long np);

/* The forward of cpu_conv2d_forward as im2col + sgemm, whatever the shape
 * (the dispatcher sends some shapes to Winograd or to a plain linear
 * layer); tests call it to cover the chunking. */
void cpu_conv2d_im2col_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                               const float *bias, const cnet_conv2d *s);

/* Whether cpu_conv2d_winograd_forward can compute this convolution: 3x3,
 * stride 1, padding 1 on every side, non-empty. */
int cpu_conv2d_winograd_applies(const cnet_conv2d *s);
/* out[B,H,W,C_out] = conv(inp[B,H,W,C_in], weight[C_out,3,3,C_in]) + bias[C_out]
 * (bias may be NULL) by Winograd F(4x4, 3x3) (conv_winograd.c), for shapes
 * where cpu_conv2d_winograd_applies. Uses scratch slots 0 to 2. */
void cpu_conv2d_winograd_forward(cnet_backend *be, float *out, const float *inp,
                                 const float *weight, const float *bias, const cnet_conv2d *s);

#endif
