/* "shuffle" (content shuffle): the picture's pixels moved along a smooth
 * random flow field, the extension's shuffle() (annotator/shuffle,
 * ContentShuffleDetector with f = 256) after resize_image_with_pad and
 * remove_pad:
 *   x = make_noise_disk(H, W, 1, 256) * (W - 1), then y likewise * (H - 1)
 *   make_noise_disk: uniform [0, 1) noise on a (H // 256 + 2) x
 *     (W // 256 + 2) grid, cv2.resize INTER_CUBIC to (W + 512) x (H + 512),
 *     the window [256, 256 + H) x [256, 256 + W), shifted to min 0, scaled
 *     to max 1
 *   cv2.remap(img, float32 flow, INTER_LINEAR): coordinates rounded to
 *     1/32 pixel, bilinear weights in 15-bit fixed point, outside pixels 0.
 * The noise is numpy's legacy generator as the extension seeds it
 * (np.random.seed(seed), A1111 giving (seed + subseed) & 0xffffffff): MT19937
 * seeded with init_genrand, each uniform from two draws (a >> 5, b >> 6) as
 * a 53-bit fraction; so a seed gives the extension's picture. */
#include <math.h>
#include <stdlib.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

/* The noise grid's cell size (ContentShuffleDetector's default f). */
#define SHUFFLE_CELL 256
/* cv2.remap's sub-pixel steps (INTER_BITS = 5) and weight precision. */
#define REMAP_BITS 5
#define REMAP_COEF_BITS 15
#define MT_N 624
#define MT_M 397

typedef struct mt19937 {
    uint32_t s[MT_N];
    int i;
} mt19937;

static void mt_seed(mt19937 *m, uint32_t seed) {
    m->s[0] = seed;
    for (int i = 1; i < MT_N; i++)
        m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + (uint32_t)i;
    m->i = MT_N;
}

static uint32_t mt_next(mt19937 *m) {
    if (m->i >= MT_N) {
        for (int k = 0; k < MT_N; k++) {
            const uint32_t y = (m->s[k] & 0x80000000u) | (m->s[(k + 1) % MT_N] & 0x7fffffffu);
            m->s[k] = m->s[(k + MT_M) % MT_N] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
        }
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* numpy's random_sample. */
static double mt_uniform(mt19937 *m) {
    const uint32_t a = mt_next(m) >> 5, b = mt_next(m) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

/* make_noise_disk(h, w, 1, SHUFFLE_CELL) * scale, as float32, into flow
 * (every second float from flow[0]). grid and disk are scratch. */
static int noise_disk(float *flow, double *grid, double *disk, int w, int h, double scale,
                      mt19937 *m, cnet_error *err) {
    const int gw = w / SHUFFLE_CELL + 2, gh = h / SHUFFLE_CELL + 2;
    for (int i = 0; i < gw * gh; i++) grid[i] = mt_uniform(m);
    cv_resize_cubic_f64(disk, w + 2 * SHUFFLE_CELL, h + 2 * SHUFFLE_CELL, SHUFFLE_CELL,
                        SHUFFLE_CELL, w, h, grid, gw, gh);
    const size_t n = (size_t)w * h;
    double lo = disk[0], hi;
    for (size_t i = 1; i < n; i++) lo = disk[i] < lo ? disk[i] : lo;
    for (size_t i = 0; i < n; i++) disk[i] -= lo;
    hi = disk[0];
    for (size_t i = 1; i < n; i++) hi = disk[i] > hi ? disk[i] : hi;
    if (!(hi > 0)) return cnet_fail(err, CNET_EINVAL, "shuffle: the noise field is flat");
    for (size_t i = 0; i < n; i++) flow[2 * i] = (float)(disk[i] / hi * scale);
    return 0;
}

/* cv2.remap(img, flow, None, INTER_LINEAR), BORDER_CONSTANT 0. */
static void remap_linear(image_rgb8 *out, const image_rgb8 *img, const float *flow) {
    const int w = img->width, h = img->height, one = 1 << REMAP_BITS;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t p = (size_t)y * w + x;
            const int X = (int)lrintf(flow[2 * p] * one), Y = (int)lrintf(flow[2 * p + 1] * one);
            const int sx = X >> REMAP_BITS, sy = Y >> REMAP_BITS;
            const int fx = X & (one - 1), fy = Y & (one - 1);
            const int wt[4] = {(one - fx) * (one - fy) * one, fx * (one - fy) * one,
                               (one - fx) * fy * one, fx * fy * one};
            for (int c = 0; c < 3; c++) {
                int v = 0;
                for (int k = 0; k < 4; k++) {
                    const int xx = sx + (k & 1), yy = sy + (k >> 1);
                    if (xx >= 0 && xx < w && yy >= 0 && yy < h)
                        v += img->data[((size_t)yy * w + xx) * 3 + c] * wt[k];
                }
                v = (v + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS;
                out->data[p * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
}

static int shuffle_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                       cnet_error *err) {
    image_rgb8 fit = {0}, img = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (!rc) rc = annotator_crop(&img, &fit, w, h, err);
    image_free(&fit);
    if (rc) return rc;
    const size_t n = (size_t)w * h;
    const int gw = w / SHUFFLE_CELL + 2, gh = h / SHUFFLE_CELL + 2;
    float *flow = malloc(sizeof *flow * n * 2);
    double *grid = malloc(sizeof *grid * (size_t)gw * gh);
    double *disk = malloc(sizeof *disk * n);
    mt19937 *m = malloc(sizeof *m);
    if (!flow || !grid || !disk || !m) rc = cnet_fail(err, CNET_ENOMEM, "shuffle: out of memory");
    if (!rc) {
        mt_seed(m, (uint32_t)args->seed);
        rc = noise_disk(flow, grid, disk, w, h, (double)(w - 1), m, err);
    }
    if (!rc) rc = noise_disk(flow + 1, grid, disk, w, h, (double)(h - 1), m, err);
    if (!rc) rc = image_alloc(out, w, h, err);
    if (!rc) remap_linear(out, &img, flow);
    free(flow), free(grid), free(disk), free(m);
    image_free(&img);
    return rc;
}

const annotator annotator_shuffle = {
    .name = "shuffle",
    .a1111_name = "shuffle",
    .help = "content shuffle: pixels moved along a random smooth flow (from the seed)",
    .takes_res = 1,
    .run = shuffle_run};
