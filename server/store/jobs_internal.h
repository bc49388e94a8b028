/* What the job store's files share: the store struct, the table of one
 * backend's calls (jobs_backend) and the rules both backends apply
 * (jobs_rules.c). Not part of the store's interface (server/store/jobs.h is).
 *
 *   jobs.c               the public calls: pick a backend at open, lock, dispatch
 *   jobs_rules.c         the shared rules: state after a failure or a rescue,
 *                        event texts, ids and tokens, the errors both return
 *   jobs_sqlite*.c       the embedded store (one file, one node; jobs_sqlite.h)
 *   jobs_check.c         SQLite's health checks and the emptied-store check
 *   jobs_pg*.c           the PostgreSQL store shared by many nodes (jobs_pg.h)
 *   jobs_datasets.c      the datasets registry's calls (jobs_datasets.h); its
 *                        SQL is in jobs_sqlite_datasets.c and jobs_pg_datasets.c
 *
 * Every backend call but ping runs with s->mu held (jobs.c takes it): one
 * connection, one transaction at a time; ping takes it itself (SQLite's
 * reads the file on a connection of its own, outside the lock). */
#ifndef CNET_JOBS_INTERNAL_H
#define CNET_JOBS_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "server/store/jobs_datasets.h"

typedef struct jobs_pg jobs_pg; /* jobs_pg.c's connection state */

/* What a fenced write changes: lease_ms > 0 extends the lease; progress
 * (non-NULL) replaces progress_json; checkpoint >= 0 records the step. */
typedef struct jobs_write {
    int64_t lease_ms;
    const char *progress;
    int64_t checkpoint;
    const char *ev_type, *ev_data; /* the event appended, NULL: none */
    int want_cancel;               /* read cancel_requested back */
} jobs_write;

/* How a running job leaves running (jobs_rules_leave fills to and reason
 * from the worker's call and the row's attempts). */
typedef enum { JOBS_LEAVE_FINISH, JOBS_LEAVE_FAIL, JOBS_LEAVE_RELEASE } jobs_leave_kind;
typedef struct jobs_leave {
    jobs_leave_kind kind;
    job_state final; /* JOBS_LEAVE_FINISH: succeeded or cancelled */
    const char *code, *detail;
    int permanent;
    int requeued; /* out: JOBS_LEAVE_FAIL went back to queued */
} jobs_leave;

/* A claim's placement (jobs_claim_placed): none set takes the oldest. */
typedef struct jobs_pick {
    jobs_placement place;
} jobs_pick;

/* One queued job a claim may take, oldest first (strings borrowed from the
 * backend's result). */
typedef struct jobs_candidate {
    const char *id, *kind, *spec;
    int64_t created_at;
} jobs_candidate;

/* One backend's calls; each mirrors its jobs.h namesake and runs under s->mu. */
typedef struct jobs_backend {
    const char *name; /* "sqlite" or "postgresql", for /readyz and logs */
    int shared;       /* other processes may hold leases in the same store */
    void (*close)(jobs_store *s);
    int (*enqueue)(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                   cnet_error *err);
    int (*get)(jobs_store *s, const char *id, job *out, cnet_error *err);
    int (*list)(jobs_store *s, const jobs_filter *f, int limit, job *out, int *n, cnet_error *err);
    int (*cancel)(jobs_store *s, const char *id, job_state *state, cnet_error *err);
    int (*events)(jobs_store *s, const char *id, int64_t after, int limit, jobs_event *out, int *n,
                  cnet_error *err);
    int (*counts)(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err);
    int (*claim)(jobs_store *s, int64_t lease_ms, const jobs_pick *pick, job *out,
                 char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err);
    /* One fenced write: the columns of w set on the running job id held by
     * token, plus an optional event; JOBS_ESTALE when no row matched. */
    int (*fenced)(jobs_store *s, const char *id, const char *token, const jobs_write *w,
                  int *cancel_requested, cnet_error *err);
    /* Leaves running for `to` (see jobs_rules_leave), fenced by token. */
    int (*leave)(jobs_store *s, const char *id, const char *token, jobs_leave *l, cnet_error *err);
    int (*rescue)(jobs_store *s, int all, int *rescued, cnet_error *err);
    int (*ping)(jobs_store *s, cnet_error *err); /* takes s->mu itself */
    /* The datasets registry (jobs_datasets.h). ds_add inserts d unless its
     * id exists; ds_list fills at most max ready rows, newest first. */
    int (*ds_add)(jobs_store *s, const jobs_dataset *d, cnet_error *err);
    int (*ds_ready)(jobs_store *s, const jobs_dataset *d, cnet_error *err);
    int (*ds_get)(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err);
    int (*ds_list)(jobs_store *s, jobs_dataset *out, int max, int *n, cnet_error *err);
    int (*ds_remove)(jobs_store *s, const char *id, cnet_error *err);
    int (*ds_adopt)(jobs_store *s, const jobs_dataset *d, int n, int *adopted, cnet_error *err);
} jobs_backend;

