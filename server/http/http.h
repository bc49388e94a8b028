/* The HTTP service: libmicrohttpd serving the REST API of api/openapi.yaml
 * over the job store. The map header of the http subsystem; its modules:
 *   http_server.c    daemon, routing, auth, body limits, request ids, logging
 *   http_conn.c      connection caps (per client, requests, event streams) and read deadlines
 *   http_reply.c     the JSON/text replies and the per-route request counters
 *   http_jobs.c      POST/GET /v1/jobs, GET/cancel a job, artifacts
 *   http_events.c    GET /v1/jobs/{id}/events (Server-Sent Events)
 *   http_datasets.c  POST/GET /v1/datasets (upload streamed to disk)
 *   http_generate.c  POST /v1/generate (synchronous on an engine, or a job)
 *   http_form.c      multipart/form-data generate requests → the JSON form
 *   http_ops.c       /healthz, /readyz, /metrics, /v1/models, /v1/openapi.yaml
 *   http_static.c    / and the dashboard's files (server/http/web_assets.h)
 *
 * What it is not: it runs no job (server/workers/pool.h, server/workers/worker.h) and validates no
 * spec itself (api/). Threading: one MHD thread per connection, capped by the connection limits, so
 * a blocking SSE stream holds only its own thread. */
#ifndef CNET_HTTP_H
#define CNET_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "server/store/uploads.h"
#include "server/workers/worker.h"
#include "server/store/jobs.h"

#define HTTP_DEFAULT_PORT 8080
#define HTTP_CONNECTION_LIMIT 64 /* request connections; more → 503 (--max-connections) */
#define HTTP_PER_IP_LIMIT 8 /* connections per client; more → 429 (--max-connections-per-ip) */
#define HTTP_SSE_LIMIT 32   /* open event streams; more → 503 (--max-sse-streams) */
#define HTTP_CONNECTION_TIMEOUT_S 30 /* idle seconds before a connection is closed */
#define HTTP_HEADER_TIMEOUT_S 30     /* whole seconds to send a request line and headers */
#define HTTP_BODY_TIMEOUT_S 60 /* seconds to send a body, plus 1 per HTTP_BODY_MIN_RATE bytes */
#define HTTP_CONNECTION_MEMORY (64 * 1024) /* request line + headers per connection */
#define HTTP_QUEUE_CAP 64                  /* queued jobs; more → 429 */
#define HTTP_RETRY_AFTER_S 30              /* the Retry-After of a 429 */
#define HTTP_UPLOAD_MAX (2LL << 30)        /* bytes of a dataset archive; more → 413 */
#define HTTP_DISK_FLOOR (1LL << 30) /* free bytes in the data dir below which uploads → 507 */
#define HTTP_SSE_HEARTBEAT_S 15     /* comment line on an idle event stream */
#define HTTP_GENERATE_TIMEOUT_S 300 /* seconds a synchronous generate may run; then 504 */
/* Bytes synchronous and async generate requests may hold in the server at
 * once (their bodies and decoded control images); more → 503. */
#define HTTP_GENERATE_MEMORY (512LL << 20)

typedef struct http_config {
    const char *listen;     /* IPv4 address to bind */
    int port;               /* 0: an ephemeral port (http_port tells which) */
    const char *data_dir;   /* jobs, datasets, tmp, the token file */
    const char *models_dir; /* base models */
    const char *data_root;  /* NULL, or a folder datasets may be given as paths under */
    const char *token;      /* the bearer token (borrowed) */
    int queue_cap;
    int64_t upload_max;
    int64_t disk_floor;
    upload_limits dataset;
    int sse_heartbeat_s;
    double generate_timeout_s; /* a synchronous generate's deadline (--generate-timeout) */
    int64_t generate_memory;   /* --generate-memory: see HTTP_GENERATE_MEMORY */
    int max_connections, max_per_ip, max_sse; /* the caps above, as flags; 0: the default */
    int header_timeout_s, body_timeout_s;     /* the read deadlines above; 0: the default */
    const char *trusted_proxy; /* NULL, or the IPv4 address whose X-Forwarded-For is honoured */
    worker *const *engines;    /* the devices synchronous generates run on (borrowed); none: 503 */
    int n_engines;
} http_config;

typedef struct http_server http_server;

/* Starts serving; store is borrowed and must outlive the server. */
int http_start(http_server **out, const http_config *cfg, jobs_store *store, cnet_error *err);
int http_port(const http_server *s);
/* Stops accepting, ends event streams, waits for in-flight requests. */
void http_stop(http_server *s);

#endif
