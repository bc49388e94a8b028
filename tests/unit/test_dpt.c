/* DPTForDepthEstimation (engine/annotators/dpt.h) and the "depth" annotator
 * against tests/fixtures-dpt: a tiny random model in transformers' layout
 * and the tensors of an independent torch re-implementation of its forward
 * (tests/tools/dpt_golden.py; README there). Every stored tensor is compared
 * (embeddings, the backbone states the neck reads, each reassemble and
 * fusion output, predicted_depth) within DPT_TOL relative to the tensor's
 * largest magnitude; the annotator's 8-bit map within one level (the
 * truncation to uint8 may fall either side of an integer). Also: the
 * refusals (no model folder, the hybrid backbone, a side that is not a
 * multiple of the patch). The model runs on --device (default cpu; "cuda"
 * where a GPU is lent: the ops the table lacks go through host copies). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/annotators/annotator.h"
#include "engine/annotators/annotator_cv.h"
#include "engine/annotators/dpt.h"
#include "engine/core/safetensors.h"
#include "tests/lib/harness.h"

#define DPT_FIXTURES "tests/fixtures-dpt"
/* float32 against float32 with other summation orders, through 5 layers
 * and the neck: about 1e-6 measured. */
#define DPT_TOL 1e-5f

static const float *golden_f32(const st_file *g, const char *name, int64_t *numel) {
    const st_entry *e = st_find(g, name);
    if (!e || e->view.dtype != CNET_F32) return NULL;
    *numel = cnet_tensor_numel(&e->view);
    return e->view.data;
}

/* max |got - ref| / max(1, max |ref|) with ref NCHW [1, C, H, W] (or a flat
 * tensor when C is 0) and got NHWC. */
static float rel_err(const float *got, const float *ref, int C, int H, int W) {
    float diff = 0, scale = 1;
    const int HW = H * W;
    for (int i = 0; i < (C ? C * HW : H); i++) {
        const float r = ref[i];
        const float g = C ? got[(i % HW) * C + i / HW] : got[i];
        diff = fabsf(g - r) > diff ? fabsf(g - r) : diff;
        scale = fabsf(r) > scale ? fabsf(r) : scale;
    }
    return diff / scale;
}

