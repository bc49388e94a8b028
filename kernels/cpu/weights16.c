/* Products with a 16-bit stored weight on the CPU backend (engine/core/backend.h,
 * "products with a 16-bit stored weight"). At float32 each op widens the
 * weight into scratch (exact: every bf16 and f16 value is a float32 value)
 * and runs its float32 twin: the result is bit-identical to the float32 op
 * on a weight holding the same values. At --mixed_precision bf16 a linear
 * layer feeds its bf16 weight to the bf16 product as it is stored (no
 * widening); a convolution widens it and runs its twin, which computes in
 * bf16 as well (im2col; the Winograd kernel stays float32, conv.c). */
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/linalg_util.h"
#include "kernels/cpu/scratch.h"

/* Elements each thread widens at a time. */
#define WIDEN_CHUNK 65536L

/* The weight of n elements widened to float32, in the slot no float32
 * product uses. */
static const float *widen_weight(cnet_backend *be, const uint16_t *weight, cnet_dtype wdtype,
                                 long n) {
    float *w = cpu_scratch(be, CPU_SLOT_WEIGHT16, (size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!w) return NULL; /* recorded on the backend */
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i += WIDEN_CHUNK)
        cnet_to_f32(w + i, weight + i, wdtype, (size_t)(n - i < WIDEN_CHUNK ? n - i : WIDEN_CHUNK));
    return w;
}

/* Whether a product reads the stored weight directly: bf16 math on a bf16
 * weight. */
static int reads_stored(cnet_backend *be, cnet_dtype wdtype) {
    return wdtype == CNET_BF16 && cpu_uses_bf16(be);
}

void cpu_linear_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                            cnet_dtype wdtype, const float *bias, int M, int K, int N) {
    // out [M,N], inp [M,K], weight [N,K], bias [N]
    if (reads_stored(be, wdtype)) {
        if (M <= 0 || N <= 0) return;
        if (bias) cpu_fill_rows(out, bias, M, N);
        cpu_gemm_bf16(be, out, N, (cpu_matrix){.f32 = inp, .ld = K},
                      (cpu_matrix){.bf16 = weight, .ld = K, .trans = 1}, M, N, K, 1.0f,
                      bias ? 1.0f : 0.0f);
        return;
    }
    const float *w = widen_weight(be, weight, wdtype, (long)N * K);
    if (!w) return;
    cpu_linear_forward(be, out, inp, w, bias, M, K, N);
}

void cpu_linear_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                  const uint16_t *weight, cnet_dtype wdtype, int M, int K, int N) {
    // dinp [M,K], dout [M,N], weight [N,K]
    if (reads_stored(be, wdtype)) {
        if (M <= 0 || K <= 0) return;
        if (N <= 0)
            memset(dinp, 0, (size_t)M * K * sizeof *dinp);
        else
            cpu_gemm_bf16(be, dinp, K, (cpu_matrix){.f32 = dout, .ld = N},
                          (cpu_matrix){.bf16 = weight, .ld = K}, M, K, N, 1.0f, 0.0f);
        return;
    }
    const float *w = widen_weight(be, weight, wdtype, (long)N * K);
    if (!w) return;
    cpu_linear_backward(be, dinp, NULL, NULL, dout, NULL, w, M, K, N);
}

static long conv_weight_numel(const cnet_conv2d *s) {
    return (long)s->C_out * s->kh * s->kw * s->C_in;
}

void cpu_conv2d_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                            cnet_dtype wdtype, const float *bias, const cnet_conv2d *s) {
    const float *w = widen_weight(be, weight, wdtype, conv_weight_numel(s));
    if (!w) return;
    cpu_conv2d_forward(be, out, inp, w, bias, s);
}

void cpu_conv2d_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                  const uint16_t *weight, cnet_dtype wdtype, const cnet_conv2d *s) {
    const float *w = widen_weight(be, weight, wdtype, conv_weight_numel(s));
    if (!w) return;
    cpu_conv2d_backward(be, dinp, NULL, NULL, dout, NULL, w, s);
}
