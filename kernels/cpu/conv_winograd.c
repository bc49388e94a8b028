/* Winograd F(4x4, 3x3) forward convolution of the CPU backend for 3x3,
 * stride-1, pad-1 convolutions (NHWC activations, OHWI weights), fused so
 * that the transformed tiles never leave the cache.
 *
 * Each 4x4 block of output pixels (a tile) is Y = A^T [(G g G^T) . (B^T d B)] A
 * over the 6x6 input patch d around it (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2015, points 0, +-1, +-2, inf): 36
 * products per tile and channel pair instead of 144. Summed over C_in, the
 * 36 elementwise products become 36 matrix products
 * M_xi[tiles, C_out] = V_xi[tiles, C_in] @ U_xi[C_in, C_out].
 *
 * The work goes in blocks of a few dozen tiles per thread: transform the
 * block's input patches (V, vectorised over channels, which NHWC keeps
 * contiguous), multiply with a register-blocked micro-kernel (MR tiles x
 * NR vectors of output channels of accumulators), then transform back, add the bias
 * and store. V and M of a block stay in L2; only the input and output
 * cross memory once.
 *
 * The weights are transformed on every call: 36*C_in*C_out values, a few
 * percent of the call's time at the shapes where conv.c picks this kernel.
 * Nothing is cached, so weights the trainer updates in place between calls
 * are always current. The transformed weights U take 4x the weight's
 * memory (472 MB for the SD UNet's 2560 -> 1280 conv), so the output
 * channels go in groups whose U fits WINOGRAD_U_BYTES: each group
 * transforms its slice of the weights and runs every tile, recomputing the
 * input transform (a few percent of the products at a 32-channel group).
 * Every output value is summed in the same order whatever the grouping, so
 * the results do not depend on it, bit for bit.
 *
 * Vectors are GCC vector extensions of one machine register: 16 floats
 * with AVX-512, 8 with AVX2 (-march=native picks; a 16-float vector on an
 * AVX2 machine would pass through memory between the helpers). The
 * micro-kernel's tile count follows the register file: 12 x 2 accumulators
 * fit AVX-512's 32 registers, 6 x 2 fit AVX2's 16.
 * This file is built with -ffp-contract=fast (Makefile) so the
 * multiply-adds become FMAs.
 *
 * Not here: the backward passes (they stay on im2col + sgemm in conv.c);
 * other kernel sizes, strides or paddings.
 *
 * Size legend: B batch, H/W image size (input = output), Ci/Co channels,
 * Cg output channels of a group, Gp = Cg rounded up to VL, T tiles per
 * block, 36 = 6x6 transform points. */
#include <omp.h>
#include <string.h>

#include "kernels/cpu/linalg_util.h"
#include "kernels/cpu/scratch.h"

#if defined(__AVX512F__)
#define WINOGRAD_VL 16 /* floats per vector */
#define WINOGRAD_MR 12 /* tiles per micro-kernel: 12 x 2 accumulators + 2 weights + 1 broadcast */
#else
#define WINOGRAD_VL 8
#define WINOGRAD_MR 6 /* 6 x 2 accumulators + 2 weights + 1 broadcast in 16 registers */
#endif

typedef float vf __attribute__((vector_size(WINOGRAD_VL * sizeof(float))));

enum {
    VL = WINOGRAD_VL,
    TILE = 4,    /* output pixels per tile side */
    PATCH = 6,   /* input pixels per tile side (TILE + 3 - 1) */
    POINTS = 36, /* PATCH * PATCH transform points */
    MR = WINOGRAD_MR,
    NR = 2, /* output-channel vectors per micro-kernel */
};

/* Bytes of V and M one block may take: half of a Zen 4 core's 1 MB L2,
 * which leaves room for the slice of U the micro-kernel streams. */
#define WINOGRAD_BLOCK_BYTES (512L << 10)
/* At most this many micro-kernel rows per block: larger blocks buy nothing
 * once U's reuse is in L1, and more blocks spread better over threads. */
