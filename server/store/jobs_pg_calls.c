/* The PostgreSQL store's client side: enqueue (with Idempotency-Key), get,
 * list, cancel, events, counts. The same promises and errors as the SQLite
 * store's (server/store/jobs_sqlite.c); what differs is concurrency: many
 * nodes write at once, so
 *   - an Idempotency-Key is claimed by INSERT ... ON CONFLICT DO NOTHING: of
 *     two nodes that got the same key at once, the second waits for the
 *     first's commit, inserts nothing and then finds the first's job;
 *   - a cancel locks the job's row (FOR UPDATE) before it reads its state,
 *     as a worker on another node may be finishing it;
 *   - the queue cap counts committed jobs, so nodes accepting at the same
 *     moment may pass it by one each (a cap, not an exact bound).
 * Not here: the worker side (jobs_pg_lease.c). Called with s->mu held. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/store/jobs_pg.h"

/* Looks up the job an idempotency key created: 1 found (id filled), 0 none. */
static int find_idem(jobs_store *s, const char *key, const char *hash, char id[JOBS_ID_MAX],
                     cnet_error *err) {
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "idempotency lookup",
                          "SELECT id, idem_hash FROM jobs WHERE idem_key = $1", "s", key);
    if (rc) return rc;
    if (PQntuples(r) == 1) {
        const char *h = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1);
        if (!h || !hash || strcmp(h, hash) != 0)
            rc = jobs_rules_idem_conflict(err, PQgetvalue(r, 0, 0));
        else {
            snprintf(id, JOBS_ID_MAX, "%s", PQgetvalue(r, 0, 0));
            rc = 1;
        }
    }
    PQclear(r);
    return rc;
}

/* One try: 0 done, 1 the key was taken meanwhile (try again), else an error. */
static int enqueue_once(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                        cnet_error *err) {
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    if (req->idem_key && (rc = find_idem(s, req->idem_key, req->idem_hash, id, err)) != 0) {
        jobs_pg_rollback(s);
        return rc == 1 ? 0 : rc; /* the earlier job, or a conflict */
    }
    if (req->admit && (rc = req->admit(req->admit_ctx, err))) goto fail;
    if (req->queue_cap > 0) {
        PGresult *r;
        if ((rc = jobs_pg_exec(s, &r, NULL, err, "counting the queue",
                               "SELECT count(*) FROM jobs WHERE state = 'queued'", "")))
            goto fail;
        int64_t queued = jobs_pg_int(r, 0, 0);
        PQclear(r);
        if (queued >= req->queue_cap) {
            rc = jobs_rules_queue_full(err, queued, req->queue_cap);
            goto fail;
        }
    }
    if ((rc = jobs_rules_new_id(id, err))) goto fail;
    int inserted = 0;
    rc = jobs_pg_exec(s, NULL, &inserted, err, "enqueue",
                      "INSERT INTO jobs (id, kind, state, spec_json, idem_key, idem_hash, "
                      "max_attempts, created_at) VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7) "
                      "ON CONFLICT (idem_key) DO NOTHING",
                      "sssssdi", id, req->kind, req->spec_json, req->idem_key, req->idem_hash,
                      req->max_attempts > 0 ? req->max_attempts : JOBS_DEFAULT_MAX_ATTEMPTS,
                      jobs_now(s));
    if (!rc && !inserted) {
        jobs_pg_rollback(s);
        return 1;
    }
    if (!rc) rc = jobs_pg_event_state(s, id, JOB_QUEUED, 0, NULL, err);
    char dir[4096];
    if (!rc) rc = jobs_dir_path(s, id, dir, sizeof dir, err);
    if (!rc && mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = cnet_fail(err, CNET_EIO, "job store: mkdir %s: %s", dir, strerror(errno));
    if (rc) goto fail;
    if ((rc = jobs_pg_commit(s, err))) {
        rmdir(dir);
        return rc;
    }
    *created = 1;
    return 0;
fail:
    jobs_pg_rollback(s);
    return rc;
}

int jobs_pg_enqueue(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                    cnet_error *err) {
    int rc = enqueue_once(s, req, id, created, err);
    /* a second try finds the job the other node committed under the key */
    return rc == 1 ? enqueue_once(s, req, id, created, err) : rc;
}

int jobs_pg_get(jobs_store *s, const char *id, job *out, cnet_error *err) {
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "get",
                          "SELECT " JOBS_COLUMNS " FROM jobs WHERE id = $1", "s", id);
    if (rc) return rc;
    rc = PQntuples(r) == 1 ? jobs_pg_row(r, 0, out, err) : jobs_rules_not_found(err, id);
    PQclear(r);
    return rc;
}

