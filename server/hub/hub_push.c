/* Push orchestration: selection, hashing, repo creation, preupload, the
 * idempotent commit (see hub_push.h). */
#include "server/hub/hub_push.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/hub_ref.h"
#include "server/hub/hub_commit.h"
#include "server/hub/hub_encode.h"
#include "server/hub/hub_lfs.h"
#include "server/hub/hub_retry.h"

int hub_push_selects(const char *name) {
    static const char *const include[] = {"config.json", "README.md", "*.safetensors",
                                          "*.png",       "*.jpg",     "*.jpeg"};
    /* Training state that accelerate may leave beside the weights. */
    static const char *const exclude[] = {"optimizer*", "scheduler*", "random_states*", ".*"};
    for (size_t i = 0; i < sizeof exclude / sizeof exclude[0]; i++)
        if (fnmatch(exclude[i], name, 0) == 0) return 0;
    for (size_t i = 0; i < sizeof include / sizeof include[0]; i++)
        if (fnmatch(include[i], name, 0) == 0) return 1;
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const hub_push_file *)a)->name, ((const hub_push_file *)b)->name);
}

/* Lists the selected regular files at the top level of dir, sorted. */
static int list_files(const char *dir, hub_push_file **out, int *n_out, cnet_error *err) {
    DIR *d = opendir(dir);
    if (!d) return cnet_fail(err, CNET_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    hub_push_file *files = NULL;
    int n = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!hub_push_selects(e->d_name)) continue;
        if (strlen(e->d_name) >= sizeof files->name) continue;
        char path[sizeof files->path];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue; /* no dirs, no symlinks */
        if (n == HUB_PUSH_FILES_MAX) {
            rc = cnet_fail(err, CNET_ELIMIT, "%s: more than %d files to push", dir,
                           HUB_PUSH_FILES_MAX);
            break;
        }
        hub_push_file *grown = realloc(files, (size_t)(n + 1) * sizeof *files);
        if (!grown) {
            rc = cnet_fail(err, CNET_ENOMEM, "listing %s: out of memory", dir);
            break;
        }
        files = grown;
        memset(&files[n], 0, sizeof files[n]);
        snprintf(files[n].name, sizeof files[n].name, "%s", e->d_name);
        memcpy(files[n].path, path, sizeof path);
        n++;
    }
    closedir(d);
    if (rc == 0 && n == 0)
        rc = cnet_fail(err, CNET_ENOTFOUND,
                       "nothing to push in %s: expected config.json, *.safetensors, README.md "
                       "or validation images (*.png, *.jpg) at its top level",
                       dir);
    if (rc != 0) {
        free(files);
        return rc;
    }
    qsort(files, (size_t)n, sizeof *files, name_cmp);
    *out = files;
    *n_out = n;
    return 0;
}

static void report(const hub_push_opts *o, hub_push_phase phase, const char *file, long long done,
                   long long total) {
    if (!o->progress) return;
    hub_push_progress p = {phase, file, done, total};
    o->progress(o->progress_ctx, &p);
}

/* POST /api/repos/create; an existing repo is fine (HUB.md §3). */
static int create_repo(hub_client *c, const hub_push_opts *o, cnet_error *err) {
    const char *slash = strchr(o->repo_id, '/');
    json_t *body = json_pack("{s:s, s:s%, s:s, s:b}", "name", slash + 1, "organization", o->repo_id,
                             (size_t)(slash - o->repo_id), "visibility",
                             o->private_repo ? "private" : "public", "private", o->private_repo);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "creating %s: out of memory", o->repo_id);
    char url[HUB_URL_MAX], what[300];
    hub_url(c, url, sizeof url, "/api/repos/create");
    snprintf(what, sizeof what, "creating repo %s", o->repo_id);
    hub_request req;
    hub_request_init_json(&req, "POST", url, what, text);
    hub_response resp;
    int rc = hub_http_do(c, &req, &resp, err);
    free(text);
    if (rc != 0) return rc;
    long status = resp.status;
    if (status / 100 != 2 && status != 409) {
        rc = hub_http_status_fail(c, &req, &resp, err);
        if (status == 401 || status == 402 || status == 403) {
            /* A token that may not create repos may still write to this one. */
            char head[41];
            cnet_error probe;
            if (hub_repo_head(c, o->repo_id, o->revision, head, &probe) == 0) rc = 0;
        }
    }
    hub_response_free(&resp);
    return rc;
}

