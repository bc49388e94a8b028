/* PIL's Image.resize for 8-bit RGB, bit for bit.
 *
 * Pillow's src/libImaging/Resample.c: a separable convolution, horizontal
 * pass first (rounded to uint8), then vertical; the filter's support is
 * scaled by the downscale factor (so downscaling antialiases, it does not
 * sample), coefficients normalised per output pixel and turned into 22-bit
 * fixed point ("PRECISION_BITS" = 32 - 8 - 2) with PIL's rounding. This is
 * what torchvision's Resize does on a PIL image and what diffusers'
 * VaeImageProcessor does with resample="lanczos". Not a general resampler:
 * RGB8 only, the three filters cnet needs.
 *
 * Errors: CNET_EINVAL (bad size or filter), CNET_ELIMIT (output over the
 * caller's pixel limit), CNET_ENOMEM. */
#ifndef CNET_RESAMPLE_H
#define CNET_RESAMPLE_H

#include "engine/core/error.h"
#include "engine/image/image.h"

typedef enum resample_filter {
    RESAMPLE_BILINEAR = 0, /* PIL.Image.BILINEAR: triangle, support 1 */
    RESAMPLE_LANCZOS,      /* PIL.Image.LANCZOS: sinc windowed by sinc(x/3), support 3 */
    RESAMPLE_BICUBIC,      /* PIL.Image.BICUBIC (resize's default): cubic a = -0.5, support 2 */
    RESAMPLE_FILTER_COUNT
} resample_filter;

/* Name table: "bilinear", "lanczos", "bicubic" (diffusers' PIL_INTERPOLATION keys). */
const char *resample_filter_name(resample_filter f);
/* The filter for a name, or -1 when unknown. */
int resample_filter_from_name(const char *name);

/* out = in resized to width x height (allocated here; *out holds nothing on
 * failure). Same size gives a copy, as PIL does. max_pixels <= 0 means
 * IMAGE_MAX_PIXELS_DEFAULT; a larger output is CNET_ELIMIT. */
int resample_rgb8(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                  resample_filter filter, int64_t max_pixels, cnet_error *err);

/* Image.resize((width, height), filter, box=box): the source region box =
 * (x0, y0, x1, y1) in float pixels inside the image, which may be empty
 * along an axis (x0 == x1: the filter's taps around x0, how diffusers'
 * _resize_and_fill stretches an edge row). CNET_EINVAL for a box outside
 * the image. */
int resample_rgb8_box(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                      const float box[4], resample_filter filter, int64_t max_pixels,
                      cnet_error *err);

#endif
