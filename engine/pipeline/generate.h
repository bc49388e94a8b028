/* One generate run, for `cnet generate` and the service alike: the control
 * images (already decoded) through their preprocessor (an annotator of
 * engine/annotators/annotator.h: canny as the diffusers ControlNet examples
 * run cv2.Canny, the sd-webui-controlnet extension's others; its seed is the
 * request's, as A1111 seeds numpy before preprocessing), the output size
 * (--width/--height or the first control image's, rounded down to the VAE
 * factor), every control image prepared at that size as
 * StableDiffusionControlNetPipeline.prepare_image does, the base folder's
 * scheduler config read as the requested class, pipeline_generate, and the
 * one conversion to 8-bit RGB, diffusers' numpy_to_pil:
 * (x / 2 + 0.5).clamp(0, 1) * 255, rounded half to even.
 * With an init image it is StableDiffusionControlNetImg2ImgPipeline, with a
 * mask too StableDiffusionControlNetInpaintPipeline: the output size is
 * then --width/--height or the init image's, the init image and mask go
 * through engine/image/inpaint_image.h, and padding_mask_crop crops image,
 * mask and control images to the mask's region first and pastes the result
 * back (engine/image/inpaint_crop.h).
 *
 * What it is not: no model loading (the CLI opens its folders once, the
 * service's device threads keep caches; both hand the loaded models in), no
 * image files, no option parsing or validation (api/api_generate.c's table
 * says what a request may hold). */
#ifndef CNET_GENERATE_EXEC_H
#define CNET_GENERATE_EXEC_H

#include <stdint.h>

#include "engine/annotators/annotator.h"
#include "engine/image/image.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"

/* One ControlNet of a request, with its control image. */
typedef struct generate_control {
    const char *dir;         /* the ControlNet folder (resolved; the caller's caches key on it) */
    const char *image_name;  /* the control image in messages: its file, or "image" */
    const image_rgb8 *image; /* decoded, any size (borrowed) */
    controlnet_model *model; /* loaded from dir by the caller (borrowed) */
    const annotator *pre;    /* NULL: none */
    annotator_args pre_args; /* its parameters (the seed is the request's) */
    float scale;             /* controlnet_conditioning_scale; NAN: generate_default_scale */
    double start, end;       /* control_guidance_start / end */
} generate_control;

/* Everything one run needs (every pointer borrowed for the call). */
typedef struct generate_request {
    const char *model_dir;                /* the base pipeline folder (resolved) */
    sd_base *base;                        /* loaded from model_dir by the caller */
    int scheduler;                        /* cnet_sched_kind; -1: the folder's own class */
    const char *prompt, *negative_prompt; /* negative NULL: None (SDXL: zeros, see pipeline.h) */
    /* A batch of prompts instead (diffusers' list; pipeline.h's pipe_request):
     * n_prompts > 0 runs prompts[i] with negative_prompts[i] (the list may be
     * NULL: None), num_images each, prompt-major. */
    const char *const *prompts, *const *negative_prompts;
    int n_prompts;
    const char *prompt_2, *negative_prompt_2; /* SDXL only; NULL: the first encoder's */
    pipe_micro micro;                         /* SDXL only; zeros: diffusers' defaults */
    int steps, num_images, guess_mode, clip_skip;
    int width, height; /* 0: from the first control image */
    float guidance, eta;
    uint64_t seed;
    int64_t max_pixels; /* of the output; 0: no limit beyond the size's */
    int n_controls;
    generate_control controls[PIPE_MAX_CONTROLNETS];
    /* img2img / inpainting: init_image NULL is text-to-image */
    const char *init_name, *mask_name;         /* in messages: the files, or the fields */
    const image_rgb8 *init_image, *mask_image; /* decoded, any size (borrowed) */
    double strength;                           /* 0 < strength <= 1 */
    int padding_mask_crop;                     /* < 0: none */
} generate_request;

/* controlnet_conditioning_scale when none is given, per pipeline as
 * diffusers has it: 1.0 text-to-image, 0.8 img2img, 0.5 inpainting. */
float generate_default_scale(const generate_request *r);

/* What a run made: n images [height, width, 3] (num_images per prompt) and the scheduler config it
 * ran (for the images' parameters text). */
typedef struct generate_result {
    int n, width, height;
    image_rgb8 images[PIPE_MAX_IMAGES];
    cnet_sched_config sched;
    int have_sched;
} generate_result;

/* Runs r (reporting to obs, which may be NULL) into *out (zeroed here; free
 * with generate_result_free, also on error). CNET_EINVAL names the option or
 * image that is wrong; CNET_ELIMIT an output over r->max_pixels. */
int generate_run(const generate_request *r, const pipe_observer *obs, generate_result *out,
                 cnet_error *err);
void generate_result_free(generate_result *out);

/* numpy_to_pil on n floats: round(clamp(x, 0, 1) * 255), half to even. */
void generate_to_rgb8(uint8_t *dst, const float *src, size_t n);

#endif
