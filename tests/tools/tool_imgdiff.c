/* tool_imgdiff A.png B.png: how far two images of the same size are apart,
 * for tests that compare the pixels of two runs with a tolerance (a GPU's
 * 16-bit run against the CPU's). Prints "mean_abs M max_abs X" over the
 * 8-bit channel values; exits 2 when an image cannot be read or the sizes
 * differ. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/image/image.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tool_imgdiff A.png B.png\n");
        return 2;
    }
    image_rgb8 a = {0}, b = {0};
    cnet_error err = {0};
    if (image_load(&a, argv[1], 0, &err) || image_load(&b, argv[2], 0, &err)) {
        fprintf(stderr, "tool_imgdiff: %s\n", err.msg);
        return 2;
    }
    if (a.width != b.width || a.height != b.height) {
        fprintf(stderr, "tool_imgdiff: %dx%d vs %dx%d\n", a.width, a.height, b.width, b.height);
        return 2;
    }
    const size_t n = (size_t)a.width * a.height * 3;
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        const int d = abs((int)a.data[i] - (int)b.data[i]);
        sum += d;
        if (d > worst) worst = d;
    }
    printf("mean_abs %.3f max_abs %d\n", n ? sum / (double)n : 0.0, worst);
    image_free(&a);
    image_free(&b);
    return 0;
}
