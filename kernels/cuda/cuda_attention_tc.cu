/* Tensor-core attention forward for --mixed_precision bf16 / fp16: the
 * FlashAttention-2 forward of cuda_attention.cu with its two products on
 * tensor cores (WMMA, 16x16x16, float32 accumulation), as torch's SDPA
 * computes under autocast: q, k and v rounded to the precision's 16-bit type
 * (round to nearest even) as they are staged in shared memory, the scores
 * and the online softmax (running max m, sum l, rescale by exp(m_old -
 * m_new)) in float32, the probabilities rounded to 16 bits for P V, the
 * output accumulated in float32 and divided by l at the end; lse = m + log l
 * of the scaled scores, as the float32 kernel saves it, so the backward
 * recomputes P from it: the tensor-core backward (cuda_attention_tc_bwd.cu)
 * from the same 16-bit q and k, so the rows of P sum to 1; the float32
 * backward (head dims over 160) from the unrounded ones, within the 16-bit
 * rounding of this forward.
 *
 * Layout: a block takes 64 queries of one (batch, head), 4 warps x 16 rows,
 * and walks the keys in tiles of 64. The head dim is padded with zeros to
 * DP, the next multiple of 16 (40 -> 48, 80 -> 80, 160 -> 160), a template
 * argument up to 160; larger head dims, or a device without the shared
 * memory this needs (DP = 160: 134 KB), stay on the float32 kernel. Each
 * warp keeps its 16 x DP output accumulator in shared memory: WMMA's
 * fragment layout is opaque, so the per-row rescale happens there.
 *
 * Sizes: B batch, Nq queries, Nk keys, heads, D head dim; rows of q/out are
 * [heads*D], of k/v likewise. */
#include <math.h>

#include "kernels/cuda/cuda_attention_tc.h"
#include "kernels/cuda/cuda_ops.h"

/* Byte offsets of the forward's tiles in dynamic shared memory. */
typedef struct tc_smem {
    size_t q, k, v, s, p, o, stats, total;
} tc_smem;

__host__ __device__ static inline tc_smem tc_layout(int DP) {
    tc_smem L;
    size_t at = 0;
    L.q = at, at += tc_tile16(DP); /* q [64][DP + pad], 16-bit */
    L.k = at, at += tc_tile16(DP);
    L.v = at, at += tc_tile16(DP);
    L.s = at, at += tc_scores();                   /* scores, float */
    L.p = at, at += tc_probs();                    /* P, 16-bit */
    L.o = at, at += tc_accum(DP);                  /* O, float */
    L.stats = at, at += tc_align(3 * TC_ROWS * 4); /* m, l, alpha */
    L.total = at;
    return L;
}

