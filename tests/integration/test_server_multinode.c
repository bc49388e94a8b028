/* Several `cnet serve --device cpu` nodes on one machine sharing one --data
 * dir and one PostgreSQL job store ($CNET_TEST_STORE, which
 * tests/integration/store_pg_test.sh sets after starting a cluster; without
 * it the test says it is skipped). A tiny model from `cnet init-model
 * --preset tiny` and a `cnet dataset make-fill` dataset, as in
 * test_server_engine:
 *   - placement: each node, with a different base loaded, claims a job on
 *     its own base first from a queue holding jobs on both (the claims'
 *     node names in the store's events);
 *   - jobs spread over nodes: two training jobs accepted by one node run on
 *     two nodes at once (each claim's event names its node), with the same
 *     final weights (sha256), which are the reference of the tests below;
 *     each job's weights are served by the node that did not run it;
 *   - a dataset uploaded through one node is listed by the other (the
 *     store's row), and a job on it accepted there trains to the reference
 *     weights; it is deleted through the other node, and gone for both;
 *   - kill -9 of a node in the middle of an upload (half the body sent)
 *     leaves no dataset that any node lists;
 *   - placement by memory: a node whose --memory-limit is below a training
 *     job's estimated need never claims it; the node it fits runs it;
 *   - SSE through a node that does not run the job follows it to the end
 *     (progress events written by the other node, then succeeded);
 *   - kill -9 of the node running a job: another node rescues it once its
 *     lease expires and resumes it from its checkpoint, with final weights
 *     byte-identical to the uninterrupted run's;
 *   - SIGSTOP of the node running a job past its lease (a partition): another
 *     node takes the job over; the stopped node, resumed, is fenced out (it
 *     writes nothing to the store, and no file: its own clock tells it the
 *     lease is gone, so it cannot spoil the new holder's checkpoints):
 *     one succeeded event (checked again after the crash trials), the
 *     weights the reference's.
 * The crash and partition cases repeat TRIALS times (MULTINODE_TRIALS in the
 * environment overrides it, for the 20-run figure in BENCHMARKS.md). The
 * truths: the store's own rows read through a separate connection (the
 * events' node names) and the weights of an uninterrupted run. */
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/store/jobs_datasets.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"
#include "tests/lib/lib_store.h"

#define T SERVER_TEST_TOKEN
#define NODES 2
#define TRIALS 2      /* crash and partition runs each (MULTINODE_TRIALS overrides) */
#define TRAIN_STEPS 6 /* checkpoints at 2 and 4 */
/* The crash and partition tests' job: long enough that a kill or a stop
 * lands between its first checkpoint and its end (progress is reported every
 * 0.5 s at most, so a six-step job can end between two reports). */
#define LONG_STEPS 24
#define LEASE_S "3"    /* short, so a lost node's job moves within seconds */
#define JOB_WAIT_S 180 /* a six-step job plus a rescue, on a loaded machine */
#define EVENTS_MAX 256

static char dir[512], models[600], fill[600], bin[600], data[600], host[64];
static char ref_sha[65];  /* final weights of an uninterrupted run */
static char long_sha[65]; /* the same, LONG_STEPS steps */
#define MAX_TRIALS 100
static char stopped_ids[MAX_TRIALS][64]; /* the partition trials' jobs, checked again at the end */
static int n_stopped;
static test_server node[NODES];
static jobs_store *store; /* the truth: the store read directly */

static const char *const train_spec =
    "{\"pretrained_model_name_or_path\": \"%s\", \"dataset\": \"%s\", \"resolution\": 16, "
    "\"train_batch_size\": 2, \"max_train_steps\": %d, \"checkpointing_steps\": 2, "
    "\"learning_rate\": 0.001, \"lr_warmup_steps\": 0, \"seed\": 11}";

static int start(int i) {
    const char *const args[] = {"--models", models,    "--data-root", dir, "--device",
                                "cpu",      "--lease", LEASE_S,       NULL};
    return server_start(&node[i], data, args);
}