static void test_forward(void) {
    cnet_error err = {0};
    cnet_backend be;
    st_file g = {0};
    dpt_model m;
    CHECK(!st_open(&g, DPT_FIXTURES "/golden.safetensors", &err), "%s", err.msg);
    CHECK(!cnet_backend_open(&be, harness_arg("--device", "cpu"), NULL, 0, &err), "%s", err.msg);
    int rc = dpt_load(&m, &be, DPT_FIXTURES "/model", &err);
    if (rc) cnet_backend_free(&be);
    CHECK(!rc, "load: %s", err.msg);
    int64_t n = 0;
    const float *pv = golden_f32(&g, "pixel_values", &n);
    CHECK(pv, "golden has pixel_values");
    const st_entry *pe = st_find(&g, "pixel_values");
    const int H = (int)pe->view.shape[2], W = (int)pe->view.shape[3], D = m.cfg.hidden;
    const int gh = H / m.cfg.patch, gw = W / m.cfg.patch, T = 1 + gh * gw, F = m.cfg.fusion;
    int oh, ow;
    CHECK(!dpt_output_size(&m, H, W, &oh, &ow, &err) && oh == H && ow == W, "output %dx%d", ow, oh);
    float *px = malloc((size_t)n * sizeof *px), *depth = malloc((size_t)oh * ow * sizeof *depth);
    dpt_taps taps = {.embeddings = malloc((size_t)T * D * sizeof(float))};
    for (int i = 0; i < H * W * 3; i++) px[i] = pv[(i % 3) * H * W + i / 3];
    int side[DPT_STAGES];
    for (int i = 0; i < DPT_STAGES; i++) {
        side[i] = m.cfg.up[i] > 1 ? m.cfg.up[i] : 1;
        taps.backbone[i] = malloc((size_t)T * D * sizeof(float));
        taps.reassemble[i] = malloc((size_t)T * side[i] * side[i] * m.cfg.neck[i] * sizeof(float));
        taps.fused[i] = malloc((size_t)oh * ow * F * sizeof(float));
    }
    rc = dpt_forward(&m, depth, px, H, W, &taps, &err);
    EXPECT(!rc, "forward: %s", err.msg);
    for (int k = 0; !rc && k < 1 + 3 * DPT_STAGES + 1; k++) {
        char name[32];
        const float *got;
        int C = 0, h = T * D, w = 1;
        if (k == 0)
            snprintf(name, sizeof name, "embeddings"), got = taps.embeddings;
        else if (k <= DPT_STAGES)
            snprintf(name, sizeof name, "backbone.%d", k - 1), got = taps.backbone[k - 1];
        else if (k <= 2 * DPT_STAGES)
            snprintf(name, sizeof name, "reassemble.%d", k - 1 - DPT_STAGES),
                got = taps.reassemble[k - 1 - DPT_STAGES];
        else if (k <= 3 * DPT_STAGES)
            snprintf(name, sizeof name, "fusion.%d", k - 1 - 2 * DPT_STAGES),
                got = taps.fused[k - 1 - 2 * DPT_STAGES];
        else
            snprintf(name, sizeof name, "predicted_depth"), got = depth;
        const st_entry *e = st_find(&g, name);
        EXPECT(e != NULL, "golden has %s", name);
        if (!e) continue;
        if (e->view.ndim == 4)
            C = (int)e->view.shape[1], h = (int)e->view.shape[2], w = (int)e->view.shape[3];
        else
            h = (int)cnet_tensor_numel(&e->view);
        const float err_rel = rel_err(got, e->view.data, C, h, w);
        EXPECT(err_rel <= DPT_TOL, "%s: relative error %g over %g", name, err_rel, DPT_TOL);
    }
    free(px);
    free(depth);
    free(taps.embeddings);
    for (int i = 0; i < DPT_STAGES; i++) {
        free(taps.backbone[i]);
        free(taps.reassemble[i]);
        free(taps.fused[i]);
    }
    CHECK(dpt_forward(&m, NULL, NULL, H + 1, W, NULL, &err) == CNET_EINVAL &&
              strstr(err.msg, "multiples of the patch size"),
          "side refused: %s", err.msg);
    dpt_free(&m);
    cnet_backend_free(&be);
    st_close(&g);
}

/* A 3x5 patch grid: the down-sampled stage is 2x3, so each fusion layer
 * resizes its stage's map to the doubled one (the path square multiples of
 * 64 never take). */
static void test_odd_grid(void) {
    cnet_error err = {0};
    cnet_backend be;
    st_file g = {0};
    dpt_model m;
    CHECK(!st_open(&g, DPT_FIXTURES "/golden.safetensors", &err), "%s", err.msg);
    const st_entry *pe = st_find(&g, "odd.pixel_values"), *de = st_find(&g, "odd.predicted_depth");
    if (!pe || !de) st_close(&g);
    CHECK(pe && de, "golden has the odd grid");
    CHECK(!cnet_backend_open(&be, harness_arg("--device", "cpu"), NULL, 0, &err), "%s", err.msg);
    int rc = dpt_load(&m, &be, DPT_FIXTURES "/model", &err);
    if (rc) cnet_backend_free(&be);
    CHECK(!rc, "load: %s", err.msg);
    const int H = (int)pe->view.shape[2], W = (int)pe->view.shape[3];
    int oh = 0, ow = 0;
    rc = dpt_output_size(&m, H, W, &oh, &ow, &err);
    EXPECT(!rc && oh == de->view.shape[1] && ow == de->view.shape[2], "output %dx%d", ow, oh);
    float *px = malloc((size_t)H * W * 3 * sizeof *px), *depth = malloc((size_t)oh * ow * 4);
    const float *pv = pe->view.data;
    for (int i = 0; i < H * W * 3; i++) px[i] = pv[(i % 3) * H * W + i / 3];
    if (!rc) rc = dpt_forward(&m, depth, px, H, W, NULL, &err);
    EXPECT(!rc, "forward: %s", err.msg);
    const float e = rc ? 1 : rel_err(depth, de->view.data, 0, oh * ow, 1);
    free(px);
    free(depth);
    dpt_free(&m);
    cnet_backend_free(&be);
    st_close(&g);
    CHECK(e <= DPT_TOL, "odd.predicted_depth: relative error %g over %g", e, DPT_TOL);
}

