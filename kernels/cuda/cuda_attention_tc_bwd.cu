/* Tensor-core attention backward for --mixed_precision bf16 / fp16: the
 * two deterministic passes of cuda_attention.cu (no atomics) with their
 * products on tensor cores (WMMA 16x16x16, float32 accumulation), on the
 * same 16-bit q, k, v as the tensor-core forward, so P = exp(scale q k^T -
 * lse) is recomputed from what the forward's lse was computed from (rows
 * summing to 1 up to float32). As FlashAttention-2: P and
 * dS = P * (dP - D_i) in float32, rounded to 16 bits for the products that
 * take them; D_i = rowsum(dO * O) comes from the float32 kernel
 * (attention_drow_kernel, in double).
 *
 *   dq pass, a block per 64 queries, walking key tiles:
 *     S = Q K^T, dP = dO V^T, dS = P (dP - D), dQ += dS K;  dq = scale dQ
 *   dkv pass, a block per 64 keys, walking query tiles:
 *     S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q;  dk = scale dK
 *
 * Each warp owns 16 rows; its accumulators live in shared memory
 * (float, like the forward's O). Head dims up to 160 (padded to DP, a
 * multiple of 16); a device with too little shared memory for a DP (the
 * dkv pass needs ~220 KB at DP = 160) runs the float32 kernels. */
#include <math.h>

#include "kernels/cuda/cuda_attention_tc.h"
#include "kernels/cuda/cuda_ops.h"

/* Byte offsets of the backward's tiles: own rows a, b (16-bit), walked
 * rows c, d (16-bit), two float score tiles, two 16-bit probability tiles,
 * two float accumulators, and the walked (or own) rows' lse and D. */
typedef struct tc_bwd_smem {
    size_t a, b, c, d, s0, s1, p0, p1, acc0, acc1, stats, total;
} tc_bwd_smem;

__host__ __device__ static inline tc_bwd_smem tc_bwd_layout(int DP, int n_acc) {
    tc_bwd_smem L;
    size_t at = 0;
    L.a = at, at += tc_tile16(DP);
    L.b = at, at += tc_tile16(DP);
    L.c = at, at += tc_tile16(DP);
    L.d = at, at += tc_tile16(DP);
    L.s0 = at, at += tc_scores();
    L.s1 = at, at += tc_scores();
    L.p0 = at, at += tc_probs();
    L.p1 = at, at += tc_probs();
    L.acc0 = at, at += tc_accum(DP);
    L.acc1 = at, at += n_acc > 1 ? tc_accum(DP) : 0;
    L.stats = at, at += tc_align(2 * TC_ROWS * 4);
    L.total = at;
    return L;
}

/* out[row][d] = alpha * acc[r][d] for the warp's 16 rows (row0 + r < n). */
template <int DP>
__device__ static void tc_store_rows(float *out, const float *acc, int row0, int n, long HD, int D,
                                     float alpha) {
    const int lane = threadIdx.x % 32;
    for (int idx = lane; idx < 16 * D; idx += 32) {
        const int r = idx / D, d = idx % D;
        if (row0 + r < n) out[(long)(row0 + r) * HD + d] = alpha * acc[r * (DP + TC_PADF) + d];
    }
}

