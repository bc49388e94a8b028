/* The run's trackers; see train_tracker.h. Follows accelerate 0.27's
 * TensorBoardTracker (SummaryWriter(os.path.join(logging_dir, run_name)),
 * log() as add_scalar per value at the step) and train_controlnet.py's
 * log_validation (add_images(prompt, images, step, dataformats="NHWC")). */
#include "engine/train/train_tracker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* summary.proto's Image.colorspace of an RGB image. */
#define COLORSPACE_RGB 3

int train_tracker_parse(const char *name, unsigned *trackers, cnet_error *err) {
    if (!strcmp(name, "tensorboard")) {
        *trackers = TRAIN_TRACKER_TENSORBOARD;
        return 0;
    }
    if (!strcmp(name, "all")) {
        *trackers = TRAIN_TRACKERS_ALL;
        return 0;
    }
    if (!strcmp(name, "wandb") || !strcmp(name, "comet_ml"))
        return cnet_fail(err, CNET_EINVAL,
                         "--report_to %s: cnet does not send runs to a network service; use "
                         "--report_to tensorboard (event files under "
                         "output_dir/logging_dir/tracker_project_name, for tensorboard --logdir)",
                         name);
    return cnet_fail(err, CNET_EINVAL, "--report_to '%s': tensorboard or all", name);
}

/* mkdir -p. */
static int make_dirs(const char *path, cnet_error *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        const char c = *p;
        if (c == '/' || c == '\0') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return cnet_fail(err, CNET_EIO, "cannot create %s: %s", buf, strerror(errno));
            *p = c;
        }
        if (c == '\0') return 0;
    }
}

int train_tracker_open(train_tracker *tr, const train_options *o, cnet_error *err) {
    memset(tr, 0, sizeof *tr);
    tr->tb.fd = -1;
    if (!(o->report_to & TRAIN_TRACKER_TENSORBOARD)) return 0;
    if (!o->logging_dir || !o->logging_dir[0] || !o->tracker_project_name ||
        !o->tracker_project_name[0])
        return cnet_fail(err, CNET_EINVAL, "--logging_dir and --tracker_project_name: not empty");
    char dir[PATH_MAX];
    const int n = o->logging_dir[0] == '/'
                      ? snprintf(dir, sizeof dir, "%s/%s", o->logging_dir, o->tracker_project_name)
                      : snprintf(dir, sizeof dir, "%s/%s/%s", o->output_dir, o->logging_dir,
                                 o->tracker_project_name);
    if (n >= (int)sizeof dir)
        return cnet_fail(err, CNET_ELIMIT, "%s/%s: path too long", o->logging_dir,
                         o->tracker_project_name);
    int rc = make_dirs(dir, err);
    if (!rc) rc = tensorboard_writer_open(&tr->tb, dir, err);
    if (!rc) tr->on |= TRAIN_TRACKER_TENSORBOARD;
    return rc;
}

int train_tracker_start(train_tracker *tr, int step, cnet_error *err) {
    if (!(tr->on & TRAIN_TRACKER_TENSORBOARD)) return 0;
    tensorboard_buf event = {0};
    tensorboard_event_session_start(&event, tensorboard_wall_time(), step);
    const int rc = tensorboard_writer_add(&tr->tb, &event, err);
    tensorboard_buf_free(&event);
    return rc;
}

int train_tracker_log_step(train_tracker *tr, const train_progress *p, cnet_error *err) {
    if (!(tr->on & TRAIN_TRACKER_TENSORBOARD)) return 0;
    static const char *const tags[] = {"loss", "lr", "grad_norm", "samples/s"};
    const float values[] = {(float)p->loss, (float)p->lr, (float)p->grad_norm,
                            (float)p->samples_per_sec};
    tensorboard_buf event = {0};
    tensorboard_event_scalars(&event, tensorboard_wall_time(), p->step, tags, values, 4);
    const int rc = tensorboard_writer_add(&tr->tb, &event, err);
    tensorboard_buf_free(&event);
    return rc;
}

/* The whole file at path; *data (NULL on failure) is the caller's to free. */
static int read_file(const char *path, uint8_t **data, size_t *n, cnet_error *err) {
    *data = NULL, *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cnet_fail(err, CNET_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) != 0)
        rc = cnet_fail(err, CNET_EIO, "%s: %s", path, strerror(errno));
    else if ((uint64_t)st.st_size > TRAIN_TRACKER_MAX_IMAGE_BYTES)
        rc = cnet_fail(err, CNET_ELIMIT, "%s: %lld bytes, more than the %u an event holds", path,
                       (long long)st.st_size, TRAIN_TRACKER_MAX_IMAGE_BYTES);
    else if (!(*data = malloc((size_t)st.st_size + 1)))
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    else if (fread(*data, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = cnet_fail(err, CNET_EIO, "reading %s: short read", path);
    fclose(f);
    if (rc) {
        free(*data);
        *data = NULL;
        return rc;
    }
    *n = (size_t)st.st_size;
    return 0;
}

int train_tracker_log_image(train_tracker *tr, int step, const char *tag, const char *png_path,
                            int height, int width, cnet_error *err) {
    if (!(tr->on & TRAIN_TRACKER_TENSORBOARD)) return 0;
    uint8_t *png;
    size_t n;
    int rc = read_file(png_path, &png, &n, err);
    if (rc) return rc;
    tensorboard_buf event = {0};
    tensorboard_event_image(&event, tensorboard_wall_time(), step, tag, height, width,
                            COLORSPACE_RGB, png, n);
    free(png);
    rc = tensorboard_writer_add(&tr->tb, &event, err);
    tensorboard_buf_free(&event);
    return rc;
}

void train_tracker_close(train_tracker *tr) {
    if (tr->on & TRAIN_TRACKER_TENSORBOARD) tensorboard_writer_close(&tr->tb);
    tr->on = 0;
}
