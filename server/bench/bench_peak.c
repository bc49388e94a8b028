/* FMA-throughput microbenchmark (see bench_peak.h). Each OpenMP thread runs
 * independent chains of fused multiply-adds on vector registers, enough of
 * them to cover the FMA latency on both pipes (latency 4 x 2 pipes needs 8;
 * we keep 12), until a deadline; the total flop count over the wall time is
 * the machine's achievable fp32 peak. The chains converge (x <- x*m + a with
 * m < 1) so no value overflows or turns denormal.
 *
 * Not a model of any real kernel: it has no loads or stores at all, which
 * is the point (an upper bound for sgemm). The bf16 variant runs the same
 * chains on vdpbf16ps (16 lanes, each adding two products a step: 64 flops
 * per instruction), the instruction of kernels/cpu/gemm_bf16.c, on CPUs that
 * have it (checked at run time; it grows x by a small constant a step, far
 * from overflow in any run). */
#include "server/bench/bench_peak.h"

#include <omp.h>
#include <stdio.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Twelve independent chains, written out so they live in registers. The
 * state goes through memory on every call and its sum is published, so the
 * compiler can neither hoist nor drop the work. */
enum { CHAINS = 12, STEPS_PER_CHECK = 1 << 14, MAX_LANES = 16, PEAK_ROUNDS = 3 };
#define CHAIN_STEP(op)                                                                             \
    x0 = op(x0), x1 = op(x1), x2 = op(x2), x3 = op(x3), x4 = op(x4), x5 = op(x5), x6 = op(x6),     \
    x7 = op(x7), x8 = op(x8), x9 = op(x9), x10 = op(x10), x11 = op(x11)
#define CHAIN_LOAD(load, L)                                                                        \
    x0 = load(st + 0 * L), x1 = load(st + 1 * L), x2 = load(st + 2 * L), x3 = load(st + 3 * L),    \
    x4 = load(st + 4 * L), x5 = load(st + 5 * L), x6 = load(st + 6 * L), x7 = load(st + 7 * L),    \
    x8 = load(st + 8 * L), x9 = load(st + 9 * L), x10 = load(st + 10 * L), x11 = load(st + 11 * L)
#define CHAIN_STORE(store, L)                                                                      \
    store(st + 0 * L, x0), store(st + 1 * L, x1), store(st + 2 * L, x2), store(st + 3 * L, x3),    \
        store(st + 4 * L, x4), store(st + 5 * L, x5), store(st + 6 * L, x6),                       \
        store(st + 7 * L, x7), store(st + 8 * L, x8), store(st + 9 * L, x9),                       \
        store(st + 10 * L, x10), store(st + 11 * L, x11)

typedef struct {
    const char *isa;
    int lanes;          /* floats of state per chain */
    int flops_per_step; /* per chain and step */
    void (*run)(float *st, long steps);
} fma_variant;

#if defined(__AVX512F__)
static void fma_chains_avx512(float *st, long steps) {
    const __m512 m = _mm512_set1_ps(0.999f), a = _mm512_set1_ps(1e-3f);
    __m512 x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11;
#define FMA(x) _mm512_fmadd_ps(x, m, a)
    CHAIN_LOAD(_mm512_loadu_ps, 16);
    for (long s = 0; s < steps; s++) CHAIN_STEP(FMA);
    CHAIN_STORE(_mm512_storeu_ps, 16);
#undef FMA
}
#endif
#if defined(__FMA__)
static void fma_chains_avx2(float *st, long steps) {
    const __m256 m = _mm256_set1_ps(0.999f), a = _mm256_set1_ps(1e-3f);
    __m256 x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11;
#define FMA(x) _mm256_fmadd_ps(x, m, a)
    CHAIN_LOAD(_mm256_loadu_ps, 8);
    for (long s = 0; s < steps; s++) CHAIN_STEP(FMA);
    CHAIN_STORE(_mm256_storeu_ps, 8);
#undef FMA
}
#endif
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16"))) static void dp_chains_bf16(float *st, long steps) {
    /* 0x3a83: bf16 of about 1e-3, in both halves of each 32-bit lane */
    const __m512bh m = (__m512bh)_mm512_set1_epi32(0x3a833a83);
    __m512 x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11;
#define DP(x) _mm512_dpbf16_ps(x, m, m)
    CHAIN_LOAD(_mm512_loadu_ps, 16);
    for (long s = 0; s < steps; s++) CHAIN_STEP(DP);
    CHAIN_STORE(_mm512_storeu_ps, 16);
