/* Group norm (plain and with fused SiLU) and layer norm of the CPU backend:
 * fast forward vs the double reference (rel <= 1e-5), the reference backward
 * vs central finite differences of the reference forward (rel <= 1e-6, loss
 * sum(dout * out)), fast backward vs reference backward (rel <= 1e-5), and
 * the gradient conventions: dgamma/dbeta accumulate (two calls give twice
 * the gradient), dinp overwrites (pre-filled with NaN), and any of them may
 * be NULL. */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_nn.h"
#include "kernels/cpu/scratch.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"
#include "tests/lib/lib_gradcheck.h"
#include "tests/lib/lib_numeric.h"

#define TOL_FAST 1e-5
#define TOL_FD 1e-6

typedef struct norm_case {
    int B, HW, C, G; /* layer norm: B = M rows, HW = 1, G = 1 */
    int fuse, layer;
    double eps;
    double *inp, *gamma, *beta, *dout, *out;
} norm_case;

static double norm_loss(void *p) {
    norm_case *c = p;
    const long n = (long)c->B * c->HW * c->C;
    if (c->layer)
        ref_layer_norm_forward(c->out, NULL, NULL, c->inp, c->gamma, c->beta, c->B, c->C, c->eps);
    else
        ref_group_norm_forward(c->out, NULL, NULL, c->inp, c->gamma, c->beta, c->B, c->HW, c->C,
                               c->G, c->eps, c->fuse);
    return dot_d(c->dout, c->out, (size_t)n);
}

/* One shape: B samples of HW pixels and C channels in G groups (or, with
 * layer set, a layer norm of B rows of C). fd adds the finite-difference
 * check (small shapes only: it costs O(n^2)). */
static void check_norm(int B, int HW, int C, int G, int fuse, int layer, int fd, float center,
                       uint64_t seed) {
    cnet_backend be = {0};
    const long n = (long)B * HW * C;
    const int nstat = layer ? B : B * G;
    const float eps = 1e-5f;
    /* center > 0 checks that the statistics survive |mean| > std */
    float *inp = cm_uniform(n, center - 2.0f, center + 2.0f, &seed);
    float *gamma = cm_uniform(C, 0.5f, 1.5f, &seed), *beta = cm_uniform(C, -0.5f, 0.5f, &seed);
    float *dout = cm_uniform(n, -1.0f, 1.0f, &seed);
    norm_case c = {B,
                   HW,
                   C,
                   G,
                   fuse,
                   layer,
                   eps,
                   cm_double(inp, n),
                   cm_double(gamma, C),
                   cm_double(beta, C),
                   cm_double(dout, n),
                   cm_dzeros(n)};

    /* forward */
    float *out = cm_fill(n, NAN), *mean = cm_fill(nstat, NAN), *rstd = cm_fill(nstat, NAN);
    double *rout = cm_dzeros(n), *rmean = cm_dzeros(nstat), *rrstd = cm_dzeros(nstat);
    if (layer) {
        cpu_layer_norm_forward(&be, out, mean, rstd, inp, gamma, beta, B, C, eps);
        ref_layer_norm_forward(rout, rmean, rrstd, c.inp, c.gamma, c.beta, B, C, eps);
    } else {
        cpu_group_norm_forward(&be, out, mean, rstd, inp, gamma, beta, B, HW, C, G, eps, fuse);
        ref_group_norm_forward(rout, rmean, rrstd, c.inp, c.gamma, c.beta, B, HW, C, G, eps, fuse);
    }
    double e_out = rel_err_fd(out, rout, n), e_mean = rel_err_fd(mean, rmean, nstat);
    double e_rstd = rel_err_fd(rstd, rrstd, nstat);
    CHECK(e_out <= TOL_FAST && e_mean <= TOL_FAST && e_rstd <= TOL_FAST,
          "forward vs reference: out %.2e mean %.2e rstd %.2e", e_out, e_mean, e_rstd);

    /* reference backward */
    double *rdinp = cm_dzeros(n), *rdgamma = cm_dzeros(C), *rdbeta = cm_dzeros(C);
    if (layer)
        ref_layer_norm_backward(rdinp, rdgamma, rdbeta, c.dout, c.inp, rmean, rrstd, c.gamma, B, C);
    else
        ref_group_norm_backward(rdinp, rdgamma, rdbeta, c.dout, c.inp, rmean, rrstd, c.gamma,
                                c.beta, B, HW, C, G, fuse);
    if (fd) {
        double *g = cm_dzeros(n);
        fd_gradient(g, c.inp, n, norm_loss, &c, FD_STEP);
        double e = rel_err_dd(rdinp, g, n);
        CHECK(e <= TOL_FD, "reference dinp vs finite differences: %.2e", e);
        fd_gradient(g, c.gamma, C, norm_loss, &c, FD_STEP);
        e = rel_err_dd(rdgamma, g, C);
        CHECK(e <= TOL_FD, "reference dgamma vs finite differences: %.2e", e);
        fd_gradient(g, c.beta, C, norm_loss, &c, FD_STEP);
        e = rel_err_dd(rdbeta, g, C);
        CHECK(e <= TOL_FD, "reference dbeta vs finite differences: %.2e", e);
    }

    /* fast backward, called twice: parameter grads double, dinp does not */
    float *dinp = cm_fill(n, NAN), *dgamma = cm_fill(C, 0.0f), *dbeta = cm_fill(C, 0.0f);
    for (int rep = 0; rep < 2; rep++) {
        if (layer)
            cpu_layer_norm_backward(&be, dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, B, C);
        else
            cpu_group_norm_backward(&be, dinp, dgamma, dbeta, dout, inp, mean, rstd, gamma, beta, B,
                                    HW, C, G, fuse);
    }
    for (int i = 0; i < C; i++) rdgamma[i] *= 2, rdbeta[i] *= 2;
    double e_dinp = rel_err_fd(dinp, rdinp, n), e_dg = rel_err_fd(dgamma, rdgamma, C);
    double e_db = rel_err_fd(dbeta, rdbeta, C);
    cpu_scratch_free(&be);
    CHECK(e_dinp <= TOL_FAST && e_dg <= TOL_FAST && e_db <= TOL_FAST,
          "backward vs reference: dinp %.2e dgamma(x2) %.2e dbeta(x2) %.2e", e_dinp, e_dg, e_db);

    /* NULL parameter grads: dinp alone is still right */
    float *dinp2 = cm_fill(n, NAN);
    if (layer)
        cpu_layer_norm_backward(&be, dinp2, NULL, NULL, dout, inp, mean, rstd, gamma, B, C);
    else
        cpu_group_norm_backward(&be, dinp2, NULL, NULL, dout, inp, mean, rstd, gamma, beta, B, HW,
                                C, G, fuse);
    e_dinp = rel_err_fd(dinp2, rdinp, n);
    CHECK(e_dinp <= TOL_FAST, "backward without dgamma/dbeta: dinp %.2e", e_dinp);

    /* NULL dinp: the parameter grads alone are still right (one call) */
    float *dgamma1 = cm_fill(C, 0.0f), *dbeta1 = cm_fill(C, 0.0f);
    if (layer)
        cpu_layer_norm_backward(&be, NULL, dgamma1, dbeta1, dout, inp, mean, rstd, gamma, B, C);
    else
        cpu_group_norm_backward(&be, NULL, dgamma1, dbeta1, dout, inp, mean, rstd, gamma, beta, B,
                                HW, C, G, fuse);
    cpu_scratch_free(&be);
    for (int i = 0; i < C; i++) rdgamma[i] /= 2, rdbeta[i] /= 2;
    e_dg = rel_err_fd(dgamma1, rdgamma, C), e_db = rel_err_fd(dbeta1, rdbeta, C);
    CHECK(e_dg <= TOL_FAST && e_db <= TOL_FAST, "backward without dinp: dgamma %.2e dbeta %.2e",
          e_dg, e_db);
}

