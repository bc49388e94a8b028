/* The training tail of the CPU backend: weighted MSE (forward vs the double
 * reference rel <= 1e-5; reference backward vs finite differences
 * rel <= 1e-6; fast backward vs reference rel <= 1e-5), the sum of squares
 * (accumulated in double: rel <= 1e-7 even over 10^5 terms, where a float
 * accumulator is off by ~1e-5), AdamW (two steps vs the exact torch formula
 * with weight decay, with and without clipping, clipping active and not:
 * updates, m and v rel <= 1e-5; grads left untouched) and the Philox normal
 * op (bit-equal to engine/core/philox.h's definition at any offset and length). */
#include <math.h>
#include <string.h>

#include "engine/core/philox.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_nn.h"
#include "kernels/cpu/scratch.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"
#include "tests/lib/lib_gradcheck.h"
#include "tests/lib/lib_numeric.h"

#define TOL_FAST 1e-5
#define TOL_FD 1e-6
#define TOL_SUMSQ 1e-7

typedef struct mse_case {
    int B;
    long n;
    double scale;
    double *pred, *target, *weights;
} mse_case;

static double mse_loss(void *p) {
    mse_case *c = p;
    double loss;
    ref_mse_forward(&loss, c->pred, c->target, c->weights, c->B, c->n);
    return c->scale * loss;
}

static void check_mse(int B, long n, int weighted, int fd, uint64_t seed) {
    cnet_backend be = {0};
    const long N = (long)B * n;
    float *pred = cm_uniform(N, -1, 1, &seed), *target = cm_uniform(N, -1, 1, &seed);
    float *w = weighted ? cm_uniform(B, 0.1f, 2.0f, &seed) : NULL;
    const float scale = 0.37f;
    mse_case c = {
        B, n, scale, cm_double(pred, N), cm_double(target, N), w ? cm_double(w, B) : NULL};
    float loss = NAN;
    double rloss;
    cpu_mse_forward(&be, &loss, pred, target, w, B, n);
    ref_mse_forward(&rloss, c.pred, c.target, c.weights, B, n);
    cpu_scratch_free(&be);
    CHECK(fabs(loss - rloss) <= TOL_FAST * fabs(rloss), "mse B %d n %ld weighted %d: %.9g vs %.9g",
          B, n, weighted, loss, rloss);

    double *rd = cm_dzeros(N);
    ref_mse_backward(rd, c.pred, c.target, c.weights, B, n, scale);
    if (fd) {
        double *g = cm_dzeros(N);
        fd_gradient(g, c.pred, N, mse_loss, &c, FD_STEP);
        double e = rel_err_dd(rd, g, N);
        CHECK(e <= TOL_FD, "reference mse backward vs finite differences %.2e", e);
    }
    float *d = cm_fill(N, NAN);
    cpu_mse_backward(&be, d, pred, target, w, B, n, scale);
    double e = rel_err_fd(d, rd, N);
    CHECK(e <= TOL_FAST, "mse backward B %d n %ld weighted %d: %.2e", B, n, weighted, e);
}

static void test_mse(void) {
    check_mse(2, 5, 1, 1, 1);
    check_mse(3, 7, 0, 1, 2);
    check_mse(2, 4 * 64 * 64 + 3, 1, 0, 3); /* several reduction chunks per sample */
    check_mse(1, 40000, 0, 0, 4);
    cm_free_all();
}

static void check_sum_squares(long n, uint64_t seed) {
    cnet_backend be = {0};
    float *x = cm_uniform(n, -1, 1, &seed);
    x[0] = 1000.0f; /* a large term first: float accumulation would then lose the small ones */
    float out = NAN;
    double ref;
    cpu_sum_squares(&be, &out, x, n);
    ref_sum_squares(&ref, cm_double(x, n), n);
    cpu_scratch_free(&be);
    CHECK(fabs(out - ref) <= TOL_SUMSQ * ref, "sum_squares n %ld: %.9g vs %.9g", n, out, ref);
}

