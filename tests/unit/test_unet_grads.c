/* The trained UNet's backward to every parameter (unet_backward_params)
 * against central finite differences, on the fixtures' tiny-sd UNet
 * configuration with random weights (2 levels, cross-attention, every kind
 * of parameter: conv_in, time embedding, resnets, transformers, down- and
 * upsamplers, conv_shortcut, conv_norm_out, conv_out).
 *
 * The loss is L = sum(dout * unet(sample, t, text)) with a random dout, so
 * dL/dparams is the backward from dout. For every parameter tensor, the
 * directional derivative along a random direction v, <g, v>, must match
 * (L(p + e v) - L(p - e v)) / 2e (the forward in float32, L summed in
 * double on the host). Also: the gradients ACCUMULATE (a second backward
 * gives exactly twice the first), and gradient checkpointing gives the
 * same gradients bit for bit. Independent truth: the forward alone. */
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/init/weights_init.h"
#include "engine/models/unet.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_paramcheck.h"

#define B_SAMPLES 2
#define LATENT 8
#define TOKENS 5
#define ARENA_BYTES ((size_t)64 << 20)
/* Finite-difference step, a part of the tensor's rms (at least
 * FD_EPS_MIN): small enough for the convs' curvature (the O(e^2)
 * truncation), large enough for the float32 forward's rounding (divided by
 * e) on tensors of small weights. */
#define FD_EPS 1e-2
#define FD_EPS_MIN 3e-3
/* Allowed |fd - <g,v>|: a part of the directional derivative, plus a part
 * of |g|_2 |v|_2 / sqrt(n), the size <g,v> has for a random v (covers the
 * float32 forward's rounding divided by 2e, and the O(e^2) truncation). */
#define FD_REL 2e-2
#define FD_ABS 5e-2

typedef struct fixture {
    cnet_backend be;
    unet_model m;
    cnet_arena keep, scratch;
    float *sample, *text, *out, *dout; /* device */
    float ts[B_SAMPLES];
    float *dout_host;
    size_t n_out;
} fixture;

static int fixture_open(fixture *f, cnet_error *err) {
    char path[512];
    cnet_unet_config cfg;
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/tiny-sd/unet/config.json", harness_fixtures());
    int rc = cnet_backend_cpu_init(&f->be, err);
    if (!rc) rc = cnet_unet_config_load(&cfg, path, err);
    if (!rc) rc = unet_init(&f->m, &f->be, &cfg, err);
    if (!rc) rc = winit_random(&f->m.params, 7, "unet", err);
    if (!rc) rc = cnet_arena_init(&f->keep, &f->be, ARENA_BYTES, "keep", err);
    if (!rc) rc = cnet_arena_init(&f->scratch, &f->be, ARENA_BYTES, "scratch", err);
    if (rc) return rc;
    const size_t ns = (size_t)B_SAMPLES * LATENT * LATENT * cfg.in_channels;
    const size_t nt = (size_t)B_SAMPLES * TOKENS * cfg.cross_attention_dim[0];
    f->n_out = (size_t)B_SAMPLES * LATENT * LATENT * cfg.out_channels;
    float *host = malloc((ns + nt + f->n_out) * sizeof(float));
    f->dout_host = malloc(f->n_out * sizeof(float));
    f->sample = f->be.alloc(&f->be, ns * sizeof(float));
    f->text = f->be.alloc(&f->be, nt * sizeof(float));
    f->out = f->be.alloc(&f->be, f->n_out * sizeof(float));
    f->dout = f->be.alloc(&f->be, f->n_out * sizeof(float));
    if (!host || !f->dout_host || !f->sample || !f->text || !f->out || !f->dout) {
        free(host);
        return cnet_fail(err, CNET_ENOMEM, "test: out of memory");
    }
    philox_normal_fill(host, (long)(ns + nt + f->n_out), 11, 0);
    memcpy(f->dout_host, host + ns + nt, f->n_out * sizeof(float));
    f->be.upload(&f->be, f->sample, host, ns * sizeof(float));
    f->be.upload(&f->be, f->text, host + ns, nt * sizeof(float));
    f->be.upload(&f->be, f->dout, f->dout_host, f->n_out * sizeof(float));
    f->ts[0] = 17, f->ts[1] = 921;
    free(host);
    return 0;
}

static void fixture_close(fixture *f) {
    float *bufs[] = {f->sample, f->text, f->out, f->dout};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) f->be.free(&f->be, bufs[i]);
    free(f->dout_host);
    cnet_arena_free(&f->keep);
    cnet_arena_free(&f->scratch);
    unet_free(&f->m);
    cnet_backend_free(&f->be);
}

