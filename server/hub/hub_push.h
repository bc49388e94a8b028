/* Publishing a trained ControlNet output directory to a Hub model repo:
 * select files → hash → create repo → preupload → LFS upload → one commit.
 *
 * Only what a user means to publish goes up, and only from the top level of
 * the directory: config.json, *.safetensors weights, README.md (model card)
 * and validation images (*.png, *.jpg, *.jpeg). Never checkpoint-* directories,
 * optimizer/scheduler/RNG state, logs, or symlinks.
 *
 * Idempotent, so a job re-run after a crash makes no second commit: files
 * whose remote oid equals the local one are skipped; when nothing changed
 * no commit is made and the existing head is reported; LFS objects the batch
 * API says are stored are not sent again; the commit carries parentCommit
 * and a commit whose answer was lost is never blindly repeated — the branch
 * head is re-read and the remote files compared first (HUB.md §4, §7).
 * Reference: huggingface_hub hf_api.upload_folder / create_commit. */
#ifndef CNET_HUB_PUSH_H
#define CNET_HUB_PUSH_H

#include "engine/core/error.h"
#include "server/hub/hub_hash.h"
#include "server/hub/hub_http.h"

#define HUB_PUSH_FILES_MAX 1000      /* files in one push (Hub: ~100 per commit advised) */
#define HUB_PREUPLOAD_BATCH 256      /* files per preupload call (huggingface_hub) */
#define HUB_LFS_BATCH 256            /* objects per LFS batch call */
#define HUB_INLINE_MAX (100LL << 20) /* largest "regular" file sent inline in the commit */
#define HUB_DEFAULT_COMMIT_MESSAGE "Upload ControlNet trained with cnet"

typedef enum {
    HUB_PUSH_HASH,   /* hashing local files: done/total = files */
    HUB_PUSH_CHECK,  /* create repo + preupload: done/total = files */
    HUB_PUSH_UPLOAD, /* LFS transfers: done/total = bytes */
    HUB_PUSH_COMMIT, /* sending the commit */
    HUB_PUSH_DONE,
} hub_push_phase;

typedef struct hub_push_progress {
    hub_push_phase phase;
    const char *file; /* current file name, may be NULL */
    long long done, total;
} hub_push_progress;

typedef void (*hub_push_progress_fn)(void *ctx, const hub_push_progress *p);

typedef struct hub_push_opts {
    const char *repo_id;       /* "namespace/name" */
    const char *dir;           /* the training output directory */
    const char *revision;      /* branch, default "main" */
    const char *message;       /* commit summary, default HUB_DEFAULT_COMMIT_MESSAGE */
    int private_repo;          /* visibility when the repo is created */
    const char *parent_commit; /* optional: the commit must apply on top of this head */
    hub_push_progress_fn progress;
    void *progress_ctx;
} hub_push_opts;

typedef struct hub_push_result {
    char commit[41];      /* the head holding the files (new or existing) */
    char commit_url[512]; /* from the commit response, empty when no commit */
    int created_commit;   /* 0: every file was already identical */
    int files;            /* files selected */
    int unchanged;        /* skipped: identical remote oid */
    int lfs_uploaded;     /* LFS objects sent */
    int lfs_present;      /* LFS objects the server already had */
    int inline_files;     /* regular files sent in the commit */
} hub_push_result;

/* One selected file and what the Hub said about it (internal to the push
 * modules, exposed for hub_lfs/hub_commit and tests). */
typedef struct hub_push_file {
    char name[256];  /* path in the repo */
    char path[4352]; /* local path */
    hub_file_hash hash;
    int lfs;         /* preupload said "lfs" */
    int unchanged;   /* remote oid equals the local one */
    int ignored;     /* preupload said shouldIgnore */
    int lfs_present; /* the LFS batch said the object is stored */
} hub_push_file;

/* 1 if a top-level entry named `name` is published by a push. */
int hub_push_selects(const char *name);

/* Pushes o->dir to o->repo_id; fills r. */
int hub_push(hub_client *c, const hub_push_opts *o, hub_push_result *r, cnet_error *err);

#endif
