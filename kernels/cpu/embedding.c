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
 * reason exp must round like torch's (kernels/common/vexp.h): glibc's expf
 * differs from torch in 2 of the 12 frequencies of the goldens. sin and cos
 * are libm's (they differ from torch's SLEEF ones by at most an ulp, ~6e-8).
 *
 * Sizes: M ids, D embedding width, B timesteps, dim output width. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/common/vexp.h"

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
            const float arg = timesteps[b] * cpu_expf(exponent);
            first[k] = sinf(arg);
            second[k] = cosf(arg);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}
