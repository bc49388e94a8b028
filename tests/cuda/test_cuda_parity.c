/* CUDA backend vs CPU backend, op by op and on a whole model: every entry of
 * engine/core/backend.h runs on both with the same random inputs, and the CUDA
 * result must match the CPU one with NMSE <= 1e-6 (float32, TF32 off);
 * Philox normals and 8-bit AdamW must be bit-identical. Outputs that
 * overwrite start as NaN and gradients that accumulate start random on both
 * sides, so a backend that skips a write or overwrites an accumulator
 * fails. The model check runs the fixture's ControlNet and then the UNet
 * with its residuals on both backends.
 *
 * Mixed precision (--mixed_precision bf16 / fp16): the heavy ops (gemm,
 * gemm_batched, linear, conv2d forward and backward, attention forward and
 * backward on tensor cores) run again on CUDA at each 16-bit precision
 * against the same float32 CPU results, with bounds derived from the
 * formats (see tol16); so do the products with 16-bit stored weights. Then one whole training step
 * (prediction, loss, every ControlNet gradient) and one short generation (the image) at f32, bf16
 * and fp16 against the CPU. Last, a whole training step on both backends
 * with and without the memory levers (gradient checkpointing,
 * set_grads_to_none).
 *
 * The CPU backend is the independent truth here: it is itself checked
 * against double references and finite differences (tests/unit/test_ops_*.c)
 * and the PyTorch goldens. Without a CUDA build or a visible GPU the
 * program prints one "skipped" line and a 0/0 summary. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/adam8.h"
#include "engine/core/backend.h"
#include "engine/models/controlnet.h"
#include "engine/core/philox.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "engine/train/train_step.h"
#include "engine/models/unet.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_numeric.h"
#ifdef CNET_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_backend.h"
#endif

#define TOL 1e-6

#ifdef CNET_HAVE_CUDA

/* The bound EXPECT_CLOSE applies: TOL, or a 16-bit one while the mixed
 * precision checks run. */
static double tol_now = TOL;

/* Unit roundoff of the 16-bit formats (round to nearest even): bfloat16
 * keeps 8 significant bits (7 stored), IEEE half 11 (10 stored). */
#define U_BF16 (1.0 / 256)
#define U_F16 (1.0 / 2048)

/* NMSE bound of a product whose `roundings` operands per term are rounded
 * to 16 bits (2 for a gemm, 3 for a conv, whose output is 16-bit too) and
 * summed in float32. Each rounding multiplies a term by (1 + d) with
 * E[d^2] <= u^2/3, so a term's error variance is roundings * u^2/3 of its
 * square. With zero-mean inputs (the tests' uniform [-1, 1)) the K terms of
 * a sum have independent signs: its error and the sum itself both grow as
 * sqrt(K), so the NMSE is roundings * u^2/3 whatever K (float32
 * accumulation adds ~K * 2^-24 at worst, negligible squared for K < 10^4).
 * bf16: 1.0e-5 (gemm), 1.5e-5 (conv); fp16: 1.6e-7, 2.4e-7. The bound
 * allows 5x that (the rounding errors' distribution over a binade, small
 * sample sizes), and the library may round to TF32 instead (more precise). */
static double tol16(cnet_precision p, int roundings) {
    const double u = p == CNET_PREC_BF16 ? U_BF16 : U_F16;
    return 5.0 * roundings * u * u / 3.0;
}

/* BE[0] the CPU backend, BE[1] the CUDA backend. */
static cnet_backend BE[2];

/* One buffer on both backends: p[0] host (CPU backend), p[1] device. */
typedef struct pbuf {
    void *p[2];
    size_t bytes;
} pbuf;

enum { POOL_MAX = 64 };
static pbuf *pool[POOL_MAX];
static int npool;
static uint64_t seed = 42;

static pbuf *pb_new(size_t bytes, const void *init) {
    pbuf *b = calloc(1, sizeof *b);
    if (!b || npool == POOL_MAX) abort();
    b->bytes = bytes;
    for (int s = 0; s < 2; s++) {
        if (!(b->p[s] = BE[s].alloc(&BE[s], bytes ? bytes : 4))) abort();
        if (init && bytes) BE[s].upload(&BE[s], b->p[s], init, bytes);
    }
    pool[npool++] = b;
    return b;
}

/* n uniform floats in [lo, hi), the same on both sides. */
static pbuf *pb_rand(size_t n, float lo, float hi) {
    float *h = alloc_uniform(n, lo, hi, &seed);
    pbuf *b = pb_new(n * sizeof(float), h);
    free(h);
    return b;
}

static pbuf *pb_fill(size_t n, float v) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = v;
    pbuf *b = pb_new(n * sizeof(float), h);
    free(h);
    return b;
}

static void pool_free(void) {
    for (int i = 0; i < npool; i++) {
        for (int s = 0; s < 2; s++) BE[s].free(&BE[s], pool[i]->p[s]);
        free(pool[i]);
    }
    npool = 0;
}

/* sum (gpu - cpu)^2 / sum cpu^2 over n floats: c on the host (CPU
 * backend), dev on the CUDA backend (NaN stays NaN). */
static double nmse_vs_cpu(const float *c, const void *dev, size_t n) {
    float *g = malloc((n ? n : 1) * sizeof *g);
    BE[1].download(&BE[1], g, dev, n * sizeof(float));
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] - c[i];
        num += d * d;
        den += (double)c[i] * c[i];
    }
    free(g);
    return num / (den > 1e-30 ? den : 1e-30);
}

static double pb_nmse(const pbuf *b) {
    return nmse_vs_cpu(b->p[0], b->p[1], b->bytes / sizeof(float));
}

#define BOTH(op, ...)                                                                              \
    for (int s_ = 0; s_ < 2; s_++) BE[s_].op(&BE[s_], __VA_ARGS__)
#define F(b) ((float *)(b)->p[s_])
#define CF(b) ((const float *)(b)->p[s_])

#define EXPECT_CLOSE(buf, what)                                                                    \
    do {                                                                                           \
        double e_ = pb_nmse(buf);                                                                  \
        EXPECT(e_ <= tol_now, "%s: NMSE %.3e (bound %.1e)", what, e_, tol_now);                    \
    } while (0)

static void expect_healthy(void) {
    cnet_error err = {0};
    BE[1].synchronize(&BE[1]);
    EXPECT(cnet_backend_cuda_status(&BE[1], &err) == 0, "CUDA failure: %s", err.msg);
}

static void test_gemm(void) {
    const int M = 67, N = 45, K = 93, batch = 3;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            pbuf *A = pb_rand((size_t)batch * M * K, -1, 1),
                 *B = pb_rand((size_t)batch * K * N, -1, 1);
            pbuf *C = pb_rand((size_t)batch * M * N, -1, 1),
                 *Cb = pb_rand((size_t)batch * M * N, -1, 1);
            BOTH(gemm, F(C), CF(A), CF(B), M, N, K, ta, tb, 0.7f, 0.3f);
            BOTH(gemm_batched, F(Cb), CF(A), CF(B), batch, M, N, K, ta, tb, 1.3f, 1.0f, (long)M * K,
                 (long)K * N, (long)M * N);
            char what[64];
            snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
            EXPECT_CLOSE(C, what);
            snprintf(what, sizeof what, "gemm_batched ta=%d tb=%d", ta, tb);
            EXPECT_CLOSE(Cb, what);
        }
    pbuf *A = pb_rand(8, -1, 1), *C = pb_rand(12, -1, 1), *Z = pb_fill(12, NAN);
    BOTH(gemm, F(C), CF(A), CF(A), 3, 4, 0, 0, 0, 1.0f, 0.5f); /* K = 0: C = beta C */
    BOTH(gemm, F(Z), CF(A), CF(A), 3, 4, 0, 0, 0, 1.0f, 0.0f); /* beta 0 clears NaN */
    EXPECT_CLOSE(C, "gemm K=0");
    EXPECT_CLOSE(Z, "gemm K=0 beta=0");
    expect_healthy();
    pool_free();
}

