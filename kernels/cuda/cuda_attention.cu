/* Fused multi-head attention of the CUDA backend, out = softmax(scale Q K^T
 * [+ causal mask]) V, forward and backward, never holding the Nq x Nk score
 * matrix. Float32 on CUDA cores (the parity path; no TF32); at bf16 / fp16
 * precision both run on tensor cores instead (cuda_attention_tc.cu,
 * cuda_attention_tc_bwd.cu) for head dims up to 160, the backward after
 * the D rows computed here.
 *
 * Algorithm: FlashAttention-2 (Dao, 2023), as the CPU backend
 * (kernels/cpu/attention.c). The forward walks tiles of 32 keys for a tile
 * of 32 queries with an online softmax (running max m and sum l, the output
 * rescaled by exp(m_old - m_new)) and saves lse = m + log l. The backward is
 * two deterministic passes without atomics: one block per query tile
 * accumulates dQ over the keys, one block per key tile accumulates dK and
 * dV over the queries; both recompute P = exp(scale Q K^T - lse) and use
 * D_i = rowsum(dO_i * O_i) (a small kernel, in double as on the CPU).
 *
 * Work layout: 4 warps x 8 rows = 32 rows per block ("row side": queries in
 * the forward and dQ, keys in dK/dV); the 32 lanes of a warp hold the 32
 * columns of the other side. Dot products over the head dim run in chunks of
 * 32 through shared memory, so any D works with fixed shared memory; each
 * lane accumulates NC output columns (lane + 32 j), NC = ceil(D/32) up to 5
 * (D <= 160: the SD head dims 40, 64, 80, 160 take one pass, 40 and 80
 * padded to 64 and 96), larger D in several column passes (grid.z) that
 * recompute the scores. exp is cpu_expf, as on the CPU.
 *
 * Sizes: B batch, Nq queries, Nk keys, heads, D head dim; rows of q/out are
 * [heads*D] (head h at columns h*D..h*D+D-1), rows of k/v likewise. */
#include <math.h>

#include "kernels/common/vexp.h"
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

enum {
    AT_ROWS = 32, /* rows per block (4 warps x AT_WROWS) */
    AT_WROWS = 8, /* rows per warp */
    AT_COLS = 32, /* lane-side columns per tile */
    AT_THREADS = 128,
    AT_NC_MAX = 5, /* output columns per lane / 32: D <= 160 in one pass */
};

typedef struct at_smem {
    float xs[AT_ROWS][33]; /* row-side chunk of 32 head-dim values */
    float ys[AT_COLS][33]; /* lane-side chunk */
} at_smem;

/* s[r] += X[x0 + 8w + r, :] . Y[y0 + lane, :] over the whole head dim, for
 * the warp's 8 rows; X and Y point at (batch, head) column 0, rows HD apart;
 * rows past nx / ny read as zeros. */
__device__ static void tile_dot(float s[AT_WROWS], at_smem *sm, const float *X, int x0, int nx,
                                const float *Y, int y0, int ny, long HD, int D) {
    const int tid = threadIdx.x, w = tid / 32, lane = tid % 32;
    for (int d0 = 0; d0 < D; d0 += 32) {
        __syncthreads();
        for (int idx = tid; idx < 32 * 32; idx += AT_THREADS) {
            const int r = idx / 32, c = idx % 32, d = d0 + c;
            sm->xs[r][c] = (x0 + r < nx && d < D) ? X[(long)(x0 + r) * HD + d] : 0.0f;
            sm->ys[r][c] = (y0 + r < ny && d < D) ? Y[(long)(y0 + r) * HD + d] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int c = 0; c < 32; c++) {
            const float y = sm->ys[lane][c];
#pragma unroll
            for (int r = 0; r < AT_WROWS; r++) s[r] += sm->xs[w * AT_WROWS + r][c] * y;
        }
    }
}

/* zs[l][j*32 + t] = Z[z0 + l, c0 + j*32 + t] (zero outside nz x D). */
template <int NC>
__device__ static void load_cols(float (*zs)[NC * 32], const float *Z, int z0, int nz, int c0,
                                 long HD, int D) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < 32 * NC * 32; idx += AT_THREADS) {
        const int l = idx / (NC * 32), cc = idx % (NC * 32), d = c0 + cc;
        zs[l][cc] = (z0 + l < nz && d < D) ? Z[(long)(z0 + l) * HD + d] : 0.0f;
    }
    __syncthreads();
}

/* acc[r][j] += sum over lanes l of p[r]@lane l * zs[l][j*32 + lane]. */
template <int NC>
__device__ static void accumulate(float acc[AT_WROWS][NC], const float p[AT_WROWS],
                                  const float (*zs)[NC * 32]) {
    const int lane = threadIdx.x % 32;
#pragma unroll 4
    for (int l = 0; l < 32; l++) {
        float pl[AT_WROWS];
#pragma unroll
        for (int r = 0; r < AT_WROWS; r++) pl[r] = __shfl_sync(0xffffffffu, p[r], l);
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const float z = zs[l][j * 32 + lane];
#pragma unroll
            for (int r = 0; r < AT_WROWS; r++) acc[r][j] += pl[r] * z;
        }
    }
}

