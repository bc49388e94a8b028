/* Device failures in the engine pool (server/workers/worker.h, "Device failures"):
 * a real engine thread on the CPU backend serves generate requests on the
 * fixtures' tiny-sd pipeline. The CPU backend fails only when host memory
 * runs out for its scratch (kernels/cpu/scratch.c; tests/unit/test_cpu_oom.c)
 * and can never be lost, so its status and recover entries are replaced here
 * by a fault double standing for a CUDA device (a test double, not shipped
 * code): an armed fault marks the device failed inside the next conv, as
 * CUDA records its first failing call, or lost to the process.
 *
 * - a failure the device survives (an allocation that did not fit): the
 *   request fails, the engine recovers once, keeps its caches (no model is
 *   loaded again) and the next request gives the first request's pixels;
 * - a failure left by a running job's op when the job serves a waiting
 *   request at its step boundary: the request is refused (retry) without
 *   running and without clearing it; the engine recovers when the job ends;
 * - a device lost to the process: the request fails, the engine says so
 *   from then on (later requests refused at once, asking for a restart), and
 *   the pool's can_claim refuses so jobs stay queued; over HTTP, /healthz
 *   and /readyz answer 503 naming it, /metrics counts it and a synchronous
 *   generate is refused with 503 device_failed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "server/workers/worker.h"
#include "server/http/http.h"
#include "server/workers/runner.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

static struct {
    int armed;      /* the next conv fails */
    int failed;     /* a failure is recorded */
    int lost;       /* recover cannot bring the device back */
    int recoveries; /* recover calls that cleared a failure */
    void (*conv)(cnet_backend *, float *, const float *, const float *, const float *,
                 const cnet_conv2d *);
} fault;

static void faulty_conv(cnet_backend *be, float *out, const float *inp, const float *weight,
                        const float *bias, const cnet_conv2d *s) {
    fault.conv(be, out, inp, weight, bias, s);
    if (fault.armed) fault.armed = 0, fault.failed = 1;
}

static int fault_status(cnet_backend *be, cnet_error *err) {
    (void)be;
    return fault.failed ? cnet_fail(err, CNET_EBACKEND, "injected device fault") : 0;
}

static int fault_recover(cnet_backend *be, cnet_error *err) {
    if (!fault.failed) return 0;
    if (fault.lost)
        return cnet_fail(err, CNET_EBACKEND, "%s: injected fault; the device is lost", be->name);
    fault.failed = 0, fault.recoveries++;
    return 0;
}

typedef struct fixture {
    char model[4096], controlnet[4200];
    image_rgb8 control;
    generate_request gen;
} fixture;

static void fixture_init(fixture *f) {
    snprintf(f->model, sizeof f->model, "%s/tiny-sd", harness_fixtures());
    snprintf(f->controlnet, sizeof f->controlnet, "%s/controlnet", f->model);
    f->control.width = f->control.height = 32;
    f->control.data = malloc(32 * 32 * 3);
    for (int i = 0; i < 32 * 32 * 3; i++) f->control.data[i] = (uint8_t)(i * 37 % 251);
    f->gen = (generate_request){.model_dir = f->model,
                                .scheduler = -1,
                                .prompt = "a red circle",
                                .negative_prompt = "",
                                .steps = 2,
                                .num_images = 1,
                                .guidance = 5.0f,
                                .seed = 3,
                                .n_controls = 1};
    f->gen.controls[0] = (generate_control){.dir = f->controlnet,
                                            .image_name = "image",
                                            .image = &f->control,
                                            .scale = 1.0f,
                                            .end = 1.0f};
}

static worker *open_faulty(void) {
    worker *e = NULL;
    cnet_error err = {0};
    if (worker_open(&e, "cpu", &err)) {
        printf("    worker_open: %s\n", err.msg);
        return NULL;
    }
    /* before any request: the engine thread reads the table only when one arrives */
    cnet_backend *be = worker_backend(e);
    memset(&fault, 0, sizeof fault);
    fault.conv = be->conv2d_forward;
    be->conv2d_forward = faulty_conv;
    be->status = fault_status;
    be->recover = fault_recover;
    return e;
}

static int same_image(const generate_result *a, const generate_result *b) {
    const image_rgb8 *x = &a->images[0], *y = &b->images[0];
    return a->n == b->n && x->width == y->width && x->height == y->height &&
           memcmp(x->data, y->data, (size_t)x->width * x->height * 3) == 0;
}

