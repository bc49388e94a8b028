/* Matrix products of the CUDA backend: gemm, batched gemm and the linear
 * layer (forward with the bias fused as a cuBLASLt epilogue, backward), plus
 * the column sums behind every bias gradient.
 *
 * Row-major products map onto column-major cuBLAS by computing the
 * transpose: C^T[N,M] = op(B)^T op(A)^T, so A and B swap places and keep
 * their transpose flags. Storage is float32; the compute type follows the
 * backend's precision (cu_compute_type): CUBLAS_COMPUTE_32F by default,
 * _FAST_TF32 when TF32 was allowed, _FAST_16BF / _FAST_16F under
 * --mixed_precision bf16 / fp16 (inputs rounded to 16 bits inside the
 * library, float32 accumulation and output). Bias gradients are our own two-stage column sum in
 * double (fixed chunking: deterministic, as the CPU backend's). Reference: kernels/cpu/linalg.c,
 * torch.nn.functional.linear.
 *
 * Size legend: M rows, K reduction size, N output columns. */
#include <stdint.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

/* Rows each block of the column-sum first stage covers. */
#define COLSUM_ROWS 1024

static int imax(int a, int b) { return a > b ? a : b; }

// C[i] *= beta (beta == 0 writes zeros, as BLAS does, even over NaN)
__global__ void scale_or_zero_kernel(float *C, long n, float beta) {
    CU_FOR(i, n)
    C[i] = beta == 0.0f ? 0.0f : beta * C[i];
}

/* C = alpha op(A) op(B) + beta C, row-major. */
static void cu_sgemm(cu_impl *cu, float *C, const float *A, const float *B, int M, int N, int K,
                     int trans_a, int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* an empty sum: C = beta C */
        scale_or_zero_kernel<<<cu_blocks(cu, (long)M * N), CU_THREADS, 0, cu->stream>>>(
            C, (long)M * N, beta);
        CU_LAUNCHED(cu, "scale_or_zero_kernel");
        return;
    }
    cu_gemm_ex(cu, C, A, B, CUDA_R_32F, cu_compute_type(cu), M, N, K, trans_a, trans_b, alpha,
               beta);
}

void cu_gemm_ex(cu_impl *cu, float *C, const void *A, const void *B, cudaDataType_t ab_type,
                cublasComputeType_t ct, int M, int N, int K, int trans_a, int trans_b, float alpha,
                float beta) {
    int lda = imax(1, trans_a ? M : K), ldb = imax(1, trans_b ? K : N);
    CUBLAS_CHECK(cu,
                 cublasGemmEx(cu->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                              trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ab_type, ldb,
                              A, ab_type, lda, &beta, C, CUDA_R_32F, N, ct, CUBLAS_GEMM_DEFAULT));
}

void cuda_gemm(cnet_backend *be, float *C, const float *A, const float *B, int M, int N, int K,
               int trans_a, int trans_b, float alpha, float beta) {
    cu_impl *cu = cu_enter(be);
    if (cu) cu_sgemm(cu, C, A, B, M, N, K, trans_a, trans_b, alpha, beta);
}

void cuda_gemm_batched(cnet_backend *be, float *C, const float *A, const float *B, int batch, int M,
                       int N, int K, int trans_a, int trans_b, float alpha, float beta,
                       long stride_a, long stride_b, long stride_c) {
    cu_impl *cu = cu_enter(be);
    if (!cu || M <= 0 || N <= 0 || batch <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < batch; i++)
            cu_sgemm(cu, C + i * stride_c, A, B, M, N, 0, 0, 0, alpha, beta);
        return;
    }
    int lda = imax(1, trans_a ? M : K), ldb = imax(1, trans_b ? K : N);
    CUBLAS_CHECK(cu, cublasGemmStridedBatchedEx(cu->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                                &alpha, B, CUDA_R_32F, ldb, stride_b, A, CUDA_R_32F,
                                                lda, stride_a, &beta, C, CUDA_R_32F, N, stride_c,
                                                batch, cu_compute_type(cu), CUBLAS_GEMM_DEFAULT));
}

// out[M,N] += bias[N]
__global__ void add_bias_rows_kernel(float *out, const float *bias, long n, int N) {
    CU_FOR(i, n)
    out[i] += bias[i % N];
}

void cu_add_bias_rows(cu_impl *cu, float *out, const float *bias, long M, int N) {
    if (M <= 0 || N <= 0) return;
    add_bias_rows_kernel<<<cu_blocks(cu, M * N), CU_THREADS, 0, cu->stream>>>(out, bias, M * N, N);
    CU_LAUNCHED(cu, "add_bias_rows_kernel");
}

// part[chunk, N] = sums of x[M,N] over rows chunk*COLSUM_ROWS.. (+COLSUM_ROWS); block (32, 8)
__global__ void colsum_partial_kernel(double *part, const float *x, long M, int N) {
    __shared__ double acc[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const long r0 = (long)blockIdx.y * COLSUM_ROWS;
    const long r1 = r0 + COLSUM_ROWS < M ? r0 + COLSUM_ROWS : M;
    double s = 0;
    if (c < N)
        for (long r = r0 + threadIdx.y; r < r1; r += 8) s += x[r * N + c];
    acc[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < N) {
        double t = 0;
        for (int k = 0; k < 8; k++) t += acc[k][threadIdx.x];
        part[(long)blockIdx.y * N + c] = t;
    }
}

// out[c] (+)= sum over chunks of part[chunk, c], in chunk order
__global__ void colsum_finish_kernel(float *out, const double *part, int nchunk, int N,
                                     int accumulate) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= N) return;
    double s = 0;
    for (int k = 0; k < nchunk; k++) s += part[(long)k * N + c];
    out[c] = accumulate ? out[c] + (float)s : (float)s;
}

