/* Connections to a real `cnet serve --port 0`, over raw sockets (so a test
 * controls every byte and its timing) and libcurl: a request line and
 * headers, or a body, sent one byte at a time are cut off once the whole
 * --header-timeout / --body-timeout has passed, though each byte comes well
 * inside MHD's idle timeout; over --max-connections-per-ip a client gets
 * 429 and over --max-connections 503, both with Retry-After, not a reset
 * (only past twice its cap is a client's connection closed unanswered);
 * event streams are counted apart (--max-sse-streams: an open stream does
 * not take a request's place, a stream over the cap gets 503) and a stream
 * whose client closed frees its place at once, not at the next heartbeat;
 * X-Forwarded-For names the client only when it comes from --trusted-proxy
 * (its rightmost entry); Content-Length headers that disagree, or come with
 * Transfer-Encoding, get 400; HEAD on the dashboard answers GET's headers
 * without the body.
 *
 * Deadlines in these tests are 2 s; a check allows generous slack above a
 * deadline (a loaded machine) and asserts nothing about speed otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define DEADLINE_S "2"     /* --header-timeout / --body-timeout of these servers */
#define DEADLINE_MS 2000   /* the same, in ms */
#define EARLY_MS 1500      /* closing before this is not the deadline's doing */
#define SLACK_MS 8000      /* a deadline's close may come this late on a loaded machine */
#define DRIP_MS 250        /* one byte this often: far inside MHD's 30 s idle timeout */
#define EVENTUALLY_MS 8000 /* how long a released place may take to be seen free */
#define FDS_MAX 16

static char dir[512], dataset_dir[700], models[700];
static test_server srv;
static int n_servers;
static int fds[FDS_MAX], n_fds; /* raw sockets of the running test, closed after it */
static const char *const T = SERVER_TEST_TOKEN;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A connected socket to the server (registered for closing), or -1. */
static int sock_open(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || n_fds == FDS_MAX) {
        if (fd >= 0) close(fd);
        return -1;
    }
    fds[n_fds++] = fd;
    return fd;
}

static void sock_close(int fd) {
    for (int i = 0; i < n_fds; i++)
        if (fds[i] == fd) fds[i] = fds[--n_fds];
    close(fd);
}

static int sock_send(int fd, const char *text) {
    size_t n = strlen(text);
    return send(fd, text, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Reads into buf until `until` appears (NULL: until the peer closes) or
 * timeout_ms passes; returns the bytes read. */
static size_t sock_read(int fd, char *buf, size_t size, const char *until, int timeout_ms) {
    size_t len = 0;
    buf[0] = '\0';
    for (long end = now_ms() + timeout_ms; now_ms() < end && len + 1 < size;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
        if (until && strstr(buf, until)) break;
    }
    return len;
}

/* The status of the response in buf, or -1. */
static int status_of(const char *buf) {
    int status = -1;
    return sscanf(buf, "HTTP/1.%*d %d", &status) == 1 ? status : -1;
}

/* Sends `drip` one byte every DRIP_MS until the server closes the socket;
 * returns the ms that took, or -1 if it was still open after limit_ms. */
static long drip_until_closed(int fd, const char *drip, int limit_ms) {
    long start = now_ms();
    for (size_t i = 0; now_ms() - start < limit_ms; i++) {
        char b[2] = {drip[i % strlen(drip)], 0};
        if (sock_send(fd, b) != 0) return now_ms() - start;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, DRIP_MS) > 0) {
            char buf[512];
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN)) return now_ms() - start;
        }
    }
    return -1;
}

/* One request over libcurl; its status, and the JSON error code into code. */
static long request(const char *path, const char *header, char code[64], char retry[16]) {
    const char *const h[] = {header, NULL};
    http_resp r;
    http_do(&srv, "GET", path, T, header ? h : NULL, NULL, 0, 0, &r);
    json_t *v = r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(json_object_get(v, "error"), "code"));
    if (code) snprintf(code, 64, "%s", c ? c : "");
    if (retry && http_header(&r, "Retry-After", retry, 16) != 0) retry[0] = '\0';
    json_decref(v);
    long status = r.status;
    http_resp_free(&r);
    return status;
}

/* Polls path until it answers want; the ms that took, or -1 after EVENTUALLY_MS. */
static long eventually(const char *path, long want) {
    long start = now_ms();
    do {
        if (request(path, NULL, NULL, NULL) == want) return now_ms() - start;
        usleep(50000);
    } while (now_ms() - start < EVENTUALLY_MS);
    return -1;
}

