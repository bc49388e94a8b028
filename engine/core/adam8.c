/* The 8-bit optimiser state format; see adam8.h. */
#include "engine/core/adam8.h"

#include <stdlib.h>

/* Decades of the dynamic map (bnb's max_exponent_bits): 1e-6 .. 1. */
#define ADAM8_DECADES 7

/* torch.linspace(start, end, steps)[i] in float32 by ATen's scalar rule:
 * the first half counts up from start, the second half down from end. */
static float linspace_at(float start, float end, int steps, int i) {
    const float step = (end - start) / (float)(steps - 1);
    return i < steps / 2 ? start + step * (float)i : end - step * (float)(steps - 1 - i);
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void adam8_dynamic_map(float *map, int is_signed) {
    int n = 0;
    for (int e = 0; e < ADAM8_DECADES; e++) {
        /* 2^e (signed) or 2^(e+1) (unsigned) midpoints of linspace(0.1, 1)
         * in the decade 10^(e-6), with their negatives when signed. */
        const int steps = (is_signed ? 1 << e : 1 << (e + 1)) + 1;
        const float scale = (float)pow(10.0, e - (ADAM8_DECADES - 1));
        for (int k = 0; k + 1 < steps; k++) {
            const float mean =
                (linspace_at(0.1f, 1.0f, steps, k) + linspace_at(0.1f, 1.0f, steps, k + 1)) / 2.0f;
            map[n++] = scale * mean;
            if (is_signed) map[n++] = -scale * mean;
        }
    }
    map[n++] = 0.0f;
    map[n++] = 1.0f;
    qsort(map, ADAM8_MAP_SIZE, sizeof *map, cmp_float);
}

void adam8_quantize_block(uint8_t *codes, float *absmax, const float *x, int n, const float *map,
                          int keep_sign) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    for (int i = 0; i < n; i++) codes[i] = adam8_code(map, x[i], amax, keep_sign);
    *absmax = amax;
}

void adam8_dequantize_block(float *x, const uint8_t *codes, float absmax, int n, const float *map) {
    for (int i = 0; i < n; i++) x[i] = map[codes[i]] * absmax;
}
