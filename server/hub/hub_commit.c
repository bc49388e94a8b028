/* NDJSON commit and branch head lookup (see hub_commit.h). */
#include "server/hub/hub_commit.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/hub_ref.h"
#include "server/hub/hub_encode.h"
#include "server/hub/hub_retry.h"

/* Reads a whole (small, "regular") file. */
static int read_small(const char *path, long long size, unsigned char **out, cnet_error *err) {
    if (size > HUB_INLINE_MAX)
        return cnet_fail(err, CNET_ELIMIT,
                         "%s: %lld bytes is too large to send inline (limit %lld); the Hub "
                         "should have asked for LFS",
                         path, size, HUB_INLINE_MAX);
    FILE *f = fopen(path, "rb");
    if (!f) return cnet_fail(err, CNET_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *buf = malloc((size_t)size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)size, f) : 0;
    int extra = buf ? fgetc(f) : EOF;
    fclose(f);
    if (!buf) return cnet_fail(err, CNET_ENOMEM, "reading %s: out of memory", path);
    if (got != (size_t)size || extra != EOF) {
        free(buf);
        return cnet_fail(err, CNET_EIO, "%s changed size since it was hashed", path);
    }
    *out = buf;
    return 0;
}

static int add_line(char **body, size_t *len, json_t *line, cnet_error *err) {
    char *s = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (!s) return cnet_fail(err, CNET_ENOMEM, "building the commit: out of memory");
    size_t n = strlen(s);
    char *grown = realloc(*body, *len + n + 2);
    if (!grown) {
        free(s);
        return cnet_fail(err, CNET_ENOMEM, "building the commit: out of memory");
    }
    memcpy(grown + *len, s, n);
    grown[*len + n] = '\n';
    grown[*len + n + 1] = '\0';
    *body = grown;
    *len += n + 1;
    free(s);
    return 0;
}

/* A changed file as one NDJSON line. */
static int file_line(const hub_push_file *f, char **body, size_t *len, cnet_error *err) {
    if (f->lfs)
        return add_line(body, len,
                        json_pack("{s:s, s:{s:s, s:s, s:s, s:I}}", "key", "lfsFile", "value",
                                  "path", f->name, "algo", "sha256", "oid", f->hash.sha256, "size",
                                  (json_int_t)f->hash.size),
                        err);
    unsigned char *data = NULL;
    int rc = read_small(f->path, f->hash.size, &data, err);
    if (rc != 0) return rc;
    char sha256[65], sha1[41];
    hub_hash_mem(data, (size_t)f->hash.size, sha256, sha1);
    char *b64 = strcmp(sha1, f->hash.git_sha1) == 0 ? hub_base64(data, (size_t)f->hash.size) : NULL;
    free(data);
    if (strcmp(sha1, f->hash.git_sha1) != 0)
        return cnet_fail(err, CNET_EIO, "%s changed since it was hashed", f->path);
    if (!b64) return cnet_fail(err, CNET_ENOMEM, "encoding %s: out of memory", f->path);
    rc = add_line(body, len,
                  json_pack("{s:s, s:{s:s, s:s, s:s}}", "key", "file", "value", "path", f->name,
                            "content", b64, "encoding", "base64"),
                  err);
    free(b64);
    return rc;
}

hub_commit_outcome hub_commit(hub_client *c, const char *repo_id, const char *revision,
                              const char *message, const char *parent, const hub_push_file *files,
                              int n, char commit[41], char *commit_url, size_t url_cap,
                              cnet_error *err) {
    char *body = NULL;
    size_t len = 0;
    json_t *value = json_pack("{s:s, s:s}", "summary", message, "description", "");
    if (value && parent) json_object_set_new(value, "parentCommit", json_string(parent));
    if (!value ||
        add_line(&body, &len, json_pack("{s:s, s:o}", "key", "header", "value", value), err) != 0) {
        free(body);
        if (!value) cnet_fail(err, CNET_ENOMEM, "building the commit: out of memory");
        return HUB_COMMIT_FAILED;
    }
    for (int i = 0; i < n; i++) {
        if (files[i].unchanged || files[i].ignored) continue;
        if (file_line(&files[i], &body, &len, err) != 0) {
            free(body);
            return HUB_COMMIT_FAILED;
        }
    }
    char rev[3 * HUB_REVISION_MAX], url[HUB_URL_MAX], what[300];
    hub_url_encode(revision, 0, rev, sizeof rev);
    hub_url(c, url, sizeof url, "/api/models/%s/commit/%s", repo_id, rev);
    snprintf(what, sizeof what, "commit to %s@%s", repo_id, revision);
    hub_request req;
    hub_request_init(&req, "POST", url, what);
    req.auth = 1;
    req.retry = 0; /* never blindly: a lost answer + retry would commit twice */
    req.content_type = "application/x-ndjson";
    req.body = body;
    req.body_len = len;
    hub_response resp;
    int rc = hub_http_do(c, &req, &resp, err);
    free(body);
    if (rc != 0) return HUB_COMMIT_UNKNOWN;
    hub_commit_outcome out = HUB_COMMIT_OK;
    if (resp.status / 100 != 2) {
        hub_http_status_fail(c, &req, &resp, err);
        /* 412: the head is not our parent — perhaps because our own earlier
         * attempt landed; the caller compares before giving up. */
        out = hub_retry_status(resp.status, resp.body) || resp.status == 412 ? HUB_COMMIT_UNKNOWN
                                                                             : HUB_COMMIT_FAILED;
    } else {
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        const char *oid = json_string_value(json_object_get(j, "commitOid"));
        const char *curl_s = json_string_value(json_object_get(j, "commitUrl"));
        if (!hub_is_commit(oid)) {
            cnet_fail(err, CNET_EFORMAT, "%s: response has no valid commitOid", what);
            out = HUB_COMMIT_FAILED;
        } else {
            memcpy(commit, oid, 41);
            snprintf(commit_url, url_cap, "%s", curl_s ? curl_s : "");
        }
        json_decref(j);
    }
    hub_response_free(&resp);
    return out;
}

int hub_repo_info(hub_client *c, hub_repo_type type, const char *repo_id, const char *revision,
                  json_t **info, char head[41], cnet_error *err) {
    char rev[3 * HUB_REVISION_MAX], url[HUB_URL_MAX], what[300];
    hub_url_encode(revision, 0, rev, sizeof rev);
    hub_url(c, url, sizeof url, "/api/%s/%s/revision/%s", hub_repo_api_word(type), repo_id, rev);
    snprintf(what, sizeof what, "reading %s@%s", repo_id, revision);
    hub_request req;
    hub_request_init(&req, "GET", url, what);
    req.auth = 1;
    req.retry = 1;
    hub_response resp;
    int rc = hub_http_expect(c, &req, &resp, err);
    if (rc != 0) return rc;
    json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
    hub_response_free(&resp);
    const char *sha = json_string_value(json_object_get(j, "sha"));
    if (!hub_is_commit(sha)) {
        json_decref(j);
        return cnet_fail(err, CNET_EFORMAT, "%s: the answer has no valid commit \"sha\"", what);
    }
    memcpy(head, sha, 41);
    if (info)
        *info = j;
    else
        json_decref(j);
    return 0;
}

int hub_repo_head(hub_client *c, const char *repo_id, const char *revision, char head[41],
                  cnet_error *err) {
    return hub_repo_info(c, HUB_REPO_MODEL, repo_id, revision, NULL, head, err);
}
