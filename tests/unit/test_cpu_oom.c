/* Host memory running out in the CPU backend's scratch (kernels/cpu/scratch.c)
 * is an error the caller sees and the process survives, as a failed CUDA op
 * is (engine/core/backend.h, device failures):
 *
 * - the op: a convolution whose im2col / Winograd scratch cannot be
 *   allocated records the failure; status names it (CNET_EBACKEND, the
 *   bytes); later ops that need scratch are skipped without allocating;
 *   recover clears it and the same op then equals the double-precision
 *   reference (kernels/cpu/ref_linalg.c);
 * - the service: every allocation of a generation with the fixture pipeline
 *   made to fail once in turn (SQLite's out-of-memory countdown): each
 *   failure comes back as an error naming it, never an abort; after
 *   cnet_backend_recover the next generation equals, bit for bit, one on a
 *   backend that never failed; and at least one of the failures was a
 *   scratch allocation inside an op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/backend.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/ref_linalg.h"
#include "tests/lib/harness.h"

/* Allocations are counted from arming; the one numbered fail_at fails
 * (every one when fail_all). */
static long alloc_calls, fail_at = -1;
static int fail_all;
static void *(*real_alloc)(cnet_backend *, size_t);
static void *counting_alloc(cnet_backend *be, size_t bytes) {
    const long i = alloc_calls++;
    if (fail_all || i == fail_at) return NULL;
    return real_alloc(be, bytes);
}

static void arm(cnet_backend *be, long at, int all) {
    real_alloc = be->alloc;
    be->alloc = counting_alloc;
    alloc_calls = 0, fail_at = at, fail_all = all;
}

static void disarm(cnet_backend *be) {
    be->alloc = real_alloc;
    fail_at = -1, fail_all = 0;
}

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

static void test_conv_out_of_memory(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    const cnet_conv2d s = {2, 9, 7, 5, 6, 3, 3, 1, 1, 1, 1, 1};
    const long nin = (long)s.B * s.H * s.W * s.C_in, nw = (long)s.C_out * 9 * s.C_in;
    const long nout = (long)s.B * cnet_conv2d_out_h(&s) * cnet_conv2d_out_w(&s) * s.C_out;
    float *x = malloc(nin * 4), *w = malloc(nw * 4), *y = malloc(nout * 4);
    double *xd = malloc(nin * 8), *wd = malloc(nw * 8), *yd = malloc(nout * 8);
    unsigned seed = 7;
    for (long i = 0; i < nin; i++) xd[i] = x[i] = frand(&seed);
    for (long i = 0; i < nw; i++) wd[i] = w[i] = frand(&seed);

    arm(&be, -1, 1);
    cpu_conv2d_forward(&be, y, x, w, NULL, &s);
    EXPECT(alloc_calls == 1, "%ld allocations tried", alloc_calls);
    EXPECT(cnet_backend_status(&be, &err) == CNET_EBACKEND &&
               strstr(err.msg, "out of host memory") && strstr(err.msg, "bytes of scratch"),
           "status: '%s'", err.msg);
    const long tried = alloc_calls;
    cpu_conv2d_forward(&be, y, x, w, NULL, &s); /* refused until recover */
    EXPECT(alloc_calls == tried, "a scratch request after the failure allocated");
    disarm(&be);

    EXPECT(cnet_backend_recover(&be, &err) == 0, "recover: %s", err.msg);
    EXPECT(cnet_backend_status(&be, &err) == 0, "still failed: %s", err.msg);
    cpu_conv2d_forward(&be, y, x, w, NULL, &s);
    EXPECT(cnet_backend_status(&be, &err) == 0, "after recover: %s", err.msg);
    ref_conv2d_forward(yd, xd, wd, NULL, &s);
    double worst = 0;
    for (long i = 0; i < nout; i++) {
        const double d = y[i] > yd[i] ? y[i] - yd[i] : yd[i] - y[i];
        worst = d > worst ? d : worst;
    }
    EXPECT(worst < 1e-4, "conv after recover differs from the reference by %g", worst);
    free(x), free(w), free(y), free(xd), free(wd), free(yd);
    cnet_backend_free(&be);
}

/* The fixture pipeline with its ControlNet, on the CPU. */
typedef struct pipe_fixture {
    sd_base base;
    controlnet_model cn;
} pipe_fixture;

