/* libcurl requests with the Hub retry policy and credential rules
 * (see hub_http.h). */
#include "server/hub/hub_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "server/hub/hub_retry.h"

#define HUB_USER_AGENT "cnet/0.1; hf_hub/compatible"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_global(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static void default_sleep(void *ctx, double seconds) {
    double scaled = seconds * *(const double *)ctx;
    struct timespec ts = {(time_t)scaled, (long)((scaled - (double)(time_t)scaled) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int hub_client_init(hub_client *c, const char *endpoint, int need_token, cnet_error *err) {
    memset(c, 0, sizeof *c);
    pthread_once(&curl_once, curl_global);
    int rc = hub_endpoint_resolve(endpoint, c->endpoint, &c->plain_http, err);
    if (rc != 0) return rc;
    rc = hub_token_find(&c->token, c->token_source, sizeof c->token_source, err);
    if (rc != 0) return rc;
    if (!c->token && need_token) {
        return cnet_fail(err, CNET_EINVAL, "no Hugging Face token found: %s", HUB_TOKEN_HELP);
    }
    c->connect_timeout_s = HUB_CONNECT_TIMEOUT_S;
    c->low_speed_time_s = HUB_LOW_SPEED_TIME_S;
    c->sleep_scale = 1.0;
    const char *scale = getenv(HUB_SLEEP_SCALE_ENV);
    if (scale && *scale) {
        char *end;
        double s = strtod(scale, &end);
        if (*end || s < 0 || s > 1) {
            hub_token_free(c->token);
            c->token = NULL;
            return cnet_fail(err, CNET_EINVAL, "%s must be a number in [0, 1], got '%.50s'",
                             HUB_SLEEP_SCALE_ENV, scale);
        }
        c->sleep_scale = s;
    }
    c->sleep = default_sleep;
    c->sleep_ctx = &c->sleep_scale;
    c->curl = curl_easy_init();
    if (!c->curl) {
        hub_token_free(c->token);
        c->token = NULL;
        return cnet_fail(err, CNET_ENOMEM, "curl_easy_init failed");
    }
    return 0;
}

void hub_client_free(hub_client *c) {
    if (c->curl) curl_easy_cleanup(c->curl);
    hub_token_free(c->token);
    c->token = NULL;
    c->curl = NULL;
}

void hub_client_sleep(hub_client *c, double seconds) {
    c->stats.slept_s += seconds;
    c->sleep(c->sleep_ctx, seconds);
}

void hub_client_log(hub_client *c, const char *fmt, ...) {
    if (!c->log) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    hub_redact(line);
    c->log(c->log_ctx, line);
}

int hub_url(const hub_client *c, char *out, size_t cap, const char *fmt, ...) {
    int n = snprintf(out, cap, "%s", c->endpoint);
    if (n < 0 || (size_t)n >= cap) return -1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(out + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return m < 0 || (size_t)m >= cap - (size_t)n ? -1 : 0;
}

void hub_request_init(hub_request *r, const char *method, const char *url, const char *what) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->url = url;
    r->what = what;
    r->body_fd = -1;
    r->sink_fd = -1;
}

void hub_request_init_json(hub_request *r, const char *method, const char *url, const char *what,
                           const char *json) {
    hub_request_init(r, method, url, what);
    r->auth = 1;
    r->retry = 1;
    r->content_type = "application/json";
    r->body = json;
    r->body_len = strlen(json);
}

void hub_response_free(hub_response *r) {
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

const char *hub_response_header(const hub_response *r, const char *name, char *buf, size_t cap) {
    size_t nlen = strlen(name);
    const char *p = r->headers;
    if (!p || cap == 0) return NULL;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *end = p + len;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t')) end--;
            size_t vlen = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        if (!eol) break;
        p = eol + 1;
    }
    return NULL;
}

/* ---- one attempt ---- */

typedef struct growbuf {
    char *data;
    size_t len, cap, max;
    int over;
} growbuf;

static int growbuf_add(growbuf *b, const char *p, size_t n) {
    if (b->len + n > b->max) {
        b->over = 1;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

typedef struct xfer {
    const hub_request *req;
    CURL *curl;
    growbuf body, hdr;
    long long read_pos;   /* file body: bytes handed to curl */
    long long sink_start; /* sink: offset this attempt resumes from */
    long long sink_added; /* sink: bytes this attempt wrote */
    int sink_mode;        /* 0 undecided, 1 into the file, 2 into body (error) */
    int sink_errno;       /* write error on the sink */
    int range_mismatch;   /* a 206 that does not start where we asked */
    int stopped;          /* req->on_sink asked to stop */
} xfer;

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) x->hdr.len = 0; /* a new response */
    if (growbuf_add(&x->hdr, p, len) != 0) return 0;
    return len;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Decides where the body of a sink request goes, once the status is known. */
static int sink_decide(xfer *x) {
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    int fd = x->req->sink_fd;
    if (status == 206) {
        char v[128];
        hub_response tmp = {.headers = x->hdr.data};
        long long start = -1;
        if (hub_response_header(&tmp, "Content-Range", v, sizeof v))
            sscanf(v, "bytes %lld-", &start);
        if (start != x->sink_start) {
            /* Never splice a wrong range onto the prefix: drop the prefix. */
            x->range_mismatch = 1;
            if (ftruncate(fd, 0) != 0) x->sink_errno = errno;
            return -1;
        }
        x->sink_mode = 1;
    } else if (status == 200) {
        /* The server ignored Range: start over from the first byte. */
        if (x->sink_start > 0 && (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)) {
            x->sink_errno = errno;
            return -1;
        }
        x->sink_start = 0;
        x->sink_mode = 1;
    } else {
        x->sink_mode = 2;
    }
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = size * n;
    if (x->req->sink_fd >= 0) {
        if (x->sink_mode == 0 && sink_decide(x) != 0) return 0;
        if (x->sink_mode == 1) {
            if (write_all(x->req->sink_fd, p, len) != 0) {
                x->sink_errno = errno;
                return 0;
            }
            x->sink_added += (long long)len;
            return len;
        }
    }
    return growbuf_add(&x->body, p, len) == 0 ? len : 0;
}

/* libcurl's progress callback: req->on_sink's report and stop. */
static int on_xfer(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow) {
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    xfer *x = ud;
    if (x->sink_mode != 2)
        x->stopped = x->req->on_sink(x->req->on_sink_ctx, x->sink_start + x->sink_added) != 0;
    return x->stopped;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud) {
    xfer *x = ud;
    long long left = x->req->body_len_file - x->read_pos;
    size_t want = size * n;
    if (left <= 0) return 0;
    if ((long long)want > left) want = (size_t)left;
    ssize_t r;
    do r = pread(x->req->body_fd, buf, want, x->req->body_off + x->read_pos);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return CURL_READFUNC_ABORT; /* the file shrank or failed: do not send junk */
    x->read_pos += r;
    return (size_t)r;
}

static int on_seek(void *ud, curl_off_t offset, int origin) {
    xfer *x = ud;
    if (origin != SEEK_SET || offset < 0 || offset > x->req->body_len_file)
        return CURL_SEEKFUNC_CANTSEEK;
    x->read_pos = offset;
    return CURL_SEEKFUNC_OK;
}

static int same_origin(const char *endpoint, const char *url) {
    size_t n = strlen(endpoint);
    return strncmp(endpoint, url, n) == 0 && (url[n] == '/' || url[n] == '\0' || url[n] == '?');
}

static int retryable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* Builds the header list; the Authorization line is the only copy of the
 * token outside the client, freed (and wiped) right after the attempt. */
static struct curl_slist *build_headers(const hub_client *c, const hub_request *req,
                                        long long range_from, char **auth_line) {
    struct curl_slist *h = NULL, *t;
    char line[256];
    *auth_line = NULL;
    h = curl_slist_append(h, "Expect:");
    if (h && req->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
        h = (t = curl_slist_append(h, line)) ? t : (curl_slist_free_all(h), NULL);
    }
    if (h && req->accept) {
        snprintf(line, sizeof line, "Accept: %s", req->accept);
        h = (t = curl_slist_append(h, line)) ? t : (curl_slist_free_all(h), NULL);
    }
    if (h && range_from > 0) {
        snprintf(line, sizeof line, "Range: bytes=%lld-", range_from);
        h = (t = curl_slist_append(h, line)) ? t : (curl_slist_free_all(h), NULL);
    }
    for (const char *const *e = req->headers; h && e && *e; e++)
        h = (t = curl_slist_append(h, *e)) ? t : (curl_slist_free_all(h), NULL);
    if (h && req->auth && c->token && same_origin(c->endpoint, req->url)) {
        size_t n = strlen(c->token) + 32;
        *auth_line = malloc(n);
        if (!*auth_line) {
            curl_slist_free_all(h);
            return NULL;
        }
        snprintf(*auth_line, n, "Authorization: Bearer %s", c->token);
        h = (t = curl_slist_append(h, *auth_line)) ? t : (curl_slist_free_all(h), NULL);
    }
    return h;
}

static void wipe_headers(struct curl_slist *h, char *auth_line) {
    for (struct curl_slist *p = h; p; p = p->next)
        if (strncasecmp(p->data, "Authorization:", 14) == 0)
            OPENSSL_cleanse(p->data, strlen(p->data));
    curl_slist_free_all(h);
    if (auth_line) {
        OPENSSL_cleanse(auth_line, strlen(auth_line));
        free(auth_line);
    }
}

/* One attempt. Returns the CURLcode; fills x (body, headers). */
static CURLcode attempt(hub_client *c, const hub_request *req, xfer *x, char *errbuf) {
    CURL *curl = c->curl;
    curl_easy_reset(curl);
    x->curl = curl;
    x->sink_start = 0;
    x->sink_added = 0;
    if (req->sink_fd >= 0) {
        off_t end = lseek(req->sink_fd, 0, SEEK_END);
        x->sink_start = end > 0 ? (long long)end : 0;
    }
    char *auth_line;
    struct curl_slist *headers = build_headers(c, req, x->sink_start, &auth_line);
    if (!headers) return CURLE_OUT_OF_MEMORY;
    const char *protocols = c->plain_http ? "http,https" : "https";
    errbuf[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
    if (req->sink_fd >= 0 && req->on_sink) {
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_xfer);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    }
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, HUB_USER_AGENT);
    /* libcurl silently resends a request once when a reused connection turns
     * out dead; for a request that must not repeat, use a fresh connection. */
    curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, req->retry ? 0L : 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, x);
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (req->body_fd >= 0) {
        x->read_pos = 0;
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, x);
        curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(curl, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len_file);
        if (strcmp(req->method, "PUT") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (req->body || strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
    }
    c->stats.requests++;
    CURLcode rc = curl_easy_perform(curl);
    /* Drop every pointer into this attempt's buffers before freeing them. */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    wipe_headers(headers, auth_line);
    return rc;
}

/* "POST https://host/path" without the query string (pre-signed URLs carry
 * their signature there). */
static void url_for_message(const char *url, char *out, size_t cap) {
    size_t n = strcspn(url, "?#");
    snprintf(out, cap, "%.*s", (int)(n < 300 ? n : 300), url);
}

int hub_http_do(hub_client *c, const hub_request *req, hub_response *resp, cnet_error *err) {
    memset(resp, 0, sizeof *resp);
    char errbuf[CURL_ERROR_SIZE], where[512];
    url_for_message(req->url, where, sizeof where);
    if (strlen(req->url) >= HUB_URL_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: URL longer than %d characters", req->what,
                         HUB_URL_MAX);
    for (int attempt_no = 0;; attempt_no++) {
        xfer x = {.req = req};
        x.body.max = (size_t)HUB_RESPONSE_MAX;
        x.hdr.max = (size_t)HUB_HEADERS_MAX;
        CURLcode rc = attempt(c, req, &x, errbuf);
        long status = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        char reason[512];
        int transient;
        if (rc == CURLE_OK) {
            transient = hub_retry_status(status, x.body.data);
            snprintf(reason, sizeof reason, "HTTP %ld", status);
        } else if (x.stopped) {
            free(x.body.data), free(x.hdr.data);
            return cnet_fail(err, CNET_EIO, "%s: stopped", req->what);
        } else if (x.sink_errno && !x.range_mismatch) {
            free(x.body.data), free(x.hdr.data);
            return cnet_fail(err, CNET_EIO, "%s: writing the download failed: %s", req->what,
                             strerror(x.sink_errno));
        } else if (x.range_mismatch) {
            free(x.body.data), free(x.hdr.data);
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: %s answered a Range request with a different range; the "
                             "partial download was discarded",
                             req->what, where);
        } else if (x.body.over || x.hdr.over) {
            free(x.body.data), free(x.hdr.data);
            return cnet_fail(err, CNET_ELIMIT, "%s: response from %s larger than %ld bytes",
                             req->what, where, x.body.over ? HUB_RESPONSE_MAX : HUB_HEADERS_MAX);
        } else {
            transient = retryable_curl(rc);
            snprintf(reason, sizeof reason, "%s%s%s", curl_easy_strerror(rc), errbuf[0] ? ": " : "",
                     errbuf);
        }
        if (!transient || !req->retry || attempt_no == HUB_MAX_RETRIES) {
            if (rc != CURLE_OK) {
                free(x.body.data), free(x.hdr.data);
                if (transient && req->retry)
                    return cnet_fail(err, CNET_EIO, "%s: %s %s failed after %d retries: %s",
                                     req->what, req->method, where, HUB_MAX_RETRIES, reason);
                return cnet_fail(err, CNET_EIO, "%s: %s %s failed: %s", req->what, req->method,
                                 where, reason);
            }
            resp->status = status;
            resp->body = x.body.data ? x.body.data : calloc(1, 1);
            resp->body_len = x.body.len;
            resp->headers = x.hdr.data ? x.hdr.data : calloc(1, 1);
            resp->headers_len = x.hdr.len;
            if (req->sink_fd >= 0) {
                off_t end = lseek(req->sink_fd, 0, SEEK_END);
                resp->sink_bytes = end > 0 ? (long long)end : 0;
            }
            if (!resp->body || !resp->headers) {
                hub_response_free(resp);
                return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", req->what);
            }
            if (status / 100 == 2 && req->body_fd >= 0)
                c->stats.bytes_uploaded += req->body_len_file;
            return 0;
        }
        char retry_after[64], ratelimit[256], request_id[128];
        hub_response tmp = {.headers = x.hdr.data};
        const char *ra = rc == CURLE_OK ? hub_response_header(&tmp, "Retry-After", retry_after,
                                                              sizeof retry_after)
                                        : NULL;
        const char *rl = rc == CURLE_OK
                             ? hub_response_header(&tmp, "RateLimit", ratelimit, sizeof ratelimit)
                             : NULL;
        const char *id = rc == CURLE_OK ? hub_response_header(&tmp, "X-Request-Id", request_id,
                                                              sizeof request_id)
                                        : NULL;
        double delay = hub_retry_delay(attempt_no, status, ra, rl);
        hub_client_log(c, "%s: %s %s: %s%s%s; retry %d/%d in %.1f s", req->what, req->method, where,
                       reason, id ? ", request id " : "", id ? id : "", attempt_no + 1,
                       HUB_MAX_RETRIES, delay);
        free(x.body.data), free(x.hdr.data);
        c->stats.retries++;
        hub_client_sleep(c, delay);
    }
}

/* The human part of a Hub error: X-Error-Message, else the JSON body's
 * "error" (string or list), "error_description" or "errors"[0].message. */
static void error_text(const hub_response *r, char *out, size_t cap) {
    out[0] = '\0';
    if (hub_response_header(r, "X-Error-Message", out, cap)) return;
    json_t *j = r->body && r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *s = NULL;
    if (json_is_object(j)) {
        json_t *e = json_object_get(j, "error");
        json_t *d = json_object_get(j, "error_description");
        json_t *es = json_object_get(j, "errors");
        if (json_is_string(d))
            s = json_string_value(d);
        else if (json_is_string(e))
            s = json_string_value(e);
        else if (json_is_array(e) && json_is_string(json_array_get(e, 0)))
            s = json_string_value(json_array_get(e, 0));
        else if (json_is_array(es))
            s = json_string_value(json_object_get(json_array_get(es, 0), "message"));
    }
    if (s)
        snprintf(out, cap, "%s", s);
    else if (!j && r->body && r->body_len)
        snprintf(out, cap, "%.200s", r->body);
    json_decref(j);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
}

int hub_http_status_fail(const hub_client *c, const hub_request *req, const hub_response *resp,
                         cnet_error *err) {
    char where[512], text[512], code[128], id[128], hint[640] = "";
    url_for_message(req->url, where, sizeof where);
    error_text(resp, text, sizeof text);
    if (!hub_response_header(resp, "X-Error-Code", code, sizeof code)) code[0] = '\0';
    if (!hub_response_header(resp, "X-Request-Id", id, sizeof id) &&
        !hub_response_header(resp, "X-Amzn-Trace-Id", id, sizeof id))
        id[0] = '\0';
    if (resp->status == 401 || resp->status == 403) {
        if (c->token && req->auth)
            snprintf(hint, sizeof hint, " (token from %s%s)", c->token_source,
                     resp->status == 403 ? "; it may lack write permission for this repo" : "");
        else if (!c->token)
            snprintf(hint, sizeof hint, " (no token was sent: %s)", HUB_TOKEN_HELP);
    }
    int rc = resp->status == 404                                                 ? CNET_ENOTFOUND
             : resp->status == 401 || resp->status == 403 || resp->status == 400 ? CNET_EINVAL
             : resp->status == 413                                               ? CNET_ELIMIT
                                                                                 : CNET_EIO;
    cnet_fail(err, rc, "%s: %s %s: HTTP %ld%s%s%s%s%s%s%s%s", req->what, req->method, where,
              resp->status, code[0] ? " " : "", code, text[0] ? ": " : "", text, hint,
              id[0] ? " [request id " : "", id, id[0] ? "]" : "");
    if (err) hub_redact(err->msg);
    return rc;
}

int hub_http_expect(hub_client *c, const hub_request *req, hub_response *resp, cnet_error *err) {
    int rc = hub_http_do(c, req, resp, err);
    if (rc != 0) return rc;
    if (resp->status / 100 == 2) return 0;
    rc = hub_http_status_fail(c, req, resp, err);
    hub_response_free(resp);
    return rc;
}
