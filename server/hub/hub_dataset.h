/* A dataset named the way train_controlnet.py's --dataset_name names one:
 * a local folder, or a Hub dataset id whose training files are downloaded
 * into huggingface_hub's dataset cache (<cache>/datasets--ns--name/,
 * hub_cache.h) and whose folder holding the train split is handed to the
 * dataset reader.
 *
 * Which files: the train split only, as datasets.load_dataset(name,
 * config)["train"] reads it, from the first of these the revision has —
 *   - Parquet (what the Hub's datasets are today): data/train-<n>.parquet
 *     or data/train/<n>.parquet, or with --dataset_config_name C the
 *     config's C/train-<n>.parquet, C/train/<n>.parquet and the same under
 *     data/C/;
 *   - an imagefolder repo (metadata.jsonl or metadata.csv, at the top
 *     or in train/ or the config's folder): every file but those of the
 *     other splits (test/, validation/) and the repo's README/.gitattributes;
 *   - neither (a script-based dataset): the Parquet conversion the Hub
 *     writes for every dataset on the revision refs/convert/parquet
 *     (HUB_DATASET_CONVERT_REF): <config>/train/<n>.parquet, else
 *     <config>/partial-train/<n>.parquet (the first 5 GB of a larger split),
 *     config --dataset_config_name, else "default". Nothing there either is
 *     CNET_ENOTFOUND naming every place looked at.
 * The answer is the folder holding the split: the snapshot for data/ (the
 * reader looks in data/ itself, and image paths stay relative to the
 * snapshot), else the folder of the Parquet files, or the imagefolder's
 * (the snapshot, its train/ or its config folder). Offline
 * (HF_HUB_OFFLINE=1) the cache alone is read: the revision's snapshot,
 * else the conversion's.
 *
 * What it is not: a Parquet reader (engine/data reads the files).
 * Reference: datasets' load.py (data_files patterns of data_files.py:
 * DEFAULT_PATTERNS_SPLIT_IN_FILENAME / _IN_DIR_NAME) and the Hub's
 * dataset viewer conversion (refs/convert/parquet, partial-<split>). */
#ifndef CNET_HUB_DATASET_H
#define CNET_HUB_DATASET_H

#include "server/hub/hub_cache.h"

#define HUB_DATASET_CONVERT_REF "refs/convert/parquet"
#define HUB_DATASET_CONVERT_CONFIG "default" /* the conversion's config when none is named */

typedef struct hub_dataset_opts {
    const char *config_name; /* --dataset_config_name, NULL: the only one */
    const char *revision;    /* NULL: main */
    const char *cache_dir;   /* NULL: the default root */
    /* Each downloaded file's bytes as they land, and the stop check
     * (hub_pull_opts.progress and .should_stop, with progress_ctx); NULL:
     * quiet, never. */
    void (*progress)(void *ctx, const char *file, long long done, long long total);
    int (*should_stop)(void *ctx);
    void *progress_ctx;
} hub_dataset_opts;

/* The Hub dataset repo_id (no local folder is looked at: what a service
 * does with hf://datasets/ references) → the folder the dataset reader
 * opens, in out. Token and endpoint from the environment (hub_http.h). */
int hub_dataset_pull(const char *repo_id, const hub_dataset_opts *o, char out[HUB_PATH_MAX],
                     cnet_error *err);

/* name → the folder the dataset reader opens, in out: name itself when it
 * is a local folder (as datasets.load_dataset decides), else
 * hub_dataset_pull. */
int hub_dataset_resolve(const char *name, const hub_dataset_opts *o, char out[HUB_PATH_MAX],
                        cnet_error *err);

#endif
