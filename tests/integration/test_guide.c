/* README's first training example, the guide's command of diffusers'
 * ControlNet training guide, run end to end against the Hub emulator
 * (tests/tools/tool_hub_emulator.c), verbatim but for --resolution (64,
 * see GUIDE_RESOLUTION):
 *
 *   cnet train --pretrained_model_name_or_path=stable-diffusion-v1-5/stable-diffusion-v1-5
 *     --output_dir=out --dataset_name=fusing/fill50k --resolution=512 --learning_rate=1e-5
 *     --validation_image "./conditioning_image_1.png" "./conditioning_image_2.png"
 *     --validation_prompt "red circle with blue background" "cyan circle with brown floral
 *     background" --train_batch_size=1 --gradient_accumulation_steps=4 --push_to_hub
 *
 * with only --max_train_steps, --validation_steps and --checkpointing_steps
 * appended (small values, so it ends in seconds on two CPU cores), from a
 * working directory holding the two conditioning PNGs, with HF_ENDPOINT,
 * HF_TOKEN and a fresh HF_HOME. The Hub ids name stand-ins:
 *   - stable-diffusion-v1-5/stable-diffusion-v1-5: random weights of a small
 *     SD1.5-layout pipeline with SD1.5's VAE factor 8 (four VAE levels) and
 *     the UNet's attention one level down;
 *   - fusing/fill50k: fill50k's layout, data/train-00000-of-00001.parquet
 *     with image / conditioning_image structs {bytes, path} and text, 512 px
 *     circles, written by the independent Parquet writer
 *     (tests/tools/parquet_writer, mode fill50k), which also writes the two
 *     conditioning images.
 * Checks: exit 0; out/ holds the diffusers ControlNet (config.json,
 * diffusion_pytorch_model.safetensors), images_0.png and images_1.png,
 * the --validation_steps images under logs/validation/, checkpoint-N, TensorBoard event files under
 * out/logs/train_controlnet/ and a model card whose base_model is the Hub id; the push landed as
 * tester/out (the token's user), read back with `cnet pull` and compared
 * byte for byte with out/. Truth: the output folder itself and the model
 * card format of train_controlnet.py's save_model_card. */
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_hub.h"
#include "tests/lib/lib_parquet.h"

#define HUB_TOKEN "hf_guidetestwritetoken00001"
#define OUT_MAX (1 << 16)
/* The appended flags: 2 optimizer steps (8 samples), a checkpoint after the
 * first, validation after the last (and the final one on saving). */
#define GUIDE_STEPS "2"
#define GUIDE_CHECKPOINT "checkpoint-1"
/* The one changed flag (README: --resolution=512): a ControlNet made by
 * ControlNetModel.from_unet has the conditioning embedding's default widths
 * (16, 32, 96, 256) whatever the base model, about 4 GMAC per image at
 * 512 px, and train_controlnet.py's validation is fixed at 4 images x 20
 * UniPC steps x 2 (guidance) per prompt: on two shared CPU cores the whole
 * test took over 4 min at 512 px (killed), 55 s at 128 px, 18 s at 64 px. */
#define GUIDE_RESOLUTION "--resolution=64"

static char root[512], bin[PATH_MAX], work[700], env_endpoint[128], env_home[700];
static thub_emu emu;
static char out[OUT_MAX];

