/* The SQLite store's worker side: claim with a lease, fenced writes
 * (heartbeat, progress, checkpoint, note, finish, fail, release) and the
 * rescuer.
 *
 * Every write after the claim is one UPDATE guarded by
 * `WHERE id = ? AND lease_token = ? AND state = 'running'`: if it changes no
 * row the caller lost its lease (JOBS_ESTALE) and must stop, which is what
 * keeps a zombie worker from completing a job twice (Faktory's "zombie"
 * reservations, RELIABILITY.md §2). Where a job goes next is
 * jobs_rules.c's. Not here: who runs the job (server/workers/pool.c).
 * Called with s->mu held (jobs.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store/jobs_sqlite.h"

/* The id of the queued job pick takes into id (empty when none). */
static int pick_queued(jobs_store *s, const jobs_pick *pick, char id[JOBS_ID_MAX],
                       cnet_error *err) {
    id[0] = '\0';
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT id, kind, spec_json, created_at FROM jobs WHERE state = 'queued' "
                       "ORDER BY seq LIMIT ?",
                       "i", (int64_t)jobs_rules_window(pick));
    if (rc) return rc;
    jobs_candidate c[JOBS_PREFER_WINDOW];
    char *text[JOBS_PREFER_WINDOW][3] = {{0}};
    int n = 0, step = SQLITE_DONE;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        for (int k = 0; k < 3; k++) {
            const char *v = (const char *)sqlite3_column_text(st, k);
            if (!v || !(text[n][k] = strdup(v))) rc = jobs_db_fail(s, SQLITE_NOMEM, err, "claim");
        }
        c[n] = (jobs_candidate){text[n][0], text[n][1], text[n][2], sqlite3_column_int64(st, 3)};
        n++;
    }
    if (!rc && step != SQLITE_DONE) rc = jobs_db_fail(s, step, err, "claim");
    sqlite3_finalize(st);
    const int taken = !rc && n > 0 ? jobs_rules_pick(pick, c, n, jobs_now(s)) : -1;
    if (taken >= 0) snprintf(id, JOBS_ID_MAX, "%s", c[taken].id);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) free(text[i][k]);
    return rc;
}

int jobs_sqlite_claim(jobs_store *s, int64_t lease_ms, const jobs_pick *pick, job *out,
                      char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    char id[JOBS_ID_MAX];
    if ((rc = pick_queued(s, pick, id, err))) goto fail;
    if (!id[0]) {
        jobs_rollback(s);
        return 0;
    }
    if ((rc = jobs_rules_new_token(token, err))) goto fail;
    int64_t now = jobs_now(s);
    rc = jobs_exec(s, NULL, err,
                   "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = ?, "
                   "lease_expires_at = ?, heartbeat_at = ?, started_at = ?, finished_at = NULL "
                   "WHERE id = ?",
                   "siiis", token, now + lease_ms, now, now, id);
    if (rc) goto fail;
    if ((rc = jobs_stmt(s, &st, err, "SELECT " JOBS_COLUMNS " FROM jobs WHERE id = ?", "s", id)))
        goto fail;
    const int step = sqlite3_step(st);
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

/* Reads cancel_requested of job id. */
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

int jobs_sqlite_fenced(jobs_store *s, const char *id, const char *token, const jobs_write *w,
                       int *cancel_requested, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    int changes = 0;
    int64_t now = jobs_now(s);
    rc = jobs_exec(s, &changes, err,
                   "UPDATE jobs SET heartbeat_at = ?1, lease_expires_at = CASE WHEN ?2 > 0 THEN "
                   "?1 + ?2 ELSE lease_expires_at END, progress_json = coalesce(?3, "
                   "progress_json), checkpoint_step = CASE WHEN ?4 >= 0 THEN ?4 ELSE "
                   "checkpoint_step END WHERE id = ?5 AND lease_token = ?6 AND state = 'running'",
                   "iisiss", now, w->lease_ms, w->progress, w->checkpoint, id, token);
    if (!rc && changes == 0) rc = jobs_rules_stale(err, id);
    if (!rc && w->ev_type) rc = jobs_event_add(s, id, w->ev_type, w->ev_data, err);
    if (!rc && w->want_cancel) rc = read_cancel(s, id, cancel_requested, err);
    if (!rc) return jobs_commit(s, err);
    jobs_rollback(s);
    return rc;
}

int jobs_sqlite_leave(jobs_store *s, const char *id, const char *token, jobs_leave *l,
                      cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    int retry = 0, attempt = 0;
    rc = jobs_stmt(s, &st, err,
                   "SELECT attempt < max_attempts, attempt FROM jobs WHERE id = ? AND "
                   "lease_token = ? AND state = 'running'",
                   "ss", id, token);
    if (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            retry = sqlite3_column_int(st, 0), attempt = sqlite3_column_int(st, 1);
        else if (step == SQLITE_DONE)
            rc = jobs_rules_stale(err, id);
        else
            rc = jobs_db_fail(s, step, err, "leave");
        sqlite3_finalize(st);
    }
    const char *reason = NULL;
    job_state to = jobs_rules_leave(l, retry, &reason);
    int delta = jobs_rules_attempt_delta(l);
    if (!rc)
        rc = jobs_exec(s, NULL, err,
                       "UPDATE jobs SET state = ?1, attempt = attempt + ?2, lease_token = NULL, "
                       "lease_expires_at = NULL, finished_at = NULLIF(?3, 0), error_code = "
                       "coalesce(?4, error_code), error_detail = coalesce(?5, error_detail) "
                       "WHERE id = ?6",
                       "sdisss", job_state_names[to], delta,
                       job_state_terminal(to) ? jobs_now(s) : 0, l->code, l->detail, id);
    if (!rc) rc = jobs_event_state(s, id, to, attempt + delta, reason, err);
    if (!rc)
        rc = jobs_commit(s, err);
    else
        jobs_rollback(s);
    if (rc) l->requeued = 0;
    return rc;
}

int jobs_sqlite_rescue(jobs_store *s, int all, int *rescued, cnet_error *err) {
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
        int attempt = sqlite3_column_int(st, 1);
        char detail[160];
        job_state to = jobs_rules_rescue(sqlite3_column_int(st, 3), sqlite3_column_int(st, 2),
                                         attempt, detail);
        /* A lost lease is the attempt's error; a job that never reported one
         * keeps this as its last error when attempts run out. */
        rc = jobs_exec(s, NULL, err,
                       "UPDATE jobs SET state = ?1, lease_token = NULL, lease_expires_at = NULL, "
                       "finished_at = NULLIF(?2, 0), error_code = CASE WHEN ?1 = 'failed' THEN "
                       "coalesce(error_code, '" JOBS_CODE_LEASE_EXPIRED
                       "') ELSE error_code END, error_detail = "
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
