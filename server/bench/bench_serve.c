/* cnet bench --task serve [--model DIR] [--requests N] [--steps N] [--json]
 *
 * Synchronous POST /v1/generate throughput and latency of a real `cnet
 * serve` (this binary, started on 127.0.0.1 with a free port, a temp data
 * dir and one CPU engine), with 1, 4 and 16 concurrent libcurl clients. The
 * model is --model (a pipeline folder with controlnet/) or, by default, a
 * fresh `cnet init-model --preset tiny`; the control image is a 16x16 ring
 * and each request asks for one image at the model's size with --steps DDIM
 * steps (default 10). One warm-up request loads the models; then each level
 * sends --requests requests (default 32) as fast as its clients can and
 * reports requests/s and the p50/p99 latency. Each client connects from its
 * own loopback address (127.0.0.2, 127.0.0.3, ...) because the server caps
 * connections per client address (HTTP_PER_IP_LIMIT). Loopback only,
 * bounded: a request that takes longer than BENCH_SERVE_TIMEOUT_S fails the
 * run. Nothing is checked here (tests/integration/test_server_engine.c does that).
 * The command line is read by server/cli/cmd_bench.c into a bench_serve_opts. */
#include "server/bench/bench_serve.h"

#include <curl/curl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/image/image.h"

#define BENCH_SERVE_TIMEOUT_S 300
#define BENCH_SERVE_CLIENTS_MAX 16
#define BENCH_SERVE_IMAGE 16 /* px of the control image */
#define BENCH_SERVE_TOKEN "bench-token-0123456789abcdef"

static const int client_levels[] = {1, 4, 16};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct level {
    int port, requests;
    const char *body;
    pthread_mutex_t mu;
    int next;        /* requests handed out */
    int failed;      /* a request did not answer 200 */
    double *latency; /* [requests] seconds */
} level;

typedef struct client {
    level *lv;
    int index;
} client;

static size_t discard(char *p, size_t size, size_t n, void *user) {
    (void)p, (void)user;
    return size * n;
}

static void *client_main(void *arg) {
    client *c = arg;
    level *lv = c->lv;
    CURL *h = curl_easy_init();
    char url[128], iface[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/generate", lv->port);
    snprintf(iface, sizeof iface, "host!127.0.0.%d", 2 + c->index);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    hd = curl_slist_append(hd, "Authorization: Bearer " BENCH_SERVE_TOKEN);
    hd = curl_slist_append(hd, "Expect:");
    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_INTERFACE, iface);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, lv->body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)BENCH_SERVE_TIMEOUT_S);
    }
    for (;;) {
        pthread_mutex_lock(&lv->mu);
        int i = lv->failed || !h ? lv->requests : lv->next++;
        if (!h) lv->failed = 1;
        pthread_mutex_unlock(&lv->mu);
        if (i >= lv->requests) break;
        double t0 = now_s();
        long status = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        lv->latency[i] = now_s() - t0;
        if (rc != CURLE_OK || status != 200) {
            fprintf(stderr, "cnet bench: request %d: %s, HTTP %ld\n", i, curl_easy_strerror(rc),
                    status);
            pthread_mutex_lock(&lv->mu);
            lv->failed = 1;
            pthread_mutex_unlock(&lv->mu);
        }
    }
    curl_slist_free_all(hd);
    if (h) curl_easy_cleanup(h);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs n clients over lv->requests requests; fills rps, p50, p99 (ms). */
