/* Training datasets: one reader over the three layouts ControlNet users bring,
 * yielding (target image bytes, conditioning image bytes, caption) samples in
 * a seeded shuffled order per epoch, with a cursor that a checkpoint can save
 * and restore exactly. The map header of the dataset module:
 *   dataset.c        opening, layout detection, listing, subset, exclusion
 *   dataset_index.c  imagefolder metadata.jsonl and ControlNet prompt.json
 *   dataset_tar.c    WebDataset tar shards: index scan and streaming reads
 *   dataset_parquet.c Hub datasets in Parquet: layouts, columns, streaming reads
 *   dataset_stream.c the shard stream of both: shard order, shuffle-buffer slots
 *   dataset_csv.c    imagefolder metadata.csv
 *   dataset_order.c  the Philox draws: subset, epoch order, captions, "" prompts
 *   dataset_read.c   seek / next / tell
 *   dataset_check.c  the pre-training check (files, pixels, captions, duplicates)
 *   dataset_fill.c   the synthetic fill50k-like dataset (make-fill)
 *
 * Layouts (the folder named, or its only subfolder, holds the index):
 *   imagefolder  metadata.jsonl: one JSON object per line naming the target
 *                image, the conditioning image and the caption ("text": a
 *                string, or a list of strings of which one is drawn per epoch).
 *                Column names follow train_controlnet.py's --image_column,
 *                --conditioning_image_column and --caption_column (defaults
 *                image, conditioning_image, text); an image column X is read
 *                from key X, else X_file_name, else (image column only)
 *                file_name, the names HF's imagefolder loader turns into X.
 *   fill50k      prompt.json: lines {source, target, prompt}, the original
 *                ControlNet training layout (source = conditioning).
 *   webdataset   *.tar shards (a folder of them, one .tar file, or a glob):
 *                members key.png|jpg|jpeg (target), key.cond.png|jpg|jpeg
 *                (conditioning), key.txt (caption); a sample's members are
 *                consecutive. Shards are streamed with libarchive, never
 *                extracted; absolute names, `..`, links and special files are
 *                refused. Opening scans the shards once (headers and captions,
 *                image data skipped) to build the listing.
 *   parquet      a Hugging Face Hub dataset snapshot in Parquet (engine/parquet):
 *                data/<split>-NNNNN-of-NNNNN.parquet, the refs/convert/parquet
 *                branch's <config>/<split>/NNNN.parquet (config:
 *                dataset_config_name, else "default"), or *.parquet in the
 *                folder; the train split. Columns by the same three options
 *                (dataset_parquet.c says how defaults are picked); image
 *                columns are {bytes, path} structs or binary. Streamed shard
 *                by shard, one row group at a time, in the tar shards' order.
 *   imagefolder may also be indexed by metadata.csv (a header row naming the
 *                columns, RFC 4180 quoting) instead of metadata.jsonl.
 *
 * Order. A listing (index line order; shard name order, then member order) is
 * cut to --max_train_samples by a seeded random subset (as the script's
 * shuffle(seed).select(range(n))), then each epoch visits it in an order drawn
 * from Philox (engine/core/philox.h) keyed by the seed, with the epoch and a
 * per-decision stream tag in the counter: the same seed and epoch always give
 * the same order. Folder layouts: a Fisher-Yates permutation. Tar shards (no
 * random access): the shard order is permuted, then samples pass through a
 * seeded shuffle buffer of `shuffle_buffer` samples (WebDataset's scheme), so
 * at most shuffle_buffer + 1 samples' bytes are held. The cursor (epoch,
 * index) is a position in that order; seeking replays the order, skipping the
 * samples already yielded, so a restored reader yields exactly what the saved
 * one would have. Captions: a list draws one per (epoch, sample); with
 * probability proportion_empty_prompts the caption becomes "" instead.
 *
 * A trainer's use: dataset_open; dataset_check + dataset_report_verdict
 * (refuse, or go on without the bad samples: dataset_exclude); dataset_seek
 * to {0, 0} or to the cursor a checkpoint saved; then dataset_next per sample,
 * saving dataset_tell with each checkpoint.
 *
 * Not here: image decoding and transforms (engine/image/image.h), batching. */
#ifndef CNET_DATASET_H
#define CNET_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

#define DATASET_PATH_MAX 1024          /* bytes of a path or reference; longer → CNET_ELIMIT */
#define DATASET_INDEX_MAX (64 << 20)   /* bytes of metadata.jsonl / prompt.json → CNET_ELIMIT */
#define DATASET_SAMPLES_MAX (1 << 26)  /* samples in a listing; more → CNET_ELIMIT */
#define DATASET_FILE_MAX (64 << 20)    /* bytes of one image file or tar member → CNET_ELIMIT */
#define DATASET_CAPTION_MAX (64 << 10) /* bytes of one key.txt caption → CNET_ELIMIT */
#define DATASET_SHARDS_MAX 100000      /* tar shards in one dataset → CNET_ELIMIT */
#define DATASET_COLUMN_MAX 200         /* bytes of an --*_column name → CNET_ELIMIT */
#define DATASET_SHUFFLE_BUFFER_DEFAULT 64

