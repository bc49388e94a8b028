/* Generate spec → engine request (see gen_spec.h). */
#include "server/workers/gen_spec.h"

#include <math.h>
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

_Static_assert(API_GENERATE_CONTROLNETS_MAX == PIPE_MAX_CONTROLNETS, "ControlNets: one limit");

/* The Hub cache's snapshot of ref (field's hf:// ref) into path; not
 * cached: CNET_ENOTFOUND with out->not_cached_field naming the field (a
 * synchronous request never downloads). */
static int cached(const char *ref, const char *field, hub_model_kind kind, char path[PATH_MAX],
                  gen_spec *out, cnet_error *err) {
    char snap[HUB_PATH_MAX];
    const int rc = hub_model_cached(ref, kind, snap, err);
    if (rc) {
        if (rc == CNET_ENOTFOUND) {
            snprintf(out->not_cached_name, sizeof out->not_cached_name, "%s", field);
            out->not_cached_field = out->not_cached_name, out->not_cached_ref = ref;
        }
        return rc;
    }
    if (strlen(snap) >= PATH_MAX) return cnet_fail(err, CNET_ELIMIT, "path too long");
    strcpy(path, snap);
    return 0;
}

int gen_spec_n_controls(const json_t *spec) {
    const json_t *list = json_object_get(spec, "controlnets");
    return list ? (int)json_array_size(list) : 1;
}

const json_t *gen_spec_control(const json_t *spec, int k) {
    const json_t *list = json_object_get(spec, "controlnets");
    return list ? json_array_get(list, (size_t)k) : k == 0 ? spec : NULL;
}

/* Control k of spec (its fields in one), its folder resolved into out. */
static int resolve_control(gen_spec *out, const json_t *spec, int k, const char *models_dir,
                           const char *jobs_dir, cnet_error *err) {
    const json_t *one = gen_spec_control(spec, k);
    const char *cn = str(one, "controlnet"), *pre = str(one, "preprocess");
    char field[48], *path = out->controlnet[k];
    if (json_object_get(spec, "controlnets"))
        snprintf(field, sizeof field, "controlnets[%d].controlnet", k);
    else
        snprintf(field, sizeof field, "controlnet");
    int rc;
    if (!cn)
        rc = path_join(path, out->model, "controlnet", err);
    else if (hub_ref_is_hub(cn))
        rc = cached(cn, field, HUB_MODEL_COMPONENT, path, out, err);
    else if (strncmp(cn, "j_", 2) == 0)
        rc = path_join(path, jobs_dir, cn, err);
    else
        rc = path_join(path, models_dir, cn, err);
    if (rc) return rc;
    struct stat st;
    char config[PATH_MAX + 16];
    snprintf(config, sizeof config, "%s/config.json", path);
    if (stat(config, &st) != 0)
        return cnet_fail(err, CNET_ENOTFOUND, "%s: no ControlNet at %s%s", field, path,
                         cn ? "" : " (the base model has no controlnet/; name one)");
    const annotator *a = annotator_find(pre ? pre : "none");
    if (!a) return cnet_fail(err, CNET_EINVAL, "spec: unknown preprocess %s", pre);
    out->req.controls[k] = (generate_control){.dir = path,
                                              .image_name = "image",
                                              .pre = a,
                                              .scale = json_is_number(json_object_get(one, "scale"))
                                                           ? (float)num(one, "scale")
                                                           : NAN, /* the pipeline's default */
                                              .start = num(one, "control_guidance_start"),
                                              .end = num(one, "control_guidance_end")};
    /* api_generate_spec checked the values and wrote the ones the run takes
     * as threshold_a/b; a spec stored before them has canny's only (run-wide). */
    static const char *const slot[ANNOTATOR_MAX_PARAMS] = {"threshold_a", "threshold_b"};
    static const char *const canny[ANNOTATOR_MAX_PARAMS] = {"canny_low_threshold",
                                                            "canny_high_threshold"};
    annotator_args *args = &out->req.controls[k].pre_args;
    annotator_args_default(a, args);
    for (int i = 0; i < ANNOTATOR_MAX_PARAMS; i++) {
        if (json_object_get(one, slot[i]))
            args->value[i] = num(one, slot[i]);
        else if (!strcmp(a->name, "canny") && json_object_get(spec, canny[i]))
            args->value[i] = num(spec, canny[i]);
    }
    args->processor_res = (int)num(one, "processor_res");
    const char *pm = str(one, "preprocess_model"); /* api_fields_check kept it under models_dir */
    if (pm && (rc = path_join(out->preprocess_model[k], models_dir, pm, err))) return rc;
    if (pm) args->model_dir = out->preprocess_model[k];
    return 0;
}

