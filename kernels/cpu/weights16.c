/* Products with a 16-bit stored weight on the CPU backend (engine/core/backend.h,
 * "products with a 16-bit stored weight"). The CPU computes in float32
 * only, so each op widens the weight into scratch (exact: every bf16 and f16
 * value is a float32 value) and runs its float32 twin: the result is
 * bit-identical to the float32 op on a weight holding the same values. */
#include "kernels/cpu/cpu_ops.h"
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

void cpu_linear_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                            cnet_dtype wdtype, const float *bias, int M, int K, int N) {
    const float *w = widen_weight(be, weight, wdtype, (long)N * K);
    if (!w) return;
    cpu_linear_forward(be, out, inp, w, bias, M, K, N);
}

void cpu_linear_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                  const uint16_t *weight, cnet_dtype wdtype, int M, int K, int N) {
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