// dq = scale * dS K; grid (ceil(Nq/64), heads, B)
template <typename T, int DP>
__global__ void __launch_bounds__(TC_THREADS)
    attention_dq_tc_kernel(float *dq, const float *dout, const float *q, const float *k,
                           const float *v, const float *lse, const float *Drow, int Nq, int Nk,
                           int heads, int D, float scale, int causal) {
    typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> frag_a;
    extern __shared__ __align__(128) unsigned char smem[];
    const tc_bwd_smem L = tc_bwd_layout(DP, 1);
    const int ld16 = DP + TC_PAD16, lds = TC_COLS + TC_PADF, ldp = TC_COLS + TC_PAD16;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    T *qs = (T *)(smem + L.a), *dos = (T *)(smem + L.b);
    T *ks = (T *)(smem + L.c), *vs = (T *)(smem + L.d);
    float *ss = (float *)(smem + L.s0) + w * 16 * lds, *dps = (float *)(smem + L.s1) + w * 16 * lds;
    T *dss = (T *)(smem + L.p0) + w * 16 * ldp;
    float *acc = (float *)(smem + L.acc0) + w * 16 * (DP + TC_PADF);
    float *lse_s = (float *)(smem + L.stats), *drow_s = lse_s + TC_ROWS;
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * TC_ROWS;
    const long HD = (long)heads * D, bh = (long)b * heads + h;
    const long qoff = (long)b * Nq * HD + (long)h * D, koff = (long)b * Nk * HD + (long)h * D;

    tc_load<T, DP>(qs, q + qoff, i0, Nq, HD, D);
    tc_load<T, DP>(dos, dout + qoff, i0, Nq, HD, D);
    for (int idx = threadIdx.x; idx < TC_ROWS; idx += TC_THREADS) {
        const bool in = i0 + idx < Nq;
        lse_s[idx] = in ? lse[bh * Nq + i0 + idx] : 0.0f;
        drow_s[idx] = in ? Drow[bh * Nq + i0 + idx] : 0.0f;
    }
    for (int idx = lane; idx < 16 * (DP + TC_PADF); idx += 32) acc[idx] = 0.0f;
    __syncthreads();
    frag_a qf[DP / 16], dof[DP / 16];
#pragma unroll
    for (int kk = 0; kk < DP / 16; kk++) {
        wmma::load_matrix_sync(qf[kk], qs + w * 16 * ld16 + kk * 16, ld16);
        wmma::load_matrix_sync(dof[kk], dos + w * 16 * ld16 + kk * 16, ld16);
    }
    const int kend = causal && i0 + TC_ROWS < Nk ? i0 + TC_ROWS : Nk;
    for (int j0 = 0; j0 < kend; j0 += TC_COLS) {
        __syncthreads();
        tc_load<T, DP>(ks, k + koff, j0, Nk, HD, D);
        tc_load<T, DP>(vs, v + koff, j0, Nk, HD, D);
        __syncthreads();
        tc_times_transposed<T, DP>(ss, qf, ks);   /* S = Q K^T */
        tc_times_transposed<T, DP>(dps, dof, vs); /* dP = dO V^T */
        __syncwarp();
        for (int idx = lane; idx < 16 * TC_COLS; idx += 32) {
            const int r = idx / TC_COLS, c = idx % TC_COLS;
            const int i = i0 + w * 16 + r, j = j0 + c;
            const bool ok = i < Nq && j < Nk && (!causal || j <= i);
            const float p = ok ? expf(ss[r * lds + c] * scale - lse_s[w * 16 + r]) : 0.0f;
            dss[r * ldp + c] = tc_narrow<T>(p * (dps[r * lds + c] - drow_s[w * 16 + r]));
        }
        __syncwarp();
        tc_accumulate<T, DP>(acc, dss, ks); /* dQ += dS K */
        __syncwarp();
    }
    tc_store_rows<DP>(dq + qoff, acc, i0 + w * 16, Nq, HD, D, scale);
}

// dv = P^T dO, dk = scale * dS^T Q; rows are keys; grid (ceil(Nk/64), heads, B)
template <typename T, int DP>
__global__ void __launch_bounds__(TC_THREADS)
    attention_dkv_tc_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, const float *lse, const float *Drow, int Nq, int Nk,
                            int heads, int D, float scale, int causal) {
    typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> frag_a;
    extern __shared__ __align__(128) unsigned char smem[];
    const tc_bwd_smem L = tc_bwd_layout(DP, 2);
    const int ld16 = DP + TC_PAD16, lds = TC_COLS + TC_PADF, ldp = TC_COLS + TC_PAD16;
    const int ldo = DP + TC_PADF;
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    T *ks = (T *)(smem + L.a), *vs = (T *)(smem + L.b);
    T *qs = (T *)(smem + L.c), *dos = (T *)(smem + L.d);
    float *sts = (float *)(smem + L.s0) + w * 16 * lds,
          *dpts = (float *)(smem + L.s1) + w * 16 * lds;
    T *pts = (T *)(smem + L.p0) + w * 16 * ldp, *dsts = (T *)(smem + L.p1) + w * 16 * ldp;
    float *dk_acc = (float *)(smem + L.acc0) + w * 16 * ldo;
    float *dv_acc = (float *)(smem + L.acc1) + w * 16 * ldo;
    float *lse_s = (float *)(smem + L.stats), *drow_s = lse_s + TC_COLS;
    const int b = blockIdx.z, h = blockIdx.y, j0 = blockIdx.x * TC_ROWS;
    const long HD = (long)heads * D, bh = (long)b * heads + h;
    const long qoff = (long)b * Nq * HD + (long)h * D, koff = (long)b * Nk * HD + (long)h * D;

    tc_load<T, DP>(ks, k + koff, j0, Nk, HD, D);
    tc_load<T, DP>(vs, v + koff, j0, Nk, HD, D);
    for (int idx = lane; idx < 16 * ldo; idx += 32) dk_acc[idx] = 0.0f, dv_acc[idx] = 0.0f;
    __syncthreads();
    frag_a kf[DP / 16], vf[DP / 16];
#pragma unroll
    for (int kk = 0; kk < DP / 16; kk++) {
        wmma::load_matrix_sync(kf[kk], ks + w * 16 * ld16 + kk * 16, ld16);
        wmma::load_matrix_sync(vf[kk], vs + w * 16 * ld16 + kk * 16, ld16);
    }
    /* causal: query i sees key j only when j <= i, so queries start at j0 */
    for (int i0 = causal ? j0 : 0; i0 < Nq; i0 += TC_COLS) {
        __syncthreads();
        tc_load<T, DP>(qs, q + qoff, i0, Nq, HD, D);
        tc_load<T, DP>(dos, dout + qoff, i0, Nq, HD, D);
        for (int idx = threadIdx.x; idx < TC_COLS; idx += TC_THREADS) {
            const bool in = i0 + idx < Nq;
            lse_s[idx] = in ? lse[bh * Nq + i0 + idx] : 0.0f;
            drow_s[idx] = in ? Drow[bh * Nq + i0 + idx] : 0.0f;
        }
        __syncthreads();
        tc_times_transposed<T, DP>(sts, kf, qs);   /* S^T = K Q^T */
        tc_times_transposed<T, DP>(dpts, vf, dos); /* dP^T = V dO^T */
        __syncwarp();
        for (int idx = lane; idx < 16 * TC_COLS; idx += 32) {
            const int r = idx / TC_COLS, c = idx % TC_COLS;
            const int j = j0 + w * 16 + r, i = i0 + c;
            const bool ok = i < Nq && j < Nk && (!causal || j <= i);
            const float p = ok ? expf(sts[r * lds + c] * scale - lse_s[c]) : 0.0f;
            pts[r * ldp + c] = tc_narrow<T>(p);
            dsts[r * ldp + c] = tc_narrow<T>(p * (dpts[r * lds + c] - drow_s[c]));
        }
        __syncwarp();
        tc_accumulate<T, DP>(dv_acc, pts, dos); /* dV += P^T dO */
        tc_accumulate<T, DP>(dk_acc, dsts, qs); /* dK += dS^T Q */
        __syncwarp();
    }
    if (dk) tc_store_rows<DP>(dk + koff, dk_acc, j0 + w * 16, Nk, HD, D, scale);
    if (dv) tc_store_rows<DP>(dv + koff, dv_acc, j0 + w * 16, Nk, HD, D, 1.0f);
}

