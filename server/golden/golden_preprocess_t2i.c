/* Golden check of goldens-unet-train/preprocess_t2i.safetensors:
 * train_text_to_image.py's train_transforms with --center_crop and no
 * --random_flip (Resize(R, bilinear), CenterCrop(R), ToTensor,
 * Normalize([0.5], [0.5]); engine/image/preprocess.h) on the images the
 * metadata "preprocess.files" lists (under <fixtures>/images/). Sample <k>
 * (its index in that list) is always a target image, so every one is
 * normalised to [-1, 1]: the decoded pixels (preprocess.<k>.input_uint8),
 * the short-side resize (resized_uint8, exactly), the crop origin
 * (center_crop_top_left) and the transform ([3, R, R] NCHW, R from the
 * output's shape), then the stacked batch (preprocess.pixel_values). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"
#include "engine/image/image.h"
#include "engine/image/preprocess.h"
#include "server/golden/golden.h"

/* v / 255 and (x - 0.5) / 0.5 in float32 on both sides (as in
 * golden_preprocess.c): a few ulps of 1.0. */
#define GOLDEN_T2I_TOL 1e-6
#define GOLDEN_T2I_MAX_SAMPLES 64

static void compare_u8(golden_ctx *ctx, const st_file *f, const char *name, const image_rgb8 *img) {
    cnet_tensor t = {CNET_U8, 3, {img->height, img->width, 3}, img->data, -1};
    golden_compare(ctx, f, name, &t);
}

/* Sample k from file: its checks, and its [3, R, R] output into out. */
static int check_sample(golden_ctx *ctx, const st_file *f, int k, const char *file, int R,
                        float *out, cnet_error *err) {
    char path[PATH_MAX + 300], name[GOLDEN_NAME_MAX];
    snprintf(path, sizeof path, "%s/images/%s", ctx->fixtures, file);
    image_rgb8 img, resized;
    int rc = image_load(&img, path, 0, err);
    if (rc) return rc;
    snprintf(name, sizeof name, "preprocess.%d.input_uint8", k);
    compare_u8(ctx, f, name, &img);
    int left = 0, top = 0;
    if (!(rc = preprocess_resize_short_side(&resized, &img, R, err))) {
        snprintf(name, sizeof name, "preprocess.%d.resized_uint8", k);
        compare_u8(ctx, f, name, &resized);
        rc = preprocess_center_crop_origin(resized.width, resized.height, R, &left, &top, err);
        image_free(&resized);
    }
    if (!rc) {
        int64_t origin[2] = {top, left};
        cnet_tensor t = {CNET_I64, 1, {2}, origin, -1};
        snprintf(name, sizeof name, "preprocess.%d.center_crop_top_left", k);
        golden_compare(ctx, f, name, &t);
    }
    float *nhwc = malloc(sizeof(float) * 3 * R * R);
    if (!rc && !nhwc) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    if (!rc && !(rc = preprocess_train(nhwc, &img, R, PREPROCESS_SIGNED, err))) {
        layout_nhwc_to_nchw(out, nhwc, 1, 3, R, R);
        cnet_tensor t = {CNET_F32, 3, {3, R, R}, out, -1};
        snprintf(name, sizeof name, "preprocess.%d.output", k);
        golden_compare_within(ctx, f, name, &t, GOLDEN_T2I_TOL);
    }
    free(nhwc);
    image_free(&img);
    return rc;
}

int golden_check_preprocess_t2i(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    const char *meta = st_meta(f, "preprocess.files");
    json_t *files = meta ? json_loads(meta, 0, NULL) : NULL;
    const st_entry *px = st_find(f, "preprocess.pixel_values");
    const int n = (int)json_array_size(files);
    int rc = 0;
    if (!json_is_array(files) || n < 1 || n > GOLDEN_T2I_MAX_SAMPLES || !px || px->view.ndim != 4 ||
        px->view.shape[0] != n || px->view.shape[2] != px->view.shape[3])
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: needs metadata preprocess.files (1..%d names) and "
                       "preprocess.pixel_values [n,3,R,R]",
                       f->path, GOLDEN_T2I_MAX_SAMPLES);
    const int R = rc ? 0 : (int)px->view.shape[2];
    float *batch = rc ? NULL : malloc(sizeof(float) * 3 * R * R * n);
    if (!rc && !batch) rc = cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    for (int k = 0; k < n && !rc; k++) {
        const char *file = json_string_value(json_array_get(files, (size_t)k));
        rc = file ? check_sample(ctx, f, k, file, R, batch + (size_t)3 * R * R * k, err)
                  : cnet_fail(err, CNET_EFORMAT, "%s: preprocess.files[%d] is not a name", f->path,
                              k);
    }
    if (!rc) {
        cnet_tensor t = {CNET_F32, 4, {n, 3, R, R}, batch, -1};
        golden_compare_within(ctx, f, "preprocess.pixel_values", &t, GOLDEN_T2I_TOL);
    }
    free(batch);
    json_decref(files);
    return rc;
}
