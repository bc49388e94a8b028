/* The dataset routes: POST /v1/datasets, GET /v1/datasets, GET and DELETE
 * /v1/datasets/{id}, and the previews of a dataset's first samples. The
 * archive (tar, tar.gz/bz2/xz/zst or zip) or Parquet file arrives as the raw
 * request body, which http_server.c has already streamed to a temp file under
 * <data>/tmp with the size cap applied; here it is registered in the store as
 * uploading (server/store/jobs_datasets.h), extracted or stored and checked
 * (server/store/uploads.c), marked ready, and the report returned. Which
 * datasets exist is the store's answer on every route, so every node of a
 * shared store sees the same ones; the files are on the shared data dir.
 * GET /v1/datasets/{id}/samples lists the first samples (name, caption,
 * image links); GET /v1/datasets/{id}/samples/{n}?part=image or
 * conditioning_image serves one image's stored bytes (uploads_preview.c).
 * Not here: multipart forms (the body is the archive). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/http/http_internal.h"

/* A failed upload leaves no row: its uploading row is removed (logged when
 * that fails too; the row then stays invisible, as a crashed node's). */
static void forget(http_server *s, const char *id) {
    cnet_error err = {0};
    if (jobs_dataset_remove(s->store, id, &err) && err.code != CNET_ENOTFOUND)
        fprintf(stderr, "datasets: removing the row of failed upload %s: %s\n", id, err.msg);
}

/* Marks upload id ready with its report; on failure removes its folder. */
static int register_ready(http_server *s, const char *id, json_t *report, cnet_error *err) {
    char *text = json_dumps(report, JSON_COMPACT);
    int rc =
        text
            ? jobs_dataset_ready(s->store, id, json_integer_value(json_object_get(report, "bytes")),
                                 json_integer_value(json_object_get(report, "entries")), text, err)
            : cnet_fail(err, CNET_ENOMEM, "dataset %s: report: out of memory", id);
    free(text);
    if (rc) upload_remove(s->datasets_dir, id, NULL);
    return rc;
}

int http_datasets_adopt(http_server *s, cnet_error *err) {
    json_t *found = NULL;
    int rc = upload_scan(s->datasets_dir, &found, err);
    size_t n = rc ? 0 : json_array_size(found);
    jobs_dataset *d = calloc(n ? n : 1, sizeof *d);
    if (!rc && !d) rc = cnet_fail(err, CNET_ENOMEM, "datasets: out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *rep = json_array_get(found, i);
        const char *name = json_string_value(json_object_get(rep, "original_name"));
        snprintf(d[i].id, sizeof d[i].id, "%s", json_string_value(json_object_get(rep, "id")));
        d[i].name = (char *)(name ? name : "");
        d[i].state = JOBS_DATASET_READY;
        d[i].bytes = json_integer_value(json_object_get(rep, "bytes"));
        d[i].files = json_integer_value(json_object_get(rep, "entries"));
        d[i].created_at = jobs_now(s->store) - (int64_t)i; /* the scan's order, newest first */
        if (!(d[i].report_json = json_dumps(rep, JSON_COMPACT)))
            rc = cnet_fail(err, CNET_ENOMEM, "datasets: out of memory");
    }
    int adopted = 0;
    if (!rc) rc = jobs_dataset_adopt(s->store, d, (int)n, &adopted, err);
    if (!rc && adopted)
        fprintf(stderr, "datasets: registered %d dataset(s) found in %s in the store\n", adopted,
                s->datasets_dir);
    for (size_t i = 0; d && i < n; i++) free(d[i].report_json);
    free(d);
    json_decref(found);
    return rc;
}

