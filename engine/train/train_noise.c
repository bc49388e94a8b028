/* --noise_offset; see train_noise.h. */
#include "engine/train/train_noise.h"

void train_noise_offset(cnet_backend *be, float *noise, float *draw, double noise_offset, int B,
                        int HW, int C) {
    be->scale(be, draw, draw, (float)noise_offset, (long)B * C);
    be->add_broadcast(be, noise, noise, draw, B, HW, C);
}
