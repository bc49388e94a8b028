/* The BLAS-backed CPU ops (gemm, batched gemm, linear, conv2d) against the
 * double-precision references of kernels/cpu/ref_linalg.c, and the
 * references' backward passes against central finite differences of their
 * forward passes.
 *
 * Tolerances (norm-wise relative, see lib_numeric.h): fast vs reference
 * 1e-5; reference backward vs finite differences 1e-6. The scalar loss for
 * the finite differences is L = sum(dout * out) with a random dout, so
 * dL/dx is exactly the backward pass applied to dout. Every op is linear in
 * each of its arguments, so the central difference has no truncation error
 * and only rounding remains (~1e-12 here).
 *
 * Also checked: parameter gradients accumulate (two calls give twice the
 * gradient on top of what was there), the input gradient overwrites
 * (pre-filled with NaN), NULL gradient outputs, and two hand-computed
 * convolutions that pin the padding conventions independently of the
 * reference. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/linalg_util.h"
#include "kernels/cpu/ref_linalg.h"
#include "kernels/cpu/scratch.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_numeric.h"

#define TOL_FAST 1e-5
#define TOL_FD 1e-6
#define FD_STEP 1e-3
/* Elements probed per tensor by the finite-difference checks. */
#define FD_SAMPLES 48

static cnet_backend be; /* zero-initialised: the cpu_* ops only use its scratch */

/* ---------- helpers ---------- */