static json_t *get_json(test_server *s, const char *path) {
    http_resp r;
    http_do(s, "GET", path, T, NULL, NULL, 0, 0, &r);
    json_t *v = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    http_resp_free(&r);
    return v;
}

static int submit_train_steps(test_server *s, const char *base, const char *dataset, int steps,
                              char id[64]) {
    char body[2048];
    snprintf(body, sizeof body, train_spec, base, dataset, steps);
    const char *const h[] = {"Content-Type: application/json", NULL};
    http_resp r;
    http_do(s, "POST", "/v1/jobs", T, h, body, strlen(body), 0, &r);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(id, 64, "%s", j ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    long st = r.status;
    http_resp_free(&r);
    return st == 202 && id[0] ? 0 : -1;
}

static int submit_train_base(test_server *s, const char *base, const char *dataset, char id[64]) {
    return submit_train_steps(s, base, dataset, TRAIN_STEPS, id);
}

static int submit_train_on(test_server *s, const char *dataset, char id[64]) {
    return submit_train_base(s, "tiny", dataset, id);
}

static int submit_train(test_server *s, char id[64]) { return submit_train_on(s, fill, id); }

/* The job's state, attempt and progress step, from the store. */
static job_state job_now(const char *id, int *attempt, int *step) {
    job j;
    if (jobs_get(store, id, &j, NULL)) return JOB_N_STATES;
    job_state st = j.state;
    if (attempt) *attempt = j.attempt;
    json_t *p = j.progress_json ? json_loads(j.progress_json, 0, NULL) : NULL;
    if (step) *step = (int)json_integer_value(json_object_get(p, "step"));
    json_decref(p);
    job_clear(&j);
    return st;
}

static int wait_state(const char *id, job_state want, double timeout_s) {
    for (double t0 = test_now_s(); test_now_s() - t0 < timeout_s; usleep(50000)) {
        job_state st = job_now(id, NULL, NULL);
        if (st == want) return 0;
        if (job_state_terminal(st)) return -1;
    }
    return -1;
}

/* Which node (index) the job's latest claim names, -1 when none; and how
 * many claims and succeeded events it has. */
static int claims(const char *id, int *n_claims, int *n_succeeded) {
    jobs_event *ev;
    int n, who = -1;
    *n_claims = *n_succeeded = 0;
    if (jobs_events(store, id, 0, EVENTS_MAX, &ev, &n, NULL)) return -1;
    for (int i = 0; i < n; i++) {
        if (strcmp(ev[i].type, "state")) continue;
        *n_succeeded += strstr(ev[i].data_json, "\"succeeded\"") != NULL;
        if (!strstr(ev[i].data_json, "\"running\"")) continue;
        ++*n_claims;
        who = -1;
        for (int k = 0; k < NODES; k++) {
            char name[128];
            snprintf(name, sizeof name, "\"node\":\"%s:%d\"", host, node[k].port);
            if (strstr(ev[i].data_json, name)) who = k;
        }
    }
    jobs_events_free(ev, n);
    return who;
}

/* How many of the job's claims name node k. */
static int claims_by(const char *id, int k) {
    jobs_event *ev;
    int n, count = 0;
    char name[128];
    snprintf(name, sizeof name, "\"node\":\"%s:%d\"", host, node[k].port);
    if (jobs_events(store, id, 0, EVENTS_MAX, &ev, &n, NULL)) return -1;
    for (int i = 0; i < n; i++)
        count += !strcmp(ev[i].type, "state") && strstr(ev[i].data_json, "\"running\"") &&
                 strstr(ev[i].data_json, name);
    jobs_events_free(ev, n);
    return count;
}

/* Waits until the job runs past step `past` and returns its node, -1 on timeout. */
static int running_past(const char *id, int past) {
    for (double t0 = test_now_s(); test_now_s() - t0 < JOB_WAIT_S; usleep(20000)) {
        int step = 0, nc, ns;
        if (job_now(id, NULL, &step) == JOB_RUNNING && step > past) return claims(id, &nc, &ns);
    }
    return -1;
}

/* Waits until the job runs with its checkpoint at step `step` or later
 * recorded (the store records each at once) and returns its node, -1 when
 * it ended first or on timeout. */
static int running_checkpointed(const char *id, int step) {
    for (double t0 = test_now_s(); test_now_s() - t0 < JOB_WAIT_S; usleep(10000)) {
        job j;
        if (jobs_get(store, id, &j, NULL)) return -1;
        const job_state st = j.state;
        const int64_t at = j.checkpoint_step;
        job_clear(&j);
        if (st == JOB_RUNNING && at >= step) {
            int nc, ns;
            return claims(id, &nc, &ns);
        }
        if (job_state_terminal(st)) return -1;
    }
    return -1;
}

static int weights_sha(const char *id, char hex[65]) {
    char path[900];
    snprintf(path, sizeof path, "%s/jobs/%s/diffusion_pytorch_model.safetensors", data, id);
    return file_sha256_hex(path, hex);
}

/* The event id and node (index) of the job's first claim; -1 when none. */
static int first_claim(const char *id, int64_t *at) {
    jobs_event *ev;
    int n, who = -1;
    *at = INT64_MAX;
    if (jobs_events(store, id, 0, EVENTS_MAX, &ev, &n, NULL)) return -1;
    for (int i = 0; i < n && who < 0; i++) {
        if (strcmp(ev[i].type, "state") || !strstr(ev[i].data_json, "\"running\"")) continue;
        *at = ev[i].id;
        for (int k = 0; k < NODES; k++) {
            char name[128];
            snprintf(name, sizeof name, "\"node\":\"%s:%d\"", host, node[k].port);
            if (strstr(ev[i].data_json, name)) who = k;
        }
    }
    jobs_events_free(ev, n);
    return who;
}

/* Node i loads base (a job on it runs there: the other node is stopped). */
static int load_base(int i, const char *base) {
    char id[64];
    kill(node[1 - i].pid, SIGSTOP);
    int rc = submit_train_base(&node[i], base, fill, id);
    if (!rc) rc = wait_state(id, JOB_SUCCEEDED, JOB_WAIT_S);
    kill(node[1 - i].pid, SIGCONT);
    return rc;
}

/* Placement: node 0 has base "tiny" loaded, node 1 "tiny2" (a copy in
 * another folder: another base to the cache). Two jobs on each are queued
 * while both nodes are stopped, tiny2's first (the oldest-first order would
 * give node 0 a tiny2 job); resumed, each node's first claim is a job on its
 * own base. Runs first, while no node has loaded the other's base. */
static void test_claims_prefer_loaded_base(void) {
    CHECK(load_base(0, "tiny") == 0, "node 0 ran a job on tiny");
    CHECK(load_base(1, "tiny2") == 0, "node 1 ran a job on tiny2");
    char spec[2][2048], ids[4][JOBS_ID_MAX];
    const char *const bases[2] = {"tiny", "tiny2"};
    for (int b = 0; b < 2; b++)
        snprintf(spec[b], sizeof spec[b], train_spec, bases[b], fill, TRAIN_STEPS);
    kill(node[0].pid, SIGSTOP);
    kill(node[1].pid, SIGSTOP);
    const int base_of[4] = {1, 1, 0, 0}; /* the order accepted: tiny2, tiny2, tiny, tiny */
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++) {
        jobs_new req = {.kind = "train", .spec_json = spec[base_of[k]]};
        int created;
        rc = jobs_enqueue(store, &req, ids[k], &created, NULL);
    }
    kill(node[0].pid, SIGCONT);
    kill(node[1].pid, SIGCONT);
    CHECK(rc == 0, "four jobs queued");
    int64_t first_at[NODES] = {INT64_MAX, INT64_MAX};
    int first_base[NODES] = {-1, -1};
    for (int k = 0; k < 4; k++) {
        CHECK(wait_state(ids[k], JOB_SUCCEEDED, JOB_WAIT_S) == 0, "job %d succeeded", k);
        int64_t at;
        const int who = first_claim(ids[k], &at);
        printf("    job %d on %s ran on node %d\n", k, bases[base_of[k]], who);
        CHECK(who >= 0, "job %d's claim names its node", k);
        if (at < first_at[who]) first_at[who] = at, first_base[who] = base_of[k];
    }
    EXPECT(first_base[0] == 0, "node 0's first claim is a job on its base tiny, not %d",
           first_base[0]);
    EXPECT(first_base[1] == 1, "node 1's first claim is a job on its base tiny2, not %d",
           first_base[1]);
}