enum MHD_Result http_datasets_create(http_server *s, struct MHD_Connection *c, http_req *r) {
    if (r->fd < 0 || r->received == 0)
        return http_reply_error(s, c, r, 400, "invalid_dataset", NULL,
                                "the body must be a tar or zip archive or a Parquet file");
    close(r->fd);
    r->fd = -1;
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    char id[UPLOAD_ID_MAX], clean[256];
    upload_sanitize_name(name, clean);
    json_t *report = NULL;
    cnet_error err = {0};
    int rc = upload_new_id(id, &err);
    if (!rc) rc = jobs_dataset_begin(s->store, id, clean, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    rc = upload_ingest(r->tmp_path, s->datasets_dir, name, &s->cfg.dataset, id, &report, &err);
    if (!rc) rc = register_ready(s, id, report, &err);
    if (rc) {
        json_decref(report);
        forget(s, id);
    }
    if (rc == CNET_EFORMAT || rc == CNET_EINVAL)
        return http_reply_error(s, c, r, 400, "invalid_dataset", NULL, "%s", err.msg);
    if (rc == CNET_ELIMIT)
        return http_reply_error(s, c, r, 413, "dataset_too_large", NULL, "%s", err.msg);
    if (rc == UPLOAD_ENOSPC)
        return http_reply_error(s, c, r, 507, "insufficient_storage", NULL, "%s", err.msg);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    return http_reply_json(s, c, r, 201, report);
}

enum MHD_Result http_datasets_list(http_server *s, struct MHD_Connection *c, http_req *r) {
    jobs_dataset *rows;
    int n;
    cnet_error err = {0};
    int rc = jobs_dataset_list(s->store, &rows, &n, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *one = json_loads(rows[i].report_json, 0, NULL);
        if (!one || json_array_append_new(list, one)) json_decref(list), list = NULL;
        if (!list) break;
    }
    for (int i = 0; i < n; i++) jobs_dataset_clear(&rows[i]);
    free(rows);
    if (!list) return http_reply_error(s, c, r, 503, "out_of_memory", NULL, "out of memory");
    return http_reply_json(s, c, r, 200, json_pack("{s:o}", "datasets", list));
}

int http_datasets_ready(http_server *s, const char *id, jobs_dataset *out, cnet_error *err) {
    memset(out, 0, sizeof *out);
    if (!upload_valid_id(id)) return cnet_fail(err, CNET_ENOTFOUND, "no dataset %.64s", id);
    int rc = jobs_dataset_get(s->store, id, out, err);
    if (!rc && out->state != JOBS_DATASET_READY) {
        jobs_dataset_clear(out);
        rc =
            cnet_fail(err, CNET_ENOTFOUND,
                      "dataset %s is still being uploaded (or its upload was cut): not usable", id);
    }
    return rc;
}

enum MHD_Result http_datasets_get(http_server *s, struct MHD_Connection *c, http_req *r) {
    jobs_dataset d;
    cnet_error err = {0};
    int rc = http_datasets_ready(s, r->params[0], &d, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    json_t *report = json_loads(d.report_json, 0, NULL);
    jobs_dataset_clear(&d);
    if (!report) return http_reply_error(s, c, r, 503, "out_of_memory", NULL, "out of memory");
    return http_reply_json(s, c, r, 200, report);
}

/* The row goes first, in one store transaction that refuses while a queued
 * or running job names the dataset; then the folder. A node that dies
 * between the two leaves a folder no listing shows (adoption is once per
 * store, so it is never brought back). */
enum MHD_Result http_datasets_delete(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *id = r->params[0];
    cnet_error err = {0};
    int rc = upload_valid_id(id) ? jobs_dataset_remove(s->store, id, &err)
                                 : cnet_fail(&err, CNET_ENOTFOUND, "no dataset %.64s", id);
    if (!rc) rc = upload_remove(s->datasets_dir, id, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    return http_reply_json(s, c, r, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

enum MHD_Result http_datasets_samples(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *id = r->params[0];
    upload_sample got[UPLOAD_PREVIEW_MAX];
    int n = 0;
    jobs_dataset d;
    cnet_error err = {0};
    int rc = http_datasets_ready(s, id, &d, &err);
    jobs_dataset_clear(&d);
    if (!rc) rc = upload_samples(s->datasets_dir, id, 0, UPLOAD_PREVIEW_MAX, 0, got, &n, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    json_t *list = json_array();
    for (int i = 0; list && i < n; i++) {
        char href[300];
        snprintf(href, sizeof href, "/v1/datasets/%s/samples/%d", id, i);
        json_t *one =
            json_pack("{s:i, s:s, s:s, s:s, s:s+, s:s+}", "index", i, "name", got[i].name,
                      "conditioning_name", got[i].cond_name, "caption", got[i].caption, "image",
                      href, "?part=image", "conditioning_image", href, "?part=conditioning_image");
        if (!one || json_array_append_new(list, one)) json_decref(list), list = NULL;
    }
    upload_samples_free(got, n);
    if (!list) return http_reply_error(s, c, r, 503, "out_of_memory", NULL, "out of memory");
    return http_reply_json(s, c, r, 200, json_pack("{s:o}", "samples", list));
}

/* PNG or JPEG by their signatures; anything else is served as bytes. */
static const char *image_type(const uint8_t *p, size_t n) {
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return "image/jpeg";
    return "application/octet-stream";
}

enum MHD_Result http_datasets_sample(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *part = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "part");
    int cond = part && !strcmp(part, "conditioning_image");
    if (part && !cond && strcmp(part, "image"))
        return http_reply_error(s, c, r, 400, "invalid_parameter", "part",
                                "part is image or conditioning_image");
    char *end;
    long long index = strtoll(r->params[1], &end, 10);
    if (*end || index < 0)
        return http_reply_error(s, c, r, 404, "not_found", NULL, "no sample %.64s", r->params[1]);
    upload_sample got;
    int n = 0;
    jobs_dataset d;
    cnet_error err = {0};
    int rc = http_datasets_ready(s, r->params[0], &d, &err);
    jobs_dataset_clear(&d);
    if (!rc) rc = upload_samples(s->datasets_dir, r->params[0], index, 1, 1, &got, &n, &err);
    if (!rc && n == 0) rc = cnet_fail(&err, CNET_ENOTFOUND, "no sample %lld", index);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    uint8_t *bytes = cond ? got.cond : got.image;
    size_t len = cond ? got.cond_len : got.image_len;
    if (cond)
        got.cond = NULL;
    else
        got.image = NULL;
    upload_samples_free(&got, 1);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, bytes, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(bytes);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", image_type(bytes, len));
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    return http_reply_response(s, c, r, 200, resp);
}
