/* bf16 x bf16 -> float32 matrix products on AVX512-BF16 (see gemm_bf16.h).
 *
 * The blocking follows Goto and van de Geijn, "Anatomy of high-performance
 * matrix multiplication" (2008), as BLIS lays it out: op(B) is packed once
 * into panels of GEMM_NR columns, op(A) per thread into blocks of GEMM_MC
 * rows x GEMM_KCP pairs of k, and a register-blocked micro-kernel
 * (GEMM_MR x GEMM_NR float32 accumulators) runs vdpbf16ps, which multiplies
 * a pair of bf16 values per 32-bit lane (k and k+1) and adds both products
 * to the lane. So both packs interleave pairs of k: a 32-bit word holds
 * X(x, 2p) in its low half and X(x, 2p + 1) in its high half (0 past K).
 * Rounding to bf16 happens in the packs (nearest even, NaN kept NaN), as
 * engine/core/tensor.c's cnet_f32_to_bf16 rounds.
 *
 * Not used for the Winograd convolution (conv_winograd.c keeps float32: it
 * does 4x fewer multiplies than any bf16 direct convolution). Compiled for
 * every x86-64 CPU: only the functions marked BF16_TARGET use the
 * instructions, and cpu_bf16_supported gates the calls at run time. */
#include "kernels/cpu/gemm_bf16.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/scratch.h"

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* Micro-tile: 12 rows x 32 columns = 24 zmm accumulators, 2 for B, 1 for
 * the broadcast A pair. GEMM_KCP pairs (512 values of k) keep a B panel
 * (32 x 512 bf16 = 32 KB) in L1/L2 while a packed A block (96 rows, 96 KB)
 * sits in the 1 MB L2 of Zen 4. */
enum { GEMM_MR = 12, GEMM_NR = 32, GEMM_MC = 96, GEMM_KCP = 256 };
/* Products below this many multiply-adds run on the calling thread. */
#define GEMM_PAR_MIN_MACS (1L << 20)
/* Tasks per thread the (row block x column range) split aims at, so a
 * dynamic neighbour load evens out. */
#define GEMM_TASKS_PER_THREAD 4

int cpu_bf16_supported(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") ? 1 : 0;
    }
    return known;
}

int cpu_uses_bf16(const cnet_backend *be) {
    return be->precision == CNET_PREC_BF16 && cpu_bf16_supported();
}

static inline uint16_t round_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* X(x, k) of an operand viewed with x as its packed index (a row of op(A),
 * a column of op(B)): k_contig when k runs along the stored rows. */
static inline __attribute__((always_inline)) uint32_t elem16(const cpu_matrix *m, long x, long k,
                                                             int k_contig, int is16) {
    const long i = k_contig ? x * m->ld + k : k * m->ld + x;
    return is16 ? m->bf16[i] : round_bf16(m->f32[i]);
}

