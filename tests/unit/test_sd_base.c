/* sd_base's model type detection (engine/pipeline/sd_base.c) on folders
 * built from the fixture models' components (symlinked) with a written
 * model_index.json:
 *   - tiny-sdxl (StableDiffusionXLControlNetPipeline) opens as SDXL, with
 *     tokenizer_2, text_encoder_2 (text_projection) and
 *     force_zeros_for_empty_prompt true when the file says so or says
 *     nothing (the XL pipelines' default), false when it says false;
 *   - tiny-sd opens as SD 1.x, with no second encoder and no VAE upcast;
 *   - a model_index.json whose class disagrees with the UNet's added
 *     embedding is refused, naming addition_embed_type "text_time";
 *   - sd_base_store16 keeps an SDXL VAE with force_upcast in float32
 *     (diffusers' upcast_vae) while the UNet and both text encoders narrow.
 * The truths are the fixture configs (read here with jansson). */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/pipeline/sd_base.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static char tmp[PATH_MAX / 2];
static cnet_backend be;

/* <tmp>/<name>: the components of fixture model `from`, symlinked, and a
 * model_index.json of class cls (force: "true", "false" or NULL absent). */
static const char *make_model(const char *name, const char *from, const char *cls,
                              const char *force) {
    static char dir[PATH_MAX];
    static const char *const parts[] = {"tokenizer",      "tokenizer_2", "text_encoder",
                                        "text_encoder_2", "unet",        "vae",
                                        "scheduler",      "controlnet"};
    char src[PATH_MAX], dst[PATH_MAX + 64], text[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    if (mkdir(dir, 0755) != 0) return NULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(src, sizeof src, "%s/%s/%s", harness_fixtures(), from, parts[i]);
        if (access(src, F_OK) != 0) continue;
        char real[PATH_MAX];
        if (!realpath(src, real)) return NULL;
        snprintf(dst, sizeof dst, "%s/%s", dir, parts[i]);
        if (symlink(real, dst) != 0) return NULL;
    }
    int n = snprintf(text, sizeof text, "{\"_class_name\": \"%s\"%s%s}", cls,
                     force ? ", \"force_zeros_for_empty_prompt\": " : "", force ? force : "");
    snprintf(dst, sizeof dst, "%s/model_index.json", dir);
    return file_write(dst, text, (size_t)n) == 0 ? dir : NULL;
}

static int vae_force_upcast(const char *fixture) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/vae/config.json", harness_fixtures(), fixture);
    json_t *j = json_load_file(path, 0, NULL);
    const json_t *v = json_object_get(j, "force_upcast");
    int on = !v || json_is_true(v); /* AutoencoderKL's default is true */
    json_decref(j);
    return on;
}

static void test_sdxl_detected(void) {
    const char *cases[][2] = {{"xl_default", NULL}, {"xl_true", "true"}, {"xl_false", "false"}};
    for (int k = 0; k < 3; k++) {
        const char *dir = make_model(cases[k][0], "tiny-sdxl",
                                     "StableDiffusionXLControlNetPipeline", cases[k][1]);
        CHECK(dir, "cannot build %s", cases[k][0]);
        sd_base b;
        cnet_error err = {0};
        CHECK(sd_base_open(&b, &be, dir, &err) == 0, "%s: %s", cases[k][0], err.msg);
        const int want_zeros = k < 2;
        EXPECT(b.xl && b.tok_2 && b.text_encoder_2.projection_dim > 0, "%s: not SDXL", cases[k][0]);
        EXPECT(b.force_zeros_for_empty_prompt == want_zeros, "%s: force_zeros %d", cases[k][0],
               b.force_zeros_for_empty_prompt);
        pipe_models m = sd_base_models(&b);
        EXPECT(m.text_encoder_2 == &b.text_encoder_2 &&
                   m.force_zeros_for_empty_prompt == want_zeros &&
                   m.vae_upcast == vae_force_upcast("tiny-sdxl"),
               "%s: pipe_models", cases[k][0]);
        sd_base_free(&b);
    }
}

static void test_sd_detected(void) {
    const char *dir = make_model("sd", "tiny-sd", "StableDiffusionControlNetPipeline", NULL);
    CHECK(dir, "cannot build");
    sd_base b;
    cnet_error err = {0};
    CHECK(sd_base_open(&b, &be, dir, &err) == 0, "%s", err.msg);
    pipe_models m = sd_base_models(&b);
    EXPECT(!b.xl && !b.tok_2 && !m.text_encoder_2 && !m.tok_2 && !m.vae_upcast &&
               !m.force_zeros_for_empty_prompt,
           "tiny-sd opened as SDXL");
    sd_base_free(&b);
}

static void test_class_and_unet_disagree(void) {
    const char *cases[][3] = {
        {"sd_as_xl", "tiny-sd", "StableDiffusionXLControlNetPipeline"},
        {"xl_as_sd", "tiny-sdxl", "StableDiffusionControlNetPipeline"},
    };
    for (int k = 0; k < 2; k++) {
        const char *dir = make_model(cases[k][0], cases[k][1], cases[k][2], NULL);
        CHECK(dir, "cannot build %s", cases[k][0]);
        sd_base b;
        cnet_error err = {0};
        int rc = sd_base_open(&b, &be, dir, &err);
        EXPECT(rc == CNET_EINVAL && strstr(err.msg, "text_time") && strstr(err.msg, dir),
               "%s: rc %d: %s", cases[k][0], rc, err.msg);
        if (!rc) sd_base_free(&b);
    }
}

static void test_store16_keeps_the_upcast_vae(void) {
    const char *dir = make_model("xl16", "tiny-sdxl", "StableDiffusionXLControlNetPipeline", NULL);
    CHECK(dir, "cannot build");
    sd_base b;
    cnet_error err = {0};
    CHECK(sd_base_open(&b, &be, dir, &err) == 0, "%s", err.msg);
    CHECK(sd_base_store16(&b, CNET_PREC_BF16, &err) == 0, "%s", err.msg);
    EXPECT(b.unet.params.block16 && b.text_encoder.params.block16 &&
               b.text_encoder_2.params.block16,
           "the UNet and text encoders stayed float32");
    EXPECT(vae_force_upcast("tiny-sdxl") ? !b.vae.params.block16 : b.vae.params.block16 != NULL,
           "the VAE (force_upcast %d) is %s", vae_force_upcast("tiny-sdxl"),
           b.vae.params.block16 ? "16-bit" : "float32");
    sd_base_free(&b);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err;
    if (tmpdir_make(tmp, sizeof tmp, "cnet_sd_base_") || cnet_backend_cpu_init(&be, &err)) {
        printf("setup failed\ntest_sd_base: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_sdxl_detected);
    RUN(test_sd_detected);
    RUN(test_class_and_unet_disagree);
    RUN(test_store16_keeps_the_upcast_vae);
    cnet_backend_free(&be);
    tmpdir_remove(tmp);
    return harness_done();
}
