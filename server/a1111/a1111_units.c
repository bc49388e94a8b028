/* The sd-webui-controlnet extension's units (alwayson_scripts.controlnet.args[],
 * scripts/external_code.py's ControlNetUnit) into the items of cnet's
 * "controlnets" list (api/api_generate.c's per-ControlNet fields):
 *   enabled (false: the unit is left out), image / input_image (base64, or
 *   {"image", "mask": null}; absent in img2img: the init image, as the
 *   extension does), module (engine/annotators' table by the extension's
 *   module name → preprocess), model (" [hash]" dropped → controlnet),
 *   weight → scale, guidance_start / guidance_end → control_guidance_*,
 *   threshold_a / threshold_b → the annotator's two parameters by position
 *   (absent or -1: its default), per ControlNet.
 *   control_mode: "Balanced" (0) as is; "ControlNet is more important" (2)
 *   is the extension's soft injection (0.825^(12-i) per residual) plus
 *   control on the conditional half only — diffusers' guess mode
 *   (logspace(-1, 0, 13) = 10^(-(12-i)/12), 10^(-1/12) = 0.8254) — so it
 *   sets guess_mode, which in cnet holds for every ControlNet of a run (units
 *   that disagree are refused); "My prompt is more important" (1), soft
 *   injection without the conditional-only half, cnet has not: refused.
 *   resize_mode: cnet resizes the control image to the output size
 *   (diffusers' prepare_image, the extension's "Just Resize"); "Crop and
 *   Resize" and "Resize and Fill" are the same when the image has the
 *   output's aspect ratio, and refused when it has not.
 *   processor_res → processor_res (negative: the extension's default
 *   resolution slider, 512, A1111_PROCESSOR_RES_DEFAULT; 0: the image's own
 *   size, cnet's);
 *   pixel_perfect: the extension's pixel_perfect_resolution instead — with
 *   module "none" no annotator runs and both are moot, as in the extension.
 * Members that change no pixel (low_vram, save_detected_map, is_ui, ...)
 * are accepted; a member this table does not know is refused by name. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_fields.h"
#include "engine/annotators/annotator.h"
#include "engine/image/image.h"
#include "server/a1111/a1111.h"

typedef enum {
    U_ENABLED,
    U_IMAGE,
    U_MODULE,
    U_MODEL,
    U_NUM, /* a number for the cnet field .cnet */
    U_CONTROL_MODE,
    U_RESIZE,
    U_PIXEL_PERFECT,
    U_PROCESSOR_RES,
    U_THRESHOLD, /* .slot: the annotator's parameter */
    U_INERT,     /* changes no pixel */
    U_OFF,       /* accepted only off: null, false, 0, "", [], {} or .also */
} unit_kind;

typedef struct unit_member {
    const char *name;
    unit_kind kind;
    const char *cnet; /* the cnet field it becomes (U_NUM's, and in error names) */
    int slot;         /* U_THRESHOLD */
    const char *also; /* U_OFF: one more value that is off */
} unit_member;

