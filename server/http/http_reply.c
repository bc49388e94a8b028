/* Building and queueing replies: JSON bodies, the one error shape, status
 * mapping for library errors, busy answers (Retry-After, then the
 * connection closes), X-Request-Id on every response, and the
 * per-route request counters /metrics reports. Not here: routing or what
 * each route answers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/a1111/a1111.h"
#include "server/http/http_internal.h"

void http_count(http_server *s, int route_index, int status) {
    int row = route_index < 0 ? http_n_routes : route_index;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < HTTP_STATUS_SLOTS; i++) {
        status_count *sc = &s->counts[row][i];
        if (sc->status == status || sc->status == 0) {
            sc->status = status;
            sc->n++;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

enum MHD_Result http_reply_response(http_server *s, struct MHD_Connection *c, http_req *r,
                                    int status, struct MHD_Response *resp) {
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    /* API answers are never cached; the dashboard's files say otherwise. */
    if (!MHD_get_response_header(resp, "Cache-Control"))
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    r->status = status;
    http_count(s, r->route_index, status);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

struct MHD_Response *http_json_response(json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return resp;
}

enum MHD_Result http_reply_json(http_server *s, struct MHD_Connection *c, http_req *r, int status,
                                json_t *body) {
    struct MHD_Response *resp = http_json_response(body);
    return resp ? http_reply_response(s, c, r, status, resp) : MHD_NO;
}

enum MHD_Result http_reply_api_error(http_server *s, struct MHD_Connection *c, http_req *r,
                                     const api_error *e) {
    json_t *body = api_error_json(e);
    if (!body || !r->route || !(r->route->flags & ROUTE_A1111))
        return http_reply_json(s, c, r, e->status, body);
    /* A1111 clients read FastAPI's {"detail"}, and a refused body is its 422 */
    json_object_set_new(body, "detail", json_string(e->message));
    return http_reply_json(s, c, r, e->status == 400 ? A1111_STATUS : e->status, body);
}

enum MHD_Result http_reply_busy(http_server *s, struct MHD_Connection *c, http_req *r,
                                const api_error *e, int retry_after_s, int close) {
    struct MHD_Response *resp = http_json_response(api_error_json(e));
    if (!resp) return MHD_NO;
    char after[16];
    snprintf(after, sizeof after, "%d", retry_after_s);
    MHD_add_response_header(resp, "Retry-After", after);
    if (close) MHD_add_response_header(resp, "Connection", "close");
    return http_reply_response(s, c, r, e->status, resp);
}

enum MHD_Result http_reply_error(http_server *s, struct MHD_Connection *c, http_req *r, int status,
                                 const char *code, const char *field, const char *fmt, ...) {
    api_error e = {.status = status};
    snprintf(e.code, sizeof e.code, "%s", code);
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return http_reply_api_error(s, c, r, &e);
}

enum MHD_Result http_reply_status_error(http_server *s, struct MHD_Connection *c, http_req *r,
                                        int code, const cnet_error *err) {
    switch (code) {
    case CNET_ENOTFOUND:
        return http_reply_error(s, c, r, 404, "not_found", NULL, "%s", err->msg);
    case JOBS_ECONFLICT:
        return http_reply_error(s, c, r, 409, "conflict", NULL, "%s", err->msg);
    case CNET_EINVAL:
    case CNET_EFORMAT:
        return http_reply_error(s, c, r, 400, "invalid", NULL, "%s", err->msg);
    case CNET_ELIMIT:
        return http_reply_error(s, c, r, 413, "too_large", NULL, "%s", err->msg);
    }
    /* Out of memory, I/O or a busy database: the request may be retried. */
    return http_reply_error(s, c, r, 503, "unavailable", NULL, "%s", err->msg);
}
