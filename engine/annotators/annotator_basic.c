/* The annotators that wrap engine/image: "none" (the picture is the control
 * image) and "canny" (cv2.Canny, see engine/image/canny.h). */
#include <string.h>

#include "engine/annotators/annotator.h"
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
    return canny_rgb8(out, in, args->value[0], args->value[1], err);
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
    .run = canny_run};
