/* The datasets registry in the job store: every uploaded dataset has a row
 * (id, name, state, bytes, files, report, created_at) in the same SQLite
 * file or PostgreSQL database as the jobs, so that every node of a shared
 * store lists, resolves and deletes the same datasets whatever its own disk
 * shows. The files stay under <data>/datasets/<id>/ on the shared data dir
 * (server/store/uploads.h); the row says whether they may be used.
 *
 * States: a row is inserted `uploading` before the first byte is stored and
 * becomes `ready` only once the folder is complete and checked; listings and
 * train jobs see ready rows only, so an upload aborted by its client, or cut
 * by a node that crashed, is never listed nor trained on. A crashed node's
 * uploading row stays invisible (its .partial folder is not a dataset).
 *
 * What it is not: no file work (uploads.c extracts and removes folders) and
 * no HTTP (server/http/http_datasets.c orders the two). Data dirs from before
 * the registry are adopted once per store (jobs_dataset_adopt). */
#ifndef CNET_JOBS_DATASETS_H
#define CNET_JOBS_DATASETS_H

#include <stdint.h>

#include "server/store/jobs.h"

#define JOBS_DATASET_ID_MAX 40      /* "d_" + 32 hex digits + NUL */
#define JOBS_DATASET_NAME_MAX 255   /* bytes of a name kept; longer is cut */
#define JOBS_DATASETS_LIST_MAX 1024 /* most datasets one listing returns */

typedef enum { JOBS_DATASET_UPLOADING, JOBS_DATASET_READY } jobs_dataset_state;

typedef struct jobs_dataset {
    char id[JOBS_DATASET_ID_MAX];
    char *name; /* the client's file name, sanitized; "" when none (owned) */
    jobs_dataset_state state;
    int64_t bytes, files; /* stored bytes and archive entries; 0 while uploading */
    char *report_json;    /* upload_ingest's report; NULL while uploading (owned) */
    int64_t created_at;   /* ms since the epoch, the store's clock */
} jobs_dataset;

void jobs_dataset_clear(jobs_dataset *d);

/* Registers upload id as uploading (before its files are stored). */
int jobs_dataset_begin(jobs_store *s, const char *id, const char *name, cnet_error *err);
/* The upload id is complete: ready, with its size and report. CNET_ENOTFOUND
 * when it is not an uploading row (removed meanwhile). */
int jobs_dataset_ready(jobs_store *s, const char *id, int64_t bytes, int64_t files,
                       const char *report_json, cnet_error *err);
/* One dataset, whatever its state; CNET_ENOTFOUND when none. */
int jobs_dataset_get(jobs_store *s, const char *id, jobs_dataset *out, cnet_error *err);
/* The ready datasets, newest first, at most JOBS_DATASETS_LIST_MAX; the
 * caller frees with jobs_dataset_clear on each and free(*out). */
int jobs_dataset_list(jobs_store *s, jobs_dataset **out, int *n, cnet_error *err);
/* Deletes the row of dataset id. JOBS_ECONFLICT, naming the job, when a
 * queued or running job's spec names it (the files are still needed);
 * CNET_ENOTFOUND when there is no such row. */
int jobs_dataset_remove(jobs_store *s, const char *id, cnet_error *err);
/* Registers the n ready datasets found on disk, once per store: the first
 * call inserts those not yet known and marks the store adopted (*adopted =
 * rows inserted); later calls, on any node, change nothing (*adopted = 0),
 * so a dataset deleted later is never brought back by a restart. */
int jobs_dataset_adopt(jobs_store *s, const jobs_dataset *d, int n, int *adopted, cnet_error *err);

#endif
