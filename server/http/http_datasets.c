/* POST /v1/datasets and GET /v1/datasets. The archive arrives as the raw
 * request body (tar, tar.gz/bz2/xz/zst or zip), which http_server.c has
 * already streamed to a temp file under <data>/tmp with the size cap
 * applied; here it is extracted and checked (server/store/uploads.c) and the
 * report returned. Not here: multipart forms (the body is the archive). */
#include <stdio.h>
#include <unistd.h>

#include "server/http/http_internal.h"

enum MHD_Result http_datasets_create(http_server *s, struct MHD_Connection *c, http_req *r) {
    if (r->fd < 0 || r->received == 0)
        return http_reply_error(s, c, r, 400, "invalid_dataset", NULL,
                                "the body must be a tar or zip archive");
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
