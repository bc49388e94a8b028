/* The engine pool's device side: one thread per device that owns its
 * backend and does every piece of model work on it, a cache of loaded base
 * pipelines (sd_base) keyed by real path and shared read-only by every job
 * and request on the device, and an LRU of ControlNets. The map header of the
 * engine subsystem; its modules:
 *   worker.c         the device thread, its queue, the caches
 *   worker_gen.c     one generate request: its models from the caches, then
 *                    engine/pipeline/generate.h (the CLI's executor too),
 *                    watched at each step (client gone, deadline, stopping)
 *   gen_cost.c       what a generate request costs, in units admitted here
 *   runner.c         the pool runner: train and generate jobs (server/workers/pool.h)
 *   runner_train.c   a train job's spec → train_options and trainer hooks
 *
 * Two kinds of work reach a device thread: jobs (worker_run_job, called by
 * the pool's worker, which blocks until the job returns) and synchronous
 * generate requests (worker_generate, called by HTTP threads). Requests are
 * served when the device is idle and, while a job runs, at its step
 * boundaries (worker_serve_pending from the trainer's on_step hook), so a
 * long training job does not starve interactive inference.
 *
 * What it is not: no HTTP and no job store. The caches are only touched on
 * the device thread, so they need no lock; the queue and counters have one. */
#ifndef CNET_WORKER_H
#define CNET_WORKER_H

#include <stdint.h>

#include "engine/core/backend.h"
#include "engine/image/image.h"
#include "engine/pipeline/generate.h"
#include "engine/pipeline/sd_base.h"

#define WORKER_BASES_MAX 4       /* base pipelines kept loaded per device */
#define WORKER_CONTROLNETS_MAX 4 /* ControlNets kept loaded per device (LRU) */
#define WORKER_QUEUE_MAX 64      /* generate requests waiting per device; more → CNET_ELIMIT */
/* Units (server/workers/gen_cost.h) of synchronous generate work admitted
 * per device, waiting or running: twice the most one request may cost, so
 * a small request is admitted beside the largest one. A request that would
 * go over waits up to WORKER_ADMIT_WAIT_S for work to finish, then is
 * refused with WORKER_EBUSY. */
#define WORKER_UNITS_INFLIGHT_MAX 4000.0
#define WORKER_ADMIT_WAIT_S 2.0
/* Seconds between a waiting caller's looks at its client and deadline. */
#define WORKER_WATCH_S 0.1

/* Status of a request refused because the engine is stopping (or stopped
 * by it at a step), of work refused because its device is lost to this
 * process (worker_failure), of a request not admitted in time
 * (WORKER_EBUSY), stopped by its deadline (WORKER_ETIMEDOUT) or because
 * its client left (WORKER_ECANCELLED). */
enum {
    WORKER_ESTOPPING = -40,
    WORKER_ELOST = -41,
    WORKER_EBUSY = -42,
    WORKER_ETIMEDOUT = -43,
    WORKER_ECANCELLED = -44
};

typedef struct worker worker;

typedef struct worker_stats {
    uint64_t base_loads, controlnet_loads;
    uint64_t generates, generate_failures;
    uint64_t device_recoveries; /* device failures recovered from (see worker_failure) */
    uint64_t generate_steps;    /* denoising steps run by synchronous requests */
    uint64_t generates_cancelled, generates_timed_out, generates_busy; /* by status above */
    int queued, bases, controlnets;
    int failed; /* the device is lost to this process */
} worker_stats;

/* Opens the backend for device ("cpu", "cuda", "cuda:N"; a CUDA device that
 * is not visible falls back to the CPU with a note on stderr) and starts the
 * device thread. */
int worker_open(worker **out, const char *device, cnet_error *err);
/* Stops taking requests (those waiting fail with WORKER_ESTOPPING), lets the
 * one in progress finish, joins the thread, frees the caches and backend. */
void worker_close(worker *e);
/* Fails waiting requests with WORKER_ESTOPPING, stops the running one at
 * its next step and refuses new ones; the thread keeps running jobs (so a
 * job can still checkpoint). */
void worker_refuse(worker *e);

const char *worker_device(const worker *e); /* the backend's name */
void worker_stats_get(worker *e, worker_stats *out);
/* Requests waiting for the device (a load hint for picking an engine). */
int worker_load(worker *e);

/* Device failures. After each request and each job the device thread asks
 * the backend whether an op failed (a CUDA allocation that did not fit, a
 * faulting kernel). A failure the device survives is recovered from
 * (cnet_backend_recover) and the caches are kept: failed ops write only
 * the failing run's own buffers. A device lost to this process fails the
 * engine for good: requests are refused, its pool claims no job (they stay
 * queued for a process that can run them; the job running when it
 * happened counts the attempt, as it may be the cause) and, once every
 * engine is lost, /healthz and /readyz fail so that a supervisor restarts
 * the service. A failure left by the running job is the job's to report: a
 * request served between its steps does not run on it and does not clear
 * it, and is refused with CNET_ELIMIT (the job settles it within a step:
 * retry).
 * worker_failure: 0 while the engine is usable, else WORKER_ELOST saying
 * why and that the service needs a restart. */
int worker_failure(worker *e, cnet_error *err);

/* How a synchronous request is admitted, watched and stopped. */
typedef struct worker_gen_ctl {
    double units;     /* its cost (gen_cost.h), held against WORKER_UNITS_INFLIGHT_MAX */
    double timeout_s; /* from the call on, after which it stops at the next step; 0: none */
    /* Polled every WORKER_WATCH_S while the request waits or runs: nonzero
     * (its client left) cancels it at the next step. NULL: never. */
    int (*gone)(void *user);
    /* Called once on the caller's thread when the request is admitted and
     * before it is queued (the moment to decode its images); a nonzero
     * status fails the request with it. NULL: nothing to do. */
    int (*admitted)(void *user, cnet_error *err);
    void *user;
} worker_gen_ctl;

/* Runs req on the device thread and waits for it (directly when called on
 * that thread, where ctl is not used): its base and ControlNets from the
 * caches by folder (req's base and models are set here, on a copy), then
 * generate_run. *out is the caller's to free (generate_result_free), also
 * on error. CNET_ELIMIT when WORKER_QUEUE_MAX requests are waiting. With
 * ctl (NULL: no budget, deadline or watch): WORKER_EBUSY when not admitted
 * within WORKER_ADMIT_WAIT_S, WORKER_ETIMEDOUT past ctl->timeout_s,
 * WORKER_ECANCELLED when ctl->gone said so, WORKER_ESTOPPING when the
 * engine stops (worker_refuse) — each stopping the run at its next step
 * with a message saying at which. */
int worker_generate(worker *e, const generate_request *req, const worker_gen_ctl *ctl,
                    generate_result *out, cnet_error *err);

/* Runs fn(user, e) on the device thread and returns its status; one job at
 * a time per engine (the pool's single worker guarantees it). */
int worker_run_job(worker *e, int (*fn)(void *user, worker *e), void *user);
/* On the device thread, inside a job: serves every waiting request. */
void worker_serve_pending(worker *e);

/* On the device thread: the device's backend. */
cnet_backend *worker_backend(worker *e);
/* From any thread: whether the base pipeline of folder dir is loaded in this
 * engine's cache (placement prefers jobs on such a base: no load). */
int worker_base_loaded(worker *e, const char *dir);
/* On the device thread: the loaded base pipeline of folder dir (loading it
 * unless cached). Pinned until worker_base_release; *out is borrowed. */
int worker_base_acquire(worker *e, const char *dir, sd_base **out, cnet_error *err);
void worker_base_release(worker *e, sd_base *b);

#endif
