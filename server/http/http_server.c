/* The libmicrohttpd daemon and everything a request meets before its
 * handler: the route table, the connection caps (http_conn.c), auth (Bearer or Basic: auth.c),
 * request ids, and body limits checked against Content-Length before reading
 * and again while a (chunked) body accumulates, so an over-limit body is
 * answered 413 and never truncated. A request whose Content-Length headers
 * disagree, or that has both Content-Length and Transfer-Encoding, is
 * answered 400 (RFC 9110 §8.6, RFC 9112 §6.3: the framing is ambiguous, the
 * stuff of request smuggling). HEAD on the dashboard's files is answered as
 * GET without the body (RFC 9110 §9.3.2; MHD leaves the body out).
 *
 * Not here: what a route does (http_jobs.c, http_events.c, ...). Limits
 * follow RELIABILITY.md §3 (connection, per-IP, timeout and memory limits;
 * strict parsing for clients). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "server/http/auth.h"
#include "server/http/http_internal.h"

const http_route http_routes[] = {
    {"POST", "/v1/jobs", "POST /v1/jobs", http_jobs_create, BODY_JSON, ROUTE_AUTH},
    {"GET", "/v1/jobs", "GET /v1/jobs", http_jobs_list, BODY_NONE, ROUTE_AUTH},
    {"GET", "/v1/jobs/{}", "GET /v1/jobs/{id}", http_jobs_get, BODY_NONE, ROUTE_AUTH},
    {"POST", "/v1/jobs/{}/cancel", "POST /v1/jobs/{id}/cancel", http_jobs_cancel, BODY_NONE,
     ROUTE_AUTH},
    {"GET", "/v1/jobs/{}/events", "GET /v1/jobs/{id}/events", http_events, BODY_NONE,
     ROUTE_AUTH | ROUTE_STREAM},
    {"GET", "/v1/jobs/{}/artifacts/{}", "GET /v1/jobs/{id}/artifacts/{name}", http_jobs_artifact,
     BODY_NONE, ROUTE_AUTH},
    {"POST", "/v1/generate", "POST /v1/generate", http_generate, BODY_GENERATE, ROUTE_AUTH},
    {"POST", "/v1/preprocess", "POST /v1/preprocess", http_preprocess, BODY_GENERATE, ROUTE_AUTH},
    {"GET", "/v1/preprocessors", "GET /v1/preprocessors", http_preprocessors, BODY_NONE,
     ROUTE_AUTH},
    {"POST", "/v1/datasets", "POST /v1/datasets", http_datasets_create, BODY_FILE, ROUTE_AUTH},
    {"GET", "/v1/datasets", "GET /v1/datasets", http_datasets_list, BODY_NONE, ROUTE_AUTH},
    {"GET", "/v1/datasets/{}", "GET /v1/datasets/{id}", http_datasets_get, BODY_NONE, ROUTE_AUTH},
    {"DELETE", "/v1/datasets/{}", "DELETE /v1/datasets/{id}", http_datasets_delete, BODY_NONE,
     ROUTE_AUTH},
    {"GET", "/v1/datasets/{}/samples", "GET /v1/datasets/{id}/samples", http_datasets_samples,
     BODY_NONE, ROUTE_AUTH},
    {"GET", "/v1/datasets/{}/samples/{}", "GET /v1/datasets/{id}/samples/{n}", http_datasets_sample,
     BODY_NONE, ROUTE_AUTH},
    {"GET", "/v1/models", "GET /v1/models", http_ops_models, BODY_NONE, ROUTE_AUTH},
    {"GET", "/v1/openapi.yaml", "GET /v1/openapi.yaml", http_ops_openapi, BODY_NONE, ROUTE_AUTH},
    /* A1111's API and the ControlNet extension's (server/a1111/) */
    {"POST", "/sdapi/v1/txt2img", "POST /sdapi/v1/txt2img", http_a1111_txt2img, BODY_GENERATE,
     ROUTE_AUTH | ROUTE_A1111},
    {"POST", "/sdapi/v1/img2img", "POST /sdapi/v1/img2img", http_a1111_img2img, BODY_GENERATE,
     ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/sdapi/v1/options", "GET /sdapi/v1/options", http_a1111_options, BODY_NONE,
     ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/sdapi/v1/progress", "GET /sdapi/v1/progress", http_a1111_progress, BODY_NONE,
     ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/sdapi/v1/samplers", "GET /sdapi/v1/samplers", http_a1111_samplers, BODY_NONE,
     ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/sdapi/v1/sd-models", "GET /sdapi/v1/sd-models", http_a1111_sd_models, BODY_NONE,
     ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/controlnet/model_list", "GET /controlnet/model_list", http_a1111_model_list,
     BODY_NONE, ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/controlnet/module_list", "GET /controlnet/module_list", http_a1111_module_list,
     BODY_NONE, ROUTE_AUTH | ROUTE_A1111},
    {"POST", "/controlnet/detect", "POST /controlnet/detect", http_a1111_detect, BODY_GENERATE,
     ROUTE_AUTH | ROUTE_A1111},
    {"GET", "/healthz", "GET /healthz", http_ops_healthz, BODY_NONE, 0},
    {"GET", "/readyz", "GET /readyz", http_ops_readyz, BODY_NONE, 0},
    {"GET", "/metrics", "GET /metrics", http_ops_metrics, BODY_NONE, 0},
    /* The dashboard; last, so "/{}" never shadows a route above. */
    {"GET", "/", "GET /", http_static, BODY_NONE, ROUTE_HEAD},
    {"GET", "/{}", "GET /{asset}", http_static, BODY_NONE, ROUTE_HEAD},
};
const int http_n_routes = sizeof http_routes / sizeof http_routes[0];
_Static_assert(sizeof http_routes / sizeof http_routes[0] <= HTTP_ROUTES_MAX,
               "raise HTTP_ROUTES_MAX: http_server.counts has a row per route");

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Matches url against pattern, copying "{}" segments into params. */
static int match(const char *pattern, const char *url, char params[][256]) {
    int np = 0;
    while (*pattern && *url) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t n = strcspn(url, "/");
            if (n == 0 || n >= 256 || np == HTTP_PARAMS_MAX) return 0;
            memcpy(params[np], url, n);
            params[np++][n] = '\0';
            url += n, pattern += 2;
        } else if (*pattern++ != *url++) {
            return 0;
        }
    }
    return !*pattern && !*url;
}

