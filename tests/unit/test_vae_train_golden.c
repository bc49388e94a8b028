/* cnet train-vae's loss and backward against an independent truth: a torch
 * AutoencoderKL written in tests/tools/vae_train_ref.py (float64 autograd,
 * not diffusers' code) on the VAE of tests/fixtures-vae-train/vae (the
 * tiny-sd fixture's, copied: the golden holds for those weights whatever
 * --fixtures names), whose inputs, losses and every parameter's gradient
 * are committed beside it (the tool regenerates them; this test
 * needs no torch), through the gradient computation train_vae.c runs each
 * step (vae_step_grads, engine/train/train_vae_step.h).
 *
 * Bounds: the losses within LOSS_REL; each tensor's gradient within
 * GRAD_REL of the truth's norm, plus GRAD_FLOOR of the largest tensor rms
 * (for the attention's to_k bias, whose true gradient is zero: float32
 * leaves rounding there). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/safetensors.h"
#include "engine/models/vae.h"
#include "engine/train/train_vae_step.h"
#include "tests/lib/harness.h"

#define VAE_TRAIN_FIXTURES "tests/fixtures-vae-train"

/* the tool's KL_WEIGHT */
#define KL_WEIGHT 1e-2
/* float32 forward and backward against float64: the accumulated rounding
 * through ~40 layers measured at 4e-6 of a tensor's gradient norm (a wrong
 * KL gradient moves 69 tensors by ~1) and 1e-7 of the losses. */
#define LOSS_REL 1e-5
#define GRAD_REL 1e-4
#define GRAD_FLOOR 1e-5

static const float *tensor(const st_file *f, const char *name, size_t n) {
    const st_entry *e = st_find(f, name);
    return e && e->nbytes == n * sizeof(float) ? e->view.data : NULL;
}

static void test_step_matches_torch(void) {
    char path[512];
    cnet_backend be;
    vae_model m;
    cnet_error err = {0};
    st_file in = {0}, ref = {0};
    snprintf(path, sizeof path, "%s/vae", VAE_TRAIN_FIXTURES);
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    CHECK(vae_open(&m, &be, path, &err) == 0 && params_own(&m.params, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/inputs.safetensors", VAE_TRAIN_FIXTURES);
    CHECK(st_open(&in, path, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/grads.safetensors", VAE_TRAIN_FIXTURES);
    CHECK(st_open(&ref, path, &err) == 0, "%s", err.msg);
    const st_entry *xe = st_find(&in, "x");
    CHECK(xe && xe->view.ndim == 4, "inputs.safetensors: no x [B, H, W, 3]");
    const int B = (int)xe->view.shape[0], H = (int)xe->view.shape[1], L = m.cfg.latent_channels;
    const int h = H / vae_factor(&m);
    const long img = (long)B * H * H * 3, lat = (long)B * h * h * L;
    const float *x = tensor(&in, "x", img), *eps = tensor(&in, "eps", lat);
    const float *loss_ref = tensor(&in, "loss", 3);
    CHECK(x && eps && loss_ref, "inputs.safetensors: x, eps or loss missing or mis-sized");

    cnet_params g;
    vae_step step;
    double mse, kl;
    CHECK(params_alloc_like(&g, &m.params, &err) == 0, "%s", err.msg);
    CHECK(vae_step_init(&step, &m, B, H, &err) == 0, "%s", err.msg);
    be.zero(&be, g.block, g.total * sizeof(float));
    float *pixels = be.alloc(&be, img * sizeof(float));
    CHECK(pixels, "out of memory");
    be.upload(&be, pixels, x, img * sizeof(float));
    CHECK(vae_step_grads(&step, &g, pixels, eps, B, KL_WEIGHT, 1.0f, &mse, &kl, &err) == 0, "%s",
          err.msg);
    printf("    mse %.9g (torch %.9g), kl %.9g (torch %.9g)\n", mse, loss_ref[0], kl, loss_ref[1]);
    CHECK(fabs(mse - loss_ref[0]) <= LOSS_REL * fabs(loss_ref[0]), "reconstruction loss differs");
    CHECK(fabs(kl - loss_ref[1]) <= LOSS_REL * fabs(loss_ref[1]), "KL differs");

    double top_rms = 0;
    for (int k = 0; k < m.params.n; k++) {
        const cnet_param *q = &m.params.items[k];
        const float *r = tensor(&ref, q->name, q->numel);
        CHECK(r, "grads.safetensors: %s missing or mis-sized", q->name);
        double ss = 0;
        for (size_t i = 0; i < q->numel; i++) ss += (double)r[i] * r[i];
        top_rms = fmax(top_rms, sqrt(ss / (double)q->numel));
    }
    int bad = 0;
    double worst = 0;
    for (int k = 0; k < m.params.n; k++) {
        const cnet_param *q = &m.params.items[k];
        const float *r = tensor(&ref, q->name, q->numel);
        float *mine = malloc(q->numel * sizeof(float)), *tmp = malloc(q->numel * sizeof(float));
        CHECK(mine && tmp, "out of memory");
        params_read(&g, k, mine, tmp);
        double dd = 0, rr = 0;
        for (size_t i = 0; i < q->numel; i++) {
            const double d = (double)mine[i] - r[i];
            dd += d * d, rr += (double)r[i] * r[i];
        }
        free(mine), free(tmp);
        const double floor = GRAD_FLOOR * top_rms * sqrt((double)q->numel);
        const double allowed = GRAD_REL * sqrt(rr) + floor;
        if (sqrt(rr) > floor) worst = fmax(worst, sqrt(dd / rr)); /* not the zero to_k bias */
        if (!(sqrt(dd) <= allowed) && bad++ < 10)
            printf("    %s: |cnet - torch| %.3g, |torch| %.3g (allowed %.3g)\n", q->name, sqrt(dd),
                   sqrt(rr), allowed);
    }
    printf("    %d tensors, worst |cnet - torch| / |torch| %.3g (gradients above the floor)\n",
           m.params.n, worst);
    be.free(&be, pixels);
    vae_step_free(&step);
    params_free(&g);
    st_close(&in), st_close(&ref);
    vae_free(&m);
    cnet_backend_free(&be);
    CHECK(bad == 0, "%d tensors' gradients differ from torch's", bad);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_step_matches_torch);
    return harness_done();
}
