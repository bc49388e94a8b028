/* What engine-level training tests run on: a CPU backend with a UNet, a
 * ControlNet and the DDPM noise scheduler of a pipeline folder; and one
 * batch of random training inputs:
 * latents, noise, text states and a conditioning image in [0,1], sized for
 * a UNet and ControlNet, on their backend; two fixed timesteps. */
#ifndef CNET_TEST_LIB_TRAINBATCH_H
#define CNET_TEST_LIB_TRAINBATCH_H

#include <stdint.h>

#include "engine/models/controlnet.h"
#include "engine/core/error.h"
#include "engine/sched/scheduler.h"
#include "engine/models/unet.h"

typedef struct test_models {
    cnet_backend be;
    unet_model unet;
    controlnet_model cn;
    cnet_sched_config scfg;
    sched ddpm;
} test_models;

/* Loads dir's unet/ and controlnet/ (random weights when random_weights:
 * the folder holds configs only) and its DDPM scheduler config. */
int test_models_open(test_models *m, const char *dir, int random_weights, cnet_error *err);
void test_models_close(test_models *m);

typedef struct test_batch {
    float *lat, *noise, *text, *cond; /* device */
    int64_t ts[2];                    /* host: timesteps of the (up to) two samples */
} test_batch;

/* B <= 2 samples of h x w latents and Nt text tokens; seed picks the values. */
void test_batch_make(test_batch *b, cnet_backend *be, const unet_model *unet,
                     const controlnet_model *cn, int B, int h, int w, int Nt, uint64_t seed);
void test_batch_free(test_batch *b, cnet_backend *be);

#endif
