/* 8-bit AdamW (bitsandbytes' block-wise state, engine/core/adam8.h) on the CPU
 * backend:
 * - the dynamic maps against create_dynamic_map's construction (counts per
 *   decade, extremes, one zero, sorted);
 * - quantise/dequantise of one block: absmax exact, every code the nearest
 *   map entry by exhaustive search (or its sign-keeping neighbour), error
 *   at most half the widest map gap times absmax;
 * - the op against the double reference (kernels/cpu/ref_nn.c) from the
 *   same state, one step at a time, for sizes with and without a partial
 *   last block, with clipping active, inactive and off: parameters within
 *   1e-6 (relative to the update), absmax within 1e-6, codes equal but
 *   for at most 1 in 1000 one step apart (values on a rounding midpoint);
 * - 200 steps on a toy least-squares problem, where the 8-bit optimiser
 *   stays within a few percent of float32 AdamW's trajectory. */
#include <math.h>
#include <string.h>

#include "engine/core/adam8.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_nn.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"

static void test_dynamic_maps(void) {
    float sm[256], um[256];
    adam8_dynamic_map(sm, 1);
    adam8_dynamic_map(um, 0);
    for (int k = 1; k < 256; k++) {
        CHECK(sm[k - 1] < sm[k], "signed map not strictly ascending at %d", k);
        CHECK(um[k - 1] < um[k], "unsigned map not strictly ascending at %d", k);
    }
    CHECK(sm[127] == 0.0f && sm[255] == 1.0f, "signed map: [127] %g, [255] %g", sm[127], sm[255]);
    CHECK(um[0] == 0.0f && um[255] == 1.0f, "unsigned map: [0] %g, [255] %g", um[0], um[255]);
    /* Largest magnitude below 1: the mean of the last two of
     * linspace(0.1, 1, 65) (signed) or linspace(0.1, 1, 129) (unsigned). */
    CHECK(fabs(sm[0] + (1.0 - 0.9 / 128)) < 1e-6, "signed map min %.9g", sm[0]);
    CHECK(fabs(um[254] - (1.0 - 0.9 / 256)) < 1e-6, "unsigned map [254] %.9g", um[254]);
    /* Smallest magnitude: 1e-6 times the one mean of linspace(0.1, 1, 2)
     * (signed) or the first of linspace(0.1, 1, 3) (unsigned). */
    CHECK(fabs(sm[128] - 0.55e-6) < 1e-12 && sm[126] == -sm[128], "signed map +-%.9g", sm[128]);
    CHECK(fabs(um[1] - 0.325e-6) < 1e-12, "unsigned map [1] %.9g", um[1]);
    /* Decade 10^(e-6) holds 2^e positive entries (signed), 2^(e+1) unsigned. */
    for (int e = 0; e < 7; e++) {
        const double lo = 0.1 * pow(10, e - 6), hi = pow(10, e - 6);
        int ns = 0, nu = 0;
        for (int k = 0; k < 255; k++) ns += sm[k] > lo && sm[k]<hi, nu += um[k]> lo && um[k] < hi;
        CHECK(ns == 1 << e && nu == 2 << e, "decade 1e%d: %d signed, %d unsigned entries", e - 6,
              ns, nu);
    }
}

/* Widest gap between neighbouring entries of a map. */
static double max_gap(const float *map) {
    double g = 0;
    for (int k = 1; k < 256; k++) g = fmax(g, (double)map[k] - map[k - 1]);
    return g;
}

