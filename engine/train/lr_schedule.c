/* Learning-rate schedules; see lr_schedule.h. */
#include "engine/train/lr_schedule.h"

#include <math.h>
#include <string.h>

static const char *const lr_names[LR_KIND_COUNT] = {
    "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"};

int lr_kind_from_name(const char *name) {
    for (int k = 0; k < LR_KIND_COUNT; k++)
        if (strcmp(lr_names[k], name) == 0) return k;
    return -1;
}

static double multiplier(const lr_schedule *s, int step) {
    const double W = s->warmup_steps, T = s->total_steps;
    if (s->kind == LR_CONSTANT) return 1.0;
    if (step < s->warmup_steps) return (double)step / (W > 1 ? W : 1);
    const double p = (step - W) / (T - W > 1 ? T - W : 1);
    switch (s->kind) {
    case LR_CONSTANT_WITH_WARMUP: return 1.0;
    case LR_LINEAR: return fmax(0.0, (T - step) / (T - W > 1 ? T - W : 1));
    case LR_COSINE: return fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * p)));
    case LR_COSINE_WITH_RESTARTS:
        if (p >= 1.0) return 0.0;
        return fmax(0.0, 0.5 * (1.0 + cos(M_PI * fmod(s->num_cycles * p, 1.0))));
    case LR_POLYNOMIAL: {
        const double lr0 = s->base_lr, end = s->lr_end;
        if (step > s->total_steps) return end / lr0;
        const double remaining = 1.0 - (step - W) / (T - W > 0 ? T - W : 1);
        return ((lr0 - end) * pow(remaining, s->power) + end) / lr0;
    }
    default: return 1.0;
    }
}

double lr_at(const lr_schedule *s, int step) { return s->base_lr * multiplier(s, step); }
