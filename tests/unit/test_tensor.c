/* Tensor views and half-precision conversion.
 *
 * Independent truths: the x86 F16C instructions (_cvtsh_ss / _cvtss_sh with
 * round-to-nearest-even) for binary16, and exact double arithmetic (distance
 * to the two neighbouring bfloat16 values) for bfloat16. f16 -> f32 is checked
 * over all 65536 bit patterns, f32 -> f16 on every rounding boundary and on
 * random floats. When the CPU lacks F16C the hardware comparisons are
 * replaced by an exact ldexp() decoding and the boundary checks still run. */
#include <float.h>
#include <immintrin.h>
#include <stdint.h>

#include "engine/core/tensor.h"
#include "tests/lib/harness.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

static int have_f16c(void) { return __builtin_cpu_supports("f16c"); }

/* The exact value of a finite half, from its fields. */
static double f16_value(uint16_t h) {
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v = exp ? ldexp(1024 + mant, exp - 25) : ldexp(mant, -24);
    return (h & 0x8000) ? -v : v;
}

static void test_dtype_table(void) {
    static const char *names[] = {"F32", "F16", "BF16", "I64", "U8"};
    static const size_t sizes[] = {4, 2, 2, 8, 1};
    for (int i = 0; i < CNET_DTYPE_COUNT; i++) {
        CHECK(strcmp(cnet_dtype_name((cnet_dtype)i), names[i]) == 0, "name of %d", i);
        CHECK(cnet_dtype_from_name(names[i]) == i, "from_name(%s)", names[i]);
        CHECK(cnet_dtype_size((cnet_dtype)i) == sizes[i], "size of %s", names[i]);
    }
    CHECK(cnet_dtype_from_name("F64") == -1, "F64 is not a cnet dtype");
    CHECK(cnet_dtype_from_name("f32") == -1, "names are case-sensitive");
    CHECK(cnet_dtype_from_name("") == -1, "empty name");
}

static void test_numel_and_shape_str(void) {
    cnet_tensor t = {.dtype = CNET_BF16, .ndim = 4, .shape = {2, 4, 8, 8}};
    CHECK(cnet_tensor_numel(&t) == 512, "numel %lld", (long long)cnet_tensor_numel(&t));
    CHECK(cnet_tensor_bytes(&t) == 1024, "bytes %zu", cnet_tensor_bytes(&t));
    char buf[64];
    CHECK(strcmp(cnet_shape_str(buf, sizeof buf, 4, t.shape), "[2,4,8,8]") == 0, "%s", buf);
    cnet_tensor scalar = {.dtype = CNET_I64, .ndim = 0};
    CHECK(cnet_tensor_numel(&scalar) == 1, "scalar numel");
    CHECK(cnet_tensor_bytes(&scalar) == 8, "scalar bytes");
    CHECK(strcmp(cnet_shape_str(buf, sizeof buf, 0, NULL), "[]") == 0, "%s", buf);
    cnet_tensor empty = {.dtype = CNET_F32, .ndim = 2, .shape = {3, 0}};
    CHECK(cnet_tensor_numel(&empty) == 0 && cnet_tensor_bytes(&empty) == 0, "empty tensor");
    int64_t big[] = {320, 1280, 3, 3};
    CHECK(strcmp(cnet_shape_str(buf, 8, 4, big), "[320,12") == 0, "truncated: %s", buf);
    CHECK(strcmp(cnet_shape_str(buf, 1, 4, big), "") == 0, "cap 1: '%s'", buf);
}

static void test_f16_to_f32_all_patterns(void) {
    int hw = have_f16c();
    if (!hw) printf("    (no F16C on this CPU: checking against exact decoding only)\n");
    for (uint32_t h = 0; h < 65536; h++) {
        float got = cnet_f16_to_f32((uint16_t)h);
        if (hw) {
            float want = hw_f16_to_f32((uint16_t)h);
            CHECK(f32_bits(got) == f32_bits(want), "h=%04x: got %08x, F16C %08x", h, f32_bits(got),
                  f32_bits(want));
        }
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            CHECK(isnan(got) && !!signbit(got) == !!(h & 0x8000), "h=%04x must be NaN", h);
            CHECK((f32_bits(got) & 0x400000) != 0, "h=%04x: NaN must be quiet", h);
        } else if ((h & 0x7c00) == 0x7c00) {
            CHECK(isinf(got) && !!signbit(got) == !!(h & 0x8000), "h=%04x must be inf", h);
        } else {
            CHECK((double)got == f16_value((uint16_t)h) && !!signbit(got) == !!(h & 0x8000),
                  "h=%04x: got %.9g want %.9g", h, got, f16_value((uint16_t)h));
        }
    }
}