static void test_linear(void) {
    const int M = 130, K = 77, N = 96;
    pbuf *x = pb_rand((size_t)M * K, -1, 1), *w = pb_rand((size_t)N * K, -0.5f, 0.5f);
    pbuf *bias = pb_rand(N, -1, 1), *dout = pb_rand((size_t)M * N, -1, 1);
    pbuf *y = pb_fill((size_t)M * N, NAN), *y0 = pb_fill((size_t)M * N, NAN);
    pbuf *dx = pb_fill((size_t)M * K, NAN), *dw = pb_rand((size_t)N * K, -1, 1);
    pbuf *db = pb_rand(N, -1, 1), *dw2 = pb_rand((size_t)N * K, -1, 1);
    BOTH(linear_forward, F(y), CF(x), CF(w), CF(bias), M, K, N);
    BOTH(linear_forward, F(y0), CF(x), CF(w), NULL, M, K, N);
    BOTH(linear_backward, F(dx), F(dw), F(db), CF(dout), CF(x), CF(w), M, K, N);
    BOTH(linear_backward, NULL, F(dw2), NULL, CF(dout), CF(x), CF(w), M, K, N);
    EXPECT_CLOSE(y, "linear forward (bias)");
    EXPECT_CLOSE(y0, "linear forward (no bias)");
    EXPECT_CLOSE(dx, "linear dinp");
    EXPECT_CLOSE(dw, "linear dweight (+=)");
    EXPECT_CLOSE(db, "linear dbias (+=)");
    EXPECT_CLOSE(dw2, "linear dweight alone");
    expect_healthy();
    pool_free();
}

/* Returns the forward's NMSE. */
static double check_conv(cnet_conv2d s, const char *name) {
    const int Ho = cnet_conv2d_out_h(&s), Wo = cnet_conv2d_out_w(&s);
    const size_t nin = (size_t)s.B * s.H * s.W * s.C_in, nout = (size_t)s.B * Ho * Wo * s.C_out;
    const size_t nw = (size_t)s.C_out * s.kh * s.kw * s.C_in;
    pbuf *x = pb_rand(nin, -1, 1), *w = pb_rand(nw, -0.3f, 0.3f), *b = pb_rand(s.C_out, -1, 1);
    pbuf *dout = pb_rand(nout, -1, 1), *y = pb_fill(nout, NAN), *dx = pb_fill(nin, NAN);
    pbuf *dw = pb_rand(nw, -1, 1), *db = pb_rand(s.C_out, -1, 1);
    BOTH(conv2d_forward, F(y), CF(x), CF(w), CF(b), &s);
    BOTH(conv2d_backward, F(dx), F(dw), F(db), CF(dout), CF(x), CF(w), &s);
    char what[96];
    snprintf(what, sizeof what, "%s forward", name);
    EXPECT_CLOSE(y, what);
    snprintf(what, sizeof what, "%s dinp", name);
    EXPECT_CLOSE(dx, what);
    snprintf(what, sizeof what, "%s dweight (+=)", name);
    EXPECT_CLOSE(dw, what);
    snprintf(what, sizeof what, "%s dbias (+=)", name);
    EXPECT_CLOSE(db, what);
    const double forward = pb_nmse(y);
    expect_healthy();
    pool_free();
    return forward;
}

static void test_conv2d(void) {
    check_conv((cnet_conv2d){2, 13, 11, 12, 20, 3, 3, 1, 1, 1, 1, 1}, "conv 3x3 pad 1");
    check_conv((cnet_conv2d){2, 16, 16, 8, 8, 3, 3, 2, 1, 1, 1, 1}, "conv 3x3 stride 2");
    check_conv((cnet_conv2d){1, 16, 14, 6, 10, 3, 3, 2, 0, 1, 0, 1}, "conv asymmetric pad");
    check_conv((cnet_conv2d){2, 9, 7, 24, 16, 1, 1, 1, 0, 0, 0, 0}, "conv 1x1");
    check_conv((cnet_conv2d){1, 12, 12, 3, 8, 3, 3, 1, 1, 1, 1, 1}, "conv C_in 3");
}

static void check_norm(int B, int HW, int C, int G, int fuse, int layer, float center) {
    const size_t n = (size_t)B * HW * C, ns = layer ? (size_t)B * HW : (size_t)B * G;
    pbuf *x = pb_rand(n, center - 2, center + 2), *ga = pb_rand(C, 0.5f, 1.5f);
    pbuf *be = pb_rand(C, -0.5f, 0.5f), *dout = pb_rand(n, -1, 1);
    pbuf *y = pb_fill(n, NAN), *mean = pb_fill(ns, NAN), *rstd = pb_fill(ns, NAN);
    pbuf *dx = pb_fill(n, NAN), *dga = pb_rand(C, -1, 1), *dbe = pb_rand(C, -1, 1);
    if (layer) {
        BOTH(layer_norm_forward, F(y), F(mean), F(rstd), CF(x), CF(ga), CF(be), B * HW, C, 1e-5f);
        BOTH(layer_norm_backward, F(dx), F(dga), F(dbe), CF(dout), CF(x), CF(mean), CF(rstd),
             CF(ga), B * HW, C);
    } else {
        BOTH(group_norm_forward, F(y), F(mean), F(rstd), CF(x), CF(ga), CF(be), B, HW, C, G, 1e-5f,
             fuse);
        BOTH(group_norm_backward, F(dx), F(dga), F(dbe), CF(dout), CF(x), CF(mean), CF(rstd),
             CF(ga), CF(be), B, HW, C, G, fuse);
    }
    char what[128];
    const char *kind = layer ? "layer norm" : fuse ? "group norm+silu" : "group norm";
#define NORM_EXPECT(buf, part)                                                                     \
    snprintf(what, sizeof what, "%s B%d HW%d C%d G%d center %g: %s", kind, B, HW, C, G, center,    \
             part);                                                                                \
    EXPECT_CLOSE(buf, what)
    NORM_EXPECT(y, "out");
    NORM_EXPECT(mean, "mean");
    NORM_EXPECT(rstd, "rstd");
    NORM_EXPECT(dx, "dinp");
    NORM_EXPECT(dga, "dgamma (+=)");
    NORM_EXPECT(dbe, "dbeta (+=)");
#undef NORM_EXPECT
    expect_healthy();
    pool_free();
}

static void test_norms(void) {
    check_norm(2, 300, 64, 8, 0, 0, 0.0f);
    check_norm(2, 700, 96, 32, 1, 0, 3.0f); /* several chunks, mean >> std */
    check_norm(1, 17, 40, 4, 1, 0, 0.0f);
    check_norm(3, 70, 320, 1, 0, 1, 0.0f); /* layer norm: 210 rows of 320 */
    check_norm(1, 5, 33, 1, 0, 1, 5.0f);
}

static void test_activations(void) {
    const long n = 5000;
    const int M = 37, Fd = 70;
    pbuf *x = pb_rand(n, -6, 6), *dout = pb_rand(n, -1, 1);
    pbuf *g = pb_rand((size_t)M * 2 * Fd, -4, 4), *gd = pb_rand((size_t)M * Fd, -1, 1);
    pbuf *o[5];
    for (int i = 0; i < 5; i++) o[i] = pb_fill(n, NAN);
    pbuf *go = pb_fill((size_t)M * Fd, NAN), *gdx = pb_fill((size_t)M * 2 * Fd, NAN);
    BOTH(silu_forward, F(o[0]), CF(x), n);
    BOTH(gelu_forward, F(o[1]), CF(x), n);
    BOTH(quick_gelu_forward, F(o[2]), CF(x), n);
    BOTH(silu_backward, F(o[3]), CF(dout), CF(x), n);
    BOTH(gelu_backward, F(o[4]), CF(dout), CF(x), n);
    BOTH(geglu_forward, F(go), CF(g), M, Fd);
    BOTH(geglu_backward, F(gdx), CF(gd), CF(g), M, Fd);
    const char *names[5] = {"silu", "gelu", "quick_gelu", "silu backward", "gelu backward"};
    for (int i = 0; i < 5; i++) EXPECT_CLOSE(o[i], names[i]);
    EXPECT_CLOSE(go, "geglu");
    EXPECT_CLOSE(gdx, "geglu backward");
    expect_healthy();
    pool_free();
}

/* Whether the device gives a block the shared memory of an H100 / H200
 * (227 KB): the tensor-core attention kernels then run for every head dim
 * up to 160; with less, some fall back to float32 (correct, but the
 * "16-bit math ran" checks would not hold). */
static int h100_class(void) {
    int optin = 0;
    return cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) ==
               cudaSuccess &&
           optin >= 227 * 1024;
}

