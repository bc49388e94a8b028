/* One generate request on the device thread: the cached base pipeline and
 * ControlNet, the control image (optionally through the canny
 * preprocessor, then prepared as StableDiffusionControlNetPipeline's
 * prepare_image does), the base folder's scheduler config read as the
 * requested class, pipeline_generate, and diffusers' numpy_to_pil
 * ((x * 255).round() as uint8) for the output pixels.
 *
 * Not here: parsing or validating a request (api/api_generate.c), image
 * files or PNG text (the HTTP handler and the job runner). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/canny.h"
#include "engine/image/preprocess.h"
#include "server/workers/worker_internal.h"

/* [n, H, W, 3] floats in [0, 1] → n RGB8 images (round half to even, as numpy). */
static int to_rgb8(worker_images *out, const float *px, int n, int W, int H, cnet_error *err) {
    for (int i = 0; i < n; i++) {
        int rc = image_alloc(&out->img[i], W, H, err);
        if (rc) return rc;
        out->n = i + 1;
        const float *src = px + (size_t)i * H * W * 3;
        uint8_t *dst = out->img[i].data;
        for (size_t k = 0; k < (size_t)H * W * 3; k++) {
            float v = nearbyintf(src[k] * 255.0f);
            dst[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    return 0;
}

int worker_gen_run(worker *e, const worker_gen *g, worker_images *out, cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (g->num_images < 1 || g->num_images > WORKER_IMAGES_MAX)
        return cnet_fail(err, CNET_EINVAL, "num_images must be 1..%d (got %d)", WORKER_IMAGES_MAX,
                         g->num_images);
    sd_base *base = NULL;
    controlnet_model *cn = NULL;
    image_rgb8 edges = {0};
    float *control = NULL, *pixels = NULL;
    cnet_sched_config sc;
    int have_sc = 0, W = 0, H = 0;
    int rc = worker_base_acquire(e, g->model, &base, err);
    if (!rc) rc = worker_cn_acquire(e, g->controlnet, &cn, err);
    const image_rgb8 *img = g->control;
    if (!rc && g->canny) {
        rc = canny_rgb8(&edges, img, g->canny_low, g->canny_high, err);
        img = &edges;
    }
    if (!rc)
        rc = preprocess_control_size(img->width, img->height, g->width, g->height,
                                     vae_factor(&base->vae), &W, &H, err);
    if (!rc && !(control = malloc((size_t)H * W * 3 * sizeof(float))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory for a %dx%d control image", W, H);
    if (!rc) rc = preprocess_control(control, img, W, H, err);
    if (!rc && !(rc = sd_base_scheduler(base, g->scheduler, &sc, err))) have_sc = 1;
    if (!rc && !(pixels = malloc((size_t)g->num_images * H * W * 3 * sizeof(float))))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory for %d %dx%d images", g->num_images, W, H);
    if (!rc) {
        pipe_request r = {.prompt = g->prompt,
                          .negative_prompt = g->negative_prompt,
                          .steps = g->steps,
                          .guidance = g->guidance,
                          .seed = g->seed,
                          .width = W,
                          .height = H,
                          .num_images = g->num_images,
                          .guess_mode = g->guess_mode,
                          .clip_skip = g->clip_skip,
                          .eta = g->eta,
                          .n_controlnets = 1};
        r.controlnets[0] = (pipe_controlnet){.model = cn,
                                             .image = control,
                                             .scale = g->scale,
                                             .start = g->guidance_start,
                                             .end = g->guidance_end};
        pipe_models m = sd_base_models(base);
        rc = pipeline_generate(&m, &sc, &r, pixels, NULL, err);
    }
    if (!rc) rc = to_rgb8(out, pixels, g->num_images, W, H, err);
    if (rc) worker_images_free(out);
    free(pixels);
    free(control);
    image_free(&edges);
    if (have_sc) cnet_sched_config_free(&sc);
    if (cn) worker_cn_release(e, cn);
    if (base) worker_base_release(e, base);
    return rc;
}
