/* PNG decode (any colour type and bit depth, interlaced or not) to RGB8 as
 * PIL's convert("RGB") gives it, and RGB8 encode with text chunks; libpng,
 * from and to memory. See image.h for the conversion rules.
 *
 * libpng reports errors by longjmp. Everything the error path frees lives
 * in a heap-allocated job (not in automatic variables changed after setjmp,
 * whose values longjmp would leave indeterminate), and the message libpng
 * gives is kept there to name what was wrong. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image/image.h"

typedef struct png_job {
    const uint8_t *in; /* decode: the encoded bytes */
    size_t in_len, in_pos;
    uint8_t *out; /* encode: the growing output */
    size_t out_len, out_cap;
    uint8_t *raw;       /* decode: rows as libpng delivers them [h, rowbytes] */
    png_bytep *rows;    /* [h] pointers into raw (or into the caller's pixels) */
    png_text *texts;    /* encode: [n_text] */
    int64_t max_pixels; /* decode: the pixel limit */
    char msg[256];      /* libpng's error message */
} png_job;

static void on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad CRC in an ancillary chunk, unknown chunks) do not change
 * the pixels; libpng has already decided to go on. */
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void read_mem(png_structp png, png_bytep dst, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (n > job->in_len - job->in_pos) png_error(png, "unexpected end of data (truncated file)");
    memcpy(dst, job->in + job->in_pos, n);
    job->in_pos += n;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int over_limit(uint64_t w, uint64_t h, int64_t max_pixels, const char *name,
                      cnet_error *err) {
    if (w * h <= (uint64_t)max_pixels) return 0;
    return cnet_fail(err, CNET_ELIMIT, "%s: %llux%llu pixels, over the limit of %lld pixels", name,
                     (unsigned long long)w, (unsigned long long)h, (long long)max_pixels);
}

/* Rows as libpng delivers them after palette and low-bit-gray expansion
 * (channels 1..4, depth 8 or 16) -> RGB8, PIL's convert("RGB") rules. */
static void rows_to_rgb(image_rgb8 *img, png_bytep *rows, int channels, int depth) {
    for (int y = 0; y < img->height; y++) {
        const uint8_t *s = rows[y];
        uint8_t *d = img->data + (size_t)y * img->width * 3;
        int step = channels * (depth / 8); /* bytes per source pixel */
        for (int x = 0; x < img->width; x++, s += step, d += 3) {
            if (channels >= 3) { /* RGB / RGBA: high byte when 16-bit */
                int b = depth / 8;
                d[0] = s[0], d[1] = s[b], d[2] = s[2 * b];
            } else if (depth == 16 && channels == 1) { /* "I" mode: clip to 255 */
                unsigned v = (unsigned)s[0] << 8 | s[1];
                d[0] = d[1] = d[2] = (uint8_t)(v > 255 ? 255 : v);
            } else { /* gray, gray+alpha: high byte */
                d[0] = d[1] = d[2] = s[0];
            }
        }
    }
}

/* Every chunk up to IEND fits in the bytes that follow its header (data and
 * CRC): libpng allocates and clears a chunk's declared length before reading
 * it, whatever png_set_chunk_malloc_max says for tEXt, so a 105-byte file
 * declaring a 2 GB tEXt chunk cost 2 GB (found by tests/fuzz/fuzz_image.c). */
static int check_chunk_lengths(const uint8_t *b, size_t len, const char *name, cnet_error *err) {
    for (size_t pos = 8; pos + 8 <= len;) {
        const size_t left = len - pos - 8, n = be32(b + pos);
        if (n > left || left - n < 4)
            return cnet_fail(
                err, CNET_EFORMAT,
                "%s: corrupt PNG: the chunk at byte %zu declares %zu bytes, %zu are left", name,
                pos, n, left);
        if (memcmp(b + pos + 4, "IEND", 4) == 0) break;
        pos += 12 + n;
    }
    return 0;
}

int image_decode_png(image_rgb8 *img, const void *buf, size_t len, const char *name,
                     int64_t max_pixels, cnet_error *err) {
    memset(img, 0, sizeof *img);
    if (max_pixels <= 0) max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    /* The IHDR is the first chunk (signature 8, length 4, type 4): refuse a
     * huge size before libpng allocates anything for it. */
    const uint8_t *b = buf;
    if (len >= 24 && memcmp(b + 12, "IHDR", 4) == 0 &&
        over_limit(be32(b + 16), be32(b + 20), max_pixels, name, err))
        return CNET_ELIMIT;
    if (check_chunk_lengths(b, len, name, err)) return CNET_EFORMAT;
    png_job *job = calloc(1, sizeof *job);
    if (!job) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", name);
    job->in = buf;
    job->in_len = len;
    job->max_pixels = max_pixels;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(job);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", name);
    }
    int rc = 0;
    if (setjmp(png_jmpbuf(png))) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: corrupt PNG: %s", name, job->msg);
        goto done;
    }
    uint32_t side = job->max_pixels < PNG_UINT_31_MAX ? (uint32_t)job->max_pixels : PNG_UINT_31_MAX;
    png_set_user_limits(png, side, side);
    png_set_chunk_malloc_max(png, IMAGE_PNG_CHUNK_MAX);
    png_set_read_fn(png, job, read_mem);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    if ((rc = over_limit(w, h, job->max_pixels, name, err))) goto done;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info), out_depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (out_depth != 8 && out_depth != 16) ||
        rowbytes < (size_t)w * channels * (out_depth / 8)) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: unsupported PNG layout (%d channels, %d bits)", name,
                       channels, out_depth);
        goto done;
    }
    job->raw = malloc(rowbytes * h);
    job->rows = malloc(sizeof *job->rows * h);
    if (!job->raw || !job->rows || image_alloc(img, (int)w, (int)h, err)) {
        rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory for %ux%u pixels", name, w, h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) job->rows[y] = job->raw + y * rowbytes;
    png_read_image(png, job->rows);
    png_read_end(png, NULL); /* a missing IEND (truncation) is an error too */
    rows_to_rgb(img, job->rows, channels, out_depth);
done:
    if (rc) image_free(img);
    png_destroy_read_struct(&png, &info, NULL);
    free(job->raw);
    free(job->rows);
    free(job);
    return rc;
}

