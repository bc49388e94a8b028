/* Tensor views: the dtype name table, sizes, shape strings and the scalar
 * conversions between IEEE binary16 / bfloat16 and float32.
 *
 * Not a tensor library: no allocation and no arithmetic beyond conversion.
 * The conversions follow IEEE 754 round-to-nearest-even, as the x86 F16C
 * instructions (vcvtps2ph/vcvtph2ps) and PyTorch's c10::Half / c10::BFloat16
 * do: subnormals are kept (no flush to zero), overflow rounds to infinity,
 * and NaN stays NaN with its sign and top payload bits, made quiet. */
#include "engine/core/tensor.h"

#include <stdio.h>
#include <string.h>

static const char *const dtype_names[CNET_DTYPE_COUNT] = {
    [CNET_F32] = "F32", [CNET_F16] = "F16", [CNET_BF16] = "BF16",
    [CNET_I64] = "I64", [CNET_U8] = "U8",
};

static const size_t dtype_sizes[CNET_DTYPE_COUNT] = {
    [CNET_F32] = 4, [CNET_F16] = 2, [CNET_BF16] = 2, [CNET_I64] = 8, [CNET_U8] = 1,
};

const char *cnet_dtype_name(cnet_dtype dt) {
    return (unsigned)dt < CNET_DTYPE_COUNT ? dtype_names[dt] : "?";
}

int cnet_dtype_from_name(const char *name) {
    for (int i = 0; i < CNET_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_names[i]) == 0) return i;
    return -1;
}

size_t cnet_dtype_size(cnet_dtype dt) {
    return (unsigned)dt < CNET_DTYPE_COUNT ? dtype_sizes[dt] : 0;
}

int64_t cnet_tensor_numel(const cnet_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t cnet_tensor_bytes(const cnet_tensor *t) {
    return (size_t)cnet_tensor_numel(t) * cnet_dtype_size(t->dtype);
}

char *cnet_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    if (cap == 0) return buf;
    size_t len = 0;
    buf[0] = '\0';
    int w = snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && w >= 0 && (len += (size_t)w) < cap; i++)
        w = snprintf(buf + len, cap - len, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (w >= 0 && (len += (size_t)w) < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

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

float cnet_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf, or NaN made quiet (bit 22) as vcvtph2ps does */
        return bits_f32(sign | 0x7f800000 | (mant << 13) | (mant ? 0x400000 : 0));
    if (exp != 0) return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
    if (mant == 0) return bits_f32(sign);
    /* Subnormal half: normalise the mantissa into an f32 normal. */
    int shift = 0;
    while (!(mant & 0x400)) mant <<= 1, shift++;
    return bits_f32(sign | ((uint32_t)(113 - shift) << 23) | ((mant & 0x3ff) << 13));
}

/* Rounds value >> shift to nearest, ties to even (shift >= 1). */
static uint32_t shift_rne(uint32_t value, int shift) {
    uint32_t q = value >> shift;
    uint32_t rem = value & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t cnet_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) /* NaN: keep the top payload bits, set the quiet bit */
        return sign | 0x7e00 | ((ax >> 13) & 0x3ff);
    /* 65520 (0x477ff000) is halfway between 65504 (odd mantissa) and 2^16. */
    if (ax >= 0x477ff000) return sign | 0x7c00;
    if (ax >= 0x38800000) /* normal half: rebias the exponent, round 13 bits */
        return sign | (uint16_t)shift_rne(ax - 0x38000000, 13);
    /* 2^-25 (0x33000000) is halfway between 0 and the smallest subnormal. */
    if (ax <= 0x33000000) return sign;
    uint32_t exp = ax >> 23;
    uint32_t mant = (ax & 0x7fffff) | 0x800000;
    /* value = mant * 2^(exp-150); in units of 2^-24 that is mant >> (126-exp). */
    return sign | (uint16_t)shift_rne(mant, (int)(126 - exp));
}

float cnet_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t cnet_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    /* Adding 0x7fff plus the kept LSB rounds to nearest even; a carry into
     * the exponent is the correct result (up to infinity). */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* Element reads go through memcpy: data mapped from a file need not be
 * aligned to its dtype. */
void cnet_to_f32(float *dst, const void *src, cnet_dtype src_dtype, size_t n) {
    const unsigned char *p = src;
    switch (src_dtype) {
    case CNET_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case CNET_F16:
    case CNET_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, sizeof h);
            dst[i] = src_dtype == CNET_F16 ? cnet_f16_to_f32(h) : cnet_bf16_to_f32(h);
        }
        break;
    case CNET_I64:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, sizeof v);
            dst[i] = (float)v;
        }
        break;
    case CNET_U8:
        for (size_t i = 0; i < n; i++) dst[i] = p[i];
        break;
    case CNET_DTYPE_COUNT:
        break;
    }
}
