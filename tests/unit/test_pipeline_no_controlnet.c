/* The pipeline without a ControlNet (n_controlnets 0) is diffusers'
 * StableDiffusionPipeline.__call__. The fixtures hold no plain txt2img
 * golden (tests/fixtures/goldens/README.md lists only ControlNet runs), so
 * the truth here is the ControlNet pipeline with controlnet_conditioning_
 * scale 0: StableDiffusionControlNetPipeline multiplies every residual by
 * the scale, so the UNet gets x + 0 = x, which is StableDiffusionPipeline's
 * UNet call; every other step (prompt encoding, CFG, scheduler, VAE) is the
 * same code in both pipelines. The run without ControlNets calls the UNet
 * without residuals; the run with a scale-0 ControlNet adds zero residual
 * buffers, so the two agree to the last bit (x + 0.0f == x). A ControlNet at
 * scale 1 must change the image (the comparison is not vacuous). On the
 * fixture's tiny-sd model, with CFG, from the seed's Philox latents. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_pipe.h"

enum { H = 16, W = 16, IMG = H * W * 3 };

static double max_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

static void test_no_controlnet_is_scale_zero(void) {
    cnet_backend be;
    cnet_error err = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    test_pipe tp;
    CHECK(test_pipe_open(&tp, harness_fixtures(), &be, &err) == 0, "%s", err.msg);
    cnet_sched_config sc;
    CHECK(sd_base_scheduler(&tp.base, -1, &sc, &err) == 0, "%s", err.msg);
    static float control[IMG], plain[IMG], zero[IMG], steered[IMG];
    for (int i = 0; i < IMG; i++) control[i] = (float)((i * 37) % 256) / 255.0f;
    pipe_models models = sd_base_models(&tp.base);
    pipe_request r = {.prompt = "a red circle with a blue background",
                      .steps = 3,
                      .guidance = 7.5f,
                      .seed = 42,
                      .width = W,
                      .height = H,
                      .num_images = 1};
    CHECK(pipeline_generate(&models, &sc, &r, plain, NULL, &err) == 0, "no ControlNet: %s",
          err.msg);
    r.n_controlnets = 1;
    r.controlnets[0] = (pipe_controlnet){
        .model = &tp.cn, .image = control, .scale = 0.0f, .start = 0.0f, .end = 1.0f};
    CHECK(pipeline_generate(&models, &sc, &r, zero, NULL, &err) == 0, "scale 0: %s", err.msg);
    CHECK(max_diff(plain, zero, IMG) == 0.0, "no ControlNet differs from scale 0 by %g",
          max_diff(plain, zero, IMG));
    r.controlnets[0].scale = 1.0f;
    CHECK(pipeline_generate(&models, &sc, &r, steered, NULL, &err) == 0, "scale 1: %s", err.msg);
    CHECK(max_diff(plain, steered, IMG) > 1e-3, "a ControlNet at scale 1 changed nothing");
    cnet_sched_config_free(&sc);
    test_pipe_close(&tp);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_no_controlnet_is_scale_zero);
    return harness_done();
}
