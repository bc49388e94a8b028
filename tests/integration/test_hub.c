/* The Hub client against the emulator over real HTTP: push an output dir,
 * pull it back and compare bytes; multipart; idempotent re-push; every
 * fault type recovered within the retry budget; Range resume and disk full
 * during a pull; a pull's progress reports; the CLI with a canary token;
 * bad input. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/hub/hub_pull.h"
#include "server/hub/hub_push.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_hub.h"

#define TOKEN "hf_testwritetoken0001"
#define READ_TOKEN "hf_testreadtoken0001"
#define WEIGHTS 600000 /* > the emulator's 200 kB multipart threshold: 10 parts of 64 KiB */

static thub_emu emu;
static char root[512];

typedef struct sleeps {
    int n;
    double s[64];
} sleeps;

static void record_sleep(void *ctx, double s) {
    sleeps *r = ctx;
    if (r->n < 64) r->s[r->n++] = s;
}

static int client(hub_client *c, sleeps *rec) {
    setenv("HF_TOKEN", TOKEN, 1);
    cnet_error err;
    int rc = hub_client_init(c, emu.endpoint, 1, &err);
    unsetenv("HF_TOKEN");
    if (rc != 0) return rc;
    memset(rec, 0, sizeof *rec);
    c->sleep = record_sleep;
    c->sleep_ctx = rec;
    c->low_speed_time_s = 1;
    return 0;
}

/* Push dir to repo and pull it back into cache; compare every pushed file. */
static int roundtrip(hub_client *c, const char *repo, const char *dir, const char *cache,
                     hub_push_result *pr, char *msg, size_t cap) {
    cnet_error err = {0};
    hub_push_opts o = {.repo_id = repo, .dir = dir};
    if (hub_push(c, &o, pr, &err) != 0) return snprintf(msg, cap, "push: %s", err.msg), -1;
    hub_pull_opts po = {.repo_id = repo, .cache_dir = cache};
    hub_pull_result r;
    char snap[HUB_PATH_MAX];
    if (hub_pull(c, &po, snap, &r, &err) != 0) return snprintf(msg, cap, "pull: %s", err.msg), -1;
    static const char *const names[] = {"config.json", "README.md",
                                        "diffusion_pytorch_model.safetensors", "image_control.png",
                                        "images_0.png"};
    for (size_t i = 0; i < 5; i++) {
        char a[1024], b[HUB_PATH_MAX + 64], ha[65], hb[65];
        snprintf(a, sizeof a, "%s/%s", dir, names[i]);
        snprintf(b, sizeof b, "%s/%s", snap, names[i]);
        if (thub_sha256(a, ha) || thub_sha256(b, hb) || strcmp(ha, hb) != 0)
            return snprintf(msg, cap, "%s differs after the round trip", names[i]), -1;
    }
    char bad[HUB_PATH_MAX + 64];
    snprintf(bad, sizeof bad, "%s/optimizer.bin", snap);
    if (access(bad, F_OK) == 0) return snprintf(msg, cap, "optimizer.bin was published"), -1;
    snprintf(bad, sizeof bad, "%s/checkpoint-10", snap);
    if (access(bad, F_OK) == 0) return snprintf(msg, cap, "checkpoint dir was published"), -1;
    return 0;
}

static void test_hub_push_pull_multipart(void) {
    char dir[700], cache[700], msg[1200];
    snprintf(dir, sizeof dir, "%s/out1", root);
    snprintf(cache, sizeof cache, "%s/cache1", root);
    CHECK(thub_make_outdir(dir, WEIGHTS, 1) == 0, "outdir");
    thub_emu_ctl(&emu, "reset");
    hub_client c;
    sleeps rec;
    CHECK(client(&c, &rec) == 0, "client");
    hub_push_result r;
    int rc = roundtrip(&c, "tester/cn-one", dir, cache, &r, msg, sizeof msg);
    hub_client_free(&c);
    CHECK(rc == 0, "%s", msg);
    CHECK(r.created_commit && r.files == 5 && r.lfs_uploaded == 3 && r.inline_files == 2,
          "files %d lfs %d inline %d", r.files, r.lfs_uploaded, r.inline_files);
    CHECK(thub_emu_count(&emu, "storage_part") == 10, "parts %d",
          thub_emu_count(&emu, "storage_part"));
    CHECK(thub_emu_count(&emu, "complete") == 1 && thub_emu_count(&emu, "storage_put") == 2,
          "complete %d put %d", thub_emu_count(&emu, "complete"),
          thub_emu_count(&emu, "storage_put"));
    CHECK(thub_emu_count(&emu, NULL) == 0, "storage saw an Authorization header");
    CHECK(rec.n == 0, "%d retries without faults", rec.n);
}