static const unit_member members[] = {
    {"enabled", U_ENABLED, NULL, 0, NULL},
    {"image", U_IMAGE, "image", 0, NULL},
    {"input_image", U_IMAGE, NULL, 0, NULL},
    {"module", U_MODULE, "preprocess", 0, NULL},
    {"model", U_MODEL, "controlnet", 0, NULL},
    {"weight", U_NUM, "scale", 0, NULL},
    {"guidance_start", U_NUM, "control_guidance_start", 0, NULL},
    {"guidance_end", U_NUM, "control_guidance_end", 0, NULL},
    {"control_mode", U_CONTROL_MODE, NULL, 0, NULL},
    {"guessmode", U_OFF, NULL, 0,
     NULL}, /* the extension's first guess mode flag: control_mode replaced it */
    {"resize_mode", U_RESIZE, NULL, 0, NULL},
    {"pixel_perfect", U_PIXEL_PERFECT, NULL, 0, NULL},
    {"processor_res", U_PROCESSOR_RES, NULL, 0, NULL},
    {"threshold_a", U_THRESHOLD, NULL, 0, NULL},
    {"threshold_b", U_THRESHOLD, NULL, 1, NULL},
    {"threshold_c", U_INERT, NULL, 0,
     NULL}, /* the extension's own example sends it; no module reads it */
    {"lowvram", U_INERT, NULL, 0, NULL},
    {"low_vram", U_INERT, NULL, 0, NULL},
    {"save_detected_map", U_INERT, NULL, 0, NULL},
    {"is_ui", U_INERT, NULL, 0, NULL},
    {"hr_option", U_INERT, NULL, 0, NULL}, /* which pass of hires fix, refused itself */
    {"batch_images", U_INERT, NULL, 0, NULL},
    {"input_mode", U_OFF, NULL, 0, "simple"},
    {"union_control_type", U_OFF, NULL, 0, "Unknown"},
    {"loopback", U_OFF, NULL, 0, NULL},
    {"mask", U_OFF, NULL, 0, NULL},
    {"mask_image", U_OFF, NULL, 0, NULL},
    {"image_fg", U_OFF, NULL, 0, NULL},
    {"mask_image_fg", U_OFF, NULL, 0, NULL},
    {"generated_image", U_OFF, NULL, 0, NULL},
    {"use_preview_as_input", U_OFF, NULL, 0, NULL},
    {"advanced_weighting", U_OFF, NULL, 0, NULL},
    {"effective_region_mask", U_OFF, NULL, 0, NULL},
    {"ipadapter_input", U_OFF, NULL, 0, NULL},
    {"animatediff_batch", U_OFF, NULL, 0, NULL},
    {"batch_modifiers", U_OFF, NULL, 0, NULL},
    {"batch_input_gallery", U_OFF, NULL, 0, NULL},
    {"batch_mask_gallery", U_OFF, NULL, 0, NULL},
    {"batch_mask_dir", U_OFF, NULL, 0, NULL},
    {"batch_image_dir", U_OFF, NULL, 0, NULL},
};
#define N_MEMBERS ((int)(sizeof members / sizeof members[0]))

static const char *const control_modes[] = {"Balanced", "My prompt is more important",
                                            "ControlNet is more important"};
static const char *const resize_modes[] = {"Just Resize", "Crop and Resize", "Resize and Fill"};

/* null, false, 0, "", [], {} or also. */
static int is_off(const json_t *v, const char *also) {
    return json_is_null(v) || json_is_false(v) ||
           (json_is_number(v) && json_number_value(v) == 0) ||
           (json_is_string(v) &&
            (!json_string_length(v) || (also && !strcmp(also, json_string_value(v))))) ||
           (json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v));
}

/* An enum member given by name or by index (0..n-1); -1 when neither. */
static int enum_of(const json_t *v, const char *const *names, int n) {
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < n)
        return (int)json_integer_value(v);
    for (int i = 0; json_is_string(v) && i < n; i++)
        if (!strcasecmp(names[i], json_string_value(v))) return i;
    return -1;
}

/* What one unit needs besides its members: the output size, the run's
 * guess mode so far (-1: none yet), the init image of an img2img request. */
typedef struct unit_ctx {
    int width, height;
    int guess; /* -1 until a unit sets it */
    const json_t *init_image;
    json_t *req;
} unit_ctx;

/* The control image's width and height from its header. */
static int probe(const char *b64, const char *field, int *w, int *h, api_error *e) {
    unsigned char *raw = NULL;
    size_t n = 0;
    int rc = api_base64_decode(b64, strlen(b64), field, &raw, &n, e);
    cnet_error err = {0};
    if (!rc && image_probe(raw, n, field, w, h, &err))
        rc = api_fail(e, A1111_STATUS, "invalid_image", field, "%s", err.msg);
    free(raw);
    return rc;
}

