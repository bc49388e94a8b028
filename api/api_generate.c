/* The options of a generate request, for POST /v1/generate and `cnet
 * generate` alike (api_fields.h). The names are those of
 * StableDiffusionControlNetPipeline.__call__ where it has one
 * (num_images_per_prompt → num_images, guidance_scale → guidance,
 * controlnet_conditioning_scale → scale, control_guidance_start/end,
 * guess_mode, clip_skip, eta; StableDiffusionXLControlNetPipeline's
 * prompt_2, negative_prompt_2 and the micro-conditioning sizes as
 * (height, width) pairs) plus the canny preprocessor of the ControlNet
 * examples (cv2.Canny's thresholds). The ranges are ours: what the engine
 * can run and what is surely not a typo; the per-entry-point caps (api_hi)
 * are what one HTTP request may cost (API_GENERATE_SIZE_MAX per side,
 * API_GENERATE_REQUEST_IMAGES_MAX images) and the seed, which JSON carries
 * up to 2^63-1 where the command line takes any uint64.
 * model, controlnet and image are folders and files on the command line and
 * references (and base64) in the API; the CLI's lists and files are its own
 * (AF_CLI_ONLY), async the API's (AF_API_ONLY).
 *
 * Also base64 (RFC 4648 §4) both ways, for the control image in and the
 * JSON answer's images out. Not here: decoding the image, choosing a seed
 * or running anything (engine/pipeline/generate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_fields.h"

/* engine/sched/scheduler.h's short names (test_api_contract checks them). */
static const char *const schedulers[] = {"ddim",     "pndm",  "euler", "euler_a",
                                         "dpmpp_2m", "unipc", "ddpm",  NULL};
static const char *const preprocessors[] = {"none", "canny", NULL};
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
    {.name = "prompt", .type = AF_TEXT, .flags = AF_REQUIRED, .help = "the prompt"},
    {.name = "negative_prompt",
     .type = AF_TEXT,
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
     .def = "1.0",
     .help = "controlnet_conditioning_scale (negative: pushes away from the control image)"},
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
     .help = "canny turns the control image into its edges first"},
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

int api_generate_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    int rc = api_fields_check(api_generate_fields, api_generate_n_fields, req, roots, spec, e);
    if (rc) return rc;
    json_object_del(*spec, "async");
    double start = json_number_value(json_object_get(*spec, "control_guidance_start"));
    double end = json_number_value(json_object_get(*spec, "control_guidance_end"));
    if (!(start < end)) {
        json_decref(*spec);
        *spec = NULL;
        return api_fail(e, 400, "out_of_range", "control_guidance_start",
                        "control_guidance_start (%g) must be below control_guidance_end (%g)",
                        start, end);
    }
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
