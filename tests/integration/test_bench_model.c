/* `cnet bench --model DIR --task T --device D` through the real binary
 * ($BUILD/cnet) on a tiny pipeline: every task takes --device cuda and runs
 * on the CUDA backend where a GPU is visible, or on the CPU with the
 * fallback note where none is (this machine), and its JSON line names the
 * task, the device that ran, the batch, a positive median and the peak
 * device memory (null on the CPU, positive on a GPU); --batch sizes the
 * training step and is refused for the other tasks; a malformed --device is
 * a usage error. An SDXL pipeline (tests/fixtures/tiny-sdxl) runs its
 * text encoders, VAE decode and ControlNet + UNet step. Timings themselves are BENCHMARKS.md's
 * business. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "engine/core/backend.h"
#include "kernels/cpu/gemm_bf16.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

/* Largest output of one bench run kept (a JSON line and a note). */
#define BENCH_TEST_OUT_MAX 8192

static char tmp[PATH_MAX], model[PATH_MAX + 16], bin[PATH_MAX];

/* Runs `$BUILD/cnet <args>` with stderr joined to stdout into out; returns
 * the exit status (-1 when it did not exit). */
static int run(const char *args, char *out, size_t cap) {
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The first line of out that starts with '{', parsed; NULL if none. */
static json_t *json_line(const char *out) {
    for (const char *line = out; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line != '{') continue;
        const char *end = strchr(line, '\n');
        return json_loadb(line, end ? (size_t)(end - line) : strlen(line), 0, NULL);
    }
    return NULL;
}

static int file_exists_at(const char *dir, const char *rel) {
    char path[2 * PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void check_task(const char *dir, const char *task, const char *extra, int want_batch) {
    const int gpus = cnet_backend_cuda_count();
    char args[2 * PATH_MAX], out[BENCH_TEST_OUT_MAX];
    snprintf(args, sizeof args,
             "bench --model %s --task %s --device cuda --mixed_precision bf16 --iters 1 --json %s",
             dir, task, extra);
    int rc = run(args, out, sizeof out);
    CHECK(rc == 0, "%s exited %d: %s", args, rc, out);
    json_t *j = json_line(out);
    CHECK(j != NULL, "%s: no JSON line in: %s", task, out);
    const char *got_task = json_string_value(json_object_get(j, "task"));
    const char *device = json_string_value(json_object_get(j, "device"));
    const char *prec = json_string_value(json_object_get(j, "mixed_precision"));
    /* the precision that ran: bf16 on a GPU or an AVX512-BF16 CPU, else
     * float32 ("no") */
    int ok_prec = prec && strcmp(prec, gpus > 0 || cpu_bf16_supported() ? "bf16" : "no") == 0;
    json_t *batch = json_object_get(j, "batch"), *dev_mb = json_object_get(j, "peak_device_mb");
    const double median = json_number_value(json_object_get(j, "median_ms"));
    const double rss = json_number_value(json_object_get(j, "peak_rss_mb"));
    int ok_task = got_task && strcmp(got_task, task) == 0;
    int ok_device = device && strcmp(device, gpus > 0 ? "cuda" : "cpu") == 0;
    int ok_batch = json_integer_value(batch) == want_batch;
    int ok_mem = gpus > 0 ? json_number_value(dev_mb) > 0 : json_is_null(dev_mb);
    json_decref(j);
    CHECK(ok_task, "%s: task field '%s'", task, got_task ? got_task : "(none)");
    CHECK(ok_device, "%s: device '%s' with %d GPUs", task, device ? device : "(none)", gpus);
    CHECK(ok_batch, "%s: batch is not %d", task, want_batch);
    CHECK(ok_prec, "%s: mixed_precision field wrong for %d GPUs", task, gpus);
    CHECK(median > 0 && rss > 0, "%s: median %g ms, rss %g MB", task, median, rss);
    CHECK(ok_mem, "%s: peak_device_mb wrong for %d GPUs", task, gpus);
    if (gpus == 0)
        CHECK(strstr(out, "--device cuda: no CUDA device visible") && strstr(out, "using the CPU"),
              "%s: no fallback note in: %s", task, out);
}

static void test_inference_tasks(void) {
    check_task(model, "text_encoder", "", 1);
    check_task(model, "vae_decode", "", 1);
    check_task(model, "cn_unet_step", "", 2);
    check_task(model, "generate", "", 1);
}

/* SDXL (tests/fixtures/tiny-sdxl): both text encoders, the VAE, and the
 * ControlNet + UNet step with the added conditions. */
static void test_sdxl_tasks(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tiny-sdxl", harness_fixtures());
    if (!file_exists_at(dir, "text_encoder_2/config.json")) {
        printf("    (no tiny-sdxl in %s: skipped)\n", harness_fixtures());
        return;
    }
    check_task(dir, "text_encoder", "", 1);
    check_task(dir, "vae_decode", "", 1);
    check_task(dir, "cn_unet_step", "", 2);
}

static void test_train_tasks(void) {
    check_task(model, "train_step", "", 1);
    check_task(model, "train_step", "--batch 3", 3);
    check_task(model, "train_step_cached", "--batch 2", 2);
}

static void test_refused(void) {
    char args[2 * PATH_MAX], out[BENCH_TEST_OUT_MAX];
    snprintf(args, sizeof args, "bench --model %s --task vae_decode --batch 2", model);
    int rc = run(args, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "--batch"), "--batch on vae_decode: %d %s", rc, out);
    snprintf(args, sizeof args, "bench --model %s --task train_step --batch 0", model);
    rc = run(args, out, sizeof out);
    CHECK(rc == 2, "--batch 0 gave %d", rc);
    snprintf(args, sizeof args, "bench --model %s --task vae_decode --device gpu", model);
    rc = run(args, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "--device 'gpu'"), "--device gpu: %d %s", rc, out);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    /* One thread: the tasks are tiny, and OpenMP threads spinning on a
     * shared, busy machine would make them slow. */
    setenv("OMP_NUM_THREADS", "1", 1);
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (tmpdir_make(tmp, sizeof tmp, "cnet_benchmodel_")) {
        printf("test_bench_model: 0 passed, 1 failed\n");
        return 1;
    }
    snprintf(model, sizeof model, "%s/tiny", tmp);
    char args[2 * PATH_MAX], out[BENCH_TEST_OUT_MAX];
    snprintf(args, sizeof args, "init-model --out %s --preset tiny", model);
    if (run(args, out, sizeof out) != 0) {
        printf("FAIL cnet init-model --preset tiny: %s\n", out);
        harness_failed++;
    } else {
        RUN(test_inference_tasks);
        RUN(test_train_tasks);
        RUN(test_sdxl_tasks);
        RUN(test_refused);
    }
    tmpdir_remove(tmp);
    return harness_done();
}
