/* Golden check of goldens/preprocess.safetensors: train_controlnet.py's
 * image transforms (engine/image/preprocess.h) on the fixture's images.
 *
 * The metadata "preprocess.files" lists the images (under <fixtures>/images/):
 * the first is the target image (<k> = "image", normalised to [-1, 1]), the
 * second the conditioning image (<k> = "cond", kept in [0, 1]). For each, the
 * decoded pixels are compared (preprocess.<k>.input_uint8), and for every
 * resolution R that a tensor preprocess.<k>.res<R>.output names, the
 * short-side bilinear resize (preprocess.<k>.res<R>.resized_uint8, exactly)
 * and the whole transform ([3, R, R] NCHW), and where the file records it
 * (goldens-sdxl/preprocess_sdxl) the CenterCrop(R) origin
 * (preprocess.<k>.res<R>.center_crop_top_left, int64 [top, left]).
 * Resolutions are read from the names, so other fixture directories may use
 * other sizes and images. preprocess_sdxl's preprocess.res<R>.time_ids are
 * the SDXL training time ids (engine/train/train_sdxl.h) for resolution R and
 * the crop arguments the training goldens were made with (train_sdxl's
 * metadata 'train.args'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"
#include "engine/core/layout.h"
#include "engine/image/preprocess.h"
#include "engine/train/train_sdxl.h"
#include "server/golden/golden.h"

/* The float outputs are v / 255 (and (x - 0.5) / 0.5) in float32 on both
 * sides, so they should agree to the last bit; the README gives no f32-f64
 * figure for them. A few ulps of 1.0 are allowed. */
#define GOLDEN_PREPROCESS_TOL 1e-6
/* Largest resolution a tensor name may ask for. */
#define GOLDEN_PREPROCESS_MAX_RES 4096

static const char *const kinds[] = {"image", "cond"}; /* in metadata order */

static void compare_u8(golden_ctx *ctx, const st_file *f, const char *name, const image_rgb8 *img) {
    cnet_tensor t = {CNET_U8, 3, {img->height, img->width, 3}, img->data, -1};
    golden_compare(ctx, f, name, &t);
}

/* Resize, crop and convert at resolution R; compares both results. */
static int check_resolution(golden_ctx *ctx, const st_file *f, const char *kind,
                            const image_rgb8 *img, int R, preprocess_range range, cnet_error *err) {
    char name[256];
    image_rgb8 resized;
    int rc = preprocess_resize_short_side(&resized, img, R, err);
    if (rc) return rc;
    snprintf(name, sizeof name, "preprocess.%s.res%d.resized_uint8", kind, R);
    compare_u8(ctx, f, name, &resized);
    snprintf(name, sizeof name, "preprocess.%s.res%d.center_crop_top_left", kind, R);
    int left, top;
    if (st_find(f, name) &&
        !(rc = preprocess_center_crop_origin(resized.width, resized.height, R, &left, &top, err))) {
        int64_t origin[2] = {top, left};
        cnet_tensor t = {CNET_I64, 1, {2}, origin, -1};
        golden_compare(ctx, f, name, &t);
    }
    image_free(&resized);
    if (rc) return rc;
    float *nhwc = malloc(sizeof(float) * 3 * R * R), *nchw = malloc(sizeof(float) * 3 * R * R);
    if (!nhwc || !nchw) {
        rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    } else if (!(rc = preprocess_train(nhwc, img, R, range, err))) {
        layout_nhwc_to_nchw(nchw, nhwc, 1, 3, R, R);
        cnet_tensor t = {CNET_F32, 3, {3, R, R}, nchw, -1};
        snprintf(name, sizeof name, "preprocess.%s.res%d.output", kind, R);
        golden_compare_within(ctx, f, name, &t, GOLDEN_PREPROCESS_TOL);
    }
    free(nhwc);
    free(nchw);
    return rc;
}

/* R from "preprocess.<kind>.res<R>.output"; 0 when name is not one. */
static int output_resolution(const char *name, const char *kind) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "preprocess.%s.res", kind);
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return 0;
    char *end;
    long R = strtol(name + n, &end, 10);
    if (end == name + n || strcmp(end, ".output") != 0) return 0;
    return R;
}

