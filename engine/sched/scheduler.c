/* The scheduler front door (see scheduler.h): tables and buffers at init,
 * argument checks, and dispatch to each kind's set_timesteps and step in
 * sched_<kind>.c. Also the alphas_cumprod form of add_noise and
 * get_velocity that DDPM training uses (DDPMScheduler.add_noise). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched_internal.h"

static int buffers_needed(const cnet_sched_config *cfg) {
    switch (cfg->kind) {
    case CNET_SCHED_DDPM:
        return sched_ddpm_buffers();
    case CNET_SCHED_DDIM:
        return sched_ddim_buffers();
    case CNET_SCHED_PNDM:
        return sched_pndm_buffers();
    case CNET_SCHED_EULER:
    case CNET_SCHED_EULER_ANCESTRAL:
        return sched_euler_buffers();
    case CNET_SCHED_DPMSOLVER_MULTISTEP:
        return sched_dpmsolver_buffers();
    case CNET_SCHED_UNIPC:
        return sched_unipc_buffers();
    case CNET_SCHED_KIND_COUNT:
        break;
    }
    return 0;
}

static const char *const short_names[CNET_SCHED_KIND_COUNT] = {
    [CNET_SCHED_DDPM] = "ddpm",
    [CNET_SCHED_DDIM] = "ddim",
    [CNET_SCHED_PNDM] = "pndm",
    [CNET_SCHED_EULER] = "euler",
    [CNET_SCHED_EULER_ANCESTRAL] = "euler_a",
    [CNET_SCHED_DPMSOLVER_MULTISTEP] = "dpmpp_2m",
    [CNET_SCHED_UNIPC] = "unipc",
};

const char *sched_kind_short(cnet_sched_kind kind) {
    return (unsigned)kind < CNET_SCHED_KIND_COUNT ? short_names[kind] : "?";
}

int sched_kind_from_short(const char *short_name) {
    for (int k = 0; k < CNET_SCHED_KIND_COUNT; k++)
        if (short_name && strcmp(short_names[k], short_name) == 0) return k;
    return -1;
}

static int unsupported(const cnet_sched_config *cfg, const char *option, cnet_error *err) {
    return cnet_fail(err, CNET_EINVAL, "%s: %s is not supported by cnet",
                     cnet_sched_kind_name(cfg->kind), option);
}

/* Options that shape the tables or the solver, refused at init. */
static int check_config(const cnet_sched_config *cfg, cnet_error *err) {
    const cnet_sched_kind k = cfg->kind;
    if ((unsigned)k >= CNET_SCHED_KIND_COUNT)
        return cnet_fail(err, CNET_EINVAL, "scheduler: kind %d is not a scheduler", (int)k);
    const char *name = cnet_sched_kind_name(k);
    if (cfg->num_train_timesteps < 2)
        return cnet_fail(err, CNET_EINVAL, "%s: num_train_timesteps %d < 2", name,
                         cfg->num_train_timesteps);
    if (cfg->trained_betas && cfg->n_trained_betas != cfg->num_train_timesteps)
        return cnet_fail(err, CNET_EINVAL, "%s: %d trained_betas for %d num_train_timesteps", name,
                         cfg->n_trained_betas, cfg->num_train_timesteps);
    if (!cfg->trained_betas && cfg->beta_schedule == CNET_BETA_SIGMOID)
        return unsupported(cfg, "beta_schedule = sigmoid", err);
    if (cfg->rescale_betas_zero_snr) return unsupported(cfg, "rescale_betas_zero_snr = true", err);
    if (k == CNET_SCHED_PNDM && !cfg->skip_prk_steps)
        return unsupported(cfg, "skip_prk_steps = false (the PRK warm-up)", err);
    if ((k == CNET_SCHED_PNDM || k == CNET_SCHED_EULER_ANCESTRAL) &&
        cfg->prediction_type == CNET_PRED_SAMPLE)
        return unsupported(cfg, "prediction_type = sample (diffusers has none either)", err);
    if (k == CNET_SCHED_EULER && cfg->interpolation_type != CNET_INTERP_LINEAR)
        return unsupported(cfg, "interpolation_type = log_linear", err);
    if (k == CNET_SCHED_EULER && cfg->timestep_continuous && cfg->prediction_type == CNET_PRED_V)
        return unsupported(cfg, "timestep_type = continuous with v_prediction", err);
    if (k == CNET_SCHED_DPMSOLVER_MULTISTEP) {
        static const char *const algorithms[] = {
            [CNET_ALGO_DPMSOLVER_PP] = "dpmsolver++",
            [CNET_ALGO_SDE_DPMSOLVER_PP] = "algorithm_type = sde-dpmsolver++",
            [CNET_ALGO_DPMSOLVER] = "algorithm_type = dpmsolver",
            [CNET_ALGO_SDE_DPMSOLVER] = "algorithm_type = sde-dpmsolver"};
        if (cfg->algorithm_type != CNET_ALGO_DPMSOLVER_PP)
            return unsupported(cfg, algorithms[cfg->algorithm_type], err);
        if (cfg->variance_type != CNET_VAR_NONE)
            return unsupported(cfg, "variance_type learned/learned_range", err);
        if (cfg->use_lu_lambdas) return unsupported(cfg, "use_lu_lambdas = true", err);
    }
    if ((k == CNET_SCHED_DPMSOLVER_MULTISTEP || k == CNET_SCHED_UNIPC) &&
        (cfg->solver_order < 1 || cfg->solver_order > SCHED_MAX_ORDER))
        return cnet_fail(err, CNET_EINVAL, "%s: solver_order %d is not supported by cnet (1..%d)",
                         name, cfg->solver_order, SCHED_MAX_ORDER);
    return 0;
}

