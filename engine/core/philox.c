/* Philox4x32-10 and the Box-Muller normals built on it; see philox.h. */
#include "engine/core/philox.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(uint32_t out[4], const uint32_t counter[4], const uint32_t key[2]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void philox_block(uint32_t x[4], uint64_t seed, uint64_t block) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
    philox4x32_10(x, ctr, key);
}

void philox_normal4(float out[4], uint64_t seed, uint64_t block) {
    uint32_t x[4];
    philox_block(x, seed, block);
    const double two_pi = 6.283185307179586476925286766559;
    const double inv_2_32 = 1.0 / 4294967296.0;
    for (int pair = 0; pair < 2; pair++) {
        double u1 = ((double)x[2 * pair] + 1.0) * inv_2_32;
        double u2 = (double)x[2 * pair + 1] * inv_2_32;
        double r = sqrt(-2.0 * log(u1));
        out[2 * pair] = (float)(r * cos(two_pi * u2));
        out[2 * pair + 1] = (float)(r * sin(two_pi * u2));
    }
}

void philox_normal_fill(float *out, long n, uint64_t seed, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long b = 0; b < (n + 3) / 4; b++) {
        float z[4];
        philox_normal4(z, seed, offset + (uint64_t)b);
        for (int lane = 0; lane < 4 && 4 * b + lane < n; lane++) out[4 * b + lane] = z[lane];
    }
}

uint32_t philox_u32(uint64_t seed, uint64_t block) {
    uint32_t x[4];
    philox_block(x, seed, block);
    return x[0];
}