static void test_jobs_spread_over_nodes(void) {
    char a[64], b[64], sha_a[65] = "", sha_b[65] = "";
    CHECK(submit_train(&node[0], a) == 0 && submit_train(&node[0], b) == 0, "submit two jobs");
    CHECK(wait_state(a, JOB_SUCCEEDED, JOB_WAIT_S) == 0, "job a succeeded");
    CHECK(wait_state(b, JOB_SUCCEEDED, JOB_WAIT_S) == 0, "job b succeeded");
    int ca, cb, sa, sb;
    const int na = claims(a, &ca, &sa), nb = claims(b, &cb, &sb);
    printf("    job a ran on node %d, job b on node %d\n", na, nb);
    CHECK(na >= 0 && nb >= 0 && na != nb, "the two jobs ran on two nodes (%d, %d)", na, nb);
    CHECK(ca == 1 && cb == 1 && sa == 1 && sb == 1, "one claim and one success each");
    CHECK(weights_sha(a, sha_a) == 0 && weights_sha(b, sha_b) == 0, "final weights");
    CHECK(!strcmp(sha_a, sha_b), "one spec, two nodes, two results: %s vs %s", sha_a, sha_b);
    snprintf(ref_sha, sizeof ref_sha, "%s", sha_a);
    /* each job's files through the node that did not run it */
    const char *ids[2] = {a, b};
    const int ran[2] = {na, nb};
    for (int k = 0; k < 2; k++) {
        char path[200], hex[65] = "";
        snprintf(path, sizeof path, "/v1/jobs/%s/artifacts/diffusion_pytorch_model.safetensors",
                 ids[k]);
        http_resp r;
        http_do(&node[1 - ran[k]], "GET", path, T, NULL, NULL, 0, 0, &r);
        unsigned char d[SHA256_DIGEST_LENGTH];
        if (r.status == 200) SHA256((unsigned char *)r.body, r.len, d);
        for (int i = 0; r.status == 200 && i < SHA256_DIGEST_LENGTH; i++)
            sprintf(hex + 2 * i, "%02x", d[i]);
        EXPECT(r.status == 200 && !strcmp(hex, ref_sha),
               "job %s's weights through node %d: %ld, sha %s", ids[k], 1 - ran[k], r.status, hex);
        http_resp_free(&r);
    }
}

