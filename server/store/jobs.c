/* The job store's schema, SQLite helpers and the client-side calls: enqueue
 * (with Idempotency-Key), get, list, cancel, events, counts.
 *
 * Not here: the worker side (claim, lease, complete, rescue) is in
 * jobs_lease.c. The schema is versioned by PRAGMA user_version; a database
 * from a newer cnet is refused rather than guessed at. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/store/jobs_internal.h"

void jobs_events_free(jobs_event *ev, int n) {
    for (int i = 0; i < n; i++) free(ev[i].data_json);
    free(ev);
}

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

static int64_t clock_real_ms(void *user) {
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t jobs_now(jobs_store *s) { return s->now_ms(s->clock_user); }

void jobs_set_clock(jobs_store *s, int64_t (*now_ms)(void *), void *user) {
    pthread_mutex_lock(&s->mu);
    s->now_ms = now_ms ? now_ms : clock_real_ms;
    s->clock_user = user;
    pthread_mutex_unlock(&s->mu);
}

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
    s->version++;
    pthread_cond_broadcast(&s->changed);
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
    json_t *o = json_pack("{s:s, s:i}", "state", job_state_names[state], "attempt", attempt);
    if (o && reason && json_object_set_new(o, "reason", json_string(reason))) {
        json_decref(o);
        o = NULL;
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "job store: event: out of memory");
    int rc = jobs_event_add(s, id, "state", text, err);
    free(text);
    return rc;
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

int jobs_random_hex(char *out, int nbytes, cnet_error *err) {
    unsigned char raw[32];
    if (nbytes > (int)sizeof raw || RAND_bytes(raw, nbytes) != 1)
        return cnet_fail(err, CNET_EIO, "job store: no random bytes");
    for (int i = 0; i < nbytes; i++) sprintf(out + 2 * i, "%02x", raw[i]);
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
    if (version > JOBS_SCHEMA_VERSION)
        return cnet_fail(err, CNET_EFORMAT,
                         "job store: schema version %d is newer than this cnet's %d", version,
                         JOBS_SCHEMA_VERSION);
    if ((rc = jobs_begin(s, err))) return rc;
    for (size_t i = 0; i < sizeof schema_v1 / sizeof schema_v1[0] && !rc; i++)
        rc = jobs_exec(s, NULL, err, schema_v1[i], "");
    if (!rc) rc = jobs_exec(s, NULL, err, "PRAGMA user_version = 1", "");
    if (rc) {
        jobs_rollback(s);
        return rc;
    }
    return jobs_commit(s, err);
}

int jobs_open(jobs_store **out, const char *db_path, const char *jobs_dir, cnet_error *err) {
    *out = NULL;
    jobs_store *s = calloc(1, sizeof *s);
    if (!s || !(s->jobs_dir = strdup(jobs_dir)) || !(s->db_path = strdup(db_path))) {
        if (s) free(s->jobs_dir);
        free(s);
        return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->now_ms = clock_real_ms;
    if (mkdir(jobs_dir, 0700) != 0 && errno != EEXIST) {
        cnet_fail(err, CNET_EIO, "job store: mkdir %s: %s", jobs_dir, strerror(errno));
        jobs_close(s);
        return err ? err->code : CNET_EIO;
    }
    /* 0600: the store holds every spec; SQLite gives its -wal and -shm
     * files the database's mode */
    int fd = open(db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        cnet_fail(err, CNET_EIO, "job store: %s: %s", db_path, strerror(errno));
        if (fd >= 0) close(fd);
        jobs_close(s);
        return err ? err->code : CNET_EIO;
    }
    close(fd);
    int rc = sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        int code =
            cnet_fail(err, rc == SQLITE_NOMEM ? CNET_ENOMEM : CNET_EIO, "job store: open %s: %s",
                      db_path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        jobs_close(s);
        return code;
    }
    sqlite3_busy_timeout(s->db, JOBS_BUSY_TIMEOUT_MS);
    static const char *const pragmas[] = {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL",
                                          "PRAGMA foreign_keys = ON"};
    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        rc = sqlite3_exec(s->db, pragmas[i], NULL, NULL, NULL);
    int code = rc != SQLITE_OK ? jobs_db_fail(s, rc, err, "pragmas") : jobs_check_damaged(s, err);
    if (!code) code = migrate(s, err);
    if (code) {
        cnet_error_prefix(err, "%s", db_path);
        jobs_close(s);
        return code;
    }
    *out = s;
    return 0;
}

void jobs_close(jobs_store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->changed);
    free(s->jobs_dir);
    free(s->db_path);
    free(s);
}

int jobs_dir_path(jobs_store *s, const char *id, char *buf, size_t size, cnet_error *err) {
    if ((size_t)snprintf(buf, size, "%s/%s", s->jobs_dir, id) >= size)
        return cnet_fail(err, CNET_ELIMIT, "job store: path of job %s too long", id);
    return 0;
}

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
            rc = cnet_fail(err, JOBS_ECONFLICT,
                           "Idempotency-Key was already used for a different request (job %s)",
                           found);
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

