/* The SDXL ControlNet's backward against goldens-sdxl/train_sdxl.safetensors
 * (real train_controlnet_sdxl.py, diffusers 0.27.2): from the golden
 * noisy latents, timesteps, prompt embeds, text_embeds / time_ids and
 * conditioning image, the engine's ControlNet forward, UNet forward with
 * its residuals, the MSE loss against the golden target, the UNet's
 * backward to the residuals and the ControlNet backward give every
 * ControlNet gradient train.grad.<param> (add_embedding.* and
 * time_embedding.*, which the added embedding's gradient also reaches,
 * included), with and without gradient checkpointing. The residuals,
 * model_pred and loss are compared first, so a wrong gradient is told from
 * a wrong forward.
 *
 * Tolerance of a gradient: 10x the golden's float32-vs-float64 figure
 * (tolerances.json) plus 1e-4 of the tensor's largest magnitude. Skipped
 * when the fixture directory has no goldens-sdxl. Not a training-step
 * test: the data pipeline, clipping and AdamW are other code's. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/arena.h"
#include "engine/models/controlnet.h"
#include "engine/models/unet.h"
#include "server/golden/golden.h"
#include "server/golden/model_io.h"
#include "tests/lib/harness.h"

#define STEP_ARENA_BYTES ((size_t)256 << 20)
/* Part of a tensor's largest magnitude a gradient may be off by. */
#define GRAD_REL_TOL 1e-4

typedef struct sdxl_step {
    cnet_backend be;
    golden_ctx ctx;
    st_file f;
    unet_model unet;
    controlnet_model cn;
    cnet_params grads;
    cnet_arena keep, scratch;
    int B, h, w, Nt;
} sdxl_step;

static const float *host_f32(const st_file *f, const char *name, int64_t numel) {
    const st_entry *e = st_find(f, name);
    if (!e || e->view.dtype != CNET_F32 || cnet_tensor_numel(&e->view) != numel) return NULL;
    return e->view.data;
}

/* max |got - want| over n floats and max |want|. */
static void errors(const float *got, const float *want, size_t n, double *err, double *mag) {
    *err = 0, *mag = 0;
    for (size_t i = 0; i < n; i++) {
        *err = fmax(*err, fabs((double)got[i] - want[i]));
        *mag = fmax(*mag, fabs((double)want[i]));
    }
}

/* Compares a device tensor (PyTorch shape; NHWC on the device when 4-d)
 * with the golden `name`; allowed = 10 x tolerance + GRAD_REL_TOL x max. */
static void expect_close(sdxl_step *s, const char *name, const float *dev, int ndim,
                         const int64_t *shape) {
    const st_entry *e = st_find(&s->f, name);
    EXPECT(e, "no golden '%s'", name);
    if (!e) return;
    float *got = mio_download(&s->be, dev, ndim, shape);
    double tol = 0, err, mag;
    cnet_error ce;
    EXPECT(got && golden_tolerance(&s->ctx, "train_sdxl", name, &tol, &ce) == 0, "%s",
           got ? ce.msg : "out of memory");
    if (got) {
        errors(got, e->view.data, (size_t)cnet_tensor_numel(&e->view), &err, &mag);
        const double allowed = tol + GRAD_REL_TOL * mag;
        EXPECT(err <= allowed, "%s: max abs err %.3g, allowed %.3g (max |golden| %.3g)", name, err,
               allowed, mag);
    }
    free(got);
}

