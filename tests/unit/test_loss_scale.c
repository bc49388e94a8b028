/* Dynamic loss scaling (--mixed_precision fp16, engine/train/loss_scale.h):
 *
 * - the update rule against GradScaler's, step by step: halving and a skip
 *   count on inf/NaN, doubling after 2000 good steps in a row, the counter
 *   reset by a bad step, the floor and the ceiling;
 * - trainer_state.json fields: round trip, refusal of bad values;
 * - the engine pieces on the tiny preset: a step whose gradients hold an
 *   injected inf or NaN leaves the weights and AdamW's state (float32 and
 *   8-bit) untouched, gives the gradients back (set_grads_to_none) and halves
 *   the scale; and the gradients of a scaled backward are exactly scale times
 *   the plain ones, so two scaled steps give the plain steps' weights bit for
 *   bit with the same (unscaled) gradient norm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/train/loss_scale.h"
#include "engine/init/model_init.h"
#include "engine/core/philox.h"
#include "engine/train/train_step.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_trainbatch.h"

static void test_update_rule(void) {
    loss_scale s;
    loss_scale_init(&s);
    CHECK(s.scale == 65536.0f && s.growth_tracker == 0 && s.skipped == 0, "init %g", s.scale);
    for (int i = 0; i < LOSS_SCALE_GROWTH_INTERVAL - 1; i++) loss_scale_update(&s, 1);
    CHECK(s.scale == 65536.0f && s.growth_tracker == 1999, "after 1999 good steps: %g, %d", s.scale,
          s.growth_tracker);
    loss_scale_update(&s, 1);
    CHECK(s.scale == 131072.0f && s.growth_tracker == 0, "2000th good step: %g, %d", s.scale,
          s.growth_tracker);
    for (int i = 0; i < 1500; i++) loss_scale_update(&s, 1);
    loss_scale_update(&s, 0);
    CHECK(s.scale == 65536.0f && s.growth_tracker == 0 && s.skipped == 1,
          "bad step: %g, tracker %d, skipped %lld", s.scale, s.growth_tracker,
          (long long)s.skipped);
    for (int i = 0; i < 1999; i++) loss_scale_update(&s, 1);
    CHECK(s.scale == 65536.0f, "the bad step did not reset the count (%g)", s.scale);
    loss_scale_update(&s, 1);
    CHECK(s.scale == 131072.0f, "no growth 2000 steps after the reset (%g)", s.scale);
    for (int i = 0; i < 40; i++) loss_scale_update(&s, 0);
    CHECK(s.scale == LOSS_SCALE_MIN && s.skipped == 41, "floor: %g, skipped %lld", s.scale,
          (long long)s.skipped);
    s.scale = LOSS_SCALE_MAX;
    for (int i = 0; i < LOSS_SCALE_GROWTH_INTERVAL; i++) loss_scale_update(&s, 1);
    CHECK(s.scale == LOSS_SCALE_MAX && s.growth_tracker == 0, "ceiling: %g", s.scale);
}

static void test_state_fields(void) {
    cnet_error err = {0};
    loss_scale s = {.scale = 8192.0f, .growth_tracker = 17, .skipped = 3}, r;
    loss_scale_init(&r);
    json_t *state = json_object();
    CHECK(loss_scale_save(&s, state, &err) == 0, "%s", err.msg);
    CHECK(loss_scale_load(&r, state, &err) == 0, "%s", err.msg);
    CHECK(r.scale == s.scale && r.growth_tracker == 17 && r.skipped == 3, "round trip %g %d %lld",
          r.scale, r.growth_tracker, (long long)r.skipped);
    json_object_set_new(state, "loss_scale", json_real(3.0));
    EXPECT(loss_scale_load(&r, state, &err) == CNET_EFORMAT && strstr(err.msg, "loss_scale"),
           "a scale of 3 accepted: %s", err.msg);
    json_object_set_new(state, "loss_scale", json_real(1024.0));
    json_object_set_new(state, "loss_scale_growth_tracker", json_integer(2000));
    EXPECT(loss_scale_load(&r, state, &err) == CNET_EFORMAT &&
               strstr(err.msg, "loss_scale_growth_tracker"),
           "a tracker of 2000 accepted: %s", err.msg);
    json_decref(state);
    state = json_object();
    loss_scale_init(&r);
    EXPECT(loss_scale_load(&r, state, &err) == CNET_ENOTFOUND && r.scale == LOSS_SCALE_INIT,
           "a state without the fields: %s", err.msg);
    json_decref(state);
}

/* The tiny preset's UNet, ControlNet (non-zero zero convs) and DDPM, and the
 * inputs every step uses. */
typedef struct models {
    test_models tm;
    test_batch b;
} models;

