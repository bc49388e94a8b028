/* The pool's worker and heartbeat threads (see pool.h).
 *
 * One worker claims and runs one job at a time (one device, one job; the
 * weight cache and generate interleaving are the engine's, server/workers/worker.h). A
 * second thread renews the lease every lease/3 so a long step does not lose
 * it, and notes cancel requests; the runner learns both at its next
 * pool_report. Not a scheduler: ordering is the store's (oldest first).
 *
 * The lease is also kept on this process's own monotonic clock: renewed at
 * t means held until t + lease (counted from before the renewal was sent).
 * Past that, the job counts as lost without asking the store — a process
 * stopped or cut off longer than its lease (SIGSTOP, a partition) learns at
 * its next step, before writing any file, that another worker may own the
 * job's folder now (pool_lease_lost). */
#include "server/workers/pool.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct pool_ctl {
    pool *pool;
    const char *id;
    char token[JOBS_TOKEN_MAX];
    int cancel;         /* a cancel was requested */
    int lost;           /* the lease is gone: write nothing more */
    int64_t held_until; /* mono_ms() before which the lease surely holds */
};

struct pool {
    jobs_store *store;
    pool_runner run;
    void *user;
    int (*can_claim)(void *user, cnet_error *err); /* optional */
    jobs_placement place;                          /* prefer, fits: optional */
    char *hide[2];                                 /* pool_config's data_dir, models_dir */
    int64_t lease_ms;
    pthread_t worker, heartbeat;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* heartbeat and an idle worker sleep on it; signalled at stop */
    int stopping;
    pool_ctl *current; /* the job in flight, NULL when idle (under mu) */
};

static int stopping(pool *p) {
    pthread_mutex_lock(&p->mu);
    int s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Whether the lease is lost (known, or past its local deadline); under p->mu. */
static int lost_locked(pool_ctl *ctl) {
    if (!ctl->lost && mono_ms() >= ctl->held_until) ctl->lost = 1;
    return ctl->lost;
}

/* After a renewal sent at t0: rc == 0 held it, JOBS_ESTALE lost it. */
static void renewed_locked(pool_ctl *ctl, int rc, int64_t t0) {
    if (rc == JOBS_ESTALE) ctl->lost = 1;
    if (rc == 0 && !ctl->lost) ctl->held_until = t0 + ctl->pool->lease_ms;
}

int pool_lease_lost(pool_ctl *ctl) {
    pthread_mutex_lock(&ctl->pool->mu);
    const int lost = lost_locked(ctl);
    pthread_mutex_unlock(&ctl->pool->mu);
    return lost;
}

static json_t *number_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

int pool_report(pool_ctl *ctl, const pool_progress *pr, cnet_error *err) {
    pool *p = ctl->pool;
    /* json_real refuses inf and NaN (an fp16 step that overflowed): null */
    json_t *o =
        pr->file
            ? json_pack("{s:s, s:s, s:I, s:I}", "phase", "download", "file", pr->file, "done_bytes",
                        (json_int_t)pr->done_bytes, "total_bytes", (json_int_t)pr->total_bytes)
            : json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "step", (json_int_t)pr->step, "total",
                        (json_int_t)pr->total, "loss", number_or_null(pr->loss), "lr",
                        number_or_null(pr->lr), "samples_per_s", number_or_null(pr->samples_per_s),
                        "eta_s", number_or_null(pr->eta_s));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "pool: progress: out of memory");
    int cancel = 0;
    const int64_t t0 = mono_ms();
    int rc = jobs_progress(p->store, ctl->id, ctl->token, text, p->lease_ms, &cancel, err);
    free(text);
    pthread_mutex_lock(&p->mu);
    renewed_locked(ctl, rc, t0);
    if (cancel) ctl->cancel = 1;
    int lost = lost_locked(ctl), stop = ctl->cancel || p->stopping;
    pthread_mutex_unlock(&p->mu);
    if (lost) return rc ? rc : cnet_fail(err, JOBS_ESTALE, "pool: job %s lost its lease", ctl->id);
    if (rc) return rc;
    return stop ? POOL_STOP : POOL_CONTINUE;
}

int pool_stop_requested(pool_ctl *ctl) {
    pthread_mutex_lock(&ctl->pool->mu);
    int stop = ctl->cancel || lost_locked(ctl) || ctl->pool->stopping;
    pthread_mutex_unlock(&ctl->pool->mu);
    return stop;
}

