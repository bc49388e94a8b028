/* The job store's public calls (jobs.h): the backend is picked at open from
 * the store's address (a postgres:// or postgresql:// URL: jobs_pg*.c; else
 * a SQLite file: jobs_sqlite*.c); every call takes the store's mutex and
 * dispatches to the backend's table. What both backends share beyond that
 * (the state machine after a failure or rescue, event texts, ids, errors) is
 * jobs_rules.c's.
 *
 * Not here: SQL. The clock and jobs_wait's change counter live here, since
 * both backends use them the same way (PostgreSQL's listener bumps the
 * counter on a NOTIFY from another node). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/store/jobs_internal.h"

void jobs_events_free(jobs_event *ev, int n) {
    for (int i = 0; i < n; i++) free(ev[i].data_json);
    free(ev);
}

static int64_t clock_real_ms(void *user) {
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t jobs_now(jobs_store *s) { return s->now_ms(s->clock_user); }

void jobs_set_clock(jobs_store *s, int64_t (*now_ms)(void *), void *user) {
    pthread_mutex_lock(&s->mu);
    s->now_ms = now_ms ? now_ms : clock_real_ms;
    s->clock_user = user;
    pthread_mutex_unlock(&s->mu);
}

void jobs_set_node(jobs_store *s, const char *name) {
    pthread_mutex_lock(&s->mu);
    snprintf(s->node, sizeof s->node, "%s", name ? name : "");
    pthread_mutex_unlock(&s->mu);
}

void jobs_changed(jobs_store *s) {
    s->version++;
    pthread_cond_broadcast(&s->changed);
}

int jobs_is_url(const char *where) {
    return !strncmp(where, "postgres://", 11) || !strncmp(where, "postgresql://", 13);
}

const char *jobs_backend_name(jobs_store *s) { return s->be->name; }

int jobs_shared(jobs_store *s) { return s->be->shared; }

int jobs_open(jobs_store **out, const char *where, const char *jobs_dir, cnet_error *err) {
    *out = NULL;
    jobs_store *s = calloc(1, sizeof *s);
    if (!s || !(s->jobs_dir = strdup(jobs_dir)) || !(s->db_path = strdup(where))) {
        if (s) free(s->jobs_dir);
        free(s);
        return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->now_ms = clock_real_ms;
    s->be = jobs_is_url(where) ? &jobs_pg_backend : &jobs_sqlite_backend;
    int rc = 0;
    if (mkdir(jobs_dir, 0700) != 0 && errno != EEXIST)
        rc = cnet_fail(err, CNET_EIO, "job store: mkdir %s: %s", jobs_dir, strerror(errno));
    if (!rc) rc = s->be == &jobs_pg_backend ? jobs_pg_open(s, err) : jobs_sqlite_open(s, err);
    if (rc) {
        jobs_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void jobs_close(jobs_store *s) {
    if (!s) return;
    s->be->close(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->changed);
    free(s->jobs_dir);
    free(s->db_path);
    free(s);
}

int jobs_dir_path(jobs_store *s, const char *id, char *buf, size_t size, cnet_error *err) {
    if ((size_t)snprintf(buf, size, "%s/%s", s->jobs_dir, id) >= size)
        return cnet_fail(err, CNET_ELIMIT, "job store: path of job %s too long", id);
    return 0;
}

/* The calls below lock, dispatch, unlock: CALL(s, rc = s->be->x(...)). */
#define CALL(s, stmt)                                                                              \
    do {                                                                                           \
        pthread_mutex_lock(&(s)->mu);                                                              \
        stmt;                                                                                      \
        pthread_mutex_unlock(&(s)->mu);                                                            \
    } while (0)

int jobs_enqueue(jobs_store *s, const jobs_new *req, char id[JOBS_ID_MAX], int *created,
                 cnet_error *err) {
    *created = 0;
    if (req->idem_key && strlen(req->idem_key) > JOBS_IDEM_KEY_MAX)
        return cnet_fail(err, CNET_ELIMIT, "Idempotency-Key longer than %d bytes",
                         JOBS_IDEM_KEY_MAX);
    int rc;
    CALL(s, rc = s->be->enqueue(s, req, id, created, err));
    return rc;
}

int jobs_get(jobs_store *s, const char *id, job *out, cnet_error *err) {
    int rc;
    CALL(s, rc = s->be->get(s, id, out, err));
    return rc;
}

int jobs_list(jobs_store *s, const jobs_filter *f, job **out, int *n, int64_t *next,
              cnet_error *err) {
    *out = NULL, *n = 0, *next = 0;
    int limit = f->limit < 1 ? 1 : f->limit > JOBS_LIST_MAX ? JOBS_LIST_MAX : f->limit;
    job *jobs = calloc((size_t)limit + 1, sizeof *jobs);
    if (!jobs) return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    int rc, got = 0;
    /* limit + 1 rows: the extra one says whether another page follows */
    CALL(s, rc = s->be->list(s, f, limit + 1, jobs, &got, err));
    if (got > limit) {
        *next = jobs[limit - 1].seq;
        job_clear(&jobs[limit]);
        got = limit;
    }
    if (rc) {
        for (int i = 0; i < got; i++) job_clear(&jobs[i]);
        free(jobs);
        *next = 0;
        return rc;
    }
    *out = jobs, *n = got;
    return 0;
}

int jobs_cancel(jobs_store *s, const char *id, job_state *state, cnet_error *err) {
    int rc;
    CALL(s, rc = s->be->cancel(s, id, state, err));
    return rc;
}

