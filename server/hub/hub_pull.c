/* Pull into the huggingface_hub cache, and hf:// references (see hub_pull.h). */
#include "server/hub/hub_pull.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/hub_ref.h"
#include "server/hub/hub_commit.h"
#include "server/hub/hub_encode.h"
#include "server/hub/hub_hash.h"

/* A repo path we are willing to mirror on disk: relative, no '..' or empty
 * components, no backslashes or control characters. */
static int safe_path(const char *p) {
    if (!*p || *p == '/' || strlen(p) >= 1024) return 0;
    for (const char *s = p; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '\\') return 0;
    for (const char *c = p; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
    }
    return 1;
}

static int wanted(const char *path, const char *const *include) {
    if (!include || !include[0]) return 1;
    for (; *include; include++)
        if (fnmatch(*include, path, 0) == 0) return 1;
    return 0;
}

/* ETag normalisation: strip W/ and quotes. Only hex etags are accepted, as
 * they become file names. */
static int clean_etag(const char *raw, char out[65]) {
    if (strncmp(raw, "W/", 2) == 0) raw += 2;
    size_t n = strlen(raw);
    if (n >= 2 && raw[0] == '"' && raw[n - 1] == '"') raw++, n -= 2;
    if (n == 0 || n > 64) return -1;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)raw[i])) return -1;
    memcpy(out, raw, n);
    out[n] = '\0';
    return 0;
}

typedef struct file_meta {
    char etag[65];
    long long size;
    char url[HUB_URL_MAX]; /* where the bytes are */
    int auth;              /* 1 when url is the Hub's own resolve URL */
} file_meta;

/* HEAD resolve/{commit}/{path}, following relative redirects only. */
static int file_metadata(hub_client *c, hub_repo_type type, const char *repo_id, const char *commit,
                         const char *path, file_meta *m, cnet_error *err) {
    char enc[3 * 1024], url[HUB_URL_MAX], what[1200];
    hub_url_encode(path, 1, enc, sizeof enc);
    hub_url(c, url, sizeof url, "/%s%s/resolve/%s/%s", hub_repo_url_prefix(type), repo_id, commit,
            enc);
    snprintf(what, sizeof what, "resolving %s in %s", path, repo_id);
    for (int hop = 0;; hop++) {
        hub_request req;
        hub_request_init(&req, "HEAD", url, what);
        req.auth = 1;
        req.retry = 1;
        hub_response resp;
        int rc = hub_http_do(c, &req, &resp, err);
        if (rc != 0) return rc;
        char v[HUB_URL_MAX], loc[HUB_URL_MAX];
        const char *etag = hub_response_header(&resp, "X-Linked-Etag", v, sizeof v);
        if (!etag) etag = hub_response_header(&resp, "ETag", v, sizeof v);
        if (etag && clean_etag(etag, m->etag) != 0) etag = NULL;
        char size[64];
        const char *sz = hub_response_header(&resp, "X-Linked-Size", size, sizeof size);
        if (!sz) sz = hub_response_header(&resp, "Content-Length", size, sizeof size);
        m->size = sz ? strtoll(sz, NULL, 10) : -1;
        const char *location = hub_response_header(&resp, "Location", loc, sizeof loc);
        long status = resp.status;
        if (status / 100 == 3 && location && location[0] == '/' &&
            !hub_response_header(&resp, "X-Linked-Etag", v, sizeof v)) {
            /* A renamed repo: stay on the Hub, keep the token. */
            hub_response_free(&resp);
            if (hop == HUB_MAX_REDIRECTS)
                return cnet_fail(err, CNET_EIO, "%s: more than %d redirects", what,
                                 HUB_MAX_REDIRECTS);
            if (hub_url(c, url, sizeof url, "%s", location) != 0)
                return cnet_fail(err, CNET_ELIMIT, "%s: redirect URL too long", what);
            continue;
        }
        if (status / 100 != 2 && status / 100 != 3) {
            rc = hub_http_status_fail(c, &req, &resp, err);
            hub_response_free(&resp);
            return rc;
        }
        hub_response_free(&resp);
        if (!etag || m->size < 0)
            return cnet_fail(err, CNET_EFORMAT, "%s: the answer has no usable ETag or size", what);
        if (status / 100 == 3) {
            if (!location)
                return cnet_fail(err, CNET_EFORMAT, "%s: redirect without Location", what);
            if (location[0] == '/') {
                if (hub_url(c, m->url, sizeof m->url, "%s", location) != 0)
                    return cnet_fail(err, CNET_ELIMIT, "%s: redirect URL too long", what);
                m->auth = 1;
            } else {
                snprintf(m->url, sizeof m->url, "%s", location);
                m->auth = 0; /* storage / CDN: never the token */
            }
        } else {
            snprintf(m->url, sizeof m->url, "%s", url);
            m->auth = 1;
        }
        return 0;
    }
}