/* What a pull reports (hub_pull_opts.progress): a downloaded file's bytes
 * as they land, rising, below its size, then its size once, last; a file
 * already in the cache is not reported. */
typedef struct progress_log {
    int n, final, bad_order;
    long long last, total;
    char weights_final;
} progress_log;

static void record_progress(void *ctx, const char *file, long long done, long long total) {
    progress_log *p = ctx;
    if (strcmp(file, "diffusion_pytorch_model.safetensors") != 0) {
        p->final += done == total;
        return;
    }
    p->bad_order |= p->weights_final || done < p->last || done > total;
    p->n++, p->last = done, p->total = total;
    if (done == total) p->weights_final = 1;
}

static void test_hub_pull_progress(void) {
    char cache[700];
    snprintf(cache, sizeof cache, "%s/cache-progress", root);
    hub_client c;
    sleeps rec;
    CHECK(client(&c, &rec) == 0, "client");
    progress_log log = {0};
    hub_pull_opts po = {.repo_id = "tester/cn-one",
                        .cache_dir = cache,
                        .progress = record_progress,
                        .progress_ctx = &log};
    hub_pull_result r;
    char snap[HUB_PATH_MAX];
    cnet_error err = {0};
    int rc = hub_pull(&c, &po, snap, &r, &err);
    EXPECT(rc == 0, "pull: %s", err.msg);
    EXPECT(log.total == WEIGHTS && log.weights_final && !log.bad_order && log.n >= 3,
           "weights reported %d times (total %lld, in place %d, out of order %d)", log.n, log.total,
           log.weights_final, log.bad_order);
    EXPECT(log.final == r.downloaded - 1, "%d other files in place, %d downloaded", log.final,
           r.downloaded);
    progress_log again = {0};
    po.progress_ctx = &again;
    rc = hub_pull(&c, &po, snap, &r, &err);
    hub_client_free(&c);
    EXPECT(rc == 0 && again.n == 0 && again.final == 0 && r.cached == r.files,
           "a cached pull reported %d + %d files", again.n, again.final);
}

/* should_stop stops a pull while a download waits for its first byte
 * (the transfer polls): no blob, and well before the stalled answer. */
static int stop_after_report(void *ctx) {
    const progress_log *p = ctx;
    return p->n > 0;
}

