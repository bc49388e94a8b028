/* Dynamic loss scaling for --mixed_precision fp16, with the rule and the
 * defaults of torch.cuda.amp.GradScaler (what accelerate gives diffusers'
 * train_controlnet.py): the gradient seed is multiplied by `scale` so that
 * small gradients (~1e-5 at SD scale) stay inside half's normal range when
 * the CUDA backend rounds product operands to half; the optimizer sees them
 * multiplied by 1/scale. A step whose gradients hold inf or NaN is skipped
 * and the scale halves; after LOSS_SCALE_GROWTH_INTERVAL good steps in a row
 * it doubles. The scale is a power of two, so scaling and unscaling are exact
 * in float32 (a CPU run with fp16 gives the weights of one without).
 *
 * Deliberately unlike GradScaler: the scale stays within [LOSS_SCALE_MIN,
 * LOSS_SCALE_MAX], where GradScaler's may reach 0 or inf and then skip every
 * step. bf16 has float32's exponent range and needs no scaling.
 *
 * Not here: applying it (train_step_optimize in engine/train/train_step.h) and the
 * step counts it implies (engine/train/trainer.c). */
#ifndef CNET_LOSS_SCALE_H
#define CNET_LOSS_SCALE_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

#define LOSS_SCALE_INIT 65536.0f /* GradScaler's init_scale, 2^16 */
#define LOSS_SCALE_GROWTH_INTERVAL 2000
#define LOSS_SCALE_MIN 1.0f
#define LOSS_SCALE_MAX 4294967296.0f /* 2^32: far above where half overflows */

typedef struct loss_scale {
    float scale;        /* multiplies d(loss); a power of two in [MIN, MAX] */
    int growth_tracker; /* good steps in a row since the last change */
    int64_t skipped;    /* optimizer steps skipped so far */
} loss_scale;

/* scale = LOSS_SCALE_INIT, no step seen. */
void loss_scale_init(loss_scale *s);

/* After a step: finite = its gradients were all finite (the step was
 * applied). Not finite: skipped++, scale halves (not below MIN), the tracker
 * resets; finite: tracker++, and at GROWTH_INTERVAL the scale doubles (not
 * above MAX) and the tracker resets. */
void loss_scale_update(loss_scale *s, int finite);

/* trainer_state.json fields: "loss_scale", "loss_scale_growth_tracker",
 * "loss_scale_skipped_steps". _save adds them to state (an object);
 * _load reads them back (CNET_ENOTFOUND, s untouched, when state has none;
 * CNET_EFORMAT naming the field when one is out of range). */
int loss_scale_save(const loss_scale *s, json_t *state, cnet_error *err);
int loss_scale_load(loss_scale *s, const json_t *state, cnet_error *err);

#endif
