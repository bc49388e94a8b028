/* The job store against its promises (RELIABILITY.md §2): every state
 * transition, Idempotency-Key, queue cap and positions, placement (a
 * claim's preference, bounded by a window and an age), fencing (a stale
 * token writes nothing), rescue of expired leases, bounded attempts, and an
 * out-of-memory sweep in the style of SQLite's own malloc tests (R4): the
 * k-th SQLite allocation fails for every k over enqueue/claim/progress/
 * checkpoint/complete/list; each call fails cleanly or succeeds, nothing
 * crashes, PRAGMA integrity_check stays ok. Uses a fake clock for leases.
 * Placement by fit: a job a claimer cannot run stays queued for another.
 * The datasets registry: uploading rows never listed, delete refused while
 * a queued or running job names the dataset, adoption once per store, and
 * the v1 → v2 migration of a store from before the registry.
 *
 * The same suite runs against PostgreSQL when $CNET_TEST_STORE names one
 * (tests/integration/store_pg_test.sh): each test starts from an empty
 * database; the OOM sweep is SQLite's alone (it counts SQLite's
 * allocations). */
#include <sqlite3.h>
#include <sys/stat.h>

#include "server/store/jobs_datasets.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_store.h"

static char dir[512];
static int64_t fake_now = 1000000;
static int64_t fake_clock(void *user) {
    (void)user;
    return fake_now;
}

/* The store named name; the first open of a name starts it empty. */
static jobs_store *open_store(const char *name) {
    static char last[64];
    char db[700], jd[700];
    const int fresh = strcmp(last, name) != 0;
    snprintf(last, sizeof last, "%s", name);
    snprintf(jd, sizeof jd, "%s/%s-jobs", dir, name);
    jobs_store *s = NULL;
    cnet_error err = {0};
    if (store_test_where(db, sizeof db, dir, name, fresh)) return NULL;
    if (jobs_open(&s, db, jd, &err))
        printf("    open: %s\n", err.msg);
    else
        jobs_set_clock(s, fake_clock, NULL);
    return s;
}

static int enqueue(jobs_store *s, char id[JOBS_ID_MAX], const char *key, const char *hash,
                   int max_attempts) {
    jobs_new req = {.kind = "train",
                    .spec_json = "{\"max_train_steps\":10}",
                    .idem_key = key,
                    .idem_hash = hash,
                    .max_attempts = max_attempts};
    int created;
    return jobs_enqueue(s, &req, id, &created, NULL);
}

static job get(jobs_store *s, const char *id) {
    job j;
    if (jobs_get(s, id, &j, NULL)) memset(&j, 0, sizeof j), j.state = JOB_N_STATES;
    return j;
}

static void test_jobs_schema_versioned(void) {
    jobs_store *s = open_store("schema");
    CHECK(s, "open");
    jobs_close(s);
    s = open_store("schema"); /* reopening an up-to-date store migrates nothing */
    CHECK(s, "reopen");
    jobs_close(s);
    char db[700];
    CHECK(store_test_where(db, sizeof db, dir, "schema", 0) == 0, "where");
    CHECK(store_test_set_version(db, 99) == 0, "raw write of the version");
    cnet_error err = {0};
    char jd[700];
    snprintf(jd, sizeof jd, "%s/schema-jobs", dir);
    CHECK(jobs_open(&s, db, jd, &err) == CNET_EFORMAT, "a newer schema must be refused");
    CHECK(strstr(err.msg, "99"), "message names the version: %s", err.msg);
}

/* A store emptied behind its back while job folders remain is refused,
 * naming them (on PostgreSQL without quoting the URL, which may hold a
 * password). */
static void test_jobs_emptied_store_refused(void) {
    jobs_store *s = open_store("emptied");
    CHECK(s, "open");
    char id[JOBS_ID_MAX];
    CHECK(enqueue(s, id, NULL, NULL, 0) == 0, "enqueue");
    jobs_close(s);
    char db[700], jd[700];
    CHECK(store_test_where(db, sizeof db, dir, "emptied", 0) == 0, "where");
    CHECK(store_test_empty(db) == 0, "empty the store");
    snprintf(jd, sizeof jd, "%s/emptied-jobs", dir);
    cnet_error err = {0};
    CHECK(jobs_open(&s, db, jd, &err) == CNET_EFORMAT, "an emptied store beside job folders");
    EXPECT(strstr(err.msg, id) && !strstr(err.msg, "://"), "names %s, not the URL: %s", id,
           err.msg);
}

/* PostgreSQL: the store's sessions ended by the server (a restart, a cut
 * connection): a call may fail, the next reconnects, and no half of a
 * transaction is ever committed outside it. */
