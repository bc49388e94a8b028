/* "threshold" (binary): white where a pixel's smallest channel is above the
 * threshold, black elsewhere; the extension's threshold() after
 * resize_image_with_pad (processor_res). Its slider: "Binarization
 * Threshold", 0..255, 127. */
#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

static int threshold_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                         cnet_error *err) {
    image_rgb8 fit = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (rc) return rc;
    rc = image_alloc(out, w, h, err);
    for (int y = 0; !rc && y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *p = fit.data + ((size_t)y * fit.width + x) * 3;
            const int lo = p[0] < p[1] ? (p[0] < p[2] ? p[0] : p[2]) : (p[1] < p[2] ? p[1] : p[2]);
            const uint8_t v = lo > args->value[0] ? 255 : 0;
            for (int c = 0; c < 3; c++) out->data[((size_t)y * w + x) * 3 + c] = v;
        }
    image_free(&fit);
    return rc;
}

const annotator annotator_threshold = {
    .name = "threshold",
    .a1111_name = "threshold",
    .help = "binary: white where the darkest channel is above the threshold",
    .param = {{"threshold", 0, 255, 127, "binarization threshold"}},
    .takes_res = 1,
    .run = threshold_run};
