/* The PostgreSQL store's worker side: claim with a lease, fenced writes and
 * the rescuer, with many nodes claiming from one queue.
 *
 *   claim   one UPDATE of a queued row picked (jobs_rules_pick: the oldest,
 *           or a preferred one among the oldest few) from rows locked by
 *           `SELECT ... FOR UPDATE SKIP LOCKED`: two nodes claiming at once
 *           take different jobs instead of waiting on each other;
 *   fenced  every write after the claim is guarded by
 *           `WHERE id = $ AND lease_token = $ AND state = 'running'`, as in
 *           SQLite (RELIABILITY.md §2): a node that lost its lease (stopped,
 *           partitioned) writes nothing when it comes back;
 *   rescue  any node puts jobs whose lease expired back to the queue (rows
 *           another node is writing right now are skipped, SKIP LOCKED, and
 *           looked at on the next tick).
 * Where a job goes next is jobs_rules.c's, shared with SQLite. Leases
 * compare the nodes' clocks (jobs_now): keep them in step (NTP). Called
 * with s->mu held (jobs.c). */
#include <stdio.h>
#include <string.h>

#include "server/store/jobs_pg.h"

/* The id of the queued job pick takes into id (empty when none), its row
 * and the other candidates locked until the transaction ends. */
static int pick_queued(jobs_store *s, const jobs_pick *pick, char id[JOBS_ID_MAX],
                       cnet_error *err) {
    id[0] = '\0';
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "claim",
                          "SELECT id, kind, spec_json, created_at FROM jobs WHERE state = 'queued' "
                          "ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                          "d", jobs_rules_window(pick));
    if (rc) return rc;
    jobs_candidate c[JOBS_PREFER_WINDOW];
    const int n = PQntuples(r) < JOBS_PREFER_WINDOW ? PQntuples(r) : JOBS_PREFER_WINDOW;
    for (int i = 0; i < n; i++)
        c[i] = (jobs_candidate){PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                                jobs_pg_int(r, i, 3)};
    const int k = n > 0 ? jobs_rules_pick(pick, c, n, jobs_now(s)) : -1;
    if (k >= 0) snprintf(id, JOBS_ID_MAX, "%s", c[k].id);
    PQclear(r);
    return 0;
}

int jobs_pg_claim(jobs_store *s, int64_t lease_ms, const jobs_pick *pick, job *out,
                  char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err) {
    int rc = jobs_rules_new_token(token, err);
    if (!rc) rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    const int64_t now = jobs_now(s);
    char id[JOBS_ID_MAX];
    if ((rc = pick_queued(s, pick, id, err))) goto fail;
    if (!id[0]) {
        jobs_pg_rollback(s);
        return 0;
    }
    PGresult *r;
    rc = jobs_pg_exec(s, &r, NULL, err, "claim",
                      "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = $1, "
                      "lease_expires_at = $2, heartbeat_at = $3, started_at = $3, finished_at = "
                      "NULL WHERE id = $4 RETURNING " JOBS_COLUMNS,
                      "siis", token, now + lease_ms, now, id);
    if (rc) goto fail;
    if (PQntuples(r) != 1) {
        PQclear(r);
        rc = cnet_fail(err, CNET_EIO, "claim: job %s vanished while locked", id);
        goto fail;
    }
    rc = jobs_pg_row(r, 0, out, err);
    PQclear(r);
    if (rc) goto fail;
    rc = jobs_pg_event_state(s, out->id, JOB_RUNNING, out->attempt, NULL, err);
    if (!rc) rc = jobs_pg_commit(s, err);
    if (rc) {
        job_clear(out);
        return rc;
    }
    *claimed = 1;
    return 0;
fail:
    jobs_pg_rollback(s);
    return rc;
}

int jobs_pg_fenced(jobs_store *s, const char *id, const char *token, const jobs_write *w,
                   int *cancel_requested, cnet_error *err) {
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    PGresult *r;
    rc =
        jobs_pg_exec(s, &r, NULL, err, "fenced write",
                     "UPDATE jobs SET heartbeat_at = $1, lease_expires_at = CASE WHEN $2::bigint > "
                     "0 THEN $1::bigint + $2::bigint ELSE lease_expires_at END, progress_json = "
                     "coalesce($3, progress_json), checkpoint_step = CASE WHEN $4::bigint >= 0 "
                     "THEN $4::bigint ELSE checkpoint_step END WHERE id = $5 AND lease_token = $6 "
                     "AND state = 'running' RETURNING cancel_requested",
                     "iisiss", jobs_now(s), w->lease_ms, w->progress, w->checkpoint, id, token);
    if (rc) goto fail;
    const int held = PQntuples(r) == 1;
    if (held && w->want_cancel) *cancel_requested = (int)jobs_pg_int(r, 0, 0);
    PQclear(r);
    if (!held) rc = jobs_rules_stale(err, id);
    if (!rc && w->ev_type) rc = jobs_pg_event_add(s, id, w->ev_type, w->ev_data, err);
    if (rc) goto fail;
    return jobs_pg_commit(s, err);
fail:
    jobs_pg_rollback(s);
    return rc;
}

