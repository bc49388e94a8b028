/* The PostgreSQL job store, shared by many `cnet serve` nodes: connection,
 * libpq helpers, the versioned schema migrated at open, the listener that
 * turns other nodes' commits into jobs_wait wake-ups, the readiness ping and
 * the backend table.
 *
 * Every transaction that changes the store ends with NOTIFY cnet_jobs; each
 * node LISTENs on a second connection and bumps the store's change counter,
 * so an idle pool claims a job accepted by another node, and an SSE stream
 * on node B follows a job running on node A, without polling the table.
 * When the listening connection is lost the counter is bumped every
 * JOBS_PG_LISTEN_POLL_MS instead (bounded polling) until it is back.
 *
 * Migrations: table cnet_schema holds the version; a node migrates under an
 * advisory lock (nodes starting together do not race), and a database newer
 * than this binary is refused. Not here: the calls (jobs_pg_calls.c,
 * jobs_pg_lease.c). Follows River's Postgres job table and the libpq
 * documentation's LISTEN/NOTIFY example (libpq "Asynchronous Notification"). */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/store/jobs_pg.h"

static const char *const schema_v1[] = {
    "CREATE TABLE jobs ("
    " id TEXT PRIMARY KEY,"
    " seq BIGSERIAL NOT NULL UNIQUE,"
    " kind TEXT NOT NULL CHECK (kind IN ('train', 'generate')),"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', "
    "'cancelled')),"
    " spec_json TEXT NOT NULL,"
    " idem_key TEXT UNIQUE, idem_hash TEXT,"
    " attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),"
    " max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " lease_token TEXT, lease_expires_at BIGINT, heartbeat_at BIGINT,"
    " progress_json TEXT, checkpoint_step BIGINT,"
    " error_code TEXT, error_detail TEXT,"
    " created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT,"
    " CHECK ((state = 'running') = (lease_token IS NOT NULL)))",
    "CREATE INDEX jobs_by_state ON jobs (state, seq)",
    "CREATE TABLE events ("
    " id BIGSERIAL PRIMARY KEY,"
    " job_id TEXT NOT NULL REFERENCES jobs (id),"
    " type TEXT NOT NULL, data_json TEXT NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE INDEX events_by_job ON events (job_id, id)",
    "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)",
};

/* v2: the datasets registry (jobs_datasets.h). */
static const char *const schema_v2[] = {
    "CREATE TABLE datasets ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('uploading', 'ready')),"
    " bytes BIGINT NOT NULL DEFAULT 0, files BIGINT NOT NULL DEFAULT 0,"
    " report_json TEXT,"
    " created_at BIGINT NOT NULL,"
    " CHECK ((state = 'ready') = (report_json IS NOT NULL)))",
    "CREATE INDEX datasets_by_state ON datasets (state, created_at)",
};

static int conn_fail(jobs_store *s, PGconn *c, cnet_error *err, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
    msg[strcspn(msg, "\n")] = 0;
    (void)s;
    return cnet_fail(err, c ? CNET_EIO : CNET_ENOMEM, "job store (postgresql): %s: %s", what, msg);
}

/* A connection to url with the store's session settings, which a PQreset
 * keeps (they override an `options` given in the URL). */
static PGconn *connect_to(const char *url) {
    const char *const keys[] = {"dbname", "options", NULL};
    const char *const values[] = {url,
                                  "-c client_min_messages=warning "
                                  "-c idle_in_transaction_session_timeout=" JOBS_PG_IDLE_TX_TIMEOUT,
                                  NULL};
    return PQconnectdbParams(keys, values, 1);
}

/* The store's connection, usable: a lost one is reset, but not inside a
 * transaction (the statements after it would run outside it). */
static int conn_ready(jobs_store *s, cnet_error *err) {
    PGconn *c = s->pg->conn;
    if (PQstatus(c) == CONNECTION_OK) return 0;
    if (s->pg->in_tx)
        return conn_fail(s, c, err, "connection lost inside a transaction (none of it committed)");
    PQreset(c);
    return PQstatus(c) == CONNECTION_OK ? 0 : conn_fail(s, c, err, "connection lost");
}

int jobs_pg_exec(jobs_store *s, PGresult **res, int *changes, cnet_error *err, const char *what,
                 const char *sql, const char *types, ...) {
    if (res) *res = NULL;
    const int n = types ? (int)strlen(types) : 0;
    if (n > JOBS_PG_PARAMS_MAX)
        return cnet_fail(err, CNET_EINVAL, "job store (postgresql): %s: %d parameters, at most %d",
                         what, n, JOBS_PG_PARAMS_MAX);
    char nums[JOBS_PG_PARAMS_MAX][24];
    const char *values[JOBS_PG_PARAMS_MAX];
    va_list ap;
    va_start(ap, types);
    for (int i = 0; i < n; i++) {
        if (types[i] == 's')
            values[i] = va_arg(ap, const char *);
        else {
            long long v = types[i] == 'i' ? (long long)va_arg(ap, int64_t) : va_arg(ap, int);
            snprintf(nums[i], sizeof nums[i], "%lld", v);
            values[i] = nums[i];
        }
    }
    va_end(ap);
    int rc = conn_ready(s, err);
    if (rc) return rc;
    PGresult *r = PQexecParams(s->pg->conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(s->pg->conn));
        msg[strcspn(msg, "\n")] = 0;
        PQclear(r);
        return cnet_fail(err, r ? CNET_EIO : CNET_ENOMEM, "job store (postgresql): %s: %s", what,
                         msg);
    }
    if (changes) *changes = atoi(PQcmdTuples(r));
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

