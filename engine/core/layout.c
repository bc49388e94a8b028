/* NCHW <-> NHWC copies; see layout.h. */
#include "engine/core/layout.h"

void layout_nchw_to_nhwc(float *dst, const float *src, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    dst[(((long)b * H + y) * W + x) * C + c] =
                        src[(((long)b * C + c) * H + y) * W + x];
}

void layout_nhwc_to_nchw(float *dst, const float *src, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    dst[(((long)b * C + c) * H + y) * W + x] =
                        src[(((long)b * H + y) * W + x) * C + c];
}
