/* The options of a generate request, for POST /v1/generate and `cnet
 * generate` alike (api_fields.h). The names are those of
 * StableDiffusionControlNetPipeline.__call__ where it has one
 * (num_images_per_prompt → num_images, guidance_scale → guidance,
 * controlnet_conditioning_scale → scale, control_guidance_start/end,
 * guess_mode, clip_skip, eta; StableDiffusionXLControlNetPipeline's
 * prompt_2, negative_prompt_2 and the micro-conditioning sizes as
 * (height, width) pairs) plus the preprocessors (annotators) of
 * engine/annotators/annotator.h by name, with their two parameters as
 * threshold_a / threshold_b (the sd-webui-controlnet extension's names;
 * canny's also as canny_low_threshold / canny_high_threshold, the ControlNet
 * examples' cv2.Canny thresholds) and processor_res. The ranges are ours: what the engine
 * can run and what is surely not a typo; the per-entry-point caps (api_hi)
 * are what one HTTP request may cost (API_GENERATE_SIZE_MAX per side,
 * API_GENERATE_REQUEST_IMAGES_MAX images) and the seed, which JSON carries
 * up to 2^63-1 where the command line takes any uint64.
 * model, controlnet and image are folders and files on the command line and
 * references (and base64) in the API; the CLI's lists and files are its own
 * (AF_CLI_ONLY), async the API's (AF_API_ONLY). Several ControlNets
 * (MultiControlNetModel): comma lists on the command line, the API's
 * "controlnets" list of objects of the AF_PER_CONTROLNET fields; a list of
 * prompts (diffusers' batch) in the API's prompt and negative_prompt.
 *
 * Also base64 (RFC 4648 §4) both ways, for the control image in and the
 * JSON answer's images out. Not here: decoding the image, choosing a seed
 * or running anything (engine/pipeline/generate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_fields.h"
#include "engine/annotators/annotator.h"

/* engine/sched/scheduler.h's short names (test_api_contract checks them). */
static const char *const schedulers[] = {"ddim",     "pndm",  "euler", "euler_a",
                                         "dpmpp_2m", "unipc", "ddpm",  NULL};
/* engine/annotators/annotator.h's table, in its order (test_api_contract
 * checks them). */
static const char *const preprocessors[] = {"none",          "canny",
                                            "invert",        "threshold",
                                            "scribble_xdog", "lineart_standard",
                                            "shuffle",       "tile_resample",
                                            "blur_gaussian", "color",
                                            "inpaint",       "inpaint_only",
                                            "depth",         NULL};
static const char *const precisions[] = {"no", "fp16", "bf16", NULL};

