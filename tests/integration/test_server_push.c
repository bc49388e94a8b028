/* The push phase of a training job (`push_to_hub: {repo_id, private}`) end to
 * end: a real `cnet serve --device cpu` on 127.0.0.1 whose HF_ENDPOINT is the
 * Hub emulator (tests/tools/tool_hub_emulator.c) and whose HF_TOKEN is a random
 * canary, training a tiny model (`cnet init-model --preset tiny`) on a
 * `cnet dataset make-fill` dataset:
 *   - the repo holds exactly config.json, the weights, README.md and the
 *     validation image (plus the Hub's .gitattributes), byte-identical
 *     (sha256, downloaded through the emulator's resolve route) to the job's
 *     artefacts — no checkpoints, optimizer state or logs, though the job dir
 *     has them; it is private (invisible without a token); the job's events
 *     show the phases hash → check → upload (bytes up to the total) → commit
 *     → done and the result, whose commit is the repo's head;
 *   - kill -9 while the Hub holds the commit (the answer never arrives), and
 *     while a multipart part is uploading: after a restart the job succeeds
 *     and the repo has exactly one commit from it;
 *   - 5xx and 429 (RateLimit) on every route the push uses: the push still
 *     succeeds on its first attempt, within each request's retry budget;
 *   - the canary is nowhere but in Authorization headers of the emulator's
 *     API routes: not in the server's stdout/stderr, the data dir (SQLite
 *     file and WAL, job dirs), API answers, /metrics, the emulator's stored
 *     data, nor any storage request.
 * The truth is the emulator's own storage and request log, not the server's
 * account of what it did. */
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_hub.h"
#include "tests/lib/lib_server.h"

#define T SERVER_TEST_TOKEN
#define READ_TOKEN "hf_pushtestreadtoken01"
#define JOB_TIMEOUT_S 60
#define KILL_DELAY_MS 2500 /* the emulator holds the request this long: the kill window */

static char root[512], models[600], fill[600], data[600], server_log[600], bin[600];
static char canary[64];
static thub_emu emu;
static test_server srv;
static const char *pushed[] = {"README.md", "config.json", "diffusion_pytorch_model.safetensors",
                               "images_0.png"};
#define N_PUSHED 4

/* cnet serve with the Hub environment, stdout and stderr appended to
 * server_log (kept over restarts: every line the server ever printed). */
static int start(void) {
    memset(&srv, 0, sizeof srv);
    long long before = 0;
    struct stat st;
    if (stat(server_log, &st) == 0) before = (long long)st.st_size;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(server_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0) _exit(126);
        dup2(fd, 1), dup2(fd, 2), close(fd);
        setenv("CNET_TOKEN", T, 1);
        setenv("HF_TOKEN", canary, 1);
        setenv("HF_ENDPOINT", emu.endpoint, 1);
        setenv("CNET_HUB_SLEEP_SCALE", "0.01", 1); /* 429 waits and backoffs in ms */
        execl(bin, bin, "serve", "--port", "0", "--data", data, "--models", models, "--data-root",
              root, "--device", "cpu", (char *)NULL);
        _exit(127);
    }
    srv.pid = pid;
    snprintf(srv.data, sizeof srv.data, "%.500s", data);
    for (double t0 = test_now_s(); test_now_s() - t0 < 20 && srv.port <= 0; usleep(20000)) {
        size_t n;
        char *log = file_read(server_log, &n);
        const char *p = log && (long long)n > before
                            ? strstr(log + before, "listening on http://127.0.0.1:")
                            : NULL;
        if (p) srv.port = atoi(p + strlen("listening on http://127.0.0.1:"));
        free(log);
    }
    if (srv.port > 0) return 0;
    server_stop(&srv, SIGKILL, 1000);
    return -1;
}

static json_t *get_json(const char *path) {
    http_resp r;
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    json_t *v = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    http_resp_free(&r);
    return v;
}

/* Waits for a terminal state; 0 when it is "succeeded". */
static int wait_succeeded(const char *id, char state[16]) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (double t0 = test_now_s(); test_now_s() - t0 < JOB_TIMEOUT_S; usleep(20000)) {
        json_t *j = get_json(path);
        snprintf(state, 16, "%s", j ? json_string_value(json_object_get(j, "state")) : "");
        json_decref(j);
        if (!strcmp(state, "succeeded")) return 0;
        if (!strcmp(state, "failed") || !strcmp(state, "cancelled")) return -1;
    }
    return -1;
}

/* A train job pushing to repo. Each job has its own seed, so its weights
 * and image are new to the Hub (which stores LFS objects by content). */