static int run_level(level *lv, int n, double *rps, double *p50, double *p99) {
    pthread_t th[BENCH_SERVE_CLIENTS_MAX];
    client cl[BENCH_SERVE_CLIENTS_MAX];
    lv->next = 0, lv->failed = 0;
    double t0 = now_s();
    int started = 0;
    for (int i = 0; i < n; i++) {
        cl[i] = (client){lv, i};
        if (pthread_create(&th[i], NULL, client_main, &cl[i]) == 0) started++;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double wall = now_s() - t0;
    if (lv->failed || started < n) return -1;
    qsort(lv->latency, (size_t)lv->requests, sizeof(double), cmp_double);
    *rps = lv->requests / wall;
    *p50 = 1e3 * lv->latency[(lv->requests - 1) / 2];
    *p99 = 1e3 * lv->latency[(int)(0.99 * (lv->requests - 1) + 0.5)];
    return 0;
}

/* Starts `self serve` and reads its port from the first line it prints. */
static pid_t start_server(const char *self, const char *data, const char *models,
                          const char *token_file, int *port) {
    int out[2];
    if (pipe(out) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        if (!freopen("/dev/null", "w", stderr)) _exit(126);
        execl(self, self, "serve", "--port", "0", "--data", data, "--models", models,
              "--token-file", token_file, "--device", "cpu", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = pid > 0 ? fdopen(out[0], "r") : NULL;
    char line[512];
    *port = 0;
    while (f && !*port && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "listening on http://127.0.0.1:");
        if (p) *port = atoi(p + strlen("listening on http://127.0.0.1:"));
    }
    if (f)
        fclose(f);
    else
        close(out[0]);
    return pid;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* The JSON body: the ring control image, one image with `steps` DDIM steps. */
static char *request_body(int steps) {
    const int S = BENCH_SERVE_IMAGE;
    uint8_t px[BENCH_SERVE_IMAGE * BENCH_SERVE_IMAGE * 3];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int dx = 2 * x - (S - 1), dy = 2 * y - (S - 1), d2 = dx * dx + dy * dy;
            memset(px + 3 * (y * S + x), d2 > 64 && d2 < 144 ? 255 : 0, 3);
        }
    image_rgb8 img = {S, S, px};
    uint8_t *png = NULL;
    size_t len = 0;
    cnet_error err = {0};
    if (image_encode_png(&img, NULL, 0, &png, &len, &err)) return NULL;
    char *b64 = api_base64_encode(png, len);
    free(png);
    char *body = b64 ? malloc(strlen(b64) + 256) : NULL;
    if (body)
        sprintf(body,
                "{\"model\": \"m\", \"prompt\": \"a white ring\", \"steps\": %d, \"seed\": 1, "
                "\"scheduler\": \"ddim\", \"image\": \"%s\"}",
                steps, b64);
    free(b64);
    return body;
}

int bench_serve_run(const bench_serve_opts *o) {
    const char *model = o->model;
    const int requests = o->requests, steps = o->steps, json = o->json;
    char self[PATH_MAX], tmp[] = "/tmp/cnet-bench-serve-XXXXXX";
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || !mkdtemp(tmp)) {
        fprintf(stderr, "cnet bench: cannot find this binary or make a temp dir\n");
        return 1;
    }
    self[n] = '\0';
    char models[PATH_MAX], data[PATH_MAX], token[PATH_MAX], cmd[3 * PATH_MAX];
    snprintf(models, sizeof models, "%s/models", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(token, sizeof token, "%s/token", tmp);
    int rc = mkdir(models, 0700) || mkdir(data, 0700);
    FILE *tf = rc ? NULL : fopen(token, "w");
    rc = !tf || fputs(BENCH_SERVE_TOKEN, tf) < 0;
    if (tf) rc |= fclose(tf) != 0;
    char real[PATH_MAX];
    if (!rc && model)
        rc = !realpath(model, real) ||
             snprintf(cmd, sizeof cmd, "%s/m", models) >= (int)sizeof cmd ||
             symlink(real, cmd) != 0;
    else if (!rc) {
        snprintf(cmd, sizeof cmd, "'%s' init-model --out '%s/m' --preset tiny >/dev/null", self,
                 models);
        rc = system(cmd) != 0;
    }
    char *body = rc ? NULL : request_body(steps);
    int port = 0;
    pid_t pid = body ? start_server(self, data, models, token, &port) : -1;
    level lv = {.port = port, .requests = requests, .body = body};
    pthread_mutex_init(&lv.mu, NULL);
    lv.latency = calloc((size_t)requests, sizeof(double));
    rc = pid <= 0 || port <= 0 || !lv.latency;
    if (rc) fprintf(stderr, "cnet bench: could not set up the model or start cnet serve\n");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!rc) { /* warm-up: the first request loads the models */
        level warm = lv;
        warm.requests = 1;
        double r, a, b;
        rc = run_level(&warm, 1, &r, &a, &b);
        if (rc) fprintf(stderr, "cnet bench: the warm-up request failed\n");
    }
    if (!rc && !json)
        printf("cnet bench --task serve: %d requests per level, %d DDIM steps, %dx%d, model %s\n"
               "%8s %12s %10s %10s\n",
               requests, steps, BENCH_SERVE_IMAGE, BENCH_SERVE_IMAGE, model ? model : "tiny",
               "clients", "requests/s", "p50 ms", "p99 ms");
    for (size_t k = 0; !rc && k < sizeof client_levels / sizeof client_levels[0]; k++) {
        double rps, p50, p99;
        rc = run_level(&lv, client_levels[k], &rps, &p50, &p99);
        if (rc)
            fprintf(stderr, "cnet bench: a request failed with %d clients\n", client_levels[k]);
        else if (json)
            printf("{\"task\": \"serve\", \"clients\": %d, \"requests\": %d, \"steps\": %d, "
                   "\"requests_per_s\": %.3f, \"p50_ms\": %.1f, \"p99_ms\": %.1f}\n",
                   client_levels[k], requests, steps, rps, p50, p99);
        else
            printf("%8d %12.2f %10.1f %10.1f\n", client_levels[k], rps, p50, p99);
        fflush(stdout);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    curl_global_cleanup();
    pthread_mutex_destroy(&lv.mu);
    free(lv.latency);
    free(body);
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc ? 1 : 0;
}
