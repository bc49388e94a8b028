/* POST /v1/generate: a prompt (or a list) plus control images → images.
 *
 * The body is JSON (the control image base64 in "image", or several
 * ControlNets in "controlnets", each item with its own "image") or
 * multipart/form-data (a file part "image" and one part per option), at
 * most API_GENERATE_BODY_MAX bytes. Another API's generate request (an
 * http_gen_shape: server/a1111/'s txt2img) is translated into this one and
 * runs the same way, answered in that API's shape (http_generate_as). The body is freed once
 * parsed, and the control image is checked by the size its header declares (image_probe: over the
 * pixel limit, or over the size caps when it sets the output size, is refused before any decoding);
 * a request holds its body's and its decoded image's bytes against the server's --generate-memory
 * budget until it ends (over it: 503 + Retry-After). After validation (api_generate_spec, 400
 * naming the field) a request without a seed gets a random one, so what it made can be made again.
 *   "async": true → the control image is stored content-addressed under
 *     DATA/inputs/ and a `generate` job is committed (202 + Location); its
 *     artefacts are image_<i>.png.
 *   otherwise → the request's cost (server/workers/gen_cost.h) over its
 *     budget is a 413 naming the parameters; else it is admitted by its
 *     cost on the least loaded engine (not within a short wait: 503 +
 *     Retry-After), its control image decoded only then, and it runs there
 *     (between the steps of a training job if one runs there), stopping at
 *     the next step when its client disconnects, at --generate-timeout
 *     (504) or at shutdown (503) — an hf:// model only
 *     from the Hub cache (not cached: 409, never a download inside the
 *     request) — and the answer is one
 *     image/png with the A1111-style "parameters" text chunk, or with
 *     `Accept: application/json` {"images": [base64 PNG...], "seed",
 *     "width", "height", "parameters"}.
 * img2img / inpainting: "init_image" and "mask_image" (base64 in JSON, file
 * parts in multipart, which http_form.c turns into base64) are held, probed,
 * decoded and stored like a control image (a mask without an init image is
 * a 400 naming mask_image; the init image sets the default output size);
 * async jobs name them in the spec as init_image_file / mask_image_file.
 * Not here: the run (engine/pipeline/generate.h, on a device thread:
 * server/workers/worker_gen.c) or the job runner. */
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "api/api.h"
#include "engine/core/atomic_file.h"
#include "server/workers/gen_cost.h"
#include "server/workers/gen_spec.h"
#include "server/http/http_internal.h"

/* Pixels of a control image, as its header declares them; more → 413
 * before any decoding (the decoders' own default limit). */
#define GEN_IMAGE_PIXELS_MAX IMAGE_MAX_PIXELS_DEFAULT
/* The Retry-After of a generate refused because the server is busy (503). */
#define GEN_RETRY_AFTER_S 5

/* One input image: a control image, or img2img's init image or mask. */
typedef struct gen_input {
    unsigned char *bytes; /* encoded */
    size_t len;
    int w, h;           /* as the image's header declares */
    image_rgb8 decoded; /* when the request is admitted */
    char field[48];     /* "image", "controlnets[k].image", "init_image" or "mask_image" */
} gen_input;

/* The images besides the control images: img2img's init image, the mask;
 * the spec keys an async job stores them under. */
enum { GEN_INIT, GEN_MASK, GEN_EXTRA };
static const char *const extra_fields[GEN_EXTRA] = {"init_image", "mask_image"};
static const char *const extra_spec_keys[GEN_EXTRA] = {"init_image_file", "mask_image_file"};

typedef struct gen_call {
    http_server *s;
    const http_gen_shape *shape; /* NULL: cnet's own answer */
    json_t *body;                /* with a shape: the request as the client sent it */
    json_t *req, *spec;
    gen_input in[PIPE_MAX_CONTROLNETS];
    int n_in;                   /* inputs that have bytes (in[k] for control k) */
    gen_input extra[GEN_EXTRA]; /* bytes NULL: not given */
    int64_t held;               /* bytes held against cfg.generate_memory */
    int fd;                     /* the client's socket, watched while the request runs */
    int decode_rc;              /* of the late decode (on_admitted) */
    generate_result out;
} gen_call;

