/* The img2img / inpainting pipelines' image and mask processors, as
 * diffusers v0.27.2's VaeImageProcessor does them on PIL images
 * (image_processor.py: preprocess, get_crop_region, _resize_and_fill,
 * apply_overlay), from decoded RGB8 pixels:
 *
 *   init image  PIL Lanczos resize to W x H (resample.h), v / 255 in
 *               float32, then 2x - 1                     -> [H, W, 3] [-1, 1]
 *   mask        the same resize (a gray mask decodes to R = G = B, whose
 *               Lanczos result per channel is the L resize's), convert('L')
 *               = (19595 R + 38470 G + 7471 B + 0x8000) >> 16, v / 255,
 *               binarised x < 0.5 -> 0 else 1 (127 -> 0, 128 -> 1)
 *                                                         -> [H, W] {0, 1}
 * Not here: decoding files, torch/numpy inputs (cnet's inputs are files),
 * the control image (preprocess.h). */
#ifndef CNET_INPAINT_IMAGE_H
#define CNET_INPAINT_IMAGE_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/image/image.h"

/* PIL's convert('L') of one RGB pixel. */
uint8_t inpaint_gray(const uint8_t *rgb);

/* out [height, width, 3] float in [-1, 1]: image_processor.preprocess. */
int inpaint_init_image(float *out, const image_rgb8 *in, int width, int height, cnet_error *err);

/* out [height, width] in {0, 1}: mask_processor.preprocess. gray (may be
 * NULL) receives the L pixels after the resize. */
int inpaint_mask(float *out, uint8_t *gray, const image_rgb8 *in, int width, int height,
                 cnet_error *err);

#endif
