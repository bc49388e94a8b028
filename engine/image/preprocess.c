/* Training and pipeline image preprocessing, see preprocess.h. The float
 * arithmetic is the reference's, step by step in float32: torch's
 * ToTensor divides a float32 tensor by 255 and Normalize does
 * sub_(0.5).div_(0.5); numpy divides a float32 array by 255.0 — each an
 * IEEE float32 operation, so the results are identical, not just close. */
#include "engine/image/preprocess.h"

#include <stdlib.h>

#include "engine/image/resample.h"

void preprocess_short_side_size(int w, int h, int resolution, int *out_w, int *out_h) {
    int s = w < h ? w : h, l = w < h ? h : w;
    /* Python: int(requested_short * long / short), true division in double. */
    int new_long = (int)((double)((int64_t)resolution * l) / s);
    *out_w = w <= h ? resolution : new_long;
    *out_h = w <= h ? new_long : resolution;
}

int preprocess_resize_short_side(image_rgb8 *out, const image_rgb8 *in, int resolution,
                                 cnet_error *err) {
    if (resolution <= 0)
        return cnet_fail(err, CNET_EINVAL, "preprocess: resolution %d must be positive",
                         resolution);
    int w, h;
    preprocess_short_side_size(in->width, in->height, resolution, &w, &h);
    return resample_rgb8(out, in, w, h, RESAMPLE_BILINEAR, 0, err);
}

/* int(round(d / 2)) for d >= 0 with round-half-to-even: d/2 is whole or
 * k + 0.5, which goes to whichever of k, k + 1 is even. */
static int half_round_even(int d) {
    int k = d / 2;
    return d % 2 == 0 || k % 2 == 0 ? k : k + 1;
}

int preprocess_center_crop_origin(int w, int h, int size, int *left, int *top, cnet_error *err) {
    if (size <= 0 || w < size || h < size)
        return cnet_fail(err, CNET_EINVAL, "preprocess: cannot center-crop %dx%d to %dx%d", w, h,
                         size, size);
    *left = half_round_even(w - size);
    *top = half_round_even(h - size);
    return 0;
}

int preprocess_to_float(float *out, const image_rgb8 *img, int x0, int y0, int w, int h,
                        preprocess_range range, cnet_error *err) {
    if (x0 < 0 || y0 < 0 || w <= 0 || h <= 0 || x0 + w > img->width || y0 + h > img->height)
        return cnet_fail(err, CNET_EINVAL, "preprocess: window %dx%d at (%d,%d) outside %dx%d", w,
                         h, x0, y0, img->width, img->height);
    for (int y = 0; y < h; y++) {
        const uint8_t *s = img->data + ((size_t)(y0 + y) * img->width + x0) * 3;
        float *d = out + (size_t)y * w * 3;
        for (int i = 0; i < w * 3; i++) {
            float v = (float)s[i] / 255.0f;
            d[i] = range == PREPROCESS_SIGNED ? (v - 0.5f) / 0.5f : v;
        }
    }
    return 0;
}

int preprocess_train(float *out, const image_rgb8 *in, int resolution, preprocess_range range,
                     cnet_error *err) {
    image_rgb8 resized;
    int rc = preprocess_resize_short_side(&resized, in, resolution, err);
    if (rc) return rc;
    int left, top;
    rc = preprocess_center_crop_origin(resized.width, resized.height, resolution, &left, &top, err);
    if (!rc) rc = preprocess_to_float(out, &resized, left, top, resolution, resolution, range, err);
    image_free(&resized);
    return rc;
}

int preprocess_train_t2i(float *out, const image_rgb8 *in, int resolution,
                         const preprocess_t2i_draws *draws, cnet_error *err) {
    image_rgb8 resized;
    int rc = preprocess_resize_short_side(&resized, in, resolution, err);
    if (rc) return rc;
    int left, top;
    rc = preprocess_center_crop_origin(resized.width, resized.height, resolution, &left, &top, err);
    if (!rc && draws->random_crop) {
        top = (int)(draws->u_top % (uint32_t)(resized.height - resolution + 1));
        left = (int)(draws->u_left % (uint32_t)(resized.width - resolution + 1));
    }
    if (!rc)
        rc = preprocess_to_float(out, &resized, left, top, resolution, resolution,
                                 PREPROCESS_SIGNED, err);
    image_free(&resized);
    for (int y = 0; !rc && draws->flip && y < resolution; y++) {
        float *row = out + (size_t)y * resolution * 3;
        for (int x = 0; x < resolution / 2; x++)
            for (int c = 0; c < 3; c++) {
                float *a = row + x * 3 + c, *b = row + (resolution - 1 - x) * 3 + c, v = *a;
                *a = *b, *b = v;
            }
    }
    return rc;
}

int preprocess_control_size(int img_w, int img_h, int width, int height, int vae_scale_factor,
                            int *out_w, int *out_h, cnet_error *err) {
    if (vae_scale_factor <= 0 || width < 0 || height < 0)
        return cnet_fail(err, CNET_EINVAL, "preprocess: bad control size %dx%d (vae factor %d)",
                         width, height, vae_scale_factor);
    int w = width ? width : img_w, h = height ? height : img_h;
    *out_w = w - w % vae_scale_factor;
    *out_h = h - h % vae_scale_factor;
    if (*out_w <= 0 || *out_h <= 0)
        return cnet_fail(err, CNET_EINVAL,
                         "preprocess: control image size %dx%d is below the VAE factor %d", w, h,
                         vae_scale_factor);
    return 0;
}

int preprocess_control(float *out, const image_rgb8 *in, int width, int height, cnet_error *err) {
    image_rgb8 resized;
    int rc = resample_rgb8(&resized, in, width, height, RESAMPLE_LANCZOS, 0, err);
    if (rc) return rc;
    rc = preprocess_to_float(out, &resized, 0, 0, width, height, PREPROCESS_UNIT, err);
    image_free(&resized);
    return rc;
}
