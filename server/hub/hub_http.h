/* The HTTP layer under every Hub call: one libcurl easy handle per client,
 * the retry loop of hub_retry.h, and the credential rules.
 *
 * Rules kept here so no caller can get them wrong (RELIABILITY.md, secrets):
 * - the token goes only into "Authorization: Bearer" of requests that ask for
 *   it AND whose URL is on the endpoint's origin; never to pre-signed storage
 *   URLs; redirects are never followed by libcurl (callers decide, HUB.md §6);
 * - protocols restricted to https (plus http for an explicit loopback
 *   endpoint), CURLOPT_NOSIGNAL, connect and low-speed timeouts, verbose off;
 * - messages name the request, status, X-Error-Code, X-Error-Message and the
 *   request id, with query strings (signatures) dropped and hf_ tokens
 *   redacted.
 * Downloads stream into a file descriptor and resume with Range after a
 * dropped connection. Not thread-safe: one client per thread.
 *
 * CNET_HUB_SLEEP_SCALE (tests only): multiplies every retry sleep (e.g. 0.01
 * makes a fault test fast); production leaves it unset. */
#ifndef CNET_HUB_HTTP_H
#define CNET_HUB_HTTP_H

#include <stddef.h>

#include "engine/core/error.h"
#include "server/hub/hub_auth.h"

#define HUB_CONNECT_TIMEOUT_S 30L    /* TCP + TLS connect */
#define HUB_LOW_SPEED_TIME_S 60L     /* abort when below 1 byte/s for this long */
#define HUB_RESPONSE_MAX (64L << 20) /* largest response body kept in memory */
#define HUB_HEADERS_MAX (256L << 10) /* largest response header block kept */
#define HUB_URL_MAX 4096             /* characters in a request URL */
#define HUB_SLEEP_SCALE_ENV "CNET_HUB_SLEEP_SCALE"

typedef struct hub_stats {
    int requests;             /* attempts sent, retries included */
    int retries;              /* attempts repeated after a transient failure */
    double slept_s;           /* total retry sleep requested (before scaling) */
    long long bytes_uploaded; /* request body bytes of successful uploads */
} hub_stats;

/* Sleeps `seconds` (unscaled); tests may install their own to record waits. */
typedef void (*hub_sleep_fn)(void *ctx, double seconds);
/* One line of progress/diagnostics (retries); never contains the token. */
typedef void (*hub_log_fn)(void *ctx, const char *line);

typedef struct hub_client {
    char endpoint[HUB_ENDPOINT_MAX]; /* no trailing '/' */
    char *token;                     /* owned; NULL = anonymous */
    char token_source[512];          /* where the token came from, for messages */
    int plain_http;                  /* endpoint is http://loopback */
    long connect_timeout_s, low_speed_time_s;
    double sleep_scale; /* from CNET_HUB_SLEEP_SCALE, default 1 */
    hub_sleep_fn sleep;
    void *sleep_ctx;
    hub_log_fn log;
    void *log_ctx;
    hub_stats stats;
    void *curl; /* CURL *, owned */
} hub_client;

/* Sets up a client: endpoint (explicit or NULL → HF_ENDPOINT → default) and
 * the token (hub_auth.h). need_token makes a missing token an error whose
 * message says how to provide one. Free with hub_client_free. */
int hub_client_init(hub_client *c, const char *endpoint, int need_token, cnet_error *err);
void hub_client_free(hub_client *c);

typedef struct hub_request {
    const char *method; /* GET, HEAD, POST, PUT */
    const char *url;    /* absolute */
    const char *what;   /* for messages, e.g. "preupload to user/repo" */
    int auth;           /* send the token (only ever to the endpoint's origin) */
    int retry;          /* repeat transient failures (hub_retry.h) */
    const char *content_type, *accept;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or NULL */
    const char *body;           /* in-memory body, or NULL */
    size_t body_len;
    int body_fd; /* file body when >= 0: body_len_file bytes from body_off */
    long long body_off, body_len_file;
    int sink_fd; /* >= 0: write a 2xx body here, resuming with Range on retry */
    /* sink: called while the transfer runs (as bytes land, and about once a
     * second while none do) with the bytes in the sink file so far; nonzero
     * stops the download (no retry; hub_http_do fails saying it was
     * stopped, the prefix stays for a resume). NULL: none */
    int (*on_sink)(void *ctx, long long bytes);
    void *on_sink_ctx;
} hub_request;

/* Initialises a request with no body, no sink. */
void hub_request_init(hub_request *r, const char *method, const char *url, const char *what);
/* A JSON call to the Hub API: authorised, retried, body `json` (borrowed,
 * NUL-terminated). */
void hub_request_init_json(hub_request *r, const char *method, const char *url, const char *what,
                           const char *json);

typedef struct hub_response {
    long status; /* 0 when no response arrived */
    char *body;  /* owned, NUL-terminated (empty for sink downloads) */
    size_t body_len;
    char *headers; /* owned: the raw header block of the final response */
    size_t headers_len;
    long long sink_bytes; /* bytes in the sink file after the request */
} hub_response;

/* Performs the request with the retry policy. Returns 0 once a response
 * arrived (any status: check resp->status), or a negative code when none did
 * (connection failures beyond the retries, write errors to the sink). */
int hub_http_do(hub_client *c, const hub_request *req, hub_response *resp, cnet_error *err);

/* hub_http_do, and any non-2xx status becomes an error (hub_http_status_fail). */
int hub_http_expect(hub_client *c, const hub_request *req, hub_response *resp, cnet_error *err);

/* Fills err for a response with an unexpected status and returns its code:
 * 404 → CNET_ENOTFOUND, 401/403/400 → CNET_EINVAL, others → CNET_EIO. */
int hub_http_status_fail(const hub_client *c, const hub_request *req, const hub_response *resp,
                         cnet_error *err);

/* Copies the value of response header `name` (case-insensitive) into buf;
 * returns buf, or NULL when absent. */
const char *hub_response_header(const hub_response *r, const char *name, char *buf, size_t cap);

void hub_response_free(hub_response *r);

/* Writes endpoint + path (printf-style) into out; -1 when it does not fit. */
int hub_url(const hub_client *c, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sleeps through the client's sleep function (scaled). */
void hub_client_sleep(hub_client *c, double seconds);

/* Sends a line to the client's log function, if any (redacted). */
void hub_client_log(hub_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
