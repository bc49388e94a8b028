/* The RLE / bit-packed hybrid encoding (parquet-format Encodings.md): a
 * sequence of runs, each with a ULEB128 header; an even header is an RLE run
 * of header >> 1 copies of one value stored in ceil(bw / 8) little-endian
 * bytes, an odd one is header >> 1 groups of 8 values bit-packed
 * least-significant bit first. Used for definition and repetition levels,
 * dictionary indices and RLE booleans. Not here: the length prefix of v1
 * levels (parquet_page.c). */
#include "engine/parquet/parquet_impl.h"

int pq_bit_width(uint64_t max) {
    int bw = 0;
    while (max) bw++, max >>= 1;
    return bw;
}

int pq_rle_decode(const uint8_t *p, size_t len, int bw, int64_t n, int32_t *out, const char **why) {
    const uint8_t *end = p + len;
    int64_t i = 0;
    if (bw < 0 || bw > 32) {
        *why = "bit width above 32";
        return -1;
    }
    while (i < n) {
        uint64_t h = 0;
        int shift = 0;
        for (;;) {
            if (p >= end || shift > 35) {
                *why = p >= end ? "the data ends before every value is decoded"
                                : "a run header is malformed";
                return -1;
            }
            uint8_t b = *p++;
            h |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80)) break;
        }
        if (!(h & 1)) {
            uint64_t count = h >> 1;
            int nb = (bw + 7) / 8;
            if (end - p < nb) {
                *why = "an RLE run's value is cut off";
                return -1;
            }
            uint32_t v = 0;
            for (int k = 0; k < nb; k++) v |= (uint32_t)p[k] << (8 * k);
            p += nb;
            if (count == 0) {
                *why = "an empty RLE run";
                return -1;
            }
            for (uint64_t k = 0; k < count && i < n; k++) out[i++] = (int32_t)v;
        } else {
            /* Groups of 8 values, bw bytes each; a writer may cut the last
             * group short of its padding (parquet-rs does), so the values
             * are as many as the bytes hold. */
            uint64_t groups = h >> 1, values = groups * 8;
            uint64_t avail = (uint64_t)(end - p), bytes = groups * (uint64_t)bw;
            if (bytes > avail) values = bw ? avail * 8 / (uint64_t)bw : values;
            uint64_t pos = 0;
            for (uint64_t k = 0; k < values && i < n; k++) {
                uint64_t v = 0;
                for (int b = 0; b < bw; b++, pos++)
                    v |= (uint64_t)((p[pos >> 3] >> (pos & 7)) & 1) << b;
                out[i++] = (int32_t)v;
            }
            if (bytes > avail && i < n) {
                *why = "a bit-packed run is cut off";
                return -1;
            }
            p += bytes > avail ? avail : bytes;
        }
    }
    return 0;
}
