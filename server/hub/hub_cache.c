/* huggingface_hub cache layout (see hub_cache.h). */
#include "server/hub/hub_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/hub_ref.h"

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void hub_cache_root(const char *explicit_dir, char out[HUB_PATH_MAX]) {
    const char *v;
    if (explicit_dir && *explicit_dir)
        snprintf(out, HUB_PATH_MAX, "%s", explicit_dir);
    else if ((v = env("HF_HUB_CACHE")))
        snprintf(out, HUB_PATH_MAX, "%s", v);
    else if ((v = env("HF_HOME")))
        snprintf(out, HUB_PATH_MAX, "%s/hub", v);
    else if ((v = env("XDG_CACHE_HOME")))
        snprintf(out, HUB_PATH_MAX, "%s/huggingface/hub", v);
    else
        snprintf(out, HUB_PATH_MAX, "%s/.cache/huggingface/hub", env("HOME") ? env("HOME") : ".");
}

const char *hub_repo_api_word(hub_repo_type t) {
    return t == HUB_REPO_DATASET ? "datasets" : "models";
}

const char *hub_repo_url_prefix(hub_repo_type t) {
    return t == HUB_REPO_DATASET ? "datasets/" : "";
}

int hub_cache_repo_dir(const char *root, hub_repo_type type, const char *repo_id,
                       char out[HUB_PATH_MAX], cnet_error *err) {
    int rc = hub_repo_id_check(repo_id, err);
    if (rc != 0) return rc;
    const char *slash = strchr(repo_id, '/');
    int n = snprintf(out, HUB_PATH_MAX, "%s/%s--%.*s--%s", root, hub_repo_api_word(type),
                     (int)(slash - repo_id), repo_id, slash + 1);
    if (n < 0 || n >= HUB_PATH_MAX)
        return cnet_fail(err, CNET_ELIMIT, "cache path for %s under %s is too long", repo_id, root);
    return 0;
}

int hub_mkdirs(const char *dir, cnet_error *err) {
    char p[HUB_PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return cnet_fail(err, CNET_ELIMIT, "path too long: %.200s", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return cnet_fail(err, CNET_EIO, "cannot create directory %s: %s", p,
                                 strerror(errno));
            *s = saved;
            if (!saved) break;
        }
    }
    return 0;
}

int hub_cache_read_ref(const char *repo_dir, const char *rev, char commit[41], cnet_error *err) {
    if (hub_is_commit(rev)) {
        memcpy(commit, rev, 41);
        return 0;
    }
    char path[HUB_PATH_MAX];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    FILE *f = fopen(path, "r");
    if (!f)
        return cnet_fail(err, CNET_ENOTFOUND, "revision '%s' is not in the cache (%s)", rev, path);
    char buf[64] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!hub_is_commit(buf))
        return cnet_fail(err, CNET_EFORMAT, "%s does not hold a commit id", path);
    memcpy(commit, buf, 41);
    return 0;
}

int hub_cache_write_ref(const char *repo_dir, const char *rev, const char *commit,
                        cnet_error *err) {
    if (strcmp(rev, commit) == 0) return 0;
    char path[HUB_PATH_MAX], tmp[HUB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = hub_mkdirs(path, err);
    *slash = '/';
    if (rc != 0) return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return cnet_fail(err, CNET_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int bad = fputs(commit, f) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return cnet_fail(err, CNET_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

int hub_cache_link(const char *repo_dir, const char *commit, const char *path, const char *etag,
                   cnet_error *err) {
    char link[HUB_PATH_MAX], target[HUB_PATH_MAX], tmp[HUB_PATH_MAX + 16];
    if (snprintf(link, sizeof link, "%s/snapshots/%s/%s", repo_dir, commit, path) >=
        (int)sizeof link)
        return cnet_fail(err, CNET_ELIMIT, "cache path for %s is too long", path);
    char *slash = strrchr(link, '/');
    *slash = '\0';
    int rc = hub_mkdirs(link, err);
    *slash = '/';
    if (rc != 0) return rc;
    /* snapshots/<commit>/a/b/file → ../../../../blobs/<etag>: two levels plus
     * one per directory in path. */
    size_t o = 0;
    target[0] = '\0';
    for (const char *p = path;; p++) {
        if (p == path || *p == '/') o += (size_t)snprintf(target + o, sizeof target - o, "../");
        if (!*p) break;
    }
    snprintf(target + o, sizeof target - o, "../blobs/%s", etag);
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", link, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        unlink(tmp);
        return cnet_fail(err, CNET_EIO, "cannot create the cache link %s: %s", link,
                         strerror(errno));
    }
    return 0;
}
