/* EulerDiscreteScheduler (diffusers v0.27.2, scheduling_euler_discrete.py):
 * timesteps and sigmas (linear interpolation of the training sigmas, or
 * Karras sigmas), scale_model_input's 1/sqrt(sigma^2+1) (in scheduler.c) and
 * the Euler step of Karras et al. 2022 (Algorithm 2) without churn.
 * EulerAncestralDiscreteScheduler shares the timesteps and sigmas. Not
 * implemented: s_churn/s_tmin/s_tmax/s_noise, log_linear interpolation and
 * continuous timesteps. */
#include <math.h>

#include "engine/sched/sched_internal.h"

enum { BUF_X0, BUF_DIFF, BUF_NOISE, EULER_BUFFERS };

int sched_euler_buffers(void) { return EULER_BUFFERS; }

void sched_euler_set_timesteps(sched *s, int n) {
    const cnet_sched_config *cfg = &s->cfg;
    const int T = cfg->num_train_timesteps;
    double *v = s->work;
    float *ts = s->timesteps;
    int m = n;
    switch (cfg->timestep_spacing) {
    case CNET_SPACING_LINSPACE:
        sched_np_linspace(v, 0, T - 1, n); /* dtype=float32: cast at the end */
        for (int k = 0; k < n; k++) ts[k] = (float)v[n - 1 - k];
        break;
    case CNET_SPACING_LEADING:
        for (int k = 0; k < n; k++)
            ts[k] = (float)((n - 1 - k) * (T / n)) + (float)cfg->steps_offset;
        break;
    case CNET_SPACING_TRAILING:
        m = sched_np_arange(v, T, 0, -((double)T / n));
        for (int k = 0; k < m; k++) ts[k] = (float)nearbyint(v[k]) - 1.0f;
        break;
    }
    for (int k = 0; k < m; k++) v[k] = sched_np_interp(ts[k], s->train_sigmas, T);
    if (cfg->use_karras_sigmas) {
        const double sigma_min = isnan(cfg->sigma_min) ? v[m - 1] : cfg->sigma_min;
        const double sigma_max = isnan(cfg->sigma_max) ? v[0] : cfg->sigma_max;
        m = n;
        sched_karras_sigmas(v, m, sigma_min, sigma_max);
        for (int k = 0; k < m; k++) ts[k] = (float)sched_sigma_to_t(v[k], s->log_sigmas, T);
    }
    float max_sigma = 0;
    for (int k = 0; k < m; k++) {
        s->sigmas[k] = (float)v[k];
        if (s->sigmas[k] > max_sigma) max_sigma = s->sigmas[k];
    }
    s->sigmas[m] = 0;
    s->num_steps = m;
    s->num_sigmas = m + 1;
    s->init_noise_sigma = cfg->timestep_spacing == CNET_SPACING_LEADING
                              ? sqrtf(max_sigma * max_sigma + 1.0f)
                              : max_sigma;
}

/* pred_original_sample of the Euler samplers at sigma. */
static void euler_x0(sched *s, float *x0, const float *model_output, const float *sample,
                     float sigma, long n) {
    cnet_backend *be = s->be;
    switch (s->cfg.prediction_type) {
    case CNET_PRED_EPSILON:
        be->axpby(be, x0, 1.0f, sample, -sigma, model_output, n);
        break;
    case CNET_PRED_V: {
        const float sigma2_1 = sigma * sigma + 1.0f;
        be->axpby(be, x0, -sigma / sqrtf(sigma2_1), model_output, 1.0f / sigma2_1, sample, n);
        break;
    }
    case CNET_PRED_SAMPLE:
        if (x0 != model_output) be->copy(be, x0, model_output, (size_t)n * sizeof(float));
        break;
    }
}

/* prev = sample + derivative * dt, derivative = (sample - x0) / sigma. */
static void euler_move(sched *s, float *prev, const float *x0, const float *sample, float sigma,
                       float dt, long n) {
    cnet_backend *be = s->be;
    float *diff = s->buf[BUF_DIFF];
    be->axpby(be, diff, 1.0f, sample, -1.0f, x0, n);
    be->axpby(be, prev, 1.0f, sample, (float)((double)dt / (double)sigma), diff, n);
}

void sched_euler_step(sched *s, float *prev, float *x0, const float *model_output,
                      const float *sample, int i, long n) {
    const float sigma = s->sigmas[i];
    if (!x0) x0 = s->buf[BUF_X0];
    euler_x0(s, x0, model_output, sample, sigma, n);
    euler_move(s, prev, x0, sample, sigma, s->sigmas[i + 1] - sigma, n);
}

/* EulerAncestralDiscreteScheduler.step (scheduling_euler_ancestral_discrete.py):
 * an Euler step down to sigma_down, then fresh noise of sigma_up. */
void sched_euler_ancestral_step(sched *s, float *prev, float *x0, const float *model_output,
                                const float *sample, const float *noise, int i, long n) {
    const float sigma_from = s->sigmas[i], sigma_to = s->sigmas[i + 1];
    const float from2 = sigma_from * sigma_from, to2 = sigma_to * sigma_to;
    const float sigma_up = sqrtf(to2 * (from2 - to2) / from2);
    const float sigma_down = sqrtf(to2 - sigma_up * sigma_up);
    if (!x0) x0 = s->buf[BUF_X0];
    euler_x0(s, x0, model_output, sample, sigma_from, n);
    euler_move(s, prev, x0, sample, sigma_from, sigma_down - sigma_from, n);
    s->be->axpy(s->be, prev, sigma_up, sched_noise(s, noise, s->buf[BUF_NOISE], n), n);
}