static int enqueue_locked(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
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
        rc = cnet_fail(err, CNET_ELIMIT, "the queue is full (%lld jobs queued, cap %d)",
                       (long long)queued, req->queue_cap);
        goto fail;
    }
    char hex[33];
    if ((rc = jobs_random_hex(hex, 16, err))) goto fail;
    snprintf(id, JOBS_ID_MAX, "j_%s", hex);
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

int jobs_enqueue(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                 cnet_error *err) {
    *created = 0;
    if (req->idem_key && strlen(req->idem_key) > JOBS_IDEM_KEY_MAX)
        return cnet_fail(err, CNET_ELIMIT, "Idempotency-Key longer than %d bytes",
                         JOBS_IDEM_KEY_MAX);
    pthread_mutex_lock(&s->mu);
    int rc = enqueue_locked(s, req, id, created, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_get(jobs_store *s, const char *id, job *out, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err, "SELECT " JOBS_COLUMNS " FROM jobs WHERE id = ?", "s", id);
    if (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            rc = jobs_row(st, out, err);
        else if (step == SQLITE_DONE)
            rc = cnet_fail(err, CNET_ENOTFOUND, "no job %s", id);
        else
            rc = jobs_db_fail(s, step, err, "get");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_list(jobs_store *s, const jobs_filter *f, job **out, int *n, int64_t *next,
              cnet_error *err) {
    *out = NULL, *n = 0, *next = 0;
    int limit = f->limit < 1 ? 1 : f->limit > JOBS_LIST_MAX ? JOBS_LIST_MAX : f->limit;
    job *jobs = calloc((size_t)limit + 1, sizeof *jobs);
    if (!jobs) return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT " JOBS_COLUMNS " FROM jobs WHERE (?1 IS NULL OR state = ?1) AND "
                       "(?2 IS NULL OR kind = ?2) AND (?3 = 0 OR seq < ?3) ORDER BY seq DESC "
                       "LIMIT ?4",
                       "ssid", f->state >= 0 ? job_state_names[f->state] : NULL, f->kind, f->before,
                       limit + 1);
    int got = 0;
    while (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW)
            rc = jobs_db_fail(s, step, err, "list");
        else if (!(rc = jobs_row(st, &jobs[got], err)))
            got++;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    if (got > limit) {
        *next = jobs[limit - 1].seq;
        job_clear(&jobs[limit]);
        got = limit;
    }
    if (rc) {
        for (int i = 0; i < got; i++) job_clear(&jobs[i]);
        free(jobs);
        *next = 0;
        return rc;
    }
    *out = jobs, *n = got;
    return 0;
}

static int cancel_locked(jobs_store *s, const char *id, job_state *state, cnet_error *err) {
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
        rc = cnet_fail(err, CNET_ENOTFOUND, "no job %s", id);
    else if (step != SQLITE_ROW || cur < 0)
        rc = jobs_db_fail(s, step == SQLITE_ROW ? SQLITE_NOMEM : step, err, "cancel");
    if (rc) goto fail;
    *state = (job_state)cur;
    if (job_state_terminal(*state)) {
        rc = cnet_fail(err, JOBS_ECONFLICT, "job %s is already %s", id, job_state_names[cur]);
        goto fail;
    }
    if (*state == JOB_QUEUED) {
        rc = jobs_exec(s, NULL, err,
                       "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ? "
                       "WHERE id = ?",
                       "is", jobs_now(s), id);
        if (!rc)
            rc = jobs_event_state(s, id, JOB_CANCELLED, attempt, "cancelled while queued", err);
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

int jobs_cancel(jobs_store *s, const char *id, job_state *state, cnet_error *err) {
    pthread_mutex_lock(&s->mu);
    int rc = cancel_locked(s, id, state, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int jobs_events(jobs_store *s, const char *id, int64_t after, int limit, jobs_event **out, int *n,
                cnet_error *err) {
    *out = NULL, *n = 0;
    if (limit < 1) limit = 1;
    jobs_event *ev = calloc((size_t)limit, sizeof *ev);
    if (!ev) return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st;
    int rc = jobs_stmt(s, &st, err,
                       "SELECT id, type, data_json, created_at FROM events WHERE job_id = ? AND "
                       "id > ? ORDER BY id LIMIT ?",
                       "sid", id, after, limit);
    int got = 0;
    while (!rc) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW) {
            rc = jobs_db_fail(s, step, err, "events");
            break;
        }
        jobs_event *e = &ev[got];
        e->id = sqlite3_column_int64(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        snprintf(e->type, sizeof e->type, "%s", type ? type : "");
        e->created_at = sqlite3_column_int64(st, 3);
        if (dup_col(st, 2, &e->data_json) || !e->data_json)
            rc = cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
        else
            got++;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    if (rc) {
        jobs_events_free(ev, got);
        return rc;
    }
    *out = ev, *n = got;
    return 0;
}

int jobs_counts(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err) {
    memset(counts, 0, sizeof(int64_t) * JOB_N_STATES);
    pthread_mutex_lock(&s->mu);
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
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t jobs_wait(jobs_store *s, uint64_t seen, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    pthread_mutex_lock(&s->mu);
    while (s->version == seen)
        if (pthread_cond_timedwait(&s->changed, &s->mu, &until) != 0) break;
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    return v;
}
