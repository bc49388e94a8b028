/* The service and the Hub together, end to end: a real `cnet serve` whose
 * HF_ENDPOINT is the Hub emulator (tests/tools/tool_hub_emulator.c).
 *   - POST /v1/generate with model "hf://tester/tiny-sd" not in the cache:
 *     409 naming the model and the async way, and nothing downloaded inside
 *     the request; the same request with "async": true is a job that pulls
 *     the pipeline into $HF_HOME/hub; then the synchronous request answers
 *     the image of the local copy of that model, pixel for pixel;
 *   - the same for an hf:// ControlNet next to a local base (the 409 names
 *     the controlnet field), its image that of the same local weights;
 *   - an hf:// repo that does not exist: 409 synchronously, a failed job
 *     naming it asynchronously; a malformed reference is a 400; the server
 *     keeps serving;
 *   - a training job whose base is hf://tester/tiny-sd trains, its model
 *     card naming the Hub id;
 *   - a training job's pull is its download phase: GET /v1/jobs/{id} shows
 *     {"phase": "download", file, bytes}, the job's cancel stops it half way
 *     (the job ends cancelled, the weights not all fetched), and a new job
 *     of the same model then pulls the rest and trains;
 *   - a training job's dataset hf://datasets/NS/NAME (Parquet on main, or a
 *     script-based dataset's refs/convert/parquet conversion) is pulled by
 *     the job and trains exactly as the same Parquet file in a folder under
 *     --data-root, max_train_samples included (and it matters); a malformed
 *     reference, or dataset_config_name without a Hub dataset, is a 400
 *     naming the field, with no request to the Hub; a dataset repo that
 *     does not exist fails the job naming it; the dataset's download is a
 *     download phase the job's cancel stops;
 *   - an async generate job of an uncached hf:// model downloads in a
 *     download phase too, and its cancel stops it half way;
 *   - a training job with push_to_hub is refused at submission (400, field
 *     push_to_hub, naming HF_TOKEN) by a server that has no Hub token, and
 *     accepted once it has one (a token file is read at each submission, no
 *     restart); the idempotent replay of an accepted job stays accepted
 *     after the token is gone.
 * The model is `cnet init-model --preset tiny`, published to the emulator
 * as one commit of every file of the pipeline. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "engine/image/image.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_hub.h"
#include "tests/lib/lib_parquet.h"
#include "tests/lib/lib_server.h"

#define T SERVER_TEST_TOKEN
#define HUB_TOKEN "hf_hubreftestwritetoken01"
#define SIZE 16 /* px: the tiny preset's sample size */

static char root[512], models[600], bin[600], hf_home[600], fill[600], pq_local[800];
static char *control_b64;
static thub_emu emu;

/* A server with the Hub environment: token NULL leaves HF_TOKEN unset (the
 * token, if any, is then HF_HOME's token file). */
static int start(test_server *s, const char *name, const char *token, const char *device) {
    char data[700];
    snprintf(data, sizeof data, "%s/%s", root, name);
    mkdir(data, 0700);
    setenv("HF_ENDPOINT", emu.endpoint, 1);
    setenv("HF_HOME", hf_home, 1);
    unsetenv("HF_TOKEN_FILE");
    unsetenv("HF_TOKEN_PATH");
    if (token)
        setenv("HF_TOKEN", token, 1);
    else
        unsetenv("HF_TOKEN");
    const char *const with_device[] = {"--models", models, "--data-root", root,
                                       "--device", device, NULL};
    const char *const without[] = {"--models", models, "--data-root", root, NULL};
    return server_start(s, data, device ? with_device : without);
}

static long post_json(test_server *s, const char *path, const char *body, const char *accept,
                      http_resp *r) {
    char acc[64];
    snprintf(acc, sizeof acc, "Accept: %s", accept);
    const char *const h[] = {"Content-Type: application/json", acc, NULL};
    http_do(s, "POST", path, T, h, body, strlen(body), 0, r);
    return r->status;
}

/* The generate request for `model` and `controlnet` (NULL: the model's
 * own; async: as a job), decoded into img; the HTTP status. */