static void check_attention(int B, int Nq, int Nk, int heads, int D, int causal) {
    const long HD = (long)heads * D;
    const float scale = 1.0f / sqrtf((float)D);
    pbuf *q = pb_rand((size_t)B * Nq * HD, -2, 2), *k = pb_rand((size_t)B * Nk * HD, -2, 2);
    pbuf *v = pb_rand((size_t)B * Nk * HD, -1, 1), *dout = pb_rand((size_t)B * Nq * HD, -1, 1);
    pbuf *out = pb_fill((size_t)B * Nq * HD, NAN), *lse = pb_fill((size_t)B * heads * Nq, NAN);
    pbuf *dq = pb_fill((size_t)B * Nq * HD, NAN), *dk = pb_fill((size_t)B * Nk * HD, NAN);
    pbuf *dv = pb_fill((size_t)B * Nk * HD, NAN), *dv2 = pb_fill((size_t)B * Nk * HD, NAN);
    BOTH(attention_forward, F(out), F(lse), CF(q), CF(k), CF(v), B, Nq, Nk, heads, D, scale,
         causal);
    /* the backward reads the CPU's out/lse on both sides, so only the
     * backward's own differences count */
    BE[1].upload(&BE[1], out->p[1], out->p[0], out->bytes);
    BE[1].upload(&BE[1], lse->p[1], lse->p[0], lse->bytes);
    BOTH(attention_backward, F(dq), F(dk), F(dv), CF(dout), CF(q), CF(k), CF(v), CF(out), CF(lse),
         B, Nq, Nk, heads, D, scale, causal);
    BOTH(attention_backward, NULL, NULL, F(dv2), CF(dout), CF(q), CF(k), CF(v), CF(out), CF(lse), B,
         Nq, Nk, heads, D, scale, causal);
    pbuf *dq2 = pb_fill((size_t)B * Nq * HD, NAN), *dk2 = pb_fill((size_t)B * Nk * HD, NAN);
    BOTH(attention_backward, F(dq2), NULL, NULL, CF(dout), CF(q), CF(k), CF(v), CF(out), CF(lse), B,
         Nq, Nk, heads, D, scale, causal);
    BOTH(attention_backward, NULL, F(dk2), NULL, CF(dout), CF(q), CF(k), CF(v), CF(out), CF(lse), B,
         Nq, Nk, heads, D, scale, causal);
    char what[128];
    /* at bf16 / fp16 both passes run on tensor cores (head dims <= 160):
     * q, k, v, dO, P and dS rounded to 16 bits. CPU emulations of the
     * kernels' roundings (these shapes) give gradient NMSEs of 0.07-0.16 x
     * tol16(p, 8) */
    const cnet_precision prec = BE[1].precision;
    const int tensor_cores = prec != CNET_PREC_F32 && D <= 160;
    const double saved_tol = tol_now;
    tol_now = tensor_cores ? tol16(prec, 8) : TOL;
#define ATT_EXPECT(buf, part)                                                                      \
    snprintf(what, sizeof what, "attention B%d Nq%d Nk%d h%d D%d causal%d: %s", B, Nq, Nk, heads,  \
             D, causal, part);                                                                     \
    EXPECT_CLOSE(buf, what)
    ATT_EXPECT(dq, "dq");
    ATT_EXPECT(dk, "dk");
    ATT_EXPECT(dv, "dv");
    ATT_EXPECT(dv2, "dv alone");
    ATT_EXPECT(dq2, "dq alone");
    ATT_EXPECT(dk2, "dk alone");
#undef ATT_EXPECT
    if (tensor_cores && h100_class())
        EXPECT(pb_nmse(dq) > 1e-4 * tol_now, "attention D%d: dq NMSE %.3e, not 16-bit math", D,
               pb_nmse(dq));
    pool_free();
    /* forward compared on its own run (the upload above replaced it) */
    q = pb_rand((size_t)B * Nq * HD, -2, 2), k = pb_rand((size_t)B * Nk * HD, -2, 2);
    v = pb_rand((size_t)B * Nk * HD, -1, 1);
    out = pb_fill((size_t)B * Nq * HD, NAN), lse = pb_fill((size_t)B * heads * Nq, NAN);
    BOTH(attention_forward, F(out), F(lse), CF(q), CF(k), CF(v), B, Nq, Nk, heads, D, scale,
         causal);
    /* the forward: q, k, v and P rounded to 16 bits, four roundings a term */
    tol_now = tensor_cores ? tol16(prec, 4) : TOL;
    snprintf(what, sizeof what, "attention B%d Nq%d Nk%d h%d D%d causal%d: out", B, Nq, Nk, heads,
             D, causal);
    EXPECT_CLOSE(out, what);
    if (tensor_cores && h100_class())
        EXPECT(pb_nmse(out) > 1e-4 * tol_now, "%s: NMSE %.3e, not 16-bit math", what, pb_nmse(out));
    /* lse (~5) sums thousands of rounded terms: its relative error is far
     * below an output's, and the backward's P depends on it exponentially */
    if (tensor_cores) tol_now = tol16(prec, 2) / 100;
    snprintf(what, sizeof what, "attention B%d Nq%d Nk%d h%d D%d causal%d: lse", B, Nq, Nk, heads,
             D, causal);
    EXPECT_CLOSE(lse, what);
    tol_now = saved_tol;
    expect_healthy();
    pool_free();
}

static void test_attention(void) {
    const int dims[] = {40, 64, 80, 160, 8, 200};
    for (int i = 0; i < 6; i++) check_attention(2, 70, 70, 2, dims[i], 0);
    check_attention(2, 77, 77, 3, 64, 1);  /* CLIP's causal self-attention */
    check_attention(1, 100, 77, 2, 40, 0); /* cross-attention to text */
    check_attention(1, 33, 5, 1, 160, 0);
}

static void test_elementwise(void) {
    const int B = 2, HW = 45, C = 70, H = 5, W = 9, C1 = 24, C2 = 40;
    const long n = (long)B * HW * C;
    pbuf *a = pb_rand(n, -1, 1), *b = pb_rand(n, -1, 1), *vec = pb_rand((size_t)B * C, -1, 1);
    pbuf *o[6];
    for (int i = 0; i < 6; i++) o[i] = pb_fill(n, NAN);
    pbuf *y = pb_rand(n, -1, 1), *dvec = pb_fill((size_t)B * C, NAN);
    BOTH(add, F(o[0]), CF(a), CF(b), n);
    BOTH(axpby, F(o[1]), 0.3f, CF(a), -1.7f, CF(b), n);
    BOTH(scale, F(o[2]), CF(a), 2.5f, n);
    BOTH(axpy, F(y), -0.6f, CF(a), n);
    BOTH(add_broadcast, F(o[3]), CF(a), CF(vec), B, HW, C);
    BOTH(add_broadcast_backward, F(dvec), CF(a), B, HW, C);
    const char *names[4] = {"add", "axpby", "scale", "add_broadcast"};
    for (int i = 0; i < 4; i++) EXPECT_CLOSE(o[i], names[i]);
    EXPECT_CLOSE(y, "axpy (+=)");
    EXPECT_CLOSE(dvec, "add_broadcast_backward");
    const int M = B * H * W;
    pbuf *ca = pb_rand((size_t)M * C1, -1, 1), *cb = pb_rand((size_t)M * C2, -1, 1);
    pbuf *cat = pb_fill((size_t)M * (C1 + C2), NAN), *sa = pb_fill((size_t)M * C1, NAN);
    pbuf *sb = pb_fill((size_t)M * C2, NAN), *sb2 = pb_fill((size_t)M * C2, NAN);
    pbuf *up = pb_fill((size_t)4 * M * C1, NAN), *dup = pb_rand((size_t)4 * M * C1, -1, 1);
    pbuf *dx = pb_fill((size_t)M * C1, NAN);
    BOTH(concat_channels, F(cat), CF(ca), CF(cb), M, C1, C2);
    BOTH(split_channels, F(sa), F(sb), CF(cat), M, C1, C2);
    BOTH(split_channels, NULL, F(sb2), CF(cat), M, C1, C2);
    BOTH(upsample2x_forward, F(up), CF(ca), B, H, W, C1);
    BOTH(upsample2x_backward, F(dx), CF(dup), B, H, W, C1);
    EXPECT_CLOSE(cat, "concat_channels");
    EXPECT_CLOSE(sa, "split_channels a");
    EXPECT_CLOSE(sb, "split_channels b");
    EXPECT_CLOSE(sb2, "split_channels b alone");
    EXPECT_CLOSE(up, "upsample2x forward");
    EXPECT_CLOSE(dx, "upsample2x backward");
    expect_healthy();
    pool_free();
}

