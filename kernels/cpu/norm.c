/* Group norm (with optional fused SiLU) and layer norm, forward and backward,
 * on channels-last activations.
 *
 * References: torch.nn.GroupNorm / F.group_norm (biased variance,
 * rstd = 1/sqrt(var + eps), per-channel affine) as diffusers' ResnetBlock2D
 * uses it followed by nn.SiLU, and torch.nn.LayerNorm over the last dim.
 * Statistics are accumulated in double with two passes (mean, then squared
 * deviations), and the forward subtracts the mean as float(mean) plus its
 * rounding residual (x - muf is exact when x is near the mean), so outputs
 * stay accurate to float precision even when |mean| >> std (torch's float
 * statistics are at least this accurate there). The backward reads the
 * float mean/rstd saved by the forward, as torch does. Not a batch norm or RMS norm; gamma and beta
 * are required (every norm in SD is affine).
 *
 * Sizes: B batch, HW pixels, C channels, G groups of Cg = C/G channels,
 * M rows (tokens) of a layer norm. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/common/vexp.h"
#include "kernels/cpu/scratch.h"

/* Layer-norm backward sums dgamma/dbeta over blocks of this many rows, then
 * adds the blocks in order: the result does not depend on the thread count. */
enum { LN_ROWS_PER_BLOCK = 64 };
/* Group-norm forward statistics are summed over blocks of this many rows,
 * then the blocks in order (thread-count independent). */
enum { GN_ROWS_PER_BLOCK = 256 };

static inline float silu_grad(float y) {
    float s = 1.0f / (1.0f + cpu_expf(-y));
    return s * (1.0f + y * (1.0f - s));
}

/* Group norm forward. Channels-last rows put a group's Cg channels 4*Cg
 * bytes apart in every row (Cg = 1 in the VAE's 32-channel levels), so each
 * pass walks whole rows contiguously for all groups at once: per-channel
 * sums over fixed blocks of GN_ROWS_PER_BLOCK rows (in parallel), then the
 * blocks and a group's channels added in order (so the result does not
 * depend on the thread count), the same for the squared deviations, then
 * the output. Three streaming passes instead of three strided ones per
 * group. */
void cpu_group_norm_forward(cnet_backend *be, float *out, float *mean, float *rstd,
                            const float *inp, const float *gamma, const float *beta, int B, int HW,
                            int C, int G, float eps, int fuse_silu) {
    const int Cg = C / G;
    const double count = (double)HW * Cg;
    const long nblk = (HW + GN_ROWS_PER_BLOCK - 1) / GN_ROWS_PER_BLOCK;
    // part [nblk, C] block sums, muc [C] the channel's group mean (double),
    // then muf, dmu, rsf [C] floats
    double *part = cpu_scratch(be, 0, ((size_t)(nblk + 1) * C + 2 * (size_t)C) * sizeof(double));
    if (!part) return; /* out of memory, recorded on the backend */
    double *muc = part + (size_t)nblk * C;
    float *muf = (float *)(muc + C), *dmu = muf + C, *rsf = dmu + C;
    const int par = (long)HW * C >= CPU_PAR_MIN_WORK;
    for (int b = 0; b < B; b++) {
        const float *x = inp + (long)b * HW * C; // [HW, C]
        float *y = out + (long)b * HW * C;
#pragma omp parallel for schedule(static) if (par)
        for (long k = 0; k < nblk; k++) {
            double *pk = part + k * C;
            const long i1 = (k + 1) * GN_ROWS_PER_BLOCK < HW ? (k + 1) * GN_ROWS_PER_BLOCK : HW;
            for (int c = 0; c < C; c++) pk[c] = 0;
            for (long i = k * GN_ROWS_PER_BLOCK; i < i1; i++) {
                const float *xr = x + i * C;
#pragma omp simd
                for (int c = 0; c < C; c++) pk[c] += xr[c];
            }
        }
        for (int g = 0; g < G; g++) {
            double s = 0;
            for (long k = 0; k < nblk; k++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) s += part[k * C + c];
            for (int c = g * Cg; c < (g + 1) * Cg; c++) muc[c] = s / count;
        }
#pragma omp parallel for schedule(static) if (par)
        for (long k = 0; k < nblk; k++) {
            double *pk = part + k * C;
            const long i1 = (k + 1) * GN_ROWS_PER_BLOCK < HW ? (k + 1) * GN_ROWS_PER_BLOCK : HW;
            for (int c = 0; c < C; c++) pk[c] = 0;
            for (long i = k * GN_ROWS_PER_BLOCK; i < i1; i++) {
                const float *xr = x + i * C;
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    const double d = xr[c] - muc[c];
                    pk[c] += d * d;
                }
            }
        }
        for (int g = 0; g < G; g++) {
            double ss = 0;
            for (long k = 0; k < nblk; k++)
                for (int c = g * Cg; c < (g + 1) * Cg; c++) ss += part[k * C + c];
            const double mu = muc[g * Cg], rs = 1.0 / sqrt(ss / count + eps);
            if (mean) mean[b * G + g] = (float)mu;
            if (rstd) rstd[b * G + g] = (float)rs;
            for (int c = g * Cg; c < (g + 1) * Cg; c++) {
                muf[c] = (float)mu, dmu[c] = (float)(mu - muf[c]), rsf[c] = (float)rs;
            }
        }
#pragma omp parallel for schedule(static) if (par)
        for (long i = 0; i < HW; i++) {
            const float *xr = x + i * C;
            float *yr = y + i * C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float v = ((xr[c] - muf[c]) - dmu[c]) * rsf[c] * gamma[c] + beta[c];
                yr[c] = fuse_silu ? v / (1.0f + cpu_expf(-v)) : v;
            }
        }
    }
}