/* A dataset uploaded through one node is listed by the other and trains
 * there: the datasets live on the shared --data, nothing node-local. */
static void test_dataset_through_another_node(void) {
    CHECK(ref_sha[0], "no reference run");
    char cmd[1400], tar[700], id[64], job_id[64], sha[65] = "";
    snprintf(tar, sizeof tar, "%s/fill.tar", dir);
    snprintf(cmd, sizeof cmd, "tar -C %s -cf %s .", fill, tar);
    CHECK(run_quiet(cmd) == 0, "tar the fill dataset");
    size_t len;
    char *bytes = file_read(tar, &len);
    CHECK(bytes, "read %s", tar);
    http_resp r;
    http_do(&node[0], "POST", "/v1/datasets?name=fill.tar", T, NULL, bytes, len, 0, &r);
    free(bytes);
    json_t *v = r.status == 201 ? json_loads(r.body, 0, NULL) : NULL;
    snprintf(id, sizeof id, "%s", v ? json_string_value(json_object_get(v, "id")) : "");
    json_decref(v);
    CHECK(id[0], "upload through node 0: %ld %.200s", r.status, r.body ? r.body : "");
    http_resp_free(&r);
    http_do(&node[1], "GET", "/v1/datasets", T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && r.body && strstr(r.body, id), "node 1 lists %s: %ld", id, r.status);
    http_resp_free(&r);
    CHECK(submit_train_on(&node[1], id, job_id) == 0, "a job on it through node 1");
    CHECK(wait_state(job_id, JOB_SUCCEEDED, JOB_WAIT_S) == 0, "the job succeeded");
    CHECK(weights_sha(job_id, sha) == 0 && !strcmp(sha, ref_sha),
          "the uploaded copy trains as the folder did: %s vs %s", sha, ref_sha);
    /* deleted through the node that did not take the upload */
    char path[128];
    snprintf(path, sizeof path, "/v1/datasets/%s", id);
    http_do(&node[1], "DELETE", path, T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200, "delete through node 1: %ld %.200s", r.status, r.body ? r.body : "");
    http_resp_free(&r);
    http_do(&node[0], "GET", "/v1/datasets", T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 200 && r.body && !strstr(r.body, id), "node 0 lists it no more");
    http_resp_free(&r);
    http_do(&node[0], "GET", path, T, NULL, NULL, 0, 0, &r);
    EXPECT(r.status == 404, "GET through node 0 after the delete: %ld", r.status);
    http_resp_free(&r);
    jobs_dataset d;
    EXPECT(jobs_dataset_get(store, id, &d, NULL) == CNET_ENOTFOUND, "the store's row is gone");
}

