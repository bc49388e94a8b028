/* A TensorBoard event file being written: one new file per run in a given
 * folder, named as TensorFlow's EventsWriter and torch's SummaryWriter name
 * theirs (events.out.tfevents.<10-digit unix time>.<host>.<pid>.<n>), its
 * first record the file_version event "brain.Event:2", then whatever events
 * the caller adds, each framed as a TFRecord (tensorboard_encode.h).
 *
 * Every event goes to the file in one write(2) as it is added: nothing sits
 * in a buffer, so a crash loses at most the event being written, and a
 * failed write (disk full, a file size limit) is returned at once, naming
 * the file. A run that is resumed opens a new file beside the old ones, as
 * TensorBoard does; its reader joins them by wall time and step, and a
 * SessionLog START event (tensorboard_encode.h) hides the old files' steps
 * that the resumed run repeats.
 *
 * What it is not: the choice of what to log (engine/train/train_tracker.c)
 * or a reader. */
#ifndef CNET_TENSORBOARD_WRITER_H
#define CNET_TENSORBOARD_WRITER_H

#include <limits.h>

#include "engine/core/error.h"
#include "engine/tensorboard/tensorboard_encode.h"

/* event.proto's version string, the first record's file_version. */
#define TENSORBOARD_FILE_VERSION "brain.Event:2"

typedef struct tensorboard_writer {
    int fd; /* -1: closed */
    char path[PATH_MAX];
} tensorboard_writer;

/* Creates a new event file in dir (which exists) and writes its
 * file_version record. On failure nothing is left open. */
int tensorboard_writer_open(tensorboard_writer *w, const char *dir, cnet_error *err);
/* Frames one encoded Event (event) as a record and writes it. CNET_EIO or
 * CNET_ENOMEM with err naming the file. */
int tensorboard_writer_add(tensorboard_writer *w, const tensorboard_buf *event, cnet_error *err);
/* Closes the file (a no-op when closed). */
void tensorboard_writer_close(tensorboard_writer *w);

/* The wall time events carry: seconds since the epoch, as time.time(). */
double tensorboard_wall_time(void);

#endif
