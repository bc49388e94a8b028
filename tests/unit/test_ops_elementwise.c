/* Elementwise arithmetic, broadcast add, channel concat/split, nearest 2x
 * upsample and embedding lookup of the CPU backend: fast vs the double
 * reference (rel <= 1e-5; data movement must be exact), aliasing where the
 * table allows it, the reference backward vs finite differences
 * (rel <= 1e-6) and the fast backward vs the reference with outputs
 * pre-filled with NaN (activation grads overwrite). */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_nn.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"
#include "tests/lib/lib_gradcheck.h"
#include "tests/lib/lib_numeric.h"

#define TOL_FAST 1e-5
#define TOL_FD 1e-6

static cnet_backend be; /* these ops keep no scratch */

static void check_arith(long n, uint64_t seed) {
    float *a = cm_uniform(n, -1, 1, &seed), *b = cm_uniform(n, -3, 3, &seed);
    double *da = cm_double(a, n), *db = cm_double(b, n), *ref = cm_dzeros(n);
    const float alpha = 0.75f, beta = -1.25f;
    float *out = cm_fill(n, NAN);

    cpu_add(&be, out, a, b, n);
    ref_add(ref, da, db, n);
    CHECK(rel_err_fd(out, ref, n) <= TOL_FAST, "add n %ld", n);

    cpu_axpby(&be, out, alpha, a, beta, b, n);
    ref_axpby(ref, alpha, da, beta, db, n);
    CHECK(rel_err_fd(out, ref, n) <= TOL_FAST, "axpby n %ld", n);
    float *alias = cm_fill(n, 0);
    for (long i = 0; i < n; i++) alias[i] = b[i];
    cpu_axpby(&be, alias, alpha, a, beta, alias, n); /* out aliases b */
    CHECK(rel_err_fd(alias, ref, n) <= TOL_FAST, "axpby with out == b, n %ld", n);

    cpu_scale(&be, out, a, alpha, n);
    ref_scale(ref, da, alpha, n);
    CHECK(rel_err_fd(out, ref, n) <= TOL_FAST, "scale n %ld", n);

    for (long i = 0; i < n; i++) out[i] = b[i], ref[i] = db[i];
    cpu_axpy(&be, out, alpha, a, n);
    ref_axpy(ref, alpha, da, n);
    CHECK(rel_err_fd(out, ref, n) <= TOL_FAST, "axpy n %ld", n);
}

static void test_arith(void) {
    check_arith(1, 1);
    check_arith(7, 2);
    check_arith(40001, 3); /* parallel path */
    cm_free_all();
}

/* Sizes and double buffers of one linear op under finite differences:
 * add_broadcast uses B, HW, C (x = inp, y = vec); concat uses M = B, C1 = HW,
 * C2 = C (x = a, y = b); upsample uses B, H, W, C (x = inp). */
typedef struct lin_case {
    int B, HW, C;
    int H, W;
    double *x, *y, *dout, *out;
} lin_case;

static double bcast_loss(void *p) {
    lin_case *c = p;
    ref_add_broadcast(c->out, c->x, c->y, c->B, c->HW, c->C);
    return dot_d(c->dout, c->out, (size_t)c->B * c->HW * c->C);
}

