/* The operational routes: liveness (/healthz: fails when a device is lost
 * to the process), readiness (/readyz: the job store takes a write (SQLite:
 * and passes quick_check), the models dir exists, the disk is above the
 * floor; the details, with which store, only with the bearer token), Prometheus metrics (/metrics,
 * text format 0.0.4), the models the server can use (/v1/models) and the OpenAPI document. Not
 * here: anything that changes state. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/config/config.h"
#include "server/http/auth.h"
#include "server/http/http_internal.h"

/* Whether every engine's device is lost (err: the last one's failure): the
 * process can no longer do its work, and only a restart brings the devices
 * back. One lost among several shows in /metrics (cnet_engines_failed)
 * while the others serve. */
static int device_lost(http_server *s, cnet_error *err) {
    int lost = 0;
    for (int i = 0; i < s->cfg.n_engines; i++) lost += worker_failure(s->cfg.engines[i], err) != 0;
    return s->cfg.n_engines > 0 && lost == s->cfg.n_engines;
}

/* Liveness fails too when every device is lost. */
enum MHD_Result http_ops_healthz(http_server *s, struct MHD_Connection *c, http_req *r) {
    cnet_error device = {0};
    if (device_lost(s, &device))
        return http_reply_error(s, c, r, 503, "device_lost", NULL, "%s", device.msg);
    return http_reply_json(s, c, r, 200, json_pack("{s:s}", "status", "ok"));
}

/* Readiness is public (a load balancer probes it without the token); what
 * failed and the free disk space are told only to the token's holder. */
enum MHD_Result http_ops_readyz(http_server *s, struct MHD_Connection *c, http_req *r) {
    cnet_error err = {0};
    struct stat st;
    int db = jobs_ping(s->store, &err) == 0;
    if (!db) fprintf(stderr, "cnet serve: readyz: %s\n", err.msg);
    int models = stat(s->cfg.models_dir, &st) == 0 && S_ISDIR(st.st_mode);
    int64_t free_bytes = http_disk_free(s);
    int disk = free_bytes >= s->cfg.disk_floor;
    cnet_error device = {0};
    const int lost = device_lost(s, &device);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const int details = auth_check(auth, s->cfg.token) == AUTH_OK;
    if ((!db || !models || !disk || lost) && !details)
        return http_reply_error(s, c, r, 503, "not_ready", NULL,
                                "not ready (what failed is told with the bearer token)");
    if (!details) return http_reply_json(s, c, r, 200, json_pack("{s:s}", "status", "ready"));
    if (!db || !models || !disk || lost)
        return http_reply_error(s, c, r, 503, "not_ready", NULL, "%s%s%s%s",
                                db ? ""
                                   : "the job database fails its check (damaged, not writable or "
                                     "unreachable: see the server log); ",
                                models ? "" : "the models dir is missing; ",
                                disk ? "" : "free disk space is below the floor; ",
                                lost ? device.msg : "");
    return http_reply_json(s, c, r, 200,
                           json_pack("{s:s, s:{s:b, s:s, s:b, s:I}}", "status", "ready", "checks",
                                     "database", db, "store", jobs_backend_name(s->store),
                                     "models_dir", models, "disk_free_bytes",
                                     (json_int_t)free_bytes));
}

