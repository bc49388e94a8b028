/* The CPU backend's bf16 products (kernels/cpu/gemm_bf16.c and the ops at
 * --mixed_precision bf16) against two independent truths:
 *
 * - exactness: the same product in double on the operands rounded to bf16
 *   (cnet_f32_to_bf16, engine/core/tensor.c). Only the float32 accumulation
 *   differs, so |C - ref| <= K * 2^-23 * sum_k |a_k b_k| per element (a
 *   loose form of the float32 summation bound); a wrong pack, pair or tile
 *   edge is off by O(1).
 * - the float32 result: NMSE within tol16 (the CUDA bf16 parity tests'
 *   bound, tests/cuda/test_cuda_parity.c: 5 * roundings * u^2 / 3 with
 *   u = 2^-8), and above a thousandth of it, so the math really was bf16.
 *
 * On a CPU without AVX512-BF16 the kernel checks are skipped (said once)
 * and the backend must refuse bf16 with a note and stay float32. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/backend.h"
#include "engine/core/tensor.h"
#include "engine/models/controlnet.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/train_step.h"
#include "engine/models/unet.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/scratch.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_numeric.h"

#define U_BF16 (1.0 / 256)
/* tests/cuda/test_cuda_parity.c's tol16 for bf16. */
static double tol16(int roundings) { return 5.0 * roundings * U_BF16 * U_BF16 / 3.0; }

static uint64_t seed = 21;

static float bf16_value(float x) { return cnet_bf16_to_f32(cnet_f32_to_bf16(x)); }

/* op(X)[r][c] of a row-major matrix with leading dimension ld. */
static double at(const float *x, long ld, int trans, long r, long c) {
    return trans ? x[c * ld + r] : x[r * ld + c];
}

/* One gemm C = alpha op(A) op(B) + beta C at bf16, checked against the
 * double product of the bf16-rounded operands; with b16 the B operand is
 * passed already in bf16. */
static void check_gemm(int M, int N, int K, int ta, int tb, float alpha, float beta, int b16) {
    cnet_backend be = {0};
    const long lda = ta ? M : K, ldb = tb ? K : N;
    float *A = alloc_uniform((size_t)M * K + 1, -1, 1, &seed);
    float *B = alloc_uniform((size_t)K * N + 1, -1, 1, &seed);
    float *C = alloc_uniform((size_t)M * N, -1, 1, &seed);
    float *C0 = malloc((size_t)M * N * sizeof *C0 + 1);
    memcpy(C0, C, (size_t)M * N * sizeof *C);
    uint16_t *B16 = malloc(((size_t)K * N + 1) * sizeof *B16);
    for (long i = 0; i < (long)K * N; i++) B16[i] = cnet_f32_to_bf16(B[i]);
    cpu_matrix a = {.f32 = A, .ld = lda, .trans = ta};
    cpu_matrix b = {.f32 = b16 ? NULL : B, .bf16 = b16 ? B16 : NULL, .ld = ldb, .trans = tb};
    cpu_gemm_bf16(&be, C, N, a, b, M, N, K, alpha, beta);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                const double t = (double)bf16_value((float)at(A, lda, ta, i, k)) *
                                 bf16_value((float)at(B, ldb, tb, k, j));
                s += t;
                mag += fabs(t);
            }
            const double ref = alpha * s + (beta != 0.0f ? beta * (double)C0[(long)i * N + j] : 0);
            const double bound =
                (K + 2) * 0x1p-23 * (fabs(alpha) * mag + fabs(beta * C0[(long)i * N + j])) + 1e-30;
            const double e = fabs(C[(long)i * N + j] - ref) / bound;
            if (!(e <= worst)) worst = e;
        }
    EXPECT(worst <= 1.0,
           "gemm bf16 M%d N%d K%d ta%d tb%d alpha %g beta %g b16 %d: error %.2f x the bound", M, N,
           K, ta, tb, alpha, beta, b16, worst);
    cpu_scratch_free(&be);
    free(A), free(B), free(C), free(C0), free(B16);
}

