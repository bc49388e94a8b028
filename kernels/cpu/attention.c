/* Fused multi-head attention, out = softmax(scale * Q K^T [+ causal mask]) V,
 * forward and backward, without ever holding the whole Nq x Nk score
 * matrix.
 *
 * Reference semantics: diffusers' AttnProcessor (torch 1.13 has no SDPA):
 * per head, baddbmm(scale * Q K^T), softmax over keys, bmm with V; CLIP's
 * causal mask hides key j from query i when j > i. The algorithm follows
 * FlashAttention-2 (Dao, 2023): the forward walks blocks of ATTN_BQ queries
 * against blocks of ATTN_BK keys with an online softmax (running max m and
 * sum l, O rescaled by exp(m_old - m_new)) and saves lse = m + log l; the
 * backward recomputes P = exp(scale Q K^T - lse) block by block and uses
 * D_i = rowsum(dO_i * O_i):
 *   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - D),  dQ += scale dS K,
 *   dK += scale dS^T Q.
 * Block products are OpenBLAS sgemm calls made from inside OpenMP threads
 * (OpenBLAS then runs them single-threaded), or at --mixed_precision bf16
 * gemm_bf16.c's products on the calling thread (bf16 operands: Q, K, V,
 * P, dO, dS rounded as packed; float32 sums, softmax and lse), as the CUDA
 * backend's attention computes both passes on bf16 tensor cores. Not a
 * dropout or bias-mask attention; no key padding mask.
 *
 * Sizes: B batch, Nq queries, Nk keys, heads, D head dim; rows of q/out are
 * [heads*D] (head h at columns h*D..h*D+D-1), rows of k/v likewise. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/scratch.h"
#include "kernels/common/vexp.h"

/* Queries and keys per block. Per-thread scratch is
 * ATTN_BQ * (ATTN_BK + D + 2) floats forward and
 * ATTN_BQ * (2 * ATTN_BK + 1) floats backward. */
enum { ATTN_BQ = 64, ATTN_BK = 128 };
/* Smallest head dim whose block products run in bf16: the bf16 micro-tile
 * is 32 columns wide, so PV, dV, dQ and dK (D columns) of a narrower head
 * are mostly padding, and sgemm was faster (the small model's d8 made the
 * CFG step slower at bf16). Narrower heads stay float32, as the CUDA
 * backend keeps heads wider than 160 in float32. */
enum { ATTN_BF16_MIN_D = 32 };

/* 32-bit words of bf16 packing space one thread needs for the largest
 * block product of either pass at head dim D. */
static size_t bf16_work_words(int D) {
    size_t w = cpu_gemm_bf16_work_words(ATTN_BQ, ATTN_BK, D), x;
    if ((x = cpu_gemm_bf16_work_words(ATTN_BQ, D, ATTN_BK)) > w) w = x;
    if ((x = cpu_gemm_bf16_work_words(ATTN_BK, D, ATTN_BQ)) > w) w = x;
    return w;
}

/* C[M,N] = alpha op(A) op(B) + beta C for one block on the calling thread
 * (row-major, leading dimensions lda, ldb, ldc; ta / tb: the stored matrix
 * is the transpose): sgemm, or bf16 products packing into work. */