/* Starts a server with args, runs body, stops the server and closes the
 * sockets body left open (a failed CHECK returns early). */
static void run_with(const char *const *args, void (*body)(void)) {
    char data[700];
    snprintf(data, sizeof data, "%s/data-%d", dir, ++n_servers);
    mkdir(data, 0700);
    if (server_start(&srv, data, args)) {
        printf("    cannot start cnet serve\n");
        harness_current_failed = 1;
        return;
    }
    body();
    while (n_fds) sock_close(fds[0]);
    server_stop(&srv, SIGTERM, 10000);
}

static void header_trickle(void) {
    int fd = sock_open();
    CHECK(fd >= 0 && sock_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") == 0, "connect");
    long took = drip_until_closed(fd, "abcdef", DEADLINE_MS + SLACK_MS + 4000);
    CHECK(took >= EARLY_MS && took <= DEADLINE_MS + SLACK_MS,
          "headers sent a byte per %d ms: closed after %ld ms (-1: never), deadline %d ms", DRIP_MS,
          took, DEADLINE_MS);
    CHECK(request("/healthz", NULL, NULL, NULL) == 200, "others are still served");
}

static void test_conn_header_deadline(void) {
    const char *const args[] = {"--header-timeout", DEADLINE_S, NULL};
    run_with(args, header_trickle);
}

static void body_trickle(void) {
    int fd = sock_open();
    char head[400];
    snprintf(head, sizeof head,
             "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n",
             T);
    CHECK(fd >= 0 && sock_send(fd, head) == 0, "connect");
    long took = drip_until_closed(fd, "{\"a\": 1} ", DEADLINE_MS + SLACK_MS + 4000);
    CHECK(took >= EARLY_MS && took <= DEADLINE_MS + SLACK_MS,
          "a body sent a byte per %d ms: closed after %ld ms (-1: never), deadline %d ms", DRIP_MS,
          took, DEADLINE_MS);
}

static void test_conn_body_deadline(void) {
    const char *const args[] = {"--body-timeout", DEADLINE_S, NULL};
    run_with(args, body_trickle);
}

static void per_ip_cap(void) {
    int a = sock_open(), b = sock_open();
    CHECK(a >= 0 && b >= 0, "connect");
    char code[64], retry[16];
    long status = request("/healthz", NULL, code, retry);
    CHECK(status == 429 && !strcmp(code, "too_many_connections") && atoi(retry) > 0,
          "a third connection of a client capped at 2: %ld %s, Retry-After '%s'", status, code,
          retry);
    sock_close(a);
    CHECK(eventually("/healthz", 200) >= 0, "a closed connection frees its place");
    /* Past twice the cap the server does not spend a thread: refused at accept. */
    for (int i = 0; i < 3; i++) CHECK(sock_open() >= 0, "connect %d", i);
    int over = sock_open();
    char buf[256];
    CHECK(over >= 0 && sock_send(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == 0, "connect");
    size_t n = sock_read(over, buf, sizeof buf, NULL, 10000);
    CHECK(n == 0, "a fifth connection of a client capped at 2 is closed unanswered: %s", buf);
}

static void test_conn_per_ip_cap_answers_429(void) {
    const char *const args[] = {"--max-connections-per-ip", "2", NULL};
    run_with(args, per_ip_cap);
}

static void request_cap(void) {
    int a = sock_open(), b = sock_open();
    CHECK(a >= 0 && b >= 0, "connect");
    char code[64], retry[16];
    long status = request("/healthz", NULL, code, retry);
    CHECK(status == 503 && !strcmp(code, "too_many_connections") && atoi(retry) > 0,
          "a third connection to a server capped at 2: %ld %s, Retry-After '%s'", status, code,
          retry);
    sock_close(b);
    CHECK(eventually("/healthz", 200) >= 0, "a closed connection frees its place");
}

static void test_conn_request_cap_answers_503(void) {
    const char *const args[] = {"--max-connections", "2", "--max-connections-per-ip", "10", NULL};
    run_with(args, request_cap);
}

/* Opens GET /v1/jobs/{id}/events on a raw socket; the status it got (the
 * socket stays open in *fd; what was read is in buf). */
static int open_stream(const char *id, int *fd, char buf[2048]) {
    char req[400];
    snprintf(req, sizeof req,
             "GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", id,
             T);
    *fd = sock_open();
    if (*fd < 0 || sock_send(*fd, req) != 0) return -1;
    sock_read(*fd, buf, 2048, "\r\n\r\n", 10000);
    return status_of(buf);
}

static void sse_streams(void) {
    char body[1000], id[64] = "";
    snprintf(body, sizeof body, "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"}",
             dataset_dir);
    http_resp r;
    http_do(&srv, "POST", "/v1/jobs", T, NULL, body, strlen(body), 0, &r);
    json_t *v = json_loadb(r.body, r.len, 0, NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(v, "id")) ?: "");
    json_decref(v);
    long created = r.status;
    http_resp_free(&r);
    CHECK(created == 202 && id[0], "create a job (stays queued): %ld", created);
    int a, b, c;
    char buf[2048];
    CHECK(open_stream(id, &a, buf) == 200, "the first stream");
    CHECK(eventually("/healthz", 200) >= 0,
          "an open stream does not take the one request connection's place");
    int status = open_stream(id, &b, buf);
    if (!strstr(buf, "}")) sock_read(b, buf + strlen(buf), sizeof buf - strlen(buf), "}", 5000);
    CHECK(status == 503 && strstr(buf, "too_many_streams") && strcasestr(buf, "\r\nRetry-After:") &&
              strcasestr(buf, "\r\nConnection: close\r\n"),
          "a second stream over --max-sse-streams 1: %d %s", status, buf);
    sock_close(b);
    sock_close(a);
    long start = now_ms(), took = -1;
    while (took < 0 && now_ms() - start < EVENTUALLY_MS) {
        status = open_stream(id, &c, buf);
        sock_close(c);
        if (status == 200)
            took = now_ms() - start;
        else
            usleep(50000);
    }
    CHECK(took >= 0, "a closed stream frees its place long before its 3600 s heartbeat");
}

