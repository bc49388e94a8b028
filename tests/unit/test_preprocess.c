/* Resampling and preprocessing (engine/image/resample.h, engine/image/preprocess.h).
 *
 * Truths: pixels produced by Pillow 9.4's Image.resize on the 7x5 pattern
 * below (BILINEAR and LANCZOS, down- and upscaling, one axis at a time),
 * pasted here once; torchvision's size and crop rules worked by hand
 * (int() truncation, round-half-to-even); float conversions against the
 * float32 expressions torch/numpy evaluate. The whole train transform is
 * checked against goldens/preprocess.safetensors by `cnet golden`. */
#include <stdint.h>

#include "engine/image/preprocess.h"
#include "engine/image/resample.h"
#include "tests/lib/harness.h"

/* The 7x5 input the Pillow outputs were made from. */
static int make_pattern(image_rgb8 *img) {
    cnet_error err;
    if (image_alloc(img, 7, 5, &err)) return 0;
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            for (int c = 0; c < 3; c++)
                img->data[(y * 7 + x) * 3 + c] =
                    (uint8_t)((x * 37 + y * 53 + c * 91 + x * y * 29) % 256);
    return 1;
}

/* Image.fromarray(pattern).resize((W, H), filter), Pillow 9.4. */
static const uint8_t pil_bilinear_3x4[] = {
    52,  129, 151, 127, 166, 80,  177, 94,  116, 120, 133, 121, 159, 122, 151, 136, 152, 140,
    114, 159, 126, 102, 162, 139, 106, 175, 142, 118, 140, 113, 94,  174, 144, 125, 135, 120};
static const uint8_t pil_bilinear_11x8[] = {
    0,   91,  182, 17,  108, 199, 40,  131, 199, 64,  155, 60,  87,  178, 13,  111, 202, 37,  135,
    226, 61,  158, 179, 84,  182, 40,  108, 205, 40,  131, 222, 57,  148, 23,  114, 205, 46,  137,
    177, 77,  158, 134, 109, 119, 74,  140, 119, 66,  172, 151, 98,  133, 183, 130, 123, 175, 131,
    155, 115, 91,  187, 72,  113, 209, 44,  135, 56,  147, 222, 87,  171, 144, 129, 184, 56,  162,
    74,  99,  201, 52,  137, 244, 95,  170, 134, 128, 213, 86,  165, 190, 119, 208, 81,  160, 120,
    94,  191, 42,  117, 89,  180, 95,  128, 140, 98,  167, 91,  109, 110, 95,  164, 117, 128, 154,
    171, 182, 97,  175, 125, 152, 153, 116, 185, 96,  170, 188, 134, 181, 140, 173, 184, 99,  123,
    214, 49,  133, 145, 96,  140, 71,  155, 94,  137, 170, 84,  175, 150, 99,  190, 105, 165, 144,
    120, 161, 124, 157, 65,  139, 223, 108, 199, 150, 155, 246, 81,  156, 247, 82,  102, 186, 137,
    47,  124, 193, 115, 202, 118, 101, 192, 125, 26,  117, 192, 104, 185, 117, 112, 191, 108, 27,
    116, 186, 82,  173, 124, 137, 228, 63,  189, 136, 115, 136, 149, 113, 73,  164, 114, 70,  161,
    132, 80,  171, 138, 98,  189, 136, 95,  186, 154, 102, 154, 163, 120, 80,  161, 121, 146, 97,
    119, 210, 45,  212, 47,  138, 165, 117, 91,  100, 191, 49,  34,  125, 146, 62,  153, 151, 159,
    250, 85,  93,  184, 182, 98,  119, 210, 195, 53,  144, 153, 127, 79,  106, 197, 32};
static const uint8_t pil_lanczos_4x9[] = {
    9,   92,  208, 58,  195, 39,  149, 198, 42,  214, 29,  145, 24,  128, 192, 120, 143, 59,
    136, 185, 101, 194, 52,  116, 63,  173, 154, 201, 72,  99,  124, 160, 187, 158, 105, 86,
    121, 149, 103, 181, 77,  140, 154, 134, 199, 135, 170, 123, 147, 115, 85,  100, 139, 156,
    170, 131, 148, 123, 202, 172, 123, 166, 114, 81,  169, 156, 116, 152, 125, 91,  203, 154,
    108, 193, 135, 82,  176, 139, 76,  169, 141, 90,  167, 106, 140, 137, 111, 64,  180, 124,
    105, 159, 173, 129, 131, 88,  166, 91,  90,  54,  179, 117, 134, 149, 193, 157, 112, 85};