static void test_recovered_failure_keeps_caches(void) {
    fixture f;
    fixture_init(&f);
    worker *e = open_faulty();
    CHECK(e, "no engine");
    generate_result first, failed, after;
    cnet_error err = {0};
    CHECK(worker_generate(e, &f.gen, NULL, &first, &err) == 0, "clean request: %s", err.msg);
    fault.armed = 1;
    EXPECT(worker_generate(e, &f.gen, NULL, &failed, &err) == CNET_EBACKEND &&
               strstr(err.msg, "injected device fault"),
           "the failing request: '%s'", err.msg);
    worker_stats st;
    worker_stats_get(e, &st);
    EXPECT(fault.recoveries == 1 && st.device_recoveries == 1 && !st.failed,
           "recoveries %d (engine %llu), failed %d", fault.recoveries,
           (unsigned long long)st.device_recoveries, st.failed);
    EXPECT(worker_failure(e, &err) == 0, "usable engine reports '%s'", err.msg);
    CHECK(worker_generate(e, &f.gen, NULL, &after, &err) == 0, "after recovery: %s", err.msg);
    EXPECT(same_image(&first, &after), "the image after recovery differs from the first");
    worker_stats_get(e, &st);
    EXPECT(st.base_loads == 1 && st.controlnet_loads == 1,
           "models loaded again: base %llu, controlnet %llu", (unsigned long long)st.base_loads,
           (unsigned long long)st.controlnet_loads);
    generate_result_free(&first);
    generate_result_free(&failed);
    generate_result_free(&after);
    worker_close(e);
    free(f.control.data);
}

/* A job whose op failed serves a waiting request at its step boundary:
 * the request is refused (retry) without running or clearing the job's
 * failure; when the job ends the engine recovers. */
static volatile int job_started, job_saw_failure;

static int failing_job(void *user, worker *e) {
    (void)user;
    job_started = 1;
    while (worker_load(e) < 2) usleep(1000); /* this job + the request waiting */
    fault.failed = 1;                        /* one of the job's ops failed */
    worker_serve_pending(e);                 /* its step boundary */
    job_saw_failure = fault.failed;
    return CNET_EBACKEND;
}

typedef struct side_call {
    worker *e;
    const generate_request *gen;
    generate_result out;
    cnet_error err;
    int rc;
} side_call;

static void *run_job_main(void *arg) {
    side_call *c = arg;
    c->rc = worker_run_job(c->e, failing_job, NULL);
    return NULL;
}

static void *generate_main(void *arg) {
    side_call *c = arg;
    c->rc = worker_generate(c->e, c->gen, NULL, &c->out, &c->err);
    return NULL;
}

static void test_job_failure_not_cleared_by_request(void) {
    fixture f;
    fixture_init(&f);
    worker *e = open_faulty();
    CHECK(e, "no engine");
    side_call job_call = {.e = e}, req = {.e = e, .gen = &f.gen};
    pthread_t tj, tr;
    job_started = 0, job_saw_failure = 0;
    CHECK(pthread_create(&tj, NULL, run_job_main, &job_call) == 0, "job thread");
    while (!job_started) usleep(1000);
    CHECK(pthread_create(&tr, NULL, generate_main, &req) == 0, "request thread");
    pthread_join(tr, NULL);
    pthread_join(tj, NULL);
    EXPECT(req.rc == CNET_ELIMIT && strstr(req.err.msg, "retry") &&
               strstr(req.err.msg, "injected device fault"),
           "the request: %d '%s'", req.rc, req.err.msg);
    EXPECT(job_saw_failure, "the request cleared the job's failure");
    EXPECT(job_call.rc == CNET_EBACKEND, "job returned %d", job_call.rc);
    worker_stats st;
    worker_stats_get(e, &st);
    EXPECT(!fault.failed && fault.recoveries == 1 && st.device_recoveries == 1 && !st.failed,
           "after the job: failed %d, recoveries %d", fault.failed, fault.recoveries);
    EXPECT(st.base_loads == 0, "the refused request loaded a model");
    generate_result_free(&req.out);
    worker_close(e);
    free(f.control.data);
}

/* Over HTTP, with e's device lost: /healthz and /readyz 503 naming it,
 * /metrics counting it, a synchronous generate refused with 503. */
