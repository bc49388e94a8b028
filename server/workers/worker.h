/* The engine pool's device side: one thread per device that owns its
 * backend and does every piece of model work on it, a cache of loaded base
 * pipelines (sd_base) keyed by real path and shared read-only by every job
 * and request on the device, and an LRU of ControlNets. The map header of the
 * engine subsystem; its modules:
 *   engine.c         the device thread, its queue, the caches
 *   engine_gen.c     one generate request: control image, scheduler, pipeline
 *   runner.c         the pool runner: train and generate jobs (server/workers/pool.h)
 *   runner_train.c   a train job's spec → train_options and trainer hooks
 *
 * Two kinds of work reach a device thread: jobs (engine_run_job, called by
 * the pool's worker, which blocks until the job returns) and synchronous
 * generate requests (engine_generate, called by HTTP threads). Requests are
 * served when the device is idle and, while a job runs, at its step
 * boundaries (engine_serve_pending from the trainer's on_step hook), so a
 * long training job does not starve interactive inference.
 *
 * What it is not: no HTTP and no job store. The caches are only touched on
 * the device thread, so they need no lock; the queue and counters have one. */
#ifndef CNET_ENGINE_H
#define CNET_ENGINE_H

#include <stdint.h>

#include "engine/core/backend.h"
#include "engine/image/image.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/sd_base.h"

#define ENGINE_BASES_MAX 4       /* base pipelines kept loaded per device */
#define ENGINE_CONTROLNETS_MAX 4 /* ControlNets kept loaded per device (LRU) */
#define ENGINE_QUEUE_MAX 64      /* generate requests waiting per device; more → CNET_ELIMIT */
#define ENGINE_IMAGES_MAX 4      /* images one generate request may ask for */

/* Status of a request refused because the engine is stopping, and of work
 * refused because its device is lost to this process (engine_failure). */
enum { ENGINE_ESTOPPING = -40, ENGINE_ELOST = -41 };

typedef struct engine engine;

/* One generate request (every pointer borrowed for the call). */
typedef struct engine_gen {
    const char *model;         /* base pipeline folder (resolved path) */
    const char *controlnet;    /* ControlNet folder (resolved path) */
    const image_rgb8 *control; /* the control image as sent */
    int canny;                 /* run the canny preprocessor on it first */
    double canny_low, canny_high;
    int scheduler; /* cnet_sched_kind; -1: the folder's own */
    const char *prompt, *negative_prompt;
    int steps, width, height, num_images, guess_mode, clip_skip; /* width/height 0: the image's */
    float guidance, scale, guidance_start, guidance_end, eta;
    uint64_t seed;
} engine_gen;

/* What a generate request produced: num_images images [height, width, 3]. */
typedef struct engine_images {
    int n;
    image_rgb8 img[ENGINE_IMAGES_MAX];
} engine_images;

void engine_images_free(engine_images *im);

typedef struct engine_stats {
    uint64_t base_loads, controlnet_loads;
    uint64_t generates, generate_failures;
    uint64_t device_recoveries; /* device failures recovered from (see engine_failure) */
    int queued, bases, controlnets;
    int failed; /* the device is lost to this process */
} engine_stats;

/* Opens the backend for device ("cpu", "cuda", "cuda:N"; a CUDA device that
 * is not visible falls back to the CPU with a note on stderr) and starts the
 * device thread. */
int engine_open(engine **out, const char *device, cnet_error *err);
/* Stops taking requests (those waiting fail with ENGINE_ESTOPPING), lets the
 * one in progress finish, joins the thread, frees the caches and backend. */
void engine_close(engine *e);
/* Fails waiting requests with ENGINE_ESTOPPING and refuses new ones; the
 * thread keeps running jobs (so a job can still checkpoint). */
void engine_refuse(engine *e);

const char *engine_device(const engine *e); /* the backend's name */
void engine_stats_get(engine *e, engine_stats *out);
/* Requests waiting for the device (a load hint for picking an engine). */
int engine_load(engine *e);

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
 * engine_failure: 0 while the engine is usable, else ENGINE_ELOST saying
 * why and that the service needs a restart. */
int engine_failure(engine *e, cnet_error *err);

/* Runs req on the device thread and waits for it (directly when called on
 * that thread). CNET_ELIMIT when ENGINE_QUEUE_MAX requests are waiting. */
int engine_generate(engine *e, const engine_gen *req, engine_images *out, cnet_error *err);

/* Runs fn(user, e) on the device thread and returns its status; one job at
 * a time per engine (the pool's single worker guarantees it). */
int engine_run_job(engine *e, int (*fn)(void *user, engine *e), void *user);
/* On the device thread, inside a job: serves every waiting request. */
void engine_serve_pending(engine *e);

/* On the device thread: the device's backend. */
cnet_backend *engine_backend(engine *e);
/* On the device thread: the loaded base pipeline of folder dir (loading it
 * unless cached). Pinned until engine_base_release; *out is borrowed. */
int engine_base_acquire(engine *e, const char *dir, sd_base **out, cnet_error *err);
void engine_base_release(engine *e, sd_base *b);

#endif
