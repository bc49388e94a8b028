/* The REST API against a real `cnet serve --port 0` on 127.0.0.1, over
 * libcurl: the auth matrix walked from api/openapi.yaml, the job routes
 * (create/get/list/cancel/artifacts/events), idempotency, the queue cap,
 * body-size sweeps around each limit (Content-Length and chunked), a corpus
 * of bad JSON, durable acceptance across kill -9, and graceful SIGTERM;
 * the dataset routes against the store's own rows (read through a second
 * connection): an upload registered ready, delete refused while a queued
 * job uses it, and a dataset whose row is not ready (an upload cut after
 * its folder was complete) neither listed, shown, previewed nor trainable. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "server/store/jobs_datasets.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"
#include "tests/lib/lib_store.h"

static char dir[512], data[600];
static test_server srv;
static const char *const T = SERVER_TEST_TOKEN;
static const char *spec_ok = "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"}";
static char dataset_dir[700]; /* a folder under --data-root */

static json_t *body_json(const http_resp *r) { return json_loadb(r->body, r->len, 0, NULL); }

static const char *err_code(json_t *v) {
    return json_string_value(json_object_get(json_object_get(v, "error"), "code"));
}
static const char *err_field(json_t *v) {
    return json_string_value(json_object_get(json_object_get(v, "error"), "field"));
}

/* POSTs a valid job; returns its id into id (or "" on failure) and the status. */
static long create_job(const char *key, const char *extra_field, char id[64]) {
    char body[1400];
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"%s}", dataset_dir,
             extra_field ? extra_field : "");
    char hdr[300];
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", key ? key : "");
    const char *const h[] = {hdr, NULL};
    http_resp r;
    http_do(&srv, "POST", "/v1/jobs", T, key ? h : NULL, body, strlen(body), 0, &r);
    json_t *v = body_json(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(v, "id")) ?: "");
    json_decref(v);
    long status = r.status;
    if (status != 202) printf("    create: %ld %s\n", status, r.body);
    http_resp_free(&r);
    return status;
}

static void test_server_auth_matrix_from_openapi(void) {
    size_t n;
    char *yaml = file_read("api/openapi.yaml", &n);
    CHECK(yaml, "api/openapi.yaml (tests run from the repo root)");
    int in_paths = 0, ops = 0, protected_ok = 0, protected_total = 0;
    char path[256] = "", method[16] = "";
    char *save = NULL;
    /* Collect (path, method, public?) by indentation: 2 spaces a path, 4 a
     * method, 6 `security: []` marks a public operation. */
    char *lines[2000];
    int nl = 0;
    for (char *l = strtok_r(yaml, "\n", &save); l && nl < 2000; l = strtok_r(NULL, "\n", &save))
        lines[nl++] = l;
    for (int i = 0; i < nl; i++) {
        char *l = lines[i];
        if (!strncmp(l, "paths:", 6)) {
            in_paths = 1;
            continue;
        }
        if (in_paths && l[0] != ' ') in_paths = 0;
        if (!in_paths) continue;
        if (l[0] == ' ' && l[1] == ' ' && l[2] == '/') {
            sscanf(l + 2, "%255[^:]", path);
            continue;
        }
        if (strncmp(l, "    ", 4) || l[4] == ' ' || !strchr(l, ':')) continue;
        sscanf(l + 4, "%15[a-z]", method);
        int public = 0;
        for (int k = i + 1; k < nl && !strncmp(lines[k], "      ", 6); k++)
        public |= !strncmp(lines[k], "      security: []", 18);
        char url[300], *o = url;
        for (const char *p = path; *p; p++) {
            if (*p == '{') {
                const char *end = strchr(p, '}');
                o += sprintf(o, "%s",
                             !strncmp(p, "{id}", 4) ? "j_00000000000000000000000000000000" : "x");
                p = end;
            } else {
                *o++ = *p;
            }
        }
        *o = '\0';
        char upper[16];
        for (int k = 0; k < 16; k++)
            upper[k] = (char)(method[k] >= 'a' ? method[k] - 32 : method[k]);
        ops++;
        http_resp a, b;
        http_do(&srv, upper, url, NULL, NULL, NULL, 0, 0, &a);
        http_do(&srv, upper, url, "wrong-token-000000000", NULL, NULL, 0, 0, &b);
        char www[128] = "";
        http_header(&a, "WWW-Authenticate", www, sizeof www);
        if (public) {
            EXPECT(a.status != 401 && a.status != 403 && a.status != 404 && a.status != 405,
                   "%s %s public, got %ld", upper, url, a.status);
        } else {
            protected_total++;
            /* A1111 clients answer a Basic challenge (server/a1111/) */
            const int a1111 = !strncmp(url, "/sdapi/", 7) || !strncmp(url, "/controlnet/", 12);
            int ok = a.status == 401 && !strncmp(www, a1111 ? "Basic" : "Bearer", a1111 ? 5 : 6) &&
                     b.status == 403;
            protected_ok += ok;
            EXPECT(ok, "%s %s: no token %ld (%s), wrong token %ld", upper, url, a.status, www,
                   b.status);
        }
        http_resp_free(&a);
        http_resp_free(&b);
    }
    free(yaml);
    printf("    auth matrix: %d operations in the spec, %d/%d protected ones answer 401/403\n", ops,
           protected_ok, protected_total);
    CHECK(ops >= 13 && protected_ok == protected_total, "ops %d", ops);
    http_resp r;
    http_do(&srv, "GET", "/v1/openapi.yaml", T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && strstr(r.body, "openapi: 3.1.0"), "served spec: %ld", r.status);
    http_resp_free(&r);
}

