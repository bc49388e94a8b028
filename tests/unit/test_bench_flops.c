/* The FLOP counter of `cnet bench --model` (server/bench/bench_flops.h):
 * each wrapped product entry adds 2 x its multiply-adds, worked out here by
 * hand from the shapes (a direct convolution's, whatever kernel runs it;
 * attention's 2 products forward and up to 5 backward), and still computes
 * what the unwrapped backend computes (the same bits: the shim only
 * forwards). Entries that are not products count nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/backend.h"
#include "server/bench/bench_flops.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_numeric.h"

static uint64_t seed = 5;

static void test_counts_and_forwards(void) {
    cnet_backend plain, be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&plain, &err) == 0 && cnet_backend_cpu_init(&be, &err) == 0, "%s",
          err.msg);
    bench_flops_wrap(&be);
    const int M = 33, K = 20, N = 17;
    float *x = alloc_uniform((size_t)M * K, -1, 1, &seed),
          *w = alloc_uniform((size_t)N * K, -1, 1, &seed);
    float *y0 = calloc((size_t)M * N, 4), *y1 = calloc((size_t)M * N, 4);
    plain.linear_forward(&plain, y0, x, w, NULL, M, K, N);
    be.linear_forward(&be, y1, x, w, NULL, M, K, N);
    EXPECT(bench_flops_take() == 2.0 * M * K * N, "linear_forward");
    EXPECT(memcmp(y0, y1, (size_t)M * N * 4) == 0, "the wrapped linear computed something else");
    float *dx = calloc((size_t)M * K, 4), *dw = calloc((size_t)N * K, 4);
    be.linear_backward(&be, dx, dw, NULL, y1, x, w, M, K, N);
    EXPECT(bench_flops_take() == 2 * 2.0 * M * K * N, "linear_backward, both gradients");
    be.linear_backward(&be, NULL, dw, NULL, y1, x, w, M, K, N);
    EXPECT(bench_flops_take() == 2.0 * M * K * N, "linear_backward, dweight only");
    be.gemm_batched(&be, y1, x, w, 1, M, N, K, 0, 1, 1.0f, 0.0f, 0, 0, 0);
    EXPECT(bench_flops_take() == 2.0 * M * N * K, "gemm_batched");
    /* 3x3 stride 2 on 9x7, pad 1: 5 x 4 outputs */
    cnet_conv2d s = {1, 9, 7, 4, 6, 3, 3, 2, 1, 1, 1, 1};
    float *ci = alloc_uniform(9 * 7 * 4, -1, 1, &seed),
          *cw = alloc_uniform(6 * 9 * 4, -1, 1, &seed);
    float *co = calloc(5 * 4 * 6, 4);
    be.conv2d_forward(&be, co, ci, cw, NULL, &s);
    EXPECT(bench_flops_take() == 2.0 * 5 * 4 * 6 * 9 * 4, "conv2d_forward");
    be.silu_forward(&be, co, co, 5 * 4 * 6);
    EXPECT(bench_flops_take() == 0, "silu is not a product");
    /* attention B 1, 5 queries, 7 keys, 2 heads of 8 */
    const int Nq = 5, Nk = 7, H = 2, D = 8;
    float *q = alloc_uniform(Nq * H * D, -1, 1, &seed),
          *k = alloc_uniform(Nk * H * D, -1, 1, &seed);
    float *v = alloc_uniform(Nk * H * D, -1, 1, &seed), *o = calloc(Nq * H * D, 4);
    float *lse = calloc(Nq * H, 4), *dq = calloc(Nq * H * D, 4), *dk = calloc(Nk * H * D, 4);
    float *dv = calloc(Nk * H * D, 4);
    const double one = 2.0 * H * Nq * Nk * D;
    be.attention_forward(&be, o, lse, q, k, v, 1, Nq, Nk, H, D, 0.35f, 0);
    EXPECT(bench_flops_take() == 2 * one, "attention_forward");
    be.attention_backward(&be, dq, dk, dv, o, q, k, v, o, lse, 1, Nq, Nk, H, D, 0.35f, 0);
    EXPECT(bench_flops_take() == 5 * one, "attention_backward, all gradients");
    be.attention_backward(&be, NULL, NULL, dv, o, q, k, v, o, lse, 1, Nq, Nk, H, D, 0.35f, 0);
    EXPECT(bench_flops_take() == 2 * one, "attention_backward, dv only (P, then dV)");
    free(x), free(w), free(y0), free(y1), free(dx), free(dw), free(ci), free(cw), free(co);
    free(q), free(k), free(v), free(o), free(lse), free(dq), free(dk), free(dv);
    cnet_backend_free(&plain);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_counts_and_forwards);
    return harness_done();
}
