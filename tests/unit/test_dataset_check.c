/* make-fill and the dataset check. make-fill's output is read back through
 * the dataset reader and the image decoder and checked against its own
 * definition, derived here independently of the generator: two colours per
 * target, the background one on the border, the caption naming both (CSS
 * values transcribed here), the conditioning image white exactly on the fill
 * pixels that touch the background. Then each problem the check knows is
 * planted in a copy, once, and must be found, counted once and named; the
 * `cnet dataset check` command's output and exit status are checked too. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "engine/image/image.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

#define N 12
#define S 48
static char tmp[512];

static const struct {
    const char *name;
    uint8_t rgb[3];
} css[] = {
    {"red", {255, 0, 0}},      {"green", {0, 128, 0}},           {"blue", {0, 0, 255}},
    {"yellow", {255, 255, 0}}, {"cyan", {0, 255, 255}},          {"magenta", {255, 0, 255}},
    {"orange", {255, 165, 0}}, {"purple", {128, 0, 128}},        {"pink", {255, 192, 203}},
    {"brown", {165, 42, 42}},  {"white", {255, 255, 255}},       {"black", {0, 0, 0}},
    {"gray", {128, 128, 128}}, {"light coral", {240, 128, 128}}, {"sea green", {46, 139, 87}},
    {"navy", {0, 0, 128}},     {"gold", {255, 215, 0}},          {"teal", {0, 128, 128}},
    {"olive", {128, 128, 0}},  {"sky blue", {135, 206, 235}},
};

static const char *colour_name(const uint8_t *px) {
    for (size_t i = 0; i < sizeof css / sizeof css[0]; i++)
        if (!memcmp(css[i].rgb, px, 3)) return css[i].name;
    return "?";
}

static int make_fill(char *dir, size_t size, const char *name, uint64_t seed) {
    snprintf(dir, size, "%s/%s", tmp, name);
    cnet_error err;
    int rc = dataset_make_fill(dir, N, S, seed, &err);
    if (rc) printf("    make-fill: %s\n", err.msg);
    return rc;
}

/* Checks one make-fill sample against the definition; 0 ok. */
static int check_fill_sample(const dataset_sample *s, char *why, size_t n) {
    image_rgb8 t = {0}, c = {0};
    cnet_error err;
    if (image_decode(&t, s->target, s->target_len, s->name, 0, &err) ||
        image_decode(&c, s->cond, s->cond_len, s->cond_name, 0, &err))
        return snprintf(why, n, "%.200s", err.msg), image_free(&t), -1;
    int rc = 0;
    const uint8_t *bg = t.data, *fill = NULL;
    int edges = 0;
    for (int y = 0; y < S && !rc; y++)
        for (int x = 0; x < S && !rc; x++) {
            const uint8_t *p = t.data + 3 * (y * S + x);
            int is_bg = !memcmp(p, bg, 3);
            if (!is_bg && !fill) fill = p;
            if (!is_bg && memcmp(p, fill, 3))
                rc = snprintf(why, n, "a third colour at %d,%d", x, y);
            if ((x == 0 || y == 0 || x == S - 1 || y == S - 1) && !is_bg)
                rc = snprintf(why, n, "the circle touches the border at %d,%d", x, y);
            int touches = 0;
            const int dx[4] = {1, -1, 0, 0}, dy[4] = {0, 0, 1, -1};
            for (int k = 0; k < 4 && !is_bg; k++) {
                int xx = x + dx[k], yy = y + dy[k];
                touches |= xx >= 0 && yy >= 0 && xx < S && yy < S &&
                           !memcmp(t.data + 3 * (yy * S + xx), bg, 3);
            }
            const uint8_t *q = c.data + 3 * (y * S + x);
            int white = q[0] == 255 && q[1] == 255 && q[2] == 255;
            int black = !q[0] && !q[1] && !q[2];
            if (!rc && !(touches ? white : black))
                rc = snprintf(why, n, "outline pixel %d,%d is (%d,%d,%d), edge %d", x, y, q[0],
                              q[1], q[2], touches);
            edges += touches;
        }
    char caption[128];
    if (!rc && !fill) rc = snprintf(why, n, "no circle");
    if (!rc) {
        snprintf(caption, sizeof caption, "%s circle with %s background", colour_name(fill),
                 colour_name(bg));
        if (strcmp(caption, s->caption) || strchr(caption, '?'))
            rc = snprintf(why, n, "caption '%s', pixels say '%s'", s->caption, caption);
    }
    if (!rc && edges < 8) rc = snprintf(why, n, "only %d outline pixels", edges);
    image_free(&t);
    image_free(&c);
    return rc ? -1 : 0;
}