/* The ready datasets the store holds (the truth, beside what nodes list). */
static int store_datasets(void) {
    jobs_dataset *rows;
    int n;
    if (jobs_dataset_list(store, &rows, &n, NULL)) return -1;
    for (int i = 0; i < n; i++) jobs_dataset_clear(&rows[i]);
    free(rows);
    return n;
}

/* Sends POST /v1/datasets to node i announcing len bytes but sending only
 * the first half of them; returns the socket (left open), -1 on failure. */
static int upload_half(int i, const char *bytes, size_t len) {
    return http_send_raw(&node[i], "POST /v1/datasets?name=half.tar", "", len, bytes, len / 2);
}

/* kill -9 of a node in the middle of an upload: no node lists a dataset
 * from it, before or after the node is back. */
static void test_upload_cut_by_kill9(void) {
    char tar[700];
    snprintf(tar, sizeof tar, "%s/fill.tar", dir);
    size_t len;
    char *bytes = file_read(tar, &len);
    CHECK(bytes, "read %s (made by test_dataset_through_another_node)", tar);
    const int before = store_datasets();
    CHECK(before >= 0, "the store's datasets");
    const int fd = upload_half(0, bytes, len);
    free(bytes);
    CHECK(fd >= 0, "half an upload sent to node 0");
    CHECK(server_stop(&node[0], SIGKILL, 5000) == 128 + SIGKILL, "kill -9 node 0 mid-upload");
    close(fd);
    http_resp r;
    http_do(&node[1], "GET", "/v1/datasets", T, NULL, NULL, 0, 0, &r);
    json_t *v = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    EXPECT(v && (int)json_array_size(json_object_get(v, "datasets")) == before,
           "node 1 lists %d datasets, as before: %.300s", before, r.body ? r.body : "");
    json_decref(v);
    http_resp_free(&r);
    EXPECT(store_datasets() == before, "the store has no new ready dataset");
    CHECK(start(0) == 0, "restart node 0");
    http_do(&node[0], "GET", "/v1/datasets", T, NULL, NULL, 0, 0, &r);
    v = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    EXPECT(v && (int)json_array_size(json_object_get(v, "datasets")) == before,
           "restarted node 0 lists %d datasets: %.300s", before, r.body ? r.body : "");
    json_decref(v);
    http_resp_free(&r);
}

