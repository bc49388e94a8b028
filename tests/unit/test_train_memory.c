/* The training memory levers change memory, never results (issue 8):
 *
 * - gradient checkpointing (--gradient_checkpointing): the loss and every
 *   ControlNet gradient equal, bit for bit on the CPU, those of the step
 *   that keeps every activation (same kernels in the same order on the same
 *   inputs), while the activation arena's high-water mark drops;
 * - set_grads_to_none (--set_grads_to_none): the parameters after several
 *   optimizer steps (with gradient accumulation and a short micro-batch)
 *   are bit-identical, the gradients do not exist between steps, and the
 *   activation arena plus gradients take less memory than the arena plus a
 *   separate gradient block.
 *
 * On three models: the tiny preset, the fixtures' tiny-sd (trained-looking
 * weights), and the fixtures' small-sd configuration (SD1.5 block layout,
 * 4 levels, random weights). Every ControlNet here has non-zero zero convs,
 * so gradients reach every block of its encoder (and with them the
 * recompute path). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/init/model_init.h"
#include "engine/core/philox.h"
#include "engine/train/train_step.h"
#include "engine/init/weights_init.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_trainbatch.h"

static float *download(cnet_backend *be, const float *dev, size_t n) {
    float *h = malloc(n * sizeof(float));
    be->download(be, h, dev, n * sizeof(float));
    return h;
}

/* Largest |x| of a named gradient: proves the gradient reached that block. */
static float grad_peak(const train_step *t, const char *name) {
    const cnet_param *q = params_find(&t->grads, name);
    if (!q) return -1;
    float *h = download(t->cn->params.be, q->data, q->numel), peak = 0;
    for (size_t i = 0; i < q->numel; i++) peak = fabsf(h[i]) > peak ? fabsf(h[i]) : peak;
    free(h);
    return peak;
}

/* Two micro-batches (B, then a short B-1) accumulate into each step's
 * gradients, with and without checkpointing: losses and gradients equal
 * bit for bit; the checkpointed step's activation arena peaks lower. */
static void check_checkpointing(const char *what, const char *dir, int random_weights, int h) {
    test_models m;
    cnet_error err = {0};
    CHECK(test_models_open(&m, dir, random_weights, &err) == 0, "%s: %s", what, err.msg);
    const int B = 2, Nt = 77;
    test_batch b;
    test_batch_make(&b, &m.be, &m.unet, &m.cn, B, h, h, Nt, 21);
    train_step t[2];
    for (int c = 0; c < 2; c++) {
        train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                                .B = B,
                                .h = h,
                                .w = h,
                                .Nt = Nt,
                                .gradient_checkpointing = c};
        CHECK(train_step_init(&t[c], &m.unet, &m.cn, &m.ddpm, &tc, &err) == 0, "%s: %s", what,
              err.msg);
    }
    size_t peak[2] = {0, 0};
    for (int c = 0; c < 2; c++) t[c].keep.high_water = 0;
    for (int mb = 0; mb < 2; mb++) {
        float loss[2];
        for (int c = 0; c < 2; c++)
            CHECK(train_step_accumulate(&t[c], B - mb, b.lat, b.noise, b.ts, b.text, b.cond, 0.5f,
                                        &loss[c], &err) == 0,
                  "%s: %s", what, err.msg);
        CHECK(memcmp(&loss[0], &loss[1], sizeof(float)) == 0, "%s: loss %.9g vs %.9g checkpointed",
              what, loss[0], loss[1]);
    }
    for (int c = 0; c < 2; c++) peak[c] = t[c].keep.high_water;
    const size_t n = t[0].grads.total;
    float *g0 = download(&m.be, t[0].grads.block, n), *g1 = download(&m.be, t[1].grads.block, n);
    size_t differ = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&g0[i], &g1[i], sizeof(float)) != 0 && differ++ == 0) first = i;
    free(g0), free(g1);
    CHECK(differ == 0, "%s: %zu of %zu gradients differ (first at %zu)", what, differ, n, first);
    const float enc0 = grad_peak(&t[1], "down_blocks.0.resnets.0.conv1.weight");
    const float cond_in = grad_peak(&t[1], "controlnet_cond_embedding.conv_in.weight");
    CHECK(enc0 > 0 && cond_in > 0, "%s: gradients did not reach the encoder (%g, %g)", what, enc0,
          cond_in);
    printf("    %s: %zu gradients bit-identical; activation arena peak %.2f -> %.2f MiB\n", what, n,
           peak[0] / 1048576.0, peak[1] / 1048576.0);
    CHECK(peak[1] < peak[0], "%s: checkpointing did not lower the peak (%zu vs %zu)", what, peak[1],
          peak[0]);
    for (int c = 0; c < 2; c++) train_step_free(&t[c]);
    test_batch_free(&b, &m.be);
    test_models_close(&m);
}

/* Three optimizer steps of two accumulated micro-batches each (the second
 * short), from the same start, with and without set_grads_to_none (and with
 * checkpointing, to cover both levers together): same parameters bit for
 * bit; no gradients between steps; less memory in all. */
