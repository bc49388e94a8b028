/* Standard normal draws of the CUDA backend: the Philox4x32-10 stream of
 * engine/core/philox.h, bit for bit. One thread per block of 4 numbers: the same
 * counter/key layout (key = seed halves, counter = {lo(j), hi(j), 0, 0}),
 * the same round constants, Box-Muller in double on lane pairs, rounded to
 * float. The double log/sqrt/cos/sin of CUDA and glibc agree to within an
 * ulp of double, far below the float rounding (a mismatch needs a result
 * within ~1e-16 relative of a float rounding boundary). Reference:
 * engine/core/philox.c. */
#include <stdint.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

__device__ static void philox4x32_10(uint32_t x[4], uint64_t seed, uint64_t block) {
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        const uint32_t hi0 = __umulhi(PHILOX_M0, c0), lo0 = PHILOX_M0 * c0;
        const uint32_t hi1 = __umulhi(PHILOX_M1, c2), lo1 = PHILOX_M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    x[0] = c0, x[1] = c1, x[2] = c2, x[3] = c3;
}

// out[n]: element i from block offset + i/4, lane i%4
__global__ void philox_normal_kernel(float *out, long n, uint64_t seed, uint64_t offset) {
    const double two_pi = 6.283185307179586476925286766559;
    const double inv_2_32 = 1.0 / 4294967296.0;
    CU_FOR(b, (n + 3) / 4) {
        uint32_t x[4];
        philox4x32_10(x, seed, offset + (uint64_t)b);
        float z[4];
        for (int pair = 0; pair < 2; pair++) {
            const double u1 = ((double)x[2 * pair] + 1.0) * inv_2_32;
            const double u2 = (double)x[2 * pair + 1] * inv_2_32;
            const double r = sqrt(-2.0 * log(u1));
            z[2 * pair] = (float)(r * cos(two_pi * u2));
            z[2 * pair + 1] = (float)(r * sin(two_pi * u2));
        }
        for (int lane = 0; lane < 4 && 4 * b + lane < n; lane++) out[4 * b + lane] = z[lane];
    }
}

void cuda_philox_normal(cnet_backend *be, float *out, long n, uint64_t seed, uint64_t offset) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, philox_normal_kernel, (n + 3) / 4, out, n, seed, offset);
}