static void test_server_job_routes(void) {
    char id[64], id2[64];
    CHECK(create_job(NULL, NULL, id) == 202 && id[0], "create");
    http_resp r;
    char path[200], loc[200] = "";
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    json_t *v = body_json(&r);
    CHECK(r.status == 200 && !strcmp(json_string_value(json_object_get(v, "state")), "queued"),
          "get: %ld %s", r.status, r.body);
    CHECK(json_integer_value(json_object_get(json_object_get(v, "spec"), "resolution")) == 512,
          "defaults filled");
    CHECK(json_is_false(json_object_get(json_object_get(v, "spec"), "gradient_checkpointing")) &&
              json_is_false(json_object_get(json_object_get(v, "spec"), "set_grads_to_none")),
          "memory levers default to off");
    CHECK(json_integer_value(json_object_get(v, "queue_position")) >= 1, "queue position");
    json_decref(v);
    CHECK(http_header(&r, "X-Request-Id", loc, sizeof loc) == 0 && strlen(loc) >= 8, "request id");
    http_resp_free(&r);
    /* Location on create. */
    char body[1200];
    snprintf(body, sizeof body, spec_ok, dataset_dir);
    http_do(&srv, "POST", "/v1/jobs", T, NULL, body, strlen(body), 0, &r);
    v = body_json(&r);
    snprintf(id2, sizeof id2, "%s", json_string_value(json_object_get(v, "id")) ?: "");
    json_decref(v);
    snprintf(path, sizeof path, "/v1/jobs/%s", id2);
    CHECK(r.status == 202 && http_header(&r, "Location", loc, sizeof loc) == 0 &&
              !strcmp(loc, path),
          "Location %s", loc);
    http_resp_free(&r);
    /* Pagination: limit 1 walks every job once. */
    int seen = 0, pages = 0;
    char cursor[40] = "";
    do {
        snprintf(path, sizeof path, "/v1/jobs?limit=1%s%s", cursor[0] ? "&cursor=" : "", cursor);
        http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
        v = body_json(&r);
        seen += (int)json_array_size(json_object_get(v, "jobs"));
        const char *next = json_string_value(json_object_get(v, "next_cursor"));
        snprintf(cursor, sizeof cursor, "%s", next ? next : "");
        json_decref(v);
        http_resp_free(&r);
    } while (cursor[0] && ++pages < 100);
    CHECK(seen >= 2 && seen == pages + 1, "seen %d pages %d", seen, pages);
    http_do(&srv, "GET", "/v1/jobs?state=bogus", T, NULL, NULL, 0, 0, &r);
    v = body_json(&r);
    CHECK(r.status == 400 && err_field(v) && !strcmp(err_field(v), "state"), "bad filter");
    json_decref(v);
    http_resp_free(&r);
    http_do(&srv, "GET", "/v1/jobs?kind=generate", T, NULL, NULL, 0, 0, &r);
    v = body_json(&r);
    CHECK(r.status == 200 && json_array_size(json_object_get(v, "jobs")) == 0, "kind filter");
    json_decref(v);
    http_resp_free(&r);
    /* Cancel: queued → cancelled, then 409; unknown → 404. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    http_do(&srv, "POST", path, T, NULL, NULL, 0, 0, &r);
    v = body_json(&r);
    CHECK(r.status == 200 && !strcmp(json_string_value(json_object_get(v, "state")), "cancelled"),
          "cancel: %ld %s", r.status, r.body);
    json_decref(v);
    http_resp_free(&r);
    http_do(&srv, "POST", path, T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 409, "cancel of a terminal job: %ld", r.status);
    http_resp_free(&r);
    http_do(&srv, "POST", "/v1/jobs/j_00000000000000000000000000000000/cancel", T, NULL, NULL, 0, 0,
            &r);
    CHECK(r.status == 404, "unknown job: %ld", r.status);
    http_resp_free(&r);
    /* Artifacts: only files in the job's dir, names validated. */
    char file[900];
    snprintf(file, sizeof file, "%s/jobs/%s/weights.bin", data, id2);
    CHECK(file_write(file, "0123456789", 10) == 0, "write artifact");
    snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/weights.bin", id2);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && r.len == 10 && !memcmp(r.body, "0123456789", 10), "artifact %ld",
          r.status);
    http_resp_free(&r);
    const char *bad[] = {"..%2Fjobs.db", ".hidden", "missing.bin"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/%s", id2, bad[i]);
        http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
        EXPECT(r.status == 400 || r.status == 404, "%s: %ld", bad[i], r.status);
        http_resp_free(&r);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s", id2);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    CHECK(strstr(r.body, "/artifacts/weights.bin"), "artifact link: %s", r.body);
    http_resp_free(&r);
}

