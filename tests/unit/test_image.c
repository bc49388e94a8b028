/* PNG and JPEG decode/encode (engine/image/image.h).
 *
 * Truths: files written here with libpng and libjpeg directly (every PNG
 * colour type and bit depth, palettes with tRNS, Adam7, gray and CMYK JPEG),
 * whose expected RGB pixels follow PIL's convert("RGB") rules (checked
 * against Pillow 9.4 when the rules were written: 16-bit gray clips, 16-bit
 * colour keeps the high byte, alpha is dropped, Adobe CMYK is inverted);
 * libpng's own text reader for the chunks we write; and broken files made
 * from good ones — every truncation point, every byte flipped, wrong magic,
 * headers claiming huge sizes with valid CRCs — each of which must give an
 * error naming the input, never a crash (run under `make asan`). */
#include <dirent.h>
#include <fcntl.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "engine/image/image.h"
#include "tests/lib/harness.h"

static char tmpdir[] = "/tmp/cnet_image_XXXXXX";

/* A deterministic test pattern. */
static uint8_t pattern(int x, int y, int c) { return (uint8_t)(x * 37 + y * 53 + c * 91 + x * y); }

static int make_rgb(image_rgb8 *img, int w, int h) {
    cnet_error err;
    if (image_alloc(img, w, h, &err)) return 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) img->data[((size_t)y * w + x) * 3 + c] = pattern(x, y, c);
    return 1;
}

/* ---- a libpng writer for any colour type, independent of image_png.c ---- */

typedef struct membuf {
    uint8_t *data;
    size_t len, cap;
} membuf;

static void mem_write(png_structp png, png_bytep src, size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->data = realloc(m->data, m->cap);
    }
    memcpy(m->data + m->len, src, n);
    m->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

typedef struct png_spec {
    int w, h, depth, ctype, interlace;
    const uint8_t *rows; /* packed rows as the PNG spec lays them out */
    size_t rowbytes;
    const png_color *palette;
    int n_palette;
    const uint8_t *trns; /* palette alpha */
    int n_trns;
    const png_color_16 *trns_color; /* gray/RGB tRNS */
} png_spec;

/* Encodes spec; returns the bytes (caller frees) or NULL. */
static uint8_t *write_png(const png_spec *s, size_t *len) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.data);
        return NULL;
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, s->w, s->h, s->depth, s->ctype, s->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->palette) png_set_PLTE(png, info, s->palette, s->n_palette);
    if (s->trns || s->trns_color)
        png_set_tRNS(png, info, (png_bytep)s->trns, s->n_trns, (png_color_16p)s->trns_color);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < s->h; y++) png_write_row(png, (png_bytep)s->rows + y * s->rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *len = m.len;
    return m.data;
}

typedef uint8_t (*expect_fn)(int x, int y, int c);

/* Decodes spec's PNG and compares every pixel with want(x, y, c). */
static int check_png_case(const char *label, const png_spec *s, expect_fn want) {
    size_t len;
    uint8_t *buf = write_png(s, &len);
    if (!buf) {
        printf("    %s: the test's libpng writer failed\n", label);
        return 0;
    }
    image_rgb8 img;
    cnet_error err;
    int rc = image_decode(&img, buf, len, label, 0, &err);
    free(buf);
    if (rc) {
        printf("    %s: decode failed: %s\n", label, err.msg);
        return 0;
    }
    int ok = img.width == s->w && img.height == s->h, shown = 0;
    for (int y = 0; ok && y < s->h; y++)
        for (int x = 0; x < s->w; x++)
            for (int c = 0; c < 3; c++) {
                uint8_t got = img.data[((size_t)y * s->w + x) * 3 + c], exp = want(x, y, c);
                if (got != exp && shown++ < 3)
                    printf("    %s: pixel (%d,%d,%d) = %d, want %d\n", label, x, y, c, got, exp);
            }
    image_free(&img);
    return ok && !shown;
}

#define W 11
#define H 5
static uint8_t raw[H][W * 8]; /* up to 4 channels x 16 bits */