int jobs_events(jobs_store *s, const char *id, int64_t after, int limit, jobs_event **out, int *n,
                cnet_error *err) {
    *out = NULL, *n = 0;
    if (limit < 1) limit = 1;
    jobs_event *ev = calloc((size_t)limit, sizeof *ev);
    if (!ev) return cnet_fail(err, CNET_ENOMEM, "job store: out of memory");
    int rc, got = 0;
    CALL(s, rc = s->be->events(s, id, after, limit, ev, &got, err));
    if (rc) {
        jobs_events_free(ev, got);
        return rc;
    }
    *out = ev, *n = got;
    return 0;
}

int jobs_counts(jobs_store *s, int64_t counts[JOB_N_STATES], cnet_error *err) {
    memset(counts, 0, sizeof(int64_t) * JOB_N_STATES);
    int rc;
    CALL(s, rc = s->be->counts(s, counts, err));
    return rc;
}

int jobs_claim(jobs_store *s, int64_t lease_ms, job *out, char token[JOBS_TOKEN_MAX], int *claimed,
               cnet_error *err) {
    return jobs_claim_placed(s, lease_ms, NULL, out, token, claimed, err);
}

int jobs_claim_placed(jobs_store *s, int64_t lease_ms, const jobs_placement *place, job *out,
                      char token[JOBS_TOKEN_MAX], int *claimed, cnet_error *err) {
    *claimed = 0;
    memset(out, 0, sizeof *out);
    const jobs_placement none = {0};
    const jobs_pick pick = {.place = place ? *place : none};
    int rc;
    CALL(s, rc = s->be->claim(s, lease_ms, &pick, out, token, claimed, err));
    return rc;
}

static int fenced(jobs_store *s, const char *id, const char *token, const jobs_write *w,
                  int *cancel_requested, cnet_error *err) {
    int rc;
    CALL(s, rc = s->be->fenced(s, id, token, w, cancel_requested, err));
    return rc;
}

int jobs_heartbeat(jobs_store *s, const char *id, const char *token, int64_t lease_ms,
                   int *cancel_requested, cnet_error *err) {
    jobs_write w = {.lease_ms = lease_ms, .checkpoint = -1, .want_cancel = 1};
    return fenced(s, id, token, &w, cancel_requested, err);
}

int jobs_progress(jobs_store *s, const char *id, const char *token, const char *progress_json,
                  int64_t lease_ms, int *cancel_requested, cnet_error *err) {
    jobs_write w = {.lease_ms = lease_ms,
                    .progress = progress_json,
                    .checkpoint = -1,
                    .ev_type = "progress",
                    .ev_data = progress_json,
                    .want_cancel = 1};
    return fenced(s, id, token, &w, cancel_requested, err);
}

int jobs_checkpoint(jobs_store *s, const char *id, const char *token, int64_t step,
                    cnet_error *err) {
    char data[64];
    jobs_rules_checkpoint_json(step, data);
    jobs_write w = {.checkpoint = step, .ev_type = "checkpoint", .ev_data = data};
    return fenced(s, id, token, &w, NULL, err);
}

int jobs_note(jobs_store *s, const char *id, const char *token, const char *type,
              const char *data_json, cnet_error *err) {
    jobs_write w = {.checkpoint = -1, .ev_type = type, .ev_data = data_json};
    return fenced(s, id, token, &w, NULL, err);
}

static int leave(jobs_store *s, const char *id, const char *token, jobs_leave *l, cnet_error *err) {
    int rc;
    CALL(s, rc = s->be->leave(s, id, token, l, err));
    return rc;
}

int jobs_finish(jobs_store *s, const char *id, const char *token, job_state final,
                cnet_error *err) {
    if (final != JOB_SUCCEEDED && final != JOB_CANCELLED)
        return cnet_fail(err, CNET_EINVAL,
                         "jobs_finish: final state must be succeeded or cancelled");
    jobs_leave l = {.kind = JOBS_LEAVE_FINISH, .final = final};
    return leave(s, id, token, &l, err);
}

int jobs_fail(jobs_store *s, const char *id, const char *token, const char *code,
              const char *detail, int permanent, int *requeued, cnet_error *err) {
    jobs_leave l = {
        .kind = JOBS_LEAVE_FAIL, .code = code, .detail = detail, .permanent = permanent};
    int rc = leave(s, id, token, &l, err);
    *requeued = rc ? 0 : l.requeued;
    return rc;
}

int jobs_release(jobs_store *s, const char *id, const char *token, cnet_error *err) {
    jobs_leave l = {.kind = JOBS_LEAVE_RELEASE};
    return leave(s, id, token, &l, err);
}

int jobs_rescue(jobs_store *s, int all, int *rescued, cnet_error *err) {
    *rescued = 0;
    int rc;
    /* a shared store's other nodes hold leases: only expired ones are lost */
    CALL(s, rc = s->be->rescue(s, all && !s->be->shared, rescued, err));
    if (rc) *rescued = 0;
    return rc;
}

int jobs_ping(jobs_store *s, cnet_error *err) { return s->be->ping(s, err); }

uint64_t jobs_wait(jobs_store *s, uint64_t seen, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    pthread_mutex_lock(&s->mu);
    while (s->version == seen)
        if (pthread_cond_timedwait(&s->changed, &s->mu, &until) != 0) break;
    uint64_t v = s->version;
    pthread_mutex_unlock(&s->mu);
    return v;
}
