/* The worker side of the job store: claim with a lease, fenced writes
 * (heartbeat, progress, checkpoint, finish, fail, release) and the rescuer.
 *
 * Every write after the claim is one UPDATE guarded by
 * `WHERE id = ? AND lease_token = ? AND state = 'running'`: if it changes no
 * row the caller lost its lease (JOBS_ESTALE) and must stop, which is what
 * keeps a zombie worker from completing a job twice (Faktory's "zombie"
 * reservations, RELIABILITY.md §2). Not here: who runs the job (server/workers/pool.c). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/jobs_internal.h"

static int stale(cnet_error *err, const char *id) {
    return cnet_fail(err, JOBS_ESTALE, "job %s: lease lost (another worker holds it or it ended)",
                     id);
}

static int claim_locked(jobs_store *s, int64_t lease_ms, job *out, char token[JOBS_TOKEN_MAX],
                        int *claimed, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    rc = jobs_stmt(s, &st, err, "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1",
                   "");
    if (rc) goto fail;
    char id[JOBS_ID_MAX] = "";
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (v)
            snprintf(id, sizeof id, "%s", v);
        else
            step = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    if (step == SQLITE_DONE) {
        jobs_rollback(s);
        return 0;
    }
    if (step != SQLITE_ROW) {
        rc = jobs_db_fail(s, step, err, "claim");
        goto fail;
    }
    if ((rc = jobs_random_hex(token, 16, err))) goto fail;
    int64_t now = jobs_now(s);
    rc = jobs_exec(s, NULL, err,
                   "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = ?, "
                   "lease_expires_at = ?, heartbeat_at = ?, started_at = ?, finished_at = NULL "
                   "WHERE id = ?",
                   "siiis", token, now + lease_ms, now, now, id);
    if (rc) goto fail;
    if ((rc = jobs_stmt(s, &st, err, "SELECT " JOBS_COLUMNS " FROM jobs WHERE id = ?", "s", id)))
        goto fail;
    step = sqlite3_step(st);
    rc = step == SQLITE_ROW ? jobs_row(st, out, err) : jobs_db_fail(s, step, err, "claim");
    sqlite3_finalize(st);
    if (!rc) rc = jobs_event_state(s, id, JOB_RUNNING, out->attempt, NULL, err);
    if (!rc) rc = jobs_commit(s, err);
    if (rc) {
        job_clear(out);
        goto fail;
    }
    *claimed = 1;
    return 0;
fail:
    jobs_rollback(s);
    return rc;
}

int jobs_claim(jobs_store *s, int64_t lease_ms, job *out, char token[JOBS_TOKEN_MAX], int *claimed,
               cnet_error *err) {
    *claimed = 0;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    int rc = claim_locked(s, lease_ms, out, token, claimed, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Runs one fenced UPDATE inside a transaction together with an optional
 * event. sql uses ?1 = a, ?2 = b, ?3 = text (each may go unused), ?4 = id,
 * ?5 = token. */
static int fenced(jobs_store *s, const char *id, const char *token, const char *sql, int64_t a,
                  int64_t b, const char *text, const char *ev_type, const char *ev_data,
                  cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    int changes = 0;
    rc = jobs_exec(s, &changes, err, sql, "iisss", a, b, text, id, token);
    if (!rc && changes == 0) rc = stale(err, id);
    if (!rc && ev_type) rc = jobs_event_add(s, id, ev_type, ev_data, err);
    if (!rc) return jobs_commit(s, err);
    jobs_rollback(s);
    return rc;
}

#define FENCE " WHERE id = ?4 AND lease_token = ?5 AND state = 'running'"

static int read_cancel(jobs_store *s, const char *id, int *cancel_requested, cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT cancel_requested FROM jobs WHERE id = ?", "s", id);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *cancel_requested = sqlite3_column_int(st, 0);
    else
        rc = jobs_db_fail(s, step, err, "reading cancel_requested");
    sqlite3_finalize(st);
    return rc;
}