/* Sample values the cases store. */
static unsigned v16(int x, int y, int c) {
    static const unsigned special[] = {0, 1, 255, 256, 300, 65535};
    if (y == 0 && x < 6 && c == 0) return special[x];
    return (unsigned)(x * 4099 + y * 7919 + c * 30011) & 0xffff;
}
static uint8_t v8(int x, int y, int c) { return pattern(x, y, c); }

/* Expected RGB for each case (PIL's convert("RGB")). */
static int cur_bits, cur_ch;
static uint8_t want_gray_low(int x, int y, int c) {
    (void)c;
    int maxv = (1 << cur_bits) - 1;
    return (uint8_t)(((x + y) % (maxv + 1)) * 255 / maxv);
}
static uint8_t want_gray8(int x, int y, int c) {
    (void)c;
    return v8(x, y, 0);
}
static uint8_t want_gray16_clip(int x, int y, int c) {
    (void)c;
    unsigned v = v16(x, y, 0);
    return (uint8_t)(v > 255 ? 255 : v);
}
static uint8_t want_gray16_high(int x, int y, int c) {
    (void)c;
    return (uint8_t)(v16(x, y, 0) >> 8);
}
static uint8_t want_rgb8(int x, int y, int c) { return v8(x, y, c); }
static uint8_t want_rgb16_high(int x, int y, int c) { return (uint8_t)(v16(x, y, c) >> 8); }

/* Packs the samples of cur_ch channels at 8 or 16 bits into raw. */
static void fill_raw(int bits) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < cur_ch; c++) {
                if (bits == 8) {
                    raw[y][x * cur_ch + c] = v8(x, y, c);
                } else {
                    unsigned v = v16(x, y, c);
                    raw[y][(x * cur_ch + c) * 2] = (uint8_t)(v >> 8);
                    raw[y][(x * cur_ch + c) * 2 + 1] = (uint8_t)v;
                }
            }
}

static void test_png_color_types(void) {
    static const struct {
        const char *label;
        int ctype, ch, bits;
        expect_fn want;
    } cases[] = {
        {"gray8", PNG_COLOR_TYPE_GRAY, 1, 8, want_gray8},
        {"gray16 (clipped like PIL's I mode)", PNG_COLOR_TYPE_GRAY, 1, 16, want_gray16_clip},
        {"gray+alpha 8", PNG_COLOR_TYPE_GRAY_ALPHA, 2, 8, want_gray8},
        {"gray+alpha 16", PNG_COLOR_TYPE_GRAY_ALPHA, 2, 16, want_gray16_high},
        {"rgb8", PNG_COLOR_TYPE_RGB, 3, 8, want_rgb8},
        {"rgb16", PNG_COLOR_TYPE_RGB, 3, 16, want_rgb16_high},
        {"rgba8", PNG_COLOR_TYPE_RGBA, 4, 8, want_rgb8},
        {"rgba16", PNG_COLOR_TYPE_RGBA, 4, 16, want_rgb16_high},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cur_ch = cases[i].ch;
        fill_raw(cases[i].bits);
        for (int interlace = 0; interlace < 2; interlace++) {
            png_spec s = {.w = W,
                          .h = H,
                          .depth = cases[i].bits,
                          .ctype = cases[i].ctype,
                          .interlace = interlace,
                          .rows = &raw[0][0],
                          .rowbytes = sizeof raw[0]};
            char label[96];
            snprintf(label, sizeof label, "%s%s", cases[i].label, interlace ? " adam7" : "");
            if (!check_png_case(label, &s, cases[i].want)) bad++;
        }
    }
    CHECK(bad == 0, "%d colour type cases wrong", bad);
}

static void test_png_low_bit_gray(void) {
    for (cur_bits = 1; cur_bits <= 4; cur_bits *= 2) {
        memset(raw, 0, sizeof raw);
        int maxv = (1 << cur_bits) - 1, per_byte = 8 / cur_bits;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x + y) % (maxv + 1);
                int shift = 8 - cur_bits * (x % per_byte + 1);
                raw[y][x / per_byte] |= (uint8_t)(v << shift);
            }
        png_spec s = {.w = W,
                      .h = H,
                      .depth = cur_bits,
                      .ctype = PNG_COLOR_TYPE_GRAY,
                      .rows = &raw[0][0],
                      .rowbytes = sizeof raw[0]};
        char label[32];
        snprintf(label, sizeof label, "gray%d", cur_bits);
        CHECK(check_png_case(label, &s, want_gray_low), "%s", label);
    }
}

