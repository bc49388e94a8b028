/* "tile_resample", the tile ControlNet's preprocessor: the extension's
 * tile_resample(): unchanged below a rate of 1.1, else cv2.resize INTER_AREA
 * to (int(W / rate), int(H / rate)). Slider "Down Sampling Rate", 1..8, 1.
 * No processor_res (the extension ignores it too). */
#include <string.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

/* tile_resample leaves the picture alone below this rate. */
#define TILE_RATE_MIN 1.1

static int tile_resample_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                             cnet_error *err) {
    const double rate = args->value[0];
    if (rate < TILE_RATE_MIN) {
        int rc = image_alloc(out, in->width, in->height, err);
        if (!rc) memcpy(out->data, in->data, (size_t)in->width * in->height * 3);
        return rc;
    }
    const int w = (int)((double)in->width / rate), h = (int)((double)in->height / rate);
    if (w < 1 || h < 1)
        return cnet_fail(err, CNET_EINVAL, "tile_resample: %dx%d at down_sampling_rate %g is empty",
                         in->width, in->height, rate);
    return cv_resize_area(out, in, w, h, err);
}

const annotator annotator_tile_resample = {
    .name = "tile_resample",
    .a1111_name = "tile_resample",
    .help = "tile: the picture shrunk by the down-sampling rate (INTER_AREA)",
    .param = {{"down_sampling_rate", 1, 8, 1, "down-sampling rate (below 1.1: unchanged)"}},
    .run = tile_resample_run};