typedef enum dataset_layout {
    DATASET_LAYOUT_IMAGEFOLDER,
    DATASET_LAYOUT_FILL50K,
    DATASET_LAYOUT_WEBDATASET,
    DATASET_LAYOUT_PARQUET,
} dataset_layout;

/* "imagefolder", "fill50k", "webdataset", "parquet". */
const char *dataset_layout_name(dataset_layout layout);

typedef struct dataset_options {
    /* imagefolder and parquet column names; NULL means the script's
     * defaults. Naming one for another layout is CNET_EINVAL. */
    const char *image_column, *conditioning_image_column, *caption_column;
    /* parquet: the config folder of the refs/convert/parquet layout
     * (--dataset_config_name); NULL: "default" (or the only one). */
    const char *dataset_config_name;
    int64_t max_train_samples;       /* <= 0: every sample */
    double proportion_empty_prompts; /* in [0, 1] */
    uint64_t seed;
    int shuffle_buffer; /* tar shards only; <= 0: DATASET_SHUFFLE_BUFFER_DEFAULT */
} dataset_options;

/* Where the reader stands: the next sample is position `index` of epoch
 * `epoch`'s order. Saved in checkpoints as these two integers. */
typedef struct dataset_cursor {
    int64_t epoch, index;
} dataset_cursor;

/* One sample. Everything is borrowed from the reader and valid until the
 * next dataset_next, dataset_seek or dataset_free. */
typedef struct dataset_sample {
    int64_t id;            /* its position in the listing */
    const char *name;      /* target file, or "shard.tar:key" (for messages) */
    const char *cond_name; /* conditioning file, or "shard.tar:key.cond.<ext>" */
    const uint8_t *target; /* encoded PNG/JPEG bytes [target_len] */
    const uint8_t *cond;   /* encoded PNG/JPEG bytes [cond_len] */
    size_t target_len, cond_len;
    const char *caption; /* the drawn caption, or "" (empty-prompt draw) */
} dataset_sample;

/* A listing entry. Names are offsets into dataset.pool. */
typedef struct dataset_entry {
    int64_t target, cond; /* target / conditioning file (folder) or member (tar) name */
    int64_t name;         /* display name: the target file, or "shard:key" */
    int64_t caps;         /* first of n_caps offsets in dataset.caption_refs */
    int32_t n_caps;
    int32_t shard;  /* tar, parquet: shard index; folder: -1 */
    int32_t line;   /* folder: 1-based index line; tar: 0; parquet: row in the shard */
    uint8_t absent; /* tar: DATASET_PART_* bits of the members the shard lacks */
} dataset_entry;

enum { DATASET_PART_TARGET = 1, DATASET_PART_COND = 2, DATASET_PART_CAPTION = 4 };

typedef struct dataset_tar_stream dataset_tar_stream;         /* dataset_tar.c */
typedef struct dataset_parquet_stream dataset_parquet_stream; /* dataset_parquet.c */

/* A dataset reader. Fields are the module's; read them through the calls. */
typedef struct dataset {
    dataset_layout layout;
    char root[DATASET_PATH_MAX]; /* folder holding the index or the shards */
    const char *index_name;      /* "metadata.jsonl", "prompt.json" or NULL */
    dataset_options opt;
    dataset_entry *entries; /* the listing [n_entries] */
    int64_t n_entries, cap_entries;
    char *pool; /* NUL-terminated names and captions */
    size_t pool_len, pool_cap;
    int64_t *caption_refs; /* pool offsets, grouped per entry */
    int64_t n_caption_refs, cap_caption_refs;
    char **shards; /* tar, parquet: shard paths [n_shards], sorted */
    int n_shards;
    int64_t *active; /* listing ids in use, ascending [n_active] */
    int64_t n_active;
    /* reading state */
    int listing;         /* 1: one pass in listing order (dataset_rewind) */
    dataset_cursor cur;  /* next position */
    int64_t order_epoch; /* epoch of `order`, -1 none */
    int64_t *order;      /* listing ids in visiting order [n_active] */
    int *shard_order;    /* tar, parquet: shards in visiting order [n_shards] */
    uint8_t *buf[2];     /* folder: target / conditioning bytes */
    size_t buf_cap[2];
    dataset_tar_stream *tar;
    dataset_parquet_stream *pq;
} dataset;

/* Opens path: a folder (or its only subfolder) with metadata.jsonl,
 * metadata.csv, prompt.json, Parquet files or *.tar shards, a .tar file, or
 * a glob of shards. Parses the
 * whole listing; malformed lines are CNET_EFORMAT naming the file and line.
 * Referenced files are not opened here (dataset_check does). On failure *ds
 * holds nothing to free. */
int dataset_open(dataset *ds, const char *path, const dataset_options *opt, cnet_error *err);
void dataset_free(dataset *ds);

/* Samples in use (after max_train_samples and exclusions). */
int64_t dataset_size(const dataset *ds);
/* The captions of listing entry id (n of them; a list has several). */
int dataset_caption_count(const dataset *ds, int64_t id);
const char *dataset_caption(const dataset *ds, int64_t id, int i);
const char *dataset_entry_name(const dataset *ds, int64_t id);

