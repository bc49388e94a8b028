/* Starting `cnet serve` and talking to it with libcurl (see lib_server.h). */
#include "tests/lib/lib_server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/lib_store.h"

int server_start(test_server *s, const char *data, const char *const *extra) {
    memset(s, 0, sizeof *s);
    snprintf(s->data, sizeof s->data, "%s", data);
    /* With $CNET_TEST_STORE the server uses that PostgreSQL store; a data
     * dir without jobs yet gets an empty one, as it would get a new jobs.db. */
    const char *url = store_test_url();
    char jobs[600];
    struct stat st;
    snprintf(jobs, sizeof jobs, "%s/jobs", data);
    if (url && stat(jobs, &st) != 0 && store_test_reset(url) != 0) return -1;
    int out[2];
    if (pipe(out) != 0) return -1;
    const char *build = getenv("BUILD");
    char bin[512];
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    const char *argv[32] = {bin, "serve", "--port", "0", "--data", data};
    int n = 6;
    int device = 0, lease = 0;
    for (int i = 0; extra && extra[i] && n < 27; i++) { /* room for --device, --lease, NULL */
        device |= strcmp(extra[i], "--device") == 0;
        lease |= strcmp(extra[i], "--lease") == 0;
        argv[n++] = extra[i];
    }
    if (!device) argv[n++] = "--device", argv[n++] = "none";
    /* A restarted node of a shared store waits for its old leases to
     * expire (it cannot tell them from another node's): short ones keep
     * the restart tests within their waits. */
    if (url && !lease) argv[n++] = "--lease", argv[n++] = SERVER_TEST_PG_LEASE_S;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        setenv("CNET_TOKEN", SERVER_TEST_TOKEN, 1);
        if (url) setenv("CNET_STORE", url, 1);
        if (!getenv("CNET_TEST_VERBOSE") && !freopen("/dev/null", "w", stderr)) _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    s->pid = pid;
    FILE *f = fdopen(out[0], "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening on http://127.0.0.1:");
        if (p) {
            s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
            break;
        }
    }
    if (f) fclose(f);
    if (s->port <= 0) {
        server_stop(s, SIGKILL, 1000);
        return -1;
    }
    return 0;
}

int server_stop(test_server *s, int sig, int timeout_ms) {
    if (s->pid <= 0) return -1;
    kill(s->pid, sig);
    int status = 0;
    for (int t = 0; t < timeout_ms; t += 10) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return -1;
}

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    http_resp *r = user;
    size_t add = size * n;
    char *grown = realloc(r->body, r->len + add + 1);
    if (!grown) return 0;
    r->body = grown;
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *user) {
    http_resp *r = user;
    size_t used = strlen(r->headers), add = size * n;
    if (used + add < sizeof r->headers) {
        memcpy(r->headers + used, p, add);
        r->headers[used + add] = '\0';
    }
    return add;
}

typedef struct upload {
    const char *data;
    size_t len, off;
} upload;

static size_t on_read(char *buf, size_t size, size_t n, void *user) {
    upload *u = user;
    size_t want = size * n, left = u->len - u->off;
    if (want > left) want = left;
    if (want > 7000) want = 7000; /* several chunks */
    memcpy(buf, u->data + u->off, want);
    u->off += want;
    return want;
}

int http_do(const test_server *s, const char *method, const char *path, const char *token,
            const char *const *headers, const void *body, size_t len, int chunked, http_resp *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[1024], auth[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    for (int i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    upload u = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body || !strcmp(method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (chunked) {
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &u);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body) r->body = calloc(1, 1);
    return rc == CURLE_OK ? 0 : -1;
}

void http_resp_free(http_resp *r) {
    free(r->body);
    r->body = NULL;
}

int http_header(const http_resp *r, const char *name, char *out, size_t size) {
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= size) len = size - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return 0;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    return -1;
}

double test_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int run_quiet(const char *cmd) {
    static const char quiet[] = " >/dev/null 2>&1";
    char *full = malloc(strlen(cmd) + sizeof quiet);
    if (!full) return -1;
    strcpy(full, cmd);
    strcat(full, quiet);
    const int rc = system(full);
    free(full);
    return rc;
}

int png_same_pixels(const image_rgb8 *want, const void *png, size_t len, char *why, size_t cap) {
    image_rgb8 img = {0};
    cnet_error err = {0};
    if (image_decode(&img, png, len, "answer", 0, &err)) {
        snprintf(why, cap, "undecodable: %.150s", err.msg);
        return 0;
    }
    int same = img.width == want->width && img.height == want->height &&
               !memcmp(img.data, want->data, (size_t)img.width * img.height * 3);
    snprintf(why, cap, "%dx%d vs %dx%d, pixels %s", img.width, img.height, want->width,
             want->height, same ? "equal" : "differ");
    image_free(&img);
    return same;
}

int http_send_raw(const test_server *s, const char *method_path, const char *headers,
                  size_t content_length, const void *body, size_t sent) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    char head[1024];
    const int n = snprintf(head, sizeof head,
                           "%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n%s"
                           "Content-Length: %zu\r\n\r\n",
                           method_path, SERVER_TEST_TOKEN, headers, content_length);
    if (n >= (int)sizeof head || write(fd, head, (size_t)n) != n ||
        write(fd, body, sent) != (ssize_t)sent) {
        close(fd);
        return -1;
    }
    return fd;
}
