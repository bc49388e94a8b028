/* Dynamic loss scaling; see loss_scale.h. */
#include "engine/train/loss_scale.h"

#include <math.h>

void loss_scale_init(loss_scale *s) {
    s->scale = LOSS_SCALE_INIT;
    s->growth_tracker = 0;
    s->skipped = 0;
}

void loss_scale_update(loss_scale *s, int finite) {
    if (!finite) {
        s->skipped++;
        s->growth_tracker = 0;
        if (s->scale > LOSS_SCALE_MIN) s->scale *= 0.5f;
        return;
    }
    if (++s->growth_tracker < LOSS_SCALE_GROWTH_INTERVAL) return;
    s->growth_tracker = 0;
    if (s->scale < LOSS_SCALE_MAX) s->scale *= 2.0f;
}

int loss_scale_save(const loss_scale *s, json_t *state, cnet_error *err) {
    if (json_object_set_new(state, "loss_scale", json_real(s->scale)) ||
        json_object_set_new(state, "loss_scale_growth_tracker", json_integer(s->growth_tracker)) ||
        json_object_set_new(state, "loss_scale_skipped_steps", json_integer(s->skipped)))
        return cnet_fail(err, CNET_ENOMEM, "out of memory");
    return 0;
}

int loss_scale_load(loss_scale *s, const json_t *state, cnet_error *err) {
    const json_t *scale = json_object_get(state, "loss_scale");
    const json_t *tracker = json_object_get(state, "loss_scale_growth_tracker");
    const json_t *skipped = json_object_get(state, "loss_scale_skipped_steps");
    if (!scale && !tracker && !skipped)
        return cnet_fail(err, CNET_ENOTFOUND, "no loss scale in the trainer state");
    const double v = json_number_value(scale);
    int exponent;
    if (!json_is_number(scale) || !(v >= LOSS_SCALE_MIN && v <= LOSS_SCALE_MAX) ||
        frexp(v, &exponent) != 0.5)
        return cnet_fail(err, CNET_EFORMAT,
                         "loss_scale: expected a power of two in [%g, %g], got %g",
                         (double)LOSS_SCALE_MIN, (double)LOSS_SCALE_MAX, v);
    if (!json_is_integer(tracker) || json_integer_value(tracker) < 0 ||
        json_integer_value(tracker) >= LOSS_SCALE_GROWTH_INTERVAL)
        return cnet_fail(err, CNET_EFORMAT, "loss_scale_growth_tracker: expected 0..%d",
                         LOSS_SCALE_GROWTH_INTERVAL - 1);
    if (!json_is_integer(skipped) || json_integer_value(skipped) < 0)
        return cnet_fail(err, CNET_EFORMAT, "loss_scale_skipped_steps: expected an integer >= 0");
    s->scale = (float)v;
    s->growth_tracker = (int)json_integer_value(tracker);
    s->skipped = json_integer_value(skipped);
    return 0;
}