static png_color test_palette[16];
static uint8_t want_palette(int x, int y, int c) {
    const png_color *p = &test_palette[(x + 2 * y) % 16];
    return c == 0 ? p->red : c == 1 ? p->green : p->blue;
}

static void test_png_palette(void) {
    for (int i = 0; i < 16; i++)
        test_palette[i] =
            (png_color){(uint8_t)(i * 16 + 3), (uint8_t)(255 - i * 9), (uint8_t)(i * i)};
    uint8_t alpha[16];
    for (int i = 0; i < 16; i++) alpha[i] = (uint8_t)(i * 17); /* PIL ignores it for RGB */
    for (int bits = 4; bits <= 8; bits += 4) {
        for (int with_trns = 0; with_trns < 2; with_trns++) {
            memset(raw, 0, sizeof raw);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int idx = (x + 2 * y) % 16;
                    if (bits == 8)
                        raw[y][x] = (uint8_t)idx;
                    else
                        raw[y][x / 2] |= (uint8_t)(idx << (x % 2 ? 0 : 4));
                }
            png_spec s = {.w = W,
                          .h = H,
                          .depth = bits,
                          .ctype = PNG_COLOR_TYPE_PALETTE,
                          .rows = &raw[0][0],
                          .rowbytes = sizeof raw[0],
                          .palette = test_palette,
                          .n_palette = 16,
                          .trns = with_trns ? alpha : NULL,
                          .n_trns = with_trns ? 16 : 0};
            char label[48];
            snprintf(label, sizeof label, "palette%d%s", bits, with_trns ? "+tRNS" : "");
            CHECK(check_png_case(label, &s, want_palette), "%s", label);
        }
    }
    /* Gray with a tRNS colour: the key colour is not made transparent. */
    cur_ch = 1;
    png_color_16 key = {.gray = v8(0, 0, 0)};
    fill_raw(8);
    png_spec s = {.w = W,
                  .h = H,
                  .depth = 8,
                  .ctype = PNG_COLOR_TYPE_GRAY,
                  .rows = &raw[0][0],
                  .rowbytes = sizeof raw[0],
                  .trns_color = &key};
    CHECK(check_png_case("gray8+tRNS", &s, want_gray8), "gray8+tRNS");
}

static int same_pixels(const image_rgb8 *a, const image_rgb8 *b) {
    return a->width == b->width && a->height == b->height &&
           memcmp(a->data, b->data, (size_t)a->width * a->height * 3) == 0;
}

static void test_png_roundtrip(void) {
    static const int sizes[][2] = {{1, 1}, {3, 5}, {64, 33}, {257, 2}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        image_rgb8 img, back;
        CHECK(make_rgb(&img, sizes[i][0], sizes[i][1]), "alloc");
        uint8_t *buf;
        size_t len;
        cnet_error err;
        CHECK(image_encode_png(&img, NULL, 0, &buf, &len, &err) == 0, "%s", err.msg);
        CHECK(image_sniff(buf, len) == IMAGE_FORMAT_PNG, "sniff");
        int rc = image_decode(&back, buf, len, "roundtrip.png", 0, &err);
        free(buf);
        CHECK(rc == 0, "%s", err.msg);
        int same = same_pixels(&img, &back);
        image_free(&img);
        image_free(&back);
        CHECK(same, "%dx%d differs after a PNG round trip", sizes[i][0], sizes[i][1]);
    }
}

