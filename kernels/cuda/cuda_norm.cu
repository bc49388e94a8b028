/* Group norm (with optional fused SiLU) and layer norm of the CUDA backend,
 * forward and backward, on channels-last activations.
 *
 * The statistics follow the CPU backend (kernels/cpu/norm.c): two passes in
 * double (mean, then squared deviations), rstd = 1/sqrt(var + eps), the
 * forward subtracts float(mean) and then its rounding residual, and the
 * backward reads the float mean/rstd the forward saved. Every reduction is
 * deterministic: fixed chunks of rows summed with a fixed tree, then the
 * chunk sums added in order by one thread per output.
 *
 * Group norm layout: a sample's [HW, C] is cut into chunks of GN_ROWS pixels;
 * a block of 32 channels x 8 row lanes sums one chunk per channel, so the
 * per-channel partials part[B][chunk][C] are read coalesced, and the group
 * statistics add the Cg channels of a group. Layer norm: one warp per row.
 *
 * Sizes: B batch, HW pixels, C channels, G groups of Cg = C/G channels,
 * M rows (tokens) of a layer norm. */
#include <math.h>

#include "kernels/common/vexp.h"
#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

/* Pixels per chunk of a group-norm reduction. */
#define GN_ROWS 256
/* Rows per block of the layer-norm parameter-gradient sums (as the CPU's
 * LN_ROWS_PER_BLOCK). */
#define LN_ROWS 64

enum { GN_SUM_X = 0, GN_SUM_DEV2 = 1 };

__device__ static inline float silu_grad(float y) {
    const float s = 1.0f / (1.0f + cpu_expf(-y));
    return s * (1.0f + y * (1.0f - s));
}

/* Sums over the 8 row lanes of a (32, 8) block, in lane order; the result is
 * valid in threadIdx.y == 0. */
__device__ static inline double lane_sum8(double (*acc)[33], double v) {
    acc[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    double t = 0;
    if (threadIdx.y == 0)
        for (int k = 0; k < 8; k++) t += acc[k][threadIdx.x];
    __syncthreads();
    return t;
}

// part[b, chunk, c] = sum over the chunk's pixels of x (mode GN_SUM_X) or of
// (x - mu[b, g(c)])^2 (GN_SUM_DEV2); grid (C/32, nchunk, B), block (32, 8)
__global__ void gn_partial_kernel(double *part, const float *x, const double *mu, int HW, int C,
                                  int Cg, int G, int mode) {
    __shared__ double acc[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x, b = blockIdx.z;
    const int r0 = blockIdx.y * GN_ROWS, r1 = r0 + GN_ROWS < HW ? r0 + GN_ROWS : HW;
    double s = 0;
    if (c < C) {
        const float *xb = x + (long)b * HW * C + c;
        const double m = mode == GN_SUM_DEV2 ? mu[b * G + c / Cg] : 0.0;
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            const double v = xb[(long)r * C];
            s += mode == GN_SUM_DEV2 ? (v - m) * (v - m) : v;
        }
    }
    s = lane_sum8(acc, s);
    if (threadIdx.y == 0 && c < C) part[((long)b * gridDim.y + blockIdx.y) * C + c] = s;
}

// one thread per (b, g): the group's sum of part over chunks and channels;
// mode GN_SUM_X: mu = sum / count; GN_SUM_DEV2: rs = 1 / sqrt(sum / count + eps)
__global__ void gn_stats_kernel(double *mu, double *rs, float *mean, float *rstd,
                                const double *part, int nchunk, int C, int Cg, int G, int BG,
                                double count, float eps, int mode) {
    const int bg = blockIdx.x * blockDim.x + threadIdx.x;
    if (bg >= BG) return;
    const int b = bg / G, g = bg % G;
    double s = 0;
    for (int k = 0; k < nchunk; k++)
        for (int c = 0; c < Cg; c++) s += part[((long)b * nchunk + k) * C + g * Cg + c];
    if (mode == GN_SUM_X) {
        mu[bg] = s / count;
        if (mean) mean[bg] = (float)mu[bg];
    } else {
        rs[bg] = 1.0 / sqrt(s / count + eps);
        if (rstd) rstd[bg] = (float)rs[bg];
    }
}

// out = ((x - muf) - dmu) * rsf * gamma + beta [then SiLU], over [B, HW, C]
__global__ void gn_apply_kernel(float *out, const float *inp, const double *mu, const double *rs,
                                const float *gamma, const float *beta, long HWC, int C, int Cg,
                                int G, int fuse_silu, long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const int bg = (int)(i / HWC) * G + c / Cg;
        const float muf = (float)mu[bg], dmu = (float)(mu[bg] - muf), rsf = (float)rs[bg];
        const float v = ((inp[i] - muf) - dmu) * rsf * gamma[c] + beta[c];
        out[i] = fuse_silu ? v / (1.0f + cpu_expf(-v)) : v;
    }
}

