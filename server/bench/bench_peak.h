/* The machine's fp32 peak, for putting op benchmarks in proportion: measured
 * by an FMA-throughput microbenchmark, and the theoretical figure derived
 * from the CPU for context; on an AVX512-BF16 CPU also the bf16 peak
 * (vdpbf16ps), which --mixed_precision bf16's products are measured against. */
#ifndef CNET_BENCH_PEAK_H
#define CNET_BENCH_PEAK_H

typedef struct bench_peak {
    int threads;               /* OpenMP threads the measurement ran on */
    double measured_gflops;    /* FMA microbenchmark, all threads */
    double nominal_ghz;        /* "cpu MHz" of /proc/cpuinfo (0 when unknown) */
    int flops_per_cycle;       /* per core, from the assumed FMA datapath */
    double theoretical_gflops; /* threads x flops_per_cycle x nominal_ghz */
    const char *datapath;      /* the assumption behind flops_per_cycle */
    const char *isa;           /* the fastest variant of the microbenchmark */
    double bf16_gflops;        /* vdpbf16ps microbenchmark; 0 without AVX512-BF16 */
} bench_peak;

/* Runs the microbenchmark for about `seconds` (after a short warm-up) on
 * omp_get_max_threads() threads and fills *p. */
void bench_peak_measure(bench_peak *p, double seconds);

#endif
