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
