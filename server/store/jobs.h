/* The durable job store: the jobs and the events a client replays over SSE,
 * in one SQLite file (the embedded default: one node) or in a PostgreSQL
 * database shared by many `cnet serve` nodes (jobs_open with a
 * postgres:// URL). The map header of the jobs subsystem; its files are
 * listed in server/store/jobs_internal.h.
 *
 * What it promises (RELIABILITY.md §2), on both backends: durable
 * acceptance (a job exists once jobs_enqueue returns 0: SQLite WAL +
 * synchronous=FULL, PostgreSQL's commit); exactly-once creation per
 * Idempotency-Key; at-least-once execution with leases and a fencing token
 * (every write of a worker is guarded by `WHERE id=? AND lease_token=?`, so a
 * worker whose lease expired cannot write progress or complete the job);
 * bounded attempts, then `failed` with the last error.
 *
 * What it is not: it runs nothing (server/workers/pool.c claims and runs jobs) and it
 * does not validate specs (api/ does); the row type (job, job_state) is
 * api/api_job.h's, since the contract renders it. One connection guarded by a mutex: the
 * store is safe to call from any thread. Times are milliseconds since the
 * epoch from a clock that tests may replace (nodes sharing a PostgreSQL
 * store need clocks in step, as leases compare them). Follows River's job
 * table and rescuer (riverqueue/river) in spirit, not in code. */
#ifndef CNET_JOBS_H
#define CNET_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "api/api_job.h"
#include "engine/core/error.h"

#define JOBS_SCHEMA_VERSION 2 /* both backends' schema; a newer store is refused (v2: datasets) */
#define JOBS_BUSY_TIMEOUT_MS 5000
#define JOBS_DEFAULT_MAX_ATTEMPTS 3
#define JOBS_DEFAULT_LEASE_MS 60000
#define JOBS_TOKEN_MAX 40 /* 32 hex digits + NUL */
#define JOBS_IDEM_KEY_MAX 255
#define JOBS_LIST_MAX 200 /* most jobs one jobs_list call returns */
#define JOBS_NODE_MAX 128 /* a node's name in its claims' events (jobs_set_node) */

/* Store-specific statuses (negative, beside engine/core/error.h's CNET_E*). */
enum {
    JOBS_ECONFLICT = -32, /* the job's state forbids it (cancel of a terminal job,
                             idempotency key reused with another body) */
    JOBS_ESTALE = -33,    /* the fencing token no longer holds the job's lease */
    JOBS_EADMIT = -34,    /* a jobs_new admit hook refused the new job */
};

typedef struct jobs_event {
    int64_t id; /* strictly increasing over the whole store */
    char type[16];
    char *data_json;
    int64_t created_at;
} jobs_event;

void jobs_events_free(jobs_event *ev, int n);

typedef struct jobs_store jobs_store;

/* Opens (creating or migrating) the store at where: a postgres:// or
 * postgresql:// URL (libpq's), else the path of a SQLite file (mode 0600).
 * jobs_dir is the folder under which each job gets its own data dir named
 * by its id (on storage every node shares, for PostgreSQL). A damaged
 * SQLite store (quick_check) and an empty store beside job folders are
 * refused with CNET_EFORMAT, err saying how to recover (jobs_check.c). */
int jobs_open(jobs_store **out, const char *where, const char *jobs_dir, cnet_error *err);
/* Whether where names a PostgreSQL store (a postgres:// URL). */
int jobs_is_url(const char *where);
/* "sqlite" or "postgresql". */
const char *jobs_backend_name(jobs_store *s);
/* Whether other processes may hold leases in this store (PostgreSQL). */
int jobs_shared(jobs_store *s);
void jobs_close(jobs_store *s);
void jobs_set_clock(jobs_store *s, int64_t (*now_ms)(void *), void *user);
/* Names this process (e.g. "host:port") in the state event of each job it
 * claims, {"state": "running", ..., "node": name}: which node ran an attempt,
 * for operators of several nodes. At most JOBS_NODE_MAX - 1 bytes kept. */
void jobs_set_node(jobs_store *s, const char *name);
int64_t jobs_now(jobs_store *s);

typedef struct jobs_new {
    const char *kind;      /* "train" or "generate" */
    const char *spec_json; /* validated spec, stored verbatim */
    const char *idem_key;  /* NULL: none */
    const char *idem_hash; /* hash of the request that carried idem_key */
    int max_attempts;      /* 0: JOBS_DEFAULT_MAX_ATTEMPTS */
    int queue_cap;         /* 0: no cap; else CNET_ELIMIT when that many are queued */
    /* Optional: a precondition of creating a NEW job (an idempotent replay
     * of an accepted one skips it); its error code and message are returned. */
    int (*admit)(void *ctx, cnet_error *err);
    void *admit_ctx;
} jobs_new;

/* Accepts a job (or finds the one an earlier call with the same idem_key
 * created: *created = 0). Returns JOBS_ECONFLICT when the key was used with a
 * different idem_hash, CNET_ELIMIT when the queue is full, req->admit's
 * code when it refuses the new job. The job's data dir
 * exists when this returns 0. */
int jobs_enqueue(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                 cnet_error *err);

int jobs_get(jobs_store *s, const char *id, job *out, cnet_error *err);

