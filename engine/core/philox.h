/* Philox4x32-10 counter-based RNG (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC'11; the Random123 reference constants).
 *
 * The stream cnet uses everywhere (CPU and CUDA compute it identically):
 *   key     = { lo32(seed), hi32(seed) }
 *   block j = philox4x32_10({ lo32(j), hi32(j), 0, 0 }, key) -> x0..x3
 *   element i of a draw at `offset` comes from block offset + i/4, lane i%4.
 * Normals: Box-Muller in double precision, rounded to float, on lane pairs
 *   u1 = (x0 + 1) * 2^-32 in (0, 1],  u2 = x1 * 2^-32 in [0, 1)
 *   z0 = sqrt(-2 ln u1) cos(2 pi u2),  z1 = sqrt(-2 ln u1) sin(2 pi u2)
 *   (and likewise z2, z3 from x2, x3). Double precision keeps CPU and GPU
 *   results equal after rounding: the double log/sqrt/cos/sin of CUDA and
 *   glibc agree to within an ulp of double, far below the float rounding.
 *
 * The one definition of the generator and of the normals for host and
 * device: the inline functions below are __host__ __device__ when nvcc
 * compiles them (kernels/cuda/cuda_random.cu), plain C11 otherwise (as
 * engine/core/adam8.h does). philox.c holds the host-only loops. */
#ifndef CNET_PHILOX_H
#define CNET_PHILOX_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PHILOX_HD __host__ __device__
#else
#define PHILOX_HD
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

#ifdef __cplusplus
extern "C" {
#endif

static inline PHILOX_HD void philox4x32_10(uint32_t out[4], const uint32_t counter[4],
                                           const uint32_t key[2]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        const uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* The 4 words of block j of the stream for seed. */
static inline PHILOX_HD void philox_block(uint32_t x[4], uint64_t seed, uint64_t block) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
    philox4x32_10(x, ctr, key);
}

/* The 4 normals of block j for seed. */
static inline PHILOX_HD void philox_normal4(float out[4], uint64_t seed, uint64_t block) {
    uint32_t x[4];
    philox_block(x, seed, block);
    const double two_pi = 6.283185307179586476925286766559;
    const double inv_2_32 = 1.0 / 4294967296.0;
    for (int pair = 0; pair < 2; pair++) {
        const double u1 = ((double)x[2 * pair] + 1.0) * inv_2_32;
        const double u2 = (double)x[2 * pair + 1] * inv_2_32;
        const double r = sqrt(-2.0 * log(u1));
        out[2 * pair] = (float)(r * cos(two_pi * u2));
        out[2 * pair + 1] = (float)(r * sin(two_pi * u2));
    }
}

/* n normals starting at block `offset` (host memory). */
void philox_normal_fill(float *out, long n, uint64_t seed, uint64_t offset);

/* A uniform 32-bit integer: lane 0 of block j (host-side draws such as
 * timesteps and dataset shuffles). */
uint32_t philox_u32(uint64_t seed, uint64_t block);

#ifdef __cplusplus
}
#endif

#endif
