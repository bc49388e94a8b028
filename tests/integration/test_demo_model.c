/* Issue 19's checks of the demo model that `make run` serves (server/demo/model,
 * made by `make demo-model`; --model DIR checks another folder of its kind).
 * Each case is a circle outline for the control image and a caption
 * "<colour> circle with <colour> background" in make-fill's palette
 * (dataset_fill_colour): the README's request (docker/demo-control.png,
 * "red circle with navy background", seed 1) and held-out circles and
 * colour pairs (`make-fill --seed 1`; the model trained on seed 0's). The
 * circle's mask is what the outline encloses: every pixel the outside
 * cannot reach without crossing the outline.
 *   - colours: with the demo's ControlNet, the mean RGB distance of the
 *     generated pixels to the caption's circle colour inside the circle and
 *     to its background colour outside (a margin of MARGIN pixels either
 *     side of the outline left out: the edge is soft) is under
 *     COLOUR_DIST_MAX over the cases, and each case's circle and background
 *     come out nearer their own colour than each other's;
 *   - adherence: the mask IoU of the circle (pixels nearer the circle
 *     colour than the background's, against the outline's mask) with the
 *     demo's ControlNet is IOU_GAIN_MIN over the untrained one's, and at
 *     least IOU_MIN. The untrained ControlNet (ControlNetModel.from_unet)
 *     has zero convolutions out, so its residuals are zero: its images are
 *     those of controlnet_conditioning_scale 0;
 *   - the service's demo job (server/demo/demo_job.json, the job `make run`
 *     prints) on the dataset `make run` writes, run by a real `cnet serve`
 *     on the demo base: the ControlNet it trains improves the IoU as above.
 * The bounds come from the shipped model's figures (BENCHMARKS.md, "Demo
 * model"), with room for another machine's rounding. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "engine/image/image.h"
#include "engine/pipeline/generate.h"
#include "engine/pipeline/sd_base.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_server.h"

#define MARGIN 2
#define COLOUR_DIST_MAX 60.0
#define IOU_MIN 0.6
#define IOU_GAIN_MIN 0.2
#define HELD_OUT 8
#define N_CASES (HELD_OUT + 1)
#define STEPS 20
/* The demo's guidance scale (the README's request, the model card's): the
 * colour is all the prompt says, and 7.5 overshoots it (a red circle comes
 * out yellow; BENCHMARKS.md, "Demo model", has the sweep). */
#define DEMO_GUIDANCE 2.0f
/* make run's demo dataset (Makefile): make-fill's first samples of the
 * recipe's seed. */
#define JOB_SAMPLES "1000"
#define JOB_TIMEOUT_S 1200.0

static const char *model_dir(void) { return harness_arg("--model", "server/demo/model"); }

typedef struct demo_case {
    image_rgb8 control;
    uint8_t *mask; /* [h * w], 1 inside the outline */
    char caption[128];
    uint8_t fill[3], background[3];
    uint64_t seed;
} demo_case;

static demo_case cases[N_CASES];
static int n_cases;
static char tmp[PATH_MAX / 2];
static sd_base base;
static cnet_backend be;
static int loaded;

/* mask = what the white outline encloses: a flood fill of the outside from
 * the border through the dark pixels; whatever it misses is the circle. */