static void test_png_text_chunks(void) {
    image_rgb8 img;
    CHECK(make_rgb(&img, 4, 3), "alloc");
    const image_text text[] = {
        {"parameters", "a cat\nSteps: 20, Sampler: UniPC, CFG scale: 7.5, Seed: 42"},
        {"Comment", "na\xc3\xafve \xe2\x9c\x93"}, /* UTF-8: must go to iTXt */
    };
    uint8_t *buf;
    size_t len;
    cnet_error err;
    int rc = image_encode_png(&img, text, 2, &buf, &len, &err);
    CHECK(rc == 0, "%s", err.msg);
    /* Read the chunks back with libpng itself. */
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    FILE *fp = fmemopen(buf, len, "rb");
    png_init_io(png, fp);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_textp got;
    int n = png_get_text(png, info, &got, NULL);
    int ok = n == 2;
    for (int i = 0; ok && i < 2; i++) {
        ok = strcmp(got[i].key, text[i].key) == 0 && strcmp(got[i].text, text[i].value) == 0;
        EXPECT(ok, "chunk %d: %s=%s", i, got[i].key, got[i].text);
    }
    int ctype0 = n > 0 ? got[0].compression : -9, ctype1 = n > 1 ? got[1].compression : -9;
    png_destroy_read_struct(&png, &info, NULL);
    fclose(fp);
    free(buf);
    CHECK(ok, "%d text chunks read back", n);
    CHECK(ctype0 == PNG_TEXT_COMPRESSION_NONE && ctype1 == PNG_ITXT_COMPRESSION_NONE,
          "chunk kinds %d %d: ASCII -> tEXt, UTF-8 -> iTXt", ctype0, ctype1);
    const image_text bad[] = {{"", "x"}, {" lead", "x"}, {"k\xc3\xa9y", "x"}};
    for (int i = 0; i < 3; i++) {
        rc = image_encode_png(&img, &bad[i], 1, &buf, &len, &err);
        EXPECT(rc == CNET_EINVAL && buf == NULL, "bad key %d accepted (%d)", i, rc);
    }
    image_free(&img);
}

/* Encodes a w x h image of `components` (1 gray, 3 RGB, 4 CMYK) with
 * libjpeg directly; sample(x, y, c) gives the stored values. */
static uint8_t *write_jpeg(int w, int h, int components, uint8_t (*sample)(int, int, int),
                           int quality, int progressive, size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long out_len = 0;
    jpeg_mem_dest(&c, &out, &out_len);
    c.image_width = w;
    c.image_height = h;
    c.input_components = components;
    c.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * components);
    while (c.next_scanline < (unsigned)h) {
        for (int x = 0; x < w; x++)
            for (int k = 0; k < components; k++)
                row[x * components + k] = sample(x, (int)c.next_scanline, k);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    *len = out_len;
    return out;
}

static int imax(int a, int b) { return a > b ? a : b; }

/* At most 20 + 2 * 47 + 2 * 31 + 60 = 236: no wrap-around edges. */
static uint8_t smooth(int x, int y, int c) { return (uint8_t)(20 + x * 2 + y * 2 + c * 30); }
static uint8_t flat_cmyk(int x, int y, int c) {
    static const uint8_t v[4] = {200, 120, 60, 220};
    (void)x, (void)y;
    return v[c];
}

static void test_jpeg_decode(void) {
    cnet_error err;
    image_rgb8 img;
    size_t len;
    for (int progressive = 0; progressive < 2; progressive++) {
        /* RGB: lossy, so close rather than equal. */
        uint8_t *buf = write_jpeg(40, 24, 3, smooth, 95, progressive, &len);
        CHECK(image_decode(&img, buf, len, "rgb.jpg", 0, &err) == 0, "%s", err.msg);
        free(buf);
        int worst = 0;
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 40; x++)
                for (int c = 0; c < 3; c++)
                    worst = imax(worst, abs(img.data[(y * 40 + x) * 3 + c] - smooth(x, y, c)));
        image_free(&img);
        CHECK(worst <= 4, "RGB JPEG off by %d", worst);
        /* Gray: replicated into R, G and B. */
        buf = write_jpeg(17, 9, 1, smooth, 95, progressive, &len);
        CHECK(image_decode(&img, buf, len, "gray.jpg", 0, &err) == 0, "%s", err.msg);
        free(buf);
        worst = 0;
        for (int i = 0; i < 17 * 9; i++) {
            worst = imax(worst, abs(img.data[3 * i] - smooth(i % 17, i / 17, 0)));
            CHECK(img.data[3 * i] == img.data[3 * i + 1] && img.data[3 * i] == img.data[3 * i + 2],
                  "gray pixel %d not replicated", i);
        }
        image_free(&img);
        CHECK(worst <= 4, "gray JPEG off by %d", worst);
    }
    /* CMYK as Adobe writes it (inverted): PIL gives R = k * c / 255 etc. */
    uint8_t *buf = write_jpeg(16, 16, 4, flat_cmyk, 100, 0, &len);
    CHECK(image_decode(&img, buf, len, "cmyk.jpg", 0, &err) == 0, "%s", err.msg);
    free(buf);
    for (int c = 0; c < 3; c++) {
        double want = flat_cmyk(0, 0, 3) * flat_cmyk(0, 0, c) / 255.0;
        EXPECT(fabs(img.data[c] - want) <= 2, "CMYK channel %d = %d, want %.1f", c, img.data[c],
               want);
    }
    image_free(&img);
}