static void test_gemm_exact(void) {
    if (!cpu_bf16_supported()) return;
    /* tile edges (12 x 32 micro-tiles, 96-row blocks, 512-k blocks), odd K
     * (the last pair half empty), every transpose, beta 0 over a NaN-free C */
    const int shapes[][3] = {{1, 1, 1},    {7, 5, 3},      {13, 33, 17},    {12, 32, 2},
                             {97, 65, 41}, {130, 70, 600}, {200, 31, 1030}, {5, 300, 77}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, 1.0f, 0.0f, 0);
    check_gemm(37, 45, 29, 0, 1, 0.5f, 1.0f, 0);
    check_gemm(37, 45, 29, 1, 0, -2.0f, 0.25f, 0);
    check_gemm(50, 70, 300, 0, 1, 1.0f, 1.0f, 1); /* a bf16-stored weight */
    check_gemm(50, 70, 31, 0, 0, 1.0f, 0.0f, 1);
    check_gemm(9, 11, 0, 0, 0, 1.0f, 0.5f, 0); /* K = 0: C = beta C */
}

/* Whether a backend at bf16 really computes in bf16: NaN in an operand's
 * low mantissa bits only would survive float32 (this is the converse:
 * values that differ below bf16's precision must give the same product). */
static void test_rounding_really_bf16(void) {
    if (!cpu_bf16_supported()) return;
    cnet_backend be = {0};
    float A[4] = {1.0f + 0x1p-12f, 1.0f, 1.0f, 1.0f}, B[4] = {1.0f, 0.0f, 0.0f, 1.0f}, C[4];
    cpu_matrix a = {.f32 = A, .ld = 2}, b = {.f32 = B, .ld = 2};
    cpu_gemm_bf16(&be, C, 2, a, b, 2, 2, 2, 1.0f, 0.0f);
    CHECK(C[0] == 1.0f && C[1] == 1.0f && C[2] == 1.0f && C[3] == 1.0f,
          "1 + 2^-12 must round to 1 in bf16: got %g %g %g %g", C[0], C[1], C[2], C[3]);
    cpu_scratch_free(&be);
}

/* NMSE of x against the reference r (n floats). */
static double nmse(const float *x, const float *r, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)x[i] - r[i];
        num += d * d, den += (double)r[i] * r[i];
    }
    return num / (den > 1e-30 ? den : 1e-30);
}

/* A CPU backend opened as the commands open it, at bf16 when it computes
 * bf16 (else float32, with the note checked). */
static cnet_backend BE;

/* out at bf16 (be at BF16) vs at float32: within tol and, where the op
 * really rounds (bf16_math), above a thousandth of it. */
static void expect_bf16(const float *bf, const float *f32, size_t n, double tol, int bf16_math,
                        const char *what) {
    const double e = nmse(bf, f32, n);
    EXPECT(e <= tol, "%s: NMSE %.3e (bound %.1e)", what, e, tol);
    if (bf16_math) EXPECT(e > 1e-3 * tol, "%s: NMSE %.3e, not bf16 math", what, e);
}

/* Runs `call` at float32 into out0, then at bf16 into out1. */
#define AT_BOTH(out0, out1, n, call)                                                               \
    do {                                                                                           \
        for (int pass_ = 0; pass_ < 2; pass_++) {                                                  \
            cnet_backend_set_precision(&BE, pass_ ? CNET_PREC_BF16 : CNET_PREC_F32, NULL, 0);      \
            float *o_ = pass_ ? (out1) : (out0);                                                   \
            for (size_t i_ = 0; i_ < (n); i_++) o_[i_] = NAN;                                      \
            call;                                                                                  \
        }                                                                                          \
        cnet_backend_set_precision(&BE, CNET_PREC_F32, NULL, 0);                                   \
    } while (0)