__device__ static inline float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ static inline float warp_sumf(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// grid (ceil(Nq/32), B*heads, column passes)
template <int NC>
__global__ void __launch_bounds__(AT_THREADS)
    attention_forward_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                             int Nq, int Nk, int heads, int D, float scale, int causal) {
    __shared__ at_smem sm;
    __shared__ float zs[32][NC * 32];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const int i0 = blockIdx.x * AT_ROWS, c0 = blockIdx.z * NC * 32;
    const long HD = (long)heads * D;
    const float *Q = q + (long)b * Nq * HD + (long)h * D;
    const float *K = k + (long)b * Nk * HD + (long)h * D;
    const float *V = v + (long)b * Nk * HD + (long)h * D;
    float m[AT_WROWS], l[AT_WROWS], acc[AT_WROWS][NC];
    for (int r = 0; r < AT_WROWS; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int j = 0; j < NC; j++) acc[r][j] = 0.0f;
    }
    const int kend = causal && i0 + AT_ROWS < Nk ? i0 + AT_ROWS : Nk;
    for (int j0 = 0; j0 < kend; j0 += AT_COLS) {
        float s[AT_WROWS] = {0};
        tile_dot(s, &sm, Q, i0, Nq, K, j0, Nk, HD, D);
        const int j = j0 + lane;
        for (int r = 0; r < AT_WROWS; r++) {
            const int i = i0 + w * AT_WROWS + r;
            const bool ok = j < Nk && (!causal || j <= i);
            const float sv = ok ? s[r] * scale : -INFINITY;
            const float mn = fmaxf(m[r], warp_max(sv));
            const float base = mn == -INFINITY ? 0.0f : mn; /* a row with nothing visible yet */
            const float alpha = cpu_expf(m[r] - base);
            const float p = ok ? cpu_expf(sv - base) : 0.0f;
            l[r] = l[r] * alpha + p; /* per-lane partial sums, reduced at the end */
            for (int jj = 0; jj < NC; jj++) acc[r][jj] *= alpha;
            m[r] = mn;
            s[r] = p;
        }
        load_cols<NC>(zs, V, j0, Nk, c0, HD, D);
        accumulate<NC>(acc, s, zs);
    }
    for (int r = 0; r < AT_WROWS; r++) {
        const float L = warp_sumf(l[r]);
        const int i = i0 + w * AT_WROWS + r;
        if (i >= Nq) continue;
        float *o = out + ((long)b * Nq + i) * HD + (long)h * D;
        const float inv = 1.0f / L;
        for (int j = 0; j < NC; j++) {
            const int d = c0 + j * 32 + lane;
            if (d < D) o[d] = acc[r][j] * inv;
        }
        if (lse && blockIdx.z == 0 && lane == 0)
            lse[((long)b * heads + h) * Nq + i] = m[r] + logf(L);
    }
}

// Drow[b,h,i] = sum_d dout * out over the head's D columns, in double; one warp per row
__global__ void attention_drow_kernel(float *Drow, const float *dout, const float *out, int B,
                                      int Nq, int heads, int D) {
    const long row = blockIdx.x * (long)(blockDim.x / 32) + threadIdx.x / 32; // (b, h, i)
    const int lane = threadIdx.x % 32;
    if (row >= (long)B * heads * Nq) return;
    const int i = (int)(row % Nq), h = (int)(row / Nq % heads);
    const long b = row / ((long)Nq * heads);
    const long off = (b * Nq + i) * (long)heads * D + (long)h * D;
    double s = 0;
    for (int d = lane; d < D; d += 32) s += (double)dout[off + d] * out[off + d];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) Drow[row] = (float)s;
}

