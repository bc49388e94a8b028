/* Random parameter values drawn from cnet's Philox stream, for models that
 * start from scratch (`cnet init-model`) and for the freshly initialised
 * tensors of ControlNetModel.from_unet.
 *
 * Stream: a parameter's values depend only on (seed, tag, name): the Philox
 * key is the seed, the counter is { lo32(j), hi32(j), lo32(h), hi32(h) } with
 * h = 64-bit FNV-1a of "<tag>/<name>" and j = i / 4 for element i (lane
 * i % 4), i counted in the engine's memory order (conv weights OHWI). A
 * uniform is u = (x + 0.5) * 2^-32 in (0, 1), mapped to bound * (2u - 1).
 * So the same name in two tables (a UNet and its ControlNet) gets
 * independent values when the tags differ, and declaration order does not
 * matter.
 *
 * Not here: PyTorch's own RNG (its values cannot be reproduced without
 * running it); only the distributions are the same. */
#ifndef CNET_WEIGHTS_INIT_H
#define CNET_WEIGHTS_INIT_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/params.h"

/* PyTorch's default initialisation of nn.Conv2d and nn.Linear
 * (reset_parameters): weight ~ kaiming_uniform_(a = sqrt(5)), which is
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and bias ~ U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), fan_in = C_in * kh * kw (in for a Linear). Sets
 * "<prefix>.weight" and, when declared, "<prefix>.bias". */
int winit_torch_default(cnet_params *p, const char *prefix, uint64_t seed, const char *tag,
                        cnet_error *err);

/* Every parameter of a table, non-zero, chosen by name and shape so that
 * activations stay O(1):
 *   - conv / linear weights and their biases: winit_torch_default;
 *   - norm weights (1-d "<x>.weight" without a 2-d/4-d partner): 1 + U(-0.1, 0.1),
 *     norm biases: U(-0.1, 0.1);
 *   - embedding tables (2-d "...embedding.weight"): unit-variance uniform.
 * Fails naming a parameter that fits none of these. */
int winit_random(cnet_params *p, uint64_t seed, const char *tag, cnet_error *err);

#endif
