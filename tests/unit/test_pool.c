/* The pool against a runner defined here (a test double, not shipped code):
 * it counts steps, writes checkpoint-<step> files into the job's dir, reports
 * progress every step and stops when asked. Checked: a job runs to
 * completion; a job whose worker died resumes from its last checkpoint and the
 * dead worker's token completes nothing; cancel of a running job stops it at
 * a step boundary; failing attempts are bounded, and a deterministic
 * failure (CNET_EINVAL) is not retried, its message relative to the data dir;
 * pool_stop releases the
 * running job back to the queue; the heartbeat keeps a lease shorter than the
 * job alive. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/workers/pool.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

typedef struct counter {
    pthread_mutex_t mu;
    int runs;
    int64_t first_step; /* the first step of the latest run */
    int64_t steps_run;  /* over all runs */
} counter;

static counter ctr = {.mu = PTHREAD_MUTEX_INITIALIZER};
static char dir[512];

/* Spec: {"steps": N, "step_ms": M, "fail": true?, "invalid": true?}: fail is
 * a device failure on every attempt, invalid a deterministic one (an option
 * the runner refuses) whose message names a file in the job's dir. */
static int step_runner(void *user, const pool_job *pool_entry, pool_ctl *ctl, cnet_error *err) {
    counter *c = user;
    json_t *spec = json_loads(pool_entry->spec_json, 0, NULL);
    if (!spec) return cnet_fail(err, CNET_EINVAL, "spec is not JSON");
    int64_t steps = json_integer_value(json_object_get(spec, "steps"));
    int step_ms = (int)json_integer_value(json_object_get(spec, "step_ms"));
    int fail = json_object_get(spec, "fail") != NULL;
    int invalid = json_object_get(spec, "invalid") != NULL;
    json_decref(spec);
    int64_t start = pool_entry->resume_step >= 0 ? pool_entry->resume_step + 1 : 1;
    pthread_mutex_lock(&c->mu);
    c->runs++;
    c->first_step = start;
    pthread_mutex_unlock(&c->mu);
    if (invalid)
        return cnet_fail(err, CNET_EINVAL, "%s/logs/options.json: option 'x' is not known",
                         pool_entry->dir);
    if (fail)
        return cnet_fail(err, CNET_EBACKEND, "simulated engine failure on attempt %d",
                         pool_entry->attempt);
    for (int64_t step = start; step <= steps; step++) {
        if (step_ms) usleep((useconds_t)step_ms * 1000);
        pthread_mutex_lock(&c->mu);
        c->steps_run++;
        pthread_mutex_unlock(&c->mu);
        char path[4200];
        snprintf(path, sizeof path, "%s/checkpoint-%lld", pool_entry->dir, (long long)step);
        if (file_write(path, "x", 1)) return cnet_fail(err, CNET_EIO, "writing %s", path);
        int rc = pool_checkpoint(ctl, step, err);
        if (rc) return rc;
        /* step 2's loss is NaN, as an fp16 step that overflowed: reported as null */
        pool_progress pr = {
            .step = step, .total = steps, .loss = step == 2 ? NAN : 1.0 / (double)step, .lr = 1e-5};
        rc = pool_report(ctl, &pr, err);
        if (rc == POOL_STOP) return POOL_STOPPED;
        if (rc) return rc;
    }
    return 0;
}

static jobs_store *open_store(const char *name) {
    char db[700], jd[700];
    snprintf(db, sizeof db, "%s/%s.db", dir, name);
    snprintf(jd, sizeof jd, "%s/%s-jobs", dir, name);
    jobs_store *s = NULL;
    cnet_error err = {0};
    if (jobs_open(&s, db, jd, &err)) printf("    open: %s\n", err.msg);
    return s;
}

static int enqueue(jobs_store *s, char id[JOBS_ID_MAX], const char *spec, int max_attempts) {
    jobs_new req = {.kind = "train", .spec_json = spec, .max_attempts = max_attempts};
    int created;
    return jobs_enqueue(s, &req, id, &created, NULL);
}

