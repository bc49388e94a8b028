/* Fused attention of the CPU backend against the double reference (which
 * materialises the whole score matrix): out and lse (rel <= 1e-5) for
 * self- and cross-attention shapes, causal and not, Nq != Nk, several heads,
 * sizes above and not multiples of the kernel's query/key blocks; the
 * reference backward vs finite differences (rel <= 1e-6); the fast backward
 * vs the reference (rel <= 1e-5) with dq/dk/dv pre-filled with NaN (they
 * must be overwritten) and with some of them NULL. */
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

typedef struct attn_case {
    int B, Nq, Nk, heads, D, causal;
    double scale;
    double *q, *k, *v, *dout, *out;
} attn_case;

static double attn_loss(void *p) {
    attn_case *c = p;
    ref_attention_forward(c->out, NULL, c->q, c->k, c->v, c->B, c->Nq, c->Nk, c->heads, c->D,
                          c->scale, c->causal);
    return dot_d(c->dout, c->out, (size_t)c->B * c->Nq * c->heads * c->D);
}

static void check_attention(int B, int Nq, int Nk, int heads, int D, int causal, int fd,
                            uint64_t seed) {
    cnet_backend be = {0};
    const long nq = (long)B * Nq * heads * D, nk = (long)B * Nk * heads * D;
    const long nlse = (long)B * heads * Nq;
    const float scale = 1.0f / sqrtf((float)D);
    float *q = cm_uniform(nq, -2, 2, &seed), *k = cm_uniform(nk, -2, 2, &seed);
    float *v = cm_uniform(nk, -1, 1, &seed), *dout = cm_uniform(nq, -1, 1, &seed);
    attn_case c = {B,
                   Nq,
                   Nk,
                   heads,
                   D,
                   causal,
                   scale,
                   cm_double(q, nq),
                   cm_double(k, nk),
                   cm_double(v, nk),
                   cm_double(dout, nq),
                   cm_dzeros(nq)};

    float *out = cm_fill(nq, NAN), *lse = cm_fill(nlse, NAN);
    double *rout = cm_dzeros(nq), *rlse = cm_dzeros(nlse);
    cpu_attention_forward(&be, out, lse, q, k, v, B, Nq, Nk, heads, D, scale, causal);
    ref_attention_forward(rout, rlse, c.q, c.k, c.v, B, Nq, Nk, heads, D, scale, causal);
    double e_out = rel_err_fd(out, rout, nq), e_lse = rel_err_fd(lse, rlse, nlse);
    CHECK(e_out <= TOL_FAST && e_lse <= TOL_FAST,
          "B %d Nq %d Nk %d heads %d D %d causal %d: forward out %.2e lse %.2e", B, Nq, Nk, heads,
          D, causal, e_out, e_lse);
    float *out2 = cm_fill(nq, NAN);
    cpu_attention_forward(&be, out2, NULL, q, k, v, B, Nq, Nk, heads, D, scale, causal);
    e_out = rel_err_fd(out2, rout, nq);
    CHECK(e_out <= TOL_FAST, "forward without lse: %.2e", e_out);

    double *rdq = cm_dzeros(nq), *rdk = cm_dzeros(nk), *rdv = cm_dzeros(nk);
    ref_attention_backward(rdq, rdk, rdv, c.dout, c.q, c.k, c.v, rout, rlse, B, Nq, Nk, heads, D,
                           scale, causal);
    if (fd) {
        double *g = cm_dzeros(nq > nk ? nq : nk);
        fd_gradient(g, c.q, nq, attn_loss, &c, FD_STEP);
        double e = rel_err_dd(rdq, g, nq);
        CHECK(e <= TOL_FD, "reference dq vs finite differences: %.2e", e);
        fd_gradient(g, c.k, nk, attn_loss, &c, FD_STEP);
        e = rel_err_dd(rdk, g, nk);
        CHECK(e <= TOL_FD, "reference dk vs finite differences: %.2e", e);
        fd_gradient(g, c.v, nk, attn_loss, &c, FD_STEP);
        e = rel_err_dd(rdv, g, nk);
        CHECK(e <= TOL_FD, "reference dv vs finite differences: %.2e", e);
    }

    float *dq = cm_fill(nq, NAN), *dk = cm_fill(nk, NAN), *dv = cm_fill(nk, NAN);
    cpu_attention_backward(&be, dq, dk, dv, dout, q, k, v, out, lse, B, Nq, Nk, heads, D, scale,
                           causal);
    double e_dq = rel_err_fd(dq, rdq, nq), e_dk = rel_err_fd(dk, rdk, nk);
    double e_dv = rel_err_fd(dv, rdv, nk);
    CHECK(e_dq <= TOL_FAST && e_dk <= TOL_FAST && e_dv <= TOL_FAST,
          "B %d Nq %d Nk %d heads %d D %d causal %d: backward dq %.2e dk %.2e dv %.2e", B, Nq, Nk,
          heads, D, causal, e_dq, e_dk, e_dv);

    /* subsets of the gradients */
    float *dk2 = cm_fill(nk, NAN), *dv2 = cm_fill(nk, NAN), *dq2 = cm_fill(nq, NAN);
    cpu_attention_backward(&be, NULL, dk2, NULL, dout, q, k, v, out, lse, B, Nq, Nk, heads, D,
                           scale, causal);
    cpu_attention_backward(&be, dq2, NULL, dv2, dout, q, k, v, out, lse, B, Nq, Nk, heads, D, scale,
                           causal);
    cpu_scratch_free(&be);
    e_dq = rel_err_fd(dq2, rdq, nq), e_dk = rel_err_fd(dk2, rdk, nk),
    e_dv = rel_err_fd(dv2, rdv, nk);
    CHECK(e_dq <= TOL_FAST && e_dk <= TOL_FAST && e_dv <= TOL_FAST,
          "backward with NULL grads: dq %.2e dk %.2e dv %.2e", e_dq, e_dk, e_dv);
}

static void test_attention_small_fd(void) {
    check_attention(2, 3, 5, 2, 3, 0, 1, 1); /* cross-attention, Nq != Nk */
    check_attention(1, 6, 6, 2, 2, 1, 1, 2); /* causal */
    cm_free_all();
}

static void test_attention_cross(void) {
    check_attention(2, 150, 77, 3, 40, 0, 0, 3); /* SD cross-attention: 77 text tokens */
    check_attention(1, 70, 300, 2, 16, 0, 0, 4); /* several key blocks, last one partial */
    cm_free_all();
}

static void test_attention_self(void) {
    check_attention(2, 200, 200, 2, 8, 0, 0, 5);
    check_attention(1, 129, 129, 1, 80, 0, 0, 6); /* D = 80 as at SD's 32x32 level */
    cm_free_all();
}

static void test_attention_causal(void) {
    check_attention(2, 200, 200, 3, 8, 1, 0, 7); /* blocks straddle the diagonal */
    check_attention(3, 77, 77, 4, 16, 1, 0, 8);  /* CLIP's text encoder */
    check_attention(1, 3, 3, 1, 5, 1, 0, 9);     /* row 0 sees a single key */
    cm_free_all();
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_attention_small_fd);
    RUN(test_attention_cross);
    RUN(test_attention_self);
    RUN(test_attention_causal);
    return harness_done();
}
