/* What A1111 clients read to fill their menus: /sdapi/v1/sd-models (the base
 * models), /controlnet/model_list (the ControlNets), /controlnet/module_list
 * (engine/annotators' table), /sdapi/v1/options and /sdapi/v1/progress, in
 * the shapes stable-diffusion-webui's modules/api/models.py
 * (SDModelItem, OptionsModel, ProgressResponse) and the extension's
 * scripts/api.py answer. Names are cnet's references (a folder under
 * --models, a train job id), which a request gives back as they are; cnet
 * keeps no hashes, so "hash" and "sha256" are null and a title is the bare
 * name (a client's "name [hash]" is read as name). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/annotators/annotator.h"
#include "server/a1111/a1111.h"

/* Folders a listing descends (org/name): the references' own depth. */
#define A1111_SCAN_DEPTH 2

static int has_file(const char *dir, const char *name, const char *leaf) {
    char path[4400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, leaf);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A folder's config.json says ControlNetModel. */
static int is_controlnet(const char *dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/config.json", dir, name);
    json_t *cfg = json_load_file(path, 0, NULL);
    const char *cls = json_string_value(json_object_get(cfg, "_class_name"));
    const int yes = cls && !strcmp(cls, "ControlNetModel");
    json_decref(cfg);
    return yes;
}

static int by_string(const void *a, const void *b) {
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* The array of strings sorted in place. */
static void sort_strings(json_t *arr) {
    const size_t n = json_array_size(arr);
    json_t **v = n ? malloc(n * sizeof *v) : NULL;
    if (!v) return;
    for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, by_string);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, v[i]);
    free(v);
}

/* Names under dir (prefix + name) of base models (bases) or ControlNets. */
static void scan(const char *dir, const char *prefix, int depth, int bases, json_t *out) {
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!api_safe_name(de->d_name)) continue;
        char ref[API_REF_MAX + 1], sub[4400];
        if ((size_t)snprintf(ref, sizeof ref, "%s%s", prefix, de->d_name) >= sizeof ref) continue;
        const int base = has_file(dir, de->d_name, "model_index.json");
        if (bases ? base : is_controlnet(dir, de->d_name)) {
            json_array_append_new(out, json_string(ref));
        } else if (depth + 1 < A1111_SCAN_DEPTH || (!bases && base)) {
            /* org/ folders, and a base model's controlnet/ */
            snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
            char pre[API_REF_MAX + 2];
            snprintf(pre, sizeof pre, "%s/", ref);
            scan(sub, pre, depth + 1, bases, out);
        }
    }
    if (d) closedir(d);
}

static json_t *base_names(const char *models_dir) {
    json_t *names = json_array();
    if (names) scan(models_dir, "", 0, 1, names);
    sort_strings(names);
    return names;
}

json_t *a1111_sd_models(const char *models_dir) {
    json_t *names = base_names(models_dir), *out = json_array();
    for (size_t i = 0; out && i < json_array_size(names); i++) {
        const char *n = json_string_value(json_array_get(names, i));
        char file[4400];
        snprintf(file, sizeof file, "%s/%s", models_dir, n);
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:n, s:n, s:s, s:n}", "title", n, "model_name",
                                        n, "hash", "sha256", "filename", file, "config"));
    }
    json_decref(names);
    return out;
}

void a1111_default_model(const char *models_dir, char *out, size_t cap) {
    json_t *names = base_names(models_dir);
    const char *first = json_string_value(json_array_get(names, 0));
    snprintf(out, cap, "%s", first ? first : "");
    json_decref(names);
}

json_t *a1111_model_list(const char *models_dir, const char *jobs_dir) {
    json_t *names = json_array();
    if (!names) return NULL;
    scan(models_dir, "", 0, 0, names);
    DIR *d = opendir(jobs_dir); /* trained ControlNets, by their job's id */
    for (struct dirent *de; d && (de = readdir(d));)
        if (api_safe_name(de->d_name) && has_file(jobs_dir, de->d_name, "config.json") &&
            has_file(jobs_dir, de->d_name, "diffusion_pytorch_model.safetensors"))
            json_array_append_new(names, json_string(de->d_name));
    if (d) closedir(d);
    sort_strings(names);
    return json_pack("{s:o}", "model_list", names);
}

json_t *a1111_module_list(int alias_names) {
    json_t *list = json_array(), *detail = json_object();
    for (int i = 0; list && detail && i < annotator_count(); i++) {
        const annotator *a = annotator_at(i);
        const char *name = alias_names ? a->a1111_name : a->name;
        json_t *sliders = json_array();
        for (int k = 0; sliders && k < ANNOTATOR_MAX_PARAMS; k++)
            if (a->param[k].name)
                json_array_append_new(sliders,
                                      json_pack("{s:s, s:f, s:f, s:f}", "name", a->param[k].name,
                                                "value", a->param[k].def, "min", a->param[k].lo,
                                                "max", a->param[k].hi));
        json_array_append_new(list, json_string(name));
        json_object_set_new(
            detail, name,
            json_pack("{s:b, s:o}", "model_free", !a->needs_model, "sliders", sliders));
    }
    return json_pack("{s:o, s:o}", "module_list", list, "module_detail", detail);
}

json_t *a1111_options(const char *models_dir) {
    char model[API_REF_MAX + 1];
    a1111_default_model(models_dir, model, sizeof model);
    return json_pack("{s:s, s:i, s:i, s:s, s:i}", "sd_model_checkpoint", model,
                     "CLIP_stop_at_last_layers", 1, "control_net_unit_count",
                     API_GENERATE_CONTROLNETS_MAX, "samples_format", "png", "eta_ddim", 0);
}

json_t *a1111_progress(int jobs) {
    return json_pack("{s:f, s:f, s:{s:b, s:b, s:s, s:i, s:s, s:i, s:i, s:i}, s:n, s:n}", "progress",
                     0.0, "eta_relative", 0.0, "state", "skipped", 0, "interrupted", 0, "job",
                     jobs ? "generate" : "", "job_count", jobs, "job_timestamp", "0", "job_no", 0,
                     "sampling_step", 0, "sampling_steps", 0, "current_image", "textinfo");
}