static void test_jobs_pg_reconnects(void) {
    if (!store_test_url()) {
        printf("    PostgreSQL only (CNET_TEST_STORE): skipped\n");
        return;
    }
    jobs_store *s = open_store("reconnect");
    CHECK(s, "open");
    char a[JOBS_ID_MAX], b[JOBS_ID_MAX];
    CHECK(enqueue(s, a, NULL, NULL, 0) == 0, "enqueue");
    CHECK(store_test_kill_sessions(store_test_url()) >= 2, "the store's two sessions ended");
    int ok = 0;
    for (int i = 0; i < 2 && !ok; i++) ok = enqueue(s, b, NULL, NULL, 0) == 0;
    CHECK(ok, "enqueue after the sessions ended, within two calls");
    int64_t counts[JOB_N_STATES];
    CHECK(jobs_counts(s, counts, NULL) == 0 && counts[JOB_QUEUED] == 2, "two jobs, not %lld",
          (long long)counts[JOB_QUEUED]);
    jobs_event *ev;
    int n;
    CHECK(jobs_events(s, b, 0, 10, &ev, &n, NULL) == 0 && n == 1, "the job with its event: %d", n);
    jobs_events_free(ev, n);
    jobs_close(s);
}

static void test_jobs_enqueue_positions_and_dir(void) {
    jobs_store *s = open_store("enqueue");
    CHECK(s, "open");
    char id[3][JOBS_ID_MAX];
    for (int i = 0; i < 3; i++) CHECK(enqueue(s, id[i], NULL, NULL, 0) == 0, "enqueue %d", i);
    for (int i = 0; i < 3; i++) {
        job j = get(s, id[i]);
        EXPECT(j.state == JOB_QUEUED && j.queue_position == i + 1, "job %d: state %d position %lld",
               i, j.state, (long long)j.queue_position);
        EXPECT(j.attempt == 0 && j.max_attempts == JOBS_DEFAULT_MAX_ATTEMPTS && j.created_at,
               "attempts %d/%d", j.attempt, j.max_attempts);
        job_clear(&j);
        char path[4096];
        struct stat stb;
        jobs_dir_path(s, id[i], path, sizeof path, NULL);
        EXPECT(stat(path, &stb) == 0 && S_ISDIR(stb.st_mode), "data dir %s", path);
    }
    cnet_error err = {0};
    job j;
    CHECK(jobs_get(s, "j_nope", &j, &err) == CNET_ENOTFOUND, "missing job");
    jobs_close(s);
}

static void test_jobs_idempotency(void) {
    jobs_store *s = open_store("idem");
    CHECK(s, "open");
    char a[JOBS_ID_MAX], b[JOBS_ID_MAX], c[JOBS_ID_MAX];
    jobs_new req = {.kind = "train", .spec_json = "{}", .idem_key = "k1", .idem_hash = "h1"};
    int created = -1;
    CHECK(jobs_enqueue(s, &req, a, &created, NULL) == 0 && created == 1, "first");
    CHECK(jobs_enqueue(s, &req, b, &created, NULL) == 0 && created == 0, "repeat");
    CHECK(strcmp(a, b) == 0, "same key and body give the same job: %s vs %s", a, b);
    req.idem_hash = "h2";
    cnet_error err = {0};
    CHECK(jobs_enqueue(s, &req, c, &created, &err) == JOBS_ECONFLICT, "different body");
    CHECK(strstr(err.msg, a), "conflict names the first job: %s", err.msg);
    int64_t counts[JOB_N_STATES];
    CHECK(jobs_counts(s, counts, NULL) == 0 && counts[JOB_QUEUED] == 1, "one job only");
    jobs_close(s);
}

static void test_jobs_queue_cap(void) {
    jobs_store *s = open_store("cap");
    CHECK(s, "open");
    jobs_new req = {.kind = "train", .spec_json = "{}", .queue_cap = 2};
    char id[JOBS_ID_MAX];
    int created;
    CHECK(jobs_enqueue(s, &req, id, &created, NULL) == 0, "1");
    CHECK(jobs_enqueue(s, &req, id, &created, NULL) == 0, "2");
    CHECK(jobs_enqueue(s, &req, id, &created, NULL) == CNET_ELIMIT, "3rd is over the cap");
    jobs_close(s);
}

static void test_jobs_lifecycle_and_events(void) {
    jobs_store *s = open_store("life");
    CHECK(s, "open");
    char id[JOBS_ID_MAX], id2[JOBS_ID_MAX], token[JOBS_TOKEN_MAX];
    CHECK(enqueue(s, id, NULL, NULL, 0) == 0 && enqueue(s, id2, NULL, NULL, 0) == 0, "enqueue");
    job j;
    int claimed, cancel = -1;
    jobs_set_node(s, "node-a:8080");
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "claim");
    CHECK(strcmp(j.id, id) == 0 && j.state == JOB_RUNNING && j.attempt == 1, "oldest first");
    job_clear(&j);
    j = get(s, id2);
    CHECK(j.queue_position == 1, "the other moves to position 1, got %lld",
          (long long)j.queue_position);
    job_clear(&j);
    CHECK(jobs_progress(s, id, token, "{\"step\":1}", 1000, &cancel, NULL) == 0 && cancel == 0,
          "progress");
    CHECK(jobs_checkpoint(s, id, token, 1, NULL) == 0, "checkpoint");
    CHECK(jobs_finish(s, id, token, JOB_SUCCEEDED, NULL) == 0, "finish");
    j = get(s, id);
    CHECK(j.state == JOB_SUCCEEDED && j.checkpoint_step == 1 && j.finished_at == fake_now &&
              j.progress_json && strstr(j.progress_json, "step"),
          "state %d", j.state);
    job_clear(&j);
    jobs_event *ev;
    int n;
    CHECK(jobs_events(s, id, 0, 100, &ev, &n, NULL) == 0, "events");
    const char *want[] = {"state", "state", "progress", "checkpoint", "state"};
    EXPECT(n == 5, "%d events", n);
    for (int i = 0; i < n && i < 5; i++) {
        EXPECT(strcmp(ev[i].type, want[i]) == 0, "event %d is %s", i, ev[i].type);
        EXPECT(i == 0 || ev[i].id > ev[i - 1].id, "ids increase");
    }
    EXPECT(n == 5 && strstr(ev[4].data_json, "succeeded"), "last: %s",
           n ? ev[n - 1].data_json : "");
    EXPECT(n == 5 && strstr(ev[1].data_json, "\"node\":\"node-a:8080\"") &&
               !strstr(ev[0].data_json, "node") && !strstr(ev[4].data_json, "node"),
           "the claim names its node, only it: %s", n > 1 ? ev[1].data_json : "");
    int64_t third = n > 2 ? ev[2].id : 0;
    jobs_events_free(ev, n);
    CHECK(jobs_events(s, id, third, 100, &ev, &n, NULL) == 0 && n == 2, "replay after an id: %d",
          n);
    jobs_events_free(ev, n);
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "second claim");
    job_clear(&j);
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && !claimed, "queue now empty");
    jobs_close(s);
}

