/* logs/metrics.jsonl; see train_metrics.h. The lines are in step order (each
 * run appends its steps after cutting the file to its first step), so the
 * cut is at the first line whose step is past the run's start. */
#include "engine/train/train_metrics.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The offset of the first line of a step > step (the file's end if none). */
static int cut_offset(FILE *f, const char *path, int step, long *at, cnet_error *err) {
    char *line = NULL;
    size_t cap = 0;
    long off = 0;
    int rc = 0, lineno = 0;
    for (ssize_t n; (n = getline(&line, &cap, f)) > 0; off += n) {
        long long s;
        lineno++;
        if (sscanf(line, "{\"step\": %lld", &s) != 1) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s:%d: not a metrics line ({\"step\": N, ...})",
                           path, lineno);
            break;
        }
        if (s > step) break;
    }
    if (!rc && ferror(f)) rc = cnet_fail(err, CNET_EIO, "reading %s: %s", path, strerror(errno));
    free(line);
    *at = off;
    return rc;
}

int train_metrics_open(FILE **f, const char *output_dir, int step, cnet_error *err) {
    char path[PATH_MAX];
    *f = NULL;
    if (snprintf(path, sizeof path, "%s/logs/metrics.jsonl", output_dir) >= (int)sizeof path)
        return cnet_fail(err, CNET_ELIMIT, "%s: path too long", output_dir);
    FILE *m = fopen(path, "a+");
    if (!m) return cnet_fail(err, CNET_EIO, "cannot open %s: %s", path, strerror(errno));
    long at = 0;
    int rc = fseek(m, 0, SEEK_SET) != 0 ? cnet_fail(err, CNET_EIO, "%s: %s", path, strerror(errno))
                                        : cut_offset(m, path, step, &at, err);
    if (!rc && (fflush(m) != 0 || ftruncate(fileno(m), at) != 0))
        rc = cnet_fail(err, CNET_EIO, "cutting %s to step %d: %s", path, step, strerror(errno));
    if (rc) {
        fclose(m);
        return rc;
    }
    *f = m; /* "a+": every write goes to the (new) end */
    return 0;
}

/* JSON has no inf or NaN: those are written as null. */
static void number_or_null(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.8g", v);
    else
        fputs("null", f);
}

void train_metrics_write(FILE *f, const train_progress *p, double loss_scale, int skipped) {
    fprintf(f, "{\"step\": %d, \"epoch\": %d, \"loss\": ", p->step, p->epoch);
    number_or_null(f, p->loss);
    fprintf(f, ", \"lr\": %.8g, \"grad_norm\": ", p->lr);
    number_or_null(f, p->grad_norm); /* inf or NaN on a skipped step */
    if (loss_scale >= 0)
        fprintf(f, ", \"loss_scale\": %.0f, \"step_skipped\": %s", loss_scale,
                skipped ? "true" : "false");
    fprintf(f, ", \"samples_per_sec\": %.4g}\n", p->samples_per_sec);
    fflush(f);
}