static void test_embeddings(void) {
    const int V = 50, D = 36, M = 19, B = 3;
    int64_t ids[19];
    for (int i = 0; i < M; i++) ids[i] = (i * 7 + 3) % V;
    pbuf *id = pb_new(sizeof ids, ids), *table = pb_rand((size_t)V * D, -1, 1);
    pbuf *out = pb_fill((size_t)M * D, NAN);
    for (int s_ = 0; s_ < 2; s_++)
        BE[s_].embedding_forward(&BE[s_], F(out), (const int64_t *)id->p[s_], CF(table), M, D);
    EXPECT_CLOSE(out, "embedding");
    const float t[3] = {999.0f, 500.5f, 1.0f};
    pbuf *ts = pb_new(sizeof t, t);
    const int dims[3] = {320, 33, 8};
    for (int i = 0; i < 3; i++) {
        pbuf *e = pb_fill((size_t)B * dims[i], NAN);
        BOTH(timestep_embedding, F(e), CF(ts), B, dims[i], i != 1, i == 2 ? 1.0f : 0.0f, 10000.0f);
        char what[64];
        snprintf(what, sizeof what, "timestep embedding dim %d", dims[i]);
        EXPECT_CLOSE(e, what);
    }
    expect_healthy();
    pool_free();
}

static void test_loss_and_optimizer(void) {
    const int B = 3;
    const long n = 40000, np = 100003;
    pbuf *pred = pb_rand((size_t)B * n, -1, 1), *tgt = pb_rand((size_t)B * n, -1, 1);
    pbuf *w = pb_rand(B, 0.5f, 2.0f), *loss = pb_fill(1, NAN), *loss1 = pb_fill(1, NAN);
    pbuf *dpred = pb_fill((size_t)B * n, NAN), *dpred1 = pb_fill((size_t)B * n, NAN);
    BOTH(mse_forward, F(loss), CF(pred), CF(tgt), CF(w), B, n);
    BOTH(mse_forward, F(loss1), CF(pred), CF(tgt), NULL, B, n);
    BOTH(mse_backward, F(dpred), CF(pred), CF(tgt), CF(w), B, n, 0.25f);
    BOTH(mse_backward, F(dpred1), CF(pred), CF(tgt), NULL, B, n, 1.0f);
    EXPECT_CLOSE(loss, "mse (weighted)");
    EXPECT_CLOSE(loss1, "mse");
    EXPECT_CLOSE(dpred, "mse backward (weighted)");
    EXPECT_CLOSE(dpred1, "mse backward");
    pbuf *g = pb_rand(np, -0.1f, 0.1f), *ss = pb_fill(1, NAN);
    BOTH(sum_squares, F(ss), CF(g), np);
    EXPECT_CLOSE(ss, "sum_squares");
    /* the same sum of squares on both sides, so only AdamW's own arithmetic
     * is compared; the clip is active (max norm below the norm) */
    BE[1].upload(&BE[1], ss->p[1], ss->p[0], sizeof(float));
    for (int clip = 0; clip < 2; clip++) {
        pbuf *p = pb_rand(np, -1, 1), *m = pb_rand(np, -0.01f, 0.01f), *v = pb_rand(np, 0, 1e-4f);
        BOTH(adamw_step, F(p), F(m), F(v), CF(g), np, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 3,
             clip ? CF(ss) : NULL, 0.5f);
        EXPECT_CLOSE(p, clip ? "adamw params (clipped)" : "adamw params");
        EXPECT_CLOSE(m, clip ? "adamw m (clipped)" : "adamw m");
        EXPECT_CLOSE(v, clip ? "adamw v (clipped)" : "adamw v");
    }
    expect_healthy();
    pool_free();
}

/* Buffers equal byte for byte on both sides. */
static int pb_same(const pbuf *b) {
    unsigned char *g = malloc(b->bytes ? b->bytes : 1);
    BE[1].download(&BE[1], g, b->p[1], b->bytes);
    const int same = memcmp(g, b->p[0], b->bytes) == 0;
    free(g);
    return same;
}

/* 8-bit AdamW: both backends run the same float32 op order and the same
 * code search (engine/core/adam8.h), so parameters, codes and absmax must be
 * bit-identical, step after step, with a partial last block. */
static void test_adamw8bit(void) {
    const long n = 100003, nb = adam8_blocks(n);
    float qm[256], qv[256];
    adam8_dynamic_map(qm, 1);
    adam8_dynamic_map(qv, 0);
    pbuf *p = pb_rand(n, -1, 1), *maps[2] = {pb_new(sizeof qm, qm), pb_new(sizeof qv, qv)};
    pbuf *codes[2] = {pb_new((size_t)n, NULL), pb_new((size_t)n, NULL)};
    pbuf *absmax[2] = {pb_fill(nb, 0), pb_fill(nb, 0)}, *ss = pb_fill(1, NAN);
    cnet_adam8_state st[2];
    for (int s_ = 0; s_ < 2; s_++) {
        BE[s_].zero(&BE[s_], codes[0]->p[s_], codes[0]->bytes);
        BE[s_].zero(&BE[s_], codes[1]->p[s_], codes[1]->bytes);
        st[s_] = (cnet_adam8_state){.m = codes[0]->p[s_],
                                    .v = codes[1]->p[s_],
                                    .absmax_m = F(absmax[0]),
                                    .absmax_v = F(absmax[1]),
                                    .qmap_m = CF(maps[0]),
                                    .qmap_v = CF(maps[1])};
    }
    for (int step = 1; step <= 3; step++) {
        pbuf *g = pb_rand(n, -0.1f, 0.1f);
        BOTH(sum_squares, F(ss), CF(g), n);
        BE[1].upload(&BE[1], ss->p[1], ss->p[0], sizeof(float));
        BOTH(adamw8bit_step, F(p), &st[s_], CF(g), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, step,
             step == 2 ? CF(ss) : NULL, 0.5f);
        EXPECT(pb_same(p), "adamw8bit params differ after step %d", step);
        EXPECT(pb_same(codes[0]) && pb_same(codes[1]), "adamw8bit codes differ after step %d",
               step);
        EXPECT(pb_same(absmax[0]) && pb_same(absmax[1]), "adamw8bit absmax differ after step %d",
               step);
    }
    expect_healthy();
    pool_free();
}

static void test_philox_bit_identical(void) {
    const long n = 1000003;
    const uint64_t seeds[2] = {0, 0x123456789abcdefull};
    for (int i = 0; i < 2; i++) {
        pbuf *z = pb_fill(n, NAN);
        BOTH(philox_normal, F(z), n, seeds[i], 1000 * (uint64_t)i);
        float *g = malloc(n * sizeof *g);
        BE[1].download(&BE[1], g, z->p[1], z->bytes);
        long diff = 0, first = -1;
        for (long j = 0; j < n; j++)
            if (memcmp(&g[j], (float *)z->p[0] + j, sizeof(float)) && diff++ == 0) first = j;
        EXPECT(diff == 0, "seed %d: %ld of %ld normals differ (first at %ld: %.9g vs %.9g)", i,
               diff, n, first, first >= 0 ? g[first] : 0.0,
               first >= 0 ? ((float *)z->p[0])[first] : 0.0);
        free(g);
    }
    expect_healthy();
    pool_free();
}

/* ControlNet then UNet with its residuals, on the tiny fixture model, on
 * both backends from the same weights and inputs. */