/* Waits up to ms for job id to reach state; returns 1 if it did. */
static int wait_state(jobs_store *s, const char *id, job_state want, int ms) {
    for (int t = 0; t < ms; t += 10) {
        job j;
        if (jobs_get(s, id, &j, NULL) == 0) {
            int ok = j.state == want;
            job_clear(&j);
            if (ok) return 1;
        }
        usleep(10000);
    }
    return 0;
}

static void reset_counter(void) {
    pthread_mutex_lock(&ctr.mu);
    ctr.runs = 0, ctr.first_step = 0, ctr.steps_run = 0;
    pthread_mutex_unlock(&ctr.mu);
}

static void test_pool_runs_a_job_to_completion(void) {
    jobs_store *s = open_store("complete");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX];
    CHECK(enqueue(s, id, "{\"steps\": 5}", 0) == 0, "enqueue");
    pool *p;
    CHECK(pool_start(&p, s, step_runner, &ctr, NULL, NULL) == 0, "start");
    int done = wait_state(s, id, JOB_SUCCEEDED, 5000);
    pool_stop(p);
    CHECK(done, "job did not succeed");
    job j;
    CHECK(jobs_get(s, id, &j, NULL) == 0, "get");
    CHECK(j.checkpoint_step == 5 && j.progress_json && strstr(j.progress_json, "\"step\":5"),
          "checkpoint %lld progress %s", (long long)j.checkpoint_step, j.progress_json);
    char path[4200];
    jobs_dir_path(s, id, path, sizeof path, NULL);
    strcat(path, "/checkpoint-5");
    struct stat st;
    EXPECT(stat(path, &st) == 0, "checkpoint file in the job dir");
    job_clear(&j);
    jobs_event *ev;
    int n, progress = 0;
    CHECK(jobs_events(s, id, 0, 100, &ev, &n, NULL) == 0, "events");
    for (int i = 0; i < n; i++) progress += strcmp(ev[i].type, "progress") == 0;
    jobs_events_free(ev, n);
    CHECK(progress == 5, "%d progress events", progress);
    jobs_close(s);
}

/* can_claim: while it refuses, the job stays queued (no attempt used);
 * once it allows, the job runs. */
static int device_ok;
static int device_can_claim(void *user, cnet_error *err) {
    (void)user;
    return __atomic_load_n(&device_ok, __ATOMIC_SEQ_CST)
               ? 0
               : cnet_fail(err, CNET_EBACKEND, "the test device is lost");
}

static void test_pool_can_claim_holds_jobs(void) {
    jobs_store *s = open_store("can_claim");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX];
    CHECK(enqueue(s, id, "{\"steps\": 2}", 0) == 0, "enqueue");
    __atomic_store_n(&device_ok, 0, __ATOMIC_SEQ_CST);
    const pool_config cfg = {.can_claim = device_can_claim};
    pool *p;
    CHECK(pool_start(&p, s, step_runner, &ctr, &cfg, NULL) == 0, "start");
    usleep(1500 * 1000); /* longer than POOL_IDLE_WAIT_MS: several refusals */
    job j;
    CHECK(jobs_get(s, id, &j, NULL) == 0, "get");
    EXPECT(j.state == JOB_QUEUED && j.attempt == 0, "state %d, attempt %d", (int)j.state,
           j.attempt);
    job_clear(&j);
    pthread_mutex_lock(&ctr.mu);
    EXPECT(ctr.runs == 0, "the runner ran %d times", ctr.runs);
    pthread_mutex_unlock(&ctr.mu);
    __atomic_store_n(&device_ok, 1, __ATOMIC_SEQ_CST);
    EXPECT(wait_state(s, id, JOB_SUCCEEDED, 5000), "the job did not run once allowed");
    pool_stop(p);
    jobs_close(s);
}