typedef struct sse_call {
    test_server *s;
    char path[128];
    http_resp r;
} sse_call;

static void *sse_main(void *arg) {
    sse_call *c = arg;
    http_do(c->s, "GET", c->path, T, NULL, NULL, 0, 0, &c->r);
    return NULL;
}

static void test_sse_through_another_node(void) {
    CHECK(ref_sha[0], "no reference run");
    char id[64];
    CHECK(submit_train(&node[0], id) == 0, "submit");
    const int runner = running_past(id, 0);
    CHECK(runner >= 0, "the job runs");
    sse_call c = {.s = &node[1 - runner]};
    snprintf(c.path, sizeof c.path, "/v1/jobs/%s/events", id);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sse_main, &c) == 0, "stream thread");
    pthread_join(t, NULL);
    /* the truth: the events the running node wrote, read from the store */
    jobs_event *ev;
    int n = 0, same = 0, streamed = 0;
    CHECK(jobs_events(store, id, 0, EVENTS_MAX, &ev, &n, NULL) == 0, "the store's events");
    for (const char *p = c.r.body; p && (p = strstr(p, "id: ")); p++, streamed++)
        same += streamed < n && ev[streamed].id == atoll(p + 4);
    int progress = 0;
    for (int i = 0; i < n; i++) progress += !strcmp(ev[i].type, "progress");
    jobs_events_free(ev, n);
    printf("    job on node %d, streamed by node %d: %ld, %d of the store's %d events (%d "
           "progress)\n",
           runner, 1 - runner, c.r.status, same, n, progress);
    EXPECT(c.r.status == 200 && c.r.body && strstr(c.r.body, "\"succeeded\""),
           "the stream follows the job to its end: %.300s", c.r.body ? c.r.body : "");
    EXPECT(same == n && streamed == n && progress > 0,
           "the other node streams exactly the store's events: %d of %d, %d streamed", same, n,
           streamed);
    http_resp_free(&c.r);
    EXPECT(job_now(id, NULL, NULL) == JOB_SUCCEEDED, "succeeded");
}

/* Restarts node i (on its old data dir, a new port). */
static int restart(int i) { return start(i); }

/* The tiny model's training need (server/workers/job_memory.h): its weights
 * (unet 3.2 MB, vae 0.7 MB, text encoder 0.2 MB) plus four copies of the
 * UNet, about 16.9 MB; a node limited to 8 MB runs none of its train jobs. */
#define SMALL_NODE_MEMORY "8000000"

/* Placement by memory: node 0 restarted with --memory-limit below a train
 * job's need; with node 1 stopped for a lease's length the job stays queued
 * (node 0 was woken by it and passed it over), and once node 1 is back it
 * runs there; node 0 never claims it. (Node 1 may claim it twice: a node
 * stopped between reading its clock and its claim counts the lease as lost
 * at once and lets it expire, pool.c's held_until.) */
static void test_placement_by_memory(void) {
    CHECK(server_stop(&node[0], SIGTERM, 10000) == 0, "stop node 0");
    const char *const args[] = {
        "--models", models,           "--data-root",     dir, "--device", "cpu", "--lease",
        LEASE_S,    "--memory-limit", SMALL_NODE_MEMORY, NULL};
    CHECK(server_start(&node[0], data, args) == 0, "node 0 with --memory-limit %s",
          SMALL_NODE_MEMORY);
    char id[64];
    kill(node[1].pid, SIGSTOP);
    const int sent = submit_train(&node[0], id);
    int queued = sent == 0;
    for (int k = 0; queued && k < 10 * atoi(LEASE_S); k++, usleep(100000)) /* a lease's time */
        queued = job_now(id, NULL, NULL) == JOB_QUEUED;
    kill(node[1].pid, SIGCONT);
    CHECK(sent == 0, "submit through node 0");
    EXPECT(queued, "node 0 left the job queued (state %d)", job_now(id, NULL, NULL));
    CHECK(wait_state(id, JOB_SUCCEEDED, JOB_WAIT_S) == 0, "the job succeeded");
    int nc, ns;
    const int who = claims(id, &nc, &ns);
    const int by0 = claims_by(id, 0);
    printf("    the job ran on node %d: %d claims, %d by node 0\n", who, nc, by0);
    EXPECT(who == 1 && by0 == 0 && ns == 1, "ran on node 1 (%d), never claimed by node 0 (%d)", who,
           by0);
}

