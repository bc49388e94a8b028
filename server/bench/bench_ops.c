/* `cnet bench ops`: times the products of the backend table (gemm, linear,
 * conv2d forward / backward-data / backward-weight, the fused attention
 * forward / backward) at Stable Diffusion
 * shapes on the backend o->device opens (kernels/backend_open.c: cpu, cuda,
 * cuda:N, the CPU with a note when no GPU is visible) and reports GFLOP/s; on
 * the CPU next to the machine's measured fp32 peak (bench_peak.h). The
 * command line is server/cli/cmd_bench.c's; this file only times.
 *
 * Each case: one warm-up call (scratch grows to its high-water mark), then
 * o->iters timed calls, each ended by a synchronize; the median is
 * reported. Inputs are deterministic pseudo-random values; nothing is
 * checked here (tests/unit/test_ops_linalg.c does that). FLOPs count
 * multiply-adds as 2 and ignore bias and im2col; attention counts its
 * products only (2 forward, 5 backward, as FlashAttention-2 recomputes
 * the scores), not the softmax. */
#include "server/bench/bench_ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bench/bench_model.h"
#include "server/bench/bench_peak.h"

#define BENCH_PEAK_SECONDS 0.5
/* The peak is measured again at the end; a larger drift than this means the
 * machine was busy with something else (on a shared host: a neighbour). */
#define BENCH_PEAK_DRIFT 0.10

typedef enum {
    OP_GEMM,
    OP_GEMM_BATCHED,
    OP_LINEAR_FWD,
    OP_LINEAR_BWD_DATA,
    OP_LINEAR_BWD_WEIGHT,
    OP_CONV_FWD,
    OP_CONV_BWD_DATA,
    OP_CONV_BWD_WEIGHT,
    OP_ATTN_FWD,
    OP_ATTN_BWD,
} bench_op;

static const char *const op_names[] = {
    [OP_GEMM] = "gemm",
    [OP_GEMM_BATCHED] = "gemm_batched",
    [OP_LINEAR_FWD] = "linear_fwd",
    [OP_LINEAR_BWD_DATA] = "linear_bwd_data",
    [OP_LINEAR_BWD_WEIGHT] = "linear_bwd_weight",
    [OP_CONV_FWD] = "conv2d_fwd",
    [OP_CONV_BWD_DATA] = "conv2d_bwd_data",
    [OP_CONV_BWD_WEIGHT] = "conv2d_bwd_weight",
    [OP_ATTN_FWD] = "attention_fwd",
    [OP_ATTN_BWD] = "attention_bwd",
};

/* gemm: batch x (M,N,K), trans_b for the batched QK^T product.
 * linear: M tokens, K in, N out. conv: the geometry. attention: batch,
 * M queries, N keys, K head dim, heads. */
typedef struct {
    bench_op op;
    const char *what;
    int batch, M, N, K, trans_b, heads;
    cnet_conv2d conv;
} bench_case;

#define CONV(B, H, C_in, C_out, k, s, pad)                                                         \
    { B, H, H, C_in, C_out, k, k, s, pad, pad, pad, pad }
#define CONV_CASES(what, ...)                                                                      \
    {OP_CONV_FWD, what, .conv = __VA_ARGS__}, {OP_CONV_BWD_DATA, what, .conv = __VA_ARGS__}, {     \
        OP_CONV_BWD_WEIGHT, what, .conv = __VA_ARGS__                                              \
    }
#define LINEAR_CASES(what, M_, K_, N_)                                                             \
    {OP_LINEAR_FWD, what, .M = M_, .K = K_, .N = N_},                                              \
        {OP_LINEAR_BWD_DATA, what, .M = M_, .K = K_, .N = N_}, {                                   \
        OP_LINEAR_BWD_WEIGHT, what, .M = M_, .K = K_, .N = N_                                      \
    }

/* SD 1.5's attentions at 64x64 latents (512x512 images) and the deeper
 * levels' head sizes. */
