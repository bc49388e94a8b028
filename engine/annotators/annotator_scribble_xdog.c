/* "scribble_xdog": a difference of Gaussians turned into white scribble
 * lines, the extension's scribble_xdog() after resize_image_with_pad:
 *   g1, g2 = GaussianBlur(float image, sigma 0.5), (sigma 5.0)
 *   dog = uint8(clip(255 - min over channels(g2 - g1), 0, 255))
 *   white where uint8(2 * (255 - dog)) > threshold
 * The products are uint8 arithmetic in numpy, so 2 * (255 - dog) wraps
 * modulo 256 as it does in the extension (a very dark line can come out
 * black). Slider: "XDoG Threshold", 1..64, 32. The blur is
 * cv_gaussian_blur_f32's (annotator_cv.h: last-bit float differences from
 * OpenCV can flip a pixel lying exactly on the threshold). */
#include <stdlib.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

/* The extension's two blur widths. */
#define XDOG_SIGMA_FINE 0.5
#define XDOG_SIGMA_COARSE 5.0
/* OpenCV's kernel radius per sigma for float images. */
#define XDOG_PER_SIGMA 4

static int xdog_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                    cnet_error *err) {
    image_rgb8 fit = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (rc) return rc;
    const size_t n = (size_t)fit.width * fit.height * 3;
    float *x = malloc(sizeof *x * n * 3);
    if (!x) {
        image_free(&fit);
        return cnet_fail(err, CNET_ENOMEM, "scribble_xdog: out of memory (%dx%d)", fit.width,
                         fit.height);
    }
    float *g1 = x + n, *g2 = g1 + n;
    for (size_t i = 0; i < n; i++) x[i] = fit.data[i];
    rc =
        cv_gaussian_blur_f32(g1, x, fit.width, fit.height, 3, XDOG_SIGMA_FINE, XDOG_PER_SIGMA, err);
    if (!rc)
        rc = cv_gaussian_blur_f32(g2, x, fit.width, fit.height, 3, XDOG_SIGMA_COARSE,
                                  XDOG_PER_SIGMA, err);
    if (!rc) rc = image_alloc(out, w, h, err);
    for (int y = 0; !rc && y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            const size_t p = ((size_t)y * fit.width + xx) * 3;
            float m = g2[p] - g1[p];
            for (int c = 1; c < 3; c++) m = g2[p + c] - g1[p + c] < m ? g2[p + c] - g1[p + c] : m;
            float d = 255.f - m;
            d = d < 0 ? 0 : d > 255 ? 255 : d;
            const uint8_t dog = (uint8_t)d;
            const uint8_t twice = (uint8_t)(2 * (uint8_t)(255 - dog));
            const uint8_t v = twice > args->value[0] ? 255 : 0;
            for (int c = 0; c < 3; c++) out->data[((size_t)y * w + xx) * 3 + c] = v;
        }
    free(x);
    image_free(&fit);
    return rc;
}

const annotator annotator_scribble_xdog = {
    .name = "scribble_xdog",
    .a1111_name = "scribble_xdog",
    .help = "scribble lines from a difference of Gaussians (XDoG)",
    .param = {{"xdog_threshold", 1, 64, 32, "XDoG threshold"}},
    .takes_res = 1,
    .run = xdog_run};