enum MHD_Result http_ops_metrics(http_server *s, struct MHD_Connection *c, http_req *r) {
    int64_t counts[JOB_N_STATES];
    cnet_error err = {0};
    int rc = jobs_counts(s->store, counts, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return MHD_NO;
    fprintf(f, "# HELP cnet_jobs Jobs in the store by state.\n# TYPE cnet_jobs gauge\n");
    for (int i = 0; i < JOB_N_STATES; i++)
        fprintf(f, "cnet_jobs{state=\"%s\"} %lld\n", job_state_names[i], (long long)counts[i]);
    fprintf(f,
            "# HELP cnet_queue_depth Jobs waiting for a worker (the store's: every node's).\n"
            "# TYPE cnet_queue_depth gauge\ncnet_queue_depth %lld\n"
            "# HELP cnet_store_info The job store this node uses.\n# TYPE cnet_store_info gauge\n"
            "cnet_store_info{backend=\"%s\"} 1\n",
            (long long)counts[JOB_QUEUED], jobs_backend_name(s->store));
    fprintf(f, "# HELP cnet_http_requests_total HTTP requests by route and status.\n"
               "# TYPE cnet_http_requests_total counter\n");
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i <= http_n_routes; i++)
        for (int k = 0; k < HTTP_STATUS_SLOTS && s->counts[i][k].status; k++)
            fprintf(f, "cnet_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    i < http_n_routes ? http_routes[i].name : "unmatched", s->counts[i][k].status,
                    (unsigned long long)s->counts[i][k].n);
    pthread_mutex_unlock(&s->mu);
    worker_stats total = {0};
    for (int i = 0; i < s->cfg.n_engines; i++) {
        worker_stats es;
        worker_stats_get(s->cfg.engines[i], &es);
        total.base_loads += es.base_loads, total.controlnet_loads += es.controlnet_loads;
        total.generates += es.generates, total.generate_failures += es.generate_failures;
        total.queued += es.queued, total.bases += es.bases, total.controlnets += es.controlnets;
        total.device_recoveries += es.device_recoveries, total.failed += es.failed;
        total.generate_steps += es.generate_steps, total.generates_busy += es.generates_busy;
        total.generates_cancelled += es.generates_cancelled;
        total.generates_timed_out += es.generates_timed_out;
    }
    fprintf(f,
            "# HELP cnet_generate_steps_total Denoising steps run by synchronous generates.\n"
            "# TYPE cnet_generate_steps_total counter\ncnet_generate_steps_total %llu\n"
            "# HELP cnet_generate_stopped_total Synchronous generates stopped early or refused, "
            "by reason.\n# TYPE cnet_generate_stopped_total counter\n"
            "cnet_generate_stopped_total{reason=\"client_gone\"} %llu\n"
            "cnet_generate_stopped_total{reason=\"deadline\"} %llu\n"
            "cnet_generate_stopped_total{reason=\"busy\"} %llu\n"
            "# HELP cnet_generate_held_bytes Memory held by generate requests in the server.\n"
            "# TYPE cnet_generate_held_bytes gauge\ncnet_generate_held_bytes %lld\n",
            (unsigned long long)total.generate_steps, (unsigned long long)total.generates_cancelled,
            (unsigned long long)total.generates_timed_out, (unsigned long long)total.generates_busy,
            (long long)http_generate_held(s));
    fprintf(f,
            "# HELP cnet_base_model_loads_total Base models loaded into the engine pool.\n"
            "# TYPE cnet_base_model_loads_total counter\ncnet_base_model_loads_total %llu\n"
            "# HELP cnet_controlnet_loads_total ControlNets loaded into the engine pool.\n"
            "# TYPE cnet_controlnet_loads_total counter\ncnet_controlnet_loads_total %llu\n"
            "# HELP cnet_generate_requests_total Synchronous generate requests run.\n"
            "# TYPE cnet_generate_requests_total counter\ncnet_generate_requests_total %llu\n"
            "# HELP cnet_generate_failures_total Synchronous generate requests that failed.\n"
            "# TYPE cnet_generate_failures_total counter\ncnet_generate_failures_total %llu\n"
            "# HELP cnet_generate_queue_depth Generate requests waiting for a device.\n"
            "# TYPE cnet_generate_queue_depth gauge\ncnet_generate_queue_depth %d\n"
            "# HELP cnet_models_loaded Models held by the engines' caches.\n"
            "# TYPE cnet_models_loaded gauge\ncnet_models_loaded{kind=\"base\"} %d\n"
            "cnet_models_loaded{kind=\"controlnet\"} %d\n"
            "# HELP cnet_engines Devices with an engine worker.\n# TYPE cnet_engines gauge\n"
            "cnet_engines %d\n"
            "# HELP cnet_engines_failed Engines whose device is lost to this process.\n"
            "# TYPE cnet_engines_failed gauge\ncnet_engines_failed %d\n"
            "# HELP cnet_device_recoveries_total Device failures the engines recovered from.\n"
            "# TYPE cnet_device_recoveries_total counter\ncnet_device_recoveries_total %llu\n",
            (unsigned long long)total.base_loads, (unsigned long long)total.controlnet_loads,
            (unsigned long long)total.generates, (unsigned long long)total.generate_failures,
            total.queued, total.bases, total.controlnets, s->cfg.n_engines, total.failed,
            (unsigned long long)total.device_recoveries);
    if (fclose(f) != 0) {
        free(text);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    return http_reply_response(s, c, r, 200, resp);
}

static int has_file(const char *dir, const char *name, const char *leaf) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, leaf);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Base models: <models>/<name> or <models>/<org>/<name> with model_index.json. */
static void scan_models(const char *dir, const char *prefix, int depth, json_t *out) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));) {
        if (!api_safe_name(de->d_name)) continue;
        char ref[600];
        snprintf(ref, sizeof ref, "%s%s", prefix, de->d_name);
        if (has_file(dir, de->d_name, "model_index.json")) {
            /* its pipeline class tells the dashboard which fields apply (SDXL's) */
            char index[4400];
            cnet_model_index idx;
            cnet_error err;
            snprintf(index, sizeof index, "%s/%s/model_index.json", dir, de->d_name);
            const int known = cnet_model_index_load(&idx, index, &err) == 0;
            json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "name", ref, "kind", "base",
                                                 "pipeline", known ? idx.class_name : ""));
        } else if (depth == 0) {
            char sub[4200], pre[620];
            snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
            snprintf(pre, sizeof pre, "%s/", ref);
            scan_models(sub, pre, 1, out);
        }
    }
    closedir(d);
}

enum MHD_Result http_ops_models(http_server *s, struct MHD_Connection *c, http_req *r) {
    json_t *out = json_array();
    if (!out) return MHD_NO;
    scan_models(s->cfg.models_dir, "", 0, out);
    /* Trained ControlNets: a finished train job's output dir, named by the job id. */
    DIR *d = opendir(s->jobs_dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (!api_safe_name(de->d_name) || !has_file(s->jobs_dir, de->d_name, "config.json") ||
            !has_file(s->jobs_dir, de->d_name, "diffusion_pytorch_model.safetensors"))
            continue;
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "name", de->d_name, "kind",
                                             "controlnet", "job", de->d_name));
    }
    if (d) closedir(d);
    return http_reply_json(s, c, r, 200, json_pack("{s:o}", "models", out));
}

enum MHD_Result http_ops_openapi(http_server *s, struct MHD_Connection *c, http_req *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        api_openapi_yaml_len, (void *)api_openapi_yaml, MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/yaml");
    return http_reply_response(s, c, r, 200, resp);
}