static long generate_cn(test_server *s, const char *model, const char *controlnet, int async,
                        image_rgb8 *img, http_resp *r) {
    char *body = malloc(strlen(control_b64) + 1024);
    char cn[600] = "";
    if (controlnet) snprintf(cn, sizeof cn, "\"controlnet\": \"%s\", ", controlnet);
    sprintf(body,
            "{\"model\": \"%s\", %s\"prompt\": \"a red circle\", \"steps\": 3, \"seed\": 7, "
            "\"scheduler\": \"ddim\", \"async\": %s, \"image\": \"%s\"}",
            model, cn, async ? "true" : "false", control_b64);
    long st = post_json(s, "/v1/generate", body, "image/png", r);
    free(body);
    cnet_error err = {0};
    if (st == 200 && img && image_decode_png(img, r->body, r->len, "reply", 0, &err)) st = -1;
    return st;
}

static long generate_as(test_server *s, const char *model, int async, image_rgb8 *img,
                        http_resp *r) {
    return generate_cn(s, model, NULL, async, img, r);
}

static long generate(test_server *s, const char *model, image_rgb8 *img, http_resp *r) {
    return generate_as(s, model, 0, img, r);
}

/* Polls job id until it ends; its final state into state, its error
 * message (if any) into msg. */
static void wait_job(test_server *s, const char *id, char state[32], char *msg, size_t cap) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    state[0] = 0;
    for (int i = 0; i < 6000; i++, usleep(20000)) {
        http_resp r;
        http_do(s, "GET", path, T, NULL, NULL, 0, 0, &r);
        json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
        http_resp_free(&r);
        snprintf(state, 32, "%s", json_string_value(json_object_get(j, "state")) ?: "");
        if (msg) {
            char *dump = json_dumps(j, 0);
            snprintf(msg, cap, "%s", dump ? dump : "");
            free(dump);
        }
        json_decref(j);
        if (!strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "cancelled"))
            break;
    }
}

/* An async generate of model: the job's id into id; the HTTP status. */
static long submit_generate(test_server *s, const char *model, char id[64]) {
    http_resp r;
    long st = generate_as(s, model, 1, NULL, &r);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    return st;
}

static void test_generate_from_hub_reference(void) {
    test_server srv;
    CHECK(start(&srv, "gen", HUB_TOKEN, "cpu") == 0, "server start");
    image_rgb8 local = {0}, hub = {0};
    http_resp r;
    long st = generate(&srv, "tiny", &local, &r);
    CHECK(st == 200, "local model: %ld %s", st, r.body);
    http_resp_free(&r);
    thub_emu_ctl(&emu, "reset");
    st = generate(&srv, "hf://tester/tiny-sd", NULL, &r);
    CHECK(st == 409 && strstr(r.body, "hf://tester/tiny-sd") && strstr(r.body, "async"),
          "hf:// model not cached, synchronously: %ld %s", st, r.body);
    http_resp_free(&r);
    CHECK(thub_emu_count(&emu, "resolve") == 0, "a synchronous request downloaded");
    char id[64], state[32], msg[4096];
    st = submit_generate(&srv, "hf://tester/tiny-sd", id);
    CHECK(st == 202 && id[0], "async submission: %ld", st);
    wait_job(&srv, id, state, msg, sizeof msg);
    CHECK(!strcmp(state, "succeeded"), "the pulling job: %s", msg);
    st = generate(&srv, "hf://tester/tiny-sd", &hub, &r);
    CHECK(st == 200, "hf:// model once cached: %ld %s", st, r.body);
    http_resp_free(&r);
    CHECK(local.data && hub.data && local.width == hub.width && local.height == hub.height &&
              memcmp(local.data, hub.data, (size_t)local.width * local.height * 3) == 0,
          "the pulled model's image differs from the local model's");
    CHECK(thub_emu_count(&emu, "resolve") > 0, "nothing was downloaded from the Hub");
    char snap[900];
    snprintf(snap, sizeof snap, "%s/hub/models--tester--tiny-sd/snapshots", hf_home);
    struct stat sb;
    CHECK(stat(snap, &sb) == 0 && S_ISDIR(sb.st_mode), "no snapshot under %s", snap);
    image_free(&local);
    image_free(&hub);

    /* A repo that does not exist: not cached (409), and a job that fails
     * naming it; then still serving. */
    st = generate(&srv, "hf://tester/no-such-model", NULL, &r);
    CHECK(st == 409 && strstr(r.body, "tester/no-such-model"), "missing repo: %ld %s", st, r.body);
    http_resp_free(&r);
    st = submit_generate(&srv, "hf://tester/no-such-model", id);
    CHECK(st == 202 && id[0], "async submission: %ld", st);
    wait_job(&srv, id, state, msg, sizeof msg);
    CHECK(!strcmp(state, "failed") && strstr(msg, "tester/no-such-model") &&
              strstr(msg, "not found"),
          "the job of a missing repo: %s %s", state, msg);
    st = generate(&srv, "hf://tester", NULL, &r);
    CHECK(st == 400 && strstr(r.body, "model"), "malformed reference: %ld %s", st, r.body);
    http_resp_free(&r);
    st = generate(&srv, "hf://tester/tiny-sd", NULL, &r);
    CHECK(st == 200, "after the errors: %ld %s", st, r.body);
    http_resp_free(&r);
    server_stop(&srv, SIGTERM, 10000);
}