int gen_spec_resolve(gen_spec *out, const json_t *spec, const char *models_dir,
                     const char *jobs_dir, cnet_error *err) {
    memset(out, 0, sizeof *out);
    const char *model = str(spec, "model");
    if (!model) return cnet_fail(err, CNET_EINVAL, "spec: model is missing");
    const int n = gen_spec_n_controls(spec);
    if (n < 1 || n > PIPE_MAX_CONTROLNETS)
        return cnet_fail(err, CNET_EINVAL, "spec: %d ControlNets, not 1..%d", n,
                         PIPE_MAX_CONTROLNETS);
    int rc;
    if (hub_ref_is_hub(model)) {
        if ((rc = cached(model, "model", HUB_MODEL_PIPELINE, out->model, out, err))) return rc;
    } else if ((rc = path_join(out->model, models_dir, model, err))) {
        return rc;
    }
    const char *sched_name = str(spec, "scheduler");
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
                            .n_controls = n,
                            .init_name = "init_image",
                            .mask_name = "mask_image",
                            .strength = num(spec, "strength"),
                            .padding_mask_crop =
                                json_is_integer(json_object_get(spec, "padding_mask_crop"))
                                    ? (int)num(spec, "padding_mask_crop")
                                    : -1};
    pipe_micro *u = &r->micro;
    size_pair(spec, "original_size", u->original_size);
    size_pair(spec, "crops_coords_top_left", u->crops_coords_top_left);
    size_pair(spec, "target_size", u->target_size);
    size_pair(spec, "negative_original_size", u->negative_original_size);
    size_pair(spec, "negative_crops_coords_top_left", u->negative_crops_coords_top_left);
    size_pair(spec, "negative_target_size", u->negative_target_size);
    for (int k = 0; k < n; k++)
        if ((rc = resolve_control(out, spec, k, models_dir, jobs_dir, err))) return rc;
    const json_t *prompts = json_object_get(spec, "prompt"),
                 *negs = json_object_get(spec, "negative_prompt");
    if (json_array_size(prompts) > API_PROMPTS_MAX)
        return cnet_fail(err, CNET_EINVAL, "spec: %zu prompts, at most %d",
                         json_array_size(prompts), API_PROMPTS_MAX);
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        out->prompts[i] = json_string_value(json_array_get(prompts, i));
        out->negative_prompts[i] = json_is_array(negs) ? json_string_value(json_array_get(negs, i))
                                                       : str(spec, "negative_prompt");
    }
    if (json_is_array(prompts)) {
        r->prompts = out->prompts, r->negative_prompts = out->negative_prompts;
        r->n_prompts = (int)json_array_size(prompts);
        r->prompt = out->prompts[0], r->negative_prompt = out->negative_prompts[0];
    }
    if (sched_name && r->scheduler < 0)
        return cnet_fail(err, CNET_EINVAL, "spec: unknown scheduler %s", sched_name);
    if (!r->prompt) return cnet_fail(err, CNET_EINVAL, "spec: prompt is missing");
    return 0;
}

char *gen_spec_parameters(const gen_spec *gs, const generate_result *res, int i) {
    generate_request r = gs->req;
    if (r.n_prompts > 0) { /* image i is prompt i / num_images's */
        const int p = i / (r.num_images > 0 ? r.num_images : 1);
        r.prompt = gs->prompts[p], r.negative_prompt = gs->negative_prompts[p];
    }
    r.num_images = 1; /* one text for every image of a prompt: no batch position */
    return generate_infotext(&r, &res->sched, res->width, res->height, 0, NULL);
}
