/* What one synchronous POST /v1/generate may cost a real `cnet serve
 * --device cpu` (issue 20, review items 1 and 4), with the tiny model of
 * `cnet init-model --preset tiny` (16x16 px native, 8x8 latents):
 *   - a request over its budget is refused before any work with a 413 that
 *     names its parameters and the limit: an area far over the model's
 *     native size (1024x1024, steps 1), and steps x images x guidance;
 *   - a client that disconnects stops its request at the next step: the
 *     server counts the stop and ran fewer steps than asked, and serves the
 *     next request; a queued request whose client left is dropped;
 *   - --generate-timeout stops a request at the step it passes the deadline
 *     and answers 504 saying at which step;
 *   - admission by cost: with two near-maximal requests in flight a third
 *     is refused after a short wait (503 + Retry-After) while a small one is
 *     admitted beside them;
 *   - --generate-memory bounds the bytes queued requests hold (their bodies
 *     and decoded control images): over it, 503 + Retry-After naming the
 *     limit;
 *   - a control image whose PNG IHDR or JPEG SOF declares a size over the
 *     limits is refused by that header alone (its pixel data is garbage, so
 *     a decoder would answer otherwise), naming the size and the limit;
 *   - SIGTERM stops a running generate at its next step: the request is
 *     answered 503 saying at which step, and the process exits 0.
 * Nothing here measures speed: a 999-step request on the tiny model runs
 * for seconds, the assertions hold for any run longer than the few
 * requests the test makes meanwhile. The truth for "stopped early" is the
 * server's own step counter (cnet_generate_steps_total) against the steps
 * asked. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/image/image.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define T SERVER_TEST_TOKEN
#define SIZE 16        /* px: the tiny preset's native size */
#define LONG_STEPS 999 /* a run of seconds on the tiny model (PNDM takes at most 999) */
#define MEMORY 4000000 /* --generate-memory of the main server: one 1024² image fits */
#define WAIT_S 120.0   /* how long the test waits for a state the server must reach */
#define BIG 1024       /* px of the memory test's control images (3 MiB decoded) */

static char dir[512], models[600], bin[600];
static char *control_b64, *big_b64;
static test_server srv;

/* A JSON generate body on the tiny model; image: base64 PNG. */
static char *body_of(const char *image, const char *extra) {
    char *b = malloc(strlen(image) + 1024);
    sprintf(
        b,
        "{\"model\": \"tiny\", \"prompt\": \"a red circle\", \"seed\": 7, %s, \"image\": \"%s\"}",
        extra, image);
    return b;
}

static long post(test_server *s, const char *body, http_resp *r) {
    const char *const h[] = {"Content-Type: application/json", NULL};
    http_do(s, "POST", "/v1/generate", T, h, body, strlen(body), 0, r);
    return r->status;
}

/* The sample of a metric line ("name" or "name{labels}"), -1 when absent. */
static long long metric(test_server *s, const char *name) {
    http_resp r;
    http_do(s, "GET", "/metrics", NULL, NULL, NULL, 0, 0, &r);
    char line[160];
    snprintf(line, sizeof line, "\n%s ", name);
    const char *p = strstr(r.body, line);
    long long v = p ? atoll(p + strlen(line)) : -1;
    http_resp_free(&r);
    return v;
}

/* Waits until metric name reaches at least want; 0 when it did. */
static int wait_metric(test_server *s, const char *name, long long want) {
    for (double t0 = test_now_s(); test_now_s() - t0 < WAIT_S; usleep(20000))
        if (metric(s, name) >= want) return 0;
    return -1;
}

/* Sends a generate request on a raw socket (so the test can walk away
 * from it) and returns the socket, -1 on failure. */
static int post_raw(test_server *s, const char *body) {
    return http_send_raw(s, "POST /v1/generate", "Content-Type: application/json\r\n", strlen(body),
                         body, strlen(body));
}

