/* padding_mask_crop of the inpainting pipeline, as diffusers v0.27.2's
 * VaeImageProcessor does it on PIL images (Pillow 9.4 arithmetic):
 *
 *   inpaint_crop_region   get_crop_region: the bounding box of the mask's
 *                         nonzero L pixels, padded, then grown to the
 *                         output's aspect ratio and shifted back inside
 *   inpaint_crop_fill     image.crop(box) then _resize_and_fill: Lanczos
 *                         into W x H keeping the aspect ratio, centred on
 *                         black, the empty bands filled by resizing the
 *                         edge rows (columns) with an empty box and PIL's
 *                         default filter, BICUBIC (the code passes none;
 *                         the fixture README's "Lanczos" is not what runs)
 *   inpaint_apply_overlay apply_overlay: in 0.27.2 the canvas is the
 *                         generated image's W x H (diffusers PR #8793 later
 *                         changed it to the original size); the original
 *                         image and mask Lanczos-resized to W x H, the
 *                         generated image resized to the crop ('crop' mode)
 *                         and pasted at (x1, y1) on transparent black, then
 *                         the original premultiplied with alpha = 255 -
 *                         mask alpha-composited over it
 *
 * Masks are RGB8 (a gray file decodes to R = G = B); their L value is
 * inpaint_gray. Not here: the processors' float outputs (inpaint_image.h). */
#ifndef CNET_INPAINT_CROP_H
#define CNET_INPAINT_CROP_H

#include "engine/core/error.h"
#include "engine/image/image.h"

/* coords = (x1, y1, x2, y2), right/bottom exclusive. CNET_EINVAL for a
 * mask without a nonzero pixel (nothing to crop to) or a negative pad. */
int inpaint_crop_region(const image_rgb8 *mask, int width, int height, int pad, int coords[4],
                        cnet_error *err);

/* out = in cropped to coords (zeros outside the image, as PIL's crop) and
 * resized with resize_mode 'fill' to width x height. */
int inpaint_crop_fill(image_rgb8 *out, const image_rgb8 *in, const int coords[4], int width,
                      int height, cnet_error *err);

/* VaeImageProcessor.resize's resize modes on a PIL image. */
typedef enum inpaint_resize_mode {
    INPAINT_RESIZE_DEFAULT = 0, /* Lanczos to width x height */
    INPAINT_RESIZE_FILL,        /* _resize_and_fill */
    INPAINT_RESIZE_CROP,        /* _resize_and_crop */
    INPAINT_RESIZE_COUNT
} inpaint_resize_mode;

/* "default", "fill", "crop"; and back (-1: not a mode). */
const char *inpaint_resize_mode_name(inpaint_resize_mode mode);
int inpaint_resize_mode_from_name(const char *name);

/* out = in resized to width x height in that mode. */
int inpaint_resize(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                   inpaint_resize_mode mode, cnet_error *err);

/* out (width x height of gen) = apply_overlay(mask, original, gen, coords). */
int inpaint_apply_overlay(image_rgb8 *out, const image_rgb8 *mask, const image_rgb8 *original,
                          const image_rgb8 *gen, const int coords[4], cnet_error *err);

#endif
