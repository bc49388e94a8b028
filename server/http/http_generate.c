/* POST /v1/generate: a prompt plus a control image → images.
 *
 * img2img / inpainting: "init_image" and "mask_image" (base64 in JSON, file
 * parts in multipart, which http_form.c turns into base64) are
 * held, probed, decoded and stored like the control image (a mask without
 * an init image is a 400 naming mask_image); async jobs name them in the
 * spec as init_image_file / mask_image_file.
 * The body is JSON (the control image base64 in "image") or
 * multipart/form-data (a file part "image" and one part per option), at
 * most API_GENERATE_BODY_MAX bytes. The body is freed once parsed, and the
 * control image is checked by the size its header declares (image_probe:
 * over the pixel limit, or over the size caps when it sets the output size,
 * is refused before any decoding); a request holds its body's and its
 * decoded image's bytes against the server's --generate-memory budget
 * until it ends (over it: 503 + Retry-After). After validation
 * (api_generate_spec, 400 naming the field) a request without a seed gets a
 * random one, so what it made can be made again.
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

/* The images besides the control image: img2img's init image, the mask. */
enum { GEN_INIT, GEN_MASK, GEN_EXTRA };
static const char *const extra_fields[GEN_EXTRA] = {"init_image", "mask_image"};

typedef struct gen_input {
    unsigned char *bytes; /* encoded (NULL: not given) */
    size_t len;
    int w, h;       /* as its header declares */
    image_rgb8 img; /* decoded when the request is admitted */
} gen_input;