static void test_jpeg_roundtrip(void) {
    image_rgb8 img, back;
    cnet_error err;
    CHECK(image_alloc(&img, 48, 32, &err) == 0, "%s", err.msg);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 48; x++)
            for (int c = 0; c < 3; c++) img.data[(y * 48 + x) * 3 + c] = smooth(x, y, c);
    uint8_t *buf;
    size_t len;
    CHECK(image_encode_jpeg(&img, 95, &buf, &len, &err) == 0, "%s", err.msg);
    CHECK(image_sniff(buf, len) == IMAGE_FORMAT_JPEG, "sniff");
    int rc = image_decode(&back, buf, len, "roundtrip.jpg", 0, &err);
    free(buf);
    CHECK(rc == 0, "%s", err.msg);
    double se = 0;
    for (size_t i = 0; i < 48 * 32 * 3; i++) se += pow(img.data[i] - back.data[i], 2);
    double psnr = 10 * log10(255.0 * 255.0 / fmax(se / (48 * 32 * 3), 1e-12));
    image_free(&img);
    image_free(&back);
    CHECK(psnr > 38, "JPEG round trip PSNR %.1f dB", psnr);
    uint8_t *none;
    CHECK(image_encode_jpeg(&back, 95, &none, &len, &err) == CNET_EINVAL, "empty image encoded");
    CHECK(make_rgb(&img, 2, 2), "alloc");
    EXPECT(image_encode_jpeg(&img, 0, &none, &len, &err) == CNET_EINVAL, "quality 0 accepted");
    EXPECT(image_encode_jpeg(&img, 101, &none, &len, &err) == CNET_EINVAL, "quality 101");
    image_free(&img);
}

/* The encoded test files every broken-file case starts from. */
static uint8_t *good_png(size_t *len) {
    image_rgb8 img;
    cnet_error err;
    uint8_t *buf = NULL;
    if (make_rgb(&img, 9, 7)) image_encode_png(&img, NULL, 0, &buf, len, &err);
    image_free(&img);
    return buf;
}

static uint8_t *good_jpeg(size_t *len, int progressive) {
    return write_jpeg(19, 13, 3, smooth, 90, progressive, len);
}

/* Decodes every prefix of buf; each must fail with CNET_EFORMAT and a
 * message naming the input. Returns the number that did not. */
static int truncations(const uint8_t *buf, size_t len, const char *name) {
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
        memcpy(copy, buf, n);
        image_rgb8 img;
        cnet_error err = {0};
        int rc = image_decode(&img, copy, n, name, 0, &err);
        free(copy);
        if (rc != CNET_EFORMAT || !strstr(err.msg, name)) {
            if (bad++ < 3) printf("    %s cut at %zu: rc %d, '%s'\n", name, n, rc, err.msg);
            if (!rc) image_free(&img);
        }
    }
    return bad;
}

static void test_truncated(void) {
    size_t len;
    uint8_t *png = good_png(&len);
    CHECK(png, "encode");
    int bad = truncations(png, len, "cut.png");
    free(png);
    CHECK(bad == 0, "%d PNG truncations not refused", bad);
    for (int progressive = 0; progressive < 2; progressive++) {
        uint8_t *jpg = good_jpeg(&len, progressive);
        bad = truncations(jpg, len, "cut.jpg");
        free(jpg);
        CHECK(bad == 0, "%d JPEG truncations not refused (progressive %d)", bad, progressive);
    }
}

/* Flips each byte; decoding may succeed (a damaged ancillary chunk) but
 * must otherwise fail cleanly. Returns the count of other outcomes. */
