/* Validation of a generate request (POST /v1/generate). The member names are
 * the dashboard's (web/generate.js: model, controlnet, prompt,
 * negative_prompt, scheduler, steps, guidance, scale, seed, width, height,
 * image) plus the rest of StableDiffusionControlNetPipeline.__call__'s
 * options under diffusers' names (num_images_per_prompt → num_images,
 * guess_mode, control_guidance_start/end, clip_skip, eta) and the canny
 * preprocessor of the ControlNet examples. Ranges are ours: what one
 * interactive request may cost.
 *
 * Also base64 (RFC 4648 §4) both ways, for the control image in and the
 * JSON answer's images out. Not here: decoding the image, choosing a seed
 * or running anything (server/http/http_generate.c). */
#include <stdlib.h>
#include <string.h>

#include "api/api_fields.h"

static const char *const schedulers[] = {"ddim",     "pndm",  "euler", "euler_a",
                                         "dpmpp_2m", "unipc", NULL};
static const char *const preprocessors[] = {"none", "canny", NULL};

static const api_field generate_fields[] = {
    {"model", AF_MODEL, AF_REQUIRED | AF_HUB_REF, 0, 0, 0, NULL, NULL},
    {"controlnet", AF_CONTROLNET, AF_JOB_REF, 0, 0, 0, NULL, NULL},
    {"image", AF_BASE64, 0, 0, 0, 0, NULL, NULL},
    {"prompt", AF_TEXT, AF_REQUIRED, 0, 0, 0, NULL, NULL},
    {"negative_prompt", AF_TEXT, 0, 0, 0, 0, NULL, "\"\""},
    {"scheduler", AF_ENUM, 0, 0, 0, 0, schedulers, NULL},
    {"steps", AF_INT, 0, 1, 1000, 0, NULL, "20"},
    {"guidance", AF_NUM, 0, 0, 50, 0, NULL, "7.5"},
    {"scale", AF_NUM, 0, 0, 5, 0, NULL, "1.0"},
    {"seed", AF_INT, 0, 0, 4294967295.0, 0, NULL, NULL},
    {"width", AF_INT, 0, 8, API_GENERATE_SIZE_MAX, 8, NULL, NULL},
    {"height", AF_INT, 0, 8, API_GENERATE_SIZE_MAX, 8, NULL, NULL},
    {"num_images", AF_INT, 0, 1, API_GENERATE_IMAGES_MAX, 0, NULL, "1"},
    {"guess_mode", AF_BOOL, 0, 0, 0, 0, NULL, "false"},
    {"control_guidance_start", AF_NUM, 0, 0, 1, 0, NULL, "0.0"},
    {"control_guidance_end", AF_NUM, 0, 0, 1, 0, NULL, "1.0"},
    {"clip_skip", AF_INT, 0, 0, 64, 0, NULL, "0"},
    {"eta", AF_NUM, 0, 0, 1, 0, NULL, "0.0"},
    {"preprocess", AF_ENUM, 0, 0, 0, 0, preprocessors, "\"none\""},
    {"canny_low_threshold", AF_NUM, 0, 0, 255, 0, NULL, "100"},
    {"canny_high_threshold", AF_NUM, 0, 0, 255, 0, NULL, "200"},
    {"async", AF_BOOL, 0, 0, 0, 0, NULL, NULL},
};

int api_generate_spec(const json_t *req, const api_roots *roots, json_t **spec, api_error *e) {
    int rc =
        api_fields_check(generate_fields, (int)(sizeof generate_fields / sizeof generate_fields[0]),
                         req, roots, spec, e);
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

json_t *api_generate_form_value(const char *name, const char *text) {
    for (size_t i = 0; i < sizeof generate_fields / sizeof generate_fields[0]; i++) {
        const api_field *f = &generate_fields[i];
        if (strcmp(f->name, name) != 0) continue;
        if (f->type != AF_INT && f->type != AF_NUM && f->type != AF_BOOL) break;
        json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
        if (v && (json_is_number(v) || json_is_boolean(v))) return v;
        json_decref(v);
        break;
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