typedef struct jobs_filter {
    int state;        /* -1: any */
    const char *kind; /* NULL: any */
    int64_t before;   /* cursor: only jobs with seq < before; 0: from the newest */
    int limit;        /* 1..JOBS_LIST_MAX */
} jobs_filter;

/* Newest first. *next is the cursor for the next page, 0 at the end. The
 * caller frees with job_clear on each and free(*out). */
int jobs_list(jobs_store *s, const jobs_filter *f, job **out, int *n, int64_t *next,
              cnet_error *err);

/* queued → cancelled at once; running → cancel_requested (the runner stops at
 * its next step boundary); terminal → JOBS_ECONFLICT. *state is the state
 * after the call. */
int jobs_cancel(jobs_store *s, const char *id, job_state *state, cnet_error *err);

/* Claims the oldest queued job: running, attempt+1, a new lease token valid
 * for lease_ms. *claimed = 0 when the queue is empty. */
int jobs_claim(jobs_store *s, int64_t lease_ms, job *out, char token[JOBS_TOKEN_MAX], int *claimed,
               cnet_error *err);

/* Placement: a question a claimer asks about a queued job (kind,
 * spec_json): would it rather run it (e.g. its base model is already
 * loaded), can it run it at all (e.g. its memory need fits the node's).
 * Called with the store's lock held: it must be quick and must not call
 * the store. */
typedef int (*jobs_prefer_fn)(void *ctx, const char *kind, const char *spec_json);
typedef struct jobs_placement {
    jobs_prefer_fn prefer; /* NULL: no preference */
    jobs_prefer_fn fits;   /* NULL: every job fits */
    void *ctx;
} jobs_placement;
/* How far placement reaches, so that no job starves: only the
 * JOBS_PREFER_WINDOW oldest queued jobs are candidates (a preferred job never
 * passes more than that many older ones), and once the oldest queued job has
 * waited JOBS_PREFER_WAIT_MS since it was accepted it is taken whatever the
 * preference (a stream of preferred jobs cannot hold it back for ever). A
 * job that does not fit is never taken: it stays queued for a node it fits
 * (one no node fits waits until it is cancelled, instead of being claimed
 * and failed by every node in turn); when none of the window's jobs fits,
 * nothing is claimed. */
#define JOBS_PREFER_WINDOW 8
#define JOBS_PREFER_WAIT_MS 30000
/* jobs_claim, but among the candidates above that fit, the oldest that
 * prefer accepts is claimed before older ones (place NULL: jobs_claim). */
int jobs_claim_placed(jobs_store *s, int64_t lease_ms, const jobs_placement *place, job *out,
                      char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err);

/* The worker's writes, all fenced by token (JOBS_ESTALE when it lost the
 * lease). heartbeat and progress extend the lease by lease_ms and report
 * whether a cancel was requested. */
int jobs_heartbeat(jobs_store *s, const char *id, const char *token, int64_t lease_ms,
                   int *cancel_requested, cnet_error *err);
int jobs_progress(jobs_store *s, const char *id, const char *token, const char *progress_json,
                  int64_t lease_ms, int *cancel_requested, cnet_error *err);
int jobs_checkpoint(jobs_store *s, const char *id, const char *token, int64_t step,
                    cnet_error *err);
/* Appends an event (type, a JSON object text) to the job's stream, e.g. a
 * validation image or a push phase, for SSE clients. */
int jobs_note(jobs_store *s, const char *id, const char *token, const char *type,
              const char *data_json, cnet_error *err);
/* final: JOB_SUCCEEDED or JOB_CANCELLED. */
int jobs_finish(jobs_store *s, const char *id, const char *token, job_state final, cnet_error *err);
/* The attempt failed: back to queued while attempts remain (*requeued = 1),
 * else failed with code/detail; permanent != 0 (a failure no retry can
 * mend): failed at once. */
int jobs_fail(jobs_store *s, const char *id, const char *token, const char *code,
              const char *detail, int permanent, int *requeued, cnet_error *err);
/* Graceful stop: back to queued without counting the attempt. */
int jobs_release(jobs_store *s, const char *id, const char *token, cnet_error *err);

/* Puts running jobs whose lease expired (all running jobs when all != 0: at
 * start-up, when no worker can hold a lease; a shared store ignores all,
 * since other nodes hold leases) back to queued, or to failed
 * when their attempts are used up, or to cancelled when a cancel was asked. */
int jobs_rescue(jobs_store *s, int all, int *rescued, cnet_error *err);

/* Events of job id with id > after, oldest first, at most limit. */
int jobs_events(jobs_store *s, const char *id, int64_t after, int limit, jobs_event **out, int *n,
                cnet_error *err);

int jobs_counts(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err);

/* A real write to prove the database is writable (SQLite: and fsync, then
 * quick_check over the file to prove it is readable, jobs_check.c). */
int jobs_ping(jobs_store *s, cnet_error *err);

/* A counter bumped by every committed change; jobs_wait waits up to
 * timeout_ms for it to differ from seen and returns its value. */
uint64_t jobs_wait(jobs_store *s, uint64_t seen, int timeout_ms);

/* Writes the path of job id's data dir into buf. */
int jobs_dir_path(jobs_store *s, const char *id, char *buf, size_t size, cnet_error *err);

#endif
