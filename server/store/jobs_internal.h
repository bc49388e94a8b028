/* What jobs.c and jobs_lease.c share: the store struct and small SQLite
 * helpers. Not part of the store's interface (server/store/jobs.h is). */
#ifndef CNET_JOBS_INTERNAL_H
#define CNET_JOBS_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "server/store/jobs.h"

struct jobs_store {
    sqlite3 *db;
    pthread_mutex_t mu; /* held for every call: one connection, one transaction at a time */
    pthread_cond_t changed;
    uint64_t version; /* bumped after every committed change */
    char *jobs_dir;
    char *db_path;
    int64_t (*now_ms)(void *);
    void *clock_user;
};

/* The columns jobs_row reads, in order; queue_position is computed. */
#define JOBS_COLUMNS                                                                               \
    "id, kind, state, seq, spec_json, attempt, max_attempts, cancel_requested, progress_json, "    \
    "checkpoint_step, error_code, error_detail, created_at, started_at, finished_at, "             \
    "CASE WHEN state = 'queued' THEN (SELECT count(*) FROM jobs q WHERE q.state = 'queued' "       \
    "AND q.seq <= jobs.seq) ELSE 0 END"

/* Maps a SQLite result code to a CNET status and message naming what. */
int jobs_db_fail(jobs_store *s, int rc, cnet_error *err, const char *what);

/* Prepares sql and binds its parameters by the letters of types: 's' a
 * string (NULL binds NULL), 'i' an int64_t, 'd' an int. */
int jobs_stmt(jobs_store *s, sqlite3_stmt **st, cnet_error *err, const char *sql, const char *types,
              ...);
/* Runs a statement without result rows; *changes (if non-NULL) gets the number of rows changed. */
int jobs_exec(jobs_store *s, int *changes, cnet_error *err, const char *sql, const char *types,
              ...);

int jobs_begin(jobs_store *s, cnet_error *err);  /* BEGIN IMMEDIATE */
int jobs_commit(jobs_store *s, cnet_error *err); /* COMMIT, or ROLLBACK on failure; notifies */
void jobs_rollback(jobs_store *s);

/* Appends an event to job id's stream; data is a jansson-built JSON text. */
int jobs_event_add(jobs_store *s, const char *id, const char *type, const char *data,
                   cnet_error *err);
/* The same for a state change: {"state", "attempt", "reason"?}. */
int jobs_event_state(jobs_store *s, const char *id, job_state state, int attempt,
                     const char *reason, cnet_error *err);

/* Fills j from a row selected with JOBS_COLUMNS. */
int jobs_row(sqlite3_stmt *st, job *j, cnet_error *err);

/* jobs_check.c's checks at open: a damaged file (quick_check), and an
 * empty one while the jobs dir holds job folders; CNET_EFORMAT with err
 * saying how to recover. */
int jobs_check_damaged(jobs_store *s, cnet_error *err);
int jobs_check_emptied(jobs_store *s, cnet_error *err);

/* Fresh random hex string of 2*nbytes digits. */
int jobs_random_hex(char *out, int nbytes, cnet_error *err);

#endif
