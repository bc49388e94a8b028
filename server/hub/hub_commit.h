/* The commit call (NDJSON: a header line, then one line per added file;
 * regular files inline as base64, LFS files by oid) and reading a branch
 * head. The commit POST is sent exactly once here; hub_push decides whether
 * a lost answer may be repeated. Reference: HUB.md §4 step D;
 * huggingface_hub _commit_api.py (_payload_as_ndjson). */
#ifndef CNET_HUB_COMMIT_H
#define CNET_HUB_COMMIT_H

#include <jansson.h>

#include "server/hub/hub_cache.h"
#include "server/hub/hub_push.h"

typedef enum {
    HUB_COMMIT_OK,
    HUB_COMMIT_UNKNOWN, /* no answer, a transient status or 412 (head moved): it may or may
                           not have landed */
    HUB_COMMIT_FAILED,  /* a definite refusal (err filled) */
} hub_commit_outcome;

/* Commits the changed files (not unchanged/ignored) of files[0..n).
 * parent may be NULL. On HUB_COMMIT_OK fills commit and commit_url. */
hub_commit_outcome hub_commit(hub_client *c, const char *repo_id, const char *revision,
                              const char *message, const char *parent, const hub_push_file *files,
                              int n, char commit[41], char *commit_url, size_t url_cap,
                              cnet_error *err);

/* GET /api/{models|datasets}/{repo}/revision/{rev}: the commit sha into
 * head, and the whole answer (with the "siblings" file list) into *info
 * when info is non-NULL (json_decref it). */
int hub_repo_info(hub_client *c, hub_repo_type type, const char *repo_id, const char *revision,
                  json_t **info, char head[41], cnet_error *err);
/* The commit a model repo's revision points at. */
int hub_repo_head(hub_client *c, const char *repo_id, const char *revision, char head[41],
                  cnet_error *err);

#endif
