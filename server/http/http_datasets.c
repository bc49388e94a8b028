/* POST /v1/datasets, GET /v1/datasets and the previews of a dataset's first
 * samples. The archive (tar, tar.gz/bz2/xz/zst or zip) or Parquet file
 * arrives as the raw request body, which http_server.c has already streamed
 * to a temp file under <data>/tmp with the size cap applied; here it is
 * extracted or stored and checked (server/store/uploads.c) and the report
 * returned. GET /v1/datasets/{id}/samples lists the first samples (name,
 * caption, image links); GET /v1/datasets/{id}/samples/{n}?part=image or
 * conditioning_image serves one image's stored bytes (uploads_preview.c).
 * Not here: multipart forms (the body is the archive). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/http/http_internal.h"

enum MHD_Result http_datasets_create(http_server *s, struct MHD_Connection *c, http_req *r) {
    if (r->fd < 0 || r->received == 0)
        return http_reply_error(s, c, r, 400, "invalid_dataset", NULL,
                                "the body must be a tar or zip archive or a Parquet file");
    close(r->fd);
    r->fd = -1;
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
    char id[UPLOAD_ID_MAX];
    json_t *report = NULL;
    cnet_error err = {0};
    int rc = upload_ingest(r->tmp_path, s->datasets_dir, name, &s->cfg.dataset, id, &report, &err);
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
    json_t *list;
    cnet_error err = {0};
    int rc = upload_list(s->datasets_dir, &list, &err);
    if (rc) return http_reply_status_error(s, c, r, rc, &err);
    return http_reply_json(s, c, r, 200, json_pack("{s:o}", "datasets", list));
}

enum MHD_Result http_datasets_samples(http_server *s, struct MHD_Connection *c, http_req *r) {
    const char *id = r->params[0];
    upload_sample got[UPLOAD_PREVIEW_MAX];
    int n;
    cnet_error err = {0};
    int rc = upload_samples(s->datasets_dir, id, 0, UPLOAD_PREVIEW_MAX, 0, got, &n, &err);
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
    int n;
    cnet_error err = {0};
    int rc = upload_samples(s->datasets_dir, r->params[0], index, 1, 1, &got, &n, &err);
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
