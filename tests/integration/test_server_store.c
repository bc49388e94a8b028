/* A real `cnet serve` against a damaged or raced data dir (issue 20's
 * review, items 5, 6, 8 and 9), the damage done here with plain file
 * operations:
 *   - a job store with overwritten middle pages, and one truncated to zero
 *     bytes beside job folders: the server refuses to start, saying how to
 *     recover and naming the orphaned folders;
 *   - /readyz: without the token only ready / not ready, with it the
 *     checks and free disk; a store damaged while the server runs turns it
 *     not ready (a real read of the file, not a cached "ready");
 *   - a dataset folder under --data-root swapped for a symlink to a folder
 *     outside it after the 202: the job fails at its first attempt naming
 *     the escape (and reads nothing); the folder put back, a job trains,
 *     and its files and jobs.db are 0600;
 *   - a job that fails on a deleted model keeps a message with paths
 *     relative to the data dir. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/store/jobs.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define T SERVER_TEST_TOKEN
#define PAGE 4096        /* SQLite's default page size */
#define N_JOBS 200       /* rows for a store of ~100 pages */
#define REFUSE_WAIT_S 60 /* a refused start exits at once; a started one is stopped then */
#define JOB_WAIT_S 120   /* a two-step job on the tiny model, on a loaded machine */

static char dir[512], bin[600], models[700], root[700], outside[700];

static const char *const train_spec =
    "{\"pretrained_model_name_or_path\": \"tiny\", \"dataset\": \"%s\", \"resolution\": 16, "
    "\"train_batch_size\": 2, \"max_train_steps\": 2, \"checkpointing_steps\": 1, "
    "\"learning_rate\": 0.001, \"lr_warmup_steps\": 0, \"seed\": 11}";

/* A store of n jobs made through the library, as an earlier server left it. */
static int make_store(const char *data, int n, char first_id[JOBS_ID_MAX]) {
    char db[800], jd[800];
    snprintf(db, sizeof db, "%s/jobs.db", data);
    snprintf(jd, sizeof jd, "%s/jobs", data);
    mkdir(data, 0700);
    jobs_store *s = NULL;
    cnet_error err = {0};
    int rc = jobs_open(&s, db, jd, &err);
    for (int i = 0; i < n && !rc; i++) {
        char id[JOBS_ID_MAX], spec[1100];
        int created;
        snprintf(spec, sizeof spec, "{\"n\": %d, \"pad\": \"%0900d\"}", i, 0);
        jobs_new req = {.kind = "train", .spec_json = spec};
        rc = jobs_enqueue(s, &req, id, &created, &err);
        if (!rc && i == 0 && first_id) snprintf(first_id, JOBS_ID_MAX, "%s", id);
    }
    if (rc) printf("    make_store: %s\n", err.msg);
    jobs_close(s);
    return rc;
}