static int flips(const uint8_t *buf, size_t len, const char *name) {
    int bad = 0;
    uint8_t *copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, buf, len);
        copy[i] ^= 0x5a;
        image_rgb8 img;
        cnet_error err = {0};
        int rc = image_decode(&img, copy, len, name, 0, &err);
        if (rc == 0)
            image_free(&img);
        else if ((rc != CNET_EFORMAT && rc != CNET_ELIMIT) || !strstr(err.msg, name))
            if (bad++ < 3) printf("    %s flip at %zu: rc %d '%s'\n", name, i, rc, err.msg);
    }
    free(copy);
    return bad;
}

static void test_corrupt(void) {
    size_t len;
    uint8_t *png = good_png(&len);
    int bad = flips(png, len, "flip.png");
    free(png);
    CHECK(bad == 0, "%d PNG flips misreported", bad);
    for (int progressive = 0; progressive < 2; progressive++) {
        uint8_t *jpg = good_jpeg(&len, progressive);
        bad = flips(jpg, len, "flip.jpg");
        free(jpg);
        CHECK(bad == 0, "%d JPEG flips misreported", bad);
    }
}

static void test_wrong_magic(void) {
    static const char *inputs[] = {"", "GIF89a\x01\x00\x01\x00", "hello, world", "\x89PNG\r\n",
                                   "\xff\xd8"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        image_rgb8 img;
        cnet_error err = {0};
        int rc = image_decode(&img, inputs[i], strlen(inputs[i]), "upload.bin", 0, &err);
        EXPECT(rc == CNET_EFORMAT && strstr(err.msg, "upload.bin") &&
                   strstr(err.msg, "not a PNG or JPEG"),
               "input %zu: rc %d '%s'", i, rc, err.msg);
    }
}

static uint32_t crc32_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static void test_huge_dimensions(void) {
    size_t len;
    uint8_t *png = good_png(&len);
    CHECK(png && memcmp(png + 12, "IHDR", 4) == 0, "IHDR first");
    /* A valid IHDR (good CRC) claiming 100000 x 100000. */
    put_be32(png + 16, 100000);
    put_be32(png + 20, 100000);
    put_be32(png + 29, crc32_bitwise(png + 12, 17));
    image_rgb8 img;
    cnet_error err = {0};
    int rc = image_decode(&img, png, len, "huge.png", 0, &err);
    EXPECT(rc == CNET_ELIMIT && strstr(err.msg, "huge.png") && strstr(err.msg, "100000x100000"),
           "rc %d '%s'", rc, err.msg);
    /* One side within libpng's limits, the product over ours. */
    put_be32(png + 16, 70000);
    put_be32(png + 20, 300);
    put_be32(png + 29, crc32_bitwise(png + 12, 17));
    rc = image_decode(&img, png, len, "wide.png", 0, &err);
    EXPECT(rc == CNET_ELIMIT, "wide: rc %d '%s'", rc, err.msg);
    free(png);
    /* The limit is exact: 9x7 = 63 pixels. */
    png = good_png(&len);
    rc = image_decode(&img, png, len, "limit.png", 62, &err);
    EXPECT(rc == CNET_ELIMIT, "62-pixel limit: rc %d", rc);
    rc = image_decode(&img, png, len, "limit.png", 63, &err);
    EXPECT(rc == 0, "63-pixel limit: rc %d '%s'", rc, err.msg);
    if (!rc) image_free(&img);
    free(png);
    /* JPEG: patch the SOF0 frame header to 60000 x 60000. */
    uint8_t *jpg = good_jpeg(&len, 0);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < len && !sof; i++)
        if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) sof = i;
    CHECK(sof, "no SOF0 marker");
    jpg[sof + 5] = 60000 >> 8, jpg[sof + 6] = 60000 & 0xff; /* height */
    jpg[sof + 7] = 60000 >> 8, jpg[sof + 8] = 60000 & 0xff; /* width */
    rc = image_decode(&img, jpg, len, "huge.jpg", 0, &err);
    EXPECT(rc == CNET_ELIMIT && strstr(err.msg, "huge.jpg") && strstr(err.msg, "60000x60000"),
           "rc %d '%s'", rc, err.msg);
    free(jpg);
}

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