static void test_conn_sse_streams_counted_apart(void) {
    const char *const args[] = {"--max-connections",
                                "1",
                                "--max-sse-streams",
                                "1",
                                "--sse-heartbeat",
                                "3600",
                                "--models",
                                models,
                                "--data-root",
                                dir,
                                NULL};
    run_with(args, sse_streams);
}

/* Holds a connection whose request came with X-Forwarded-For: xff: its
 * headers are in (the server answered 100 Continue), its body is not. */
static int hold_forwarded(const char *xff) {
    char req[600], buf[512];
    snprintf(req, sizeof req,
             "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "X-Forwarded-For: %s\r\nContent-Type: application/json\r\nContent-Length: 10\r\n"
             "Expect: 100-continue\r\n\r\n",
             T, xff);
    int fd = sock_open();
    if (fd < 0 || sock_send(fd, req) != 0) return -1;
    sock_read(fd, buf, sizeof buf, "\r\n\r\n", 10000);
    return status_of(buf) == 100 ? fd : -1;
}

static long forwarded(const char *xff, char code[64]) {
    char h[200];
    snprintf(h, sizeof h, "X-Forwarded-For: %s", xff);
    return request("/healthz", h, code, NULL);
}

static void trusted_proxy(void) {
    CHECK(hold_forwarded("10.0.0.1") >= 0, "hold a connection for 10.0.0.1");
    char code[64];
    long st = forwarded("10.0.0.1", code);
    CHECK(st == 429 && !strcmp(code, "too_many_connections"), "10.0.0.1 again: %ld %s", st, code);
    CHECK((st = forwarded("10.0.0.2", code)) == 200, "another client behind the proxy: %ld", st);
    CHECK((st = forwarded("10.0.0.2, 10.0.0.1", code)) == 429,
          "the rightmost entry is the client the proxy saw: %ld", st);
    CHECK((st = forwarded("10.0.0.1, 10.0.0.2", code)) == 200,
          "entries left of it are the client's own claims: %ld", st);
    st = forwarded("not-an-address", code);
    CHECK(st == 400 && !strcmp(code, "invalid_header"), "a malformed entry: %ld %s", st, code);
}

static void test_conn_trusted_proxy_forwarded_for(void) {
    const char *const args[] = {"--trusted-proxy", "127.0.0.1", "--max-connections-per-ip", "1",
                                NULL};
    run_with(args, trusted_proxy);
}

static void untrusted_forwarded(void) {
    CHECK(hold_forwarded("10.0.0.1") >= 0, "hold a connection");
    char code[64];
    long st = forwarded("10.0.0.2", code);
    CHECK(st == 429, "without --trusted-proxy X-Forwarded-For is ignored: %ld %s", st, code);
}

