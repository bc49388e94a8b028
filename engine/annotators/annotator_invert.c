/* "invert": 255 - every channel, the extension's
 * "invert (from white bg & black line)" (a black-on-white drawing becomes
 * the white-on-black lines the line ControlNets are trained on). No
 * processor_res: the extension's invert does not resize either. */
#include "engine/annotators/annotator.h"

static int invert_run(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args,
                      cnet_error *err) {
    (void)args;
    int rc = image_alloc(out, in->width, in->height, err);
    if (rc) return rc;
    for (size_t i = 0; i < (size_t)in->width * in->height * 3; i++)
        out->data[i] = 255 - in->data[i];
    return 0;
}

const annotator annotator_invert = {.name = "invert",
                                    .a1111_name = "invert (from white bg & black line)",
                                    .help =
                                        "255 minus each channel (white background, black lines)",
                                    .run = invert_run};
