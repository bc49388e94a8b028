/* Download progress on stderr; see dl_progress.h. */
#include "server/cli/dl_progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

static const char bar[] = "########################";
_Static_assert(sizeof bar - 1 == DL_PROGRESS_BAR_WIDTH, "the bar's characters");

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* bytes as people read them: 512 B, 12.5 kB, 40.0 MB, 4.27 GB */
static void human(char *buf, size_t cap, double bytes) {
    if (bytes < 1e3)
        snprintf(buf, cap, "%.0f B", bytes);
    else if (bytes < 1e6)
        snprintf(buf, cap, "%.1f kB", bytes / 1e3);
    else if (bytes < 1e9)
        snprintf(buf, cap, "%.1f MB", bytes / 1e6);
    else
        snprintf(buf, cap, "%.2f GB", bytes / 1e9);
}

void dl_progress_init(dl_progress *p, FILE *out, const char *prefix) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->prefix = prefix ? prefix : "";
    p->tty = isatty(fileno(out));
}

void dl_progress_end(dl_progress *p) {
    if (p->open_line) fputc('\n', p->out);
    p->open_line = 0;
}

void dl_progress_file(void *ctx, const char *file, long long done, long long total) {
    dl_progress *p = ctx;
    const double t = now_seconds();
    if (strcmp(p->file, file) != 0) { /* a new file */
        dl_progress_end(p);
        snprintf(p->file, sizeof p->file, "%s", file);
        p->first = done < total ? done : 0, p->t0 = t, p->last_draw = 0;
    }
    const int in_place = done >= total;
    if (!in_place && (!p->tty || (p->open_line && t - p->last_draw < DL_PROGRESS_REDRAW_S))) return;
    char have[32], size[32], rate[32];
    human(have, sizeof have, (double)done);
    human(size, sizeof size, (double)total);
    const double dt = t - p->t0;
    human(rate, sizeof rate, dt > 0 ? (double)(done - p->first) / dt : 0);
    if (p->tty) {
        const int fill =
            total > 0 ? (int)(DL_PROGRESS_BAR_WIDTH * (double)done / (double)total) : 0;
        fprintf(p->out, "\r%s%s [%.*s%*s] %s/%s %s/s ", p->prefix, file, fill, bar,
                DL_PROGRESS_BAR_WIDTH - fill, "", have, size, rate);
        p->open_line = 1, p->last_draw = t;
        if (in_place) dl_progress_end(p);
    } else {
        fprintf(p->out, "%sdownloaded %s (%s/%s, %s/s)\n", p->prefix, file, have, size, rate);
    }
    if (in_place) p->file[0] = '\0';
    fflush(p->out);
}