#define WINOGRAD_MAX_ROW_GROUPS 4
/* Bytes of transformed weights U[36, Ci, Gp] per output-channel group (one
 * scratch slot): a group is the most channels, in steps of the micro-kernel's
 * NR vectors, whose U fits; at least one step (then U exceeds the cap: 11.8
 * MB at 2560 input channels). Half of Zen 4's 32 MB L3, so a group's U
 * stays cached while every block streams it. */
#define WINOGRAD_U_BYTES (16L << 20)

/* Unaligned load / store of the first n <= VL floats; the full vector is
 * the common case and a single instruction. */
static inline vf load_n(const float *p, int n) {
    vf v = {0};
    if (n == VL)
        memcpy(&v, p, sizeof v);
    else
        memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}

static inline void store_n(float *p, vf v, int n) {
    if (n == VL)
        memcpy(p, &v, sizeof v);
    else
        memcpy(p, &v, (size_t)n * sizeof(float));
}

/* out = B^T d for a column or row of 6 patch values. */
static inline void input_1d(vf out[PATCH], const vf d[PATCH]) {
    out[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    out[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
    out[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
    out[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];
    out[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
    out[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

/* out = A^T m for a column or row of 6 transformed values. */
static inline void output_1d(vf out[TILE], const vf m[PATCH]) {
    vf s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    out[0] = m[0] + s12 + s34;
    out[1] = d12 + 2.0f * d34;
    out[2] = s12 + 4.0f * s34;
    out[3] = d12 + 8.0f * d34 + m[5];
}

/* out = G g for a column or row of 3 kernel taps. */
static inline void weight_1d(vf out[PATCH], const vf g[3]) {
    const vf sum02 = g[0] + g[2];
    out[0] = g[0] * (1.0f / 4);
    out[1] = (sum02 + g[1]) * (-1.0f / 6);
    out[2] = (sum02 - g[1]) * (-1.0f / 6);
    out[3] = g[0] * (1.0f / 24) + g[1] * (1.0f / 12) + g[2] * (1.0f / 6);
    out[4] = g[0] * (1.0f / 24) - g[1] * (1.0f / 12) + g[2] * (1.0f / 6);
    out[5] = g[2];
}

/* U[36, Ci, Gp] = G g G^T of the 3x3 kernels of output channels
 * [g0, g0 + Cg) against every input channel, zero past Cg, vectorised over
 * the output channels; weight [Co, 3, 3, Ci]. */
static void weight_transform(float *U, const float *weight, int Ci, int g0, int Cg, int Gp) {
    const long plane = (long)Ci * Gp;
#pragma omp parallel for schedule(static)
    for (int ci = 0; ci < Ci; ci++) {
        for (int c0 = 0; c0 < Gp; c0 += VL) {
            const int n = Cg - c0 < VL ? Cg - c0 : VL;
            vf g[3][3], t[PATCH][3], col[3], res[PATCH];
            for (int k = 0; k < 9; k++) {
                vf taps = {0};
                for (int v = 0; v < n; v++)
                    taps[v] = weight[((long)(g0 + c0 + v) * 9 + k) * Ci + ci];
                g[k / 3][k % 3] = taps;
            }
            for (int kx = 0; kx < 3; kx++) {
                for (int ky = 0; ky < 3; ky++) col[ky] = g[ky][kx];
                weight_1d(res, col);
                for (int i = 0; i < PATCH; i++) t[i][kx] = res[i];
            }
            for (int i = 0; i < PATCH; i++) {
                weight_1d(res, t[i]);
                for (int j = 0; j < PATCH; j++)
                    *(vf *)(U + (i * PATCH + j) * plane + (long)ci * Gp + c0) = res[j];
            }
        }
    }
}

/* Position of tile `tile` (flat over B x tiles_y x tiles_x): image b and the
 * top-left output pixel (y0, x0). */
static void tile_origin(long tile, int tiles_y, int tiles_x, int *b, int *y0, int *x0) {
    *b = (int)(tile / ((long)tiles_y * tiles_x));
    *y0 = (int)(tile / tiles_x % tiles_y) * TILE;
    *x0 = (int)(tile % tiles_x) * TILE;
}

/* B^T d B of one vector of channels of a 6x6 patch, stored into row r of
 * V[36, T, Ci] at channel c0. src[k] is the patch's top-left pixel,
 * rows `row` floats apart and pixels `pix` apart (k may be negative: only
 * in-image offsets become pointers); rows [i_lo, i_hi) and
 * columns [j_lo, j_hi) lie inside the image, the others are padding (zero).
 * The rows are transformed as they are loaded (d B), then the columns
 * (B^T .), so one 6x6 block of vectors is live. Inlined with `inside` a
 * constant: 1 drops every check for the tiles away from the edges. */
static inline __attribute__((always_inline)) void
input_patch(float *V, int T, int r, int Ci, int c0, int n, const float *src, long k, long row,
            long pix, int i_lo, int i_hi, int j_lo, int j_hi, int inside) {
    vf t[PATCH][PATCH], d[PATCH], res[PATCH];
#pragma GCC unroll 6
    for (int i = 0; i < PATCH; i++) {
#pragma GCC unroll 6
        for (int j = 0; j < PATCH; j++)
            d[j] = inside ? load_n(src + (k + i * row + j * pix), VL)
                   : i >= i_lo && i < i_hi && j >= j_lo && j < j_hi
                       ? load_n(src + (k + i * row + j * pix), n)
                       : (vf){0};
        input_1d(t[i], d);
    }
#pragma GCC unroll 6
    for (int j = 0; j < PATCH; j++) {
#pragma GCC unroll 6
        for (int i = 0; i < PATCH; i++) d[i] = t[i][j];
        input_1d(res, d);
#pragma GCC unroll 6
        for (int i = 0; i < PATCH; i++)
            store_n(V + ((long)(i * PATCH + j) * T + r) * Ci + c0, res[i], inside ? VL : n);
    }
}

/* Row r of V[36, T, Ci] = B^T d B of the 6x6 patch whose top-left pixel is
 * (y0 - 1, x0 - 1); pixels outside the image (the padding) are zero. */
static void input_tile(float *V, int T, int r, const float *inp, const cnet_conv2d *s, int b,
                       int y0, int x0) {
    const int Ci = s->C_in;
    const long row = (long)s->W * Ci;
    /* Patch columns j in [j_lo, j_hi) and rows in [i_lo, i_hi) lie inside the image. */
    const int j_lo = x0 == 0 ? 1 : 0, j_hi = s->W - x0 + 1 < PATCH ? s->W - x0 + 1 : PATCH;
    const int i_lo = y0 == 0 ? 1 : 0, i_hi = s->H - y0 + 1 < PATCH ? s->H - y0 + 1 : PATCH;
    const int edge = i_lo > 0 || j_lo > 0 || i_hi < PATCH || j_hi < PATCH;
    /* Index of the patch's top-left pixel; negative at the image's top-left
     * corner, so it stays an index and only inside pixels become pointers. */
    const long patch = (((long)b * s->H + y0 - 1) * s->W + x0 - 1) * Ci;
    for (int c0 = 0; c0 < Ci; c0 += VL) {
        const int n = Ci - c0 < VL ? Ci - c0 : VL;
        if (!edge && n == VL)
            input_patch(V, T, r, Ci, c0, n, inp, patch + c0, row, Ci, 0, PATCH, 0, PATCH, 1);
        else
            input_patch(V, T, r, Ci, c0, n, inp, patch + c0, row, Ci, i_lo, i_hi, j_lo, j_hi, 0);
    }
}

/* Output channels [g0, g0 + Cg) of one tile's pixels = A^T M A + bias,
 * clipped to the image. Row r of M[36, T, Gp]; bias [Co] or NULL;
 * out [B, H, W, Co]. */
static void output_tile(float *out, const float *M, int T, int r, const float *bias,
                        const cnet_conv2d *s, int g0, int Cg, int Gp, int b, int y0, int x0) {
    const int Co = s->C_out;
    const int rows = s->H - y0 < TILE ? s->H - y0 : TILE;
    const int cols = s->W - x0 < TILE ? s->W - x0 : TILE;
    for (int c0 = 0; c0 < Cg; c0 += VL) {
        const int n = Cg - c0 < VL ? Cg - c0 : VL;
        vf t[TILE][PATCH], m[PATCH], res[TILE];
        /* Columns first (A^T m), each column's 6 values loaded as needed. */
#pragma GCC unroll 6
        for (int j = 0; j < PATCH; j++) {
#pragma GCC unroll 6
            for (int i = 0; i < PATCH; i++)
                m[i] = *(const vf *)(M + ((long)(i * PATCH + j) * T + r) * Gp + c0);
            output_1d(res, m);
#pragma GCC unroll 4
            for (int i = 0; i < TILE; i++) t[i][j] = res[i];
        }
        const vf bv = bias ? load_n(bias + g0 + c0, n) : (vf){0};
#pragma GCC unroll 4
        for (int i = 0; i < TILE; i++) {
            if (i >= rows) break;
            output_1d(res, t[i]);
            float *dst = out + (((long)b * s->H + y0 + i) * s->W + x0) * Co + g0 + c0;
#pragma GCC unroll 4
            for (int j = 0; j < TILE; j++)
                if (j < cols) store_n(dst + (long)j * Co, res[j] + bv, n);
        }
    }
}

/* M[MR, nv*VL] = V[MR, K] @ U[K, nv*VL] with MR x nv accumulators in
 * registers; V rows ldv apart, U and M rows ldu / ldm apart (64-byte
 * aligned). Inlined with nv a constant and the loops unrolled, so the
 * accumulators live in registers. */
static inline __attribute__((always_inline)) void micro_kernel(float *M, long ldm, const float *V,
                                                               long ldv, const float *U, long ldu,
                                                               int K, int nv) {
    vf acc[MR][NR] = {{{0}}};
    for (int k = 0; k < K; k++) {
        vf u[NR];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) u[v] = *(const vf *)(U + (long)k * ldu + v * VL);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            const float a = V[r * ldv + k];
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++) acc[r][v] += a * u[v];
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) *(vf *)(M + r * ldm + v * VL) = acc[r][v];
}

static void micro_kernel_2(float *M, long ldm, const float *V, long ldv, const float *U, long ldu,
                           int K) {
    micro_kernel(M, ldm, V, ldv, U, ldu, K, 2);
}

static void micro_kernel_1(float *M, long ldm, const float *V, long ldv, const float *U, long ldu,
                           int K) {
    micro_kernel(M, ldm, V, ldv, U, ldu, K, 1);
}

/* M[36, T, Cp] = V[36, T, Ci] @ U[36, Ci, Cp], point by point. */
static void block_products(float *M, const float *V, const float *U, int T, int Ci, int Cp) {
    for (int x = 0; x < POINTS; x++) {
        const float *Vx = V + (long)x * T * Ci, *Ux = U + (long)x * Ci * Cp;
        float *Mx = M + (long)x * T * Cp;
        for (int c0 = 0; c0 < Cp; c0 += NR * VL) {
            for (int r0 = 0; r0 < T; r0 += MR) {
                if (Cp - c0 >= NR * VL)
                    micro_kernel_2(Mx + (long)r0 * Cp + c0, Cp, Vx + (long)r0 * Ci, Ci, Ux + c0, Cp,
                                   Ci);
                else
                    micro_kernel_1(Mx + (long)r0 * Cp + c0, Cp, Vx + (long)r0 * Ci, Ci, Ux + c0, Cp,
                                   Ci);
            }
        }
    }
}

int cpu_conv2d_winograd_applies(const cnet_conv2d *s) {
    return s->kh == 3 && s->kw == 3 && s->stride == 1 && s->pad_top == 1 && s->pad_bottom == 1 &&
           s->pad_left == 1 && s->pad_right == 1 && s->B > 0 && s->H > 0 && s->W > 0 &&
           s->C_in > 0 && s->C_out > 0;
}

/* Output channels per group: the most, in steps of NR vectors, whose
 * U[36, Ci, Gp] fits WINOGRAD_U_BYTES; at least one step; all of Co when
 * they fit. */
static int group_channels(int Ci, int Co) {
    const long step = NR * VL;
    long g = WINOGRAD_U_BYTES / ((long)POINTS * Ci * (long)sizeof(float)) / step * step;
    if (g < step) g = step;
    return g < Co ? (int)g : Co;
}

void cpu_conv2d_winograd_forward(cnet_backend *be, float *out, const float *inp,
                                 const float *weight, const float *bias, const cnet_conv2d *s) {
    // out [B,H,W,Co], inp [B,H,W,Ci], weight [Co,3,3,Ci], bias [Co] or NULL
    const int Ci = s->C_in, Co = s->C_out, Cg = group_channels(Ci, Co);
    const int Gp = (Cg + VL - 1) / VL * VL;
    const int tiles_y = (s->H + TILE - 1) / TILE, tiles_x = (s->W + TILE - 1) / TILE;
    const long tiles = (long)s->B * tiles_y * tiles_x;
    const long row_group_bytes = (long)MR * POINTS * (Ci + Gp) * (long)sizeof(float);
    long groups = WINOGRAD_BLOCK_BYTES / row_group_bytes;
    if (groups < 1) groups = 1;
    if (groups > WINOGRAD_MAX_ROW_GROUPS) groups = WINOGRAD_MAX_ROW_GROUPS;
    /* Smaller blocks when there would be too few to give each thread two. */
    while (groups > 1 && (tiles + groups * MR - 1) / (groups * MR) < 2L * omp_get_max_threads())
        groups--;
    const int T = (int)groups * MR;
    const long blocks = (tiles + T - 1) / T;

    float *U = cpu_scratch(be, 0, (size_t)POINTS * Ci * Gp * sizeof(float)); // [36, Ci, Gp]
    /* Per thread V[36, T, Ci] then M[36, T, Gp]; v_floats is rounded to VL so M
     * and its rows (Gp floats) stay 64-byte aligned for the micro-kernel. */
    const long v_floats = ((long)POINTS * T * Ci + VL - 1) / VL * VL;
    const long per_thread = v_floats + (long)POINTS * T * Gp;
    float *work = cpu_scratch(be, 1, (size_t)omp_get_max_threads() * per_thread * sizeof(float));
    if (!U || !work) return; /* out of memory, recorded on the backend */

    for (int g0 = 0; g0 < Co; g0 += Cg) {
        const int ng = Co - g0 < Cg ? Co - g0 : Cg, ngp = (ng + VL - 1) / VL * VL;
        weight_transform(U, weight, Ci, g0, ng, ngp);
#pragma omp parallel for schedule(static)
        for (long blk = 0; blk < blocks; blk++) {
            float *V = work + (long)omp_get_thread_num() * per_thread, *M = V + v_floats;
            const long t0 = blk * T;
            const int n = tiles - t0 < T ? (int)(tiles - t0) : T;
            int b, y0, x0;
            for (int r = 0; r < n; r++) {
                tile_origin(t0 + r, tiles_y, tiles_x, &b, &y0, &x0);
                input_tile(V, T, r, inp, s, b, y0, x0);
            }
            /* Rows past the last tile multiply as zeros and are never stored. */
            for (int x = 0; x < POINTS && n < T; x++)
                memset(V + ((long)x * T + n) * Ci, 0, (size_t)(T - n) * Ci * sizeof(float));
            block_products(M, V, U, T, Ci, ngp);
            for (int r = 0; r < n; r++) {
                tile_origin(t0 + r, tiles_y, tiles_x, &b, &y0, &x0);
                output_tile(out, M, T, r, bias, s, g0, ng, ngp, b, y0, x0);
            }
        }
    }
}
