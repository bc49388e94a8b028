/* The download phase of a job: an hf:// model reference pulled into the Hub
 * cache (server/hub/hub_model.h), or an hf://datasets/ reference's train
 * split into the datasets cache (server/hub/hub_dataset.h), on the job's
 * thread, never in the request that submitted it. Each file's progress is
 * the job's progress (GET /v1/jobs/{id}: {"phase": "download", "file",
 * "done_bytes", "total_bytes"},
 * and a progress event), at most every RUNNER_DOWNLOAD_REPORT_MS and when the
 * file is in place; the report's answer, or the heartbeat's, carries a
 * cancel or shutdown, which stops the download within about a second (the
 * transfer polls while it waits for bytes), and the job ends as stopped.
 * What landed stays in the cache (a partial file as its resumable
 * .incomplete), so a re-run goes on from there. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/hub_ref.h"
#include "server/hub/hub_dataset.h"
#include "server/workers/runner.h"

/* Download progress (a synced store write, and the cancel check) at most
 * this often, and when a file is in place. */
#define RUNNER_DOWNLOAD_REPORT_MS 500

typedef struct pull_ctx {
    runner_job *x;
    int64_t last_ms;
    int stopped;
} pull_ctx;

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_file(void *ctx, const char *file, long long done, long long total) {
    pull_ctx *p = ctx;
    const int64_t now = monotonic_ms();
    if (p->stopped || (done < total && now - p->last_ms < RUNNER_DOWNLOAD_REPORT_MS)) return;
    p->last_ms = now;
    pool_progress pr = {.file = file, .done_bytes = done, .total_bytes = total};
    cnet_error err;
    const int rc = pool_report(p->x->ctl, &pr, &err);
    if (rc < 0) fprintf(stderr, "runner: job %s: download progress: %s\n", p->x->job->id, err.msg);
    p->stopped = rc != POOL_CONTINUE;
}

static int should_stop(void *ctx) {
    pull_ctx *p = ctx;
    if (!p->stopped) p->stopped = pool_stop_requested(p->x->ctl);
    return p->stopped;
}

/* The end of a pull of ref into dir: its answer, and dir into out. */
static int pull_done(runner_job *x, const pull_ctx *p, int rc, const char *ref, const char *dir,
                     char *out, size_t cap) {
    if (rc && p->stopped) return POOL_STOPPED;
    if (rc) return cnet_error_prefix(x->err, "resolving %s", ref);
    if (strlen(dir) >= cap) return cnet_fail(x->err, CNET_ELIMIT, "%s: cache path too long", ref);
    memcpy(out, dir, strlen(dir) + 1);
    return 0;
}

int runner_pull(runner_job *x, const char *ref, hub_model_kind kind, char *out, size_t cap) {
    char repo_id[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX], snap[HUB_PATH_MAX];
    pull_ctx p = {.x = x};
    const hub_model_opts o = {.kind = kind,
                              .revision = rev,
                              .progress = on_file,
                              .progress_ctx = &p,
                              .should_stop = should_stop};
    int rc = hub_ref_parse(ref, repo_id, rev, x->err);
    if (!rc) rc = hub_model_pull(repo_id, &o, snap, x->err);
    return pull_done(x, &p, rc, ref, snap, out, cap);
}

int runner_pull_dataset(runner_job *x, const char *ref, const char *config, char *out, size_t cap) {
    char repo_id[HUB_REPO_ID_MAX], rev[HUB_REVISION_MAX], dir[HUB_PATH_MAX];
    pull_ctx p = {.x = x};
    const hub_dataset_opts o = {.config_name = config,
                                .revision = rev,
                                .progress = on_file,
                                .should_stop = should_stop,
                                .progress_ctx = &p};
    int rc = hub_dataset_ref_parse(ref, repo_id, rev, x->err);
    if (!rc) rc = hub_dataset_pull(repo_id, &o, dir, x->err);
    return pull_done(x, &p, rc, ref, dir, out, cap);
}
