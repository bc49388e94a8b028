/* Random training inputs for tests (see lib_trainbatch.h). */
#include "tests/lib/lib_trainbatch.h"

#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "engine/config/config.h"
#include "engine/core/philox.h"
#include "engine/init/weights_init.h"

void test_batch_make(test_batch *b, cnet_backend *be, const unet_model *unet,
                     const controlnet_model *cn, int B, int h, int w, int Nt, uint64_t seed) {
    memset(b, 0, sizeof *b);
    const int f = controlnet_image_factor(cn);
    const size_t nl = (size_t)B * h * w * unet->enc.cfg.in_channels,
                 nt = (size_t)B * Nt * unet->enc.cfg.cross_attention_dim[0],
                 nc = (size_t)B * h * f * w * f * cn->cond_channels;
    float *host = malloc((nl * 2 + nt + nc) * sizeof(float));
    if (!host) return;
    philox_normal_fill(host, (long)(nl * 2 + nt), seed, 0);
    for (size_t i = 0; i < nc; i++)
        host[nl * 2 + nt + i] = (float)(philox_u32(seed + 1, i) % 256) / 255.0f;
    b->lat = be->alloc(be, nl * sizeof(float)), b->noise = be->alloc(be, nl * sizeof(float));
    b->text = be->alloc(be, nt * sizeof(float)), b->cond = be->alloc(be, nc * sizeof(float));
    if (b->lat && b->noise && b->text && b->cond) {
        be->upload(be, b->lat, host, nl * sizeof(float));
        be->upload(be, b->noise, host + nl, nl * sizeof(float));
        be->upload(be, b->text, host + 2 * nl, nt * sizeof(float));
        be->upload(be, b->cond, host + 2 * nl + nt, nc * sizeof(float));
    }
    b->ts[0] = 250, b->ts[1] = 800;
    free(host);
}

void test_batch_free(test_batch *b, cnet_backend *be) {
    float *bufs[] = {b->lat, b->noise, b->text, b->cond};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) be->free(be, bufs[i]);
    memset(b, 0, sizeof *b);
}

/* Loads dir's unet/ and controlnet/ (random weights when random_weights:
 * the folder holds configs only) and its DDPM scheduler config. */
int test_models_open(test_models *m, const char *dir, int random_weights, cnet_error *err) {
    char path[512];
    cnet_unet_config uc, cc;
    memset(m, 0, sizeof *m);
    int rc = cnet_backend_cpu_init(&m->be, err);
    if (!rc && random_weights) {
        snprintf(path, sizeof path, "%s/unet/config.json", dir);
        if (!(rc = cnet_unet_config_load(&uc, path, err)) &&
            !(rc = unet_init(&m->unet, &m->be, &uc, err)))
            rc = winit_random(&m->unet.params, 1, "unet", err);
        snprintf(path, sizeof path, "%s/controlnet/config.json", dir);
        if (!rc && !(rc = cnet_controlnet_config_load(&cc, path, err)) &&
            !(rc = controlnet_init(&m->cn, &m->be, &cc, err)))
            rc = winit_random(&m->cn.params, 2, "controlnet", err);
    } else if (!rc) {
        snprintf(path, sizeof path, "%s/unet", dir);
        if (!(rc = unet_open(&m->unet, &m->be, path, err))) {
            snprintf(path, sizeof path, "%s/controlnet", dir);
            rc = controlnet_open(&m->cn, &m->be, path, err);
            /* the trained model owns its values, as train_step_init makes it:
             * the tests read and write its whole block */
            if (!rc) rc = params_own(&m->cn.params, err);
        }
    }
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    if (!rc && !(rc = cnet_sched_config_load(&m->scfg, path, CNET_SCHED_DDPM, err)))
        rc = sched_init(&m->ddpm, &m->be, &m->scfg, 0, err);
    return rc;
}

void test_models_close(test_models *m) {
    sched_free(&m->ddpm);
    cnet_sched_config_free(&m->scfg);
    controlnet_free(&m->cn);
    unet_free(&m->unet);
    cnet_backend_free(&m->be);
}