enum { B = 2, H = 8, NT = 77 };

static char tiny_dir[256];

static int models_open(models *m, cnet_error *err) {
    char path[512];
    memset(m, 0, sizeof *m);
    const char *subs[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer", "controlnet"};
    if (tmpdir_make(tiny_dir, sizeof tiny_dir, "cnet_lossscale_") != 0)
        return cnet_fail(err, CNET_EIO, "tmpdir");
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", tiny_dir, subs[i]);
        mkdir(path, 0755);
    }
    minit_options mo = {.seed = 3, .nonzero_controlnet = 1};
    int rc;
    if ((rc = minit_tiny_configs(tiny_dir, err)) || (rc = minit_pipeline(tiny_dir, &mo, err)) ||
        (rc = test_models_open(&m->tm, tiny_dir, 0, err)))
        return rc;
    test_batch_make(&m->b, &m->tm.be, &m->tm.unet, &m->tm.cn, B, H, H, NT, 31);
    return 0;
}

static void models_close(models *m) {
    test_batch_free(&m->b, &m->tm.be);
    test_models_close(&m->tm);
    if (tiny_dir[0]) tmpdir_remove(tiny_dir);
}

/* Every byte of AdamW's state, float32 or 8-bit form, on the host. */
static size_t adam_snapshot(const adam_state *a, unsigned char **out) {
    cnet_backend *be = a->be;
    const size_t f32 = a->use_8bit ? 0 : (a->hi - a->lo) * sizeof(float);
    struct {
        const void *p;
        size_t bytes;
    } parts[] = {{a->m, f32},
                 {a->v, f32},
                 {a->codes_m, a->n_8bit},
                 {a->codes_v, a->n_8bit},
                 {a->absmax_m, a->n_blocks * sizeof(float)},
                 {a->absmax_v, a->n_blocks * sizeof(float)},
                 {a->small_m, a->n_small * sizeof(float)},
                 {a->small_v, a->n_small * sizeof(float)}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].p) total += parts[i].bytes;
    *out = malloc(total ? total : 1);
    size_t at = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].p && parts[i].bytes) {
            be->download(be, *out + at, parts[i].p, parts[i].bytes);
            at += parts[i].bytes;
        }
    return total;
}

static const train_adamw opt = {.lr = 1e-3f,
                                .beta1 = 0.9f,
                                .beta2 = 0.999f,
                                .eps = 1e-8f,
                                .weight_decay = 1e-2f,
                                .max_grad_norm = 1.0f};

/* One good step, then a step with `bad` written into one gradient: the bad
 * step changes neither weights nor AdamW state, halves the scale and gives
 * the gradients back; a good step after it trains again. */
static void check_skip(models *m, int use_8bit, float bad) {
    cnet_error err = {0};
    cnet_backend *be = &m->tm.be;
    train_step_config tc = {.prediction = TRAIN_PRED_EPSILON,
                            .B = B,
                            .h = H,
                            .w = H,
                            .Nt = NT,
                            .set_grads_to_none = 1,
                            .use_8bit_adam = use_8bit};
    train_step t;
    CHECK(train_step_init(&t, &m->tm.unet, &m->tm.cn, &m->tm.ddpm, &tc, &err) == 0, "%s", err.msg);
    loss_scale ls;
    loss_scale_init(&ls);
    const size_t np = m->tm.cn.params.total;
    float *w0 = malloc(np * sizeof(float)), *w1 = malloc(np * sizeof(float));
    unsigned char *a0, *a1;
    float norm;
    CHECK(train_step_accumulate(&t, B, m->b.lat, m->b.noise, m->b.ts, m->b.text, m->b.cond,
                                ls.scale, NULL, &err) == 0,
          "%s", err.msg);
    CHECK(train_step_optimize(&t, &opt, 1, &ls, &norm) == 1 && isfinite(norm), "good step 1");
    be->download(be, w0, m->tm.cn.params.block, np * sizeof(float));
    const size_t na = adam_snapshot(&t.adam, &a0);

    CHECK(train_step_accumulate(&t, B, m->b.lat, m->b.noise, m->b.ts, m->b.text, m->b.cond,
                                ls.scale, NULL, &err) == 0,
          "%s", err.msg);
    be->upload(be, t.grads.block + t.grads.total / 3, &bad, sizeof bad);
    CHECK(train_step_optimize(&t, &opt, 2, &ls, &norm) == 0, "a step with a %g gradient ran", bad);
    CHECK(!isfinite(norm), "norm %g of a step with a %g gradient", norm, bad);
    CHECK(ls.scale == 32768.0f && ls.skipped == 1 && ls.growth_tracker == 0,
          "after the bad step: scale %g, skipped %lld", ls.scale, (long long)ls.skipped);
    CHECK(!t.grads.block, "gradients kept after a skipped step");
    be->download(be, w1, m->tm.cn.params.block, np * sizeof(float));
    CHECK(adam_snapshot(&t.adam, &a1) == na, "AdamW state size changed");
    CHECK(memcmp(w0, w1, np * sizeof(float)) == 0, "a skipped step changed the weights");
    CHECK(memcmp(a0, a1, na) == 0, "a skipped step changed AdamW's state (%zu bytes)", na);
    free(a1);

    CHECK(train_step_accumulate(&t, B, m->b.lat, m->b.noise, m->b.ts, m->b.text, m->b.cond,
                                ls.scale, NULL, &err) == 0,
          "%s", err.msg);
    CHECK(train_step_optimize(&t, &opt, 2, &ls, &norm) == 1 && isfinite(norm), "good step after");
    be->download(be, w1, m->tm.cn.params.block, np * sizeof(float));
    CHECK(memcmp(w0, w1, np * sizeof(float)) != 0, "the step after a skip did not train");
    printf("    %s AdamW, %g injected: skipped, %zu state bytes untouched\n",
           use_8bit ? "8-bit" : "float32", bad, na);
    free(w0), free(w1), free(a0);
    train_step_free(&t);
}