/* mixed_precision: the script's no/fp16/bf16 are accepted and kept in the
 * spec (fp8 is refused in the bad-JSON corpus). */
static void test_server_mixed_precision(void) {
    const char *values[] = {"no", "fp16", "bf16"};
    for (int i = 0; i < 3; i++) {
        char extra[64], id[64], path[200];
        snprintf(extra, sizeof extra, ", \"mixed_precision\": \"%s\"", values[i]);
        CHECK(create_job(NULL, extra, id) == 202 && id[0], "%s refused", values[i]);
        snprintf(path, sizeof path, "/v1/jobs/%s", id);
        http_resp r;
        http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
        json_t *v = body_json(&r);
        const char *got =
            json_string_value(json_object_get(json_object_get(v, "spec"), "mixed_precision"));
        EXPECT(got && strcmp(got, values[i]) == 0, "spec keeps %s: %s", values[i], r.body);
        json_decref(v);
        http_resp_free(&r);
    }
}

static void test_server_idempotency(void) {
    char a[64], b[64], c[64];
    CHECK(create_job("key-1", NULL, a) == 202, "first");
    CHECK(create_job("key-1", NULL, b) == 202, "repeat");
    CHECK(a[0] && !strcmp(a, b), "same key and body → same job (%s, %s)", a, b);
    CHECK(create_job("key-1", ", \"seed\": 7", c) == 422, "same key, other body → 422");
}

static void test_server_sse_replay(void) {
    char id[64], path[200];
    CHECK(create_job(NULL, NULL, id) == 202, "create");
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
    http_resp r;
    http_do(&srv, "POST", path, T, NULL, NULL, 0, 0, &r);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    time_t t0 = time(NULL);
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && time(NULL) - t0 < 5, "stream ends for a terminal job");
    CHECK(strstr(r.body, "\"queued\"") && strstr(r.body, "\"cancelled\""), "events: %s", r.body);
    long long first = 0;
    CHECK(sscanf(r.body, "id: %lld", &first) == 1, "first id");
    http_resp_free(&r);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %lld", first);
    const char *const h[] = {hdr, NULL};
    http_do(&srv, "GET", path, T, h, NULL, 0, 0, &r);
    CHECK(r.status == 200 && !strstr(r.body, "\"queued\"") && strstr(r.body, "\"cancelled\""),
          "replay after Last-Event-ID: %s", r.body);
    http_resp_free(&r);
}

static void expect_json_400(const char *name, const char *body, size_t len, const char *field) {
    http_resp r;
    http_do(&srv, "POST", "/v1/jobs", T, NULL, body, len, 0, &r);
    json_t *v = body_json(&r);
    EXPECT(r.status == 400 && err_code(v), "%s: %ld %.200s", name, r.status, r.body);
    if (field)
        EXPECT(err_field(v) && !strcmp(err_field(v), field), "%s: field %s, want %s", name,
               err_field(v) ? err_field(v) : "(none)", field);
    json_decref(v);
    http_resp_free(&r);
}

