/* The engine pool's worker: a thread that claims jobs from the store and runs
 * each through a job_runner, keeping its lease alive, passing progress,
 * checkpoints and cancel requests between the runner and the store. The map
 * header of the pool subsystem.
 *
 * What it is not: it knows nothing of training or generation: `cnet serve`
 * registers the engine's runner (server/workers/runner.h). Execution is at-least-once: a job whose
 * worker died is rescued (jobs_rescue) and claimed again, and the runner is told the step of the
 * last checkpoint it recorded so it resumes there instead of starting over. Every write goes
 * through the store's fencing token: a worker that lost its lease is told to stop (pool_report
 * returns JOBS_ESTALE) and writes nothing. A failed attempt is retried only when its error
 * may pass (CNET_EIO, CNET_ENOMEM, CNET_ELIMIT, a device's CNET_EBACKEND); a bad spec or a
 * missing or malformed file (CNET_EINVAL, CNET_ENOTFOUND, CNET_EFORMAT) fails the job at once. */
#ifndef CNET_POOL_H
#define CNET_POOL_H

#include <stdint.h>

#include "server/store/jobs.h"

#define POOL_IDLE_WAIT_MS 1000 /* longest sleep between claims when the queue is empty */

/* What the runner is given; borrowed for the duration of the run. */
typedef struct pool_job {
    const char *id;
    const char *kind;
    const char *spec_json;
    const char *dir;     /* the job's own data dir (exists) */
    int attempt;         /* 1 on the first run */
    int64_t resume_step; /* step of the last recorded checkpoint, -1 when none */
} pool_job;

typedef struct pool_progress {
    int64_t step, total;
    double loss, lr, samples_per_s, eta_s;
    /* A download phase (file non-NULL): the file's bytes, reported as
     * {"phase": "download", "file", "done_bytes", "total_bytes"} instead. */
    const char *file;
    int64_t done_bytes, total_bytes;
} pool_progress;

typedef struct pool_ctl pool_ctl;

/* pool_report's answers. */
enum { POOL_CONTINUE = 0, POOL_STOP = 1 };
/* A runner returns 0 when the job is done, POOL_STOPPED when it stopped
 * because pool_report said POOL_STOP (after writing a checkpoint), or a
 * negative status with err filled when the attempt failed. */
enum { POOL_STOPPED = 1 };

typedef int (*pool_runner)(void *user, const pool_job *job, pool_ctl *ctl, cnet_error *err);

/* Records progress (and extends the lease). Returns POOL_CONTINUE, POOL_STOP
 * (a cancel was requested or the pool is stopping: write a checkpoint at this
 * step boundary and return POOL_STOPPED) or a negative status (JOBS_ESTALE:
 * the lease is lost, stop without writing). */
int pool_report(pool_ctl *ctl, const pool_progress *p, cnet_error *err);
/* Whether the job should stop at this step boundary from what is known in
 * memory (a cancel seen by the last pool_report, a lost lease, shutdown),
 * without touching the store: for the boundaries between throttled
 * progress reports. */
int pool_stop_requested(pool_ctl *ctl);
/* Whether the job's lease is lost: the store said so, or it was not renewed
 * within the lease on this process's clock (stopped or cut off that long).
 * The runner must then stop without writing anything more to the job's
 * folder: another worker may own it now. */
int pool_lease_lost(pool_ctl *ctl);

/* Records that a complete checkpoint for step exists in the job's dir. */
int pool_checkpoint(pool_ctl *ctl, int64_t step, cnet_error *err);
/* Adds an event (type, JSON object text) to the job's stream. */
int pool_event(pool_ctl *ctl, const char *type, const char *data_json, cnet_error *err);

typedef struct pool_config {
    int64_t lease_ms; /* 0: JOBS_DEFAULT_LEASE_MS; renewed every lease_ms / 3 */
    /* Asked (with the runner's user) before each claim when set: nonzero,
     * with the reason in err, keeps the worker from claiming, so the jobs
     * stay queued for a worker that can run them (a device lost to this
     * process); asked again every POOL_IDLE_WAIT_MS. */
    int (*can_claim)(void *user, cnet_error *err);
    /* Placement (optional, with the runner's user): whether this worker would
     * rather run a queued job, claimed before older ones within the store's
     * bound (e.g. its base model is already loaded), and whether it can run
     * it at all (e.g. its memory need fits the node's): a job that does not
     * fit is left queued for another node (jobs_claim_placed). */
    jobs_prefer_fn prefer, fits;
    /* The error a failed job keeps is shown to API clients: paths under
     * these folders are written relative to them (NULL: none). */
    const char *data_dir, *models_dir;
} pool_config;

typedef struct pool pool;

int pool_start(pool **out, jobs_store *store, pool_runner run, void *user, const pool_config *cfg,
               cnet_error *err);
/* Asks the running job to stop at its next step boundary, releases it back to
 * the queue (the attempt does not count) and joins the threads. */
void pool_stop(pool *p);

#endif