static void test_f16_round_trip(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t back = cnet_f32_to_f16(cnet_f16_to_f32((uint16_t)h));
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        /* NaNs come back quiet (bit 9 set) with sign and payload kept. */
        uint16_t want = nan ? (uint16_t)(h | 0x200) : (uint16_t)h;
        CHECK(back == want, "h=%04x came back as %04x, want %04x", h, back, want);
    }
}

/* f32 -> f16 of x against F16C (or, without it, against the two candidate
 * halves by exact distance); returns 0 on mismatch after printing it. */
static int f32_to_f16_matches(float x) {
    uint16_t got = cnet_f32_to_f16(x);
    if (have_f16c()) {
        uint16_t want = hw_f32_to_f16(x);
        if (got == want) return 1;
        printf("    x=%08x (%.9g): got %04x, F16C %04x\n", f32_bits(x), x, got, want);
        return 0;
    }
    if (isnan(x)) return (got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0;
    double d = fabs((double)x);
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    /* Largest finite half magnitude <= d, then choose by distance, ties even. */
    uint16_t lo = 0;
    for (int step = 1 << 14; step; step >>= 1)
        if (lo + step <= 0x7bff && f16_value((uint16_t)(lo + step)) <= d) lo += step;
    double vlo = f16_value(lo), vhi = lo == 0x7bff ? 65536.0 : f16_value((uint16_t)(lo + 1));
    uint16_t want = d - vlo < vhi - d   ? lo
                    : d - vlo > vhi - d ? (uint16_t)(lo + 1)
                    : (lo & 1)          ? (uint16_t)(lo + 1)
                                        : lo;
    if (d >= 65536.0) want = 0x7c00;
    want |= sign;
    if (got == want) return 1;
    printf("    x=%08x (%.9g): got %04x, want %04x\n", f32_bits(x), x, got, want);
    return 0;
}

static void test_f32_to_f16_rounding_boundaries(void) {
    /* For every half h: h itself, the midpoint to the next half (a tie that
     * must go to the even one), and the floats one ulp either side of it. */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        for (int s = 0; s < 2; s++) {
            float a = cnet_f16_to_f32((uint16_t)h);
            double next = h == 0x7bff ? 65536.0 : f16_value((uint16_t)(h + 1));
            float mid = (float)(((double)a + next) / 2); /* exact in f32 */
            float xs[] = {a, mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
            for (int i = 0; i < 4; i++) {
                float x = s ? -xs[i] : xs[i];
                CHECK(f32_to_f16_matches(x), "h=%04x case %d sign %d", h, i, s);
            }
        }
    }
    float specials[] = {0.0f,
                        -0.0f,
                        INFINITY,
                        -INFINITY,
                        NAN,
                        -NAN,
                        65504.0f,
                        65519.99f,
                        65520.0f,
                        1e10f,
                        1e-10f,
                        -1e-10f,
                        5.96046448e-08f,
                        2.98023224e-08f,
                        2.98023259e-08f,
                        6.10351562e-05f,
                        1.0f,
                        FLT_MAX,
                        FLT_MIN,
                        bits_f32(1)};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        CHECK(f32_to_f16_matches(specials[i]), "special %zu", i);
    /* Signalling NaN: must not turn into infinity. */
    uint16_t snan = cnet_f32_to_f16(bits_f32(0x7f800001));
    CHECK((snan & 0x7c00) == 0x7c00 && (snan & 0x3ff), "sNaN became %04x", snan);
}

static void test_f32_to_f16_random(void) {
    enum { N = 1 << 22 };
    for (int i = 0; i < N; i++) {
        float x = bits_f32(rng_u32()); /* every exponent, NaNs included */
        CHECK(f32_to_f16_matches(x), "random bits %d", i);
        /* And floats inside the half range, where rounding is exercised. */
        float y = ldexpf((float)(rng_u32() >> 8), (int)(rng_u32() % 44) - 50);
        CHECK(f32_to_f16_matches(y), "random in-range %d", i);
    }
}

/* The bfloat16 nearest to x by exact distance, ties to the even one; for
 * finite x (values beyond the largest bf16 round to infinity at 2^128). */
static uint16_t bf16_oracle(float x) {
    uint32_t b = f32_bits(x);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000);
    uint32_t lo = (b & 0x7fffffff) >> 16; /* truncation: |lo| <= |x| */
    double d = fabs((double)x);
    double vlo = fabs((double)bits_f32(lo << 16));
    double vhi = lo + 1 == 0x7f80 ? ldexp(1, 128) : fabs((double)bits_f32((lo + 1) << 16));
    uint32_t r = d - vlo < vhi - d ? lo : d - vlo > vhi - d ? lo + 1 : (lo & 1) ? lo + 1 : lo;
    return (uint16_t)(sign | r);
}