static void test_server_bad_json_corpus(void) {
    static char buf[API_JSON_BODY_MAX];
    /* Nesting beyond jansson's 2048 inside the body cap. */
    int n = 0;
    for (int i = 0; i < 3000; i++) buf[n++] = '[';
    for (int i = 0; i < 3000; i++) buf[n++] = ']';
    expect_json_400("depth 3000", buf, (size_t)n, NULL);
    n = sprintf(buf,
                "{\"pretrained_model_name_or_path\":\"sd\",\"dataset\":\"%s\","
                "\"validation_prompt\":[",
                dataset_dir);
    for (int i = 0; i < 30000; i++) n += sprintf(buf + n, "%s1", i ? "," : "");
    n += sprintf(buf + n, "]}");
    expect_json_400("30k-element array", buf, (size_t)n, "validation_prompt");
    char b[1600];
    const char *dup = "{\"dataset\": \"a\", \"dataset\": \"b\"}";
    expect_json_400("duplicate keys", dup, strlen(dup), NULL);
    const char utf8[] = "{\"pretrained_model_name_or_path\": \"\xff\xfe\"}";
    expect_json_400("invalid UTF-8", utf8, sizeof utf8 - 1, NULL);
    expect_json_400("NaN", "{\"learning_rate\": NaN}", 22, NULL);
    expect_json_400("1e400", "{\"learning_rate\": 1e400}", 24, NULL);
    expect_json_400("not an object", "[1,2]", 5, NULL);
    expect_json_400("empty", "", 0, NULL);
    struct {
        const char *name, *extra, *field;
    } cases[] = {
        {"unknown field", ", \"learnin_rate\": 1", "learnin_rate"},
        {"wrong type", ", \"resolution\": \"512\"", "resolution"},
        {"not a multiple of 8", ", \"resolution\": 500", "resolution"},
        {"resolution too big", ", \"resolution\": 1032", "resolution"},
        {"batch 0", ", \"train_batch_size\": 0", "train_batch_size"},
        {"steps too many", ", \"max_train_steps\": 1000001", "max_train_steps"},
        {"lr 0", ", \"learning_rate\": 0", "learning_rate"},
        {"bad scheduler", ", \"lr_scheduler\": \"cosine2\"", "lr_scheduler"},
        {"bad precision", ", \"mixed_precision\": \"fp8\"", "mixed_precision"},
        {"8-bit adam not a boolean", ", \"use_8bit_adam\": 1", "use_8bit_adam"},
        {"empty prompts 1.5", ", \"proportion_empty_prompts\": 1.5", "proportion_empty_prompts"},
        {"prompt not string", ", \"validation_prompt\": [3]", "validation_prompt[0]"},
        {"hub unknown", ", \"push_to_hub\": {\"repo_id\": \"a/b\", \"x\": 1}", "push_to_hub.x"},
        {"hub repo", ", \"push_to_hub\": {\"repo_id\": \"../b\"}", "push_to_hub.repo_id"},
        {"float steps", ", \"max_train_steps\": 10.5", "max_train_steps"},
        {"checkpointing not bool", ", \"gradient_checkpointing\": 1", "gradient_checkpointing"},
        {"grads to none not bool", ", \"set_grads_to_none\": \"true\"", "set_grads_to_none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        n = snprintf(b, sizeof b,
                     "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"%s}",
                     dataset_dir, cases[i].extra);
        expect_json_400(cases[i].name, b, (size_t)n, cases[i].field);
    }
    char longp[1200];
    memset(longp, 'a', 1001);
    longp[1001] = '\0';
    n = snprintf(b, sizeof b,
                 "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\", "
                 "\"validation_prompt\": [\"%s\"]}",
                 dataset_dir, longp);
    expect_json_400("prompt 1001 bytes", b, (size_t)n, "validation_prompt[0]");
    const char *refs[][2] = {{"/etc", "pretrained_model_name_or_path"},
                             {"../sd", "pretrained_model_name_or_path"},
                             {"nope", "pretrained_model_name_or_path"}};
    for (int i = 0; i < 3; i++) {
        n = snprintf(b, sizeof b,
                     "{\"pretrained_model_name_or_path\": \"%s\", \"dataset\": \"%s\"}", refs[i][0],
                     dataset_dir);
        expect_json_400(refs[i][0], b, (size_t)n, refs[i][1]);
    }
    const char *ds[] = {"/etc", "relative/path", "d_0123"};
    for (int i = 0; i < 3; i++) {
        n = snprintf(b, sizeof b,
                     "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"}", ds[i]);
        expect_json_400(ds[i], b, (size_t)n, "dataset");
    }
}

