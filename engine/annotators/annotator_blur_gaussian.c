/* "blur_gaussian", the tile ControlNet's blur: the extension's
 * blur_gaussian(): resize_image_with_pad, remove_pad, cv2.GaussianBlur
 * ((0, 0), sigma). Slider "Sigma", 0.01..64, 9. OpenCV blurs 8-bit pixels
 * in fixed point (8 fraction bits in its kernels); this blurs in float
 * (cv_gaussian_blur_f32 with the 8-bit kernel size, round(6 sigma + 1) | 1)
 * and rounds half to even, so a pixel can differ from cv2's by a few levels. */
#include <math.h>
#include <stdlib.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

/* OpenCV's kernel radius per sigma for 8-bit images. */
#define BLUR_PER_SIGMA_U8 3

static int blur_gaussian_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                             cnet_error *err) {
    image_rgb8 fit = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (!rc) rc = annotator_crop(out, &fit, w, h, err);
    image_free(&fit);
    if (rc) return rc;
    const size_t n = (size_t)w * h * 3;
    float *x = malloc(sizeof *x * n * 2);
    if (!x) {
        image_free(out);
        return cnet_fail(err, CNET_ENOMEM, "blur_gaussian: out of memory (%dx%d)", w, h);
    }
    for (size_t i = 0; i < n; i++) x[i] = out->data[i];
    rc = cv_gaussian_blur_f32(x + n, x, w, h, 3, args->value[0], BLUR_PER_SIGMA_U8, err);
    for (size_t i = 0; !rc && i < n; i++) {
        const long v = lrintf(x[n + i]);
        out->data[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    free(x);
    if (rc) image_free(out);
    return rc;
}

const annotator annotator_blur_gaussian = {
    .name = "blur_gaussian",
    .a1111_name = "blur_gaussian",
    .help = "tile: the picture blurred (cv2.GaussianBlur)",
    .param = {{"sigma", 0.01, 64, 9, "Gaussian sigma in pixels"}},
    .takes_res = 1,
    .run = blur_gaussian_run};
