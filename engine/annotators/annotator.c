/* The annotator table and the checks every run goes through (see annotator.h). */
#include "engine/annotators/annotator.h"

#include <string.h>

extern const annotator annotator_none;
extern const annotator annotator_canny;
extern const annotator annotator_invert;
extern const annotator annotator_threshold;
extern const annotator annotator_scribble_xdog;
extern const annotator annotator_lineart_standard;
extern const annotator annotator_shuffle;
extern const annotator annotator_tile_resample;
extern const annotator annotator_blur_gaussian;
extern const annotator annotator_color;
extern const annotator annotator_inpaint;
extern const annotator annotator_inpaint_only;
extern const annotator annotator_depth;

static const annotator *const table[] = {
    &annotator_none,      &annotator_canny,         &annotator_invert,
    &annotator_threshold, &annotator_scribble_xdog, &annotator_lineart_standard,
    &annotator_shuffle,   &annotator_tile_resample, &annotator_blur_gaussian,
    &annotator_color,     &annotator_inpaint,       &annotator_inpaint_only,
    &annotator_depth};
#define TABLE_LEN ((int)(sizeof table / sizeof table[0]))

int annotator_count(void) { return TABLE_LEN; }

const annotator *annotator_at(int i) { return i >= 0 && i < TABLE_LEN ? table[i] : NULL; }

const annotator *annotator_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < TABLE_LEN; i++)
        if (!strcmp(table[i]->name, name) || !strcmp(table[i]->a1111_name, name)) return table[i];
    return NULL;
}

void annotator_args_default(const annotator *a, annotator_args *args) {
    memset(args, 0, sizeof *args);
    for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++)
        if (a->param[k].name) args->value[k] = a->param[k].def;
}

int annotator_run(const annotator *a, image_rgb8 *out, const image_rgb8 *in,
                  const annotator_args *args, cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (!in->data || in->width <= 0 || in->height <= 0)
        return cnet_fail(err, CNET_EINVAL, "%s: empty image", a->name);
    for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++) {
        const annotator_param *p = &a->param[k];
        const double v = args->value[k];
        if (p->name && !(v >= p->lo && v <= p->hi))
            return cnet_fail(err, CNET_EINVAL, "%s: %s is %g, not in [%g, %g]", a->name, p->name, v,
                             p->lo, p->hi);
    }
    if (args->processor_res < 0 || args->processor_res > ANNOTATOR_PROCESSOR_RES_MAX)
        return cnet_fail(err, CNET_EINVAL, "%s: processor_res is %d, not 0 or in [1, %d]", a->name,
                         args->processor_res, ANNOTATOR_PROCESSOR_RES_MAX);
    if (a->needs_model && !(args->model_dir && *args->model_dir))
        return cnet_fail(err, CNET_EINVAL,
                         "%s needs its weights: give the annotator's model folder", a->name);
    return a->run(out, in, args, err);
}