#undef DP
}
static const fma_variant bf16_variant = {"avx512bf16", 16, 64, dp_chains_bf16};
#endif
static float load1(const float *p) { return *p; }
static void store1(float *p, float v) { *p = v; }
static void fma_chains_scalar(float *st, long steps) {
    float x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11;
#define FMA(x) ((x)*0.999f + 1e-3f)
    CHAIN_LOAD(load1, 1);
    for (long s = 0; s < steps; s++) CHAIN_STEP(FMA);
    CHAIN_STORE(store1, 1);
#undef FMA
}

/* Every vector width the build can issue; the widest is not always the
 * fastest (Zen 4 splits 512-bit FMAs over its 256-bit pipes). */
static const fma_variant variants[] = {
#if defined(__AVX512F__)
    {"avx512f", 16, 32, fma_chains_avx512},
#endif
#if defined(__FMA__)
    {"avx2+fma", 8, 16, fma_chains_avx2},
#endif
    {"scalar", 1, 2, fma_chains_scalar},
};

/* Receives the chains' final values, so their work is observable. */
static volatile float peak_sink;

/* Flops of all threads over the wall time of the slowest one. */
static double run_for(const fma_variant *v, double seconds) {
    double flops = 0, t0 = omp_get_wtime(), t_end = t0;
#pragma omp parallel reduction(+ : flops) reduction(max : t_end)
    {
        float st[CHAINS * MAX_LANES];
        for (int i = 0; i < CHAINS * v->lanes; i++) st[i] = (float)i / (CHAINS * v->lanes);
        long steps = 0;
        double now;
        do {
            v->run(st, STEPS_PER_CHECK);
            steps += STEPS_PER_CHECK;
            now = omp_get_wtime();
        } while (now - t0 < seconds);
        flops = (double)steps * CHAINS * v->flops_per_step;
        t_end = now;
        float sum = 0;
        for (int i = 0; i < CHAINS * v->lanes; i++) sum += st[i];
        peak_sink = sum;
    }
    return flops / (t_end - t0) * 1e-9;
}

static double nominal_ghz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[256];
    double mhz = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1) break;
    fclose(f);
    return mhz / 1000;
}

/* FMA datapath per core: two FMA pipes on every recent x86 core; AMD (Zen
 * 2-4) builds them 256 bits wide even with AVX-512, Intel server cores
 * with AVX-512 512 bits wide. */
static void assumed_datapath(bench_peak *p) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_is("intel")) {
        p->flops_per_cycle = 2 * 16 * 2;
        p->datapath = "2 FMA pipes x 16 fp32 lanes (Intel AVX-512)";
    } else if (__builtin_cpu_supports("fma")) {
        p->flops_per_cycle = 2 * 8 * 2;
        p->datapath = "2 FMA pipes x 8 fp32 lanes (256-bit datapath)";
    } else {
        p->flops_per_cycle = 2 * 4;
        p->datapath = "2 pipes x 4 fp32 lanes, mul+add (SSE)";
    }
}

void bench_peak_measure(bench_peak *p, double seconds) {
    p->threads = omp_get_max_threads();
    p->measured_gflops = 0;
    p->isa = variants[0].isa;
    run_for(&variants[0], 0.1); /* let the clocks ramp up */
    /* The vector variants share the time (scalar only when it is alone),
     * in a few short rounds; the best round counts, so a neighbour's burst
     * on a shared machine does not lower the peak. */
    int n = (int)(sizeof variants / sizeof variants[0]);
    if (n > 1) n--;
    for (int round = 0; round < PEAK_ROUNDS; round++)
        for (int i = 0; i < n; i++) {
            double g = run_for(&variants[i], seconds / (n * PEAK_ROUNDS));
            if (g > p->measured_gflops) p->measured_gflops = g, p->isa = variants[i].isa;
        }
    p->bf16_gflops = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16"))
        for (int round = 0; round < PEAK_ROUNDS; round++) {
            double g = run_for(&bf16_variant, seconds / PEAK_ROUNDS);
            if (g > p->bf16_gflops) p->bf16_gflops = g;
        }
#endif
    p->nominal_ghz = nominal_ghz();
    assumed_datapath(p);
    p->theoretical_gflops = p->threads * p->flops_per_cycle * p->nominal_ghz;
}
