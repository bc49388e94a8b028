/* exp(x) in float32, rounded as torch's CPU kernels round it, and written so
 * that GCC vectorises loops calling it (no libm call, no branch).
 *
 * torch evaluates exp, sigmoid/SiLU and softmax with SLEEF's expf_u10
 * (error <= 1 ulp; not always the correctly rounded value of glibc's expf).
 * cpu_expf follows that published scheme, so cnet and torch agree bit for
 * bit where it matters (the timestep embedding's frequencies feed sin at
 * arguments up to ~1000, where one ulp of exp moves the result by ~3e-6):
 * Cody-Waite reduction x = q ln2 + s with ln 2 split into two constants, a
 * degree-5 polynomial on s with FMA, scaling by 2^q in two halves so that
 * results down to the subnormal range are formed (coefficients from SLEEF,
 * Boost licence). Not a general libm: only exp. The CUDA backend compiles the
 * same function for the device (CPU_VEXP_FN), so both backends round alike. */
#ifndef CNET_CPU_VEXP_H
#define CNET_CPU_VEXP_H

#include <math.h>
#include <stdint.h>

/* Inputs below this give 0 and above this +inf (SLEEF's cut-offs). */
#define CPU_EXPF_MIN -104.0f
#define CPU_EXPF_MAX 100.0f

#ifdef __CUDACC__
#define CPU_VEXP_FN static inline __host__ __device__
#else
#define CPU_VEXP_FN static inline
#endif

/* 2^q for q in [-126, 127], from the exponent bits. */
CPU_VEXP_FN float cpu_pow2i(int32_t q) {
    const union {
        uint32_t u;
        float f;
    } bits = {.u = (uint32_t)(q + 127) << 23};
    return bits.f;
}

CPU_VEXP_FN float cpu_expf(float x) {
    /* clamped (NaN to the minimum) so that q fits the exponent arithmetic;
     * the results outside the range are fixed up below. Comparisons rather
     * than fminf/fmaxf, which do not vectorise. */
    float d = x > CPU_EXPF_MIN ? x : CPU_EXPF_MIN;
    d = d < CPU_EXPF_MAX ? d : CPU_EXPF_MAX;
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
    const int32_t qi = (int32_t)q, q1 = qi >> 1;
    u = u * cpu_pow2i(q1) * cpu_pow2i(qi - q1);
    u = x < CPU_EXPF_MIN ? 0.0f : u;
    u = x > CPU_EXPF_MAX ? INFINITY : u;
    return x != x ? x : u; /* NaN stays NaN */
}

#endif
