/* cv2.GaussianBlur(img, (0, 0), sigma) with BORDER_REFLECT_101 (see
 * annotator_cv.h): OpenCV 4's getGaussianKernelBitExact kernel (done in
 * double here); on float planes as a float kernel and sepFilter2D's row pass
 * then column pass; on 8-bit pixels as OpenCV's GaussianBlurFixedPoint: the
 * kernel rounded to 8 fraction bits with error diffusion
 * (getGaussianKernelFixedPoint_ED, the centre taking what makes the sum 256),
 * integer passes, the result rounded half up from 16 fraction bits. As in
 * OpenCV, a side of one pixel is not blurred along. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/annotators/annotator_cv.h"

/* The fixed-point kernel's fraction bits (OpenCV's ufixedpoint16). */
#define FIXED_BITS 8

int cv_gaussian_ksize(double sigma, int per_sigma) {
    return (int)lrint(sigma * per_sigma * 2 + 1) | 1;
}

/* OpenCV's borderInterpolate for BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba),
 * repeated for offsets wider than the image. */
static int reflect101(int p, int n) {
    if (n == 1) return 0;
    while (p < 0 || p >= n) p = p < 0 ? -p : 2 * n - 2 - p;
    return p;
}

/* The n taps as getGaussianKernelBitExact builds them (n odd): the halves
 * from exp(x * x * (-0.125 / sigma^2)) at x = 1 - n, 3 - n, ..., the centre
 * 1, each times 1 / sum. n 1 gives [1]. */
static void gaussian_kernel(double *k, int n, double sigma) {
    const double scale2 = -0.125 / (sigma * sigma);
    const int half = (n - 1) / 2;
    double sum = 0;
    for (int i = 0, x = 1 - n; i < half; i++, x += 2) {
        k[i] = exp((double)(x * x) * scale2);
        sum += k[i];
    }
    sum = 1. / (sum * 2 + 1);
    for (int i = 0; i < half; i++) k[i] = k[n - 1 - i] = k[i] * sum;
    k[half] = sum;
}

/* The taps along a side of len pixels: OpenCV blurs a side of one pixel
 * with the kernel [1]. */
static int taps(int len, double sigma, int per_sigma) {
    return len == 1 ? 1 : cv_gaussian_ksize(sigma, per_sigma);
}

int cv_gaussian_blur_f32(float *out, const float *in, int width, int height, int channels,
                         double sigma, int per_sigma, cnet_error *err) {
    if (!(sigma > 0))
        return cnet_fail(err, CNET_EINVAL, "GaussianBlur: sigma %g is not positive", sigma);
    const int nx = taps(width, sigma, per_sigma), ny = taps(height, sigma, per_sigma);
    const int rx = nx / 2, ry = ny / 2;
    const size_t plane = (size_t)width * height * channels;
    double *kd = malloc(sizeof *kd * (size_t)(nx > ny ? nx : ny));
    float *kx = malloc(sizeof *kx * (size_t)(nx + ny)), *ky = kx ? kx + nx : NULL;
    float *tmp = malloc(sizeof *tmp * plane);
    if (!kd || !kx || !tmp) {
        free(kd), free(kx), free(tmp);
        return cnet_fail(err, CNET_ENOMEM, "GaussianBlur: out of memory (kernel %d)", nx);
    }
    gaussian_kernel(kd, nx, sigma);
    for (int i = 0; i < nx; i++) kx[i] = (float)kd[i];
    gaussian_kernel(kd, ny, sigma);
    for (int i = 0; i < ny; i++) ky[i] = (float)kd[i];
    free(kd);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++) {
                double s = 0;
                for (int i = 0; i < nx; i++)
                    s +=
                        (double)(kx[i] *
                                 in[((size_t)y * width + reflect101(x - rx + i, width)) * channels +
                                    c]);
                tmp[((size_t)y * width + x) * channels + c] = (float)s;
            }
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++) {
                double s = 0;
                for (int i = 0; i < ny; i++)
                    s += (double)(ky[i] * tmp[((size_t)reflect101(y - ry + i, height) * width + x) *
                                                  channels +
                                              c]);
                out[((size_t)y * width + x) * channels + c] = (float)s;
            }
    free(kx), free(tmp);
    return 0;
}

/* getGaussianKernelFixedPoint_ED: the half taps times 2^FIXED_BITS plus the
 * error carried from the previous tap, rounded half to even; the centre is
 * what makes the taps sum to 2^FIXED_BITS. */
static void fixed_kernel(uint32_t *k, const double *kd, int n) {
    const int half = n / 2;
    double carry = 0;
    int64_t sum = 0;
    for (int i = 0; i < half; i++) {
        const double v = kd[i] * (1 << FIXED_BITS) + carry;
        const int64_t r = (int64_t)nearbyint(v);
        carry = v - (double)r;
        k[i] = k[n - 1 - i] = (uint32_t)r;
        sum += r;
    }
    k[half] = (uint32_t)((1 << FIXED_BITS) - 2 * sum);
}

int cv_gaussian_blur_u8(image_rgb8 *out, const image_rgb8 *in, double sigma, cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (!(sigma > 0))
        return cnet_fail(err, CNET_EINVAL, "GaussianBlur: sigma %g is not positive", sigma);
    const int w = in->width, h = in->height, nx = taps(w, sigma, 3), ny = taps(h, sigma, 3);
    const int rx = nx / 2, ry = ny / 2, big = nx > ny ? nx : ny;
    double *kd = malloc(sizeof *kd * (size_t)big);
    uint32_t *kx = malloc(sizeof *kx * (size_t)(nx + ny)), *ky = kx ? kx + nx : NULL;
    uint32_t *rows = malloc(sizeof *rows * (size_t)w * h * 3);
    int rc = kd && kx && rows ? image_alloc(out, w, h, err)
                              : cnet_fail(err, CNET_ENOMEM, "GaussianBlur: out of memory");
    if (!rc) {
        gaussian_kernel(kd, nx, sigma);
        fixed_kernel(kx, kd, nx);
        gaussian_kernel(kd, ny, sigma);
        fixed_kernel(ky, kd, ny);
        for (int y = 0; y < h; y++) /* 8 fraction bits: at most 255 * 256 */
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    uint32_t s = 0;
                    for (int i = 0; i < nx; i++)
                        s += kx[i] * in->data[((size_t)y * w + reflect101(x - rx + i, w)) * 3 + c];
                    rows[((size_t)y * w + x) * 3 + c] = s;
                }
        for (int y = 0; y < h; y++) /* 16 fraction bits, rounded half up */
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    uint32_t s = 0;
                    for (int i = 0; i < ny; i++)
                        s += ky[i] * rows[((size_t)reflect101(y - ry + i, h) * w + x) * 3 + c];
                    s = (s + (1u << (2 * FIXED_BITS - 1))) >> (2 * FIXED_BITS);
                    out->data[((size_t)y * w + x) * 3 + c] = (uint8_t)(s > 255 ? 255 : s);
                }
    }
    free(kd), free(kx), free(rows);
    return rc;
}
