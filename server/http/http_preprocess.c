/* POST /v1/preprocess: a picture through one annotator
 * (engine/annotators/annotator.h), so a user sees the control image before
 * generating; GET /v1/preprocessors: the annotators with their parameters.
 *
 * The request is POST /v1/generate's in form and limits (route body
 * BODY_GENERATE: at most API_GENERATE_BODY_MAX bytes, JSON with "image"
 * base64 or multipart/form-data with a file part "image"; bearer auth) and
 * its members are the generate table's fields of the same names (image,
 * preprocess, threshold_a, threshold_b, processor_res, canny_low_threshold,
 * canny_high_threshold, seed), checked by that table and
 * api_generate_annotator exactly as a generate request's are: 400 naming
 * the field, an unknown member included. The picture's size is read from
 * its header before decoding (over PREPROCESS_PIXELS_MAX: 413), and so is
 * the size processor_res makes of it (over PREPROCESS_WORK_PIXELS_MAX: 413
 * naming processor_res, or image). The answer
 * is image/png, or with `Accept: application/json` {"image": base64 PNG,
 * "width", "height", "preprocess", "module"}.
 * Not here: the annotators, the generate route's memory budget and device
 * queue (an annotator runs on the request's own thread, on the CPU). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_fields.h"
#include "engine/annotators/annotator.h"
#include "server/http/http_internal.h"

/* Pixels of a picture by its header; more → 413 before decoding. */
#define PREPROCESS_PIXELS_MAX IMAGE_MAX_PIXELS_DEFAULT
/* Pixels an annotator may work on in one request (the picture after
 * processor_res): twice the largest generate side squared, the most a
 * preview of one request's output needs. An annotator holds a few floats
 * per pixel and runs on the request's thread; more → 413. */
#define PREPROCESS_WORK_PIXELS_MAX                                                                 \
    ((int64_t)(2 * API_GENERATE_SIZE_MAX) * (2 * API_GENERATE_SIZE_MAX))

/* Checks req against the generate fields a preprocess request takes. */
static int check_members(const json_t *req, const annotator **a, annotator_args *args,
                         api_error *e) {
    api_field fields[API_PREPROCESS_FIELDS];
    const int n = api_preprocess_fields(fields);
    const api_roots roots = {0};
    json_t *spec = NULL;
    int rc = api_fields_check(fields, n, req, &roots, &spec, e);
    if (!rc)
        rc = api_generate_annotator(json_string_value(json_object_get(spec, "preprocess")), req, a,
                                    args, e);
    if (!rc) args->seed = (uint64_t)json_integer_value(json_object_get(spec, "seed"));
    json_decref(spec);
    return rc;
}

static int header_has(struct MHD_Connection *c, const char *name, const char *what) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v && strcasestr(v, what) != NULL;
}

/* The request's members and picture bytes (the body freed once parsed). */
static int read_request(struct MHD_Connection *c, http_req *r, json_t **req, unsigned char **img,
                        size_t *img_len, api_error *e) {
    int rc;
    if (header_has(c, "Content-Type", "multipart/form-data")) {
        rc = http_form_parse(c, r->body, (size_t)r->received, req, img, img_len, e);
    } else {
        rc = api_parse_body(r->body, (size_t)r->received, req, e);
        json_t *v = rc ? NULL : json_object_get(*req, "image");
        if (!rc && json_is_string(v))
            rc = api_base64_decode(json_string_value(v), json_string_length(v), "image", img,
                                   img_len, e);
    }
    free(r->body);
    r->body = NULL;
    if (!rc && !*img)
        rc = api_fail(e, 400, "missing_field", "image",
                      "image is required (base64 PNG or JPEG, or a multipart file part)");
    return rc;
}

static enum MHD_Result reply_png(http_server *s, struct MHD_Connection *c, http_req *r,
                                 const image_rgb8 *out, const annotator *a) {
    uint8_t *png = NULL;
    size_t len = 0;
    cnet_error err = {0};
    if (image_encode_png(out, NULL, 0, &png, &len, &err))
        return http_reply_error(s, c, r, 500, "encode_failed", NULL, "%s", err.msg);
    if (header_has(c, "Accept", "application/json")) {
        char *b64 = api_base64_encode(png, len);
        free(png);
        if (!b64) return http_reply_error(s, c, r, 503, "out_of_memory", NULL, "out of memory");
        json_t *body =
            json_pack("{s:s, s:i, s:i, s:s, s:s}", "image", b64, "width", out->width, "height",
                      out->height, "preprocess", a->name, "module", a->a1111_name);
        free(b64);
        return http_reply_json(s, c, r, 200, body);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, png, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(png);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "image/png");
    return http_reply_response(s, c, r, 200, resp);
}