static void check_add_broadcast(int B, int HW, int C, int fd, uint64_t seed) {
    const long n = (long)B * HW * C;
    float *inp = cm_uniform(n, -1, 1, &seed), *vec = cm_uniform((long)B * C, -1, 1, &seed);
    float *dout = cm_uniform(n, -1, 1, &seed);
    lin_case c = {B,
                  HW,
                  C,
                  0,
                  0,
                  cm_double(inp, n),
                  cm_double(vec, (long)B * C),
                  cm_double(dout, n),
                  cm_dzeros(n)};
    float *out = cm_fill(n, NAN);
    double *ref = cm_dzeros(n);
    cpu_add_broadcast(&be, out, inp, vec, B, HW, C);
    ref_add_broadcast(ref, c.x, c.y, B, HW, C);
    CHECK(rel_err_fd(out, ref, n) <= TOL_FAST, "add_broadcast B %d HW %d C %d", B, HW, C);
    cpu_add_broadcast(&be, inp, inp, vec, B, HW, C); /* in place */
    CHECK(rel_err_fd(inp, ref, n) <= TOL_FAST, "add_broadcast in place");

    double *rdvec = cm_dzeros((long)B * C);
    ref_add_broadcast_backward(rdvec, c.dout, B, HW, C);
    if (fd) {
        double *g = cm_dzeros((long)B * C);
        fd_gradient(g, c.y, (long)B * C, bcast_loss, &c, FD_STEP);
        double e = rel_err_dd(rdvec, g, (long)B * C);
        CHECK(e <= TOL_FD, "reference dvec vs finite differences %.2e", e);
    }
    float *dvec = cm_fill((long)B * C, NAN);
    cpu_add_broadcast_backward(&be, dvec, dout, B, HW, C);
    double e = rel_err_fd(dvec, rdvec, (long)B * C);
    CHECK(e <= TOL_FAST, "add_broadcast_backward B %d HW %d C %d: %.2e", B, HW, C, e);
}

static void test_add_broadcast(void) {
    check_add_broadcast(2, 3, 5, 1, 4);
    check_add_broadcast(3, 257, 70, 0, 5); /* channel blocks of 64 + a partial one */
    check_add_broadcast(2, 64, 320, 0, 6);
    cm_free_all();
}

static double concat_loss(void *p) {
    lin_case *c = p; /* M = B, C1 = HW, C2 = C */
    ref_concat_channels(c->out, c->x, c->y, c->B, c->HW, c->C);
    return dot_d(c->dout, c->out, (size_t)c->B * (c->HW + c->C));
}

/* split is concat's backward: checked against finite differences of concat. */
static void check_concat_split(int M, int C1, int C2, int fd, uint64_t seed) {
    const long n = (long)M * (C1 + C2);
    float *a = cm_uniform((long)M * C1, -1, 1, &seed), *b = cm_uniform((long)M * C2, -1, 1, &seed);
    float *dout = cm_uniform(n, -1, 1, &seed);
    lin_case c = {M,
                  C1,
                  C2,
                  0,
                  0,
                  cm_double(a, (long)M * C1),
                  cm_double(b, (long)M * C2),
                  cm_double(dout, n),
                  cm_dzeros(n)};
    float *out = cm_fill(n, NAN);
    double *ref = cm_dzeros(n);
    cpu_concat_channels(&be, out, a, b, M, C1, C2);
    ref_concat_channels(ref, c.x, c.y, M, C1, C2);
    CHECK(max_abs_diff_fd(out, ref, n) == 0, "concat M %d C1 %d C2 %d", M, C1, C2);

    double *ra = cm_dzeros((long)M * C1), *rb = cm_dzeros((long)M * C2);
    ref_split_channels(ra, rb, c.dout, M, C1, C2);
    if (fd) {
        double *g = cm_dzeros((long)M * (C1 > C2 ? C1 : C2));
        fd_gradient(g, c.x, (long)M * C1, concat_loss, &c, FD_STEP);
        CHECK(rel_err_dd(ra, g, (long)M * C1) <= TOL_FD, "reference split (a) vs finite diffs");
        fd_gradient(g, c.y, (long)M * C2, concat_loss, &c, FD_STEP);
        CHECK(rel_err_dd(rb, g, (long)M * C2) <= TOL_FD, "reference split (b) vs finite diffs");
    }
    float *sa = cm_fill((long)M * C1, NAN), *sb = cm_fill((long)M * C2, NAN);
    cpu_split_channels(&be, sa, sb, dout, M, C1, C2);
    CHECK(max_abs_diff_fd(sa, ra, (long)M * C1) == 0 && max_abs_diff_fd(sb, rb, (long)M * C2) == 0,
          "split M %d C1 %d C2 %d", M, C1, C2);
    float *sa2 = cm_fill((long)M * C1, NAN), *sb2 = cm_fill((long)M * C2, NAN);
    cpu_split_channels(&be, sa2, NULL, dout, M, C1, C2);
    cpu_split_channels(&be, NULL, sb2, dout, M, C1, C2);
    CHECK(max_abs_diff_fd(sa2, ra, (long)M * C1) == 0 &&
              max_abs_diff_fd(sb2, rb, (long)M * C2) == 0,
          "split with a NULL half");
}

