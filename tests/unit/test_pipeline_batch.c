/* The pipeline on a batch of prompts (diffusers' list of prompts, each with
 * its own control image) gives, per prompt, what running that prompt alone
 * with the same initial latents gives: the rows of a batch do not mix. With
 * CFG, guess mode off and on, on the fixture's tiny-sd model. Rows differ
 * only by floating-point summation order between batch sizes, so the
 * tolerance is 1e-4 on images in [0, 1]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_pipe.h"

#define BATCH_TOLERANCE 1e-4

static void run_case(sd_base *base, controlnet_model *cn, const cnet_sched_config *sc, int guess) {
    enum { P = 2, H = 16, W = 16 };
    const char *prompts[P] = {"a red circle with a blue background", "two green squares"};
    const char *negatives[P] = {"blurry", ""};
    const int f = vae_factor(&base->vae), C = base->unet.enc.cfg.in_channels;
    const size_t lat = (size_t)C * (H / f) * (W / f), img = (size_t)H * W * 3;
    float latents[P * 4 * 8 * 8], control[P * H * W * 3], batch[P * H * W * 3], one[H * W * 3];
    CHECK(lat * P <= sizeof latents / sizeof latents[0], "fixture larger than the test expects");
    philox_normal_fill(latents, (long)(lat * P), 21, 0);
    for (size_t i = 0; i < P * img; i++) control[i] = (float)(philox_u32(22, i) % 256) / 255.0f;
    pipe_models models = sd_base_models(base);
    pipe_request r = {.prompts = prompts,
                      .negative_prompts = negatives,
                      .n_prompts = P,
                      .steps = 3,
                      .guidance = 7.5f,
                      .latents = latents,
                      .width = W,
                      .height = H,
                      .num_images = 1,
                      .guess_mode = guess,
                      .n_controlnets = 1};
    r.controlnets[0] = (pipe_controlnet){
        .model = cn, .image = control, .n_images = P, .scale = 1.0f, .start = 0.0f, .end = 1.0f};
    cnet_error err = {0};
    CHECK(pipeline_generate(&models, sc, &r, batch, NULL, &err) == 0, "batch: %s", err.msg);
    for (int p = 0; p < P; p++) {
        pipe_request s = r;
        s.prompts = prompts + p, s.negative_prompts = negatives + p, s.n_prompts = 1;
        s.latents = latents + p * lat;
        s.controlnets[0].image = control + p * img, s.controlnets[0].n_images = 1;
        CHECK(pipeline_generate(&models, sc, &s, one, NULL, &err) == 0, "prompt %d: %s", p,
              err.msg);
        double worst = 0;
        for (size_t i = 0; i < img; i++) {
            double d = fabs((double)one[i] - batch[p * img + i]);
            if (d > worst) worst = d;
        }
        CHECK(worst <= BATCH_TOLERANCE, "guess %d prompt %d: batch row differs by %g", guess, p,
              worst);
    }
    /* The two prompts' images differ: the batch did not repeat one row. */
    double diff = 0;
    for (size_t i = 0; i < img; i++) diff += fabs((double)batch[i] - batch[img + i]);
    CHECK(diff > 0.01, "the two prompts gave the same image");
}

static void test_batch_equals_single(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    test_pipe tp;
    CHECK(test_pipe_open(&tp, harness_fixtures(), &be, &err) == 0, "%s", err.msg);
    cnet_sched_config sc;
    CHECK(sd_base_scheduler(&tp.base, CNET_SCHED_DDIM, &sc, &err) == 0, "%s", err.msg);
    run_case(&tp.base, &tp.cn, &sc, 0);
    run_case(&tp.base, &tp.cn, &sc, 1);
    cnet_sched_config_free(&sc);
    test_pipe_close(&tp);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_batch_equals_single);
    return harness_done();
}