#define ATTN_CASES(what, B_, Nq, Nk, D, h)                                                         \
    {OP_ATTN_FWD, what, .batch = B_, .M = Nq, .N = Nk, .K = D, .heads = h}, {                      \
        OP_ATTN_BWD, what, .batch = B_, .M = Nq, .N = Nk, .K = D, .heads = h                       \
    }

static const bench_case bench_cases[] = {
    {OP_GEMM, "square 2048", .batch = 1, .M = 2048, .N = 2048, .K = 2048},
    {OP_GEMM_BATCHED, "QK^T 8 heads 1024x1024 d40", .batch = 8, .M = 1024, .N = 1024, .K = 40,
     .trans_b = 1},
    LINEAR_CASES("attn proj 4096x320->320", 4096, 320, 320),
    LINEAR_CASES("ff 4096x320->1280", 4096, 320, 1280),
    CONV_CASES("B1 32x32x256->256 3x3", CONV(1, 32, 256, 256, 3, 1, 1)),
    CONV_CASES("B2 32x32x256->256 3x3", CONV(2, 32, 256, 256, 3, 1, 1)),
    CONV_CASES("B1 64x64x320->320 3x3", CONV(1, 64, 320, 320, 3, 1, 1)),
    CONV_CASES("B2 64x64x320->320 3x3", CONV(2, 64, 320, 320, 3, 1, 1)),
    CONV_CASES("B1 64x64x320->320 3x3 s2", CONV(1, 64, 320, 320, 3, 2, 1)),
    CONV_CASES("B1 64x64x320->640 1x1", CONV(1, 64, 320, 640, 1, 1, 0)),
    ATTN_CASES("self 4096 tok 8h d40", 1, 4096, 4096, 40, 8),
    ATTN_CASES("cross 4096x77 8h d40", 1, 4096, 77, 40, 8),
    ATTN_CASES("self 1024 tok 8h d80", 1, 1024, 1024, 80, 8),
    ATTN_CASES("self 256 tok 8h d160", 1, 256, 256, 160, 8),
};

/* The operands of one case; gradients get buffers of their own.
 * attention: q = inp, k = weight, v = bias, dq / dk / dv = dinp / dweight /
 * dbias, plus lse and dout. */
enum {
    BUF_INP,
    BUF_WEIGHT,
    BUF_OUT,
    BUF_BIAS,
    BUF_DINP,
    BUF_DWEIGHT,
    BUF_DBIAS,
    BUF_LSE,
    BUF_DOUT,
    N_BUFS
};

/* n pseudo-random values in [-0.5, 0.5) in a buffer of be; NULL when
 * either the host staging buffer or the device buffer cannot be had. */
static float *bench_alloc(cnet_backend *be, long n) {
    const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    float *host = malloc(bytes);
    float *x = host ? be->alloc(be, bytes) : NULL;
    if (x) {
        uint64_t h = 0x9E3779B97F4A7C15ull;
        for (long i = 0; i < n; i++) {
            h = h * 6364136223846793005ull + 1442695040888963407ull;
            host[i] = (float)((h >> 40) & 0xffff) / 65536.0f - 0.5f;
        }
        be->upload(be, x, host, bytes);
    }
    free(host);
    return x;
}

static double case_gflop(const bench_case *c) {
    if (c->op >= OP_ATTN_FWD)
        return (c->op == OP_ATTN_FWD ? 2 : 5) * 2.0 * c->batch * c->heads * c->M * c->N * c->K *
               1e-9;
    if (c->op >= OP_CONV_FWD) {
        const cnet_conv2d *s = &c->conv;
        double P = (double)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
        return 2.0 * P * s->C_out * s->kh * s->kw * s->C_in * 1e-9;
    }
    return 2.0 * (c->batch ? c->batch : 1) * c->M * c->N * c->K * 1e-9;
}