static void check_roundtrip(int is_signed, int n, uint64_t seed, double scale) {
    float map[256];
    adam8_dynamic_map(map, is_signed);
    float *x = cm_uniform((size_t)n, is_signed ? -1 : 0, 1, &seed), *y = cm_fill((size_t)n, 0);
    for (int i = 0; i < n; i++) x[i] = (float)(scale * pow(x[i], 5)); /* heavy near 0 */
    if (n > 3) x[3] = is_signed ? -1e-12f : 1e-12f;                   /* far below the map */
    uint8_t codes[CNET_ADAM8_BLOCK];
    float absmax = -1;
    adam8_quantize_block(codes, &absmax, x, n, map, is_signed);
    adam8_dequantize_block(y, codes, absmax, n, map);
    float want_max = 0;
    for (int i = 0; i < n; i++) want_max = fmaxf(want_max, fabsf(x[i]));
    CHECK(absmax == want_max, "absmax %g, max |x| %g", absmax, want_max);
    const double bound = 0.5 * max_gap(map) * absmax * (1 + 1e-5);
    for (int i = 0; i < n; i++) {
        const double xn = (double)x[i] / absmax;
        int best = 0;
        for (int k = 1; k < 256; k++)
            if (fabs(xn - map[k]) < fabs(xn - map[best])) best = k;
        const int c = codes[i];
        const int sign_kept = is_signed && c != best && abs(c - best) == 1 &&
                              !signbit(map[c]) == !signbit(x[i]) &&
                              !signbit(map[best]) != !signbit(x[i]);
        CHECK(c == best || sign_kept || fabs(fabs(xn - map[c]) - fabs(xn - map[best])) < 1e-7,
              "element %d = %g: code %d (%g), nearest %d (%g)", i, x[i], c, map[c], best,
              map[best]);
        if (!sign_kept)
            CHECK(fabs((double)y[i] - x[i]) <= bound, "element %d: %g decodes as %g (bound %g)", i,
                  x[i], y[i], bound);
        else
            CHECK(!signbit(y[i]) == !signbit(x[i]), "element %d: sign lost (%g -> %g)", i, x[i],
                  y[i]);
    }
    /* The largest element is exact when positive (1 is in both maps). */
    for (int i = 0; i < n; i++)
        if (x[i] == absmax) CHECK(y[i] == x[i], "max element %g decodes as %g", x[i], y[i]);
}

static void test_quantize_roundtrip(void) {
    check_roundtrip(1, 256, 1, 0.02);
    check_roundtrip(1, 77, 2, 3.0); /* a partial block */
    check_roundtrip(0, 256, 3, 1e-4);
    check_roundtrip(0, 200, 4, 50.0);
    /* An all-zero block, -0 included: absmax 0, everything decodes to 0. */
    float map[256], x[4] = {0.0f, -0.0f, 0.0f, 0.0f}, y[4];
    uint8_t codes[4];
    float absmax = 1;
    adam8_dynamic_map(map, 1);
    adam8_quantize_block(codes, &absmax, x, 4, map, 1);
    adam8_dequantize_block(y, codes, absmax, 4, map);
    CHECK(absmax == 0 && y[0] == 0 && y[1] == 0, "zero block: absmax %g, %g %g", absmax, y[0],
          y[1]);
    cm_free_all();
}

/* One 8-bit state in host memory, with a double copy of absmax for the
 * reference. */
typedef struct state8 {
    cnet_adam8_state s;
    float qm[256], qv[256];
    uint8_t *rm, *rv;
    double *ram, *rav;
    long n, nb;
} state8;

static void state8_init(state8 *st, long n) {
    memset(st, 0, sizeof *st);
    st->n = n, st->nb = adam8_blocks(n);
    adam8_dynamic_map(st->qm, 1);
    adam8_dynamic_map(st->qv, 0);
    st->s.m = cm_alloc((size_t)n), st->s.v = cm_alloc((size_t)n);
    st->rm = cm_alloc((size_t)n), st->rv = cm_alloc((size_t)n);
    memset(st->s.m, 0, (size_t)n), memset(st->s.v, 0, (size_t)n);
    st->s.absmax_m = cm_fill((size_t)st->nb, 0), st->s.absmax_v = cm_fill((size_t)st->nb, 0);
    st->ram = cm_dzeros((size_t)st->nb), st->rav = cm_dzeros((size_t)st->nb);
    st->s.qmap_m = st->qm, st->s.qmap_v = st->qv;
}