static void block_gemm(uint32_t *work, int ta, int tb, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc) {
    if (work)
        cpu_gemm_bf16_serial(C, ldc, (cpu_matrix){.f32 = A, .ld = lda, .trans = ta},
                             (cpu_matrix){.f32 = B, .ld = ldb, .trans = tb}, M, N, K, alpha, beta,
                             work);
    else
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Number of keys query i may see inside the key block starting at j0 of
 * width nk (0 when the whole block lies in its future). */
static inline int visible_keys(int causal, int i, int j0, int nk) {
    if (!causal) return nk;
    int lim = i - j0 + 1;
    return lim < 0 ? 0 : (lim < nk ? lim : nk);
}

void cpu_attention_forward(cnet_backend *be, float *out, float *lse, const float *q, const float *k,
                           const float *v, int B, int Nq, int Nk, int heads, int D, float scale,
                           int causal) {
    const long HD = (long)heads * D;
    const int nqb = (Nq + ATTN_BQ - 1) / ATTN_BQ;
    const long ntask = (long)B * heads * nqb;
    const int bf16 = cpu_uses_bf16(be) && D >= ATTN_BF16_MIN_D;
    const size_t floats = (size_t)ATTN_BQ * (ATTN_BK + D + 2);
    const size_t per_thread = floats + (bf16 ? bf16_work_words(D) : 0);
    float *scr = cpu_scratch(be, 0, (size_t)omp_get_max_threads() * per_thread * sizeof(float));
    if (!scr) return; /* out of memory, recorded on the backend */
#pragma omp parallel for schedule(dynamic) if (ntask > 1)
    for (long t = 0; t < ntask; t++) {
        const int b = (int)(t / ((long)heads * nqb)), h = (int)(t / nqb % heads);
        uint32_t *work =
            bf16 ? (uint32_t *)(scr + (size_t)omp_get_thread_num() * per_thread + floats) : NULL;
        const int i0 = (int)(t % nqb) * ATTN_BQ;
        const int nq = Nq - i0 < ATTN_BQ ? Nq - i0 : ATTN_BQ;
        float *S = scr + (size_t)omp_get_thread_num() * per_thread;    // [ATTN_BQ, ATTN_BK]
        float *O = S + ATTN_BQ * ATTN_BK;                              // [ATTN_BQ, D]
        float *mrow = O + (size_t)ATTN_BQ * D, *lrow = mrow + ATTN_BQ; // [ATTN_BQ]
        const float *qp = q + ((long)b * Nq + i0) * HD + (long)h * D;
        memset(O, 0, (size_t)nq * D * sizeof(float));
        for (int r = 0; r < nq; r++) mrow[r] = -INFINITY, lrow[r] = 0.0f;
        const int kend = causal && i0 + nq < Nk ? i0 + nq : Nk;
        for (int j0 = 0; j0 < kend; j0 += ATTN_BK) {
            const int nk = kend - j0 < ATTN_BK ? kend - j0 : ATTN_BK;
            const float *kp = k + ((long)b * Nk + j0) * HD + (long)h * D;
            const float *vp = v + ((long)b * Nk + j0) * HD + (long)h * D;
            block_gemm(work, 0, 1, nq, nk, D, scale, qp, (int)HD, kp, (int)HD, 0.0f, S, ATTN_BK);
            for (int r = 0; r < nq; r++) {
                float *row = S + (size_t)r * ATTN_BK;
                const int lim = visible_keys(causal, i0 + r, j0, nk);
                float mx = mrow[r];
#pragma omp simd reduction(max : mx)
                for (int c = 0; c < lim; c++) mx = row[c] > mx ? row[c] : mx;
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int c = 0; c < lim; c++) {
                    row[c] = cpu_expf(row[c] - mx);
                    sum += row[c];
                }
                for (int c = lim; c < nk; c++) row[c] = 0.0f;
                /* 0 on the first block (which always shows key 0); 1 when the
                 * block is all in the row's future (lim == 0, mx unchanged) */
                const float alpha = cpu_expf(mrow[r] - mx);
                lrow[r] = lrow[r] * alpha + sum;
                mrow[r] = mx;
                float *orow = O + (size_t)r * D;
                for (int d = 0; d < D; d++) orow[d] *= alpha;
            }
            block_gemm(work, 0, 0, nq, D, nk, 1.0f, S, ATTN_BK, vp, (int)HD, 1.0f, O, D);
        }
        for (int r = 0; r < nq; r++) {
            float *dst = out + ((long)b * Nq + i0 + r) * HD + (long)h * D;
            const float inv = 1.0f / lrow[r];
            for (int d = 0; d < D; d++) dst[d] = O[(size_t)r * D + d] * inv;
            if (lse) lse[((long)b * heads + h) * Nq + i0 + r] = mrow[r] + logf(lrow[r]);
        }
    }
}

/* Zeroes the D columns of head h in every one of the N rows of x[B,N,HD]
 * for batch b. */
static void zero_head(float *x, int b, int h, int N, long HD, int D) {
    if (!x) return;
    for (int n = 0; n < N; n++)
        memset(x + ((long)b * N + n) * HD + (long)h * D, 0, D * sizeof(float));
}

/* One task per (batch, head): it owns the head's columns of dq, dk and dv,
 * so the blocks accumulate into them without atomics, in a fixed order. */
