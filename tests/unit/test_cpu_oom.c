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
 *   scratch allocation inside an op;
 * - the loops stop at the failure: a scratch failure in step 1 of a 3-step
 *   generation returns after that step (no later step, no VAE: counted in
 *   convolutions and the observer's step callbacks), and a training step
 *   whose backward failed leaves the ControlNet's weights and AdamW's state
 *   bit-unchanged;
 * - a zero-byte scratch request on a slot never grown is not a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/backend.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "kernels/cpu/cpu_ops.h"
#include "engine/init/model_init.h"
#include "engine/train/train_step.h"
#include "kernels/cpu/ref_linalg.h"
#include "kernels/cpu/scratch.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_pipe.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_trainbatch.h"

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

enum { GEN_SIDE = 32 };

static int generate_observed(test_pipe *f, int steps, float *img, const float *control,
                             const pipe_observer *obs, cnet_error *err) {
    cnet_sched_config sc;
    int rc = sd_base_scheduler(&f->base, CNET_SCHED_DDIM, &sc, err);
    if (rc) return rc;
    pipe_request r;
    memset(&r, 0, sizeof r);
    r.prompt = "a red circle", r.negative_prompt = "blurry";
    r.steps = steps, r.guidance = 5.0f, r.seed = 3, r.width = GEN_SIDE, r.height = GEN_SIDE;
    r.num_images = 1, r.n_controlnets = 1;
    r.controlnets[0] = (pipe_controlnet){
        .model = &f->cn, .image = control, .n_images = 1, .scale = 1, .start = 0, .end = 1};
    pipe_models m = sd_base_models(&f->base);
    rc = pipeline_generate(&m, &sc, &r, img, obs, err);
    cnet_sched_config_free(&sc);
    return rc;
}

static int generate(test_pipe *f, float *img, const float *control, cnet_error *err) {
    return generate_observed(f, 1, img, control, NULL, err);
}

/* A random black-and-white control image, GEN_SIDE square, HWC (malloc'd). */
static float *random_control(void) {
    const long n = (long)GEN_SIDE * GEN_SIDE * 3;
    float *control = malloc(n * sizeof(float));
    unsigned seed = 5;
    for (long i = 0; control && i < n; i++) control[i] = frand(&seed) > 0 ? 1.0f : 0.0f;
    return control;
}

/* A fresh CPU backend with the fixture pipeline on it. */
static int open_fixture(cnet_backend *be, test_pipe *f, cnet_error *err) {
    int rc = cnet_backend_cpu_init(be, err);
    if (!rc && (rc = test_pipe_open(f, harness_fixtures(), be, err))) cnet_backend_free(be);
    return rc;
}

/* Upper bound on the allocations of one generation on a fresh backend. */
enum { MAX_GEN_ALLOCS = 10000 };

static void test_generation_survives_every_failure(void) {
    const long n = (long)GEN_SIDE * GEN_SIDE * 3;
    float *control = random_control(), *want = malloc(n * 4), *got = malloc(n * 4);
    cnet_backend be;
    cnet_error err = {0};
    test_pipe f;
    CHECK(open_fixture(&be, &f, &err) == 0, "%s", err.msg);
    CHECK(generate(&f, want, control, &err) == 0, "clean generation: %s", err.msg);
    test_pipe_close(&f);
    cnet_backend_free(&be);

    int scratch_failures = 0, other_failures = 0;
    for (long at = 0; at < MAX_GEN_ALLOCS; at++) {
        /* a fresh backend each time: its scratch grows from nothing */
        CHECK(open_fixture(&be, &f, &err) == 0, "%s", err.msg);
        arm(&be, at, 0);
        err.msg[0] = '\0';
        const int rc = generate(&f, got, control, &err);
        const long made = alloc_calls;
        disarm(&be);
        if (rc == 0 && made <= at) { /* every allocation has been made to fail once */
            EXPECT(memcmp(got, want, n * 4) == 0, "an unfailed generation differs");
            test_pipe_close(&f);
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
        test_pipe_close(&f);
        cnet_backend_free(&be);
        if (harness_current_failed) break;
    }
    printf("    %d scratch and %d other allocation failures survived\n", scratch_failures,
           other_failures);
    EXPECT(scratch_failures > 0, "no failure reached the ops' scratch");
    free(control), free(want), free(got);
}

static void test_zero_byte_scratch(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    EXPECT(cpu_scratch(&be, 1, 0) != NULL, "a zero-byte request on a fresh slot got NULL");
    EXPECT(cnet_backend_status(&be, &err) == 0, "a zero-byte request failed: %s", err.msg);
    cnet_backend_free(&be);
}

/* Convolutions run, counted through the backend table. */
static long convs_run;
static void (*real_conv)(cnet_backend *, float *, const float *, const float *, const float *,
                         const cnet_conv2d *);
static void counting_conv(cnet_backend *be, float *out, const float *inp, const float *weight,
                          const float *bias, const cnet_conv2d *shape) {
    convs_run++;
    real_conv(be, out, inp, weight, bias, shape);
}

/* The observer of a generation that fails in its second step: it counts the
 * steps reported and the convolutions of the first one; after the first it
 * drops the backend's scratch and makes every allocation fail, so the next
 * step's first scratch growth fails. */
typedef struct fail_in_step {
    cnet_backend *be;
    int steps_seen;
    long convs_at_timesteps, convs_per_step;
} fail_in_step;

static void note_timesteps(void *user, const float *timesteps, int n) {
    (void)timesteps, (void)n;
    ((fail_in_step *)user)->convs_at_timesteps = convs_run;
}

static int fail_after_first_step(void *user, int i, int n, const float *noise_pred, int rows,
                                 const float *latents, int N, int h, int w, int C) {
    (void)n, (void)noise_pred, (void)rows, (void)latents, (void)N, (void)h, (void)w, (void)C;
    fail_in_step *f = user;
    f->steps_seen++;
    if (i == 0) {
        f->convs_per_step = convs_run - f->convs_at_timesteps;
        convs_run = 0;
        cpu_scratch_free(f->be); /* regrown from nothing on the next request */
        arm(f->be, -1, 1);
    }
    return 0;
}

static void test_generation_stops_at_the_failed_step(void) {
    const long n = (long)GEN_SIDE * GEN_SIDE * 3;
    float *control = random_control(), *img = malloc(n * 4);
    cnet_backend be;
    cnet_error err = {0};
    test_pipe f;
    CHECK(open_fixture(&be, &f, &err) == 0, "%s", err.msg);
    real_conv = be.conv2d_forward;
    be.conv2d_forward = counting_conv;
    convs_run = 0;
    fail_in_step obs_state = {.be = &be};
    const pipe_observer obs = {
        .user = &obs_state, .on_timesteps = note_timesteps, .on_step = fail_after_first_step};
    const int rc = generate_observed(&f, 3, img, control, &obs, &err);
    disarm(&be);
    EXPECT(rc == CNET_EBACKEND && strstr(err.msg, "bytes of scratch"), "returned %d: '%s'", rc,
           err.msg);
    EXPECT(obs_state.steps_seen == 1, "%d steps reported, want 1 (the one before the failure)",
           obs_state.steps_seen);
    EXPECT(obs_state.convs_per_step > 0 && convs_run == obs_state.convs_per_step,
           "%ld convolutions after the failure, want the failed step's %ld only", convs_run,
           obs_state.convs_per_step);
    be.conv2d_forward = real_conv;
    EXPECT(cnet_backend_recover(&be, &err) == 0, "recover: %s", err.msg);
    EXPECT(generate(&f, img, control, &err) == 0, "after recover: %s", err.msg);
    test_pipe_close(&f);
    cnet_backend_free(&be);
    free(control), free(img);
}

/* Every byte of the ControlNet's weights and AdamW's (float32) moments. */
static unsigned char *train_snapshot(const train_step *t, size_t *bytes) {
    cnet_backend *be = t->cn->params.be;
    const size_t np = t->cn->params.total * sizeof(float);
    const size_t nm = (t->adam.hi - t->adam.lo) * sizeof(float), nv = nm;
    unsigned char *s = malloc(np + nm + nv);
    be->download(be, s, t->cn->params.block, np);
    be->download(be, s + np, t->adam.m, nm);
    be->download(be, s + np + nm, t->adam.v, nv);
    *bytes = np + nm + nv;
    return s;
}

enum { TRAIN_B = 2, TRAIN_SIDE = 8, TRAIN_NT = 77 };

static void test_failed_train_step_changes_nothing(void) {
    char dir[256], sub[512];
    cnet_error err = {0};
    CHECK(tmpdir_make(dir, sizeof dir, "cnet_oom_train_") == 0, "tmpdir");
    const char *subs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer", "controlnet"};
    for (int i = 0; i < 6; i++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
        mkdir(sub, 0755);
    }
    const minit_options mo = {.seed = 3, .nonzero_controlnet = 1};
    test_models tm;
    CHECK(minit_tiny_configs(dir, &err) == 0 && minit_pipeline(dir, &mo, &err) == 0 &&
              test_models_open(&tm, dir, 0, &err) == 0,
          "%s", err.msg);
    test_batch b;
    test_batch_make(&b, &tm.be, &tm.unet, &tm.cn, TRAIN_B, TRAIN_SIDE, TRAIN_SIDE, TRAIN_NT, 31);
    const train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                                  .B = TRAIN_B,
                                  .h = TRAIN_SIDE,
                                  .w = TRAIN_SIDE,
                                  .Nt = TRAIN_NT};
    const train_adamw opt = {.lr = 1e-3f,
                             .beta1 = 0.9f,
                             .beta2 = 0.999f,
                             .eps = 1e-8f,
                             .weight_decay = 1e-2f,
                             .max_grad_norm = 1.0f};
    train_step t;
    CHECK(train_step_init(&t, &tm.unet, &tm.cn, &tm.ddpm, &tc, &err) == 0, "%s", err.msg);
    float norm;
    /* a clean step first, so that AdamW's moments are not all zero */
    CHECK(train_step_accumulate(&t, TRAIN_B, b.lat, b.noise, b.ts, b.text, b.cond, 1.0f, NULL,
                                &err) == 0,
          "%s", err.msg);
    CHECK(train_step_optimize(&t, &opt, 1, NULL, &norm) == 1, "the clean step was not applied");
    size_t bytes;
    unsigned char *before = train_snapshot(&t, &bytes);

    cpu_scratch_free(&tm.be); /* the next convolution grows scratch, and fails */
    arm(&tm.be, -1, 1);
    EXPECT(train_step_accumulate(&t, TRAIN_B, b.lat, b.noise, b.ts, b.text, b.cond, 1.0f, NULL,
                                 &err) == 0,
           "accumulate: %s", err.msg);
    const int rc = train_step_optimize(&t, &opt, 2, NULL, &norm);
    disarm(&tm.be);
    EXPECT(rc == CNET_EBACKEND, "optimize after a failed backward returned %d", rc);
    EXPECT(cnet_backend_status(&tm.be, &err) == CNET_EBACKEND &&
               strstr(err.msg, "bytes of scratch"),
           "status: '%s'", err.msg);
    unsigned char *after = train_snapshot(&t, &bytes);
    EXPECT(memcmp(before, after, bytes) == 0,
           "a failed step changed the weights or AdamW's moments");
    free(after);

    EXPECT(cnet_backend_recover(&tm.be, &err) == 0, "recover: %s", err.msg);
    EXPECT(train_step_accumulate(&t, TRAIN_B, b.lat, b.noise, b.ts, b.text, b.cond, 1.0f, NULL,
                                 &err) == 0 &&
               train_step_optimize(&t, &opt, 2, NULL, &norm) == 1,
           "the step after recover: %s", err.msg);
    after = train_snapshot(&t, &bytes);
    EXPECT(memcmp(before, after, bytes) != 0, "the step after recover did not train");
    free(before), free(after);
    train_step_free(&t);
    test_batch_free(&b, &tm.be);
    test_models_close(&tm);
    tmpdir_remove(dir);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_conv_out_of_memory);
    RUN(test_generation_survives_every_failure);
    RUN(test_zero_byte_scratch);
    RUN(test_generation_stops_at_the_failed_step);
    RUN(test_failed_train_step_changes_nothing);
    return harness_done();
}