/* A job on base model m ("a" or "b"). */
static int enqueue_on(jobs_store *s, char id[JOBS_ID_MAX], const char *m) {
    char spec[64];
    snprintf(spec, sizeof spec, "{\"model\":\"%s\"}", m);
    jobs_new req = {.kind = "train", .spec_json = spec};
    int created;
    return jobs_enqueue(s, &req, id, &created, NULL);
}

/* The placement callback of a claimer that has base "b" loaded. */
static int prefers_b(void *ctx, const char *kind, const char *spec_json) {
    ++*(int *)ctx;
    return strcmp(kind, "train") == 0 && strstr(spec_json, "\"model\":\"b\"") != NULL;
}

/* Claims with prefers_b (counting the jobs it is asked about); the claimed
 * job's id into id ("" when none). */
static void claim_b(jobs_store *s, char id[JOBS_ID_MAX]) {
    job j;
    char token[JOBS_TOKEN_MAX];
    int claimed = 0, asked = 0;
    id[0] = '\0';
    const jobs_placement place = {.prefer = prefers_b, .ctx = &asked};
    if (jobs_claim_placed(s, 1000, &place, &j, token, &claimed, NULL) == 0 && claimed) {
        snprintf(id, JOBS_ID_MAX, "%s", j.id);
        job_clear(&j);
    }
    EXPECT(asked <= JOBS_PREFER_WINDOW, "asked about %d jobs, more than the window", asked);
}

static void test_jobs_claim_prefers_within_bounds(void) {
    jobs_store *s = open_store("prefer");
    CHECK(s, "open");
    char a1[JOBS_ID_MAX], b1[JOBS_ID_MAX], a2[JOBS_ID_MAX], got[JOBS_ID_MAX];
    CHECK(enqueue_on(s, a1, "a") == 0 && enqueue_on(s, b1, "b") == 0 && enqueue_on(s, a2, "a") == 0,
          "enqueue");
    claim_b(s, got);
    EXPECT(strcmp(got, b1) == 0, "the preferred job passes an older one");
    claim_b(s, got);
    EXPECT(strcmp(got, a1) == 0, "none preferred left: the oldest");
    job j;
    char token[JOBS_TOKEN_MAX];
    int claimed = 0;
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed && !strcmp(j.id, a2),
          "a plain claim: the oldest");
    job_clear(&j);
    /* the window: a preferred job behind JOBS_PREFER_WINDOW older ones waits */
    char first[JOBS_ID_MAX], b2[JOBS_ID_MAX];
    for (int i = 0; i < JOBS_PREFER_WINDOW; i++) CHECK(enqueue_on(s, first, "a") == 0, "enqueue");
    CHECK(enqueue_on(s, b2, "b") == 0, "enqueue b2");
    claim_b(s, got);
    EXPECT(got[0] && strcmp(got, b2) != 0, "b2 is outside the window of %d", JOBS_PREFER_WINDOW);
    claim_b(s, got);
    EXPECT(strcmp(got, b2) == 0, "b2 inside the window now: preferred");
    for (int i = 1; i < JOBS_PREFER_WINDOW; i++) claim_b(s, got);
    claim_b(s, got);
    CHECK(got[0] == '\0', "drained");
    /* the age bound: the oldest taken once it waited JOBS_PREFER_WAIT_MS */
    char a3[JOBS_ID_MAX], b3[JOBS_ID_MAX], b4[JOBS_ID_MAX];
    CHECK(enqueue_on(s, a3, "a") == 0 && enqueue_on(s, b3, "b") == 0 && enqueue_on(s, b4, "b") == 0,
          "enqueue");
    fake_now += JOBS_PREFER_WAIT_MS - 1;
    claim_b(s, got);
    EXPECT(strcmp(got, b3) == 0, "before the bound: preferred");
    fake_now += 1;
    claim_b(s, got);
    EXPECT(strcmp(got, a3) == 0, "at the bound: the oldest, whatever the preference");
    jobs_close(s);
}