static inline __mmask16 cols_mask(int n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* The pair word of X(x, 2p) and X(x, 2p + 1) (0 past K) for x in
 * [x0, x0 + nx) padded with zero up to a multiple of R, p in [p0, p0 + np),
 * stored at panel (x - x0) / R, offset ((x - x0) % R) * sx + (p - p0) * sp:
 * sx = np, sp = 1 for A's row panels, sx = 1, sp = R for B's. */
static inline __attribute__((always_inline)) void pack_words(uint32_t *dst, const cpu_matrix *m,
                                                             long x0, long nx, int R, long p0,
                                                             long np, long K, long sx, long sp,
                                                             int k_contig, int is16) {
    const long panels = (nx + R - 1) / R;
    const long full = (K / 2 - p0) < np ? (K / 2 - p0) : np; /* pairs with both k < K */
    for (long xb = 0; xb < panels; xb++) {
        uint32_t *panel = dst + xb * np * R;
        for (int xi = 0; xi < R; xi++) {
            const long x = xb * R + xi;
            uint32_t *w = panel + xi * sx;
            if (x >= nx) {
                for (long p = 0; p < np; p++) w[p * sp] = 0;
                continue;
            }
            long p = 0;
            if (is16 && k_contig) /* the pair is already a little-endian word */
                for (const uint16_t *src = m->bf16 + (x0 + x) * m->ld + 2 * p0; p < full; p++)
                    memcpy(w + p * sp, src + 2 * p, sizeof *w);
            for (; p < full; p++) {
                const long k = 2 * (p0 + p);
                w[p * sp] = elem16(m, x0 + x, k, k_contig, is16) |
                            elem16(m, x0 + x, k + 1, k_contig, is16) << 16;
            }
            for (; p < np; p++) {
                const long k = 2 * (p0 + p);
                w[p * sp] = k < K ? elem16(m, x0 + x, k, k_contig, is16) : 0;
            }
        }
    }
}

/* pack_words for a float32 operand whose k runs along its rows, into row
 * panels (sx = np, sp = 1): 32 values of k per vcvtne2ps2bf16 (nearest
 * even; it treats float32 subnormals as zero, which only the scalar tail
 * and cnet_f32_to_bf16 keep). */
BF16_TARGET static void pack_rows_f32(uint32_t *dst, const cpu_matrix *m, long x0, long nx, int R,
                                      long p0, long np, long K) {
    const long full = (K / 2 - p0) < np ? (K / 2 - p0) : np;
    const long vec = full / 16 * 16;
    const long panels = (nx + R - 1) / R;
    for (long x = 0; x < panels * R; x++) {
        uint32_t *w = dst + x * np;
        if (x >= nx) {
            memset(w, 0, (size_t)np * sizeof *w);
            continue;
        }
        const float *src = m->f32 + (x0 + x) * m->ld + 2 * p0;
        for (long p = 0; p < vec; p += 16) {
            const __m512 lo = _mm512_loadu_ps(src + 2 * p), hi = _mm512_loadu_ps(src + 2 * p + 16);
            _mm512_storeu_si512(w + p, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        for (long p = vec; p < np; p++) {
            const long k = 2 * (p0 + p);
            w[p] = k + 1 < K ? (uint32_t)round_bf16(src[2 * p]) |
                                   (uint32_t)round_bf16(src[2 * p + 1]) << 16
                   : k < K ? round_bf16(src[2 * p])
                           : 0;
        }
    }
}

/* pack_words for a float32 operand whose x runs along its rows (k down
 * the columns), into column panels (sx = 1, sp = R): 16 columns of rows k
 * and k + 1 converted and interleaved per step. */
BF16_TARGET static void pack_cols_f32(uint32_t *dst, const cpu_matrix *m, long x0, long nx, int R,
                                      long p0, long np, long K) {
    const long panels = (nx + R - 1) / R;
    for (long xb = 0; xb < panels; xb++) {
        uint32_t *panel = dst + xb * np * R;
        const long width = nx - xb * R < R ? nx - xb * R : R;
        for (long p = 0; p < np; p++) {
            const long k = 2 * (p0 + p);
            const float *r0 = m->f32 + k * m->ld + x0 + xb * R;
            const float *r1 = k + 1 < K ? r0 + m->ld : NULL;
            uint32_t *w = panel + p * R;
            for (long c = 0; c < R; c += 16) {
                const __mmask16 mk = cols_mask((int)(width - c));
                const __m512 a = _mm512_maskz_loadu_ps(mk, r0 + c);
                const __m512 b = r1 ? _mm512_maskz_loadu_ps(mk, r1 + c) : _mm512_setzero_ps();
                const __m256i ha = (__m256i)_mm512_cvtneps_pbh(a),
                              hb = (__m256i)_mm512_cvtneps_pbh(b);
                const __m256i lo = _mm256_unpacklo_epi16(ha, hb),
                              hi = _mm256_unpackhi_epi16(ha, hb);
                const __m512i words = _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_permute2x128_si256(lo, hi, 0x20)),
                    _mm256_permute2x128_si256(lo, hi, 0x31), 1);
                _mm512_mask_storeu_epi32(w + c, cols_mask((int)(R - c)), words);
            }
        }
    }
}

/* A's block: panels of GEMM_MR rows x np words, row-major (row panels,
 * *ai = np, *ap = 1) or, for a transposed float32 A, whose pairs of k lie
 * in two stored rows, pair-major (*ai = 1, *ap = GEMM_MR) as B's panels. */
static void pack_a(uint32_t *dst, const cpu_matrix *m, long x0, long nx, long p0, long np, long K,
                   long *ai, long *ap) {
    const int R = GEMM_MR;
    *ai = np, *ap = 1;
    if (m->bf16)
        m->trans ? pack_words(dst, m, x0, nx, R, p0, np, K, np, 1, 0, 1)
                 : pack_words(dst, m, x0, nx, R, p0, np, K, np, 1, 1, 1);
    else if (m->trans) {
        pack_cols_f32(dst, m, x0, nx, R, p0, np, K);
        *ai = 1, *ap = R;
    } else
        pack_rows_f32(dst, m, x0, nx, R, p0, np, K);
}

/* B's panel of GEMM_NR columns x all np pairs ([np][GEMM_NR] words). */
static void pack_b(uint32_t *dst, const cpu_matrix *m, long x0, long nx, long np, long K) {
    const int R = GEMM_NR;
    if (m->bf16)
        m->trans ? pack_words(dst, m, x0, nx, R, 0, np, K, 1, R, 1, 1)
                 : pack_words(dst, m, x0, nx, R, 0, np, K, 1, R, 0, 1);
    else if (m->trans)
        pack_words(dst, m, x0, nx, R, 0, np, K, 1, R, 1, 0);
    else
        pack_cols_f32(dst, m, x0, nx, R, 0, np, K);
}

/* C[mr, nr] = alpha * (a-panel @ b-panel) + beta * C over kcp pairs; C is
 * read only when beta != 0. a: word (i, p) at a[i * ai + p * ap], b: [kcp][GEMM_NR]. */
BF16_TARGET static void micro_kernel(long kcp, const uint32_t *a, long ai, long ap,
                                     const uint32_t *b, float *C, long ldc, int mr, int nr,
                                     float alpha, float beta) {
    __m512 c0[GEMM_MR], c1[GEMM_MR];
#pragma GCC unroll 12
    for (int i = 0; i < GEMM_MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (long p = 0; p < kcp; p++) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < GEMM_MR; i++) {
            const __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[i * ai + p * ap]);
            c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
        }
        b += GEMM_NR;
    }
    const __mmask16 m0 = cols_mask(nr), m1 = cols_mask(nr - 16);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < GEMM_MR; i++) {
        if (i >= mr) break;
        float *row = C + i * ldc;
        __m512 r0 = _mm512_mul_ps(c0[i], va), r1 = _mm512_mul_ps(c1[i], va);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
        }
        _mm512_mask_storeu_ps(row, m0, r0);
        _mm512_mask_storeu_ps(row + 16, m1, r1);
    }
}

