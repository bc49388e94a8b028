/* What the http_*.c modules share: the server and request structs, the
 * route table's shape and the reply helpers. Not an interface for other
 * subsystems (server/http/http.h is). */
#ifndef CNET_HTTP_INTERNAL_H
#define CNET_HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>

#include "api/api.h"
#include "server/http/http.h"
#include "server/store/jobs_datasets.h"

#define HTTP_DISCARD_MAX                                                                           \
    (1 << 20) /* bytes a Content-Length may announce over the limit and still be read (and         \
                 dropped) before the 413; beyond that it is answered before reading. A chunked     \
                 body (no length) is dropped to its end, so its client sees the 413 too */
#define HTTP_STATUS_SLOTS 16 /* distinct statuses counted per route */
#define HTTP_ROUTES_MAX 40   /* rows of the route table (http_server.c asserts it) */
/* Seconds http_stop waits for generate requests to be answered (the
 * engines stop them at their next step) before it closes connections. */
#define HTTP_STOP_ANSWER_S 30
#define HTTP_BUSY_RETRY_AFTER_S 2 /* the Retry-After of a 429/503 over a connection cap */

typedef struct http_req http_req;
typedef enum MHD_Result (*http_handler)(http_server *s, struct MHD_Connection *c, http_req *r);

/* BODY_GENERATE: JSON or multipart/form-data up to API_GENERATE_BODY_MAX, in memory. */
typedef enum { BODY_NONE, BODY_JSON, BODY_FILE, BODY_GENERATE } http_body;

#define ROUTE_AUTH 1   /* bearer token required */
#define ROUTE_STREAM 2 /* an event stream: counted against --max-sse-streams */
#define ROUTE_HEAD 4   /* HEAD is answered as GET without the body */
/* An A1111 route (server/a1111/): errors also carry FastAPI's {"detail"},
 * and a missing token is challenged as Basic. */
#define ROUTE_A1111 8

typedef struct http_route {
    const char *method;
    const char *pattern; /* segments; "{}" matches one path segment */
    const char *name;    /* metrics label: "POST /v1/jobs/{id}/cancel" */
    http_handler handler;
    http_body body;
    int flags; /* ROUTE_* */
} http_route;

/* What a connection's read deadline bounds (http_conn.c). */
typedef enum { HTTP_PHASE_HEADERS, HTTP_PHASE_BODY, HTTP_PHASE_HANDLER } http_conn_phase;
typedef struct http_conn http_conn; /* one accepted connection (MHD's socket context) */

typedef struct http_conns {
    pthread_mutex_t mu; /* guards the list and every http_conn in it */
    pthread_cond_t wake;
    pthread_t watchdog;
    int watching;
    http_conn *head;
    uint64_t next_seq;
    char proxy[46]; /* the trusted proxy's address, "" when none */
} http_conns;

typedef struct status_count {
    int status;
    uint64_t n;
} status_count;

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg;
    jobs_store *store;
    char jobs_dir[4096], datasets_dir[4096], tmp_dir[4096], inputs_dir[4096];
    pthread_mutex_t mu; /* guards counts */
    status_count counts[HTTP_ROUTES_MAX + 1]
                       [HTTP_STATUS_SLOTS]; /* [route][slot]; last: unmatched */
    int64_t generate_held;   /* under mu: bytes held by generate requests (http_generate.c) */
    int generating;          /* under mu: generate requests not yet answered (http_stop waits) */
    pthread_cond_t answered; /* generating went down */
    http_conns conns;
    volatile int stopping;
};

#define HTTP_PARAMS_MAX 2

struct http_req {
    const http_route *route;
    int route_index;
    char id[68];                       /* X-Request-Id */
    char params[HTTP_PARAMS_MAX][256]; /* the "{}" segments, in order */
    uint64_t start_us;
    int64_t limit, received; /* body bytes allowed / seen */
    int over;                /* body went over the limit: answer 413 */
    char *body;              /* BODY_JSON: accumulated bytes */
    int fd;                  /* BODY_FILE: the temp file, -1 when none */
    int write_errno;         /* BODY_FILE: a write failed (the rest is dropped): 507 or 503 */
    char tmp_path[4200];
    int status;      /* the status queued, for the log */
    int generating;  /* counted in http_server.generating until its answer is sent */
    http_conn *conn; /* its connection (borrowed; NULL when out of memory) */
};

extern const http_route http_routes[];
extern const int http_n_routes;

/* A response of body (consumed) as compact JSON with its Content-Type;
 * NULL when out of memory. */
struct MHD_Response *http_json_response(json_t *body);

/* Replies (each counts the status for the route and sets X-Request-Id). */
enum MHD_Result http_reply_json(http_server *s, struct MHD_Connection *c, http_req *r, int status,
                                json_t *body /* stolen */);
