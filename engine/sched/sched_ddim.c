/* DDIMScheduler (diffusers v0.27.2, scheduling_ddim.py): the step of Song et
 * al. 2020, formula (12), with eta (eta > 0 adds noise). Timesteps are
 * DDPM's (sched_ddpm.c). Clipping and thresholding are refused (with an error), as is
 * use_clipped_model_output (meaningless without clipping). */
#include <math.h>

#include "engine/sched/sched_internal.h"

enum { BUF_X0, BUF_EPS, BUF_NOISE, DDIM_BUFFERS };

int sched_ddim_buffers(void) { return DDIM_BUFFERS; }

void sched_ddim_step(sched *s, float *prev, float *x0, const float *model_output,
                     const float *sample, const float *noise, int i, long n) {
    cnet_backend *be = s->be;
    const int t = (int)s->timesteps[i];
    const int prev_t = t - s->cfg.num_train_timesteps / s->num_inference_steps;
    const float alpha_prod_t = s->alphas_cumprod[t];
    const float alpha_prod_t_prev =
        prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float beta_prod_t = 1.0f - alpha_prod_t;
    const float sqrt_a = sqrtf(alpha_prod_t), sqrt_b = sqrtf(beta_prod_t);

    if (!x0) x0 = s->buf[BUF_X0];
    sched_ddpm_x0(s, x0, model_output, sample, alpha_prod_t, n);
    const float *eps = model_output;
    if (s->cfg.prediction_type == CNET_PRED_SAMPLE) {
        be->axpby(be, s->buf[BUF_EPS], 1.0f / sqrt_b, sample, -sqrt_a / sqrt_b, x0, n);
        eps = s->buf[BUF_EPS];
    } else if (s->cfg.prediction_type == CNET_PRED_V) {
        be->axpby(be, s->buf[BUF_EPS], sqrt_a, model_output, sqrt_b, sample, n);
        eps = s->buf[BUF_EPS];
    }

    const float beta_prod_t_prev = 1.0f - alpha_prod_t_prev;
    const float variance =
        beta_prod_t_prev / beta_prod_t * (1.0f - alpha_prod_t / alpha_prod_t_prev);
    const float std = s->eta * sqrtf(variance);
    const float direction = sqrtf(1.0f - alpha_prod_t_prev - std * std);
    be->axpby(be, prev, sqrtf(alpha_prod_t_prev), x0, direction, eps, n);
    if (s->eta > 0) be->axpy(be, prev, std, sched_noise(s, noise, s->buf[BUF_NOISE], n), n);
}
