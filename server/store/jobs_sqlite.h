/* What the SQLite backend's files share (jobs_sqlite.c, jobs_sqlite_lease.c,
 * jobs_check.c): small SQLite helpers and the calls each file gives the
 * backend table. Not part of the store's interface (server/store/jobs.h is). */
#ifndef CNET_JOBS_SQLITE_H
#define CNET_JOBS_SQLITE_H

#include "server/store/jobs_internal.h"

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
/* The same for a state change (jobs_rules_event_state). */
int jobs_event_state(jobs_store *s, const char *id, job_state state, int attempt,
                     const char *reason, cnet_error *err);

/* Fills j from a row selected with JOBS_COLUMNS. */
int jobs_row(sqlite3_stmt *st, job *j, cnet_error *err);

/* jobs_sqlite_lease.c: the worker side. */
int jobs_sqlite_claim(jobs_store *s, int64_t lease_ms, const jobs_pick *pick, job *out,
                      char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err);
int jobs_sqlite_fenced(jobs_store *s, const char *id, const char *token, const jobs_write *w,
                       int *cancel_requested, cnet_error *err);
int jobs_sqlite_leave(jobs_store *s, const char *id, const char *token, jobs_leave *l,
                      cnet_error *err);
int jobs_sqlite_rescue(jobs_store *s, int all, int *rescued, cnet_error *err);

/* jobs_sqlite_datasets.c: the datasets registry (jobs_backend's ds_*). */
int jobs_sqlite_ds_add(jobs_store *s, const jobs_dataset *d, cnet_error *err);
int jobs_sqlite_ds_ready(jobs_store *s, const jobs_dataset *d, cnet_error *err);
int jobs_sqlite_ds_get(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err);
int jobs_sqlite_ds_list(jobs_store *s, jobs_dataset *out, int max, int *n, cnet_error *err);
int jobs_sqlite_ds_remove(jobs_store *s, const char *id, cnet_error *err);
int jobs_sqlite_ds_adopt(jobs_store *s, const jobs_dataset *d, int n, int *adopted,
                         cnet_error *err);

/* jobs_check.c: a damaged file (quick_check) is refused at open with
 * CNET_EFORMAT saying how to recover; the readiness ping (takes s->mu). */
int jobs_check_damaged(jobs_store *s, cnet_error *err);
int jobs_sqlite_ping(jobs_store *s, cnet_error *err);

#endif