const api_field api_generate_fields[] = {
    {.name = "model",
     .type = AF_MODEL,
     .flags = AF_REQUIRED | AF_HUB_REF,
     .help = "the base pipeline: a diffusers folder (CLI), a folder under --models or "
             "hf://namespace/name[@revision] (API)"},
    {.name = "controlnet",
     .type = AF_CONTROLNET,
     .flags = AF_JOB_REF | AF_HUB_REF | AF_PER_CONTROLNET,
     .help = "the ControlNet: folders, one per control image (CLI); a folder under --models, "
             "hf://namespace/name[@revision] or a train job id (API); default the base "
             "folder's controlnet/"},
    {.name = "image",
     .type = AF_BASE64,
     .flags = AF_PER_CONTROLNET,
     .help = "the control image, PNG or JPEG: files, one per ControlNet (CLI); base64 or a "
             "multipart file part (API)"},
    {.name = "controlnets",
     .type = AF_CONTROLNETS,
     .flags = AF_API_ONLY,
     .lo = 1,
     .hi = API_GENERATE_CONTROLNETS_MAX,
     .help = "several ControlNets (MultiControlNetModel): a list of objects of the "
             "per-ControlNet fields (controlnet, image, scale, control_guidance_start/end, "
             "preprocess), instead of those fields at the top level"},
    {.name = "init_image",
     .type = AF_BASE64,
     .help = "img2img (StableDiffusionControlNetImg2ImgPipeline): the init image, PNG or JPEG: a "
             "file (CLI) or base64 (API); the output size defaults to its size"},
    {.name = "mask_image",
     .type = AF_BASE64,
     .help = "inpainting (StableDiffusionControlNetInpaintPipeline, with init_image): white = "
             "repaint, binarised at 128 after the resize: a file (CLI) or base64 (API)",
     .alias = "mask"},
    {.name = "strength",
     .type = AF_NUM,
     .flags = AF_LO_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "0.8",
     .help = "img2img / inpainting: how much of the init image is noised; the last "
             "int(steps * strength) steps run"},
    {.name = "padding_mask_crop",
     .type = AF_INT,
     .lo = 0,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "inpainting: crop to the mask's bounding box plus this margin, generate there and "
             "paste back (default: the whole image)"},
    {.name = "prompt",
     .type = AF_TEXT,
     .flags = AF_REQUIRED | AF_TEXT_LIST,
     .help = "the prompt (API: or a list of prompts, a batch of num_images each)"},
    {.name = "negative_prompt",
     .type = AF_TEXT,
     .flags = AF_TEXT_LIST,
     .help = "the negative prompt (SDXL: absent, not \"\", gives zero negative embeddings when the "
             "model's force_zeros_for_empty_prompt is set)"},
    {.name = "prompt_2",
     .type = AF_TEXT,
     .help = "SDXL: the prompt of the second text encoder (default the prompt)"},
    {.name = "negative_prompt_2",
     .type = AF_TEXT,
     .help = "SDXL: the negative prompt of the second text encoder (default the negative prompt)"},
    {.name = "original_size",
     .type = AF_SIZE,
     .lo = 1,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "SDXL micro-conditioning (height, width) (default the output size)"},
    {.name = "crops_coords_top_left",
     .type = AF_SIZE,
     .lo = 0,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "SDXL micro-conditioning (top, left) (default 0,0)"},
    {.name = "target_size",
     .type = AF_SIZE,
     .lo = 1,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "SDXL micro-conditioning (height, width) (default the output size)"},
    {.name = "negative_original_size",
     .type = AF_SIZE,
     .lo = 1,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "SDXL: (height, width) of the negative time ids (used only with "
             "negative_target_size)"},
    {.name = "negative_crops_coords_top_left",
     .type = AF_SIZE,
     .lo = 0,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "SDXL: (top, left) of the negative time ids (default 0,0; used only with both "
             "negative sizes)"},
    {.name = "negative_target_size",
     .type = AF_SIZE,
     .lo = 1,
     .hi = API_GENERATE_SIDE_MAX,
     .help = "SDXL: (height, width) of the negative time ids (used only with "
             "negative_original_size)"},
    {.name = "scheduler",
     .type = AF_ENUM,
     .choices = schedulers,
     .help = "the base folder's scheduler config read as this class (default its own class)"},
    {.name = "steps",
     .type = AF_INT,
     .lo = 1,
     .hi = API_GENERATE_STEPS_MAX,
     .def = "20",
     .help = "denoising steps (num_inference_steps)"},
    {.name = "guidance",
     .type = AF_NUM,
     .lo = 0,
     .hi = 50,
     .def = "7.5",
     .help = "classifier-free guidance scale, on when > 1 (guidance_scale)"},
    {.name = "scale",
     .type = AF_NUM,
     .flags = AF_PER_CONTROLNET,
     .lo = -API_CONDITIONING_SCALE_MAX,
     .hi = API_CONDITIONING_SCALE_MAX,
     .help = "controlnet_conditioning_scale (negative: pushes away from the control image); "
             "default 1.0, with init_image 0.8, with mask_image 0.5 (diffusers' pipelines)"},
    {.name = "seed",
     .type = AF_INT,
     .lo = 0,
     .hi = API_SEED_MAX,
     .api_hi = API_SEED_JSON_MAX,
     .help = "seed of the initial noise (default random, reported with the images)"},
    {.name = "width",
     .type = AF_INT,
     .lo = 8,
     .hi = API_GENERATE_SIDE_MAX,
     .multiple_of = 8,
     .api_hi = API_GENERATE_SIZE_MAX,
     .help = "output width (default the first control image's, rounded down to the VAE factor)"},
    {.name = "height",
     .type = AF_INT,
     .lo = 8,
     .hi = API_GENERATE_SIDE_MAX,
     .multiple_of = 8,
     .api_hi = API_GENERATE_SIZE_MAX,
     .help = "output height (default the first control image's, rounded down to the VAE "
             "factor)"},
    {.name = "num_images",
     .type = AF_INT,
     .lo = 1,
     .hi = API_GENERATE_IMAGES_MAX,
     .api_hi = API_GENERATE_REQUEST_IMAGES_MAX,
     .def = "1",
     .help = "images from one run (num_images_per_prompt)"},
    {.name = "guess_mode",
     .type = AF_BOOL,
     .def = "false",
     .help = "guess mode: the ControlNets see only the conditional batch"},
    {.name = "control_guidance_start",
     .type = AF_NUM,
     .flags = AF_PER_CONTROLNET | AF_HI_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "0.0",
     .help = "fraction of the steps before which the ControlNet is off (below the end)",
     .alias = "start"},
    {.name = "control_guidance_end",
     .type = AF_NUM,
     .flags = AF_PER_CONTROLNET | AF_LO_OPEN,
     .lo = 0,
     .hi = 1,
     .def = "1.0",
     .help = "fraction of the steps from which the ControlNet is off (above the start)",
     .alias = "end"},
    {.name = "clip_skip",
     .type = AF_INT,
     .lo = 0,
     .hi = API_CLIP_SKIP_MAX,
     .def = "0",
     .help = "skip the last K text encoder layers (below the encoder's depth)"},
    {.name = "eta", .type = AF_NUM, .lo = 0, .hi = 1, .def = "0.0", .help = "DDIM eta"},
    {.name = "preprocess",
     .type = AF_ENUM,
     .flags = AF_PER_CONTROLNET,
     .choices = preprocessors,
     .def = "\"none\"",
     .help = "the annotator the control image goes through first (GET /v1/preprocessors)"},
    {.name = "threshold_a",
     .type = AF_NUM,
     .flags = AF_PER_CONTROLNET,
     .lo = 0,
     .hi = API_CANNY_THRESHOLD_MAX,
     .help = "the preprocessor's first parameter (its own range; default its own)"},
    {.name = "threshold_b",
     .type = AF_NUM,
     .flags = AF_PER_CONTROLNET,
     .lo = 0,
     .hi = API_CANNY_THRESHOLD_MAX,
     .help = "the preprocessor's second parameter (its own range; default its own)"},
    {.name = "processor_res",
     .type = AF_INT,
     .flags = AF_PER_CONTROLNET,
     .lo = 0,
     .hi = ANNOTATOR_PROCESSOR_RES_MAX,
     .def = "0",
     .help = "the preprocessor first scales the image's short side to this (0: as it is)"},
    {.name = "preprocess_model",
     .type = AF_CONTROLNET,
     .flags = AF_PER_CONTROLNET,
     .help = "a network preprocessor's weights (depth: a DPTForDepthEstimation folder, "
             "config.json + model.safetensors): a folder (CLI); a folder under --models (API)"},
    {.name = "canny_low_threshold",
     .type = AF_NUM,
     .lo = 0,
     .hi = API_CANNY_THRESHOLD_MAX,
     .def = "100",
     .help = "cv2.Canny's low threshold",
     .alias = "low"},
    {.name = "canny_high_threshold",
     .type = AF_NUM,
     .lo = 0,
     .hi = API_CANNY_THRESHOLD_MAX,
     .def = "200",
     .help = "cv2.Canny's high threshold",
     .alias = "high"},
    {.name = "async",
     .type = AF_BOOL,
     .flags = AF_API_ONLY,
     .def = "false",
     .help = "run as a job instead of answering with the image"},
    {.name = "out",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .def = "\"output.png\"",
     .help = "the output PNG; with num_images N > 1 the files are FILE_0.png ... FILE_<N-1>.png"},
    {.name = "device",
     .type = AF_TEXT,
     .flags = AF_CLI_ONLY,
     .def = "\"cpu\"",
     .help = "cpu|cuda|cuda:N"},
    {.name = "mixed_precision",
     .type = AF_ENUM,
     .flags = AF_CLI_ONLY,
     .choices = precisions,
     .def = "\"no\"",
     .help = "16-bit products with float32 accumulation on cuda (bf16, fp16) and on a cpu with "
             "AVX512-BF16 (bf16; float32 otherwise)"},
    {.name = "max_pixels",
     .type = AF_INT,
     .flags = AF_CLI_ONLY,
     .lo = 1,
     .hi = API_MAX_PIXELS_MAX,
     .def = "16777216",
     .help = "largest control image and output, in pixels"},
};
const int api_generate_n_fields = (int)(sizeof api_generate_fields / sizeof api_generate_fields[0]);