/* A Hub ControlNet with a local base: not cached, a synchronous request is
 * a 409 naming the controlnet field and downloads nothing; an async job
 * pulls it; then the synchronous request gives the image of the same
 * weights from the local folder, pixel for pixel. */
static void test_generate_with_hub_controlnet(void) {
    char cn_dir[800];
    snprintf(cn_dir, sizeof cn_dir, "%s/tiny/controlnet", models);
    CHECK(thub_seed_repo(&emu, HUB_TOKEN, "tester/tiny-cn", cn_dir) == 0, "publishing tiny-cn");
    test_server srv;
    CHECK(start(&srv, "gencn", HUB_TOKEN, "cpu") == 0, "server start");
    image_rgb8 local = {0}, hub = {0};
    http_resp r;
    long st = generate(&srv, "tiny", &local, &r);
    CHECK(st == 200, "local ControlNet: %ld %s", st, r.body);
    http_resp_free(&r);
    thub_emu_ctl(&emu, "reset");
    st = generate_cn(&srv, "tiny", "hf://tester/tiny-cn", 0, NULL, &r);
    CHECK(st == 409 && strstr(r.body, "\"controlnet\"") && strstr(r.body, "hf://tester/tiny-cn"),
          "hf:// ControlNet not cached, synchronously: %ld %s", st, r.body);
    http_resp_free(&r);
    CHECK(thub_emu_count(&emu, "resolve") == 0, "a synchronous request downloaded");
    char id[64], state[32], msg[4096];
    st = generate_cn(&srv, "tiny", "hf://tester/tiny-cn", 1, NULL, &r);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    http_resp_free(&r);
    CHECK(st == 202 && id[0], "async submission: %ld", st);
    wait_job(&srv, id, state, msg, sizeof msg);
    CHECK(!strcmp(state, "succeeded"), "the pulling job: %s", msg);
    CHECK(thub_emu_count(&emu, "resolve") > 0, "nothing was downloaded from the Hub");
    st = generate_cn(&srv, "tiny", "hf://tester/tiny-cn", 0, &hub, &r);
    CHECK(st == 200, "hf:// ControlNet once cached: %ld %s", st, r.body);
    http_resp_free(&r);
    CHECK(local.data && hub.data && local.width == hub.width && local.height == hub.height &&
              memcmp(local.data, hub.data, (size_t)local.width * local.height * 3) == 0,
          "the pulled ControlNet's image differs from the local one's");
    image_free(&local);
    image_free(&hub);
    server_stop(&srv, SIGTERM, 10000);
}

/* A train job pushing to the Hub, with an Idempotency-Key when key is not
 * NULL; *status is the HTTP status, *replayed whether the answer says it
 * is an earlier job's. */