static int exists(const char *dir, const char *rel) {
    char p[2400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return stat(p, &st) == 0;
}

static int same_file(const char *a, const char *b) {
    char ha[65], hb[65];
    return !thub_sha256(a, ha) && !thub_sha256(b, hb) && !strcmp(ha, hb);
}

/* Sets key of component/config.json under dir to the JSON text value. */
static int config_set(const char *dir, const char *component, const char *key, const char *value) {
    char path[900];
    snprintf(path, sizeof path, "%s/%s/config.json", dir, component);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    int rc = cfg && v && !json_object_set_new(cfg, key, v)
                 ? json_dump_file(cfg, path, JSON_INDENT(2))
                 : -1;
    if (!cfg || !v || json_object_get(cfg, key) != v) json_decref(v);
    json_decref(cfg);
    return rc;
}

/* The stand-in base model: the tiny preset with a four-level VAE (factor 8,
 * as SD1.5's) and the UNet's (and its ControlNet's) attention one level
 * down. */
static int make_base_model(const char *dir) {
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/cfg", root);
    if (shell_run("'%s' init-model --out '%s' --preset tiny --seed 1 >/dev/null 2>&1", bin, cfg))
        return -1;
    const char *const edits[][3] = {
        {"vae", "block_out_channels", "[8, 8, 16, 16]"},
        {"vae", "down_block_types",
         "[\"DownEncoderBlock2D\", \"DownEncoderBlock2D\", "
         "\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"]"},
        {"vae", "up_block_types",
         "[\"UpDecoderBlock2D\", \"UpDecoderBlock2D\", "
         "\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]"},
        {"vae", "layers_per_block", "1"},
        {"vae", "sample_size", "512"},
        {"unet", "down_block_types", "[\"DownBlock2D\", \"CrossAttnDownBlock2D\"]"},
        {"unet", "up_block_types", "[\"CrossAttnUpBlock2D\", \"UpBlock2D\"]"},
        {"unet", "layers_per_block", "1"},
        {"unet", "sample_size", "64"},
        {"controlnet", "down_block_types", "[\"DownBlock2D\", \"CrossAttnDownBlock2D\"]"},
        {"controlnet", "layers_per_block", "1"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++)
        if (config_set(cfg, edits[i][0], edits[i][1], edits[i][2])) {
            printf("    could not set %s/%s\n", edits[i][0], edits[i][1]);
            return -1;
        }
    return shell_run("'%s' init-model --out '%s' --from-config '%s' --seed 2 >/dev/null 2>&1", bin,
                     dir, cfg);
}

static int setup(void) {
    const char *build = getenv("BUILD");
    char rel[600];
    snprintf(rel, sizeof rel, "%s/cnet", build && *build ? build : "build");
    if (!realpath(rel, bin)) return printf("no %s\n", rel), -1;
    if (thub_tmpdir(root, sizeof root)) return -1;
    char gen[700], sd[700], emu_dir[700];
    snprintf(gen, sizeof gen, "%s/gen", root);
    snprintf(sd, sizeof sd, "%s/sd", root);
    snprintf(emu_dir, sizeof emu_dir, "%s/emu", root);
    snprintf(work, sizeof work, "%s/work", root);
    snprintf(env_home, sizeof env_home, "HF_HOME=%s/hf-home", root);
    if (parquet_generate("fill50k", gen)) return -1;
    if (shell_run(
            "mkdir -p '%s' && mv '%s'/conditioning_image_1.png '%s'/conditioning_image_2.png '%s'/",
            work, gen, gen, work))
        return -1;
    if (make_base_model(sd)) return printf("could not make the base model\n"), -1;
    mkdir(emu_dir, 0755);
    const char *extra[] = {"--token", HUB_TOKEN, NULL};
    if (thub_emu_start(&emu, emu_dir, extra)) return printf("the emulator did not start\n"), -1;
    snprintf(env_endpoint, sizeof env_endpoint, "HF_ENDPOINT=%s", emu.endpoint);
    char repo[800];
    snprintf(repo, sizeof repo, "%s/repo", gen);
    if (thub_seed_repo(&emu, HUB_TOKEN, "stable-diffusion-v1-5/stable-diffusion-v1-5", sd) ||
        thub_seed_dataset(&emu, HUB_TOKEN, "fusing/fill50k", repo))
        return printf("could not publish the repos\n"), -1;
    return 0;
}

/* 1 if dir holds a file whose name starts with prefix. */
static int has_prefixed(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return found;
}

static void test_guide_command(void) {
    /* README's command, word for word but GUIDE_RESOLUTION, then the three
     * appended flags. */
    const char *argv[] = {bin,
                          "train",
                          "--pretrained_model_name_or_path=stable-diffusion-v1-5/"
                          "stable-diffusion-v1-5",
                          "--output_dir=out",
                          "--dataset_name=fusing/fill50k",
                          GUIDE_RESOLUTION,
                          "--learning_rate=1e-5",
                          "--validation_image",
                          "./conditioning_image_1.png",
                          "./conditioning_image_2.png",
                          "--validation_prompt",
                          "red circle with blue background",
                          "cyan circle with brown floral background",
                          "--train_batch_size=1",
                          "--gradient_accumulation_steps=4",
                          "--push_to_hub",
                          "--max_train_steps=" GUIDE_STEPS,
                          "--validation_steps=" GUIDE_STEPS,
                          "--checkpointing_steps=1",
                          NULL};
    const char *env[] = {env_endpoint,    "HF_TOKEN=" HUB_TOKEN, env_home, "HF_HUB_OFFLINE=",
                         "HF_HUB_CACHE=", "HF_DATASETS_CACHE=",  NULL};
    char cwd[PATH_MAX];
    CHECK(getcwd(cwd, sizeof cwd) && chdir(work) == 0, "cd %s", work);
    int rc = thub_run(argv, env, 0, 0, out, sizeof out);
    CHECK(chdir(cwd) == 0, "cd back");
    CHECK(rc == 0, "the guide's command exited %d: %s", rc, out);

    char dir[800], card[900], logs[900];
    snprintf(dir, sizeof dir, "%s/out", work);
    const char *files[] = {"config.json",  "diffusion_pytorch_model.safetensors",
                           "images_0.png", "images_1.png",
                           "README.md",    GUIDE_CHECKPOINT};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        EXPECT(exists(dir, files[i]), "out/%s is missing", files[i]);
    snprintf(logs, sizeof logs, "%s/logs/train_controlnet", dir);
    EXPECT(has_prefixed(logs, "events.out.tfevents."), "no TensorBoard events under %s", logs);
    snprintf(card, sizeof card, "%s/README.md", dir);
    size_t n;
    char *text = thub_read(card, &n);
    EXPECT(text && strstr(text, "\nbase_model: stable-diffusion-v1-5/stable-diffusion-v1-5\n") &&
               strstr(text, "red circle with blue background") &&
               strstr(text, "![images_1](./images_1.png)"),
           "model card: %s", text ? text : "(none)");
    free(text);

    /* the push: tester/out, pulled back and compared with out/ */
    char pulled[700], snaps[900], snap[1200] = "";
    snprintf(pulled, sizeof pulled, "%s/pulled", root);
    const char *pull[] = {bin, "pull", "tester/out", "--cache", pulled, NULL};
    const char *penv[] = {env_endpoint, "HF_TOKEN=" HUB_TOKEN, NULL};
    CHECK(thub_run(pull, penv, 0, 0, out, sizeof out) == 0, "pull tester/out: %s", out);
    snprintf(snaps, sizeof snaps, "%s/models--tester--out/snapshots", pulled);
    DIR *d = opendir(snaps);
    CHECK(d, "no snapshot under %s", snaps);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') snprintf(snap, sizeof snap, "%s/%.200s", snaps, e->d_name);
    closedir(d);
    const char *pushed[] = {"config.json", "diffusion_pytorch_model.safetensors", "images_0.png",
                            "images_1.png", "README.md"};
    for (size_t i = 0; i < sizeof pushed / sizeof *pushed; i++) {
        char a[1000], b[1500];
        snprintf(a, sizeof a, "%s/%s", dir, pushed[i]);
        snprintf(b, sizeof b, "%s/%s", snap, pushed[i]);
        EXPECT(same_file(a, b), "pushed %s differs from out/%s", pushed[i], pushed[i]);
    }
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "2", 0); /* shared cores */
    if (setup()) {
        printf("setup failed\ntest_guide: 0 passed, 1 failed\n");
        thub_emu_stop(&emu);
        return 1;
    }
    RUN(test_guide_command);
    thub_emu_stop(&emu);
    tmpdir_remove(root);
    return harness_done();
}
