/* One generate run (see generate.h). */
#include "engine/pipeline/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/inpaint_crop.h"
#include "engine/image/inpaint_image.h"
#include "engine/image/preprocess.h"

void generate_to_rgb8(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = nearbyintf(src[i] * 255.0f);
        dst[i] = !(v > 0) ? 0 : v > 255 ? 255 : (uint8_t)v; /* NaN → 0: (uint8_t)NaN is UB */
    }
}

float generate_default_scale(const generate_request *r) {
    return !r->init_image ? 1.0f : r->mask_image ? 0.5f : 0.8f;
}

void generate_result_free(generate_result *out) {
    for (int i = 0; i < PIPE_MAX_IMAGES; i++) image_free(&out->images[i]);
    if (out->have_sched) cnet_sched_config_free(&out->sched);
    memset(out, 0, sizeof *out);
}

/* What a run holds between its steps. */
typedef struct gen_work {
    image_rgb8 annotated[PIPE_MAX_CONTROLNETS];
    image_rgb8 cropped[PIPE_MAX_CONTROLNETS + 2]; /* padding_mask_crop: controls, init, mask */
    const image_rgb8 *img[PIPE_MAX_CONTROLNETS];  /* the image or its annotator's (or their crop) */
    float *control[PIPE_MAX_CONTROLNETS];         /* [H, W, 3] in [0, 1] */
    float *init, *mask;                           /* [H, W, 3] in [-1, 1], [H, W] in {0, 1} */
    int crop[4];                                  /* padding_mask_crop's region */
    float *pixels;                                /* [N, H, W, 3] */
} gen_work;

static void gen_work_free(gen_work *w) {
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) {
        image_free(&w->annotated[k]);
        free(w->control[k]);
    }
    for (int k = 0; k < PIPE_MAX_CONTROLNETS + 2; k++) image_free(&w->cropped[k]);
    free(w->init);
    free(w->mask);
    free(w->pixels);
}

/* The init image and mask at the output size, after padding_mask_crop's
 * crop of every image (the control images' too: w->img). */