/* Element counts of the buffers. gemm: inp = A, weight = B, out = C. */
static void case_sizes(const bench_case *c, long n[N_BUFS]) {
    n[BUF_LSE] = n[BUF_DOUT] = 1;
    if (c->op >= OP_ATTN_FWD) {
        const long HD = (long)c->heads * c->K;
        n[BUF_INP] = n[BUF_OUT] = n[BUF_DINP] = n[BUF_DOUT] = (long)c->batch * c->M * HD;
        n[BUF_WEIGHT] = n[BUF_BIAS] = n[BUF_DWEIGHT] = n[BUF_DBIAS] = (long)c->batch * c->N * HD;
        n[BUF_LSE] = (long)c->batch * c->heads * c->M;
        return;
    }
    if (c->op >= OP_CONV_FWD) {
        const cnet_conv2d *s = &c->conv;
        n[BUF_INP] = (long)s->B * s->H * s->W * s->C_in;
        n[BUF_WEIGHT] = (long)s->C_out * s->kh * s->kw * s->C_in;
        n[BUF_OUT] = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s) * s->C_out;
        n[BUF_BIAS] = s->C_out;
    } else {
        long batch = c->batch ? c->batch : 1;
        n[BUF_INP] = batch * c->M * c->K;
        n[BUF_WEIGHT] = batch * c->N * c->K;
        n[BUF_OUT] = batch * c->M * c->N;
        n[BUF_BIAS] = c->N;
    }
    n[BUF_DINP] = n[BUF_INP];
    n[BUF_DWEIGHT] = n[BUF_WEIGHT];
    n[BUF_DBIAS] = n[BUF_BIAS];
}