static void test_pool_resumes_after_a_dead_worker(void) {
    jobs_store *s = open_store("resume");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX], dead[JOBS_TOKEN_MAX];
    CHECK(enqueue(s, id, "{\"steps\": 8}", 0) == 0, "enqueue");
    /* A worker claims it, records a checkpoint at step 3, and dies. */
    job j;
    int claimed, rescued;
    CHECK(jobs_claim(s, 100, &j, dead, &claimed, NULL) == 0 && claimed, "claim");
    job_clear(&j);
    CHECK(jobs_checkpoint(s, id, dead, 3, NULL) == 0, "checkpoint 3");
    usleep(150000);
    CHECK(jobs_rescue(s, 0, &rescued, NULL) == 0 && rescued == 1, "rescued");
    pool *p;
    CHECK(pool_start(&p, s, step_runner, &ctr, NULL, NULL) == 0, "start");
    int done = wait_state(s, id, JOB_SUCCEEDED, 5000);
    pool_stop(p);
    CHECK(done, "job did not succeed");
    CHECK(ctr.first_step == 4 && ctr.steps_run == 5, "resumed at %lld, ran %lld steps",
          (long long)ctr.first_step, (long long)ctr.steps_run);
    CHECK(jobs_finish(s, id, dead, JOB_SUCCEEDED, NULL) == JOBS_ESTALE,
          "the dead worker's token completes nothing");
    CHECK(jobs_get(s, id, &j, NULL) == 0 && j.attempt == 2, "attempt %d", j.attempt);
    job_clear(&j);
    jobs_close(s);
}

static void test_pool_cancel_at_step_boundary(void) {
    jobs_store *s = open_store("cancel");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX];
    CHECK(enqueue(s, id, "{\"steps\": 1000, \"step_ms\": 10}", 0) == 0, "enqueue");
    pool *p;
    CHECK(pool_start(&p, s, step_runner, &ctr, NULL, NULL) == 0, "start");
    int running = wait_state(s, id, JOB_RUNNING, 5000);
    usleep(50000);
    job_state st;
    int rc = jobs_cancel(s, id, &st, NULL);
    int cancelled = wait_state(s, id, JOB_CANCELLED, 5000);
    pool_stop(p);
    CHECK(running && rc == 0 && st == JOB_RUNNING, "cancel requested while running");
    CHECK(cancelled, "runner did not stop");
    job j;
    CHECK(jobs_get(s, id, &j, NULL) == 0, "get");
    CHECK(j.checkpoint_step > 0 && j.checkpoint_step < 1000 && ctr.steps_run == j.checkpoint_step,
          "stopped at step %lld after %lld steps", (long long)j.checkpoint_step,
          (long long)ctr.steps_run);
    job_clear(&j);
    jobs_close(s);
}

static void test_pool_bounded_attempts(void) {
    jobs_store *s = open_store("poison");
    CHECK(s, "open");
    reset_counter();
    char bad[JOBS_ID_MAX], good[JOBS_ID_MAX];
    CHECK(enqueue(s, bad, "{\"steps\": 1, \"fail\": true}", 3) == 0, "enqueue");
    CHECK(enqueue(s, good, "{\"steps\": 2}", 3) == 0, "enqueue");
    pool *p;
    CHECK(pool_start(&p, s, step_runner, &ctr, NULL, NULL) == 0, "start");
    int failed = wait_state(s, bad, JOB_FAILED, 5000);
    int ok = wait_state(s, good, JOB_SUCCEEDED, 5000);
    pool_stop(p);
    CHECK(failed && ok, "poison %d, other %d", failed, ok);
    job j;
    CHECK(jobs_get(s, bad, &j, NULL) == 0, "get");
    CHECK(j.attempt == 3 && j.error_code && strcmp(j.error_code, "backend_error") == 0 &&
              j.error_detail && strstr(j.error_detail, "attempt 3"),
          "attempt %d, error %s: %s", j.attempt, j.error_code, j.error_detail);
    job_clear(&j);
    jobs_close(s);
}

/* A deterministic failure fails the job at its first attempt, and the
 * message it keeps names the job's file relative to the data dir. */
