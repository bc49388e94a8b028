/* Golden check of goldens-img2img/preprocess.safetensors: diffusers'
 * VaeImageProcessor on PIL inputs as the img2img / inpainting pipelines use
 * it (engine/image/inpaint_image.h, inpaint_crop.h):
 *
 *   pp.image.<case>      crop (args crops_coords), resize in args
 *                        resize_mode to args resolved_hw, /255, 2x-1; the
 *                        input is pp.in.<c>_uint8 with <c> the case's name
 *                        up to its first '_'
 *   pp.mask.<M>_<how>    a mask of mode M (L or RGB): 'exact' is the one of
 *                        that mode already at the output size, 'resize' the
 *                        other; resized, gray, binarised output; pp.mask.latent
 *                        the nearest downsample of the L_exact output
 *   pp.crop_region.<k>   get_crop_region with metadata 'pp.crop_region'
 *   pp.control.L         the control processor on a gray image
 *   pp.post              postprocess 'np' and 'pil' (generate.h's rounding)
 *
 * The float outputs are float32 arithmetic on uint8 on both sides and are
 * compared within GOLDEN_I2I_PRE_TOL. Not checked (listed as such): torch
 * and numpy inputs and an RGBA control image, which cnet's inputs (decoded
 * RGB files) cannot be. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/layout.h"
#include "engine/image/inpaint_crop.h"
#include "engine/image/inpaint_image.h"
#include "engine/image/preprocess.h"
#include "engine/pipeline/generate.h"
#include "server/golden/golden.h"

/* A few ulps of 1.0: the README asks for exact float32 arithmetic. */
#define GOLDEN_I2I_PRE_TOL 1e-6

/* An RGB8 image of a uint8 tensor [H, W] (gray, replicated) or [H, W, 3]. */
static int image_of(image_rgb8 *img, const st_entry *e, cnet_error *err) {
    const cnet_tensor *t = &e->view;
    if (t->dtype != CNET_U8 || (t->ndim != 2 && !(t->ndim == 3 && t->shape[2] == 3)))
        return cnet_fail(err, CNET_EFORMAT, "%s is not a uint8 [H, W] or [H, W, 3] image", e->name);
    int rc = image_alloc(img, (int)t->shape[1], (int)t->shape[0], err);
    if (rc) return rc;
    const uint8_t *s = t->data;
    const size_t px = (size_t)img->width * img->height;
    for (size_t p = 0; p < px; p++)
        for (int c = 0; c < 3; c++) img->data[p * 3 + c] = t->ndim == 2 ? s[p] : s[p * 3 + c];
    return 0;
}

static void compare_u8(golden_ctx *ctx, const st_file *f, const char *name, const uint8_t *data,
                       int h, int w, int channels) {
    cnet_tensor t = {CNET_U8, channels == 1 ? 2 : 3, {h, w, channels}, (void *)data, -1};
    golden_compare(ctx, f, name, &t);
}

/* Host NHWC [1, h, w, C] compared as NCHW [1, C, h, w]. */
static void compare_nchw(golden_ctx *ctx, const st_file *f, const char *name, const float *x, int h,
                         int w, int C) {
    float *t = malloc((size_t)h * w * C * sizeof(float));
    if (!t) return;
    layout_nhwc_to_nchw(t, x, 1, C, h, w);
    cnet_tensor got = {CNET_F32, 4, {1, C, h, w}, t, -1};
    golden_compare_within(ctx, f, name, &got, GOLDEN_I2I_PRE_TOL);
    free(t);
}

/* pp.image.<case>: args from "pp.image.<case>.args". */
static int check_image_case(golden_ctx *ctx, const st_file *f, const char *cse, const json_t *args,
                            cnet_error *err) {
    char name[GOLDEN_NAME_MAX];
    snprintf(name, sizeof name, "pp.in.%.*s_uint8", (int)strcspn(cse, "_"), cse);
    const st_entry *in = st_find(f, name);
    const json_t *hw = json_object_get(args, "resolved_hw"),
                 *box = json_object_get(args, "crops_coords");
    const int mode =
        inpaint_resize_mode_from_name(json_string_value(json_object_get(args, "resize_mode")));
    if (!in || json_array_size(hw) != 2 || mode < 0)
        return cnet_fail(err, CNET_EFORMAT, "%s: pp.image.%s: no input %s, resolved_hw or mode",
                         f->path, cse, name);
    const int H = (int)json_integer_value(json_array_get(hw, 0)),
              W = (int)json_integer_value(json_array_get(hw, 1));
    image_rgb8 src = {0}, cropped = {0}, out = {0};
    int rc = image_of(&src, in, err);
    if (!rc && json_array_size(box) == 4) {
        int c[4];
        for (int i = 0; i < 4; i++) c[i] = (int)json_integer_value(json_array_get(box, (size_t)i));
        /* crop then resize: inpaint_crop_fill is crop + 'fill'; other modes crop the same way */
        if (mode == INPAINT_RESIZE_FILL) {
            rc = inpaint_crop_fill(&out, &src, c, W, H, err);
        } else {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: pp.image.%s: crops_coords with mode %s", f->path,
                           cse, inpaint_resize_mode_name(mode));
        }
    } else if (!rc) {
        rc = inpaint_resize(&out, &src, W, H, mode, err);
    }
    float *x = rc ? NULL : malloc((size_t)W * H * 3 * sizeof(float));
    if (!rc && !x) rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc) {
        snprintf(name, sizeof name, "pp.image.%s.resized_uint8", cse);
        compare_u8(ctx, f, name, out.data, H, W, 3);
        rc = preprocess_to_float(x, &out, 0, 0, W, H, PREPROCESS_SIGNED, err);
    }
    if (!rc) {
        snprintf(name, sizeof name, "pp.image.%s.output", cse);
        compare_nchw(ctx, f, name, x, H, W, 3);
    }
    free(x);
    image_free(&src), image_free(&cropped), image_free(&out);
    return rc;
}

