/* Download progress of the commands that pull from the Hub (cnet pull,
 * train, generate), fed by hub_pull_opts.progress (server/hub/hub_pull.h):
 * on a terminal one line per file redrawn in place as its bytes land,
 *   cnet train: unet/diffusion_pytorch_model.safetensors [#####.......] 12.5 MB/40.0 MB 3.1 MB/s
 * at most every DL_PROGRESS_REDRAW_S seconds and once more when the file is
 * in place; otherwise (a log, a pipe) one plain line per file once it is in
 * place,
 *   cnet train: downloaded unet/diffusion_pytorch_model.safetensors (40.0 MB/40.0 MB, 3.1 MB/s)
 * The rate counts the bytes fetched in this run (a resumed prefix is not
 * counted) over the time since the file's first report.
 *
 * What it is not: the pulling (hub_pull.h) or a multi-file total (files
 * are reported one after another, as they download). */
#ifndef CNET_DL_PROGRESS_H
#define CNET_DL_PROGRESS_H

#include <stdio.h>

#include "server/hub/hub_cache.h"

#define DL_PROGRESS_REDRAW_S 0.1 /* least time between two redraws of a bar */
#define DL_PROGRESS_BAR_WIDTH 24

typedef struct dl_progress {
    FILE *out;
    const char *prefix;      /* e.g. "cnet train: " (borrowed) */
    int tty;                 /* redraw in place; set by _init from out, a test may change it */
    char file[HUB_PATH_MAX]; /* the file being reported, "" none */
    long long first;         /* its first report's bytes (a resumed prefix) */
    double t0, last_draw;    /* its first report's time, the last redraw's */
    int open_line;           /* a bar is drawn and not ended */
} dl_progress;

void dl_progress_init(dl_progress *p, FILE *out, const char *prefix);
/* hub_pull_opts.progress: ctx is a dl_progress. */
void dl_progress_file(void *ctx, const char *file, long long done, long long total);
/* Ends a bar left open (a download that failed half way). */
void dl_progress_end(dl_progress *p);

#endif