static void test_hub_pull_stopped(void) {
    char cache[700];
    snprintf(cache, sizeof cache, "%s/cache-stopped", root);
    CHECK(thub_emu_ctl(&emu, "fault?route=storage_get&kind=slow&delay_ms=4000&count=5") == 200,
          "fault");
    hub_client c;
    sleeps rec;
    CHECK(client(&c, &rec) == 0, "client");
    progress_log log = {0};
    hub_pull_opts po = {.repo_id = "tester/cn-one",
                        .cache_dir = cache,
                        .include = (const char *const[]){"*.safetensors", NULL},
                        .progress = record_progress,
                        .progress_ctx = &log,
                        .should_stop = stop_after_report};
    hub_pull_result r;
    char snap[HUB_PATH_MAX];
    cnet_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = hub_pull(&c, &po, snap, &r, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    hub_client_free(&c);
    thub_emu_ctl(&emu, "reset");
    const double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    EXPECT(rc != 0 && strstr(err.msg, "stopped") && !log.weights_final, "rc %d, in place %d: %s",
           rc, log.weights_final, err.msg);
    EXPECT(s < 3.5, "the stop took %.1f s (the answer was 4 s away)", s);
}

static void test_hub_repush_sends_nothing(void) {
    char dir[700], msg[1200];
    snprintf(dir, sizeof dir, "%s/out1", root);
    thub_emu_ctl(&emu, "reset");
    hub_client c;
    sleeps rec;
    CHECK(client(&c, &rec) == 0, "client");
    hub_push_opts o = {.repo_id = "tester/cn-one", .dir = dir};
    hub_push_result r;
    cnet_error err;
    int rc = hub_push(&c, &o, &r, &err);
    hub_client_free(&c);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(!r.created_commit && r.unchanged == 5 && r.lfs_uploaded == 0, "commit %d unchanged %d",
          r.created_commit, r.unchanged);
    int sent = thub_emu_count(&emu, "storage_put") + thub_emu_count(&emu, "storage_part") +
               thub_emu_count(&emu, "batch") + thub_emu_count(&emu, "commit");
    CHECK(sent == 0, "%d upload/commit requests on an unchanged push", sent);
    /* A crash after the LFS upload but before the commit: objects present,
     * files changed → batch says present, nothing re-sent. */
    FILE *f = fopen(strcat(strcpy(msg, dir), "/README.md"), "a");
    fputs("more\n", f);
    fclose(f);
    CHECK(client(&c, &rec) == 0, "client");
    rc = hub_push(&c, &o, &r, &err);
    hub_client_free(&c);
    CHECK(rc == 0 && r.created_commit && r.inline_files == 1 && r.lfs_uploaded == 0, "rc %d: %s",
          rc, err.msg);
}

typedef struct fault_case {
    const char *query;
    int retries;  /* expected retries */
    double slept; /* a sleep that must be requested, or 0 */
} fault_case;

static void test_hub_faults_recovered(void) {
    static const fault_case cases[] = {
        {"route=create&kind=status&status=503&count=2", 2, 0},
        {"route=preupload&kind=status&status=500", 1, 0},
        {"route=preupload&kind=drop", -1, 0},
        {"route=batch&kind=status&status=429&ratelimit_reset=7&retry_after=2", 1, 8},
        {"route=batch&kind=status&status=429&retry_after=3", 1, 3},
        {"route=storage_part&kind=status&status=502&after=3&count=2", 2, 0},
        {"route=storage_put&kind=drop", -1, 0},
        {"route=complete&kind=status&status=504", 1, 0},
        {"route=verify&kind=slow&delay_ms=300", 0, 0},
        {"route=info&kind=slow&delay_ms=2500", 1, 0},
        {"route=commit&kind=status&status=503", 1, 0},
        {"route=commit&kind=drop_after", 1, 0},
        {"route=info&kind=status&status=408", 1, 0},
        {"route=resolve&kind=status&status=500&count=3", 3, 0},
        {"route=storage_get&kind=drop_body", 1, 0},
    };
    int injected = 0, recovered = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[700], cache[700], repo[64], msg[1200], q[256];
        snprintf(dir, sizeof dir, "%s/fault%zu", root, i);
        snprintf(cache, sizeof cache, "%s/fcache%zu", root, i);
        snprintf(repo, sizeof repo, "tester/fault-%zu", i);
        CHECK(thub_make_outdir(dir, WEIGHTS, 100 + (unsigned)i) == 0, "outdir");
        thub_emu_ctl(&emu, "reset");
        snprintf(q, sizeof q, "fault?%s", cases[i].query);
        CHECK(thub_emu_ctl(&emu, q) == 200, "fault %s not accepted", q);
        hub_client c;
        sleeps rec;
        CHECK(client(&c, &rec) == 0, "client");
        hub_push_result r;
        int rc = roundtrip(&c, repo, dir, cache, &r, msg, sizeof msg);
        int retries = c.stats.retries;
        hub_client_free(&c);
        int want = cases[i].retries < 0 ? (retries == 1) : cases[i].retries;
        injected += cases[i].retries < 0 ? 1 : cases[i].retries;
        EXPECT(rc == 0, "%s: %s", cases[i].query, msg);
        EXPECT(retries == want, "%s: %d retries, expected %d", cases[i].query, retries, want);
        int slept_ok = cases[i].slept == 0;
        for (int k = 0; k < rec.n; k++) slept_ok |= rec.s[k] == cases[i].slept;
        EXPECT(slept_ok, "%s: no sleep of %g s requested", cases[i].query, cases[i].slept);
        EXPECT(thub_emu_count(&emu, "commit") ==
                   1 + (strstr(cases[i].query, "commit&kind=status") != NULL),
               "%s: %d commit requests", cases[i].query, thub_emu_count(&emu, "commit"));
        if (rc == 0 && retries == want) recovered += cases[i].retries < 0 ? 1 : retries;
    }
    printf("    faults injected %d, recovered %d\n", injected, recovered);
    CHECK(injected == recovered, "not every fault was recovered");
}