static void case_run(cnet_backend *be, const bench_case *c, float *const x[N_BUFS]) {
    const cnet_conv2d *s = &c->conv;
    const float *inp = x[BUF_INP], *w = x[BUF_WEIGHT], *bias = x[BUF_BIAS];
    float *out = x[BUF_OUT], *dout = x[BUF_OUT];
    switch (c->op) {
    case OP_GEMM:
        be->gemm(be, out, inp, w, c->M, c->N, c->K, 0, c->trans_b, 1.0f, 0.0f);
        break;
    case OP_GEMM_BATCHED:
        be->gemm_batched(be, out, inp, w, c->batch, c->M, c->N, c->K, 0, c->trans_b, 1.0f, 0.0f,
                         (long)c->M * c->K, (long)c->N * c->K, (long)c->M * c->N);
        break;
    case OP_LINEAR_FWD:
        be->linear_forward(be, out, inp, w, bias, c->M, c->K, c->N);
        break;
    case OP_LINEAR_BWD_DATA:
        be->linear_backward(be, x[BUF_DINP], NULL, NULL, dout, inp, w, c->M, c->K, c->N);
        break;
    case OP_LINEAR_BWD_WEIGHT:
        be->linear_backward(be, NULL, x[BUF_DWEIGHT], x[BUF_DBIAS], dout, inp, w, c->M, c->K, c->N);
        break;
    case OP_CONV_FWD:
        be->conv2d_forward(be, out, inp, w, bias, s);
        break;
    case OP_CONV_BWD_DATA:
        be->conv2d_backward(be, x[BUF_DINP], NULL, NULL, dout, inp, w, s);
        break;
    case OP_CONV_BWD_WEIGHT:
        be->conv2d_backward(be, NULL, x[BUF_DWEIGHT], x[BUF_DBIAS], dout, inp, w, s);
        break;
    case OP_ATTN_FWD:
        be->attention_forward(be, out, x[BUF_LSE], inp, w, bias, c->batch, c->M, c->N, c->heads,
                              c->K, 1.0f / sqrtf((float)c->K), 0);
        break;
    case OP_ATTN_BWD: /* out and lse pseudo-random: the timing does not depend on them */
        be->attention_backward(be, x[BUF_DINP], x[BUF_DWEIGHT], x[BUF_DBIAS], x[BUF_DOUT], inp, w,
                               bias, out, x[BUF_LSE], c->batch, c->M, c->N, c->heads, c->K,
                               1.0f / sqrtf((float)c->K), 0);
        break;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median milliseconds of `iters` timed runs after one warm-up; < 0 when the
 * buffers cannot be allocated. A failed device op shows in the backend's
 * status (the caller checks it). */
static double case_time_ms(cnet_backend *be, const bench_case *c, int iters) {
    long n[N_BUFS];
    float *x[N_BUFS];
    int ok = 1;
    case_sizes(c, n);
    for (int i = 0; i < N_BUFS; i++) ok &= (x[i] = bench_alloc(be, n[i])) != NULL;
    double ms = -1;
    double t[BENCH_OPS_MAX_ITERS];
    if (ok) {
        case_run(be, c, x);
        be->synchronize(be);
        for (int i = 0; i < iters; i++) {
            double t0 = omp_get_wtime();
            case_run(be, c, x);
            be->synchronize(be);
            t[i] = (omp_get_wtime() - t0) * 1e3;
        }
        qsort(t, (size_t)iters, sizeof t[0], cmp_double);
        ms = iters % 2 ? t[iters / 2] : 0.5 * (t[iters / 2 - 1] + t[iters / 2]);
    }
    for (int i = 0; i < N_BUFS; i++)
        if (x[i]) be->free(be, x[i]);
    return ms;
}

/* The GPU has no peak figure here: bench_peak measures the CPU's FMAs. */
static void print_gpu(const cnet_backend *be, const char *device, int json) {
    const char *prec = cnet_precision_name(be->precision);
    if (json) {
        printf("{\"machine\":{\"device\":\"%s\",\"mixed_precision\":\"%s\"}}\n", device, prec);
        return;
    }
    printf("device         %s (%s backend), mixed precision %s\n", device, be->name, prec);
    printf("               (no %% peak: the peak benchmark measures the CPU)\n\n");
    printf("%-18s %-30s %9s %9s %7s\n", "op", "shape", "ms", "GFLOP/s", "% peak");
}

/* Whether an op's % is of the bf16 peak: its products ran in bf16. */
static int against_bf16(const bench_peak *pk, const cnet_backend *be) {
    return be->precision == CNET_PREC_BF16 && pk->bf16_gflops > 0;
}

static double peak_of(const bench_peak *pk, const cnet_backend *be) {
    return against_bf16(pk, be) ? pk->bf16_gflops : pk->measured_gflops;
}

static void print_machine(const bench_peak *pk, const cnet_backend *be, int json) {
    const char *blas = openblas_get_config();
    if (json) {
        printf("{\"machine\":{\"device\":\"cpu\",\"threads\":%d,\"blas_threads\":%d,\"blas\":"
               "\"%s\",\"blas_core\":\"%s\",\"peak_isa\":\"%s\",\"peak_measured_gflops\":%.1f,"
               "\"peak_theoretical_gflops\":%.1f,\"nominal_ghz\":%.3f,\"flops_per_cycle\":%d,"
               "\"peak_bf16_gflops\":%.1f,\"mixed_precision\":\"%s\"}}\n",
               pk->threads, openblas_get_num_threads(), blas, openblas_get_corename(), pk->isa,
               pk->measured_gflops, pk->theoretical_gflops, pk->nominal_ghz, pk->flops_per_cycle,
               pk->bf16_gflops, cnet_precision_name(be->precision));
        return;
    }
    printf("threads        %d (OpenMP), %d (OpenBLAS)\n", pk->threads, openblas_get_num_threads());
    printf("blas           %s, kernels for %s\n", blas, openblas_get_corename());
    printf("peak measured  %.1f GFLOP/s fp32 (%s FMA microbenchmark, %.1f s)\n",
           pk->measured_gflops, pk->isa, BENCH_PEAK_SECONDS);
    printf("peak nominal   %.1f GFLOP/s = %d cores x %d flop/cycle (%s) x %.3f GHz\n",
           pk->theoretical_gflops, pk->threads, pk->flops_per_cycle, pk->datapath, pk->nominal_ghz);
    if (pk->bf16_gflops > 0)
        printf("peak bf16      %.1f GFLOP/s (vdpbf16ps microbenchmark)\n", pk->bf16_gflops);
    printf("               (%% peak below is of the measured %s figure: mixed precision %s)\n\n",
           against_bf16(pk, be) ? "bf16" : "fp32", cnet_precision_name(be->precision));
    printf("%-18s %-30s %9s %9s %7s\n", "op", "shape", "ms", "GFLOP/s", "% peak");
}

int bench_ops_run(const bench_ops_opts *o) {
    const int iters = o->iters, json = o->json;
    cnet_error err = {0};
    if (iters < 1 || iters > BENCH_OPS_MAX_ITERS) {
        fprintf(stderr, "cnet bench ops: iters %d is outside 1..%d\n", iters, BENCH_OPS_MAX_ITERS);
        return 2;
    }
    cnet_backend be;
    int rc = bench_open_backend(&be, o->device, o->precision, &err);
    if (rc) {
        fprintf(stderr, "cnet bench ops: %s\n", err.msg);
        return rc == CNET_EINVAL ? 2 : 1;
    }
    const int on_cpu = strcmp(be.name, "cpu") == 0;
    bench_peak pk;
    if (on_cpu) {
        bench_peak_measure(&pk, BENCH_PEAK_SECONDS);
        print_machine(&pk, &be, json);
    } else {
        print_gpu(&be, o->device, json);
    }
    int status = 0;
    for (size_t i = 0; i < sizeof bench_cases / sizeof bench_cases[0]; i++) {
        const bench_case *c = &bench_cases[i];
        double ms = case_time_ms(&be, c, iters);
        const int failed = cnet_backend_status(&be, &err) != 0;
        if (ms < 0 || failed) {
            fprintf(stderr, "cnet bench ops: %s %s: %s\n", op_names[c->op], c->what,
                    failed ? err.msg : "out of memory");
            status = 1;
            if (cnet_backend_recover(&be, &err)) { /* the device is lost to this process */
                fprintf(stderr, "cnet bench ops: %s\n", err.msg);
                break;
            }
            continue;
        }
        double gflop = case_gflop(c), gflops = gflop / (ms * 1e-3);
        char pct[16] = "null";
        if (on_cpu) snprintf(pct, sizeof pct, "%.1f", 100 * gflops / peak_of(&pk, &be));
        if (json)
            printf("{\"op\":\"%s\",\"shape\":\"%s\",\"gflop\":%.4f,\"iters\":%d,\"ms_median\":%.3f,"
                   "\"gflops\":%.1f,\"pct_peak\":%s}\n",
                   op_names[c->op], c->what, gflop, iters, ms, gflops, pct);
        else if (on_cpu)
            printf("%-18s %-30s %9.2f %9.1f %6s%%\n", op_names[c->op], c->what, ms, gflops, pct);
        else
            printf("%-18s %-30s %9.2f %9.1f %7s\n", op_names[c->op], c->what, ms, gflops, "-");
    }
    cnet_backend_free(&be);
    if (!on_cpu) return status;
    bench_peak end;
    bench_peak_measure(&end, BENCH_PEAK_SECONDS);
    double drift = fabs(end.measured_gflops / pk.measured_gflops - 1);
    if (json)
        printf("{\"machine_end\":{\"peak_measured_gflops\":%.1f}}\n", end.measured_gflops);
    else
        printf("\npeak at end    %.1f GFLOP/s\n", end.measured_gflops);
    if (drift > BENCH_PEAK_DRIFT)
        fprintf(stderr,
                "cnet bench ops: the peak moved by %.0f%% during the run (%.1f -> %.1f GFLOP/s); "
                "the machine was busy, figures are unreliable\n",
                100 * drift, pk.measured_gflops, end.measured_gflops);
    return status;
}