static int prepare_init(const generate_request *r, gen_work *w, int W, int H, cnet_error *err) {
    const image_rgb8 *init = r->init_image, *mask = r->mask_image;
    int rc = 0;
    if (r->padding_mask_crop >= 0 && mask) {
        if ((rc = inpaint_crop_region(mask, W, H, r->padding_mask_crop, w->crop, err))) return rc;
        for (int k = 0; k < r->n_controls && !rc; k++)
            if (!(rc = inpaint_crop_fill(&w->cropped[k], w->img[k], w->crop, W, H, err)))
                w->img[k] = &w->cropped[k];
        if (!rc)
            rc = inpaint_crop_fill(&w->cropped[PIPE_MAX_CONTROLNETS], init, w->crop, W, H, err);
        if (!rc)
            rc = inpaint_crop_fill(&w->cropped[PIPE_MAX_CONTROLNETS + 1], mask, w->crop, W, H, err);
        if (rc) return rc;
        init = &w->cropped[PIPE_MAX_CONTROLNETS], mask = &w->cropped[PIPE_MAX_CONTROLNETS + 1];
    }
    const size_t px = (size_t)W * H;
    if (!(w->init = malloc(px * 3 * sizeof(float))) ||
        (mask && !(w->mask = malloc(px * sizeof(float)))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for a %dx%d init image", W, H);
    if ((rc = inpaint_init_image(w->init, init, W, H, err))) {
        cnet_error_prefix(err, "%s", r->init_name);
        return rc;
    }
    if (mask && (rc = inpaint_mask(w->mask, NULL, mask, W, H, err)))
        cnet_error_prefix(err, "%s", r->mask_name);
    return rc;
}

/* Preprocessing and the output size. */
static int prepare(const generate_request *r, gen_work *w, generate_result *out, cnet_error *err) {
    int rc = 0;
    for (int k = 0; k < r->n_controls && !rc; k++) {
        const generate_control *c = &r->controls[k];
        w->img[k] = c->image;
        if (c->pre && strcmp(c->pre->name, "none")) {
            annotator_args args = c->pre_args;
            args.seed = r->seed;
            if ((rc = annotator_run(c->pre, &w->annotated[k], c->image, &args, err)))
                cnet_error_prefix(err, "preprocess %s on %s", c->pre->name, c->image_name);
            w->img[k] = &w->annotated[k];
        }
    }
    if (rc) return rc;
    /* the output size: the init image's when there is one, as the img2img
     * and inpainting pipelines' image_processor.preprocess has it */
    const image_rgb8 *first = r->init_image ? r->init_image : w->img[0];
    const char *name = r->init_image ? r->init_name : r->controls[0].image_name;
    if ((rc = preprocess_control_size(first->width, first->height, r->width, r->height,
                                      vae_factor(&r->base->vae), &out->width, &out->height, err))) {
        cnet_error_prefix(err, "%s", name);
        return rc;
    }
    if (out->width % 8 || out->height % 8) /* the pipeline needs multiples of 8 */
        return cnet_fail(err, CNET_EINVAL,
                         "%s: its size %dx%d gives an output of %dx%d, not multiples of 8; give "
                         "width and height",
                         name, first->width, first->height, out->width, out->height);
    const int64_t pixels = (int64_t)out->width * out->height;
    if (r->max_pixels > 0 && pixels > r->max_pixels)
        return cnet_fail(err, CNET_ELIMIT,
                         "output size %dx%d = %lld pixels is over max_pixels %lld", out->width,
                         out->height, (long long)pixels, (long long)r->max_pixels);
    if (r->init_image && (rc = prepare_init(r, w, out->width, out->height, err))) return rc;
    for (int k = 0; k < r->n_controls; k++) {
        if (!(w->control[k] = malloc((size_t)pixels * 3 * sizeof(float))))
            return cnet_fail(err, CNET_ENOMEM, "out of memory for a %dx%d control image",
                             out->width, out->height);
        if ((rc = preprocess_control(w->control[k], w->img[k], out->width, out->height, err))) {
            cnet_error_prefix(err, "%s", r->controls[k].image_name);
            return rc;
        }
    }
    return 0;
}

static int run(const generate_request *r, gen_work *w, const pipe_observer *obs,
               generate_result *out, cnet_error *err) {
    const size_t per = (size_t)out->width * out->height * 3;
    const int total = r->num_images * (r->n_prompts > 0 ? r->n_prompts : 1);
    if (!(w->pixels = malloc((size_t)total * per * sizeof(float))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for %d %dx%d images", total, out->width,
                         out->height);
    pipe_request pr = {
        .prompt = r->prompt,
        .negative_prompt = r->negative_prompt,
        .prompts = r->prompts,
        .negative_prompts = r->negative_prompts,
        .n_prompts = r->n_prompts,
        .prompt_2 = r->prompt_2,
        .negative_prompt_2 = r->negative_prompt_2,
        .micro = r->micro,
        .steps = r->steps,
        .guidance = r->guidance,
        .seed = r->seed,
        .width = out->width,
        .height = out->height,
        .num_images = r->num_images,
        .guess_mode = r->guess_mode,
        .clip_skip = r->clip_skip,
        .eta = r->eta,
        .n_controlnets = r->n_controls,
        .init = {.image = w->init, .n_images = 1, .mask = w->mask, .strength = r->strength}};
    for (int k = 0; k < r->n_controls; k++)
        pr.controlnets[k] = (pipe_controlnet){
            .model = r->controls[k].model,
            .image = w->control[k],
            .scale = isnan(r->controls[k].scale) ? generate_default_scale(r) : r->controls[k].scale,
            .start = r->controls[k].start,
            .end = r->controls[k].end};
    pipe_models m = sd_base_models(r->base);
    int rc = pipeline_generate(&m, &out->sched, &pr, w->pixels, obs, err);
    const int overlay = r->mask_image && r->padding_mask_crop >= 0;
    for (int i = 0; !rc && i < total; i++) {
        image_rgb8 *img = &out->images[i], gen = {0};
        if ((rc = image_alloc(overlay ? &gen : img, out->width, out->height, err))) break;
        generate_to_rgb8((overlay ? &gen : img)->data, w->pixels + (size_t)i * per, per);
        /* padding_mask_crop: the result pasted back (diffusers 0.27.2's apply_overlay) */
        if (overlay)
            rc = inpaint_apply_overlay(img, r->mask_image, r->init_image, &gen, w->crop, err);
        image_free(&gen);
        if (!rc) out->n = i + 1;
    }
    return rc;
}

int generate_run(const generate_request *r, const pipe_observer *obs, generate_result *out,
                 cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (r->n_controls < 1 || r->n_controls > PIPE_MAX_CONTROLNETS)
        return cnet_fail(err, CNET_EINVAL, "%d ControlNets: 1..%d", r->n_controls,
                         PIPE_MAX_CONTROLNETS);
    if (r->num_images < 1 || r->num_images > PIPE_MAX_IMAGES)
        return cnet_fail(err, CNET_EINVAL, "num_images must be 1..%d (got %d)", PIPE_MAX_IMAGES,
                         r->num_images);
    if (r->n_prompts > 0 && r->num_images * r->n_prompts > PIPE_MAX_IMAGES)
        return cnet_fail(err, CNET_EINVAL, "%d prompts x num_images %d is over %d images",
                         r->n_prompts, r->num_images, PIPE_MAX_IMAGES);
    if (r->mask_image && !r->init_image)
        return cnet_fail(err, CNET_EINVAL, "mask_image needs an init_image to repaint");
    if (r->init_image && !(r->strength > 0 && r->strength <= 1))
        return cnet_fail(err, CNET_EINVAL, "strength must be in (0, 1] (got %g)", r->strength);
    gen_work w = {0};
    int rc = prepare(r, &w, out, err);
    if (!rc && !(rc = sd_base_scheduler(r->base, r->scheduler, &out->sched, err)))
        out->have_sched = 1;
    if (!rc) rc = run(r, &w, obs, out, err);
    gen_work_free(&w);
    if (rc) generate_result_free(out);
    return rc;
}
