/* The trackers a training run reports to: train_controlnet.py's
 * --report_to, --logging_dir and --tracker_project_name over accelerate's
 * trackers. The trainer calls it after every optimizer step (the scalars
 * loss and lr the script logs, plus grad_norm and samples/s) and after each
 * validation image (the script's tracker.writer.add_images: the
 * conditioning image and the generated ones as one image, tagged with the
 * prompt).
 *
 * cnet has one tracker, TensorBoard, writing event files under
 * Path(output_dir, logging_dir) / tracker_project_name as accelerate's
 * TensorBoardTracker does (an absolute logging_dir stands alone, as in
 * pathlib). Trackers that need a network service (wandb, comet_ml) are
 * refused: their runs live on someone else's server.
 *
 * A tracker's failure (disk full) is the run's: every call returns it.
 * What it is not: the event format (engine/tensorboard/) or the loop
 * (trainer.c). */
#ifndef CNET_TRAIN_TRACKER_H
#define CNET_TRAIN_TRACKER_H

#include "engine/tensorboard/tensorboard_writer.h"
#include "engine/train/trainer.h"

/* train_options.report_to's bits. */
enum {
    TRAIN_TRACKER_TENSORBOARD = 1u << 0,
    TRAIN_TRACKERS_ALL = TRAIN_TRACKER_TENSORBOARD, /* --report_to all */
};

/* --report_to's value as bits: tensorboard or all; wandb, comet_ml and any
 * other name are CNET_EINVAL with err saying what to use instead. */
int train_tracker_parse(const char *name, unsigned *trackers, cnet_error *err);

/* The largest validation image file put into an event. */
#define TRAIN_TRACKER_MAX_IMAGE_BYTES (256u << 20)

typedef struct train_tracker {
    unsigned on; /* TRAIN_TRACKER_* bits open */
    tensorboard_writer tb;
} train_tracker;

/* Creates the trackers o->report_to names (their folders too). */
int train_tracker_open(train_tracker *tr, const train_options *o, cnet_error *err);
/* The run (re)starts at step: a SessionLog START there, so that TensorBoard
 * drops the steps >= step an earlier run of the same folder logged (they
 * run again, resumed from a checkpoint or from scratch). */
int train_tracker_start(train_tracker *tr, int step, cnet_error *err);
/* One optimizer step's scalars at step p->step. */
int train_tracker_log_step(train_tracker *tr, const train_progress *p, cnet_error *err);
/* A validation image at step: the RGB PNG file at png_path, height x width,
 * tagged tag. */
int train_tracker_log_image(train_tracker *tr, int step, const char *tag, const char *png_path,
                            int height, int width, cnet_error *err);
/* Closes what train_tracker_open opened; a tracker zeroed by memset (never
 * opened) closes nothing. */
void train_tracker_close(train_tracker *tr);

#endif
