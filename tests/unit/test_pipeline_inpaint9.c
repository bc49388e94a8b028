/* The inpainting pipeline with a 9-channel UNet (in_channels 9: the UNet
 * input is cat([latents, mask, masked_image_latents])), which no golden
 * covers, checked by hand-built cases on the fixture's tiny-sd: its UNet
 * widened to 9 input channels, conv_in's weights for latent channels 0..3
 * those of the 4-channel UNet and the extra 5 channels set per case.
 *   - extra weights 0, strength 1: the run is text-to-image on the same
 *     initial noise (strength 1 starts from pure noise, a 9-channel UNet
 *     has no blend), so its image is the 4-channel txt2img's;
 *   - mask channel (4) weights nonzero: the image changes with the mask but
 *     not with the init image (whose masked latents, channels 5..8, still
 *     have zero weights): the mask lands in channel 4;
 *   - masked-latents weights nonzero instead: the image changes with the
 *     init image: its latents land in channels 5..8;
 *   - the 9-channel UNet without a mask is refused naming the fields.
 * Runs differ from each other only by the summation order of conv_in's
 * wider products, so "equal" is within 1e-4 on images in [0, 1]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"
#include "tests/lib/harness.h"

#define NINE_TOLERANCE 1e-4
#define H 16
#define W 16

static sd_base base;
static controlnet_model cn;
static unet_model u9;
static cnet_sched_config sched_cfg;
static float control[H * W * 3], init_a[H * W * 3], init_b[H * W * 3];
static float mask_a[H * W], mask_b[H * W], noise[4 * (H / 2) * (W / 2)];

/* conv_in of u9: the 4-channel weights for channels 0..3, `extra` times
 * channel 0's weights for channel c in [from, to), zeros for the rest. */
static void set_conv_in(float extra, int from, int to) {
    const cnet_param *src = params_find(&base.unet.params, "conv_in.weight");
    const cnet_param *dst = params_find(&u9.params, "conv_in.weight");
    const int O = (int)src->shape[0], K = (int)(src->shape[2] * src->shape[3]);
    float *a = malloc(src->numel * sizeof(float)), *b = calloc(dst->numel, sizeof(float));
    cnet_backend *be = base.unet.params.be;
    be->download(be, a, src->data, src->numel * sizeof(float)); /* OHWI, I = 4 */
    for (int o = 0; o < O; o++)
        for (int k = 0; k < K; k++)
            for (int c = 0; c < 9; c++) {
                const float w0 = a[((size_t)o * K + k) * 4];
                b[((size_t)o * K + k) * 9 + c] = c < 4 ? a[((size_t)o * K + k) * 4 + c]
                                                 : c >= from && c < to ? extra * w0
                                                                       : 0.0f;
            }
    be->upload(be, dst->data, b, dst->numel * sizeof(float));
    free(a);
    free(b);
}

/* One run into out: txt2img on the 4-channel UNet (init NULL) or
 * inpainting at strength 1 on u9. */
static int run(const float *init, const float *mask, float *out, cnet_error *err) {
    pipe_models m = sd_base_models(&base);
    if (init) m.unet = &u9;
    pipe_request r = {.prompt = "a red circle",
                      .steps = 3,
                      .guidance = 7.5f,
                      .latents = noise,
                      .width = W,
                      .height = H,
                      .num_images = 1,
                      .n_controlnets = 1,
                      .init = {.image = init, .n_images = 1, .mask = mask, .strength = 1.0}};
    r.controlnets[0] = (pipe_controlnet){.model = &cn, .image = control, .scale = 0.5f, .end = 1};
    return pipeline_generate(&m, &sched_cfg, &r, out, NULL, err);
}