static float *nan_filled(size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static long rand_index(long n, uint64_t *rng) {
    float u;
    fill_uniform(&u, 1, 0.0f, 1.0f, rng);
    long i = (long)(u * (float)n);
    return i < n ? i : n - 1;
}

/* A scalar loss of the double references: the buffers it reads live in ctx. */
typedef double (*loss_fn)(void *ctx);

/* Max over probed elements of |central difference - grad|, relative to
 * max|grad|. Probes every element when n <= FD_SAMPLES, else a random set. */
static double fd_rel_err(loss_fn loss, void *ctx, double *x, long n, const double *grad,
                         uint64_t *rng) {
    double worst = 0;
    long probes = n <= FD_SAMPLES ? n : FD_SAMPLES;
    for (long s = 0; s < probes; s++) {
        long i = n <= FD_SAMPLES ? s : rand_index(n, rng);
        double x0 = x[i];
        x[i] = x0 + FD_STEP;
        double lp = loss(ctx);
        x[i] = x0 - FD_STEP;
        double lm = loss(ctx);
        x[i] = x0;
        double d = fabs((lp - lm) / (2 * FD_STEP) - grad[i]);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
    }
    double scale = max_abs_d(grad, (size_t)n);
    return worst / (scale > 1e-30 ? scale : 1e-30);
}

static double dot_d(const double *a, const double *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---------- gemm ---------- */

typedef struct {
    int M, N, K, trans_a, trans_b;
    float alpha, beta;
} gemm_case;

static const gemm_case gemm_cases[] = {
    {1, 1, 1, 0, 0, 1.0f, 0.0f},      {1, 17, 5, 0, 1, 1.0f, 0.0f},
    {13, 1, 9, 1, 0, 0.5f, 0.0f},     {7, 11, 1, 1, 1, 2.0f, 0.5f},
    {33, 29, 31, 0, 0, 1.0f, 1.0f},   {64, 48, 70, 0, 1, -1.5f, 0.25f},
    {65, 67, 129, 1, 0, 1.0f, 0.0f},  {130, 20, 300, 1, 1, 0.75f, -2.0f},
    {257, 129, 67, 0, 0, 1.0f, 0.0f}, {6, 5, 0, 0, 0, 1.0f, 0.5f},
};

static void test_gemm_vs_reference(void) {
    uint64_t rng = 1;
    for (size_t c = 0; c < sizeof gemm_cases / sizeof gemm_cases[0]; c++) {
        const gemm_case *g = &gemm_cases[c];
        size_t na = (size_t)g->M * g->K, nb = (size_t)g->K * g->N, nc = (size_t)g->M * g->N;
        float *A = alloc_uniform(na, -1, 1, &rng), *B = alloc_uniform(nb, -1, 1, &rng);
        float *C = alloc_uniform(nc, -1, 1, &rng);
        double *Ad = to_double(A, na), *Bd = to_double(B, nb), *Cd = to_double(C, nc);
        cpu_gemm(&be, C, A, B, g->M, g->N, g->K, g->trans_a, g->trans_b, g->alpha, g->beta);
        ref_gemm(Cd, Ad, Bd, g->M, g->N, g->K, g->trans_a, g->trans_b, g->alpha, g->beta);
        double e = rel_err_fd(C, Cd, nc);
        EXPECT(e <= TOL_FAST, "M=%d N=%d K=%d ta=%d tb=%d alpha=%g beta=%g: rel err %.3g", g->M,
               g->N, g->K, g->trans_a, g->trans_b, g->alpha, g->beta, e);
        free(A), free(B), free(C), free(Ad), free(Bd), free(Cd);
    }
}

/* beta = 0 must ignore what C held (BLAS semantics), even NaN. */
static void test_gemm_beta_zero_ignores_c(void) {
    uint64_t rng = 2;
    enum { M = 9, N = 10, K = 11 };
    float *A = alloc_uniform(M * K, -1, 1, &rng), *B = alloc_uniform(K * N, -1, 1, &rng);
    float *C = nan_filled(M * N);
    double *Ad = to_double(A, M * K), *Bd = to_double(B, K * N), Cd[M * N];
    cpu_gemm(&be, C, A, B, M, N, K, 0, 0, 1.0f, 0.0f);
    ref_gemm(Cd, Ad, Bd, M, N, K, 0, 0, 1.0, 0.0);
    double e = rel_err_fd(C, Cd, M * N);
    CHECK(e <= TOL_FAST, "rel err %.3g", e);
    free(A), free(B), free(C), free(Ad), free(Bd);
}

static void test_gemm_batched_vs_reference(void) {
    /* Small and large products; strides leave gaps between the matrices. */
    static const gemm_case cases[] = {
        {5, 7, 4, 0, 1, 1.0f, 0.0f},
        {3, 9, 6, 1, 0, 0.5f, 1.0f},
        {130, 130, 130, 1, 1, 1.0f, 0.0f},
    };
    uint64_t rng = 3;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const gemm_case *g = &cases[c];
        const int batch = 3;
        long sa = (long)g->M * g->K + 3, sb = (long)g->K * g->N + 5, sc = (long)g->M * g->N + 1;
        size_t na = (size_t)(batch * sa), nb = (size_t)(batch * sb), nc = (size_t)(batch * sc);
        float *A = alloc_uniform(na, -1, 1, &rng), *B = alloc_uniform(nb, -1, 1, &rng);
        float *C = alloc_uniform(nc, -1, 1, &rng);
        double *Ad = to_double(A, na), *Bd = to_double(B, nb), *Cd = to_double(C, nc);
        cpu_gemm_batched(&be, C, A, B, batch, g->M, g->N, g->K, g->trans_a, g->trans_b, g->alpha,
                         g->beta, sa, sb, sc);
        ref_gemm_batched(Cd, Ad, Bd, batch, g->M, g->N, g->K, g->trans_a, g->trans_b, g->alpha,
                         g->beta, sa, sb, sc);
        double e = rel_err_fd(C, Cd, nc); /* includes the gaps, which must stay untouched */
        EXPECT(e <= TOL_FAST, "batch %d M=%d N=%d K=%d: rel err %.3g", batch, g->M, g->N, g->K, e);
        free(A), free(B), free(C), free(Ad), free(Bd), free(Cd);
    }
}

/* ---------- linear ---------- */

typedef struct {
    int M, K, N, has_bias;
} linear_case;

static const linear_case linear_cases[] = {
    {1, 1, 1, 1}, {5, 3, 7, 1}, {17, 33, 9, 0}, {64, 40, 24, 1}, {3, 130, 1, 1}, {200, 77, 45, 1},
};

/* Inputs of one linear problem, float and double copies of the same values. */
typedef struct {
    linear_case c;
    float *inp, *w, *b, *dout;
    double *inp_d, *w_d, *b_d, *dout_d, *out_d;
} linear_problem;

static void linear_problem_init(linear_problem *p, const linear_case *c, uint64_t *rng) {
    p->c = *c;
    size_t ni = (size_t)c->M * c->K, nw = (size_t)c->N * c->K, no = (size_t)c->M * c->N;
    p->inp = alloc_uniform(ni, -1, 1, rng);
    p->w = alloc_uniform(nw, -1, 1, rng);
    p->b = c->has_bias ? alloc_uniform((size_t)c->N, -1, 1, rng) : NULL;
    p->dout = alloc_uniform(no, -1, 1, rng);
    p->inp_d = to_double(p->inp, ni);
    p->w_d = to_double(p->w, nw);
    p->b_d = p->b ? to_double(p->b, (size_t)c->N) : NULL;
    p->dout_d = to_double(p->dout, no);
    p->out_d = malloc(no * sizeof *p->out_d);
}

static void linear_problem_free(linear_problem *p) {
    free(p->inp), free(p->w), free(p->b), free(p->dout);
    free(p->inp_d), free(p->w_d), free(p->b_d), free(p->dout_d), free(p->out_d);
}

static double linear_loss(void *ctx) {
    linear_problem *p = ctx;
    ref_linear_forward(p->out_d, p->inp_d, p->w_d, p->b_d, p->c.M, p->c.K, p->c.N);
    return dot_d(p->out_d, p->dout_d, (long)p->c.M * p->c.N);
}

static void test_linear_forward_vs_reference(void) {
    uint64_t rng = 10;
    for (size_t i = 0; i < sizeof linear_cases / sizeof linear_cases[0]; i++) {
        linear_problem p;
        linear_problem_init(&p, &linear_cases[i], &rng);
        size_t no = (size_t)p.c.M * p.c.N;
        float *out = nan_filled(no);
        cpu_linear_forward(&be, out, p.inp, p.w, p.b, p.c.M, p.c.K, p.c.N);
        ref_linear_forward(p.out_d, p.inp_d, p.w_d, p.b_d, p.c.M, p.c.K, p.c.N);
        double e = rel_err_fd(out, p.out_d, no);
        EXPECT(e <= TOL_FAST, "M=%d K=%d N=%d bias=%d: rel err %.3g", p.c.M, p.c.K, p.c.N,
               p.c.has_bias, e);
        free(out);
        linear_problem_free(&p);
    }
}

static void test_linear_reference_backward_vs_fd(void) {
    uint64_t rng = 11;
    for (size_t i = 0; i < sizeof linear_cases / sizeof linear_cases[0]; i++) {
        linear_problem p;
        linear_problem_init(&p, &linear_cases[i], &rng);
        const linear_case *c = &p.c;
        double *dinp = calloc((size_t)c->M * c->K, sizeof *dinp);
        double *dw = calloc((size_t)c->N * c->K, sizeof *dw);
        double *db = calloc((size_t)c->N, sizeof *db);
        ref_linear_backward(dinp, dw, c->has_bias ? db : NULL, p.dout_d, p.inp_d, p.w_d, c->M, c->K,
                            c->N);
        double ei = fd_rel_err(linear_loss, &p, p.inp_d, (long)c->M * c->K, dinp, &rng);
        double ew = fd_rel_err(linear_loss, &p, p.w_d, (long)c->N * c->K, dw, &rng);
        double eb = c->has_bias ? fd_rel_err(linear_loss, &p, p.b_d, c->N, db, &rng) : 0;
        EXPECT(ei <= TOL_FD && ew <= TOL_FD && eb <= TOL_FD,
               "M=%d K=%d N=%d: fd rel err dinp %.3g dweight %.3g dbias %.3g", c->M, c->K, c->N, ei,
               ew, eb);
        free(dinp), free(dw), free(db);
        linear_problem_free(&p);
    }
}

static void test_linear_backward_vs_reference(void) {
    /* dinp pre-filled with NaN (must be overwritten); dweight/dbias start
     * from random values and receive two backward calls: w0 + 2 g. */
    uint64_t rng = 12;
    for (size_t i = 0; i < sizeof linear_cases / sizeof linear_cases[0]; i++) {
        linear_problem p;
        linear_problem_init(&p, &linear_cases[i], &rng);
        const linear_case *c = &p.c;
        size_t ni = (size_t)c->M * c->K, nw = (size_t)c->N * c->K, nb = (size_t)c->N;
        float *dinp = nan_filled(ni);
        float *dw = alloc_uniform(nw, -1, 1, &rng), *db = alloc_uniform(nb, -1, 1, &rng);
        double *dinp_d = malloc(ni * sizeof *dinp_d), *dw_d = to_double(dw, nw);
        double *db_d = to_double(db, nb);
        for (int call = 0; call < 2; call++) {
            cpu_linear_backward(&be, dinp, dw, db, p.dout, p.inp, p.w, c->M, c->K, c->N);
            ref_linear_backward(dinp_d, dw_d, db_d, p.dout_d, p.inp_d, p.w_d, c->M, c->K, c->N);
        }
        double ei = rel_err_fd(dinp, dinp_d, ni), ew = rel_err_fd(dw, dw_d, nw);
        double eb = rel_err_fd(db, db_d, nb);
        EXPECT(ei <= TOL_FAST && ew <= TOL_FAST && eb <= TOL_FAST,
               "M=%d K=%d N=%d: rel err dinp %.3g dweight %.3g dbias %.3g", c->M, c->K, c->N, ei,
               ew, eb);
        free(dinp), free(dw), free(db), free(dinp_d), free(dw_d), free(db_d);
        linear_problem_free(&p);
    }
}

/* Accumulation against a hand-made truth: with dout = ones, dbias gains M
 * per call; with dinp only requested, dweight is left alone. */
static void test_linear_backward_accumulates_and_skips_null(void) {
    enum { M = 6, K = 4, N = 3 };
    uint64_t rng = 13;
    float *inp = alloc_uniform(M * K, -1, 1, &rng), *w = alloc_uniform(N * K, -1, 1, &rng);
    float dout[M * N], db[N] = {0.5f, 0.5f, 0.5f}, dw[N * K], dinp[M * K];
    for (int i = 0; i < M * N; i++) dout[i] = 1.0f;
    for (int i = 0; i < N * K; i++) dw[i] = 7.0f;
    cpu_linear_backward(&be, NULL, NULL, db, dout, inp, w, M, K, N);
    cpu_linear_backward(&be, NULL, NULL, db, dout, inp, w, M, K, N);
    for (int j = 0; j < N; j++) CHECK(db[j] == 0.5f + 2 * M, "dbias[%d] = %g", j, db[j]);
    cpu_linear_backward(&be, dinp, NULL, NULL, dout, inp, w, M, K, N);
    for (int i = 0; i < N * K; i++) CHECK(dw[i] == 7.0f, "dweight touched");
    /* dinp[i,k] = sum_j w[j,k] with dout = ones. */
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < N; j++) s += w[j * K + k];
            CHECK(fabs(dinp[i * K + k] - s) < 1e-6, "dinp[%d,%d] = %g, want %g", i, k,
                  dinp[i * K + k], s);
        }
    free(inp), free(w);
}