/* A client-sent X-Request-Id is kept when it is short and plain; else a new one. */
static void request_id(struct MHD_Connection *c, char out[68]) {
    const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (given && strlen(given) <= 64 && strlen(given) > 0 &&
        strspn(given, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
            strlen(given)) {
        snprintf(out, 68, "%s", given);
        return;
    }
    unsigned char raw[8] = {0};
    RAND_bytes(raw, sizeof raw);
    for (int i = 0; i < 8; i++) sprintf(out + 2 * i, "%02x", raw[i]);
}

int64_t http_disk_free(http_server *s) {
    struct statvfs v;
    if (statvfs(s->cfg.data_dir, &v) != 0) return -1;
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

/* The headers that frame the body: every Content-Length (the first kept)
 * and whether Transfer-Encoding is there. */
typedef struct framing {
    const char *length;
    int n_length, conflict, chunked;
} framing;

static enum MHD_Result take_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    framing *f = cls;
    if (!key || !value) return MHD_YES;
    if (strcasecmp(key, "Transfer-Encoding") == 0) f->chunked = 1;
    if (strcasecmp(key, "Content-Length") != 0) return MHD_YES;
    if (f->n_length++ == 0)
        f->length = value;
    else if (strcmp(f->length, value) != 0)
        f->conflict = 1;
    return MHD_YES;
}

static enum MHD_Result begin(http_server *s, struct MHD_Connection *c, const char *url,
                             const char *method, http_req *r) {
    int path_match = 0;
    for (int i = 0; i < http_n_routes; i++) {
        if (!match(http_routes[i].pattern, url, r->params)) continue;
        /* HEAD as GET only where no route above took the path (/healthz stays 405). */
        int allowed =
            strcmp(http_routes[i].method, method) == 0 ||
            (!path_match && (http_routes[i].flags & ROUTE_HEAD) && !strcmp(method, "HEAD"));
        path_match = 1;
        if (allowed) {
            r->route = &http_routes[i];
            r->route_index = i;
            break;
        }
    }
    api_error busy;
    if (http_conn_admit(s, c, r->conn, r->route && (r->route->flags & ROUTE_STREAM), &busy) != 0)
        return busy.status == 400 ? http_reply_api_error(s, c, r, &busy)
                                  : http_reply_busy(s, c, r, &busy, HTTP_BUSY_RETRY_AFTER_S, 1);
    framing f = {.n_length = 0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, take_framing, &f);
    if (f.conflict || (f.n_length && f.chunked))
        return http_reply_error(s, c, r, 400, "bad_request", NULL,
                                f.conflict ? "the Content-Length headers disagree"
                                           : "both Content-Length and Transfer-Encoding");
    if (!r->route)
        return path_match ? http_reply_error(s, c, r, 405, "method_not_allowed", NULL,
                                             "%s is not allowed on %s", method, url)
                          : http_reply_error(s, c, r, 404, "not_found", NULL, "no route %s", url);
    if (r->route->flags & ROUTE_AUTH) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        auth_result a = auth_check(h, s->cfg.token);
        if (a == AUTH_MISSING) {
            api_error e;
            api_fail(&e, 401, "unauthorized", NULL,
                     "missing token: send Authorization: Bearer TOKEN (or Basic credentials "
                     "whose password is the token)");
            json_t *body = api_error_json(&e);
            if (body && (r->route->flags & ROUTE_A1111)) /* FastAPI's, as A1111 clients read */
                json_object_set_new(body, "detail", json_string(e.message));
            struct MHD_Response *resp = http_json_response(body);
            if (!resp) return MHD_NO;
            MHD_add_response_header(resp, "WWW-Authenticate",
                                    r->route->flags & ROUTE_A1111 ? "Basic realm=\"cnet\""
                                                                  : "Bearer realm=\"cnet\"");
            return http_reply_response(s, c, r, 401, resp);
        }
        if (a == AUTH_WRONG)
            return http_reply_error(s, c, r, 403, "forbidden", NULL, "wrong token");
    }
    r->limit = r->route->body == BODY_JSON       ? API_JSON_BODY_MAX
               : r->route->body == BODY_GENERATE ? API_GENERATE_BODY_MAX
               : r->route->body == BODY_FILE     ? s->cfg.upload_max
                                                 : 0;
    const char *cl = f.length;
    if (cl) {
        char *end;
        errno = 0;
        long long n = strtoll(cl, &end, 10);
        if (errno || *end || n < 0)
            return http_reply_error(s, c, r, 400, "bad_request", NULL, "bad Content-Length");
        if (n > r->limit) {
            /* A body we would rather not read at all is answered now; a small
             * one is read and dropped so the client is not cut off mid-send. */
            if (n > r->limit + HTTP_DISCARD_MAX)
                return http_reply_error(s, c, r, 413, "body_too_large", NULL,
                                        "the body is %lld bytes, the limit for %s is %lld", n,
                                        r->route->name, (long long)r->limit);
            r->over = 1;
        }
    }
    if (r->route->body == BODY_FILE && !r->over) {
        int64_t free_bytes = http_disk_free(s);
        if (free_bytes >= 0 && free_bytes < s->cfg.disk_floor)
            return http_reply_error(s, c, r, 507, "insufficient_storage", NULL,
                                    "free disk space (%lld bytes) is below the floor",
                                    (long long)free_bytes);
        char hex[33];
        unsigned char raw[16];
        if (RAND_bytes(raw, sizeof raw) != 1)
            return http_reply_error(s, c, r, 503, "unavailable", NULL, "no random bytes");
        for (int i = 0; i < 16; i++) sprintf(hex + 2 * i, "%02x", raw[i]);
        snprintf(r->tmp_path, sizeof r->tmp_path, "%s/upload-%s", s->tmp_dir, hex);
        r->fd = open(r->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (r->fd < 0)
            return http_reply_error(s, c, r, 503, "unavailable", NULL,
                                    "cannot create an upload "
                                    "file");
    }
    return MHD_YES;
}

static void drop_body(http_req *r) {
    free(r->body);
    r->body = NULL;
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    if (r->tmp_path[0]) unlink(r->tmp_path);
    r->tmp_path[0] = '\0';
}

/* Takes one piece of the body; 0 ok, -1 to close the connection. */
static int take_body(http_req *r, const char *data, size_t n) {
    r->received += (int64_t)n;
    if (!r->over && r->received > r->limit) {
        r->over = 1;
        drop_body(r);
    }
    if (r->over || r->write_errno) return 0;
    if (r->route->body == BODY_JSON || r->route->body == BODY_GENERATE) {
        char *grown = realloc(r->body, (size_t)r->received + 1);
        if (!grown) return -1;
        r->body = grown;
        memcpy(r->body + r->received - (int64_t)n, data, n);
        r->body[r->received] = '\0';
        return 0;
    }
    if (r->route->body == BODY_FILE) {
        for (size_t off = 0; off < n;) {
            ssize_t w = write(r->fd, data + off, n - off);
            if (w < 0) {
                r->write_errno = errno;
                drop_body(r);
                return 0;
            }
            off += (size_t)w;
        }
        return 0;
    }
    r->over = 1; /* a body on a route that takes none */
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->fd = -1;
        r->route_index = -1;
        r->start_us = now_us();
        r->conn = http_conn_of(c);
        request_id(c, r->id);
        *con_cls = r;
        http_conn_set_phase(s, r->conn, HTTP_PHASE_BODY, 0);
        return begin(s, c, url, method, r);
    }
    if (*upload_size) {
        int rc = take_body(r, upload, *upload_size);
        *upload_size = 0;
        http_conn_set_phase(s, r->conn, HTTP_PHASE_BODY, r->received);
        return rc ? MHD_NO : MHD_YES;
    }
    http_conn_set_phase(s, r->conn, HTTP_PHASE_HANDLER, r->received);
    if (r->over) {
        drop_body(r);
        return http_reply_error(s, c, r, 413, "body_too_large", NULL,
                                "the body is over the %lld-byte limit of %s", (long long)r->limit,
                                r->route->name);
    }
    if (r->write_errno == ENOSPC || r->write_errno == EDQUOT)
        return http_reply_error(s, c, r, 507, "insufficient_storage", NULL,
                                "the server's disk filled up while storing the body");
    if (r->write_errno)
        return http_reply_error(s, c, r, 503, "unavailable", NULL, "storing the body: %s",
                                strerror(r->write_errno));
    return r->route->handler(s, c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) return;
    /* The next request on a kept-alive connection has its own header deadline. */
    http_conn_set_phase(s, r->conn, HTTP_PHASE_HEADERS, 0);
    fprintf(stderr, "http: %s %s %d %.1f ms%s\n", r->id, r->route ? r->route->name : "-", r->status,
            (double)(now_us() - r->start_us) / 1000.0,
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (terminated)");
    drop_body(r);
    if (r->generating) {
        pthread_mutex_lock(&s->mu);
        s->generating--;
        pthread_cond_broadcast(&s->answered);
        pthread_mutex_unlock(&s->mu);
    }
    free(r);
    *con_cls = NULL;
}

static int make_dir(const char *path, cnet_error *err) {
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return cnet_fail(err, CNET_EIO, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

int http_start(http_server **out, const http_config *cfg, jobs_store *store, cnet_error *err) {
    *out = NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port)};
    if (inet_pton(AF_INET, cfg->listen, &addr.sin_addr) != 1)
        return cnet_fail(err, CNET_EINVAL, "--listen %s is not an IPv4 address", cfg->listen);
    http_server *s = calloc(1, sizeof *s);
    if (!s) return cnet_fail(err, CNET_ENOMEM, "out of memory");
    s->cfg = *cfg, s->store = store;
    /* A caps or deadline field left 0 takes its default. */
    http_config *k = &s->cfg;
    if (k->max_connections <= 0) k->max_connections = HTTP_CONNECTION_LIMIT;
    if (k->max_per_ip <= 0) k->max_per_ip = HTTP_PER_IP_LIMIT;
    if (k->max_sse <= 0) k->max_sse = HTTP_SSE_LIMIT;
    if (k->header_timeout_s <= 0) k->header_timeout_s = HTTP_HEADER_TIMEOUT_S;
    if (k->body_timeout_s <= 0) k->body_timeout_s = HTTP_BODY_TIMEOUT_S;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&s->answered, &monotonic);
    pthread_condattr_destroy(&monotonic);
    snprintf(s->jobs_dir, sizeof s->jobs_dir, "%s/jobs", cfg->data_dir);
    snprintf(s->datasets_dir, sizeof s->datasets_dir, "%s/datasets", cfg->data_dir);
    snprintf(s->tmp_dir, sizeof s->tmp_dir, "%s/tmp", cfg->data_dir);
    snprintf(s->inputs_dir, sizeof s->inputs_dir, "%s/inputs", cfg->data_dir);
    int rc = make_dir(s->datasets_dir, err);
    if (!rc) rc = make_dir(s->tmp_dir, err);
    if (!rc) rc = make_dir(s->inputs_dir, err);
    if (!rc) rc = http_datasets_adopt(s, err);
    if (!rc) rc = http_conns_start(s, err);
    if (rc) {
        free(s);
        return rc;
    }
    /* No per-IP limit in MHD: http_conn.c answers over-cap clients 429. */
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, http_conn_accept, s, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_CONNECTION_LIMIT, http_conn_daemon_limit(&s->cfg), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)HTTP_CONNECTION_MEMORY, MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
        http_conn_notify, s, MHD_OPTION_END);
    if (!s->daemon) {
        http_conns_stop(s);
        http_conns_free(s);
        free(s);
        return cnet_fail(err, CNET_EIO, "cannot listen on %s:%d", cfg->listen, cfg->port);
    }
    *out = s;
    return 0;
}

int http_port(const http_server *s) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : -1;
}

void http_stop(http_server *s) {
    if (!s) return;
    s->stopping = 1;
    MHD_quiesce_daemon(s->daemon);
    /* stopping closes every connection: first let the generate requests,
     * which the stopping engines end at their next step, send their answer */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += HTTP_STOP_ANSWER_S;
    pthread_mutex_lock(&s->mu);
    while (s->generating && pthread_cond_timedwait(&s->answered, &s->mu, &until) == 0) {
    }
    pthread_mutex_unlock(&s->mu);
    http_conns_stop(s);
    MHD_stop_daemon(s->daemon);
    http_conns_free(s);
    pthread_cond_destroy(&s->answered);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
