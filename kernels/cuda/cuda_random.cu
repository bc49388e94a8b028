/* Standard normal draws of the CUDA backend: the Philox4x32-10 stream and
 * Box-Muller normals of engine/core/philox.h, whose inline definitions this
 * file compiles for the device (the CPU backend compiles the same ones for
 * the host, kernels/cpu/random.c), so both give the same floats bit for bit.
 * One thread per block of 4 numbers. */
#include <stdint.h>

#include "engine/core/philox.h"
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

// out[n]: element i from block offset + i/4, lane i%4
__global__ void philox_normal_kernel(float *out, long n, uint64_t seed, uint64_t offset) {
    CU_FOR(b, (n + 3) / 4) {
        float z[4];
        philox_normal4(z, seed, offset + (uint64_t)b);
        for (int lane = 0; lane < 4 && 4 * b + lane < n; lane++) out[4 * b + lane] = z[lane];
    }
}

void cuda_philox_normal(cnet_backend *be, float *out, long n, uint64_t seed, uint64_t offset) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, philox_normal_kernel, (n + 3) / 4, out, n, seed, offset);
}
