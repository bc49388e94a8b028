/* One batch of random training inputs for engine-level training tests:
 * latents, noise, text states and a conditioning image in [0,1], sized for
 * a UNet and ControlNet, on their backend; two fixed timesteps. */
#ifndef CNET_TEST_LIB_TRAINBATCH_H
#define CNET_TEST_LIB_TRAINBATCH_H

#include <stdint.h>

#include "engine/controlnet.h"
#include "engine/unet.h"

typedef struct test_batch {
    float *lat, *noise, *text, *cond; /* device */
    int64_t ts[2];                    /* host: timesteps of the (up to) two samples */
} test_batch;

/* B <= 2 samples of h x w latents and Nt text tokens; seed picks the values. */
void test_batch_make(test_batch *b, cnet_backend *be, const unet_model *unet,
                     const controlnet_model *cn, int B, int h, int w, int Nt, uint64_t seed);
void test_batch_free(test_batch *b, cnet_backend *be);

#endif