/* ---------- conv2d ---------- */

typedef struct {
    cnet_conv2d s;
    int has_bias;
    const char *what;
} conv_case;

static const conv_case conv_cases[] = {
    {{2, 5, 7, 3, 5, 3, 3, 1, 1, 1, 1, 1}, 1, "3x3 s1 pad 1, odd sizes, batch 2"},
    {{1, 8, 6, 4, 6, 3, 3, 2, 0, 1, 0, 1}, 1, "VAE downsampler: 3x3 s2, pad right+bottom"},
    {{2, 6, 5, 9, 7, 1, 1, 1, 0, 0, 0, 0}, 1, "1x1 s1 (plain GEMM path)"},
    {{1, 7, 7, 5, 3, 1, 1, 2, 0, 0, 0, 0}, 0, "1x1 s2, no bias"},
    {{1, 4, 5, 2, 3, 2, 3, 1, 1, 0, 2, 0}, 1, "2x3 kernel, asymmetric pads"},
    {{3, 9, 7, 10, 11, 3, 3, 2, 1, 1, 1, 1}, 0, "3x3 s2 pad 1, batch 3, no bias"},
    {{1, 3, 3, 2, 2, 3, 3, 1, 3, 2, 4, 1}, 1, "padding wider than the kernel reach"},
};