static int outline_mask(const image_rgb8 *c, uint8_t *mask) {
    int w = c->width, h = c->height, n = 0;
    int *stack = malloc(sizeof(int) * (size_t)w * h);
    if (!stack) return -1;
    memset(mask, 1, (size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (x == 0 || y == 0 || x == w - 1 || y == h - 1) stack[n++] = y * w + x;
    while (n > 0) {
        int p = stack[--n], x = p % w, y = p / w;
        if (!mask[p] || c->data[3 * p] > 127) continue;
        mask[p] = 0;
        const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
        for (int k = 0; k < 4; k++)
            if (nx[k] >= 0 && ny[k] >= 0 && nx[k] < w && ny[k] < h && mask[ny[k] * w + nx[k]])
                stack[n++] = ny[k] * w + nx[k];
    }
    free(stack);
    return 0;
}

static int parse_caption(demo_case *c) {
    char fill[64], bg[64];
    const char *with = strstr(c->caption, " circle with ");
    const char *end = strstr(c->caption, " background");
    if (!with || !end || end < with) return -1;
    snprintf(fill, sizeof fill, "%.*s", (int)(with - c->caption), c->caption);
    with += strlen(" circle with ");
    snprintf(bg, sizeof bg, "%.*s", (int)(end - with), with);
    return dataset_fill_colour(fill, c->fill) || dataset_fill_colour(bg, c->background) ? -1 : 0;
}

static int add_case(const char *control_png, const char *caption, uint64_t seed, cnet_error *err) {
    demo_case *c = &cases[n_cases];
    snprintf(c->caption, sizeof c->caption, "%s", caption);
    c->seed = seed;
    if (image_load(&c->control, control_png, 0, err)) return -1;
    c->mask = malloc((size_t)c->control.width * c->control.height);
    if (!c->mask || outline_mask(&c->control, c->mask) || parse_caption(c)) return -1;
    n_cases++;
    return 0;
}

/* The README's case, then HELD_OUT samples of make-fill --seed 1. */
static int load_cases(cnet_error *err) {
    char fill[PATH_MAX], path[PATH_MAX + 64];
    if (add_case("docker/demo-control.png", "red circle with navy background", 1, err)) return -1;
    snprintf(fill, sizeof fill, "%s/heldout", tmp);
    if (dataset_make_fill(fill, HELD_OUT, cases[0].control.width, 1, err)) return -1;
    snprintf(path, sizeof path, "%s/metadata.jsonl", fill);
    FILE *f = fopen(path, "r");
    char line[512];
    for (int i = 0; f && i < HELD_OUT && fgets(line, sizeof line, f); i++) {
        json_t *j = json_loads(line, 0, NULL);
        snprintf(path, sizeof path, "%s/%s", fill,
                 json_string_value(json_object_get(j, "conditioning_image_file_name")));
        int rc =
            add_case(path, json_string_value(json_object_get(j, "text")), 2 + (uint64_t)i, err);
        json_decref(j);
        if (rc) break;
    }
    if (f) fclose(f);
    return n_cases == N_CASES ? 0 : -1;
}

/* One image of case c with the ControlNet cn at scale (the demo's settings:
 * the folder's scheduler, STEPS steps, DEMO_GUIDANCE). */
static int generate(const demo_case *c, controlnet_model *cn, const char *cn_dir, float scale,
                    image_rgb8 *out, cnet_error *err) {
    generate_request r = {.model_dir = model_dir(),
                          .base = &base,
                          .scheduler = -1,
                          .prompt = c->caption,
                          .steps = STEPS,
                          .num_images = 1,
                          .guidance = DEMO_GUIDANCE,
                          .seed = c->seed,
                          .n_controls = 1};
    r.controls[0] = (generate_control){.dir = cn_dir,
                                       .image_name = "control",
                                       .image = &c->control,
                                       .model = cn,
                                       .scale = scale,
                                       .end = 1.0f};
    generate_result res;
    int rc = generate_run(&r, NULL, &res, err);
    if (!rc) *out = res.images[0], res.images[0].data = NULL;
    generate_result_free(&res);
    return rc;
}

static double rgb_dist(const uint8_t *a, const uint8_t *b) {
    double d = 0;
    for (int k = 0; k < 3; k++) d += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
    return sqrt(d);
}

/* Whether every pixel within MARGIN of (x, y) has mask value want. */
static int deep_in(const uint8_t *mask, int w, int h, int x, int y, int want) {
    for (int dy = -MARGIN; dy <= MARGIN; dy++)
        for (int dx = -MARGIN; dx <= MARGIN; dx++) {
            int u = x + dx, v = y + dy;
            if (u >= 0 && v >= 0 && u < w && v < h && mask[v * w + u] != want) return 0;
        }
    return 1;
}

/* The mean distance to rgb of the pixels deep on the want side of the mask,
 * and (mean_rgb) their mean colour. */
static double region_dist(const image_rgb8 *img, const uint8_t *mask, int want, const uint8_t *rgb,
                          uint8_t mean_rgb[3]) {
    double sum = 0, m[3] = {0};
    int n = 0;
    for (int y = 0; y < img->height; y++)
        for (int x = 0; x < img->width; x++)
            if (deep_in(mask, img->width, img->height, x, y, want)) {
                const uint8_t *p = img->data + 3 * ((size_t)y * img->width + x);
                sum += rgb_dist(p, rgb);
                for (int k = 0; k < 3; k++) m[k] += p[k];
                n++;
            }
    for (int k = 0; k < 3; k++) mean_rgb[k] = (uint8_t)lround(n ? m[k] / n : 0);
    return n ? sum / n : INFINITY;
}

/* The circle's IoU: pixels nearer the fill colour than the background's
 * against the outline's mask. */
static double circle_iou(const image_rgb8 *img, const demo_case *c) {
    int inter = 0, uni = 0;
    for (int p = 0; p < img->width * img->height; p++) {
        const uint8_t *px = img->data + 3 * p;
        int pred = rgb_dist(px, c->fill) < rgb_dist(px, c->background);
        inter += pred && c->mask[p];
        uni += pred || c->mask[p];
    }
    return uni ? (double)inter / uni : 0;
}

/* The mean IoU over the cases with cn at scale; -1 on failure. */
static double mean_iou(controlnet_model *cn, const char *cn_dir, float scale, cnet_error *err) {
    double sum = 0;
    for (int i = 0; i < n_cases; i++) {
        image_rgb8 img = {0};
        if (generate(&cases[i], cn, cn_dir, scale, &img, err)) return -1;
        sum += circle_iou(&img, &cases[i]);
        image_free(&img);
    }
    return sum / n_cases;
}

static void test_colours(void) {
    CHECK(loaded, "the demo model or its cases did not load");
    controlnet_model cn;
    cnet_error err = {0};
    char cn_dir[PATH_MAX];
    snprintf(cn_dir, sizeof cn_dir, "%s/controlnet", model_dir());
    CHECK(controlnet_open(&cn, &be, cn_dir, &err) == 0, "%s", err.msg);
    double sum = 0;
    for (int i = 0; i < n_cases; i++) {
        const demo_case *c = &cases[i];
        image_rgb8 img = {0};
        if (generate(c, &cn, cn_dir, 1.0f, &img, &err)) {
            controlnet_free(&cn);
            CHECK(0, "generate \"%s\": %s", c->caption, err.msg);
        }
        uint8_t in_rgb[3], out_rgb[3];
        double in = region_dist(&img, c->mask, 1, c->fill, in_rgb);
        double out = region_dist(&img, c->mask, 0, c->background, out_rgb);
        printf("    \"%s\" seed %llu: circle (%d,%d,%d) %.1f from its colour, background "
               "(%d,%d,%d) %.1f, IoU %.2f\n",
               c->caption, (unsigned long long)c->seed, in_rgb[0], in_rgb[1], in_rgb[2], in,
               out_rgb[0], out_rgb[1], out_rgb[2], out, circle_iou(&img, c));
        EXPECT(rgb_dist(in_rgb, c->fill) < rgb_dist(in_rgb, c->background),
               "\"%s\": the circle's mean colour is nearer the background's", c->caption);
        EXPECT(rgb_dist(out_rgb, c->background) < rgb_dist(out_rgb, c->fill),
               "\"%s\": the background's mean colour is nearer the circle's", c->caption);
        sum += (in + out) / 2;
        image_free(&img);
    }
    controlnet_free(&cn);
    double mean = sum / n_cases;
    printf("    mean colour distance %.1f (bound %.0f)\n", mean, COLOUR_DIST_MAX);
    CHECK(mean < COLOUR_DIST_MAX, "mean colour distance %.1f, over %.0f", mean, COLOUR_DIST_MAX);
}

/* The IoU of the ControlNet in cn_dir against the untrained one's. */
static void check_adherence(const char *cn_dir, const char *what) {
    controlnet_model cn;
    cnet_error err = {0};
    CHECK(controlnet_open(&cn, &be, cn_dir, &err) == 0, "%s: %s", cn_dir, err.msg);
    double trained = mean_iou(&cn, cn_dir, 1.0f, &err);
    double untrained = trained < 0 ? -1 : mean_iou(&cn, cn_dir, 0.0f, &err);
    controlnet_free(&cn);
    CHECK(trained >= 0 && untrained >= 0, "generate: %s", err.msg);
    printf("    %s: mean circle IoU %.3f, untrained %.3f\n", what, trained, untrained);
    CHECK(trained >= untrained + IOU_GAIN_MIN && trained >= IOU_MIN,
          "%s: IoU %.3f vs untrained %.3f (wanted +%.2f and at least %.2f)", what, trained,
          untrained, IOU_GAIN_MIN, IOU_MIN);
}

static void test_adherence(void) {
    CHECK(loaded, "the demo model or its cases did not load");
    char cn_dir[PATH_MAX];
    snprintf(cn_dir, sizeof cn_dir, "%s/controlnet", model_dir());
    check_adherence(cn_dir, "the demo's ControlNet");
}

/* The job file with its "DATASET" placeholder replaced by path. */
static char *demo_job(const char *path) {
    char *spec = file_read("server/demo/demo_job.json", NULL);
    const char *at = spec ? strstr(spec, "\"DATASET\"") : NULL;
    char *body = at ? malloc(strlen(spec) + strlen(path) + 8) : NULL;
    if (body)
        sprintf(body, "%.*s\"%s\"%s", (int)(at - spec), spec, path, at + strlen("\"DATASET\""));
    free(spec);
    return body;
}

static void test_demo_job(void) {
    CHECK(loaded, "the demo model or its cases did not load");
    char data[PATH_MAX], root[PATH_MAX], fill[PATH_MAX + 8];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(root, sizeof root, "%s/local", tmp);
    snprintf(fill, sizeof fill, "%s/fill", root);
    CHECK(shell_run("mkdir -p '%s/models' '%s' && cp -r '%s' '%s/models/demo' && "
                    "'%s/cnet' dataset make-fill --n " JOB_SAMPLES " --size %d --out '%s' "
                    ">/dev/null",
                    data, root, model_dir(), data, getenv("BUILD") ? getenv("BUILD") : "build",
                    cases[0].control.width, fill) == 0,
          "copying the model and writing the dataset");
    test_server srv;
    const char *extra[] = {"--device", "cpu", "--data-root", root, NULL};
    CHECK(server_start(&srv, data, extra) == 0, "cnet serve did not start");
    char *body = demo_job(fill), id[64] = "", state[16] = "";
    http_resp r = {0};
    const char *const h[] = {"Content-Type: application/json", NULL};
    if (body) http_do(&srv, "POST", "/v1/jobs", SERVER_TEST_TOKEN, h, body, strlen(body), 0, &r);
    json_t *j = r.body ? json_loads(r.body, 0, NULL) : NULL;
    snprintf(id, sizeof id, "%s", j ? json_string_value(json_object_get(j, "id")) : "");
    json_decref(j);
    long status = r.status;
    http_resp_free(&r);
    free(body);
    double t0 = test_now_s();
    while (status == 202 && test_now_s() - t0 < JOB_TIMEOUT_S && strcmp(state, "succeeded") &&
           strcmp(state, "failed") && strcmp(state, "cancelled")) {
        sleep(1);
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s", id);
        http_do(&srv, "GET", path, SERVER_TEST_TOKEN, NULL, NULL, 0, 0, &r);
        j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
        snprintf(state, sizeof state, "%s",
                 j ? json_string_value(json_object_get(j, "state")) : "");
        json_decref(j);
        http_resp_free(&r);
    }
    server_stop(&srv, SIGTERM, 10000);
    printf("    demo job %s: %s in %.0f s\n", id, state, test_now_s() - t0);
    CHECK(status == 202, "POST /v1/jobs with server/demo/demo_job.json: %ld", status);
    CHECK(!strcmp(state, "succeeded"), "the demo job ended %s", state[0] ? state : "(timed out)");
    char cn_dir[PATH_MAX + 80];
    snprintf(cn_dir, sizeof cn_dir, "%s/jobs/%s", data, id);
    check_adherence(cn_dir, "the demo job's ControlNet");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    cnet_error err = {0};
    int have_be =
        tmpdir_make(tmp, sizeof tmp, "cnet-demo-") == 0 && cnet_backend_cpu_init(&be, &err) == 0;
    int have_base = have_be && sd_base_open(&base, &be, model_dir(), &err) == 0;
    loaded = have_base && load_cases(&err) == 0;
    if (!loaded) printf("    %s: %s\n", model_dir(), err.msg);
    RUN(test_colours);
    RUN(test_adherence);
    RUN(test_demo_job);
    for (int i = 0; i < n_cases; i++) image_free(&cases[i].control), free(cases[i].mask);
    if (have_base) sd_base_free(&base);
    if (have_be) cnet_backend_free(&be);
    tmpdir_remove(tmp);
    return harness_done();
}