int64_t http_generate_held(http_server *s) {
    pthread_mutex_lock(&s->mu);
    const int64_t n = s->generate_held;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Holds n more bytes for g against the server's budget; 503 when over. */
static int hold(gen_call *g, int64_t n, const char *what, api_error *e) {
    http_server *s = g->s;
    pthread_mutex_lock(&s->mu);
    const int64_t held = s->generate_held;
    const int over = held + n > s->cfg.generate_memory;
    if (!over) s->generate_held += n, g->held += n;
    pthread_mutex_unlock(&s->mu);
    if (over)
        return api_fail(e, 503, "busy", NULL,
                        "generate requests hold %lld bytes in this server and %s needs %lld "
                        "more; the limit is %lld (--generate-memory): retry later",
                        (long long)held, what, (long long)n, (long long)s->cfg.generate_memory);
    return 0;
}

static void gen_call_free(gen_call *g) {
    json_decref(g->body);
    json_decref(g->req);
    json_decref(g->spec);
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++) {
        free(g->in[k].bytes);
        image_free(&g->in[k].decoded);
    }
    for (int k = 0; k < GEN_EXTRA; k++) {
        free(g->extra[k].bytes);
        image_free(&g->extra[k].decoded);
    }
    generate_result_free(&g->out);
    pthread_mutex_lock(&g->s->mu);
    g->s->generate_held -= g->held;
    pthread_mutex_unlock(&g->s->mu);
}

static int is_multipart(struct MHD_Connection *c) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    return ct && strncasecmp(ct, "multipart/form-data", 19) == 0;
}

static int wants_json(struct MHD_Connection *c) {
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    return accept && strstr(accept, "application/json") != NULL;
}

/* A control image's size from its header, checked before any decoding:
 * the pixel limit, and (the first, which sets the output size) the size
 * caps. */
static int check_image(gen_call *g, int k, api_error *e) {
    gen_input *in = &g->in[k];
    cnet_error err = {0};
    if (image_probe(in->bytes, in->len, in->field, &in->w, &in->h, &err))
        return api_fail(e, 400, "invalid_image", in->field, "%s", err.msg);
    if ((int64_t)in->w * in->h > GEN_IMAGE_PIXELS_MAX)
        return api_fail(e, 413, "image_too_large", in->field,
                        "%s is %dx%d = %lld pixels by its header, over the limit of %lld pixels",
                        in->field, in->w, in->h, (long long)in->w * in->h,
                        (long long)GEN_IMAGE_PIXELS_MAX);
    /* the output size defaults to the control image's (unless an init image
     * sets it, read_extra): the table's caps on width and height hold for it
     * too (a 400 now, not a failed run) */
    const json_t *w = json_object_get(g->spec, "width"), *h = json_object_get(g->spec, "height");
    int w_max, h_max;
    api_generate_size_caps(&w_max, &h_max);
    if (k == 0 && !g->extra[GEN_INIT].bytes && ((!w && in->w > w_max) || (!h && in->h > h_max)))
        return api_fail(e, 400, "out_of_range", !w && in->w > w_max ? "width" : "height",
                        "the control image is %dx%d; give width and height (at most %dx%d) to "
                        "generate at another size",
                        in->w, in->h, w_max, h_max);
    return hold(g, (int64_t)in->w * in->h * 3, "its decoded control image", e);
}

/* Decodes the control images, init image and mask (their sizes checked
 * already). */
static int decode_images(gen_call *g, cnet_error *err) {
    int rc = 0;
    for (int k = 0; k < g->n_in && !rc; k++)
        rc = image_decode(&g->in[k].decoded, g->in[k].bytes, g->in[k].len, g->in[k].field,
                          GEN_IMAGE_PIXELS_MAX, err);
    for (int k = 0; k < GEN_EXTRA && !rc; k++)
        if (g->extra[k].bytes)
            rc = image_decode(&g->extra[k].decoded, g->extra[k].bytes, g->extra[k].len,
                              g->extra[k].field, GEN_IMAGE_PIXELS_MAX, err);
    return rc;
}

/* The init image and mask (base64 in the request; multipart file parts
 * arrive so too, http_form.c), probed and held like a control image; a
 * mask without an init image is a 400 naming mask_image. */