int pool_checkpoint(pool_ctl *ctl, int64_t step, cnet_error *err) {
    int rc = jobs_checkpoint(ctl->pool->store, ctl->id, ctl->token, step, err);
    if (rc == JOBS_ESTALE) {
        pthread_mutex_lock(&ctl->pool->mu);
        ctl->lost = 1;
        pthread_mutex_unlock(&ctl->pool->mu);
    }
    return rc;
}

int pool_event(pool_ctl *ctl, const char *type, const char *data_json, cnet_error *err) {
    int rc = jobs_note(ctl->pool->store, ctl->id, ctl->token, type, data_json, err);
    if (rc == JOBS_ESTALE) {
        pthread_mutex_lock(&ctl->pool->mu);
        ctl->lost = 1;
        pthread_mutex_unlock(&ctl->pool->mu);
    }
    return rc;
}

static const char *error_code_name(int code) {
    switch (code) {
    case CNET_EINVAL:
        return "invalid_spec";
    case CNET_EIO:
        return "io_error";
    case CNET_ENOMEM:
        return "out_of_memory";
    case CNET_EFORMAT:
        return "bad_file";
    case CNET_ENOTFOUND:
        return "not_found";
    case CNET_ELIMIT:
        return "limit_exceeded";
    case CNET_EBACKEND:
        return "backend_error";
    }
    return "runner_error";
}

/* Whether an attempt that failed with code fails the same way every time:
 * an invalid spec or option, a missing or malformed file. I/O, memory,
 * limits (a full disk) and a device lost to the process may pass. */
static int error_permanent(int code) {
    return code == CNET_EINVAL || code == CNET_ENOTFOUND || code == CNET_EFORMAT;
}

static int path_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/';
}

/* Drops "<dir>/" wherever a path starts with it in msg (in place): the
 * server's folders are none of an API client's business. */
static void relative_to(char *msg, const char *dir) {
    const size_t n = dir ? strlen(dir) : 0;
    if (!n) return;
    for (char *p = msg; (p = strstr(p, dir));) {
        if ((p == msg || !path_char(p[-1])) && p[n] == '/')
            memmove(p, p + n + 1, strlen(p + n + 1) + 1);
        else
            p += n;
    }
}

/* Records how the run ended, through the fencing token. */
static void settle(pool *p, pool_ctl *ctl, int rc, const cnet_error *run_err) {
    cnet_error err = {0};
    int wrc = 0, requeued = 0;
    pthread_mutex_lock(&p->mu);
    int lost = ctl->lost, cancel = ctl->cancel;
    pthread_mutex_unlock(&p->mu);
    if (lost) {
        fprintf(stderr, "pool: job %s lost its lease; its new holder finishes it\n", ctl->id);
        return;
    }
    if (rc == 0)
        wrc = jobs_finish(p->store, ctl->id, ctl->token, JOB_SUCCEEDED, &err);
    else if (rc == POOL_STOPPED && cancel)
        wrc = jobs_finish(p->store, ctl->id, ctl->token, JOB_CANCELLED, &err);
    else if (rc == POOL_STOPPED)
        wrc = jobs_release(p->store, ctl->id, ctl->token, &err);
    else {
        char detail[CNET_ERROR_MSG_MAX];
        snprintf(detail, sizeof detail, "%s", run_err->msg);
        for (int i = 0; i < 2; i++) relative_to(detail, p->hide[i]);
        const int permanent = error_permanent(rc);
        wrc = jobs_fail(p->store, ctl->id, ctl->token, error_code_name(rc), detail, permanent,
                        &requeued, &err);
        fprintf(stderr, "pool: job %s attempt failed (%s)%s\n", ctl->id, run_err->msg,
                requeued    ? "; queued again"
                : permanent ? "; not retried: it would fail the same way"
                            : "; attempts exhausted");
    }
    /* A store failure here leaves the job running; the rescuer requeues it
     * when the lease expires, so the work is not lost, only repeated. */
    if (wrc) fprintf(stderr, "pool: job %s: recording the outcome: %s\n", ctl->id, err.msg);
}

static void run_one(pool *p, job *j, const char *token, int64_t claimed_at) {
    pool_ctl ctl = {.pool = p, .id = j->id, .held_until = claimed_at + p->lease_ms};
    snprintf(ctl.token, sizeof ctl.token, "%s", token);
    char dir[4096];
    cnet_error err = {0};
    if (jobs_dir_path(p->store, j->id, dir, sizeof dir, &err)) {
        int requeued;
        jobs_fail(p->store, j->id, token, "io_error", err.msg, 0, &requeued, NULL);
        return;
    }
    pool_job pj = {.id = j->id,
                   .kind = j->kind,
                   .spec_json = j->spec_json,
                   .dir = dir,
                   .attempt = j->attempt,
                   .resume_step = j->checkpoint_step};
    pthread_mutex_lock(&p->mu);
    ctl.cancel = j->cancel_requested;
    p->current = &ctl;
    pthread_mutex_unlock(&p->mu);
    int rc = p->run(p->user, &pj, &ctl, &err);
    pthread_mutex_lock(&p->mu);
    p->current = NULL;
    pthread_mutex_unlock(&p->mu);
    settle(p, &ctl, rc, &err);
}