/* The picture padded as the extension pads it is the golden's input. */
static void test_padding(void) {
    cnet_error err = {0};
    st_file g = {0};
    CHECK(!st_open(&g, DPT_FIXTURES "/golden.safetensors", &err), "%s", err.msg);
    const st_entry *im = st_find(&g, "image"), *pe = st_find(&g, "pixel_values");
    image_rgb8 in = {.width = (int)im->view.shape[1], .height = (int)im->view.shape[0]}, fit = {0};
    in.data = im->view.data;
    int w, h;
    CHECK(!annotator_fit(&fit, &in, 0, &w, &h, &err), "%s", err.msg);
    const int H = (int)pe->view.shape[2], W = (int)pe->view.shape[3];
    CHECK(fit.width == W && fit.height == H && w == in.width && h == in.height, "padded %dx%d",
          fit.width, fit.height);
    int bad = 0;
    const float *pv = pe->view.data;
    for (int i = 0; i < H * W * 3; i++)
        bad += ((float)fit.data[i] / 255.0f - 0.5f) / 0.5f != pv[(i % 3) * H * W + i / 3];
    image_free(&fit);
    st_close(&g);
    CHECK(bad == 0, "%d pixel values differ", bad);
}

static void test_annotator(void) {
    cnet_error err = {0};
    st_file g = {0};
    CHECK(!st_open(&g, DPT_FIXTURES "/golden.safetensors", &err), "%s", err.msg);
    const st_entry *im = st_find(&g, "image"), *ref = st_find(&g, "depth_u8");
    image_rgb8 in = {.width = (int)im->view.shape[1], .height = (int)im->view.shape[0]}, out = {0};
    in.data = im->view.data;
    const annotator *a = annotator_find("depth");
    CHECK(a && a == annotator_find("depth_midas") && a->needs_model, "in the table");
    annotator_args args;
    annotator_args_default(a, &args);
    CHECK(annotator_run(a, &out, &in, &args, &err) == CNET_EINVAL && strstr(err.msg, "weights"),
          "no folder refused: %s", err.msg);
    args.model_dir = DPT_FIXTURES "/model";
    int rc = annotator_run(a, &out, &in, &args, &err);
    if (rc) st_close(&g);
    CHECK(!rc, "depth: %s", err.msg);
    int off = 0, far = 0; /* values off by at least one level, by more */
    const uint8_t *r = ref->view.data;
    EXPECT(out.width == in.width && out.height == in.height, "size %dx%d", out.width, out.height);
    for (int i = 0; out.width == in.width && i < in.width * in.height; i++)
        for (int c = 0; c < 3; c++) {
            const int d = abs(out.data[i * 3 + c] - r[i]);
            off += d > 0;
            far += d > 1;
        }
    EXPECT(far == 0, "%d values more than one level off (%d off by one)", far, off);
    printf("    depth_u8: %d of %d values off by one level\n", off, in.width * in.height * 3);
    image_free(&out);
    st_close(&g);
}

/* dpt-hybrid-midas's config is refused by name. */
static void test_hybrid_refused(void) {
    char dir[] = "/tmp/cnet_dpt_XXXXXX", path[64];
    cnet_error err = {0};
    cnet_backend be;
    dpt_model m;
    CHECK(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f, "write %s", path);
    fputs("{\"model_type\": \"dpt\", \"is_hybrid\": true}", f);
    fclose(f);
    CHECK(!cnet_backend_open(&be, "cpu", NULL, 0, &err), "%s", err.msg);
    int rc = dpt_load(&m, &be, dir, &err);
    cnet_backend_free(&be);
    unlink(path);
    rmdir(dir);
    CHECK(rc == CNET_EINVAL && strstr(err.msg, "is_hybrid") && strstr(err.msg, "BiT"),
          "refused: %s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_forward);
    RUN(test_odd_grid);
    RUN(test_padding);
    RUN(test_annotator);
    RUN(test_hybrid_refused);
    return harness_done();
}