/* Slot k's threshold of a unit (given: its member; absent or negative: the
 * module's default, as the extension resets a negative one) as the item's per-ControlNet
 * threshold_a / threshold_b, which cnet's table checks against the module's
 * range. A slider the module has not is unread, as in the extension. */
static int set_threshold(const annotator *a, int k, const json_t *given, json_t *item,
                         api_error *e) {
    if (!a->param[k].name || !json_is_number(given) || json_number_value(given) < 0) return 0;
    return json_object_set(item, k ? "threshold_b" : "threshold_a", (json_t *)given)
               ? api_fail(e, 503, "out_of_memory", NULL, "out of memory")
               : 0;
}

/* One enabled unit into item. */
static int unit_item(const json_t *unit, const char *at, unit_ctx *x, json_t *item, api_error *e) {
    char path[256];
    const char *key;
    json_t *v;
#define PATH(m) (snprintf(path, sizeof path, "%s.%s", at, m), path)
    /* the module first: the thresholds and the processor's size depend on it */
    const json_t *mod = json_object_get(unit, "module");
    const annotator *a = annotator_find(mod ? json_string_value(mod) : "none");
    if (!a)
        return api_fail(e, A1111_STATUS, "unknown_module", PATH("module"),
                        "%s: no module '%s' (GET /controlnet/module_list names them)", path,
                        json_is_string(mod) ? json_string_value(mod) : "(not a string)");
    json_object_set_new(item, "preprocess", json_string(a->name));
    const int annotates = strcmp(a->name, "none") != 0;
    /* the image: the unit's, else (img2img) the init image */
    const json_t *img = json_object_get(unit, "image");
    if (!img || json_is_null(img)) img = json_object_get(unit, "input_image");
    const char *img_at = PATH(json_object_get(unit, "image") ? "image" : "input_image");
    char img_path[256];
    snprintf(img_path, sizeof img_path, "%s", img_at);
    if (json_is_object(img)) {
        if (!is_off(json_object_get(img, "mask"), NULL))
            return api_fail(e, A1111_STATUS, "unsupported", PATH("image.mask"),
                            "%s: cnet's ControlNets take no mask of their own", path);
        img = json_object_get(img, "image");
    }
    if (!img || json_is_null(img)) img = x->init_image;
    if (!json_is_string(img))
        return api_fail(e, A1111_STATUS, "missing_field", img_path,
                        "%s: an enabled unit needs its image (base64 PNG or JPEG)", img_path);
    json_object_set_new(item, "image", json_string(a1111_base64(img)));
    int img_w = 0, img_h = 0;
    int rc = probe(a1111_base64(img), img_path, &img_w, &img_h, e);
    if (rc) return rc;
    json_object_foreach((json_t *)unit, key, v) {
        const unit_member *m = NULL;
        for (int i = 0; i < N_MEMBERS && !m; i++)
            if (!strcmp(members[i].name, key)) m = &members[i];
        PATH(key);
        if (!m)
            return api_fail(e, A1111_STATUS, "unknown_field", path,
                            "%s: not a ControlNet unit member cnet knows", path);
        switch (m->kind) {
        case U_NUM:
            if (!json_is_number(v))
                return api_fail(e, A1111_STATUS, "invalid_field", path, "%s must be a number",
                                path);
            json_object_set(item, m->cnet, v);
            break;
        case U_MODEL: {
            const char *name = json_string_value(v);
            char ref[API_REF_MAX + 1];
            size_t n = name ? strcspn(name, "[") : 0;
            while (n && name[n - 1] == ' ') n--;
            if (!name || !n || n > API_REF_MAX || !strncasecmp(name, "None", n))
                return api_fail(e, A1111_STATUS, "missing_field", path,
                                "%s: name a ControlNet (GET /controlnet/model_list names them)",
                                path);
            snprintf(ref, sizeof ref, "%.*s", (int)n, name);
            json_object_set_new(item, "controlnet", json_string(ref));
            break;
        }
        case U_CONTROL_MODE: {
            const int mode = enum_of(v, control_modes, 3);
            if (mode < 0 || mode == 1)
                return api_fail(e, A1111_STATUS, "unsupported", path,
                                "%s: cnet runs \"Balanced\" and \"ControlNet is more important\" "
                                "(diffusers' guess mode), not %s",
                                path, mode == 1 ? "\"My prompt is more important\"" : "this");
            if (x->guess >= 0 && x->guess != (mode == 2))
                return api_fail(e, A1111_STATUS, "unsupported", path,
                                "%s: cnet's guess mode holds for every unit of a run; give every "
                                "unit the same control_mode",
                                path);
            x->guess = mode == 2;
            break;
        }
        case U_RESIZE: {
            const int mode = enum_of(v, resize_modes, 3);
            if (mode < 0)
                return api_fail(e, A1111_STATUS, "invalid_field", path,
                                "%s must be \"Just Resize\", \"Crop and Resize\" or \"Resize and "
                                "Fill\"",
                                path);
            if (mode > 0 && (int64_t)img_w * x->height != (int64_t)img_h * x->width)
                return api_fail(e, A1111_STATUS, "unsupported", path,
                                "%s: cnet resizes the control image to the output size (\"Just "
                                "Resize\"); %s differs from it only for an image of another "
                                "aspect ratio, and the image is %dx%d for an output of %dx%d",
                                path, resize_modes[mode], img_w, img_h, x->width, x->height);
            break;
        }
        case U_PIXEL_PERFECT:
            /* the extension's pixel_perfect_resolution: the short side scaled
             * as the image is to the output (the resize modes accepted above
             * all scale by max(k0, k1) here), np.round'ed (half to even) */
            if (annotates && a->takes_res && json_is_true(v)) {
                const double k0 = (double)x->height / img_h, k1 = (double)x->width / img_w;
                const int short_side = img_w < img_h ? img_w : img_h;
                json_object_set_new(
                    item, "processor_res",
                    json_integer((json_int_t)nearbyint((k0 > k1 ? k0 : k1) * short_side)));
            }
            break;
        case U_PROCESSOR_RES: {
            if (!json_is_number(v))
                return api_fail(e, A1111_STATUS, "invalid_field", path, "%s must be a number",
                                path);
            const double res = json_number_value(v);
            if (res > 0 && res != floor(res))
                return api_fail(e, A1111_STATUS, "invalid_field", path,
                                "%s must be a whole number of pixels, or -1", path);
            /* 0: the image's own size; negative: below; pixel_perfect wins */
            if (annotates && a->takes_res && res > 0 &&
                !json_is_true(json_object_get(unit, "pixel_perfect")))
                json_object_set_new(item, "processor_res", json_integer((json_int_t)res));
            break;
        }
        case U_THRESHOLD:
            if (!json_is_number(v))
                return api_fail(e, A1111_STATUS, "invalid_field", path, "%s must be a number",
                                path);
            break; /* set below, given or not */
        case U_OFF:
            if (!is_off(v, m->also))
                return api_fail(e, A1111_STATUS, "unsupported", path,
                                "%s: cnet has no such feature; leave it off", path);
            break;
        case U_ENABLED:
        case U_IMAGE:
        case U_MODULE:
        case U_INERT:
            break;
        }
    }
    /* processor_res absent or negative: the extension's default resolution
     * (its unit's -1, reset to the slider's value) */
    const json_t *res = json_object_get(unit, "processor_res");
    if (annotates && a->takes_res && !json_is_true(json_object_get(unit, "pixel_perfect")) &&
        !(json_is_number(res) && json_number_value(res) >= 0))
        json_object_set_new(item, "processor_res", json_integer(A1111_PROCESSOR_RES_DEFAULT));
    for (int k = 0; annotates && k < ANNOTATOR_MAX_PARAMS; k++) {
        rc = set_threshold(a, k, json_object_get(unit, k ? "threshold_b" : "threshold_a"), item, e);
        if (rc) return rc;
    }
#undef PATH
    return 0;
}