/* C = beta * C (K == 0: no products to add). */
static void scale_c(float *C, long ldc, int M, int N, float beta) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) C[i * ldc + j] = beta != 0.0f ? beta * C[i * ldc + j] : 0.0f;
}

/* Rows m0..m0+mc-1 of C against B's panels j0..j1-1 (packed in bp, kp
 * pairs each), A packed block by block into abuf (GEMM_MC x GEMM_KCP
 * words at most). */
static void gemm_rows(float *C, long ldc, const cpu_matrix *A, const uint32_t *bp, long kp, int N,
                      int K, long m0, long mc, long j0, long j1, float alpha, float beta,
                      uint32_t *abuf) {
    for (long p0 = 0; p0 < kp && j0 < j1; p0 += GEMM_KCP) {
        const long kcp = kp - p0 < GEMM_KCP ? kp - p0 : GEMM_KCP;
        long ai, ap;
        pack_a(abuf, A, m0, mc, p0, kcp, K, &ai, &ap);
        const float b_eff = p0 == 0 ? beta : 1.0f;
        for (long j = j0; j < j1; j++) {
            const long n0 = j * GEMM_NR;
            for (long i0 = 0; i0 < mc; i0 += GEMM_MR)
                micro_kernel(kcp, abuf + i0 * kcp, ai, ap, bp + (j * kp + p0) * GEMM_NR,
                             C + (m0 + i0) * ldc + n0, ldc,
                             (int)(mc - i0 < GEMM_MR ? mc - i0 : GEMM_MR),
                             (int)(N - n0 < GEMM_NR ? N - n0 : GEMM_NR), alpha, b_eff);
        }
    }
}