static void test_pool_permanent_failure_not_retried(void) {
    jobs_store *s = open_store("permanent");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX];
    CHECK(enqueue(s, id, "{\"steps\": 1, \"invalid\": true}", 3) == 0, "enqueue");
    pool *p;
    const pool_config cfg = {.data_dir = dir};
    CHECK(pool_start(&p, s, step_runner, &ctr, &cfg, NULL) == 0, "start");
    const int failed = wait_state(s, id, JOB_FAILED, 5000);
    pool_stop(p);
    CHECK(failed, "the job did not fail");
    job j;
    CHECK(jobs_get(s, id, &j, NULL) == 0, "get");
    char want[200];
    snprintf(want, sizeof want, "permanent-jobs/%s/logs/options.json: option", id);
    EXPECT(j.attempt == 1 && ctr.runs == 1 && !strcmp(j.error_code, "invalid_spec"),
           "attempt %d, runs %d, code %s", j.attempt, ctr.runs, j.error_code);
    EXPECT(j.error_detail && !strstr(j.error_detail, dir) && strstr(j.error_detail, want),
           "detail %s (data dir %s)", j.error_detail, dir);
    job_clear(&j);
    jobs_close(s);
}

static void test_pool_stop_releases_the_job(void) {
    jobs_store *s = open_store("stop");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX];
    CHECK(enqueue(s, id, "{\"steps\": 1000, \"step_ms\": 10}", 0) == 0, "enqueue");
    pool *p;
    CHECK(pool_start(&p, s, step_runner, &ctr, NULL, NULL) == 0, "start");
    CHECK(wait_state(s, id, JOB_RUNNING, 5000), "running");
    usleep(50000);
    pool_stop(p);
    job j;
    CHECK(jobs_get(s, id, &j, NULL) == 0, "get");
    CHECK(j.state == JOB_QUEUED && j.attempt == 0 && j.checkpoint_step > 0,
          "state %s attempt %d checkpoint %lld", job_state_names[j.state], j.attempt,
          (long long)j.checkpoint_step);
    job_clear(&j);
    jobs_close(s);
}

static void test_pool_heartbeat_keeps_the_lease(void) {
    jobs_store *s = open_store("heartbeat");
    CHECK(s, "open");
    reset_counter();
    char id[JOBS_ID_MAX];
    /* One step of 600 ms: longer than the 150 ms lease, so only the heartbeat
     * thread keeps it; a rescuer runs meanwhile. */
    CHECK(enqueue(s, id, "{\"steps\": 1, \"step_ms\": 600}", 0) == 0, "enqueue");
    pool *p;
    pool_config cfg = {.lease_ms = 150};
    CHECK(pool_start(&p, s, step_runner, &ctr, &cfg, NULL) == 0, "start");
    int total_rescued = 0;
    for (int i = 0; i < 40; i++) {
        int rescued = 0;
        jobs_rescue(s, 0, &rescued, NULL);
        total_rescued += rescued;
        usleep(20000);
    }
    int done = wait_state(s, id, JOB_SUCCEEDED, 5000);
    pool_stop(p);
    CHECK(done && total_rescued == 0 && ctr.runs == 1, "done %d, rescued %d, runs %d", done,
          total_rescued, ctr.runs);
    jobs_close(s);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(dir, sizeof dir, "cnet-pool-")) {
        printf("test_pool: cannot make a temp dir\n");
        return 1;
    }
    RUN(test_pool_runs_a_job_to_completion);
    RUN(test_pool_can_claim_holds_jobs);
    RUN(test_pool_resumes_after_a_dead_worker);
    RUN(test_pool_cancel_at_step_boundary);
    RUN(test_pool_bounded_attempts);
    RUN(test_pool_permanent_failure_not_retried);
    RUN(test_pool_stop_releases_the_job);
    RUN(test_pool_heartbeat_keeps_the_lease);
    tmpdir_remove(dir);
    return harness_done();
}
