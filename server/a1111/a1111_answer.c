/* A1111's answers that carry images: txt2img / img2img
 * (modules/api/models.py's TextToImageResponse: images, parameters, info)
 * and the extension's POST /controlnet/detect (scripts/api.py: each input
 * image through the module, {"images", "info": "Success"}), whose
 * annotators are engine/annotators' — the ones a generate request's
 * preprocess runs. controlnet_processor_res -1: the module on the image at
 * its own size, as a1111_units.c explains for processor_res. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/annotators/annotator.h"
#include "engine/image/image.h"
#include "server/a1111/a1111.h"

/* Input images one detect request takes. */
#define A1111_DETECT_IMAGES_MAX 8

json_t *a1111_images_answer(const json_t *body, const json_t *spec, json_t *images,
                            const char *parameters) {
    const size_t n = json_array_size(images);
    const json_t *seed = json_object_get(spec, "seed");
    json_t *seeds = json_array(), *prompts = json_array(), *texts = json_array();
    for (size_t i = 0; i < n; i++) { /* one generator makes the batch: one seed for all */
        json_array_append(seeds, (json_t *)seed);
        json_array_append(prompts, json_object_get(spec, "prompt"));
        json_array_append_new(texts, json_string(parameters));
    }
    json_t *info = json_pack(
        "{s:O, s:o, s:O?, s:O, s:o, s:O, s:O, s:O?, s:O, s:O, s:i, s:o, s:O}", "prompt",
        json_object_get(spec, "prompt"), "all_prompts", prompts, "negative_prompt",
        json_object_get(spec, "negative_prompt"), "seed", seed, "all_seeds", seeds, "width",
        json_object_get(spec, "width"), "height", json_object_get(spec, "height"), "sampler_name",
        json_object_get(spec, "scheduler"), "cfg_scale", json_object_get(spec, "guidance"), "steps",
        json_object_get(spec, "steps"), "batch_size", (int)n, "infotexts", texts, "cnet_spec",
        spec);
    char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    json_t *out =
        text ? json_pack("{s:o, s:O, s:s}", "images", images, "parameters", body, "info", text)
             : NULL;
    if (!text) json_decref(images);
    free(text);
    return out;
}

/* One input image through a into a base64 PNG (appended to out). */
static int detect_one(const annotator *a, const annotator_args *args, const char *b64,
                      const char *field, json_t *out, api_error *e) {
    unsigned char *raw = NULL, *png = NULL;
    size_t n = 0, png_len = 0;
    image_rgb8 in = {0}, made = {0};
    cnet_error err = {0};
    int rc = api_base64_decode(b64, strlen(b64), field, &raw, &n, e);
    if (!rc && image_decode(&in, raw, n, field, IMAGE_MAX_PIXELS_DEFAULT, &err))
        rc = api_fail(e, A1111_STATUS, "invalid_image", field, "%s", err.msg);
    int run_rc;
    if (!rc && (run_rc = annotator_run(a, &made, &in, args, &err)))
        rc = api_fail(e, run_rc == CNET_ELIMIT ? 413 : A1111_STATUS, "invalid_field",
                      run_rc == CNET_ELIMIT ? "controlnet_processor_res" : "controlnet_module",
                      "%s", err.msg);
    if (!rc && image_encode_png(&made, NULL, 0, &png, &png_len, &err))
        rc = api_fail(e, 500, "encode_failed", NULL, "%s", err.msg);
    char *text = rc ? NULL : api_base64_encode(png, png_len);
    if (!rc && (!text || json_array_append_new(out, json_string(text))))
        rc = api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    free(text);
    free(png);
    free(raw);
    image_free(&in);
    image_free(&made);
    return rc;
}

int a1111_detect(const json_t *body, json_t **answer, api_error *e) {
    *answer = NULL;
    static const char *const known[] = {"controlnet_module",
                                        "controlnet_input_images",
                                        "controlnet_processor_res",
                                        "controlnet_threshold_a",
                                        "controlnet_threshold_b",
                                        "controlnet_masks",
                                        "low_vram"};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(known[i], key);
        if (!ok)
            return api_fail(e, A1111_STATUS, "unknown_field", key,
                            "%.100s: not a member of /controlnet/detect", key);
    }
    const json_t *mod = json_object_get(body, "controlnet_module");
    const annotator *a = annotator_find(mod ? json_string_value(mod) : "none");
    if (!a)
        return api_fail(e, A1111_STATUS, "unknown_module", "controlnet_module",
                        "controlnet_module: no module '%s' (GET /controlnet/module_list names "
                        "them)",
                        json_is_string(mod) ? json_string_value(mod) : "(not a string)");
    const json_t *images = json_object_get(body, "controlnet_input_images");
    if (!json_is_array(images) || !json_array_size(images) ||
        json_array_size(images) > A1111_DETECT_IMAGES_MAX)
        return api_fail(e, A1111_STATUS, "invalid_field", "controlnet_input_images",
                        "controlnet_input_images must hold 1..%d base64 images",
                        A1111_DETECT_IMAGES_MAX);
    if (json_array_size(json_object_get(body, "controlnet_masks")))
        return api_fail(e, A1111_STATUS, "unsupported", "controlnet_masks",
                        "controlnet_masks: cnet's modules take no mask");
    annotator_args args;
    annotator_args_default(a, &args);
    static const char *const slots[ANNOTATOR_MAX_PARAMS] = {"controlnet_threshold_a",
                                                            "controlnet_threshold_b"};
    for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++) {
        const json_t *t = json_object_get(body, slots[k]);
        if (t && !json_is_number(t))
            return api_fail(e, A1111_STATUS, "invalid_field", slots[k], "%s must be a number",
                            slots[k]);
        if (t && json_number_value(t) != -1 && a->param[k].name)
            args.value[k] = json_number_value(t);
    }
    const json_t *res = json_object_get(body, "controlnet_processor_res");
    if (res &&
        !(json_is_number(res) &&
          (json_number_value(res) == -1 ||
           (json_number_value(res) >= 0 && json_number_value(res) <= ANNOTATOR_PROCESSOR_RES_MAX &&
            json_number_value(res) == floor(json_number_value(res))))))
        return api_fail(e, A1111_STATUS, "invalid_field", "controlnet_processor_res",
                        "controlnet_processor_res must be -1 or a whole number of pixels up to %d",
                        ANNOTATOR_PROCESSOR_RES_MAX);
    if (res && a->takes_res && json_number_value(res) > 0)
        args.processor_res = (int)json_number_value(res);
    json_t *out = json_array();
    if (!out) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    int rc = 0;
    for (size_t i = 0; !rc && i < json_array_size(images); i++) {
        char field[64];
        snprintf(field, sizeof field, "controlnet_input_images[%zu]", i);
        const char *b64 = a1111_base64(json_array_get(images, i));
        rc = b64 ? detect_one(a, &args, b64, field, out, e)
                 : api_fail(e, A1111_STATUS, "invalid_field", field, "%s must be a string", field);
    }
    if (rc) {
        json_decref(out);
        return rc;
    }
    *answer = json_pack("{s:o, s:s}", "images", out, "info", "Success");
    return *answer ? 0 : api_fail(e, 503, "out_of_memory", NULL, "out of memory");
}
