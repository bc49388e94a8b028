/* cv2.resize's INTER_AREA, INTER_CUBIC and INTER_NEAREST as OpenCV 4's
 * imgproc/src/resize.cpp computes them (see annotator_cv.h). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/annotators/annotator_cv.h"

/* OpenCV's INTER_RESIZE_COEF_BITS: cubic weights in 11-bit fixed point. */
#define CV_RESIZE_COEF_BITS 11
#define CV_RESIZE_COEF_SCALE (1 << CV_RESIZE_COEF_BITS)
/* Keys' cubic parameter OpenCV uses. */
#define CV_CUBIC_A (-0.75f)

/* Allocates out (width x height, checked); *copied = 1 when that is in's
 * size and out already holds its copy, as OpenCV's resize returns then. */
static int resize_begin(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                        const char *what, int *copied, cnet_error *err) {
    memset(out, 0, sizeof *out);
    *copied = 0;
    if (width <= 0 || height <= 0)
        return cnet_fail(err, CNET_EINVAL, "%s: cannot resize %dx%d to %dx%d", what, in->width,
                         in->height, width, height);
    if ((int64_t)width * height > IMAGE_MAX_PIXELS_DEFAULT)
        return cnet_fail(err, CNET_ELIMIT, "%s: %dx%d is over the %lld-pixel limit", what, width,
                         height, (long long)IMAGE_MAX_PIXELS_DEFAULT);
    const int rc = image_alloc(out, width, height, err);
    if (!rc && width == in->width && height == in->height) {
        memcpy(out->data, in->data, (size_t)width * height * 3);
        *copied = 1;
    }
    return rc;
}