/* The heavy ops of the backend table at bf16 against float32, with the
 * CUDA parity tests' bounds: tol16(2) for products, tol16(3) for convs. */
static void test_backend_ops(void) {
    if (!cpu_bf16_supported()) return;
    const int M = 130, K = 80, N = 96;
    float *x = alloc_uniform((size_t)M * K, -1, 1, &seed),
          *w = alloc_uniform((size_t)N * K, -1, 1, &seed);
    float *bias = alloc_uniform(N, -1, 1, &seed),
          *dout = alloc_uniform((size_t)M * N, -1, 1, &seed);
    float *o[2], *d[2], *dw[2];
    for (int i = 0; i < 2; i++) {
        o[i] = malloc((size_t)M * N * sizeof(float));
        d[i] = malloc((size_t)M * K * sizeof(float));
        dw[i] = malloc((size_t)N * K * sizeof(float));
    }
    AT_BOTH(o[0], o[1], (size_t)M * N, BE.gemm(&BE, o_, x, w, M, N, K, 0, 1, 1.0f, 0.0f));
    expect_bf16(o[1], o[0], (size_t)M * N, tol16(2), 1, "gemm");
    AT_BOTH(o[0], o[1], (size_t)M * N, BE.linear_forward(&BE, o_, x, w, bias, M, K, N));
    expect_bf16(o[1], o[0], (size_t)M * N, tol16(2), 1, "linear_forward");
    AT_BOTH(d[0], d[1], (size_t)M * K,
            BE.linear_backward(&BE, o_, NULL, NULL, dout, x, w, M, K, N));
    expect_bf16(d[1], d[0], (size_t)M * K, tol16(2), 1, "linear_backward data");
    AT_BOTH(dw[0], dw[1], (size_t)N * K,
            (memset(o_, 0, (size_t)N * K * sizeof(float)),
             BE.linear_backward(&BE, NULL, o_, NULL, dout, x, w, M, K, N)));
    expect_bf16(dw[1], dw[0], (size_t)N * K, tol16(2), 1, "linear_backward weight");
    /* a bf16-stored weight fed as stored */
    uint16_t *w16 = malloc((size_t)N * K * sizeof *w16);
    for (long i = 0; i < (long)N * K; i++) w16[i] = cnet_f32_to_bf16(w[i]);
    AT_BOTH(o[0], o[1], (size_t)M * N,
            BE.linear_forward_w16(&BE, o_, x, w16, CNET_BF16, bias, M, K, N));
    expect_bf16(o[1], o[0], (size_t)M * N, tol16(2), 1, "linear_forward_w16");
    AT_BOTH(d[0], d[1], (size_t)M * K,
            BE.linear_backward_data_w16(&BE, o_, dout, w16, CNET_BF16, M, K, N));
    expect_bf16(d[1], d[0], (size_t)M * K, tol16(2), 1, "linear_backward_data_w16");
    /* convs: im2col (stride 2, asymmetric padding) at bf16; a Winograd shape
     * stays float32 (within the bound trivially) */
    const cnet_conv2d shapes[3] = {{2, 16, 14, 16, 24, 3, 3, 2, 0, 1, 0, 1},
                                   {2, 13, 11, 12, 20, 3, 3, 1, 1, 1, 1, 1},
                                   {1, 32, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1}};
    for (int c = 0; c < 3; c++) {
        const cnet_conv2d *s = &shapes[c];
        const size_t ni = (size_t)s->B * s->H * s->W * s->C_in,
                     no = (size_t)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s) * s->C_out,
                     nw = (size_t)s->C_out * 9 * s->C_in;
        float *ci = alloc_uniform(ni, -1, 1, &seed), *cw = alloc_uniform(nw, -1, 1, &seed);
        float *cg = alloc_uniform(no, -1, 1, &seed), *co[2], *cd[2];
        for (int i = 0; i < 2; i++) co[i] = malloc(no * 4), cd[i] = malloc(ni * 4);
        char what[64];
        AT_BOTH(co[0], co[1], no, BE.conv2d_forward(&BE, o_, ci, cw, bias, s));
        snprintf(what, sizeof what, "conv2d_forward %d", c);
        expect_bf16(co[1], co[0], no, tol16(3), c < 2, what);
        AT_BOTH(cd[0], cd[1], ni, BE.conv2d_backward(&BE, o_, NULL, NULL, cg, ci, cw, s));
        snprintf(what, sizeof what, "conv2d_backward data %d", c);
        expect_bf16(cd[1], cd[0], ni, tol16(3), 1, what);
        free(ci), free(cw), free(cg);
        for (int i = 0; i < 2; i++) free(co[i]), free(cd[i]);
    }
    free(x), free(w), free(bias), free(dout), free(w16);
    for (int i = 0; i < 2; i++) free(o[i]), free(d[i]), free(dw[i]);
}

