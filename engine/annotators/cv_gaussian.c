/* cv2.GaussianBlur(img, (0, 0), sigma) on float planes (see annotator_cv.h):
 * OpenCV 4's getGaussianKernelBitExact kernel (done in double here, then
 * float as OpenCV's CV_32F kernel), sepFilter2D's row pass then column pass,
 * BORDER_REFLECT_101. */
#include <math.h>
#include <stdlib.h>

#include "engine/annotators/annotator_cv.h"

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

/* The kernel as getGaussianKernelBitExact builds it: the halves from
 * exp(x * x * (-0.125 / sigma^2)) at x = 1 - n, 3 - n, ..., the centre 1,
 * normalised by the product with 1 / sum. */
static void gaussian_kernel(float *k, double *t, int n, double sigma) {
    const double scale2 = -0.125 / (sigma * sigma);
    const int half = (n - 1) / 2;
    double sum = 0;
    for (int i = 0, x = 1 - n; i < half; i++, x += 2) {
        t[i] = exp((double)(x * x) * scale2);
        sum += t[i];
    }
    sum = 1. / (sum * 2 + 1);
    for (int i = 0; i < half; i++) k[i] = k[n - 1 - i] = (float)(t[i] * sum);
    k[half] = (float)sum;
}

int cv_gaussian_blur_f32(float *out, const float *in, int width, int height, int channels,
                         double sigma, int per_sigma, cnet_error *err) {
    if (!(sigma > 0))
        return cnet_fail(err, CNET_EINVAL, "GaussianBlur: sigma %g is not positive", sigma);
    const int n = cv_gaussian_ksize(sigma, per_sigma), r = n / 2;
    const size_t plane = (size_t)width * height * channels;
    float *k = malloc(sizeof *k * (size_t)n);
    float *tmp = malloc(sizeof *tmp * plane);
    double *t = malloc(sizeof *t * (size_t)((n - 1) / 2 + 1));
    if (!k || !tmp || !t) {
        free(k), free(tmp), free(t);
        return cnet_fail(err, CNET_ENOMEM, "GaussianBlur: out of memory (kernel %d)", n);
    }
    gaussian_kernel(k, t, n, sigma);
    free(t);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++) {
                double s = 0;
                for (int i = 0; i < n; i++)
                    s += (double)(k[i] *
                                  in[((size_t)y * width + reflect101(x - r + i, width)) * channels +
                                     c]);
                tmp[((size_t)y * width + x) * channels + c] = (float)s;
            }
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            for (int c = 0; c < channels; c++) {
                double s = 0;
                for (int i = 0; i < n; i++)
                    s += (double)(k[i] * tmp[((size_t)reflect101(y - r + i, height) * width + x) *
                                                 channels +
                                             c]);
                out[((size_t)y * width + x) * channels + c] = (float)s;
            }
    free(k), free(tmp);
    return 0;
}