/* Checks a finished download against the etag (sha256 or git sha1) and size. */
static int verify_blob(const char *path, const char *file, const file_meta *m, cnet_error *err) {
    hub_file_hash h;
    int rc = hub_hash_file(path, &h, err);
    if (rc != 0) return rc;
    const char *got = strlen(m->etag) == 64 ? h.sha256 : strlen(m->etag) == 40 ? h.git_sha1 : NULL;
    if (h.size != m->size)
        return cnet_fail(err, CNET_EFORMAT, "download of %s has %lld bytes, expected %lld", file,
                         h.size, m->size);
    if (got && strcmp(got, m->etag) != 0)
        return cnet_fail(err, CNET_EFORMAT, "download of %s is corrupt: hash %s, expected %s", file,
                         got, m->etag);
    return 0;
}

/* A download's bytes so far, reported as the file's progress. */
typedef struct blob_progress {
    const hub_pull_opts *o;
    const char *file;
    long long total;
} blob_progress;

static int on_blob_bytes(void *ctx, long long bytes) {
    const blob_progress *p = ctx;
    /* done == total is said once, when the file is verified and in place */
    if (p->o->progress && bytes < p->total)
        p->o->progress(p->o->progress_ctx, p->file, bytes, p->total);
    return p->o->should_stop && p->o->should_stop(p->o->progress_ctx);
}

/* Fetches blobs/<etag> unless present. Returns 1 if downloaded, 0 if cached. */
static int fetch_blob(hub_client *c, const char *repo_dir, const char *file, const file_meta *m,
                      const hub_pull_opts *o, long long *bytes, cnet_error *err) {
    char blob[HUB_PATH_MAX], part[HUB_PATH_MAX + 16];
    if (snprintf(blob, sizeof blob, "%s/blobs/%s", repo_dir, m->etag) >= (int)sizeof blob)
        return cnet_fail(err, CNET_ELIMIT, "cache path too long under %.200s", repo_dir);
    snprintf(part, sizeof part, "%s.incomplete", blob);
    struct stat st;
    if (stat(blob, &st) == 0 && st.st_size == m->size) return 0;
    char dir[HUB_PATH_MAX];
    memcpy(dir, blob, sizeof dir);
    *strrchr(dir, '/') = '\0';
    int rc = hub_mkdirs(dir, err);
    if (rc != 0) return rc;
    int fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "cannot create %s: %s", part, strerror(errno));
    off_t have = lseek(fd, 0, SEEK_END);
    if (have > m->size && ftruncate(fd, 0) != 0) have = -1;
    if (have < 0) {
        close(fd);
        return cnet_fail(err, CNET_EIO, "cannot use %s: %s", part, strerror(errno));
    }
    if (have < m->size) {
        char what[1200];
        snprintf(what, sizeof what, "downloading %s", file);
        hub_request req;
        hub_request_init(&req, "GET", m->url, what);
        req.auth = m->auth;
        req.retry = 1;
        req.sink_fd = fd;
        blob_progress bp = {o, file, m->size};
        if (o->progress || o->should_stop) req.on_sink = on_blob_bytes, req.on_sink_ctx = &bp;
        hub_response resp;
        rc = hub_http_expect(c, &req, &resp, err);
        if (rc == 0) {
            *bytes += resp.sink_bytes - have;
            hub_response_free(&resp);
        }
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = cnet_fail(err, CNET_EIO, "cannot flush %s: %s", part, strerror(errno));
    close(fd);
    if (rc != 0) return rc; /* the .incomplete prefix stays for a later resume */
    rc = verify_blob(part, file, m, err);
    if (rc != 0) {
        unlink(part); /* corrupt: never resume from it */
        return rc;
    }
    if (rename(part, blob) != 0)
        return cnet_fail(err, CNET_EIO, "cannot rename %s: %s", part, strerror(errno));
    if (o->progress) o->progress(o->progress_ctx, file, m->size, m->size);
    return 1;
}