// dq = scale * sum_j dS K; grid (ceil(Nq/32), B*heads, column passes)
template <int NC>
__global__ void __launch_bounds__(AT_THREADS)
    attention_dq_kernel(float *dq, const float *dout, const float *q, const float *k,
                        const float *v, const float *lse, const float *Drow, int Nq, int Nk,
                        int heads, int D, float scale, int causal) {
    __shared__ at_smem sm;
    __shared__ float zs[32][NC * 32];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const int i0 = blockIdx.x * AT_ROWS, c0 = blockIdx.z * NC * 32;
    const long HD = (long)heads * D, bh = (long)b * heads + h;
    const float *Q = q + (long)b * Nq * HD + (long)h * D;
    const float *dO = dout + (long)b * Nq * HD + (long)h * D;
    const float *K = k + (long)b * Nk * HD + (long)h * D;
    const float *V = v + (long)b * Nk * HD + (long)h * D;
    float lr[AT_WROWS], dr[AT_WROWS], acc[AT_WROWS][NC];
    for (int r = 0; r < AT_WROWS; r++) {
        const int i = i0 + w * AT_WROWS + r;
        lr[r] = i < Nq ? lse[bh * Nq + i] : 0.0f;
        dr[r] = i < Nq ? Drow[bh * Nq + i] : 0.0f;
        for (int j = 0; j < NC; j++) acc[r][j] = 0.0f;
    }
    const int kend = causal && i0 + AT_ROWS < Nk ? i0 + AT_ROWS : Nk;
    for (int j0 = 0; j0 < kend; j0 += AT_COLS) {
        float s[AT_WROWS] = {0}, dp[AT_WROWS] = {0};
        tile_dot(s, &sm, Q, i0, Nq, K, j0, Nk, HD, D);
        tile_dot(dp, &sm, dO, i0, Nq, V, j0, Nk, HD, D);
        const int j = j0 + lane;
        for (int r = 0; r < AT_WROWS; r++) {
            const int i = i0 + w * AT_WROWS + r;
            const bool ok = i < Nq && j < Nk && (!causal || j <= i);
            const float p = ok ? cpu_expf(s[r] * scale - lr[r]) : 0.0f;
            s[r] = p * (dp[r] - dr[r]);
        }
        load_cols<NC>(zs, K, j0, Nk, c0, HD, D);
        accumulate<NC>(acc, s, zs);
    }
    for (int r = 0; r < AT_WROWS; r++) {
        const int i = i0 + w * AT_WROWS + r;
        if (i >= Nq) continue;
        float *o = dq + ((long)b * Nq + i) * HD + (long)h * D;
        for (int j = 0; j < NC; j++) {
            const int d = c0 + j * 32 + lane;
            if (d < D) o[d] = scale * acc[r][j];
        }
    }
}

// dv = P^T dO, dk = scale * dS^T Q; rows are keys; grid (ceil(Nk/32), B*heads, column passes)
template <int NC>
__global__ void __launch_bounds__(AT_THREADS)
    attention_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                         const float *v, const float *lse, const float *Drow, int Nq, int Nk,
                         int heads, int D, float scale, int causal) {
    __shared__ at_smem sm;
    __shared__ float zs[32][NC * 32];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int b = blockIdx.y / heads, h = blockIdx.y % heads;
    const int j0 = blockIdx.x * AT_ROWS, c0 = blockIdx.z * NC * 32;
    const long HD = (long)heads * D, bh = (long)b * heads + h;
    const float *Q = q + (long)b * Nq * HD + (long)h * D;
    const float *dO = dout + (long)b * Nq * HD + (long)h * D;
    const float *K = k + (long)b * Nk * HD + (long)h * D;
    const float *V = v + (long)b * Nk * HD + (long)h * D;
    float ak[AT_WROWS][NC], av[AT_WROWS][NC];
    for (int r = 0; r < AT_WROWS; r++)
        for (int j = 0; j < NC; j++) ak[r][j] = av[r][j] = 0.0f;
    /* with the causal mask, queries before the block's first key see none of its keys */
    for (int i0 = causal ? j0 : 0; i0 < Nq; i0 += AT_COLS) {
        const int i = i0 + lane;
        const float li = i < Nq ? lse[bh * Nq + i] : 0.0f;
        const float di = i < Nq ? Drow[bh * Nq + i] : 0.0f;
        float p[AT_WROWS] = {0};
        tile_dot(p, &sm, K, j0, Nk, Q, i0, Nq, HD, D);
        for (int r = 0; r < AT_WROWS; r++) {
            const int j = j0 + w * AT_WROWS + r;
            const bool ok = i < Nq && j < Nk && (!causal || j <= i);
            p[r] = ok ? cpu_expf(p[r] * scale - li) : 0.0f;
        }
        if (dv) {
            load_cols<NC>(zs, dO, i0, Nq, c0, HD, D);
            accumulate<NC>(av, p, zs);
        }
        if (dk) {
            float dp[AT_WROWS] = {0};
            tile_dot(dp, &sm, V, j0, Nk, dO, i0, Nq, HD, D);
            for (int r = 0; r < AT_WROWS; r++) dp[r] = p[r] * (dp[r] - di);
            load_cols<NC>(zs, Q, i0, Nq, c0, HD, D);
            accumulate<NC>(ak, dp, zs);
        }
    }
    for (int r = 0; r < AT_WROWS; r++) {
        const int j = j0 + w * AT_WROWS + r;
        if (j >= Nk) continue;
        const long off = ((long)b * Nk + j) * HD + (long)h * D;
        for (int jj = 0; jj < NC; jj++) {
            const int d = c0 + jj * 32 + lane;
            if (d >= D) continue;
            if (dk) dk[off + d] = scale * ak[r][jj];
            if (dv) dv[off + d] = av[r][jj];
        }
    }
}

