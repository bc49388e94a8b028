/* A dataset named the way train_controlnet.py's --dataset_name names one:
 * a local folder, or a Hub dataset id whose training files are downloaded
 * into huggingface_hub's dataset cache (<cache>/datasets--ns--name/,
 * hub_cache.h) and whose snapshot folder is handed to the dataset reader.
 *
 * Which files: the train split only, as datasets.load_dataset(name,
 * config)["train"] reads it —
 *   - Parquet (what the Hub's datasets are today): data/train-<n>.parquet
 *     or data/train/<n>.parquet, or with --dataset_config_name C the
 *     config's C/train-<n>.parquet, C/train/<n>.parquet and the same under
 *     data/C/;
 *   - else an imagefolder repo (metadata.jsonl or metadata.csv, at the top
 *     or in train/ or the config's folder): every file but those of the
 *     other splits (test/, validation/) and the repo's README/.gitattributes.
 * The answer is the folder holding the split (the snapshot, or its train/
 * or config folder). Offline (HF_HUB_OFFLINE=1) the cache alone is read.
 *
 * What it is not: a Parquet reader (engine/data reads the files), or the
 * Hub's refs/convert/parquet conversion of script-based datasets.
 * Reference: datasets' load.py (data_files patterns of
 * data_files.py: DEFAULT_PATTERNS_SPLIT_IN_FILENAME / _IN_DIR_NAME). */
#ifndef CNET_HUB_DATASET_H
#define CNET_HUB_DATASET_H

#include "server/hub/hub_cache.h"

typedef struct hub_dataset_opts {
    const char *config_name; /* --dataset_config_name, NULL: the only one */
    const char *cache_dir;   /* NULL: the default root */
    void (*progress)(void *ctx, const char *file, long long done, long long total);
    void *progress_ctx;
} hub_dataset_opts;

/* name → the folder the dataset reader opens, in out. */
int hub_dataset_resolve(const char *name, const hub_dataset_opts *o, char out[HUB_PATH_MAX],
                        cnet_error *err);

#endif