static json_t *submit_push_job(test_server *s, const char *key, long *status, int *replayed) {
    char body[2048], idem[128], flag[16] = "";
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"tiny\", \"dataset\": \"%s\", "
             "\"resolution\": 16, \"max_train_steps\": 2, "
             "\"push_to_hub\": {\"repo_id\": \"tester/trained\"}}",
             fill);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", key ? key : "");
    const char *const h[] = {"Content-Type: application/json", "Accept: application/json",
                             key ? idem : NULL, NULL};
    http_resp r;
    http_do(s, "POST", "/v1/jobs", T, h, body, strlen(body), 0, &r);
    *status = r.status;
    if (replayed)
        *replayed = http_header(&r, "Idempotent-Replayed", flag, sizeof flag) == 0 &&
                    strcmp(flag, "true") == 0;
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    return j;
}

static void write_token_file(const char *path) {
    FILE *f = fopen(path, "w");
    if (f) fputs(HUB_TOKEN "\n", f), fclose(f);
}

static void test_push_needs_a_token_up_front(void) {
    test_server srv;
    /* No --device: jobs stay queued; only the submission is under test. */
    CHECK(start(&srv, "notoken", NULL, NULL) == 0, "server start");
    long st;
    json_t *j = submit_push_job(&srv, NULL, &st, NULL);
    json_t *e = json_object_get(j, "error");
    const char *field = json_string_value(json_object_get(e, "field"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    CHECK(st == 400 && field && strcmp(field, "push_to_hub") == 0 && msg &&
              strstr(msg, "HF_TOKEN") && strstr(msg, "HF_TOKEN_FILE"),
          "without a token: %ld %s", st, msg ? msg : "(no message)");
    json_decref(j);
    http_resp r;
    http_do(&srv, "GET", "/v1/jobs", T, NULL, NULL, 0, 0, &r);
    json_t *list = json_loads(r.body ? r.body : "", 0, NULL);
    CHECK(r.status == 200 && json_array_size(json_object_get(list, "jobs")) == 0,
          "a refused job was stored: %s", r.body);
    json_decref(list);
    http_resp_free(&r);
    server_stop(&srv, SIGTERM, 10000);

    /* The token file is read at each submission (no restart); an accepted
     * job's idempotent replay stays accepted after the token is gone. */
    char token_file[700], first[64] = "";
    snprintf(token_file, sizeof token_file, "%s/token", hf_home);
    write_token_file(token_file);
    CHECK(start(&srv, "withtoken", NULL, NULL) == 0, "server restart");
    int replayed = 0;
    j = submit_push_job(&srv, "push-once", &st, &replayed);
    const char *id = json_string_value(json_object_get(j, "id"));
    snprintf(first, sizeof first, "%s", id ? id : "");
    json_decref(j);
    EXPECT(st == 202 && first[0] && !replayed, "with a token file: %ld", st);
    unlink(token_file);
    j = submit_push_job(&srv, "push-once", &st, &replayed);
    const char *again = json_string_value(json_object_get(j, "id"));
    EXPECT(st == 202 && replayed && again && strcmp(again, first) == 0,
           "replay after the token went: %ld, replayed %d", st, replayed);
    json_decref(j);
    j = submit_push_job(&srv, "push-twice", &st, NULL);
    EXPECT(st == 400, "a new job without a token: %ld", st);
    json_decref(j);
    write_token_file(token_file);
    j = submit_push_job(&srv, "push-twice", &st, &replayed);
    EXPECT(st == 202 && !replayed, "token file back, no restart: %ld", st);
    json_decref(j);
    server_stop(&srv, SIGTERM, 10000);
}

/* A train job whose base model is hf://: the job pulls it (the submission
 * only checks the reference), trains, and its model card names the Hub id
 * as base_model, not the snapshot folder. */
static void test_train_job_from_hub_reference(void) {
    test_server srv;
    CHECK(start(&srv, "trainhub", HUB_TOKEN, "cpu") == 0, "server start");
    char body[2048], state[32] = "";
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"hf://tester/tiny-sd\", \"dataset\": \"%s\", "
             "\"resolution\": 16, \"train_batch_size\": 2, \"max_train_steps\": 2}",
             fill);
    http_resp r;
    long st = post_json(&srv, "/v1/jobs", body, "application/json", &r);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    CHECK(st == 202 && id[0], "submission: %ld", st);
    wait_job(&srv, id, state, NULL, 0);
    EXPECT(!strcmp(state, "succeeded"), "job %s is %s", id, state);
    char card[900];
    snprintf(card, sizeof card, "%s/trainhub/jobs/%s/README.md", root, id);
    size_t n;
    char *text = thub_read(card, &n);
    EXPECT(text && strstr(text, "\nbase_model: tester/tiny-sd\n"), "model card: %s",
           text ? text : "(none)");
    free(text);
    server_stop(&srv, SIGTERM, 10000);
}

/* GET /v1/jobs/{id}'s progress object (a new reference) and state. */
static json_t *job_progress(test_server *s, const char *id, char state[32]) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    http_resp r;
    http_do(s, "GET", path, T, NULL, NULL, 0, 0, &r);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    snprintf(state, 32, "%s", json_string_value(json_object_get(j, "state")) ?: "");
    json_t *p = json_incref(json_object_get(j, "progress"));
    json_decref(j);
    return p;
}

