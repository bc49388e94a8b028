/* Schedule tables shared by the schedulers: betas and alphas_cumprod as
 * diffusers builds them in torch, and the numpy routines diffusers'
 * set_timesteps goes through (linspace, arange, interp) reproduced to the
 * last bit, plus the Karras sigma ramp and _sigma_to_t.
 *
 * Precision is the point of this file: a table entry that differs by one
 * ulp moves every later step by more than the golden tolerances allow, so
 * each routine follows the exact operation order of the reference (torch
 * float32 where diffusers uses torch, float64 where it uses numpy or Python
 * floats). The build uses -std=c11, so the compiler does not contract a*b+c
 * into fma on its own; where torch's own build did, fmaf says so. */
#include <math.h>

#include "engine/sched/sched_internal.h"

/* torch.linspace(start, end, steps, dtype=float32) of the CPU kernel in
 * torch 1.13 (RangeFactoriesKernel.cpp, AVX2 build): the vectorised loop
 * fills pairs of 8-lane chunks from a chunk base (start + step*idx before
 * the halfway point, end - step*(steps-idx-1) after it) plus j*step, all
 * contracted to fma by the compiler; the tail takes the scalar formula. This
 * reproduces the golden betas bit for bit; a plain start + i*step does not. */
#define TORCH_VEC_LANES 8

static float torch_linspace_point(float start, float end, float step, long idx, long steps) {
    if (idx < steps / 2) return fmaf(step, (float)idx, start);
    return fmaf(-step, (float)(steps - idx - 1), end);
}

static void torch_linspace_f32(float *out, double start_d, double end_d, long steps) {
    const float start = (float)start_d, end = (float)end_d;
    if (steps == 1) {
        out[0] = start;
        return;
    }
    const float step = (end - start) / (float)(steps - 1);
    const long vec_end = steps / (2 * TORCH_VEC_LANES) * (2 * TORCH_VEC_LANES);
    long i = 0;
    for (; i < vec_end; i += TORCH_VEC_LANES) {
        const float base = torch_linspace_point(start, end, step, i, steps);
        for (int j = 0; j < TORCH_VEC_LANES; j++) out[i + j] = fmaf((float)j, step, base);
    }
    for (; i < steps; i++) out[i] = torch_linspace_point(start, end, step, i, steps);
}

/* diffusers betas_for_alpha_bar(T) with the cosine alpha_bar, in Python
 * floats, cast to float32 by torch.tensor. */
static void betas_squaredcos_cap_v2(float *betas, int T) {
    const double max_beta = 0.999, pi = 3.141592653589793;
    for (int i = 0; i < T; i++) {
        double t1 = (double)i / T, t2 = (double)(i + 1) / T;
        double a1 = cos((t1 + 0.008) / 1.008 * pi / 2), a2 = cos((t2 + 0.008) / 1.008 * pi / 2);
        double beta = 1 - (a2 * a2) / (a1 * a1);
        betas[i] = (float)(beta < max_beta ? beta : max_beta);
    }
}

void sched_table_betas(float *betas, const cnet_sched_config *cfg) {
    const int T = cfg->num_train_timesteps;
    if (cfg->trained_betas) { /* torch.tensor(trained_betas, dtype=float32) */
        for (int i = 0; i < T; i++) betas[i] = (float)cfg->trained_betas[i];
        return;
    }
    switch (cfg->beta_schedule) {
    case CNET_BETA_LINEAR:
        torch_linspace_f32(betas, cfg->beta_start, cfg->beta_end, T);
        break;
    case CNET_BETA_SCALED_LINEAR:
        torch_linspace_f32(betas, pow(cfg->beta_start, 0.5), pow(cfg->beta_end, 0.5), T);
        for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
        break;
    case CNET_BETA_SQUAREDCOS_CAP_V2:
        betas_squaredcos_cap_v2(betas, T);
        break;
    case CNET_BETA_SIGMOID: /* refused by sched_init */
        break;
    }
}

void sched_table_alphas_cumprod(float *acp, const float *betas, int T) {
    double acc = 1.0; /* torch accumulates in at::acc_type<float, false> = double */
    for (int i = 0; i < T; i++) {
        acc *= (double)(1.0f - betas[i]);
        acp[i] = (float)acc;
    }
}

void sched_np_linspace(double *out, double start, double stop, int num) {
    const int div = num - 1;
    const double delta = stop - start;
    if (div <= 0) {
        if (num == 1) out[0] = 0.0 * delta + start;
        return;
    }
    const double step = delta / div;
    for (int i = 0; i < num; i++)
        out[i] = (step == 0 ? (double)i / div * delta : (double)i * step) + start;
    out[num - 1] = stop;
}