static void test_hub_retry_budget_exhausted(void) {
    char dir[700];
    snprintf(dir, sizeof dir, "%s/out1", root);
    thub_emu_ctl(&emu, "reset");
    thub_emu_ctl(&emu, "fault?route=preupload&kind=status&status=503&count=6");
    hub_client c;
    sleeps rec;
    CHECK(client(&c, &rec) == 0, "client");
    hub_push_opts o = {.repo_id = "tester/cn-one", .dir = dir};
    hub_push_result r;
    cnet_error err;
    int rc = hub_push(&c, &o, &r, &err);
    hub_client_free(&c);
    CHECK(rc != 0 && strstr(err.msg, "HTTP 503") && strstr(err.msg, "request id emu-"), "rc %d: %s",
          rc, err.msg);
    CHECK(thub_emu_count(&emu, "preupload") == 6, "%d attempts (1 + 5 retries expected)",
          thub_emu_count(&emu, "preupload"));
    CHECK(rec.n == 5 && rec.s[0] == 1 && rec.s[1] == 2 && rec.s[2] == 4 && rec.s[3] == 8 &&
              rec.s[4] == 8,
          "backoff not 1,2,4,8,8");
}

static int run_cli(const char *const *argv, const char *const *env, char *out, size_t cap) {
    return thub_run(argv, env, 0, 0, out, cap);
}

static void test_hub_cli_canary(void) {
    char canary[64], dir[700], cache[700], exe[256], out[65536], tokenenv[96];
    srand((unsigned)getpid());
    snprintf(canary, sizeof canary, "hf_CANARY%08x%08x", (unsigned)rand(), (unsigned)rand());
    snprintf(tokenenv, sizeof tokenenv, "HF_TOKEN=%s", canary);
    snprintf(exe, sizeof exe, "%s/cnet", getenv("BUILD") ? getenv("BUILD") : "build");
    snprintf(dir, sizeof dir, "%s/canary-out", root);
    snprintf(cache, sizeof cache, "%s/canary-cache", root);
    CHECK(thub_make_outdir(dir, WEIGHTS, 7) == 0, "outdir");
    /* Restart the emulator accepting the canary as its write token. */
    thub_emu_stop(&emu);
    char edir[700];
    snprintf(edir, sizeof edir, "%s/canary-emu", root);
    mkdir(edir, 0755);
    const char *extra[] = {"--token", canary, "--multipart-threshold", "200000", "--chunk-size",
                           "65536",   NULL};
    CHECK(thub_emu_start(&emu, edir, extra) == 0, "emulator restart");
    thub_emu_ctl(&emu, "fault?route=batch&kind=status&status=500");
    const char *env[] = {tokenenv, "CNET_HUB_SLEEP_SCALE=0.01", NULL};
    const char *push[] = {exe,          "push",       "--repo", "tester/canary", "--dir", dir,
                          "--endpoint", emu.endpoint, NULL};
    int rc = run_cli(push, env, out, sizeof out);
    CHECK(rc == 0, "cnet push exited %d: %s", rc, out);
    CHECK(strstr(out, "pushed tester/canary@main: commit"), "%s", out);
    CHECK(!strstr(out, canary) && !strstr(out, "CANARY"), "canary in push output");
    const char *pull[] = {exe,          "pull",    "tester/canary", "--endpoint",
                          emu.endpoint, "--cache", cache,           NULL};
    rc = run_cli(pull, env, out, sizeof out);
    CHECK(rc == 0 && !strstr(out, "CANARY"), "pull rc %d, output %s", rc, out);
    /* A wrong token: the error names the source, never the value. */
    const char *wrong[] = {"HF_TOKEN=hf_CANARYwrongwrongwrong", NULL};
    rc = run_cli(push, wrong, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "401") && strstr(out, "Invalid credentials") &&
              strstr(out, "token from HF_TOKEN") && !strstr(out, "CANARY"),
          "wrong-token push: %s", out);
    CHECK(!thub_tree_contains(cache, "CANARY"), "canary in the pulled cache");
    /* Where did the token go? Only API routes, only in Authorization. */
    size_t n;
    char *log = thub_read(emu.log, &n);
    CHECK(log, "no emulator log");
    int with = 0, lines = 0, bad = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        int storage = strncmp(line, "storage", 7) == 0 || strncmp(line, "complete", 8) == 0;
        if (storage && strstr(line, "Authorization")) bad++;
        char *hit = strstr(line, "CANARY");
        if (!hit) continue;
        with++;
        if (storage || hit - line < 25 || strncmp(hit - 25, "Authorization: Bearer hf_", 25) != 0 ||
            strstr(hit + 6, "CANARY"))
            bad++, printf("    misplaced: %.120s\n", line);
    }
    free(log);
    printf("    requests %d, with the canary %d (all in Authorization), misplaced %d\n", lines,
           with, bad);
    CHECK(bad == 0 && with > 0, "canary misplaced %d times", bad);
    CHECK(thub_emu_count(&emu, NULL) == 0, "storage saw Authorization");
}

