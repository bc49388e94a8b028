/* train_text_to_image.py's transforms (preprocess_train_t2i): with no
 * random crop and no flip it is the ControlNet scripts' transform
 * (preprocess_train, checked bit-exact against torchvision by the
 * preprocess goldens), bit for bit; RandomCrop takes the window
 * torch.randint(0, w - R + 1) picks, i.e. the resized image's pixels at
 * left = u % (w - R + 1), every origin reachable; RandomHorizontalFlip
 * mirrors each row of the crop. The truth is the resized image itself
 * (preprocess_resize_short_side + preprocess_to_float, which the goldens
 * check), indexed by the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/philox.h"
#include "engine/image/preprocess.h"
#include "tests/lib/harness.h"

enum { R = 16, IW = 40, IH = 20 };

static void make_image(image_rgb8 *img) {
    cnet_error err = {0};
    CHECK(image_alloc(img, IW, IH, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < (size_t)IW * IH * 3; i++) img->data[i] = (uint8_t)philox_u32(7, i);
}

static void test_center_is_preprocess_train(void) {
    image_rgb8 img;
    make_image(&img);
    static float a[R * R * 3], b[R * R * 3];
    const preprocess_t2i_draws none = {0};
    CHECK(preprocess_train(a, &img, R, PREPROCESS_SIGNED, NULL) == 0, "preprocess_train");
    CHECK(preprocess_train_t2i(b, &img, R, &none, NULL) == 0, "preprocess_train_t2i");
    EXPECT(memcmp(a, b, sizeof a) == 0, "center crop without flip differs from preprocess_train");
    image_free(&img);
}

static void test_random_crop_and_flip(void) {
    image_rgb8 img, resized;
    make_image(&img);
    cnet_error err = {0};
    CHECK(preprocess_resize_short_side(&resized, &img, R, &err) == 0, "%s", err.msg);
    const int span = resized.width - R + 1; /* 40x20 -> 32x16: 17 origins */
    CHECK(resized.height == R && span == 17, "resized to %dx%d", resized.width, resized.height);
    static float got[R * R * 3], want[R * R * 3];
    for (uint32_t u = 0; u < 2 * (uint32_t)span; u++)
        for (int flip = 0; flip < 2; flip++) {
            const preprocess_t2i_draws d = {
                .random_crop = 1, .flip = flip, .u_top = 12345u + u, .u_left = u};
            CHECK(preprocess_train_t2i(got, &img, R, &d, &err) == 0, "%s", err.msg);
            const int left = (int)(u % (uint32_t)span);
            CHECK(preprocess_to_float(want, &resized, left, 0, R, R, PREPROCESS_SIGNED, &err) == 0,
                  "%s", err.msg);
            int bad = 0;
            for (int y = 0; y < R; y++)
                for (int x = 0; x < R; x++)
                    for (int c = 0; c < 3; c++)
                        bad += got[(y * R + x) * 3 + c] !=
                               want[(y * R + (flip ? R - 1 - x : x)) * 3 + c];
            EXPECT(bad == 0, "u_left %u flip %d: %d values off the window at left %d", u, flip, bad,
                   left);
        }
    image_free(&resized);
    image_free(&img);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_center_is_preprocess_train);
    RUN(test_random_crop_and_flip);
    return harness_done();
}