static int submit(const char *repo, int private_repo, char id[64]) {
    static int seed = 5;
    char body[2048];
    snprintf(body, sizeof body,
             "{\"pretrained_model_name_or_path\": \"tiny\", \"dataset\": \"%s\", \"resolution\": "
             "16, \"train_batch_size\": 2, \"max_train_steps\": 4, \"checkpointing_steps\": 2, "
             "\"learning_rate\": 0.001, \"seed\": %d, \"validation_prompt\": [\"red circle\"], "
             "\"validation_steps\": 4, \"num_validation_images\": 1, \"push_to_hub\": "
             "{\"repo_id\": \"%s\", \"private\": %s}}",
             fill, seed++, repo, private_repo ? "true" : "false");
    const char *const h[] = {"Content-Type: application/json", NULL};
    http_resp r;
    http_do(&srv, "POST", "/v1/jobs", T, h, body, strlen(body), 0, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(id, 64, "%s", j ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    long st = r.status;
    http_resp_free(&r);
    return st == 202 && id[0] ? 0 : -1;
}

/* ---------- the emulator as the truth ---------- */

typedef struct fetched {
    long status;
    char *body;
    size_t len;
    char location[1024];
} fetched;

static size_t on_body(char *p, size_t s, size_t n, void *ud) {
    fetched *f = ud;
    char *g = realloc(f->body, f->len + s * n + 1);
    if (!g) return 0;
    memcpy(g + f->len, p, s * n);
    f->len += s * n;
    g[f->len] = '\0';
    f->body = g;
    return s * n;
}

static size_t on_header(char *p, size_t s, size_t n, void *ud) {
    fetched *f = ud;
    if (n * s > 10 && strncasecmp(p, "Location: ", 10) == 0)
        snprintf(f->location, sizeof f->location, "%.*s", (int)strcspn(p + 10, "\r\n"), p + 10);
    return s * n;
}

/* One GET to the emulator (token NULL: anonymous); no redirects followed. */
static long emu_get(const char *url, const char *token, fetched *f) {
    memset(f, 0, sizeof *f);
    CURL *c = curl_easy_init();
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    struct curl_slist *h = token ? curl_slist_append(NULL, auth) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!f->body) f->body = calloc(1, 1);
    return f->status;
}

/* The repo's file list and head, as GET /api/models/{repo} (read token). */
static json_t *repo_info(const char *repo) {
    char url[512];
    snprintf(url, sizeof url, "%s/api/models/%s", emu.endpoint, repo);
    fetched f;
    json_t *j = emu_get(url, READ_TOKEN, &f) == 200 ? json_loads(f.body, 0, NULL) : NULL;
    free(f.body);
    return j;
}

/* Commits on the repo's main branch, from the emulator's storage (the
 * repo's creation makes the first one). -1 when unreadable. */
static int repo_commits(const char *repo) {
    char path[1200];
    snprintf(path, sizeof path, "%s/emu/repos/%.*s--%s.json", emu.dir, (int)strcspn(repo, "/"),
             repo, strchr(repo, '/') + 1);
    json_t *j = json_load_file(path, 0, NULL);
    json_t *commits = json_object_get(j, "commits");
    const char *sha = json_string_value(json_object_get(json_object_get(j, "refs"), "main"));
    int n = sha ? 1 : -1;
    while (sha &&
           (sha = json_string_value(json_object_get(json_object_get(commits, sha), "parent"))))
        n++;
    json_decref(j);
    return n;
}

/* SHA-256 of a file downloaded from the repo (following the LFS redirect to
 * storage without the token, as a client must). */
static int repo_file_sha(const char *repo, const char *name, char out[65]) {
    char url[1200];
    snprintf(url, sizeof url, "%s/%s/resolve/main/%s", emu.endpoint, repo, name);
    fetched f;
    long st = emu_get(url, READ_TOKEN, &f);
    if (st == 302 && f.location[0]) {
        snprintf(url, sizeof url, "%s", f.location);
        free(f.body);
        st = emu_get(url, NULL, &f);
    }
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/download", root);
    int rc = st == 200 && file_write(tmp, f.body, f.len) == 0 ? thub_sha256(tmp, out) : -1;
    free(f.body);
    return rc;
}

/* The repo holds exactly the pushed files, each identical to the job's. */
static int repo_matches_job(const char *repo, const char *id, char *why, size_t cap) {
    json_t *info = repo_info(repo);
    json_t *sib = json_object_get(info, "siblings"), *s;
    size_t i;
    int bad = !info || json_array_size(sib) != N_PUSHED + 1;
    json_array_foreach(sib, i, s) {
        const char *name = json_string_value(json_object_get(s, "rfilename"));
        int known = name && !strcmp(name, ".gitattributes");
        for (int k = 0; k < N_PUSHED; k++) known |= name && !strcmp(name, pushed[k]);
        if (!known) bad = 1;
    }
    char *list = json_dumps(sib, JSON_COMPACT);
    snprintf(why, cap, "%s: files %s", repo, list ? list : "?");
    free(list);
    json_decref(info);
    if (bad) return 0;
    for (int k = 0; k < N_PUSHED; k++) {
        char local[1200], a[65], b[65];
        snprintf(local, sizeof local, "%s/jobs/%s/%s", data, id, pushed[k]);
        if (thub_sha256(local, a) || repo_file_sha(repo, pushed[k], b) || strcmp(a, b)) {
            snprintf(why, cap, "%s: %s differs from the job's (or is missing)", repo, pushed[k]);
            return 0;
        }
    }
    return 1;
}

/* The job's result artefact hub_push.json. */
static json_t *push_result(const char *id) {
    char path[1200];
    snprintf(path, sizeof path, "%s/jobs/%s/hub_push.json", data, id);
    return json_load_file(path, 0, NULL);
}

/* The job's "push" events (SSE replay of a finished job), in order. */
static json_t *push_events(const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    http_resp r;
    http_do(&srv, "GET", path, T, NULL, NULL, 0, 0, &r);
    json_t *out = json_array();
    for (char *p = r.body; p && (p = strstr(p, "event: push\ndata: ")) != NULL;) {
        p += strlen("event: push\ndata: ");
        size_t n = strcspn(p, "\n");
        json_t *ev = json_loadb(p, n, 0, NULL);
        if (ev) json_array_append_new(out, ev);
        p += n;
    }
    http_resp_free(&r);
    return out;
}

/* Waits until the emulator has seen a request on route. */
static int wait_route(const char *route, double timeout_s) {
    for (double t0 = test_now_s(); test_now_s() - t0 < timeout_s; usleep(5000))
        if (thub_emu_count(&emu, route) > 0) return 0;
    return -1;
}

/* ---------- tests ---------- */

static char first_job[64];

static void test_push_private_repo_exact_files_and_events(void) {
    const char *repo = "tester/cn-private";
    char id[64], st[16], why[600];
    thub_emu_ctl(&emu, "reset");
    CHECK(submit(repo, 1, id) == 0, "submit");
    memcpy(first_job, id, sizeof first_job);
    CHECK(wait_succeeded(id, st) == 0, "job %s is %s", id, st);
    CHECK(repo_matches_job(repo, id, why, sizeof why), "%s", why);
    EXPECT(repo_commits(repo) == 2, "%d commits, want the creation + 1", repo_commits(repo));
    char url[512], dir[1200];
    snprintf(url, sizeof url, "%s/api/models/%s", emu.endpoint, repo);
    fetched f;
    EXPECT(emu_get(url, NULL, &f) == 404, "private repo readable anonymously: %ld", f.status);
    free(f.body);
    /* What must not be published was there to be left out. */
    static const char *const kept[] = {
        "checkpoint-2/controlnet/diffusion_pytorch_model.safetensors",
        "checkpoint-2/optimizer_exp_avg.safetensors", "logs/metrics.jsonl",
        "logs/validation/step_4_0.png"};
    for (int k = 0; k < 4; k++) {
        snprintf(dir, sizeof dir, "%s/jobs/%s/%s", data, id, kept[k]);
        EXPECT(access(dir, F_OK) == 0, "the job dir has no %s (exclusion not exercised)", kept[k]);
    }
    /* Events: the phases in order, upload bytes reaching the total, the result. */
    json_t *ev = push_events(id), *e;
    static const char *const order[] = {"hash", "check", "upload", "commit", "done"};
    int next = 0;
    long long up_done = -1, up_total = -1;
    size_t i;
    json_array_foreach(ev, i, e) {
        const char *phase = json_string_value(json_object_get(e, "phase"));
        if (!phase) continue;
        if (next < 5 && !strcmp(phase, order[next])) next++;
        EXPECT(next > 0 && !strcmp(phase, order[next - 1]), "event %zu: phase %s after %s", i,
               phase, next ? order[next - 1] : "nothing");
        if (!strcmp(phase, "upload")) {
            long long d = json_integer_value(json_object_get(e, "done"));
            EXPECT(d >= up_done, "upload progress went back: %lld after %lld", d, up_done);
            up_done = d, up_total = json_integer_value(json_object_get(e, "total"));
        }
    }
    json_t *last = json_array_get(ev, json_array_size(ev) - 1);
    json_t *info = repo_info(repo);
    const char *head = json_string_value(json_object_get(info, "sha"));
    const char *commit = json_string_value(json_object_get(last, "commit"));
    printf("    %zu push events, upload %lld/%lld bytes, commit %.12s\n", json_array_size(ev),
           up_done, up_total, commit ? commit : "none");
    EXPECT(next == 5, "phases seen up to %s", next ? order[next - 1] : "none");
    EXPECT(up_total > 1000000 && up_done == up_total, "upload %lld of %lld bytes", up_done,
           up_total);
    EXPECT(commit && head && !strcmp(commit, head) &&
               json_is_true(json_object_get(last, "created_commit")),
           "result event commit %s, repo head %s", commit ? commit : "none", head ? head : "none");
    json_decref(info);
    json_decref(ev);
}

/* kill -9 while the emulator holds route's request; restart; the job
 * succeeds with exactly one commit of its own. */
static void crash_during(const char *route, const char *repo, int commit_lands_first) {
    char id[64], st[16], why[600], q[200];
    thub_emu_ctl(&emu, "reset");
    snprintf(q, sizeof q, "fault?route=%s&kind=slow&delay_ms=%d", route, KILL_DELAY_MS);
    CHECK(thub_emu_ctl(&emu, q) == 200, "fault");
    CHECK(submit(repo, 0, id) == 0, "submit");
    CHECK(wait_route(route, JOB_TIMEOUT_S) == 0, "the push never reached %s", route);
    CHECK(server_stop(&srv, SIGKILL, 5000) == 128 + SIGKILL, "kill -9");
    /* The held commit lands after the kill: the re-run must see it, not
     * commit again. */
    for (double t0 = test_now_s();
         commit_lands_first && test_now_s() - t0 < 10 && repo_commits(repo) < 2;)
        usleep(20000);
    CHECK(start() == 0, "restart");
    CHECK(wait_succeeded(id, st) == 0, "job %s is %s after the restart", id, st);
    int commits = repo_commits(repo);
    json_t *r = push_result(id);
    int created = json_is_true(json_object_get(r, "created_commit"));
    json_decref(r);
    printf("    killed in %s: %d commit(s) after creation, re-run created one: %s\n", route,
           commits - 1, created ? "yes" : "no");
    CHECK(commits == 2, "%d commits after the re-run, want the creation + 1", commits);
    EXPECT(created == !commit_lands_first, "created_commit %d on the re-run", created);
    CHECK(repo_matches_job(repo, id, why, sizeof why), "%s", why);
}

static void test_push_kill9_while_commit_is_held(void) {
    crash_during("commit", "tester/cn-crash-commit", 1);
}

static void test_push_kill9_during_multipart_upload(void) {
    crash_during("storage_part", "tester/cn-crash-upload", 0);
}

static void test_push_5xx_429_within_retry_budget(void) {
    static const char *const faults[] = {
        "fault?route=create&kind=status&status=503",
        "fault?route=preupload&kind=status&status=429&ratelimit_reset=2",
        "fault?route=batch&kind=status&status=500&count=2",
        "fault?route=storage_part&kind=status&status=502&after=1",
        "fault?route=complete&kind=status&status=504",
        "fault?route=storage_put&kind=status&status=429&retry_after=1",
        "fault?route=verify&kind=status&status=503",
        "fault?route=commit&kind=status&status=503",
        "fault?route=info&kind=status&status=500",
    };
    static const char *const routes[] = {"create",       "preupload", "batch",
                                         "storage_part", "complete",  "storage_put",
                                         "verify",       "commit",    "info"};
    const int n = (int)(sizeof faults / sizeof faults[0]);
    const char *repo = "tester/cn-faults";
    char id[64], st[16], why[600];
    thub_emu_ctl(&emu, "reset");
    for (int k = 0; k < n; k++) CHECK(thub_emu_ctl(&emu, faults[k]) == 200, "%s", faults[k]);
    CHECK(submit(repo, 0, id) == 0, "submit");
    CHECK(wait_succeeded(id, st) == 0, "job %s is %s", id, st);
    for (int k = 0; k < n; k++)
        EXPECT(thub_emu_faults(&emu, routes[k]) >= 1, "no fault fired on %s", routes[k]);
    json_t *ev = push_events(id), *e;
    size_t i;
    int later = 0;
    json_array_foreach(ev, i, e) later |= json_integer_value(json_object_get(e, "attempt")) > 1;
    json_decref(ev);
    EXPECT(!later, "the push needed a second attempt: a request ran out of retries");
    EXPECT(repo_commits(repo) == 2, "%d commits, want the creation + 1", repo_commits(repo));
    CHECK(repo_matches_job(repo, id, why, sizeof why), "%s", why);
}

/* Last: every job, restart and fault above had its chance to leak it. */
static void test_push_canary_only_in_api_authorization(void) {
    CHECK(first_job[0], "no job from the first test");
    int with = 0, bad = thub_log_misplaced(&emu, canary, &with);
    printf("    emulator requests with the canary: %d, misplaced: %d\n", with, bad);
    EXPECT(bad == 0 && with > 0, "canary misplaced in %d request(s), sent in %d", bad, with);
    EXPECT(thub_emu_count(&emu, NULL) == 0, "storage saw an Authorization header");
    EXPECT(!thub_tree_contains(data, canary), "canary under the data dir (db, WAL, job dirs)");
    char emu_data[700];
    snprintf(emu_data, sizeof emu_data, "%s/emu", emu.dir);
    EXPECT(!thub_tree_contains(emu_data, canary), "canary in what the Hub stored");
    size_t n;
    char *log = file_read(server_log, &n);
    EXPECT(log && !strstr(log, canary) && !strstr(log, "CANARY"),
           "canary in the server's stdout/stderr");
    EXPECT(log && !strstr(log, "Sanitizer") && !strstr(log, "runtime error:"),
           "the server reported a sanitizer error (see %s)", server_log);
    free(log);
    json_t *list = get_json("/v1/jobs"), *j;
    size_t i;
    int answers = 0;
    json_array_foreach(json_object_get(list, "jobs"), i, j) {
        const char *id = json_string_value(json_object_get(j, "id"));
        char paths[3][200];
        snprintf(paths[0], sizeof paths[0], "/v1/jobs/%s", id);
        snprintf(paths[1], sizeof paths[1], "/v1/jobs/%s/events", id);
        snprintf(paths[2], sizeof paths[2], "/v1/jobs/%s/artifacts/hub_push.json", id);
        for (int k = 0; k < 3; k++, answers++) {
            http_resp r;
            http_do(&srv, "GET", paths[k], T, NULL, NULL, 0, 0, &r);
            EXPECT(r.status == 200 && !strstr(r.body, "CANARY"), "GET %s: %ld%s", paths[k],
                   r.status, strstr(r.body, "CANARY") ? ", holds the canary" : "");
            http_resp_free(&r);
        }
    }
    EXPECT(answers >= 12, "only %d answers checked", answers);
    char *text = json_dumps(list, 0);
    EXPECT(text && !strstr(text, "CANARY"), "canary in GET /v1/jobs");
    free(text);
    json_decref(list);
    http_resp r;
    http_do(&srv, "GET", "/metrics", NULL, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && !strstr(r.body, "CANARY"), "/metrics: %ld", r.status);
    http_resp_free(&r);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "1", 0); /* the server and this process share two cores */
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (thub_tmpdir(root, sizeof root)) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", root);
    snprintf(fill, sizeof fill, "%s/fill", root);
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(server_log, sizeof server_log, "%s/serve.log", root);
    mkdir(models, 0700);
    mkdir(data, 0700);
    unsigned char rnd[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    int rc = fd < 0 || read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd;
    if (fd >= 0) close(fd);
    snprintf(canary, sizeof canary, "hf_CANARY");
    for (int i = 0; i < 8; i++) sprintf(canary + 9 + 2 * i, "%02x", rnd[i]);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s init-model --out %s/tiny --preset tiny", bin, models);
    if (!rc) rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "%s dataset make-fill --n 4 --size 16 --out %s", bin, fill);
    if (!rc) rc = run_quiet(cmd);
    const char *const emu_args[] = {"--token", canary, "--read-token", READ_TOKEN, NULL};
    if (!rc) rc = thub_emu_start(&emu, root, emu_args);
    if (rc || start()) {
        printf("setup failed\ntest_server_push: 0 passed, 1 failed\n");
        thub_emu_stop(&emu);
        return 1;
    }
    RUN(test_push_private_repo_exact_files_and_events);
    RUN(test_push_kill9_while_commit_is_held);
    RUN(test_push_kill9_during_multipart_upload);
    RUN(test_push_5xx_429_within_retry_budget);
    RUN(test_push_canary_only_in_api_authorization);
    server_stop(&srv, SIGTERM, 10000);
    thub_emu_stop(&emu);
    if (!harness_failed) tmpdir_remove(root);
    return harness_done();
}
