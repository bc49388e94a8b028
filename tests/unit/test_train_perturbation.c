/* train_text_to_image.py's --input_perturbation in the training step
 * (train_step_accumulate_perturbed, the whole UNet trained): add_noise
 * takes the perturbed noise while the target keeps the unperturbed one,
 *
 *   noisy_latents = add_noise(latents, new_noise, t);  target = noise
 *
 * and without a perturbed noise both use the noise. Truth: the DDPM
 * add_noise of the scheduler on the same inputs, and the noise itself
 * (epsilon prediction), bit for bit; on the fixtures' tiny-sd. */
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/train/train_step.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_trainbatch.h"

#define B_SAMPLES 2
#define LATENT 8
#define TOKENS 77

static int same(cnet_backend *be, const float *a, const float *b, size_t n) {
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    be->download(be, x, a, n * sizeof(float));
    be->download(be, y, b, n * sizeof(float));
    const int eq = memcmp(x, y, n * sizeof(float)) == 0;
    free(x), free(y);
    return eq;
}

static void test_perturbed_noise_feeds_add_noise_only(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny-sd", harness_fixtures());
    test_models m;
    cnet_error err = {0};
    CHECK(test_models_open(&m, dir, 0, &err) == 0, "%s", err.msg);
    test_batch b;
    test_batch_make(&b, &m.be, &m.unet, &m.cn, B_SAMPLES, LATENT, LATENT, TOKENS, 5);
    const long per = (long)LATENT * LATENT * m.unet.enc.cfg.in_channels;
    const size_t n = (size_t)B_SAMPLES * per;
    float *host = malloc(n * sizeof(float));
    float *perturbed = m.be.alloc(&m.be, n * sizeof(float));
    float *want = m.be.alloc(&m.be, n * sizeof(float));
    CHECK(host && perturbed && want, "out of memory");
    philox_normal_fill(host, (long)n, 9, 0);
    m.be.upload(&m.be, perturbed, host, n * sizeof(float));
    free(host);
    train_step_config cfg = {
        .prediction = TRAIN_PRED_EPSILON, .B = B_SAMPLES, .h = LATENT, .w = LATENT, .Nt = TOKENS};
    train_step t;
    CHECK(train_step_init(&t, &m.unet, NULL, &m.ddpm, &cfg, &err) == 0, "%s", err.msg);
    int ok_noisy = 0, ok_target = 0, ok_plain = 0;
    if (train_step_accumulate_perturbed(&t, B_SAMPLES, b.lat, b.noise, perturbed, b.ts, b.text,
                                        NULL, NULL, 1.0f, NULL, &err) == 0 &&
        sched_add_noise(&m.ddpm, want, b.lat, perturbed, b.ts, B_SAMPLES, per, &err) == 0) {
        ok_noisy = same(&m.be, t.noisy, want, n);
        ok_target = same(&m.be, t.target, b.noise, n);
    }
    if (train_step_accumulate_perturbed(&t, B_SAMPLES, b.lat, b.noise, NULL, b.ts, b.text, NULL,
                                        NULL, 1.0f, NULL, &err) == 0 &&
        sched_add_noise(&m.ddpm, want, b.lat, b.noise, b.ts, B_SAMPLES, per, &err) == 0)
        ok_plain = same(&m.be, t.noisy, want, n);
    train_step_free(&t);
    m.be.free(&m.be, perturbed), m.be.free(&m.be, want);
    test_batch_free(&b, &m.be);
    test_models_close(&m);
    CHECK(!err.msg[0], "%s", err.msg);
    CHECK(ok_noisy, "noisy latents are not add_noise(latents, perturbed noise)");
    CHECK(ok_target, "the target is not the unperturbed noise");
    CHECK(ok_plain, "without a perturbed noise, noisy latents are not add_noise(latents, noise)");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_perturbed_noise_feeds_add_noise_only);
    return harness_done();
}
