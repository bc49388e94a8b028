/* "color": the T2I-Adapter colour palette, the extension's color()
 * (annotator/color, apply_color):
 *   cv2_resize_shortest_edge(img, res): the short side to res, the long side
 *     int(round(long / short * res)), INTER_AREA;
 *   cv2.resize to (w // 64, h // 64) INTER_CUBIC, then back to (w, h)
 *     INTER_NEAREST: a grid of 64x64 blocks of flat colour.
 * res is processor_res (0: the short side, no resize); above the short side
 * the picture grows (INTER_AREA's bilinear variant, annotator_cv.h). A
 * result under 64 pixels on a side has no block and is refused. */
#include <math.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"

/* Each colour block's side. */
#define COLOR_BLOCK 64

static int color_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                     cnet_error *err) {
    const int short_side = in->width < in->height ? in->width : in->height;
    const int res = args->processor_res > 0 ? args->processor_res : short_side;
    int w, h;
    if (in->height < in->width) {
        h = res;
        w = (int)nearbyint((double)in->width / in->height * res);
    } else {
        w = res;
        h = (int)nearbyint((double)in->height / in->width * res);
    }
    if (w < COLOR_BLOCK || h < COLOR_BLOCK)
        return cnet_fail(err, CNET_EINVAL, "color: %dx%d has no %d-pixel block (processor_res %d)",
                         w, h, COLOR_BLOCK, res);
    image_rgb8 sized = {0}, grid = {0};
    int rc = cv_resize_area(&sized, in, w, h, err);
    if (!rc) rc = cv_resize_cubic(&grid, &sized, w / COLOR_BLOCK, h / COLOR_BLOCK, err);
    if (!rc) rc = cv_resize_nearest(out, &grid, w, h, err);
    image_free(&sized);
    image_free(&grid);
    return rc;
}

const annotator annotator_color = {
    .name = "color",
    .a1111_name = "color",
    .help = "T2I-Adapter colour grid: flat 64-pixel blocks of the picture's colours",
    .takes_res = 1,
    .run = color_run};