static int step_open(sdxl_step *s, cnet_error *err) {
    memset(s, 0, sizeof *s);
    char path[PATH_MAX + 64];
    int rc = golden_init_dir(&s->ctx, harness_fixtures(), GOLDEN_DIR_SDXL, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s/train_sdxl.safetensors", harness_fixtures(),
                 GOLDEN_DIR_SDXL);
        rc = st_open(&s->f, path, err);
    }
    if (!rc) rc = cnet_backend_cpu_init(&s->be, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/unet", s->ctx.model_dir);
    if ((rc = unet_open(&s->unet, &s->be, path, err))) return rc;
    snprintf(path, sizeof path, "%s/controlnet", s->ctx.model_dir);
    if ((rc = controlnet_open(&s->cn, &s->be, path, err))) return rc;
    if ((rc = params_own(&s->cn.params, err)) || /* trained: not the file's mapping */
        (rc = params_alloc_like(&s->grads, &s->cn.params, err)) ||
        (rc = cnet_arena_init(&s->keep, &s->be, STEP_ARENA_BYTES, "keep", err)) ||
        (rc = cnet_arena_init(&s->scratch, &s->be, STEP_ARENA_BYTES, "scratch", err)))
        return rc;
    const st_entry *x = st_find(&s->f, "train.noisy_latents.0");
    const st_entry *t = st_find(&s->f, "train.prompt_embeds");
    if (!x || !t || x->view.ndim != 4 || t->view.ndim != 3)
        return cnet_fail(err, CNET_EFORMAT, "%s: no noisy_latents.0 / prompt_embeds", s->f.path);
    s->B = (int)x->view.shape[0], s->h = (int)x->view.shape[2], s->w = (int)x->view.shape[3];
    s->Nt = (int)t->view.shape[1];
    return 0;
}

static void step_close(sdxl_step *s) {
    cnet_arena_free(&s->keep);
    cnet_arena_free(&s->scratch);
    params_free(&s->grads);
    controlnet_free(&s->cn);
    unet_free(&s->unet);
    if (s->be.destroy) cnet_backend_free(&s->be);
    st_close(&s->f);
    golden_free(&s->ctx);
}