/* A ControlNet's start below its end; prefix "" (flat) or "controlnets[k]." */
static int check_window(const json_t *one, const char *prefix, api_error *e) {
    double start = json_number_value(json_object_get(one, "control_guidance_start"));
    double end = json_number_value(json_object_get(one, "control_guidance_end"));
    if (start < end) return 0;
    char field[96];
    snprintf(field, sizeof field, "%scontrol_guidance_start", prefix);
    return api_fail(e, 400, "out_of_range", field,
                    "%s (%g) must be below %scontrol_guidance_end (%g)", field, start, prefix, end);
}

/* A list of prompts: the negative one a string or a list as long, no SDXL
 * second prompts (their lists are not taken), and its images within what one
 * request makes (num_images' api_hi). */
static int check_batch(const json_t *spec, api_error *e) {
    const json_t *p = json_object_get(spec, "prompt"),
                 *n = json_object_get(spec, "negative_prompt");
    if (json_is_array(n) && (!json_is_array(p) || json_array_size(p) != json_array_size(n)))
        return api_fail(e, 400, "invalid_field", "negative_prompt",
                        "negative_prompt: a list needs a prompt list as long (got %zu for %s)",
                        json_array_size(n),
                        json_is_array(p) ? "a list of another length" : "one prompt");
    if (!json_is_array(p)) return 0;
    static const char *const second[] = {"prompt_2", "negative_prompt_2"};
    for (int i = 0; i < 2; i++)
        if (json_object_get(spec, second[i]))
            return api_fail(e, 400, "invalid_field", second[i],
                            "%s takes one prompt: not with a prompt list", second[i]);
    const api_field *f = api_field_find(api_generate_fields, api_generate_n_fields, "num_images");
    const long long images =
        (long long)json_array_size(p) * json_integer_value(json_object_get(spec, "num_images"));
    if (images > (long long)api_field_api_hi(f))
        return api_fail(e, 400, "out_of_range", "prompt",
                        "prompt: %zu prompts x num_images %lld = %lld images, over the %g one "
                        "request makes",
                        json_array_size(p),
                        (long long)json_integer_value(json_object_get(spec, "num_images")), images,
                        api_field_api_hi(f));
    return 0;
}