static void test_controlnet_unet_forward(void) {
    char dir[2][4096];
    const char *fx = harness_fixtures();
    snprintf(dir[0], sizeof dir[0], "%s/tiny-sd/unet", fx);
    snprintf(dir[1], sizeof dir[1], "%s/tiny-sd/controlnet", fx);
    unet_model un[2];
    controlnet_model cn[2];
    cnet_arena ar[2];
    cnet_error err = {0};
    int opened = 0, rc = 0;
    for (int s = 0; s < 2 && !rc; s++) {
        rc = unet_open(&un[s], &BE[s], dir[0], &err);
        if (!rc && (rc = controlnet_open(&cn[s], &BE[s], dir[1], &err))) unet_free(&un[s]);
        if (!rc) opened++;
    }
    if (rc) {
        for (int s = 0; s < opened; s++) unet_free(&un[s]), controlnet_free(&cn[s]);
    }
    CHECK(rc == 0, "opening the tiny model: %s", err.msg);
    const int B = 2, h = 8, w = 8, Nt = 7, f = controlnet_image_factor(&cn[0]);
    const int Cin = un[0].enc.cfg.in_channels, Dt = un[0].enc.cfg.cross_attention_dim[0];
    const int Cc = cn[0].cond_channels, Cout = un[0].enc.cfg.out_channels;
    unet_sizes sz;
    rc = unet_encoder_sizes(&un[0].enc, B, h, w, &sz, &err);
    for (int s = 0; s < 2 && !rc; s++) {
        size_t bytes = unet_scratch_bytes(&un[s], B, h, w, Nt);
        size_t cb = controlnet_scratch_bytes(&cn[s], B, h, w, Nt);
        rc = cnet_arena_init(&ar[s], &BE[s], bytes > cb ? bytes : cb, "parity scratch", &err);
        if (rc && s == 1) cnet_arena_free(&ar[0]);
    }
    if (rc) {
        for (int s = 0; s < 2; s++) unet_free(&un[s]), controlnet_free(&cn[s]);
    }
    CHECK(rc == 0, "sizes/scratch: %s", err.msg);
    pbuf *x = pb_rand((size_t)B * h * w * Cin, -1, 1);
    pbuf *cond = pb_rand((size_t)B * h * f * w * f * Cc, 0, 1);
    pbuf *text = pb_rand((size_t)B * Nt * Dt, -1, 1);
    pbuf *out = pb_fill((size_t)B * h * w * Cout, NAN), *mid = pb_fill(sz.mid_floats, NAN);
    pbuf *down[UNET_MAX_SKIPS];
    for (int i = 0; i < sz.n_skips; i++) down[i] = pb_fill(sz.skip_floats[i], NAN);
    const float t[2] = {981.0f, 17.0f};
    for (int s = 0; s < 2 && !rc; s++) {
        float *dn[UNET_MAX_SKIPS];
        for (int i = 0; i < sz.n_skips; i++) dn[i] = down[i]->p[s];
        rc = controlnet_forward(&cn[s], &ar[s], dn, mid->p[s], x->p[s], cond->p[s], t, text->p[s],
                                NULL, 0.8f, 0, B, h, w, Nt, NULL, NULL, &err);
        if (!rc)
            rc = unet_forward(&un[s], &ar[s], out->p[s], x->p[s], t, text->p[s], NULL,
                              (const float *const *)dn, mid->p[s], B, h, w, Nt, NULL, NULL, &err);
    }
    EXPECT(rc == 0, "forward: %s", err.msg);
    if (!rc) {
        char what[64];
        for (int i = 0; i < sz.n_skips; i++) {
            snprintf(what, sizeof what, "controlnet down residual %d", i);
            EXPECT_CLOSE(down[i], what);
        }
        EXPECT_CLOSE(mid, "controlnet mid residual");
        EXPECT_CLOSE(out, "unet output with residuals");
    }
    expect_healthy();
    pool_free();
    for (int s = 0; s < 2; s++) {
        cnet_arena_free(&ar[s]);
        unet_free(&un[s]);
        controlnet_free(&cn[s]);
    }
}

/* One training step's loss and ControlNet gradients on both backends, plain
 * and with gradient checkpointing + set_grads_to_none: every run matches the
 * CPU's plain step (the CPU's checkpointed one bit for bit, see
 * tests/unit/test_train_memory.c; on CUDA the recompute may pick other
 * reduction orders, hence the tolerance). */
static void test_train_step_levers(void) {
    const char *fx = harness_fixtures();
    char dir[3][4096];
    snprintf(dir[0], sizeof dir[0], "%s/tiny-sd/unet", fx);
    snprintf(dir[1], sizeof dir[1], "%s/tiny-sd/controlnet", fx);
    snprintf(dir[2], sizeof dir[2], "%s/tiny-sd/scheduler/scheduler_config.json", fx);
    unet_model un[2];
    controlnet_model cn[2];
    sched ddpm[2];
    cnet_sched_config scfg;
    cnet_error err = {0};
    memset(un, 0, sizeof un), memset(cn, 0, sizeof cn), memset(ddpm, 0, sizeof ddpm);
    memset(&scfg, 0, sizeof scfg);
    int rc = cnet_sched_config_load(&scfg, dir[2], CNET_SCHED_DDPM, &err);
    for (int s = 0; s < 2 && !rc; s++)
        if (!(rc = unet_open(&un[s], &BE[s], dir[0], &err)) &&
            !(rc = controlnet_open(&cn[s], &BE[s], dir[1], &err)))
            rc = sched_init(&ddpm[s], &BE[s], &scfg, 0, &err);
    const int B = 2, h = 8, w = 8, Nt = 7;
    const size_t n = cn[0].params.total;
    float *ref = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float)), ref_loss = 0;
    if (!rc) {
        const int f = controlnet_image_factor(&cn[0]);
        pbuf *lat = pb_rand((size_t)B * h * w * un[0].enc.cfg.in_channels, -1, 1);
        pbuf *noise = pb_rand((size_t)B * h * w * un[0].enc.cfg.in_channels, -1, 1);
        pbuf *text = pb_rand((size_t)B * Nt * un[0].enc.cfg.cross_attention_dim[0], -1, 1);
        pbuf *cond = pb_rand((size_t)B * h * f * w * f * cn[0].cond_channels, 0, 1);
        const int64_t ts[2] = {981, 17};
        for (int s = 0; s < 2 && !rc; s++)
            for (int lever = 0; lever < 2 && !rc; lever++) {
                train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                                        .B = B,
                                        .h = h,
                                        .w = w,
                                        .Nt = Nt,
                                        .gradient_checkpointing = lever,
                                        .set_grads_to_none = lever};
                train_step t;
                float loss = 0;
                if ((rc = train_step_init(&t, &un[s], &cn[s], &ddpm[s], &tc, &err))) {
                    train_step_free(&t);
                    break;
                }
                rc = train_step_accumulate(&t, B, lat->p[s], noise->p[s], ts, text->p[s],
                                           cond->p[s], 1.0f, &loss, &err);
                if (!rc)
                    BE[s].download(&BE[s], s || lever ? g : ref, t.grads.block, n * sizeof(float));
                train_step_free(&t);
                if (rc || (!s && !lever)) {
                    ref_loss = loss;
                    continue;
                }
                double *rd = to_double(ref, n);
                double e = nmse_fd(g, rd, n);
                free(rd);
                EXPECT(e <= TOL, "%s%s: gradients NMSE %.3e vs the CPU's plain step",
                       s ? "cuda" : "cpu", lever ? " with the memory levers" : "", e);
                EXPECT(fabsf(loss - ref_loss) <= 1e-5f * fabsf(ref_loss) + 1e-7f,
                       "%s%s: loss %.9g vs %.9g", s ? "cuda" : "cpu",
                       lever ? " with the memory levers" : "", loss, ref_loss);
            }
    }
    EXPECT(rc == 0, "training step: %s", err.msg);
    expect_healthy();
    free(ref), free(g);
    pool_free();
    for (int s = 0; s < 2; s++) {
        sched_free(&ddpm[s]);
        controlnet_free(&cn[s]);
        unet_free(&un[s]);
    }
    cnet_sched_config_free(&scfg);
}

/* A failing call is recorded with its place, later ops do nothing, and
 * download hands back no stale bytes. Runs last, on its own backend: the
 * failure may poison the CUDA context. */
/* The device-memory high-water mark counts a fresh allocation and does not
 * fall when it is freed. A backend of its own, so the mark starts from the
 * memory in use now rather than from the earlier tests' peak. */
static void test_peak_device_bytes(void) {
    cnet_backend g;
    cnet_error err = {0};
    CHECK(cnet_backend_cuda_init(&g, 0, &err) == 0, "init: %s", err.msg);
    const size_t before = cnet_backend_peak_device_bytes(&g), bytes = 256ul << 20;
    void *p = g.alloc(&g, bytes);
    if (p) {
        g.zero(&g, p, bytes);
        g.synchronize(&g);
    }
    const size_t with = cnet_backend_peak_device_bytes(&g);
    if (p) g.free(&g, p);
    const size_t after = cnet_backend_peak_device_bytes(&g);
    cnet_backend_free(&g);
    CHECK(p != NULL, "cannot allocate %zu bytes", bytes);
    EXPECT(before > 0 && with >= before + bytes / 2, "peak %zu before, %zu with 256 MiB more",
           before, with);
    EXPECT(after == with, "peak fell from %zu to %zu after free", with, after);
}

/* A conv whose padded input copy (1.1 TB) cannot be allocated: the op
 * records the failed cudaMalloc and launches nothing, so any small buffers
 * do. The failure every CUDA context survives. */
static void conv_too_large(cnet_backend *be, float *y, const float *x, const float *w) {
    const cnet_conv2d huge = {1, 65536, 65536, 64, 8, 3, 3, 1, 0, 1, 0, 1};
    be->conv2d_forward(be, y, x, w, NULL, &huge);
}

