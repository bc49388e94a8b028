/* cv2.Canny(image, low, high) with apertureSize 3 and the L1 gradient, see
 * canny.h for the definition followed (OpenCV imgproc/src/canny.cpp).
 *
 * OpenCV marks strong pixels while it scans and sometimes leaves one as a
 * candidate when its left or upper neighbour is already an edge, letting
 * the hysteresis reach it instead; the final edges are the same as marking
 * every strong pixel, which is what this does.
 *
 * Sizes: src [H, W, C]; dx, dy [H, W] (of the strongest channel); mag and
 * map [H+2, W+2], a border of zero magnitude and of "not an edge"; stack
 * [H*W] map indices (each pixel is pushed at most once). */
#include "engine/image/canny.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* tan(22.5 deg) in CANNY_SHIFT-bit fixed point, OpenCV's constant. */
#define CANNY_SHIFT 15
#define CANNY_TG22 ((int)(0.4142135623730950488016887242097 * (1 << CANNY_SHIFT) + 0.5))
/* |dx| + |dy| of a 3x3 Sobel on uint8 is at most 2040: thresholds are
 * clamped to [-1, CANNY_MAX_THRESHOLD] without changing any result. */
#define CANNY_MAX_THRESHOLD 4096

enum { MAP_EDGE_CANDIDATE = 0, MAP_NOT_EDGE = 1, MAP_EDGE = 2 };

static int clamp_threshold(double t) {
    double f = floor(t);
    return f < -1 ? -1 : f > CANNY_MAX_THRESHOLD ? CANNY_MAX_THRESHOLD : (int)f;
}

/* 3x3 Sobel with replicated borders; per pixel the channel of largest
 * |dx| + |dy| (first on ties). mag is the padded [H+2, W+2] array. */
static void gradients(int16_t *dx, int16_t *dy, int32_t *mag, const uint8_t *src, int W, int H,
                      int C) {
    for (int y = 0; y < H; y++) {
        const uint8_t *up = src + (size_t)(y > 0 ? y - 1 : 0) * W * C;
        const uint8_t *mid = src + (size_t)y * W * C;
        const uint8_t *down = src + (size_t)(y < H - 1 ? y + 1 : H - 1) * W * C;
        for (int x = 0; x < W; x++) {
            int l = (x > 0 ? x - 1 : 0) * C, r = (x < W - 1 ? x + 1 : W - 1) * C, c0 = x * C;
            int best = -1, bx = 0, by = 0;
            for (int c = 0; c < C; c++) {
                int gx = (up[r + c] - up[l + c]) + 2 * (mid[r + c] - mid[l + c]) +
                         (down[r + c] - down[l + c]);
                int gy = (down[l + c] + 2 * down[c0 + c] + down[r + c]) -
                         (up[l + c] + 2 * up[c0 + c] + up[r + c]);
                int m = abs(gx) + abs(gy);
                if (m > best) best = m, bx = gx, by = gy;
            }
            dx[(size_t)y * W + x] = (int16_t)bx;
            dy[(size_t)y * W + x] = (int16_t)by;
            mag[(size_t)(y + 1) * (W + 2) + x + 1] = best;
        }
    }
}

/* Non-maximum suppression and the two thresholds: fills map, pushes the
 * strong pixels; returns the stack height. */
static size_t suppress(uint8_t *map, int32_t *stack, const int32_t *mag, const int16_t *dx,
                       const int16_t *dy, int W, int H, int low, int high) {
    size_t n = 0, step = (size_t)W + 2;
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)(y + 1) * step + x + 1;
            int m = mag[i], keep = 0;
            if (m > low) {
                int xs = dx[(size_t)y * W + x], ys = dy[(size_t)y * W + x];
                int ax = abs(xs), ay = abs(ys) << CANNY_SHIFT, tg22x = ax * CANNY_TG22;
                if (ay < tg22x) { /* mostly horizontal gradient: left/right */
                    keep = m > mag[i - 1] && m >= mag[i + 1];
                } else if (ay > tg22x + (ax << (CANNY_SHIFT + 1))) { /* vertical: up/down */
                    keep = m > mag[i - step] && m >= mag[i + step];
                } else { /* diagonal: the corners along the gradient's sign */
                    int s = (xs ^ ys) < 0 ? -1 : 1;
                    keep = m > mag[i - step - s] && m > mag[i + step + s];
                }
            }
            if (!keep) {
                map[i] = MAP_NOT_EDGE;
            } else if (m > high) {
                map[i] = MAP_EDGE;
                stack[n++] = (int32_t)i;
            } else {
                map[i] = MAP_EDGE_CANDIDATE;
            }
        }
    }
    return n;
}

/* Hysteresis: candidates 8-connected to an edge become edges. */
static void track(uint8_t *map, int32_t *stack, size_t n, int W) {
    const long step = W + 2;
    const long nb[8] = {-1, 1, -step - 1, -step, -step + 1, step - 1, step, step + 1};
    while (n > 0) {
        long i = stack[--n];
        for (int k = 0; k < 8; k++)
            if (map[i + nb[k]] == MAP_EDGE_CANDIDATE) {
                map[i + nb[k]] = MAP_EDGE;
                stack[n++] = (int32_t)(i + nb[k]);
            }
    }
}

int canny_edges(uint8_t *edges, const uint8_t *src, int width, int height, int channels, double low,
                double high, cnet_error *err) {
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4)
        return cnet_fail(err, CNET_EINVAL, "canny: bad image %dx%dx%d", width, height, channels);
    if (isnan(low) || isnan(high))
        return cnet_fail(err, CNET_EINVAL, "canny: thresholds must be numbers");
    if (low > high) {
        double t = low;
        low = high;
        high = t;
    }
    size_t n = (size_t)width * height, padded = (size_t)(width + 2) * (height + 2);
    int16_t *dx = malloc(n * sizeof *dx), *dy = malloc(n * sizeof *dy);
    int32_t *mag = calloc(padded, sizeof *mag), *stack = malloc(n * sizeof *stack);
    uint8_t *map = malloc(padded);
    int rc = 0;
    if (!dx || !dy || !mag || !stack || !map) {
        rc = cnet_fail(err, CNET_ENOMEM, "canny: out of memory for %dx%d", width, height);
    } else {
        memset(map, MAP_NOT_EDGE, padded);
        gradients(dx, dy, mag, src, width, height, channels);
        size_t top = suppress(map, stack, mag, dx, dy, width, height, clamp_threshold(low),
                              clamp_threshold(high));
        track(map, stack, top, width);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                edges[(size_t)y * width + x] =
                    map[(size_t)(y + 1) * (width + 2) + x + 1] == MAP_EDGE ? 255 : 0;
    }
    free(dx);
    free(dy);
    free(mag);
    free(stack);
    free(map);
    return rc;
}

int canny_rgb8(image_rgb8 *out, const image_rgb8 *in, double low, double high, cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (!in->data) return cnet_fail(err, CNET_EINVAL, "canny: empty image");
    uint8_t *edges = malloc((size_t)in->width * in->height);
    if (!edges) return cnet_fail(err, CNET_ENOMEM, "canny: out of memory");
    int rc = canny_edges(edges, in->data, in->width, in->height, 3, low, high, err);
    if (!rc) rc = image_alloc(out, in->width, in->height, err);
    if (!rc)
        for (size_t i = 0; i < (size_t)in->width * in->height; i++)
            out->data[3 * i] = out->data[3 * i + 1] = out->data[3 * i + 2] = edges[i];
    free(edges);
    return rc;
}