int a1111_unit_field(const json_t *body, int k, const char *cnet, char *out, size_t cap) {
    const char *key, *m = NULL;
    json_t *v, *args = NULL;
    json_object_foreach((json_t *)json_object_get(body, "alwayson_scripts"), key, v) {
        args = json_object_get(v, "args");
        break;
    }
    for (int i = 0; i < N_MEMBERS && !m; i++)
        if (members[i].cnet && !strcmp(members[i].cnet, cnet)) m = members[i].name;
    for (size_t j = 0; m && j < json_array_size(args); j++) { /* the k-th enabled unit */
        const json_t *unit = json_array_get(args, j);
        if (!json_is_object(unit) || json_is_false(json_object_get(unit, "enabled")) || k--)
            continue;
        snprintf(out, cap, "alwayson_scripts.%s.args[%zu].%s", key, j, m);
        return 0;
    }
    return -1;
}

int a1111_units(const json_t *body, json_t *req, api_error *e) {
    const json_t *scripts = json_object_get(body, "alwayson_scripts"), *cn = NULL;
    const char *key, *cn_key = "controlnet";
    json_t *v;
    json_object_foreach((json_t *)scripts, key, v) {
        if (strcasecmp(key, "controlnet"))
            return api_fail(e, A1111_STATUS, "unsupported", "alwayson_scripts",
                            "alwayson_scripts.%.64s: cnet runs only the controlnet script", key);
        cn = v, cn_key = key;
    }
    char at[160];
    snprintf(at, sizeof at, "alwayson_scripts.%s.args", cn_key);
    const json_t *args = json_object_get(cn, "args");
    if (!json_is_array(args))
        return api_fail(e, A1111_STATUS, "missing_field", at,
                        "%s: a list of ControlNet units is required (cnet generates with at "
                        "least one ControlNet)",
                        at);
    const json_t *init = json_array_get(json_object_get(body, "init_images"), 0);
    unit_ctx x = {.width = (int)json_integer_value(json_object_get(req, "width")),
                  .height = (int)json_integer_value(json_object_get(req, "height")),
                  .guess = -1,
                  .init_image = init,
                  .req = req};
    json_t *items = json_array();
    if (!items) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    int rc = 0;
    for (size_t i = 0; !rc && i < json_array_size(args); i++) {
        const json_t *unit = json_array_get(args, i);
        char unit_at[200];
        snprintf(unit_at, sizeof unit_at, "%s[%zu]", at, i);
        if (!json_is_object(unit))
            rc = api_fail(e, A1111_STATUS, "invalid_field", unit_at, "%s must be an object",
                          unit_at);
        else if (json_is_false(json_object_get(unit, "enabled")))
            continue;
        json_t *item = rc ? NULL : json_object();
        if (!rc && !item) rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        if (!rc) rc = unit_item(unit, unit_at, &x, item, e);
        if (!rc && json_array_append(items, item))
            rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        json_decref(item);
    }
    if (!rc && !json_array_size(items))
        rc = api_fail(e, A1111_STATUS, "missing_field", at,
                      "%s: no enabled unit (cnet generates with at least one ControlNet)", at);
    if (!rc && json_array_size(items) > API_GENERATE_CONTROLNETS_MAX)
        rc = api_fail(e, A1111_STATUS, "out_of_range", at, "%s: %zu enabled units, at most %d", at,
                      json_array_size(items), API_GENERATE_CONTROLNETS_MAX);
    if (!rc && x.guess > 0) json_object_set_new(req, "guess_mode", json_true());
    if (rc || json_object_set_new(req, "controlnets", items)) {
        if (!rc) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        json_decref(items);
    }
    return rc;
}