size_t cpu_gemm_bf16_work_words(int M, int N, int K) {
    const long kp = ((long)K + 1) / 2, npanel = ((long)N + GEMM_NR - 1) / GEMM_NR;
    const long rows = ((long)M + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
    return (size_t)(npanel * GEMM_NR * kp +
                    (rows < GEMM_MC ? rows : GEMM_MC) * (kp < GEMM_KCP ? kp : GEMM_KCP));
}

void cpu_gemm_bf16_serial(float *C, long ldc, cpu_matrix A, cpu_matrix B, int M, int N, int K,
                          float alpha, float beta, uint32_t *work) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    const long kp = ((long)K + 1) / 2, npanel = ((long)N + GEMM_NR - 1) / GEMM_NR;
    uint32_t *bp = work, *abuf = work + npanel * GEMM_NR * kp;
    for (long j = 0; j < npanel; j++)
        pack_b(bp + j * kp * GEMM_NR, &B, j * GEMM_NR,
               N - j * GEMM_NR < GEMM_NR ? N - j * GEMM_NR : GEMM_NR, kp, K);
    for (long m0 = 0; m0 < M; m0 += GEMM_MC)
        gemm_rows(C, ldc, &A, bp, kp, N, K, m0, M - m0 < GEMM_MC ? M - m0 : GEMM_MC, 0, npanel,
                  alpha, beta, abuf);
}

void cpu_gemm_bf16(cnet_backend *be, float *C, long ldc, cpu_matrix A, cpu_matrix B, int M, int N,
                   int K, float alpha, float beta) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(C, ldc, M, N, beta);
        return;
    }
    const long kp = ((long)K + 1) / 2, npanel = ((long)N + GEMM_NR - 1) / GEMM_NR;
    const int nt = omp_get_max_threads();
    uint32_t *bp =
        cpu_scratch(be, CPU_SLOT_BF16_B, (size_t)npanel * kp * GEMM_NR * 4); // [npanel][kp][NR]
    uint32_t *ap =
        cpu_scratch(be, CPU_SLOT_BF16_A, (size_t)nt * GEMM_MC * GEMM_KCP * 4); // per thread
    if (!bp || !ap) return; /* out of memory, recorded on the backend */
    const long mblocks = ((long)M + GEMM_MC - 1) / GEMM_MC;
    long nsplit = (GEMM_TASKS_PER_THREAD * nt + mblocks - 1) / mblocks;
    if (nsplit > npanel) nsplit = npanel;
    const long per_split = (npanel + nsplit - 1) / nsplit, ntask = mblocks * nsplit;
#pragma omp parallel if ((long)M * N * K >= GEMM_PAR_MIN_MACS)
    {
#pragma omp for schedule(dynamic)
        for (long j = 0; j < npanel; j++) {
            const long n0 = j * GEMM_NR;
            pack_b(bp + j * kp * GEMM_NR, &B, n0, N - n0 < GEMM_NR ? N - n0 : GEMM_NR, kp, K);
        }
        uint32_t *mine = ap + (size_t)omp_get_thread_num() * GEMM_MC * GEMM_KCP;
#pragma omp for schedule(dynamic)
        for (long t = 0; t < ntask; t++) {
            const long m0 = t / nsplit * GEMM_MC, j0 = t % nsplit * per_split;
            const long j1 = j0 + per_split < npanel ? j0 + per_split : npanel;
            gemm_rows(C, ldc, &A, bp, kp, N, K, m0, M - m0 < GEMM_MC ? M - m0 : GEMM_MC, j0, j1,
                      alpha, beta, mine);
        }
    }
}