int jobs_pg_list(jobs_store *s, const jobs_filter *f, int limit, job *out, int *n,
                 cnet_error *err) {
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "list",
                          "SELECT " JOBS_COLUMNS " FROM jobs WHERE ($1::text IS NULL OR state = "
                          "$1) AND ($2::text IS NULL OR kind = $2) AND ($3::bigint = 0 OR seq < "
                          "$3) ORDER BY seq DESC LIMIT $4",
                          "ssid", f->state >= 0 ? job_state_names[f->state] : NULL, f->kind,
                          f->before, limit);
    if (rc) return rc;
    for (int i = 0; !rc && i < PQntuples(r) && i < limit; i++)
        if (!(rc = jobs_pg_row(r, i, &out[*n], err))) ++*n;
    PQclear(r);
    return rc;
}

int jobs_pg_cancel(jobs_store *s, const char *id, job_state *state, cnet_error *err) {
    int rc = jobs_pg_begin(s, err);
    if (rc) return rc;
    PGresult *r;
    if ((rc = jobs_pg_exec(s, &r, NULL, err, "cancel",
                           "SELECT state, attempt FROM jobs WHERE id = $1 FOR UPDATE", "s", id)))
        goto fail;
    int found = PQntuples(r) == 1;
    int cur = found ? job_state_parse(PQgetvalue(r, 0, 0)) : -1;
    int attempt = found ? (int)jobs_pg_int(r, 0, 1) : 0;
    PQclear(r);
    if (!found || cur < 0) {
        rc = jobs_rules_not_found(err, id);
        goto fail;
    }
    *state = (job_state)cur;
    if (job_state_terminal(*state)) {
        rc = jobs_rules_terminal(err, id, *state);
        goto fail;
    }
    if (*state == JOB_QUEUED) {
        rc = jobs_pg_exec(s, NULL, NULL, err, "cancel",
                          "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, "
                          "finished_at = $1 WHERE id = $2",
                          "is", jobs_now(s), id);
        if (!rc)
            rc = jobs_pg_event_state(s, id, JOB_CANCELLED, attempt, JOBS_REASON_CANCEL_QUEUED, err);
        *state = JOB_CANCELLED;
    } else {
        rc = jobs_pg_exec(s, NULL, NULL, err, "cancel",
                          "UPDATE jobs SET cancel_requested = 1 WHERE id = $1", "s", id);
        if (!rc) rc = jobs_pg_event_add(s, id, "cancel_requested", "{}", err);
    }
    if (rc) goto fail;
    return jobs_pg_commit(s, err);
fail:
    jobs_pg_rollback(s);
    return rc;
}

int jobs_pg_events(jobs_store *s, const char *id, int64_t after, int limit, jobs_event *ev, int *n,
                   cnet_error *err) {
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "events",
                          "SELECT id, type, data_json, created_at FROM events WHERE job_id = $1 "
                          "AND id > $2 ORDER BY id LIMIT $3",
                          "sid", id, after, limit);
    if (rc) return rc;
    for (int i = 0; !rc && i < PQntuples(r) && i < limit; i++) {
        jobs_event *e = &ev[*n];
        e->id = jobs_pg_int(r, i, 0);
        snprintf(e->type, sizeof e->type, "%s", PQgetvalue(r, i, 1));
        e->created_at = jobs_pg_int(r, i, 3);
        if (!(e->data_json = strdup(PQgetvalue(r, i, 2))))
            rc = cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
        else
            ++*n;
    }
    PQclear(r);
    return rc;
}

int jobs_pg_counts(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err) {
    PGresult *r;
    int rc = jobs_pg_exec(s, &r, NULL, err, "counts",
                          "SELECT state, count(*) FROM jobs GROUP BY state", "");
    if (rc) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int k = job_state_parse(PQgetvalue(r, i, 0));
        if (k >= 0) counts[k] = jobs_pg_int(r, i, 1);
    }
    PQclear(r);
    return 0;
}