int jobs_heartbeat(jobs_store *s, const char *id, const char *token, int64_t lease_ms,
                   int *cancel_requested, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int64_t now = jobs_now(s);
    int rc = fenced(s, id, token, "UPDATE jobs SET lease_expires_at = ?1, heartbeat_at = ?2" FENCE,
                    now + lease_ms, now, "", NULL, NULL, err);
    if (!rc) rc = read_cancel(s, id, cancel_requested, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_progress(jobs_store *s, const char *id, const char *token, const char *progress_json,
                  int64_t lease_ms, int *cancel_requested, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int64_t now = jobs_now(s);
    int rc =
        fenced(s, id, token,
               "UPDATE jobs SET lease_expires_at = ?1, heartbeat_at = ?2, progress_json = ?3" FENCE,
               now + lease_ms, now, progress_json, "progress", progress_json, err);
    if (!rc) rc = read_cancel(s, id, cancel_requested, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_checkpoint(jobs_store *s, const char *id, const char *token, int64_t step,
                    cnet_error *err) {
    char data[64];
    snprintf(data, sizeof data, "{\"step\":%lld}", (long long)step);
    pthread_mutex_lock(&s->mu);
    int rc = fenced(s, id, token, "UPDATE jobs SET checkpoint_step = ?1, heartbeat_at = ?2" FENCE,
                    step, jobs_now(s), "", "checkpoint", data, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_note(jobs_store *s, const char *id, const char *token, const char *type,
              const char *data_json, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = fenced(s, id, token, "UPDATE jobs SET heartbeat_at = ?2" FENCE, 0, jobs_now(s), "",
                    type, data_json, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Moves a fenced running job to state `to` with an optional error; attempt
 * is adjusted by attempt_delta (-1 for a release that must not count). */
static int leave_running(jobs_store *s, const char *id, const char *token, job_state to,
                         int attempt_delta, const char *code, const char *detail,
                         const char *reason, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    int changes = 0;
    int terminal = job_state_terminal(to);
    rc =
        jobs_exec(s, &changes, err,
                  "UPDATE jobs SET state = ?1, attempt = attempt + ?2, lease_token = NULL, "
                  "lease_expires_at = NULL, finished_at = NULLIF(?3, 0), error_code = coalesce(?4, "
                  "error_code), error_detail = coalesce(?5, error_detail) "
                  "WHERE id = ?6 AND lease_token = ?7 AND state = 'running'",
                  "sdissss", job_state_names[to], attempt_delta, terminal ? jobs_now(s) : 0, code,
                  detail, id, token);
    if (!rc && changes == 0) rc = stale(err, id);
    sqlite3_stmt *st = NULL;
    int attempt = 0;
    if (!rc && !(rc = jobs_stmt(s, &st, err, "SELECT attempt FROM jobs WHERE id = ?", "s", id))) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            attempt = sqlite3_column_int(st, 0);
        else
            rc = jobs_db_fail(s, step, err, "reading attempt");
        sqlite3_finalize(st);
    }
    if (!rc) rc = jobs_event_state(s, id, to, attempt, reason, err);
    if (!rc) return jobs_commit(s, err);
    jobs_rollback(s);
    return rc;
}

int jobs_finish(jobs_store *s, const char *id, const char *token, job_state final,
                cnet_error *err) {
    if (final != JOB_SUCCEEDED && final != JOB_CANCELLED)
        return cnet_fail(err, CNET_EINVAL,
                         "jobs_finish: final state must be succeeded or cancelled");
    pthread_mutex_lock(&s->mu);
    int rc = leave_running(s, id, token, final, 0, NULL, NULL, NULL, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_fail(jobs_store *s, const char *id, const char *token, const char *code,
              const char *detail, int permanent, int *requeued, cnet_error *err) {
    *requeued = 0;
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT attempt < max_attempts FROM jobs WHERE id = ? AND lease_token = ? "
                       "AND state = 'running'",
                       "ss", id, token);
    int retry = 0;
    if (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            retry = sqlite3_column_int(st, 0) && !permanent;
        else if (step == SQLITE_DONE)
            rc = stale(err, id);
        else
            rc = jobs_db_fail(s, step, err, "fail");
        sqlite3_finalize(st);
    }
    if (!rc)
        rc = leave_running(s, id, token, retry ? JOB_QUEUED : JOB_FAILED, 0, code, detail,
                           retry       ? "retrying after a failed attempt"
                           : permanent ? "failed for good: a retry would fail the same way"
                                       : "attempts exhausted",
                           err);
    if (!rc) *requeued = retry;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_release(jobs_store *s, const char *id, const char *token, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = leave_running(s, id, token, JOB_QUEUED, -1, NULL, NULL, "released at shutdown", err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int rescue_locked(jobs_store *s, int all, int *rescued, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    int64_t now = jobs_now(s);
    sqlite3_stmt *st;
    rc = jobs_stmt(s, &st, err,
                   "SELECT id, attempt, attempt >= max_attempts, cancel_requested FROM jobs "
                   "WHERE state = 'running' AND (? OR lease_expires_at < ?)",
                   "di", all, now);
    while (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW) {
            rc = jobs_db_fail(s, step, err, "rescue");
            break;
        }
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (!v) {
            rc = cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
            break;
        }
        char id[JOBS_ID_MAX];
        snprintf(id, sizeof id, "%s", v);
        int attempt = sqlite3_column_int(st, 1), exhausted = sqlite3_column_int(st, 2);
        job_state to = sqlite3_column_int(st, 3) ? JOB_CANCELLED
                       : exhausted               ? JOB_FAILED
                                                 : JOB_QUEUED;
        char detail[160];
        snprintf(detail, sizeof detail, "attempt %d lost its worker (lease expired or restart)",
                 attempt);
        /* A lost lease is the attempt's error; a job that never reported one
         * keeps this as its last error when attempts run out. */
        rc = jobs_exec(s, NULL, err,
                       "UPDATE jobs SET state = ?1, lease_token = NULL, lease_expires_at = NULL, "
                       "finished_at = NULLIF(?2, 0), error_code = CASE WHEN ?1 = 'failed' THEN "
                       "coalesce(error_code, 'lease_expired') ELSE error_code END, error_detail = "
                       "CASE WHEN ?1 = 'failed' THEN coalesce(error_detail, ?3) ELSE error_detail "
                       "END WHERE id = ?4",
                       "siss", job_state_names[to], job_state_terminal(to) ? now : 0, detail, id);
        if (!rc) rc = jobs_event_state(s, id, to, attempt, detail, err);
        if (!rc) ++*rescued;
    }
    sqlite3_finalize(st);
    if (!rc) return jobs_commit(s, err);
    jobs_rollback(s);
    return rc;
}

int jobs_rescue(jobs_store *s, int all, int *rescued, cnet_error *err) {
    *rescued = 0;
    pthread_mutex_lock(&s->mu);
    int rc = rescue_locked(s, all, rescued, err);
    pthread_mutex_unlock(&s->mu);
    if (rc) *rescued = 0;
    return rc;
}