static double max_diff(const float *a, const float *b) {
    double worst = 0;
    for (int i = 0; i < H * W * 3; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

static void test_zero_extra_is_txt2img(void) {
    static float t2i[H * W * 3], inp[H * W * 3];
    cnet_error err = {0};
    set_conv_in(0.0f, 4, 9);
    CHECK(run(NULL, NULL, t2i, &err) == 0, "txt2img: %s", err.msg);
    CHECK(run(init_a, mask_a, inp, &err) == 0, "9-channel inpaint: %s", err.msg);
    const double d = max_diff(t2i, inp);
    CHECK(d <= NINE_TOLERANCE, "differs from txt2img by %g", d);
}

static void test_mask_in_channel_4(void) {
    static float aa[H * W * 3], ba[H * W * 3], ab[H * W * 3];
    cnet_error err = {0};
    set_conv_in(1.0f, 4, 5);
    CHECK(run(init_a, mask_a, aa, &err) == 0, "%s", err.msg);
    CHECK(run(init_b, mask_a, ba, &err) == 0, "%s", err.msg);
    CHECK(run(init_a, mask_b, ab, &err) == 0, "%s", err.msg);
    EXPECT(max_diff(aa, ba) <= NINE_TOLERANCE, "the init image moved a mask-only UNet by %g",
           max_diff(aa, ba));
    EXPECT(max_diff(aa, ab) > 1e-3, "the mask did not reach channel 4 (%g)", max_diff(aa, ab));
}

static void test_masked_latents_in_channels_5_to_8(void) {
    static float aa[H * W * 3], ba[H * W * 3];
    cnet_error err = {0};
    set_conv_in(1.0f, 5, 9);
    CHECK(run(init_a, mask_a, aa, &err) == 0, "%s", err.msg);
    CHECK(run(init_b, mask_a, ba, &err) == 0, "%s", err.msg);
    EXPECT(max_diff(aa, ba) > 1e-3, "the masked image latents did not reach channels 5..8 (%g)",
           max_diff(aa, ba));
}

static void test_refused_without_mask(void) {
    static float out[H * W * 3];
    cnet_error err = {0};
    pipe_models m = sd_base_models(&base);
    m.unet = &u9;
    pipe_request r = {.prompt = "x",
                      .steps = 2,
                      .width = W,
                      .height = H,
                      .num_images = 1,
                      .n_controlnets = 1,
                      .init = {.image = init_a, .n_images = 1, .strength = 0.5}};
    r.controlnets[0] = (pipe_controlnet){.model = &cn, .image = control, .scale = 1, .end = 1};
    EXPECT(pipeline_generate(&m, &sched_cfg, &r, out, NULL, &err) == CNET_EINVAL &&
               strstr(err.msg, "mask_image"),
           "img2img on a 9-channel UNet: %s", err.msg);
    r.init.image = NULL;
    EXPECT(pipeline_generate(&m, &sched_cfg, &r, out, NULL, &err) == CNET_EINVAL &&
               strstr(err.msg, "init_image and mask_image"),
           "txt2img on a 9-channel UNet: %s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_backend be;
    cnet_error err = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny-sd", harness_fixtures());
    int rc = cnet_backend_cpu_init(&be, &err);
    if (!rc) rc = sd_base_open(&base, &be, path, &err);
    snprintf(path, sizeof path, "%s/tiny-sd/controlnet", harness_fixtures());
    if (!rc) rc = controlnet_open(&cn, &be, path, &err);
    cnet_unet_config cfg = base.unet.enc.cfg;
    cfg.in_channels = 9;
    if (!rc) rc = unet_init(&u9, &be, &cfg, &err);
    for (int i = 0; !rc && i < u9.params.n; i++) { /* every weight but conv_in's */
        const cnet_param *d = &u9.params.items[i], *s = params_find(&base.unet.params, d->name);
        if (!s || s->numel != d->numel) continue;
        be.copy(&be, d->data, s->data, d->numel * sizeof(float));
    }
    if (!rc) rc = sd_base_scheduler(&base, CNET_SCHED_DDIM, &sched_cfg, &err);
    if (rc) {
        printf("setup failed: %s\ntest_pipeline_inpaint9: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    philox_normal_fill(noise, (long)(sizeof noise / sizeof noise[0]), 31, 0);
    for (int i = 0; i < H * W * 3; i++) {
        control[i] = (float)(philox_u32(32, (uint64_t)i) % 256) / 255.0f;
        init_a[i] = (float)(philox_u32(33, (uint64_t)i) % 256) / 127.5f - 1.0f;
        init_b[i] = (float)(philox_u32(34, (uint64_t)i) % 256) / 127.5f - 1.0f;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            mask_a[y * W + x] = x >= 4 && x < 12 && y >= 2 && y < 10;
            mask_b[y * W + x] = x < 8;
        }
    RUN(test_zero_extra_is_txt2img);
    RUN(test_mask_in_channel_4);
    RUN(test_masked_latents_in_channels_5_to_8);
    RUN(test_refused_without_mask);
    cnet_sched_config_free(&sched_cfg);
    unet_free(&u9);
    controlnet_free(&cn);
    sd_base_free(&base);
    cnet_backend_free(&be);
    return harness_done();
}