void cuda_group_norm_forward(cnet_backend *be, float *out, float *mean, float *rstd,
                             const float *inp, const float *gamma, const float *beta, int B, int HW,
                             int C, int G, float eps, int fuse_silu) {
    // out [B,HW,C], mean/rstd [B,G] (may be NULL), inp [B,HW,C], gamma/beta [C]
    cu_impl *cu = cu_enter(be);
    if (!cu || B <= 0 || HW <= 0 || C <= 0) return;
    const int Cg = C / G, BG = B * G, nchunk = (HW + GN_ROWS - 1) / GN_ROWS;
    const double count = (double)HW * Cg;
    double *part = (double *)cu_scratch(cu, CU_SLOT_RED, (size_t)B * nchunk * C * sizeof(double));
    double *stats = (double *)cu_scratch(cu, CU_SLOT_RED2, 2 * (size_t)BG * sizeof(double));
    if (!part || !stats) return;
    double *mu = stats, *rs = stats + BG; // [B*G] each
    const dim3 grid((C + 31) / 32, nchunk, B), block(32, 8);
    const int sb = (BG + CU_THREADS - 1) / CU_THREADS;
    gn_partial_kernel<<<grid, block, 0, cu->stream>>>(part, inp, mu, HW, C, Cg, G, GN_SUM_X);
    gn_stats_kernel<<<sb, CU_THREADS, 0, cu->stream>>>(mu, rs, mean, rstd, part, nchunk, C, Cg, G,
                                                       BG, count, eps, GN_SUM_X);
    gn_partial_kernel<<<grid, block, 0, cu->stream>>>(part, inp, mu, HW, C, Cg, G, GN_SUM_DEV2);
    gn_stats_kernel<<<sb, CU_THREADS, 0, cu->stream>>>(mu, rs, mean, rstd, part, nchunk, C, Cg, G,
                                                       BG, count, eps, GN_SUM_DEV2);
    if (CU_LAUNCHED(cu, "group norm statistics")) return;
    const long n = (long)B * HW * C;
    CU_LAUNCH(cu, gn_apply_kernel, n, out, inp, mu, rs, gamma, beta, (long)HW * C, C, Cg, G,
              fuse_silu, n);
}

// part[b, chunk, c] = (sum dy*xhat, sum dy) over the chunk's pixels, dy = dout
// (times silu'(gamma xhat + beta) when fused); part is [B][nchunk][2][C]
__global__ void gnb_partial_kernel(double *part, const float *dout, const float *inp,
                                   const float *mean, const float *rstd, const float *gamma,
                                   const float *beta, int HW, int C, int Cg, int G, int fuse_silu) {
    __shared__ double acc[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x, b = blockIdx.z;
    const int r0 = blockIdx.y * GN_ROWS, r1 = r0 + GN_ROWS < HW ? r0 + GN_ROWS : HW;
    double sg = 0, sb = 0;
    if (c < C) {
        const long base = (long)b * HW * C + c;
        const float mu = mean[b * G + c / Cg], rs = rstd[b * G + c / Cg];
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            const float xh = (inp[base + (long)r * C] - mu) * rs;
            const float g = dout[base + (long)r * C];
            const float dy = fuse_silu ? g * silu_grad(gamma[c] * xh + beta[c]) : g;
            sg += (double)dy * xh;
            sb += dy;
        }
    }
    sg = lane_sum8(acc, sg);
    sb = lane_sum8(acc, sb);
    if (threadIdx.y == 0 && c < C) {
        double *p = part + ((long)b * gridDim.y + blockIdx.y) * 2 * C;
        p[c] = sg;
        p[C + c] = sb;
    }
}

// one thread per channel: per-sample sums (over chunks, in order) into
// bsum[b][2][C], and dgamma/dbeta += their sum over the batch
__global__ void gnb_channel_kernel(double *bsum, float *dgamma, float *dbeta, const double *part,
                                   int B, int nchunk, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double dga = 0, dbe = 0;
    for (int b = 0; b < B; b++) {
        double sg = 0, sb = 0;
        for (int k = 0; k < nchunk; k++) {
            const double *p = part + ((long)b * nchunk + k) * 2 * C;
            sg += p[c];
            sb += p[C + c];
        }
        bsum[(long)b * 2 * C + c] = sg;
        bsum[(long)b * 2 * C + C + c] = sb;
        dga += sg;
        dbe += sb;
    }
    if (dgamma) dgamma[c] += (float)dga;
    if (dbeta) dbeta[c] += (float)dbe;
}

