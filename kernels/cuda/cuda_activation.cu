/* Elementwise activations of the CUDA backend: SiLU, exact (erf) GELU,
 * diffusers' GEGLU and CLIP's quick_gelu, forward and backward (quick_gelu
 * forward only). exp is the CPU backend's cpu_expf compiled for the device
 * (kernels/common/vexp.h), erf is CUDA's erff (<= 2 ulp). Reference:
 * kernels/cpu/activation.c, same formulas.
 *
 * Sizes: n elements; GEGLU rows M of 2F inputs and F outputs. */
#include <math.h>

#include "kernels/common/vexp.h"
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

#define GELU_INV_SQRT2 0.70710678118654752440f
#define GELU_INV_SQRT_2PI 0.39894228040143267794f
#define QUICK_GELU_ALPHA 1.702f

__device__ static inline float gelu(float x) {
    return 0.5f * x * (1.0f + erff(x * GELU_INV_SQRT2));
}

// Phi(x) + x * phi(x)
__device__ static inline float gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * GELU_INV_SQRT2));
    return cdf + x * GELU_INV_SQRT_2PI * cpu_expf(-0.5f * x * x);
}

__global__ void silu_kernel(float *out, const float *inp, long n) {
    CU_FOR(i, n) out[i] = inp[i] / (1.0f + cpu_expf(-inp[i]));
}

__global__ void silu_backward_kernel(float *dinp, const float *dout, const float *inp, long n) {
    CU_FOR(i, n) {
        const float s = 1.0f / (1.0f + cpu_expf(-inp[i]));
        dinp[i] = dout[i] * s * (1.0f + inp[i] * (1.0f - s));
    }
}

__global__ void gelu_kernel(float *out, const float *inp, long n) {
    CU_FOR(i, n) out[i] = gelu(inp[i]);
}

__global__ void gelu_backward_kernel(float *dinp, const float *dout, const float *inp, long n) {
    CU_FOR(i, n) dinp[i] = dout[i] * gelu_grad(inp[i]);
}

// out[M,F] = h * gelu(gate), inp[M,2F] = [h | gate]
__global__ void geglu_kernel(float *out, const float *inp, int F, long n) {
    CU_FOR(i, n) {
        const long m = i / F, f = i % F;
        out[i] = inp[2 * m * F + f] * gelu(inp[2 * m * F + F + f]);
    }
}

__global__ void geglu_backward_kernel(float *dinp, const float *dout, const float *inp, int F,
                                      long n) {
    CU_FOR(i, n) {
        const long m = i / F, f = i % F;
        const float h = inp[2 * m * F + f], gate = inp[2 * m * F + F + f];
        dinp[2 * m * F + f] = dout[i] * gelu(gate);
        dinp[2 * m * F + F + f] = dout[i] * h * gelu_grad(gate);
    }
}

__global__ void quick_gelu_kernel(float *out, const float *inp, long n) {
    CU_FOR(i, n) out[i] = inp[i] / (1.0f + cpu_expf(-QUICK_GELU_ALPHA * inp[i]));
}

void cuda_silu_forward(cnet_backend *be, float *out, const float *inp, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, silu_kernel, n, out, inp, n);
}

void cuda_silu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp,
                        long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, silu_backward_kernel, n, dinp, dout, inp, n);
}

void cuda_gelu_forward(cnet_backend *be, float *out, const float *inp, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, gelu_kernel, n, out, inp, n);
}

void cuda_gelu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp,
                        long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, gelu_backward_kernel, n, dinp, dout, inp, n);
}

void cuda_geglu_forward(cnet_backend *be, float *out, const float *inp, int M, int F) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)M * F;
    if (cu && n > 0) CU_LAUNCH(cu, geglu_kernel, n, out, inp, F, n);
}

void cuda_geglu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, int M,
                         int F) {
    cu_impl *cu = cu_enter(be);
    const long n = (long)M * F;
    if (cu && n > 0) CU_LAUNCH(cu, geglu_backward_kernel, n, dinp, dout, inp, F, n);
}

void cuda_quick_gelu_forward(cnet_backend *be, float *out, const float *inp, long n) {
    cu_impl *cu = cu_enter(be);
    if (cu && n > 0) CU_LAUNCH(cu, quick_gelu_kernel, n, out, inp, n);
}