/* Shapes whose im2col spans several chunks (checked in the test); with the
 * present chunk bound the boundaries fall mid-row inside an image, and a
 * chunk holds the end of one image and the start of the next. */
static const conv_case conv_chunked_cases[] = {
    {{3, 19, 21, 300, 5, 3, 3, 1, 1, 1, 1, 1}, 1, "3x3 s1, several chunks"},
    {{1, 62, 62, 300, 3, 3, 3, 2, 1, 1, 1, 1}, 1, "3x3 s2, several chunks"},
};

typedef struct {
    cnet_conv2d s;
    long ni, nw, no;
    float *inp, *w, *b, *dout;
    double *inp_d, *w_d, *b_d, *dout_d, *out_d;
} conv_problem;

static void conv_problem_init(conv_problem *p, const conv_case *c, uint64_t *rng) {
    const cnet_conv2d *s = &c->s;
    p->s = *s;
    p->ni = (long)s->B * s->H * s->W * s->C_in;
    p->nw = (long)s->C_out * s->kh * s->kw * s->C_in;
    p->no = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s) * s->C_out;
    p->inp = alloc_uniform((size_t)p->ni, -1, 1, rng);
    p->w = alloc_uniform((size_t)p->nw, -1, 1, rng);
    p->b = c->has_bias ? alloc_uniform((size_t)s->C_out, -1, 1, rng) : NULL;
    p->dout = alloc_uniform((size_t)p->no, -1, 1, rng);
    p->inp_d = to_double(p->inp, (size_t)p->ni);
    p->w_d = to_double(p->w, (size_t)p->nw);
    p->b_d = p->b ? to_double(p->b, (size_t)s->C_out) : NULL;
    p->dout_d = to_double(p->dout, (size_t)p->no);
    p->out_d = malloc((size_t)p->no * sizeof *p->out_d);
}