/* pp.mask.<mode>_<how> at W x H; returns the output's first pixel row
 * pointer through *kept when the case is L_exact (for pp.mask.latent). */
static int check_mask_case(golden_ctx *ctx, const st_file *f, const char *cse, int W, int H,
                           float *kept, cnet_error *err) {
    const int rgb = strncmp(cse, "RGB_", 4) == 0, exact = strstr(cse, "_exact") != NULL;
    const st_entry *in = NULL;
    for (int i = 0; i < f->n && !in; i++) { /* pp.mask.in_*_uint8 of that mode and size */
        const st_entry *e = &f->entries[i];
        if (strncmp(e->name, "pp.mask.in_", 11) || e->view.dtype != CNET_U8) continue;
        const int e_rgb = e->view.ndim == 3, at = e->view.shape[0] == H && e->view.shape[1] == W;
        if (e_rgb == rgb && at == exact) in = e;
    }
    if (!in)
        return cnet_fail(err, CNET_EFORMAT, "%s: no pp.mask.in_* input for case %s", f->path, cse);
    image_rgb8 src = {0}, resized = {0};
    uint8_t *gray = malloc((size_t)W * H);
    float *out = malloc((size_t)W * H * sizeof(float));
    int rc = !gray || !out ? cnet_fail(err, CNET_ENOMEM, "out of memory") : image_of(&src, in, err);
    if (!rc) rc = inpaint_resize(&resized, &src, W, H, INPAINT_RESIZE_DEFAULT, err);
    if (!rc) rc = inpaint_mask(out, gray, &src, W, H, err);
    if (!rc) {
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "pp.mask.%s.resized_uint8", cse);
        if (rgb) {
            compare_u8(ctx, f, name, resized.data, H, W, 3);
        } else {
            for (size_t p = 0; p < (size_t)W * H; p++) resized.data[p] = resized.data[p * 3];
            compare_u8(ctx, f, name, resized.data, H, W, 1);
        }
        snprintf(name, sizeof name, "pp.mask.%s.gray_uint8", cse);
        compare_u8(ctx, f, name, gray, H, W, 1);
        snprintf(name, sizeof name, "pp.mask.%s.output", cse);
        compare_nchw(ctx, f, name, out, H, W, 1);
        if (exact && !rgb) memcpy(kept, out, (size_t)W * H * sizeof(float));
    }
    free(gray), free(out);
    image_free(&src), image_free(&resized);
    return rc;
}

static int check_crop_regions(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    const char *meta = st_meta(f, "pp.crop_region");
    json_t *list = meta ? json_loads(meta, 0, NULL) : NULL;
    int rc = 0;
    for (size_t i = 0; i < json_array_size(list) && !rc; i++) {
        const json_t *o = json_array_get(list, i);
        const int k = (int)json_integer_value(json_object_get(o, "k"));
        char name[GOLDEN_NAME_MAX];
        snprintf(name, sizeof name, "pp.crop_region.%d.mask_uint8", k);
        const st_entry *e = st_find(f, name);
        image_rgb8 m = {0};
        int c[4];
        if (!e) {
            rc = cnet_fail(err, CNET_EFORMAT, "%s: no %s", f->path, name);
        } else if (!(rc = image_of(&m, e, err)) &&
                   !(rc = inpaint_crop_region(
                         &m, (int)json_integer_value(json_object_get(o, "width")),
                         (int)json_integer_value(json_object_get(o, "height")),
                         (int)json_integer_value(json_object_get(o, "pad")), c, err))) {
            int64_t coords[4] = {c[0], c[1], c[2], c[3]};
            snprintf(name, sizeof name, "pp.crop_region.%d.coords", k);
            cnet_tensor t = {CNET_I64, 1, {4}, coords, -1};
            golden_compare(ctx, f, name, &t);
        }
        image_free(&m);
    }
    json_decref(list);
    return rc;
}

