/* The float32 AdamW arithmetic shared by cpu_adamw_step and
 * cpu_adamw8bit_step (one definition, so the 8-bit step is the float32 step
 * on decoded moments): torch.optim.AdamW with decoupled weight decay, after
 * clip_grad_norm_'s scale. */
#ifndef CNET_CPU_ADAMW_UPDATE_H
#define CNET_CPU_ADAMW_UPDATE_H

#include <math.h>

typedef struct adamw_coefs {
    float clip; /* gradient scale from clip_grad_norm_ (1 without clipping) */
    float decay, b1, one_m_b1, b2, one_m_b2, neg_step_size, bc2_sqrt, eps;
    int clipped;
} adamw_coefs;

static inline adamw_coefs adamw_coefs_make(float lr, float beta1, float beta2, float eps,
                                           float weight_decay, int step, const float *grad_sumsq,
                                           float max_grad_norm) {
    adamw_coefs c = {.clip = 1.0f, .clipped = grad_sumsq != NULL, .eps = eps};
    if (grad_sumsq) {
        const float total = sqrtf(grad_sumsq[0]);
        const float coef = max_grad_norm / (total + 1e-6f);
        c.clip = coef < 1.0f ? coef : 1.0f;
    }
    c.decay = (float)(1.0 - (double)lr * weight_decay);
    c.b1 = beta1, c.one_m_b1 = (float)(1.0 - beta1);
    c.b2 = beta2, c.one_m_b2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, step), bc2 = 1.0 - pow(beta2, step);
    c.neg_step_size = (float)(-(double)lr / bc1);
    c.bc2_sqrt = (float)sqrt(bc2);
    return c;
}

/* One element: updates *m, *v and returns the new parameter. */
static inline float adamw_update(const adamw_coefs *c, float param, float grad, float *m,
                                 float *v) {
    const float g = c->clipped ? grad * c->clip : grad;
    const float p = param * c->decay;
    const float mi = *m * c->b1 + c->one_m_b1 * g;
    const float vi = *v * c->b2 + (c->one_m_b2 * g) * g;
    const float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
    *m = mi;
    *v = vi;
    return p + (c->neg_step_size * mi) / denom;
}

#endif