static void conv_problem_free(conv_problem *p) {
    free(p->inp), free(p->w), free(p->b), free(p->dout);
    free(p->inp_d), free(p->w_d), free(p->b_d), free(p->dout_d), free(p->out_d);
}

static double conv_loss(void *ctx) {
    conv_problem *p = ctx;
    ref_conv2d_forward(p->out_d, p->inp_d, p->w_d, p->b_d, &p->s);
    return dot_d(p->out_d, p->dout_d, p->no);
}

typedef void (*conv_forward_fn)(cnet_backend *be, float *out, const float *inp, const float *weight,
                                const float *bias, const cnet_conv2d *s);

static void conv_check_forward(const conv_case *c, conv_forward_fn forward, uint64_t *rng) {
    conv_problem p;
    conv_problem_init(&p, c, rng);
    float *out = nan_filled((size_t)p.no);
    forward(&be, out, p.inp, p.w, p.b, &p.s);
    ref_conv2d_forward(p.out_d, p.inp_d, p.w_d, p.b_d, &p.s);
    double e = rel_err_fd(out, p.out_d, (size_t)p.no);
    EXPECT(e <= TOL_FAST, "%s: forward rel err %.3g", c->what, e);
    free(out);
    conv_problem_free(&p);
}

/* Fast backward vs reference: NaN-filled dinp must be overwritten, random
 * initial dweight/dbias must receive the gradient twice. Then each gradient
 * alone (the others NULL) once more. */
