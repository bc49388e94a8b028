/* server/cli/dl_progress.h: what a terminal and a log see of a download,
 * fed the reports hub_pull makes (bytes rising below the size, then the
 * size once): on a terminal one line redrawn in place with the bar, bytes
 * and rate, ended when the file is in place; in a log one line per file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli/dl_progress.h"
#include "tests/lib/harness.h"

/* Feeds two files' reports to a dl_progress writing into memory. */
static char *render(int tty) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    dl_progress p;
    dl_progress_init(&p, f, "cnet train: ");
    p.tty = tty;
    dl_progress_file(&p, "unet/w.safetensors", 250000, 2000000);
    dl_progress_file(&p, "unet/w.safetensors", 1000000, 2000000);
    dl_progress_file(&p, "unet/w.safetensors", 2000000, 2000000);
    dl_progress_file(&p, "vae/config.json", 512, 512);
    dl_progress_end(&p);
    fclose(f);
    return text;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *at = s; (at = strstr(at, what)); at += strlen(what)) n++;
    return n;
}

static void test_terminal(void) {
    char *t = render(1);
    CHECK(t, "no output");
    EXPECT(strstr(t, "\rcnet train: unet/w.safetensors [######") && strstr(t, "250.0 kB/2.0 MB") &&
               strstr(t, "[########################] 2.0 MB/2.0 MB ") &&
               strstr(t, "\rcnet train: vae/config.json [########################] 512 B/512 B"),
           "bars: %s", t);
    EXPECT(count(t, "\n") == 2 && t[strlen(t) - 1] == '\n', "one ended line per file: %s", t);
    EXPECT(strstr(t, " B/s ") && !strstr(t, "downloaded"), "rate: %s", t);
    free(t);
}

static void test_log(void) {
    char *t = render(0);
    CHECK(t, "no output");
    EXPECT(!strchr(t, '\r') && count(t, "\n") == 2 &&
               strstr(t, "cnet train: downloaded unet/w.safetensors (2.0 MB/2.0 MB, ") &&
               strstr(t, "cnet train: downloaded vae/config.json (512 B/512 B, "),
           "log lines: %s", t);
    free(t);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_terminal);
    RUN(test_log);
    return harness_done();
}