/* Two optimizer steps from the same start, plain and scaled by 2^16: the
 * scaled gradients are exactly 2^16 times the plain ones, and the weights
 * and norms after unscaling equal the plain run's bit for bit. */
static void check_scaled_equals_plain(models *m) {
    cnet_error err = {0};
    cnet_backend *be = &m->tm.be;
    const size_t np = m->tm.cn.params.total;
    float *start = malloc(np * sizeof(float)), *after[2], norms[2][2];
    float *grads[2];
    be->download(be, start, m->tm.cn.params.block, np * sizeof(float));
    for (int c = 0; c < 2; c++) {
        be->upload(be, m->tm.cn.params.block, start, np * sizeof(float));
        train_step_config tc = {.prediction = TRAIN_PRED_EPSILON, .B = B, .h = H, .w = H, .Nt = NT};
        train_step t;
        CHECK(train_step_init(&t, &m->tm.unet, &m->tm.cn, &m->tm.ddpm, &tc, &err) == 0, "%s",
              err.msg);
        loss_scale ls;
        loss_scale_init(&ls);
        for (int step = 0; step < 2; step++) {
            CHECK(train_step_accumulate(&t, B, m->b.lat, m->b.noise, m->b.ts, m->b.text, m->b.cond,
                                        c ? ls.scale : 1.0f, NULL, &err) == 0,
                  "%s", err.msg);
            if (step == 0) {
                grads[c] = malloc(t.grads.total * sizeof(float));
                be->download(be, grads[c], t.grads.block, t.grads.total * sizeof(float));
            }
            train_step_optimize(&t, &opt, step + 1, c ? &ls : NULL, &norms[c][step]);
        }
        after[c] = malloc(np * sizeof(float));
        be->download(be, after[c], m->tm.cn.params.block, np * sizeof(float));
        train_step_free(&t);
    }
    size_t not_scaled = 0, nonzero = 0;
    for (size_t i = 0; i < np; i++) {
        not_scaled += grads[1][i] != grads[0][i] * LOSS_SCALE_INIT;
        nonzero += grads[0][i] != 0;
    }
    const int same = memcmp(after[0], after[1], np * sizeof(float)) == 0;
    const int moved = memcmp(start, after[0], np * sizeof(float)) != 0;
    free(start), free(after[0]), free(after[1]), free(grads[0]), free(grads[1]);
    CHECK(nonzero > np / 2, "only %zu of %zu gradients non-zero", nonzero, np);
    CHECK(not_scaled == 0, "%zu of %zu scaled gradients are not 2^16 x the plain ones", not_scaled,
          np);
    CHECK(moved && same, "weights after two scaled steps differ from the plain ones");
    CHECK(norms[0][0] == norms[1][0] && norms[0][1] == norms[1][1],
          "norms %.9g %.9g plain vs %.9g %.9g scaled", norms[0][0], norms[0][1], norms[1][0],
          norms[1][1]);
}

static void test_engine_steps(void) {
    models m;
    cnet_error err = {0};
    CHECK(models_open(&m, &err) == 0, "tiny preset: %s", err.msg);
    check_scaled_equals_plain(&m);
    check_skip(&m, 0, INFINITY);
    check_skip(&m, 1, NAN);
    models_close(&m);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_update_rule);
    RUN(test_state_fields);
    RUN(test_engine_steps);
    return harness_done();
}