static void test_sticky_error(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cuda_init(&be, 0, &err) == 0, "init: %s", err.msg);
    float *d = be.alloc(&be, 64);
    const float one[4] = {1, 1, 1, 1};
    be.upload(&be, d, one, sizeof one);
    conv_too_large(&be, d, d, d);
    be.synchronize(&be);
    int rc = cnet_backend_cuda_status(&be, &err);
    EXPECT(rc == CNET_EBACKEND, "status %d after a failed allocation", rc);
    EXPECT(strstr(err.msg, "cuda_backend.cu:") != NULL, "no place in '%s'", err.msg);
    float host[4] = {5, 5, 5, 5};
    be.download(&be, host, d, sizeof host);
    EXPECT(host[0] != 5.0f && host[0] != 1.0f, "download after a failure gave %g", host[0]);
    /* the context survived: recovered, it computes */
    EXPECT(cnet_backend_recover(&be, &err) == 0, "recover: %s", err.msg);
    be.scale(&be, d, d, 3.0f, 4);
    be.download(&be, host, d, sizeof host);
    EXPECT(cnet_backend_status(&be, &err) == 0 && host[3] == 3.0f, "after recovery: %g, '%s'",
           host[3], err.msg);
    be.free(&be, d);
    cnet_backend_free(&be);
}

/* The same failure on the shared backend: recovered, its conv equals the
 * CPU's again. */
static void test_recover_after_out_of_memory(void) {
    cnet_error err = {0};
    pbuf *x = pb_rand(4 * 5 * 6, -1, 1), *w = pb_rand(8 * 9 * 6, -1, 1),
         *y = pb_fill(3 * 4 * 8, NAN);
    conv_too_large(&BE[1], (float *)y->p[1], (const float *)x->p[1], (const float *)w->p[1]);
    EXPECT(cnet_backend_status(&BE[1], &err) == CNET_EBACKEND, "no failure recorded");
    printf("    recorded: %s\n", err.msg);
    EXPECT(cnet_backend_recover(&BE[1], &err) == 0, "recover: %s", err.msg);
    const cnet_conv2d s = {1, 4, 5, 6, 8, 3, 3, 1, 0, 1, 0, 1};
    BOTH(conv2d_forward, F(y), CF(x), CF(w), NULL, &s);
    EXPECT_CLOSE(y, "conv after recovery");
    expect_healthy();
    pool_free();
}

/* Must run last: a kernel that faults poisons the process's CUDA context
 * for good, and recover says the device is lost. */
static void test_lost_context(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cuda_init(&be, 0, &err) == 0, "init: %s", err.msg);
    float *bad = (float *)(uintptr_t)0x1000; /* not device memory: the kernel faults */
    be.add(&be, bad, bad, bad, 1 << 20);
    be.synchronize(&be);
    EXPECT(cnet_backend_status(&be, &err) == CNET_EBACKEND, "a faulting kernel went unseen");
    EXPECT(cnet_backend_recover(&be, &err) == CNET_EBACKEND &&
               strstr(err.msg, "lost to this process"),
           "recover after a fault: '%s'", err.msg);
    cnet_backend_free(&be);
}

/* The heavy ops at bf16 and fp16 against the float32 CPU (bounds: tol16),
 * the attention forward and backward on tensor cores among them. */
static void test_mixed_heavy_ops(void) {
    const cnet_precision precs[2] = {CNET_PREC_BF16, CNET_PREC_F16};
    for (int i = 0; i < 2; i++) {
        cnet_backend_set_precision(&BE[1], precs[i], NULL, 0);
        printf("    --mixed_precision %s\n", cnet_precision_name(precs[i]));
        tol_now = tol16(precs[i], 2);
        test_gemm();
        test_linear();
        tol_now = tol16(precs[i], 3);
        test_conv2d();
        /* the conv really ran on 16-bit operands: its output was rounded
         * (channels in multiples of 8, which every cuDNN 16-bit worker
         * takes, so no float32 fallback is expected) */
        const double e =
            check_conv((cnet_conv2d){2, 9, 7, 24, 16, 1, 1, 1, 0, 0, 0, 0}, "conv 1x1 16-bit");
        EXPECT(e > 1e-3 * tol16(precs[i], 3), "%s conv NMSE %.3e: not 16-bit math",
               cnet_precision_name(precs[i]), e);
        /* padded 3x3 convs on the 16-bit path (cuDNN pads the symmetric one
         * itself; the asymmetric one goes through our padded copy) */
        const double e3 = check_conv((cnet_conv2d){2, 13, 11, 16, 24, 3, 3, 1, 1, 1, 1, 1},
                                     "conv 3x3 pad 1 16-bit");
        EXPECT(e3 > 1e-3 * tol16(precs[i], 3), "%s conv 3x3 NMSE %.3e: not 16-bit math",
               cnet_precision_name(precs[i]), e3);
        check_conv((cnet_conv2d){1, 16, 14, 16, 8, 3, 3, 2, 0, 1, 0, 1},
                   "conv asymmetric pad 16-bit");
        tol_now = TOL; /* check_attention sets its own bounds */
        const int dims[] = {40, 64, 80, 160, 8, 200};
        for (int d = 0; d < 6; d++) check_attention(2, 70, 70, 2, dims[d], 0);
        check_attention(2, 77, 77, 3, 64, 1);   /* causal */
        check_attention(1, 100, 77, 2, 40, 0);  /* cross-attention */
        check_attention(1, 130, 200, 2, 80, 0); /* several key and query tiles */
        check_attention(1, 150, 150, 1, 64, 1); /* causal over several tiles */
    }
    cnet_backend_set_precision(&BE[1], CNET_PREC_F32, NULL, 0);
    tol_now = TOL;
}

/* Whole-model bounds at 16 bits. Each product or conv adds ~tol16/5 of
 * NMSE relative to its output; the tiny fixture model chains about 25 of
 * them from the noisy latents to the prediction (ControlNet, then the UNet
 * it feeds) and as many again back to the ControlNet's gradients; norms keep
 * the scale, so the errors add: ~25 * 1.5e-5 = 4e-4 (bf16) at the output,
 * ~8e-4 for the gradients; 1/64 of that for fp16. The bounds allow 5x. The
 * float32 CUDA run is the baseline (cuDNN / cuBLAS vs OpenBLAS order). */
static double model_tol(cnet_precision p, int backward) {
    const double per_op = p == CNET_PREC_F32 ? 1e-7 : tol16(p, 3) / 5.0;
    return 5.0 * 25.0 * (backward ? 2 : 1) * per_op;
}

static const cnet_precision ALL_PRECS[3] = {CNET_PREC_F32, CNET_PREC_BF16, CNET_PREC_F16};

/* Whether a run at precision p belongs to a check with the frozen weights
 * stored as `weights`: every precision with float32 weights, only the
 * precision that computes in their type with 16-bit ones. */
static int runs_with(cnet_dtype weights, cnet_precision p) {
    return weights == CNET_F32 || cnet_precision_dtype(p) == weights;
}

/* One training step (forward, loss, backward into the ControlNet's
 * gradients) of the tiny fixture model: the CPU once in float32, CUDA at
 * f32, bf16 and fp16; with `weights` 16-bit, the UNet stored so on both
 * sides (the CPU computes float32 on the same values) and CUDA at the
 * matching precision, its products reading the stored weights. */
