/* Philox4x32-10 against Random123's published known-answer vectors
 * (kat_vectors: philox4x32_10), and the normals' first two moments. */
#include <stdint.h>

#include "engine/core/philox.h"
#include "tests/lib/harness.h"

static void test_philox_known_answers(void) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        philox4x32_10(out, kat[v], kat[v] + 4);
        for (int i = 0; i < 4; i++)
            CHECK(out[i] == kat[v][6 + i], "vector %d word %d: got %08x want %08x", v, i, out[i],
                  kat[v][6 + i]);
    }
}

static void test_philox_normal_moments(void) {
    enum { N = 1 << 20 };
    static float z[N];
    philox_normal_fill(z, N, 1234, 0);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < N; i++) sum += z[i], sum2 += (double)z[i] * z[i];
    double mean = sum / N, var = sum2 / N - mean * mean;
    /* Standard errors: mean 1/sqrt(N) ~ 1e-3, variance sqrt(2/N) ~ 1.4e-3. */
    CHECK(fabs(mean) < 5e-3, "mean %g", mean);
    CHECK(fabs(var - 1) < 7e-3, "variance %g", var);
}

static void test_philox_offsets_compose(void) {
    /* A draw at offset k equals the tail of a draw at offset 0 (k blocks of 4). */
    float a[40], b[32];
    philox_normal_fill(a, 40, 7, 0);
    philox_normal_fill(b, 32, 7, 2);
    for (int i = 0; i < 32; i++) CHECK(a[8 + i] == b[i], "element %d", i);
    float c[5];
    philox_normal_fill(c, 5, 8, 0);
    CHECK(c[0] != a[0], "different seeds give different streams");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_philox_known_answers);
    RUN(test_philox_normal_moments);
    RUN(test_philox_offsets_compose);
    return harness_done();
}