/* L = sum(dout * out) of a plain forward. */
static double loss(fixture *f, cnet_error *err) {
    if (unet_forward(&f->m, &f->scratch, f->out, f->sample, f->ts, f->text, NULL, NULL, NULL,
                     B_SAMPLES, LATENT, LATENT, TOKENS, NULL, NULL, err))
        return NAN;
    float *out = malloc(f->n_out * sizeof(float));
    f->be.download(&f->be, out, f->out, f->n_out * sizeof(float));
    double l = 0;
    for (size_t i = 0; i < f->n_out; i++) l += (double)out[i] * f->dout_host[i];
    free(out);
    return l;
}

/* Training forward + backward from dout, accumulating into g. */
static int backward(fixture *f, const cnet_params *g, int checkpoint, cnet_error *err) {
    unet_acts acts = {.checkpoint = checkpoint, .all_params = 1};
    cnet_arena_reset(&f->keep);
    int rc = unet_forward(&f->m, &f->scratch, f->out, f->sample, f->ts, f->text, NULL, NULL, NULL,
                          B_SAMPLES, LATENT, LATENT, TOKENS, &f->keep, &acts, err);
    return rc ? rc : unet_backward_params(&f->m, g, &f->scratch, f->dout, &acts, err);
}

static float *download(cnet_backend *be, const float *dev, size_t n) {
    float *h = malloc(n * sizeof(float));
    if (h) be->download(be, h, dev, n * sizeof(float));
    return h;
}

static double loss_of(void *ctx, double *terms_l2) {
    cnet_error err = {0};
    *terms_l2 = 0; /* no rounding floor (round_ulps 0) */
    return loss(ctx, &err);
}

/* Every tensor's directional derivative against finite differences. */
static void test_every_parameter_matches_finite_differences(void) {
    fixture f;
    cnet_error err = {0};
    cnet_params g;
    const paramcheck_bounds bounds = {FD_EPS, FD_EPS_MIN, FD_REL, FD_ABS, 0};
    CHECK(fixture_open(&f, &err) == 0, "%s", err.msg);
    CHECK(params_alloc_like(&g, &f.m.params, &err) == 0, "%s", err.msg);
    f.be.zero(&f.be, g.block, g.total * sizeof(float));
    CHECK(backward(&f, &g, 0, &err) == 0, "%s", err.msg);
    float *grad = download(&f.be, g.block, g.total);
    CHECK(grad, "out of memory");
    paramcheck_result r = paramcheck_every_tensor(&f.m.params, grad, 23, &bounds, loss_of, &f);
    printf("    %d tensors, worst |fd - <g,v>| / (|g||v|/sqrt(n)) %.3g\n", f.m.params.n, r.worst);
    free(grad);
    params_free(&g);
    fixture_close(&f);
    CHECK(r.bad == 0, "%d of the tensors' gradients disagree with finite differences", r.bad);
    CHECK(r.zero == 0, "%d tensors got no gradient", r.zero);
}

/* A second backward adds the same gradients (exactly 2x); checkpointing
 * gives the same gradients bit for bit. */
static void test_gradients_accumulate_and_checkpointing_matches(void) {
    fixture f;
    cnet_error err = {0};
    cnet_params g[2];
    CHECK(fixture_open(&f, &err) == 0, "%s", err.msg);
    for (int c = 0; c < 2; c++) {
        CHECK(params_alloc_like(&g[c], &f.m.params, &err) == 0, "%s", err.msg);
        f.be.zero(&f.be, g[c].block, g[c].total * sizeof(float));
        CHECK(backward(&f, &g[c], c, &err) == 0, "%s", err.msg);
    }
    const size_t n = g[0].total;
    float *once = download(&f.be, g[0].block, n), *ckpt = download(&f.be, g[1].block, n);
    CHECK(backward(&f, &g[0], 0, &err) == 0, "%s", err.msg);
    float *twice = download(&f.be, g[0].block, n);
    size_t not_double = 0, differ = 0;
    for (size_t i = 0; i < n; i++) {
        not_double += twice[i] != 2 * once[i];
        differ += memcmp(&once[i], &ckpt[i], sizeof(float)) != 0;
    }
    free(once), free(ckpt), free(twice);
    for (int c = 0; c < 2; c++) params_free(&g[c]);
    fixture_close(&f);
    CHECK(not_double == 0, "%zu of %zu gradients did not accumulate", not_double, n);
    CHECK(differ == 0, "%zu of %zu gradients differ with gradient checkpointing", differ, n);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_every_parameter_matches_finite_differences);
    RUN(test_gradients_accumulate_and_checkpointing_matches);
    return harness_done();
}