/* One forward + backward from the golden step-0 inputs; compares all. */
static void run_step(sdxl_step *s, int checkpoint) {
    cnet_backend *be = &s->be;
    cnet_error err = {0};
    const int B = s->B, h = s->h, w = s->w;
    const st_entry *names[5];
    static const char *const inputs[5] = {"train.noisy_latents.0", "train.prompt_embeds",
                                          "train.text_embeds", "train.in.conditioning_pixel_values",
                                          "train.target.0"};
    float *dev[5] = {0};
    for (int i = 0; i < 5; i++) {
        names[i] = st_find(&s->f, inputs[i]);
        CHECK(names[i] && (dev[i] = mio_upload(be, names[i], &err)), "input %s", inputs[i]);
    }
    float t[MIO_MAX_BATCH];
    CHECK(mio_timesteps(&s->f, "train.in.timesteps.0", B, t, &err) == 0, "%s", err.msg);
    const float *ids = host_f32(&s->f, "train.time_ids", (int64_t)B * CNET_TIME_IDS);
    CHECK(ids, "train.time_ids [%d,6]", B);
    const unet_added_cond added = {.text_embeds = dev[2], .time_ids = ids};
    unet_sizes sz;
    CHECK(unet_encoder_sizes(&s->unet.enc, B, h, w, &sz, &err) == 0, "%s", err.msg);
    float *down[UNET_MAX_SKIPS], *d_down[UNET_MAX_SKIPS];
    for (int i = 0; i < sz.n_skips; i++) {
        down[i] = be->alloc(be, sz.skip_floats[i] * sizeof(float));
        d_down[i] = be->alloc(be, sz.skip_floats[i] * sizeof(float));
    }
    const int C = s->unet.enc.cfg.out_channels;
    const size_t n_out = (size_t)B * h * w * C;
    float *mid = be->alloc(be, sz.mid_floats * sizeof(float));
    float *d_mid = be->alloc(be, sz.mid_floats * sizeof(float));
    float *pred = be->alloc(be, n_out * sizeof(float)), *dpred = be->alloc(be, n_out * 4);
    float *loss = be->alloc(be, sizeof(float));
    controlnet_acts cn_acts = {.checkpoint = checkpoint};
    unet_acts un_acts = {.checkpoint = checkpoint};
    cnet_arena_reset(&s->keep);
    be->zero(be, s->grads.block, s->grads.total * sizeof(float));
    int rc = controlnet_forward(&s->cn, &s->scratch, down, mid, dev[0], dev[3], t, dev[1], &added,
                                1.0f, 0, B, h, w, s->Nt, &s->keep, &cn_acts, &err);
    if (!rc)
        rc =
            unet_forward(&s->unet, &s->scratch, pred, dev[0], t, dev[1], &added,
                         (const float *const *)down, mid, B, h, w, s->Nt, &s->keep, &un_acts, &err);
    if (!rc) {
        be->mse_forward(be, loss, pred, dev[4], NULL, B, (long)h * w * C);
        be->mse_backward(be, dpred, pred, dev[4], NULL, B, (long)h * w * C, 1.0f);
        rc = unet_backward(&s->unet, &s->scratch, d_down, d_mid, dpred, &un_acts, B, &err);
    }
    if (!rc)
        rc = controlnet_backward(&s->cn, &s->grads, &s->scratch, (const float *const *)d_down,
                                 d_mid, &cn_acts, &err);
    EXPECT(rc == 0, "step: %s", err.msg);
    if (!rc) {
        char name[GOLDEN_NAME_MAX + PARAM_NAME_MAX];
        for (int i = 0; i < sz.n_skips; i++) {
            const int64_t Ci =
                (int64_t)(sz.skip_floats[i] / ((size_t)B * sz.skip_h[i] * sz.skip_w[i]));
            const int64_t shape[4] = {B, Ci, sz.skip_h[i], sz.skip_w[i]};
            snprintf(name, sizeof name, "train.cn_down.0.%d", i);
            expect_close(s, name, down[i], 4, shape);
        }
        const int Ck = s->cn.enc.cfg.block_out_channels[s->cn.enc.cfg.n_blocks - 1];
        const int64_t ms[4] = {B, Ck, sz.mid_h, sz.mid_w}, ps[4] = {B, C, h, w};
        expect_close(s, "train.cn_mid.0", mid, 4, ms);
        expect_close(s, "train.model_pred.0", pred, 4, ps);
        expect_close(s, "train.loss.0", loss, 0, ps);
        int n_add = 0;
        for (int i = 0; i < s->grads.n; i++) {
            const cnet_param *g = &s->grads.items[i];
            snprintf(name, sizeof name, "train.grad.%s", g->name);
            const st_entry *e = st_find(&s->f, name);
            EXPECT(e && cnet_tensor_numel(&e->view) == (int64_t)g->numel, "no golden %s", name);
            if (!e || cnet_tensor_numel(&e->view) != (int64_t)g->numel) continue;
            float *file = malloc(g->numel * sizeof(float)), *tmp = malloc(g->numel * 4);
            params_read(&s->grads, i, file, tmp); /* PyTorch layout */
            double tol = 0, e_abs, mag;
            cnet_error ce;
            golden_tolerance(&s->ctx, "train_sdxl", name, &tol, &ce);
            errors(file, e->view.data, g->numel, &e_abs, &mag);
            EXPECT(e_abs <= tol + GRAD_REL_TOL * mag, "%s: max abs err %.3g, max |golden| %.3g",
                   name, e_abs, mag);
            n_add += strncmp(g->name, "add_embedding.", 14) == 0;
            free(file);
            free(tmp);
        }
        EXPECT(n_add == 4, "%d add_embedding gradients, want 4", n_add);
    }
    for (int i = 0; i < sz.n_skips; i++) be->free(be, down[i]), be->free(be, d_down[i]);
    float *bufs[] = {mid, d_mid, pred, dpred, loss, dev[0], dev[1], dev[2], dev[3], dev[4]};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->free(be, bufs[i]);
}

static int have_sdxl(void) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/train_sdxl.safetensors", harness_fixtures(),
             GOLDEN_DIR_SDXL);
    return stat(path, &st) == 0;
}

static void test_grads(void) {
    if (!have_sdxl()) return;
    sdxl_step s;
    cnet_error err = {0};
    int rc = step_open(&s, &err);
    if (rc) step_close(&s);
    CHECK(rc == 0, "%s", err.msg);
    run_step(&s, 0);
    run_step(&s, 1);
    step_close(&s);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_grads);
    return harness_done();
}