// one thread per (b, g): m12[bg] = (mean of dy*gamma, mean of dy*gamma*xhat)
__global__ void gnb_group_kernel(float *m12, const double *bsum, const float *gamma, int C, int Cg,
                                 int G, int BG, double count) {
    const int bg = blockIdx.x * blockDim.x + threadIdx.x;
    if (bg >= BG) return;
    const int b = bg / G, g = bg % G;
    double s1 = 0, s2 = 0;
    for (int c = g * Cg; c < (g + 1) * Cg; c++) {
        s1 += gamma[c] * bsum[(long)b * 2 * C + C + c];
        s2 += gamma[c] * bsum[(long)b * 2 * C + c];
    }
    m12[2 * bg] = (float)(s1 / count);
    m12[2 * bg + 1] = (float)(s2 / count);
}

// dinp = rstd * (dy*gamma - m1 - xhat*m2)
__global__ void gnb_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, const float *beta,
                                const float *m12, long HWC, int C, int Cg, int G, int fuse_silu,
                                long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const int bg = (int)(i / HWC) * G + c / Cg;
        const float mu = mean[bg], rs = rstd[bg];
        const float xh = (inp[i] - mu) * rs;
        const float dy = fuse_silu ? dout[i] * silu_grad(gamma[c] * xh + beta[c]) : dout[i];
        dinp[i] = rs * (dy * gamma[c] - m12[2 * bg] - xh * m12[2 * bg + 1]);
    }
}

void cuda_group_norm_backward(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                              const float *dout, const float *inp, const float *mean,
                              const float *rstd, const float *gamma, const float *beta, int B,
                              int HW, int C, int G, int fuse_silu) {
    // dinp [B,HW,C] (=), dgamma/dbeta [C] (+=), dout/inp [B,HW,C], mean/rstd [B,G]
    cu_impl *cu = cu_enter(be);
    if (!cu || B <= 0 || HW <= 0 || C <= 0) return;
    const int Cg = C / G, BG = B * G, nchunk = (HW + GN_ROWS - 1) / GN_ROWS;
    const double count = (double)HW * Cg;
    double *part =
        (double *)cu_scratch(cu, CU_SLOT_RED, (size_t)B * nchunk * 2 * C * sizeof(double));
    double *bsum = (double *)cu_scratch(
        cu, CU_SLOT_RED2, (size_t)B * 2 * C * sizeof(double) + 2 * (size_t)BG * sizeof(float));
    if (!part || !bsum) return;
    float *m12 = (float *)(bsum + (size_t)B * 2 * C); // [B*G][2]
    gnb_partial_kernel<<<dim3((C + 31) / 32, nchunk, B), dim3(32, 8), 0, cu->stream>>>(
        part, dout, inp, mean, rstd, gamma, beta, HW, C, Cg, G, fuse_silu);
    gnb_channel_kernel<<<(C + CU_THREADS - 1) / CU_THREADS, CU_THREADS, 0, cu->stream>>>(
        bsum, dgamma, dbeta, part, B, nchunk, C);
    if (CU_LAUNCHED(cu, "group norm backward sums") || !dinp) return;
    gnb_group_kernel<<<(BG + CU_THREADS - 1) / CU_THREADS, CU_THREADS, 0, cu->stream>>>(
        m12, bsum, gamma, C, Cg, G, BG, count);
    const long n = (long)B * HW * C;
    CU_LAUNCH(cu, gnb_dinp_kernel, n, dinp, dout, inp, mean, rstd, gamma, beta, m12, (long)HW * C,
              C, Cg, G, fuse_silu, n);
}

/* Sum over a warp in a fixed butterfly order (the same on every run). */
__device__ static inline double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// one warp per row of inp[M,C]
__global__ void ln_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                  const float *gamma, const float *beta, int M, int C, float eps) {
    const int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (m >= M) return;
    const float *x = inp + (long)m * C;
    double s = 0;
    for (int c = lane; c < C; c += 32) s += x[c];
    const double mu = warp_sum(s) / C;
    double ss = 0;
    for (int c = lane; c < C; c += 32) ss += (x[c] - mu) * (x[c] - mu);
    const double rs = 1.0 / sqrt(warp_sum(ss) / C + eps);
    if (lane == 0) {
        if (mean) mean[m] = (float)mu;
        if (rstd) rstd[m] = (float)rs;
    }
    const float muf = (float)mu, dmu = (float)(mu - muf), rsf = (float)rs;
    float *y = out + (long)m * C;
    for (int c = lane; c < C; c += 32) y[c] = ((x[c] - muf) - dmu) * rsf * gamma[c] + beta[c];
}