/* Overwrites 3 pages in the middle of data/jobs.db. */
static int damage_store(const char *data) {
    char db[800];
    snprintf(db, sizeof db, "%s/jobs.db", data);
    struct stat st;
    FILE *f = stat(db, &st) == 0 ? fopen(db, "r+b") : NULL;
    if (!f) return -1;
    char junk[3 * PAGE];
    memset(junk, 0x5a, sizeof junk);
    const long at = (long)(st.st_size / PAGE / 2) * PAGE;
    int rc = fseek(f, at, SEEK_SET) == 0 && fwrite(junk, 1, sizeof junk, f) == sizeof junk ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* `cnet serve` on data: its exit status (124: it kept running and was
 * stopped) and what it printed, into log. */
static int serve_once(const char *data, char *log, size_t cap) {
    char cmd[2200], path[800];
    snprintf(path, sizeof path, "%s.log", data);
    snprintf(cmd, sizeof cmd,
             "CNET_TOKEN=%s timeout %d %s serve --port 0 --data %s --device none >%s 2>&1", T,
             REFUSE_WAIT_S, bin, data, path);
    const int status = system(cmd);
    size_t n = 0;
    char *text = file_read(path, &n);
    snprintf(log, cap, "%s", text ? text : "");
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_serve_refuses_a_damaged_store(void) {
    char data[700], log[4096];
    snprintf(data, sizeof data, "%s/damaged", dir);
    CHECK(make_store(data, N_JOBS, NULL) == 0, "store");
    CHECK(damage_store(data) == 0, "damage");
    const int rc = serve_once(data, log, sizeof log);
    CHECK(rc == 1, "exit %d: %s", rc, log);
    EXPECT(strstr(log, "damaged") && strstr(log, "quick_check") && strstr(log, ".recover"),
           "the refusal says what is wrong and how to recover: %s", log);
}

static void test_serve_refuses_an_emptied_store(void) {
    char data[700], db[800], id[JOBS_ID_MAX], log[4096];
    snprintf(data, sizeof data, "%s/emptied", dir);
    CHECK(make_store(data, 3, id) == 0, "store");
    snprintf(db, sizeof db, "%s/jobs.db", data);
    CHECK(truncate(db, 0) == 0, "truncate");
    const int rc = serve_once(data, log, sizeof log);
    CHECK(rc == 1, "exit %d: %s", rc, log);
    EXPECT(strstr(log, "3 job folder(s)") && strstr(log, id) && strstr(log, "backup"),
           "the refusal names the orphaned folders (%s) and the way out: %s", id, log);
}

static json_t *get_json(const test_server *s, const char *path, const char *token, long *status) {
    http_resp r;
    http_do(s, "GET", path, token, NULL, NULL, 0, 0, &r);
    *status = r.status;
    json_t *v = json_loads(r.body ? r.body : "", 0, NULL);
    http_resp_free(&r);
    return v;
}

static void test_readyz_details_with_the_token(void) {
    char data[700], sub[800];
    snprintf(data, sizeof data, "%s/ready", dir);
    CHECK(make_store(data, N_JOBS, NULL) == 0, "store");
    snprintf(sub, sizeof sub, "%s/models", data);
    mkdir(sub, 0700);
    test_server s;
    const char *const args[] = {"--disk-floor", "0", NULL};
    CHECK(server_start(&s, data, args) == 0, "start");
    long st_public, st_token;
    json_t *pub = get_json(&s, "/readyz", NULL, &st_public);
    json_t *full = get_json(&s, "/readyz", T, &st_token);
    char *pub_text = pub ? json_dumps(pub, JSON_COMPACT) : NULL;
    EXPECT(st_public == 200 && pub_text && !strcmp(pub_text, "{\"status\":\"ready\"}"),
           "public readyz: %ld %s", st_public, pub_text);
    EXPECT(st_token == 200 &&
               json_is_integer(json_object_get(json_object_get(full, "checks"), "disk_free_bytes")),
           "readyz with the token: %ld", st_token);
    free(pub_text);
    json_decref(pub);
    json_decref(full);
    /* damaged while it runs: not ready, and only the token says why */
    const int damaged = damage_store(data);
    pub = get_json(&s, "/readyz", NULL, &st_public);
    full = get_json(&s, "/readyz", T, &st_token);
    server_stop(&s, SIGTERM, 10000);
    CHECK(damaged == 0, "damage");
    const char *pub_msg =
        json_string_value(json_object_get(json_object_get(pub, "error"), "message"));
    const char *msg = json_string_value(json_object_get(json_object_get(full, "error"), "message"));
    EXPECT(st_public == 503 && pub_msg && !strstr(pub_msg, "database"),
           "public readyz of a damaged store: %ld %s", st_public, pub_msg);
    EXPECT(st_token == 503 && msg && strstr(msg, "job database"),
           "readyz with the token, damaged store: %ld %s", st_token, msg);
    json_decref(pub);
    json_decref(full);
}

/* Submits a train job on dataset; its id into id. */
static int submit(const test_server *s, const char *dataset, char id[64]) {
    char body[1024];
    snprintf(body, sizeof body, train_spec, dataset);
    const char *const h[] = {"Content-Type: application/json", NULL};
    http_resp r;
    http_do(s, "POST", "/v1/jobs", T, h, body, strlen(body), 0, &r);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    snprintf(id, 64, "%s", j ? json_string_value(json_object_get(j, "id")) : "");
    if (r.status != 202) printf("    submit: %ld %s\n", r.status, r.body);
    json_decref(j);
    const int ok = r.status == 202 && id[0];
    http_resp_free(&r);
    return ok ? 0 : -1;
}

/* Waits for job id to end; its JSON (NULL on timeout). */
static json_t *wait_end(const test_server *s, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (double t0 = test_now_s(); test_now_s() - t0 < JOB_WAIT_S; usleep(50000)) {
        long st;
        json_t *j = get_json(s, path, T, &st);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (state && (!strcmp(state, "succeeded") || !strcmp(state, "failed") ||
                      !strcmp(state, "cancelled")))
            return j;
        json_decref(j);
    }
    return NULL;
}

static const char *state_of(const json_t *j) {
    return json_string_value(json_object_get(j, "state"));
}

static const char *job_error(const json_t *j) {
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    return m ? m : "";
}

static int mode_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static void test_dataset_swapped_for_a_symlink(void) {
    char data[700], ds[800], moved[800], id[64];
    snprintf(data, sizeof data, "%s/race", dir);
    snprintf(ds, sizeof ds, "%s/ds", root);
    snprintf(moved, sizeof moved, "%s/ds.moved", root);
    mkdir(data, 0700);
    test_server s;
    const char *const queued[] = {"--models", models, "--data-root", root, NULL};
    CHECK(server_start(&s, data, queued) == 0, "start");
    const int accepted = submit(&s, ds, id);
    server_stop(&s, SIGTERM, 10000);
    CHECK(accepted == 0, "submit");
    /* after the 202: the folder becomes a symlink to one outside the root */
    CHECK(rename(ds, moved) == 0 && symlink(outside, ds) == 0, "swap");
    const char *const engine[] = {"--models", models, "--data-root", root, "--device", "cpu", NULL};
    CHECK(server_start(&s, data, engine) == 0, "restart with an engine");
    json_t *j = wait_end(&s, id);
    const char *state = state_of(j);
    const int attempt = (int)json_integer_value(json_object_get(j, "attempt"));
    EXPECT(state && !strcmp(state, "failed") && attempt == 1 &&
               strstr(job_error(j), "escapes the data root") && strstr(job_error(j), ds),
           "state %s, attempt %d: %s", state, attempt, job_error(j));
    json_decref(j);
    char path[900];
    snprintf(path, sizeof path, "%s/jobs/%s/diffusion_pytorch_model.safetensors", data, id);
    EXPECT(mode_of(path) < 0, "the job trained on the folder outside the root");
    /* the folder back in its place: a job trains on it */
    const int restored = unlink(ds) == 0 && rename(moved, ds) == 0;
    const int ok = restored && submit(&s, ds, id) == 0;
    j = ok ? wait_end(&s, id) : NULL;
    server_stop(&s, SIGTERM, 10000);
    CHECK(ok, "restore and submit");
    state = state_of(j);
    EXPECT(state && !strcmp(state, "succeeded"), "a job on the rooted dataset: %s %s", state,
           job_error(j));
    json_decref(j);
    /* what the job wrote, and the store, are the server user's alone */
    const char *const files[] = {"diffusion_pytorch_model.safetensors", "logs/metrics.jsonl",
                                 "checkpoint-1/trainer_state.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/jobs/%s/%s", data, id, files[i]);
        EXPECT(mode_of(path) == 0600, "%s: mode %o", files[i], mode_of(path));
    }
    snprintf(path, sizeof path, "%s/jobs.db", data);
    EXPECT(mode_of(path) == 0600, "jobs.db: mode %o", mode_of(path));
}

static void test_failure_message_relative_to_the_data_dir(void) {
    char data[700], id[64], cmd[2400], ds[800];
    snprintf(data, sizeof data, "%s/relative", dir);
    snprintf(ds, sizeof ds, "%s/ds", root);
    mkdir(data, 0700);
    /* the models in the data dir (the default --models) */
    snprintf(cmd, sizeof cmd, "cp -r %s %s/models", models, data);
    CHECK(run_quiet(cmd) == 0, "copy the models");
    test_server s;
    const char *const queued[] = {"--data-root", root, NULL};
    CHECK(server_start(&s, data, queued) == 0, "start");
    const int accepted = submit(&s, ds, id);
    server_stop(&s, SIGTERM, 10000);
    CHECK(accepted == 0, "submit");
    snprintf(cmd, sizeof cmd, "rm -r %s/models/tiny/unet", data);
    CHECK(run_quiet(cmd) == 0, "delete the model's unet");
    const char *const engine[] = {"--data-root", root, "--device", "cpu", NULL};
    CHECK(server_start(&s, data, engine) == 0, "restart with an engine");
    json_t *j = wait_end(&s, id);
    server_stop(&s, SIGTERM, 10000);
    const char *state = state_of(j);
    EXPECT(state && !strcmp(state, "failed") && strstr(job_error(j), "models/tiny") &&
               !strstr(job_error(j), data),
           "state %s: %s (data dir %s)", state, job_error(j), data);
    json_decref(j);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    setenv("OMP_NUM_THREADS", "1", 0);
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (tmpdir_make(dir, sizeof dir, "cnet-store-")) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", dir);
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(outside, sizeof outside, "%s/outside", dir);
    mkdir(models, 0700);
    mkdir(root, 0700);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "%s init-model --out %s/tiny --preset tiny", bin, models);
    int rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "%s dataset make-fill --n 4 --size 16 --out %s/ds", bin, root);
    if (!rc) rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "cp -r %s/ds %s", root, outside);
    if (!rc) rc = run_quiet(cmd);
    if (rc) {
        printf("setup failed\ntest_server_store: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_serve_refuses_a_damaged_store);
    RUN(test_serve_refuses_an_emptied_store);
    RUN(test_readyz_details_with_the_token);
    RUN(test_dataset_swapped_for_a_symlink);
    RUN(test_failure_message_relative_to_the_data_dir);
    tmpdir_remove(dir);
    return harness_done();
}