static void conv_check_backward(const conv_case *c, uint64_t *rng) {
    conv_problem p;
    conv_problem_init(&p, c, rng);
    const int Co = p.s.C_out;
    float *dinp = nan_filled((size_t)p.ni);
    float *dw = alloc_uniform((size_t)p.nw, -1, 1, rng),
          *db = alloc_uniform((size_t)Co, -1, 1, rng);
    double *dinp_d = malloc((size_t)p.ni * sizeof *dinp_d);
    double *dw_d = to_double(dw, (size_t)p.nw), *db_d = to_double(db, (size_t)Co);
    for (int call = 0; call < 2; call++) {
        cpu_conv2d_backward(&be, dinp, dw, db, p.dout, p.inp, p.w, &p.s);
        ref_conv2d_backward(dinp_d, dw_d, db_d, p.dout_d, p.inp_d, p.w_d, &p.s);
    }
    double ei = rel_err_fd(dinp, dinp_d, (size_t)p.ni), ew = rel_err_fd(dw, dw_d, (size_t)p.nw);
    double eb = rel_err_fd(db, db_d, (size_t)Co);
    EXPECT(ei <= TOL_FAST && ew <= TOL_FAST && eb <= TOL_FAST,
           "%s: rel err dinp %.3g dweight %.3g dbias %.3g (after two calls)", c->what, ei, ew, eb);

    /* One gradient at a time; reference gradients from zero. */
    double *gi = malloc((size_t)p.ni * sizeof *gi), *gw = calloc((size_t)p.nw, sizeof *gw);
    double *gb = calloc((size_t)Co, sizeof *gb);
    ref_conv2d_backward(gi, gw, gb, p.dout_d, p.inp_d, p.w_d, &p.s);
    for (long i = 0; i < p.ni; i++) dinp[i] = NAN;
    memset(dw, 0, (size_t)p.nw * sizeof *dw);
    memset(db, 0, (size_t)Co * sizeof *db);
    cpu_conv2d_backward(&be, dinp, NULL, NULL, p.dout, p.inp, p.w, &p.s);
    cpu_conv2d_backward(&be, NULL, dw, NULL, p.dout, p.inp, p.w, &p.s);
    cpu_conv2d_backward(&be, NULL, NULL, db, p.dout, p.inp, p.w, &p.s);
    ei = rel_err_fd(dinp, gi, (size_t)p.ni), ew = rel_err_fd(dw, gw, (size_t)p.nw);
    eb = rel_err_fd(db, gb, (size_t)Co);
    EXPECT(ei <= TOL_FAST && ew <= TOL_FAST && eb <= TOL_FAST,
           "%s: one gradient at a time: rel err dinp %.3g dweight %.3g dbias %.3g", c->what, ei, ew,
           eb);
    free(dinp), free(dw), free(db), free(dinp_d), free(dw_d), free(db_d);
    free(gi), free(gw), free(gb);
    conv_problem_free(&p);
}

static void test_conv2d_forward_vs_reference(void) {
    uint64_t rng = 20;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        conv_check_forward(&conv_cases[i], cpu_conv2d_forward, &rng);
}

static void test_conv2d_reference_backward_vs_fd(void) {
    uint64_t rng = 21;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        conv_problem p;
        conv_problem_init(&p, &conv_cases[i], &rng);
        double *dinp = malloc((size_t)p.ni * sizeof *dinp);
        double *dw = calloc((size_t)p.nw, sizeof *dw), *db = calloc((size_t)p.s.C_out, sizeof *db);
        ref_conv2d_backward(dinp, dw, p.b_d ? db : NULL, p.dout_d, p.inp_d, p.w_d, &p.s);
        double ei = fd_rel_err(conv_loss, &p, p.inp_d, p.ni, dinp, &rng);
        double ew = fd_rel_err(conv_loss, &p, p.w_d, p.nw, dw, &rng);
        double eb = p.b_d ? fd_rel_err(conv_loss, &p, p.b_d, p.s.C_out, db, &rng) : 0;
        EXPECT(ei <= TOL_FD && ew <= TOL_FD && eb <= TOL_FD,
               "%s: fd rel err dinp %.3g dweight %.3g dbias %.3g", conv_cases[i].what, ei, ew, eb);
        free(dinp), free(dw), free(db);
        conv_problem_free(&p);
    }
}

