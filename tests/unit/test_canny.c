/* The canny preprocessor (engine/image/canny.h).
 *
 * Truths: synthetic images whose edges are known — a constant image has
 * none; a filled rectangle gives its outline, on the sides OpenCV's
 * asymmetric suppression puts it (outside on the left/top, where the
 * comparison with the earlier neighbour is strict, inside on the
 * right/bottom); one 12x10 case is compared pixel for pixel with
 * cv2.Canny(img, 100, 200) of OpenCV 4.6, pasted here once — and laws any
 * Canny obeys: raising either threshold never adds an edge, low > high
 * is the same as swapped, an edge in one colour channel is found, the
 * result is deterministic and the three output channels are equal. */
#include <stdint.h>

#include "engine/image/canny.h"
#include "tests/lib/harness.h"

/* cv2.Canny(img, 100, 200), img = zeros((10, 12, 3)); img[2:7, 3:10] = 200. */
static const char *const cv2_rectangle[10] = {
    "............", "....#####...", "...#.....#..", "..#......#..", "..#......#..",
    "..#......#..", "...#######..", "............", "............", "............",
};

/* A w x h RGB image of `bg` with [x0, x1) x [y0, y1) set to fg in the
 * channels of mask (bit c = channel c). */
static int make_rect(image_rgb8 *img, int w, int h, int x0, int y0, int x1, int y1, uint8_t bg,
                     uint8_t fg, int mask) {
    cnet_error err;
    if (image_alloc(img, w, h, &err)) return 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int in = x >= x0 && x < x1 && y >= y0 && y < y1 && (mask >> c & 1);
                img->data[((size_t)y * w + x) * 3 + c] = in ? fg : bg;
            }
    return 1;
}

static uint8_t edge_at(const image_rgb8 *e, int x, int y) {
    return e->data[((size_t)y * e->width + x) * 3];
}

static int count_edges(const image_rgb8 *e) {
    int n = 0;
    for (int i = 0; i < e->width * e->height; i++) n += e->data[3 * i] != 0;
    return n;
}

static void test_matches_opencv_rectangle(void) {
    for (int mask = 1; mask <= 7; mask++) { /* any channel(s) carrying the step */
        image_rgb8 img, e;
        cnet_error err;
        CHECK(make_rect(&img, 12, 10, 3, 2, 10, 7, 0, 200, mask), "alloc");
        CHECK(canny_rgb8(&e, &img, 100, 200, &err) == 0, "%s", err.msg);
        int diff = 0;
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 12; x++)
                diff += (edge_at(&e, x, y) != 0) != (cv2_rectangle[y][x] == '#');
        image_free(&img);
        image_free(&e);
        CHECK(diff == 0, "channel mask %d: %d pixels differ from OpenCV", mask, diff);
    }
}

static void test_rectangle_outline(void) {
    /* A larger rectangle: along each straight side exactly the two pixels
     * OpenCV's rule picks, and nothing away from the outline. */
    const int w = 40, h = 30, x0 = 8, y0 = 6, x1 = 31, y1 = 23; /* [x0, x1) x [y0, y1) */
    image_rgb8 img, e;
    cnet_error err;
    CHECK(make_rect(&img, w, h, x0, y0, x1, y1, 30, 220, 7), "alloc");
    CHECK(canny_rgb8(&e, &img, 100, 200, &err) == 0, "%s", err.msg);
    for (int y = y0 + 2; y < y1 - 2; y++) {
        int n = 0;
        for (int x = 0; x < w; x++) n += edge_at(&e, x, y) != 0;
        EXPECT(n == 2 && edge_at(&e, x0 - 1, y) && edge_at(&e, x1 - 1, y),
               "row %d: %d edges, want x=%d and x=%d", y, n, x0 - 1, x1 - 1);
    }
    for (int x = x0 + 2; x < x1 - 2; x++) {
        int n = 0;
        for (int y = 0; y < h; y++) n += edge_at(&e, x, y) != 0;
        EXPECT(n == 2 && edge_at(&e, x, y0 - 1) && edge_at(&e, x, y1 - 1),
               "column %d: %d edges, want y=%d and y=%d", x, n, y0 - 1, y1 - 1);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int near = x >= x0 - 2 && x <= x1 && y >= y0 - 2 && y <= y1 &&
                       !(x > x0 + 1 && x < x1 - 2 && y > y0 + 1 && y < y1 - 2);
            EXPECT(near || !edge_at(&e, x, y), "edge at (%d,%d) away from the outline", x, y);
        }
    image_free(&img);
    image_free(&e);
}

static void test_constant_has_no_edges(void) {
    static const int sizes[][2] = {{1, 1}, {1, 9}, {7, 1}, {16, 16}, {33, 20}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int v = 0; v < 256; v += 85) {
            image_rgb8 img, e;
            cnet_error err;
            CHECK(make_rect(&img, sizes[i][0], sizes[i][1], 0, 0, 0, 0, (uint8_t)v, 0, 0), "alloc");
            /* Even a negative low threshold finds no maxima on a plateau. */
            CHECK(canny_rgb8(&e, &img, -5, 0, &err) == 0, "%s", err.msg);
            int n = count_edges(&e);
            image_free(&img);
            image_free(&e);
            CHECK(n == 0, "%dx%d of %d: %d edges", sizes[i][0], sizes[i][1], v, n);
        }
}