/* The control processor on the gray control image; postprocess. */
static int check_control_post(golden_ctx *ctx, const st_file *f, int W, int H, cnet_error *err) {
    const st_entry *in = st_find(f, "pp.control.in_L_uint8"), *post = st_find(f, "pp.post.in");
    image_rgb8 src = {0}, resized = {0};
    float *x = malloc((size_t)W * H * 3 * sizeof(float));
    int rc = x ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
    if (!rc && in && !(rc = image_of(&src, in, err)) &&
        !(rc = inpaint_resize(&resized, &src, W, H, INPAINT_RESIZE_DEFAULT, err))) {
        uint8_t *g = malloc((size_t)W * H);
        if (g) {
            for (size_t p = 0; p < (size_t)W * H; p++) g[p] = resized.data[p * 3];
            compare_u8(ctx, f, "pp.control.L.resized_uint8", g, H, W, 1);
        }
        free(g);
        if (!(rc = preprocess_control(x, &src, W, H, err)))
            compare_nchw(ctx, f, "pp.control.L.output", x, H, W, 3);
    }
    image_free(&src), image_free(&resized);
    if (!rc && post && post->view.dtype == CNET_F32 && post->view.ndim == 4) {
        const int C = (int)post->view.shape[1], ph = (int)post->view.shape[2],
                  pw = (int)post->view.shape[3];
        float *np = malloc((size_t)C * ph * pw * sizeof(float));
        uint8_t *u8 = malloc((size_t)C * ph * pw);
        if (np && u8) {
            layout_nchw_to_nhwc(np, post->view.data, 1, C, ph, pw);
            for (size_t i = 0; i < (size_t)C * ph * pw; i++) {
                const float v = np[i] / 2.0f + 0.5f;
                np[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            }
            generate_to_rgb8(u8, np, (size_t)C * ph * pw);
            cnet_tensor t = {CNET_F32, 4, {1, ph, pw, C}, np, -1};
            golden_compare_within(ctx, f, "pp.post.np", &t, GOLDEN_I2I_PRE_TOL);
            cnet_tensor u = {CNET_U8, 4, {1, ph, pw, C}, u8, -1};
            golden_compare(ctx, f, "pp.post.pil_uint8", &u);
        }
        free(np), free(u8);
    }
    free(x);
    return rc;
}

int golden_check_img2img_preprocess(golden_ctx *ctx, const st_file *f, cnet_error *err) {
    int rc = 0;
    for (int i = 0; i < f->n_meta && !rc; i++) { /* pp.image.<case>.args */
        const char *key = f->meta_keys[i];
        const size_t len = strlen(key);
        if (strncmp(key, "pp.image.", 9) || len < 15 || strcmp(key + len - 5, ".args")) continue;
        char cse[GOLDEN_RUN_MAX + 1];
        snprintf(cse, sizeof cse, "%.*s", (int)(len - 14), key + 9);
        json_t *args = json_loads(f->meta_values[i], 0, NULL);
        rc = check_image_case(ctx, f, cse, args, err);
        json_decref(args);
    }
    const st_entry *lat = st_find(f, "pp.mask.latent");
    int W = 0, H = 0, f_vae = 0;
    for (int i = 0; i < f->n && !rc; i++) { /* the output size of the mask cases */
        const st_entry *e = &f->entries[i];
        const size_t len = strlen(e->name);
        if (strncmp(e->name, "pp.mask.", 8) || len < 15 || strcmp(e->name + len - 7, ".output"))
            continue;
        H = (int)e->view.shape[2], W = (int)e->view.shape[3];
    }
    float *kept = W ? calloc((size_t)W * H, sizeof(float)) : NULL;
    for (int i = 0; i < f->n && !rc && kept; i++) {
        const st_entry *e = &f->entries[i];
        const size_t len = strlen(e->name);
        if (strncmp(e->name, "pp.mask.", 8) || len < 15 || strcmp(e->name + len - 7, ".output"))
            continue;
        char cse[GOLDEN_RUN_MAX + 1];
        snprintf(cse, sizeof cse, "%.*s", (int)(len - 15), e->name + 8);
        rc = check_mask_case(ctx, f, cse, W, H, kept, err);
    }
    if (!rc && lat && kept && (f_vae = H / (int)lat->view.shape[2]) > 0) {
        const int h = (int)lat->view.shape[2], w = (int)lat->view.shape[3];
        float *m = malloc((size_t)h * w * sizeof(float));
        if (m) {
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) m[y * w + x] = kept[(size_t)y * f_vae * W + x * f_vae];
            cnet_tensor t = {CNET_F32, 4, {1, 1, h, w}, m, -1};
            golden_compare_within(ctx, f, "pp.mask.latent", &t, 0);
        }
        free(m);
    }
    free(kept);
    if (!rc) rc = check_crop_regions(ctx, f, err);
    if (!rc && W) rc = check_control_post(ctx, f, W, H, err);
    return rc;
}