static void test_bf16_rounding(void) {
    /* Hand-picked ties: 1 + 2^-8 is halfway between 1.0 (even) and 1 + 2^-7. */
    CHECK(cnet_f32_to_bf16(bits_f32(0x3f808000)) == 0x3f80, "tie rounds down to even");
    CHECK(cnet_f32_to_bf16(bits_f32(0x3f818000)) == 0x3f82, "tie rounds up to even");
    CHECK(cnet_f32_to_bf16(bits_f32(0x3f808001)) == 0x3f81, "above tie rounds up");
    CHECK(cnet_f32_to_bf16(bits_f32(0x7f7fffff)) == 0x7f80, "FLT_MAX rounds to inf");
    CHECK(cnet_f32_to_bf16(bits_f32(0xff7f7fff)) == 0xff7f, "below the tie stays finite");
    CHECK(cnet_f32_to_bf16(bits_f32(0x00008000)) == 0x0000, "subnormal tie to even zero");
    CHECK(cnet_f32_to_bf16(bits_f32(0x00018000)) == 0x0002, "subnormal tie up to even");
    CHECK(cnet_f32_to_bf16(INFINITY) == 0x7f80 && cnet_f32_to_bf16(-INFINITY) == 0xff80, "inf");
    uint32_t nans[] = {0x7f800001, 0x7fc00000, 0xffc00000, 0x7fffffff, 0xff80ffff, 0x7f80ffff};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t r = cnet_f32_to_bf16(bits_f32(nans[i]));
        CHECK((r & 0x7f80) == 0x7f80 && (r & 0x7f) && (r & 0x8000) == ((nans[i] >> 16) & 0x8000),
              "NaN %08x became %04x", nans[i], r);
    }
    for (int i = 0; i < (1 << 22); i++) {
        uint32_t b = rng_u32();
        if ((b & 0x7fffffff) > 0x7f800000) continue;
        float x = bits_f32(b);
        CHECK(cnet_f32_to_bf16(x) == bf16_oracle(x), "x=%08x got %04x want %04x", b,
              cnet_f32_to_bf16(x), bf16_oracle(x));
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cnet_bf16_to_f32((uint16_t)h);
        CHECK(f32_bits(f) == h << 16, "bf16 %04x widened to %08x", h, f32_bits(f));
        if (!isnan(f)) CHECK(cnet_f32_to_bf16(f) == h, "bf16 %04x round trip", h);
    }
}

static void test_to_f32_every_dtype(void) {
    /* Source buffers start at an odd address: mapped data may be unaligned. */
    unsigned char raw[1 + 8 * 4];
    float out[4];
    const float f32[] = {1.5f, -2.0f, 0.0f, 3.25f};
    memcpy(raw + 1, f32, sizeof f32);
    cnet_to_f32(out, raw + 1, CNET_F32, 4);
    CHECK(memcmp(out, f32, sizeof f32) == 0, "F32 copy");
    const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7bff};
    memcpy(raw + 1, f16, sizeof f16);
    cnet_to_f32(out, raw + 1, CNET_F16, 4);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1, -24) && out[3] == 65504.0f,
          "F16 %g %g %g %g", out[0], out[1], out[2], out[3]);
    const uint16_t bf16[] = {0x3f80, 0xc040, 0x0000, 0x4049};
    memcpy(raw + 1, bf16, sizeof bf16);
    cnet_to_f32(out, raw + 1, CNET_BF16, 4);
    CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.0f && out[3] == 3.140625f,
          "BF16 %g %g %g %g", out[0], out[1], out[2], out[3]);
    const int64_t i64[] = {0, -7, 500, 1 << 24};
    memcpy(raw + 1, i64, sizeof i64);
    cnet_to_f32(out, raw + 1, CNET_I64, 4);
    CHECK(out[0] == 0 && out[1] == -7 && out[2] == 500 && out[3] == 16777216.0f, "I64");
    const uint8_t u8[] = {0, 1, 128, 255};
    memcpy(raw + 1, u8, sizeof u8);
    cnet_to_f32(out, raw + 1, CNET_U8, 4);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 128 && out[3] == 255, "U8");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_dtype_table);
    RUN(test_numel_and_shape_str);
    RUN(test_f16_to_f32_all_patterns);
    RUN(test_f16_round_trip);
    RUN(test_f32_to_f16_rounding_boundaries);
    RUN(test_f32_to_f16_random);
    RUN(test_bf16_rounding);
    RUN(test_to_f32_every_dtype);
    return harness_done();
}
