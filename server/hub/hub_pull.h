/* Downloading a Hub model or dataset repo into the local cache (hub_cache.h
 * layout).
 *
 * Online: the revision is resolved to a commit (GET /api/{models|datasets}/
 * {repo}/revision/{rev}), files are listed from its siblings and filtered by the
 * include globs, each file's metadata comes from HEAD resolve/{commit}/{path}
 * (ETag or X-Linked-Etag, size, X-Repo-Commit; relative redirects followed
 * with the token, absolute ones are storage and get none), and blobs missing
 * from the cache are downloaded into blobs/<etag>.incomplete — resumed with
 * Range when a previous attempt left one — then checked (size, and the
 * SHA-256 or git blob SHA-1 the etag names) and renamed into place. A failed
 * or disk-full download never leaves a blob that is not verified.
 * Offline (or HF_HUB_OFFLINE=1): only the cache is read. A model named by
 * the user is pulled through hub_model.h, which picks the files.
 * Reference: HUB.md §6; huggingface_hub file_download.py, _snapshot_download.py. */
#ifndef CNET_HUB_PULL_H
#define CNET_HUB_PULL_H

#include "server/hub/hub_cache.h"
#include "server/hub/hub_http.h"

#define HUB_PULL_FILES_MAX 10000 /* files listed in one repo */
#define HUB_MAX_REDIRECTS 5      /* relative redirects followed on the Hub host */

typedef struct hub_pull_opts {
    hub_repo_type repo_type; /* default HUB_REPO_MODEL */
    const char *repo_id;
    const char *revision;       /* default "main" */
    const char *const *include; /* NULL-terminated globs (fnmatch on the path), or NULL = all */
    const char *const *exclude; /* of those, none matching these globs; NULL = none */
    const char *cache_dir;      /* NULL = default root (hub_cache.h) */
    int offline;
    /* A downloaded file's progress: called as its bytes land (done < total:
     * the bytes in its .incomplete file, a resumed prefix included), then
     * once with done == total when it is verified and in place. Files
     * already cached are not reported. NULL: quiet. */
    void (*progress)(void *ctx, const char *file, long long done, long long total);
    void *progress_ctx;
    /* Asked (with progress_ctx) before each file and while one downloads:
     * nonzero stops the pull (CNET_EIO, "stopped"; what landed stays in
     * the cache, a partial file as its resumable .incomplete). NULL: never. */
    int (*should_stop)(void *ctx);
} hub_pull_opts;

typedef struct hub_pull_result {
    char commit[41];
    int files;       /* files in the snapshot that matched */
    int downloaded;  /* blobs fetched now */
    int cached;      /* blobs already present */
    long long bytes; /* bytes fetched now */
} hub_pull_result;

/* Pulls a repo; writes the snapshot directory into snapshot. c may be NULL
 * when offline. */
int hub_pull(hub_client *c, const hub_pull_opts *o, char snapshot[HUB_PATH_MAX], hub_pull_result *r,
             cnet_error *err);

#endif