/* A body of exactly n bytes that is valid JSON but an invalid spec (so it is
 * answered 400 when read, 413 when over the limit). */
static void sweep(const char *path, int64_t limit, int json) {
    static char buf[API_JSON_BODY_MAX + 64];
    int wrong = 0, total = 0;
    for (int64_t n = limit - 16; n <= limit + 32; n++) {
        memset(buf, ' ', (size_t)n);
        if (json) memcpy(buf, "{\"x\":1}", 7);
        for (int chunked = 0; chunked < 2; chunked++) {
            http_resp r;
            http_do(&srv, "POST", path, T, NULL, buf, (size_t)n, chunked, &r);
            long want_over = n > limit;
            int ok = want_over ? r.status == 413 : (r.status == 400);
            if (ok && want_over) {
                json_t *v = body_json(&r);
                ok = err_code(v) != NULL;
                json_decref(v);
            }
            total++;
            if (!ok && wrong++ < 5)
                printf("    %s %lld bytes %s: %ld\n", path, (long long)n,
                       chunked ? "chunked" : "Content-Length", r.status);
            http_resp_free(&r);
        }
    }
    printf("    %s: %d requests from limit-16 to limit+32, %d wrong\n", path, total, wrong);
    EXPECT(wrong == 0, "%s sweep", path);
}

static void test_server_body_limit_sweeps(void) {
    sweep("/v1/jobs", API_JSON_BODY_MAX, 1);
    sweep("/v1/datasets", 20000, 0); /* started with --upload-max 20000 */
}

static void test_server_queue_cap(void) {
    char sub[700];
    snprintf(sub, sizeof sub, "%s/capped", dir);
    test_server saved = srv;
    const char *const extra[] = {"--queue-cap", "2", "--models", NULL, "--data-root", dir, NULL};
    char models[700];
    snprintf(models, sizeof models, "%s/models", data);
    const char *args[] = {extra[0], extra[1], extra[2], models, extra[4], extra[5], NULL};
    CHECK(server_start(&srv, sub, args) == 0, "start capped server");
    char id[64];
    long s1 = create_job(NULL, NULL, id), s2 = create_job(NULL, NULL, id);
    char body[1200];
    snprintf(body, sizeof body, spec_ok, dataset_dir);
    http_resp r;
    http_do(&srv, "POST", "/v1/jobs", T, NULL, body, strlen(body), 0, &r);
    char after[32] = "";
    http_header(&r, "Retry-After", after, sizeof after);
    long s3 = r.status;
    http_resp_free(&r);
    server_stop(&srv, SIGTERM, 10000);
    srv = saved;
    CHECK(s1 == 202 && s2 == 202 && s3 == 429 && atoi(after) > 0, "%ld %ld %ld Retry-After %s", s1,
          s2, s3, after);
}

/* Uploads the tar at path; its id into id ("" on failure); the status. */
static long upload(const char *path, char id[64]) {
    size_t len;
    char *bytes = file_read(path, &len);
    http_resp r;
    http_do(&srv, "POST", "/v1/datasets?name=fill.tar", T, NULL, bytes, bytes ? len : 0, 0, &r);
    free(bytes);
    json_t *v = body_json(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(v, "id")) ?: "");
    json_decref(v);
    long status = r.status;
    if (status != 201) printf("    upload: %ld %s\n", status, r.body);
    http_resp_free(&r);
    return status;
}

static long job_on(const char *dataset, char id[64], char msg[512]) {
    char body[300];
    snprintf(body, sizeof body, "{\"pretrained_model_name_or_path\": \"sd\", \"dataset\": \"%s\"}",
             dataset);
    http_resp r;
    http_do(&srv, "POST", "/v1/jobs", T, NULL, body, strlen(body), 0, &r);
    json_t *v = body_json(&r);
    snprintf(id, 64, "%s", json_string_value(json_object_get(v, "id")) ?: "");
    snprintf(msg, 512, "%s", r.body ? r.body : "");
    json_decref(v);
    long status = r.status;
    http_resp_free(&r);
    return status;
}

