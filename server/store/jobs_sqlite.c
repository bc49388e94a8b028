/* The SQLite job store (the embedded default, one node): its schema, SQLite
 * helpers, open and the client-side calls: enqueue (with Idempotency-Key),
 * get, list, cancel, events, counts; and its backend table.
 *
 * Not here: the worker side (claim, lease, complete, rescue) is in
 * jobs_sqlite_lease.c, the rules both backends share in jobs_rules.c. The
 * schema is versioned by PRAGMA user_version; a database from a newer cnet
 * is refused rather than guessed at. Called with s->mu held (jobs.c). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/store/jobs_sqlite.h"

static const char *const schema_v1[] = {
    "CREATE TABLE jobs ("
    " id TEXT PRIMARY KEY,"
    " seq INTEGER NOT NULL UNIQUE,"
    " kind TEXT NOT NULL CHECK (kind IN ('train', 'generate')),"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', "
    "'cancelled')),"
    " spec_json TEXT NOT NULL,"
    " idem_key TEXT UNIQUE, idem_hash TEXT,"
    " attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),"
    " max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " lease_token TEXT, lease_expires_at INTEGER, heartbeat_at INTEGER,"
    " progress_json TEXT, checkpoint_step INTEGER,"
    " error_code TEXT, error_detail TEXT,"
    " created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    " CHECK ((state = 'running') = (lease_token IS NOT NULL)))",
    "CREATE INDEX jobs_by_state ON jobs (state, seq)",
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " job_id TEXT NOT NULL REFERENCES jobs (id),"
    " type TEXT NOT NULL, data_json TEXT NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE INDEX events_by_job ON events (job_id, id)",
    "CREATE TABLE meta (k TEXT PRIMARY KEY, v)",
};

/* v2: the datasets registry (jobs_datasets.h). */
static const char *const schema_v2[] = {
    "CREATE TABLE datasets ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('uploading', 'ready')),"
    " bytes INTEGER NOT NULL DEFAULT 0, files INTEGER NOT NULL DEFAULT 0,"
    " report_json TEXT,"
    " created_at INTEGER NOT NULL,"
    " CHECK ((state = 'ready') = (report_json IS NOT NULL)))",
    "CREATE INDEX datasets_by_state ON datasets (state, created_at)",
};

int jobs_db_fail(jobs_store *s, int rc, cnet_error *err, const char *what) {
    int code = CNET_EIO;
    if ((rc & 0xff) == SQLITE_NOMEM) code = CNET_ENOMEM;
    return cnet_fail(err, code, "job store: %s: %s", what,
                     rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(s->db));
}

static int bind_args(sqlite3_stmt *st, const char *types, va_list ap) {
    int rc = SQLITE_OK;
    for (int i = 0; types && types[i] && rc == SQLITE_OK; i++) {
        if (types[i] == 's') {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_STATIC)
                   : sqlite3_bind_null(st, i + 1);
        } else if (types[i] == 'i') {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        } else {
            rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
        }
    }
    return rc;
}

static int stmt_v(jobs_store *s, sqlite3_stmt **st, cnet_error *err, const char *sql,
                  const char *types, va_list ap) {
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc == SQLITE_OK) rc = bind_args(*st, types, ap);
    if (rc != SQLITE_OK) {
        int code = jobs_db_fail(s, rc, err, "prepare");
        sqlite3_finalize(*st);
        *st = NULL;
        return code;
    }
    return 0;
}

int jobs_stmt(jobs_store *s, sqlite3_stmt **st, cnet_error *err, const char *sql, const char *types,
              ...) {
    va_list ap;
    va_start(ap, types);
    int rc = stmt_v(s, st, err, sql, types, ap);
    va_end(ap);
    return rc;
}

int jobs_exec(jobs_store *s, int *changes, cnet_error *err, const char *sql, const char *types,
              ...) {
    sqlite3_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = stmt_v(s, &st, err, sql, types, ap);
    va_end(ap);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step != SQLITE_DONE && step != SQLITE_ROW)
        rc = jobs_db_fail(s, step, err, "write");
    else if (changes)
        *changes = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

