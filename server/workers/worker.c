/* The device thread, its queue and the model caches (see worker.h).
 *
 * The thread takes waiting generate requests first, then the submitted job,
 * then sleeps; a job calls worker_serve_pending at each step boundary, so a
 * request waits at most one training step. A synchronous request is first
 * admitted by its cost against the units in flight on the device, then
 * queued; its caller waits with a timed wait, looking at its client and
 * deadline every WORKER_WATCH_S: a request that must stop is taken off the
 * queue if it is still there, else told to stop at the run's next step
 * (worker_gen.c). Base pipelines and ControlNets
 * are cached by real path, pinned while in use and evicted least recently
 * used when a slot is needed; a cache miss is counted (base_loads,
 * controlnet_loads) so /metrics shows that a second job on the same base
 * loads nothing. Not a scheduler across devices (the caller picks an
 * engine) and not a memory manager: the slot counts are the bound. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/workers/worker_internal.h"

static void *device_main(void *arg);

int worker_open(worker **out, const char *device, cnet_error *err) {
    *out = NULL;
    worker *e = calloc(1, sizeof *e);
    if (!e) return cnet_fail(err, CNET_ENOMEM, "engine: out of memory");
    char note[512];
    int rc = cnet_backend_open(&e->be, device, note, sizeof note, err);
    if (rc) {
        free(e);
        return cnet_error_prefix(err, "engine");
    }
    if (note[0]) fprintf(stderr, "engine: %s\n", note);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    pthread_condattr_t monotonic; /* callers wait on done with CLOCK_MONOTONIC deadlines */
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&e->done, &monotonic);
    pthread_condattr_destroy(&monotonic);
    if (pthread_create(&e->thread, NULL, device_main, e) != 0) {
        cnet_backend_free(&e->be);
        free(e);
        return cnet_fail(err, CNET_ENOMEM, "engine: cannot start the device thread");
    }
    *out = e;
    return 0;
}

const char *worker_device(const worker *e) { return e->be.name; }
cnet_backend *worker_backend(worker *e) { return &e->be; }

void worker_stats_get(worker *e, worker_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    out->queued = e->queued;
    pthread_mutex_unlock(&e->mu);
}