static void test_hub_cli_bad_input(void) {
    char exe[256], out[65536], dir[700], home[700], homeenv[720];
    snprintf(exe, sizeof exe, "%s/cnet", getenv("BUILD") ? getenv("BUILD") : "build");
    snprintf(dir, sizeof dir, "%s/canary-out", root);
    snprintf(home, sizeof home, "%s/empty-home", root);
    mkdir(home, 0755);
    snprintf(homeenv, sizeof homeenv, "HOME=%s", home);
    const char *noenv[] = {"HF_TOKEN=", "HF_TOKEN_FILE=",
                           "HF_HOME=",  "HF_TOKEN_PATH=",
                           homeenv,     "CNET_HUB_SLEEP_SCALE=0.01",
                           NULL};
    const char *bad_id[] = {exe, "push", "--repo", "no-slash", "--dir", dir, NULL};
    int rc = run_cli(bad_id, noenv, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "invalid repo id 'no-slash'"), "%d %s", rc, out);
    const char *push[] = {exe, "push",       "--repo",     "tester/x", "--dir",
                          dir, "--endpoint", emu.endpoint, NULL};
    rc = run_cli(push, noenv, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "HF_TOKEN") && strstr(out, "HF_TOKEN_FILE") &&
              strstr(out, "huggingface/token"),
          "missing token: %s", out);
    const char *help[] = {exe, "push", "--help", NULL};
    rc = run_cli(help, noenv, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "HF_TOKEN_FILE") && strstr(out, "$HF_HOME/token"), "%s", out);
    const char *missing[] = {
        exe, "pull", "tester/does-not-exist", "--endpoint", emu.endpoint, "--cache", home, NULL};
    rc = run_cli(missing, noenv, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "404") && strstr(out, "RepoNotFound") &&
              strstr(out, "Repository not found"),
          "404: %s", out);
    const char *offline[] = {exe, "pull", "tester/canary", "--offline", "--cache", home, NULL};
    rc = run_cli(offline, noenv, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "not available offline"), "offline without cache: %s", out);
    char cache[700];
    snprintf(cache, sizeof cache, "%s/canary-cache", root);
    const char *offline_ok[] = {exe,   "pull", "hf://tester/canary", "--offline", "--cache",
                                cache, NULL};
    rc = run_cli(offline_ok, noenv, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "/snapshots/"), "offline with cache: %s", out);
    /* Unreadable weights: the error names the file (as nobody when root). */
    char unreadable[700], path[800];
    snprintf(unreadable, sizeof unreadable, "%s/unreadable", root);
    CHECK(thub_make_outdir(unreadable, 1000, 9) == 0, "outdir");
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", unreadable);
    chmod(path, 0);
    const char *push_u[] = {exe,        "push",       "--repo",     "tester/x", "--dir",
                            unreadable, "--endpoint", emu.endpoint, NULL};
    const char *tokenenv[] = {"HF_TOKEN=hf_whatever12345", NULL};
    rc = thub_run(push_u, tokenenv, 1, 0, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "cannot open") && strstr(out, path), "%d %s", rc, out);
}

