/* padding_mask_crop's crop region, resize-and-fill and overlay; see
 * inpaint_crop.h. Pillow's integer arithmetic (libImaging/Paste.c BLEND,
 * Convert.c rgbA2rgba / rgba2rgbA, AlphaComposite.c) is spelled out here. */
#include "engine/image/inpaint_crop.h"

#include <string.h>

#include "engine/image/inpaint_image.h"
#include "engine/image/resample.h"

/* Pillow's (a + 128) / 255 rounding: SHIFTFORDIV255(a + 128). */
static unsigned div255(unsigned a) {
    a += 128;
    return ((a >> 8) + a) >> 8;
}

static int column_empty(const image_rgb8 *m, int x) {
    for (int y = 0; y < m->height; y++)
        if (inpaint_gray(m->data + ((size_t)y * m->width + x) * 3)) return 0;
    return 1;
}

static int row_empty(const image_rgb8 *m, int y) {
    for (int x = 0; x < m->width; x++)
        if (inpaint_gray(m->data + ((size_t)y * m->width + x) * 3)) return 0;
    return 1;
}

/* Grows [*a, *b) of an axis of `size` pixels by diff, as get_crop_region. */
static void grow(int *a, int *b, int diff, int size) {
    *a -= diff / 2;
    *b += diff - diff / 2;
    if (*b >= size) {
        const int d = *b - size;
        *b -= d, *a -= d;
    }
    if (*a < 0) {
        *b -= *a;
        *a = 0;
    }
    if (*b >= size) *b = size;
}

int inpaint_crop_region(const image_rgb8 *mask, int width, int height, int pad, int coords[4],
                        cnet_error *err) {
    const int w = mask->width, h = mask->height;
    if (pad < 0) return cnet_fail(err, CNET_EINVAL, "padding_mask_crop must be >= 0 (got %d)", pad);
    int left = 0, right = 0, top = 0, bottom = 0;
    while (left < w && column_empty(mask, left)) left++;
    if (left == w)
        return cnet_fail(
            err, CNET_EINVAL,
            "mask_image has no masked pixel: padding_mask_crop has nothing to crop to");
    while (column_empty(mask, w - 1 - right)) right++;
    while (row_empty(mask, top)) top++;
    while (row_empty(mask, h - 1 - bottom)) bottom++;
    int x1 = left - pad > 0 ? left - pad : 0, y1 = top - pad > 0 ? top - pad : 0;
    int x2 = w - right + pad < w ? w - right + pad : w,
        y2 = h - bottom + pad < h ? h - bottom + pad : h;
    const double ratio_crop = (double)(x2 - x1) / (y2 - y1), ratio = (double)width / height;
    if (ratio_crop > ratio)
        grow(&y1, &y2, (int)((x2 - x1) / ratio - (y2 - y1)), h);
    else
        grow(&x1, &x2, (int)((y2 - y1) * ratio - (x2 - x1)), w);
    coords[0] = x1, coords[1] = y1, coords[2] = x2, coords[3] = y2;
    return 0;
}

/* PIL's paste of src at (x, y) on dst, clipped. */
static void paste(image_rgb8 *dst, const image_rgb8 *src, int x, int y) {
    for (int r = 0; r < src->height; r++) {
        const int dy = y + r;
        if (dy < 0 || dy >= dst->height) continue;
        for (int c = 0; c < src->width; c++) {
            const int dx = x + c;
            if (dx < 0 || dx >= dst->width) continue;
            memcpy(dst->data + ((size_t)dy * dst->width + dx) * 3,
                   src->data + ((size_t)r * src->width + c) * 3, 3);
        }
    }
}

static int crop(image_rgb8 *out, const image_rgb8 *in, const int c[4], cnet_error *err) {
    const int w = c[2] - c[0], h = c[3] - c[1];
    if (w <= 0 || h <= 0)
        return cnet_fail(err, CNET_EINVAL, "crop (%d,%d,%d,%d) is empty", c[0], c[1], c[2], c[3]);
    int rc = image_alloc(out, w, h, err);
    if (rc) return rc;
    memset(out->data, 0, (size_t)w * h * 3);
    paste(out, in, -c[0], -c[1]);
    return 0;
}