/* The status of method path, its body into body[1024]. */
static long call(const char *method, const char *path, char body[1024]) {
    http_resp r;
    http_do(&srv, method, path, T, NULL, NULL, 0, 0, &r);
    snprintf(body, 1024, "%s", r.body ? r.body : "");
    long status = r.status;
    http_resp_free(&r);
    return status;
}

static void test_server_datasets_in_store(void) {
    char cmd[4096], fill[700], tar[700], where[700], id[64], id2[64], jid[64], msg[512];
    char body[1024], path[200];
    const char *build = getenv("BUILD");
    snprintf(fill, sizeof fill, "%s/fill", dir);
    snprintf(tar, sizeof tar, "%s/fill.tar", dir);
    snprintf(cmd, sizeof cmd,
             "%s/cnet dataset make-fill --n 2 --size 16 --out %s >/dev/null 2>&1 && "
             "tar -C %s -cf %s .",
             build && *build ? build : "build", fill, fill, tar);
    CHECK(system(cmd) == 0, "make and tar a fill dataset");
    CHECK(upload(tar, id) == 201 && id[0], "upload");
    /* the truth: the store's row, through a connection of the test's own */
    if (store_test_url())
        snprintf(where, sizeof where, "%s", store_test_url());
    else
        snprintf(where, sizeof where, "%s/jobs.db", data);
    char jd[700];
    snprintf(jd, sizeof jd, "%s/jobs", data);
    jobs_store *store = NULL;
    CHECK(jobs_open(&store, where, jd, NULL) == 0, "open the server's store");
    jobs_dataset d;
    EXPECT(jobs_dataset_get(store, id, &d, NULL) == 0 && d.state == JOBS_DATASET_READY &&
               d.bytes > 0 && !strcmp(d.name, "fill.tar"),
           "the store has %s ready", id);
    jobs_dataset_clear(&d);
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    EXPECT(call("GET", path, body) == 200 && strstr(body, id), "GET %s: %s", path, body);
    EXPECT(call("GET", "/v1/datasets", body) == 200 && strstr(body, id), "listed: %s", body);
    /* a queued jid on it (--device none: it stays queued) keeps it */
    CHECK(job_on(id, jid, msg) == 202, "a job on the upload: %s", msg);
    EXPECT(call("DELETE", path, body) == 409 && strstr(body, jid) && strstr(body, "conflict"),
           "delete while job %s is queued: %s", jid, body);
    char cancel[200];
    snprintf(cancel, sizeof cancel, "/v1/jobs/%s/cancel", jid);
    CHECK(call("POST", cancel, body) == 200, "cancel: %s", body);
    EXPECT(call("DELETE", path, body) == 200, "delete once the job ended: %s", body);
    EXPECT(call("GET", path, body) == 404, "GET after delete: %s", body);
    EXPECT(call("GET", "/v1/datasets", body) == 200 && !strstr(body, id), "not listed: %s", body);
    EXPECT(jobs_dataset_get(store, id, &d, NULL) == CNET_ENOTFOUND, "the row is gone");
    char folder[900];
    snprintf(folder, sizeof folder, "%s/datasets/%s", data, id);
    struct stat st;
    EXPECT(stat(folder, &st) != 0, "the folder is gone");
    EXPECT(job_on(id, jid, msg) == 400 && strstr(msg, "not_found"), "a job on it: %s", msg);
    EXPECT(call("DELETE", path, body) == 404, "deleting twice: %s", body);
    /* a complete folder whose row is not ready (a node cut between the two) */
    CHECK(upload(tar, id2) == 201, "a second upload");
    char sql[300];
    snprintf(sql, sizeof sql,
             "UPDATE datasets SET state = 'uploading', report_json = NULL WHERE id = '%s'", id2);
    CHECK(store_test_sql(where, sql) == 0, "its row back to uploading, behind the server's back");
    snprintf(path, sizeof path, "/v1/datasets/%s", id2);
    EXPECT(call("GET", path, body) == 404 && strstr(body, "uploaded"), "GET: %s", body);
    EXPECT(call("GET", "/v1/datasets", body) == 200 && !strstr(body, id2), "listed: %s", body);
    snprintf(path, sizeof path, "/v1/datasets/%s/samples", id2);
    EXPECT(call("GET", path, body) == 404, "samples: %s", body);
    EXPECT(job_on(id2, jid, msg) == 400 && strstr(msg, "not_found"), "a job on it: %s", msg);
    snprintf(path, sizeof path, "/v1/datasets/%s", id2);
    EXPECT(call("DELETE", path, body) == 200, "a cut upload can be deleted: %s", body);
    snprintf(folder, sizeof folder, "%s/datasets/%s", data, id2);
    EXPECT(stat(folder, &st) != 0, "its folder too");
    jobs_close(store);
}

