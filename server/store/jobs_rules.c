/* The job store's rules, written once for both backends (SQLite and
 * PostgreSQL): where a job goes when its worker fails, releases or loses
 * its lease (bounded attempts, RELIABILITY.md §2), the texts of the events a
 * client replays, fresh ids and fencing tokens, which queued job a claim
 * takes (placement: jobs_claim_placed's fit, window and age bound), and the errors
 * both return.
 *
 * What it is not: SQL (each backend writes its own statements around these
 * decisions) or the fencing itself (the backends' `WHERE lease_token = ?`). */
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/store/jobs_internal.h"

job_state jobs_rules_leave(jobs_leave *l, int retry, const char **reason) {
    l->requeued = 0;
    *reason = NULL;
    if (l->kind == JOBS_LEAVE_FINISH) return l->final;
    if (l->kind == JOBS_LEAVE_RELEASE) {
        *reason = "released at shutdown";
        return JOB_QUEUED;
    }
    l->requeued = retry && !l->permanent;
    *reason = l->requeued    ? "retrying after a failed attempt"
              : l->permanent ? "failed for good: a retry would fail the same way"
                             : "attempts exhausted";
    return l->requeued ? JOB_QUEUED : JOB_FAILED;
}

int jobs_rules_attempt_delta(const jobs_leave *l) { return l->kind == JOBS_LEAVE_RELEASE ? -1 : 0; }

job_state jobs_rules_rescue(int cancel_requested, int exhausted, int attempt, char detail[160]) {
    snprintf(detail, 160, "attempt %d lost its worker (lease expired or restart)", attempt);
    return cancel_requested ? JOB_CANCELLED : exhausted ? JOB_FAILED : JOB_QUEUED;
}

int jobs_rules_event_state(jobs_store *s, jobs_event_add_fn add, const char *id, job_state state,
                           int attempt, const char *reason, cnet_error *err) {
    const char *node = state == JOB_RUNNING ? s->node : NULL;
    json_t *o = json_pack("{s:s, s:i}", "state", job_state_names[state], "attempt", attempt);
    if (o && ((reason && json_object_set_new(o, "reason", json_string(reason))) ||
              (node && *node && json_object_set_new(o, "node", json_string(node))))) {
        json_decref(o);
        o = NULL;
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "job store: event: out of memory");
    const int rc = add(s, id, "state", text, err);
    free(text);
    return rc;
}

void jobs_rules_checkpoint_json(int64_t step, char buf[64]) {
    snprintf(buf, 64, "{\"step\":%lld}", (long long)step);
}

int jobs_rules_stale(cnet_error *err, const char *id) {
    return cnet_fail(err, JOBS_ESTALE, "job %s: lease lost (another worker holds it or it ended)",
                     id);
}

int jobs_rules_idem_conflict(cnet_error *err, const char *id) {
    return cnet_fail(err, JOBS_ECONFLICT,
                     "Idempotency-Key was already used for a different request (job %s)", id);
}

int jobs_rules_queue_full(cnet_error *err, int64_t queued, int cap) {
    return cnet_fail(err, CNET_ELIMIT, "the queue is full (%lld jobs queued, cap %d)",
                     (long long)queued, cap);
}

int jobs_rules_not_found(cnet_error *err, const char *id) {
    return cnet_fail(err, CNET_ENOTFOUND, "no job %s", id);
}

int jobs_rules_terminal(cnet_error *err, const char *id, job_state state) {
    return cnet_fail(err, JOBS_ECONFLICT, "job %s is already %s", id, job_state_names[state]);
}

int jobs_rules_newer_schema(cnet_error *err, const char *where, int version) {
    return cnet_fail(err, CNET_EFORMAT,
                     "job store %s: schema version %d is newer than this cnet's %d: upgrade cnet "
                     "(a newer node migrated it) rather than run an older one against it",
                     where, version, JOBS_SCHEMA_VERSION);
}

void jobs_rules_dataset_pattern(const char *id, char buf[64]) {
    snprintf(buf, 64, "%%\"dataset\":\"%.40s\"%%", id);
}

int jobs_rules_dataset_in_use(cnet_error *err, const char *id, const char *job_id) {
    return cnet_fail(err, JOBS_ECONFLICT,
                     "dataset %s is used by job %s, which is queued or running: cancel the job "
                     "or wait for it to end, then delete the dataset",
                     id, job_id);
}

int jobs_rules_dataset_not_found(cnet_error *err, const char *id) {
    return cnet_fail(err, CNET_ENOTFOUND, "no dataset %s", id);
}

static int random_hex(char *out, int nbytes, cnet_error *err) {
    unsigned char raw[32];
    if (nbytes > (int)sizeof raw || RAND_bytes(raw, nbytes) != 1)
        return cnet_fail(err, CNET_EIO, "job store: no random bytes");
    for (int i = 0; i < nbytes; i++) sprintf(out + 2 * i, "%02x", raw[i]);
    return 0;
}

int jobs_rules_new_id(char id[JOBS_ID_MAX], cnet_error *err) {
    char hex[33];
    int rc = random_hex(hex, 16, err);
    if (!rc) snprintf(id, JOBS_ID_MAX, "j_%s", hex);
    return rc;
}

int jobs_rules_new_token(char token[JOBS_TOKEN_MAX], cnet_error *err) {
    return random_hex(token, 16, err);
}

int jobs_rules_window(const jobs_pick *pick) {
    return pick && (pick->place.prefer || pick->place.fits) ? JOBS_PREFER_WINDOW : 1;
}

static int fits(const jobs_pick *pick, const jobs_candidate *c) {
    return !pick || !pick->place.fits || pick->place.fits(pick->place.ctx, c->kind, c->spec);
}

int jobs_rules_pick(const jobs_pick *pick, const jobs_candidate *c, int n, int64_t now) {
    if (n > JOBS_PREFER_WINDOW) n = JOBS_PREFER_WINDOW;
    int ok[JOBS_PREFER_WINDOW], first = -1;
    for (int i = 0; i < n; i++)
        if ((ok[i] = fits(pick, &c[i])) && first < 0) first = i;
    /* none fits; no preference; or the oldest that fits waited long enough */
    if (first < 0 || !pick || !pick->place.prefer ||
        now - c[first].created_at >= JOBS_PREFER_WAIT_MS)
        return first;
    for (int i = first; i < n; i++)
        if (ok[i] && pick->place.prefer(pick->place.ctx, c[i].kind, c[i].spec)) return i;
    return first;
}
