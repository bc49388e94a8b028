/* Noise schedulers: the training noise of DDPM and the samplers of the
 * generate pipeline, matching diffusers v0.27.2 (src/diffusers/schedulers):
 * DDPMScheduler, DDIMScheduler, PNDMScheduler (PLMS, skip_prk_steps),
 * EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
 * DPMSolverMultistepScheduler (DPM-Solver++ 1S/2M) and
 * UniPCMultistepScheduler (bh1/bh2, order 1-2).
 *
 * Two halves. The schedule (betas, alphas_cumprod, timesteps, sigmas and the
 * per-step scalar coefficients) is host arithmetic on small tables, done in
 * the precision diffusers uses: torch float32 for the tables and scalar
 * coefficients, numpy float64 where diffusers goes through numpy. Every
 * per-element update is a backend op on device buffers, so a step never reads
 * tensor values on the host (DESIGN.md §2). This module is not a general
 * config loader and not a denoising loop: the pipeline owns the loop.
 *
 * Lifecycle: cnet_sched_config_load (config.h) -> sched_init ->
 * sched_set_timesteps -> for i in 0..num_steps-1: sched_scale_model_input,
 * model, sched_step(i) -> sched_free. Every device buffer a step needs is
 * allocated by sched_init; sched_set_timesteps and sched_step allocate
 * nothing. Steps must run in order 0, 1, 2, ... after each set_timesteps
 * (the multistep solvers keep history); sched_step refuses anything else.
 *
 * Buffers: sample, model_output, noise, prev_sample, pred_original_sample
 * hold n <= n_max float32 elements on the backend's device, in any layout
 * (every op is elementwise); prev_sample may alias sample. */
#ifndef CNET_SCHEDULER_H
#define CNET_SCHEDULER_H

#include <stdint.h>

#include "engine/core/backend.h"
#include "engine/config/config.h"
#include "engine/core/error.h"

/* The CLI's short names of the scheduler kinds ("ddpm", "ddim", "pndm",
 * "euler", "euler_a", "dpmpp_2m", "unipc"; the class names are
 * cnet_sched_kind_name in config.h). sched_kind_from_short returns -1 for an
 * unknown name. */
const char *sched_kind_short(cnet_sched_kind kind);
int sched_kind_from_short(const char *short_name);

/* solver_order of DPM-Solver and UniPC that cnet implements. */
#define SCHED_MAX_ORDER 2

#define SCHED_BUFFERS_MAX 6

typedef struct sched {
    cnet_sched_config cfg; /* copy; trained_betas is not kept (NULL) */
    cnet_backend *be;      /* borrowed */
    long n_max;            /* elements of each device buffer */

    /* The training schedule, host [num_train_timesteps], float32 as torch
     * builds it: betas, alphas_cumprod = cumprod(1 - betas) and
     * train_sigmas = ((1 - alphas_cumprod) / alphas_cumprod)^0.5. */
    float *betas, *alphas_cumprod, *train_sigmas;
    float *log_sigmas;         /* log(train_sigmas), float32: Karras timesteps */
    float final_alpha_cumprod; /* DDIM/PNDM: alphas_cumprod of "t < 0" */

    /* Set by sched_set_timesteps. timesteps are diffusers' scheduler.timesteps
     * (integers for DDPM/DDIM/PNDM/DPM-Solver/UniPC, float32 values for
     * Euler); PNDM has num_inference_steps + 1 of them, one repeated.
     * sigmas: num_sigmas = num_steps + 1 for Euler, Euler a, DPM-Solver and
     * UniPC, 0 for the others. The pipeline multiplies its initial noise by
     * init_noise_sigma. */
    int num_inference_steps;
    int num_steps, num_sigmas;
    int begin_index;  /* entries sched_set_begin_index dropped (0 after set_timesteps) */
    float *timesteps; /* host, capacity num_train_timesteps + 1 */
    float *sigmas;    /* host, capacity num_train_timesteps + 2 */
    double *work;     /* host float64 scratch, num_train_timesteps + 2 */
    float init_noise_sigma;

    /* Stochastic steps (DDPM; DDIM with eta > 0; Euler a) add N(0,1) noise:
     * the noise argument of sched_step when given, else n normals drawn with
     * be->philox_normal at (noise_seed, noise_offset), after which
     * noise_offset advances by (n + 3) / 4 blocks. Set both before stepping;
     * sched_set_timesteps leaves them alone. */
    uint64_t noise_seed, noise_offset;
    float eta; /* DDIM's eta (0 = deterministic); 0 after sched_init */

    /* Stepping state (private). */
    int next_step;
    int lower_order_nums, this_order, have_last;
    int ets_count;
    float *buf[SCHED_BUFFERS_MAX]; /* device, n_max each; roles per kind */
    int n_buf;
} sched;