void cuda_layer_norm_forward(cnet_backend *be, float *out, float *mean, float *rstd,
                             const float *inp, const float *gamma, const float *beta, int M, int C,
                             float eps) {
    // out/inp [M,C], mean/rstd [M] (may be NULL), gamma/beta [C]
    cu_impl *cu = cu_enter(be);
    if (!cu || M <= 0 || C <= 0) return;
    const int rows_per_block = CU_THREADS / 32;
    ln_forward_kernel<<<(M + rows_per_block - 1) / rows_per_block, CU_THREADS, 0, cu->stream>>>(
        out, mean, rstd, inp, gamma, beta, M, C, eps);
    CU_LAUNCHED(cu, "ln_forward_kernel");
}

// one warp per row: dinp = rstd * (dy*gamma - mean(dy*gamma) - xhat * mean(dy*gamma*xhat))
__global__ void ln_dinp_kernel(float *dinp, const float *dout, const float *inp, const float *mean,
                               const float *rstd, const float *gamma, int M, int C) {
    const int m = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (m >= M) return;
    const float *x = inp + (long)m * C, *dy = dout + (long)m * C;
    const float mu = mean[m], rs = rstd[m];
    double s1 = 0, s2 = 0;
    for (int c = lane; c < C; c += 32) {
        const float xh = (x[c] - mu) * rs;
        s1 += (double)dy[c] * gamma[c];
        s2 += (double)dy[c] * gamma[c] * xh;
    }
    const float a = (float)(warp_sum(s1) / C), b = (float)(warp_sum(s2) / C);
    float *dx = dinp + (long)m * C;
    for (int c = lane; c < C; c += 32) {
        const float xh = (x[c] - mu) * rs;
        dx[c] = rs * (dy[c] * gamma[c] - a - xh * b);
    }
}

// part[blk][2][C] = (sum dy*xhat, sum dy) over rows blk*LN_ROWS..; grid (C/32, nblk), block (32, 8)
__global__ void ln_param_partial_kernel(double *part, const float *dout, const float *inp,
                                        const float *mean, const float *rstd, int M, int C) {
    __shared__ double acc[8][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    const int r0 = blockIdx.y * LN_ROWS, r1 = r0 + LN_ROWS < M ? r0 + LN_ROWS : M;
    double sg = 0, sb = 0;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += 8) {
            const float xh = (inp[(long)r * C + c] - mean[r]) * rstd[r];
            const float dy = dout[(long)r * C + c];
            sg += (double)dy * xh;
            sb += dy;
        }
    sg = lane_sum8(acc, sg);
    sb = lane_sum8(acc, sb);
    if (threadIdx.y == 0 && c < C) {
        part[(long)blockIdx.y * 2 * C + c] = sg;
        part[(long)blockIdx.y * 2 * C + C + c] = sb;
    }
}

__global__ void ln_param_finish_kernel(float *dgamma, float *dbeta, const double *part, int nblk,
                                       int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sg = 0, sb = 0;
    for (int k = 0; k < nblk; k++) {
        sg += part[(long)k * 2 * C + c];
        sb += part[(long)k * 2 * C + C + c];
    }
    if (dgamma) dgamma[c] += (float)sg;
    if (dbeta) dbeta[c] += (float)sb;
}

void cuda_layer_norm_backward(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                              const float *dout, const float *inp, const float *mean,
                              const float *rstd, const float *gamma, int M, int C) {
    // dinp [M,C] (=), dgamma/dbeta [C] (+=), dout/inp [M,C], mean/rstd [M]
    cu_impl *cu = cu_enter(be);
    if (!cu || M <= 0 || C <= 0) return;
    if (dinp) {
        const int rows_per_block = CU_THREADS / 32;
        ln_dinp_kernel<<<(M + rows_per_block - 1) / rows_per_block, CU_THREADS, 0, cu->stream>>>(
            dinp, dout, inp, mean, rstd, gamma, M, C);
        if (CU_LAUNCHED(cu, "ln_dinp_kernel")) return;
    }
    if (!dgamma && !dbeta) return;
    const int nblk = (M + LN_ROWS - 1) / LN_ROWS;
    double *part = (double *)cu_scratch(cu, CU_SLOT_RED, (size_t)nblk * 2 * C * sizeof(double));
    if (!part) return;
    ln_param_partial_kernel<<<dim3((C + 31) / 32, nblk), dim3(32, 8), 0, cu->stream>>>(
        part, dout, inp, mean, rstd, M, C);
    ln_param_finish_kernel<<<(C + CU_THREADS - 1) / CU_THREADS, CU_THREADS, 0, cu->stream>>>(
        dgamma, dbeta, part, nblk, C);
    CU_LAUNCHED(cu, "layer norm parameter gradients");
}
