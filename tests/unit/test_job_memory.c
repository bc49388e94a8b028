/* A job's memory need (server/workers/job_memory.h) on model folders made
 * here with weight files of chosen sizes, so the truth is the arithmetic of
 * the header's rule on those sizes: a generate job needs the weights, a
 * train job the weights plus JOB_MEMORY_TRAIN_COPIES UNets; a sharded
 * component counts its shards; a ControlNet folder beside the pipeline is
 * not the base's; a model without UNet weights cannot be sized. And the
 * runner's placement question (runner_fits) against a node's limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/workers/job_memory.h"
#include "server/workers/runner.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static char dir[512];

/* Writes dir/model/component/name with n bytes (folders made as needed). */
static int put(const char *model, const char *component, const char *name, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, model);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/%s", dir, model, component);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/%s/%s", dir, model, component, name);
    char *zeros = calloc(1, n ? n : 1);
    int rc = zeros ? file_write(path, zeros, n) : -1;
    free(zeros);
    return rc;
}

static int64_t need(const char *model, const char *kind, int *rc) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, model);
    int64_t b = -1;
    *rc = job_memory_need(path, kind, &b, NULL);
    return b;
}

static void test_need_by_the_rule(void) {
    CHECK(put("sd", "unet", "config.json", 2) == 0 &&
              put("sd", "unet", "diffusion_pytorch_model.safetensors", 1000) == 0 &&
              put("sd", "vae", "config.json", 2) == 0 &&
              put("sd", "vae", "diffusion_pytorch_model.safetensors", 300) == 0 &&
              put("sd", "text_encoder", "config.json", 2) == 0 &&
              put("sd", "text_encoder", "model.safetensors", 200) == 0 &&
              put("sd", "controlnet", "config.json", 2) == 0 &&
              put("sd", "controlnet", "diffusion_pytorch_model.safetensors", 5000) == 0,
          "write the model");
    int rc;
    int64_t g = need("sd", "generate", &rc);
    EXPECT(rc == 0 && g == 1500, "generate: the weights, 1500 bytes, not %lld", (long long)g);
    int64_t t = need("sd", "train", &rc);
    EXPECT(rc == 0 && t == 1500 + JOB_MEMORY_TRAIN_COPIES * 1000,
           "train: weights + %d UNets, not %lld", JOB_MEMORY_TRAIN_COPIES, (long long)t);
}

static void test_sharded_component(void) {
    CHECK(put("xl", "unet", "config.json", 2) == 0 &&
              put("xl", "unet", "diffusion_pytorch_model.safetensors.index.json", 2) == 0 &&
              put("xl", "unet", "diffusion_pytorch_model-00001-of-00002.safetensors", 700) == 0 &&
              put("xl", "unet", "diffusion_pytorch_model-00002-of-00002.safetensors", 500) == 0 &&
              put("xl", "text_encoder_2", "config.json", 2) == 0 &&
              put("xl", "text_encoder_2", "model.safetensors", 90) == 0,
          "write the model");
    int rc;
    int64_t g = need("xl", "generate", &rc);
    EXPECT(rc == 0 && g == 1290, "shards summed, text_encoder_2 counted: %lld", (long long)g);
}

static void test_unsized_model(void) {
    int rc;
    need("absent", "generate", &rc);
    EXPECT(rc == CNET_ENOTFOUND, "no model folder: %d", rc);
    CHECK(put("nounet", "vae", "config.json", 2) == 0 &&
              put("nounet", "vae", "diffusion_pytorch_model.safetensors", 300) == 0,
          "write the model");
    need("nounet", "train", &rc);
    EXPECT(rc == CNET_ENOTFOUND, "no UNet weights: %d", rc);
}

static void test_runner_fits_the_limit(void) {
    runner_config cfg = {.models_dir = dir, .memory_limit = 1500 + 4000};
    const char *train = "{\"pretrained_model_name_or_path\":\"sd\"}";
    const char *gen = "{\"model\":\"sd\"}";
    EXPECT(runner_fits(&cfg, "train", train), "a train job needing exactly the limit fits");
    cfg.memory_limit -= 1;
    EXPECT(!runner_fits(&cfg, "train", train), "one byte over the limit: it does not");
    EXPECT(runner_fits(&cfg, "generate", gen), "a generate job on the same model fits");
    EXPECT(runner_fits(&cfg, "train", "{\"pretrained_model_name_or_path\":\"absent\"}"),
           "a model not here cannot be sized: its attempt finds out");
    cfg.memory_limit = 0;
    EXPECT(runner_fits(&cfg, "train", train), "no limit: everything fits");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(dir, sizeof dir, "cnet-jobmem-")) return printf("no temp dir\n"), 1;
    RUN(test_need_by_the_rule);
    RUN(test_sharded_component);
    RUN(test_unsized_model);
    RUN(test_runner_fits_the_limit);
    tmpdir_remove(dir);
    return harness_done();
}
