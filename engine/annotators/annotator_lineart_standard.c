/* "lineart_standard": line art without a network, the extension's
 * lineart_standard() ("lineart_standard (from white bg & black line)")
 * after resize_image_with_pad:
 *   g = GaussianBlur(float image, sigma 6)
 *   i = clip(min over channels(g - x), 0, 255)
 *   i = i / max(16, median of the i above 8, over the padded picture) * 127
 *   uint8(clip(i, 0, 255)), the same on every channel.
 * In float as numpy does (the median of an even count is the mean of the
 * two middle values); the blur is cv_gaussian_blur_f32's (annotator_cv.h). */
#include <stdlib.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

#define LINEART_SIGMA 6.0
#define LINEART_PER_SIGMA 4
/* Values above this count for the median; the divisor is at least ... */
#define LINEART_MEDIAN_ABOVE 8.f
#define LINEART_DIVISOR_MIN 16.f
#define LINEART_SCALE 127.f

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int lineart_standard_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                                cnet_error *err) {
    image_rgb8 fit = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (rc) return rc;
    const size_t px = (size_t)fit.width * fit.height, n = px * 3;
    float *x = malloc(sizeof *x * (n * 2 + px * 2));
    if (!x) {
        image_free(&fit);
        return cnet_fail(err, CNET_ENOMEM, "lineart_standard: out of memory (%dx%d)", fit.width,
                         fit.height);
    }
    float *g = x + n, *inten = g + n, *above = inten + px;
    for (size_t i = 0; i < n; i++) x[i] = fit.data[i];
    rc =
        cv_gaussian_blur_f32(g, x, fit.width, fit.height, 3, LINEART_SIGMA, LINEART_PER_SIGMA, err);
    size_t count = 0;
    for (size_t p = 0; !rc && p < px; p++) {
        float m = g[p * 3] - x[p * 3];
        for (int c = 1; c < 3; c++)
            m = g[p * 3 + c] - x[p * 3 + c] < m ? g[p * 3 + c] - x[p * 3 + c] : m;
        inten[p] = m < 0 ? 0 : m > 255 ? 255 : m;
        if (inten[p] > LINEART_MEDIAN_ABOVE) above[count++] = inten[p];
    }
    float div = LINEART_DIVISOR_MIN;
    if (!rc && count) {
        qsort(above, count, sizeof *above, cmp_float);
        const float med = count % 2
                              ? above[count / 2]
                              : (float)(((double)above[count / 2 - 1] + above[count / 2]) / 2);
        div = med > div ? med : div;
    }
    if (!rc) rc = image_alloc(out, w, h, err);
    for (int y = 0; !rc && y < h; y++)
        for (int xx = 0; xx < w; xx++) {
            float v = inten[(size_t)y * fit.width + xx] / div * LINEART_SCALE;
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            for (int c = 0; c < 3; c++) out->data[((size_t)y * w + xx) * 3 + c] = (uint8_t)v;
        }
    free(x);
    image_free(&fit);
    return rc;
}

const annotator annotator_lineart_standard = {
    .name = "lineart_standard",
    .a1111_name = "lineart_standard (from white bg & black line)",
    .help = "line art from the picture's dark detail against a blurred copy (no network)",
    .takes_res = 1,
    .run = lineart_standard_run};