/* The fit callback of a claimer too small for base "big". */
static int fits_small(void *ctx, const char *kind, const char *spec_json) {
    (void)ctx, (void)kind;
    return strstr(spec_json, "\"model\":\"big\"") == NULL;
}

/* Claims as a node too small for "big" that prefers "b"; the id or "". */
static void claim_small(jobs_store *s, char id[JOBS_ID_MAX]) {
    job j;
    char token[JOBS_TOKEN_MAX];
    int claimed = 0, asked = 0;
    id[0] = '\0';
    const jobs_placement place = {.prefer = prefers_b, .fits = fits_small, .ctx = &asked};
    if (jobs_claim_placed(s, 1000, &place, &j, token, &claimed, NULL) == 0 && claimed) {
        snprintf(id, JOBS_ID_MAX, "%s", j.id);
        job_clear(&j);
    }
}

/* Placement by fit: a job that does not fit is never claimed, at any age;
 * jobs behind it within the window are, the preference applying among
 * those that fit; past the window nothing is claimed. */
static void test_jobs_claim_only_what_fits(void) {
    jobs_store *s = open_store("fits");
    CHECK(s, "open");
    char big[JOBS_ID_MAX], a[JOBS_ID_MAX], b[JOBS_ID_MAX], got[JOBS_ID_MAX];
    CHECK(enqueue_on(s, big, "big") == 0 && enqueue_on(s, a, "a") == 0 &&
              enqueue_on(s, b, "b") == 0,
          "enqueue");
    claim_small(s, got);
    EXPECT(!strcmp(got, b), "the preferred job among those that fit: %s", got);
    fake_now += JOBS_PREFER_WAIT_MS;
    claim_small(s, got);
    EXPECT(!strcmp(got, a), "the oldest that fits, the big one passed: %s", got);
    claim_small(s, got);
    EXPECT(got[0] == '\0', "the big job is never claimed, however long it waited: %s", got);
    EXPECT(get(s, big).state == JOB_QUEUED, "it stays queued for a larger node");
    for (int i = 1; i < JOBS_PREFER_WINDOW; i++) CHECK(enqueue_on(s, got, "big") == 0, "enqueue");
    CHECK(enqueue_on(s, a, "a") == 0, "enqueue");
    claim_small(s, got);
    EXPECT(got[0] == '\0', "a job behind %d that do not fit waits", JOBS_PREFER_WINDOW);
    job j;
    char token[JOBS_TOKEN_MAX];
    int claimed = 0;
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed && !strcmp(j.id, big),
          "a node without a fit rule takes the big job");
    job_clear(&j);
    jobs_close(s);
}

static void test_jobs_fencing(void) {
    jobs_store *s = open_store("fence");
    CHECK(s, "open");
    char id[JOBS_ID_MAX], old[JOBS_TOKEN_MAX], fresh[JOBS_TOKEN_MAX];
    CHECK(enqueue(s, id, NULL, NULL, 0) == 0, "enqueue");
    job j;
    int claimed, rescued, cancel;
    CHECK(jobs_claim(s, 1000, &j, old, &claimed, NULL) == 0 && claimed, "claim");
    job_clear(&j);
    CHECK(jobs_rescue(s, 0, &rescued, NULL) == 0 && rescued == 0, "lease still valid");
    fake_now += 1001;
    CHECK(jobs_rescue(s, 0, &rescued, NULL) == 0 && rescued == 1, "expired lease rescued");
    j = get(s, id);
    CHECK(j.state == JOB_QUEUED && j.attempt == 1, "back to queued: %d", j.state);
    job_clear(&j);
    CHECK(jobs_claim(s, 1000, &j, fresh, &claimed, NULL) == 0 && claimed && j.attempt == 2,
          "re-claim, attempt %d", j.attempt);
    job_clear(&j);
    CHECK(strcmp(old, fresh) != 0, "a new fencing token");
    EXPECT(jobs_progress(s, id, old, "{}", 1000, &cancel, NULL) == JOBS_ESTALE, "stale progress");
    EXPECT(jobs_heartbeat(s, id, old, 1000, &cancel, NULL) == JOBS_ESTALE, "stale heartbeat");
    EXPECT(jobs_checkpoint(s, id, old, 9, NULL) == JOBS_ESTALE, "stale checkpoint");
    EXPECT(jobs_finish(s, id, old, JOB_SUCCEEDED, NULL) == JOBS_ESTALE, "stale finish");
    int requeued;
    EXPECT(jobs_fail(s, id, old, "x", "y", 0, &requeued, NULL) == JOBS_ESTALE, "stale fail");
    EXPECT(jobs_release(s, id, old, NULL) == JOBS_ESTALE, "stale release");
    CHECK(jobs_finish(s, id, fresh, JOB_SUCCEEDED, NULL) == 0, "the holder completes");
    CHECK(jobs_finish(s, id, fresh, JOB_SUCCEEDED, NULL) == JOBS_ESTALE, "only once");
    j = get(s, id);
    CHECK(j.state == JOB_SUCCEEDED && j.checkpoint_step == -1, "no stale checkpoint recorded");
    job_clear(&j);
    jobs_event *ev;
    int n, done = 0;
    CHECK(jobs_events(s, id, 0, 100, &ev, &n, NULL) == 0, "events");
    for (int i = 0; i < n; i++) done += strstr(ev[i].data_json, "succeeded") != NULL;
    jobs_events_free(ev, n);
    CHECK(done == 1, "exactly one completion event, got %d", done);
    jobs_close(s);
}