void jobs_rollback(jobs_store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int jobs_begin(jobs_store *s, cnet_error *err) {
    jobs_rollback(s); /* a transaction left open by a failed ROLLBACK under OOM */
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : jobs_db_fail(s, rc, err, "begin");
}

int jobs_commit(jobs_store *s, cnet_error *err) {
    int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = jobs_db_fail(s, rc, err, "commit");
        jobs_rollback(s);
        return code;
    }
    jobs_changed(s);
    return 0;
}

int jobs_event_add(jobs_store *s, const char *id, const char *type, const char *data,
                   cnet_error *err) {
    return jobs_exec(s, NULL, err,
                     "INSERT INTO events (job_id, type, data_json, created_at) VALUES (?, ?, ?, ?)",
                     "sssi", id, type, data, jobs_now(s));
}

int jobs_event_state(jobs_store *s, const char *id, job_state state, int attempt,
                     const char *reason, cnet_error *err) {
    return jobs_rules_event_state(s, jobs_event_add, id, state, attempt, reason, err);
}

static int dup_col(sqlite3_stmt *st, int col, char **out) {
    const unsigned char *v = sqlite3_column_text(st, col);
    if (!v) {
        /* NULL column, or a failed conversion under OOM. */
        *out = NULL;
        return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
    }
    *out = strdup((const char *)v);
    return *out ? 0 : -1;
}

int jobs_row(sqlite3_stmt *st, job *j, cnet_error *err) {
    memset(j, 0, sizeof *j);
    const unsigned char *id = sqlite3_column_text(st, 0), *kind = sqlite3_column_text(st, 1),
                        *state = sqlite3_column_text(st, 2);
    if (!id || !kind || !state) return cnet_fail(err, CNET_ENOMEM, "job store: row: out of memory");
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->kind, sizeof j->kind, "%s", kind);
    int st_i = job_state_parse((const char *)state);
    j->state = st_i < 0 ? JOB_FAILED : (job_state)st_i;
    j->seq = sqlite3_column_int64(st, 3);
    j->attempt = sqlite3_column_int(st, 5);
    j->max_attempts = sqlite3_column_int(st, 6);
    j->cancel_requested = sqlite3_column_int(st, 7);
    j->checkpoint_step =
        sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 9);
    j->created_at = sqlite3_column_int64(st, 12);
    j->started_at = sqlite3_column_int64(st, 13);
    j->finished_at = sqlite3_column_int64(st, 14);
    j->queue_position = sqlite3_column_int64(st, 15);
    if (dup_col(st, 4, &j->spec_json) || dup_col(st, 8, &j->progress_json) ||
        dup_col(st, 10, &j->error_code) || dup_col(st, 11, &j->error_detail)) {
        job_clear(j);
        return cnet_fail(err, CNET_ENOMEM, "job store: row: out of memory");
    }
    return 0;
}

static int migrate(jobs_store *s, cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "PRAGMA user_version", "");
    if (rc) return rc;
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version < 0) return jobs_db_fail(s, SQLITE_ERROR, err, "reading user_version");
    if (version == JOBS_SCHEMA_VERSION) return 0;
    if (version == 0 && (rc = jobs_check_emptied(s, err))) return rc;
    if (version > JOBS_SCHEMA_VERSION) return jobs_rules_newer_schema(err, s->db_path, version);
    if ((rc = jobs_begin(s, err))) return rc;
    for (size_t i = 0; version < 1 && i < sizeof schema_v1 / sizeof schema_v1[0] && !rc; i++)
        rc = jobs_exec(s, NULL, err, schema_v1[i], "");
    for (size_t i = 0; version < 2 && i < sizeof schema_v2 / sizeof schema_v2[0] && !rc; i++)
        rc = jobs_exec(s, NULL, err, schema_v2[i], "");
    char set[64];
    snprintf(set, sizeof set, "PRAGMA user_version = %d", JOBS_SCHEMA_VERSION);
    if (!rc) rc = jobs_exec(s, NULL, err, set, "");
    if (rc) {
        jobs_rollback(s);
        return rc;
    }
    return jobs_commit(s, err);
}