/* Preupload: upload mode per file and whether the remote copy is identical.
 * Fills head (the branch head the answer refers to) when the Hub sends it. */
static int preupload_batch(hub_client *c, const hub_push_opts *o, hub_push_file *files, int n,
                           char head[41], cnet_error *err) {
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        char *sample = hub_base64(files[i].hash.sample, files[i].hash.sample_len);
        json_array_append_new(list, json_pack("{s:s, s:I, s:s}", "path", files[i].name, "size",
                                              (json_int_t)files[i].hash.size, "sample",
                                              sample ? sample : ""));
        free(sample);
    }
    json_t *body = json_pack("{s:o}", "files", list);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) return cnet_fail(err, CNET_ENOMEM, "preupload: out of memory");
    char rev[3 * HUB_REVISION_MAX], url[HUB_URL_MAX], what[300];
    hub_url_encode(o->revision, 0, rev, sizeof rev);
    hub_url(c, url, sizeof url, "/api/models/%s/preupload/%s", o->repo_id, rev);
    snprintf(what, sizeof what, "preupload to %s@%s", o->repo_id, o->revision);
    hub_request req;
    hub_request_init_json(&req, "POST", url, what, text);
    hub_response resp;
    int rc = hub_http_expect(c, &req, &resp, err);
    free(text);
    if (rc != 0) return rc;
    json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
    const char *commit = json_string_value(json_object_get(j, "commitOid"));
    if (hub_is_commit(commit)) memcpy(head, commit, 41);
    json_t *answers = json_object_get(j, "files");
    for (int i = 0; rc == 0 && i < n; i++) {
        json_t *a = NULL, *x;
        size_t k;
        json_array_foreach(answers, k, x) {
            const char *p = json_string_value(json_object_get(x, "path"));
            if (p && strcmp(p, files[i].name) == 0) a = x;
        }
        const char *mode = json_string_value(json_object_get(a, "uploadMode"));
        if (!mode || (strcmp(mode, "lfs") != 0 && strcmp(mode, "regular") != 0)) {
            rc =
                cnet_fail(err, CNET_EFORMAT, "%s: no valid uploadMode for %s", what, files[i].name);
            break;
        }
        files[i].lfs = strcmp(mode, "lfs") == 0 && files[i].hash.size > 0;
        files[i].ignored = json_is_true(json_object_get(a, "shouldIgnore"));
        const char *remote = json_string_value(json_object_get(a, "oid"));
        const char *local = files[i].lfs ? files[i].hash.sha256 : files[i].hash.git_sha1;
        files[i].unchanged = remote && strcmp(remote, local) == 0;
    }
    json_decref(j);
    hub_response_free(&resp);
    return rc;
}

static int preupload(hub_client *c, const hub_push_opts *o, hub_push_file *files, int n,
                     char head[41], cnet_error *err) {
    head[0] = '\0';
    for (int i = 0; i < n; i += HUB_PREUPLOAD_BATCH) {
        int rc = preupload_batch(
            c, o, files + i, n - i < HUB_PREUPLOAD_BATCH ? n - i : HUB_PREUPLOAD_BATCH, head, err);
        if (rc != 0) return rc;
        report(o, HUB_PUSH_CHECK, NULL, i + HUB_PREUPLOAD_BATCH < n ? i + HUB_PREUPLOAD_BATCH : n,
               n);
    }
    return 0;
}

static int count_changed(const hub_push_file *files, int n) {
    int changed = 0;
    for (int i = 0; i < n; i++) changed += !files[i].unchanged && !files[i].ignored;
    return changed;
}

/* Commits, repeating only after proving the previous attempt did not land:
 * an unchanged head means it did not (and parentCommit would refuse a
 * duplicate anyway); a moved head whose files all equal ours means it did. */