/* _resize_and_fill(image, width, height). */
static int resize_fill(image_rgb8 *out, const image_rgb8 *img, int width, int height,
                       cnet_error *err) {
    const double ratio = (double)width / height, src_ratio = (double)img->width / img->height;
    const int src_w = ratio < src_ratio ? width : img->width * height / img->height;
    const int src_h = ratio >= src_ratio ? height : img->height * width / img->width;
    image_rgb8 resized = {0}, band = {0};
    int rc = resample_rgb8(&resized, img, src_w, src_h, RESAMPLE_LANCZOS, 0, err);
    if (!rc) rc = image_alloc(out, width, height, err);
    if (rc) {
        image_free(&resized);
        return rc;
    }
    memset(out->data, 0, (size_t)width * height * 3);
    paste(out, &resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
    const float rw = (float)resized.width, rh = (float)resized.height;
    if (ratio < src_ratio) {
        const int fill = height / 2 - src_h / 2;
        const float top[4] = {0, 0, (float)width, 0}, bot[4] = {0, rh, (float)width, rh};
        if (fill > 0 && !(rc = resample_rgb8_box(&band, &resized, width, fill, top,
                                                 RESAMPLE_BICUBIC, 0, err))) {
            paste(out, &band, 0, 0);
            image_free(&band);
            if (!(rc = resample_rgb8_box(&band, &resized, width, fill, bot, RESAMPLE_BICUBIC, 0,
                                         err)))
                paste(out, &band, 0, fill + src_h);
        }
    } else if (ratio > src_ratio) {
        const int fill = width / 2 - src_w / 2;
        const float left[4] = {0, 0, 0, (float)height}, right[4] = {rw, 0, rw, (float)height};
        if (fill > 0 && !(rc = resample_rgb8_box(&band, &resized, fill, height, left,
                                                 RESAMPLE_BICUBIC, 0, err))) {
            paste(out, &band, 0, 0);
            image_free(&band);
            if (!(rc = resample_rgb8_box(&band, &resized, fill, height, right, RESAMPLE_BICUBIC, 0,
                                         err)))
                paste(out, &band, fill + src_w, 0);
        }
    }
    image_free(&band);
    image_free(&resized);
    if (rc) image_free(out);
    return rc;
}

int inpaint_crop_fill(image_rgb8 *out, const image_rgb8 *in, const int coords[4], int width,
                      int height, cnet_error *err) {
    image_rgb8 cropped = {0};
    memset(out, 0, sizeof *out);
    int rc = crop(&cropped, in, coords, err);
    if (!rc) rc = resize_fill(out, &cropped, width, height, err);
    image_free(&cropped);
    return rc;
}

/* _resize_and_crop(image, width, height). */
static int resize_crop(image_rgb8 *out, const image_rgb8 *img, int width, int height,
                       cnet_error *err) {
    const double ratio = (double)width / height, src_ratio = (double)img->width / img->height;
    const int src_w = ratio > src_ratio ? width : img->width * height / img->height;
    const int src_h = ratio <= src_ratio ? height : img->height * width / img->width;
    image_rgb8 resized = {0};
    int rc = resample_rgb8(&resized, img, src_w, src_h, RESAMPLE_LANCZOS, 0, err);
    if (!rc && !(rc = image_alloc(out, width, height, err))) {
        memset(out->data, 0, (size_t)width * height * 3);
        paste(out, &resized, width / 2 - src_w / 2, height / 2 - src_h / 2);
    }
    image_free(&resized);
    return rc;
}

static const char *const mode_names[INPAINT_RESIZE_COUNT] = {"default", "fill", "crop"};

const char *inpaint_resize_mode_name(inpaint_resize_mode mode) {
    return (unsigned)mode < INPAINT_RESIZE_COUNT ? mode_names[mode] : "?";
}

int inpaint_resize_mode_from_name(const char *name) {
    for (int m = 0; m < INPAINT_RESIZE_COUNT; m++)
        if (name && strcmp(mode_names[m], name) == 0) return m;
    return -1;
}

int inpaint_resize(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                   inpaint_resize_mode mode, cnet_error *err) {
    memset(out, 0, sizeof *out);
    switch (mode) {
    case INPAINT_RESIZE_FILL:
        return resize_fill(out, in, width, height, err);
    case INPAINT_RESIZE_CROP:
        return resize_crop(out, in, width, height, err);
    case INPAINT_RESIZE_DEFAULT:
    case INPAINT_RESIZE_COUNT:
        break;
    }
    return resample_rgb8(out, in, width, height, RESAMPLE_LANCZOS, 0, err);
}

int inpaint_apply_overlay(image_rgb8 *out, const image_rgb8 *mask, const image_rgb8 *original,
                          const image_rgb8 *gen, const int coords[4], cnet_error *err) {
    const int W = gen->width, H = gen->height;
    image_rgb8 init = {0}, m = {0}, piece = {0};
    memset(out, 0, sizeof *out);
    int rc = resample_rgb8(&init, original, W, H, RESAMPLE_LANCZOS, 0, err);
    if (!rc) rc = resample_rgb8(&m, mask, W, H, RESAMPLE_LANCZOS, 0, err);
    if (!rc) rc = resize_crop(&piece, gen, coords[2] - coords[0], coords[3] - coords[1], err);
    if (!rc) rc = image_alloc(out, W, H, err);
    if (rc) goto done;
    /* the generated crop on transparent black, converted to RGB */
    memset(out->data, 0, (size_t)W * H * 3);
    paste(out, &piece, coords[0], coords[1]);
    for (size_t p = 0; p < (size_t)W * H; p++) {
        /* paste(RGBA -> RGBa original, mask = invert(L)) on zeros, then RGBa -> RGBA */
        const unsigned a = 255u - inpaint_gray(m.data + p * 3);
        unsigned src[3];
        for (int c = 0; c < 3; c++) {
            const unsigned pre = div255(init.data[p * 3 + c] * a);
            src[c] = a == 255 || a == 0 ? pre : (255u * pre / a > 255 ? 255 : 255u * pre / a);
        }
        if (a == 0) continue; /* alpha_composite keeps dst */
        /* AlphaComposite.c with dst alpha 255, PRECISION_BITS 7 */
        const unsigned blend = 255u * (255u - a), outa255 = a * 255u + blend;
        const unsigned coef1 = a * 255u * 255u * (1u << 7) / outa255,
                       coef2 = 255u * (1u << 7) - coef1;
        uint8_t *d = out->data + p * 3;
        for (int c = 0; c < 3; c++) {
            const unsigned t = src[c] * coef1 + d[c] * coef2 + (0x80u << 7);
            d[c] = (uint8_t)((((t >> 8) + t) >> 8) >> 7);
        }
    }
done:
    image_free(&init), image_free(&m), image_free(&piece);
    if (rc) image_free(out);
    return rc;
}