static const uint8_t pil_lanczos_5x3[] = {
    29,  130, 200, 107, 123, 76,  161, 151, 96,  130, 169, 124, 208, 45,  114,
    122, 175, 93,  124, 106, 155, 146, 147, 138, 119, 140, 180, 119, 201, 124,
    160, 142, 108, 56,  165, 131, 84,  206, 134, 110, 123, 169, 120, 161, 78};
static const uint8_t pil_bilinear_7x2[] = {53,  144, 165, 107, 140, 126, 115, 101, 99,  170, 156,
                                           107, 131, 164, 162, 127, 137, 123, 193, 98,  119, 159,
                                           169, 97,  97,  130, 128, 81,  161, 147, 100, 180, 131,
                                           131, 164, 150, 92,  102, 181, 135, 214, 61};
static const uint8_t pil_lanczos_2x5[] = {49,  155, 112, 173, 127, 84,  138, 123, 142, 154,
                                          121, 140, 128, 125, 120, 142, 167, 162, 94,  185,
                                          139, 81,  172, 126, 109, 144, 123, 121, 147, 135};

static void test_resample_matches_pil(void) {
    static const struct {
        int w, h;
        resample_filter filter;
        const uint8_t *want;
    } cases[] = {
        {3, 4, RESAMPLE_BILINEAR, pil_bilinear_3x4}, {11, 8, RESAMPLE_BILINEAR, pil_bilinear_11x8},
        {4, 9, RESAMPLE_LANCZOS, pil_lanczos_4x9},   {5, 3, RESAMPLE_LANCZOS, pil_lanczos_5x3},
        {7, 2, RESAMPLE_BILINEAR, pil_bilinear_7x2}, {2, 5, RESAMPLE_LANCZOS, pil_lanczos_2x5},
    };
    image_rgb8 in;
    CHECK(make_pattern(&in), "alloc");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        image_rgb8 out;
        cnet_error err;
        int rc = resample_rgb8(&out, &in, cases[i].w, cases[i].h, cases[i].filter, 0, &err);
        EXPECT(rc == 0, "%s", err.msg);
        if (rc) continue;
        int diff = 0;
        for (int k = 0; k < cases[i].w * cases[i].h * 3; k++)
            diff += out.data[k] != cases[i].want[k];
        EXPECT(diff == 0, "%s %dx%d: %d values differ from Pillow",
               resample_filter_name(cases[i].filter), cases[i].w, cases[i].h, diff);
        image_free(&out);
    }
    image_free(&in);
}

static void test_resample_identity_and_constant(void) {
    image_rgb8 in, out;
    cnet_error err;
    CHECK(make_pattern(&in), "alloc");
    CHECK(resample_rgb8(&out, &in, 7, 5, RESAMPLE_LANCZOS, 0, &err) == 0, "%s", err.msg);
    EXPECT(memcmp(out.data, in.data, 7 * 5 * 3) == 0, "same size must copy");
    image_free(&out);
    /* A constant image stays constant through every size and filter (the
     * weights are normalised per output pixel). */
    memset(in.data, 173, 7 * 5 * 3);
    for (int f = 0; f < RESAMPLE_FILTER_COUNT; f++)
        for (int w = 1; w <= 20; w += 3)
            for (int h = 1; h <= 20; h += 4) {
                CHECK(resample_rgb8(&out, &in, w, h, f, 0, &err) == 0, "%s", err.msg);
                int off = 0;
                for (int k = 0; k < w * h * 3; k++) off += out.data[k] != 173;
                image_free(&out);
                EXPECT(off == 0, "%s %dx%d: %d values changed", resample_filter_name(f), w, h, off);
            }
    image_free(&in);
}

static void test_resample_errors(void) {
    image_rgb8 in, out;
    cnet_error err;
    CHECK(make_pattern(&in), "alloc");
    EXPECT(resample_rgb8(&out, &in, 0, 5, RESAMPLE_BILINEAR, 0, &err) == CNET_EINVAL, "width 0");
    EXPECT(resample_rgb8(&out, &in, 5, 5, RESAMPLE_FILTER_COUNT, 0, &err) == CNET_EINVAL,
           "unknown filter");
    EXPECT(resample_rgb8(&out, &in, 100, 100, RESAMPLE_BILINEAR, 9999, &err) == CNET_ELIMIT,
           "pixel limit");
    EXPECT(resample_filter_from_name("lanczos") == RESAMPLE_LANCZOS &&
               resample_filter_from_name("bicubic") == RESAMPLE_BICUBIC &&
               resample_filter_from_name("nearest") == -1,
           "name table");
    image_free(&in);
}