static long submit_train(test_server *s, const char *model, char id[64]) {
    char body[2048];
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"%s\", \"dataset\": \"%s\", "
             "\"resolution\": 16, \"train_batch_size\": 2, \"max_train_steps\": 2}",
             model, fill);
    http_resp r;
    long st = post_json(s, "/v1/jobs", body, "application/json", &r);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    return st;
}

static void test_train_job_download_phase(void) {
    char tiny[700], snap[900], id[64], state[32] = "", msg[4096];
    snprintf(tiny, sizeof tiny, "%s/tiny", models);
    CHECK(thub_seed_repo(&emu, HUB_TOKEN, "tester/tiny-dl", tiny) == 0, "publishing tiny-dl");
    /* Every file request (its metadata HEAD and its GET) waits 3 s before
     * answering: the seed commits every file inline, so the files are served
     * by the resolve route, never by LFS storage. */
    thub_emu_ctl(&emu, "reset");
    CHECK(thub_emu_ctl(&emu, "fault?route=resolve&kind=slow&delay_ms=3000&count=50") == 200,
          "fault");
    test_server srv;
    CHECK(start(&srv, "dl", HUB_TOKEN, "cpu") == 0, "server start");
    CHECK(submit_train(&srv, "hf://tester/tiny-dl", id) == 202 && id[0], "submission");
    json_t *p = NULL;
    for (int i = 0; i < 1500; i++, usleep(20000)) {
        json_decref(p);
        p = job_progress(&srv, id, state);
        if (json_is_string(json_object_get(p, "phase")) || !strcmp(state, "failed")) break;
    }
    CHECK(p && !strcmp(json_string_value(json_object_get(p, "phase")) ?: "", "download") &&
              json_is_string(json_object_get(p, "file")) &&
              json_integer_value(json_object_get(p, "total_bytes")) > 0,
          "no download phase in the job's progress (state %s)", state);
    json_decref(p);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    http_resp r;
    http_do(&srv, "POST", path, T, NULL, NULL, 0, 0, &r);
    http_resp_free(&r);
    wait_job(&srv, id, state, msg, sizeof msg);
    CHECK(!strcmp(state, "cancelled"), "the cancelled download: %s", msg);
    snprintf(snap, sizeof snap, "%s/hub/models--tester--tiny-dl/snapshots", hf_home);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test $(find %s -name '*.safetensors' 2>/dev/null | wc -l) -lt 3",
             snap);
    EXPECT(system(cmd) == 0, "every weight file was fetched despite the cancel");
    thub_emu_ctl(&emu, "reset"); /* no more faults: a new job pulls the rest and trains */
    CHECK(submit_train(&srv, "hf://tester/tiny-dl", id) == 202 && id[0], "second submission");
    wait_job(&srv, id, state, msg, sizeof msg);
    EXPECT(!strcmp(state, "succeeded"), "after the cancel: %s", msg);
    server_stop(&srv, SIGTERM, 10000);
}

/* POST /v1/jobs of a 2-step job (seed 3) on the local tiny model and
 * dataset, with extra members (",\"k\": v..." or ""); the id into id, the
 * answer into msg; the HTTP status. */