/* The annotator of one control (the flat request, or controlnets[k] with
 * item, the request's controlnets[k], and prefix "controlnets[k]."):
 * api_generate_annotator checks what the request gave (a list item's own
 * members, canny's run-wide spelling from the top),
 * and the values the run takes go into the spec as threshold_a/b. */
static int spec_annotator(json_t *one, const json_t *req, const json_t *item, const char *prefix,
                          api_error *e) {
    const json_t *given = req;
    json_t *merged = NULL;
    if (item) { /* a list item: its members, and canny's run-wide thresholds */
        if (!(merged = json_deep_copy(item)))
            return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
        static const char *const canny[] = {"canny_low_threshold", "canny_high_threshold"};
        for (int i = 0; i < 2; i++)
            if (json_object_get(req, canny[i]))
                json_object_set(merged, canny[i], json_object_get(req, canny[i]));
        given = merged;
    }
    const annotator *a;
    annotator_args args;
    int rc = api_generate_annotator(json_string_value(json_object_get(one, "preprocess")), given,
                                    &a, &args, e);
    json_decref(merged);
    if (rc) {
        if (*prefix && e->field[0]) {
            char field[sizeof e->field];
            snprintf(field, sizeof field, "%.40s%.80s", prefix, e->field);
            memcpy(e->field, field, sizeof field);
        }
        return rc;
    }
    static const char *const slot[ANNOTATOR_MAX_PARAMS] = {"threshold_a", "threshold_b"};
    for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++) /* the values the run takes, in the spec */
        if (a->param[k].name) json_object_set_new(one, slot[k], json_real(args.value[k]));
    return 0;
}

