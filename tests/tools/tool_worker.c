/* A stand-in for the engine's job runner, for the dashboard's browser test
 * (tests/integration/web_test.sh): it claims the oldest queued job of a running
 * `cnet serve` through the job store's own API (SQLite in WAL mode takes a
 * second process), reports STEPS progress steps with a known loss and
 * learning-rate sequence, a checkpoint half way, writes a validation image
 * and a text file into the job's dir, and finishes the job as succeeded.
 *
 *   tool_worker DATA_DIR STEPS STEP_MS
 * Prints "claimed <id>" and, per step, "step i loss L lr R" (the values the
 * page must plot); exits 1 when no job is queued.
 *
 * What it is not: it trains nothing. The real runner arrives with the
 * training issue; until then this is how a test drives a job through
 * running → succeeded with the store's real transitions and events. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/store/jobs.h"

#define WORKER_LEASE_MS 60000
#define WORKER_IMAGE 64 /* px per side of the validation image */

static double worker_loss(int step) { return 1.0 / (1.0 + 0.25 * step); }
static double worker_lr(int step, int steps) { return 1e-4 * step / steps; }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A 64×64 RGB gradient: red grows left → right, green top → bottom. */
static int write_image(const char *path) {
    unsigned char px[WORKER_IMAGE * WORKER_IMAGE * 3];
    for (int y = 0; y < WORKER_IMAGE; y++)
        for (int x = 0; x < WORKER_IMAGE; x++) {
            unsigned char *p = px + 3 * (y * WORKER_IMAGE + x);
            p[0] = (unsigned char)(x * 4), p[1] = (unsigned char)(y * 4), p[2] = 128;
        }
    png_image img = {.version = PNG_IMAGE_VERSION,
                     .width = WORKER_IMAGE,
                     .height = WORKER_IMAGE,
                     .format = PNG_FORMAT_RGB};
    return png_image_write_to_file(&img, path, 0, px, 0, NULL) ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tool_worker DATA_DIR STEPS STEP_MS\n");
        return 2;
    }
    int steps = atoi(argv[2]), step_ms = atoi(argv[3]);
    char db[4200], jobs_dir[4200], path[4400], dir[4200];
    snprintf(db, sizeof db, "%s/jobs.db", argv[1]);
    snprintf(jobs_dir, sizeof jobs_dir, "%s/jobs", argv[1]);
    jobs_store *s = NULL;
    cnet_error err = {0};
    job j = {0};
    char token[JOBS_TOKEN_MAX];
    int claimed = 0, cancel = 0, rc = jobs_open(&s, db, jobs_dir, &err);
    if (!rc) rc = jobs_claim(s, WORKER_LEASE_MS, &j, token, &claimed, &err);
    if (!rc && !claimed) rc = cnet_fail(&err, CNET_ENOTFOUND, "no queued job");
    if (!rc) {
        printf("claimed %s\n", j.id);
        fflush(stdout);
        rc = jobs_dir_path(s, j.id, dir, sizeof dir, &err);
    }
    for (int i = 1; !rc && i <= steps && !cancel; i++) {
        sleep_ms(step_ms);
        char progress[256];
        snprintf(progress, sizeof progress,
                 "{\"step\":%d,\"total\":%d,\"loss\":%.17g,\"lr\":%.17g,\"samples_per_s\":%.3f,"
                 "\"eta_s\":%.3f}",
                 i, steps, worker_loss(i), worker_lr(i, steps), 1000.0 / step_ms,
                 (steps - i) * step_ms / 1000.0);
        rc = jobs_progress(s, j.id, token, progress, WORKER_LEASE_MS, &cancel, &err);
        printf("step %d loss %.17g lr %.17g\n", i, worker_loss(i), worker_lr(i, steps));
        fflush(stdout);
        if (!rc && i == steps / 2) rc = jobs_checkpoint(s, j.id, token, i, &err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/validation_0.png", dir);
        if (write_image(path)) rc = cnet_fail(&err, CNET_EIO, "writing %s", path);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/worker_notes.txt", dir);
        FILE *f = fopen(path, "w");
        if (!f || fprintf(f, "written by tests/tool_worker for job %s\n", j.id) < 0 || fclose(f))
            rc = cnet_fail(&err, CNET_EIO, "writing %s", path);
    }
    if (!rc) rc = jobs_finish(s, j.id, token, cancel ? JOB_CANCELLED : JOB_SUCCEEDED, &err);
    if (rc) fprintf(stderr, "tool_worker: %s\n", err.msg);
    job_clear(&j);
    jobs_close(s);
    return rc ? 1 : 0;
}
