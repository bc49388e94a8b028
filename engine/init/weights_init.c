/* Random parameter values from the Philox stream; see weights_init.h. */
#include "engine/init/weights_init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/nn.h"
#include "engine/core/philox.h"

/* Norm parameters: weight 1 + U(-NORM_SPREAD, NORM_SPREAD), bias U(-..). */
#define WINIT_NORM_SPREAD 0.1f

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

/* n uniforms in (-bound, bound) of the stream (seed, tag/name) into host. */
static void winit_uniform(float *host, size_t n, float bound, uint64_t seed, const char *tag,
                          const char *name) {
    uint64_t h = fnv1a(fnv1a(fnv1a(0xCBF29CE484222325ull, tag), "/"), name);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const double inv_2_32 = 1.0 / 4294967296.0;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t j = 0; j < (n + 3) / 4; j++) {
        const uint32_t ctr[4] = {(uint32_t)j, (uint32_t)((uint64_t)j >> 32), (uint32_t)h,
                                 (uint32_t)(h >> 32)};
        uint32_t x[4];
        philox4x32_10(x, ctr, key);
        for (size_t lane = 0; lane < 4 && 4 * j + lane < n; lane++) {
            double u = ((double)x[lane] + 0.5) * inv_2_32;
            host[4 * j + lane] = (float)(bound * (2.0 * u - 1.0));
        }
    }
}

/* The bound 1/sqrt(fan_in) of a 2-d (Linear) or 4-d (Conv2d) weight. */
static float winit_fan_in_bound(const cnet_param *w) {
    int64_t fan_in = w->shape[1];
    if (w->ndim == 4) fan_in *= w->shape[2] * w->shape[3];
    return (float)(1.0 / sqrt((double)fan_in));
}

/* Fills q with bound * U(-1, 1) + center, uploaded to the backend. */
static int fill(cnet_params *p, const cnet_param *q, float center, float bound, uint64_t seed,
                const char *tag, cnet_error *err) {
    float *host = malloc((q->numel ? q->numel : 1) * sizeof(float));
    if (!host) return cnet_fail(err, CNET_ENOMEM, "out of memory initialising '%s'", q->name);
    winit_uniform(host, q->numel, bound, seed, tag, q->name);
    if (center != 0.0f)
        for (size_t i = 0; i < q->numel; i++) host[i] += center;
    p->be->upload(p->be, q->data, host, q->numel * sizeof(float));
    free(host);
    return 0;
}

int winit_torch_default(cnet_params *p, const char *prefix, uint64_t seed, const char *tag,
                        cnet_error *err) {
    char name[NN_NAME_BUF];
    const cnet_param *w = params_find(p, nn_sub(name, prefix, "weight"));
    if (!w || (w->ndim != 2 && w->ndim != 4))
        return cnet_fail(err, CNET_EINVAL, "'%s' is not a Linear or Conv2d weight", name);
    const float bound = winit_fan_in_bound(w);
    int rc = fill(p, w, 0.0f, bound, seed, tag, err);
    const cnet_param *b = params_find(p, nn_sub(name, prefix, "bias"));
    if (!rc && b) rc = fill(p, b, 0.0f, bound, seed, tag, err);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int winit_random(cnet_params *p, uint64_t seed, const char *tag, cnet_error *err) {
    for (int i = 0; i < p->n; i++) {
        const cnet_param *q = &p->items[i];
        char prefix[PARAM_NAME_MAX], name[NN_NAME_BUF];
        int rc;
        const int is_weight = ends_with(q->name, ".weight"), is_bias = ends_with(q->name, ".bias");
        if (!is_weight && !is_bias)
            return cnet_fail(err, CNET_EINVAL, "cannot initialise '%s': not a weight or a bias",
                             q->name);
        snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(q->name) - (is_bias ? 5 : 7)),
                 q->name);
        const cnet_param *w = is_bias ? params_find(p, nn_sub(name, prefix, "weight")) : q;
        if (is_weight && q->ndim == 2 && ends_with(q->name, "embedding.weight"))
            rc = fill(p, q, 0.0f, sqrtf(3.0f), seed, tag, err);
        else if (w && (w->ndim == 2 || w->ndim == 4))
            rc = fill(p, q, 0.0f, winit_fan_in_bound(w), seed, tag, err);
        else if (w && w->ndim == 1)
            rc = fill(p, q, is_weight ? 1.0f : 0.0f, WINIT_NORM_SPREAD, seed, tag, err);
        else
            return cnet_fail(err, CNET_EINVAL,
                             "cannot initialise '%s': no 1-d, 2-d or 4-d weight '%s.weight'",
                             q->name, prefix);
        if (rc) return rc;
    }
    return 0;
}
