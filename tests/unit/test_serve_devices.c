/* serve_default_devices: the engines `cnet serve` opens without --device,
 * for injected GPU counts (this machine has none): no GPU (or a failed
 * count) gives one CPU engine, N GPUs give cuda:0..cuda:N-1, more GPUs than
 * the server takes give the first ones. */
#include <string.h>

#include "server/workers/serve_devices.h"
#include "tests/lib/harness.h"

#define MAX_ENGINES 8

static void test_no_gpu(void) {
    const int counts[] = {0, -1};
    for (int c = 0; c < 2; c++) {
        char names[MAX_ENGINES][SERVE_DEVICE_NAME_MAX];
        memset(names, 'x', sizeof names);
        int n = serve_default_devices(counts[c], names, MAX_ENGINES);
        CHECK(n == 1 && strcmp(names[0], "cpu") == 0, "count %d: %d engines, first '%.16s'",
              counts[c], n, names[0]);
    }
}

static void test_gpus(void) {
    const int counts[] = {1, 2, 3, 8};
    for (int c = 0; c < 4; c++) {
        char names[MAX_ENGINES][SERVE_DEVICE_NAME_MAX];
        int n = serve_default_devices(counts[c], names, MAX_ENGINES);
        CHECK(n == counts[c], "%d GPUs gave %d engines", counts[c], n);
        for (int i = 0; i < n; i++) {
            char want[SERVE_DEVICE_NAME_MAX];
            snprintf(want, sizeof want, "cuda:%d", i);
            CHECK(strcmp(names[i], want) == 0, "%d GPUs: engine %d is '%s'", counts[c], i,
                  names[i]);
        }
    }
}

static void test_more_gpus_than_engines(void) {
    char names[MAX_ENGINES][SERVE_DEVICE_NAME_MAX];
    int n = serve_default_devices(20, names, MAX_ENGINES);
    CHECK(n == MAX_ENGINES, "20 GPUs, cap %d: %d engines", MAX_ENGINES, n);
    CHECK(strcmp(names[0], "cuda:0") == 0 && strcmp(names[MAX_ENGINES - 1], "cuda:7") == 0,
          "first '%s', last '%s'", names[0], names[MAX_ENGINES - 1]);
    n = serve_default_devices(1024, names, 1);
    CHECK(n == 1 && strcmp(names[0], "cuda:0") == 0, "cap 1: %d '%s'", n, names[0]);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_no_gpu);
    RUN(test_gpus);
    RUN(test_more_gpus_than_engines);
    return harness_done();
}