static void test_jobs_cancel(void) {
    jobs_store *s = open_store("cancel");
    CHECK(s, "open");
    char q[JOBS_ID_MAX], r[JOBS_ID_MAX], token[JOBS_TOKEN_MAX];
    CHECK(enqueue(s, r, NULL, NULL, 0) == 0 && enqueue(s, q, NULL, NULL, 0) == 0, "enqueue");
    job j;
    int claimed, cancel = -1;
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "claim");
    job_clear(&j);
    job_state st;
    CHECK(jobs_cancel(s, q, &st, NULL) == 0 && st == JOB_CANCELLED, "queued → cancelled at once");
    CHECK(jobs_cancel(s, r, &st, NULL) == 0 && st == JOB_RUNNING, "running stays running");
    CHECK(jobs_heartbeat(s, r, token, 1000, &cancel, NULL) == 0 && cancel == 1,
          "the runner sees the request");
    CHECK(jobs_finish(s, r, token, JOB_CANCELLED, NULL) == 0, "runner stops");
    cnet_error err = {0};
    CHECK(jobs_cancel(s, r, &st, &err) == JOBS_ECONFLICT && st == JOB_CANCELLED,
          "terminal → conflict");
    CHECK(jobs_cancel(s, q, &st, &err) == JOBS_ECONFLICT, "cancelled is terminal");
    CHECK(jobs_cancel(s, "j_missing", &st, &err) == CNET_ENOTFOUND, "unknown id");
    jobs_close(s);
}

static void test_jobs_bounded_attempts(void) {
    jobs_store *s = open_store("attempts");
    CHECK(s, "open");
    char a[JOBS_ID_MAX], b[JOBS_ID_MAX], token[JOBS_TOKEN_MAX];
    CHECK(enqueue(s, a, NULL, NULL, 2) == 0, "enqueue");
    job j;
    int claimed, requeued;
    for (int attempt = 1; attempt <= 2; attempt++) {
        CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "claim");
        CHECK(j.attempt == attempt, "attempt %d", j.attempt);
        job_clear(&j);
        char detail[32];
        snprintf(detail, sizeof detail, "boom %d", attempt);
        CHECK(jobs_fail(s, a, token, "engine_error", detail, 0, &requeued, NULL) == 0, "fail");
        CHECK(requeued == (attempt < 2), "requeued %d at attempt %d", requeued, attempt);
    }
    j = get(s, a);
    CHECK(j.state == JOB_FAILED && j.error_code && strcmp(j.error_code, "engine_error") == 0 &&
              j.error_detail && strcmp(j.error_detail, "boom 2") == 0,
          "failed with the last error");
    job_clear(&j);
    /* The same bound when the worker dies every time (poison job, R8). */
    CHECK(enqueue(s, b, NULL, NULL, 3) == 0, "enqueue");
    for (int attempt = 1; attempt <= 3; attempt++) {
        CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "claim");
        job_clear(&j);
        fake_now += 2000;
        int rescued;
        CHECK(jobs_rescue(s, 0, &rescued, NULL) == 0 && rescued == 1, "rescue");
    }
    j = get(s, b);
    CHECK(j.state == JOB_FAILED && j.attempt == 3 && j.error_code &&
              strcmp(j.error_code, "lease_expired") == 0,
          "state %d attempt %d", j.state, j.attempt);
    job_clear(&j);
    jobs_close(s);
}

static void test_jobs_release_and_startup_rescue(void) {
    jobs_store *s = open_store("release");
    CHECK(s, "open");
    char a[JOBS_ID_MAX], token[JOBS_TOKEN_MAX];
    CHECK(enqueue(s, a, NULL, NULL, 0) == 0, "enqueue");
    job j;
    int claimed, rescued;
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "claim");
    job_clear(&j);
    CHECK(jobs_checkpoint(s, a, token, 4, NULL) == 0, "checkpoint");
    CHECK(jobs_release(s, a, token, NULL) == 0, "release");
    j = get(s, a);
    CHECK(j.state == JOB_QUEUED && j.attempt == 0 && j.checkpoint_step == 4,
          "a graceful stop does not count: attempt %d", j.attempt);
    job_clear(&j);
    CHECK(jobs_claim(s, 100000, &j, token, &claimed, NULL) == 0 && claimed &&
              j.checkpoint_step == 4,
          "resume step kept");
    job_clear(&j);
    jobs_close(s); /* a crash: the lease is still valid */
    s = open_store("release");
    CHECK(s, "reopen");
    /* a shared store's other nodes hold leases: it takes only expired ones */
    const int shared = jobs_shared(s);
    CHECK(jobs_rescue(s, 1, &rescued, NULL) == 0 && rescued == !shared,
          "start-up rescue takes all (SQLite) or none yet (shared): %d", rescued);
    if (shared) {
        fake_now += 100001;
        CHECK(jobs_rescue(s, 1, &rescued, NULL) == 0 && rescued == 1, "the expired lease");
    }
    j = get(s, a);
    CHECK(j.state == JOB_QUEUED, "queued again");
    job_clear(&j);
    jobs_close(s);
}