void jobs_pg_rollback(jobs_store *s) {
    s->pg->in_tx = 0;
    if (PQstatus(s->pg->conn) == CONNECTION_OK && PQtransactionStatus(s->pg->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->pg->conn, "ROLLBACK"));
}

int jobs_pg_begin(jobs_store *s, cnet_error *err) {
    jobs_pg_rollback(s); /* a transaction a failed call left open */
    int rc = jobs_pg_exec(s, NULL, NULL, err, "begin", "BEGIN", "");
    s->pg->in_tx = rc == 0;
    return rc;
}

int jobs_pg_commit(jobs_store *s, cnet_error *err) {
    int rc = jobs_pg_exec(s, NULL, NULL, err, "notify", "NOTIFY " JOBS_PG_CHANNEL, "");
    if (!rc) rc = jobs_pg_exec(s, NULL, NULL, err, "commit", "COMMIT", "");
    if (rc) {
        jobs_pg_rollback(s);
        return rc;
    }
    s->pg->in_tx = 0;
    jobs_changed(s);
    return 0;
}

int jobs_pg_event_add(jobs_store *s, const char *id, const char *type, const char *data,
                      cnet_error *err) {
    return jobs_pg_exec(s, NULL, NULL, err, "event",
                        "INSERT INTO events (job_id, type, data_json, created_at) VALUES ($1, $2, "
                        "$3, $4)",
                        "sssi", id, type, data, jobs_now(s));
}

int jobs_pg_event_state(jobs_store *s, const char *id, job_state state, int attempt,
                        const char *reason, cnet_error *err) {
    return jobs_rules_event_state(s, jobs_pg_event_add, id, state, attempt, reason, err);
}

int64_t jobs_pg_int(PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int dup_col(PGresult *r, int row, int col, char **out) {
    *out = NULL;
    if (PQgetisnull(r, row, col)) return 0;
    *out = strdup(PQgetvalue(r, row, col));
    return *out ? 0 : -1;
}

int jobs_pg_row(PGresult *r, int row, job *j, cnet_error *err) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", PQgetvalue(r, row, 0));
    snprintf(j->kind, sizeof j->kind, "%s", PQgetvalue(r, row, 1));
    int st = job_state_parse(PQgetvalue(r, row, 2));
    j->state = st < 0 ? JOB_FAILED : (job_state)st;
    j->seq = jobs_pg_int(r, row, 3);
    j->attempt = (int)jobs_pg_int(r, row, 5);
    j->max_attempts = (int)jobs_pg_int(r, row, 6);
    j->cancel_requested = (int)jobs_pg_int(r, row, 7);
    j->checkpoint_step = PQgetisnull(r, row, 9) ? -1 : jobs_pg_int(r, row, 9);
    j->created_at = jobs_pg_int(r, row, 12);
    j->started_at = jobs_pg_int(r, row, 13);
    j->finished_at = jobs_pg_int(r, row, 14);
    j->queue_position = jobs_pg_int(r, row, 15);
    if (dup_col(r, row, 4, &j->spec_json) || dup_col(r, row, 8, &j->progress_json) ||
        dup_col(r, row, 10, &j->error_code) || dup_col(r, row, 11, &j->error_detail)) {
        job_clear(j);
        return cnet_fail(err, CNET_ENOMEM, "job store: row: out of memory");
    }
    return 0;
}

static int migrate(jobs_store *s, cnet_error *err) {
    int rc = jobs_pg_begin(s, err);
    PGresult *r = NULL;
    if (!rc)
        rc = jobs_pg_exec(s, NULL, NULL, err, "migration lock", "SELECT pg_advisory_xact_lock($1)",
                          "i", (int64_t)JOBS_PG_MIGRATE_LOCK);
    if (!rc)
        rc = jobs_pg_exec(s, NULL, NULL, err, "schema table",
                          "CREATE TABLE IF NOT EXISTS cnet_schema (version INTEGER NOT NULL)", "");
    if (!rc)
        rc = jobs_pg_exec(s, &r, NULL, err, "schema version",
                          "SELECT coalesce(max(version), 0) FROM cnet_schema", "");
    const int version = rc ? 0 : (int)jobs_pg_int(r, 0, 0);
    PQclear(r);
    if (!rc && version > JOBS_SCHEMA_VERSION)
        rc = jobs_rules_newer_schema(err, "(postgresql)", version);
    if (!rc && version == 0) rc = jobs_check_emptied(s, err);
    for (size_t i = 0; !rc && version < 1 && i < sizeof schema_v1 / sizeof schema_v1[0]; i++)
        rc = jobs_pg_exec(s, NULL, NULL, err, "schema v1", schema_v1[i], "");
    for (size_t i = 0; !rc && version < 2 && i < sizeof schema_v2 / sizeof schema_v2[0]; i++)
        rc = jobs_pg_exec(s, NULL, NULL, err, "schema v2", schema_v2[i], "");
    if (!rc && version < JOBS_SCHEMA_VERSION)
        rc =
            jobs_pg_exec(s, NULL, NULL, err, "schema version",
                         "INSERT INTO cnet_schema (version) VALUES ($1)", "d", JOBS_SCHEMA_VERSION);
    if (rc) {
        jobs_pg_rollback(s);
        return rc;
    }
    return jobs_pg_commit(s, err);
}