/* With xhat = (x - mean) * rstd, y = gamma * xhat + beta, dy = dout (times
 * silu'(y) when fused) and N = HW * Cg elements per group:
 *   dgamma[c] += sum dy * xhat,  dbeta[c] += sum dy,
 *   dx = rstd * (dy*gamma - mean_g(dy*gamma) - xhat * mean_g(dy*gamma*xhat)).
 * The group means come from the per-channel sums of one sample
 * (sum dy*gamma = sum_c gamma[c] * sum_i dy), so the inner loops are plain
 * per-channel vector updates. dy is parked in dinp between the two passes.
 * One task per group walks every batch element, so the per-channel sums need
 * no atomics and are deterministic. */
void cpu_group_norm_backward(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                             const float *dout, const float *inp, const float *mean,
                             const float *rstd, const float *gamma, const float *beta, int B,
                             int HW, int C, int G, int fuse_silu) {
    const int Cg = C / G;
    const double count = (double)HW * Cg;
    double *acc = cpu_scratch(be, 0, 4 * (size_t)C * sizeof(double)); // [G][4][Cg]
    if (!acc) return; /* out of memory, recorded on the backend */
#pragma omp parallel for schedule(static) if ((long)B * HW * C >= CPU_PAR_MIN_WORK)
    for (int g = 0; g < G; g++) {
        double *dga = acc + 4L * g * Cg, *dbe = dga + Cg; // over the batch
        double *sg = dbe + Cg, *sb = sg + Cg;             // one sample
        for (int c = 0; c < Cg; c++) dga[c] = dbe[c] = 0;
        const float *ga = gamma + g * Cg, *bt = beta + g * Cg;
        for (int b = 0; b < B; b++) {
            const long base = (long)b * HW * C + (long)g * Cg;
            const float mu = mean[b * G + g], rs = rstd[b * G + g];
            for (int c = 0; c < Cg; c++) sg[c] = sb[c] = 0;
            for (int i = 0; i < HW; i++) {
                const float *xr = inp + base + (long)i * C, *gr = dout + base + (long)i * C;
                float *dr = dinp ? dinp + base + (long)i * C : NULL;
#pragma omp simd
                for (int c = 0; c < Cg; c++) {
                    const float xh = (xr[c] - mu) * rs;
                    const float dy = fuse_silu ? gr[c] * silu_grad(ga[c] * xh + bt[c]) : gr[c];
                    if (dr) dr[c] = dy;
                    sg[c] += (double)dy * xh;
                    sb[c] += dy;
                }
            }
            double s1 = 0, s2 = 0;
            for (int c = 0; c < Cg; c++) {
                s1 += ga[c] * sb[c];
                s2 += ga[c] * sg[c];
                dga[c] += sg[c];
                dbe[c] += sb[c];
            }
            if (!dinp) continue;
            const float m1 = (float)(s1 / count), m2 = (float)(s2 / count);
            for (int i = 0; i < HW; i++) {
                const float *xr = inp + base + (long)i * C;
                float *dr = dinp + base + (long)i * C;
#pragma omp simd
                for (int c = 0; c < Cg; c++) {
                    const float xh = (xr[c] - mu) * rs;
                    dr[c] = rs * (dr[c] * ga[c] - m1 - xh * m2);
                }
            }
        }
        for (int c = 0; c < Cg; c++) {
            if (dgamma) dgamma[g * Cg + c] += (float)dga[c];
            if (dbeta) dbeta[g * Cg + c] += (float)dbe[c];
        }
    }
}

