/* Images in and out: PNG (libpng) and JPEG (libjpeg-turbo) decoded to and
 * encoded from 8-bit RGB pixels [H,W,3], from files or from memory.
 *
 * Decoding gives what PIL's Image.open(f).convert("RGB") gives, since that is
 * what diffusers and train_controlnet.py feed the models:
 *   - gray, gray+alpha, palette (with or without tRNS), RGBA: alpha and
 *     transparency are dropped (no compositing), gray is replicated;
 *   - 16-bit RGB(A) and gray+alpha keep the high byte; 16-bit gray is CLIPPED
 *     to 255 (PIL opens it as 32-bit "I" and converts by clipping, not
 *     scaling) — surprising, but it is the reference behaviour;
 *   - 1/2/4-bit gray is scaled to 0..255;
 *   - JPEG: gray replicated, CMYK/YCCK read as Adobe-inverted CMYK and turned
 *     into RGB with PIL's formula; libjpeg's default (islow, fancy upsampling)
 *     decoding, as PIL uses it;
 *   - EXIF orientation and gamma/ICC profiles are NOT applied (PIL's defaults).
 * Width and height are read from the header and checked against a pixel
 * limit before anything is allocated. Truncated or corrupt data is an error
 * naming the file (CNET_EFORMAT); libjpeg's "corrupt data" warnings are errors
 * too, where PIL would go on with damaged pixels. Not an image library: no
 * other formats, no colour management, no metadata reading.
 *
 * Errors: CNET_EFORMAT (not PNG/JPEG, corrupt, truncated), CNET_ELIMIT (over
 * the pixel or file-size limit), CNET_EIO (open/read/write failed),
 * CNET_EINVAL (bad arguments), CNET_ENOMEM. */
#ifndef CNET_IMAGE_H
#define CNET_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"

/* Default for the max_pixels arguments (width * height). */
#define IMAGE_MAX_PIXELS_DEFAULT ((int64_t)4096 * 4096)
/* Largest image file image_load reads. */
#define IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)
/* libpng's cap on the memory of one ancillary chunk (zTXt/iCCP bombs). */
#define IMAGE_PNG_CHUNK_MAX ((size_t)8 << 20)
/* Progressive JPEG scans accepted (libjpeg-turbo's advice for untrusted
 * input: many tiny scans make decoding arbitrarily slow). */
#define IMAGE_JPEG_MAX_SCANS 500
/* PNG text keys are 1..79 Latin-1 characters (PNG spec 11.3.4.3). */
#define IMAGE_PNG_KEY_MAX 79

/* Pixels [height, width, 3], RGB, row-major. Owned: image_free frees data. */
typedef struct image_rgb8 {
    int width, height;
    uint8_t *data;
} image_rgb8;

typedef enum image_format {
    IMAGE_FORMAT_UNKNOWN = 0,
    IMAGE_FORMAT_PNG,
    IMAGE_FORMAT_JPEG,
} image_format;

/* "png", "jpeg", "unknown". */
const char *image_format_name(image_format fmt);
/* The format from the first bytes (signature), IMAGE_FORMAT_UNKNOWN if none. */
image_format image_sniff(const void *buf, size_t len);
/* The size an image's header declares (PNG: the IHDR; JPEG: the first
 * SOFn frame header), read without decoding anything, so a caller can
 * refuse or account for an image before its pixels exist. CNET_EFORMAT
 * when the bytes are not PNG/JPEG or hold no readable size. */
int image_probe(const void *buf, size_t len, const char *name, int *width, int *height,
                cnet_error *err);
/* The format a path's extension asks for (.png, .jpg/.jpeg, any case). */
image_format image_format_from_path(const char *path);

/* Allocates width*height*3 zeroed bytes; *img holds nothing on failure. */
int image_alloc(image_rgb8 *img, int width, int height, cnet_error *err);
/* Frees data; *img is zeroed. Safe on a zeroed struct. */
void image_free(image_rgb8 *img);

/* Decodes PNG or JPEG bytes (format sniffed). name labels errors (a file
 * name, "request.image"). max_pixels <= 0 means IMAGE_MAX_PIXELS_DEFAULT.
 * On failure *img holds nothing to free. */
int image_decode(image_rgb8 *img, const void *buf, size_t len, const char *name, int64_t max_pixels,
                 cnet_error *err);
int image_decode_png(image_rgb8 *img, const void *buf, size_t len, const char *name,
                     int64_t max_pixels, cnet_error *err);
int image_decode_jpeg(image_rgb8 *img, const void *buf, size_t len, const char *name,
                      int64_t max_pixels, cnet_error *err);
/* Reads a whole file (at most IMAGE_MAX_FILE_BYTES) and decodes it. */
int image_load(image_rgb8 *img, const char *path, int64_t max_pixels, cnet_error *err);

/* A PNG text chunk: tEXt when value is ASCII, else iTXt (UTF-8). A1111-style
 * tools read the generation parameters from key "parameters". */
typedef struct image_text {
    const char *key;
    const char *value;
} image_text;

/* Encodes to a malloc'd buffer (*out, *len; caller frees). PNG: 8-bit RGB,
 * non-interlaced, with the given text chunks (may be NULL/0). JPEG: quality
 * 1..100, 4:2:0 as libjpeg's defaults (PIL's too). */
int image_encode_png(const image_rgb8 *img, const image_text *text, int n_text, uint8_t **out,
                     size_t *len, cnet_error *err);
int image_encode_jpeg(const image_rgb8 *img, int quality, uint8_t **out, size_t *len,
                      cnet_error *err);

/* Encodes by the path's extension and writes atomically (temp file, fsync,
 * rename): on failure no file appears at path and an old one is untouched.
 * text is used for PNG only; quality for JPEG only. */
int image_save(const char *path, const image_rgb8 *img, const image_text *text, int n_text,
               int quality, cnet_error *err);

#endif