static void test_make_fill_output_matches_its_definition(void) {
    char dir[600], again[600], other[600];
    CHECK(make_fill(dir, sizeof dir, "fill", 5) == 0, "make-fill");
    dataset ds;
    cnet_error err;
    dataset_options o = {0};
    CHECK(dataset_open(&ds, dir, &o, &err) == 0 && dataset_size(&ds) == N, "%s", err.msg);
    CHECK(dataset_rewind(&ds, &err) == 0, "%s", err.msg);
    dataset_sample s;
    int good = 0;
    while (dataset_next(&ds, &s, &err) == 0) {
        char why[256];
        EXPECT(check_fill_sample(&s, why, sizeof why) == 0, "%s: %s", s.name, why);
        good++;
    }
    dataset_free(&ds);
    CHECK(good == N, "%d samples read", good);
    CHECK(make_fill(again, sizeof again, "fill-again", 5) == 0, "make-fill again");
    CHECK(make_fill(other, sizeof other, "fill-other", 6) == 0, "make-fill other seed");
    char a[700], b[700], c[700];
    snprintf(a, sizeof a, "%s/metadata.jsonl", dir);
    snprintf(b, sizeof b, "%s/metadata.jsonl", again);
    snprintf(c, sizeof c, "%s/metadata.jsonl", other);
    size_t la, lb, lc;
    char *ta = file_read(a, &la), *tb = file_read(b, &lb), *tc = file_read(c, &lc);
    int same = ta && tb && la == lb && !memcmp(ta, tb, la);
    int differs = ta && tc && (la != lc || memcmp(ta, tc, la));
    free(ta), free(tb), free(tc);
    CHECK(same && differs, "a seed names one dataset (same %d, other seed differs %d)", same,
          differs);
    CHECK(dataset_make_fill(dir, N, S, 5, &err) == CNET_EINVAL && strstr(err.msg, "already"),
          "an existing dataset is not overwritten: %s", err.msg);
    CHECK(dataset_make_fill(dir, 0, S, 5, &err) == CNET_EINVAL, "n = 0");
    CHECK(dataset_make_fill(dir, 1, 4, 5, &err) == CNET_EINVAL, "size 4");
}

/* Runs `cnet dataset check` on dir with extra args; returns its exit status
 * and its stdout in out. */
static int run_cli(const char *dir, const char *extra, char *out, size_t n) {
    const char *build = getenv("BUILD");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s/cnet dataset check '%s' %s 2>&1", build ? build : "build", dir,
             extra);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = fread(out, 1, n - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_check_passes_a_clean_dataset(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/fill", tmp);
    dataset ds;
    dataset_report rep;
    cnet_error err;
    dataset_options o = {0};
    CHECK(dataset_open(&ds, dir, &o, &err) == 0, "%s", err.msg);
    CHECK(dataset_check(&ds, 1, 0, &rep, &err) == 0, "%s", err.msg);
    int problems = 0;
    for (int p = 0; p < DATASET_PROBLEM_COUNT; p++) problems += (int)rep.count[p];
    CHECK(problems == 0 && rep.usable == N && rep.samples == N, "%d problems", problems);
    CHECK(dataset_report_verdict(&rep, 0, &err) == 0, "%s", err.msg);
    dataset_report_free(&rep);
    dataset_free(&ds);
    static char out[8192];
    int st = run_cli(dir, "", out, sizeof out);
    CHECK(st == 0 && strstr(out, "usable: 12 of 12"), "cnet dataset check: %d\n%s", st, out);
}

static void plant(const char *dir, const char *file, const image_rgb8 *img, const char *bytes) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    cnet_error err;
    if (img)
        image_save(p, img, NULL, 0, 0, &err);
    else if (bytes)
        file_write(p, bytes, strlen(bytes));
    else
        unlink(p);
}

static void copy_file(const char *dir, const char *from, const char *to) {
    char a[800], b[800];
    snprintf(a, sizeof a, "%s/%s", dir, from);
    snprintf(b, sizeof b, "%s/%s", dir, to);
    size_t n;
    char *d = file_read(a, &n);
    if (d) file_write(b, d, n);
    free(d);
}