static void test_conv2d_backward_vs_reference(void) {
    uint64_t rng = 22;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        conv_check_backward(&conv_cases[i], &rng);
}

static void test_conv2d_chunked_vs_reference(void) {
    uint64_t rng = 23;
    for (size_t i = 0; i < sizeof conv_chunked_cases / sizeof conv_chunked_cases[0]; i++) {
        const conv_case *c = &conv_chunked_cases[i];
        long P = (long)c->s.B * cnet_conv2d_out_h(&c->s) * cnet_conv2d_out_w(&c->s);
        long chunk = cpu_conv2d_chunk_rows(&c->s);
        CHECK(chunk < P, "%s: %ld pixels fit one chunk of %ld; pick a larger shape", c->what, P,
              chunk);
        /* The im2col forward itself: the dispatcher would send the 3x3 s1
         * case to Winograd (tests/unit/test_conv_winograd.c). */
        conv_check_forward(c, cpu_conv2d_im2col_forward, &rng);
        conv_check_backward(c, &rng);
    }
}

/* All-ones input and weight: each output counts the taps inside the image.
 * 3x3, pad 1 on a 3x3 image gives 4 6 4 / 6 9 6 / 4 6 4; the VAE downsampler
 * (3x3, stride 2, pad right+bottom by 1) on a 4x4 image gives 9 6 / 6 4. */
static void test_conv2d_hand_computed(void) {
    float ones[16], w[9], out[9];
    for (int i = 0; i < 16; i++) ones[i] = 1.0f;
    for (int i = 0; i < 9; i++) w[i] = 1.0f;
    const cnet_conv2d same = {1, 3, 3, 1, 1, 3, 3, 1, 1, 1, 1, 1};
    const float want_same[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    cpu_conv2d_forward(&be, out, ones, w, NULL, &same);
    for (int i = 0; i < 9; i++) CHECK(out[i] == want_same[i], "same[%d] = %g", i, out[i]);
    const cnet_conv2d down = {1, 4, 4, 1, 1, 3, 3, 2, 0, 1, 0, 1};
    const float want_down[4] = {9, 6, 6, 4};
    CHECK(cnet_conv2d_out_h(&down) == 2 && cnet_conv2d_out_w(&down) == 2, "output size");
    cpu_conv2d_forward(&be, out, ones, w, NULL, &down);
    for (int i = 0; i < 4; i++) CHECK(out[i] == want_down[i], "down[%d] = %g", i, out[i]);
    /* Backward-data of the downsampler with dout = ones: input pixel (y, x)
     * is read by the outputs whose windows cover it; rows/cols 0,1 are seen
     * by output 0 only, row/col 2 by outputs 0 and 1, row/col 3 by 1. */
    float dout[4] = {1, 1, 1, 1}, dinp[16];
    cpu_conv2d_backward(&be, dinp, NULL, NULL, dout, ones, w, &down);
    const float cover[4] = {1, 1, 2, 1};
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            CHECK(dinp[y * 4 + x] == cover[y] * cover[x], "dinp[%d,%d] = %g", y, x,
                  dinp[y * 4 + x]);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_gemm_vs_reference);
    RUN(test_gemm_beta_zero_ignores_c);
    RUN(test_gemm_batched_vs_reference);
    RUN(test_linear_forward_vs_reference);
    RUN(test_linear_reference_backward_vs_fd);
    RUN(test_linear_backward_vs_reference);
    RUN(test_linear_backward_accumulates_and_skips_null);
    RUN(test_conv2d_hand_computed);
    RUN(test_conv2d_forward_vs_reference);
    RUN(test_conv2d_reference_backward_vs_fd);
    RUN(test_conv2d_backward_vs_reference);
    RUN(test_conv2d_chunked_vs_reference);
    cpu_scratch_free(&be);
    return harness_done();
}