static void test_server_ops_routes(void) {
    http_resp r;
    http_do(&srv, "GET", "/healthz", NULL, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200, "healthz %ld", r.status);
    http_resp_free(&r);
    http_do(&srv, "GET", "/readyz", NULL, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 || r.status == 503, "readyz %ld", r.status);
    CHECK(r.status == 200 || strstr(r.body, "disk"), "not ready only for the disk floor: %s",
          r.body);
    http_resp_free(&r);
    http_do(&srv, "GET", "/metrics", NULL, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && strstr(r.body, "cnet_jobs{state=\"queued\"}") &&
              strstr(r.body, "cnet_base_model_loads_total 0") &&
              strstr(r.body, "cnet_http_requests_total{route=\"POST /v1/jobs\",status=\"202\"}"),
          "metrics: %s", r.body);
    http_resp_free(&r);
    http_do(&srv, "GET", "/v1/models", T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && strstr(r.body, "\"name\":\"sd\""), "models: %s", r.body);
    http_resp_free(&r);
    http_do(&srv, "GET", "/v1/datasets", T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && strstr(r.body, "\"datasets\""), "datasets: %s", r.body);
    http_resp_free(&r);
    http_do(&srv, "DELETE", "/v1/jobs", T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 405, "wrong method %ld", r.status);
    http_resp_free(&r);
    http_do(&srv, "GET", "/nope", T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 404 && strstr(r.body, "\"error\""), "unknown route %ld", r.status);
    http_resp_free(&r);
}

static void test_server_durable_acceptance_and_sigterm(void) {
    char id[64], path[200];
    CHECK(create_job("durable-1", NULL, id) == 202, "create");
    CHECK(server_stop(&srv, SIGKILL, 5000) == 128 + SIGKILL, "kill -9");
    char models[700];
    snprintf(models, sizeof models, "%s/models", data);
    const char *const args[] = {"--models",     models,  "--data-root", dir,
                                "--upload-max", "20000", NULL};
    CHECK(server_start(&srv, data, args) == 0, "restart");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    http_resp r;
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    CHECK(r.status == 200 && strstr(r.body, "\"queued\""), "job survived: %ld", r.status);
    http_resp_free(&r);
    char again[64];
    CHECK(create_job("durable-1", NULL, again) == 202 && !strcmp(id, again),
          "a client retry after the crash gets the same job");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = server_stop(&srv, SIGTERM, 10000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("    SIGTERM → exit %d in %.2f s\n", rc, s);
    CHECK(rc == 0 && s < 10, "exit %d after %.1f s", rc, s);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(dir, sizeof dir, "cnet-api-")) return printf("no temp dir\n"), 1;
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(dataset_dir, sizeof dataset_dir, "%s/ds", dir);
    char models[700], idx[800];
    snprintf(models, sizeof models, "%s/models", data);
    mkdir(data, 0700);
    mkdir(models, 0700);
    mkdir(dataset_dir, 0700);
    snprintf(idx, sizeof idx, "%s/sd", models);
    mkdir(idx, 0700);
    strcat(idx, "/model_index.json");
    file_write(idx, "{}", 2);
    const char *const args[] = {"--models",     models,  "--data-root", dir,
                                "--upload-max", "20000", NULL};
    if (server_start(&srv, data, args)) {
        printf("test_server_api: cannot start cnet serve\ntest_server_api: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_server_auth_matrix_from_openapi);
    RUN(test_server_job_routes);
    RUN(test_server_mixed_precision);
    RUN(test_server_idempotency);
    RUN(test_server_sse_replay);
    RUN(test_server_bad_json_corpus);
    RUN(test_server_body_limit_sweeps);
    RUN(test_server_queue_cap);
    RUN(test_server_datasets_in_store);
    RUN(test_server_ops_routes);
    RUN(test_server_durable_acceptance_and_sigterm);
    if (srv.pid) server_stop(&srv, SIGKILL, 1000);
    tmpdir_remove(dir);
    return harness_done();
}
