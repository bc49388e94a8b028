/* PIL-exact resampling of RGB8 images. See resample.h; the structure follows
 * Pillow's ImagingResampleInner: coefficients for both axes, the vertical
 * pass's first and last source rows, a horizontal pass over just those rows
 * into a temporary image, then the vertical pass.
 *
 * Sizes: in [h, w, 3] -> tmp [rows, W, 3] -> out [H, W, 3]; a coefficient
 * table holds, per output index, the first source index, the tap count and
 * ksize fixed-point weights. */
#include "engine/image/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 8 bits of result, 2 bits of headroom for negative lobes and sums over 1. */
#define RESAMPLE_PRECISION_BITS (32 - 8 - 2)

static const char *const filter_names[RESAMPLE_FILTER_COUNT] = {"bilinear", "lanczos", "bicubic"};

const char *resample_filter_name(resample_filter f) {
    return f >= 0 && f < RESAMPLE_FILTER_COUNT ? filter_names[f] : "unknown";
}

int resample_filter_from_name(const char *name) {
    for (int i = 0; i < RESAMPLE_FILTER_COUNT; i++)
        if (strcmp(name, filter_names[i]) == 0) return i;
    return -1;
}

static double bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double lanczos(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

/* Pillow's bicubic_filter: Keys' cubic convolution with a = -0.5. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct coeffs {
    int ksize;   /* taps reserved per output index */
    int *bounds; /* [n, 2]: first source index, tap count */
    int32_t *k;  /* [n, ksize] fixed-point weights */
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [in0,
 * in1) of a source axis of `in` pixels. */
static int coeffs_init(coeffs *c, int in, float in0, float in1, int out, resample_filter filter) {
    double (*fn)(double) = filter == RESAMPLE_LANCZOS   ? lanczos
                           : filter == RESAMPLE_BICUBIC ? bicubic
                                                        : bilinear;
    double base_support = filter == RESAMPLE_LANCZOS ? 3.0 : filter == RESAMPLE_BICUBIC ? 2.0 : 1.0;
    /* PIL's box is float: (double)(in1 - in0) / out. */
    double scale = ((double)in1 - in0) / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = base_support * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->bounds = malloc(sizeof *c->bounds * 2 * (size_t)out);
    c->k = malloc(sizeof *c->k * (size_t)c->ksize * out);
    double *w = malloc(sizeof *w * (size_t)c->ksize);
    if (!c->bounds || !c->k || !w) {
        free(w);
        coeffs_free(c);
        return CNET_ENOMEM;
    }
    for (int xx = 0; xx < out; xx++) {
        double center = in0 + (xx + 0.5) * scale, ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = fn((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)xx * c->ksize;
        for (int x = 0; x < c->ksize; x++) {
            double v = x < xmax && ww != 0.0 ? w[x] / ww : x < xmax ? w[x] : 0.0;
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << RESAMPLE_PRECISION_BITS)
                                   : 0.5 + v * (1 << RESAMPLE_PRECISION_BITS));
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(w);
    return 0;
}

static uint8_t clip8(int32_t acc) {
    int32_t v = acc >> RESAMPLE_PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* dst [rows, W, 3] from src rows [first, first + rows) of [*, w, 3]. */
static void pass_horizontal(uint8_t *dst, int W, const uint8_t *src, int w, int first, int rows,
                            const coeffs *c) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = src + (size_t)(first + y) * w * 3;
        uint8_t *d = dst + (size_t)y * W * 3;
        for (int xx = 0; xx < W; xx++) {
            int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int32_t acc[3] = {1 << (RESAMPLE_PRECISION_BITS - 1),
                              1 << (RESAMPLE_PRECISION_BITS - 1),
                              1 << (RESAMPLE_PRECISION_BITS - 1)};
            for (int x = 0; x < n; x++)
                for (int ch = 0; ch < 3; ch++) acc[ch] += s[(size_t)(xmin + x) * 3 + ch] * k[x];
            for (int ch = 0; ch < 3; ch++) d[(size_t)xx * 3 + ch] = clip8(acc[ch]);
        }
    }
}

/* dst [H, w, 3] from src [*, w, 3]; bounds are relative to src's row 0
 * shifted down by `first`. */
static void pass_vertical(uint8_t *dst, int H, const uint8_t *src, int w, int first,
                          const coeffs *c) {
    for (int yy = 0; yy < H; yy++) {
        int ymin = c->bounds[2 * yy] - first, n = c->bounds[2 * yy + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        uint8_t *d = dst + (size_t)yy * w * 3;
        for (int i = 0; i < w * 3; i++) {
            int32_t acc = 1 << (RESAMPLE_PRECISION_BITS - 1);
            for (int y = 0; y < n; y++) acc += src[(size_t)(ymin + y) * w * 3 + i] * k[y];
            d[i] = clip8(acc);
        }
    }
}

int resample_rgb8(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                  resample_filter filter, int64_t max_pixels, cnet_error *err) {
    const float box[4] = {0, 0, (float)in->width, (float)in->height};
    return resample_rgb8_box(out, in, width, height, box, filter, max_pixels, err);
}

int resample_rgb8_box(image_rgb8 *out, const image_rgb8 *in, int width, int height,
                      const float box[4], resample_filter filter, int64_t max_pixels,
                      cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (max_pixels <= 0) max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    if (filter < 0 || filter >= RESAMPLE_FILTER_COUNT)
        return cnet_fail(err, CNET_EINVAL, "resize: unknown filter %d", (int)filter);
    if (!in->data || in->width <= 0 || in->height <= 0 || width <= 0 || height <= 0)
        return cnet_fail(err, CNET_EINVAL, "resize: bad sizes %dx%d -> %dx%d", in->width,
                         in->height, width, height);
    if ((int64_t)width * height > max_pixels)
        return cnet_fail(err, CNET_ELIMIT, "resize: %dx%d pixels, over the limit of %lld", width,
                         height, (long long)max_pixels);
    if (!(box[0] >= 0 && box[1] >= 0 && box[0] <= box[2] && box[1] <= box[3] &&
          box[2] <= in->width && box[3] <= in->height))
        return cnet_fail(err, CNET_EINVAL, "resize: box (%g,%g,%g,%g) outside %dx%d", box[0],
                         box[1], box[2], box[3], in->width, in->height);
    int rc = image_alloc(out, width, height, err);
    if (rc) return rc;
    int need_h = width != in->width || box[0] != 0 || box[2] != width;
    int need_v = height != in->height || box[1] != 0 || box[3] != height;
    if (!need_h && !need_v) {
        memcpy(out->data, in->data, (size_t)width * height * 3);
        return 0;
    }
    coeffs cv = {0}, ch = {0};
    uint8_t *tmp = NULL;
    if (coeffs_init(&cv, in->height, box[1], box[3], height, filter) ||
        (need_h && coeffs_init(&ch, in->width, box[0], box[2], width, filter))) {
        rc = cnet_fail(err, CNET_ENOMEM, "resize: out of memory");
        goto done;
    }
    /* Source rows the vertical pass reads. */
    int first = cv.bounds[0], last = cv.bounds[2 * height - 2] + cv.bounds[2 * height - 1];
    const uint8_t *src = in->data;
    int src_first = 0;
    if (need_h) {
        if (!(tmp = malloc((size_t)(last - first) * width * 3))) {
            rc = cnet_fail(err, CNET_ENOMEM, "resize: out of memory");
            goto done;
        }
        pass_horizontal(need_v ? tmp : out->data, width, in->data, in->width, first, last - first,
                        &ch);
        src = tmp;
        src_first = first;
    }
    if (need_v) pass_vertical(out->data, height, src, width, src_first, &cv);
done:
    if (rc) image_free(out);
    coeffs_free(&cv);
    coeffs_free(&ch);
    free(tmp);
    return rc;
}