static int trials(void) {
    const char *e = getenv("MULTINODE_TRIALS");
    return e && atoi(e) > 0 ? atoi(e) : TRIALS;
}

/* The final weights of an uninterrupted LONG_STEPS run, run once. */
static const char *long_reference(void) {
    char id[64];
    if (!long_sha[0] && (submit_train_steps(&node[0], "tiny", fill, LONG_STEPS, id) ||
                         wait_state(id, JOB_SUCCEEDED, JOB_WAIT_S) || weights_sha(id, long_sha)))
        long_sha[0] = 0;
    return long_sha[0] ? long_sha : NULL;
}

static void test_kill9_another_node_resumes(void) {
    const char *ref = long_reference();
    CHECK(ref, "no reference run");
    char id[64], sha[65] = "";
    for (int trial = 0; trial < trials(); trial++) {
        CHECK(submit_train_steps(&node[0], "tiny", fill, LONG_STEPS, id) == 0, "submit");
        const int victim = running_checkpointed(id, 2);
        CHECK(victim >= 0, "the job runs past its first checkpoint");
        CHECK(server_stop(&node[victim], SIGKILL, 5000) == 128 + SIGKILL, "kill -9");
        const double t0 = test_now_s();
        const int ok = wait_state(id, JOB_SUCCEEDED, JOB_WAIT_S) == 0;
        int nc, ns, attempt = 0;
        const int finisher = claims(id, &nc, &ns);
        job_now(id, &attempt, NULL);
        printf("    trial %d: node %d killed; %s on node %d after %.1f s, attempt %d\n", trial,
               victim, ok ? "finished" : "NOT finished", finisher, test_now_s() - t0, attempt);
        CHECK(restart(victim) == 0, "restart the killed node");
        CHECK(ok, "trial %d: the job finished", trial);
        CHECK(finisher == 1 - victim && nc == 2 && ns == 1 && attempt == 2,
              "another node took it over: node %d, %d claims, %d successes", finisher, nc, ns);
        CHECK(weights_sha(id, sha) == 0 && !strcmp(sha, ref),
              "trial %d: weights %s differ from the uninterrupted %s", trial, sha, ref);
    }
}

static void test_sigstop_fenced_out(void) {
    const char *ref = long_reference();
    CHECK(ref, "no reference run");
    for (int trial = 0; trial < trials(); trial++) {
        char id[64], sha[65] = "";
        CHECK(submit_train_steps(&node[0], "tiny", fill, LONG_STEPS, id) == 0, "submit");
        const int frozen = running_past(id, 0);
        CHECK(frozen >= 0, "the job runs");
        kill(node[frozen].pid, SIGSTOP);
        /* wait until the other node holds it, then let the frozen one go on */
        int taken = 0, nc = 0, ns = 0;
        for (double t0 = test_now_s(); test_now_s() - t0 < JOB_WAIT_S && !taken; usleep(50000))
            taken = claims(id, &nc, &ns) == 1 - frozen;
        kill(node[frozen].pid, SIGCONT);
        CHECK(taken, "another node took the job over");
        const int ok = wait_state(id, JOB_SUCCEEDED, JOB_WAIT_S) == 0;
        int attempt = 0;
        const int finisher = claims(id, &nc, &ns);
        const job_state st = job_now(id, &attempt, NULL);
        printf("    trial %d: node %d stopped past its lease; node %d finished, %d claims, "
               "%d successes, attempt %d\n",
               trial, frozen, finisher, nc, ns, attempt);
        CHECK(ok && st == JOB_SUCCEEDED, "trial %d: the job finished", trial);
        /* the woken node abandons the job at its next step without writing
         * a file (pool_lease_lost): the new holder's attempt is the last */
        CHECK(finisher == 1 - frozen && ns == 1 && nc == 2 && attempt == 2,
              "fenced out: node %d finished, %d successes, %d claims, attempt %d", finisher, ns, nc,
              attempt);
        if (n_stopped < MAX_TRIALS) snprintf(stopped_ids[n_stopped++], 64, "%s", id);
        CHECK(weights_sha(id, sha) == 0 && !strcmp(sha, ref),
              "trial %d: weights %s differ from the uninterrupted %s", trial, sha, ref);
        json_t *h = get_json(&node[frozen], "/readyz");
        EXPECT(h, "the fenced node still serves");
        json_decref(h);
    }
}