static void check_set_grads_to_none(const char *what, const char *dir, int random_weights, int h,
                                    int accumulation) {
    test_models m;
    cnet_error err = {0};
    CHECK(test_models_open(&m, dir, random_weights, &err) == 0, "%s: %s", what, err.msg);
    const int B = 2, Nt = 77;
    test_batch b;
    test_batch_make(&b, &m.be, &m.unet, &m.cn, B, h, h, Nt, 21);
    const size_t np = m.cn.params.total;
    float *start = download(&m.be, m.cn.params.block, np), *after[2];
    size_t memory[2];
    const train_adamw opt = {.lr = 1e-3f,
                             .beta1 = 0.9f,
                             .beta2 = 0.999f,
                             .eps = 1e-8f,
                             .weight_decay = 1e-2f,
                             .max_grad_norm = 1.0f};
    for (int c = 0; c < 2; c++) {
        m.be.upload(&m.be, m.cn.params.block, start, np * sizeof(float));
        train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                                .B = B,
                                .h = h,
                                .w = h,
                                .Nt = Nt,
                                .gradient_checkpointing = 1,
                                .set_grads_to_none = c,
                                .gradient_accumulation_steps = accumulation};
        train_step t;
        CHECK(train_step_init(&t, &m.unet, &m.cn, &m.ddpm, &tc, &err) == 0, "%s: %s", what,
              err.msg);
        CHECK(!c || !t.grads.block, "%s: gradients exist before the first backward", what);
        for (int step = 0; step < 3; step++) {
            for (int mb = 0; mb < accumulation; mb++)
                CHECK(train_step_accumulate(&t, B - (mb & 1), b.lat, b.noise, b.ts, b.text, b.cond,
                                            1.0f / accumulation, NULL, &err) == 0,
                      "%s step %d: %s", what, step, err.msg);
            train_step_optimize(&t, &opt, step + 1, NULL, NULL);
            CHECK(!c || !t.grads.block, "%s: gradients kept after the optimizer step", what);
        }
        memory[c] = t.keep.capacity + t.scratch.capacity + (c ? 0 : t.grads.total * sizeof(float));
        after[c] = download(&m.be, m.cn.params.block, np);
        train_step_free(&t);
    }
    size_t differ = 0;
    for (size_t i = 0; i < np; i++)
        differ += memcmp(&after[0][i], &after[1][i], sizeof(float)) != 0;
    const int moved = memcmp(start, after[0], np * sizeof(float)) != 0;
    free(start), free(after[0]), free(after[1]);
    CHECK(moved, "%s: the optimizer did not change the parameters", what);
    CHECK(differ == 0, "%s: %zu of %zu parameters differ with set_grads_to_none", what, differ, np);
    printf("    %s, accumulation %d: activations + gradients %.2f -> %.2f MiB\n", what,
           accumulation, memory[0] / 1048576.0, memory[1] / 1048576.0);
    /* With accumulation the later forwards run beside the gradients (as in
     * PyTorch): no saving is promised there, only no loss. */
    if (accumulation == 1)
        CHECK(memory[1] < memory[0], "%s: set_grads_to_none saved nothing (%zu vs %zu)", what,
              memory[1], memory[0]);
    else
        CHECK(memory[1] <= memory[0] + (2u << 20), "%s: set_grads_to_none cost memory", what);
    test_batch_free(&b, &m.be);
    test_models_close(&m);
}

static char tiny_dir[256];

static void test_tiny_preset(void) {
    char path[300];
    CHECK(tmpdir_make(tiny_dir, sizeof tiny_dir, "cnet_trainmem_") == 0, "tmpdir");
    const char *subs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer", "controlnet"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", tiny_dir, subs[i]);
        mkdir(path, 0755);
    }
    cnet_error err = {0};
    minit_options mo = {.seed = 3, .nonzero_controlnet = 1};
    CHECK(minit_tiny_configs(tiny_dir, &err) == 0 && minit_pipeline(tiny_dir, &mo, &err) == 0,
          "init: %s", err.msg);
    check_checkpointing("tiny preset", tiny_dir, 0, 8);
}

static void test_fixture_tiny_sd(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny-sd", harness_fixtures());
    check_checkpointing("fixtures/tiny-sd", dir, 0, 8);
}

static void test_fixture_small_sd(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/small-sd", harness_fixtures());
    check_checkpointing("fixtures/small-sd", dir, 1, 8);
}

static void test_set_grads_to_none(void) {
    check_set_grads_to_none("tiny preset", tiny_dir, 0, 8, 1);
    check_set_grads_to_none("tiny preset", tiny_dir, 0, 8, 2);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_tiny_preset);
    RUN(test_fixture_tiny_sd);
    RUN(test_fixture_small_sd);
    RUN(test_set_grads_to_none);
    if (tiny_dir[0]) tmpdir_remove(tiny_dir);
    return harness_done();
}
