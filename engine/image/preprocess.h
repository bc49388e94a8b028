/* Image preprocessing exactly as the reference does it, from decoded RGB8
 * pixels to the float tensors the models take.
 *
 * Training (diffusers examples/controlnet/train_controlnet.py, torchvision):
 *   Resize(R, BILINEAR)  shorter side -> R, longer -> int(R * long / short),
 *                        PIL's antialiased bilinear (resample.h);
 *   CenterCrop(R)        top = int(round((h - R) / 2)), left likewise, with
 *                        Python's round-half-to-even;
 *   ToTensor             v / 255 in float32;
 *   Normalize([.5],[.5]) (x - 0.5) / 0.5 for target images only; the
 *                        conditioning images stay in [0, 1].
 * Inference (StableDiffusionControlNetPipeline.prepare_image, i.e.
 * VaeImageProcessor(do_convert_rgb=True, do_normalize=False).preprocess):
 *   width/height default to the image's, both rounded down to a multiple of
 *   the VAE scale factor; PIL resize with resample="lanczos"; v / 255.
 *   diffusers resizes before converting to RGB; cnet decodes to RGB first,
 *   which gives the same pixels for RGB and gray images but not for RGBA
 *   (PIL resizes those premultiplied) or palette images (PIL resizes those
 *   with nearest): such control images differ slightly from diffusers'.
 * Float outputs are NHWC [H, W, 3] (the engine's layout); layout.h turns
 * them into NCHW for comparisons with PyTorch.
 *
 * train_text_to_image.py's transforms differ in two (preprocess_train_t2i):
 *   RandomCrop(R)        (without --center_crop) top = randint(0, h - R),
 *                        left = randint(0, w - R), after the Resize;
 *   RandomHorizontalFlip (--random_flip) mirrors the crop with p = 0.5.
 * The draws come from the caller (Philox in cnet, torch's generator in the
 * script: the same distribution, not the same values). Not a data loader:
 * no batching, no random number generator. */
#ifndef CNET_PREPROCESS_H
#define CNET_PREPROCESS_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/image/image.h"

typedef enum preprocess_range {
    PREPROCESS_UNIT = 0, /* v / 255: conditioning images */
    PREPROCESS_SIGNED,   /* (v / 255 - 0.5) / 0.5: target images */
} preprocess_range;

/* torchvision Resize(resolution)'s output size for a w x h image. */
void preprocess_short_side_size(int w, int h, int resolution, int *out_w, int *out_h);
/* Resize(resolution, BILINEAR): out allocated here. */
int preprocess_resize_short_side(image_rgb8 *out, const image_rgb8 *in, int resolution,
                                 cnet_error *err);
/* CenterCrop(size)'s top-left corner; CNET_EINVAL when the image is smaller
 * than size (the script never pads: the shorter side is size already). */
int preprocess_center_crop_origin(int w, int h, int size, int *left, int *top, cnet_error *err);
/* out [h, w, 3] float32 = the pixels of img in [y0, y0+h) x [x0, x0+w). */
int preprocess_to_float(float *out, const image_rgb8 *img, int x0, int y0, int w, int h,
                        preprocess_range range, cnet_error *err);
/* The whole training transform: out [resolution, resolution, 3]. */
int preprocess_train(float *out, const image_rgb8 *in, int resolution, preprocess_range range,
                     cnet_error *err);

/* The random draws of train_text_to_image.py's transforms for one image:
 * random_crop 0 is CenterCrop; top / left = u_top % (h - R + 1), u_left %
 * (w - R + 1) (torch.randint's range; the modulo bias is below 2^-20 for
 * any image under 4096 px); flip mirrors the crop left to right. */
typedef struct preprocess_t2i_draws {
    int random_crop, flip;
    uint32_t u_top, u_left;
} preprocess_t2i_draws;
/* Resize, CenterCrop or RandomCrop, optional flip: out [resolution,
 * resolution, 3] in [-1, 1]. */
int preprocess_train_t2i(float *out, const image_rgb8 *in, int resolution,
                         const preprocess_t2i_draws *draws, cnet_error *err);

/* The pipeline's control image size: width/height (0 = the image's) rounded
 * down to a multiple of vae_scale_factor; CNET_EINVAL if that is 0. */
int preprocess_control_size(int img_w, int img_h, int width, int height, int vae_scale_factor,
                            int *out_w, int *out_h, cnet_error *err);
/* The pipeline's control image: out [height, width, 3] in [0, 1], with
 * width/height already from preprocess_control_size. */
int preprocess_control(float *out, const image_rgb8 *in, int width, int height, cnet_error *err);

#endif
