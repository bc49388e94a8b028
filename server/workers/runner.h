/* The job runner `cnet serve` registers with each device's pool
 * (server/workers/pool.h): it runs a claimed job on that device's engine thread.
 *   train     → engine/train/trainer.h on the engine's cached base pipeline, in
 *               the job's own dir (resume_from_checkpoint="latest", so a job
 *               re-run after a crash or a SIGTERM continues from its last
 *               checkpoint), hooks wired to the pool (progress, checkpoints,
 *               validation events, cancel/stop) and to the engine (waiting
 *               generate requests are served at every step boundary); then
 *               the optional push to the Hub (server/hub/hub_push.h).
 *   generate  → one generate request (the spec of POST /v1/generate with
 *               "async": true), its images written as image_<i>.png; an
 *               hf:// model is pulled first, in a download phase as a
 *               train job's.
 * Not a scheduler (the pool claims) and not a validator (specs were
 * validated by api/ when the job was accepted; what can only be known on
 * the device — shapes, files — fails the attempt with a message). */
#ifndef CNET_RUNNER_H
#define CNET_RUNNER_H

#include "server/hub/hub_model.h"
#include "server/workers/pool.h"
#include "server/workers/worker.h"

#define RUNNER_PUSH_ATTEMPTS 3         /* tries of the push phase (each retries requests itself) */
#define RUNNER_PUSH_BACKOFF_S 2        /* sleep before the second try, doubled after */
#define RUNNER_TRAINED_MARK ".trained" /* in the job dir once the final weights are saved */

typedef struct runner_config {
    worker *engine;           /* the device this pool's jobs run on (borrowed) */
    const char *models_dir;   /* base models and ControlNets by name */
    const char *jobs_dir;     /* trained ControlNets by job id */
    const char *datasets_dir; /* uploaded datasets: <id>/files */
    const char *data_root;    /* NULL, or the folder dataset paths must stay under */
    const char *inputs_dir;   /* control images of generate jobs */
    int64_t memory_limit;     /* --memory-limit: bytes a job may need here; 0: no limit */
} runner_config;

/* A pool_runner; user is a runner_config. */
int runner_run(void *user, const pool_job *job, pool_ctl *ctl, cnet_error *err);
/* The pool's can_claim (server/workers/pool.h): refuses while the engine has
 * failed for good (worker_failure). */
int runner_can_claim(void *user, cnet_error *err);
/* The pool's prefer (placement): whether the job's base model (a train
 * spec's pretrained_model_name_or_path, a generate spec's model; an hf://
 * one from the Hub cache) is already loaded on this engine. */
int runner_prefers(void *user, const char *kind, const char *spec_json);
/* The pool's fits (placement): whether the job's estimated memory need
 * (server/workers/job_memory.h) is within cfg->memory_limit. A job whose
 * model is not on this node's disk yet (an hf:// one not downloaded), or
 * cannot be sized, fits: its attempt finds out. */
int runner_fits(void *user, const char *kind, const char *spec_json);

/* What a job's run needs (internal to runner*.c). */
typedef struct runner_job {
    const runner_config *cfg;
    const pool_job *job;
    pool_ctl *ctl;
    worker *e;
    cnet_error *err;
} runner_job;

/* On the engine thread: a train job (runner_train.c); 0, POOL_STOPPED or < 0. */
int runner_train(runner_job *x);
/* The download phase of a job (runner_pull.c): hf:// reference ref pulled
 * as a model of kind, its cache folder into out (cap bytes), with download
 * events; 0, POOL_STOPPED (a cancel or shutdown stopped it) or < 0. */
int runner_pull(runner_job *x, const char *ref, hub_model_kind kind, char *out, size_t cap);
/* The same for an hf://datasets/NS/NAME[@rev] reference: its train split
 * (of config, NULL: the default) pulled, the folder the dataset reader
 * opens into out. */
int runner_pull_dataset(runner_job *x, const char *ref, const char *config, char *out, size_t cap);
/* The push phase of a train job whose weights are in its dir (runner_push.c). */
int runner_push(runner_job *x, const char *repo_id, int private_repo);

#endif
