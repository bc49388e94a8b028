/* Random training inputs for tests (see lib_trainbatch.h). */
#include "tests/lib_trainbatch.h"

#include <stdlib.h>
#include <string.h>

#include "engine/philox.h"

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