static void test_jobs_list_pages_and_filters(void) {
    jobs_store *s = open_store("list");
    CHECK(s, "open");
    char id[7][JOBS_ID_MAX];
    for (int i = 0; i < 7; i++) CHECK(enqueue(s, id[i], NULL, NULL, 0) == 0, "enqueue");
    job_state st;
    CHECK(jobs_cancel(s, id[0], &st, NULL) == 0, "cancel");
    jobs_filter f = {.state = -1, .limit = 3};
    int pages = 0, total = 0;
    do {
        job *js;
        int n;
        int64_t next;
        CHECK(jobs_list(s, &f, &js, &n, &next, NULL) == 0, "list");
        for (int i = 0; i < n; i++) {
            EXPECT(strcmp(js[i].id, id[6 - total]) == 0, "newest first at %d", total);
            total++;
            job_clear(&js[i]);
        }
        free(js);
        f.before = next;
        pages++;
    } while (f.before && pages < 10);
    CHECK(pages == 3 && total == 7, "pages %d total %d", pages, total);
    f = (jobs_filter){.state = JOB_CANCELLED, .limit = 50};
    job *js;
    int n;
    int64_t next;
    CHECK(jobs_list(s, &f, &js, &n, &next, NULL) == 0 && n == 1 && next == 0, "filter by state");
    CHECK(strcmp(js[0].id, id[0]) == 0, "the cancelled one");
    job_clear(&js[0]);
    free(js);
    f = (jobs_filter){.state = -1, .kind = "generate", .limit = 50};
    CHECK(jobs_list(s, &f, &js, &n, &next, NULL) == 0 && n == 0, "filter by kind");
    free(js);
    jobs_close(s);
}

/* --- out-of-memory sweep ------------------------------------------------ */

static sqlite3_mem_methods real_mem;
static long oom_countdown; /* 0: off; the allocation that brings it to 0 fails */
static long oom_allocs;    /* allocations seen while counting */
static int oom_fired;

static int oom_should_fail(void) {
    oom_allocs++;
    if (oom_countdown > 0 && --oom_countdown == 0) {
        oom_fired = 1;
        return 1;
    }
    return 0;
}
static void *oom_malloc(int n) { return oom_should_fail() ? NULL : real_mem.xMalloc(n); }
static void *oom_realloc(void *p, int n) {
    return oom_should_fail() ? NULL : real_mem.xRealloc(p, n);
}

static int ok_or_clean_error(int rc) {
    return rc == 0 || rc == CNET_ENOMEM || rc == CNET_EIO || rc == JOBS_ESTALE ||
           rc == CNET_ENOTFOUND;
}

/* One pass of the whole worker sequence; returns 0 if every call kept its promise. */
static int oom_pass(jobs_store *s, int k, char *why, size_t why_size) {
    char id[JOBS_ID_MAX], token[JOBS_TOKEN_MAX] = "", key[32];
    snprintf(key, sizeof key, "key-%d", k);
    jobs_new req = {.kind = "train", .spec_json = "{\"a\":1}", .idem_key = key, .idem_hash = "h"};
    int created = 0, claimed = 0, cancel, rescued, n;
    job j;
    int64_t next;
    job *js;
    jobs_event *ev;
    int rc[9];
    rc[0] = jobs_enqueue(s, &req, id, &created, NULL);
    char cid[JOBS_ID_MAX] = "none";
    rc[1] = jobs_claim(s, 1000, &j, token, &claimed, NULL);
    if (!rc[1] && claimed) {
        snprintf(cid, sizeof cid, "%s", j.id);
        job_clear(&j);
    }
    rc[2] = jobs_progress(s, cid, token, "{\"step\":1}", 1000, &cancel, NULL);
    rc[3] = jobs_checkpoint(s, cid, token, 1, NULL);
    rc[4] = jobs_finish(s, cid, token, JOB_SUCCEEDED, NULL);
    jobs_filter f = {.state = -1, .limit = 5};
    rc[5] = jobs_list(s, &f, &js, &n, &next, NULL);
    if (!rc[5]) {
        for (int i = 0; i < n; i++) job_clear(&js[i]);
        free(js);
    }
    rc[6] = jobs_events(s, cid, 0, 50, &ev, &n, NULL);
    if (!rc[6]) jobs_events_free(ev, n);
    rc[7] = jobs_rescue(s, 1, &rescued, NULL);
    int64_t counts[JOB_N_STATES];
    rc[8] = jobs_counts(s, counts, NULL);
    for (int i = 0; i < 9; i++)
        if (!ok_or_clean_error(rc[i])) {
            snprintf(why, why_size, "call %d returned %d", i, rc[i]);
            return -1;
        }
    oom_countdown = 0;
    /* What was acknowledged is there. */
    if (!rc[0]) {
        job g;
        if (jobs_get(s, id, &g, NULL) != 0) {
            snprintf(why, why_size, "acknowledged job %s missing", id);
            return -1;
        }
        job_clear(&g);
    }
    if (claimed && !rc[4]) {
        job g;
        int bad = jobs_get(s, cid, &g, NULL) != 0 || g.state != JOB_SUCCEEDED;
        if (!bad) job_clear(&g);
        if (bad) {
            snprintf(why, why_size, "completed job %s not succeeded", cid);
            return -1;
        }
    }
    return 0;
}

