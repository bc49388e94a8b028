/* The AutoencoderKL backward (vae_encoder_backward, vae_decoder_backward)
 * to every parameter against central finite differences, on the fixtures'
 * tiny-sd VAE (2 levels, mid attention, conv_shortcut, quant_conv and
 * post_quant_conv: every kind of parameter the VAE has).
 *
 * The loss is L = sum(dm * encode(x)) + sum(dx * decode(z)) with random dm,
 * dx, x and z, so dL/dparams is the two backwards from dm and dx. For every
 * parameter tensor, the directional derivative along a random direction v,
 * <g, v>, must match (L(p + e v) - L(p - e v)) / 2e (the plain forward in
 * float32, L summed in double on the host); so must the decoder's gradient
 * to z along a random direction. Also: the gradients ACCUMULATE (a second
 * backward gives twice the first). Independent truth: the forward
 * alone (tests/tools/vae_train_ref.py checks the same backward against
 * torch's autograd). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/models/vae.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_paramcheck.h"

#define B_SAMPLES 2
#define IMAGE 16
#define ARENA_BYTES ((size_t)64 << 20)
/* Finite-difference step and bounds (tests/lib/lib_paramcheck.h) as
 * test_unet_grads.c: a part of the tensor's rms (at least FD_EPS_MIN);
 * allowed |fd - <g,v>| is FD_REL of <g,v> plus FD_ABS of |g||v|/sqrt(n)
 * (float32 forward rounding over 2e and the O(e^2) truncation), plus the
 * loss's rounding floor (FD_ROUND_ULPS) for the attention's to_k bias,
 * whose gradient is exactly zero (softmax does not change when a query's
 * scores all move together). */
#define FD_EPS 1e-2
#define FD_EPS_MIN 3e-3
#define FD_REL 2e-2
#define FD_ABS 5e-2
/* Allowed |twice - 2 once| of a second backward, in float32 ulps of the
 * tensor's largest gradient. */
#define ACCUMULATE_ULPS 16
/* The float32 forward's rounding of L, in ulps of |terms of L|_2 (the
 * terms' errors are independent, so they add in quadrature). */
#define FD_ROUND_ULPS 16

typedef struct fixture {
    cnet_backend be;
    vae_model m;
    cnet_arena keep, scratch;
    float *x, *z, *mom, *img, *dm, *dx, *dz; /* device */
    float *dm_host, *dx_host, *z_host;
    size_t n_x, n_z, n_m;
    double terms_l2; /* |terms of the last loss|_2, for its rounding */
    int f;
} fixture;

static int fixture_open(fixture *f, cnet_error *err) {
    char path[512];
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/tiny-sd/vae", harness_fixtures());
    int rc = cnet_backend_cpu_init(&f->be, err);
    if (!rc) rc = vae_open(&f->m, &f->be, path, err);
    if (!rc) rc = params_own(&f->m.params, err); /* the test writes the weights */
    if (!rc) rc = cnet_arena_init(&f->keep, &f->be, ARENA_BYTES, "keep", err);
    if (!rc) rc = cnet_arena_init(&f->scratch, &f->be, ARENA_BYTES, "scratch", err);
    if (rc) return rc;
    const cnet_vae_config *L = &f->m.cfg;
    f->f = vae_factor(&f->m);
    const int h = IMAGE / f->f;
    f->n_x = (size_t)B_SAMPLES * IMAGE * IMAGE * L->in_channels;
    f->n_z = (size_t)B_SAMPLES * h * h * L->latent_channels;
    f->n_m = 2 * f->n_z;
    const size_t total = 2 * f->n_x + f->n_z + f->n_m;
    float *host = malloc(total * sizeof(float));
    f->dm_host = malloc(f->n_m * sizeof(float));
    f->dx_host = malloc(f->n_x * sizeof(float));
    f->z_host = malloc(f->n_z * sizeof(float));
    float **bufs[] = {&f->x, &f->img, &f->dx, &f->z, &f->dz, &f->mom, &f->dm};
    const size_t sizes[] = {f->n_x, f->n_x, f->n_x, f->n_z, f->n_z, f->n_m, f->n_m};
    for (int i = 0; i < 7; i++) *bufs[i] = f->be.alloc(&f->be, sizes[i] * sizeof(float));
    if (!host || !f->dm_host || !f->dx_host || !f->z_host || !f->x || !f->img || !f->dx || !f->z ||
        !f->dz || !f->mom || !f->dm) {
        free(host);
        return cnet_fail(err, CNET_ENOMEM, "test: out of memory");
    }
    philox_normal_fill(host, (long)total, 11, 0);
    memcpy(f->dx_host, host + f->n_x, f->n_x * sizeof(float));
    memcpy(f->z_host, host + 2 * f->n_x, f->n_z * sizeof(float));
    memcpy(f->dm_host, host + 2 * f->n_x + f->n_z, f->n_m * sizeof(float));
    f->be.upload(&f->be, f->x, host, f->n_x * sizeof(float));
    f->be.upload(&f->be, f->dx, f->dx_host, f->n_x * sizeof(float));
    f->be.upload(&f->be, f->z, f->z_host, f->n_z * sizeof(float));
    f->be.upload(&f->be, f->dm, f->dm_host, f->n_m * sizeof(float));
    free(host);
    return 0;
}

