/* One generate run (see generate.h). */
#include "engine/pipeline/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/preprocess.h"

void generate_to_rgb8(uint8_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float v = nearbyintf(src[i] * 255.0f);
        dst[i] = !(v > 0) ? 0 : v > 255 ? 255 : (uint8_t)v; /* NaN → 0: (uint8_t)NaN is UB */
    }
}

void generate_result_free(generate_result *out) {
    for (int i = 0; i < PIPE_MAX_IMAGES; i++) image_free(&out->images[i]);
    if (out->have_sched) cnet_sched_config_free(&out->sched);
    memset(out, 0, sizeof *out);
}

/* What a run holds between its steps. */
typedef struct gen_work {
    image_rgb8 annotated[PIPE_MAX_CONTROLNETS];
    const image_rgb8 *img[PIPE_MAX_CONTROLNETS]; /* the image or its annotator's */
    float *control[PIPE_MAX_CONTROLNETS];        /* [H, W, 3] in [0, 1] */
    float *pixels;                               /* [N, H, W, 3] */
} gen_work;

static void gen_work_free(gen_work *w) {
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) {
        image_free(&w->annotated[k]);
        free(w->control[k]);
    }
    free(w->pixels);
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
    const image_rgb8 *first = w->img[0];
    const char *name = r->controls[0].image_name;
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
    if (!(w->pixels = malloc((size_t)r->num_images * per * sizeof(float))))
        return cnet_fail(err, CNET_ENOMEM, "out of memory for %d %dx%d images", r->num_images,
                         out->width, out->height);
    pipe_request pr = {.prompt = r->prompt,
                       .negative_prompt = r->negative_prompt,
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
                       .n_controlnets = r->n_controls};
    for (int k = 0; k < r->n_controls; k++)
        pr.controlnets[k] = (pipe_controlnet){.model = r->controls[k].model,
                                              .image = w->control[k],
                                              .scale = r->controls[k].scale,
                                              .start = r->controls[k].start,
                                              .end = r->controls[k].end};
    pipe_models m = sd_base_models(r->base);
    int rc = pipeline_generate(&m, &out->sched, &pr, w->pixels, obs, err);
    for (int i = 0; !rc && i < r->num_images; i++) {
        if ((rc = image_alloc(&out->images[i], out->width, out->height, err))) break;
        out->n = i + 1;
        generate_to_rgb8(out->images[i].data, w->pixels + (size_t)i * per, per);
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
    gen_work w = {0};
    int rc = prepare(r, &w, out, err);
    if (!rc && !(rc = sd_base_scheduler(r->base, r->scheduler, &out->sched, err)))
        out->have_sched = 1;
    if (!rc) rc = run(r, &w, obs, out, err);
    gen_work_free(&w);
    if (rc) generate_result_free(out);
    return rc;
}