int sched_np_arange(double *out, double start, double stop, double step) {
    double len = ceil((stop - start) / step);
    if (!(len > 0)) return 0;
    const int n = (int)len;
    if (out) {
        /* numpy stores start and start+step, then fills start + i*delta with
         * delta = (start+step) - start */
        const double second = start + step, delta = second - start;
        out[0] = start;
        if (n > 1) out[1] = second;
        for (int i = 2; i < n; i++) out[i] = start + i * delta;
    }
    return n;
}

double sched_np_interp(double x, const float *fp, int n) {
    if (isnan(x)) return x;
    if (x < 0) return fp[0];
    if (x >= n - 1) return fp[n - 1];
    const int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    const double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - j) + fp[j];
}

void sched_karras_sigmas(double *out, int n, double sigma_min, double sigma_max) {
    const double rho = 7.0;
    const double min_inv_rho = pow(sigma_min, 1 / rho), max_inv_rho = pow(sigma_max, 1 / rho);
    sched_np_linspace(out, 0, 1, n); /* the ramp */
    for (int i = 0; i < n; i++)
        out[i] = pow(max_inv_rho + out[i] * (min_inv_rho - max_inv_rho), rho);
}

double sched_sigma_to_t(double sigma, const float *log_sigmas, int T) {
    const double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
    /* low_idx = argmax(cumsum(log_sigma - log_sigmas >= 0)): the first index
     * where the running count peaks, clipped to T-2 */
    int count = 0, best = -1, low = 0;
    for (int i = 0; i < T; i++) {
        count += log_sigma - (double)log_sigmas[i] >= 0;
        if (count > best) best = count, low = i;
    }
    if (low > T - 2) low = T - 2;
    const double lo = log_sigmas[low], hi = log_sigmas[low + 1];
    double w = (lo - log_sigma) / (lo - hi);
    w = w < 0 ? 0 : w > 1 ? 1 : w;
    return (1 - w) * low + w * (low + 1);
}

int sched_timesteps_ddpm(float *ts, double *v, const cnet_sched_config *cfg, int n) {
    const int T = cfg->num_train_timesteps;
    switch (cfg->timestep_spacing) {
    case CNET_SPACING_LINSPACE: {
        sched_np_linspace(v, 0, T - 1, n);
        for (int k = 0; k < n; k++) ts[k] = (float)nearbyint(v[n - 1 - k]);
        return n;
    }
    case CNET_SPACING_LEADING: {
        const int ratio = T / n;
        for (int k = 0; k < n; k++) ts[k] = (float)((n - 1 - k) * ratio + cfg->steps_offset);
        return n;
    }
    case CNET_SPACING_TRAILING: {
        const int m = sched_np_arange(v, T, 0, -((double)T / n));
        for (int k = 0; k < m; k++) ts[k] = (float)(nearbyint(v[k]) - 1);
        return m;
    }
    }
    return 0;
}

int sched_timesteps_multistep(float *ts, double *v, const cnet_sched_config *cfg, int n,
                              int last_timestep) {
    const int T = cfg->num_train_timesteps;
    switch (cfg->timestep_spacing) {
    case CNET_SPACING_LINSPACE: {
        sched_np_linspace(v, 0, last_timestep - 1, n + 1);
        for (int k = 0; k < n; k++) ts[k] = (float)nearbyint(v[n - k]);
        return n;
    }
    case CNET_SPACING_LEADING: {
        const int ratio = last_timestep / (n + 1);
        for (int k = 0; k < n; k++) ts[k] = (float)((n - k) * ratio + cfg->steps_offset);
        return n;
    }
    case CNET_SPACING_TRAILING: {
        const int m = sched_np_arange(v, last_timestep, 0, -((double)T / n));
        for (int k = 0; k < m; k++) ts[k] = (float)(nearbyint(v[k]) - 1);
        return m;
    }
    }
    return 0;
}

void sched_karras_multistep(float *ts, double *sigmas, const sched *s, int n) {
    const int T = s->cfg.num_train_timesteps;
    sched_karras_sigmas(sigmas, n, s->train_sigmas[0], s->train_sigmas[T - 1]);
    for (int k = 0; k < n; k++)
        ts[k] = (float)nearbyint(sched_sigma_to_t(sigmas[k], s->log_sigmas, T));
}

sched_point sched_point_of(float sigma) {
    sched_point p;
    p.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    p.sigma = sigma * p.alpha;
    p.lambda = logf(p.alpha) - logf(p.sigma);
    return p;
}

const float *sched_noise(sched *s, const float *noise, float *scratch, long n) {
    if (noise) return noise;
    s->be->philox_normal(s->be, scratch, n, s->noise_seed, s->noise_offset);
    s->noise_offset += (uint64_t)(n + 3) / 4;
    return scratch;
}