/* A valid 1x1 IHDR, then a tEXt chunk declaring 2 GB of which the file holds
 * a few bytes (tests/fuzz/corpus/image/crash-text-chunk-2gb): refused as
 * corrupt without allocating its declared length (libpng would, and clear
 * it: 2 GB of RSS for a 61-byte request image). */
static void test_chunk_length_bomb(void) {
    uint8_t png[61] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D',
                       'R',  0,   0,   0,   1,    0,    0,    0,    1, 8, 2, 0,  0,   0};
    put_be32(png + 29, crc32_bitwise(png + 12, 17));
    put_be32(png + 33, 0x7a000022u);
    memcpy(png + 37, "tEXtparameters\0a red circle", 24);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    image_rgb8 img;
    cnet_error err = {0};
    int rc = image_decode(&img, png, sizeof png, "bomb.png", 0, &err);
    getrusage(RUSAGE_SELF, &after);
    CHECK(rc == CNET_EFORMAT && strstr(err.msg, "bomb.png"), "rc %d '%s'", rc, err.msg);
    CHECK(after.ru_maxrss - before.ru_maxrss < 256 * 1024, "peak RSS grew by %ld KiB",
          after.ru_maxrss - before.ru_maxrss);
    if (!rc) image_free(&img);
}

static void test_load_errors(void) {
    char path[512];
    image_rgb8 img;
    cnet_error err = {0};
    tmp_path(path, sizeof path, "missing.png");
    int rc = image_load(&img, path, 0, &err);
    EXPECT(rc == CNET_EIO && strstr(err.msg, path), "missing: rc %d '%s'", rc, err.msg);
    rc = image_load(&img, tmpdir, 0, &err);
    EXPECT(rc == CNET_EIO && strstr(err.msg, tmpdir), "directory: rc %d '%s'", rc, err.msg);
    tmp_path(path, sizeof path, "empty.png");
    FILE *fp = fopen(path, "wb");
    CHECK(fp, "create");
    fclose(fp);
    rc = image_load(&img, path, 0, &err);
    EXPECT(rc == CNET_EFORMAT && strstr(err.msg, path), "empty: rc %d '%s'", rc, err.msg);
    unlink(path);
    /* A sparse file over the size cap is refused before it is read. */
    tmp_path(path, sizeof path, "big.png");
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)IMAGE_MAX_FILE_BYTES + 1) == 0, "sparse file");
    close(fd);
    rc = image_load(&img, path, 0, &err);
    EXPECT(rc == CNET_ELIMIT && strstr(err.msg, path), "big: rc %d '%s'", rc, err.msg);
    unlink(path);
}

static int count_entries(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    if (d) closedir(d);
    return n;
}

static void test_save(void) {
    image_rgb8 img, back;
    cnet_error err;
    CHECK(make_rgb(&img, 12, 7), "alloc");
    char png_path[512], jpg_path[512], bad[512];
    tmp_path(png_path, sizeof png_path, "out.PNG");
    tmp_path(jpg_path, sizeof jpg_path, "out.jpeg");
    CHECK(image_save(png_path, &img, NULL, 0, 0, &err) == 0, "%s", err.msg);
    CHECK(image_load(&back, png_path, 0, &err) == 0, "%s", err.msg);
    EXPECT(same_pixels(&img, &back), "PNG file round trip");
    image_free(&back);
    CHECK(image_save(jpg_path, &img, NULL, 0, 90, &err) == 0, "%s", err.msg);
    CHECK(image_load(&back, jpg_path, 0, &err) == 0, "%s", err.msg);
    EXPECT(back.width == 12 && back.height == 7, "JPEG file size");
    image_free(&back);
    int before = count_entries(tmpdir);
    tmp_path(bad, sizeof bad, "out.gif");
    EXPECT(image_save(bad, &img, NULL, 0, 0, &err) == CNET_EINVAL, "unknown extension");
    tmp_path(bad, sizeof bad, "no/such/dir/out.png");
    EXPECT(image_save(bad, &img, NULL, 0, 0, &err) == CNET_EIO && strstr(err.msg, "no/such"),
           "missing dir: '%s'", err.msg);
    /* A failed save leaves the old file as it was and no temp file. */
    image_rgb8 empty = {0};
    EXPECT(image_save(png_path, &empty, NULL, 0, 0, &err) == CNET_EINVAL, "empty image saved");
    CHECK(image_load(&back, png_path, 0, &err) == 0, "%s", err.msg);
    EXPECT(same_pixels(&img, &back), "old file changed by a failed save");
    image_free(&back);
    EXPECT(count_entries(tmpdir) == before, "files left behind: %d, was %d", count_entries(tmpdir),
           before);
    unlink(png_path);
    unlink(jpg_path);
    image_free(&img);
}