static int commit_safely(hub_client *c, const hub_push_opts *o, hub_push_file *files, int n,
                         const char *parent, hub_push_result *r, cnet_error *err) {
    for (int attempt = 0;; attempt++) {
        report(o, HUB_PUSH_COMMIT, NULL, attempt, HUB_MAX_RETRIES + 1);
        hub_commit_outcome out = hub_commit(c, o->repo_id, o->revision, o->message, parent, files,
                                            n, r->commit, r->commit_url, sizeof r->commit_url, err);
        if (out == HUB_COMMIT_OK) {
            r->created_commit = 1;
            return 0;
        }
        if (out == HUB_COMMIT_FAILED || attempt == HUB_MAX_RETRIES) return err ? err->code : -1;
        cnet_error first = *err;
        hub_client_log(c, "commit to %s: outcome unknown (%s); re-reading the branch head",
                       o->repo_id, err ? err->msg : "");
        c->stats.retries++;
        hub_client_sleep(c, hub_retry_delay(attempt, 0, NULL, NULL));
        char head[41];
        int rc = hub_repo_head(c, o->repo_id, o->revision, head, err);
        if (rc != 0) return rc;
        if (strcmp(head, parent) == 0) continue; /* it did not land: send it again */
        rc = preupload(c, o, files, n, head, err);
        if (rc != 0) return rc;
        if (count_changed(files, n) == 0) { /* it landed; the answer was lost */
            memcpy(r->commit, head, 41);
            r->created_commit = 1;
            return 0;
        }
        return cnet_fail(err, CNET_EIO,
                         "commit to %s@%s: the branch moved from %.12s to %.12s while pushing "
                         "and does not hold our files (%s)",
                         o->repo_id, o->revision, parent, head, first.msg);
    }
}

int hub_push(hub_client *c, const hub_push_opts *opts, hub_push_result *r, cnet_error *err) {
    hub_push_opts o = *opts;
    if (!o.revision) o.revision = "main";
    if (!o.message || !*o.message) o.message = HUB_DEFAULT_COMMIT_MESSAGE;
    memset(r, 0, sizeof *r);
    int rc = hub_repo_id_check(o.repo_id, err);
    if (rc == 0) rc = hub_revision_check(o.revision, err);
    if (rc == 0 && o.parent_commit && !hub_is_commit(o.parent_commit))
        rc = cnet_fail(err, CNET_EINVAL, "parent commit '%.64s' is not a 40-hex commit id",
                       o.parent_commit);
    if (rc != 0) return rc;
    hub_push_file *files = NULL;
    int n = 0;
    rc = list_files(o.dir, &files, &n, err);
    if (rc != 0) return rc;
    r->files = n;
    for (int i = 0; rc == 0 && i < n; i++) {
        report(&o, HUB_PUSH_HASH, files[i].name, i, n);
        rc = hub_hash_file(files[i].path, &files[i].hash, err);
    }
    char head[41] = "";
    if (rc == 0) rc = create_repo(c, &o, err);
    if (rc == 0) rc = preupload(c, &o, files, n, head, err);
    if (rc == 0 && !head[0]) rc = hub_repo_head(c, o.repo_id, o.revision, head, err);
    if (rc != 0) goto done;
    for (int i = 0; i < n; i++) r->unchanged += files[i].unchanged;
    if (count_changed(files, n) == 0) { /* idempotent re-run: nothing to commit */
        memcpy(r->commit, head, 41);
        goto done;
    }
    if (o.parent_commit && strcmp(o.parent_commit, head) != 0) {
        rc = cnet_fail(err, CNET_EINVAL,
                       "%s@%s is at %.12s, not the expected parent %.12s, and differs from %s",
                       o.repo_id, o.revision, head, o.parent_commit, o.dir);
        goto done;
    }
    hub_push_file **lfs = malloc((size_t)n * sizeof *lfs);
    int n_lfs = 0;
    long long lfs_bytes = 0;
    if (!lfs) {
        rc = cnet_fail(err, CNET_ENOMEM, "push: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (files[i].unchanged || files[i].ignored) continue;
        if (files[i].lfs)
            lfs[n_lfs++] = &files[i], lfs_bytes += files[i].hash.size;
        else
            r->inline_files++;
    }
    report(&o, HUB_PUSH_UPLOAD, NULL, 0, lfs_bytes);
    rc = hub_lfs_upload(c, o.repo_id, o.revision, lfs, n_lfs, &o, r, err);
    free(lfs);
    if (rc == 0) rc = commit_safely(c, &o, files, n, head, r, err);
done:
    if (rc == 0) report(&o, HUB_PUSH_DONE, NULL, n, n);
    free(files);
    return rc;
}