int jobs_sqlite_open(jobs_store *s, cnet_error *err) {
    const char *db_path = s->db_path;
    /* 0600: the store holds every spec; SQLite gives its -wal and -shm
     * files the database's mode */
    int fd = open(db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        cnet_fail(err, CNET_EIO, "job store: %s: %s", db_path, strerror(errno));
        if (fd >= 0) close(fd);
        return err ? err->code : CNET_EIO;
    }
    close(fd);
    int rc = sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK)
        return cnet_fail(err, rc == SQLITE_NOMEM ? CNET_ENOMEM : CNET_EIO, "job store: open %s: %s",
                         db_path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_busy_timeout(s->db, JOBS_BUSY_TIMEOUT_MS);
    static const char *const pragmas[] = {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL",
                                          "PRAGMA foreign_keys = ON"};
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_exec(s->db, pragmas[i], NULL, NULL, NULL);
    int code = rc != SQLITE_OK ? jobs_db_fail(s, rc, err, "pragmas") : jobs_check_damaged(s, err);
    if (!code) code = migrate(s, err);
    if (code) cnet_error_prefix(err, "%s", db_path);
    return code;
}

static void sqlite_close(jobs_store *s) { sqlite3_close(s->db); }

/* Looks up the job an idempotency key created: 1 found (id filled), 0 none. */
static int find_idem(jobs_store *s, const char *key, const char *hash, char id[JOBS_ID_MAX],
                     cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT id, idem_hash FROM jobs WHERE idem_key = ?", "s", key);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
        rc = 0;
    else if (step != SQLITE_ROW)
        rc = jobs_db_fail(s, step, err, "idempotency lookup");
    else {
        const char *found = (const char *)sqlite3_column_text(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        if (!found)
            rc = cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
        else if (!h || !hash || strcmp(h, hash) != 0)
            rc = jobs_rules_idem_conflict(err, found);
        else {
            snprintf(id, JOBS_ID_MAX, "%s", found);
            rc = 1;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int count_queued(jobs_store *s, int64_t *n, cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT count(*) FROM jobs WHERE state = 'queued'", "");
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        rc = jobs_db_fail(s, step, err, "counting the queue");
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_enqueue(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                          cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    if (req->idem_key && (rc = find_idem(s, req->idem_key, req->idem_hash, id, err)) != 0) {
        jobs_rollback(s);
        return rc == 1 ? 0 : rc; /* the earlier job, or a conflict */
    }
    if (req->admit && (rc = req->admit(req->admit_ctx, err))) goto fail;
    int64_t queued = 0;
    if (req->queue_cap > 0 && (rc = count_queued(s, &queued, err))) goto fail;
    if (req->queue_cap > 0 && queued >= req->queue_cap) {
        rc = jobs_rules_queue_full(err, queued, req->queue_cap);
        goto fail;
    }
    if ((rc = jobs_rules_new_id(id, err))) goto fail;
    rc = jobs_exec(s, NULL, err,
                   "INSERT INTO jobs (id, seq, kind, state, spec_json, idem_key, idem_hash, "
                   "max_attempts, created_at) VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM "
                   "jobs), ?, 'queued', ?, ?, ?, ?, ?)",
                   "sssssdi", id, req->kind, req->spec_json, req->idem_key, req->idem_hash,
                   req->max_attempts > 0 ? req->max_attempts : JOBS_DEFAULT_MAX_ATTEMPTS,
                   jobs_now(s));
    if (!rc) rc = jobs_event_state(s, id, JOB_QUEUED, 0, NULL, err);
    char dir[4096];
    if (!rc) rc = jobs_dir_path(s, id, dir, sizeof dir, err);
    if (!rc && mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = cnet_fail(err, CNET_EIO, "job store: mkdir %s: %s", dir, strerror(errno));
    if (rc) goto fail;
    if ((rc = jobs_commit(s, err))) {
        rmdir(dir);
        return rc;
    }
    *created = 1;
    return 0;
fail:
    jobs_rollback(s);
    return rc;
}

static int sqlite_get(jobs_store *s, const char *id, job *out, cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT " JOBS_COLUMNS " FROM jobs WHERE id = ?", "s", id);
    if (rc) return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = jobs_row(st, out, err);
    else if (step == SQLITE_DONE)
        rc = jobs_rules_not_found(err, id);
    else
        rc = jobs_db_fail(s, step, err, "get");
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_list(jobs_store *s, const jobs_filter *f, int limit, job *jobs, int *got,
                       cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT " JOBS_COLUMNS " FROM jobs WHERE (?1 IS NULL OR state = ?1) AND "
                       "(?2 IS NULL OR kind = ?2) AND (?3 = 0 OR seq < ?3) ORDER BY seq DESC "
                       "LIMIT ?4",
                       "ssid", f->state >= 0 ? job_state_names[f->state] : NULL, f->kind, f->before,
                       limit);
    while (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW)
            rc = jobs_db_fail(s, step, err, "list");
        else if (!(rc = jobs_row(st, &jobs[*got], err)))
            ++*got;
    }
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_cancel(jobs_store *s, const char *id, job_state *state, cnet_error *err) {
    int rc = jobs_begin(s, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = jobs_stmt(s, &st, err, "SELECT state, attempt FROM jobs WHERE id = ?", "s", id)))
        goto fail;
    int step = sqlite3_step(st), cur = -1, attempt = 0;
    if (step == SQLITE_ROW) {
        cur = job_state_parse((const char *)sqlite3_column_text(st, 0));
        attempt = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    if (step == SQLITE_DONE)
        rc = jobs_rules_not_found(err, id);
    else if (step != SQLITE_ROW || cur < 0)
        rc = jobs_db_fail(s, step == SQLITE_ROW ? SQLITE_NOMEM : step, err, "cancel");
    if (rc) goto fail;
    *state = (job_state)cur;
    if (job_state_terminal(*state)) {
        rc = jobs_rules_terminal(err, id, *state);
        goto fail;
    }
    if (*state == JOB_QUEUED) {
        rc = jobs_exec(s, NULL, err,
                       "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ? "
                       "WHERE id = ?",
                       "is", jobs_now(s), id);
        if (!rc)
            rc = jobs_event_state(s, id, JOB_CANCELLED, attempt, JOBS_REASON_CANCEL_QUEUED, err);
        *state = JOB_CANCELLED;
    } else {
        rc = jobs_exec(s, NULL, err, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", "s", id);
        if (!rc) rc = jobs_event_add(s, id, "cancel_requested", "{}", err);
    }
    if (rc) goto fail;
    return jobs_commit(s, err);
fail:
    jobs_rollback(s);
    return rc;
}

static int sqlite_events(jobs_store *s, const char *id, int64_t after, int limit, jobs_event *ev,
                         int *got, cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT id, type, data_json, created_at FROM events WHERE job_id = ? AND "
                       "id > ? ORDER BY id LIMIT ?",
                       "sid", id, after, limit);
    while (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW) {
            rc = jobs_db_fail(s, step, err, "events");
            break;
        }
        jobs_event *e = &ev[*got];
        e->id = sqlite3_column_int64(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        snprintf(e->type, sizeof e->type, "%s", type ? type : "");
        e->created_at = sqlite3_column_int64(st, 3);
        if (dup_col(st, 2, &e->data_json) || !e->data_json)
            rc = cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
        else
            ++*got;
    }
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_counts(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err) {
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT state, count(*) FROM jobs GROUP BY state", "");
    while (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW) {
            rc = jobs_db_fail(s, step, err, "counts");
            break;
        }
        int i = job_state_parse((const char *)sqlite3_column_text(st, 0));
        if (i >= 0) counts[i] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

const jobs_backend jobs_sqlite_backend = {
    .name = "sqlite",
    .shared = 0,
    .close = sqlite_close,
    .enqueue = sqlite_enqueue,
    .get = sqlite_get,
    .list = sqlite_list,
    .cancel = sqlite_cancel,
    .events = sqlite_events,
    .counts = sqlite_counts,
    .claim = jobs_sqlite_claim,
    .fenced = jobs_sqlite_fenced,
    .leave = jobs_sqlite_leave,
    .rescue = jobs_sqlite_rescue,
    .ping = jobs_sqlite_ping,
    .ds_add = jobs_sqlite_ds_add,
    .ds_ready = jobs_sqlite_ds_ready,
    .ds_get = jobs_sqlite_ds_get,
    .ds_list = jobs_sqlite_ds_list,
    .ds_remove = jobs_sqlite_ds_remove,
    .ds_adopt = jobs_sqlite_ds_adopt,
};
