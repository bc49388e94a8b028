/* What the PostgreSQL backend's files share (jobs_pg.c, jobs_pg_calls.c,
 * jobs_pg_lease.c): the connection state, libpq helpers and the calls each
 * file gives the backend table. Not part of the store's interface
 * (server/store/jobs.h is). */
#ifndef CNET_JOBS_PG_H
#define CNET_JOBS_PG_H

#include <libpq-fe.h>

#include "server/store/jobs_internal.h"

#define JOBS_PG_CHANNEL "cnet_jobs"  /* NOTIFY channel: every commit that changes the store */
#define JOBS_PG_LISTEN_POLL_MS 250   /* the listener's poll; also its stop latency */
#define JOBS_PG_RECONNECT_MS 1000    /* between reconnects of a lost listener connection */
#define JOBS_PG_PARAMS_MAX 8         /* parameters of one statement; more → CNET_EINVAL */
#define JOBS_PG_MIGRATE_LOCK 4735201 /* advisory lock key: one node migrates at a time */
/* A node stopped or cut off inside a transaction would hold its job's row
 * lock, and the rescuers skip locked rows: the server ends such a session
 * after this long, so a partitioned node's rows are freed for a rescue. */
#define JOBS_PG_IDLE_TX_TIMEOUT "5s"

struct jobs_pg {
    PGconn *conn;   /* the store's calls, under s->mu */
    PGconn *listen; /* LISTEN JOBS_PG_CHANNEL, the listener thread's own */
    pthread_t listener;
    int listening; /* the thread was started */
    int in_tx;     /* a BEGIN on conn is not yet committed or rolled back */
    int stop;      /* under s->mu: the listener returns */
};

/* Runs sql with parameters typed by types ('s' a string, NULL binds NULL;
 * 'i' an int64_t; 'd' an int). *res (if non-NULL) gets the result, the
 * caller PQclears it; *changes (if non-NULL) the rows changed. what names
 * the operation in the error. A lost connection is reset first. */
int jobs_pg_exec(jobs_store *s, PGresult **res, int *changes, cnet_error *err, const char *what,
                 const char *sql, const char *types, ...);
int jobs_pg_begin(jobs_store *s, cnet_error *err);
/* NOTIFY, COMMIT (ROLLBACK on failure), wake local waiters. */
int jobs_pg_commit(jobs_store *s, cnet_error *err);
void jobs_pg_rollback(jobs_store *s);

/* Appends an event to job id's stream; the job's row must be locked (an
 * UPDATE or SELECT ... FOR UPDATE earlier in the transaction), so that one
 * job's event ids are taken in commit order and a reader resuming after id
 * N never misses a later-committed smaller id. */
int jobs_pg_event_add(jobs_store *s, const char *id, const char *type, const char *data,
                      cnet_error *err);
/* The same for a state change (jobs_rules_event_state). */
int jobs_pg_event_state(jobs_store *s, const char *id, job_state state, int attempt,
                        const char *reason, cnet_error *err);

/* Fills j from row `row` of a result selected with JOBS_COLUMNS. */
int jobs_pg_row(PGresult *r, int row, job *j, cnet_error *err);
/* Column col of row as an integer (0 when NULL). */
int64_t jobs_pg_int(PGresult *r, int row, int col);

/* jobs_pg_calls.c: the client side. */
int jobs_pg_enqueue(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                    cnet_error *err);
int jobs_pg_get(jobs_store *s, const char *id, job *out, cnet_error *err);
int jobs_pg_list(jobs_store *s, const jobs_filter *f, int limit, job *out, int *n, cnet_error *err);
int jobs_pg_cancel(jobs_store *s, const char *id, job_state *state, cnet_error *err);
int jobs_pg_events(jobs_store *s, const char *id, int64_t after, int limit, jobs_event *out, int *n,
                   cnet_error *err);
int jobs_pg_counts(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err);

/* jobs_pg_lease.c: the worker side. */
int jobs_pg_claim(jobs_store *s, int64_t lease_ms, const jobs_pick *pick, job *out,
                  char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err);
int jobs_pg_fenced(jobs_store *s, const char *id, const char *token, const jobs_write *w,
                   int *cancel_requested, cnet_error *err);
int jobs_pg_leave(jobs_store *s, const char *id, const char *token, jobs_leave *l, cnet_error *err);
int jobs_pg_rescue(jobs_store *s, int all, int *rescued, cnet_error *err);

/* jobs_pg_datasets.c: the datasets registry (jobs_backend's ds_*). */
int jobs_pg_ds_add(jobs_store *s, const jobs_dataset *d, cnet_error *err);
int jobs_pg_ds_ready(jobs_store *s, const jobs_dataset *d, cnet_error *err);
int jobs_pg_ds_get(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err);
int jobs_pg_ds_list(jobs_store *s, jobs_dataset *out, int max, int *n, cnet_error *err);
int jobs_pg_ds_remove(jobs_store *s, const char *id, cnet_error *err);
int jobs_pg_ds_adopt(jobs_store *s, const jobs_dataset *d, int n, int *adopted, cnet_error *err);

#endif