int api_generate_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    int rc = api_fields_check(api_generate_fields, api_generate_n_fields, req, roots, spec, e);
    if (rc) return rc;
    json_object_del(*spec, "async");
    const json_t *list = json_object_get(*spec, "controlnets");
    rc = check_batch(*spec, e);
    if (!rc && !list) rc = check_window(*spec, "", e);
    if (!rc && !list) rc = spec_annotator(*spec, req, NULL, "", e);
    for (size_t k = 0; !rc && k < json_array_size(list); k++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "controlnets[%zu].", k);
        json_t *one = json_array_get(list, k);
        rc = check_window(one, prefix, e);
        if (!rc)
            rc = spec_annotator(one, req, json_array_get(json_object_get(req, "controlnets"), k),
                                prefix, e);
    }
    if (rc) {
        json_decref(*spec);
        *spec = NULL;
    }
    return rc;
}

/* A network annotator's weights (annotator_args.model_dir) for a preprocess
 * request: the command line's only (POST /v1/preprocess has no models dir
 * to resolve it under), unlike generate's per-ControlNet field. */
static const api_field preprocess_model_field = {
    .name = "preprocess_model",
    .type = AF_TEXT,
    .flags = AF_CLI_ONLY,
    .help = "a network preprocessor's weights folder (depth: transformers' "
            "DPTForDepthEstimation, config.json + model.safetensors)"};

int api_preprocess_fields(api_field out[API_PREPROCESS_FIELDS]) {
    static const char *const members[API_PREPROCESS_FIELDS] = {"image",
                                                               "preprocess",
                                                               "preprocess_model",
                                                               "threshold_a",
                                                               "threshold_b",
                                                               "processor_res",
                                                               "canny_low_threshold",
                                                               "canny_high_threshold",
                                                               "seed",
                                                               "out"};
    /* One picture: no lists; where the meaning differs from generate's, so
     * does the help (the limits stay the table's). */
    static const char *const help[API_PREPROCESS_FIELDS] = {
        [0] = "the picture, PNG or JPEG: a file (CLI); base64 or a multipart file part (API)",
        [8] = "shuffle's noise: numpy's MT19937 seeded with it, as the extension (default 0)",
        [9] = "the control image's file, .png or .jpg"};
    for (int i = 0; i < API_PREPROCESS_FIELDS; i++) {
        out[i] = strcmp(members[i], "preprocess_model")
                     ? *api_field_find(api_generate_fields, api_generate_n_fields, members[i])
                     : preprocess_model_field;
        out[i].flags &= ~AF_PER_CONTROLNET;
        if (help[i]) out[i].help = help[i];
    }
    return API_PREPROCESS_FIELDS;
}