static void test_concat_split(void) {
    check_concat_split(3, 2, 5, 1, 7);
    check_concat_split(1000, 37, 3, 0, 8); /* parallel path */
    cm_free_all();
}

static double upsample_loss(void *p) {
    lin_case *c = p;
    ref_upsample2x_forward(c->out, c->x, c->B, c->H, c->W, c->C);
    return dot_d(c->dout, c->out, 4L * c->B * c->H * c->W * c->C);
}

static void check_upsample(int B, int H, int W, int C, int fd, uint64_t seed) {
    const long n = (long)B * H * W * C, n4 = 4 * n;
    float *inp = cm_uniform(n, -1, 1, &seed), *dout = cm_uniform(n4, -1, 1, &seed);
    lin_case c = {B, 0, C, H, W, cm_double(inp, n), NULL, cm_double(dout, n4), cm_dzeros(n4)};
    float *out = cm_fill(n4, NAN);
    double *ref = cm_dzeros(n4);
    cpu_upsample2x_forward(&be, out, inp, B, H, W, C);
    ref_upsample2x_forward(ref, c.x, B, H, W, C);
    CHECK(max_abs_diff_fd(out, ref, n4) == 0, "upsample2x B %d H %d W %d C %d", B, H, W, C);

    double *rdinp = cm_dzeros(n);
    ref_upsample2x_backward(rdinp, c.dout, B, H, W, C);
    if (fd) {
        double *g = cm_dzeros(n);
        fd_gradient(g, c.x, n, upsample_loss, &c, FD_STEP);
        double e = rel_err_dd(rdinp, g, n);
        CHECK(e <= TOL_FD, "reference upsample backward vs finite differences %.2e", e);
    }
    float *dinp = cm_fill(n, NAN);
    cpu_upsample2x_backward(&be, dinp, dout, B, H, W, C);
    double e = rel_err_fd(dinp, rdinp, n);
    CHECK(e <= TOL_FAST, "upsample2x_backward B %d H %d W %d C %d: %.2e", B, H, W, C, e);
}

static void test_upsample2x(void) {
    check_upsample(2, 2, 3, 3, 1, 9);
    check_upsample(2, 9, 7, 13, 0, 10);
    check_upsample(1, 16, 16, 40, 0, 11); /* parallel path */
    cm_free_all();
}

static void check_embedding(int M, int V, int D, uint64_t seed) {
    float *table = cm_uniform((long)V * D, -1, 1, &seed);
    int64_t *ids = cm_alloc((size_t)M * sizeof *ids);
    for (int m = 0; m < M; m++) ids[m] = (m * 7919 + (int64_t)seed) % V;
    ids[0] = V - 1; /* the last row */
    float *out = cm_fill((long)M * D, NAN);
    double *ref = cm_dzeros((long)M * D);
    cpu_embedding_forward(&be, out, ids, table, M, D);
    ref_embedding_forward(ref, ids, cm_double(table, (long)V * D), M, D);
    CHECK(max_abs_diff_fd(out, ref, (long)M * D) == 0, "embedding M %d V %d D %d", M, V, D);
}

static void test_embedding(void) {
    check_embedding(5, 11, 3, 12);
    check_embedding(2 * 77, 1000, 33, 13);
    check_embedding(77, 77, 768, 14); /* CLIP position embeddings, parallel path */
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_arith);
    RUN(test_add_broadcast);
    RUN(test_concat_split);
    RUN(test_upsample2x);
    RUN(test_embedding);
    return harness_done();
}
