/* Git LFS uploads: the batch call, then basic (one PUT) or multipart
 * (PUT per part + completion POST) transfers, then verify when offered.
 * Objects without an upload action are already stored and are not sent.
 * Storage URLs get no Authorization header; verify (a Hub route) does.
 * Reference: HUB.md §4 step C; huggingface_hub lfs.py; git-lfs batch API. */
#ifndef CNET_HUB_LFS_H
#define CNET_HUB_LFS_H

#include "server/hub/hub_push.h"

/* Uploads files[0..n) (all in LFS mode) to repo_id at revision; marks
 * lfs_present on those already stored and counts into r. */
int hub_lfs_upload(hub_client *c, const char *repo_id, const char *revision, hub_push_file **files,
                   int n, const hub_push_opts *o, hub_push_result *r, cnet_error *err);

#endif