static void test_check_finds_each_planted_problem(void) {
    char dir[600];
    CHECK(make_fill(dir, sizeof dir, "planted", 5) == 0, "make-fill");
    image_rgb8 odd = {0}, black = {0};
    cnet_error err;
    CHECK(image_alloc(&odd, 40, S, &err) == 0 && image_alloc(&black, S, S, &err) == 0, "alloc");
    memset(odd.data, 200, 40 * 10 * 3);
    plant(dir, "images/00001.png", NULL, NULL);                   /* missing */
    plant(dir, "conditioning_images/00002.png", NULL, "garbage"); /* unreadable */
    plant(dir, "conditioning_images/00003.png", &odd, NULL);      /* 40x48 vs 48x48 */
    plant(dir, "conditioning_images/00004.png", &black, NULL);    /* blank */
    copy_file(dir, "images/00006.png", "images/00007.png");       /* duplicate pair */
    copy_file(dir, "conditioning_images/00006.png", "conditioning_images/00007.png");
    image_free(&odd), image_free(&black);
    /* Sample 5's caption becomes white space. */
    char p[800];
    snprintf(p, sizeof p, "%s/metadata.jsonl", dir);
    size_t len;
    char *meta = file_read(p, &len), *line = meta;
    for (int i = 0; i < 5 && line; i++) line = strchr(line, '\n') + 1;
    char *text = strstr(line, "\"text\": \"") + 9, *end = strchr(text, '"');
    memset(text, ' ', (size_t)(end - text));
    file_write(p, meta, len);
    free(meta);

    dataset ds;
    dataset_report rep;
    dataset_options o = {0};
    CHECK(dataset_open(&ds, dir, &o, &err) == 0, "%s", err.msg);
    CHECK(dataset_check(&ds, 1, 0, &rep, &err) == 0, "%s", err.msg);
    static const struct {
        dataset_problem p;
        const char *names;
    } want[] = {
        {DATASET_PROBLEM_MISSING, "images/00001.png"},
        {DATASET_PROBLEM_UNREADABLE, "conditioning_images/00002.png"},
        {DATASET_PROBLEM_SIZE_MISMATCH, "images/00003.png"},
        {DATASET_PROBLEM_BLANK_CONDITIONING, "conditioning_images/00004.png"},
        {DATASET_PROBLEM_EMPTY_CAPTION, "images/00005.png"},
        {DATASET_PROBLEM_DUPLICATE, "images/00007.png: same images as images/00006.png"},
    };
    for (int i = 0; i < DATASET_PROBLEM_COUNT; i++) {
        dataset_problem pr = want[i].p;
        EXPECT(rep.count[pr] == 1 && strstr(rep.examples[pr][0], want[i].names),
               "%s: %lld, first '%s'", dataset_problem_name(pr), (long long)rep.count[pr],
               rep.examples[pr][0]);
        printf("    %-19s found: %s\n", dataset_problem_name(pr), rep.examples[pr][0]);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) bad += rep.bad[i];
    CHECK(bad == 2 && rep.bad[1] && rep.bad[2] && rep.usable == N - 2, "bad %d, usable %lld", bad,
          (long long)rep.usable);
    CHECK(dataset_report_verdict(&rep, 0.05, &err) == CNET_EINVAL && strstr(err.msg, "2 of 12"),
          "2 of 12 bad is over 5%%: %s", err.msg);
    CHECK(dataset_report_verdict(&rep, 0.2, &err) == 0, "2 of 12 is under 20%%");
    /* Training skips the bad ones. */
    CHECK(dataset_exclude(&ds, rep.bad, &err) == 0 && dataset_size(&ds) == N - 2, "exclude");
    for (int k = 0; k < 2 * (N - 2); k++) {
        dataset_sample s;
        CHECK(dataset_next(&ds, &s, &err) == 0, "after exclusion: %s", err.msg);
    }
    dataset_report_free(&rep);
    dataset_free(&ds);

    static char out[16384];
    int st = run_cli(dir, "", out, sizeof out);
    CHECK(st == 1 && strstr(out, "unusable") && strstr(out, "images/00001.png") &&
              strstr(out, "blank conditioning  1"),
          "default fraction: exit %d\n%s", st, out);
    st = run_cli(dir, "--max_bad_fraction 0.2", out, sizeof out);
    CHECK(st == 0 && strstr(out, "usable: 10 of 12"), "fraction 0.2: exit %d\n%s", st, out);
    st = run_cli(dir, "--max_bad_fraction 2", out, sizeof out);
    CHECK(st == 2, "a bad option value is a usage error: %d", st);
}

static void test_check_refuses_an_unusable_dataset(void) {
    char dir[600], p[800];
    CHECK(make_fill(dir, sizeof dir, "empty-images", 3) == 0, "make-fill");
    snprintf(p, sizeof p, "rm -r '%s/images'", dir);
    CHECK(system(p) == 0, "rm");
    static char out[8192];
    int st = run_cli(dir, "--max_bad_fraction 1", out, sizeof out);
    CHECK(st == 1 && strstr(out, "no usable sample") && strstr(out, "missing             12"),
          "exit %d\n%s", st, out);
    st = run_cli("/nonexistent/dataset", "", out, sizeof out);
    CHECK(st == 1 && strstr(out, "/nonexistent/dataset"), "a missing folder: %d %s", st, out);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(tmp, sizeof tmp, "cnet-dscheck-")) return printf("no temp dir\n"), 1;
    RUN(test_make_fill_output_matches_its_definition);
    RUN(test_check_passes_a_clean_dataset);
    RUN(test_check_finds_each_planted_problem);
    RUN(test_check_refuses_an_unusable_dataset);
    tmpdir_remove(tmp);
    return harness_done();
}