static void test_conn_forwarded_for_ignored_without_trust(void) {
    const char *const args[] = {"--max-connections-per-ip", "1", NULL};
    run_with(args, untrusted_forwarded);
}

/* A request sent raw; the status of the first response. */
static int raw_status(const char *req, char *buf, size_t size) {
    int fd = sock_open();
    if (fd < 0 || sock_send(fd, req) != 0) return -1;
    sock_read(fd, buf, size, NULL, 10000);
    sock_close(fd);
    return status_of(buf);
}

static void framing(void) {
    char buf[4096];
    const char *auth = "Authorization: Bearer " SERVER_TEST_TOKEN "\r\n";
    char req[600];
    /* First-wins would read no body and answer the unknown job: 404. */
    snprintf(req, sizeof req,
             "POST /v1/jobs/nope/cancel HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n"
             "Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
             auth);
    int st = raw_status(req, buf, sizeof buf);
    CHECK(st == 400 && strstr(buf, "Content-Length headers disagree"), "conflicting: %d %s", st,
          buf);
    snprintf(req, sizeof req,
             "POST /v1/jobs/nope/cancel HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n"
             "Content-Length: 0\r\nContent-Length: 0\r\n\r\n",
             auth);
    CHECK((st = raw_status(req, buf, sizeof buf)) == 404, "equal duplicates are one: %d %s", st,
          buf);
    snprintf(req, sizeof req,
             "POST /v1/jobs/nope/cancel HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n"
             "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             auth);
    st = raw_status(req, buf, sizeof buf);
    CHECK(st == 400 && strstr(buf, "both Content-Length and Transfer-Encoding"),
          "Content-Length with Transfer-Encoding: %d %s", st, buf);
}

static void test_conn_content_length_conflicts_400(void) {
    const char *const args[] = {NULL};
    run_with(args, framing);
}

static void head_static(void) {
    http_resp g;
    http_do(&srv, "GET", "/", NULL, NULL, NULL, 0, 0, &g);
    char etag[128] = "", type[128] = "";
    http_header(&g, "ETag", etag, sizeof etag);
    http_header(&g, "Content-Type", type, sizeof type);
    long get_status = g.status;
    size_t get_len = g.len;
    http_resp_free(&g);
    CHECK(get_status == 200 && get_len > 0 && etag[0], "GET /: %ld, %zu bytes", get_status,
          get_len);
    char buf[8192];
    int st = raw_status("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    const char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "\r\nContent-Length:");
    CHECK(st == 200 && end, "HEAD /: %d %s", st, buf);
    CHECK(end[4] == '\0', "HEAD / sent %zu body bytes", strlen(end + 4));
    CHECK(cl && (size_t)atol(cl + 17) == get_len, "HEAD's Content-Length is GET's %zu: %s", get_len,
          buf);
    char want[300];
    snprintf(want, sizeof want, "\r\nETag: %s\r\n", etag);
    CHECK(strcasestr(buf, want), "HEAD's ETag is GET's %s", etag);
    snprintf(want, sizeof want, "\r\nContent-Type: %s\r\n", type);
    CHECK(strcasestr(buf, want), "HEAD's Content-Type is GET's %s", type);
    st = raw_status("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf,
                    sizeof buf);
    CHECK(st == 405, "HEAD on an API route stays 405: %d", st);
}

static void test_conn_head_on_static_files(void) {
    const char *const args[] = {NULL};
    run_with(args, head_static);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (tmpdir_make(dir, sizeof dir, "cnet-conn-")) return printf("no temp dir\n"), 1;
    snprintf(dataset_dir, sizeof dataset_dir, "%s/ds", dir);
    snprintf(models, sizeof models, "%s/models", dir);
    mkdir(dataset_dir, 0700);
    file_touch_json(models, "sd", "model_index.json");
    RUN(test_conn_header_deadline);
    RUN(test_conn_body_deadline);
    RUN(test_conn_per_ip_cap_answers_429);
    RUN(test_conn_request_cap_answers_503);
    RUN(test_conn_sse_streams_counted_apart);
    RUN(test_conn_trusted_proxy_forwarded_for);
    RUN(test_conn_forwarded_for_ignored_without_trust);
    RUN(test_conn_content_length_conflicts_400);
    RUN(test_conn_head_on_static_files);
    tmpdir_remove(dir);
    return harness_done();
}
