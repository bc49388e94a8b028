/* What worker.c and worker_gen.c share: the engine struct and its caches.
 * Not an interface for other subsystems (server/workers/worker.h is). */
#ifndef CNET_WORKER_INTERNAL_H
#define CNET_WORKER_INTERNAL_H

#include <pthread.h>

#include "engine/models/controlnet.h"
#include "server/workers/worker.h"

typedef struct worker_base_slot {
    int live, pins;
    uint64_t used; /* LRU tick */
    sd_base base;  /* base.dir is the key (a real path) */
} worker_base_slot;

typedef struct worker_cn_slot {
    int live, pins;
    uint64_t used;
    char key[PATH_MAX]; /* real path of the ControlNet folder */
    controlnet_model model;
} worker_cn_slot;

/* Why a request stops early: its stop field (atomic: set by its waiting
 * caller or worker_refuse, read by the device thread at each step). */
enum { WORKER_STOP_NONE = 0, WORKER_STOP_GONE, WORKER_STOP_DEADLINE, WORKER_STOP_SHUTDOWN };

typedef struct worker_req {
    const generate_request *gen;
    generate_result *out;
    cnet_error *err;
    int rc, done;
    double deadline; /* CLOCK_MONOTONIC seconds; 0: none */
    int stop;        /* WORKER_STOP_*, atomic */
    int step, steps; /* device thread: steps done of the run's steps */
    struct worker_req *next;
} worker_req;

struct worker {
    cnet_backend be;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* device thread: a request or a job arrived, or stop */
    pthread_cond_t done; /* callers: a request or the job finished */
    worker_req *head, *tail;
    int queued;
    double units;           /* of the synchronous requests admitted (gen_cost.h) */
    int refusing, stopping; /* refusing: atomic, also read by the running request */
    int (*job_fn)(void *user, worker *e);
    void *job_user;
    int job_state; /* 0 none, 1 submitted, 2 running, 3 finished */
    int job_rc;
    worker_stats stats;                      /* counters under mu */
    char failure[CNET_ERROR_MSG_MAX];        /* under mu: why stats.failed */
    char loaded[WORKER_BASES_MAX][PATH_MAX]; /* under mu: bases[i]'s folder, "" when none */
    /* Device thread only. */
    uint64_t tick;
    worker_base_slot bases[WORKER_BASES_MAX];
    worker_cn_slot cns[WORKER_CONTROLNETS_MAX];
};

/* On the device thread: the ControlNet of folder dir, loading it unless
 * cached (LRU eviction of an unpinned one). Pinned until released. */
int worker_cn_acquire(worker *e, const char *dir, controlnet_model **out, cnet_error *err);
void worker_cn_release(worker *e, controlnet_model *m);

/* On the device thread: runs one generate request (worker_gen.c); w
 * (NULL for a job's request) is watched at each step: its deadline, its
 * stop field and the engine's refusing flag stop the run there, with the
 * status and message of worker_stop_fail. */
int worker_gen_run(worker *e, const generate_request *req, worker_req *w, generate_result *out,
                   cnet_error *err);
/* The status and message of a request stopped for w->stop after w->step of
 * w->steps steps (WORKER_ECANCELLED, WORKER_ETIMEDOUT, WORKER_ESTOPPING). */
int worker_stop_fail(const worker *e, const worker_req *w, cnet_error *err);
/* Seconds on CLOCK_MONOTONIC. */
double worker_now(void);

#endif