int api_generate_annotator(const char *preprocess, const json_t *given, const annotator **out,
                           annotator_args *args, api_error *e) {
    static const char *const slot[ANNOTATOR_MAX_PARAMS] = {"threshold_a", "threshold_b"};
    static const char *const canny[ANNOTATOR_MAX_PARAMS] = {"canny_low_threshold",
                                                            "canny_high_threshold"};
    const annotator *a = annotator_find(preprocess ? preprocess : "none");
    if (!a)
        return api_fail(e, 400, "invalid_field", "preprocess",
                        "preprocess: no preprocessor is called %s (GET /v1/preprocessors)",
                        preprocess);
    annotator_args_default(a, args);
    const json_t *res = json_object_get(given, "processor_res");
    if (res) args->processor_res = (int)json_integer_value(res);
    const int is_canny = !strcmp(a->name, "canny");
    for (int k = 0; k < ANNOTATOR_MAX_PARAMS; k++) {
        const json_t *t = json_object_get(given, slot[k]), *c = json_object_get(given, canny[k]);
        const annotator_param *p = &a->param[k];
        if (t && c && is_canny)
            return api_fail(e, 400, "invalid_field", slot[k],
                            "%s and %s both set canny's %s; give one", slot[k], canny[k], p->name);
        const json_t *v = t ? t : is_canny ? c : NULL;
        if (!v || !p->name) continue; /* as the extension, a parameter it lacks is ignored */
        const double d = json_number_value(v);
        if (!(d >= p->lo && d <= p->hi))
            return api_fail(e, 400, "out_of_range", t ? slot[k] : canny[k],
                            "%s: %g is outside %s's %s range [%g, %g]", t ? slot[k] : canny[k], d,
                            a->name, p->name, p->lo, p->hi);
        args->value[k] = d;
    }
    *out = a;
    return 0;
}

void api_generate_size_caps(int *width_max, int *height_max) {
    const api_field *w = api_field_find(api_generate_fields, api_generate_n_fields, "width"),
                    *h = api_field_find(api_generate_fields, api_generate_n_fields, "height");
    *width_max = (int)api_field_api_hi(w);
    *height_max = (int)api_field_api_hi(h);
}

json_t *api_generate_form_value(const char *name, const char *text) {
    const api_field *f = api_field_find(api_generate_fields, api_generate_n_fields, name);
    long long a, b;
    int end = 0;
    if (f && f->type == AF_SIZE && sscanf(text, "%lld,%lld%n", &a, &b, &end) == 2 && !text[end])
        return json_pack("[I, I]", (json_int_t)a, (json_int_t)b);
    if (f && (f->type == AF_INT || f->type == AF_NUM || f->type == AF_BOOL)) {
        json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
        if (v && (json_is_number(v) || json_is_boolean(v))) return v;
        json_decref(v);
    }
    return json_string(text);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int api_base64_decode(const char *text, size_t len, const char *field, unsigned char **out,
                      size_t *out_len, api_error *e) {
    *out = NULL, *out_len = 0;
    while (len > 0 && text[len - 1] == '=' && len % 4 != 1) len--; /* padding, at most 2 */
    if (len % 4 == 1)
        return api_fail(e, 400, "invalid_field", field, "%s is not valid base64 (bad length)",
                        field);
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    if (!buf) return api_fail(e, 503, "out_of_memory", NULL, "out of memory");
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)text[i]);
        if (v < 0) {
            free(buf);
            return api_fail(e, 400, "invalid_field", field,
                            "%s is not valid base64 (byte %zu is not in the alphabet)", field, i);
        }
        acc = acc << 6 | (uint32_t)v, bits += 6;
        if (bits >= 8) bits -= 8, buf[n++] = (unsigned char)(acc >> bits);
    }
    *out = buf, *out_len = n;
    return 0;
}

char *api_base64_encode(const unsigned char *data, size_t len) {
    char *s = malloc((len + 2) / 3 * 4 + 1);
    if (!s) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len) v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len) v |= data[i + 2];
        s[n++] = b64[v >> 18 & 63];
        s[n++] = b64[v >> 12 & 63];
        s[n++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        s[n++] = i + 2 < len ? b64[v & 63] : '=';
    }
    s[n] = '\0';
    return s;
}