typedef struct gen_call {
    http_server *s;
    json_t *req, *spec;
    unsigned char *image; /* the encoded control image */
    size_t image_len;
    int image_w, image_h; /* as the image's header declares */
    image_rgb8 control;   /* decoded when the request is admitted */
    gen_input extra[GEN_EXTRA];
    int64_t held;             /* bytes held against cfg.generate_memory */
    int fd;                   /* the client's socket, watched while the request runs */
    int decode_rc;            /* of the late decode (on_admitted) */
    const char *decode_field; /* the image it failed on */
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
    json_decref(g->req);
    json_decref(g->spec);
    free(g->image);
    image_free(&g->control);
    for (int k = 0; k < GEN_EXTRA; k++) {
        free(g->extra[k].bytes);
        image_free(&g->extra[k].img);
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

/* The control image's size from its header, checked before any decoding:
 * the pixel limit, and the size caps when it sets the output size. */
static int check_image(gen_call *g, api_error *e) {
    cnet_error err = {0};
    if (image_probe(g->image, g->image_len, "image", &g->image_w, &g->image_h, &err))
        return api_fail(e, 400, "invalid_image", "image", "%s", err.msg);
    if ((int64_t)g->image_w * g->image_h > GEN_IMAGE_PIXELS_MAX)
        return api_fail(e, 413, "image_too_large", "image",
                        "the control image is %dx%d = %lld pixels by its header, over the limit "
                        "of %lld pixels",
                        g->image_w, g->image_h, (long long)g->image_w * g->image_h,
                        (long long)GEN_IMAGE_PIXELS_MAX);
    /* the output size defaults to the control image's (unless an init image
     * sets it, read_extra): the table's caps on width and height hold for it
     * too (a 400 now, not a failed run) */
    const json_t *w = json_object_get(g->spec, "width"), *h = json_object_get(g->spec, "height");
    int w_max, h_max;
    api_generate_size_caps(&w_max, &h_max);
    if (!g->extra[GEN_INIT].bytes && ((!w && g->image_w > w_max) || (!h && g->image_h > h_max)))
        return api_fail(e, 400, "out_of_range", !w && g->image_w > w_max ? "width" : "height",
                        "the control image is %dx%d; give width and height (at most %dx%d) to "
                        "generate at another size",
                        g->image_w, g->image_h, w_max, h_max);
    return hold(g, (int64_t)g->image_w * g->image_h * 3, "its decoded control image", e);
}

/* The init image and mask of a JSON request (base64), probed and held. */
static int read_extra(gen_call *g, api_error *e) {
    for (int k = 0; k < GEN_EXTRA; k++) {
        gen_input *in = &g->extra[k];
        const char *field = extra_fields[k];
        const json_t *v = json_object_get(g->req, field);
        if (!json_is_string(v)) continue; /* api_generate_spec refused other types */
        int rc = api_base64_decode(json_string_value(v), json_string_length(v), field, &in->bytes,
                                   &in->len, e);
        if (rc) return rc;
        cnet_error err = {0};
        if (image_probe(in->bytes, in->len, field, &in->w, &in->h, &err))
            return api_fail(e, 400, "invalid_image", field, "%s", err.msg);
        if ((int64_t)in->w * in->h > GEN_IMAGE_PIXELS_MAX)
            return api_fail(e, 413, "image_too_large", field,
                            "%s is %dx%d = %lld pixels by its header, over the limit of %lld "
                            "pixels",
                            field, in->w, in->h, (long long)in->w * in->h,
                            (long long)GEN_IMAGE_PIXELS_MAX);
        if ((rc = hold(g, (int64_t)in->w * in->h * 3, field, e))) return rc;
        json_object_del(g->req, field); /* its bytes are in g->extra */
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

/* Decodes the control image, init image and mask (their sizes checked
 * already); *field names the one that failed. */
static int decode_image(gen_call *g, const char **field, cnet_error *err) {
    *field = "image";
    int rc = image_decode(&g->control, g->image, g->image_len, "image", GEN_IMAGE_PIXELS_MAX, err);
    for (int k = 0; k < GEN_EXTRA && !rc; k++) {
        gen_input *in = &g->extra[k];
        *field = extra_fields[k];
        if (in->bytes)
            rc = image_decode(&in->img, in->bytes, in->len, *field, GEN_IMAGE_PIXELS_MAX, err);
    }
    return rc;
}

/* Parses and validates the request into g, freeing the body once parsed; 0
 * or an api error. The image is not decoded here. */
static int read_request(http_server *s, struct MHD_Connection *c, http_req *r, gen_call *g,
                        api_error *e) {
    int rc = hold(g, r->received, "this request's body", e);
    if (rc) return rc;
    if (is_multipart(c)) {
        rc = http_form_parse(c, r->body, (size_t)r->received, &g->req, &g->image, &g->image_len, e);
    } else {
        rc = api_parse_body(r->body, (size_t)r->received, &g->req, e);
        json_t *img = rc ? NULL : json_object_get(g->req, "image");
        if (!rc && json_is_string(img))
            rc = api_base64_decode(json_string_value(img), json_string_length(img), "image",
                                   &g->image, &g->image_len, e);
    }
    free(r->body); /* parsed: the request holds no second copy while it waits */
    r->body = NULL;
    if (rc) return rc;
    api_roots roots = {.models_dir = s->cfg.models_dir, .jobs_dir = s->jobs_dir};
    if ((rc = api_generate_spec(g->req, &roots, &g->spec, e)) || (rc = read_extra(g, e))) return rc;
    json_object_del(g->req, "image"); /* its bytes are in g->image */
    if (!g->image)
        return api_fail(e, 400, "missing_field", "image",
                        "image is required (base64 PNG or JPEG, or a multipart file part)");
    if ((rc = check_image(g, e))) return rc;
    if (!json_object_get(g->spec, "seed")) {
        uint32_t seed = 0;
        if (RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
            return api_fail(e, 503, "unavailable", NULL, "no random bytes for a seed");
        json_object_set_new(g->spec, "seed", json_integer(seed));
    }
    if (json_integer_value(json_object_get(g->spec, "num_images")) > 1 &&
        !json_is_true(json_object_get(g->req, "async")) && !wants_json(c))
        return api_fail(e, 400, "invalid_field", "num_images",
                        "an image/png answer holds one image; ask with Accept: application/json "
                        "for several");
    return 0;
}

/* Stores an input image as DATA/inputs/<sha256>.<png|jpg> (atomic,
 * idempotent) and names it in the spec as `key`. */
static int store_input(http_server *s, gen_call *g, const unsigned char *bytes, size_t len,
                       const char *key, cnet_error *err) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(bytes, len, d);
    char name[80];
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) sprintf(name + 2 * i, "%02x", d[i]);
    image_format fmt = image_sniff(bytes, len);
    strcat(name, fmt == IMAGE_FORMAT_PNG ? ".png" : ".jpg");
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", s->inputs_dir, name);
    struct stat st;
    int rc = stat(path, &st) == 0 ? 0 : atomic_write_file(path, bytes, len, err);
    if (!rc && json_object_set_new(g->spec, key, json_string(name)))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    return rc;
}

static enum MHD_Result run_async(http_server *s, struct MHD_Connection *c, http_req *r,
                                 gen_call *g) {
    cnet_error err = {0};
    char hash[65];
    const char *field = NULL;
    /* a job must not fail later on an image it cannot decode */
    if (decode_image(g, &field, &err))
        return http_reply_error(s, c, r, 400, "invalid_image", field, "%s", err.msg);
    image_free(&g->control);
    static const char *const spec_keys[GEN_EXTRA] = {"init_image_file", "mask_image_file"};
    int rc = store_input(s, g, g->image, g->image_len, "control_image", &err);
    for (int k = 0; k < GEN_EXTRA && !rc; k++) {
        image_free(&g->extra[k].img);
        if (g->extra[k].bytes)
            rc = store_input(s, g, g->extra[k].bytes, g->extra[k].len, spec_keys[k], &err);
    }
    if (rc) return http_reply_status_error(s, c, r, CNET_EIO, &err);
    /* The key check hashes the request with the images' digests in place of their bytes. */
    json_t *keyed = json_deep_copy(g->req);
    if (keyed) json_object_set(keyed, "image", json_object_get(g->spec, "control_image"));
    for (int k = 0; k < GEN_EXTRA && keyed; k++)
        if (g->extra[k].bytes)
            json_object_set(keyed, extra_fields[k], json_object_get(g->spec, spec_keys[k]));
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
    char *params = gen_spec_parameters(gs, &g->out);
    image_text chunk = {"parameters", params};
    json_t *images = wants_json(c) ? json_array() : NULL;
    uint8_t *png = NULL;
    size_t len = 0;
    cnet_error err = {0};
    int rc = params ? 0 : cnet_fail(&err, CNET_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < g->out.n; i++) {
        free(png);
        png = NULL;
        rc = image_encode_png(&g->out.images[i], &chunk, 1, &png, &len, &err);
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
                                  const gen_call *g, const char *field) {
    const char *ref = json_string_value(json_object_get(g->spec, field));
    return http_reply_error(s, c, r, 409, "model_not_cached", field,
                            "%s is not in this server's Hub cache and a synchronous request "
                            "never downloads: send the request with \"async\": true (the job "
                            "pulls it; GET /v1/jobs/{id} follows it); once pulled, "
                            "synchronous requests use the cached copy",
                            ref);
}

/* worker_gen_ctl's watch: the client closed its end of the connection. */
static int client_gone(void *user) {
    const gen_call *g = user;
    struct pollfd p = {.fd = g->fd, .events = POLLRDHUP};
    return g->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* worker_gen_ctl's admission hook: the images are decoded only now. */
static int on_admitted(void *user, cnet_error *err) {
    gen_call *g = user;
    return g->decode_rc = decode_image(g, &g->decode_field, err);
}

static enum MHD_Result run_sync(http_server *s, struct MHD_Connection *c, http_req *r,
                                gen_call *g) {
    gen_spec gs;
    gen_cost cost;
    cnet_error err = {0};
    int rc = gen_spec_resolve(&gs, g->spec, s->cfg.models_dir, s->jobs_dir, &err);
    if (rc && gs.not_cached_field) return not_cached(s, c, r, g, gs.not_cached_field);
    /* the output size comes from the init image when there is one */
    const gen_input *init = &g->extra[GEN_INIT];
    if (!rc)
        rc = gen_cost_estimate(&cost, &gs.req, init->bytes ? init->w : g->image_w,
                               init->bytes ? init->h : g->image_h, &err);
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
    gs.req.controls[0].image = &g->control;
    gs.req.init_image = g->extra[GEN_INIT].bytes ? &g->extra[GEN_INIT].img : NULL;
    gs.req.mask_image = g->extra[GEN_MASK].bytes ? &g->extra[GEN_MASK].img : NULL;
    rc = worker_generate(pick_engine(s), &gs.req, &ctl, &g->out, &err);
    if (g->decode_rc && g->decode_rc != CNET_ENOMEM)
        return http_reply_error(s, c, r, 400, "invalid_image", g->decode_field, "%s", err.msg);
    return rc ? engine_error(s, c, r, rc, &err) : reply_images(s, c, r, g, &gs);
}

enum MHD_Result http_generate(http_server *s, struct MHD_Connection *c, http_req *r) {
    gen_call g = {.s = s, .fd = -1};
    api_error e;
    enum MHD_Result ret;
    pthread_mutex_lock(&s->mu); /* until its answer is sent (http_stop waits for it) */
    s->generating++;
    r->generating = 1;
    pthread_mutex_unlock(&s->mu);
    if (read_request(s, c, r, &g, &e))
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