/* The reference starts from the fast op's current state. */
static void state8_to_ref(state8 *st) {
    memcpy(st->rm, st->s.m, (size_t)st->n);
    memcpy(st->rv, st->s.v, (size_t)st->n);
    for (long b = 0; b < st->nb; b++)
        st->ram[b] = st->s.absmax_m[b], st->rav[b] = st->s.absmax_v[b];
}

/* Codes may differ only by one step and rarely: where the value lies on
 * a rounding midpoint, float and double may round to either side. Returns
 * the number of differing codes, or -1 (at *where) for a wider gap. */
static long codes_differ(const uint8_t *got, const uint8_t *want, long n, long *where) {
    long count = 0;
    for (long i = 0; i < n; i++) {
        if (got[i] == want[i]) continue;
        *where = i;
        if (abs((int)got[i] - (int)want[i]) != 1) return -1;
        count++;
    }
    return count;
}

/* max_norm_factor: max_grad_norm = factor * ||grads|| (0: no clipping). */
static void check_adamw8bit(long n, double max_norm_factor, uint64_t seed) {
    cnet_backend be = {0};
    const float lr = 0.01f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    state8 st;
    state8_init(&st, n);
    float *p = cm_uniform((size_t)n, -1, 1, &seed);
    for (int step = 1; step <= 4; step++) {
        float *g = cm_uniform((size_t)n, -0.5f, 0.5f, &seed);
        for (long i = 0; i < n; i += 97) g[i] *= 1e-4f; /* small moments in every block */
        if (step == 1) g[n / 2] = 0.0f;
        float *g_copy = cm_alloc((size_t)n * sizeof *g_copy);
        memcpy(g_copy, g, (size_t)n * sizeof *g);
        double *rp = cm_double(p, (size_t)n), *p0 = cm_double(p, (size_t)n);
        double *rg = cm_double(g, (size_t)n), sumsq_d = 0;
        for (long i = 0; i < n; i++) sumsq_d += rg[i] * rg[i];
        const float sumsq = (float)sumsq_d;
        sumsq_d = sumsq; /* the reference sees the same (float) sum */
        const float max_norm = (float)(max_norm_factor * sqrt(sumsq_d));
        state8_to_ref(&st);
        cpu_adamw8bit_step(&be, p, &st.s, g, n, lr, beta1, beta2, eps, wd, step,
                           max_norm_factor > 0 ? &sumsq : NULL, max_norm);
        ref_adamw8bit_step(rp, st.rm, st.rv, st.ram, st.rav, st.qm, st.qv, rg, n, lr, beta1, beta2,
                           eps, wd, step, max_norm_factor > 0 ? &sumsq_d : NULL, max_norm);
        CHECK(memcmp(g, g_copy, (size_t)n * sizeof *g) == 0, "adamw8bit modified the gradients");
        double e_p = 0, max_upd = 0;
        for (long i = 0; i < n; i++) {
            e_p = fmax(e_p, fabs((double)p[i] - rp[i]));
            max_upd = fmax(max_upd, fabs(rp[i] - p0[i]));
        }
        CHECK(e_p <= 1e-6 * max_upd + 1e-7,
              "n %ld step %d clip %g: params off by %.3g (update %.3g)", n, step, max_norm_factor,
              e_p, max_upd);
        for (long b = 0; b < st.nb; b++) {
            CHECK(fabs(st.s.absmax_m[b] - st.ram[b]) <= 1e-6 * st.ram[b] &&
                      fabs(st.s.absmax_v[b] - st.rav[b]) <= 1e-6 * st.rav[b],
                  "n %ld step %d block %ld: absmax m %.9g vs %.9g, v %.9g vs %.9g", n, step, b,
                  st.s.absmax_m[b], st.ram[b], st.s.absmax_v[b], st.rav[b]);
        }
        long where = 0;
        const long dm = codes_differ(st.s.m, st.rm, n, &where);
        CHECK(dm >= 0 && dm <= 1 + n / 1000, "n %ld step %d: %ld m codes differ (at %ld: %d vs %d)",
              n, step, dm, where, st.s.m[where], st.rm[where]);
        const long dv = codes_differ(st.s.v, st.rv, n, &where);
        CHECK(dv >= 0 && dv <= 1 + n / 1000, "n %ld step %d: %ld v codes differ (at %ld: %d vs %d)",
              n, step, dv, where, st.s.v[where], st.rv[where]);
    }
}