static long submit_on(test_server *s, const char *dataset, const char *extra, char id[64],
                      char *msg, size_t cap) {
    char body[2048];
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"tiny\", \"dataset\": \"%s\", "
             "\"resolution\": 16, \"train_batch_size\": 2, \"max_train_steps\": 2, \"seed\": 3, "
             "\"learning_rate\": 1e-4, \"lr_warmup_steps\": 0%s}",
             dataset, extra);
    http_resp r;
    long st = post_json(s, "/v1/jobs", body, "application/json", &r);
    if (msg) snprintf(msg, cap, "%s", r.body ? r.body : "");
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    return st;
}

/* A job of submit_on run to its end: 0 and the SHA-256 of its trained
 * weights when it succeeded, else -1 and its JSON in msg. */
static int trained_on(test_server *s, const char *srv_name, const char *dataset, const char *extra,
                      char sha[65], char *msg, size_t cap) {
    char id[64], state[32], w[1200];
    if (submit_on(s, dataset, extra, id, msg, cap) != 202 || !id[0]) return -1;
    wait_job(s, id, state, msg, cap);
    snprintf(w, sizeof w, "%s/%s/jobs/%s/diffusion_pytorch_model.safetensors", root, srv_name, id);
    return strcmp(state, "succeeded") || thub_sha256(w, sha) ? -1 : 0;
}

static void test_train_job_on_hub_dataset(void) {
    test_server srv;
    CHECK(start(&srv, "hubds", HUB_TOKEN, "cpu") == 0, "server start");
    char id[64], msg[4096], state[32];
    thub_emu_ctl(&emu, "reset");
    static const char *const bad[][3] = {
        {"hf://datasets/tester", "", "dataset"},
        {"hf://tester/pq", "", "dataset"},
        {"hf://datasets/tester/pq@", "", "dataset"},
        {"hf://datasets/tester/pq", ", \"dataset_config_name\": \"../x\"", "dataset_config_name"},
        {"", ", \"dataset_config_name\": \"default\"", "dataset_config_name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *ds = bad[i][0][0] ? bad[i][0] : fill;
        long st = submit_on(&srv, ds, bad[i][1], id, msg, sizeof msg);
        json_t *j = json_loads(msg, 0, NULL);
        const char *field =
            json_string_value(json_object_get(json_object_get(j, "error"), "field"));
        EXPECT(st == 400 && field && !strcmp(field, bad[i][2]), "%s%s: %ld %s", ds, bad[i][1], st,
               msg);
        json_decref(j);
    }
    EXPECT(thub_emu_count(&emu, NULL) == 0 && thub_emu_count(&emu, "info") == 0,
           "a submission asked the Hub");

    char local3[65], hub3[65], local[65], conv[65];
    const char *three = ", \"max_train_samples\": 3";
    CHECK(!trained_on(&srv, "hubds", pq_local, three, local3, msg, sizeof msg),
          "the local Parquet folder: %s", msg);
    CHECK(!trained_on(&srv, "hubds", "hf://datasets/tester/pq", three, hub3, msg, sizeof msg),
          "the Hub dataset: %s", msg);
    EXPECT(!strcmp(local3, hub3), "the Hub dataset trained other weights than its local copy");
    CHECK(!trained_on(&srv, "hubds", pq_local, "", local, msg, sizeof msg), "all samples: %s", msg);
    EXPECT(strcmp(local, local3), "max_train_samples changed nothing");
    CHECK(
        !trained_on(&srv, "hubds", "hf://datasets/tester/scripted@main", "", conv, msg, sizeof msg),
        "the refs/convert/parquet conversion: %s", msg);
    EXPECT(!strcmp(local, conv), "the conversion trained other weights than its Parquet file");
    char snap[900];
    snprintf(snap, sizeof snap, "%s/hub/datasets--tester--pq/snapshots", hf_home);
    struct stat sb;
    EXPECT(stat(snap, &sb) == 0, "not in the server's Hub cache: %s", snap);

    CHECK(submit_on(&srv, "hf://datasets/tester/no-such-dataset", "", id, NULL, 0) == 202,
          "submission of a missing dataset");
    wait_job(&srv, id, state, msg, sizeof msg);
    EXPECT(!strcmp(state, "failed") && strstr(msg, "tester/no-such-dataset") &&
               strstr(msg, "not found"),
           "the job of a missing dataset: %s %s", state, msg);
    server_stop(&srv, SIGTERM, 10000);
}

/* Polls job id until its progress shows the download phase (1), or it ends. */
static int saw_download(test_server *s, const char *id, char state[32]) {
    json_t *p = NULL;
    for (int i = 0; i < 1500; i++, usleep(20000)) {
        json_decref(p);
        p = job_progress(s, id, state);
        if (json_is_string(json_object_get(p, "phase")) || !strcmp(state, "failed") ||
            !strcmp(state, "succeeded"))
            break;
    }
    const int seen = p &&
                     !strcmp(json_string_value(json_object_get(p, "phase")) ?: "", "download") &&
                     json_is_string(json_object_get(p, "file")) &&
                     json_integer_value(json_object_get(p, "total_bytes")) > 0;
    json_decref(p);
    return seen;
}

static void cancel_job(test_server *s, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    http_resp r;
    http_do(s, "POST", path, T, NULL, NULL, 0, 0, &r);
    http_resp_free(&r);
}

/* Files named *suffix under dir (recursively). */
static int count_files(const char *dir, const char *suffix) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "exit $(find %s -name '*%s' 2>/dev/null | wc -l)", dir, suffix);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The dataset's download is a phase of the job that its cancel stops
 * before the second shard: every file request waits 3 s (they are inline
 * files, served by the resolve route). */
