/* Generate spec → engine request (see gen_spec.h). */
#include "server/workers/gen_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/hub_ref.h"
#include "engine/sched/scheduler.h"
#include "engine/pipeline/generate_infotext.h"
#include "server/hub/hub_model.h"

static const char *str(const json_t *spec, const char *key) {
    return json_string_value(json_object_get(spec, key));
}
static double num(const json_t *spec, const char *key) {
    return json_number_value(json_object_get(spec, key));
}

/* What one request may cost: the width and height fields' API caps
 * multiplied, enforced by the executor (generate_run) on every path — the
 * synchronous route and the job runner alike. */
static int64_t api_max_pixels(void) {
    int w, h;
    api_generate_size_caps(&w, &h);
    return (int64_t)w * h;
}

/* An SDXL (height, width) pair of the spec into out; absent leaves {0, 0}. */
static void size_pair(const json_t *spec, const char *key, int *out) {
    const json_t *v = json_object_get(spec, key);
    if (json_array_size(v) != 2) return;
    out[0] = (int)json_integer_value(json_array_get(v, 0));
    out[1] = (int)json_integer_value(json_array_get(v, 1));
}

static int path_join(char out[PATH_MAX], const char *a, const char *b, cnet_error *err) {
    if (snprintf(out, PATH_MAX, "%s/%s", a, b) >= PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "path too long: %.200s/%.200s", a, b);
    return 0;
}

/* The Hub cache's snapshot of the spec's field (an hf:// ref) into path; not
 * cached: CNET_ENOTFOUND with out->not_cached_field naming the field (a
 * synchronous request never downloads). */
static int cached(const json_t *spec, const char *field, hub_model_kind kind, char path[PATH_MAX],
                  gen_spec *out, cnet_error *err) {
    const char *ref = str(spec, field);
    char snap[HUB_PATH_MAX];
    const int rc = hub_model_cached(ref, kind, snap, err);
    if (rc) {
        out->not_cached_field = rc == CNET_ENOTFOUND ? field : NULL;
        return rc;
    }
    if (strlen(snap) >= PATH_MAX) return cnet_fail(err, CNET_ELIMIT, "path too long");
    strcpy(path, snap);
    return 0;
}

int gen_spec_resolve(gen_spec *out, const json_t *spec, const char *models_dir,
                     const char *jobs_dir, cnet_error *err) {
    memset(out, 0, sizeof *out);
    const char *model = str(spec, "model"), *cn = str(spec, "controlnet");
    if (!model) return cnet_fail(err, CNET_EINVAL, "spec: model is missing");
    int rc;
    if (hub_ref_is_hub(model)) {
        if ((rc = cached(spec, "model", HUB_MODEL_PIPELINE, out->model, out, err))) return rc;
    } else if ((rc = path_join(out->model, models_dir, model, err))) {
        return rc;
    }
    if (!cn)
        rc = path_join(out->controlnet, out->model, "controlnet", err);
    else if (hub_ref_is_hub(cn))
        rc = cached(spec, "controlnet", HUB_MODEL_COMPONENT, out->controlnet, out, err);
    else if (strncmp(cn, "j_", 2) == 0)
        rc = path_join(out->controlnet, jobs_dir, cn, err);
    else
        rc = path_join(out->controlnet, models_dir, cn, err);
    if (rc) return rc;
    struct stat st;
    char config[PATH_MAX + 16];
    snprintf(config, sizeof config, "%s/config.json", out->controlnet);
    if (stat(config, &st) != 0)
        return cnet_fail(err, CNET_ENOTFOUND, "controlnet: no ControlNet at %s%s", out->controlnet,
                         cn ? "" : " (the base model has no controlnet/; name one)");
    const char *sched_name = str(spec, "scheduler"), *pre = str(spec, "preprocess");
    generate_request *r = &out->req;
    *r = (generate_request){.model_dir = out->model,
                            .scheduler = sched_name ? sched_kind_from_short(sched_name) : -1,
                            .prompt = str(spec, "prompt"),
                            .negative_prompt = str(spec, "negative_prompt"),
                            .prompt_2 = str(spec, "prompt_2"),
                            .negative_prompt_2 = str(spec, "negative_prompt_2"),
                            .steps = (int)num(spec, "steps"),
                            .width = (int)num(spec, "width"),
                            .height = (int)num(spec, "height"),
                            .num_images = (int)num(spec, "num_images"),
                            .guess_mode = json_is_true(json_object_get(spec, "guess_mode")),
                            .clip_skip = (int)num(spec, "clip_skip"),
                            .guidance = (float)num(spec, "guidance"),
                            .eta = (float)num(spec, "eta"),
                            .seed = (uint64_t)json_integer_value(json_object_get(spec, "seed")),
                            .max_pixels = api_max_pixels(),
                            .n_controls = 1};
    pipe_micro *u = &r->micro;
    size_pair(spec, "original_size", u->original_size);
    size_pair(spec, "crops_coords_top_left", u->crops_coords_top_left);
    size_pair(spec, "target_size", u->target_size);
    size_pair(spec, "negative_original_size", u->negative_original_size);
    size_pair(spec, "negative_crops_coords_top_left", u->negative_crops_coords_top_left);
    size_pair(spec, "negative_target_size", u->negative_target_size);
    const annotator *a = annotator_find(pre ? pre : "none");
    r->controls[0] = (generate_control){.dir = out->controlnet,
                                        .image_name = "image",
                                        .pre = a,
                                        .scale = (float)num(spec, "scale"),
                                        .start = (float)num(spec, "control_guidance_start"),
                                        .end = (float)num(spec, "control_guidance_end")};
    if (sched_name && r->scheduler < 0)
        return cnet_fail(err, CNET_EINVAL, "spec: unknown scheduler %s", sched_name);
    if (!a) return cnet_fail(err, CNET_EINVAL, "spec: unknown preprocess %s", pre);
    /* api_generate_spec checked the values and wrote the ones the run takes
     * as threshold_a/b; a spec stored before them has canny's only. */
    static const char *const slot[2][ANNOTATOR_MAX_PARAMS] = {
        {"threshold_a", "threshold_b"}, {"canny_low_threshold", "canny_high_threshold"}};
    annotator_args *args = &r->controls[0].pre_args;
    annotator_args_default(a, args);
    for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++) {
        const char *key = json_object_get(spec, slot[0][k]) ? slot[0][k]
                          : !strcmp(a->name, "canny")       ? slot[1][k]
                                                            : NULL;
        if (key && json_object_get(spec, key)) args->value[k] = num(spec, key);
    }
    args->processor_res = (int)num(spec, "processor_res");
    if (!r->prompt) return cnet_fail(err, CNET_EINVAL, "spec: prompt is missing");
    return 0;
}

char *gen_spec_parameters(const gen_spec *gs, const generate_result *res) {
    generate_request r = gs->req;
    r.num_images = 1; /* one text for every image: no batch position */
    return generate_infotext(&r, &res->sched, res->width, res->height, 0, NULL);
}