static void check_train_step(cnet_dtype weights) {
    const char *fx = harness_fixtures();
    char path[3][4096];
    snprintf(path[0], sizeof path[0], "%s/tiny-sd/unet", fx);
    snprintf(path[1], sizeof path[1], "%s/tiny-sd/controlnet", fx);
    snprintf(path[2], sizeof path[2], "%s/tiny-sd/scheduler/scheduler_config.json", fx);
    unet_model un[2];
    controlnet_model cn[2];
    sched dd[2];
    train_step ts[2];
    cnet_sched_config scfg;
    cnet_error err = {0};
    int stage[2] = {0, 0}; /* per side: 1 unet, 2 + controlnet, 3 + sched, 4 + train_step */
    memset(ts, 0, sizeof ts);
    memset(dd, 0, sizeof dd);
    int rc = cnet_sched_config_load(&scfg, path[2], CNET_SCHED_DDPM, &err);
    const int have_cfg = rc == 0;
    const int B = 2, h = 8, w = 8, Nt = 7;
    for (int s = 0; s < 2 && !rc; s++) {
        if (!(rc = unet_open(&un[s], &BE[s], path[0], &err))) stage[s] = 1;
        if (!rc) rc = params_store16(&un[s].params, weights, &err);
        if (!rc && !(rc = controlnet_open(&cn[s], &BE[s], path[1], &err))) stage[s] = 2;
        if (!rc && !(rc = sched_init(&dd[s], &BE[s], &scfg, 0, &err))) stage[s] = 3;
        train_step_config cfg = {
            .prediction = TRAIN_PRED_EPSILON, .B = B, .h = h, .w = w, .Nt = Nt};
        if (!rc && !(rc = train_step_init(&ts[s], &un[s], &cn[s], &dd[s], &cfg, &err)))
            stage[s] = 4;
    }
    EXPECT(rc == 0, "opening the tiny model: %s", err.msg);
    if (!rc) {
        const int f = controlnet_image_factor(&cn[0]), Dt = un[0].enc.cfg.cross_attention_dim[0];
        const int64_t t[2] = {981, 17};
        pbuf *lat = pb_rand((size_t)B * h * w * 4, -1, 1),
             *noise = pb_rand((size_t)B * h * w * 4, -2, 2);
        pbuf *text = pb_rand((size_t)B * Nt * Dt, -1, 1);
        pbuf *cond = pb_rand((size_t)B * h * f * w * f * 3, 0, 1);
        const size_t np = ts[0].grads.total, npred = (size_t)B * h * w * 4;
        float cpu_loss = NAN, loss = NAN;
        for (int p = -1; p < 3 && !rc; p++) {
            const int s_ = p < 0 ? 0 : 1; /* p = -1: the CPU's float32 run */
            if (p >= 0 && !runs_with(weights, ALL_PRECS[p])) continue;
            if (p >= 0) cnet_backend_set_precision(&BE[1], ALL_PRECS[p], NULL, 0);
            BE[s_].zero(&BE[s_], ts[s_].grads.block, np * sizeof(float));
            rc = train_step_accumulate(&ts[s_], B, CF(lat), CF(noise), t, CF(text), CF(cond), 1.0f,
                                       p < 0 ? &cpu_loss : &loss, &err);
            EXPECT(rc == 0, "train step: %s", err.msg);
            if (!rc && p < 0) { /* gradients to compare, not zeros (NMSE 0/0) */
                double energy = 0;
                for (size_t i = 0; i < np; i++)
                    energy += (double)ts[0].grads.block[i] * ts[0].grads.block[i];
                EXPECT(energy > 0, "the CPU step gave all-zero ControlNet gradients");
            }
            if (rc || p < 0) continue;
            const char *name = cnet_precision_name(ALL_PRECS[p]);
            const double e_pred = nmse_vs_cpu(ts[0].pred, ts[1].pred, npred);
            const double e_grad = nmse_vs_cpu(ts[0].grads.block, ts[1].grads.block, np);
            const double e_loss = ((double)loss - cpu_loss) * ((double)loss - cpu_loss) /
                                  ((double)cpu_loss * cpu_loss);
            printf("    train step %s, %s weights: NMSE pred %.2e, grads %.2e, loss %.2e\n", name,
                   cnet_dtype_name(weights), e_pred, e_grad, e_loss);
            EXPECT(e_pred <= model_tol(ALL_PRECS[p], 0), "%s prediction NMSE %.3e > %.1e", name,
                   e_pred, model_tol(ALL_PRECS[p], 0));
            EXPECT(e_loss <= model_tol(ALL_PRECS[p], 0), "%s loss %.6g vs %.6g", name, loss,
                   cpu_loss);
            EXPECT(e_grad <= model_tol(ALL_PRECS[p], 1), "%s gradients NMSE %.3e > %.1e", name,
                   e_grad, model_tol(ALL_PRECS[p], 1));
        }
        /* SD-scale gradients in fp16 (engine/train/loss_scale.h): a loss seed of
         * 2^-14 brings d(pred) (~4e-3 here) to ~2e-7, under half's normal
         * range, so the products flush it; seeded with 2^-14 times the loss
         * scale and unscaled after, the gradients are as good as at seed 1. */
        const float tiny_seed = 1.0f / 16384.0f;
        double e_seed[2] = {NAN, NAN}; /* [0] unscaled, [1] loss-scaled */
        cnet_backend_set_precision(&BE[1], CNET_PREC_F16, NULL, 0);
        for (int scaled = 0; scaled < 2 && !rc && weights == CNET_F32; scaled++) {
            const int s_ = 1;
            const float seed_ = tiny_seed * (scaled ? LOSS_SCALE_INIT : 1.0f);
            BE[1].zero(&BE[1], ts[1].grads.block, np * sizeof(float));
            rc = train_step_accumulate(&ts[1], B, CF(lat), CF(noise), t, CF(text), CF(cond), seed_,
                                       NULL, &err);
            EXPECT(rc == 0, "train step: %s", err.msg);
            if (rc) break;
            BE[1].scale(&BE[1], ts[1].grads.block, ts[1].grads.block, 1.0f / seed_, (long)np);
            e_seed[scaled] = nmse_vs_cpu(ts[0].grads.block, ts[1].grads.block, np);
        }
        if (weights == CNET_F32) {
            printf("    train step fp16, loss seed 2^-14: gradient NMSE %.2e, %.2e with loss "
                   "scaling\n",
                   e_seed[0], e_seed[1]);
            EXPECT(e_seed[1] <= model_tol(CNET_PREC_F16, 1), "loss-scaled fp16 gradients NMSE %.3e",
                   e_seed[1]);
            EXPECT(e_seed[0] > 10 * e_seed[1], "fp16 without loss scaling lost nothing (%.3e)",
                   e_seed[0]);
        }
        cnet_backend_set_precision(&BE[1], CNET_PREC_F32, NULL, 0);
    }
    expect_healthy();
    pool_free();
    for (int s = 0; s < 2; s++) {
        if (stage[s] >= 4) train_step_free(&ts[s]);
        if (stage[s] >= 3) sched_free(&dd[s]);
        if (stage[s] >= 2) controlnet_free(&cn[s]);
        if (stage[s] >= 1) unet_free(&un[s]);
    }
    if (have_cfg) cnet_sched_config_free(&scfg);
}

/* A short generation (4 UniPC/own-scheduler steps, no CFG so the bound
 * is the model's, text encoder and VAE included) of the tiny fixture
 * pipeline: the CPU's float32 image against CUDA's at f32, bf16, fp16. The
 * image bound is model_tol per step, summed over the steps. */
static void check_generation(cnet_dtype weights) {
    const char *fx = harness_fixtures();
    char dir[2][4096];
    snprintf(dir[0], sizeof dir[0], "%s/tiny-sd", fx);
    snprintf(dir[1], sizeof dir[1], "%s/tiny-sd/controlnet", fx);
    sd_base base[2];
    controlnet_model cn[2];
    cnet_sched_config scfg;
    cnet_error err = {0};
    int stage[2] = {0, 0}, have_cfg = 0;
    int rc = 0;
    for (int s = 0; s < 2 && !rc; s++) {
        if (!(rc = sd_base_open(&base[s], &BE[s], dir[0], &err))) stage[s] = 1;
        if (!rc && !(rc = controlnet_open(&cn[s], &BE[s], dir[1], &err))) stage[s] = 2;
        /* a pipeline loaded with torch_dtype: every model in `weights` */
        for (int p = 0; p < 3 && !rc && weights != CNET_F32; p++)
            if (cnet_precision_dtype(ALL_PRECS[p]) == weights)
                rc = sd_base_store16(&base[s], ALL_PRECS[p], &err);
        if (!rc) rc = params_store16(&cn[s].params, weights, &err);
    }
    if (!rc && !(rc = sd_base_scheduler(&base[0], -1, &scfg, &err))) have_cfg = 1;
    EXPECT(rc == 0, "opening the tiny pipeline: %s", err.msg);
    const int steps = 4;
    if (!rc) {
        const int H = 8 * controlnet_image_factor(&cn[0]), W = H;
        const size_t n = (size_t)H * W * 3;
        float *control = alloc_uniform(n, 0, 1, &seed);
        float *img[2] = {malloc(n * sizeof(float)), malloc(n * sizeof(float))};
        pipe_request req;
        memset(&req, 0, sizeof req);
        req.prompt = "a red circle on a navy background";
        req.steps = steps, req.guidance = 1.0f, req.seed = 7;
        req.width = W, req.height = H, req.num_images = 1, req.n_controlnets = 1;
        for (int p = -1; p < 3 && !rc; p++) {
            const int s = p < 0 ? 0 : 1;
            if (p >= 0 && !runs_with(weights, ALL_PRECS[p])) continue;
            if (p >= 0) cnet_backend_set_precision(&BE[1], ALL_PRECS[p], NULL, 0);
            req.controlnets[0] = (pipe_controlnet){
                .model = &cn[s], .image = control, .n_images = 1, .scale = 1, .start = 0, .end = 1};
            pipe_models m = sd_base_models(&base[s]);
            rc = pipeline_generate(&m, &scfg, &req, img[s], NULL, &err);
            EXPECT(rc == 0, "generate: %s", err.msg);
            if (rc || p < 0) continue;
            double num = 0, den = 0;
            for (size_t i = 0; i < n; i++) {
                const double d = (double)img[1][i] - img[0][i];
                num += d * d, den += (double)img[0][i] * img[0][i];
            }
            const double e = num / (den > 1e-30 ? den : 1e-30);
            const double bound = steps * model_tol(ALL_PRECS[p], 0);
            printf("    generation %s, %s weights: image NMSE %.2e (bound %.1e)\n",
                   cnet_precision_name(ALL_PRECS[p]), cnet_dtype_name(weights), e, bound);
            EXPECT(e <= bound, "%s image NMSE %.3e > %.1e", cnet_precision_name(ALL_PRECS[p]), e,
                   bound);
        }
        cnet_backend_set_precision(&BE[1], CNET_PREC_F32, NULL, 0);
        free(control);
        free(img[0]);
        free(img[1]);
    }
    expect_healthy();
    if (have_cfg) cnet_sched_config_free(&scfg);
    for (int s = 0; s < 2; s++) {
        if (stage[s] >= 2) controlnet_free(&cn[s]);
        if (stage[s] >= 1) sd_base_free(&base[s]);
    }
}

