/* What the tensor-core attention kernels share (cuda_attention_tc.cu, the
 * forward; cuda_attention_tc_bwd.cu, the backward): tile geometry, the
 * 16-bit rounding of staged operands, tile loads, the dynamic shared-memory
 * opt-in, and the dispatch over the padded head dim DP (a template argument:
 * the fragment arrays are sized by it). Internal to kernels/cuda. */
#ifndef CNET_CUDA_ATTENTION_TC_H
#define CNET_CUDA_ATTENTION_TC_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "kernels/cuda/cuda_internal.h"

enum {
    TC_ROWS = 64, /* rows a block owns (queries, or keys in dK/dV): TC_WARPS x 16 */
    TC_COLS = 64, /* rows of the other side per walked tile */
    TC_WARPS = 4,
    TC_THREADS = 128,
    TC_DMAX = 160, /* larger head dims run on the float32 kernels */
    TC_PAD16 = 8,  /* row padding of 16-bit tiles: ldm stays a multiple of 8 */
    TC_PADF = 4,   /* row padding of float tiles: ldm stays a multiple of 4 */
};

__host__ __device__ static inline size_t tc_align(size_t x) { return (x + 127) & ~(size_t)127; }
/* Bytes of a 16-bit [64][DP + pad] tile, a float [64][64 + pad] score tile,
 * a 16-bit [64][64 + pad] probability tile, a float [64][DP + pad]
 * accumulator; each 128-aligned. */
__host__ __device__ static inline size_t tc_tile16(int DP) {
    return tc_align((size_t)TC_ROWS * (DP + TC_PAD16) * 2);
}
__host__ __device__ static inline size_t tc_scores(void) {
    return tc_align((size_t)TC_ROWS * (TC_COLS + TC_PADF) * 4);
}
__host__ __device__ static inline size_t tc_probs(void) {
    return tc_align((size_t)TC_ROWS * (TC_COLS + TC_PAD16) * 2);
}
__host__ __device__ static inline size_t tc_accum(int DP) {
    return tc_align((size_t)TC_ROWS * (DP + TC_PADF) * 4);
}

template <typename T> __device__ inline T tc_narrow(float x);
template <> __device__ inline __nv_bfloat16 tc_narrow<__nv_bfloat16>(float x) {
    return __float2bfloat16(x);
}
template <> __device__ inline __half tc_narrow<__half>(float x) { return __float2half(x); }

/* dst[r][d] = X[r0 + r, d] as T for r < 64, d < DP; zero outside n x D. */
template <typename T, int DP>
__device__ inline void tc_load(T *dst, const float *X, int r0, int n, long HD, int D) {
    for (int idx = threadIdx.x; idx < TC_ROWS * DP; idx += TC_THREADS) {
        const int r = idx / DP, d = idx % DP;
        const float x = (r0 + r < n && d < D) ? X[(long)(r0 + r) * HD + d] : 0.0f;
        dst[r * (DP + TC_PAD16) + d] = tc_narrow<T>(x);
    }
}

namespace wmma = nvcuda::wmma;

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> tc_frag_acc;

/* out[16][64] (float, ld TC_COLS + TC_PADF) = A[16][DP] (fragments af) times
 * the transpose of the walked tile W[64][DP] (16-bit, ld DP + TC_PAD16). */
template <typename T, int DP>
__device__ inline void
tc_times_transposed(float *out,
                    const wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> *af,
                    const T *W) {
    const int ld16 = DP + TC_PAD16;
#pragma unroll
    for (int n = 0; n < TC_COLS / 16; n++) {
        tc_frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < DP / 16; kk++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> wf;
            wmma::load_matrix_sync(wf, W + n * 16 * ld16 + kk * 16, ld16);
            wmma::mma_sync(acc, af[kk], wf, acc);
        }
        wmma::store_matrix_sync(out + n * 16, acc, TC_COLS + TC_PADF, wmma::mem_row_major);
    }
}

/* acc[16][DP] (float, ld DP + TC_PADF) += P[16][64] (16-bit, ld TC_COLS +
 * TC_PAD16) times the walked tile W[64][DP]. */
template <typename T, int DP>
__device__ inline void tc_accumulate(float *acc, const T *P, const T *W) {
    const int ld16 = DP + TC_PAD16, ldo = DP + TC_PADF, ldp = TC_COLS + TC_PAD16;
#pragma unroll
    for (int c = 0; c < DP / 16; c++) {
        tc_frag_acc f;
        wmma::load_matrix_sync(f, acc + c * 16, ldo, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < TC_COLS / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> wf;
            wmma::load_matrix_sync(pf, P + kk * 16, ldp);
            wmma::load_matrix_sync(wf, W + kk * 16 * ld16 + c * 16, ld16);
            wmma::mma_sync(f, pf, wf, f);
        }
        wmma::store_matrix_sync(acc + c * 16, f, ldo, wmma::mem_row_major);
    }
}

/* Lets kernel use `bytes` of dynamic shared memory: 1 when it may, 0 when
 * the device has less (nothing to launch), -1 on a recorded failure. */
template <typename K> static int tc_smem_optin(cu_impl *cu, K kernel, size_t bytes) {
    int optin = 0;
    if (CU_CHECK(cu, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                            cu->device)))
        return -1;
    if (bytes > (size_t)optin) return 0;
    if (CU_CHECK(cu, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)bytes)))
        return -1;
    return 1;
}

/* switch over the padded head dim of D: CASE(DP) for DP = 16..160 */
#define TC_DISPATCH_DP(D, CASE)                                                                    \
    switch (((D) + 15) / 16 * 16) {                                                                \
        CASE(16);                                                                                  \
        CASE(32);                                                                                  \
        CASE(48);                                                                                  \
        CASE(64);                                                                                  \
        CASE(80);                                                                                  \
        CASE(96);                                                                                  \
        CASE(112);                                                                                 \
        CASE(128);                                                                                 \
        CASE(144);                                                                                 \
        CASE(160);                                                                                 \
    }

#endif