static void write_mem(png_structp png, png_bytep src, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (n > job->out_cap - job->out_len) {
        size_t cap = job->out_cap ? job->out_cap : 4096;
        while (cap - job->out_len < n) cap *= 2;
        uint8_t *grown = realloc(job->out, cap);
        if (!grown) png_error(png, "out of memory for the encoded image");
        job->out = grown;
        job->out_cap = cap;
    }
    memcpy(job->out + job->out_len, src, n);
    job->out_len += n;
}

static void flush_mem(png_structp png) { (void)png; }

static int key_ok(const char *key) {
    size_t n = strlen(key);
    if (n < 1 || n > IMAGE_PNG_KEY_MAX || key[0] == ' ' || key[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 32 || key[i] > 126) return 0;
    return 1;
}

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s > 126 || ((unsigned char)*s < 32 && *s != '\n' && *s != '\t'))
            return 0;
    return 1;
}

int image_encode_png(const image_rgb8 *img, const image_text *text, int n_text, uint8_t **out,
                     size_t *len, cnet_error *err) {
    *out = NULL;
    *len = 0;
    if (!img->data || img->width <= 0 || img->height <= 0)
        return cnet_fail(err, CNET_EINVAL, "png: empty image");
    for (int i = 0; i < n_text; i++)
        if (!text[i].key || !text[i].value || !key_ok(text[i].key))
            return cnet_fail(err, CNET_EINVAL,
                             "png: text key %d (\"%s\") must be 1..%d printable ASCII characters "
                             "without leading or trailing spaces",
                             i, text[i].key ? text[i].key : "(null)", IMAGE_PNG_KEY_MAX);
    png_job *job = calloc(1, sizeof *job);
    if (!job) return cnet_fail(err, CNET_ENOMEM, "png: out of memory");
    job->rows = malloc(sizeof *job->rows * img->height);
    job->texts = calloc(n_text > 0 ? n_text : 1, sizeof *job->texts);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, job, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc = 0;
    if (!info || !job->rows || !job->texts) {
        rc = cnet_fail(err, CNET_ENOMEM, "png: out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = cnet_fail(err, CNET_EIO, "png: encoding failed: %s", job->msg);
        goto done;
    }
    png_set_write_fn(png, job, write_mem, flush_mem);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < n_text; i++) {
        png_text *t = &job->texts[i];
        t->compression =
            is_ascii(text[i].value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        t->key = (png_charp)text[i].key;
        t->text = (png_charp)text[i].value;
        t->text_length = t->compression == PNG_TEXT_COMPRESSION_NONE ? strlen(text[i].value) : 0;
        t->itxt_length = t->compression == PNG_TEXT_COMPRESSION_NONE ? 0 : strlen(text[i].value);
        t->lang = (png_charp) "";
        t->lang_key = (png_charp) "";
    }
    if (n_text > 0) png_set_text(png, info, job->texts, n_text);
    for (int y = 0; y < img->height; y++) job->rows[y] = img->data + (size_t)y * img->width * 3;
    png_set_rows(png, info, job->rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    *out = job->out;
    *len = job->out_len;
    job->out = NULL;
done:
    png_destroy_write_struct(&png, &info);
    free(job->out);
    free(job->rows);
    free(job->texts);
    free(job);
    return rc;
}