static int fixture_open(pipe_fixture *f, cnet_backend *be, cnet_error *err) {
    char dir[4096], cn[4200];
    snprintf(dir, sizeof dir, "%s/tiny-sd", harness_fixtures());
    snprintf(cn, sizeof cn, "%s/controlnet", dir);
    int rc = sd_base_open(&f->base, be, dir, err);
    if (rc) return rc;
    if ((rc = controlnet_open(&f->cn, be, cn, err))) sd_base_free(&f->base);
    return rc;
}

static void fixture_close(pipe_fixture *f) {
    controlnet_free(&f->cn);
    sd_base_free(&f->base);
}

enum { GEN_SIDE = 32 };

static int generate(pipe_fixture *f, float *img, const float *control, cnet_error *err) {
    cnet_sched_config sc;
    int rc = sd_base_scheduler(&f->base, CNET_SCHED_DDIM, &sc, err);
    if (rc) return rc;
    pipe_request r;
    memset(&r, 0, sizeof r);
    r.prompt = "a red circle", r.negative_prompt = "blurry";
    r.steps = 1, r.guidance = 5.0f, r.seed = 3, r.width = GEN_SIDE, r.height = GEN_SIDE;
    r.num_images = 1, r.n_controlnets = 1;
    r.controlnets[0] = (pipe_controlnet){
        .model = &f->cn, .image = control, .n_images = 1, .scale = 1, .start = 0, .end = 1};
    pipe_models m = sd_base_models(&f->base);
    rc = pipeline_generate(&m, &sc, &r, img, NULL, err);
    cnet_sched_config_free(&sc);
    return rc;
}

/* Upper bound on the allocations of one generation on a fresh backend. */
enum { MAX_GEN_ALLOCS = 10000 };

static void test_generation_survives_every_failure(void) {
    const long n = (long)GEN_SIDE * GEN_SIDE * 3;
    float *control = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    unsigned seed = 5;
    for (long i = 0; i < n; i++) control[i] = frand(&seed) > 0 ? 1.0f : 0.0f;
    cnet_backend be;
    cnet_error err = {0};
    pipe_fixture f;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0 && fixture_open(&f, &be, &err) == 0, "%s", err.msg);
    CHECK(generate(&f, want, control, &err) == 0, "clean generation: %s", err.msg);
    fixture_close(&f);
    cnet_backend_free(&be);

    int scratch_failures = 0, other_failures = 0;
    for (long at = 0; at < MAX_GEN_ALLOCS; at++) {
        /* a fresh backend each time: its scratch grows from nothing */
        CHECK(cnet_backend_cpu_init(&be, &err) == 0 && fixture_open(&f, &be, &err) == 0, "%s",
              err.msg);
        arm(&be, at, 0);
        err.msg[0] = '\0';
        const int rc = generate(&f, got, control, &err);
        const long made = alloc_calls;
        disarm(&be);
        if (rc == 0 && made <= at) { /* every allocation has been made to fail once */
            EXPECT(memcmp(got, want, n * 4) == 0, "an unfailed generation differs");
            fixture_close(&f);
            cnet_backend_free(&be);
            break;
        }
        EXPECT(rc != 0 && err.msg[0], "allocation %ld failed, the generation returned %d", at, rc);
        if (rc == CNET_EBACKEND && strstr(err.msg, "bytes of scratch"))
            scratch_failures++;
        else
            other_failures++;
        EXPECT(cnet_backend_recover(&be, &err) == 0, "recover after allocation %ld: %s", at,
               err.msg);
        memset(got, 0, n * 4);
        EXPECT(generate(&f, got, control, &err) == 0, "after allocation %ld: %s", at, err.msg);
        EXPECT(memcmp(got, want, n * 4) == 0,
               "the generation after allocation %ld failed differs from a clean one", at);
        fixture_close(&f);
        cnet_backend_free(&be);
        if (harness_current_failed) break;
    }
    printf("    %d scratch and %d other allocation failures survived\n", scratch_failures,
           other_failures);
    EXPECT(scratch_failures > 0, "no failure reached the ops' scratch");
    free(control), free(want), free(got);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_conv_out_of_memory);
    RUN(test_generation_survives_every_failure);
    return harness_done();
}
