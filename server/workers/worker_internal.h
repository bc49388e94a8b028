/* What engine.c and engine_gen.c share: the engine struct and its caches.
 * Not an interface for other subsystems (server/workers/worker.h is). */
#ifndef CNET_ENGINE_INTERNAL_H
#define CNET_ENGINE_INTERNAL_H

#include <pthread.h>

#include "engine/models/controlnet.h"
#include "server/workers/worker.h"

typedef struct engine_base_slot {
    int live, pins;
    uint64_t used; /* LRU tick */
    sd_base base;  /* base.dir is the key (a real path) */
} engine_base_slot;

typedef struct engine_cn_slot {
    int live, pins;
    uint64_t used;
    char key[PATH_MAX]; /* real path of the ControlNet folder */
    controlnet_model model;
} engine_cn_slot;

typedef struct engine_req {
    const engine_gen *gen;
    engine_images *out;
    cnet_error *err;
    int rc, done;
    struct engine_req *next;
} engine_req;

struct engine {
    cnet_backend be;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* device thread: a request or a job arrived, or stop */
    pthread_cond_t done; /* callers: a request or the job finished */
    engine_req *head, *tail;
    int queued;
    int refusing, stopping;
    int (*job_fn)(void *user, engine *e);
    void *job_user;
    int job_state; /* 0 none, 1 submitted, 2 running, 3 finished */
    int job_rc;
    engine_stats stats;               /* counters under mu */
    char failure[CNET_ERROR_MSG_MAX]; /* under mu: why stats.failed */
    /* Device thread only. */
    uint64_t tick;
    engine_base_slot bases[ENGINE_BASES_MAX];
    engine_cn_slot cns[ENGINE_CONTROLNETS_MAX];
};

/* On the device thread: the ControlNet of folder dir, loading it unless
 * cached (LRU eviction of an unpinned one). Pinned until released. */
int engine_cn_acquire(engine *e, const char *dir, controlnet_model **out, cnet_error *err);
void engine_cn_release(engine *e, controlnet_model *m);

/* On the device thread: runs one generate request (engine_gen.c). */
int engine_gen_run(engine *e, const engine_gen *g, engine_images *out, cnet_error *err);

#endif
