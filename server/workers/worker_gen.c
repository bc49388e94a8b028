/* One generate request on the device thread: its base pipeline and
 * ControlNets from the device's caches (pinned for the run), then the one
 * executor, engine/pipeline/generate.h — the same run `cnet generate` makes —
 * watched at each step (pipe_observer.on_step) so a request whose client
 * left, whose deadline passed or whose engine is stopping ends there.
 *
 * Not here: parsing or validating a request (api/api_generate.c), image
 * files or PNG text (the HTTP handler and the job runner), admission and
 * the waiting caller's side of the watch (worker.c). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/workers/worker_internal.h"

double worker_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int worker_stop_fail(const worker *e, const worker_req *w, cnet_error *err) {
    char at[64] = "before its first step";
    if (w->step > 0) snprintf(at, sizeof at, "at step %d of %d", w->step, w->steps);
    switch (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
    case WORKER_STOP_GONE:
        return cnet_fail(err, WORKER_ECANCELLED, "generate cancelled %s: the client left", at);
    case WORKER_STOP_DEADLINE:
        return cnet_fail(err, WORKER_ETIMEDOUT,
                         "generate stopped %s: over the server's deadline (--generate-timeout); "
                         "lower steps, num_images or width and height, or send it with "
                         "\"async\": true",
                         at);
    }
    return cnet_fail(err, WORKER_ESTOPPING, "generate stopped %s: the %s is stopping", at,
                     e->be.name);
}

typedef struct gen_watch {
    worker *e;
    worker_req *w;
} gen_watch;

/* After each step: counts it and says whether the run must stop. */
static int on_step(void *user, int i, int n, const float *noise_pred, int rows,
                   const float *latents, int N, int h, int w, int C) {
    (void)noise_pred, (void)rows, (void)latents, (void)N, (void)h, (void)w, (void)C;
    gen_watch *g = user;
    g->w->step = i + 1, g->w->steps = n;
    pthread_mutex_lock(&g->e->mu);
    g->e->stats.generate_steps++;
    pthread_mutex_unlock(&g->e->mu);
    int stop = __atomic_load_n(&g->w->stop, __ATOMIC_ACQUIRE);
    if (!stop && __atomic_load_n(&g->e->refusing, __ATOMIC_ACQUIRE)) stop = WORKER_STOP_SHUTDOWN;
    if (!stop && g->w->deadline > 0 && worker_now() >= g->w->deadline) stop = WORKER_STOP_DEADLINE;
    if (stop) {
        int none = WORKER_STOP_NONE;
        __atomic_compare_exchange_n(&g->w->stop, &none, stop, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    }
    return stop;
}

int worker_gen_run(worker *e, const generate_request *req, worker_req *w, generate_result *out,
                   cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (req->n_controls < 1 || req->n_controls > PIPE_MAX_CONTROLNETS)
        return cnet_fail(err, CNET_EINVAL, "%d ControlNets: 1..%d", req->n_controls,
                         PIPE_MAX_CONTROLNETS);
    gen_watch watch = {.e = e, .w = w};
    const pipe_observer obs = {.user = &watch, .on_step = on_step};
    generate_request r = *req;
    r.base = NULL;
    int rc = worker_base_acquire(e, r.model_dir, &r.base, err), pinned = 0;
    for (; !rc && pinned < r.n_controls; pinned++)
        if ((rc = worker_cn_acquire(e, r.controls[pinned].dir, &r.controls[pinned].model, err)))
            break;
    if (!rc) rc = generate_run(&r, w ? &obs : NULL, out, err);
    if (rc && w && __atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        rc = worker_stop_fail(e, w, err);
        fprintf(stderr, "engine: %s\n", err->msg);
    }
    for (int k = 0; k < pinned; k++) worker_cn_release(e, r.controls[k].model);
    if (r.base) worker_base_release(e, r.base);
    return rc;
}