static void test_mixed_train_step(void) { check_train_step(CNET_F32); }
static void test_mixed_generation(void) { check_generation(CNET_F32); }

/* The frozen models stored in bf16 and in f16 (params_store16): a
 * generation and a training step through them, CUDA at the matching
 * precision against the CPU's float32 math on the same stored values. */
static void test_weights16_models(void) {
    check_generation(CNET_BF16);
    check_generation(CNET_F16);
    check_train_step(CNET_BF16);
    check_train_step(CNET_F16);
}

/* n uniform values in [lo, hi) rounded to dt, on both sides. */
static pbuf *pb_rand16(size_t n, float lo, float hi, cnet_dtype dt) {
    float *h = alloc_uniform(n, lo, hi, &seed);
    uint16_t *h16 = malloc((n ? n : 1) * sizeof *h16);
    for (size_t i = 0; i < n; i++)
        h16[i] = dt == CNET_F16 ? cnet_f32_to_f16(h[i]) : cnet_f32_to_bf16(h[i]);
    pbuf *b = pb_new(n * sizeof *h16, h16);
    free(h);
    free(h16);
    return b;
}

#define CU16(b) ((const uint16_t *)(b)->p[s_])

/* The products with a 16-bit stored weight against the CPU's (which widens
 * it and computes float32): at float32 (TOL), at the precision of the
 * weight's type (the weight fed as stored, the activations rounded: tol16)
 * and at the other 16-bit precision (widened, then rounded again). */
static void test_weights16_ops(void) {
    const cnet_dtype dts[2] = {CNET_BF16, CNET_F16};
    for (int d = 0; d < 2; d++)
        for (int p = 0; p < 3; p++) {
            const cnet_dtype dt = dts[d];
            const cnet_precision prec = ALL_PRECS[p];
            cnet_backend_set_precision(&BE[1], prec, NULL, 0);
            printf("    %s weights, --mixed_precision %s\n", cnet_dtype_name(dt),
                   cnet_precision_name(prec));
            tol_now = prec == CNET_PREC_F32 ? TOL : tol16(prec, 2);
            const int M = 130, K = 80, N = 96;
            pbuf *x = pb_rand((size_t)M * K, -1, 1), *w = pb_rand16((size_t)N * K, -0.5f, 0.5f, dt);
            pbuf *bias = pb_rand(N, -1, 1), *dout = pb_rand((size_t)M * N, -1, 1);
            pbuf *y = pb_fill((size_t)M * N, NAN), *y0 = pb_fill((size_t)M * N, NAN);
            pbuf *dx = pb_fill((size_t)M * K, NAN);
            BOTH(linear_forward_w16, F(y), CF(x), CU16(w), dt, CF(bias), M, K, N);
            BOTH(linear_forward_w16, F(y0), CF(x), CU16(w), dt, NULL, M, K, N);
            BOTH(linear_backward_data_w16, F(dx), CF(dout), CU16(w), dt, M, K, N);
            EXPECT_CLOSE(y, "linear_forward_w16 (bias)");
            EXPECT_CLOSE(y0, "linear_forward_w16 (no bias)");
            EXPECT_CLOSE(dx, "linear_backward_data_w16");
            if (cnet_precision_dtype(prec) == dt) /* the stored weight fed 16-bit math */
                EXPECT(pb_nmse(y0) > 1e-4 * tol_now, "linear_forward_w16 NMSE %.3e: float32 math",
                       pb_nmse(y0));
            expect_healthy();
            pool_free();
            tol_now = prec == CNET_PREC_F32 ? TOL : tol16(prec, 3);
            const cnet_conv2d shapes[3] = {{2, 13, 11, 16, 24, 3, 3, 1, 1, 1, 1, 1},
                                           {1, 16, 14, 16, 8, 3, 3, 2, 0, 1, 0, 1},
                                           {2, 9, 7, 24, 16, 1, 1, 1, 0, 0, 0, 0}};
            for (int k = 0; k < 3; k++) {
                const cnet_conv2d c = shapes[k];
                const size_t nin = (size_t)c.B * c.H * c.W * c.C_in;
                const size_t nout =
                    (size_t)c.B * cnet_conv2d_out_h(&c) * cnet_conv2d_out_w(&c) * c.C_out;
                pbuf *cx = pb_rand(nin, -1, 1), *cb = pb_rand(c.C_out, -1, 1);
                pbuf *cw = pb_rand16((size_t)c.C_out * c.kh * c.kw * c.C_in, -0.3f, 0.3f, dt);
                pbuf *cdy = pb_rand(nout, -1, 1), *cy = pb_fill(nout, NAN),
                     *cdx = pb_fill(nin, NAN);
                BOTH(conv2d_forward_w16, F(cy), CF(cx), CU16(cw), dt, CF(cb), &c);
                BOTH(conv2d_backward_data_w16, F(cdx), CF(cdy), CU16(cw), dt, &c);
                char what[96];
                snprintf(what, sizeof what, "conv2d_forward_w16 %dx%d stride %d", c.kh, c.kw,
                         c.stride);
                EXPECT_CLOSE(cy, what);
                snprintf(what, sizeof what, "conv2d_backward_data_w16 %dx%d stride %d", c.kh, c.kw,
                         c.stride);
                EXPECT_CLOSE(cdx, what);
                expect_healthy();
                pool_free();
            }
        }
    cnet_backend_set_precision(&BE[1], CNET_PREC_F32, NULL, 0);
    tol_now = TOL;
}

#endif /* CNET_HAVE_CUDA */

int main(int argc, char **argv) {
    harness_init(argc, argv);
#ifndef CNET_HAVE_CUDA
    printf("test_cuda_parity: skipped (built without CUDA)\n");
    (void)harness_current_failed; /* no RUN in this build */
    return harness_done();
#else
    char why[256];
    if (cnet_cuda_device_count(why, sizeof why) == 0) {
        printf("test_cuda_parity: skipped (no CUDA device)\n");
        return harness_done();
    }
    cnet_error err = {0};
    if (cnet_backend_cpu_init(&BE[0], &err) || cnet_backend_cuda_init(&BE[1], 0, &err)) {
        printf("test_cuda_parity: cannot open the backends: %s\n", err.msg);
        harness_failed++;
        return harness_done();
    }
    RUN(test_gemm);
    RUN(test_linear);
    RUN(test_conv2d);
    RUN(test_norms);
    RUN(test_activations);
    RUN(test_attention);
    RUN(test_elementwise);
    RUN(test_embeddings);
    RUN(test_loss_and_optimizer);
    RUN(test_adamw8bit);
    RUN(test_philox_bit_identical);
    RUN(test_controlnet_unet_forward);
    RUN(test_mixed_heavy_ops);
    RUN(test_mixed_train_step);
    RUN(test_mixed_generation);
    RUN(test_weights16_ops);
    RUN(test_weights16_models);
    RUN(test_peak_device_bytes);
    RUN(test_train_step_levers);
    RUN(test_recover_after_out_of_memory);
    cnet_backend_free(&BE[1]);
    cnet_backend_free(&BE[0]);
    RUN(test_sticky_error);
    RUN(test_lost_context); /* last: it poisons the CUDA context */
    return harness_done();
#endif
}
