/* Products with a 16-bit stored weight on the CUDA backend (engine/core/backend.h,
 * "products with a 16-bit stored weight"), and the float32 <-> 16-bit
 * conversions the backend's 16-bit paths share.
 *
 * When the backend's precision is the weight's type (bf16 weights under
 * --mixed_precision bf16, f16 under fp16) the stored weight goes to cuBLAS
 * as it is: the activation is rounded to the same type into scratch and the
 * product runs with 16-bit inputs, float32 accumulation and float32 output,
 * which is what the float32 twin computes at that precision (_FAST_16BF
 * rounds both inputs the same way) without widening the weight. Any other
 * combination widens the weight into scratch and runs the float32 twin. The
 * convolutions are in cuda_conv.cu (they share its cuDNN machinery).
 * Reference: kernels/cpu/weights16.c. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

// dst[n] = src rounded to bf16 / f16 (nearest even)
__global__ void narrow_bf16_kernel(__nv_bfloat16 *dst, const float *src, long n) {
    CU_FOR(i, n)
    dst[i] = __float2bfloat16(src[i]);
}
__global__ void narrow_f16_kernel(__half *dst, const float *src, long n) {
    CU_FOR(i, n)
    dst[i] = __float2half(src[i]);
}

// dst[n] = src widened to float (exact)
__global__ void widen_bf16_kernel(float *dst, const __nv_bfloat16 *src, long n) {
    CU_FOR(i, n)
    dst[i] = __bfloat162float(src[i]);
}
__global__ void widen_f16_kernel(float *dst, const __half *src, long n) {
    CU_FOR(i, n)
    dst[i] = __half2float(src[i]);
}

int cu_precision_matches(const cu_impl *cu, cnet_dtype wdtype) {
    return (cu->prec == CNET_PREC_BF16 && wdtype == CNET_BF16) ||
           (cu->prec == CNET_PREC_F16 && wdtype == CNET_F16);
}

/* src[n] rounded to dtype (CNET_BF16 / CNET_F16) in scratch slot; NULL on a
 * recorded failure. */
static const uint16_t *cu_narrow16(cu_impl *cu, int slot, const float *src, cnet_dtype dtype,
                                   long n) {
    uint16_t *dst = (uint16_t *)cu_scratch(cu, slot, (size_t)(n > 0 ? n : 1) * sizeof(uint16_t));
    if (!dst) return NULL;
    if (dtype == CNET_BF16)
        CU_LAUNCH(cu, narrow_bf16_kernel, n, (__nv_bfloat16 *)dst, src, n);
    else
        CU_LAUNCH(cu, narrow_f16_kernel, n, (__half *)dst, src, n);
    return cu->failed ? NULL : dst;
}

const float *cu_widen16(cu_impl *cu, const uint16_t *src, cnet_dtype dtype, long n) {
    float *dst = (float *)cu_scratch(cu, CU_SLOT_W32, (size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!dst) return NULL;
    if (dtype == CNET_BF16)
        CU_LAUNCH(cu, widen_bf16_kernel, n, dst, (const __nv_bfloat16 *)src, n);
    else
        CU_LAUNCH(cu, widen_f16_kernel, n, dst, (const __half *)src, n);
    return cu->failed ? NULL : dst;
}

static cudaDataType_t cuda_type(cnet_dtype dtype) {
    return dtype == CNET_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

void cuda_linear_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                             cnet_dtype wdtype, const float *bias, int M, int K, int N) {
    // out [M,N], inp [M,K], weight [N,K] in wdtype, bias [N]
    cu_impl *cu = cu_enter(be);
    if (!cu || M <= 0 || N <= 0) return;
    if (K > 0 && cu_precision_matches(cu, wdtype)) {
        const uint16_t *x = cu_narrow16(cu, CU_SLOT_X16, inp, wdtype, (long)M * K);
        if (x)
            cu_gemm_ex(cu, out, x, weight, cuda_type(wdtype), CUBLAS_COMPUTE_32F, M, N, K, 0, 1,
                       1.0f, 0.0f);
        if (bias && !cu->failed) cu_add_bias_rows(cu, out, bias, M, N);
        return;
    }
    const float *w = cu_widen16(cu, weight, wdtype, (long)N * K);
    if (w) cuda_linear_forward(be, out, inp, w, bias, M, K, N);
}

void cuda_linear_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                   const uint16_t *weight, cnet_dtype wdtype, int M, int K, int N) {
    // dinp [M,K] (=) = dout [M,N] @ weight [N,K] (wdtype)
    cu_impl *cu = cu_enter(be);
    if (!cu || M <= 0 || K <= 0) return;
    if (N > 0 && cu_precision_matches(cu, wdtype)) {
        const uint16_t *dy = cu_narrow16(cu, CU_SLOT_X16, dout, wdtype, (long)M * N);
        if (dy)
            cu_gemm_ex(cu, dinp, dy, weight, cuda_type(wdtype), CUBLAS_COMPUTE_32F, M, K, N, 0, 0,
                       1.0f, 0.0f);
        return;
    }
    const float *w = cu_widen16(cu, weight, wdtype, (long)N * K);
    if (w) cuda_linear_backward(be, dinp, NULL, NULL, dout, NULL, w, M, K, N);
}