struct jobs_store {
    const jobs_backend *be;
    pthread_mutex_t mu; /* held for every backend call */
    pthread_cond_t changed;
    uint64_t version; /* bumped after every committed change (and every NOTIFY) */
    char *jobs_dir;
    char *db_path; /* the SQLite file, or the postgres:// URL */
    int64_t (*now_ms)(void *);
    void *clock_user;
    char node[JOBS_NODE_MAX]; /* jobs_set_node's; "" names none */
    sqlite3 *db;              /* the SQLite backend's connection */
    jobs_pg *pg;              /* the PostgreSQL backend's state */
};

/* The columns both backends read a job row from, in order (the same SQL
 * in both dialects); queue_position is computed. */
#define JOBS_COLUMNS                                                                               \
    "id, kind, state, seq, spec_json, attempt, max_attempts, cancel_requested, progress_json, "    \
    "checkpoint_step, error_code, error_detail, created_at, started_at, finished_at, "             \
    "CASE WHEN state = 'queued' THEN (SELECT count(*) FROM jobs q WHERE q.state = 'queued' "       \
    "AND q.seq <= jobs.seq) ELSE 0 END"

extern const jobs_backend jobs_sqlite_backend;
extern const jobs_backend jobs_pg_backend;

/* Backend opens: fill s->db or s->pg, migrate; s->mu is not held. */
int jobs_sqlite_open(jobs_store *s, cnet_error *err);
int jobs_pg_open(jobs_store *s, cnet_error *err);

/* Tells jobs_wait's sleepers that the store changed; call with s->mu held. */
void jobs_changed(jobs_store *s);

/* --- the shared rules (jobs_rules.c) ----------------------------------- */

/* The state a fenced leave goes to and the reason its event gives. retry:
 * attempt < max_attempts on the row. Sets l->requeued. */
job_state jobs_rules_leave(jobs_leave *l, int retry, const char **reason);
/* The attempt delta of a leave (-1: a release does not count). */
int jobs_rules_attempt_delta(const jobs_leave *l);
/* The state a rescued job goes to, and the detail of its event (and its
 * error when it fails for good) in detail[160]. */
job_state jobs_rules_rescue(int cancel_requested, int exhausted, int attempt, char detail[160]);
/* A backend's append of an event to a job's stream. */
typedef int (*jobs_event_add_fn)(jobs_store *s, const char *id, const char *type, const char *data,
                                 cnet_error *err);
/* Appends through add the state event {"state", "attempt", "reason"?,
 * "node"?} (the running state names s->node, when set). */
int jobs_rules_event_state(jobs_store *s, jobs_event_add_fn add, const char *id, job_state state,
                           int attempt, const char *reason, cnet_error *err);
/* How many queued jobs a claim reads as candidates (1 without placement). */
int jobs_rules_window(const jobs_pick *pick);
/* Which of the n >= 1 candidates c (oldest first) a claim takes at time now,
 * among those that fit: the oldest once it waited JOBS_PREFER_WAIT_MS (if it
 * fits), else the first one pick prefers, else the oldest that fits; -1 when
 * none fits. */
int jobs_rules_pick(const jobs_pick *pick, const jobs_candidate *c, int n, int64_t now);
/* A checkpoint event's JSON text into buf[64]. */
void jobs_rules_checkpoint_json(int64_t step, char buf[64]);
/* The error every backend returns. */
int jobs_rules_stale(cnet_error *err, const char *id);
int jobs_rules_idem_conflict(cnet_error *err, const char *id);
int jobs_rules_queue_full(cnet_error *err, int64_t queued, int cap);
int jobs_rules_not_found(cnet_error *err, const char *id);
int jobs_rules_terminal(cnet_error *err, const char *id, job_state state);
int jobs_rules_newer_schema(cnet_error *err, const char *where, int version);
/* The reason of a cancel while queued, and the error code of a lost lease. */
#define JOBS_REASON_CANCEL_QUEUED "cancelled while queued"
#define JOBS_CODE_LEASE_EXPIRED "lease_expired"
/* The datasets registry's rules: the LIKE pattern that finds a spec naming
 * dataset id (specs are stored compact, "dataset":"<id>") into buf[64], the
 * meta key that marks a store adopted, and the errors both backends return. */
void jobs_rules_dataset_pattern(const char *id, char buf[64]);
#define JOBS_META_DATASETS_ADOPTED "datasets_adopted"
int jobs_rules_dataset_in_use(cnet_error *err, const char *id, const char *job_id);
int jobs_rules_dataset_not_found(cnet_error *err, const char *id);
/* A fresh job id "j_" + 32 hex digits, and a fresh fencing token. */
int jobs_rules_new_id(char id[JOBS_ID_MAX], cnet_error *err);
int jobs_rules_new_token(char token[JOBS_TOKEN_MAX], cnet_error *err);

/* jobs_check.c: an empty store while the jobs dir holds job folders is
 * refused (both backends); CNET_EFORMAT with err saying how to recover. */
int jobs_check_emptied(jobs_store *s, cnet_error *err);

#endif