static void test_group_norm_small_fd(void) {
    check_norm(2, 5, 6, 3, 0, 0, 1, 3.0f, 1);   /* batch > 1, Cg = 2 */
    check_norm(2, 5, 6, 3, 1, 0, 1, 3.0f, 2);   /* fused SiLU */
    check_norm(1, 7, 9, 1, 1, 0, 1, 3.0f, 3);   /* one group */
    check_norm(3, 3, 10, 10, 0, 0, 1, 3.0f, 4); /* one channel per group */
    cm_free_all();
}

static void test_group_norm_large(void) {
    check_norm(2, 300, 40, 8, 1, 0, 0, 3.0f, 5);    /* parallel path, Cg = 5 */
    check_norm(3, 97, 96, 32, 0, 0, 0, 3.0f, 6);    /* SD's 32 groups */
    check_norm(1, 1031, 13, 1, 1, 0, 0, 3.0f, 7);   /* one group, odd sizes */
    check_norm(1, 4096, 8, 1, 0, 0, 0, 100.0f, 12); /* 32768 values around 100 */
    cm_free_all();
}

static void test_layer_norm_small_fd(void) {
    check_norm(5, 1, 7, 1, 0, 1, 1, 3.0f, 8);
    check_norm(1, 1, 12, 1, 0, 1, 1, 3.0f, 9);
    cm_free_all();
}

static void test_layer_norm_large(void) {
    check_norm(300, 1, 77, 1, 0, 1, 0, 3.0f, 10); /* several row blocks, parallel path */
    check_norm(65, 1, 320, 1, 0, 1, 0, 3.0f, 11);
    check_norm(9, 1, 4096, 1, 0, 1, 0, 100.0f, 13);
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_group_norm_small_fd);
    RUN(test_group_norm_large);
    RUN(test_layer_norm_small_fd);
    RUN(test_layer_norm_large);
    return harness_done();
}