static void test_short_side_size(void) {
    /* torchvision: short -> R, long -> int(R * long / short). */
    static const int cases[][5] = {
        /* w, h, R, want_w, want_h */
        {37, 23, 16, 25, 16}, /* 16*37/23 = 25.7 -> 25 */
        {23, 37, 48, 48, 77}, /* 48*37/23 = 77.2 -> 77 */
        {10, 10, 7, 7, 7},         {512, 768, 512, 512, 768},
        {3, 1000, 2, 2, 666}, /* 666.67 truncated */
        {640, 480, 512, 682, 512},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w, h;
        preprocess_short_side_size(cases[i][0], cases[i][1], cases[i][2], &w, &h);
        EXPECT(w == cases[i][3] && h == cases[i][4], "%dx%d R=%d: got %dx%d", cases[i][0],
               cases[i][1], cases[i][2], w, h);
    }
}

static void test_center_crop_rounding(void) {
    /* int(round(d / 2)), Python rounds halves to even: d=1 -> 0, 3 -> 2,
     * 5 -> 2, 7 -> 4, 9 -> 4; even d -> d/2. */
    static const int d_want[][2] = {{0, 0}, {1, 0}, {2, 1}, {3, 2},
                                    {5, 2}, {7, 4}, {9, 4}, {61, 30}};
    cnet_error err;
    for (size_t i = 0; i < sizeof d_want / sizeof d_want[0]; i++) {
        int left, top;
        CHECK(preprocess_center_crop_origin(16 + d_want[i][0], 16, 16, &left, &top, &err) == 0,
              "%s", err.msg);
        EXPECT(left == d_want[i][1] && top == 0, "d=%d: left %d, want %d", d_want[i][0], left,
               d_want[i][1]);
    }
    int left, top;
    EXPECT(preprocess_center_crop_origin(15, 20, 16, &left, &top, &err) == CNET_EINVAL,
           "crop larger than the image");
}

static void test_to_float(void) {
    image_rgb8 img;
    cnet_error err;
    CHECK(image_alloc(&img, 256, 1, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 256 * 3; i++) img.data[i] = (uint8_t)(i / 3);
    float unit[256 * 3], sig[256 * 3];
    CHECK(preprocess_to_float(unit, &img, 0, 0, 256, 1, PREPROCESS_UNIT, &err) == 0, "%s", err.msg);
    CHECK(preprocess_to_float(sig, &img, 0, 0, 256, 1, PREPROCESS_SIGNED, &err) == 0, "%s",
          err.msg);
    int bad = 0;
    for (int v = 0; v < 256; v++) {
        volatile float u = (float)v / 255.0f; /* ToTensor: float32 division */
        volatile float s = (u - 0.5f) / 0.5f; /* Normalize: sub_, div_ in float32 */
        bad += unit[3 * v] != u || sig[3 * v + 2] != s;
    }
    EXPECT(bad == 0, "%d values differ from the float32 reference", bad);
    EXPECT(unit[0] == 0.0f && unit[255 * 3] == 1.0f && sig[0] == -1.0f && sig[255 * 3] == 1.0f,
           "range ends");
    EXPECT(preprocess_to_float(unit, &img, 250, 0, 10, 1, PREPROCESS_UNIT, &err) == CNET_EINVAL,
           "window outside the image");
    image_free(&img);
}

static void test_control_size(void) {
    int w, h;
    cnet_error err;
    /* get_default_height_width: the image's size, or the requested one,
     * rounded down to the VAE factor. */
    CHECK(preprocess_control_size(37, 23, 0, 0, 8, &w, &h, &err) == 0, "%s", err.msg);
    EXPECT(w == 32 && h == 16, "default: %dx%d", w, h);
    CHECK(preprocess_control_size(37, 23, 100, 67, 8, &w, &h, &err) == 0, "%s", err.msg);
    EXPECT(w == 96 && h == 64, "requested: %dx%d", w, h);
    EXPECT(preprocess_control_size(7, 30, 0, 0, 8, &w, &h, &err) == CNET_EINVAL,
           "smaller than the VAE factor");
}

static void test_control_image(void) {
    /* prepare_image = lanczos resize, then / 255: compare with the Pillow
     * lanczos pixels above converted the numpy way. */
    image_rgb8 in;
    cnet_error err;
    CHECK(make_pattern(&in), "alloc");
    float out[4 * 9 * 3];
    CHECK(preprocess_control(out, &in, 4, 9, &err) == 0, "%s", err.msg);
    int bad = 0;
    for (int k = 0; k < 4 * 9 * 3; k++) bad += out[k] != (float)pil_lanczos_4x9[k] / 255.0f;
    EXPECT(bad == 0, "%d values differ", bad);
    image_free(&in);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_resample_matches_pil);
    RUN(test_resample_identity_and_constant);
    RUN(test_resample_errors);
    RUN(test_short_side_size);
    RUN(test_center_crop_rounding);
    RUN(test_to_float);
    RUN(test_control_size);
    RUN(test_control_image);
    return harness_done();
}