int worker_load(worker *e) {
    pthread_mutex_lock(&e->mu);
    int n = e->queued + (e->job_state == 1 || e->job_state == 2);
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* Under mu: takes the oldest waiting request, NULL when none. */
static worker_req *pop(worker *e) {
    worker_req *r = e->head;
    if (r) {
        e->head = r->next;
        if (!e->head) e->tail = NULL;
        e->queued--;
    }
    return r;
}

int worker_failure(worker *e, cnet_error *err) {
    pthread_mutex_lock(&e->mu);
    int rc = e->stats.failed ? cnet_fail(err, WORKER_ELOST,
                                         "the %s engine is unusable since a device failure (%s); "
                                         "restart the service",
                                         e->be.name, e->failure)
                             : 0;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* On the device thread after a request or a job (see worker.h). */
static void check_device(worker *e) {
    cnet_error err = {0};
    if (!cnet_backend_status(&e->be, &err)) return;
    char first[CNET_ERROR_MSG_MAX];
    snprintf(first, sizeof first, "%s", err.msg);
    const int rc = cnet_backend_recover(&e->be, &err);
    pthread_mutex_lock(&e->mu);
    if (rc == 0)
        e->stats.device_recoveries++;
    else
        e->stats.failed = 1, snprintf(e->failure, sizeof e->failure, "%s", err.msg);
    pthread_mutex_unlock(&e->mu);
    if (rc == 0)
        fprintf(stderr, "engine: %s recovered after a device failure: %s\n", e->be.name, first);
    else
        fprintf(stderr, "engine: %s is unusable: %s\n", e->be.name, err.msg);
}

/* Under mu: takes r off the queue; 0 when it is not there (taken by the
 * device thread already). */
static int unlink_req(worker *e, worker_req *r) {
    for (worker_req **p = &e->head, *prev = NULL; *p; prev = *p, p = &(*p)->next) {
        if (*p != r) continue;
        *p = r->next;
        if (e->tail == r) e->tail = prev;
        e->queued--;
        return 1;
    }
    return 0;
}

/* Under mu: counts a request that ended with rc. */
static void count_end(worker *e, int rc) {
    e->stats.generates++;
    if (rc) e->stats.generate_failures++;
    if (rc == WORKER_ECANCELLED) e->stats.generates_cancelled++;
    if (rc == WORKER_ETIMEDOUT) e->stats.generates_timed_out++;
}

/* Runs r on the device thread and wakes its caller. */
static void serve(worker *e, worker_req *r) {
    int rc = worker_failure(e, r->err);
    if (!rc && __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) rc = worker_stop_fail(e, r, r->err);
    /* a failure the running job's ops left is the job's to report */
    cnet_error pending = {0};
    if (!rc && cnet_backend_status(&e->be, &pending))
        rc = cnet_fail(r->err, CNET_ELIMIT,
                       "the %s failed during the running job (%s); it recovers when the job "
                       "settles: retry",
                       e->be.name, pending.msg);
    if (!rc) {
        /* generate requests compute in float32, also between the steps of a
         * training job that set a 16-bit precision on this backend */
        const cnet_precision prev = cnet_backend_set_precision(&e->be, CNET_PREC_F32, NULL, 0);
        rc = worker_gen_run(e, r->gen, r, r->out, r->err);
        cnet_backend_set_precision(&e->be, prev, NULL, 0);
        check_device(e);
    }
    pthread_mutex_lock(&e->mu);
    count_end(e, rc);
    r->rc = rc, r->done = 1;
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->mu);
}

void worker_serve_pending(worker *e) {
    for (;;) {
        pthread_mutex_lock(&e->mu);
        worker_req *r = pop(e);
        pthread_mutex_unlock(&e->mu);
        if (!r) return;
        serve(e, r);
    }
}

static void *device_main(void *arg) {
    worker *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        worker_req *r = pop(e);
        if (r) {
            pthread_mutex_unlock(&e->mu);
            serve(e, r);
            pthread_mutex_lock(&e->mu);
            continue;
        }
        if (e->job_state == 1) {
            e->job_state = 2;
            pthread_mutex_unlock(&e->mu);
            int rc = e->job_fn(e->job_user, e);
            check_device(e);
            pthread_mutex_lock(&e->mu);
            e->job_rc = rc, e->job_state = 3;
            pthread_cond_broadcast(&e->done);
            continue;
        }
        if (e->stopping) break;
        pthread_cond_wait(&e->work, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* A CLOCK_MONOTONIC time in seconds as a timespec. */
static struct timespec at(double t) {
    struct timespec ts = {.tv_sec = (time_t)t};
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    return ts;
}

/* Under mu: waits until units fit beside the work in flight (or nothing is
 * in flight, so any request fits alone); WORKER_EBUSY after
 * WORKER_ADMIT_WAIT_S, WORKER_ECANCELLED when the client left, and
 * WORKER_ESTOPPING when the engine stops meanwhile. */
static int admit(worker *e, const worker_gen_ctl *ctl, cnet_error *err) {
    const double until = worker_now() + WORKER_ADMIT_WAIT_S;
    while (!e->refusing && e->units > 0 && e->units + ctl->units > WORKER_UNITS_INFLIGHT_MAX) {
        const double now = worker_now();
        if (ctl->gone && ctl->gone(ctl->user))
            return cnet_fail(err, WORKER_ECANCELLED,
                             "the client left before the request was admitted");
        if (now >= until) {
            e->stats.generates_busy++;
            return cnet_fail(err, WORKER_EBUSY,
                             "the %s is busy: %.0f units of generate work are in flight and this "
                             "request costs %.0f (at most %.0f in flight); retry later",
                             e->be.name, e->units, ctl->units, WORKER_UNITS_INFLIGHT_MAX);
        }
        const struct timespec ts = at(now + WORKER_WATCH_S < until ? now + WORKER_WATCH_S : until);
        pthread_cond_timedwait(&e->done, &e->mu, &ts);
    }
    if (e->refusing) return cnet_fail(err, WORKER_ESTOPPING, "the server is stopping");
    e->units += ctl->units;
    return 0;
}

/* Under mu: waits for r, looking at its client and deadline. */
static void await(worker *e, worker_req *r, const worker_gen_ctl *ctl) {
    while (!r->done) {
        const struct timespec ts = at(worker_now() + WORKER_WATCH_S);
        pthread_cond_timedwait(&e->done, &e->mu, &ts);
        if (r->done || __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) continue;
        int stop = ctl->gone && ctl->gone(ctl->user)                ? WORKER_STOP_GONE
                   : r->deadline > 0 && worker_now() >= r->deadline ? WORKER_STOP_DEADLINE
                                                                    : WORKER_STOP_NONE;
        int none = WORKER_STOP_NONE;
        if (!stop || !__atomic_compare_exchange_n(&r->stop, &none, stop, 0, __ATOMIC_ACQ_REL,
                                                  __ATOMIC_ACQUIRE))
            continue;
        if (unlink_req(e, r)) { /* still waiting: it ends here */
            r->rc = worker_stop_fail(e, r, r->err);
            r->done = 1;
            count_end(e, r->rc);
        }
    }
}

int worker_generate(worker *e, const generate_request *req, const worker_gen_ctl *ctl,
                    generate_result *out, cnet_error *err) {
    memset(out, 0, sizeof *out);
    int rc = worker_failure(e, err);
    if (rc) return rc;
    /* a generate job, inside worker_run_job: checked when the job ends */
    if (pthread_equal(pthread_self(), e->thread)) return worker_gen_run(e, req, NULL, out, err);
    const worker_gen_ctl none = {0};
    if (!ctl) ctl = &none;
    worker_req r = {.gen = req,
                    .out = out,
                    .err = err,
                    .deadline = ctl->timeout_s > 0 ? worker_now() + ctl->timeout_s : 0};
    pthread_mutex_lock(&e->mu);
    rc = e->refusing ? cnet_fail(err, WORKER_ESTOPPING, "the server is stopping")
                     : admit(e, ctl, err);
    pthread_mutex_unlock(&e->mu);
    if (rc) return rc;
    if (ctl->admitted) rc = ctl->admitted(ctl->user, err);
    pthread_mutex_lock(&e->mu);
    if (!rc && e->refusing) rc = cnet_fail(err, WORKER_ESTOPPING, "the server is stopping");
    if (!rc && e->queued >= WORKER_QUEUE_MAX)
        rc = cnet_fail(err, CNET_ELIMIT, "%d generate requests are already waiting for the %s",
                       WORKER_QUEUE_MAX, e->be.name);
    if (!rc) {
        if (e->tail)
            e->tail->next = &r;
        else
            e->head = &r;
        e->tail = &r;
        e->queued++;
        pthread_cond_signal(&e->work);
        await(e, &r, ctl);
        rc = r.rc;
    }
    e->units -= ctl->units;
    pthread_cond_broadcast(&e->done); /* the units it held may admit a waiting request */
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int worker_run_job(worker *e, int (*fn)(void *user, worker *e), void *user) {
    pthread_mutex_lock(&e->mu);
    e->job_fn = fn, e->job_user = user, e->job_state = 1;
    pthread_cond_signal(&e->work);
    while (e->job_state != 3) pthread_cond_wait(&e->done, &e->mu);
    e->job_state = 0;
    int rc = e->job_rc;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void worker_refuse(worker *e) {
    pthread_mutex_lock(&e->mu);
    __atomic_store_n(&e->refusing, 1, __ATOMIC_RELEASE); /* read by the running request's steps */
    for (worker_req *r; (r = pop(e));) {
        r->rc = cnet_fail(r->err, WORKER_ESTOPPING, "the server is stopping");
        r->done = 1;
    }
    pthread_cond_broadcast(&e->done);
    pthread_mutex_unlock(&e->mu);
}

void worker_close(worker *e) {
    if (!e) return;
    worker_refuse(e);
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    for (int i = 0; i < WORKER_CONTROLNETS_MAX; i++)
        if (e->cns[i].live) controlnet_free(&e->cns[i].model);
    for (int i = 0; i < WORKER_BASES_MAX; i++)
        if (e->bases[i].live) sd_base_free(&e->bases[i].base);
    cnet_backend_free(&e->be);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->done);
    free(e);
}

/* ---- caches (device thread only) ---- */

static int real_dir(const char *dir, char key[PATH_MAX], cnet_error *err) {
    if (!realpath(dir, key))
        return cnet_fail(err, CNET_ENOTFOUND, "model folder %s not found", dir);
    return 0;
}

/* Publishes base slot i's folder (dir, "" when empty) for worker_base_loaded. */
static void loaded_set(worker *e, int i, const char *dir) {
    pthread_mutex_lock(&e->mu);
    snprintf(e->loaded[i], sizeof e->loaded[i], "%s", dir);
    pthread_mutex_unlock(&e->mu);
}

int worker_base_loaded(worker *e, const char *dir) {
    char key[PATH_MAX];
    if (!realpath(dir, key)) return 0;
    int found = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < WORKER_BASES_MAX && !found; i++) found = strcmp(e->loaded[i], key) == 0;
    pthread_mutex_unlock(&e->mu);
    return found;
}

/* The slot to (re)use: a free one, else the least recently used unpinned
 * one; -1 when every slot is pinned. */
#define PICK_SLOT(slots, n)                                                                        \
    do {                                                                                           \
        best = -1;                                                                                 \
        for (int k = 0; k < (n); k++) {                                                            \
            if (!(slots)[k].live) {                                                                \
                best = k;                                                                          \
                break;                                                                             \
            }                                                                                      \
            if (!(slots)[k].pins && (best < 0 || (slots)[k].used < (slots)[best].used)) best = k;  \
        }                                                                                          \
    } while (0)

int worker_base_acquire(worker *e, const char *dir, sd_base **out, cnet_error *err) {
    char key[PATH_MAX];
    int rc = real_dir(dir, key, err);
    if (rc) return rc;
    for (int i = 0; i < WORKER_BASES_MAX; i++) {
        worker_base_slot *s = &e->bases[i];
        if (s->live && strcmp(s->base.dir, key) == 0) {
            s->pins++, s->used = ++e->tick;
            *out = &s->base;
            return 0;
        }
    }
    int best;
    PICK_SLOT(e->bases, WORKER_BASES_MAX);
    const int i = best;
    if (i < 0)
        return cnet_fail(err, CNET_ELIMIT, "all %d base model slots of the %s are in use",
                         WORKER_BASES_MAX, e->be.name);
    worker_base_slot *s = &e->bases[i];
    loaded_set(e, i, "");
    if (s->live) sd_base_free(&s->base);
    s->live = 0;
    if ((rc = sd_base_open(&s->base, &e->be, key, err))) return rc;
    loaded_set(e, i, key);
    s->live = 1, s->pins = 1, s->used = ++e->tick;
    pthread_mutex_lock(&e->mu);
    e->stats.base_loads++;
    e->stats.bases = 0;
    for (int k = 0; k < WORKER_BASES_MAX; k++) e->stats.bases += e->bases[k].live;
    pthread_mutex_unlock(&e->mu);
    *out = &s->base;
    return 0;
}

void worker_base_release(worker *e, sd_base *b) {
    for (int i = 0; i < WORKER_BASES_MAX; i++)
        if (&e->bases[i].base == b && e->bases[i].pins > 0) e->bases[i].pins--;
}

int worker_cn_acquire(worker *e, const char *dir, controlnet_model **out, cnet_error *err) {
    char key[PATH_MAX];
    int rc = real_dir(dir, key, err);
    if (rc) return rc;
    for (int i = 0; i < WORKER_CONTROLNETS_MAX; i++) {
        worker_cn_slot *s = &e->cns[i];
        if (s->live && strcmp(s->key, key) == 0) {
            s->pins++, s->used = ++e->tick;
            *out = &s->model;
            return 0;
        }
    }
    int best;
    PICK_SLOT(e->cns, WORKER_CONTROLNETS_MAX);
    const int i = best;
    if (i < 0)
        return cnet_fail(err, CNET_ELIMIT, "all %d ControlNet slots of the %s are in use",
                         WORKER_CONTROLNETS_MAX, e->be.name);
    worker_cn_slot *s = &e->cns[i];
    if (s->live) controlnet_free(&s->model);
    s->live = 0;
    if ((rc = controlnet_open(&s->model, &e->be, key, err))) return rc;
    memcpy(s->key, key, sizeof key);
    s->live = 1, s->pins = 1, s->used = ++e->tick;
    pthread_mutex_lock(&e->mu);
    e->stats.controlnet_loads++;
    e->stats.controlnets = 0;
    for (int k = 0; k < WORKER_CONTROLNETS_MAX; k++) e->stats.controlnets += e->cns[k].live;
    pthread_mutex_unlock(&e->mu);
    *out = &s->model;
    return 0;
}

void worker_cn_release(worker *e, controlnet_model *m) {
    for (int i = 0; i < WORKER_CONTROLNETS_MAX; i++)
        if (&e->cns[i].model == m && e->cns[i].pins > 0) e->cns[i].pins--;
}
