/* The DPT ops the backend table lacks, run on host copies of backend
 * buffers (download, compute, upload; on the CPU backend the copies are
 * memcpy): PyTorch's bilinear interpolate, ReLU, and the scatter of a
 * ConvTranspose2d whose kernel equals its stride. Internal to
 * engine/annotators/dpt_*.c; see dpt.h. What it is not: fast. These ops
 * touch a few feature maps per image; the heavy work (attention, the
 * linears and convolutions) stays on the backend. */
#ifndef CNET_DPT_HOST_H
#define CNET_DPT_HOST_H

#include "engine/core/backend.h"
#include "engine/core/error.h"

/* out[oh, ow, C] from in[ih, iw, C] (host, NHWC) as
 * torch.nn.functional.interpolate(mode="bilinear", size=(oh, ow),
 * align_corners): align_corners 0 samples at (o + 0.5) * in / out - 0.5,
 * clamped at 0; 1 at o * (in - 1) / (out - 1). */
void dpt_bilinear(float *out, int oh, int ow, const float *in, int ih, int iw, int C,
                  int align_corners);

/* The same on backend buffers. */
int dpt_bilinear_dev(cnet_backend *be, float *out, int oh, int ow, const float *in, int ih, int iw,
                     int C, int align_corners, cnet_error *err);

/* out[n] = max(in, 0) on backend buffers (out may be in). */
int dpt_relu_dev(cnet_backend *be, float *out, const float *in, long n, cnet_error *err);

/* ConvTranspose2d(kernel = stride = up, padding 0) of in[h, w, cin] into
 * out[h*up, w*up, cout], all backend buffers: tmp [h*w, cout*up*up] =
 * in @ weight (PyTorch's [cin, cout, up, up] seen as [cin, cout*up*up]) on
 * the backend, then each pixel's up x up block scattered, plus bias[cout]. */
int dpt_conv_transpose_dev(cnet_backend *be, float *out, float *tmp, const float *in,
                           const float *weight, const float *bias, int h, int w, int cin, int cout,
                           int up, cnet_error *err);

#endif
