/* Progress of `cnet generate` (see generate.h), fed by the pipeline's
 * on_timesteps / on_step observer callbacks: on a terminal one line redrawn
 * in place,
 *   step 7/20 [#######.............]  2.31 it/s  ETA 0:06
 * otherwise (a log file, a pipe) one plain line per step. it/s counts from
 * the first step's start, so text encoding and model loading are not in it;
 * the VAE decode after the last step is not in the ETA. */
#include <time.h>
#include <unistd.h>

#include "server/cli/generate.h"

#define GEN_PROGRESS_BAR_WIDTH 20

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void gen_progress_init(gen_progress *p, FILE *out) {
    p->out = out;
    p->tty = isatty(fileno(out));
    p->t0 = now_seconds();
    p->open_line = 0;
}

void gen_progress_abort(gen_progress *p) {
    if (p->open_line) fputc('\n', p->out);
    p->open_line = 0;
}

static void on_timesteps(void *user, const float *timesteps, int n) {
    gen_progress *p = user;
    (void)timesteps, (void)n;
    p->t0 = now_seconds();
}

static int on_step(void *user, int i, int n, const float *noise_pred, int rows,
                   const float *latents, int N, int h, int w, int C) {
    gen_progress *p = user;
    (void)noise_pred, (void)rows, (void)latents, (void)N, (void)h, (void)w, (void)C;
    const int done = i + 1;
    const double elapsed = now_seconds() - p->t0;
    const double rate = elapsed > 0 ? done / elapsed : 0;
    const long eta = rate > 0 ? (long)((n - done) / rate + 0.5) : 0;
    if (p->tty) {
        char bar[GEN_PROGRESS_BAR_WIDTH + 1];
        const int fill = (int)((long)done * GEN_PROGRESS_BAR_WIDTH / n);
        for (int k = 0; k < GEN_PROGRESS_BAR_WIDTH; k++) bar[k] = k < fill ? '#' : '.';
        bar[GEN_PROGRESS_BAR_WIDTH] = '\0';
        fprintf(p->out, "\rstep %d/%d [%s] %6.2f it/s  ETA %ld:%02ld\033[K%s", done, n, bar, rate,
                eta / 60, eta % 60, done == n ? "\n" : "");
        p->open_line = done < n;
    } else {
        fprintf(p->out, "cnet generate: step %d/%d, %.2f it/s, ETA %ld s\n", done, n, rate, eta);
    }
    fflush(p->out);
    return 0;
}

pipe_observer gen_progress_observer(gen_progress *p) {
    pipe_observer obs = {.user = p, .on_timesteps = on_timesteps, .on_step = on_step};
    return obs;
}