/* Output columns per lane / 32 for head dim D, and the column passes. */
static int attn_nc(int D) {
    const int nc = (D + 31) / 32;
    return nc < AT_NC_MAX ? (nc > 0 ? nc : 1) : AT_NC_MAX;
}

#define AT_DISPATCH(nc, launch)                                                                    \
    switch (nc) {                                                                                  \
    case 1:                                                                                        \
        launch(1);                                                                                 \
        break;                                                                                     \
    case 2:                                                                                        \
        launch(2);                                                                                 \
        break;                                                                                     \
    case 3:                                                                                        \
        launch(3);                                                                                 \
        break;                                                                                     \
    case 4:                                                                                        \
        launch(4);                                                                                 \
        break;                                                                                     \
    default:                                                                                       \
        launch(5);                                                                                 \
        break;                                                                                     \
    }

void cuda_attention_forward(cnet_backend *be, float *out, float *lse, const float *q,
                            const float *k, const float *v, int B, int Nq, int Nk, int heads, int D,
                            float scale, int causal) {
    cu_impl *cu = cu_enter(be);
    if (!cu || B <= 0 || Nq <= 0 || Nk <= 0 || heads <= 0 || D <= 0) return;
    if (cu_attention_forward_tc(cu, out, lse, q, k, v, B, Nq, Nk, heads, D, scale, causal)) return;
    const int nc = attn_nc(D);
    const dim3 grid((Nq + AT_ROWS - 1) / AT_ROWS, B * heads, (D + nc * 32 - 1) / (nc * 32));
#define LAUNCH_FWD(NC)                                                                             \
    attention_forward_kernel<NC>                                                                   \
        <<<grid, AT_THREADS, 0, cu->stream>>>(out, lse, q, k, v, Nq, Nk, heads, D, scale, causal)
    AT_DISPATCH(nc, LAUNCH_FWD)
#undef LAUNCH_FWD
    CU_LAUNCHED(cu, "attention_forward_kernel");
}

void cuda_attention_backward(cnet_backend *be, float *dq, float *dk, float *dv, const float *dout,
                             const float *q, const float *k, const float *v, const float *out,
                             const float *lse, int B, int Nq, int Nk, int heads, int D, float scale,
                             int causal) {
    // dq [B,Nq,heads*D], dk/dv [B,Nk,heads*D] (=, any may be NULL)
    cu_impl *cu = cu_enter(be);
    if (!cu || (!dq && !dk && !dv) || B <= 0 || heads <= 0 || D <= 0) return;
    if (Nq <= 0 || Nk <= 0) return;
    const long rows = (long)B * heads * Nq;
    float *Drow =
        (float *)cu_scratch(cu, CU_SLOT_RED2, (size_t)rows * sizeof(float)); // [B,heads,Nq]
    if (!Drow) return;
    const int wpb = CU_THREADS / 32;
    attention_drow_kernel<<<(unsigned)((rows + wpb - 1) / wpb), CU_THREADS, 0, cu->stream>>>(
        Drow, dout, out, B, Nq, heads, D);
    if (CU_LAUNCHED(cu, "attention_drow_kernel")) return;
    if (cu_attention_backward_tc(cu, dq, dk, dv, dout, q, k, v, lse, Drow, B, Nq, Nk, heads, D,
                                 scale, causal))
        return;
    const int nc = attn_nc(D), passes = (D + nc * 32 - 1) / (nc * 32);
    if (dq) {
        const dim3 grid((Nq + AT_ROWS - 1) / AT_ROWS, B * heads, passes);
#define LAUNCH_DQ(NC)                                                                              \
    attention_dq_kernel<NC><<<grid, AT_THREADS, 0, cu->stream>>>(dq, dout, q, k, v, lse, Drow, Nq, \
                                                                 Nk, heads, D, scale, causal)
        AT_DISPATCH(nc, LAUNCH_DQ)
#undef LAUNCH_DQ
        if (CU_LAUNCHED(cu, "attention_dq_kernel")) return;
    }
    if (dk || dv) {
        const dim3 grid((Nk + AT_ROWS - 1) / AT_ROWS, B * heads, passes);
#define LAUNCH_DKV(NC)                                                                             \
    attention_dkv_kernel<NC><<<grid, AT_THREADS, 0, cu->stream>>>(                                 \
        dk, dv, dout, q, k, v, lse, Drow, Nq, Nk, heads, D, scale, causal)
        AT_DISPATCH(nc, LAUNCH_DKV)
#undef LAUNCH_DKV
        CU_LAUNCHED(cu, "attention_dkv_kernel");
    }
}