static int check_kind(golden_ctx *ctx, const st_file *f, const char *kind, const char *file,
                      preprocess_range range, cnet_error *err) {
    char path[PATH_MAX + 300], name[128];
    snprintf(path, sizeof path, "%s/images/%s", ctx->fixtures, file);
    image_rgb8 img;
    int rc = image_load(&img, path, 0, err);
    if (rc) return rc;
    snprintf(name, sizeof name, "preprocess.%s.input_uint8", kind);
    compare_u8(ctx, f, name, &img);
    for (int i = 0; i < f->n && !rc; i++) {
        long R = output_resolution(f->entries[i].name, kind);
        if (R == 0) continue;
        if (R < 1 || R > GOLDEN_PREPROCESS_MAX_RES)
            rc = cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' names resolution %ld (1..%d)",
                           f->path, f->entries[i].name, R, GOLDEN_PREPROCESS_MAX_RES);
        else
            rc = check_resolution(ctx, f, kind, &img, (int)R, range, err);
    }
    image_free(&img);
    return rc;
}

/* The crop arguments of <goldens>/train_sdxl.safetensors' 'train.args'. */
static int training_crops(const golden_ctx *ctx, int *crops_h, int *crops_w, cnet_error *err) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s/train_sdxl.safetensors", ctx->fixtures, ctx->goldens);
    st_file t;
    int rc = st_open(&t, path, err);
    if (rc) return cnet_error_prefix(err, "preprocess time ids");
    const char *meta = st_meta(&t, "train.args");
    json_t *args = meta ? json_loads(meta, 0, NULL) : NULL;
    const json_t *h = json_object_get(args, "crops_coords_top_left_h"),
                 *w = json_object_get(args, "crops_coords_top_left_w");
    if (json_is_integer(h) && json_is_integer(w))
        *crops_h = (int)json_integer_value(h), *crops_w = (int)json_integer_value(w);
    else
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: metadata 'train.args' has no integer crops_coords_top_left_h/_w", path);
    json_decref(args);
    st_close(&t);
    return rc;
}

/* preprocess.res<R>.time_ids: [1, 6] = [R, R, crops_h, crops_w, R, R]. */
static int check_time_ids(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    int crops_h = 0, crops_w = 0, have_crops = 0, rc = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        long R;
        int end = 0;
        if (sscanf(f->entries[i].name, "preprocess.res%ld.time_ids%n", &R, &end) != 1 ||
            f->entries[i].name[end] != '\0')
            continue;
        if (R < 1 || R > GOLDEN_PREPROCESS_MAX_RES)
            return cnet_fail(err, CNET_EFORMAT, "%s: tensor '%s' names resolution %ld (1..%d)",
                             f->path, f->entries[i].name, R, GOLDEN_PREPROCESS_MAX_RES);
        if (!have_crops && (rc = training_crops(ctx, &crops_h, &crops_w, err))) return rc;
        have_crops = 1;
        float ids[CNET_TIME_IDS];
        train_sdxl_time_ids(ids, 1, (int)R, crops_h, crops_w);
        cnet_tensor t = {CNET_F32, 2, {1, CNET_TIME_IDS}, ids, -1};
        golden_compare_within(ctx, f, f->entries[i].name, &t, 0);
    }
    return rc;
}

int golden_check_preprocess(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    const char *meta = st_meta(f, "preprocess.files");
    if (!meta) return cnet_fail(err, CNET_ENOTFOUND, "%s: no metadata 'preprocess.files'", f->path);
    json_t *files = json_loads(meta, 0, NULL);
    int rc = 0;
    if (!json_is_array(files) || json_array_size(files) != 2) {
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: metadata 'preprocess.files' is not a list of two file names", f->path);
    }
    for (size_t i = 0; i < 2 && !rc; i++) {
        const json_t *file = json_array_get(files, i);
        if (!json_is_string(file) || strchr(json_string_value(file), '/')) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: preprocess.files[%zu] is not a file name",
                           f->path, i);
            break;
        }
        rc = check_kind(ctx, f, kinds[i], json_string_value(file),
                        i == 0 ? PREPROCESS_SIGNED : PREPROCESS_UNIT, err);
    }
    json_decref(files);
    return rc ? rc : check_time_ids(ctx, f, err);
}
