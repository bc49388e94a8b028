/* Matrix products of the CPU backend: gemm, batched gemm and the linear
 * layer (forward and backward), all on OpenBLAS cblas_sgemm (OpenMP build),
 * or on gemm_bf16.c's bf16 products at --mixed_precision bf16.
 *
 * It is not a GEMM implementation: every product goes to sgemm; this file
 * only maps the row-major conventions of engine/core/backend.h onto CBLAS, fuses
 * the bias (the output starts as the bias and sgemm adds with beta = 1) and
 * computes bias gradients. Reference: torch.nn.functional.linear
 * (out = inp @ weight^T + bias, weight [N, K]).
 *
 * Size legend: M rows (tokens, pixels), K reduction size, N output columns. */
#include <cblas.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/linalg_util.h"

/* Columns per task of the bias-gradient column sums. */
#define COLSUM_BLOCK 64

static int imax(int a, int b) { return a > b ? a : b; }

static void sgemm_rowmajor(cnet_backend *be, float *C, const float *A, const float *B, int M, int N,
                           int K, int trans_a, int trans_b, float alpha, float beta) {
    /* Leading dimensions of the stored (untransposed) matrices; CBLAS wants
     * them >= 1 even when a size is 0. */
    int lda = imax(1, trans_a ? M : K);
    int ldb = imax(1, trans_b ? K : N);
    if (cpu_uses_bf16(be)) {
        cpu_gemm_bf16(be, C, imax(1, N), (cpu_matrix){.f32 = A, .ld = lda, .trans = trans_a},
                      (cpu_matrix){.f32 = B, .ld = ldb, .trans = trans_b}, M, N, K, alpha, beta);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                imax(1, N));
}

void cpu_gemm(cnet_backend *be, float *C, const float *A, const float *B, int M, int N, int K,
              int trans_a, int trans_b, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    sgemm_rowmajor(be, C, A, B, M, N, K, trans_a, trans_b, alpha, beta);
}

void cpu_gemm_batched(cnet_backend *be, float *C, const float *A, const float *B, int batch, int M,
                      int N, int K, int trans_a, int trans_b, float alpha, float beta,
                      long stride_a, long stride_b, long stride_c) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    /* One threaded sgemm after another. Issuing the products from an OpenMP
     * loop instead (each then single-threaded inside OpenBLAS) measured 2x to
     * 30x slower for small matrices with OpenBLAS 0.3.21 on 2 cores. */
    for (int i = 0; i < batch; i++)
        sgemm_rowmajor(be, C + i * stride_c, A + i * stride_a, B + i * stride_b, M, N, K, trans_a,
                       trans_b, alpha, beta);
}

void cpu_fill_rows(float *out, const float *row, long M, int N) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < M; i++) memcpy(out + i * N, row, (size_t)N * sizeof *out);
}

void cpu_colsum_accumulate(float *dbias, const float *x, long M, int N) {
    int nblocks = (N + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int n0 = blk * COLSUM_BLOCK;
        int nb = N - n0 < COLSUM_BLOCK ? N - n0 : COLSUM_BLOCK;
        double acc[COLSUM_BLOCK] = {0};
        for (long i = 0; i < M; i++) {
            const float *r = x + i * N + n0;
            for (int j = 0; j < nb; j++) acc[j] += r[j];
        }
        for (int j = 0; j < nb; j++) dbias[n0 + j] += (float)acc[j];
    }
}

void cpu_linear_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                        const float *bias, int M, int K, int N) {
    // out [M,N], inp [M,K], weight [N,K], bias [N]
    if (M <= 0 || N <= 0) return;
    if (bias) cpu_fill_rows(out, bias, M, N);
    sgemm_rowmajor(be, out, inp, weight, M, N, K, 0, 1, 1.0f, bias ? 1.0f : 0.0f);
}

void cpu_linear_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                         const float *dout, const float *inp, const float *weight, int M, int K,
                         int N) {
    // dinp [M,K], dweight [N,K], dbias [N], dout [M,N], inp [M,K], weight [N,K]
    if (dinp && M > 0 && K > 0) {
        if (N > 0)
            sgemm_rowmajor(be, dinp, dout, weight, M, K, N, 0, 0, 1.0f, 0.0f);
        else
            memset(dinp, 0, (size_t)M * K * sizeof *dinp);
    }
    if (dweight && N > 0 && K > 0 && M > 0)
        sgemm_rowmajor(be, dweight, dout, inp, N, K, M, 1, 0, 1.0f, 1.0f);
    if (dbias && N > 0) cpu_colsum_accumulate(dbias, dout, M, N);
}
