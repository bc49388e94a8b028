/* Default engines of `cnet serve`; see serve_devices.h. */
#include "server/workers/serve_devices.h"

#include <stdio.h>

int serve_default_devices(int gpu_count, char (*names)[SERVE_DEVICE_NAME_MAX], int max) {
    if (gpu_count <= 0) {
        snprintf(names[0], SERVE_DEVICE_NAME_MAX, "cpu");
        return 1;
    }
    const int n = gpu_count < max ? gpu_count : max;
    for (int i = 0; i < n; i++) snprintf(names[i], SERVE_DEVICE_NAME_MAX, "cuda:%d", i);
    return n;
}