void cpu_attention_backward(cnet_backend *be, float *dq, float *dk, float *dv, const float *dout,
                            const float *q, const float *k, const float *v, const float *out,
                            const float *lse, int B, int Nq, int Nk, int heads, int D, float scale,
                            int causal) {
    if (!dq && !dk && !dv) return;
    const long HD = (long)heads * D;
    const long ntask = (long)B * heads;
    const int bf16 = cpu_uses_bf16(be) && D >= ATTN_BF16_MIN_D;
    const size_t floats = (size_t)ATTN_BQ * (2 * ATTN_BK + 1);
    const size_t per_thread = floats + (bf16 ? bf16_work_words(D) : 0);
    float *scr = cpu_scratch(be, 0, (size_t)omp_get_max_threads() * per_thread * sizeof(float));
    if (!scr) return; /* out of memory, recorded on the backend */
#pragma omp parallel for schedule(dynamic) if (ntask > 1)
    for (long t = 0; t < ntask; t++) {
        const int b = (int)(t / heads), h = (int)(t % heads);
        uint32_t *work =
            bf16 ? (uint32_t *)(scr + (size_t)omp_get_thread_num() * per_thread + floats) : NULL;
        float *P = scr + (size_t)omp_get_thread_num() * per_thread; // [ATTN_BQ, ATTN_BK]
        float *dS = P + ATTN_BQ * ATTN_BK;                          // [ATTN_BQ, ATTN_BK]
        float *Drow = dS + ATTN_BQ * ATTN_BK;                       // [ATTN_BQ]
        zero_head(dq, b, h, Nq, HD, D);
        zero_head(dk, b, h, Nk, HD, D);
        zero_head(dv, b, h, Nk, HD, D);
        const float *lse_bh = lse + ((long)b * heads + h) * Nq; // [Nq]
        for (int i0 = 0; i0 < Nq; i0 += ATTN_BQ) {
            const int nq = Nq - i0 < ATTN_BQ ? Nq - i0 : ATTN_BQ;
            const long qoff = ((long)b * Nq + i0) * HD + (long)h * D;
            for (int r = 0; r < nq; r++) {
                const float *o = out + qoff + r * HD, *go = dout + qoff + r * HD;
                double s = 0;
                for (int d = 0; d < D; d++) s += (double)o[d] * go[d];
                Drow[r] = (float)s;
            }
            const int kend = causal && i0 + nq < Nk ? i0 + nq : Nk;
            for (int j0 = 0; j0 < kend; j0 += ATTN_BK) {
                const int nk = kend - j0 < ATTN_BK ? kend - j0 : ATTN_BK;
                const long koff = ((long)b * Nk + j0) * HD + (long)h * D;
                block_gemm(work, 0, 1, nq, nk, D, scale, q + qoff, (int)HD, k + koff, (int)HD, 0.0f,
                           P, ATTN_BK);
                for (int r = 0; r < nq; r++) {
                    float *row = P + (size_t)r * ATTN_BK;
                    const int lim = visible_keys(causal, i0 + r, j0, nk);
                    const float l = lse_bh[i0 + r];
#pragma omp simd
                    for (int c = 0; c < lim; c++) row[c] = cpu_expf(row[c] - l);
                    for (int c = lim; c < nk; c++) row[c] = 0.0f;
                }
                if (dv)
                    block_gemm(work, 1, 0, nk, D, nq, 1.0f, P, ATTN_BK, dout + qoff, (int)HD, 1.0f,
                               dv + koff, (int)HD);
                if (!dq && !dk) continue;
                block_gemm(work, 0, 1, nq, nk, D, 1.0f, dout + qoff, (int)HD, v + koff, (int)HD,
                           0.0f, dS, ATTN_BK);
                for (int r = 0; r < nq; r++) {
                    const float *prow = P + (size_t)r * ATTN_BK;
                    float *srow = dS + (size_t)r * ATTN_BK;
                    for (int c = 0; c < nk; c++) srow[c] = prow[c] * (srow[c] - Drow[r]);
                }
                if (dq)
                    block_gemm(work, 0, 0, nq, D, nk, scale, dS, ATTN_BK, k + koff, (int)HD, 1.0f,
                               dq + qoff, (int)HD);
                if (dk)
                    block_gemm(work, 1, 0, nk, D, nq, scale, dS, ATTN_BK, q + qoff, (int)HD, 1.0f,
                               dk + koff, (int)HD);
            }
        }
    }
}
