/* "blur_gaussian", the tile ControlNet's blur: the extension's
 * blur_gaussian(): resize_image_with_pad, remove_pad, cv2.GaussianBlur
 * ((0, 0), sigma) of the 8-bit picture, which OpenCV computes in fixed point
 * (cv_gaussian_blur_u8, annotator_cv.h). Slider "Sigma", 0.01..64, 9. */
#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

static int blur_gaussian_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                             cnet_error *err) {
    image_rgb8 fit = {0}, sized = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (!rc) rc = annotator_crop(&sized, &fit, w, h, err);
    if (!rc) rc = cv_gaussian_blur_u8(out, &sized, args->value[0], err);
    image_free(&fit);
    image_free(&sized);
    return rc;
}

const annotator annotator_blur_gaussian = {
    .name = "blur_gaussian",
    .a1111_name = "blur_gaussian",
    .help = "tile: the picture blurred (cv2.GaussianBlur)",
    .param = {{"sigma", 0.01, 64, 9, "Gaussian sigma in pixels"}},
    .takes_res = 1,
    .run = blur_gaussian_run};
