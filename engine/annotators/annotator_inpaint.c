/* "inpaint" and "inpaint_only", the extension's inpaint preprocessors
 * ("inpaint_global_harmonious", "inpaint_only"; scripts/preprocessor/
 * inpaint.py): they hand the picture on unchanged. In the extension the
 * picture carries the mask as its alpha channel, and the inpaint
 * ControlNet's control is the picture with the masked pixels set to -1
 * (diffusers' make_inpaint_condition); "inpaint_only" further keeps the
 * unmasked area of the result. In cnet the mask is the generate request's
 * mask_image, which the inpainting pipeline applies; the annotator is the
 * picture itself, so a preview shows what the ControlNet will see outside
 * the mask. */
#include <string.h>

#include "engine/annotators/annotator.h"

static int inpaint_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                       cnet_error *err) {
    (void)args;
    int rc = image_alloc(out, in->width, in->height, err);
    if (!rc) memcpy(out->data, in->data, (size_t)in->width * in->height * 3);
    return rc;
}

const annotator annotator_inpaint = {
    .name = "inpaint",
    .a1111_name = "inpaint_global_harmonious",
    .help = "inpaint ControlNet: the picture as is (the mask comes with mask_image)",
    .run = inpaint_run};

const annotator annotator_inpaint_only = {
    .name = "inpaint_only",
    .a1111_name = "inpaint_only",
    .help = "inpaint ControlNet, keeping the unmasked area: the picture as is",
    .run = inpaint_run};
