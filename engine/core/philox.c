/* The host-side loops over the Philox4x32-10 stream; the generator and the
 * normals themselves are defined once, for host and device, in philox.h. */
#include "engine/core/philox.h"

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
