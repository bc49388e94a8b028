/* Image files: format sniffing, the pixel buffer, reading a whole file with
 * a size cap, and saving through atomic_write_file (temp file, fsync,
 * rename) so a failed or interrupted save never leaves a partial image.
 * The codecs are in image_png.c and image_jpeg.c. See image.h. */
#include "engine/image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/atomic_file.h"

const char *image_format_name(image_format fmt) {
    switch (fmt) {
    case IMAGE_FORMAT_PNG:
        return "png";
    case IMAGE_FORMAT_JPEG:
        return "jpeg";
    default:
        return "unknown";
    }
}

image_format image_sniff(const void *buf, size_t len) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *b = buf;
    if (len >= sizeof png_sig && memcmp(b, png_sig, sizeof png_sig) == 0) return IMAGE_FORMAT_PNG;
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IMAGE_FORMAT_JPEG;
    return IMAGE_FORMAT_UNKNOWN;
}

static uint32_t be16(const uint8_t *b) { return (uint32_t)b[0] << 8 | b[1]; }
static uint32_t be32(const uint8_t *b) { return be16(b) << 16 | be16(b + 2); }

/* The first SOFn segment's size (ITU T.81 B.1.1: markers, each but the
 * standalone ones followed by a 16-bit length that counts itself); 0 when
 * there is none before the scan data. */
static int jpeg_frame_size(const uint8_t *b, size_t len, uint32_t *w, uint32_t *h) {
    size_t i = 2; /* after SOI */
    while (i + 2 <= len) {
        if (b[i] != 0xff) return 0;
        const uint8_t m = b[i + 1];
        if (m == 0xff) { /* a fill byte before a marker */
            i++;
            continue;
        }
        i += 2;
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; /* TEM, RSTn: no length */
        if (m == 0xd9 || m == 0xda || i + 2 > len) return 0; /* EOI, SOS: no frame header */
        const uint32_t seg = be16(b + i);
        const int sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
        if (sof && seg >= 7 && i + 7 <= len) {
            *h = be16(b + i + 3), *w = be16(b + i + 5);
            return 1;
        }
        if (sof || seg < 2) return 0;
        i += seg;
    }
    return 0;
}

int image_probe(const void *buf, size_t len, const char *name, int *width, int *height,
                cnet_error *err) {
    const uint8_t *b = buf;
    uint32_t w = 0, h = 0;
    int found = 0;
    switch (image_sniff(buf, len)) {
    case IMAGE_FORMAT_PNG: /* the IHDR is the first chunk: signature 8, length 4, type 4 */
        if ((found = len >= 24 && memcmp(b + 12, "IHDR", 4) == 0))
            w = be32(b + 16), h = be32(b + 20);
        break;
    case IMAGE_FORMAT_JPEG:
        found = jpeg_frame_size(b, len, &w, &h);
        break;
    default:
        return cnet_fail(err, CNET_EFORMAT, "%s: not a PNG or JPEG image (%zu bytes)", name, len);
    }
    if (!found || !w || !h || w > INT32_MAX || h > INT32_MAX)
        return cnet_fail(err, CNET_EFORMAT, "%s: no usable image size in its %s header", name,
                         image_format_name(image_sniff(buf, len)));
    *width = (int)w, *height = (int)h;
    return 0;
}

image_format image_format_from_path(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/')) return IMAGE_FORMAT_UNKNOWN;
    if (strcasecmp(dot, ".png") == 0) return IMAGE_FORMAT_PNG;
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0) return IMAGE_FORMAT_JPEG;
    return IMAGE_FORMAT_UNKNOWN;
}

int image_alloc(image_rgb8 *img, int width, int height, cnet_error *err) {
    memset(img, 0, sizeof *img);
    if (width <= 0 || height <= 0)
        return cnet_fail(err, CNET_EINVAL, "image: bad size %dx%d", width, height);
    size_t n = (size_t)width * (size_t)height * 3;
    if (!(img->data = calloc(n, 1)))
        return cnet_fail(err, CNET_ENOMEM, "image: out of memory for %dx%d pixels", width, height);
    img->width = width;
    img->height = height;
    return 0;
}

void image_free(image_rgb8 *img) {
    free(img->data);
    memset(img, 0, sizeof *img);
}

int image_decode(image_rgb8 *img, const void *buf, size_t len, const char *name, int64_t max_pixels,
                 cnet_error *err) {
    memset(img, 0, sizeof *img);
    switch (image_sniff(buf, len)) {
    case IMAGE_FORMAT_PNG:
        return image_decode_png(img, buf, len, name, max_pixels, err);
    case IMAGE_FORMAT_JPEG:
        return image_decode_jpeg(img, buf, len, name, max_pixels, err);
    default:
        return cnet_fail(err, CNET_EFORMAT, "%s: not a PNG or JPEG image (%zu bytes)", name, len);
    }
}

/* Reads all of path into a malloc'd buffer (caller frees). */
static int read_file(const char *path, uint8_t **out, size_t *len, cnet_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cnet_fail(err, CNET_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = cnet_fail(err, CNET_EIO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = cnet_fail(err, CNET_EIO, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > IMAGE_MAX_FILE_BYTES) {
        rc = cnet_fail(err, CNET_ELIMIT, "%s: %lld bytes, over the image file limit of %zu", path,
                       (long long)st.st_size, IMAGE_MAX_FILE_BYTES);
    } else if (!(*out = malloc(st.st_size ? (size_t)st.st_size : 1))) {
        rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (!rc && got < (size_t)st.st_size) {
        ssize_t n = read(fd, *out + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            rc = cnet_fail(err, CNET_EIO, "%s: read failed: %s", path,
                           n < 0 ? strerror(errno) : "file shrank while reading");
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc) {
        free(*out);
        *out = NULL;
        return rc;
    }
    *len = got;
    return 0;
}

int image_load(image_rgb8 *img, const char *path, int64_t max_pixels, cnet_error *err) {
    memset(img, 0, sizeof *img);
    uint8_t *buf;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, err);
    if (rc) return rc;
    rc = image_decode(img, buf, len, path, max_pixels, err);
    free(buf);
    return rc;
}

int image_save(const char *path, const image_rgb8 *img, const image_text *text, int n_text,
               int quality, cnet_error *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    switch (image_format_from_path(path)) {
    case IMAGE_FORMAT_PNG:
        rc = image_encode_png(img, text, n_text, &buf, &len, err);
        break;
    case IMAGE_FORMAT_JPEG:
        rc = image_encode_jpeg(img, quality, &buf, &len, err);
        break;
    default:
        return cnet_fail(err, CNET_EINVAL, "%s: unknown image extension (use .png, .jpg or .jpeg)",
                         path);
    }
    if (rc) {
        cnet_error_prefix(err, "%s", path);
        return rc;
    }
    rc = atomic_write_file(path, buf, len, err);
    free(buf);
    return rc;
}