/* What the server answered on fd (until it closes), malloc'd. */
static char *read_all(int fd) {
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    for (ssize_t n; (n = read(fd, out + len, cap - len - 1)) > 0;) {
        len += (size_t)n;
        if (cap - len < 2) out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    return out;
}

static char *png_b64(int w, int h) {
    image_rgb8 img;
    cnet_error err = {0};
    uint8_t *png = NULL;
    size_t len = 0;
    if (image_alloc(&img, w, h, &err)) return NULL;
    for (int i = 0; i < w * h * 3; i += 3 * 7) img.data[i] = 255;
    char *b64 =
        image_encode_png(&img, NULL, 0, &png, &len, &err) ? NULL : api_base64_encode(png, len);
    image_free(&img);
    free(png);
    return b64;
}

static int start(test_server *s, const char *name, const char *const *more) {
    char data[700];
    snprintf(data, sizeof data, "%s/%s", dir, name);
    mkdir(data, 0700);
    const char *args[16] = {"--models", models, "--device", "cpu"};
    int n = 4;
    for (int i = 0; more && more[i] && n < 15; i++) args[n++] = more[i];
    args[n] = NULL;
    return server_start(s, data, args);
}

static void test_over_budget_refused_before_work(void) {
    char *big = png_b64(BIG, BIG);
    char *body = body_of(big, "\"steps\": 1");
    http_resp r;
    const long long before = metric(&srv, "cnet_generate_requests_total");
    EXPECT(post(&srv, body, &r) == 413 && strstr(r.body, "\"over_budget\"") &&
               strstr(r.body, "1024x1024") && strstr(r.body, "native 16x16") &&
               strstr(r.body, "limit of 16x"),
           "1024x1024 steps 1: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(body);
    free(big);
    body = body_of(control_b64, "\"steps\": 999, \"num_images\": 2, \"guidance\": 7.5");
    const char *const h[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    http_do(&srv, "POST", "/v1/generate", T, h, body, strlen(body), 0, &r);
    EXPECT(r.status == 413 && strstr(r.body, "3996 units") && strstr(r.body, "steps run 999") &&
               strstr(r.body, "num_images 2") && strstr(r.body, "limit of 2000"),
           "steps 999 x 2 images x CFG: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(body);
    /* img2img runs int(999 x 0.6) = 599 of them: 2396 units */
    char *extra = malloc(strlen(control_b64) + 256);
    sprintf(extra,
            "\"steps\": 999, \"num_images\": 2, \"guidance\": 7.5, \"strength\": 0.6, "
            "\"init_image\": \"%s\"",
            control_b64);
    body = body_of(control_b64, extra);
    http_do(&srv, "POST", "/v1/generate", T, h, body, strlen(body), 0, &r);
    EXPECT(r.status == 413 && strstr(r.body, "2396 units") && strstr(r.body, "steps run 599"),
           "img2img, strength 0.6: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(body);
    free(extra);
    EXPECT(metric(&srv, "cnet_generate_requests_total") == before,
           "a refused request reached an engine");
}

static void test_disconnect_cancels_at_next_step(void) {
    const char *gone = "cnet_generate_stopped_total{reason=\"client_gone\"}";
    const long long steps0 = metric(&srv, "cnet_generate_steps_total"), gone0 = metric(&srv, gone);
    char *body = body_of(control_b64, "\"steps\": 999, \"guidance\": 1");
    int fd = post_raw(&srv, body);
    free(body);
    CHECK(fd >= 0, "connect");
    const int started = wait_metric(&srv, "cnet_generate_steps_total", steps0 + 1);
    close(fd);
    CHECK(started == 0, "the request never started");
    CHECK(wait_metric(&srv, gone, gone0 + 1) == 0, "the server did not stop the request");
    const long long ran = metric(&srv, "cnet_generate_steps_total") - steps0;
    EXPECT(ran >= 1 && ran < LONG_STEPS, "ran %lld of %d steps", ran, LONG_STEPS);
    body = body_of(control_b64, "\"steps\": 3");
    http_resp r;
    EXPECT(post(&srv, body, &r) == 200, "the next request: %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(body);
}

typedef struct call {
    char *body;
    http_resp r;
} call;

static void *post_thread(void *arg) {
    call *c = arg;
    post(&srv, c->body, &c->r);
    return NULL;
}

static void test_admission_by_cost(void) {
    const char *gone = "cnet_generate_stopped_total{reason=\"client_gone\"}";
    const long long steps0 = metric(&srv, "cnet_generate_steps_total"), gone0 = metric(&srv, gone);
    /* 999 steps with guidance: 1998 units each, two fill the 4000 in flight */
    char *huge = body_of(control_b64, "\"steps\": 999, \"guidance\": 7.5");
    int a = post_raw(&srv, huge);
    CHECK(a >= 0 && wait_metric(&srv, "cnet_generate_steps_total", steps0 + 1) == 0,
          "the first request never started");
    int b = post_raw(&srv, huge);
    CHECK(b >= 0 && wait_metric(&srv, "cnet_generate_queue_depth", 1) == 0,
          "the second request was not queued");
    http_resp r;
    EXPECT(post(&srv, huge, &r) == 503 && strstr(r.body, "\"busy\"") && strstr(r.body, "units") &&
               strstr(r.body, "1998"),
           "the third: %ld %s", r.status, r.body);
    char after[32] = "";
    EXPECT(http_header(&r, "Retry-After", after, sizeof after) == 0 && atoi(after) > 0,
           "Retry-After '%s'", after);
    http_resp_free(&r);
    EXPECT(metric(&srv, "cnet_generate_stopped_total{reason=\"busy\"}") >= 1, "busy not counted");
    /* one unit: admitted beside them, queued behind them */
    call small = {.body = body_of(control_b64, "\"steps\": 1, \"guidance\": 1")};
    pthread_t t;
    pthread_create(&t, NULL, post_thread, &small);
    EXPECT(wait_metric(&srv, "cnet_generate_queue_depth", 2) == 0,
           "the small one was not admitted");
    close(b); /* queued: dropped without running */
    close(a); /* running: stops at its next step */
    pthread_join(t, NULL);
    EXPECT(small.r.status == 200, "the small one: %ld %s", small.r.status, small.r.body);
    EXPECT(metric(&srv, gone) == gone0 + 2, "stopped for a gone client: %lld, want %lld",
           metric(&srv, gone), gone0 + 2);
    http_resp_free(&small.r);
    free(small.body);
    free(huge);
}

static void test_memory_budget(void) {
    const long long steps0 = metric(&srv, "cnet_generate_steps_total");
    char *runs = body_of(control_b64, "\"steps\": 999, \"guidance\": 1");
    int a = post_raw(&srv, runs);
    free(runs);
    CHECK(a >= 0 && wait_metric(&srv, "cnet_generate_steps_total", steps0 + 1) == 0,
          "the first request never started");
    /* a 1024² control image for a 16² output: one unit, 3 MiB decoded */
    char *queued = body_of(big_b64, "\"steps\": 1, \"guidance\": 1, \"width\": 16, \"height\": 16");
    int b = post_raw(&srv, queued);
    CHECK(b >= 0 && wait_metric(&srv, "cnet_generate_queue_depth", 1) == 0,
          "the second request was not queued");
    EXPECT(metric(&srv, "cnet_generate_held_bytes") >= (long long)BIG * BIG * 3, "held %lld bytes",
           metric(&srv, "cnet_generate_held_bytes"));
    http_resp r;
    EXPECT(post(&srv, queued, &r) == 503 && strstr(r.body, "\"busy\"") &&
               strstr(r.body, "--generate-memory") && strstr(r.body, "4000000"),
           "the third: %ld %s", r.status, r.body);
    char after[32] = "";
    EXPECT(http_header(&r, "Retry-After", after, sizeof after) == 0 && atoi(after) > 0,
           "Retry-After '%s'", after);
    http_resp_free(&r);
    close(b);
    close(a);
    free(queued);
    for (double t0 = test_now_s();
         test_now_s() - t0 < WAIT_S && metric(&srv, "cnet_generate_held_bytes");)
        usleep(20000);
    EXPECT(metric(&srv, "cnet_generate_held_bytes") == 0, "held %lld bytes after both ended",
           metric(&srv, "cnet_generate_held_bytes"));
}

/* A PNG signature and IHDR declaring w x h, then bytes no decoder accepts. */
static char *fake_png_b64(uint32_t w, uint32_t h) {
    uint8_t b[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (int i = 0; i < 4; i++) b[16 + i] = (uint8_t)(w >> (24 - 8 * i));
    for (int i = 0; i < 4; i++) b[20 + i] = (uint8_t)(h >> (24 - 8 * i));
    b[24] = 8, b[25] = 2; /* 8-bit RGB; the CRC and the rest: garbage */
    memset(b + 29, 0xAB, sizeof b - 29);
    return api_base64_encode(b, sizeof b);
}

/* SOI, an APP0, then a baseline SOF0 declaring w x h, then garbage. */
static char *fake_jpeg_b64(uint16_t w, uint16_t h) {
    uint8_t b[64] = {0xFF,       0xD8,
                     0xFF,       0xE0,
                     0,          16,
                     'J',        'F',
                     'I',        'F',
                     0,          1,
                     1,          0,
                     0,          1,
                     0,          1,
                     0,          0,
                     0xFF,       0xC0,
                     0,          17,
                     8,          (uint8_t)(h >> 8),
                     (uint8_t)h, (uint8_t)(w >> 8),
                     (uint8_t)w, 3,
                     1,          0x22,
                     0,          2,
                     0x11,       1,
                     3,          0x11,
                     1};
    memset(b + 39, 0xAB, sizeof b - 39);
    return api_base64_encode(b, sizeof b);
}

static void test_image_header_checked_first(void) {
    struct {
        char *image;
        const char *extra;
        long status;
        const char *code, *size, *limit;
    } cases[] = {
        {fake_png_b64(4096, 4096), "\"steps\": 1", 400, "out_of_range", "4096x4096", "1024x1024"},
        {fake_png_b64(5000, 5000), "\"steps\": 1, \"width\": 16, \"height\": 16", 413,
         "image_too_large", "5000x5000", "16777216"},
        {fake_jpeg_b64(8000, 6000), "\"steps\": 1, \"width\": 16, \"height\": 16", 413,
         "image_too_large", "8000x6000", "16777216"},
        {fake_jpeg_b64(2000, 1000), "\"steps\": 1", 400, "out_of_range", "2000x1000", "1024x1024"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = body_of(cases[i].image, cases[i].extra);
        http_resp r;
        post(&srv, body, &r);
        EXPECT(r.status == cases[i].status && strstr(r.body, cases[i].code) &&
                   strstr(r.body, cases[i].size) && strstr(r.body, cases[i].limit),
               "case %zu: %ld %s", i, r.status, r.body);
        http_resp_free(&r);
        free(body);
        free(cases[i].image);
    }
}

static void test_deadline_stops_at_a_step(void) {
    test_server s;
    const char *const more[] = {"--generate-timeout", "0.2", NULL};
    CHECK(start(&s, "deadline", more) == 0, "start");
    char *body = body_of(control_b64, "\"steps\": 999, \"guidance\": 1");
    http_resp r;
    post(&s, body, &r);
    free(body);
    EXPECT(r.status == 504 && strstr(r.body, "\"timeout\"") && strstr(r.body, "stopped at step") &&
               strstr(r.body, "--generate-timeout"),
           "%ld %s", r.status, r.body);
    http_resp_free(&r);
    const long long ran = metric(&s, "cnet_generate_steps_total");
    EXPECT(ran >= 1 && ran < LONG_STEPS, "ran %lld of %d steps", ran, LONG_STEPS);
    EXPECT(metric(&s, "cnet_generate_stopped_total{reason=\"deadline\"}") == 1, "not counted");
    EXPECT(server_stop(&s, SIGTERM, 30000) == 0, "exit");
}

static void test_sigterm_stops_a_running_generate(void) {
    test_server s;
    CHECK(start(&s, "sigterm", NULL) == 0, "start");
    char *body = body_of(control_b64, "\"steps\": 999, \"guidance\": 7.5");
    int fd = post_raw(&s, body);
    free(body);
    CHECK(fd >= 0 && wait_metric(&s, "cnet_generate_steps_total", 1) == 0, "never started");
    kill(s.pid, SIGTERM);
    char *answer = read_all(fd);
    close(fd);
    EXPECT(strstr(answer, " 503 ") && strstr(answer, "stopped at step") &&
               strstr(answer, "stopping"),
           "answer: %.300s", answer);
    free(answer);
    EXPECT(server_stop(&s, SIGTERM, 60000) == 0, "exit");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "1", 0); /* the servers and this process share two cores */
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (tmpdir_make(dir, sizeof dir, "cnet-limits-")) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", dir);
    mkdir(models, 0700);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s init-model --out %s/tiny --preset tiny >/dev/null 2>&1", bin,
             models);
    control_b64 = png_b64(SIZE, SIZE);
    big_b64 = png_b64(BIG, BIG);
    char memory[32];
    snprintf(memory, sizeof memory, "%d", MEMORY);
    const char *const more[] = {"--generate-memory", memory, NULL};
    if (system(cmd) != 0 || !control_b64 || !big_b64 || start(&srv, "main", more)) {
        printf("setup failed\ntest_server_limits: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_over_budget_refused_before_work);
    RUN(test_image_header_checked_first);
    RUN(test_disconnect_cancels_at_next_step);
    RUN(test_admission_by_cost);
    RUN(test_memory_budget);
    RUN(test_deadline_stops_at_a_step);
    RUN(test_sigterm_stops_a_running_generate);
    server_stop(&srv, SIGTERM, 60000);
    free(control_b64);
    free(big_b64);
    tmpdir_remove(dir);
    return harness_done();
}
