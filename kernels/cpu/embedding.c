/* Embedding lookups: a table lookup by int64 id (CLIP's token and position
 * embeddings, nn.Embedding) and diffusers' sinusoidal timestep embedding
 * (embeddings.get_timestep_embedding, as Timesteps/time_proj calls it).
 * Forward only: both feed frozen or parameter-free paths.
 *
 * The timestep embedding repeats diffusers' float32 steps one by one (each
 * torch op rounds to float32, and a Python scalar operand is rounded to
 * float32 first), so the result is bit-close to torch's:
 *   exponent[k] = f32(-ln(max_period)) * k           (float32 multiply)
 *   exponent[k] = exponent[k] / f32(half - shift)     (float32 divide)
 *   freq[k]     = exp(exponent[k])                    (float32, see below)
 *   arg[b,k]    = f32(t[b]) * freq[k]                 (float32 multiply)
 *   out[b]      = [sin(arg) | cos(arg)], or [cos | sin] when flip_sin_to_cos,
 *                 plus one zero column when dim is odd.
 * Rounding arg to float32 matters: at t ~ 1000 one ulp of arg moves sin by
 * ~6e-5, far more than any sin/cos implementation difference. For the same
 * reason exp must round like torch's: its CPU kernels evaluate exp with
 * SLEEF's expf_u10 (error <= 1 ulp, not always the correctly rounded value
 * glibc's expf returns), and the goldens differ from glibc in 2 of 12
 * frequencies. torch_expf below evaluates that same published scheme
 * (Cody-Waite reduction by ln 2 split into two constants, degree-5
 * polynomial, FMA, coefficients from SLEEF, Boost licence); sin and cos are
 * libm's (they differ from SLEEF's by at most one ulp, ~6e-8).
 *
 * Sizes: M ids, D embedding width, B timesteps, dim output width. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"

/* exp(d) for |d| < 88, rounded as SLEEF's expf_u10 rounds it. */
static float torch_expf(float d) {
    if (d < -104.0f) return 0.0f;
    const float q =
        rintf(d * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    float s = fmaf(q, -0.693145751953125f, d); /* ln 2 = 0.693145751953125 + 1.4286e-6 */
    s = fmaf(q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    return ldexpf(u, (int)q);
}

void cpu_embedding_forward(cnet_backend *be, float *out, const int64_t *ids, const float *table,
                           int M, int D) {
    (void)be;
#pragma omp parallel for schedule(static) if ((long)M * D >= CPU_PAR_MIN_ELEMS)
    for (int m = 0; m < M; m++)
        memcpy(out + (long)m * D, table + ids[m] * (long)D, (size_t)D * sizeof(float));
}

void cpu_timestep_embedding(cnet_backend *be, float *out, const float *timesteps, int B, int dim,
                            int flip_sin_to_cos, float freq_shift, float max_period) {
    (void)be;
    const int half = dim / 2;
    const float neg_log_period = (float)(-log((double)max_period));
    const float denom = (float)((double)half - (double)freq_shift);
    for (int b = 0; b < B; b++) {
        float *o = out + (long)b * dim;                 // [dim]
        float *first = flip_sin_to_cos ? o + half : o;  // the sin half
        float *second = flip_sin_to_cos ? o : o + half; // the cos half
        for (int k = 0; k < half; k++) {
            float exponent = neg_log_period * (float)k;
            exponent = exponent / denom;
            const float arg = timesteps[b] * torch_expf(exponent);
            first[k] = sinf(arg);
            second[k] = cosf(arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}
