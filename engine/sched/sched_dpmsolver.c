/* DPMSolverMultistepScheduler (diffusers v0.27.2,
 * scheduling_dpmsolver_multistep.py) with algorithm_type dpmsolver++ and
 * solver_order 1 or 2: DPM-Solver++(2M) of Lu et al. 2022 (Algorithm 2),
 * midpoint or heun second-order update, lower_order_final, euler_at_final,
 * final_sigmas_type zero/sigma_min, lambda_min_clipped, Karras sigmas. The
 * model output is converted to x0 and kept as history for the next step.
 * Not implemented: dpmsolver / sde variants, order 3, thresholding,
 * learned variance, Lu lambdas. */
#include <math.h>

#include "engine/sched/sched_internal.h"

enum { BUF_DIFF = SCHED_MAX_ORDER, DPM_BUFFERS };

int sched_dpmsolver_buffers(void) { return DPM_BUFFERS; }

/* torch.searchsorted(flip(lambda_t), lambda_min_clipped): the count of
 * flipped lambdas below the clip. */
static int clipped_count(const sched *s) {
    const int T = s->cfg.num_train_timesteps;
    if (isinf(s->cfg.lambda_min_clipped) && s->cfg.lambda_min_clipped < 0) return 0;
    int j = 0;
    for (; j < T; j++) {
        const float acp = s->alphas_cumprod[T - 1 - j];
        const float lambda = logf(sqrtf(acp)) - logf(sqrtf(1.0f - acp));
        if (lambda >= s->cfg.lambda_min_clipped) break;
    }
    return j;
}

void sched_dpmsolver_set_timesteps(sched *s, int n) {
    const cnet_sched_config *cfg = &s->cfg;
    const int T = cfg->num_train_timesteps;
    const int last_timestep = T - clipped_count(s);
    double *v = s->work;
    int m = n;
    if (cfg->use_karras_sigmas) {
        sched_karras_multistep(s->timesteps, v, s, n);
    } else {
        m = sched_timesteps_multistep(s->timesteps, v, cfg, n, last_timestep);
        for (int k = 0; k < m; k++) v[k] = sched_np_interp(s->timesteps[k], s->train_sigmas, T);
    }
    for (int k = 0; k < m; k++) s->sigmas[k] = (float)v[k];
    s->sigmas[m] = cfg->final_sigmas_type == CNET_FINAL_SIGMA_ZERO ? 0.0f : s->train_sigmas[0];
    s->num_steps = m;
    s->num_sigmas = m + 1;
}

void sched_dpmsolver_step(sched *s, float *prev, const float *model_output, const float *sample,
                          int i, long n) {
    cnet_backend *be = s->be;
    const cnet_sched_config *cfg = &s->cfg;
    const int order = cfg->solver_order;
    const int N = s->num_steps, all = N + s->begin_index; /* len(self.timesteps) */
    const int lower_order_final =
        i == N - 1 && (cfg->euler_at_final || (cfg->lower_order_final && all < 15) ||
                       cfg->final_sigmas_type == CNET_FINAL_SIGMA_ZERO);

    /* convert_model_output: x0 prediction, stored as the newest history */
    float *m0 = s->buf[i % order];
    const sched_point s0 = sched_point_of(s->sigmas[i]);
    switch (cfg->prediction_type) {
    case CNET_PRED_EPSILON:
        be->axpby(be, m0, 1.0f / s0.alpha, sample, -s0.sigma / s0.alpha, model_output, n);
        break;
    case CNET_PRED_V:
        be->axpby(be, m0, s0.alpha, sample, -s0.sigma, model_output, n);
        break;
    case CNET_PRED_SAMPLE:
        be->copy(be, m0, model_output, (size_t)n * sizeof(float));
        break;
    }

    const sched_point pt = sched_point_of(s->sigmas[i + 1]);
    const float h = pt.lambda - s0.lambda;
    const float phi = pt.alpha * (expf(-h) - 1.0f); /* alpha_t * (exp(-h) - 1) */
    /* x_t = sigma_t/sigma_s0 * sample - alpha_t (e^-h - 1) D0 [+ c D1] */
    be->axpby(be, prev, pt.sigma / s0.sigma, sample, -phi, m0, n);
    if (order == 2 && s->lower_order_nums >= 1 && !lower_order_final) {
        const float *m1 = s->buf[(i - 1) % order];
        const sched_point s1 = sched_point_of(s->sigmas[i - 1]);
        const float r0 = (s0.lambda - s1.lambda) / h;
        const float c = cfg->solver_type == CNET_SOLVER_HEUN
                            ? pt.alpha * ((expf(-h) - 1.0f) / h + 1.0f)
                            : -(0.5f * phi);
        float *diff = s->buf[BUF_DIFF]; /* D1 = (m0 - m1) / r0 */
        be->axpby(be, diff, 1.0f, m0, -1.0f, m1, n);
        be->axpy(be, prev, (float)((double)c * (double)(1.0f / r0)), diff, n);
    }
    if (s->lower_order_nums < order) s->lower_order_nums++;
}