int sched_init(sched *s, cnet_backend *be, const cnet_sched_config *cfg, long n_max,
               cnet_error *err) {
    memset(s, 0, sizeof *s);
    int rc = check_config(cfg, err);
    if (rc) return rc;
    if (n_max < 0) return cnet_fail(err, CNET_EINVAL, "scheduler: n_max %ld < 0", n_max);
    s->cfg = *cfg;
    s->cfg.trained_betas = NULL;
    s->cfg.n_trained_betas = 0;
    s->be = be;
    s->n_max = n_max;
    s->next_step = -1;
    const int T = cfg->num_train_timesteps;
    s->betas = malloc(T * sizeof(float));
    s->alphas_cumprod = malloc(T * sizeof(float));
    s->train_sigmas = malloc(T * sizeof(float));
    s->log_sigmas = malloc(T * sizeof(float));
    s->timesteps = malloc((T + 1) * sizeof(float));
    s->sigmas = malloc((T + 2) * sizeof(float));
    s->work = malloc((T + 2) * sizeof(double));
    if (!s->betas || !s->alphas_cumprod || !s->train_sigmas || !s->log_sigmas || !s->timesteps ||
        !s->sigmas || !s->work) {
        sched_free(s);
        return cnet_fail(err, CNET_ENOMEM, "scheduler: out of host memory");
    }
    sched_table_betas(s->betas, cfg);
    sched_table_alphas_cumprod(s->alphas_cumprod, s->betas, T);
    s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    for (int t = 0; t < T; t++) {
        const float acp = s->alphas_cumprod[t];
        s->train_sigmas[t] = sqrtf((1.0f - acp) / acp);
        s->log_sigmas[t] = logf(s->train_sigmas[t]);
    }
    if (n_max > 0) {
        s->n_buf = buffers_needed(cfg);
        for (int b = 0; b < s->n_buf; b++) {
            s->buf[b] = be->alloc(be, (size_t)n_max * sizeof(float));
            if (!s->buf[b]) {
                sched_free(s);
                return cnet_fail(err, CNET_ENOMEM,
                                 "scheduler: cannot allocate %d device buffers of %ld floats",
                                 buffers_needed(cfg), n_max);
            }
        }
    }
    return 0;
}

void sched_free(sched *s) {
    for (int b = 0; b < s->n_buf; b++)
        if (s->buf[b]) s->be->free(s->be, s->buf[b]);
    free(s->betas);
    free(s->alphas_cumprod);
    free(s->train_sigmas);
    free(s->log_sigmas);
    free(s->timesteps);
    free(s->sigmas);
    free(s->work);
    memset(s, 0, sizeof *s);
}

/* Options only step() reads, which cnet cannot honour (they need a clamp or
 * a quantile on the device, or a learned-variance model output). */
static int check_step_options(const cnet_sched_config *cfg, cnet_error *err) {
    const char *name = cnet_sched_kind_name(cfg->kind);
    if (cfg->clip_sample)
        return cnet_fail(err, CNET_EINVAL, "%s: clip_sample = true is not supported by cnet", name);
    if (cfg->thresholding)
        return cnet_fail(err, CNET_EINVAL, "%s: thresholding = true is not supported by cnet",
                         name);
    if (cfg->kind == CNET_SCHED_DDPM && cfg->variance_type != CNET_VAR_FIXED_SMALL &&
        cfg->variance_type != CNET_VAR_FIXED_SMALL_LOG &&
        cfg->variance_type != CNET_VAR_FIXED_LARGE)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: variance_type fixed_large_log, learned and learned_range are not "
                         "supported by cnet",
                         name);
    return 0;
}