static int integrity_ok(const char *path) {
    sqlite3 *db;
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
        ok = sqlite3_step(st) == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return ok;
}

/* A dataset id as upload_new_id makes them, numbered. */
static void dataset_id(char id[JOBS_DATASET_ID_MAX], int k) {
    snprintf(id, JOBS_DATASET_ID_MAX, "d_%032x", k);
}

static int dataset_state(jobs_store *s, const char *id) {
    jobs_dataset d;
    int rc = jobs_dataset_get(s, id, &d, NULL);
    int state = rc ? rc : (int)d.state;
    jobs_dataset_clear(&d);
    return state;
}

/* The ids the store lists, newest first, joined by spaces into out. */
static int listed(jobs_store *s, char *out, size_t size) {
    jobs_dataset *rows;
    int n;
    out[0] = '\0';
    if (jobs_dataset_list(s, &rows, &n, NULL)) return -1;
    for (int i = 0; i < n; i++) {
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? " " : "", rows[i].id);
        jobs_dataset_clear(&rows[i]);
    }
    free(rows);
    return n;
}

static int enqueue_dataset(jobs_store *s, char id[JOBS_ID_MAX], const char *dataset) {
    char spec[128];
    snprintf(spec, sizeof spec, "{\"dataset\":\"%s\",\"max_train_steps\":10}", dataset);
    jobs_new req = {.kind = "train", .spec_json = spec};
    int created;
    return jobs_enqueue(s, &req, id, &created, NULL);
}

static void test_jobs_datasets_registry(void) {
    jobs_store *s = open_store("datasets");
    CHECK(s, "open");
    char a[JOBS_DATASET_ID_MAX], b[JOBS_DATASET_ID_MAX], ids[256];
    dataset_id(a, 1), dataset_id(b, 2);
    CHECK(jobs_dataset_begin(s, a, "a.tar", NULL) == 0, "begin a");
    EXPECT(dataset_state(s, a) == JOBS_DATASET_UPLOADING, "a is uploading");
    CHECK(listed(s, ids, sizeof ids) == 0, "an upload in progress is not listed: %s", ids);
    CHECK(jobs_dataset_ready(s, a, 100, 3, "{\"id\":\"a\"}", NULL) == 0, "a ready");
    EXPECT(jobs_dataset_ready(s, a, 100, 3, "{}", NULL) == CNET_ENOTFOUND, "ready only once");
    fake_now += 1;
    CHECK(jobs_dataset_begin(s, b, NULL, NULL) == 0, "begin b");
    CHECK(jobs_dataset_ready(s, b, 7, 1, "{}", NULL) == 0, "b ready");
    char want[256];
    snprintf(want, sizeof want, "%s %s", b, a);
    CHECK(listed(s, ids, sizeof ids) == 2 && !strcmp(ids, want), "newest first: %s", ids);
    jobs_dataset d;
    CHECK(jobs_dataset_get(s, a, &d, NULL) == 0, "get a");
    EXPECT(d.state == JOBS_DATASET_READY && d.bytes == 100 && d.files == 3 &&
               !strcmp(d.name, "a.tar") && !strcmp(d.report_json, "{\"id\":\"a\"}"),
           "a's row: %d %lld %lld %s %s", d.state, (long long)d.bytes, (long long)d.files, d.name,
           d.report_json);
    jobs_dataset_clear(&d);
    /* a queued job on a, then a running one: a stays */
    char job_a[JOBS_ID_MAX];
    CHECK(enqueue_dataset(s, job_a, a) == 0, "a job on a");
    cnet_error err = {0};
    EXPECT(jobs_dataset_remove(s, a, &err) == JOBS_ECONFLICT && strstr(err.msg, job_a),
           "a queued job's dataset is kept, the error names the job: %s", err.msg);
    job j;
    char token[JOBS_TOKEN_MAX];
    int claimed = 0;
    CHECK(jobs_claim(s, 1000, &j, token, &claimed, NULL) == 0 && claimed, "claim");
    job_clear(&j);
    EXPECT(jobs_dataset_remove(s, a, NULL) == JOBS_ECONFLICT, "a running job's dataset is kept");
    EXPECT(dataset_state(s, a) == JOBS_DATASET_READY, "a still there");
    CHECK(jobs_finish(s, job_a, token, JOB_SUCCEEDED, NULL) == 0, "finish");
    EXPECT(jobs_dataset_remove(s, a, NULL) == 0, "an ended job's dataset may go");
    EXPECT(dataset_state(s, a) == CNET_ENOTFOUND, "a gone");
    EXPECT(jobs_dataset_remove(s, a, NULL) == CNET_ENOTFOUND, "removing twice: not found");
    EXPECT(jobs_dataset_remove(s, b, NULL) == 0, "b, unused, goes");
    /* adoption: once per store */
    char c[JOBS_DATASET_ID_MAX], e[JOBS_DATASET_ID_MAX];
    dataset_id(c, 3), dataset_id(e, 4);
    jobs_dataset found[2] = {{.name = "", .state = JOBS_DATASET_READY, .report_json = "{}"},
                             {.name = "", .state = JOBS_DATASET_READY, .report_json = "{}"}};
    snprintf(found[0].id, sizeof found[0].id, "%s", c);
    snprintf(found[1].id, sizeof found[1].id, "%s", e);
    int adopted = -1;
    CHECK(jobs_dataset_adopt(s, found, 1, &adopted, NULL) == 0 && adopted == 1, "adopt c: %d",
          adopted);
    EXPECT(dataset_state(s, c) == JOBS_DATASET_READY, "c registered ready");
    CHECK(jobs_dataset_remove(s, c, NULL) == 0, "delete c");
    CHECK(jobs_dataset_adopt(s, found, 2, &adopted, NULL) == 0 && adopted == 0,
          "a second adoption registers nothing: %d", adopted);
    EXPECT(dataset_state(s, c) == CNET_ENOTFOUND && dataset_state(s, e) == CNET_ENOTFOUND,
           "a deleted dataset is not brought back, nor a new folder adopted");
    jobs_close(s);
}

