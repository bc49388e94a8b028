/* "depth": a depth map from DPTForDepthEstimation weights given as a local
 * folder (args.model_dir: transformers' config.json + model.safetensors,
 * e.g. Intel/dpt-large), the extension's "depth_midas" flow
 * (annotator/midas and processor.py's midas()):
 *   resize_image_with_pad(picture, processor_res) (annotator_fit: sides to
 *   multiples of 64), pixels x / 255 normalised with mean = std = 0.5 (the
 *   extension's x / 127.5 - 1), the model, depth - min, / max, * 255,
 *   clipped and truncated to uint8 over the padded map, remove_pad, the
 *   same value on every channel.
 * The model runs on the CPU backend through the backend table
 * (engine/annotators/dpt.h), its weights read on every run (no cache: an
 * annotator runs once per control image). What it is not: MiDaS's own checkpoint layout
 * (dpt_hybrid-midas-501f0c75.pt) nor the hybrid backbone yet (refused by
 * dpt_config_read with its name). */
#include <stdlib.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"
#include "engine/annotators/dpt.h"

/* u8 [oh, ow] over the map: (d - min) / max(d - min) * 255, truncated. */
static void depth_to_u8(uint8_t *out, float *d, size_t n) {
    float lo = d[0], hi;
    for (size_t i = 1; i < n; i++) lo = d[i] < lo ? d[i] : lo;
    for (size_t i = 0; i < n; i++) d[i] -= lo;
    hi = d[0];
    for (size_t i = 1; i < n; i++) hi = d[i] > hi ? d[i] : hi;
    for (size_t i = 0; i < n; i++) {
        float v = hi > 0 ? d[i] / hi * 255.0f : 0.0f;
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

/* *depth [*oh, *ow] (allocated here) of the padded picture fit. */
static int run_model(float **depth, int *oh, int *ow, const image_rgb8 *fit, const char *dir,
                     cnet_error *err) {
    cnet_backend be;
    dpt_model m;
    const size_t n = (size_t)fit->width * fit->height * 3;
    float *px = malloc(n * sizeof *px);
    if (!px) return cnet_fail(err, CNET_ENOMEM, "depth: out of memory");
    for (size_t i = 0; i < n; i++) px[i] = ((float)fit->data[i] / 255.0f - 0.5f) / 0.5f;
    int rc = cnet_backend_open(&be, "cpu", NULL, 0, err);
    if (!rc) {
        if (!(rc = dpt_load(&m, &be, dir, err))) {
            rc = dpt_output_size(&m, fit->height, fit->width, oh, ow, err);
            if (!rc && !(*depth = malloc((size_t)*oh * *ow * sizeof **depth)))
                rc = cnet_fail(err, CNET_ENOMEM, "depth: out of memory");
            if (!rc) rc = dpt_forward(&m, *depth, px, fit->height, fit->width, NULL, err);
            dpt_free(&m);
        }
        cnet_backend_free(&be);
    }
    free(px);
    return rc;
}

static int depth_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                     cnet_error *err) {
    image_rgb8 fit = {0};
    float *depth = NULL;
    int w, h, oh = 0, ow = 0;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (!rc) rc = run_model(&depth, &oh, &ow, &fit, args->model_dir, err);
    uint8_t *u8 = rc ? NULL : malloc((size_t)oh * ow);
    if (!rc && !u8) rc = cnet_fail(err, CNET_ENOMEM, "depth: out of memory");
    if (!rc) {
        depth_to_u8(u8, depth, (size_t)oh * ow);
        /* remove_pad, in the map's scale (16 / patch of the picture's). */
        const int cw = (int)((long)w * ow / fit.width), ch = (int)((long)h * oh / fit.height);
        rc = image_alloc(out, cw, ch, err);
        for (int y = 0; !rc && y < ch; y++)
            for (int x = 0; x < cw; x++)
                for (int c = 0; c < 3; c++)
                    out->data[((size_t)y * cw + x) * 3 + c] = u8[(size_t)y * ow + x];
    }
    if (rc) cnet_error_prefix(err, "depth (%s)", args->model_dir);
    free(u8);
    free(depth);
    image_free(&fit);
    return rc;
}

const annotator annotator_depth = {.name = "depth",
                                   .a1111_name = "depth_midas",
                                   .help = "a depth map from DPT weights (transformers' "
                                           "DPTForDepthEstimation folder, e.g. Intel/dpt-large)",
                                   .needs_model = 1,
                                   .takes_res = 1,
                                   .run = depth_run};