/* The commit and the file list of repo@rev. */
static int repo_info(hub_client *c, hub_repo_type type, const char *repo_id, const char *rev,
                     json_t **info, char commit[41], cnet_error *err) {
    int rc = hub_repo_info(c, type, repo_id, rev, info, commit, err);
    if (rc) return rc;
    const json_t *siblings = json_object_get(*info, "siblings");
    if (!json_is_array(siblings) || json_array_size(siblings) > HUB_PULL_FILES_MAX) {
        json_decref(*info);
        return cnet_fail(
            err, json_is_array(siblings) ? CNET_ELIMIT : CNET_EFORMAT, "%s@%s: %s", repo_id, rev,
            json_is_array(siblings) ? "too many files" : "the answer has no file list");
    }
    return 0;
}

static int pull_offline(const char *repo_dir, const hub_pull_opts *o, char snapshot[HUB_PATH_MAX],
                        hub_pull_result *r, cnet_error *err) {
    int rc = hub_cache_read_ref(repo_dir, o->revision, r->commit, err);
    if (rc == 0) {
        struct stat st;
        if (snprintf(snapshot, HUB_PATH_MAX, "%s/snapshots/%s", repo_dir, r->commit) >=
                HUB_PATH_MAX ||
            stat(snapshot, &st) != 0 || !S_ISDIR(st.st_mode))
            rc = cnet_fail(err, CNET_ENOTFOUND, "snapshot %s is missing", snapshot);
    }
    if (rc != 0)
        cnet_error_prefix(err, "%s@%s is not available offline (cache %s); pull it once online",
                          o->repo_id, o->revision, repo_dir);
    return rc;
}

int hub_pull(hub_client *c, const hub_pull_opts *opts, char snapshot[HUB_PATH_MAX],
             hub_pull_result *r, cnet_error *err) {
    hub_pull_opts o = *opts;
    if (!o.revision) o.revision = "main";
    memset(r, 0, sizeof *r);
    const char *env_offline = getenv("HF_HUB_OFFLINE");
    if (env_offline && (strcmp(env_offline, "1") == 0 || strcasecmp(env_offline, "true") == 0))
        o.offline = 1;
    char root[HUB_PATH_MAX], repo_dir[HUB_PATH_MAX];
    hub_cache_root(o.cache_dir, root);
    int rc = hub_revision_check(o.revision, err);
    if (rc == 0) rc = hub_cache_repo_dir(root, o.repo_type, o.repo_id, repo_dir, err);
    if (rc != 0) return rc;
    if (o.offline || !c) return pull_offline(repo_dir, &o, snapshot, r, err);
    json_t *info;
    rc = repo_info(c, o.repo_type, o.repo_id, o.revision, &info, r->commit, err);
    if (rc != 0) return rc;
    json_t *s;
    size_t i;
    json_array_foreach(json_object_get(info, "siblings"), i, s) {
        const char *path = json_string_value(json_object_get(s, "rfilename"));
        if (!path || !safe_path(path)) {
            rc = cnet_fail(err, CNET_EFORMAT, "listing %s: unsafe file name '%.200s'", o.repo_id,
                           path ? path : "(none)");
            break;
        }
        if (!wanted(path, o.include) || (o.exclude && wanted(path, o.exclude))) continue;
        if (o.should_stop && o.should_stop(o.progress_ctx)) {
            rc = cnet_fail(err, CNET_EIO, "pulling %s: stopped", o.repo_id);
            break;
        }
        file_meta m;
        rc = file_metadata(c, o.repo_type, o.repo_id, r->commit, path, &m, err);
        if (rc == 0) rc = fetch_blob(c, repo_dir, path, &m, &o, &r->bytes, err);
        if (rc < 0) break;
        r->downloaded += rc == 1;
        r->cached += rc == 0;
        r->files++;
        rc = hub_cache_link(repo_dir, r->commit, path, m.etag, err);
        if (rc != 0) break;
    }
    json_decref(info);
    if (rc == 0 && r->files == 0)
        rc = cnet_fail(err, CNET_ENOTFOUND, "%s@%s has no files matching the include patterns",
                       o.repo_id, o.revision);
    if (rc == 0) rc = hub_cache_write_ref(repo_dir, o.revision, r->commit, err);
    if (rc == 0 &&
        snprintf(snapshot, HUB_PATH_MAX, "%s/snapshots/%s", repo_dir, r->commit) >= HUB_PATH_MAX)
        rc = cnet_fail(err, CNET_ELIMIT, "cache path too long under %.200s", repo_dir);
    return rc;
}