static void fixture_close(fixture *f) {
    float *bufs[] = {f->x, f->img, f->dx, f->z, f->dz, f->mom, f->dm};
    for (int i = 0; i < 7; i++)
        if (bufs[i]) f->be.free(&f->be, bufs[i]);
    free(f->dm_host), free(f->dx_host), free(f->z_host);
    cnet_arena_free(&f->keep);
    cnet_arena_free(&f->scratch);
    vae_free(&f->m);
    cnet_backend_free(&f->be);
}

/* sum of dev[i] * w[i]; *sq += the sum of their squares. */
static double dot_host(cnet_backend *be, const float *dev, const float *w, size_t n, double *sq) {
    float *h = malloc(n * sizeof(float));
    double s = 0;
    be->download(be, h, dev, n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        const double t = (double)h[i] * w[i];
        s += t, *sq += t * t;
    }
    free(h);
    return s;
}

/* L = <dm, encode(x)> + <dx, decode(z)> of the plain forwards. */
static double loss(fixture *f, cnet_error *err) {
    const int h = IMAGE / f->f;
    if (vae_encode(&f->m, &f->scratch, f->mom, f->x, B_SAMPLES, IMAGE, IMAGE, err) ||
        vae_decode(&f->m, &f->scratch, f->img, f->z, B_SAMPLES, h, h, err))
        return NAN;
    double sq = 0;
    const double l = dot_host(&f->be, f->mom, f->dm_host, f->n_m, &sq) +
                     dot_host(&f->be, f->img, f->dx_host, f->n_x, &sq);
    f->terms_l2 = sqrt(sq);
    return l;
}

/* Training forwards + backwards from dm and dx, accumulating into g. */
static int backward(fixture *f, const cnet_params *g, cnet_error *err) {
    const int h = IMAGE / f->f;
    vae_half_acts enc, dec;
    cnet_arena_reset(&f->keep);
    int rc = vae_encode_train(&f->m, &f->scratch, f->mom, f->x, B_SAMPLES, IMAGE, IMAGE, &f->keep,
                              &enc, err);
    if (!rc)
        rc = vae_decode_train(&f->m, &f->scratch, f->img, f->z, B_SAMPLES, h, h, &f->keep, &dec,
                              err);
    if (!rc)
        rc = vae_encoder_backward(&f->m, g, &f->scratch, f->dm, &enc, B_SAMPLES, IMAGE, IMAGE, err);
    if (!rc)
        rc = vae_decoder_backward(&f->m, g, &f->scratch, f->dz, f->dx, &dec, B_SAMPLES, h, h, err);
    return rc;
}

/* The fixture and the gradients of one backward in g (allocated). */
static int open_with_gradients(fixture *f, cnet_params *g, cnet_error *err) {
    int rc = fixture_open(f, err);
    if (!rc) rc = params_alloc_like(g, &f->m.params, err);
    if (rc) return rc;
    f->be.zero(&f->be, g->block, g->total * sizeof(float));
    return backward(f, g, err);
}

