/* The exponential moving average of the trained weights that
 * train_text_to_image.py keeps with --use_ema: diffusers'
 * training_utils.EMAModel (v0.27.2) with its defaults, the same
 * arithmetic:
 *
 *   step():  optimization_step += 1
 *            k = max(0, optimization_step - update_after_step - 1)
 *            decay = 0 if k <= 0, else min((1 + k) / (10 + k), max_decay)
 *                    (use_ema_warmup: 1 - (1 + k / inv_gamma)^-power)
 *            decay = max(decay, min_decay)
 *            shadow -= float32(1 - decay) * (shadow - param)
 *
 * the last line in three float32 roundings as torch 1.13 does it (d =
 * shadow - param, m = c * d, shadow - m; no fused multiply-add), also at
 * the first step, where decay is 0 and the shadow becomes the parameter
 * up to the rounding of s - (s - p). The shadow starts from the weights
 * the EMA is made from (the pretrained UNet), is stepped after every
 * optimiser step, and is what the script saves in the end.
 *
 * Not here: saving the shadow (the caller writes its table), the
 * optimiser. */
#ifndef CNET_EMA_H
#define CNET_EMA_H

#include "engine/core/params.h"

/* EMAModel's constructor defaults. */
#define EMA_DEFAULT_DECAY 0.9999
#define EMA_DEFAULT_POWER (2.0 / 3.0)

typedef struct ema_settings {
    double decay, min_decay, inv_gamma, power;
    long update_after_step;
    int use_ema_warmup;
} ema_settings;

typedef struct ema_model {
    ema_settings cfg;
    cnet_params shadow; /* owned, the layout of the tracked table */
    float *tmp;         /* device scratch of shadow.total floats */
    long optimization_step;
    double cur_decay; /* the decay of the last step */
} ema_model;

/* EMAModel(parameters) with diffusers' defaults. */
ema_settings ema_default_settings(void);

/* A shadow copy of params (its current values). */
int ema_init(ema_model *e, const cnet_params *params, const ema_settings *cfg, cnet_error *err);
void ema_free(ema_model *e);

/* The decay step() would use at optimization_step (counting from 1). */
double ema_decay_at(const ema_settings *cfg, long optimization_step);

/* One EMAModel.step(params) (params: the tracked table's layout). */
void ema_step(ema_model *e, const cnet_params *params);

#endif
