/* A generate request's cost (server/workers/gen_cost.h) on the fixtures'
 * tiny SD model, whose configs say: UNet sample_size 8 latent px, a VAE of
 * two levels (factor 2), so a native size of 16x16 px.
 *
 * Truth: the units worked out by hand from those numbers — latent area over
 * 8x8, times steps, images (num_images per prompt) and 2 with guidance — and the limits the header
 * states; a model folder without configs is an error naming the file. */
#include <stdio.h>
#include <string.h>

#include "server/workers/gen_cost.h"
#include "tests/lib/harness.h"

static char model[1024];

static generate_request request(int steps, int images, float guidance, int w, int h) {
    return (generate_request){.model_dir = model,
                              .steps = steps,
                              .num_images = images,
                              .guidance = guidance,
                              .width = w,
                              .height = h};
}

static void test_units_by_hand(void) {
    static const struct {
        int steps, images;
        float guidance;
        int w, h, image_w, image_h;
        int out_w, out_h;
        double area, units;
    } cases[] = {
        {20, 1, 7.5f, 0, 0, 16, 16, 16, 16, 1.0, 40.0},               /* native, guided */
        {20, 1, 1.0f, 0, 0, 16, 16, 16, 16, 1.0, 20.0},               /* guidance 1: no CFG */
        {10, 2, 7.5f, 32, 32, 16, 16, 32, 32, 4.0, 160.0},            /* 4x the area, 2 images */
        {3, 1, 1.0f, 0, 0, 17, 23, 16, 22, 88.0 / 64, 3 * 88.0 / 64}, /* rounded to the factor */
        {1, 1, 1.0f, 0, 0, 1024, 1024, 1024, 1024, 4096.0, 4096.0},
        {999, 2, 7.5f, 16, 16, 4096, 4096, 16, 16, 1.0, 3996.0}, /* the image's size aside */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        generate_request r =
            request(cases[i].steps, cases[i].images, cases[i].guidance, cases[i].w, cases[i].h);
        gen_cost c;
        cnet_error err = {0};
        CHECK(gen_cost_estimate(&c, &r, cases[i].image_w, cases[i].image_h, 0, &err) == 0,
              "case %zu: %s", i, err.msg);
        EXPECT(c.native_px == 16 && c.factor == 2, "case %zu: native %d, factor %d", i, c.native_px,
               c.factor);
        EXPECT(c.width == cases[i].out_w && c.height == cases[i].out_h, "case %zu: %dx%d", i,
               c.width, c.height);
        EXPECT(c.area == cases[i].area && c.units == cases[i].units,
               "case %zu: area %g units %g, want %g %g", i, c.area, c.units, cases[i].area,
               cases[i].units);
        const int over = cases[i].area > GEN_COST_AREA_MAX || cases[i].units > GEN_COST_UNITS_MAX;
        EXPECT((gen_cost_check(&c, &r, &err) == CNET_ELIMIT) == over, "case %zu: check %s", i,
               over ? "passed" : err.msg);
    }
}

/* A prompt list costs every image it makes: 3 prompts x num_images 2 at the
 * native size, 20 guided steps = 20 x 6 x 2 units; its refusal counts them. */
static void test_prompt_list(void) {
    generate_request r = request(20, 2, 7.5f, 0, 0);
    r.n_prompts = 3;
    gen_cost c;
    cnet_error err = {0};
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 0, &err) == 0, "%s", err.msg);
    CHECK(c.units == 240.0, "units %g, want 240", c.units);
    r.steps = 200; /* 200 x 6 x 2 = 2400, over GEN_COST_UNITS_MAX */
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 0, &err) == 0, "%s", err.msg);
    CHECK(c.units > GEN_COST_UNITS_MAX && gen_cost_check(&c, &r, &err) == CNET_ELIMIT &&
              strstr(err.msg, "x 3 prompts"),
          "units %g: %s", c.units, err.msg);
}

static void test_limits_named(void) {
    cnet_error err = {0};
    gen_cost c;
    generate_request r = request(1, 1, 1.0f, 128, 128); /* 64x the area */
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 0, &err) == 0, "%s", err.msg);
    EXPECT(gen_cost_check(&c, &r, &err) == CNET_ELIMIT && strstr(err.msg, "128x128") &&
               strstr(err.msg, "64.0x") && strstr(err.msg, "native 16x16") &&
               strstr(err.msg, "limit of 16x"),
           "area: %s", err.msg);
    r = request(600, 2, 5.0f, 16, 16); /* 2400 units at the native size */
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 0, &err) == 0, "%s", err.msg);
    EXPECT(gen_cost_check(&c, &r, &err) == CNET_ELIMIT && strstr(err.msg, "2400 units") &&
               strstr(err.msg, "steps run 600") && strstr(err.msg, "num_images 2") &&
               strstr(err.msg, "guidance 5") && strstr(err.msg, "limit of 2000"),
           "units: %s", err.msg);
    r = request(500, 2, 5.0f, 16, 16); /* 2000 units: at the limit, not over it */
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 0, &err) == 0, "%s", err.msg);
    EXPECT(gen_cost_check(&c, &r, &err) == 0, "at the limit: %s", err.msg);
}

/* img2img and inpainting run int(steps x strength) steps (diffusers'
 * get_timesteps): 50 steps at strength 0.75 cost 37 guided passes, and the
 * refusal names the steps run. */
static void test_init_image_steps(void) {
    generate_request r = request(50, 1, 7.5f, 0, 0);
    r.strength = 0.75;
    gen_cost c;
    cnet_error err = {0};
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 1, &err) == 0, "%s", err.msg);
    EXPECT(c.steps == 37 && c.units == 74.0, "steps %d units %g, want 37 and 74", c.steps, c.units);
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 0, &err) == 0, "%s", err.msg);
    EXPECT(c.steps == 50 && c.units == 100.0, "no init image: steps %d units %g", c.steps, c.units);
    r = request(999, 2, 5.0f, 16, 16);
    r.strength = 0.6; /* 599 steps run x 2 images x 2 = 2396 units */
    CHECK(gen_cost_estimate(&c, &r, 16, 16, 1, &err) == 0, "%s", err.msg);
    EXPECT(gen_cost_check(&c, &r, &err) == CNET_ELIMIT && strstr(err.msg, "2396 units") &&
               strstr(err.msg, "steps run 599"),
           "strength 0.6: %s", err.msg);
}

static void test_missing_configs(void) {
    generate_request r = request(1, 1, 1.0f, 0, 0);
    r.model_dir = "/nonexistent-cnet-model";
    gen_cost c;
    cnet_error err = {0};
    EXPECT(gen_cost_estimate(&c, &r, 16, 16, 0, &err) != 0 &&
               strstr(err.msg, "/nonexistent-cnet-model/vae/config.json"),
           "%s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    snprintf(model, sizeof model, "%s/tiny-sd", harness_fixtures());
    RUN(test_units_by_hand);
    RUN(test_prompt_list);
    RUN(test_limits_named);
    RUN(test_init_image_steps);
    RUN(test_missing_configs);
    return harness_done();
}
