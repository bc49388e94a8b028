/* Activations of the CPU backend (SiLU, erf GELU, GEGLU, quick_gelu): fast
 * vs double reference (rel <= 1e-5) on sizes below and above the parallel
 * threshold, inputs up to |x| = 12 (saturated tails), the reference backward
 * vs finite differences (rel <= 1e-6) and the fast backward vs the reference
 * (rel <= 1e-5, dinp pre-filled with NaN: it must be overwritten). */
#include <math.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_nn.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_casemem.h"
#include "tests/lib/lib_gradcheck.h"
#include "tests/lib/lib_numeric.h"

#define TOL_FAST 1e-5
#define TOL_FD 1e-6

enum { ACT_SILU, ACT_GELU, ACT_GEGLU, ACT_QUICK_GELU };

typedef struct act_case {
    int kind, M, F; /* elementwise ops: n = M * F inputs; GEGLU: [M, 2F] inputs */
    double *inp, *dout, *out;
} act_case;

static long act_in(const act_case *c) { return (long)c->M * c->F * (c->kind == ACT_GEGLU ? 2 : 1); }
static long act_out(const act_case *c) { return (long)c->M * c->F; }

static void ref_forward(const act_case *c, double *out, const double *inp) {
    switch (c->kind) {
    case ACT_SILU:
        ref_silu_forward(out, inp, act_out(c));
        break;
    case ACT_GELU:
        ref_gelu_forward(out, inp, act_out(c));
        break;
    case ACT_GEGLU:
        ref_geglu_forward(out, inp, c->M, c->F);
        break;
    default:
        ref_quick_gelu_forward(out, inp, act_out(c));
        break;
    }
}

static double act_loss(void *p) {
    act_case *c = p;
    ref_forward(c, c->out, c->inp);
    return dot_d(c->dout, c->out, act_out(c));
}

static void check_act(int kind, int M, int F, float range, int fd, uint64_t seed) {
    cnet_backend be = {0};
    act_case c = {kind, M, F, NULL, NULL, NULL};
    const long nin = act_in(&c), nout = act_out(&c);
    float *inp = cm_uniform(nin, -range, range, &seed), *dout = cm_uniform(nout, -1, 1, &seed);
    c.inp = cm_double(inp, nin), c.dout = cm_double(dout, nout), c.out = cm_dzeros(nout);

    float *out = cm_fill(nout, NAN);
    switch (kind) {
    case ACT_SILU:
        cpu_silu_forward(&be, out, inp, nout);
        break;
    case ACT_GELU:
        cpu_gelu_forward(&be, out, inp, nout);
        break;
    case ACT_GEGLU:
        cpu_geglu_forward(&be, out, inp, M, F);
        break;
    default:
        cpu_quick_gelu_forward(&be, out, inp, nout);
        break;
    }
    double *rout = cm_dzeros(nout);
    ref_forward(&c, rout, c.inp);
    double e = rel_err_fd(out, rout, nout);
    CHECK(e <= TOL_FAST, "kind %d M %d F %d: forward vs reference %.2e", kind, M, F, e);
    if (kind == ACT_QUICK_GELU) return; /* forward only */

    double *rdinp = cm_dzeros(nin);
    switch (kind) {
    case ACT_SILU:
        ref_silu_backward(rdinp, c.dout, c.inp, nout);
        break;
    case ACT_GELU:
        ref_gelu_backward(rdinp, c.dout, c.inp, nout);
        break;
    default:
        ref_geglu_backward(rdinp, c.dout, c.inp, M, F);
        break;
    }
    if (fd) {
        double *g = cm_dzeros(nin);
        fd_gradient(g, c.inp, nin, act_loss, &c, FD_STEP);
        e = rel_err_dd(rdinp, g, nin);
        CHECK(e <= TOL_FD, "kind %d: reference backward vs finite differences %.2e", kind, e);
    }
    float *dinp = cm_fill(nin, NAN);
    switch (kind) {
    case ACT_SILU:
        cpu_silu_backward(&be, dinp, dout, inp, nout);
        break;
    case ACT_GELU:
        cpu_gelu_backward(&be, dinp, dout, inp, nout);
        break;
    default:
        cpu_geglu_backward(&be, dinp, dout, inp, M, F);
        break;
    }
    e = rel_err_fd(dinp, rdinp, nin);
    CHECK(e <= TOL_FAST, "kind %d M %d F %d: backward vs reference %.2e", kind, M, F, e);
}

static void check_all_sizes(int kind) {
    check_act(kind, 3, 7, 4.0f, 1, 11 + kind); /* finite differences */
    check_act(kind, 1, 1, 4.0f, 1, 21 + kind);
    check_act(kind, 17, 61, 12.0f, 0, 31 + kind);  /* saturated tails */
    check_act(kind, 129, 333, 6.0f, 0, 41 + kind); /* above the parallel threshold */
    cm_free_all();
}

static void test_silu(void) { check_all_sizes(ACT_SILU); }
static void test_gelu(void) { check_all_sizes(ACT_GELU); }
static void test_geglu(void) { check_all_sizes(ACT_GEGLU); }
static void test_quick_gelu(void) { check_all_sizes(ACT_QUICK_GELU); }

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_silu);
    RUN(test_gelu);
    RUN(test_geglu);
    RUN(test_quick_gelu);
    return harness_done();
}