int sched_set_timesteps(sched *s, int num_inference_steps, cnet_error *err) {
    const int T = s->cfg.num_train_timesteps;
    const char *name = cnet_sched_kind_name(s->cfg.kind);
    int rc = check_step_options(&s->cfg, err);
    if (rc) return rc;
    if (num_inference_steps < 1 || num_inference_steps > T)
        return cnet_fail(err, CNET_EINVAL, "%s: num_inference_steps %d is outside 1..%d", name,
                         num_inference_steps, T);
    s->num_inference_steps = num_inference_steps;
    s->num_sigmas = 0;
    s->init_noise_sigma = 1.0f;
    switch (s->cfg.kind) {
    case CNET_SCHED_DDPM:
    case CNET_SCHED_DDIM:
        sched_ddpm_set_timesteps(s, num_inference_steps);
        break;
    case CNET_SCHED_PNDM:
        sched_pndm_set_timesteps(s, num_inference_steps);
        break;
    case CNET_SCHED_EULER:
    case CNET_SCHED_EULER_ANCESTRAL:
        sched_euler_set_timesteps(s, num_inference_steps);
        break;
    case CNET_SCHED_DPMSOLVER_MULTISTEP:
        sched_dpmsolver_set_timesteps(s, num_inference_steps);
        break;
    case CNET_SCHED_UNIPC:
        sched_unipc_set_timesteps(s, num_inference_steps);
        break;
    case CNET_SCHED_KIND_COUNT:
        break;
    }
    for (int k = 0; k < s->num_steps; k++)
        if (!(s->timesteps[k] >= 0 && s->timesteps[k] <= T - 1)) {
            s->num_steps = 0;
            return cnet_fail(err, CNET_EINVAL,
                             "%s: %d inference steps with this timestep_spacing give timestep %g "
                             "outside 0..%d (diffusers would misindex its tables); choose "
                             "another step count",
                             name, num_inference_steps, s->timesteps[k], T - 1);
        }
    s->next_step = 0;
    s->begin_index = 0;
    s->lower_order_nums = 0;
    s->this_order = 0;
    s->have_last = 0;
    s->ets_count = 0;
    return 0;
}

static int check_index(const sched *s, int step_index, cnet_error *err) {
    if (s->next_step < 0)
        return cnet_fail(err, CNET_EINVAL, "%s: call sched_set_timesteps before stepping",
                         cnet_sched_kind_name(s->cfg.kind));
    if (step_index < 0 || step_index >= s->num_steps)
        return cnet_fail(err, CNET_EINVAL, "%s: step index %d is outside 0..%d",
                         cnet_sched_kind_name(s->cfg.kind), step_index, s->num_steps - 1);
    return 0;
}

int sched_set_begin_index(sched *s, int begin, cnet_error *err) {
    const char *name = cnet_sched_kind_name(s->cfg.kind);
    if (s->next_step != 0 || s->begin_index != 0)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: set_begin_index belongs right after sched_set_timesteps", name);
    if (begin < 0 || begin >= s->num_steps)
        return cnet_fail(err, CNET_EINVAL, "%s: begin index %d is outside 0..%d", name, begin,
                         s->num_steps - 1);
    memmove(s->timesteps, s->timesteps + begin, (size_t)(s->num_steps - begin) * sizeof(float));
    s->num_steps -= begin;
    if (s->num_sigmas > 0) {
        memmove(s->sigmas, s->sigmas + begin, (size_t)(s->num_sigmas - begin) * sizeof(float));
        s->num_sigmas -= begin;
    }
    s->begin_index = begin;
    return 0;
}

int sched_scale_model_input(sched *s, float *out, const float *sample, int step_index, long n,
                            cnet_error *err) {
    int rc = check_index(s, step_index, err);
    if (rc) return rc;
    if (s->cfg.kind == CNET_SCHED_EULER || s->cfg.kind == CNET_SCHED_EULER_ANCESTRAL) {
        const float sigma = s->sigmas[step_index];
        s->be->scale(s->be, out, sample, 1.0f / sqrtf(sigma * sigma + 1.0f), n);
    } else if (out != sample) {
        s->be->copy(s->be, out, sample, (size_t)n * sizeof(float));
    }
    return 0;
}