static void test_sum_squares(void) {
    check_sum_squares(1, 5);
    check_sum_squares(1000, 6);
    check_sum_squares(100003, 7);
    cm_free_all();
}

/* max_norm_factor: max_grad_norm = factor * ||grads|| (0: no clipping). */
static void check_adamw(long n, double max_norm_factor, uint64_t seed) {
    cnet_backend be = {0};
    const float lr = 0.05f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.1f;
    float *p = cm_uniform(n, -1, 1, &seed), *m = cm_fill(n, 0), *v = cm_fill(n, 0);
    double *rp = cm_double(p, n), *rm = cm_dzeros(n), *rv = cm_dzeros(n), *p0 = cm_double(p, n);
    for (int step = 1; step <= 2; step++) {
        float *g = cm_uniform(n, -0.5f, 0.5f, &seed);
        g[n / 2] = 0.0f; /* an element whose first moment stays 0 for a step */
        float *g_copy = cm_alloc(n * sizeof *g_copy);
        memcpy(g_copy, g, n * sizeof *g);
        double *rg = cm_double(g, n), rsumsq;
        ref_sum_squares(&rsumsq, rg, n);
        const float sumsq = (float)rsumsq;
        const double sumsq_d = sumsq; /* the reference sees the same (float) sum */
        const float max_norm = (float)(max_norm_factor * sqrt(rsumsq));
        cpu_adamw_step(&be, p, m, v, g, n, lr, beta1, beta2, eps, wd, step,
                       max_norm_factor > 0 ? &sumsq : NULL, max_norm);
        ref_adamw_step(rp, rm, rv, rg, n, lr, beta1, beta2, eps, wd, step,
                       max_norm_factor > 0 ? &sumsq_d : NULL, max_norm);
        CHECK(memcmp(g, g_copy, n * sizeof *g) == 0, "adamw modified the gradients");
    }
    double *upd = cm_dzeros(n), *rupd = cm_dzeros(n);
    for (long i = 0; i < n; i++) upd[i] = p[i] - p0[i], rupd[i] = rp[i] - p0[i];
    double e_p = rel_err_dd(upd, rupd, n), e_m = rel_err_fd(m, rm, n), e_v = rel_err_fd(v, rv, n);
    CHECK(e_p <= TOL_FAST && e_m <= TOL_FAST && e_v <= TOL_FAST,
          "adamw n %ld clip factor %g: update %.2e m %.2e v %.2e", n, max_norm_factor, e_p, e_m,
          e_v);
}

static void test_adamw(void) {
    check_adamw(1000, 0, 8);     /* no clipping */
    check_adamw(1000, 0.3, 9);   /* clipping active: grads scaled by ~0.3 */
    check_adamw(1000, 2.0, 10);  /* clipping inactive: factor min(1, ~2) = 1 */
    check_adamw(50001, 0.5, 11); /* parallel path */
    cm_free_all();
}

static void check_philox(long n, uint64_t seed, uint64_t offset) {
    cnet_backend be = {0};
    float *out = cm_fill(n, NAN);
    cpu_philox_normal(&be, out, n, seed, offset);
    for (long i = 0; i < n; i++) {
        float z[4];
        philox_normal4(z, seed, offset + (uint64_t)i / 4);
        CHECK(out[i] == z[i % 4], "philox n %ld offset %llu element %ld: %g vs %g", n,
              (unsigned long long)offset, i, out[i], z[i % 4]);
    }
}

static void test_philox_normal(void) {
    check_philox(10, 42, 0);
    check_philox(7, 42, 5);
    check_philox(300001, 0x123456789abcdefull, 1ull << 33); /* parallel, 64-bit counter */
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_mse);
    RUN(test_sum_squares);
    RUN(test_adamw);
    RUN(test_philox_normal);
    return harness_done();
}