static void check_http_reports(worker *e, fixture *f) {
    cnet_error err = {0};
    char root[512], path[800], db[700], jobs[700], models[600];
    CHECK(tmpdir_make(root, sizeof root, "cnet_engfail_") == 0, "tmpdir");
    snprintf(models, sizeof models, "%s/models", root);
    snprintf(jobs, sizeof jobs, "%s/jobs", root);
    snprintf(db, sizeof db, "%s/jobs.db", root);
    snprintf(path, sizeof path, "%s/tiny", models);
    mkdir(models, 0700), mkdir(jobs, 0700);
    char target[4096];
    CHECK(realpath(f->model, target) && symlink(target, path) == 0, "symlink %s", path);
    jobs_store *store = NULL;
    CHECK(jobs_open(&store, db, jobs, &err) == 0, "jobs_open: %s", err.msg);
    worker *engines[1] = {e};
    const http_config cfg = {.listen = "127.0.0.1",
                             .data_dir = root,
                             .models_dir = models,
                             .token = SERVER_TEST_TOKEN,
                             .queue_cap = 16,
                             .upload_max = 1 << 20,
                             .dataset = UPLOAD_DEFAULT_LIMITS,
                             .sse_heartbeat_s = 15,
                             .generate_timeout_s = HTTP_GENERATE_TIMEOUT_S,
                             .generate_memory = HTTP_GENERATE_MEMORY,
                             .engines = engines,
                             .n_engines = 1};
    http_server *srv = NULL;
    CHECK(http_start(&srv, &cfg, store, &err) == 0, "http_start: %s", err.msg);
    const test_server ts = {.port = http_port(srv)};
    http_resp r;
    http_do(&ts, "GET", "/healthz", NULL, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 503 && strstr(r.body, "device_lost") && strstr(r.body, "restart"),
           "healthz %ld %s", r.status, r.body);
    http_resp_free(&r);
    http_do(&ts, "GET", "/readyz", SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 503 && strstr(r.body, "the device is lost"), "readyz %ld %s", r.status,
           r.body);
    http_resp_free(&r);
    http_do(&ts, "GET", "/metrics", SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && strstr(r.body, "cnet_engines_failed 1\n") &&
               strstr(r.body, "cnet_device_recoveries_total 0\n"),
           "metrics %ld", r.status);
    http_resp_free(&r);
    uint8_t *png = NULL;
    size_t n = 0;
    CHECK(image_encode_png(&f->control, NULL, 0, &png, &n, &err) == 0, "png: %s", err.msg);
    char *b64 = api_base64_encode(png, n);
    char *body = malloc(strlen(b64) + 256);
    sprintf(body,
            "{\"model\": \"tiny\", \"prompt\": \"a red circle\", \"steps\": 2, \"image\": \"%s\"}",
            b64);
    const char *const h[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    http_do(&ts, "POST", "/v1/generate", SERVER_TEST_TOKEN, h, body, strlen(body), 0, &r);
    EXPECT(r.status == 503 && strstr(r.body, "device_lost") && strstr(r.body, "restart"),
           "generate %ld %s", r.status, r.body);
    http_resp_free(&r);
    free(png), free(b64), free(body);
    http_stop(srv);
    jobs_close(store);
    tmpdir_remove(root);
}

static void test_lost_device_fails_engine(void) {
    fixture f;
    fixture_init(&f);
    worker *e = open_faulty();
    CHECK(e, "no engine");
    generate_result out;
    cnet_error err = {0};
    fault.armed = 1, fault.lost = 1;
    EXPECT(worker_generate(e, &f.gen, NULL, &out, &err) == CNET_EBACKEND, "failing request: '%s'",
           err.msg);
    generate_result_free(&out);
    worker_stats st;
    worker_stats_get(e, &st);
    EXPECT(st.failed && st.device_recoveries == 0, "failed %d, recoveries %llu", st.failed,
           (unsigned long long)st.device_recoveries);
    EXPECT(worker_failure(e, &err) == WORKER_ELOST && strstr(err.msg, "the device is lost") &&
               strstr(err.msg, "restart the service"),
           "worker_failure: '%s'", err.msg);
    /* refused at once: the request does not reach the device */
    fault.lost = 0, fault.failed = 0;
    memset(&err, 0, sizeof err);
    EXPECT(worker_generate(e, &f.gen, NULL, &out, &err) == WORKER_ELOST &&
               strstr(err.msg, "restart the service"),
           "a later request: '%s'", err.msg);
    worker_stats_get(e, &st);
    EXPECT(st.generates == 1, "%llu requests reached the device", (unsigned long long)st.generates);
    generate_result_free(&out);
    runner_config rc = {.engine = e};
    EXPECT(runner_can_claim(&rc, &err) != 0, "the pool may still claim jobs");
    /* a job claimed just before: back to the queue without using an attempt */
    const pool_job pj = {.id = "j_test", .kind = "train", .spec_json = "{}"};
    EXPECT(runner_run(&rc, &pj, NULL, &err) == POOL_STOPPED, "a claimed job ran on a lost device");
    check_http_reports(e, &f);
    worker_close(e);
    free(f.control.data);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_recovered_failure_keeps_caches);
    RUN(test_job_failure_not_cleared_by_request);
    RUN(test_lost_device_fails_engine);
    return harness_done();
}