/* Launches both passes for (T, DP); 0 when the device lacks the shared
 * memory for either (nothing launched). */
template <typename T, int DP>
static int tc_bwd_launch(cu_impl *cu, float *dq, float *dk, float *dv, const float *dout,
                         const float *q, const float *k, const float *v, const float *lse,
                         const float *Drow, int B, int Nq, int Nk, int heads, int D, float scale,
                         int causal) {
    const size_t bytes_q = tc_bwd_layout(DP, 1).total, bytes_kv = tc_bwd_layout(DP, 2).total;
    const int ok_q = tc_smem_optin(cu, attention_dq_tc_kernel<T, DP>, bytes_q);
    const int ok_kv = ok_q > 0 ? tc_smem_optin(cu, attention_dkv_tc_kernel<T, DP>, bytes_kv) : 0;
    if (ok_q < 0 || ok_kv < 0) return 1;
    if (!ok_q || !ok_kv) return 0;
    if (dq) {
        const dim3 grid((Nq + TC_ROWS - 1) / TC_ROWS, heads, B);
        attention_dq_tc_kernel<T, DP><<<grid, TC_THREADS, bytes_q, cu->stream>>>(
            dq, dout, q, k, v, lse, Drow, Nq, Nk, heads, D, scale, causal);
        if (CU_LAUNCHED(cu, "attention_dq_tc_kernel")) return 1;
    }
    if (dk || dv) {
        const dim3 grid((Nk + TC_ROWS - 1) / TC_ROWS, heads, B);
        attention_dkv_tc_kernel<T, DP><<<grid, TC_THREADS, bytes_kv, cu->stream>>>(
            dk, dv, dout, q, k, v, lse, Drow, Nq, Nk, heads, D, scale, causal);
        CU_LAUNCHED(cu, "attention_dkv_tc_kernel");
    }
    return 1;
}

template <typename T>
static int tc_bwd_dispatch(cu_impl *cu, float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *lse,
                           const float *Drow, int B, int Nq, int Nk, int heads, int D, float scale,
                           int causal) {
#define TC_CASE(DP)                                                                                \
    case DP:                                                                                       \
        return tc_bwd_launch<T, DP>(cu, dq, dk, dv, dout, q, k, v, lse, Drow, B, Nq, Nk, heads, D, \
                                    scale, causal)
    TC_DISPATCH_DP(D, TC_CASE)
#undef TC_CASE
    return 0;
}

int cu_attention_backward_tc(cu_impl *cu, float *dq, float *dk, float *dv, const float *dout,
                             const float *q, const float *k, const float *v, const float *lse,
                             const float *Drow, int B, int Nq, int Nk, int heads, int D,
                             float scale, int causal) {
    if (D > TC_DMAX || B > 65535 || heads > 65535) return 0;
    if (cu->prec == CNET_PREC_BF16)
        return tc_bwd_dispatch<__nv_bfloat16>(cu, dq, dk, dv, dout, q, k, v, lse, Drow, B, Nq, Nk,
                                              heads, D, scale, causal);
    if (cu->prec == CNET_PREC_F16)
        return tc_bwd_dispatch<__half>(cu, dq, dk, dv, dout, q, k, v, lse, Drow, B, Nq, Nk, heads,
                                       D, scale, causal);
    return 0;
}