static float *download(cnet_backend *be, const float *dev, size_t n) {
    float *h = malloc(n * sizeof(float));
    if (h) be->download(be, h, dev, n * sizeof(float));
    return h;
}

static const paramcheck_bounds bounds = {FD_EPS, FD_EPS_MIN, FD_REL, FD_ABS, FD_ROUND_ULPS};

static double loss_of(void *ctx, double *terms_l2) {
    fixture *f = ctx;
    cnet_error err = {0};
    const double l = loss(f, &err);
    *terms_l2 = f->terms_l2;
    return l;
}

/* Every tensor's directional derivative, and z's, against finite
 * differences. */
static void test_every_parameter_matches_finite_differences(void) {
    fixture f;
    cnet_error err = {0};
    cnet_params g;
    CHECK(open_with_gradients(&f, &g, &err) == 0, "%s", err.msg);
    float *grad = download(&f.be, g.block, g.total);
    float *dz = download(&f.be, f.dz, f.n_z);
    float *vz = malloc(f.n_z * sizeof(float)), *moved = malloc(f.n_z * sizeof(float));
    CHECK(grad && dz && vz && moved, "out of memory");
    paramcheck_result r = paramcheck_every_tensor(&f.m.params, grad, 23, &bounds, loss_of, &f);
    { /* the latent's gradient, which the encoder's backward starts from */
        double an = 0, gg = 0, vv = 0, l[2], terms = 0;
        philox_normal_fill(vz, (long)f.n_z, 29, 0);
        for (size_t i = 0; i < f.n_z; i++)
            an += (double)dz[i] * vz[i], gg += (double)dz[i] * dz[i], vv += (double)vz[i] * vz[i];
        for (int s = 0; s < 2; s++) {
            for (size_t i = 0; i < f.n_z; i++)
                moved[i] = (float)(f.z_host[i] + (s ? -FD_EPS : FD_EPS) * vz[i]);
            f.be.upload(&f.be, f.z, moved, f.n_z * sizeof(float));
            l[s] = loss_of(&f, &terms);
        }
        f.be.upload(&f.be, f.z, f.z_host, f.n_z * sizeof(float));
        paramcheck_agrees("z", an, (l[0] - l[1]) / (2 * FD_EPS), gg, vv, f.n_z, FD_EPS, terms,
                          &bounds, &r);
    }
    printf("    %d tensors and z, worst |fd - <g,v>| / (|g||v|/sqrt(n)) %.3g\n", f.m.params.n,
           r.worst);
    free(grad), free(dz), free(vz), free(moved);
    params_free(&g);
    fixture_close(&f);
    CHECK(r.bad == 0, "%d of the gradients disagree with finite differences", r.bad);
    CHECK(r.zero == 0, "%d tensors got no gradient", r.zero);
}

/* A second backward adds the same gradients: 2x, up to the rounding of
 * the conv weight gradient's GEMM, which adds its K blocks into the
 * accumulator one by one (16x16 images are past one block). */
static void test_gradients_accumulate(void) {
    fixture f;
    cnet_error err = {0};
    cnet_params g;
    CHECK(open_with_gradients(&f, &g, &err) == 0, "%s", err.msg);
    const size_t n = g.total;
    float *once = download(&f.be, g.block, n);
    CHECK(backward(&f, &g, &err) == 0, "%s", err.msg);
    float *twice = download(&f.be, g.block, n);
    size_t not_double = 0;
    for (int k = 0; k < f.m.params.n; k++) {
        const cnet_param *q = &f.m.params.items[k];
        float big = 0;
        for (size_t i = 0; i < q->numel; i++) big = fmaxf(big, fabsf(once[q->offset + i]));
        for (size_t i = 0; i < q->numel; i++)
            not_double += !(fabsf(twice[q->offset + i] - 2 * once[q->offset + i]) <=
                            ACCUMULATE_ULPS * FLT_EPSILON * 2 * big);
    }
    free(once), free(twice);
    params_free(&g);
    fixture_close(&f);
    CHECK(not_double == 0, "%zu of %zu gradients did not accumulate", not_double, n);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_every_parameter_matches_finite_differences);
    RUN(test_gradients_accumulate);
    return harness_done();
}