int sched_step(sched *s, float *prev_sample, float *pred_original_sample, const float *model_output,
               const float *sample, const float *noise, int step_index, long n, cnet_error *err) {
    int rc = check_index(s, step_index, err);
    if (rc) return rc;
    if (step_index != s->next_step)
        return cnet_fail(err, CNET_EINVAL,
                         "%s: step %d called where step %d is next (steps run "
                         "in order after sched_set_timesteps)",
                         cnet_sched_kind_name(s->cfg.kind), step_index, s->next_step);
    if (n < 1 || n > s->n_max)
        return cnet_fail(err, CNET_EINVAL, "%s: %ld elements, buffers hold %ld",
                         cnet_sched_kind_name(s->cfg.kind), n, s->n_max);
    float *x0 = pred_original_sample;
    const float *mo = model_output;
    switch (s->cfg.kind) {
    case CNET_SCHED_DDPM:
        sched_ddpm_step(s, prev_sample, x0, mo, sample, noise, step_index, n);
        break;
    case CNET_SCHED_DDIM:
        sched_ddim_step(s, prev_sample, x0, mo, sample, noise, step_index, n);
        break;
    case CNET_SCHED_PNDM:
        sched_pndm_step(s, prev_sample, mo, sample, step_index, n);
        break;
    case CNET_SCHED_EULER:
        sched_euler_step(s, prev_sample, x0, mo, sample, step_index, n);
        break;
    case CNET_SCHED_EULER_ANCESTRAL:
        sched_euler_ancestral_step(s, prev_sample, x0, mo, sample, noise, step_index, n);
        break;
    case CNET_SCHED_DPMSOLVER_MULTISTEP:
        sched_dpmsolver_step(s, prev_sample, mo, sample, step_index, n);
        break;
    case CNET_SCHED_UNIPC:
        sched_unipc_step(s, prev_sample, mo, sample, step_index, n);
        break;
    case CNET_SCHED_KIND_COUNT:
        break;
    }
    s->next_step++;
    return 0;
}

/* Shared by add_noise and get_velocity: out[b] = ca*a[b] + cb*b[b] with
 * (ca, cb) from the two float32 factors sqrt(acp[t]) and sqrt(1 - acp[t]). */
static int noise_mix(sched *s, const char *what, float *out, const float *x0, const float *noise,
                     const int64_t *timesteps, int B, long n, int velocity, cnet_error *err) {
    const cnet_sched_kind k = s->cfg.kind;
    if (k != CNET_SCHED_DDPM && k != CNET_SCHED_DDIM && (velocity || k != CNET_SCHED_PNDM))
        return cnet_fail(err, CNET_EINVAL, "%s: %s is implemented for %s only",
                         cnet_sched_kind_name(k), what,
                         velocity ? "DDPM and DDIM" : "DDPM, DDIM and PNDM");
    for (int b = 0; b < B; b++)
        if (timesteps[b] < 0 || timesteps[b] >= s->cfg.num_train_timesteps)
            return cnet_fail(err, CNET_EINVAL,
                             "%s: timestep %lld of batch element %d is outside "
                             "0..%d",
                             what, (long long)timesteps[b], b, s->cfg.num_train_timesteps - 1);
    for (int b = 0; b < B; b++) {
        const float acp = s->alphas_cumprod[timesteps[b]];
        const float sqrt_acp = sqrtf(acp), sqrt_one_minus = sqrtf(1.0f - acp);
        const long off = (long)b * n;
        if (velocity)
            s->be->axpby(s->be, out + off, sqrt_acp, noise + off, -sqrt_one_minus, x0 + off, n);
        else
            s->be->axpby(s->be, out + off, sqrt_acp, x0 + off, sqrt_one_minus, noise + off, n);
    }
    return 0;
}

int sched_add_noise(sched *s, float *out, const float *x0, const float *noise,
                    const int64_t *timesteps, int B, long n, cnet_error *err) {
    return noise_mix(s, "add_noise", out, x0, noise, timesteps, B, n, 0, err);
}

int sched_get_velocity(sched *s, float *out, const float *x0, const float *noise,
                       const int64_t *timesteps, int B, long n, cnet_error *err) {
    return noise_mix(s, "get_velocity", out, x0, noise, timesteps, B, n, 1, err);
}

int sched_add_noise_step(sched *s, float *out, const float *x0, const float *noise, int step_index,
                         long n, cnet_error *err) {
    int rc = check_index(s, step_index, err);
    if (rc) return rc;
    cnet_backend *be = s->be;
    switch (s->cfg.kind) {
    case CNET_SCHED_DDPM:
    case CNET_SCHED_DDIM:
    case CNET_SCHED_PNDM: {
        const int64_t t = (int64_t)s->timesteps[step_index];
        return noise_mix(s, "add_noise", out, x0, noise, &t, 1, n, 0, err);
    }
    case CNET_SCHED_EULER:
    case CNET_SCHED_EULER_ANCESTRAL:
        be->axpby(be, out, 1.0f, x0, s->sigmas[step_index], noise, n);
        return 0;
    case CNET_SCHED_DPMSOLVER_MULTISTEP:
    case CNET_SCHED_UNIPC: {
        const sched_point p = sched_point_of(s->sigmas[step_index]);
        be->axpby(be, out, p.alpha, x0, p.sigma, noise, n);
        return 0;
    }
    case CNET_SCHED_KIND_COUNT:
        break;
    }
    return cnet_fail(err, CNET_EINVAL, "add_noise: kind %d is not a scheduler", (int)s->cfg.kind);
}