static void test_adamw8bit_vs_reference(void) {
    check_adamw8bit(256, 0, 5);     /* one whole block */
    check_adamw8bit(1000, 0.3, 6);  /* a partial last block; clipping active */
    check_adamw8bit(4173, 2.0, 7);  /* clipping inactive */
    check_adamw8bit(70001, 0.5, 8); /* parallel path */
    cm_free_all();
}

/* 0.5 sum a_i (p_i - t_i)^2 from p = 0 with curvatures a over one decade:
 * 200 steps of float32 AdamW and of 8-bit AdamW from the same start. (With
 * curvatures over several decades in one block, v of the flattest elements
 * falls below the unsigned map's smallest step (3e-7 of the block's max)
 * and decodes as 0 while m does not, and their steps explode: a property
 * of bitsandbytes' format that this implementation shares.) */
static void test_adamw8bit_tracks_f32(void) {
    cnet_backend be = {0};
    const long n = 10000;
    uint64_t seed = 9;
    float *a = cm_uniform((size_t)n, 0, 1, &seed), *t = cm_uniform((size_t)n, -1, 1, &seed);
    for (long i = 0; i < n; i++) a[i] = powf(10.0f, a[i] - 0.5f);
    float *p32 = cm_fill((size_t)n, 0), *m = cm_fill((size_t)n, 0), *v = cm_fill((size_t)n, 0);
    float *p8 = cm_fill((size_t)n, 0), *g = cm_fill((size_t)n, 0);
    state8 st;
    state8_init(&st, n);
    double loss0 = 0;
    for (long i = 0; i < n; i++) loss0 += 0.5 * a[i] * t[i] * t[i];
    for (int step = 1; step <= 200; step++) {
        for (long i = 0; i < n; i++) g[i] = a[i] * (p32[i] - t[i]);
        cpu_adamw_step(&be, p32, m, v, g, n, 0.02f, 0.9f, 0.999f, 1e-8f, 1e-2f, step, NULL, 0);
        for (long i = 0; i < n; i++) g[i] = a[i] * (p8[i] - t[i]);
        cpu_adamw8bit_step(&be, p8, &st.s, g, n, 0.02f, 0.9f, 0.999f, 1e-8f, 1e-2f, step, NULL, 0);
    }
    double loss32 = 0, loss8 = 0, d2 = 0, moved2 = 0;
    for (long i = 0; i < n; i++) {
        loss32 += 0.5 * a[i] * (p32[i] - t[i]) * (p32[i] - t[i]);
        loss8 += 0.5 * a[i] * (p8[i] - t[i]) * (p8[i] - t[i]);
        d2 += (double)(p8[i] - p32[i]) * (p8[i] - p32[i]);
        moved2 += (double)p32[i] * p32[i];
    }
    const double rel = sqrt(d2 / moved2);
    printf("    toy problem: loss %.4g -> f32 %.4g, 8-bit %.4g; trajectories %.2e apart\n", loss0,
           loss32, loss8, rel);
    CHECK(loss32 < 0.05 * loss0, "float32 AdamW did not learn: %g -> %g", loss0, loss32);
    CHECK(loss8 < 1.1 * loss32, "8-bit loss %g vs float32 %g", loss8, loss32);
    CHECK(rel < 0.02, "8-bit parameters %.3g (relative) away from float32's", rel);
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_dynamic_maps);
    RUN(test_quantize_roundtrip);
    RUN(test_adamw8bit_vs_reference);
    RUN(test_adamw8bit_tracks_f32);
    return harness_done();
}
