/* The A1111-compatible routes (server/a1111/ translates; see a1111.h):
 * POST /sdapi/v1/txt2img and /sdapi/v1/img2img run as POST /v1/generate
 * does (http_generate_as: the same validation, budget, admission and
 * executor) and answer in A1111's shape; GET /sdapi/v1/options, progress,
 * samplers, sd-models, /controlnet/model_list and module_list
 * (?alias_names=true: the names the extension's UI shows) answer what clients fill their menus
 * with; POST /controlnet/detect runs a module on images. Every route takes
 * the same token as the rest (Bearer, or Basic with the token as password:
 * server/http/auth.c), and its errors carry FastAPI's "detail" (ROUTE_A1111,
 * http_reply.c). Not here: the translation (server/a1111/). */
#include <string.h>
#include <strings.h>

#include "server/a1111/a1111.h"
#include "server/http/http_internal.h"

static const http_gen_shape txt2img = {a1111_txt2img_request, a1111_images_answer,
                                       a1111_error_names};
static const http_gen_shape img2img = {a1111_img2img_request, a1111_images_answer,
                                       a1111_error_names};

enum MHD_Result http_a1111_txt2img(http_server *s, struct MHD_Connection *c, http_req *r) {
    return http_generate_as(s, c, r, &txt2img);
}

enum MHD_Result http_a1111_img2img(http_server *s, struct MHD_Connection *c, http_req *r) {
    return http_generate_as(s, c, r, &img2img);
}

/* A list answer, or 503 when it could not be built. */
static enum MHD_Result answer(http_server *s, struct MHD_Connection *c, http_req *r, json_t *body) {
    return body ? http_reply_json(s, c, r, 200, body)
                : http_reply_error(s, c, r, 503, "unavailable", NULL, "out of memory");
}

enum MHD_Result http_a1111_options(http_server *s, struct MHD_Connection *c, http_req *r) {
    return answer(s, c, r, a1111_options(s->cfg.models_dir));
}

enum MHD_Result http_a1111_progress(http_server *s, struct MHD_Connection *c, http_req *r) {
    pthread_mutex_lock(&s->mu);
    const int jobs = s->generating;
    pthread_mutex_unlock(&s->mu);
    return answer(s, c, r, a1111_progress(jobs));
}

enum MHD_Result http_a1111_samplers(http_server *s, struct MHD_Connection *c, http_req *r) {
    return answer(s, c, r, a1111_samplers());
}

enum MHD_Result http_a1111_sd_models(http_server *s, struct MHD_Connection *c, http_req *r) {
    return answer(s, c, r, a1111_sd_models(s->cfg.models_dir));
}

enum MHD_Result http_a1111_model_list(http_server *s, struct MHD_Connection *c, http_req *r) {
    return answer(s, c, r, a1111_model_list(s->cfg.models_dir, s->jobs_dir));
}

enum MHD_Result http_a1111_module_list(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *alias = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "alias_names");
    const int yes = alias && (!strcasecmp(alias, "true") || !strcmp(alias, "1"));
    return answer(s, c, r, a1111_module_list(yes));
}

enum MHD_Result http_a1111_detect(http_server *s, struct MHD_Connection *c, http_req *r) {
    json_t *body = NULL, *out = NULL;
    api_error e;
    int rc = api_parse_body(r->body, (size_t)r->received, &body, &e);
    free(r->body);
    r->body = NULL;
    if (!rc) rc = a1111_detect(body, &out, &e);
    json_decref(body);
    return rc ? http_reply_api_error(s, c, r, &e) : http_reply_json(s, c, r, 200, out);
}