// grid (ceil(Nq/64), heads, B), TC_THREADS threads, tc_layout(DP).total bytes of shared memory
template <typename T, int DP>
__global__ void __launch_bounds__(TC_THREADS)
    attention_forward_tc_kernel(float *out, float *lse, const float *q, const float *k,
                                const float *v, int Nq, int Nk, int heads, int D, float scale,
                                int causal) {
    typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> frag_a;
    extern __shared__ __align__(128) unsigned char smem[];
    const tc_smem L = tc_layout(DP);
    const int ld16 = DP + TC_PAD16, lds = TC_COLS + TC_PADF, ldp = TC_COLS + TC_PAD16;
    const int ldo = DP + TC_PADF;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    T *qs = (T *)(smem + L.q), *ks = (T *)(smem + L.k), *vs = (T *)(smem + L.v);
    float *ss = (float *)(smem + L.s) + w * 16 * lds; /* this warp's 16 rows */
    T *ps = (T *)(smem + L.p) + w * 16 * ldp;
    float *os = (float *)(smem + L.o) + w * 16 * ldo;
    float *row_m = (float *)(smem + L.stats) + w * 16, *row_l = row_m + TC_ROWS;
    float *row_a = row_m + 2 * TC_ROWS;
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * TC_ROWS;
    const long HD = (long)heads * D;
    const float *Q = q + (long)b * Nq * HD + (long)h * D;
    const float *K = k + (long)b * Nk * HD + (long)h * D;
    const float *V = v + (long)b * Nk * HD + (long)h * D;

    tc_load<T, DP>(qs, Q, i0, Nq, HD, D);
    for (int idx = lane; idx < 16 * ldo; idx += 32) os[idx] = 0.0f;
    if (lane < 16) row_m[lane] = -INFINITY, row_l[lane] = 0.0f;
    __syncthreads();
    frag_a qf[DP / 16]; /* this warp's 16 query rows, kept for every key tile */
#pragma unroll
    for (int kk = 0; kk < DP / 16; kk++)
        wmma::load_matrix_sync(qf[kk], qs + w * 16 * ld16 + kk * 16, ld16);

    const int kend = causal && i0 + TC_ROWS < Nk ? i0 + TC_ROWS : Nk;
    for (int j0 = 0; j0 < kend; j0 += TC_COLS) {
        __syncthreads(); /* every warp is done with the previous tile */
        tc_load<T, DP>(ks, K, j0, Nk, HD, D);
        tc_load<T, DP>(vs, V, j0, Nk, HD, D);
        __syncthreads();
        tc_times_transposed<T, DP>(ss, qf, ks); /* S = Q K^T */
        __syncwarp();
        { /* online softmax: two lanes per row, 32 keys each */
            const int r = lane / 2, half = lane % 2, i = i0 + w * 16 + r;
            float *srow = ss + r * lds + half * 32;
            float mx = -INFINITY;
            for (int c = 0; c < 32; c++) {
                const int j = j0 + half * 32 + c;
                const bool ok = j < Nk && (!causal || j <= i);
                srow[c] = ok ? srow[c] * scale : -INFINITY;
                mx = fmaxf(mx, srow[c]);
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            const float m_old = row_m[r], m_new = fmaxf(m_old, mx);
            const float base = m_new == -INFINITY ? 0.0f : m_new; /* nothing visible yet */
            const float alpha = expf(m_old - base);
            T *prow = ps + r * ldp + half * 32;
            float sum = 0.0f;
            for (int c = 0; c < 32; c++) {
                const float p = srow[c] == -INFINITY ? 0.0f : expf(srow[c] - base);
                prow[c] = tc_narrow<T>(p);
                sum += p;
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            __syncwarp(); /* both lanes of the row read m before it changes */
            if (half == 0) row_m[r] = m_new, row_l[r] = row_l[r] * alpha + sum, row_a[r] = alpha;
        }
        __syncwarp();
        /* O = alpha O + P V */
        for (int idx = lane; idx < 16 * DP; idx += 32)
            os[(idx / DP) * ldo + idx % DP] *= row_a[idx / DP];
        __syncwarp();
        tc_accumulate<T, DP>(os, ps, vs); /* O += P V */
        __syncwarp();
    }
    for (int idx = lane; idx < 16 * D; idx += 32) {
        const int r = idx / D, d = idx % D, i = i0 + w * 16 + r;
        if (i < Nq) out[((long)b * Nq + i) * HD + (long)h * D + d] = os[r * ldo + d] / row_l[r];
    }
    if (lse && lane < 16 && i0 + w * 16 + lane < Nq)
        lse[((long)b * heads + h) * Nq + i0 + w * 16 + lane] = row_m[lane] + logf(row_l[lane]);
}

/* Launches the kernel for (T, DP); 0 when the device lacks the shared
 * memory (nothing launched). */
template <typename T, int DP>
static int tc_launch(cu_impl *cu, float *out, float *lse, const float *q, const float *k,
                     const float *v, int B, int Nq, int Nk, int heads, int D, float scale,
                     int causal) {
    const size_t bytes = tc_layout(DP).total;
    const int ok = tc_smem_optin(cu, attention_forward_tc_kernel<T, DP>, bytes);
    if (ok <= 0) return ok < 0;
    const dim3 grid((Nq + TC_ROWS - 1) / TC_ROWS, heads, B);
    attention_forward_tc_kernel<T, DP><<<grid, TC_THREADS, bytes, cu->stream>>>(
        out, lse, q, k, v, Nq, Nk, heads, D, scale, causal);
    CU_LAUNCHED(cu, "attention_forward_tc_kernel");
    return 1;
}

template <typename T>
static int tc_dispatch(cu_impl *cu, float *out, float *lse, const float *q, const float *k,
                       const float *v, int B, int Nq, int Nk, int heads, int D, float scale,
                       int causal) {
#define TC_CASE(DP)                                                                                \
    case DP:                                                                                       \
        return tc_launch<T, DP>(cu, out, lse, q, k, v, B, Nq, Nk, heads, D, scale, causal)
    TC_DISPATCH_DP(D, TC_CASE)
#undef TC_CASE
    return 0;
}

int cu_attention_forward_tc(cu_impl *cu, float *out, float *lse, const float *q, const float *k,
                            const float *v, int B, int Nq, int Nk, int heads, int D, float scale,
                            int causal) {
    if (D > TC_DMAX || B > 65535 || heads > 65535) return 0;
    if (cu->prec == CNET_PREC_BF16)
        return tc_dispatch<__nv_bfloat16>(cu, out, lse, q, k, v, B, Nq, Nk, heads, D, scale,
                                          causal);
    if (cu->prec == CNET_PREC_F16)
        return tc_dispatch<__half>(cu, out, lse, q, k, v, B, Nq, Nk, heads, D, scale, causal);
    return 0;
}