static int read_extra(gen_call *g, api_error *e) {
    for (int k = 0; k < GEN_EXTRA; k++) {
        gen_input *in = &g->extra[k];
        snprintf(in->field, sizeof in->field, "%s", extra_fields[k]);
        const json_t *v = json_object_get(g->req, in->field);
        if (!json_is_string(v)) continue; /* api_generate_spec refused other types */
        int rc = api_base64_decode(json_string_value(v), json_string_length(v), in->field,
                                   &in->bytes, &in->len, e);
        if (rc) return rc;
        cnet_error err = {0};
        if (image_probe(in->bytes, in->len, in->field, &in->w, &in->h, &err))
            return api_fail(e, 400, "invalid_image", in->field, "%s", err.msg);
        if ((int64_t)in->w * in->h > GEN_IMAGE_PIXELS_MAX)
            return api_fail(e, 413, "image_too_large", in->field,
                            "%s is %dx%d = %lld pixels by its header, over the limit of %lld "
                            "pixels",
                            in->field, in->w, in->h, (long long)in->w * in->h,
                            (long long)GEN_IMAGE_PIXELS_MAX);
        if ((rc = hold(g, (int64_t)in->w * in->h * 3, in->field, e))) return rc;
        json_object_del(g->req, in->field); /* its bytes are in g->extra */
    }
    if (g->extra[GEN_MASK].bytes && !g->extra[GEN_INIT].bytes)
        return api_fail(e, 400, "invalid_field", "mask_image",
                        "mask_image needs an init_image (the image to repaint)");
    /* the output size defaults to the init image's: the caps hold for it */
    const gen_input *init = &g->extra[GEN_INIT];
    const json_t *w = json_object_get(g->spec, "width"), *h = json_object_get(g->spec, "height");
    int w_max, h_max;
    api_generate_size_caps(&w_max, &h_max);
    if (init->bytes && ((!w && init->w > w_max) || (!h && init->h > h_max)))
        return api_fail(e, 400, "out_of_range", !w && init->w > w_max ? "width" : "height",
                        "the init image is %dx%d; give width and height (at most %dx%d) to "
                        "generate at another size",
                        init->w, init->h, w_max, h_max);
    return 0;
}

/* The base64 "image" member of obj, decoded into g->in[k]; absent or not a
 * string: left to validation. */
static int take_image(gen_call *g, int k, const json_t *obj, api_error *e) {
    const json_t *img = json_object_get(obj, "image");
    if (!json_is_string(img)) return 0;
    gen_input *in = &g->in[k];
    return api_base64_decode(json_string_value(img), json_string_length(img), in->field, &in->bytes,
                             &in->len, e);
}

/* Parses the body into g->req (through the shape's translation when there
 * is one), freeing the body once parsed, and decodes the base64 of the
 * control images: 0 or an api error. */
static int read_body(http_server *s, struct MHD_Connection *c, http_req *r, gen_call *g,
                     api_error *e) {
    int rc = hold(g, r->received, "this request's body", e);
    if (rc) return rc;
    for (int k = 0; k < PIPE_MAX_CONTROLNETS; k++)
        snprintf(g->in[k].field, sizeof g->in[k].field, "controlnets[%d].image", k);
    snprintf(g->in[0].field, sizeof g->in[0].field, "image");
    if (!g->shape && is_multipart(c)) {
        rc = http_form_parse(c, r->body, (size_t)r->received, &g->req, &g->in[0].bytes,
                             &g->in[0].len, e);
    } else if (g->shape) {
        api_roots roots = {.models_dir = s->cfg.models_dir, .jobs_dir = s->jobs_dir};
        rc = api_parse_body(r->body, (size_t)r->received, &g->body, e);
        if (!rc) rc = g->shape->translate(g->body, &roots, &g->req, e);
    } else {
        rc = api_parse_body(r->body, (size_t)r->received, &g->req, e);
    }
    free(r->body); /* parsed: the request holds no second copy while it waits */
    r->body = NULL;
    const json_t *list = rc ? NULL : json_object_get(g->req, "controlnets");
    if (!rc && !json_is_array(list)) rc = take_image(g, 0, g->req, e);
    for (size_t k = 0; !rc && k < json_array_size(list) && k < PIPE_MAX_CONTROLNETS; k++)
        rc = take_image(g, (int)k, json_array_get(list, k), e);
    return rc;
}

/* Parses and validates the request into g; 0 or an api error. The images
 * are not decoded here. */
