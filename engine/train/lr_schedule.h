/* Learning-rate schedules of diffusers' optimization.get_scheduler (the
 * transformers schedules), as multipliers of the base learning rate after
 * `step` optimizer steps (LambdaLR's lr_lambda(step)):
 *
 *   constant               1
 *   constant_with_warmup   step/W during warmup, then 1
 *   linear                 warmup, then (T - step) / (T - W), floored at 0
 *   cosine                 warmup, then 0.5 (1 + cos(pi * 2 * 0.5 * p))
 *   cosine_with_restarts   warmup, then 0.5 (1 + cos(pi * ((cycles * p) mod 1))), 0 once p >= 1
 *   polynomial             warmup, then ((lr - lr_end) (1 - p)^power + lr_end) / lr
 *
 * with W warmup steps, T training steps, p = (step - W) / (T - W). As in
 * diffusers, the first optimizer step of a warmup schedule uses lr 0. */
#ifndef CNET_LR_SCHEDULE_H
#define CNET_LR_SCHEDULE_H

#include "engine/core/error.h"

typedef enum lr_kind {
    LR_CONSTANT = 0,
    LR_CONSTANT_WITH_WARMUP,
    LR_LINEAR,
    LR_COSINE,
    LR_COSINE_WITH_RESTARTS,
    LR_POLYNOMIAL,
    LR_KIND_COUNT
} lr_kind;

int lr_kind_from_name(const char *name); /* -1 when unknown */

typedef struct lr_schedule {
    lr_kind kind;
    double base_lr;
    int warmup_steps, total_steps;
    int num_cycles;  /* cosine_with_restarts */
    double power;    /* polynomial */
    double lr_end;   /* polynomial: 1e-7 as diffusers */
} lr_schedule;

/* The learning rate of optimizer step `step` (0-based). */
double lr_at(const lr_schedule *s, int step);

#endif
