/* LFS batch, basic/multipart transfers and verify (see hub_lfs.h). */
#include "server/hub/hub_lfs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HUB_LFS_MEDIA "application/vnd.git-lfs+json"
#define HUB_LFS_PARTS_MAX 10000 /* S3's limit on parts of one multipart upload */

/* Upload progress over all objects of one hub_lfs_upload call, in bytes, as
 * hub_push.h promises for HUB_PUSH_UPLOAD (not per file). */
typedef struct lfs_progress {
    const hub_push_opts *o;
    long long base;  /* bytes of the objects finished before the current one */
    long long total; /* bytes of every object of the call */
} lfs_progress;

static void report(const lfs_progress *p, const char *file, long long done_in_file) {
    if (!p->o->progress) return;
    hub_push_progress r = {HUB_PUSH_UPLOAD, file, p->base + done_in_file, p->total};
    p->o->progress(p->o->progress_ctx, &r);
}

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* PUT of bytes [off, off+len) of fd to a storage URL (never with the token). */
static int put_range(hub_client *c, const char *url, int fd, long long off, long long len,
                     const char *what, char *etag, size_t etag_cap, cnet_error *err) {
    hub_request req;
    hub_request_init(&req, "PUT", url, what);
    req.retry = 1;
    req.body_fd = fd;
    req.body_off = off;
    req.body_len_file = len;
    hub_response resp;
    int rc = hub_http_expect(c, &req, &resp, err);
    if (rc != 0) return rc;
    if (etag && !hub_response_header(&resp, "ETag", etag, etag_cap))
        rc = cnet_fail(err, CNET_EFORMAT, "%s: storage answered without an ETag header", what);
    hub_response_free(&resp);
    return rc;
}

/* POST of a JSON body to a Hub href (completion, verify). */
static int post_json(hub_client *c, const char *url, int auth, json_t *body, json_t *headers,
                     const char *what, cnet_error *err) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char *lines[32] = {0};
    char store[31][512];
    int nl = 0;
    const char *k;
    json_t *v;
    json_object_foreach(headers, k, v) {
        if (nl == 31 || !json_is_string(v) || strcasecmp(k, "Authorization") == 0) continue;
        snprintf(store[nl], sizeof store[nl], "%s: %s", k, json_string_value(v));
        lines[nl] = store[nl];
        nl++;
    }
    if (!text) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", what);
    hub_request req;
    hub_request_init(&req, "POST", url, what);
    req.auth = auth;
    req.retry = 1;
    req.content_type = HUB_LFS_MEDIA;
    req.accept = HUB_LFS_MEDIA;
    req.headers = lines;
    req.body = text;
    req.body_len = strlen(text);
    hub_response resp;
    int rc = hub_http_expect(c, &req, &resp, err);
    free(text);
    if (rc == 0) hub_response_free(&resp);
    return rc;
}

typedef struct part {
    long number;
    const char *url;
} part;

static int part_cmp(const void *a, const void *b) {
    long x = ((const part *)a)->number, y = ((const part *)b)->number;
    return (x > y) - (x < y);
}

static int multipart(hub_client *c, hub_push_file *f, int fd, json_t *upload, const lfs_progress *p,
                     cnet_error *err) {
    json_t *header = json_object_get(upload, "header");
    const char *href = json_string_value(json_object_get(upload, "href"));
    char *end;
    long long chunk = strtoll(json_string_value(json_object_get(header, "chunk_size")), &end, 10);
    long long size = f->hash.size;
    if (!href || *end || chunk <= 0)
        return cnet_fail(err, CNET_EFORMAT, "LFS batch for %s: bad multipart chunk_size or href",
                         f->name);
    long long expected = (size + chunk - 1) / chunk;
    if (expected > HUB_LFS_PARTS_MAX)
        return cnet_fail(err, CNET_ELIMIT, "LFS batch for %s: %lld parts (limit %d)", f->name,
                         expected, HUB_LFS_PARTS_MAX);
    part *parts = calloc((size_t)expected + 1, sizeof *parts);
    if (!parts) return cnet_fail(err, CNET_ENOMEM, "multipart %s: out of memory", f->name);
    long np = 0;
    int bad = 0;
    const char *k;
    json_t *v;
    json_object_foreach(header, k, v) {
        if (!all_digits(k)) continue;
        if (np == expected || !json_is_string(v)) {
            bad = 1;
            break;
        }
        parts[np].number = strtol(k, NULL, 10);
        parts[np++].url = json_string_value(v);
    }
    if (np != expected) bad = 1;
    if (!bad) qsort(parts, (size_t)np, sizeof *parts, part_cmp);
    for (long i = 0; !bad && i < np; i++)
        if (parts[i].number != i + 1) bad = 1;
    int rc = 0;
    if (bad)
        rc = cnet_fail(err, CNET_EFORMAT,
                       "LFS batch for %s: multipart parts are not numbered 1..%lld (size %lld, "
                       "chunk %lld)",
                       f->name, expected, size, chunk);
    json_t *etags = json_array();
    for (long i = 0; rc == 0 && i < expected; i++) {
        char what[400], etag[256];
        snprintf(what, sizeof what, "uploading %s part %ld/%lld", f->name, i + 1, expected);
        long long off = i * chunk, len = size - off < chunk ? size - off : chunk;
        rc = put_range(c, parts[i].url, fd, off, len, what, etag, sizeof etag, err);
        if (rc == 0)
            json_array_append_new(
                etags, json_pack("{s:I, s:s}", "partNumber", (json_int_t)(i + 1), "etag", etag));
        report(p, f->name, off + len);
    }
    free(parts);
    if (rc != 0) {
        json_decref(etags);
        return rc;
    }
    char what[400];
    snprintf(what, sizeof what, "completing the multipart upload of %s", f->name);
    /* The completion href is pre-signed like the parts: no token. */
    return post_json(c, href, 0, json_pack("{s:s, s:o}", "oid", f->hash.sha256, "parts", etags),
                     NULL, what, err);
}