static int read_request(http_server *s, struct MHD_Connection *c, http_req *r, gen_call *g,
                        api_error *e) {
    int rc = read_body(s, c, r, g, e);
    if (rc) return rc;
    api_roots roots = {.models_dir = s->cfg.models_dir, .jobs_dir = s->jobs_dir};
    if ((rc = api_generate_spec(g->req, &roots, &g->spec, e)) || (rc = read_extra(g, e))) return rc;
    /* their bytes are in g->in */
    json_object_del(g->req, "image");
    json_t *list = json_object_get(g->req, "controlnets");
    for (size_t k = 0; k < json_array_size(list); k++)
        json_object_del(json_array_get(list, k), "image");
    g->n_in = gen_spec_n_controls(g->spec);
    for (int k = 0; k < g->n_in; k++) {
        if (!g->in[k].bytes)
            return api_fail(e, 400, "missing_field", g->in[k].field,
                            "%s is required (base64 PNG or JPEG%s)", g->in[k].field,
                            list ? "" : ", or a multipart file part");
        if ((rc = check_image(g, k, e))) return rc;
    }
    if (!json_object_get(g->spec, "seed")) {
        uint32_t seed = 0;
        if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
            return api_fail(e, 503, "unavailable", NULL, "no random bytes for a seed");
        json_object_set_new(g->spec, "seed", json_integer(seed));
    }
    const json_t *prompts = json_object_get(g->spec, "prompt");
    const size_t per_prompt = json_is_array(prompts) ? json_array_size(prompts) : 1;
    if (json_integer_value(json_object_get(g->spec, "num_images")) * (json_int_t)per_prompt > 1 &&
        !g->shape && !json_is_true(json_object_get(g->req, "async")) && !wants_json(c))
        return api_fail(e, 400, "invalid_field", per_prompt > 1 ? "prompt" : "num_images",
                        "an image/png answer holds one image; ask with Accept: application/json "
                        "for several");
    return 0;
}

/* Stores in's image as DATA/inputs/<sha256>.<png|jpg> (atomic,
 * idempotent) and names it in the spec object `one` under `key`. */
static int store_input(http_server *s, const gen_input *in, json_t *one, const char *key,
                       cnet_error *err) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(in->bytes, in->len, d);
    char name[80];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) sprintf(name + 2 * i, "%02x", d[i]);
    image_format fmt = image_sniff(in->bytes, in->len);
    strcat(name, fmt == IMAGE_FORMAT_PNG ? ".png" : ".jpg");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", s->inputs_dir, name);
    struct stat st;
    int rc = stat(path, &st) == 0 ? 0 : atomic_write_file(path, in->bytes, in->len, err);
    if (!rc && json_object_set_new(one, key, json_string(name)))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    return rc;
}

/* The request as the Idempotency-Key check hashes it: each image's digest
 * (its stored name) in place of its bytes. NULL on OOM. */
static json_t *keyed_request(const gen_call *g) {
    json_t *keyed = json_deep_copy(g->req);
    json_t *list = keyed ? json_object_get(keyed, "controlnets") : NULL;
    for (int k = 0; keyed && k < g->n_in; k++) {
        json_t *dst = list ? json_array_get(list, (size_t)k) : keyed;
        json_object_set(dst, "image",
                        json_object_get(gen_spec_control(g->spec, k), "control_image"));
    }
    for (int k = 0; keyed && k < GEN_EXTRA; k++)
        if (g->extra[k].bytes)
            json_object_set(keyed, extra_fields[k], json_object_get(g->spec, extra_spec_keys[k]));
    return keyed;
}

static enum MHD_Result run_async(http_server *s, struct MHD_Connection *c, http_req *r,
                                 gen_call *g) {
    cnet_error err = {0};
    char hash[65];
    /* a job must not fail later on an image it cannot decode */
    if (decode_images(g, &err))
        return http_reply_error(s, c, r, 400, "invalid_image", NULL, "%s", err.msg);
    for (int k = 0; k < g->n_in; k++) {
        image_free(&g->in[k].decoded);
        if (store_input(s, &g->in[k], (json_t *)gen_spec_control(g->spec, k), "control_image",
                        &err))
            return http_reply_status_error(s, c, r, CNET_EIO, &err);
    }
    for (int k = 0; k < GEN_EXTRA; k++) {
        image_free(&g->extra[k].decoded);
        if (g->extra[k].bytes && store_input(s, &g->extra[k], g->spec, extra_spec_keys[k], &err))
            return http_reply_status_error(s, c, r, CNET_EIO, &err);
    }
    json_t *keyed = keyed_request(g);
    char *text = json_dumps(g->spec, JSON_COMPACT | JSON_SORT_KEYS);
    int bad = !keyed || !text || api_hash_json(keyed, hash);
    json_decref(keyed);
    if (bad) {
        free(text);
        return http_reply_error(s, c, r, 503, "unavailable", NULL, "out of memory");
    }
    enum MHD_Result ret = http_jobs_enqueue(s, c, r, "generate", text, hash, NULL);
    free(text);
    return ret;
}

