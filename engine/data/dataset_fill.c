/* `cnet dataset make-fill`: a synthetic ControlNet dataset in the spirit of
 * fill50k (lllyasviel's toy set from the ControlNet paper's tutorial): a
 * filled circle of one named colour on a background of another; the
 * conditioning image is the circle's outline, white on black. Every draw
 * comes from Philox (dataset_order.c's streams, tag DATASET_STREAM_FILL), so
 * a seed names one dataset. Geometry: radius r in [max(2, S/10), 3S/8],
 * centre (cx, cy) in [r + 1, S - r - 1] (the whole circle and its outline
 * are visible, background all round); a pixel is
 * inside when its centre (x + 0.5, y + 0.5) is within r of (cx, cy); the
 * outline is the inside pixels with a 4-neighbour outside. Not fill50k
 * itself: its colours, radii and line width are not reproduced. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/data/dataset_impl.h"
#include "engine/image/image.h"

typedef struct colour {
    const char *name;
    uint8_t rgb[3];
} colour;

static const colour colours[] = {
    {"red", {255, 0, 0}},      {"green", {0, 128, 0}},           {"blue", {0, 0, 255}},
    {"yellow", {255, 255, 0}}, {"cyan", {0, 255, 255}},          {"magenta", {255, 0, 255}},
    {"orange", {255, 165, 0}}, {"purple", {128, 0, 128}},        {"pink", {255, 192, 203}},
    {"brown", {165, 42, 42}},  {"white", {255, 255, 255}},       {"black", {0, 0, 0}},
    {"gray", {128, 128, 128}}, {"light coral", {240, 128, 128}}, {"sea green", {46, 139, 87}},
    {"navy", {0, 0, 128}},     {"gold", {255, 215, 0}},          {"teal", {0, 128, 128}},
    {"olive", {128, 128, 0}},  {"sky blue", {135, 206, 235}},
};
#define N_COLOURS ((int)(sizeof colours / sizeof colours[0]))

typedef struct circle {
    int fill, background; /* indices into colours */
    int r, cx, cy;
} circle;

static uint64_t draw(uint64_t seed, int i, int k, uint64_t n) {
    return dataset_draw_below(seed, DATASET_STREAM_FILL, 0, (uint64_t)i * 8 + (uint64_t)k, n);
}

static circle draw_circle(uint64_t seed, int i, int size) {
    circle c;
    c.fill = (int)draw(seed, i, 0, N_COLOURS);
    c.background = (c.fill + 1 + (int)draw(seed, i, 1, N_COLOURS - 1)) % N_COLOURS;
    int rmin = size / 10 > 2 ? size / 10 : 2, rmax = 3 * size / 8;
    c.r = rmin + (int)draw(seed, i, 2, (uint64_t)(rmax - rmin + 1));
    c.cx = c.r + 1 + (int)draw(seed, i, 3, (uint64_t)(size - 2 * c.r - 1));
    c.cy = c.r + 1 + (int)draw(seed, i, 4, (uint64_t)(size - 2 * c.r - 1));
    return c;
}

static int inside(const circle *c, int x, int y) {
    double dx = x + 0.5 - c->cx, dy = y + 0.5 - c->cy;
    return dx * dx + dy * dy <= (double)c->r * c->r;
}

/* target [S, S, 3]: the filled circle; cond [S, S, 3]: its outline. */
static void paint(const circle *c, image_rgb8 *target, image_rgb8 *cond) {
    int s = target->width;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            int in = inside(c, x, y);
            int edge = in && !(inside(c, x - 1, y) && inside(c, x + 1, y) && inside(c, x, y - 1) &&
                               inside(c, x, y + 1));
            const uint8_t *rgb = colours[in ? c->fill : c->background].rgb;
            uint8_t *t = target->data + 3 * ((size_t)y * s + x);
            uint8_t *k = cond->data + 3 * ((size_t)y * s + x);
            for (int ch = 0; ch < 3; ch++) t[ch] = rgb[ch], k[ch] = edge ? 255 : 0;
        }
}

int dataset_fill_colour(const char *name, uint8_t rgb[3]) {
    for (int i = 0; i < N_COLOURS; i++)
        if (strcmp(colours[i].name, name) == 0) {
            memcpy(rgb, colours[i].rgb, 3);
            return 0;
        }
    return -1;
}

static int make_dir(const char *path, cnet_error *err) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return cnet_fail(err, CNET_EIO, "mkdir %s: %s", path, strerror(errno));
    return 0;
}

static int write_index(const char *out_dir, const char *text, size_t len, cnet_error *err) {
    char tmp[DATASET_PATH_MAX], final[DATASET_PATH_MAX];
    int rc = dataset_join(tmp, out_dir, "metadata.jsonl.tmp", err);
    if (!rc) rc = dataset_join(final, out_dir, "metadata.jsonl", err);
    if (rc) return rc;
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return cnet_fail(err, CNET_EIO, "writing %s: %s", final, strerror(e));
    }
    return 0;
}

int dataset_make_fill(const char *out_dir, int n, int size, uint64_t seed, cnet_error *err) {
    if (n < 1 || n > DATASET_FILL_N_MAX)
        return cnet_fail(err, CNET_EINVAL, "--n must be in 1..%d, got %d", DATASET_FILL_N_MAX, n);
    if (size < DATASET_FILL_SIZE_MIN || size > DATASET_FILL_SIZE_MAX)
        return cnet_fail(err, CNET_EINVAL, "--size must be in %d..%d, got %d",
                         DATASET_FILL_SIZE_MIN, DATASET_FILL_SIZE_MAX, size);
    char p[DATASET_PATH_MAX];
    int rc = dataset_join(p, out_dir, "metadata.jsonl", err);
    if (rc) return rc;
    if (access(p, F_OK) == 0)
        return cnet_fail(err, CNET_EINVAL, "%s already holds a dataset (metadata.jsonl)", out_dir);
    if ((rc = make_dir(out_dir, err))) return rc;
    const char *sub[2] = {"images", "conditioning_images"};
    for (int k = 0; k < 2 && !rc; k++)
        if (!(rc = dataset_join(p, out_dir, sub[k], err))) rc = make_dir(p, err);
    if (rc) return rc;
    image_rgb8 target = {0}, cond = {0};
    size_t line_max = 256, cap = (size_t)n * line_max, len = 0;
    char *index = malloc(cap);
    if (!index) return cnet_fail(err, CNET_ENOMEM, "make-fill: out of memory");
    rc = image_alloc(&target, size, size, err);
    if (!rc) rc = image_alloc(&cond, size, size, err);
    for (int i = 0; i < n && !rc; i++) {
        circle c = draw_circle(seed, i, size);
        paint(&c, &target, &cond);
        char name[2][64];
        for (int k = 0; k < 2 && !rc; k++) {
            snprintf(name[k], sizeof name[k], "%s/%05d.png", sub[k], i);
            if (!(rc = dataset_join(p, out_dir, name[k], err)))
                rc = image_save(p, k ? &cond : &target, NULL, 0, 0, err);
        }
        len += (size_t)snprintf(index + len, line_max,
                                "{\"file_name\": \"%s\", \"conditioning_image_file_name\": \"%s\", "
                                "\"text\": \"%s circle with %s background\"}\n",
                                name[0], name[1], colours[c.fill].name, colours[c.background].name);
    }
    if (!rc) rc = write_index(out_dir, index, len, err);
    free(index);
    image_free(&target);
    image_free(&cond);
    return rc;
}
