/* logs/metrics.jsonl in the output dir: one JSON object per optimizer step,
 * {"step", "epoch", "loss", "lr", "grad_norm", ["loss_scale",
 * "step_skipped",] "samples_per_sec"}, appended and flushed as each step
 * ends (inf and NaN as null: JSON has neither).
 *
 * A run that starts at step s (resumed from checkpoint-s, or afresh at 0
 * after a crash before any checkpoint) first drops the lines of steps after
 * s that an earlier run wrote: those steps are run again, and the file
 * holds each step once. What it is not: the TensorBoard events
 * (train_tracker.h). */
#ifndef CNET_TRAIN_METRICS_H
#define CNET_TRAIN_METRICS_H

#include <stdio.h>

#include "engine/core/error.h"
#include "engine/train/trainer.h"

/* Opens output_dir/logs/metrics.jsonl for appending after cutting it to the
 * lines of steps <= step. *f is the caller's to fclose. CNET_EIO naming the
 * file; CNET_EFORMAT for a line that does not start with {"step": N. */
int train_metrics_open(FILE **f, const char *output_dir, int step, cnet_error *err);

/* Appends p's line; loss_scale < 0: a run without fp16 loss scaling. */
void train_metrics_write(FILE *f, const train_progress *p, double loss_scale, int skipped);

#endif