/* A smooth image with gradients of every strength and direction. */
static int make_rings(image_rgb8 *img, int w, int h) {
    cnet_error err;
    if (image_alloc(img, w, h, &err)) return 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double r = sqrt((x - w / 2.0) * (x - w / 2.0) + (y - h / 3.0) * (y - h / 3.0));
            for (int c = 0; c < 3; c++)
                img->data[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)(127.5 + 127.5 * sin(r / (3.0 + c) + x * 0.05 * c));
        }
    return 1;
}

static void test_thresholds_monotone(void) {
    image_rgb8 img;
    CHECK(make_rings(&img, 64, 48), "alloc");
    static const double lows[] = {0, 20, 50, 100, 150}, highs[] = {50, 100, 200, 300, 600};
    image_rgb8 e[5][5];
    cnet_error err;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            CHECK(canny_rgb8(&e[i][j], &img, lows[i], highs[j], &err) == 0, "%s", err.msg);
    int violations = 0, total = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            total += count_edges(&e[i][j]);
            for (int a = i; a < 5; a++)
                for (int b = j; b < 5; b++)
                    for (int k = 0; k < 64 * 48; k++)
                        violations += e[a][b].data[3 * k] && !e[i][j].data[3 * k];
        }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) image_free(&e[i][j]);
    image_free(&img);
    CHECK(total > 0, "the test image has no edges at all");
    CHECK(violations == 0, "%d edges appeared when a threshold rose", violations);
}

static void test_swapped_and_deterministic(void) {
    image_rgb8 img, a, b, c;
    cnet_error err;
    CHECK(make_rings(&img, 50, 37), "alloc");
    CHECK(canny_rgb8(&a, &img, 60, 140, &err) == 0, "%s", err.msg);
    CHECK(canny_rgb8(&b, &img, 140, 60, &err) == 0, "%s", err.msg);
    CHECK(canny_rgb8(&c, &img, 60, 140, &err) == 0, "%s", err.msg);
    size_t n = (size_t)50 * 37 * 3;
    int same_ab = memcmp(a.data, b.data, n) == 0, same_ac = memcmp(a.data, c.data, n) == 0;
    int stacked = 1, binary = 1;
    for (size_t i = 0; i < n; i += 3) {
        stacked &= a.data[i] == a.data[i + 1] && a.data[i] == a.data[i + 2];
        binary &= a.data[i] == 0 || a.data[i] == 255;
    }
    image_free(&img);
    image_free(&a);
    image_free(&b);
    image_free(&c);
    EXPECT(same_ab, "low > high must act as swapped");
    EXPECT(same_ac, "two runs differ");
    EXPECT(stacked && binary, "output must be 0/255 stacked to 3 channels");
}

static void test_single_channel_input(void) {
    /* canny_edges on a gray image equals the RGB path on the same image
     * replicated (the channel choice only matters when channels differ). */
    image_rgb8 img, e;
    cnet_error err;
    CHECK(make_rings(&img, 31, 29), "alloc");
    uint8_t gray[31 * 29], edges[31 * 29];
    for (int i = 0; i < 31 * 29; i++)
        img.data[3 * i + 1] = img.data[3 * i + 2] = gray[i] = img.data[3 * i];
    CHECK(canny_edges(edges, gray, 31, 29, 1, 40, 90, &err) == 0, "%s", err.msg);
    CHECK(canny_rgb8(&e, &img, 40, 90, &err) == 0, "%s", err.msg);
    int diff = 0;
    for (int i = 0; i < 31 * 29; i++) diff += edges[i] != e.data[3 * i];
    image_free(&img);
    image_free(&e);
    CHECK(diff == 0, "%d pixels differ", diff);
}

static void test_bad_arguments(void) {
    uint8_t px[3] = {0}, out[1];
    cnet_error err;
    EXPECT(canny_edges(out, px, 0, 1, 3, 1, 2, &err) == CNET_EINVAL, "zero width");
    EXPECT(canny_edges(out, px, 1, 1, 5, 1, 2, &err) == CNET_EINVAL, "5 channels");
    EXPECT(canny_edges(out, px, 1, 1, 3, NAN, 2, &err) == CNET_EINVAL, "NaN threshold");
    image_rgb8 empty = {0}, e;
    EXPECT(canny_rgb8(&e, &empty, 1, 2, &err) == CNET_EINVAL, "empty image");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_matches_opencv_rectangle);
    RUN(test_rectangle_outline);
    RUN(test_constant_has_no_edges);
    RUN(test_thresholds_monotone);
    RUN(test_swapped_and_deterministic);
    RUN(test_single_channel_input);
    RUN(test_bad_arguments);
    return harness_done();
}
