/* ControlNet preprocessors ("annotators", the sd-webui-controlnet extension's
 * "modules"): one table of them, one file each. An annotator turns a picture
 * into a control image: canny's edges, an inverted line drawing, a depth map.
 * The generate executor, POST /v1/preprocess and the A1111 routes all look
 * annotators up here, by cnet's name or by the extension's module name.
 *
 * Each annotator takes up to two numeric parameters, named per annotator and
 * also addressable by position (A1111's threshold_a / threshold_b), each with
 * its own range and default. Adding an annotator is one file defining its
 * `const annotator` and one line in annotator.c's table.
 *
 * What it is not: no image decoding, no resizing to the generation size
 * (engine/image/preprocess.h does that to every control image). */
#ifndef CNET_ANNOTATOR_H
#define CNET_ANNOTATOR_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/image/image.h"

/* Parameters an annotator takes (threshold_a, threshold_b). */
#define ANNOTATOR_MAX_PARAMS 2

/* One numeric parameter: its name, range [lo, hi] and default. */
typedef struct annotator_param {
    const char *name; /* "low_threshold"; NULL: the slot is unused */
    double lo, hi, def;
    const char *help;
} annotator_param;

/* What a run is given besides the image. */
typedef struct annotator_args {
    double value[ANNOTATOR_MAX_PARAMS]; /* per annotator.param; annotator_args_default fills them */
    uint64_t seed;                      /* for the annotators that draw random numbers */
    const char *model_dir;              /* network annotators: their weights folder; else NULL */
    /* The extension's processor_res: the picture's short side is resized to
     * it first (engine/annotators/annotator_cv.h, annotator_fit). 0: the
     * picture's own size. */
    int processor_res;
} annotator_args;

/* processor_res accepted: 0 (the picture's own size) or 1..this. */
#define ANNOTATOR_PROCESSOR_RES_MAX 4096

typedef struct annotator {
    const char *name;       /* cnet's name: "canny", "scribble_xdog" */
    const char *a1111_name; /* the extension's module name: "canny", "invert (from white bg & black
                               line)" */
    const char *help;
    annotator_param param[ANNOTATOR_MAX_PARAMS];
    int needs_model; /* runs only with args.model_dir (depth, normal, pose ...) */
    int takes_res;   /* 1: processor_res scales the picture first (the extension's
                        resolution slider); 0: it is ignored */
    /* out (allocated here, any size the annotator makes) from in. */
    int (*run)(image_rgb8 *out, const image_rgb8 *in, const annotator_args *args, cnet_error *err);
} annotator;

/* The table, in a fixed order ("none" first). */
int annotator_count(void);
const annotator *annotator_at(int i);
/* By cnet's name or the extension's module name; NULL when unknown. */
const annotator *annotator_find(const char *name);

/* Every parameter at its default, seed 0, no model folder. */
void annotator_args_default(const annotator *a, annotator_args *args);

/* Runs a on in into *out (zeroed first; holds nothing on failure). A
 * parameter outside its range or a missing model folder is CNET_EINVAL
 * naming the annotator and the parameter; "none" gives a copy. */
int annotator_run(const annotator *a, image_rgb8 *out, const image_rgb8 *in,
                  const annotator_args *args, cnet_error *err);

#endif
