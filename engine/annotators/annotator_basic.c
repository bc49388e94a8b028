/* The annotators that wrap engine/image: "none" (the picture is the control
 * image) and "canny" (cv2.Canny, see engine/image/canny.h). canny with no
 * processor_res runs on the picture as it is, as the diffusers ControlNet
 * examples do; with one it is the extension's canny(): resize_image_with_pad
 * (annotator_cv.h), Canny on the padded picture, remove_pad. */
#include <string.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"
#include "engine/image/canny.h"

/* cv2.Canny takes any threshold; this is the largest a 3x3 Sobel L1
 * magnitude of 8-bit pixels reaches (4 * 255 * 2). */
#define CANNY_THRESHOLD_MAX 2040

static int none_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                    cnet_error *err) {
    (void)args;
    int rc = image_alloc(out, in->width, in->height, err);
    if (!rc) memcpy(out->data, in->data, (size_t)in->width * in->height * 3);
    return rc;
}

static int canny_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                     cnet_error *err) {
    if (!args->processor_res) return canny_rgb8(out, in, args->value[0], args->value[1], err);
    image_rgb8 fit = {0}, edges = {0};
    int w, h;
    int rc = annotator_fit(&fit, in, args->processor_res, &w, &h, err);
    if (!rc) rc = canny_rgb8(&edges, &fit, args->value[0], args->value[1], err);
    if (!rc) rc = annotator_crop(out, &edges, w, h, err);
    image_free(&fit);
    image_free(&edges);
    return rc;
}

const annotator annotator_none = {.name = "none",
                                  .a1111_name = "none",
                                  .help = "the image is the control image",
                                  .run = none_run};

const annotator annotator_canny = {
    .name = "canny",
    .a1111_name = "canny",
    .help = "cv2.Canny edges (aperture 3, L1 gradient), as the diffusers ControlNet examples",
    .param = {{"low_threshold", 0, CANNY_THRESHOLD_MAX, 100, "cv2.Canny's low threshold"},
              {"high_threshold", 0, CANNY_THRESHOLD_MAX, 200, "cv2.Canny's high threshold"}},
    .takes_res = 1,
    .run = canny_run};