/* Sleeps POOL_IDLE_WAIT_MS or until pool_stop. */
static void idle_wait(pool *p) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = until.tv_nsec + (int64_t)POOL_IDLE_WAIT_MS * 1000000;
    until.tv_sec += ns / 1000000000, until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&p->mu);
    if (!p->stopping) pthread_cond_timedwait(&p->wake, &p->mu, &until);
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg) {
    pool *p = arg;
    uint64_t seen = 0;
    int refused = 0; /* can_claim said no: say why once */
    while (!stopping(p)) {
        job j;
        char token[JOBS_TOKEN_MAX];
        int claimed = 0;
        cnet_error err = {0};
        if (p->can_claim && p->can_claim(p->user, &err)) {
            if (!refused) fprintf(stderr, "pool: claiming no jobs: %s\n", err.msg);
            refused = 1;
            idle_wait(p);
            continue;
        }
        refused = 0;
        const int64_t t0 = mono_ms();
        if (jobs_claim_placed(p->store, p->lease_ms, &p->place, &j, token, &claimed, &err))
            fprintf(stderr, "pool: claim: %s\n", err.msg);
        if (!claimed) {
            seen = jobs_wait(p->store, seen, POOL_IDLE_WAIT_MS);
            continue;
        }
        run_one(p, &j, token, t0);
        job_clear(&j);
    }
    return NULL;
}

static void *heartbeat_main(void *arg) {
    pool *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (p->lease_ms / 3) * 1000000;
        until.tv_sec += ns / 1000000000, until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&p->wake, &p->mu, &until);
        pool_ctl *ctl = p->current;
        if (p->stopping || !ctl || ctl->lost) continue;
        char id[JOBS_ID_MAX], token[JOBS_TOKEN_MAX];
        snprintf(id, sizeof id, "%s", ctl->id);
        snprintf(token, sizeof token, "%s", ctl->token);
        pthread_mutex_unlock(&p->mu);
        int cancel = 0;
        const int64_t t0 = mono_ms();
        int rc = jobs_heartbeat(p->store, id, token, p->lease_ms, &cancel, NULL);
        pthread_mutex_lock(&p->mu);
        if (p->current == ctl) {
            renewed_locked(ctl, rc, t0);
            if (cancel) ctl->cancel = 1;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int pool_start(pool **out, jobs_store *store, pool_runner run, void *user, const pool_config *cfg,
               cnet_error *err) {
    *out = NULL;
    pool *p = calloc(1, sizeof *p);
    if (!p) return cnet_fail(err, CNET_ENOMEM, "pool: out of memory");
    p->store = store, p->run = run, p->user = user;
    p->lease_ms = cfg && cfg->lease_ms > 0 ? cfg->lease_ms : JOBS_DEFAULT_LEASE_MS;
    p->can_claim = cfg ? cfg->can_claim : NULL;
    p->place = (jobs_placement){
        .prefer = cfg ? cfg->prefer : NULL, .fits = cfg ? cfg->fits : NULL, .ctx = user};
    const char *hide[2] = {cfg ? cfg->data_dir : NULL, cfg ? cfg->models_dir : NULL};
    for (int i = 0; i < 2; i++)
        if (hide[i] && !(p->hide[i] = strdup(hide[i]))) {
            free(p->hide[0]);
            free(p);
            return cnet_fail(err, CNET_ENOMEM, "pool: out of memory");
        }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (pthread_create(&p->heartbeat, NULL, heartbeat_main, p) != 0) {
        free(p->hide[0]);
        free(p->hide[1]);
        free(p);
        return cnet_fail(err, CNET_ENOMEM, "pool: cannot start the heartbeat thread");
    }
    if (pthread_create(&p->worker, NULL, worker_main, p) != 0) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->heartbeat, NULL);
        free(p->hide[0]);
        free(p->hide[1]);
        free(p);
        return cnet_fail(err, CNET_ENOMEM, "pool: cannot start the worker thread");
    }
    *out = p;
    return 0;
}

void pool_stop(pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->worker, NULL);
    pthread_join(p->heartbeat, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->hide[0]);
    free(p->hide[1]);
    free(p);
}