static uint8_t saturate_u8(long v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static int clampi(int v, int n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

/* resizeAreaFast: every output is the mean of an sx x sy block. */
static void area_fast(image_rgb8 *out, const image_rgb8 *in, int sx, int sy) {
    const float scale = 1.f / (float)(sx * sy);
    for (int y = 0; y < out->height; y++)
        for (int x = 0; x < out->width; x++)
            for (int c = 0; c < 3; c++) {
                int sum = 0;
                for (int j = 0; j < sy; j++)
                    for (int i = 0; i < sx; i++)
                        sum += in->data[((size_t)(y * sy + j) * in->width + x * sx + i) * 3 + c];
                out->data[((size_t)y * out->width + x) * 3 + c] =
                    sx == 2 && sy == 2 ? (uint8_t)((sum + 2) >> 2)
                                       : saturate_u8(lrintf((float)sum * scale));
            }
}

/* computeResizeAreaTab: which source cells feed each output cell, with what
 * weight. Returns the number of entries (at most 2 * ssize + dsize). */
typedef struct area_tab {
    int di, si;
    float alpha;
} area_tab;

static int area_tab_make(area_tab *tab, int ssize, int dsize, double scale) {
    int k = 0;
    for (int d = 0; d < dsize; d++) {
        const double f1 = d * scale, f2 = f1 + scale;
        const double cell = fmin(scale, ssize - f1);
        int s1 = (int)ceil(f1), s2 = (int)floor(f2);
        s2 = s2 < ssize - 1 ? s2 : ssize - 1;
        s1 = s1 < s2 ? s1 : s2;
        if (s1 - f1 > 1e-3) tab[k++] = (area_tab){d, s1 - 1, (float)((s1 - f1) / cell)};
        for (int s = s1; s < s2; s++) tab[k++] = (area_tab){d, s, (float)(1.0 / cell)};
        if (f2 - s2 > 1e-3)
            tab[k++] = (area_tab){d, s2, (float)(fmin(fmin(f2 - s2, 1.), cell) / cell)};
    }
    return k;
}

/* resizeArea_<uchar, float>: rows of weighted column sums, in float. */
static int area_general(image_rgb8 *out, const image_rgb8 *in, double scale_x, double scale_y,
                        cnet_error *err) {
    const int ow = out->width * 3;
    area_tab *xt = malloc(sizeof *xt * (size_t)(2 * in->width + out->width + 2));
    area_tab *yt = malloc(sizeof *yt * (size_t)(2 * in->height + out->height + 2));
    float *buf = malloc(sizeof *buf * (size_t)ow * 2);
    if (!xt || !yt || !buf) {
        free(xt), free(yt), free(buf);
        return cnet_fail(err, CNET_ENOMEM, "INTER_AREA resize: out of memory");
    }
    float *sum = buf + ow;
    const int nx = area_tab_make(xt, in->width, out->width, scale_x);
    const int ny = area_tab_make(yt, in->height, out->height, scale_y);
    int prev = yt[0].di;
    for (int i = 0; i < ow; i++) sum[i] = 0;
    for (int j = 0; j < ny; j++) {
        const float beta = yt[j].alpha;
        const uint8_t *s = in->data + (size_t)yt[j].si * in->width * 3;
        for (int i = 0; i < ow; i++) buf[i] = 0;
        for (int k = 0; k < nx; k++)
            for (int c = 0; c < 3; c++)
                buf[xt[k].di * 3 + c] =
                    buf[xt[k].di * 3 + c] + (float)s[xt[k].si * 3 + c] * xt[k].alpha;
        if (yt[j].di != prev) {
            uint8_t *d = out->data + (size_t)prev * ow;
            for (int i = 0; i < ow; i++) {
                d[i] = saturate_u8(lrintf(sum[i]));
                sum[i] = beta * buf[i];
            }
            prev = yt[j].di;
        } else {
            for (int i = 0; i < ow; i++) sum[i] = sum[i] + beta * buf[i];
        }
    }
    uint8_t *d = out->data + (size_t)prev * ow;
    for (int i = 0; i < ow; i++) d[i] = saturate_u8(lrintf(sum[i]));
    free(xt), free(yt), free(buf);
    return 0;
}

/* An enlarging INTER_AREA's source index and two 11-bit weights for output
 * d: OpenCV's area_mode linear coefficients (the fraction of the output
 * cell past the source cell's edge), the last source pixel alone at the end. */
static int area_up_at(int d, int ssize, double inv, int w[2]) {
    int s = (int)floor(d * (1. / inv));
    float f = (float)((d + 1) - (s + 1) * inv);
    f = f <= 0 ? 0.f : f - floorf(f);
    if (s >= ssize - 1) s = ssize - 1, f = 0;
    w[0] = (int)lrintf((1.f - f) * CV_RESIZE_COEF_SCALE);
    w[1] = (int)lrintf(f * CV_RESIZE_COEF_SCALE);
    return s;
}

/* INTER_AREA when a side grows: OpenCV's linear resize with area_mode
 * weights, in fixed point (row sums, then (sum + 2^21) >> 22). */
static void area_up(image_rgb8 *out, const image_rgb8 *in) {
    const double inv_x = (double)out->width / in->width, inv_y = (double)out->height / in->height;
    for (int y = 0; y < out->height; y++) {
        int b[2], a[2];
        const int sy = area_up_at(y, in->height, inv_y, b);
        for (int x = 0; x < out->width; x++) {
            const int sx = area_up_at(x, in->width, inv_x, a);
            for (int c = 0; c < 3; c++) {
                int64_t v = 0;
                for (int k = 0; k < 2; k++) {
                    const uint8_t *row =
                        in->data + (size_t)clampi(sy + k, in->height) * in->width * 3;
                    const int32_t h =
                        row[sx * 3 + c] * a[0] + row[clampi(sx + 1, in->width) * 3 + c] * a[1];
                    v += (int64_t)h * b[k];
                }
                out->data[((size_t)y * out->width + x) * 3 + c] = saturate_u8((
                    long)((v + (1 << (2 * CV_RESIZE_COEF_BITS - 1))) >> (2 * CV_RESIZE_COEF_BITS)));
            }
        }
    }
}

int cv_resize_area(image_rgb8 *out, const image_rgb8 *in, int width, int height, cnet_error *err) {
    int copied, rc = resize_begin(out, in, width, height, "INTER_AREA resize", &copied, err);
    if (rc || copied) return rc;
    const double scale_x = 1. / ((double)width / in->width);
    const double scale_y = 1. / ((double)height / in->height);
    if (scale_x < 1 || scale_y < 1) {
        area_up(out, in);
        return 0;
    }
    const int isx = (int)lrint(scale_x), isy = (int)lrint(scale_y);
    if (fabs(scale_x - isx) < DBL_EPSILON && fabs(scale_y - isy) < DBL_EPSILON) {
        area_fast(out, in, isx, isy);
        return 0;
    }
    rc = area_general(out, in, scale_x, scale_y, err);
    if (rc) image_free(out);
    return rc;
}

/* OpenCV's interpolateCubic, in float. */
static void cubic_coeffs(float x, float c[4]) {
    const float a = CV_CUBIC_A;
    c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
    c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
    c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
    c[3] = 1.f - c[0] - c[1] - c[2];
}

/* The first source index and the four weights for output d. */
static int cubic_at(int d, double scale, float c[4]) {
    float f = (float)((d + 0.5) * scale - 0.5);
    const int s = (int)floorf(f);
    f -= (float)s;
    cubic_coeffs(f, c);
    return s - 1;
}

int cv_resize_cubic(image_rgb8 *out, const image_rgb8 *in, int width, int height, cnet_error *err) {
    int copied, rc = resize_begin(out, in, width, height, "INTER_CUBIC resize", &copied, err);
    if (rc || copied) return rc;
    const double scale_x = 1. / ((double)width / in->width);
    const double scale_y = 1. / ((double)height / in->height);
    int *xs = malloc(sizeof *xs * (size_t)width * 5);
    int32_t *rows = malloc(sizeof *rows * (size_t)width * 3 * 4);
    if (!xs || !rows) {
        free(xs), free(rows), image_free(out);
        return cnet_fail(err, CNET_ENOMEM, "INTER_CUBIC resize: out of memory");
    }
    for (int x = 0; x < width; x++) {
        float c[4];
        xs[x * 5] = cubic_at(x, scale_x, c);
        for (int k = 0; k < 4; k++) xs[x * 5 + 1 + k] = (int)lrintf(c[k] * CV_RESIZE_COEF_SCALE);
    }
    for (int y = 0; y < height; y++) {
        float c[4];
        const int sy = cubic_at(y, scale_y, c);
        for (int k = 0; k < 4; k++) {
            const uint8_t *s = in->data + (size_t)clampi(sy + k, in->height) * in->width * 3;
            for (int x = 0; x < width; x++)
                for (int ch = 0; ch < 3; ch++) {
                    int32_t v = 0;
                    for (int j = 0; j < 4; j++)
                        v += s[clampi(xs[x * 5] + j, in->width) * 3 + ch] * xs[x * 5 + 1 + j];
                    rows[((size_t)k * width + x) * 3 + ch] = v;
                }
        }
        int b[4];
        for (int k = 0; k < 4; k++) b[k] = (int)lrintf(c[k] * CV_RESIZE_COEF_SCALE);
        for (int i = 0; i < width * 3; i++) {
            int64_t v = 0;
            for (int k = 0; k < 4; k++) v += (int64_t)rows[(size_t)k * width * 3 + i] * b[k];
            out->data[(size_t)y * width * 3 + i] = saturate_u8(
                (long)((v + (1 << (2 * CV_RESIZE_COEF_BITS - 1))) >> (2 * CV_RESIZE_COEF_BITS)));
        }
    }
    free(xs), free(rows);
    return 0;
}

void cv_resize_cubic_f64(double *out, int dst_width, int dst_height, int x0, int y0, int width,
                         int height, const double *in, int src_width, int src_height) {
    const double scale_x = 1. / ((double)dst_width / src_width);
    const double scale_y = 1. / ((double)dst_height / src_height);
    for (int y = 0; y < height; y++) {
        float b[4];
        const int sy = cubic_at(y0 + y, scale_y, b);
        for (int x = 0; x < width; x++) {
            float a[4];
            const int sx = cubic_at(x0 + x, scale_x, a);
            double row[4];
            for (int k = 0; k < 4; k++) {
                const double *s = in + (size_t)clampi(sy + k, src_height) * src_width;
                row[k] = 0;
                for (int j = 0; j < 4; j++) row[k] += s[clampi(sx + j, src_width)] * a[j];
            }
            out[(size_t)y * width + x] =
                row[0] * b[0] + row[1] * b[1] + row[2] * b[2] + row[3] * b[3];
        }
    }
}

int cv_resize_nearest(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                      cnet_error *err) {
    int copied, rc = resize_begin(out, in, width, height, "INTER_NEAREST resize", &copied, err);
    if (rc || copied) return rc;
    const double fx = 1. / ((double)width / in->width), fy = 1. / ((double)height / in->height);
    for (int y = 0; y < height; y++) {
        int sy = (int)floor(y * fy);
        sy = sy < in->height - 1 ? sy : in->height - 1;
        for (int x = 0; x < width; x++) {
            int sx = (int)floor(x * fx);
            sx = sx < in->width - 1 ? sx : in->width - 1;
            memcpy(out->data + ((size_t)y * width + x) * 3,
                   in->data + ((size_t)sy * in->width + sx) * 3, 3);
        }
    }
    return 0;
}