/* The least loaded usable engine (a failed one only when all have failed:
 * it then answers why). */
static worker *pick_engine(http_server *s) {
    worker *best = NULL;
    int best_load = 0;
    for (int i = 0; i < s->cfg.n_engines; i++) {
        cnet_error err = {0};
        const int load = worker_load(s->cfg.engines[i]) +
                         (worker_failure(s->cfg.engines[i], &err) ? INT_MAX / 2 : 0);
        if (!best || load < best_load) best = s->cfg.engines[i], best_load = load;
    }
    return best;
}

static enum MHD_Result engine_error(http_server *s, struct MHD_Connection *c, http_req *r, int rc,
                                    const cnet_error *err) {
    api_error e;
    switch (rc) {
    case WORKER_EBUSY:
        api_fail(&e, 503, "busy", NULL, "%s", err->msg);
        return http_reply_busy(s, c, r, &e, GEN_RETRY_AFTER_S, 0);
    case WORKER_ETIMEDOUT:
        return http_reply_error(s, c, r, 504, "timeout", NULL, "%s", err->msg);
    case WORKER_ECANCELLED: /* nobody reads it: the client left */
        return http_reply_error(s, c, r, 503, "cancelled", NULL, "%s", err->msg);
    case CNET_EINVAL:
    case CNET_EFORMAT:
        return http_reply_error(s, c, r, 400, "invalid_request", NULL, "%s", err->msg);
    case CNET_ENOTFOUND:
        return http_reply_error(s, c, r, 400, "not_found", NULL, "%s", err->msg);
    case CNET_ELIMIT:
        return http_reply_error(s, c, r, 429, "busy", NULL, "%s; retry later", err->msg);
    case WORKER_ESTOPPING:
        return http_reply_error(s, c, r, 503, "unavailable", NULL, "%s", err->msg);
    case WORKER_ELOST:
        return http_reply_error(s, c, r, 503, "device_lost", NULL, "%s", err->msg);
    }
    return http_reply_error(s, c, r, 500, "generate_failed", NULL, "%s", err->msg);
}

static enum MHD_Result reply_images(http_server *s, struct MHD_Connection *c, http_req *r,
                                    gen_call *g, const gen_spec *gs) {
    const image_rgb8 *first = &g->out.images[0];
    char *params = gen_spec_parameters(gs, &g->out, 0); /* the first image's (the answer's) */
    json_t *images = g->shape || wants_json(c) ? json_array() : NULL;
    uint8_t *png = NULL;
    size_t len = 0;
    cnet_error err = {0};
    int rc = params ? 0 : cnet_fail(&err, CNET_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < g->out.n; i++) {
        free(png);
        png = NULL;
        char *text = i ? gen_spec_parameters(gs, &g->out, i) : params; /* its prompt's */
        image_text chunk = {"parameters", text};
        rc = text ? image_encode_png(&g->out.images[i], &chunk, 1, &png, &len, &err)
                  : cnet_fail(&err, CNET_ENOMEM, "out of memory");
        if (i) free(text);
        if (!rc && images) {
            char *b64 = api_base64_encode(png, len);
            if (!b64 || json_array_append_new(images, json_string(b64)))
                rc = cnet_fail(&err, CNET_ENOMEM, "out of memory");
            free(b64);
        }
    }
    if (rc) {
        free(png);
        free(params);
        json_decref(images);
        return http_reply_error(s, c, r, 500, "encode_failed", NULL, "%s", err.msg);
    }
    if (images && g->shape) {
        free(png);
        json_t *body = g->shape->render(g->body, g->spec, images, params);
        free(params);
        return http_reply_json(s, c, r, 200, body);
    }
    if (images) {
        free(png);
        json_t *body = json_pack("{s:o, s:O, s:i, s:i, s:s, s:O}", "images", images, "seed",
                                 json_object_get(g->spec, "seed"), "width", first->width, "height",
                                 first->height, "parameters", params, "spec", g->spec);
        free(params);
        return http_reply_json(s, c, r, 200, body);
    }
    free(params);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, png, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(png);
        return MHD_NO;
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%lld",
             (long long)json_integer_value(json_object_get(g->spec, "seed")));
    MHD_add_response_header(resp, "Content-Type", "image/png");
    MHD_add_response_header(resp, "X-Seed", seed);
    return http_reply_response(s, c, r, 200, resp);
}