/* Uploads one object given its batch entry. */
static int transfer(hub_client *c, hub_push_file *f, json_t *obj, const lfs_progress *p,
                    hub_push_result *r, cnet_error *err) {
    json_t *error = json_object_get(obj, "error");
    if (error)
        return cnet_fail(err, CNET_EIO, "LFS batch refused %s: %lld %s", f->name,
                         (long long)json_integer_value(json_object_get(error, "code")),
                         json_string_value(json_object_get(error, "message"))
                             ? json_string_value(json_object_get(error, "message"))
                             : "");
    json_t *actions = json_object_get(obj, "actions");
    json_t *upload = json_object_get(actions, "upload");
    if (!upload) { /* Already stored: nothing to send. */
        f->lfs_present = 1;
        r->lfs_present++;
        report(p, f->name, f->hash.size);
        return 0;
    }
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "cannot open %s: %s", f->path, strerror(errno));
    int rc;
    if (json_object_get(json_object_get(upload, "header"), "chunk_size")) {
        rc = multipart(c, f, fd, upload, p, err);
    } else {
        const char *href = json_string_value(json_object_get(upload, "href"));
        char what[400];
        snprintf(what, sizeof what, "uploading %s", f->name);
        rc = href ? put_range(c, href, fd, 0, f->hash.size, what, NULL, 0, err)
                  : cnet_fail(err, CNET_EFORMAT, "LFS batch for %s: upload action has no href",
                              f->name);
        if (rc == 0) report(p, f->name, f->hash.size);
    }
    close(fd);
    json_t *verify = json_object_get(actions, "verify");
    const char *vhref = json_string_value(json_object_get(verify, "href"));
    if (rc == 0 && vhref) {
        char what[400];
        snprintf(what, sizeof what, "verifying the upload of %s", f->name);
        rc = post_json(
            c, vhref, 1,
            json_pack("{s:s, s:I}", "oid", f->hash.sha256, "size", (json_int_t)f->hash.size),
            json_object_get(verify, "header"), what, err);
    }
    if (rc == 0) r->lfs_uploaded++;
    return rc;
}

static int batch(hub_client *c, const char *repo_id, const char *revision, hub_push_file **files,
                 int n, lfs_progress *p, hub_push_result *r, cnet_error *err) {
    json_t *objects = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(objects, json_pack("{s:s, s:I}", "oid", files[i]->hash.sha256, "size",
                                                 (json_int_t)files[i]->hash.size));
    json_t *body =
        json_pack("{s:s, s:[s,s], s:o, s:s, s:{s:s}}", "operation", "upload", "transfers", "basic",
                  "multipart", "objects", objects, "hash_algo", "sha256", "ref", "name", revision);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "LFS batch: out of memory");
    char url[HUB_URL_MAX], what[300];
    hub_url(c, url, sizeof url, "/%s.git/info/lfs/objects/batch", repo_id);
    snprintf(what, sizeof what, "LFS batch for %s", repo_id);
    hub_request req;
    hub_request_init(&req, "POST", url, what);
    req.auth = 1;
    req.retry = 1;
    req.content_type = HUB_LFS_MEDIA;
    req.accept = HUB_LFS_MEDIA;
    req.body = text;
    req.body_len = strlen(text);
    hub_response resp;
    int rc = hub_http_expect(c, &req, &resp, err);
    free(text);
    if (rc != 0) return rc;
    json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
    json_t *objs = json_object_get(j, "objects");
    for (int i = 0; rc == 0 && i < n; i++) {
        json_t *match = NULL, *obj;
        size_t k;
        json_array_foreach(objs, k, obj) {
            if (json_string_value(json_object_get(obj, "oid")) &&
                strcmp(json_string_value(json_object_get(obj, "oid")), files[i]->hash.sha256) == 0)
                match = obj;
        }
        rc = match ? transfer(c, files[i], match, p, r, err)
                   : cnet_fail(err, CNET_EFORMAT, "%s: the response does not mention %s (%s)", what,
                               files[i]->name, files[i]->hash.sha256);
        p->base += files[i]->hash.size;
    }
    json_decref(j);
    hub_response_free(&resp);
    return rc;
}

int hub_lfs_upload(hub_client *c, const char *repo_id, const char *revision, hub_push_file **files,
                   int n, const hub_push_opts *o, hub_push_result *r, cnet_error *err) {
    lfs_progress p = {.o = o};
    for (int i = 0; i < n; i++) p.total += files[i]->hash.size;
    for (int i = 0; i < n; i += HUB_LFS_BATCH) {
        int rc = batch(c, repo_id, revision, files + i,
                       n - i < HUB_LFS_BATCH ? n - i : HUB_LFS_BATCH, &p, r, err);
        if (rc != 0) return rc;
    }
    return 0;
}
