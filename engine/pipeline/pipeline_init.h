/* The img2img and inpainting parts of the ControlNet pipeline (private to
 * engine/pipeline/pipeline.c): what StableDiffusionControlNetImg2ImgPipeline and
 * StableDiffusionControlNetInpaintPipeline (diffusers v0.27.2) add to the
 * text-to-image loop. The loop itself stays pipeline.c's, one for all three.
 *
 *   get_timesteps: init_timestep = min(int(S * strength), S) in double,
 *     t_start = S - init_timestep, the schedule starts at t_start
 *     (sched_set_begin_index: PNDM's repeated entry and state machine
 *     included, as diffusers slices timesteps[t_start * order:])
 *   draws, in order: the init image's latent_dist.sample noise (img2img,
 *     4-channel inpainting, and 9-channel inpainting below strength 1),
 *     prepare_latents' noise, the masked image's (inpainting)
 *   img2img:  latents = add_noise(scaling * sample(encode(image)), noise, t0)
 *   inpaint:  strength 1: latents = noise * init_noise_sigma, else
 *             add_noise(image_latents, noise, t0); mask_latent =
 *             mask[y*f, x*f]; masked_image_latents = scaling *
 *             sample(encode(image * (mask < 0.5)))
 *   per step (4-channel UNet, after scheduler.step i): latents =
 *     (1 - mask_latent) * add_noise(image_latents, noise, t_{i+1}) +
 *     mask_latent * latents (the last step blends with image_latents);
 *     the mask is binary, so this is a select: cnet copies the runs of
 *     unmasked latent pixels, which gives diffusers' floats exactly
 *   9-channel UNet: its input is cat([x, mask, masked_image_latents]) (both
 *     doubled under CFG); no blend; the ControlNets still see x.
 *
 * The VAE's DiagonalGaussianDistribution sample (mean + std * eps, std =
 * exp(0.5 * clamp(logvar, -30, 20))) is computed on the host once per run,
 * as the training batcher does; every per-step update is a backend op. */
#ifndef CNET_PIPELINE_INIT_H
#define CNET_PIPELINE_INIT_H

#include "engine/core/arena.h"
#include "engine/pipeline/pipeline.h"

/* Longest run list: one run per unmasked stretch of latent pixels. */
typedef struct pipe_init_run {
    long start, len; /* in latent pixels of [N, h, w] */
} pipe_init_run;

typedef struct pipe_init_state {
    int on, inpaint, nine; /* init image given; mask given; 9-channel UNet */
    int N, rows, h, w, L;  /* batch, UNet rows, latent size and channels */
    float *image_latents;  /* device [N, h, w, L]; NULL for 9 channels at strength 1 */
    float *noise;          /* device [N, h, w, L]: prepare_latents' noise */
    float *proper;         /* device [N, h, w, L]: the re-noised image latents */
    float *cond9;          /* 9 channels: device [rows, h, w, 1 + L] = [mask | masked latents] */
    float *x9;             /* 9 channels: device [rows, h, w, 2L + 1] UNet input */
    pipe_init_run *runs;   /* 4-channel inpainting: unmasked runs */
    long n_runs;
} pipe_init_state;

/* The denoising steps an init image at `strength` leaves of `steps`:
 * diffusers' get_timesteps, min(int(steps * strength), steps), in double as
 * Python computes it. */
int pipe_init_steps(int steps, double strength);

/* Checks r->init against the models (n_images, strength, a 9-channel UNet
 * only with a mask); CNET_EINVAL names the field. */
int pipe_init_check(const pipe_models *m, const pipe_request *r, cnet_error *err);

/* Trims sc's schedule (sc just set to r->steps), encodes the images and
 * writes the initial latents [N, h, w, L] to `latents` (device). *offset
 * is the Philox block offset of the seed's stream; it advances past every
 * draw made here. */
int pipe_init_begin(pipe_init_state *st, const pipe_models *m, const pipe_request *r,
                    cnet_arena *scratch, sched *sc, float *latents, int N, int rows, int h, int w,
                    uint64_t *offset, const pipe_observer *obs, cnet_error *err);

/* The UNet's input for the model input x [rows, h, w, L]: x itself, or the
 * 9-channel concatenation. */
const float *pipe_init_unet_input(pipe_init_state *st, cnet_backend *be, const float *x);

/* The per-step blend after scheduler step i of n (4-channel inpainting;
 * nothing otherwise). */
int pipe_init_blend(pipe_init_state *st, sched *sc, float *latents, int i, int n,
                    const pipe_observer *obs, cnet_error *err);

void pipe_init_free(pipe_init_state *st, cnet_backend *be);

#endif
