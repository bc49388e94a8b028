/* The extension's resize_image_with_pad and remove_pad (see annotator_cv.h;
 * sd-webui-controlnet scripts/utils.py). */
#include <math.h>
#include <string.h>

#include "engine/annotators/annotator_cv.h"

/* The extension pads each side to a multiple of this. */
#define FIT_PAD_MULTIPLE 64

static int pad_to(int n) {
    return (n + FIT_PAD_MULTIPLE - 1) / FIT_PAD_MULTIPLE * FIT_PAD_MULTIPLE;
}

int annotator_fit(image_rgb8 *out, const image_rgb8 *in, int res, int *width, int *height,
                  cnet_error *err) {
    memset(out, 0, sizeof *out);
    const int short_side = in->width < in->height ? in->width : in->height;
    const double k = (double)(res > 0 ? res : short_side) / (double)short_side;
    const double hd = nearbyint((double)in->height * k), wd = nearbyint((double)in->width * k);
    /* checked before anything is allocated: a thin image at a large
     * processor_res would otherwise ask for billions of pixels */
    if (hd * wd > (double)IMAGE_MAX_PIXELS_DEFAULT ||
        (double)pad_to((int)wd) * pad_to((int)hd) > (double)IMAGE_MAX_PIXELS_DEFAULT)
        return cnet_fail(err, CNET_ELIMIT,
                         "processor_res %d makes the %dx%d image %.0fx%.0f, over the %lld-pixel "
                         "limit",
                         res, in->width, in->height, wd, hd, (long long)IMAGE_MAX_PIXELS_DEFAULT);
    const int h = (int)hd, w = (int)wd, pw = pad_to(w), ph = pad_to(h);
    image_rgb8 sized = {0};
    int rc = k > 1 ? cv_resize_cubic(&sized, in, w, h, err) : cv_resize_area(&sized, in, w, h, err);
    if (rc) return rc;
    rc = image_alloc(out, pw, ph, err);
    if (rc) {
        image_free(&sized);
        return rc;
    }
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++)
            memcpy(out->data + ((size_t)y * pw + x) * 3,
                   sized.data + ((size_t)(y < h ? y : h - 1) * w + (x < w ? x : w - 1)) * 3, 3);
    image_free(&sized);
    *width = w;
    *height = h;
    return 0;
}

int annotator_crop(image_rgb8 *out, const image_rgb8 *in, int width, int height, cnet_error *err) {
    int rc = image_alloc(out, width, height, err);
    if (rc) return rc;
    for (int y = 0; y < height; y++)
        memcpy(out->data + (size_t)y * width * 3, in->data + (size_t)y * in->width * 3,
               (size_t)width * 3);
    return 0;
}