int jobs_pg_leave(jobs_store *s, const char *id, const char *token, jobs_leave *l,
                  cnet_error *err) {
    l->requeued = 0;
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    PGresult *r;
    rc = jobs_pg_exec(s, &r, NULL, err, "leave",
                      "SELECT (attempt < max_attempts)::int, attempt FROM jobs WHERE id = $1 AND "
                      "lease_token = $2 AND state = 'running' FOR UPDATE",
                      "ss", id, token);
    if (rc) goto fail;
    const int held = PQntuples(r) == 1;
    const int retry = held ? (int)jobs_pg_int(r, 0, 0) : 0;
    const int attempt = held ? (int)jobs_pg_int(r, 0, 1) : 0;
    PQclear(r);
    if (!held) {
        rc = jobs_rules_stale(err, id);
        goto fail;
    }
    const char *reason = NULL;
    const job_state to = jobs_rules_leave(l, retry, &reason);
    const int delta = jobs_rules_attempt_delta(l);
    rc = jobs_pg_exec(s, NULL, NULL, err, "leave",
                      "UPDATE jobs SET state = $1, attempt = attempt + $2, lease_token = NULL, "
                      "lease_expires_at = NULL, finished_at = NULLIF($3::bigint, 0), error_code = "
                      "coalesce($4, error_code), error_detail = coalesce($5, error_detail) "
                      "WHERE id = $6",
                      "sdisss", job_state_names[to], delta,
                      job_state_terminal(to) ? jobs_now(s) : 0, l->code, l->detail, id);
    if (!rc) rc = jobs_pg_event_state(s, id, to, attempt + delta, reason, err);
    if (!rc) rc = jobs_pg_commit(s, err);
    if (!rc) return 0;
fail:
    l->requeued = 0;
    jobs_pg_rollback(s);
    return rc;
}

int jobs_pg_rescue(jobs_store *s, int all, int *rescued, cnet_error *err) {
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    const int64_t now = jobs_now(s);
    PGresult *r;
    rc = jobs_pg_exec(s, &r, NULL, err, "rescue",
                      "SELECT id, attempt, (attempt >= max_attempts)::int, cancel_requested FROM "
                      "jobs WHERE state = 'running' AND ($1::int = 1 OR lease_expires_at < $2) "
                      "FOR UPDATE SKIP LOCKED",
                      "di", all, now);
    if (rc) goto fail;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0);
        const int attempt = (int)jobs_pg_int(r, i, 1);
        char detail[160];
        const job_state to = jobs_rules_rescue((int)jobs_pg_int(r, i, 3), (int)jobs_pg_int(r, i, 2),
                                               attempt, detail);
        /* A lost lease is the attempt's error; a job that never reported one
         * keeps this as its last error when attempts run out. */
        rc =
            jobs_pg_exec(s, NULL, NULL, err, "rescue",
                         "UPDATE jobs SET state = $1, lease_token = NULL, lease_expires_at = "
                         "NULL, finished_at = NULLIF($2::bigint, 0), error_code = CASE WHEN $1 = "
                         "'failed' THEN coalesce(error_code, '" JOBS_CODE_LEASE_EXPIRED
                         "') ELSE error_code END, error_detail = CASE WHEN $1 = 'failed' THEN "
                         "coalesce(error_detail, $3) ELSE error_detail END WHERE id = $4",
                         "siss", job_state_names[to], job_state_terminal(to) ? now : 0, detail, id);
        if (!rc) rc = jobs_pg_event_state(s, id, to, attempt, detail, err);
        if (!rc) ++*rescued;
    }
    PQclear(r);
    if (rc) goto fail;
    if (!*rescued) {
        jobs_pg_rollback(s);
        return 0;
    }
    return jobs_pg_commit(s, err);
fail:
    jobs_pg_rollback(s);
    return rc;
}
