/* The init image and mask processors; see inpaint_image.h. */
#include "engine/image/inpaint_image.h"

#include <stdlib.h>

#include "engine/image/preprocess.h"
#include "engine/image/resample.h"

uint8_t inpaint_gray(const uint8_t *rgb) {
    return (uint8_t)((19595u * rgb[0] + 38470u * rgb[1] + 7471u * rgb[2] + 0x8000u) >> 16);
}

int inpaint_init_image(float *out, const image_rgb8 *in, int width, int height, cnet_error *err) {
    image_rgb8 resized;
    int rc = resample_rgb8(&resized, in, width, height, RESAMPLE_LANCZOS, 0, err);
    if (rc) return rc;
    /* (v - 0.5) / 0.5 rounds exactly as 2v - 1: both are 2v - 1 rounded */
    rc = preprocess_to_float(out, &resized, 0, 0, width, height, PREPROCESS_SIGNED, err);
    image_free(&resized);
    return rc;
}

int inpaint_mask(float *out, uint8_t *gray, const image_rgb8 *in, int width, int height,
                 cnet_error *err) {
    image_rgb8 resized;
    int rc = resample_rgb8(&resized, in, width, height, RESAMPLE_LANCZOS, 0, err);
    if (rc) return rc;
    for (long p = 0; p < (long)width * height; p++) {
        const uint8_t g = inpaint_gray(resized.data + p * 3);
        if (gray) gray[p] = g;
        out[p] = (float)g / 255.0f < 0.5f ? 0.0f : 1.0f;
    }
    image_free(&resized);
    return 0;
}