/* The fused attention at bf16 against float32 (heads of 32 and more; a
 * narrower head stays float32), as the CUDA parity test checks its
 * tensor-core attention (bounds: tol16(4) for out, whose terms
 * carry four roundings (q, k, v, P); tol16(8) for the gradients (q, k, v,
 * dO, P, dS); lse tol16(2) / 100). The backward reads the float32 out and
 * lse at both precisions, so only its own differences count; each gradient
 * also alone (NULL for the others). */
static void check_attention(int B, int Nq, int Nk, int heads, int D, int causal) {
    const long HD = (long)heads * D;
    const size_t nq = (size_t)B * Nq * HD, nk = (size_t)B * Nk * HD, nl = (size_t)B * heads * Nq;
    const float scale = 1.0f / sqrtf((float)D);
    float *q = alloc_uniform(nq, -2, 2, &seed), *k = alloc_uniform(nk, -2, 2, &seed);
    float *v = alloc_uniform(nk, -1, 1, &seed), *dout = alloc_uniform(nq, -1, 1, &seed);
    float *out[2], *lse[2], *dq[2], *dk[2], *dv[2], *g[2];
    for (int i = 0; i < 2; i++) {
        out[i] = malloc(nq * 4), lse[i] = malloc(nl * 4), dq[i] = malloc(nq * 4);
        dk[i] = malloc(nk * 4), dv[i] = malloc(nk * 4), g[i] = malloc((nq > nk ? nq : nk) * 4);
    }
    char what[128];
#define WHAT(part)                                                                                 \
    (snprintf(what, sizeof what, "attention B%d Nq%d Nk%d h%d D%d causal%d: %s", B, Nq, Nk, heads, \
              D, causal, part),                                                                    \
     what)
    AT_BOTH(
        out[0], out[1], nq,
        (BE.attention_forward(&BE, o_, lse[pass_], q, k, v, B, Nq, Nk, heads, D, scale, causal)));
    const int bf16_math = D >= 32; /* kernels/cpu/attention.c's ATTN_BF16_MIN_D */
    expect_bf16(out[1], out[0], nq, tol16(4), bf16_math, WHAT("out"));
    expect_bf16(lse[1], lse[0], nl, tol16(2) / 100, 0, WHAT("lse"));
    /* dv is the op's output the macro fills; dq and dk are checked after */
    AT_BOTH(dv[0], dv[1], nk,
            (BE.attention_backward(&BE, dq[pass_], dk[pass_], o_, dout, q, k, v, out[0], lse[0], B,
                                   Nq, Nk, heads, D, scale, causal)));
    expect_bf16(dq[1], dq[0], nq, tol16(8), bf16_math, WHAT("dq"));
    expect_bf16(dk[1], dk[0], nk, tol16(8), bf16_math, WHAT("dk"));
    expect_bf16(dv[1], dv[0], nk, tol16(8), bf16_math, WHAT("dv"));
    AT_BOTH(g[0], g[1], nq,
            (BE.attention_backward(&BE, o_, NULL, NULL, dout, q, k, v, out[0], lse[0], B, Nq, Nk,
                                   heads, D, scale, causal)));
    expect_bf16(g[1], dq[0], nq, tol16(8), bf16_math, WHAT("dq alone"));
    AT_BOTH(g[0], g[1], nk,
            (BE.attention_backward(&BE, NULL, o_, NULL, dout, q, k, v, out[0], lse[0], B, Nq, Nk,
                                   heads, D, scale, causal)));
    expect_bf16(g[1], dk[0], nk, tol16(8), bf16_math, WHAT("dk alone"));
#undef WHAT
    free(q), free(k), free(v), free(dout);
    for (int i = 0; i < 2; i++)
        free(out[i]), free(lse[i]), free(dq[i]), free(dk[i]), free(dv[i]), free(g[i]);
}

