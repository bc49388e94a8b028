/* A job as the API shows it (GET /v1/jobs/{id}, the list, the 202 body):
 * state, queue position, progress, timestamps, error and links. The stored
 * spec and progress are JSON texts written by cnet itself and embedded as
 * objects. Not here: the HTTP status or headers (server/http/http_jobs.c). */
#include <stdio.h>

#include "api/api.h"

static json_t *time_or_null(int64_t ms) {
    if (!ms) return json_null();
    char buf[32];
    api_time(ms, buf);
    return json_string(buf);
}

static json_t *embedded(const char *text) {
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *links(const job *j, char *const *artifacts, int n) {
    char self[80], buf[400];
    snprintf(self, sizeof self, "/v1/jobs/%s", j->id);
    json_t *arts = json_array();
    for (int i = 0; arts && i < n; i++) {
        snprintf(buf, sizeof buf, "%s/artifacts/%s", self, artifacts[i]);
        json_array_append_new(arts, json_pack("{s:s, s:s}", "name", artifacts[i], "href", buf));
    }
    char events[120], cancel[120];
    snprintf(events, sizeof events, "%s/events", self);
    snprintf(cancel, sizeof cancel, "%s/cancel", self);
    return json_pack("{s:s, s:s, s:s, s:o*}", "self", self, "events", events, "cancel", cancel,
                     "artifacts", arts);
}

json_t *api_job_json(const job *j, char *const *artifacts, int n_artifacts) {
    json_t *error = j->error_code ? json_pack("{s:s, s:s}", "code", j->error_code, "message",
                                              j->error_detail ? j->error_detail : "")
                                  : json_null();
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:i, s:i, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o*}", "id", j->id,
        "kind", j->kind, "state", job_state_names[j->state], "queue_position",
        j->state == JOB_QUEUED ? json_integer(j->queue_position) : json_null(), "attempt",
        j->attempt, "max_attempts", j->max_attempts, "cancel_requested", j->cancel_requested,
        "progress", embedded(j->progress_json), "checkpoint_step",
        j->checkpoint_step >= 0 ? json_integer(j->checkpoint_step) : json_null(), "error", error,
        "spec", embedded(j->spec_json), "created_at", time_or_null(j->created_at), "started_at",
        time_or_null(j->started_at), "finished_at", time_or_null(j->finished_at), "links",
        links(j, artifacts, n_artifacts));
}