/* image_probe: the size libpng and libjpeg wrote into the header (IHDR;
 * baseline SOF0 and progressive SOF2 after JFIF and DQT segments), from the
 * header alone: every prefix of the file either gives that size or
 * CNET_EFORMAT, and bytes after the header do not matter. */
static void test_probe_header_size(void) {
    cnet_error err;
    size_t len;
    int w = 0, h = 0;
    fill_raw(8);
    png_spec s = {.w = W,
                  .h = H,
                  .depth = 8,
                  .ctype = PNG_COLOR_TYPE_GRAY,
                  .rows = &raw[0][0],
                  .rowbytes = sizeof raw[0]};
    uint8_t *bufs[3] = {write_png(&s, &len)};
    size_t lens[3] = {len};
    bufs[1] = write_jpeg(40, 24, 3, smooth, 95, 0, &lens[1]);
    bufs[2] = write_jpeg(17, 9, 1, smooth, 95, 1, &lens[2]);
    const int want[3][2] = {{W, H}, {40, 24}, {17, 9}};
    for (int k = 0; k < 3; k++) {
        CHECK(bufs[k], "file %d not written", k);
        CHECK(image_probe(bufs[k], lens[k], "probe", &w, &h, &err) == 0, "file %d: %s", k, err.msg);
        EXPECT(w == want[k][0] && h == want[k][1], "file %d: %dx%d, want %dx%d", k, w, h,
               want[k][0], want[k][1]);
        int sized = 0;
        for (size_t n = 0; n <= lens[k]; n++) {
            w = h = 0;
            const int rc = image_probe(bufs[k], n, "probe", &w, &h, &err);
            EXPECT(rc == 0 ? w == want[k][0] && h == want[k][1] : rc == CNET_EFORMAT,
                   "file %d, %zu bytes: rc %d, %dx%d", k, n, rc, w, h);
            EXPECT(!sized || rc == 0, "file %d: %zu bytes lost the size", k, n);
            sized |= rc == 0;
        }
        memset(bufs[k] + lens[k] / 2, 0xAB, lens[k] - lens[k] / 2); /* the pixel data */
        EXPECT(image_probe(bufs[k], lens[k], "probe", &w, &h, &err) == 0 && w == want[k][0],
               "file %d with garbage after its header", k);
        free(bufs[k]);
    }
    const uint8_t not_image[16] = "GIF89a";
    EXPECT(image_probe(not_image, sizeof not_image, "x.gif", &w, &h, &err) == CNET_EFORMAT &&
               strstr(err.msg, "x.gif"),
           "GIF: %s", err.msg);
}

static void test_format_names(void) {
    EXPECT(image_format_from_path("a/b.Jpg") == IMAGE_FORMAT_JPEG, "jpg");
    EXPECT(image_format_from_path("x.png") == IMAGE_FORMAT_PNG, "png");
    EXPECT(image_format_from_path("dir.png/x") == IMAGE_FORMAT_UNKNOWN, "dir with dot");
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_JPEG), "jpeg") == 0, "name");
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_png_color_types);
    RUN(test_png_low_bit_gray);
    RUN(test_png_palette);
    RUN(test_png_roundtrip);
    RUN(test_png_text_chunks);
    RUN(test_jpeg_decode);
    RUN(test_jpeg_roundtrip);
    RUN(test_truncated);
    RUN(test_corrupt);
    RUN(test_wrong_magic);
    RUN(test_huge_dimensions);
    RUN(test_chunk_length_bomb);
    RUN(test_load_errors);
    RUN(test_save);
    RUN(test_probe_header_size);
    RUN(test_format_names);
    rmdir(tmpdir);
    return harness_done();
}
