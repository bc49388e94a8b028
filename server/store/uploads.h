/* Uploaded training datasets: safe extraction of a tar/zip archive (or the
 * store of one Parquet file) into a fresh folder under the datasets dir, the
 * check that it is a ControlNet dataset, and previews of its first samples.
 * Which datasets exist, and whether they are usable, is the job store's
 * (server/store/jobs_datasets.h); the files live here.
 * The map header of the dataset subsystem:
 *   uploads.c          ingest (extract or store, check, report), removal, the scan
 *   uploads_preview.c  the first samples' captions and image bytes
 *
 * What it is not: no HTTP (server/http/http_datasets.c streams the upload to a
 * temp file and calls upload_ingest) and no dataset reading of its own: the
 * check is the engine's (engine/data/dataset.h: any of its layouts, every
 * referenced file present and readable; pixels are checked when a job
 * trains, as images are not decoded inside a request). Extraction follows RELIABILITY.md §3: only
 * regular files and folders; absolute paths, `..`, links and devices refused; files created with
 * openat(O_EXCL|O_NOFOLLOW) below a dir fd; caps on entries, bytes and compression ratio. Layout:
 * <datasets_dir>/<id>/files/... and <datasets_dir>/<id>/report.json, the folder renamed into place
 * only when complete. A body that starts and ends with Parquet's magic "PAR1" is
 * one Parquet file: stored as files/data/train-00000-of-00001.parquet (the Hub's
 * layout, so the engine reads it as the train split), under the same byte cap. */
#ifndef CNET_SERVER_UPLOADS_H
#define CNET_SERVER_UPLOADS_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

#define UPLOAD_ID_MAX 40
#define UPLOAD_PATH_MAX 1024         /* bytes of an entry path; longer → CNET_EFORMAT */
#define UPLOAD_DEPTH_MAX 16          /* folders deep; deeper → CNET_EFORMAT */
#define UPLOAD_RATIO_FLOOR (1 << 20) /* the ratio cap applies once this many bytes are out */
#define UPLOAD_ENOSPC (-40)          /* the disk filled up while storing the dataset (507) */
#define UPLOAD_PREVIEW_MAX 8         /* samples a preview reads; a later one → CNET_ENOTFOUND */

typedef struct upload_limits {
    int64_t max_entries; /* archive entries; more → CNET_ELIMIT */
    int64_t max_bytes;   /* total uncompressed bytes; more → CNET_ELIMIT */
    int64_t max_ratio;   /* uncompressed / compressed bytes; more → CNET_ELIMIT (a bomb) */
} upload_limits;

#define UPLOAD_DEFAULT_LIMITS ((upload_limits){100000, 8LL << 30, 200})

/* A fresh dataset id, "d_" + 32 hex digits, for upload_ingest. */
int upload_new_id(char id[UPLOAD_ID_MAX], cnet_error *err);
/* Whether id has that shape (and so names a folder below the datasets dir). */
int upload_valid_id(const char *id);

/* Extracts archive_path (or stores it, a Parquet file) into the new dataset
 * id (upload_new_id's; the caller registers it in the store first,
 * server/store/jobs_datasets.h), checks it, writes its report and returns
 * (owned by the caller) the report: id, format, index, root, samples,
 * entries, bytes, created_at, original_name, and for Parquet the columns of
 * its first train shard. On failure nothing is left under datasets_dir;
 * CNET_EFORMAT/CNET_EINVAL mean a bad archive or dataset (400), CNET_ELIMIT
 * a cap (413), UPLOAD_ENOSPC a full disk (507). Messages name files
 * relative to the dataset, never the server's folders. name: the client's
 * file name, kept sanitized as metadata only (may be NULL). */
int upload_ingest(const char *archive_path, const char *datasets_dir, const char *name,
                  const upload_limits *lim, const char *id, json_t **report, cnet_error *err);

/* The client's file name as kept: no separators, controls or leading dots,
 * at most 255 bytes (the report's original_name and the store's name). */
void upload_sanitize_name(const char *in, char out[256]);

/* Removes dataset id's folder: renamed out of the way first (one atomic
 * step on the shared dir, so no reader sees half a dataset), then deleted.
 * A folder already gone is not an error. */
int upload_remove(const char *datasets_dir, const char *id, cnet_error *err);

/* The reports of every complete dataset folder on disk (owned by the
 * caller): what a data dir held before the store registered datasets, for
 * jobs_dataset_adopt. Listings read the store, not this. */
int upload_scan(const char *datasets_dir, json_t **out, cnet_error *err);

/* One sample of an uploaded dataset as the trainer reads it (listing order,
 * first caption). Owned by the caller: upload_samples_free. */
typedef struct upload_sample {
    char *name, *cond_name, *caption;
    uint8_t *image, *cond; /* encoded PNG/JPEG bytes; NULL unless asked for */
    size_t image_len, cond_len;
} upload_sample;

/* Reads samples first .. first+count-1 (clipped to the dataset's size) of
 * dataset id, each with its image bytes when with_bytes; *n the number read.
 * first + count may not pass UPLOAD_PREVIEW_MAX (a preview, not a reader: the
 * samples are walked from the start). Unknown id or sample: CNET_ENOTFOUND. */
int upload_samples(const char *datasets_dir, const char *id, int64_t first, int count,
                   int with_bytes, upload_sample *out, int *n, cnet_error *err);
void upload_samples_free(upload_sample *s, int n);

#endif
