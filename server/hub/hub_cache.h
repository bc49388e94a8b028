/* The local model cache, in huggingface_hub's layout so an existing HF cache
 * is shared both ways:
 *   <root>/models--<ns>--<name>/blobs/<etag>            file contents
 *   <root>/models--<ns>--<name>/blobs/<etag>.incomplete  a download in progress
 *   <root>/models--<ns>--<name>/snapshots/<commit>/<path> relative symlink to a blob
 *   <root>/models--<ns>--<name>/refs/<revision>          the commit a revision resolved to
 * and the same under datasets--<ns>--<name> for dataset repos.
 * root: an explicit dir, else HF_HUB_CACHE, else $HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
 * Not a downloader (hub_pull) and no eviction. Reference: huggingface_hub
 * file_download.py (hf_hub_download, _create_symlink), constants.py. */
#ifndef CNET_HUB_CACHE_H
#define CNET_HUB_CACHE_H

#include <stddef.h>

#include "engine/core/error.h"

#define HUB_PATH_MAX 4096

/* The cache root (explicit may be NULL). */
void hub_cache_root(const char *explicit_dir, char out[HUB_PATH_MAX]);

/* The Hub's repo types cnet reads (HUB.md §1): each has its cache folder
 * prefix ("models--", "datasets--"), API word ("models", "datasets") and
 * file-route prefix ("", "datasets/"). */
typedef enum { HUB_REPO_MODEL, HUB_REPO_DATASET } hub_repo_type;
const char *hub_repo_api_word(hub_repo_type t);
const char *hub_repo_url_prefix(hub_repo_type t);

/* <root>/models--ns--name, or datasets--ns--name */
int hub_cache_repo_dir(const char *root, hub_repo_type type, const char *repo_id,
                       char out[HUB_PATH_MAX], cnet_error *err);

/* The commit a revision points at: rev itself when it is a commit id, else
 * the content of refs/<rev>. CNET_ENOTFOUND when not cached. */
int hub_cache_read_ref(const char *repo_dir, const char *rev, char commit[41], cnet_error *err);

/* Writes refs/<rev> = commit atomically (skipped when rev is the commit). */
int hub_cache_write_ref(const char *repo_dir, const char *rev, const char *commit, cnet_error *err);

/* Creates (or replaces) snapshots/<commit>/<path> as a relative symlink to
 * blobs/<etag>, making parent directories. */
int hub_cache_link(const char *repo_dir, const char *commit, const char *path, const char *etag,
                   cnet_error *err);

/* mkdir -p (mode 0755). */
int hub_mkdirs(const char *dir, cnet_error *err);

#endif