/* Long after the partition trials (the crash trials ran meanwhile), each of
 * their jobs still has one result: the woken nodes wrote none. */
static void test_no_late_double_results(void) {
    CHECK(n_stopped > 0, "no partition trial ran");
    for (int i = 0; i < n_stopped; i++) {
        int nc, ns, attempt = 0;
        claims(stopped_ids[i], &nc, &ns);
        const job_state st = job_now(stopped_ids[i], &attempt, NULL);
        EXPECT(st == JOB_SUCCEEDED && ns == 1 && nc == 2 && attempt == 2,
               "job %s: state %d, %d successes, %d claims, attempt %d", stopped_ids[i], st, ns, nc,
               attempt);
    }
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    const char *url = store_test_url();
    if (!url) {
        printf("    no $CNET_TEST_STORE: the multi-node tests run under "
               "tests/integration/store_pg_test.sh (PostgreSQL); skipped\n");
        return harness_done();
    }
    setenv("OMP_NUM_THREADS", "1", 0); /* see test_server_engine: two shared cores */
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    if (tmpdir_make(dir, sizeof dir, "cnet-multinode-")) return printf("no temp dir\n"), 1;
    snprintf(models, sizeof models, "%s/models", dir);
    snprintf(fill, sizeof fill, "%s/fill", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(models, 0700);
    mkdir(data, 0700);
    gethostname(host, sizeof host - 1);
    char cmd[2048], jd[700];
    snprintf(cmd, sizeof cmd, "%s init-model --out %s/tiny --preset tiny", bin, models);
    int rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "cp -r %s/tiny %s/tiny2", models, models);
    if (!rc) rc = run_quiet(cmd);
    snprintf(cmd, sizeof cmd, "%s dataset make-fill --n 4 --size 16 --out %s", bin, fill);
    if (!rc) rc = run_quiet(cmd);
    for (int i = 0; !rc && i < NODES; i++) rc = start(i);
    snprintf(jd, sizeof jd, "%s/jobs", data);
    cnet_error err = {0};
    if (!rc) rc = jobs_open(&store, url, jd, &err);
    if (rc) {
        printf("setup failed (%s)\ntest_server_multinode: 0 passed, 1 failed\n", err.msg);
        for (int i = 0; i < NODES; i++) server_stop(&node[i], SIGKILL, 1000);
        return 1;
    }
    RUN(test_claims_prefer_loaded_base);
    RUN(test_jobs_spread_over_nodes);
    RUN(test_sse_through_another_node);
    RUN(test_dataset_through_another_node);
    RUN(test_sigstop_fenced_out);
    RUN(test_kill9_another_node_resumes);
    RUN(test_no_late_double_results);
    RUN(test_upload_cut_by_kill9);
    RUN(test_placement_by_memory);
    for (int i = 0; i < NODES; i++) server_stop(&node[i], SIGTERM, 10000);
    jobs_close(store);
    tmpdir_remove(dir);
    return harness_done();
}