/* Builds the training tables and allocates the device buffers for samples of
 * up to n_max elements (0 for add_noise/get_velocity only). cfg is copied
 * (trained_betas is read here, not kept). On failure nothing is left to
 * free. CNET_EINVAL names an option cnet does not implement: the sigmoid
 * schedule, rescale_betas_zero_snr, PNDM without skip_prk_steps, Euler's
 * log_linear interpolation or continuous timesteps with v_prediction,
 * prediction_type sample in Euler a and PNDM (diffusers has none either),
 * DPM-Solver algorithms other than dpmsolver++ (and deis, its alias),
 * learned variances or Lu lambdas, solver_order > SCHED_MAX_ORDER.
 * CNET_ENOMEM when memory runs out. */
int sched_init(sched *s, cnet_backend *be, const cnet_sched_config *cfg, long n_max,
               cnet_error *err);
/* Frees everything; *s is zeroed. Safe on a zeroed struct. */
void sched_free(sched *s);

/* diffusers set_timesteps(num_inference_steps): fills timesteps, sigmas and
 * init_noise_sigma and resets the stepping state. Refuses options step()
 * cannot honour (clip_sample, thresholding, learned variances), so a DDPM
 * config with them still serves add_noise/get_velocity. CNET_EINVAL when
 * num_inference_steps is outside 1..num_train_timesteps or the spacing gives
 * a negative timestep (diffusers would index alphas_cumprod[-1]). */
int sched_set_timesteps(sched *s, int num_inference_steps, cnet_error *err);

/* The img2img start (the pipelines' get_timesteps with set_begin_index):
 * drops the first `begin` timesteps (and sigmas), so step 0 is diffusers'
 * step begin. Steps keep counting from 0, which is diffusers' state for
 * DDIM and PNDM (no set_begin_index: PNDM's counter starts at 0 on the
 * trimmed list, its warm-up repeat included) and the step_index offset for
 * the sigma schedulers; DPM-Solver's lower_order_final still sees the full
 * length. Call right after sched_set_timesteps. CNET_EINVAL when begin is
 * outside 0..num_steps-1. */
int sched_set_begin_index(sched *s, int begin, cnet_error *err);

/* out[n] = scale_model_input(sample, timesteps[step_index]): sample /
 * sqrt(sigma^2 + 1) for Euler and Euler a, a copy otherwise (nothing when
 * out == sample). */
int sched_scale_model_input(sched *s, float *out, const float *sample, int step_index, long n,
                            cnet_error *err);

/* One scheduler.step(model_output, timesteps[step_index], sample):
 * prev_sample[n] is the sample for the next timestep. pred_original_sample
 * (may be NULL) receives the predicted x0 where diffusers returns one (DDPM,
 * DDIM, Euler, Euler a); for the others it is left untouched. noise [n] may
 * be NULL (see noise_seed). CNET_EINVAL when called out of order, before
 * set_timesteps, or with n > n_max. */
int sched_step(sched *s, float *prev_sample, float *pred_original_sample, const float *model_output,
               const float *sample, const float *noise, int step_index, long n, cnet_error *err);

/* Training noise in the alphas_cumprod form (add_noise of DDPM, DDIM and
 * PNDM; get_velocity of DDPM and DDIM). Per batch element b
 * with timestep t = timesteps[b] (host, 0..num_train_timesteps-1) and n
 * elements per element:
 *   add_noise:    out = sqrt(acp[t]) * x0 + sqrt(1 - acp[t]) * noise
 *   get_velocity: out = sqrt(acp[t]) * noise - sqrt(1 - acp[t]) * x0
 * out, x0 and noise are device [B, n]; out may alias either input.
 * CNET_EINVAL for another kind or a timestep out of range. */
int sched_add_noise(sched *s, float *out, const float *x0, const float *noise,
                    const int64_t *timesteps, int B, long n, cnet_error *err);
int sched_get_velocity(sched *s, float *out, const float *x0, const float *noise,
                       const int64_t *timesteps, int B, long n, cnet_error *err);

/* The pipelines' scheduler.add_noise(x0, noise, timesteps[step_index]) on
 * n elements (one timestep for the whole batch), as each kind defines it:
 * DDPM, DDIM and PNDM sqrt(acp[t]) * x0 + sqrt(1 - acp[t]) * noise; Euler
 * and Euler a x0 + sigma * noise; DPM-Solver and UniPC alpha_t * x0 +
 * sigma_t * noise with alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma *
 * alpha_t; sigma = sigmas[step_index], the sigma of that step after
 * sched_set_begin_index (diffusers' begin_index / step_index rule). out may
 * alias x0 or noise. CNET_EINVAL for a step outside 0..num_steps-1. */
int sched_add_noise_step(sched *s, float *out, const float *x0, const float *noise, int step_index,
                         long n, cnet_error *err);

#endif
