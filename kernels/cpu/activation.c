/* Elementwise activations: SiLU, exact (erf) GELU, diffusers' GEGLU and
 * CLIP's quick_gelu, forward and backward (quick_gelu forward only: the text
 * encoder is frozen).
 *
 * References: torch.nn.functional.silu (x / (1 + exp(-x))), F.gelu with
 * approximate='none' (x * 0.5 * (1 + erf(x / sqrt 2))), diffusers
 * attention.GEGLU (proj output chunked into [h | gate], h * gelu(gate)) and
 * transformers' QuickGELUActivation (x * sigmoid(1.702 x)). Not the tanh
 * GELU approximation.
 *
 * Sizes: n elements; GEGLU rows M of 2F inputs and F outputs. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/common/vexp.h"

#define GELU_INV_SQRT2 0.70710678118654752440f
#define GELU_INV_SQRT_2PI 0.39894228040143267794f
#define QUICK_GELU_ALPHA 1.702f

static inline float gelu(float x) { return 0.5f * x * (1.0f + erff(x * GELU_INV_SQRT2)); }

/* d/dx gelu(x) = Phi(x) + x * phi(x). */
static inline float gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * GELU_INV_SQRT2));
    return cdf + x * GELU_INV_SQRT_2PI * cpu_expf(-0.5f * x * x);
}

void cpu_silu_forward(cnet_backend *be, float *out, const float *inp, long n) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) out[i] = inp[i] / (1.0f + cpu_expf(-inp[i]));
}

/* d/dx x*s(x) = s(x) * (1 + x * (1 - s(x))). */
void cpu_silu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, long n) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + cpu_expf(-inp[i]));
        dinp[i] = dout[i] * s * (1.0f + inp[i] * (1.0f - s));
    }
}

void cpu_gelu_forward(cnet_backend *be, float *out, const float *inp, long n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) out[i] = gelu(inp[i]);
}

void cpu_gelu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, long n) {
    (void)be;
#pragma omp parallel for schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) dinp[i] = dout[i] * gelu_grad(inp[i]);
}

void cpu_geglu_forward(cnet_backend *be, float *out, const float *inp, int M, int F) {
    (void)be;
#pragma omp parallel for schedule(static) if ((long)M * F >= CPU_PAR_MIN_ELEMS)
    for (int m = 0; m < M; m++) {
        const float *h = inp + 2L * m * F, *gate = h + F; // [F] each
        float *o = out + (long)m * F;
        for (int f = 0; f < F; f++) o[f] = h[f] * gelu(gate[f]);
    }
}

/* dh = dout * gelu(gate), dgate = dout * h * gelu'(gate), into dinp[M, 2F]. */
void cpu_geglu_backward(cnet_backend *be, float *dinp, const float *dout, const float *inp, int M,
                        int F) {
    (void)be;
#pragma omp parallel for schedule(static) if ((long)M * F >= CPU_PAR_MIN_ELEMS)
    for (int m = 0; m < M; m++) {
        const float *h = inp + 2L * m * F, *gate = h + F;
        const float *d = dout + (long)m * F;
        float *dh = dinp + 2L * m * F, *dgate = dh + F;
        for (int f = 0; f < F; f++) {
            dh[f] = d[f] * gelu(gate[f]);
            dgate[f] = d[f] * h[f] * gelu_grad(gate[f]);
        }
    }
}

void cpu_quick_gelu_forward(cnet_backend *be, float *out, const float *inp, long n) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n >= CPU_PAR_MIN_ELEMS)
    for (long i = 0; i < n; i++) out[i] = inp[i] / (1.0f + cpu_expf(-QUICK_GELU_ALPHA * inp[i]));
}
