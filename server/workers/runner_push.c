/* The push phase of a train job: the job's dir (its final weights, config,
 * model card and validation images; hub_push selects them) to a Hub model
 * repo, with the token and endpoint from the environment (HF_TOKEN,
 * HF_ENDPOINT). Progress is an SSE event ("push") at each phase change, at
 * the end of the upload and within a phase at most every
 * RUNNER_PUSH_EVENT_MS (a large upload takes minutes); the result is the
 * artefact hub_push.json. hub_push retries each request itself; a
 * failed push is tried again RUNNER_PUSH_ATTEMPTS times with a doubling
 * sleep (a cancel is seen after the push). hub_push is idempotent, so a
 * job re-run after a crash makes no second commit. Not the push itself
 * (server/hub/hub_push.c). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/core/atomic_file.h"
#include "server/hub/hub_push.h"
#include "server/workers/runner.h"

static const char *const phase_names[] = {
    [HUB_PUSH_HASH] = "hash",     [HUB_PUSH_CHECK] = "check", [HUB_PUSH_UPLOAD] = "upload",
    [HUB_PUSH_COMMIT] = "commit", [HUB_PUSH_DONE] = "done",
};

/* Within one phase, push events (each a synced store write) at most this often. */
#define RUNNER_PUSH_EVENT_MS 1000

typedef struct push_ctx {
    runner_job *x;
    int phase; /* the last phase reported, -1 before the first */
    int attempt;
    int64_t last_ms; /* when the last event was sent */
} push_ctx;

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void event(runner_job *x, json_t *data) {
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    cnet_error err = {0};
    if (text && pool_event(x->ctl, "push", text, &err))
        fprintf(stderr, "runner: job %s: push event: %s\n", x->job->id, err.msg);
    free(text);
}

static void on_progress(void *user, const hub_push_progress *p) {
    push_ctx *c = user;
    const int64_t now = monotonic_ms();
    if ((int)p->phase == c->phase && p->done != p->total && now - c->last_ms < RUNNER_PUSH_EVENT_MS)
        return;
    c->phase = (int)p->phase;
    c->last_ms = now;
    event(c->x, json_pack("{s:s, s:i, s:I, s:I}", "phase", phase_names[p->phase], "attempt",
                          c->attempt, "done", (json_int_t)p->done, "total", (json_int_t)p->total));
}

static int write_result(runner_job *x, const char *repo_id, const hub_push_result *r) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:i, s:i}", "repo_id", repo_id, "commit", r->commit,
                          "commit_url", r->commit_url, "created_commit", r->created_commit, "files",
                          r->files, "unchanged", r->unchanged);
    if (!j) return cnet_fail(x->err, CNET_ENOMEM, "out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/hub_push.json", x->job->dir);
    int rc = atomic_write_json(path, j, x->err);
    event(x, j); /* takes j */
    return rc;
}

int runner_push(runner_job *x, const char *repo_id, int private_repo) {
    push_ctx c = {.x = x, .phase = -1};
    hub_push_opts o = {.repo_id = repo_id,
                       .dir = x->job->dir,
                       .revision = "main",
                       .private_repo = private_repo,
                       .progress = on_progress,
                       .progress_ctx = &c};
    hub_push_result r;
    int rc = 0;
    for (c.attempt = 1; c.attempt <= RUNNER_PUSH_ATTEMPTS; c.attempt++) {
        hub_client client;
        memset(&r, 0, sizeof r);
        c.phase = -1;
        rc = hub_client_init(&client, NULL, 1, x->err);
        if (!rc) rc = hub_push(&client, &o, &r, x->err);
        hub_client_free(&client);
        if (!rc) return write_result(x, repo_id, &r);
        fprintf(stderr, "runner: job %s: push attempt %d: %s\n", x->job->id, c.attempt,
                x->err->msg);
        if (rc != CNET_EIO || c.attempt == RUNNER_PUSH_ATTEMPTS) break;
        sleep((unsigned)(RUNNER_PUSH_BACKOFF_S << (c.attempt - 1)));
    }
    return cnet_error_prefix(x->err, "push to %s", repo_id);
}