static void test_hub_403_and_resume(void) {
    char dir[700], cache[700], exe[256], out[65536];
    snprintf(exe, sizeof exe, "%s/cnet", getenv("BUILD") ? getenv("BUILD") : "build");
    /* Read-only token on a write: 403 with the server's message. */
    thub_emu_stop(&emu);
    char edir[700];
    snprintf(edir, sizeof edir, "%s/ro-emu", root);
    mkdir(edir, 0755);
    const char *extra[] = {
        "--token", TOKEN,          "--read-token", READ_TOKEN, "--multipart-threshold",
        "200000",  "--chunk-size", "65536",        NULL};
    CHECK(thub_emu_start(&emu, edir, extra) == 0, "emulator restart");
    snprintf(dir, sizeof dir, "%s/out1", root);
    const char *ro[] = {"HF_TOKEN=" READ_TOKEN, "CNET_HUB_SLEEP_SCALE=0.01", NULL};
    const char *push[] = {exe, "push",       "--repo",     "tester/ro", "--dir",
                          dir, "--endpoint", emu.endpoint, NULL};
    int rc = run_cli(push, ro, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "HTTP 403") && strstr(out, "read-only token") &&
              strstr(out, "write permission"),
          "403: %s", out);
    /* Disk full during a pull: no blob, only a resumable .incomplete; then
     * the next pull resumes it with Range and verifies it. */
    const char *rw[] = {"HF_TOKEN=" TOKEN, "CNET_HUB_SLEEP_SCALE=0.01", NULL};
    rc = run_cli(push, rw, out, sizeof out);
    CHECK(rc == 0, "push: %s", out);
    snprintf(cache, sizeof cache, "%s/full-cache", root);
    const char *pull[] = {exe,          "pull",       "tester/ro", "--include", "*.safetensors",
                          "--endpoint", emu.endpoint, "--cache",   cache,       NULL};
    rc = thub_run(pull, rw, 0, 250000, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "File too large"), "pull with a full disk: %d %s", rc, out);
    char blobs[800];
    snprintf(blobs, sizeof blobs, "%s/models--tester--ro/blobs", cache);
    CHECK(thub_tree_contains(blobs, ".incomplete"), "no .incomplete left");
    char sha[65], blob[900];
    thub_sha256(strcat(strcpy(blob, dir), "/diffusion_pytorch_model.safetensors"), sha);
    snprintf(blob, sizeof blob, "%s/%s", blobs, sha);
    CHECK(access(blob, F_OK) != 0, "a blob exists after a failed download");
    rc = run_cli(pull, rw, out, sizeof out);
    CHECK(rc == 0, "resumed pull: %s", out);
    /* not a terminal: one plain line for the file, once it is in place */
    EXPECT(strstr(out, "downloaded diffusion_pytorch_model.safetensors (600.0 kB/600.0 kB, ") &&
               !strchr(out, '\r'),
           "the pull's progress lines: %s", out);
    char got[65];
    CHECK(thub_sha256(blob, got) == 0 && strcmp(got, sha) == 0, "resumed blob differs");
    size_t n;
    char *log = thub_read(emu.log, &n);
    CHECK(log && strstr(log, "Range: bytes=250000-"), "no Range request after the failure");
    free(log);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (thub_tmpdir(root, sizeof root) != 0) return 1;
    const char *extra[] = {"--token", TOKEN, "--multipart-threshold", "200000", "--chunk-size",
                           "65536",   NULL};
    if (thub_emu_start(&emu, root, extra) != 0) {
        printf("cannot start the emulator (%s/tests/tool_hub_emulator)\n",
               getenv("BUILD") ? getenv("BUILD") : "build");
        return 1;
    }
    RUN(test_hub_push_pull_multipart);
    RUN(test_hub_pull_progress);
    RUN(test_hub_pull_stopped);
    RUN(test_hub_repush_sends_nothing);
    RUN(test_hub_faults_recovered);
    RUN(test_hub_retry_budget_exhausted);
    RUN(test_hub_cli_canary);
    RUN(test_hub_cli_bad_input);
    RUN(test_hub_403_and_resume);
    thub_emu_stop(&emu);
    return harness_done();
}
