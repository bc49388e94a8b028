/* A model's backward to every parameter tensor against central finite
 * differences of its forward (test_unet_grads, test_vae_grads): for each
 * tensor, the directional derivative <g, v> along a random direction v must
 * match (L(w + e v) - L(w - e v)) / 2e, e a part of the tensor's rms (at
 * least eps_min), within
 *
 *   rel |<g,v>| + abs |g|_2 |v|_2 / sqrt(n) + noise,
 *   noise = round_ulps * FLT_EPSILON * |terms of L|_2 / 2e,
 *
 * the last the float32 forward's rounding of L seen through the step (the
 * floor a gradient of exactly zero is measured at; round_ulps 0: none).
 * The weights are moved on the table's backend and restored. */
#ifndef CNET_TEST_PARAMCHECK_H
#define CNET_TEST_PARAMCHECK_H

#include "engine/core/params.h"

typedef struct paramcheck_bounds {
    double eps_rel, eps_min; /* the step: eps_rel * rms(w), at least eps_min */
    double rel, abs, round_ulps;
} paramcheck_bounds;

/* L of the model's plain forward at its current weights; *terms_l2 (may be
 * ignored when round_ulps is 0) the 2-norm of the terms summed into L. */
typedef double (*paramcheck_loss_fn)(void *ctx, double *terms_l2);

typedef struct paramcheck_result {
    int bad, zero; /* tensors that disagree, tensors with no gradient */
    double worst;  /* max |fd - <g,v>| / (|g||v|/sqrt(n)) */
} paramcheck_result;

/* Checks every tensor of p against grad (host, p's layout and total);
 * directions from Philox(seed). The first disagreements are printed. */
paramcheck_result paramcheck_every_tensor(const cnet_params *p, const float *grad, uint64_t seed,
                                          const paramcheck_bounds *b, paramcheck_loss_fn loss,
                                          void *ctx);

/* One directional derivative an = <g,v> (gg = |g|^2, vv = |v|^2 over n
 * elements) against its finite difference fd at step e; prints name when
 * it disagrees. Returns 1 when within the bounds; r gets the count. */
int paramcheck_agrees(const char *name, double an, double fd, double gg, double vv, size_t n,
                      double e, double terms_l2, const paramcheck_bounds *b, paramcheck_result *r);

#endif
