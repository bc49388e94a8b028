/* tool_stdiff A.safetensors B.safetensors: how far two float32 weight
 * files with the same tensors are apart, for tests that compare two runs
 * which compute the same sums in a different order (data-parallel ranks
 * against one process). Prints "max_abs D mean_abs M scale S": the largest
 * and the mean |a - b| over every element, and the largest |a| of A. Exits 2
 * when a file cannot be read or the tensors differ in name, dtype or size. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/safetensors.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tool_stdiff A.safetensors B.safetensors\n");
        return 2;
    }
    st_file a = {0}, b = {0};
    cnet_error err = {0};
    if (st_open(&a, argv[1], &err) || st_open(&b, argv[2], &err)) {
        fprintf(stderr, "tool_stdiff: %s\n", err.msg);
        st_close(&a);
        return 2;
    }
    int rc = a.n == b.n ? 0 : 2;
    if (rc) fprintf(stderr, "tool_stdiff: %d tensors vs %d\n", a.n, b.n);
    double worst = 0, scale = 0, sum = 0;
    size_t count = 0;
    for (int i = 0; i < a.n && !rc; i++) {
        const st_entry *ea = &a.entries[i], *eb = st_find(&b, ea->name);
        if (!eb || ea->view.dtype != CNET_F32 || eb->view.dtype != CNET_F32 ||
            ea->nbytes != eb->nbytes) {
            fprintf(stderr, "tool_stdiff: %s: missing in B, not float32 or another size\n",
                    ea->name);
            rc = 2;
            break;
        }
        for (size_t k = 0; k < ea->nbytes / sizeof(float); k++) {
            float x, y;
            memcpy(&x, (const char *)ea->view.data + k * sizeof x, sizeof x);
            memcpy(&y, (const char *)eb->view.data + k * sizeof y, sizeof y);
            if (fabs((double)x - y) > worst || isnan(x) != isnan(y))
                worst = isnan(x) != isnan(y) ? INFINITY : fabs((double)x - y);
            if (fabs(x) > scale) scale = fabs(x);
            sum += fabs((double)x - y), count++;
        }
    }
    if (!rc)
        printf("max_abs %.3g mean_abs %.3g scale %.3g\n", worst, count ? sum / count : 0, scale);
    st_close(&a);
    st_close(&b);
    return rc;
}