/* Drops the listing ids with bad[id] != 0 (bad: [n_entries], e.g. from
 * dataset_check) from use. Call before reading; resets the reader. */
int dataset_exclude(dataset *ds, const uint8_t *bad, cnet_error *err);

/* Positions the reader at cursor `at` of the training order. An index equal
 * to dataset_size is the start of the next epoch. */
int dataset_seek(dataset *ds, dataset_cursor at, cnet_error *err);
/* Positions the reader for one pass over the samples in listing order (the
 * first caption of each, no empty-prompt draws); used by the check. */
int dataset_rewind(dataset *ds, cnet_error *err);
/* The cursor of the next sample. */
dataset_cursor dataset_tell(const dataset *ds);
/* Yields the next sample and advances. Training order wraps into the next
 * epoch; a listing pass returns 1 at its end. A sample that cannot be read
 * (CNET_ENOTFOUND: a file or member is missing; CNET_EIO/CNET_EFORMAT/
 * CNET_ELIMIT: unreadable) returns that error naming it, with *s->name set
 * and the cursor already past it, so a caller may count it and go on. */
int dataset_next(dataset *ds, dataset_sample *s, cnet_error *err);

/* ---- the pre-training check (dataset_check.c) ---------------------------
 * Reads every sample in use once, in listing order. Missing and unreadable
 * samples (absent files or members, I/O errors, files over the size limit,
 * images that do not decode) cannot be trained on: they are marked in `bad`
 * and counted; train_controlnet.py would crash on the first one, we skip them
 * (dataset_exclude) and refuse the dataset when more than a given fraction is
 * bad (dataset_report_verdict). The other problems are warnings: the script
 * trains on such samples, and so do we. */
typedef enum dataset_problem {
    DATASET_PROBLEM_MISSING,            /* a referenced file or tar member is absent (bad) */
    DATASET_PROBLEM_UNREADABLE,         /* unreadable, too large or not a PNG/JPEG (bad) */
    DATASET_PROBLEM_SIZE_MISMATCH,      /* conditioning and target sizes differ */
    DATASET_PROBLEM_BLANK_CONDITIONING, /* every conditioning pixel has the same colour */
    DATASET_PROBLEM_EMPTY_CAPTION,      /* a caption is empty or only white space */
    DATASET_PROBLEM_DUPLICATE,          /* same target and conditioning bytes as an earlier one */
    DATASET_PROBLEM_COUNT
} dataset_problem;

#define DATASET_REPORT_EXAMPLES 5         /* first offenders kept per problem */
#define DATASET_REPORT_EXAMPLE_MAX 320    /* bytes of one example line */
#define DATASET_BAD_FRACTION_DEFAULT 0.05 /* unusable share above which training refuses */

/* "missing", "unreadable", "size mismatch", "blank conditioning", "empty caption", "duplicate". */
const char *dataset_problem_name(dataset_problem p);

typedef struct dataset_report {
    int64_t samples; /* samples checked (those in use) */
    int64_t usable;  /* neither missing nor unreadable */
    int64_t count[DATASET_PROBLEM_COUNT];
    char examples[DATASET_PROBLEM_COUNT][DATASET_REPORT_EXAMPLES][DATASET_REPORT_EXAMPLE_MAX];
    uint8_t *bad; /* [n_entries]: 1 = cannot be used; owned (dataset_report_free) */
} dataset_report;

/* Checks every sample in use. decode = 0 only reads the bytes (presence and
 * readability: the upload check); decode = 1 also decodes both images
 * (sizes, blank conditioning). max_pixels as image_decode. Leaves the reader
 * to be positioned again (dataset_seek). */
int dataset_check(dataset *ds, int decode, int64_t max_pixels, dataset_report *rep,
                  cnet_error *err);
void dataset_report_free(dataset_report *rep);
/* 0 when training may go on: at least one usable sample and at most
 * max_bad_fraction of them missing or unreadable; else CNET_EINVAL saying so. */
int dataset_report_verdict(const dataset_report *rep, double max_bad_fraction, cnet_error *err);

/* ---- the synthetic dataset (dataset_fill.c) -------------------------------
 * n samples in the imagefolder layout under out_dir, like fill50k: a circle
 * filled with one named colour on a background of another (centre and radius
 * drawn from Philox with seed), the conditioning image its one-pixel outline
 * in white on black, the caption "<colour> circle with <colour> background".
 * out_dir/metadata.jsonl, images/NNNNN.png, conditioning_images/NNNNN.png;
 * the index is written last (temp file + rename), so a dataset appears whole
 * or not at all. An existing dataset (metadata.jsonl) is never overwritten. */
#define DATASET_FILL_N_MAX 1000000
#define DATASET_FILL_SIZE_MIN 8
#define DATASET_FILL_SIZE_MAX 4096
int dataset_make_fill(const char *out_dir, int n, int size, uint64_t seed, cnet_error *err);
/* The RGB of a make-fill colour name as its captions spell it ("sky blue");
 * 0 ok, -1 for a name not in its palette. */
int dataset_fill_colour(const char *name, uint8_t rgb[3]);

#endif
