/* The OpenCV operations the sd-webui-controlnet annotators are written in,
 * redone in C for the annotators of this folder, and the extension's
 * resize_image_with_pad (scripts/utils.py) that most of them start with.
 *
 * Each follows the OpenCV 4 C++ code path that the extension's cv2 call takes
 * (imgproc/src/resize.cpp, smooth.dispatch.cpp, imgwarp.cpp), including its
 * fixed-point rounding where OpenCV has one. Where OpenCV's SIMD or IPP
 * dispatch can round differently, the function's comment says so. Not an
 * image library: only the modes, types and channel counts the annotators use.
 *
 * Images are 8-bit RGB (image_rgb8) or interleaved float planes
 * [height, width, channels]. Errors: CNET_EINVAL (a size the operation
 * cannot make), CNET_ELIMIT (over IMAGE_MAX_PIXELS_DEFAULT), CNET_ENOMEM. */
#ifndef CNET_ANNOTATOR_CV_H
#define CNET_ANNOTATOR_CV_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/image/image.h"

/* cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA). Shrinking
 * both sides: integer factors take OpenCV's resizeAreaFast (2x2:
 * (sum + 2) >> 2; else the float mean rounded half to even), other factors
 * resizeArea's float cell weights. A side that grows makes it OpenCV's
 * bilinear variant with area weights, in 11-bit fixed point; OpenCV's SSE
 * vertical pass rounds that last step differently ((S >> 4) * b >> 16 per
 * row), so there a value can differ from cv2's by one. Same size copies, as
 * cv2 does. */
int cv_resize_area(image_rgb8 *out, const image_rgb8 *in, int width, int height, cnet_error *err);

/* cv2.resize(..., interpolation=cv2.INTER_CUBIC) of 8-bit pixels: Keys'
 * cubic with a = -0.75 at OpenCV's pixel centres, weights in 11-bit fixed
 * point (rounded from float), borders replicated, the two passes' sum
 * shifted by 22 bits with rounding. OpenCV's SSE vertical pass computes the
 * last step in float; it can differ from this by 1 where the exact value
 * ends in .5. */
int cv_resize_cubic(image_rgb8 *out, const image_rgb8 *in, int width, int height, cnet_error *err);

/* The same interpolation on one float64 channel (no fixed point: float
 * weights, double sums), as cv2.resize does on a float64 array: the window
 * [x0, x0 + width) x [y0, y0 + height) of the dst_width x dst_height
 * result into out [height, width], allocated by the caller. */
void cv_resize_cubic_f64(double *out, int dst_width, int dst_height, int x0, int y0, int width,
                         int height, const double *in, int src_width, int src_height);

/* cv2.resize(..., interpolation=cv2.INTER_NEAREST): source pixel
 * floor(x * src / dst). */
int cv_resize_nearest(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                      cnet_error *err);

/* cv2.GaussianBlur(img, (0, 0), sigma) with BORDER_REFLECT_101: the kernel
 * size OpenCV derives from sigma (round(sigma * 2 * per_sigma + 1) | 1, with
 * per_sigma 3 for 8-bit images and 4 for float ones), the normalised kernel
 * in float, a row pass then a column pass. Here on float planes: each output
 * is a double sum of the float products in kernel order, stored as float
 * (OpenCV's SIMD sums in float in another order: last-bit differences).
 * A side of one pixel is not blurred along, as OpenCV does. */
int cv_gaussian_blur_f32(float *out, const float *in, int width, int height, int channels,
                         double sigma, int per_sigma, cnet_error *err);

/* cv2.GaussianBlur(img, (0, 0), sigma) of 8-bit pixels, bit for bit as
 * OpenCV 4's GaussianBlurFixedPoint: the kernel size round(6 sigma + 1) | 1,
 * its taps in 8-bit fixed point summing to exactly 1 (error-diffused
 * rounding), integer row and column passes, rounded half up. */
int cv_gaussian_blur_u8(image_rgb8 *out, const image_rgb8 *in, double sigma, cnet_error *err);

/* The kernel size GaussianBlur takes for sigma (see above). */
int cv_gaussian_ksize(double sigma, int per_sigma);

/* The extension's resize_image_with_pad(img, res): the short side scaled to
 * res (k = res / short side; INTER_CUBIC when k > 1, else INTER_AREA; each
 * side round(side * k), half to even), then edge-replicated to the next
 * multiples of 64 at the right and bottom. res 0 means the short side
 * (no resize). *width, *height: the size before padding (remove_pad's). */
int annotator_fit(image_rgb8 *out, const image_rgb8 *in, int res, int *width, int *height,
                  cnet_error *err);

/* out = the top-left width x height of in (remove_pad). */
int annotator_crop(image_rgb8 *out, const image_rgb8 *in, int width, int height, cnet_error *err);

#endif