enum MHD_Result http_reply_error(http_server *s, struct MHD_Connection *c, http_req *r, int status,
                                 const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
enum MHD_Result http_reply_api_error(http_server *s, struct MHD_Connection *c, http_req *r,
                                     const api_error *e);
/* Replies with a status for a store/library error code (404, 409, 429, 503...). */
enum MHD_Result http_reply_status_error(http_server *s, struct MHD_Connection *c, http_req *r,
                                        int code, const cnet_error *err);
enum MHD_Result http_reply_response(http_server *s, struct MHD_Connection *c, http_req *r,
                                    int status, struct MHD_Response *resp /* destroyed */);
void http_count(http_server *s, int route_index, int status);

/* Replies e (a 429 or 503) with Retry-After; close: and closes the
 * connection after it (a connection cap's answer). */
enum MHD_Result http_reply_busy(http_server *s, struct MHD_Connection *c, http_req *r,
                                const api_error *e, int retry_after_s, int close);

/* Connections (http_conn.c): the MHD accept policy and connection
 * notifications, admission of a request by the caps (0, or -1 with e filled:
 * 429 over the per-client cap, 503 over the request or stream cap, 400 for a
 * malformed X-Forwarded-For from the trusted proxy), and the read phase
 * whose deadline the watchdog enforces. */
enum MHD_Result http_conn_accept(void *cls, const struct sockaddr *addr, socklen_t len);
void http_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);
http_conn *http_conn_of(struct MHD_Connection *c);
int http_conn_admit(http_server *s, struct MHD_Connection *c, http_conn *k, int stream,
                    api_error *e);
/* received: body bytes so far (each extends the body deadline). */
void http_conn_set_phase(http_server *s, http_conn *k, http_conn_phase phase, int64_t received);
/* The daemon's own connection limit: every cap plus spares that are answered 503. */
unsigned http_conn_daemon_limit(const http_config *cfg);
int http_conns_start(http_server *s, cnet_error *err); /* parses --trusted-proxy; the watchdog */
void http_conns_stop(http_server *s);                  /* joins the watchdog */
void http_conns_free(http_server *s);                  /* after the daemon stopped */

/* Handlers. */
enum MHD_Result http_jobs_create(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_jobs_list(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_jobs_get(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_jobs_cancel(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_jobs_artifact(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_generate(http_server *s, struct MHD_Connection *c, http_req *r);
/* Another API's generate request run as POST /v1/generate's (one path: the
 * same validation, budget, admission and executor), in that API's shape. */
typedef struct http_gen_shape {
    /* body (as the client sent it) → a /v1/generate request (*req owned by
     * the caller); 0, or e filled naming the body's member */
    int (*translate)(const json_t *body, const api_roots *roots, json_t **req, api_error *e);
    /* the answer: images (base64 PNGs, stolen), the spec that made them and
     * their parameters text; NULL on OOM */
    json_t *(*render)(const json_t *body, const json_t *spec, json_t *images,
                      const char *parameters);
    /* an error of the generate request, renamed by what the body called it */
    void (*name_error)(const json_t *body, api_error *e);
} http_gen_shape;
enum MHD_Result http_generate_as(http_server *s, struct MHD_Connection *c, http_req *r,
                                 const http_gen_shape *shape);
/* POST /v1/preprocess and GET /v1/preprocessors (http_preprocess.c). */
enum MHD_Result http_preprocess(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_preprocessors(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_events(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_datasets_create(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_datasets_list(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_datasets_get(http_server *s, struct MHD_Connection *c, http_req *r);
/* At start: registers the datasets found on disk in the store, once per
 * store (data dirs from before the registry; jobs_dataset_adopt). */
int http_datasets_adopt(http_server *s, cnet_error *err);
/* Dataset id as the store has it, ready (*out owned: jobs_dataset_clear);
 * CNET_ENOTFOUND, naming why, when it is unknown or still uploading. */
int http_datasets_ready(http_server *s, const char *id, jobs_dataset *out, cnet_error *err);
enum MHD_Result http_datasets_delete(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_datasets_samples(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_datasets_sample(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_ops_healthz(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_ops_readyz(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_ops_metrics(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_ops_models(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_ops_openapi(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_static(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_txt2img(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_img2img(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_options(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_progress(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_samplers(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_sd_models(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_model_list(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_module_list(http_server *s, struct MHD_Connection *c, http_req *r);
enum MHD_Result http_a1111_detect(http_server *s, struct MHD_Connection *c, http_req *r);

/* Commits a validated job (Idempotency-Key, queue cap → 429) and answers
 * 202 with the job, or the error. hash: of the request, for the key check.
 * admit (NULL: none): a precondition of a new job returning JOBS_EADMIT
 * with a message that names its field (answered 400 on push_to_hub). */
enum MHD_Result http_jobs_enqueue(http_server *s, struct MHD_Connection *c, http_req *r,
                                  const char *kind, const char *spec_json, const char *hash,
                                  int (*admit)(void *ctx, cnet_error *err));

/* A multipart/form-data body as the JSON object of the same request: the
 * part named "image" becomes *image (malloc'd bytes), every other part a
 * member (api_generate_form_value). 400 naming the part when malformed. */
int http_form_parse(struct MHD_Connection *c, const char *body, size_t len, json_t **req,
                    unsigned char **image, size_t *image_len, api_error *e);

/* Bytes generate requests hold now (against cfg.generate_memory). */
int64_t http_generate_held(http_server *s);

/* Free bytes on the data dir's filesystem, or -1. */
int64_t http_disk_free(http_server *s);

#endif