/* A store from before the registry (schema v1: no datasets table) is
 * migrated at open, its jobs kept. */
static void test_jobs_datasets_migrated_from_v1(void) {
    jobs_store *s = open_store("v1");
    CHECK(s, "open");
    char id[JOBS_ID_MAX], ds[JOBS_DATASET_ID_MAX];
    dataset_id(ds, 9);
    CHECK(enqueue(s, id, NULL, NULL, 0) == 0, "enqueue");
    CHECK(jobs_dataset_begin(s, ds, NULL, NULL) == 0, "begin");
    jobs_close(s);
    char db[700];
    CHECK(store_test_where(db, sizeof db, dir, "v1", 0) == 0, "where");
    CHECK(store_test_sql(db, "DROP TABLE datasets") == 0 && store_test_set_version(db, 1) == 0,
          "turn the store into a v1 store");
    s = open_store("v1");
    CHECK(s, "a v1 store opens (migrated)");
    job j = get(s, id);
    EXPECT(j.state == JOB_QUEUED, "its job kept");
    job_clear(&j);
    EXPECT(dataset_state(s, ds) == CNET_ENOTFOUND, "an empty registry");
    EXPECT(jobs_dataset_begin(s, ds, NULL, NULL) == 0, "the registry works");
    jobs_close(s);
}

static void test_jobs_oom_sweep(void) {
    if (store_test_url()) {
        printf("    oom sweep: SQLite's allocator only, skipped on PostgreSQL\n");
        return;
    }
    jobs_store *s = open_store("oom");
    CHECK(s, "open");
    char db[700], why[256] = "";
    snprintf(db, sizeof db, "%s/oom.db", dir);
    oom_allocs = 0;
    CHECK(oom_pass(s, 0, why, sizeof why) == 0, "clean pass: %s", why);
    long clean_allocs = oom_allocs;
    int k, failures = 0;
    for (k = 1; k < 100000; k++) {
        oom_fired = 0;
        oom_countdown = k;
        if (oom_pass(s, k, why, sizeof why) != 0) {
            EXPECT(0, "k=%d: %s", k, why);
            failures++;
        }
        oom_countdown = 0;
        if (!oom_fired) break;
        if (k % 50 == 0 && !integrity_ok(db)) {
            EXPECT(0, "integrity_check failed at k=%d", k);
            failures++;
        }
    }
    int fault_points = k - 1;
    jobs_close(s);
    CHECK(integrity_ok(db), "integrity_check after the sweep");
    printf("    oom sweep: K = %d fault points (a clean pass makes %ld SQLite allocations), "
           "%d failures\n",
           fault_points, clean_allocs, failures);
    CHECK(fault_points > 50 && failures == 0, "K = %d", fault_points);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem);
    sqlite3_mem_methods m = real_mem;
    m.xMalloc = oom_malloc;
    m.xRealloc = oom_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
    if (tmpdir_make(dir, sizeof dir, "cnet-jobs-")) {
        printf("test_jobs: cannot make a temp dir\n");
        return 1;
    }
    RUN(test_jobs_schema_versioned);
    RUN(test_jobs_emptied_store_refused);
    RUN(test_jobs_pg_reconnects);
    RUN(test_jobs_enqueue_positions_and_dir);
    RUN(test_jobs_idempotency);
    RUN(test_jobs_queue_cap);
    RUN(test_jobs_lifecycle_and_events);
    RUN(test_jobs_claim_prefers_within_bounds);
    RUN(test_jobs_claim_only_what_fits);
    RUN(test_jobs_fencing);
    RUN(test_jobs_cancel);
    RUN(test_jobs_bounded_attempts);
    RUN(test_jobs_release_and_startup_rescue);
    RUN(test_jobs_list_pages_and_filters);
    RUN(test_jobs_datasets_registry);
    RUN(test_jobs_datasets_migrated_from_v1);
    RUN(test_jobs_oom_sweep);
    tmpdir_remove(dir);
    return harness_done();
}