/* SD's head sizes and the fixtures', odd token counts, causal (CLIP),
 * cross-attention, several query and key blocks. */
static void test_attention(void) {
    if (!cpu_bf16_supported()) return;
    const int dims[] = {40, 64, 80, 160, 8, 200};
    for (int d = 0; d < 6; d++) check_attention(2, 70, 70, 2, dims[d], 0);
    check_attention(2, 77, 77, 3, 64, 1);
    check_attention(1, 100, 77, 2, 40, 0);
    check_attention(1, 130, 200, 2, 80, 0);
    check_attention(1, 150, 150, 1, 64, 1);
}

/* A short generation of the tiny fixture pipeline (4 steps, no CFG: the
 * model's bound, text encoder and VAE included) at bf16 against float32,
 * with float32 and with bf16-stored frozen weights (the same stored values
 * at both precisions). Bound as tests/cuda/test_cuda_parity.c's
 * check_generation: ~25 products per step, each tol16(3) / 5, 5x margin,
 * summed over the steps. */
static void check_generation(cnet_dtype weights) {
    char dir[2][4096];
    snprintf(dir[0], sizeof dir[0], "%s/tiny-sd", harness_fixtures());
    snprintf(dir[1], sizeof dir[1], "%s/tiny-sd/controlnet", harness_fixtures());
    sd_base base;
    controlnet_model cn;
    cnet_sched_config scfg;
    cnet_error err = {0};
    CHECK(sd_base_open(&base, &BE, dir[0], &err) == 0, "%s", err.msg);
    int rc = controlnet_open(&cn, &BE, dir[1], &err);
    if (rc) sd_base_free(&base);
    CHECK(rc == 0, "%s", err.msg);
    if (weights == CNET_BF16 && !(rc = sd_base_store16(&base, CNET_PREC_BF16, &err)))
        rc = params_store16(&cn.params, CNET_BF16, &err);
    int have_cfg = 0;
    if (!rc && !(rc = sd_base_scheduler(&base, -1, &scfg, &err))) have_cfg = 1;
    EXPECT(rc == 0, "%s", err.msg);
    const int steps = 4, H = 8 * controlnet_image_factor(&cn), W = H;
    const size_t n = (size_t)H * W * 3;
    float *control = alloc_uniform(n, 0, 1, &seed);
    float *img[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
    pipe_request req;
    memset(&req, 0, sizeof req);
    req.prompt = "a red circle on a navy background";
    req.steps = steps, req.guidance = 1.0f, req.seed = 7;
    req.width = W, req.height = H, req.num_images = 1, req.n_controlnets = 1;
    req.controlnets[0] = (pipe_controlnet){
        .model = &cn, .image = control, .n_images = 1, .scale = 1, .start = 0, .end = 1};
    for (int p = 0; p < 2 && !rc; p++) {
        cnet_backend_set_precision(&BE, p ? CNET_PREC_BF16 : CNET_PREC_F32, NULL, 0);
        pipe_models m = sd_base_models(&base);
        rc = pipeline_generate(&m, &scfg, &req, img[p], NULL, &err);
        EXPECT(rc == 0, "generate: %s", err.msg);
    }
    cnet_backend_set_precision(&BE, CNET_PREC_F32, NULL, 0);
    if (!rc) {
        const double e = nmse(img[1], img[0], n);
        const double bound = steps * 5.0 * 25.0 * tol16(3) / 5.0;
        printf("    generation bf16, %s weights: image NMSE %.2e (bound %.1e)\n",
               cnet_dtype_name(weights), e, bound);
        EXPECT(e <= bound, "image NMSE %.3e > %.1e", e, bound);
        EXPECT(e > 0, "the bf16 image equals the float32 one: no bf16 math ran");
    }
    free(control), free(img[0]), free(img[1]);
    if (have_cfg) cnet_sched_config_free(&scfg);
    controlnet_free(&cn);
    sd_base_free(&base);
}

static void test_generation(void) {
    if (!cpu_bf16_supported()) return;
    check_generation(CNET_F32);
    check_generation(CNET_BF16);
}

/* One ControlNet training step of the tiny fixture model (forward, loss,
 * backward into the ControlNet's gradients) at bf16 against float32, with
 * float32 and with a bf16-stored UNet. Bounds as the CUDA parity test's
 * check_train_step (model_tol: ~25 products, each tol16(3) / 5, 5x margin;
 * twice that for the gradients, which go back through as many). */
static void check_train_step(cnet_dtype weights) {
    char path[3][4096];
    snprintf(path[0], sizeof path[0], "%s/tiny-sd/unet", harness_fixtures());
    snprintf(path[1], sizeof path[1], "%s/tiny-sd/controlnet", harness_fixtures());
    snprintf(path[2], sizeof path[2], "%s/tiny-sd/scheduler/scheduler_config.json",
             harness_fixtures());
    unet_model un;
    controlnet_model cn;
    sched dd;
    train_step ts;
    cnet_sched_config scfg;
    cnet_error err = {0};
    int stage = 0;
    int rc = cnet_sched_config_load(&scfg, path[2], CNET_SCHED_DDPM, &err);
    CHECK(rc == 0, "%s", err.msg);
    const int B = 2, h = 8, w = 8, Nt = 7;
    if (!(rc = unet_open(&un, &BE, path[0], &err))) stage = 1;
    if (!rc) rc = params_store16(&un.params, weights, &err);
    if (!rc && !(rc = controlnet_open(&cn, &BE, path[1], &err))) stage = 2;
    if (!rc && !(rc = sched_init(&dd, &BE, &scfg, 0, &err))) stage = 3;
    train_step_config cfg = {.prediction = TRAIN_PRED_EPSILON, .B = B, .h = h, .w = w, .Nt = Nt};
    if (!rc && !(rc = train_step_init(&ts, &un, &cn, &dd, &cfg, &err))) stage = 4;
    EXPECT(rc == 0, "opening the tiny model: %s", err.msg);
    if (!rc) {
        const int f = controlnet_image_factor(&cn), Dt = un.enc.cfg.cross_attention_dim[0];
        const int64_t t[2] = {981, 17};
        const size_t np = ts.grads.total, npred = (size_t)B * h * w * 4;
        float *lat = alloc_uniform(npred, -1, 1, &seed),
              *noise = alloc_uniform(npred, -2, 2, &seed);
        float *text = alloc_uniform((size_t)B * Nt * Dt, -1, 1, &seed);
        float *cond = alloc_uniform((size_t)B * h * f * w * f * 3, 0, 1, &seed);
        float *pred[2] = {malloc(npred * 4), malloc(npred * 4)};
        float *grads[2] = {malloc(np * 4), malloc(np * 4)}, loss[2] = {NAN, NAN};
        for (int p = 0; p < 2 && !rc; p++) {
            cnet_backend_set_precision(&BE, p ? CNET_PREC_BF16 : CNET_PREC_F32, NULL, 0);
            BE.zero(&BE, ts.grads.block, np * sizeof(float));
            rc = train_step_accumulate(&ts, B, lat, noise, t, text, cond, 1.0f, &loss[p], &err);
            EXPECT(rc == 0, "train step: %s", err.msg);
            memcpy(pred[p], ts.pred, npred * 4);
            memcpy(grads[p], ts.grads.block, np * 4);
        }
        cnet_backend_set_precision(&BE, CNET_PREC_F32, NULL, 0);
        if (!rc) {
            const double per_op = tol16(3) / 5.0, tol_fwd = 5.0 * 25.0 * per_op;
            const double e_pred = nmse(pred[1], pred[0], npred),
                         e_grad = nmse(grads[1], grads[0], np);
            const double e_loss = ((double)loss[1] - loss[0]) * ((double)loss[1] - loss[0]) /
                                  ((double)loss[0] * loss[0]);
            printf("    train step bf16, %s weights: NMSE pred %.2e, grads %.2e, loss %.2e\n",
                   cnet_dtype_name(weights), e_pred, e_grad, e_loss);
            EXPECT(e_pred <= tol_fwd && e_pred > 0, "prediction NMSE %.3e (bound %.1e)", e_pred,
                   tol_fwd);
            EXPECT(e_loss <= tol_fwd, "loss %.6g vs %.6g", loss[1], loss[0]);
            EXPECT(e_grad <= 2 * tol_fwd && e_grad > 0, "gradients NMSE %.3e (bound %.1e)", e_grad,
                   2 * tol_fwd);
        }
        free(lat), free(noise), free(text), free(cond);
        for (int i = 0; i < 2; i++) free(pred[i]), free(grads[i]);
    }
    if (stage >= 4) train_step_free(&ts);
    if (stage >= 3) sched_free(&dd);
    if (stage >= 2) controlnet_free(&cn);
    if (stage >= 1) unet_free(&un);
    cnet_sched_config_free(&scfg);
}

static void test_train_step(void) {
    if (!cpu_bf16_supported()) return;
    check_train_step(CNET_F32);
    check_train_step(CNET_BF16);
}

/* The backend grants bf16 exactly where the CPU has AVX512-BF16, never
 * fp16, and says so otherwise. */
static void test_precision_granted(void) {
    char note[256];
    cnet_backend_set_precision(&BE, CNET_PREC_BF16, note, sizeof note);
    if (cpu_bf16_supported())
        EXPECT(BE.precision == CNET_PREC_BF16 && note[0] == '\0', "bf16 refused: '%s'", note);
    else
        EXPECT(BE.precision == CNET_PREC_F32 && strstr(note, "computes in float32"),
               "bf16 without AVX512-BF16: precision %d, note '%s'", (int)BE.precision, note);
    cnet_backend_set_precision(&BE, CNET_PREC_F16, note, sizeof note);
    EXPECT(BE.precision == CNET_PREC_F32 && strstr(note, "--mixed_precision fp16 applies on cuda"),
           "fp16: precision %d, note '%s'", (int)BE.precision, note);
    cnet_backend_set_precision(&BE, CNET_PREC_F32, NULL, 0);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (!cpu_bf16_supported())
        printf("    this CPU has no AVX512-BF16: bf16 kernel checks skipped\n");
    RUN(test_gemm_exact);
    RUN(test_rounding_really_bf16);
    cnet_error err = {0};
    if (cnet_backend_cpu_init(&BE, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    RUN(test_precision_granted);
    RUN(test_backend_ops);
    RUN(test_attention);
    RUN(test_generation);
    RUN(test_train_step);
    cnet_backend_free(&BE);
    return harness_done();
}