void cu_colsum(cu_impl *cu, float *out, const float *x, long M, int N, int accumulate) {
    if (N <= 0) return;
    if (M <= 0) {
        if (!accumulate)
            CU_CHECK(cu, cudaMemsetAsync(out, 0, (size_t)N * sizeof(float), cu->stream));
        return;
    }
    const int nchunk = (int)((M + COLSUM_ROWS - 1) / COLSUM_ROWS);
    double *part = (double *)cu_scratch(cu, CU_SLOT_RED, (size_t)nchunk * N * sizeof(double));
    if (!part) return;
    colsum_partial_kernel<<<dim3((N + 31) / 32, nchunk), dim3(32, 8), 0, cu->stream>>>(part, x, M,
                                                                                       N);
    colsum_finish_kernel<<<(N + CU_THREADS - 1) / CU_THREADS, CU_THREADS, 0, cu->stream>>>(
        out, part, nchunk, N, accumulate);
    CU_LAUNCHED(cu, "colsum kernels");
}

/* Largest power of two (<= 256) dividing the address: what cuBLASLt may
 * assume about a pointer. */
static uint32_t ptr_alignment(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 4 && (a & (al - 1))) al >>= 1;
    return al;
}

/* out = inp @ weight^T + bias as one cuBLASLt call with the BIAS epilogue.
 * Returns 0 when done, 1 when cuBLASLt offers no algorithm for this case
 * (the caller then takes the plain path), -1 on a recorded failure. */
static int linear_lt(cu_impl *cu, float *out, const float *inp, const float *weight,
                     const float *bias, int M, int K, int N) {
    if (ptr_alignment(bias) < 16) return 1;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    int rc = 1;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
    const size_t ws = CU_LT_WORKSPACE_BYTES;
    const uint32_t al_a = ptr_alignment(weight), al_b = ptr_alignment(inp),
                   al_c = ptr_alignment(out);
    // column-major view: D[N,M] = op(A)[N,K] @ B[K,M] + bias[N], A stored [K,N] (weight)
    if (CUBLAS_CHECK(cu, cublasLtMatmulDescCreate(&op, cu_compute_type(cu), CUDA_R_32F)) ||
        CUBLAS_CHECK(
            cu, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta)) ||
        CUBLAS_CHECK(
            cu, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb)) ||
        CUBLAS_CHECK(cu, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                        sizeof epi)) ||
        CUBLAS_CHECK(cu, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                        &bias, sizeof bias)) ||
        CUBLAS_CHECK(cu, cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, K, N, K)) ||
        CUBLAS_CHECK(cu, cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, K, M, K)) ||
        CUBLAS_CHECK(cu, cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, N)) ||
        CUBLAS_CHECK(cu, cublasLtMatmulPreferenceCreate(&pref)) ||
        CUBLAS_CHECK(cu, cublasLtMatmulPreferenceSetAttribute(
                             pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws)) ||
        CUBLAS_CHECK(cu,
                     cublasLtMatmulPreferenceSetAttribute(
                         pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a)) ||
        CUBLAS_CHECK(cu,
                     cublasLtMatmulPreferenceSetAttribute(
                         pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b)) ||
        CUBLAS_CHECK(cu,
                     cublasLtMatmulPreferenceSetAttribute(
                         pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c)) ||
        CUBLAS_CHECK(cu,
                     cublasLtMatmulPreferenceSetAttribute(
                         pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c))) {
        rc = -1;
        goto out;
    }
    {
        cublasLtMatmulHeuristicResult_t heur;
        int found = 0;
        cublasStatus_t s =
            cublasLtMatmulAlgoGetHeuristic(cu->lt, op, la, lb, lc, lc, pref, 1, &heur, &found);
        if (s != CUBLAS_STATUS_SUCCESS || found == 0) goto out; /* rc = 1: plain path */
        const float one = 1.0f, zero = 0.0f;
        rc = CUBLAS_CHECK(cu, cublasLtMatmul(cu->lt, op, &one, weight, la, inp, lb, &zero, out, lc,
                                             out, lc, &heur.algo, cu->lt_workspace, ws, cu->stream))
                 ? -1
                 : 0;
    }
out:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

void cuda_linear_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                         const float *bias, int M, int K, int N) {
    // out [M,N], inp [M,K], weight [N,K], bias [N]
    cu_impl *cu = cu_enter(be);
    if (!cu || M <= 0 || N <= 0) return;
    if (bias && K > 0) {
        int rc = linear_lt(cu, out, inp, weight, bias, M, K, N);
        if (rc <= 0) return;
    }
    cu_sgemm(cu, out, inp, weight, M, N, K, 0, 1, 1.0f, 0.0f);
    if (bias) cu_add_bias_rows(cu, out, bias, M, N);
}

void cuda_linear_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight, int M, int K,
                          int N) {
    // dinp [M,K] (=), dweight [N,K] (+=), dbias [N] (+=), dout [M,N], inp [M,K], weight [N,K]
    cu_impl *cu = cu_enter(be);
    if (!cu) return;
    if (dinp && M > 0 && K > 0) cu_sgemm(cu, dinp, dout, weight, M, K, N, 0, 0, 1.0f, 0.0f);
    if (dweight && N > 0 && K > 0 && M > 0)
        cu_sgemm(cu, dweight, dout, inp, N, K, M, 1, 0, 1.0f, 1.0f);
    if (dbias && N > 0) cu_colsum(cu, dbias, dout, M, N, 1);
}
