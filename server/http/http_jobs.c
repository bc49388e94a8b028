/* The job routes: create (validate → commit → 202 + Location, with
 * Idempotency-Key and the queue cap), list (cursor pagination, filters),
 * get, cancel, and artifact download from the job's own dir.
 *
 * Not here: running jobs (server/workers/pool.c) or the event stream
 * (http_events.c). A 202 is sent only after jobs_enqueue committed
 * (synchronous=FULL): an accepted job survives a crash right after. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/http/http_internal.h"
#include "server/hub/hub_auth.h"

#define HTTP_LIST_DEFAULT 50
#define HTTP_ARTIFACTS_MAX 256 /* files listed per job */

static int valid_job_id(const char *id) {
    if (strncmp(id, "j_", 2) != 0 || strlen(id) != 34) return 0;
    return strspn(id + 2, "0123456789abcdef") == 32;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Where a job's artefacts are: its dir, and the folder the trainer writes
 * intermediate validation images to (step_<N>_<i>.png), kept out of the
 * top level so a Hub push publishes only the final images. */
static const char *const artifact_dirs[] = {"", "/logs/validation"};
enum { N_ARTIFACT_DIRS = sizeof artifact_dirs / sizeof artifact_dirs[0] };

/* The regular files in the job's artefact dirs with names a client may ask for. */
static int list_artifacts(http_server *s, const char *id, char **names) {
    int n = 0;
    for (int k = 0; k < N_ARTIFACT_DIRS; k++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s%s", s->jobs_dir, id, artifact_dirs[k]);
        DIR *d = opendir(path);
        for (struct dirent *de; d && n < HTTP_ARTIFACTS_MAX && (de = readdir(d));) {
            struct stat st;
            if (!api_safe_name(de->d_name) ||
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(st.st_mode))
                continue;
            if ((names[n] = strdup(de->d_name))) n++;
        }
        if (d) closedir(d);
    }
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    return n;
}

static json_t *job_json(http_server *s, const job *j) {
    char *names[HTTP_ARTIFACTS_MAX];
    int n = list_artifacts(s, j->id, names);
    json_t *v = api_job_json(j, names, n);
    for (int i = 0; i < n; i++) free(names[i]);
    return v;
}

static enum MHD_Result reply_job(http_server *s, struct MHD_Connection *c, http_req *r, int status,
                                 const char *id, int replayed) {
    job j;
    cnet_error err = {0};
    int rc = jobs_get(s->store, id, &j, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    struct MHD_Response *resp = http_json_response(job_json(s, &j));
    job_clear(&j);
    if (!resp) return MHD_NO;
    if (status == 202) {
        char loc[80];
        snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
        MHD_add_response_header(resp, "Location", loc);
    }
    if (replayed) MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    return http_reply_response(s, c, r, status, resp);
}

/* A job that would train for hours and then fail its push is refused up
 * front when this server has no Hub token (a token removed later still
 * fails only the push phase; the trained weights stay in the job dir). A
 * jobs_new admit hook: checked for new jobs only, not idempotent replays. */
static int admit_push(void *ctx, cnet_error *err) {
    (void)ctx;
    char *token = NULL, source[4200];
    int rc = hub_token_find(&token, source, sizeof source, err);
    if (!rc && !token)
        rc = cnet_fail(err, CNET_EINVAL,
                       "this server has no Hugging Face token: %s (environment variables need a "
                       "restart of cnet serve; the token file is read at each submission)",
                       HUB_TOKEN_HELP);
    hub_token_free(token);
    if (rc) cnet_error_prefix(err, "push_to_hub");
    return rc ? JOBS_EADMIT : 0;
}

enum MHD_Result http_jobs_create(http_server *s, struct MHD_Connection *c, http_req *r) {
    api_error e;
    json_t *req = NULL, *spec = NULL;
    if (api_parse_body(r->body, (size_t)r->received, &req, &e))
        return http_reply_api_error(s, c, r, &e);
    api_roots roots = {.models_dir = s->cfg.models_dir,
                       .datasets_dir = s->datasets_dir,
                       .data_root = s->cfg.data_root,
                       .jobs_dir = s->jobs_dir};
    int rc = api_train_spec(req, &roots, &spec, &e);
    char hash[65] = "";
    if (!rc && api_hash_json(req, hash))
        rc = api_fail(&e, 503, "unavailable", NULL, "out of memory");
    json_decref(req);
    const char *data = rc ? NULL : json_string_value(json_object_get(spec, "dataset"));
    if (data && upload_valid_id(data)) { /* an upload: usable only once the store has it ready */
        jobs_dataset d;
        cnet_error err = {0};
        if (http_datasets_ready(s, data, &d, &err))
            rc = err.code == CNET_ENOTFOUND
                     ? api_fail(&e, 400, "not_found", "dataset", "dataset: %s", err.msg)
                     : api_fail(&e, 503, "unavailable", NULL, "%s", err.msg);
        jobs_dataset_clear(&d);
        if (rc) json_decref(spec);
    }
    if (rc) return http_reply_api_error(s, c, r, &e);
    int64_t free_bytes = http_disk_free(s); /* a job writes checkpoints: the uploads' floor */
    if (free_bytes >= 0 && free_bytes < s->cfg.disk_floor) {
        json_decref(spec);
        return http_reply_error(s, c, r, 507, "insufficient_storage", NULL,
                                "free disk space (%lld bytes) is below the floor",
                                (long long)free_bytes);
    }
    char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    const int push = json_object_get(spec, "push_to_hub") != NULL;
    json_decref(spec);
    if (!text) return http_reply_error(s, c, r, 503, "unavailable", NULL, "out of memory");
    enum MHD_Result ret = http_jobs_enqueue(s, c, r, "train", text, hash, push ? admit_push : NULL);
    free(text);
    return ret;
}

enum MHD_Result http_jobs_enqueue(http_server *s, struct MHD_Connection *c, http_req *r,
                                  const char *kind, const char *spec_json, const char *hash,
                                  int (*admit)(void *ctx, cnet_error *err)) {
    api_error e;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    if (key && (!*key || strlen(key) > JOBS_IDEM_KEY_MAX))
        return http_reply_error(s, c, r, 400, "invalid_header", "Idempotency-Key",
                                "Idempotency-Key must be 1..%d bytes", JOBS_IDEM_KEY_MAX);
    jobs_new jn = {.kind = kind,
                   .spec_json = spec_json,
                   .idem_key = key,
                   .idem_hash = hash,
                   .queue_cap = s->cfg.queue_cap,
                   .admit = admit};
    char id[JOBS_ID_MAX];
    int created = 0;
    cnet_error err = {0};
    int rc = jobs_enqueue(s->store, &jn, id, &created, &err);
    if (rc == JOBS_ECONFLICT)
        return http_reply_error(s, c, r, 422, "idempotency_conflict", "Idempotency-Key", "%s",
                                err.msg);
    if (rc == JOBS_EADMIT) /* err.msg starts with the field the admit hook checked */
        return http_reply_error(s, c, r, 400, "invalid_field", "push_to_hub", "%s", err.msg);
    if (rc == CNET_ELIMIT) {
        api_fail(&e, 429, "queue_full", NULL, "%s; retry later", err.msg);
        return http_reply_busy(s, c, r, &e, HTTP_RETRY_AFTER_S, 0);
    }
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    return reply_job(s, c, r, 202, id, !created);
}

static int parse_count(const char *v, long long lo, long long hi, long long *out) {
    if (!v || !*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18) return -1;
    *out = atoll(v);
    return *out < lo || *out > hi ? -1 : 0;
}

enum MHD_Result http_jobs_list(http_server *s, struct MHD_Connection *c, http_req *r) {
    jobs_filter f = {.state = -1, .limit = HTTP_LIST_DEFAULT};
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    const char *kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
    const char *limit = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    const char *cursor = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
    long long v;
    if (state && (f.state = job_state_parse(state)) < 0)
        return http_reply_error(s, c, r, 400, "invalid_parameter", "state",
                                "state must be queued|running|succeeded|failed|cancelled");
    if (kind && strcmp(kind, "train") != 0 && strcmp(kind, "generate") != 0)
        return http_reply_error(s, c, r, 400, "invalid_parameter", "kind",
                                "kind must be train|generate");
    f.kind = kind;
    if (limit && parse_count(limit, 1, JOBS_LIST_MAX, &v))
        return http_reply_error(s, c, r, 400, "invalid_parameter", "limit",
                                "limit must be an integer in 1..%d", JOBS_LIST_MAX);
    if (limit) f.limit = (int)v;
    if (cursor && parse_count(cursor, 1, INT64_MAX, &v))
        return http_reply_error(s, c, r, 400, "invalid_parameter", "cursor",
                                "cursor must be a value from next_cursor");
    if (cursor) f.before = v;
    job *js;
    int n;
    int64_t next;
    cnet_error err = {0};
    int rc = jobs_list(s->store, &f, &js, &n, &next, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        if (arr) json_array_append_new(arr, job_json(s, &js[i]));
        job_clear(&js[i]);
    }
    free(js);
    char nc[24];
    snprintf(nc, sizeof nc, "%lld", (long long)next);
    return http_reply_json(
        s, c, r, 200,
        json_pack("{s:o*, s:o}", "jobs", arr, "next_cursor", next ? json_string(nc) : json_null()));
}

enum MHD_Result http_jobs_get(http_server *s, struct MHD_Connection *c, http_req *r) {
    if (!valid_job_id(r->params[0]))
        return http_reply_error(s, c, r, 404, "not_found", NULL, "no job %.64s", r->params[0]);
    return reply_job(s, c, r, 200, r->params[0], 0);
}

enum MHD_Result http_jobs_cancel(http_server *s, struct MHD_Connection *c, http_req *r) {
    if (!valid_job_id(r->params[0]))
        return http_reply_error(s, c, r, 404, "not_found", NULL, "no job %.64s", r->params[0]);
    job_state st;
    cnet_error err = {0};
    int rc = jobs_cancel(s->store, r->params[0], &st, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    return reply_job(s, c, r, 200, r->params[0], 0);
}

enum MHD_Result http_jobs_artifact(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *id = r->params[0], *name = r->params[1];
    if (!valid_job_id(id))
        return http_reply_error(s, c, r, 404, "not_found", NULL, "no job %.64s", id);
    if (!api_safe_name(name))
        return http_reply_error(s, c, r, 400, "invalid_parameter", "name",
                                "artifact names are [A-Za-z0-9._-], not starting with '.'");
    int fd = -1;
    struct stat st;
    for (int k = 0; k < N_ARTIFACT_DIRS && fd < 0; k++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s%s", s->jobs_dir, id, artifact_dirs[k]);
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        fd = dfd >= 0 ? openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (dfd >= 0) close(dfd);
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) close(fd), fd = -1;
    }
    if (fd < 0) {
        return http_reply_error(s, c, r, 404, "not_found", "name", "job %s has no artifact %s", id,
                                name);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    return http_reply_response(s, c, r, 200, resp);
}