void cpu_layer_norm_forward(cnet_backend *be, float *out, float *mean, float *rstd,
                            const float *inp, const float *gamma, const float *beta, int M, int C,
                            float eps) {
    (void)be;
#pragma omp parallel for schedule(static) if ((long)M * C >= CPU_PAR_MIN_WORK)
    for (int m = 0; m < M; m++) {
        const float *x = inp + (long)m * C; // [C]
        float *y = out + (long)m * C;
        double s = 0, ss = 0;
        for (int c = 0; c < C; c++) s += x[c];
        const double mu = s / C;
        for (int c = 0; c < C; c++) ss += (x[c] - mu) * (x[c] - mu);
        const double rs = 1.0 / sqrt(ss / C + eps);
        if (mean) mean[m] = (float)mu;
        if (rstd) rstd[m] = (float)rs;
        const float muf = (float)mu, dmu = (float)(mu - muf), rsf = (float)rs;
        for (int c = 0; c < C; c++) y[c] = ((x[c] - muf) - dmu) * rsf * gamma[c] + beta[c];
    }
}

/* Same formulas as the group norm with one group per row and N = C. */
void cpu_layer_norm_backward(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                             const float *dout, const float *inp, const float *mean,
                             const float *rstd, const float *gamma, int M, int C) {
    const int nblk = (M + LN_ROWS_PER_BLOCK - 1) / LN_ROWS_PER_BLOCK;
    const int want_params = dgamma || dbeta;
    double *part = want_params ? cpu_scratch(be, 0, 2 * (size_t)nblk * C * sizeof(double)) : NULL;
    if (want_params && !part) return; /* out of memory, recorded on the backend */
#pragma omp parallel for schedule(static) if ((long)M * C >= CPU_PAR_MIN_WORK)
    for (int blk = 0; blk < nblk; blk++) {
        double *dga = part ? part + 2L * blk * C : NULL, *dbe = part ? dga + C : NULL; // [C]
        if (part) memset(dga, 0, 2 * (size_t)C * sizeof(double));
        const int m1 = blk * LN_ROWS_PER_BLOCK;
        const int m2 = m1 + LN_ROWS_PER_BLOCK < M ? m1 + LN_ROWS_PER_BLOCK : M;
        for (int m = m1; m < m2; m++) {
            const float *x = inp + (long)m * C, *dy = dout + (long)m * C;
            const float mu = mean[m], rs = rstd[m];
            double s1 = 0, s2 = 0;
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - mu) * rs;
                s1 += (double)dy[c] * gamma[c];
                s2 += (double)dy[c] * gamma[c] * xh;
                if (part) {
                    dga[c] += (double)dy[c] * xh;
                    dbe[c] += dy[c];
                }
            }
            if (!dinp) continue;
            float *dx = dinp + (long)m * C;
            const float a = (float)(s1 / C), b = (float)(s2 / C);
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - mu) * rs;
                dx[c] = rs * (dy[c] * gamma[c] - a - xh * b);
            }
        }
    }
    if (!want_params) return;
#pragma omp parallel for schedule(static) if ((long)nblk * C >= CPU_PAR_MIN_WORK)
    for (int c = 0; c < C; c++) {
        double sg = 0, sb = 0;
        for (int blk = 0; blk < nblk; blk++) {
            sg += part[2L * blk * C + c];
            sb += part[2L * blk * C + C + c];
        }
        if (dgamma) dgamma[c] += (float)sg;
        if (dbeta) dbeta[c] += (float)sb;
    }
}
