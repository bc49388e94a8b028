/* Private to engine/sched/sched_*.c and engine/sched/scheduler.c: the schedule tables
 * (numpy/torch emulation, sched_table.c) and each scheduler kind's
 * set_timesteps and step. See scheduler.h for the public contract. */
#ifndef CNET_SCHED_INTERNAL_H
#define CNET_SCHED_INTERNAL_H

#include "engine/sched/scheduler.h"

/* ---- tables (sched_table.c) ---- */

/* betas [T] exactly as diffusers builds them in torch float32. */
void sched_table_betas(float *betas, const cnet_sched_config *cfg);
/* torch.cumprod(1 - betas) on CPU: float32 factors, double accumulator. */
void sched_table_alphas_cumprod(float *acp, const float *betas, int T);

/* np.linspace(start, stop, num) (endpoint included), float64. */
void sched_np_linspace(double *out, double start, double stop, int num);
/* np.arange(start, stop, step) for float64 arguments: its length (0 when
 * empty) and, when out is non-NULL, its values. */
int sched_np_arange(double *out, double start, double stop, double step);
/* np.interp(x, arange(n), fp) for one x. */
double sched_np_interp(double x, const float *fp, int n);
/* diffusers _convert_to_karras: n sigmas from sigma_max down to sigma_min
 * (rho = 7), float64. */
void sched_karras_sigmas(double *out, int n, double sigma_min, double sigma_max);
/* diffusers _sigma_to_t: the fractional timestep of sigma against
 * log_sigmas [T] (float32, ascending). */
double sched_sigma_to_t(double sigma, const float *log_sigmas, int T);

/* DDPM/DDIM timesteps (descending) into ts; returns the count. v: float64
 * scratch of num_train_timesteps + 2. */
int sched_timesteps_ddpm(float *ts, double *v, const cnet_sched_config *cfg, int n);
/* DPM-Solver/UniPC timesteps: n+1 points over [0, last_timestep) with the
 * final one dropped (linspace, leading), or the trailing range; returns the
 * count. */
int sched_timesteps_multistep(float *ts, double *v, const cnet_sched_config *cfg, int n,
                              int last_timestep);
/* Karras sigmas and timesteps for DPM-Solver/UniPC (n of each, timesteps
 * rounded to integers): sigma range from train_sigmas, as diffusers does. */
void sched_karras_multistep(float *ts, double *sigmas, const sched *s, int n);

/* The float32 scalar arithmetic of DPM-Solver/UniPC, as torch does it on
 * 0-dim tensors: alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma*alpha_t,
 * lambda = log(alpha_t) - log(sigma_t). */
typedef struct sched_point {
    float alpha, sigma, lambda;
} sched_point;
sched_point sched_point_of(float sigma);

/* The noise of a stochastic step: `noise` when non-NULL, else n normals
 * drawn into scratch from the scheduler's Philox stream. */
const float *sched_noise(sched *s, const float *noise, float *scratch, long n);

/* ---- per kind: <kind>_buffers is the number of device buffers it needs;
 * set_timesteps fills timesteps/num_steps, sigmas/num_sigmas and
 * init_noise_sigma (num_inference_steps already checked); step is one
 * scheduler.step with arguments as sched_step, already checked. ---- */

/* DDPM/DDIM pred_original_sample from the prediction and alpha_prod_t:
 * x0[n] = (sample - sqrt(1-a) eps)/sqrt(a), v: sqrt(a) sample - sqrt(1-a) v,
 * or the model output itself (copied). */
void sched_ddpm_x0(sched *s, float *x0, const float *model_output, const float *sample,
                   float alpha_prod_t, long n);
int sched_ddpm_buffers(void);
void sched_ddpm_set_timesteps(sched *s, int n);
void sched_ddpm_step(sched *s, float *prev, float *x0, const float *model_output,
                     const float *sample, const float *noise, int i, long n);

int sched_ddim_buffers(void);
void sched_ddim_step(sched *s, float *prev, float *x0, const float *model_output,
                     const float *sample, const float *noise, int i, long n);

int sched_pndm_buffers(void);
void sched_pndm_set_timesteps(sched *s, int n);
void sched_pndm_step(sched *s, float *prev, const float *model_output, const float *sample, int i,
                     long n);

int sched_euler_buffers(void);
void sched_euler_set_timesteps(sched *s, int n);
void sched_euler_step(sched *s, float *prev, float *x0, const float *model_output,
                      const float *sample, int i, long n);
void sched_euler_ancestral_step(sched *s, float *prev, float *x0, const float *model_output,
                                const float *sample, const float *noise, int i, long n);

int sched_dpmsolver_buffers(void);
void sched_dpmsolver_set_timesteps(sched *s, int n);
void sched_dpmsolver_step(sched *s, float *prev, const float *model_output, const float *sample,
                          int i, long n);

int sched_unipc_buffers(void);
void sched_unipc_set_timesteps(sched *s, int n);
void sched_unipc_step(sched *s, float *prev, const float *model_output, const float *sample, int i,
                      long n);

#endif