static void test_dataset_download_phase(void) {
    char id[64], state[32], msg[4096], snap[900];
    thub_emu_ctl(&emu, "reset");
    CHECK(thub_emu_ctl(&emu, "fault?route=resolve&kind=slow&delay_ms=3000&count=50") == 200,
          "fault");
    test_server srv;
    CHECK(start(&srv, "dsdl", HUB_TOKEN, "cpu") == 0, "server start");
    CHECK(submit_on(&srv, "hf://datasets/tester/pq-two", "", id, NULL, 0) == 202 && id[0],
          "submission");
    CHECK(saw_download(&srv, id, state), "no download phase in the job's progress (%s)", state);
    cancel_job(&srv, id);
    wait_job(&srv, id, state, msg, sizeof msg);
    CHECK(!strcmp(state, "cancelled"), "the cancelled download: %s", msg);
    snprintf(snap, sizeof snap, "%s/hub/datasets--tester--pq-two/snapshots", hf_home);
    EXPECT(count_files(snap, ".parquet") < 2, "every shard was fetched despite the cancel");
    thub_emu_ctl(&emu, "reset");
    server_stop(&srv, SIGTERM, 10000);
}

/* An async generate job of an uncached hf:// model: a download phase in
 * its progress, stopped half way by its cancel. */