static int listen_on(PGconn *c) {
    PGresult *r = PQexec(c, "LISTEN " JOBS_PG_CHANNEL);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : -1;
}

static int listener_stopping(jobs_store *s) {
    pthread_mutex_lock(&s->mu);
    int stop = s->pg->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Waits for notifications on the listening connection; each batch (or,
 * while that connection is lost, each poll) bumps the change counter. */
static void *listener_main(void *arg) {
    jobs_store *s = arg;
    PGconn *c = s->pg->listen;
    int subscribed = 1; /* jobs_pg_open ran LISTEN */
    int64_t lost_for = 0;
    while (!listener_stopping(s)) {
        int woke = 0;
        if (PQstatus(c) != CONNECTION_OK || !subscribed) {
            woke = 1; /* bounded polling while the listener is down */
            lost_for += JOBS_PG_LISTEN_POLL_MS;
            if (lost_for >= JOBS_PG_RECONNECT_MS) {
                lost_for = 0;
                PQreset(c);
                subscribed = PQstatus(c) == CONNECTION_OK && listen_on(c) == 0;
            }
            struct timespec ts = {0, JOBS_PG_LISTEN_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        } else {
            struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
            if (poll(&p, 1, JOBS_PG_LISTEN_POLL_MS) > 0) {
                if (!PQconsumeInput(c)) subscribed = 0; /* the server went away */
                for (PGnotify *n; (n = PQnotifies(c)); PQfreemem(n)) woke = 1;
            }
        }
        if (woke) {
            pthread_mutex_lock(&s->mu);
            jobs_changed(s);
            pthread_mutex_unlock(&s->mu);
        }
    }
    return NULL;
}

int jobs_pg_open(jobs_store *s, cnet_error *err) {
    if (!(s->pg = calloc(1, sizeof *s->pg)))
        return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    s->pg->conn = connect_to(s->db_path);
    if (PQstatus(s->pg->conn) != CONNECTION_OK) return conn_fail(s, s->pg->conn, err, "connect");
    int rc = migrate(s, err);
    if (rc) return rc;
    s->pg->listen = connect_to(s->db_path);
    if (PQstatus(s->pg->listen) != CONNECTION_OK || listen_on(s->pg->listen) != 0)
        return conn_fail(s, s->pg->listen, err, "listen");
    if (pthread_create(&s->pg->listener, NULL, listener_main, s) != 0)
        return cnet_fail(err, CNET_ENOMEM, "job store (postgresql): cannot start the listener");
    s->pg->listening = 1;
    return 0;
}

static void pg_close(jobs_store *s) {
    if (!s->pg) return;
    if (s->pg->listening) {
        pthread_mutex_lock(&s->mu);
        s->pg->stop = 1;
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->pg->listener, NULL);
    }
    PQfinish(s->pg->listen);
    PQfinish(s->pg->conn);
    free(s->pg);
    s->pg = NULL;
}

/* A real write through the store's connection. */
static int pg_ping(jobs_store *s, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = jobs_pg_begin(s, err);
    if (!rc)
        rc = jobs_pg_exec(s, NULL, NULL, err, "ping",
                          "INSERT INTO meta (k, v) VALUES ('ping', $1) ON CONFLICT (k) DO UPDATE "
                          "SET v = excluded.v",
                          "i", jobs_now(s));
    if (!rc) rc = jobs_pg_exec(s, NULL, NULL, err, "commit", "COMMIT", "");
    jobs_pg_rollback(s); /* ends the transaction when COMMIT failed; a no-op after it */
    pthread_mutex_unlock(&s->mu);
    return rc;
}

const jobs_backend jobs_pg_backend = {
    .name = "postgresql",
    .shared = 1,
    .close = pg_close,
    .enqueue = jobs_pg_enqueue,
    .get = jobs_pg_get,
    .list = jobs_pg_list,
    .cancel = jobs_pg_cancel,
    .events = jobs_pg_events,
    .counts = jobs_pg_counts,
    .claim = jobs_pg_claim,
    .fenced = jobs_pg_fenced,
    .leave = jobs_pg_leave,
    .rescue = jobs_pg_rescue,
    .ping = pg_ping,
    .ds_add = jobs_pg_ds_add,
    .ds_ready = jobs_pg_ds_ready,
    .ds_get = jobs_pg_ds_get,
    .ds_list = jobs_pg_ds_list,
    .ds_remove = jobs_pg_ds_remove,
    .ds_adopt = jobs_pg_ds_adopt,
};
