/* Embeddings of the CUDA backend: the table lookup by int64 id (CLIP's token
 * and position embeddings) and diffusers' sinusoidal timestep embedding.
 *
 * The timestep embedding repeats the CPU backend's float32 steps one by one
 * (kernels/cpu/embedding.c explains why each rounding matters): the two
 * scalars come from the host exactly as the CPU computes them, the
 * exponent is a float32 multiply then divide, exp is the CPU's cpu_expf
 * compiled for the device, and the argument is rounded to float32 before
 * sin/cos. Only sinf/cosf differ (CUDA's, <= 2 ulp, vs glibc's).
 *
 * Sizes: M ids, D embedding width, B timesteps, dim output width. */
#include <math.h>

#include "kernels/common/vexp.h"
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

// out[M,D] = table[ids[m], :]
__global__ void embedding_kernel(float *out, const int64_t *ids, const float *table, int D,
                                 long n) {
    CU_FOR(i, n) out[i] = table[ids[i / D] * (long)D + i % D];
}

// out[B,dim]: [sin | cos] (or [cos | sin] when flip), a zero column when dim is odd
__global__ void timestep_embedding_kernel(float *out, const float *timesteps, int dim, int half,
                                          int flip, float neg_log_period, float denom, long n) {
    CU_FOR(i, n) {
        const long b = i / dim;
        const int j = (int)(i % dim);
        if (j >= 2 * half) {
            out[i] = 0.0f;
            continue;
        }
        const int k = j < half ? j : j - half;
        const int is_sin = (j < half) != (flip != 0);
        float exponent = __fmul_rn(neg_log_period, (float)k);
        exponent = __fdiv_rn(exponent, denom);
        const float arg = __fmul_rn(timesteps[b], cpu_expf(exponent));
        out[i] = is_sin ? sinf(arg) : cosf(arg);
    }
}

void cuda_embedding_forward(cnet_backend *be, float *out, const int64_t *ids, const float *table,
                            int M, int D) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)M * D;
    if (cu && n > 0) CU_LAUNCH(cu, embedding_kernel, n, out, ids, table, D, n);
}

void cuda_timestep_embedding(cnet_backend *be, float *out, const float *timesteps, int B, int dim,
                             int flip_sin_to_cos, float freq_shift, float max_period) {
    // out [B,dim], timesteps [B]
    cu_impl *cu = cu_enter(be);
    const long n = (long)B * dim;
    if (!cu || n <= 0) return;
    const int half_dim = dim / 2;
    const float neg_log_period = (float)(-log((double)max_period));
    const float denom = (float)((double)half_dim - (double)freq_shift);
    CU_LAUNCH(cu, timestep_embedding_kernel, n, out, timesteps, dim, half_dim, flip_sin_to_cos,
              neg_log_period, denom, n);
}