static void test_generate_job_download_phase(void) {
    char tiny[700], snap[900], id[64], state[32] = "", msg[4096];
    snprintf(tiny, sizeof tiny, "%s/tiny", models);
    CHECK(thub_seed_repo(&emu, HUB_TOKEN, "tester/tiny-gen", tiny) == 0, "publishing tiny-gen");
    thub_emu_ctl(&emu, "reset");
    CHECK(thub_emu_ctl(&emu, "fault?route=resolve&kind=slow&delay_ms=3000&count=50") == 200,
          "fault");
    test_server srv;
    CHECK(start(&srv, "gendl", HUB_TOKEN, "cpu") == 0, "server start");
    CHECK(submit_generate(&srv, "hf://tester/tiny-gen", id) == 202 && id[0], "submission");
    CHECK(saw_download(&srv, id, state), "no download phase in the job's progress (%s)", state);
    cancel_job(&srv, id);
    wait_job(&srv, id, state, msg, sizeof msg);
    CHECK(!strcmp(state, "cancelled"), "the cancelled download: %s", msg);
    snprintf(snap, sizeof snap, "%s/hub/models--tester--tiny-gen/snapshots", hf_home);
    EXPECT(count_files(snap, ".safetensors") < 3,
           "every weight file was fetched despite the cancel");
    thub_emu_ctl(&emu, "reset");
    server_stop(&srv, SIGTERM, 10000);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "1", 0); /* shared cores: see test_server_engine.c */
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (thub_tmpdir(root, sizeof root)) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", root);
    snprintf(hf_home, sizeof hf_home, "%s/hf-home", root);
    snprintf(fill, sizeof fill, "%s/fill", root);
    mkdir(models, 0700);
    mkdir(hf_home, 0700);
    char cmd[2048], emu_dir[700];
    snprintf(cmd, sizeof cmd, "%s init-model --out %s/tiny --preset tiny", bin, models);
    int rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "%s dataset make-fill --n 2 --size 16 --out %s", bin, fill);
    if (!rc) rc = run_quiet(cmd);
    snprintf(emu_dir, sizeof emu_dir, "%s/emu-root", root);
    mkdir(emu_dir, 0755);
    const char *extra[] = {"--token", HUB_TOKEN, NULL};
    if (!rc) rc = thub_emu_start(&emu, emu_dir, extra);
    char tiny[700];
    snprintf(tiny, sizeof tiny, "%s/tiny", models);
    if (!rc) rc = thub_seed_repo(&emu, HUB_TOKEN, "tester/tiny-sd", tiny);
    /* Hub datasets: fusing/fill50k's layout by the independent Parquet
     * writer, as tester/pq on main, its copy under the data root (the
     * truth), a script-based dataset whose refs/convert/parquet holds the
     * same file, and two shards of another (the cancel test) */
    char gen[700], gen2[700], script[700], conv[700];
    snprintf(gen, sizeof gen, "%s/pq-gen", root);
    snprintf(gen2, sizeof gen2, "%s/pq-gen2", root);
    snprintf(script, sizeof script, "%s/pq-script", root);
    snprintf(conv, sizeof conv, "%s/pq-conv", root);
    snprintf(pq_local, sizeof pq_local, "%s/repo", gen);
    if (!rc) rc = parquet_generate("fill50k", gen);
    if (!rc) rc = parquet_generate("dataset", gen2);
    if (!rc)
        rc = shell_run("mkdir -p %s %s/default/train && echo 'import datasets' >%s/scripted.py && "
                       "cp %s/data/train-00000-of-00001.parquet %s/default/train/0000.parquet && "
                       "rm -rf %s/images %s/truth.json %s/data/test-*",
                       script, conv, script, pq_local, conv, gen2, gen2, gen2);
    if (!rc) rc = thub_seed_dataset(&emu, HUB_TOKEN, "tester/pq", pq_local);
    if (!rc) rc = thub_seed_dataset(&emu, HUB_TOKEN, "tester/pq-two", gen2);
    if (!rc) rc = thub_seed_dataset(&emu, HUB_TOKEN, "tester/scripted", script);
    if (!rc)
        rc =
            thub_seed_dataset_ref(&emu, HUB_TOKEN, "tester/scripted", conv, "refs/convert/parquet");
    /* The control image: a white ring on black. */
    uint8_t px[SIZE * SIZE * 3];
    for (int y = 0; y < SIZE; y++)
        for (int x = 0; x < SIZE; x++) {
            int d2 = (2 * x - 15) * (2 * x - 15) + (2 * y - 15) * (2 * y - 15);
            memset(px + 3 * (y * SIZE + x), d2 > 64 && d2 < 144 ? 255 : 0, 3);
        }
    image_rgb8 img = {SIZE, SIZE, px};
    uint8_t *png = NULL;
    size_t png_len = 0;
    cnet_error err = {0};
    if (!rc) rc = image_encode_png(&img, NULL, 0, &png, &png_len, &err);
    if (!rc) control_b64 = api_base64_encode(png, png_len);
    if (rc || !control_b64) {
        printf("setup failed (%s)\ntest_server_hubref: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    RUN(test_generate_from_hub_reference);
    RUN(test_generate_with_hub_controlnet);
    RUN(test_push_needs_a_token_up_front);
    RUN(test_train_job_from_hub_reference);
    RUN(test_train_job_download_phase);
    RUN(test_train_job_on_hub_dataset);
    RUN(test_dataset_download_phase);
    RUN(test_generate_job_download_phase);
    thub_emu_stop(&emu);
    free(control_b64);
    free(png);
    tmpdir_remove(root);
    return harness_done();
}
