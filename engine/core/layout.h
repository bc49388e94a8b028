/* Layout conversions at the engine's boundary: files, goldens and images are
 * PyTorch NCHW, the engine is NHWC. Host memory, float32. */
#ifndef CNET_LAYOUT_H
#define CNET_LAYOUT_H

/* dst[B,H,W,C] from src[B,C,H,W]. */
void layout_nchw_to_nhwc(float *dst, const float *src, int B, int C, int H, int W);
/* dst[B,C,H,W] from src[B,H,W,C]. */
void layout_nhwc_to_nchw(float *dst, const float *src, int B, int C, int H, int W);

#endif
