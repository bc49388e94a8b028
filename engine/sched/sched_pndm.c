/* PNDMScheduler with skip_prk_steps (diffusers v0.27.2, scheduling_pndm.py):
 * the pseudo linear multistep (PLMS) part of Liu et al. 2022. Its
 * timesteps repeat the second one: step 1 redoes step 0 from the same sample
 * with the average of both model outputs (a Heun-like warm-up), then the
 * Adams-Bashforth combinations of up to 4 past outputs follow. The step
 * counter is the step index. The Runge-Kutta (PRK) warm-up is not
 * implemented. */
#include <math.h>

#include "engine/sched/sched_internal.h"

enum { PNDM_ETS = 4, BUF_CUR_SAMPLE = PNDM_ETS, BUF_MODEL_OUTPUT, PNDM_BUFFERS };

int sched_pndm_buffers(void) { return PNDM_BUFFERS; }

void sched_pndm_set_timesteps(sched *s, int n) {
    const cnet_sched_config *cfg = &s->cfg;
    const int T = cfg->num_train_timesteps;
    double *v = s->work; /* diffusers' _timesteps, ascending */
    int m = n;
    switch (cfg->timestep_spacing) {
    case CNET_SPACING_LINSPACE:
        sched_np_linspace(v, 0, T - 1, n);
        for (int k = 0; k < n; k++) v[k] = nearbyint(v[k]);
        break;
    case CNET_SPACING_LEADING:
        for (int k = 0; k < n; k++) v[k] = (double)k * (T / n) + cfg->steps_offset;
        break;
    case CNET_SPACING_TRAILING: {
        m = sched_np_arange(v, T, 0, -((double)T / n));
        for (int k = 0; k < m / 2; k++) {
            double x = v[k];
            v[k] = v[m - 1 - k], v[m - 1 - k] = x;
        }
        for (int k = 0; k < m; k++) v[k] = nearbyint(v[k]) - 1;
        break;
    }
    }
    /* plms = concat(_ts[:-1], _ts[-2:-1], _ts[-1:]) reversed */
    int c = 0;
    s->timesteps[c++] = (float)v[m - 1];
    if (m >= 2) s->timesteps[c++] = (float)v[m - 2];
    for (int k = m - 2; k >= 0; k--) s->timesteps[c++] = (float)v[k];
    s->num_steps = c;
}

/* diffusers _get_prev_sample: formula (9) of the paper. */
static void prev_sample(sched *s, float *prev, const float *sample, int t, int prev_t,
                        const float *model_output, long n) {
    cnet_backend *be = s->be;
    const float alpha_prod_t = s->alphas_cumprod[t];
    const float alpha_prod_t_prev =
        prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float beta_prod_t = 1.0f - alpha_prod_t, beta_prod_t_prev = 1.0f - alpha_prod_t_prev;
    if (s->cfg.prediction_type == CNET_PRED_V) {
        float *eps = s->buf[BUF_MODEL_OUTPUT];
        be->axpby(be, eps, sqrtf(alpha_prod_t), model_output, sqrtf(beta_prod_t), sample, n);
        model_output = eps;
    }
    const float sample_coeff = sqrtf(alpha_prod_t_prev / alpha_prod_t);
    const float denom = alpha_prod_t * sqrtf(beta_prod_t_prev) +
                        sqrtf(alpha_prod_t * beta_prod_t * alpha_prod_t_prev);
    const float eps_coeff = (float)(-(double)(alpha_prod_t_prev - alpha_prod_t) / (double)denom);
    be->axpby(be, prev, sample_coeff, sample, eps_coeff, model_output, n);
}

void sched_pndm_step(sched *s, float *prev, const float *model_output, const float *sample, int i,
                     long n) {
    cnet_backend *be = s->be;
    const int ratio = s->cfg.num_train_timesteps / s->num_inference_steps;
    int t = (int)s->timesteps[i], prev_t = t - ratio;
    if (i != 1) {
        be->copy(be, s->buf[s->ets_count % PNDM_ETS], model_output, (size_t)n * sizeof(float));
        s->ets_count++;
    } else {
        prev_t = t;
        t = t + ratio;
    }
    /* e(k): the k-th most recent stored output; len(ets) = min(count, 4) */
    const int count = s->ets_count < PNDM_ETS ? s->ets_count : PNDM_ETS;
#define E(k) s->buf[(s->ets_count - (k)) % PNDM_ETS]
    float *mo = s->buf[BUF_MODEL_OUTPUT];
    const float *combined = mo;
    if (count == 1 && i == 0) {
        be->copy(be, s->buf[BUF_CUR_SAMPLE], sample, (size_t)n * sizeof(float));
        combined = model_output;
    } else if (count == 1 && i == 1) {
        be->axpby(be, mo, 0.5f, model_output, 0.5f, E(1), n);
        sample = s->buf[BUF_CUR_SAMPLE];
    } else if (count == 2) {
        be->axpby(be, mo, 3.0f / 2, E(1), -1.0f / 2, E(2), n);
    } else if (count == 3) {
        be->axpby(be, mo, 23.0f / 12, E(1), -16.0f / 12, E(2), n);
        be->axpy(be, mo, 5.0f / 12, E(3), n);
    } else {
        be->axpby(be, mo, 55.0f / 24, E(1), -59.0f / 24, E(2), n);
        be->axpy(be, mo, 37.0f / 24, E(3), n);
        be->axpy(be, mo, -9.0f / 24, E(4), n);
    }
#undef E
    prev_sample(s, prev, sample, t, prev_t, combined, n);
}