/* A synchronous request never downloads (a pull can take minutes): an hf://
 * model or ControlNet not in the cache is a 409 that says how to get it, an
 * async job, which pulls it (the job's progress in GET /v1/jobs/{id}). */
static enum MHD_Result not_cached(http_server *s, struct MHD_Connection *c, http_req *r,
                                  const gen_spec *gs) {
    return http_reply_error(s, c, r, 409, "model_not_cached", gs->not_cached_field,
                            "%s (%s) is not in this server's Hub cache and a synchronous request "
                            "never downloads: send the request with \"async\": true (the job "
                            "pulls it; GET /v1/jobs/{id} follows it); once pulled, "
                            "synchronous requests use the cached copy",
                            gs->not_cached_ref, gs->not_cached_field);
}

/* worker_gen_ctl's watch: the client closed its end of the connection. */
static int client_gone(void *user) {
    const gen_call *g = user;
    struct pollfd p = {.fd = g->fd, .events = POLLRDHUP};
    return g->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* worker_gen_ctl's admission hook: the control images are decoded only now. */
static int on_admitted(void *user, cnet_error *err) {
    gen_call *g = user;
    return g->decode_rc = decode_images(g, err);
}

static enum MHD_Result run_sync(http_server *s, struct MHD_Connection *c, http_req *r,
                                gen_call *g) {
    gen_spec gs;
    gen_cost cost;
    cnet_error err = {0};
    int rc = gen_spec_resolve(&gs, g->spec, s->cfg.models_dir, s->jobs_dir, &err);
    if (rc && gs.not_cached_field) return not_cached(s, c, r, &gs);
    /* the output size comes from the init image when there is one */
    const gen_input *size_from = g->extra[GEN_INIT].bytes ? &g->extra[GEN_INIT] : &g->in[0];
    if (!rc)
        rc = gen_cost_estimate(&cost, &gs.req, size_from->w, size_from->h,
                               size_from == &g->extra[GEN_INIT], &err);
    if (rc) return engine_error(s, c, r, rc, &err);
    if (gen_cost_check(&cost, &gs.req, &err))
        return http_reply_error(s, c, r, 413, "over_budget", NULL, "%s", err.msg);
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    g->fd = info ? info->connect_fd : -1;
    const worker_gen_ctl ctl = {.units = cost.units,
                                .timeout_s = s->cfg.generate_timeout_s,
                                .gone = client_gone,
                                .admitted = on_admitted,
                                .user = g};
    for (int k = 0; k < g->n_in; k++) gs.req.controls[k].image = &g->in[k].decoded;
    gs.req.init_image = g->extra[GEN_INIT].bytes ? &g->extra[GEN_INIT].decoded : NULL;
    gs.req.mask_image = g->extra[GEN_MASK].bytes ? &g->extra[GEN_MASK].decoded : NULL;
    rc = worker_generate(pick_engine(s), &gs.req, &ctl, &g->out, &err);
    if (g->decode_rc && g->decode_rc != CNET_ENOMEM)
        return http_reply_error(s, c, r, 400, "invalid_image", NULL, "%s", err.msg);
    return rc ? engine_error(s, c, r, rc, &err) : reply_images(s, c, r, g, &gs);
}

enum MHD_Result http_generate_as(http_server *s, struct MHD_Connection *c, http_req *r,
                                 const http_gen_shape *shape) {
    gen_call g = {.s = s, .shape = shape, .fd = -1};
    api_error e = {0};
    enum MHD_Result ret;
    pthread_mutex_lock(&s->mu); /* until its answer is sent (http_stop waits for it) */
    s->generating++;
    r->generating = 1;
    pthread_mutex_unlock(&s->mu);
    if (read_request(s, c, r, &g, &e) && shape && g.body) shape->name_error(g.body, &e);
    if (e.status)
        ret = strcmp(e.code, "busy") == 0 ? http_reply_busy(s, c, r, &e, GEN_RETRY_AFTER_S, 0)
                                          : http_reply_api_error(s, c, r, &e);
    else if (json_is_true(json_object_get(g.req, "async")))
        ret = run_async(s, c, r, &g);
    else if (!s->cfg.n_engines)
        ret = http_reply_error(s, c, r, 503, "unavailable", NULL,
                               "this server runs no engine: use \"async\": true");
    else
        ret = run_sync(s, c, r, &g);
    gen_call_free(&g);
    return ret;
}

enum MHD_Result http_generate(http_server *s, struct MHD_Connection *c, http_req *r) {
    return http_generate_as(s, c, r, NULL);
}
