/* Uploaded training datasets: safe extraction of a tar/zip archive into a
 * fresh folder under the datasets dir, and the check that it is a ControlNet
 * dataset. The map header of the dataset subsystem.
 *
 * What it is not: no HTTP (server/http/http_datasets.c streams the upload to a
 * temp file and calls upload_ingest) and no dataset reading of its own: the
 * check is the engine's (engine/data/dataset.h: any of its layouts, every
 * referenced file present and readable; pixels are checked when a job
 * trains, as images are not decoded inside a request). Extraction follows RELIABILITY.md §3: only
 * regular files and folders; absolute paths, `..`, links and devices refused; files created with
 * openat(O_EXCL|O_NOFOLLOW) below a dir fd; caps on entries, bytes and compression ratio. Layout:
 * <datasets_dir>/<id>/files/... and <datasets_dir>/<id>/report.json, the folder renamed into place
 * only when complete. */
#ifndef CNET_SERVER_UPLOADS_H
#define CNET_SERVER_UPLOADS_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

#define UPLOAD_ID_MAX 40
#define UPLOAD_PATH_MAX 1024         /* bytes of an entry path; longer → CNET_EFORMAT */
#define UPLOAD_DEPTH_MAX 16          /* folders deep; deeper → CNET_EFORMAT */
#define UPLOAD_RATIO_FLOOR (1 << 20) /* the ratio cap applies once this many bytes are out */

typedef struct upload_limits {
    int64_t max_entries; /* archive entries; more → CNET_ELIMIT */
    int64_t max_bytes;   /* total uncompressed bytes; more → CNET_ELIMIT */
    int64_t max_ratio;   /* uncompressed / compressed bytes; more → CNET_ELIMIT (a bomb) */
} upload_limits;

#define UPLOAD_DEFAULT_LIMITS ((upload_limits){100000, 8LL << 30, 200})

/* Extracts archive_path into a new dataset, checks it, writes its report and
 * returns the id and (owned by the caller) the report. On failure nothing is
 * left under datasets_dir; CNET_EFORMAT/CNET_EINVAL mean a bad archive or
 * dataset (400), CNET_ELIMIT a cap (413). name: the client's file name, kept
 * sanitized as metadata only (may be NULL). */
int upload_ingest(const char *archive_path, const char *datasets_dir, const char *name,
                  const upload_limits *lim, char id[UPLOAD_ID_MAX], json_t **report,
                  cnet_error *err);

/* The reports of every dataset, newest first (owned by the caller). */
int upload_list(const char *datasets_dir, json_t **out, cnet_error *err);

#endif
