/* Page decompression: SNAPPY (libsnappy's C API, raw snappy blocks as
 * Parquet writes them), GZIP (zlib, gzip or zlib framing), ZSTD (libzstd),
 * or none. The page header's uncompressed size is the output buffer's exact
 * size, checked against PARQUET_PAGE_MAX by the caller before anything is
 * inflated: a page that would inflate past it (a decompression bomb, a lying
 * header) stops at the cap and is an error, as is one that inflates short.
 * Not here: LZ4, BROTLI, LZO (a clear error naming the codec). */
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "engine/parquet/parquet_impl.h"

const char *pq_codec_name(int codec) {
    static const char *const names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                        "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW"};
    return codec >= 0 && codec < 8 ? names[codec] : "unknown";
}

static int inflate_gzip(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                        const char *what, cnet_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK) /* 32: gzip or zlib header */
        return cnet_fail(err, CNET_ENOMEM, "%s: zlib init failed", what);
    z.next_in = (Bytef *)src, z.avail_in = (uInt)src_len;
    z.next_out = dst, z.avail_out = (uInt)dst_len;
    int r = inflate(&z, Z_FINISH);
    size_t got = dst_len - z.avail_out;
    if (r == Z_BUF_ERROR && z.avail_out == 0) {
        uint8_t probe;
        z.next_out = &probe, z.avail_out = 1;
        r = inflate(&z, Z_FINISH);
        inflateEnd(&z);
        if (z.avail_out == 0)
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: GZIP data inflates past the declared %zu "
                             "bytes",
                             what, dst_len);
    } else {
        inflateEnd(&z);
    }
    if (r != Z_STREAM_END || got != dst_len)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: GZIP data is corrupt or inflates to %zu bytes, "
                         "not the declared %zu",
                         what, got, dst_len);
    return 0;
}

int pq_decompress(int codec, const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len,
                  const char *what, cnet_error *err) {
    switch (codec) {
    case PQ_UNCOMPRESSED:
        if (src_len != dst_len)
            return cnet_fail(err, CNET_EFORMAT, "%s: uncompressed page of %zu bytes declares %zu",
                             what, src_len, dst_len);
        memcpy(dst, src, dst_len);
        return 0;
    case PQ_SNAPPY: {
        size_t n;
        if (snappy_uncompressed_length((const char *)src, src_len, &n) != SNAPPY_OK || n != dst_len)
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: SNAPPY data is corrupt or not of the "
                             "declared %zu bytes",
                             what, dst_len);
        if (snappy_validate_compressed_buffer((const char *)src, src_len) != SNAPPY_OK ||
            snappy_uncompress((const char *)src, src_len, (char *)dst, &n) != SNAPPY_OK ||
            n != dst_len)
            return cnet_fail(err, CNET_EFORMAT, "%s: SNAPPY data is corrupt", what);
        return 0;
    }
    case PQ_GZIP:
        return inflate_gzip(src, src_len, dst, dst_len, what, err);
    case PQ_ZSTD: {
        size_t r = ZSTD_decompress(dst, dst_len, src, src_len);
        if (ZSTD_isError(r))
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: ZSTD data is corrupt or inflates past the "
                             "declared %zu bytes (%s)",
                             what, dst_len, ZSTD_getErrorName(r));
        if (r != dst_len)
            return cnet_fail(err, CNET_EFORMAT,
                             "%s: ZSTD data inflates to %zu bytes, not the "
                             "declared %zu",
                             what, r, dst_len);
        return 0;
    }
    default:
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: codec %s (%d) is not supported (UNCOMPRESSED, "
                         "SNAPPY, GZIP, ZSTD are)",
                         what, pq_codec_name(codec), codec);
    }
}
