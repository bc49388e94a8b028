/* Claim throughput of a job store (BENCHMARKS.md, "Job store"): enqueues N
 * empty jobs, then W workers claim and finish them until the queue is
 * empty; prints jobs/s for both phases and checks every job ended succeeded.
 * The workers share what they share in service: on PostgreSQL each has its
 * own store handle (its own connection: W nodes); on SQLite they share one
 * (W pools of one `cnet serve`, the only way SQLite is served).
 *
 *   tool_claimbench WHERE N W
 * WHERE: a SQLite file (created) or a postgres:// URL (an empty database).
 *
 * What it is not: a model of real jobs (these do no work, so the figure is
 * the store's ceiling: its transactions, fsyncs and lock waits). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/store/jobs.h"

#define BENCH_LEASE_MS 60000
#define BENCH_WORKERS_MAX 64

typedef struct bench_worker {
    const char *where, *jobs_dir;
    jobs_store *shared; /* NULL: open a handle of its own */
    int done;
    int failed;
    char err[CNET_ERROR_MSG_MAX];
} bench_worker;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *worker_main(void *arg) {
    bench_worker *w = arg;
    jobs_store *s = w->shared;
    cnet_error err = {0};
    if (!s && jobs_open(&s, w->where, w->jobs_dir, &err)) {
        snprintf(w->err, sizeof w->err, "%s", err.msg);
        w->failed = 1;
        return NULL;
    }
    for (;;) {
        job j;
        char token[JOBS_TOKEN_MAX];
        int claimed = 0;
        if (jobs_claim(s, BENCH_LEASE_MS, &j, token, &claimed, &err) ||
            (claimed && jobs_finish(s, j.id, token, JOB_SUCCEEDED, &err))) {
            snprintf(w->err, sizeof w->err, "%s", err.msg);
            w->failed = 1;
            if (claimed) job_clear(&j);
            break;
        }
        if (!claimed) break;
        job_clear(&j);
        w->done++;
    }
    if (!w->shared) jobs_close(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tool_claimbench WHERE N WORKERS\n");
        return 2;
    }
    const char *where = argv[1];
    const int n = atoi(argv[2]), nw = atoi(argv[3]);
    if (n < 1 || nw < 1 || nw > BENCH_WORKERS_MAX) {
        fprintf(stderr, "tool_claimbench: N >= 1 and 1 <= WORKERS <= %d\n", BENCH_WORKERS_MAX);
        return 2;
    }
    char jobs_dir[] = "/tmp/cnet-claimbench-XXXXXX";
    if (!mkdtemp(jobs_dir)) return perror("mkdtemp"), 1;
    jobs_store *s = NULL;
    cnet_error err = {0};
    if (jobs_open(&s, where, jobs_dir, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char id[JOBS_ID_MAX];
        int created;
        jobs_new req = {.kind = "generate", .spec_json = "{}"};
        if (jobs_enqueue(s, &req, id, &created, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    const double enq_s = now_s() - t0;
    bench_worker w[BENCH_WORKERS_MAX];
    pthread_t t[BENCH_WORKERS_MAX];
    t0 = now_s();
    for (int i = 0; i < nw; i++) {
        w[i] = (bench_worker){
            .where = where, .jobs_dir = jobs_dir, .shared = jobs_shared(s) ? NULL : s};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    int done = 0, failed = 0;
    for (int i = 0; i < nw; i++) {
        pthread_join(t[i], NULL);
        done += w[i].done;
        if (w[i].failed) failed++, fprintf(stderr, "worker %d: %s\n", i, w[i].err);
    }
    const double run_s = now_s() - t0;
    int64_t counts[JOB_N_STATES];
    jobs_counts(s, counts, NULL);
    printf("%s store, %d jobs: enqueue %.0f jobs/s; %d worker(s) claimed and finished %d in "
           "%.2f s = %.0f jobs/s; succeeded %lld, queued %lld, running %lld\n",
           jobs_backend_name(s), n, n / enq_s, nw, done, run_s, done / run_s,
           (long long)counts[JOB_SUCCEEDED], (long long)counts[JOB_QUEUED],
           (long long)counts[JOB_RUNNING]);
    jobs_close(s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", jobs_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", jobs_dir);
    return failed || done != n || counts[JOB_SUCCEEDED] != n;
}
