/* DDPMScheduler (diffusers v0.27.2, scheduling_ddpm.py): set_timesteps and
 * the ancestral step of Ho et al. 2020 with the fixed_small,
 * fixed_small_log or fixed_large variance. DDIMScheduler shares its
 * set_timesteps and x0 prediction. Training's add_noise and get_velocity
 * are in scheduler.c; learned variances and clipping are refused with an error. */
#include <math.h>

#include "engine/sched/sched_internal.h"

enum { BUF_X0, BUF_NOISE, DDPM_BUFFERS };

int sched_ddpm_buffers(void) { return DDPM_BUFFERS; }

void sched_ddpm_set_timesteps(sched *s, int n) {
    s->num_steps = sched_timesteps_ddpm(s->timesteps, s->work, &s->cfg, n);
}

void sched_ddpm_x0(sched *s, float *x0, const float *model_output, const float *sample,
                   float alpha_prod_t, long n) {
    cnet_backend *be = s->be;
    const float sqrt_a = sqrtf(alpha_prod_t), sqrt_b = sqrtf(1.0f - alpha_prod_t);
    switch (s->cfg.prediction_type) {
    case CNET_PRED_EPSILON:
        be->axpby(be, x0, 1.0f / sqrt_a, sample, -sqrt_b / sqrt_a, model_output, n);
        break;
    case CNET_PRED_V:
        be->axpby(be, x0, sqrt_a, sample, -sqrt_b, model_output, n);
        break;
    case CNET_PRED_SAMPLE:
        if (x0 != model_output) be->copy(be, x0, model_output, (size_t)n * sizeof(float));
        break;
    }
}

void sched_ddpm_step(sched *s, float *prev, float *x0, const float *model_output,
                     const float *sample, const float *noise, int i, long n) {
    cnet_backend *be = s->be;
    const int t = (int)s->timesteps[i];
    const int prev_t = t - s->cfg.num_train_timesteps / s->num_inference_steps;
    const float alpha_prod_t = s->alphas_cumprod[t];
    const float alpha_prod_t_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : 1.0f;
    const float beta_prod_t = 1.0f - alpha_prod_t, beta_prod_t_prev = 1.0f - alpha_prod_t_prev;
    const float current_alpha_t = alpha_prod_t / alpha_prod_t_prev;
    const float current_beta_t = 1.0f - current_alpha_t;

    if (!x0) x0 = s->buf[BUF_X0];
    sched_ddpm_x0(s, x0, model_output, sample, alpha_prod_t, n);
    /* prev = mean of q(x_{t-1} | x_t, x0) (formula 7 of the paper) */
    const float x0_coeff = sqrtf(alpha_prod_t_prev) * current_beta_t / beta_prod_t;
    const float sample_coeff = sqrtf(current_alpha_t) * beta_prod_t_prev / beta_prod_t;
    be->axpby(be, prev, x0_coeff, x0, sample_coeff, sample, n);
    if (t == 0) return;

    float variance = beta_prod_t_prev / beta_prod_t * current_beta_t;
    if (variance < 1e-20f) variance = 1e-20f;
    float std;
    switch (s->cfg.variance_type) {
    case CNET_VAR_FIXED_SMALL_LOG:
        std = expf(0.5f * logf(variance));
        break;
    case CNET_VAR_FIXED_LARGE:
        std = sqrtf(current_beta_t);
        break;
    default:
        std = sqrtf(variance);
        break;
    }
    be->axpy(be, prev, std, sched_noise(s, noise, s->buf[BUF_NOISE], n), n);
}
