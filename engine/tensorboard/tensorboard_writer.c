/* TensorBoard event files on disk; see tensorboard_writer.h. The file name
 * follows torch.utils.tensorboard's EventFileWriter
 * ("events.out.tfevents.{:010d}.{host}.{pid}.{uid}"); n counts the files
 * this process opened, so two runs in one second of one process (the
 * service's jobs) never share a name, and O_EXCL refuses to reuse one. */
#include "engine/tensorboard/tensorboard_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The host name as gethostname gives it, cut to this many bytes. */
#define TENSORBOARD_HOST_MAX 256

static atomic_int files_opened;

double tensorboard_wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* All of n bytes, through short writes and signals. */
static int write_all(tensorboard_writer *w, const uint8_t *p, size_t n, cnet_error *err) {
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return cnet_fail(err, CNET_EIO, "writing TensorBoard events to %s: %s", w->path,
                             k < 0 ? strerror(errno) : "nothing written");
        p += k, n -= (size_t)k;
    }
    return 0;
}

int tensorboard_writer_add(tensorboard_writer *w, const tensorboard_buf *event, cnet_error *err) {
    if (event->failed)
        return cnet_fail(err, CNET_ENOMEM, "out of memory encoding an event for %s", w->path);
    tensorboard_buf record = {0};
    tensorboard_frame_record(&record, event->data, event->len);
    int rc = record.failed
                 ? cnet_fail(err, CNET_ENOMEM, "out of memory framing an event for %s", w->path)
                 : write_all(w, record.data, record.len, err);
    tensorboard_buf_free(&record);
    return rc;
}

int tensorboard_writer_open(tensorboard_writer *w, const char *dir, cnet_error *err) {
    char host[TENSORBOARD_HOST_MAX + 1] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    host[TENSORBOARD_HOST_MAX] = '\0';
    w->fd = -1;
    const int n = atomic_fetch_add(&files_opened, 1);
    if (snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%010lld.%s.%d.%d", dir,
                 (long long)time(NULL), host, (int)getpid(), n) >= (int)sizeof w->path)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long for an event file", dir);
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return cnet_fail(err, CNET_EIO, "cannot create TensorBoard event file %s: %s", w->path,
                         strerror(errno));
    tensorboard_buf event = {0};
    tensorboard_event_file_version(&event, tensorboard_wall_time(), TENSORBOARD_FILE_VERSION);
    int rc = tensorboard_writer_add(w, &event, err);
    tensorboard_buf_free(&event);
    if (rc) tensorboard_writer_close(w);
    return rc;
}

void tensorboard_writer_close(tensorboard_writer *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
}