enum MHD_Result http_preprocess(http_server *s, struct MHD_Connection *c, http_req *r) {
    json_t *req = NULL;
    unsigned char *img = NULL;
    size_t img_len = 0;
    api_error e = {0};
    const annotator *a = NULL;
    annotator_args args;
    int w = 0, h = 0;
    cnet_error err = {0};
    int rc = read_request(c, r, &req, &img, &img_len, &e);
    if (!rc) json_object_del(req, "image"); /* its bytes are in img */
    if (!rc) rc = check_members(req, &a, &args, &e);
    json_decref(req);
    if (!rc && image_probe(img, img_len, "image", &w, &h, &err))
        rc = api_fail(&e, 400, "invalid_image", "image", "%s", err.msg);
    if (!rc && (int64_t)w * h > PREPROCESS_PIXELS_MAX)
        rc = api_fail(&e, 413, "image_too_large", "image",
                      "the image is %dx%d = %lld pixels by its header, over the limit of %lld "
                      "pixels",
                      w, h, (long long)w * h, (long long)PREPROCESS_PIXELS_MAX);
    if (!rc) { /* the size processor_res makes, as annotator_fit rounds it */
        const int short_side = w < h ? w : h;
        const double k = args.processor_res > 0 ? (double)args.processor_res / short_side : 1;
        const int64_t work = (int64_t)nearbyint(w * k) * (int64_t)nearbyint(h * k);
        if (work > PREPROCESS_WORK_PIXELS_MAX)
            rc = api_fail(&e, 413, "image_too_large",
                          args.processor_res > 0 ? "processor_res" : "image",
                          "the preprocessor would work on %lld pixels (the %dx%d image%s), over "
                          "the limit of %lld pixels per request",
                          (long long)work, w, h, args.processor_res > 0 ? " at processor_res" : "",
                          (long long)PREPROCESS_WORK_PIXELS_MAX);
    }
    if (rc) {
        free(img);
        return http_reply_api_error(s, c, r, &e);
    }
    image_rgb8 in = {0}, out = {0};
    rc = image_decode(&in, img, img_len, "image", PREPROCESS_PIXELS_MAX, &err);
    free(img);
    if (rc) return http_reply_error(s, c, r, 400, "invalid_image", "image", "%s", err.msg);
    rc = annotator_run(a, &out, &in, &args, &err);
    image_free(&in);
    if (rc == CNET_EINVAL) /* the picture does not suit it (too small for color ...) */
        return http_reply_error(s, c, r, 400, "invalid_image", "image", "%s", err.msg);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    enum MHD_Result ret = reply_png(s, c, r, &out, a);
    image_free(&out);
    return ret;
}

enum MHD_Result http_preprocessors(http_server *s, struct MHD_Connection *c, http_req *r) {
    static const char *const slot[ANNOTATOR_MAX_PARAMS] = {"threshold_a", "threshold_b"};
    json_t *list = json_array();
    for (int i = 0; list && i < annotator_count(); i++) {
        const annotator *a = annotator_at(i);
        json_t *params = json_array();
        for (int k = 0; params && k < ANNOTATOR_MAX_PARAMS; k++)
            if (a->param[k].name)
                json_array_append_new(params, json_pack("{s:s, s:s, s:f, s:f, s:f, s:s}", "name",
                                                        a->param[k].name, "field", slot[k], "min",
                                                        a->param[k].lo, "max", a->param[k].hi,
                                                        "default", a->param[k].def, "help",
                                                        a->param[k].help ? a->param[k].help : ""));
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:o, s:b, s:b}", "name", a->name,
                                              "module", a->a1111_name, "help", a->help,
                                              "parameters", params, "needs_model", a->needs_model,
                                              "processor_res", a->takes_res));
    }
    if (!list) return MHD_NO;
    return http_reply_json(s, c, r, 200, json_pack("{s:o}", "preprocessors", list));
}
