/* What a generate request will cost, estimated before any work: the
 * denoising passes it asks for (the steps it runs — img2img and inpainting
 * run int(steps × strength) of them — × images × 2 with classifier-free
 * guidance, which doubles the UNet batch) weighted by its latent area
 * against the model's own (the UNet's sample_size, the size it was trained
 * at, in latent pixels). One unit is one UNet pass at the model's native
 * size, so the same limits mean the same device time on SD 1.5 (64² latents,
 * 512² px), SDXL (128², 1024² px) and the tiny test models.
 *
 * Two limits, each refused with a message naming the parameters: the area
 * (an output far above the native size is slow beyond its pixel count, as
 * attention grows with the square of the tokens) and the units. The
 * synchronous route refuses over-budget requests before any work and admits
 * the rest by their units (worker.h's in-flight budget). What it is not: a
 * measurement (the units are relative; the deadline, --generate-timeout,
 * bounds the time), and no model loading (it reads two config.json files). */
#ifndef CNET_GEN_COST_H
#define CNET_GEN_COST_H

#include "engine/pipeline/generate.h"

/* Latent area over the model's native area one request may ask for: SD
 * 1.5's 2048² px, SDXL's 4096² px (both above the API's own size caps),
 * the 16² px tiny test model's 64² px. */
#define GEN_COST_AREA_MAX 16
/* Units one request may cost: API_GENERATE_STEPS_MAX steps with guidance
 * at the native size, or 50 steps of four guided 2x-size images. */
#define GEN_COST_UNITS_MAX 2000.0
/* Native size in px when a model's configs give none (SD 1.x's). */
#define GEN_COST_NATIVE_DEFAULT_PX 512

typedef struct gen_cost {
    int width, height; /* the output in px, rounded as the pipeline rounds it */
    int native_px;     /* the model's native side in px: UNet sample_size × VAE factor */
    int factor;        /* the VAE factor (px per latent pixel) */
    double area;       /* latent area / the native latent area */
    int steps;         /* the denoising steps run: steps, or int(steps × strength) */
    int passes;        /* steps run × num_images × (2 with guidance > 1) */
    double units;      /* area × passes */
} gen_cost;

/* Estimates r (its model_dir, steps, num_images, guidance, width and
 * height, 0 meaning the control image's, image_w × image_h as its header
 * declares it; with_init: an init image, r->strength of it) into out. CNET_EINVAL/CNET_ENOTFOUND
 * when the model's configs cannot be read or the size rounds to nothing. */
int gen_cost_estimate(gen_cost *out, const generate_request *r, int image_w, int image_h,
                      int with_init, cnet_error *err);
/* CNET_ELIMIT, naming width/height, steps, num_images and guidance and the
 * limit, when c is over GEN_COST_AREA_MAX or GEN_COST_UNITS_MAX. */
int gen_cost_check(const gen_cost *c, const generate_request *r, cnet_error *err);

#endif
