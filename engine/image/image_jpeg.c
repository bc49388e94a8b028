/* JPEG decode to RGB8 and encode from RGB8 with libjpeg(-turbo), in memory.
 *
 * Decoding uses libjpeg's defaults (islow DCT, fancy upsampling), as PIL
 * does, so the pixels equal PIL's on the same libjpeg. Gray is replicated;
 * 4-component (CMYK/YCCK) images are read as CMYK, inverted as PIL does for
 * them ("CMYK;I", the Adobe convention) and converted with PIL's cmyk2rgb.
 * Unlike libjpeg's stock memory source, running out of data is an error,
 * not a fake end-of-image marker, and so is every libjpeg warning (they all
 * report corrupt data); a cap on progressive scans bounds the decoding time.
 *
 * libjpeg reports errors through error_exit, which must not return: it
 * longjmps back here. The state the error path frees lives in a heap job. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
/* after jpeglib.h, which it needs */
#include <jerror.h>

#include "engine/image/image.h"

typedef struct jpeg_job {
    struct jpeg_error_mgr mgr; /* first: libjpeg hands back a pointer to it */
    jmp_buf jmp;
    struct jpeg_source_mgr src;
    struct jpeg_progress_mgr progress;
    int64_t max_pixels; /* decode: the pixel limit */
    JSAMPLE *row;       /* decode: one output row */
    struct jpeg_destination_mgr dst;
    uint8_t *out; /* encode: the growing output */
    size_t out_len, out_cap;
    char msg[JMSG_LENGTH_MAX];
} jpeg_job;

static void on_error_exit(j_common_ptr cinfo) {
    jpeg_job *job = (jpeg_job *)cinfo->err;
    cinfo->err->format_message(cinfo, job->msg);
    longjmp(job->jmp, 1);
}

/* level -1: a warning, always about corrupt data; higher: trace output. */
static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0) on_error_exit(cinfo);
}

static void src_init(j_decompress_ptr cinfo) { (void)cinfo; }

/* The whole input is given at once (src_set); asking for more means the
 * data ended early. */
static boolean src_fill(j_decompress_ptr cinfo) {
    ERREXIT(cinfo, JERR_INPUT_EOF);
    return FALSE;
}

static void src_skip(j_decompress_ptr cinfo, long n) {
    struct jpeg_source_mgr *src = cinfo->src;
    if (n <= 0) return;
    if ((unsigned long)n > src->bytes_in_buffer) ERREXIT(cinfo, JERR_INPUT_EOF);
    src->next_input_byte += n;
    src->bytes_in_buffer -= (size_t)n;
}

static void src_term(j_decompress_ptr cinfo) { (void)cinfo; }

static void on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > IMAGE_JPEG_MAX_SCANS) {
        jpeg_job *job = (jpeg_job *)cinfo->err;
        snprintf(job->msg, sizeof job->msg, "more than %d progressive scans", IMAGE_JPEG_MAX_SCANS);
        longjmp(job->jmp, 1);
    }
}

/* PIL's cmyk2rgb on inverted ("CMYK;I") samples: channel = nk - nk*c/255
 * with nk = 255 - k, its MULDIV255 rounding. */
static uint8_t cmyk_channel(int c, int nk) {
    int t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void row_to_rgb(uint8_t *d, const JSAMPLE *s, int width, int components) {
    for (int x = 0; x < width; x++, d += 3, s += components) {
        if (components == 1) {
            d[0] = d[1] = d[2] = s[0];
        } else if (components == 3) {
            d[0] = s[0], d[1] = s[1], d[2] = s[2];
        } else {
            int nk = s[3]; /* 255 - k for the inverted k = 255 - s[3] */
            d[0] = cmyk_channel(255 - s[0], nk);
            d[1] = cmyk_channel(255 - s[1], nk);
            d[2] = cmyk_channel(255 - s[2], nk);
        }
    }
}

int image_decode_jpeg(image_rgb8 *img, const void *buf, size_t len, const char *name,
                      int64_t max_pixels, cnet_error *err) {
    memset(img, 0, sizeof *img);
    if (max_pixels <= 0) max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    jpeg_job *job = calloc(1, sizeof *job);
    struct jpeg_decompress_struct *cinfo = calloc(1, sizeof *cinfo);
    if (!job || !cinfo) {
        free(job);
        free(cinfo);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", name);
    }
    job->max_pixels = max_pixels;
    cinfo->err = jpeg_std_error(&job->mgr);
    job->mgr.error_exit = on_error_exit;
    job->mgr.emit_message = on_message;
    int rc = 0;
    if (setjmp(job->jmp)) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: corrupt JPEG: %s", name, job->msg);
        goto done;
    }
    jpeg_create_decompress(cinfo);
    job->src.init_source = src_init;
    job->src.fill_input_buffer = src_fill;
    job->src.skip_input_data = src_skip;
    job->src.resync_to_restart = jpeg_resync_to_restart;
    job->src.term_source = src_term;
    job->src.next_input_byte = buf;
    job->src.bytes_in_buffer = len;
    cinfo->src = &job->src;
    job->progress.progress_monitor = on_progress;
    cinfo->progress = &job->progress;
    jpeg_read_header(cinfo, TRUE);
    uint64_t w = cinfo->image_width, h = cinfo->image_height;
    if (w * h > (uint64_t)job->max_pixels) {
        rc =
            cnet_fail(err, CNET_ELIMIT, "%s: %llux%llu pixels, over the limit of %lld pixels", name,
                      (unsigned long long)w, (unsigned long long)h, (long long)job->max_pixels);
        goto done;
    }
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        break;
    default:
        cinfo->out_color_space = JCS_RGB;
        break;
    }
    jpeg_start_decompress(cinfo);
    int comps = cinfo->output_components;
    if (comps != 1 && comps != 3 && comps != 4) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: unsupported JPEG with %d components", name, comps);
        goto done;
    }
    if (!(job->row = malloc((size_t)cinfo->output_width * comps)) ||
        image_alloc(img, (int)cinfo->output_width, (int)cinfo->output_height, err)) {
        rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory for %llux%llu pixels", name,
                       (unsigned long long)w, (unsigned long long)h);
        goto done;
    }
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW rows[1] = {job->row};
        int y = (int)cinfo->output_scanline;
        if (jpeg_read_scanlines(cinfo, rows, 1) != 1) ERREXIT(cinfo, JERR_INPUT_EOF);
        row_to_rgb(img->data + (size_t)y * img->width * 3, job->row, img->width, comps);
    }
    jpeg_finish_decompress(cinfo);
done:
    if (rc) image_free(img);
    jpeg_destroy_decompress(cinfo);
    free(job->row);
    free(job);
    free(cinfo);
    return rc;
}

/* A destination growing job->out (the stock jpeg_mem_dest leaks its buffer
 * when compression fails half-way). */
static void dst_grow(j_compress_ptr cinfo) {
    jpeg_job *job = (jpeg_job *)cinfo->err;
    size_t cap = job->out_cap ? job->out_cap * 2 : 65536;
    uint8_t *grown = realloc(job->out, cap);
    if (!grown) {
        snprintf(job->msg, sizeof job->msg, "out of memory for the encoded image");
        longjmp(job->jmp, 1);
    }
    job->dst.next_output_byte = grown + job->out_cap;
    job->dst.free_in_buffer = cap - job->out_cap;
    job->out = grown;
    job->out_cap = cap;
}

static void dst_init(j_compress_ptr cinfo) { dst_grow(cinfo); }

/* Called when the buffer is full: all of it holds output. */
static boolean dst_empty(j_compress_ptr cinfo) {
    dst_grow(cinfo);
    return TRUE;
}

static void dst_term(j_compress_ptr cinfo) {
    jpeg_job *job = (jpeg_job *)cinfo->err;
    job->out_len = job->out_cap - job->dst.free_in_buffer;
}

int image_encode_jpeg(const image_rgb8 *img, int quality, uint8_t **out, size_t *len,
                      cnet_error *err) {
    *out = NULL;
    *len = 0;
    if (!img->data || img->width <= 0 || img->height <= 0)
        return cnet_fail(err, CNET_EINVAL, "jpeg: empty image");
    if (quality < 1 || quality > 100)
        return cnet_fail(err, CNET_EINVAL, "jpeg: quality %d outside 1..100", quality);
    jpeg_job *job = calloc(1, sizeof *job);
    struct jpeg_compress_struct *cinfo = calloc(1, sizeof *cinfo);
    if (!job || !cinfo) {
        free(job);
        free(cinfo);
        return cnet_fail(err, CNET_ENOMEM, "jpeg: out of memory");
    }
    cinfo->err = jpeg_std_error(&job->mgr);
    job->mgr.error_exit = on_error_exit;
    job->mgr.emit_message = on_message;
    int rc = 0;
    if (setjmp(job->jmp)) {
        rc = cnet_fail(err, CNET_EIO, "jpeg: encoding failed: %s", job->msg);
        goto done;
    }
    jpeg_create_compress(cinfo);
    job->dst.init_destination = dst_init;
    job->dst.empty_output_buffer = dst_empty;
    job->dst.term_destination = dst_term;
    cinfo->dest = &job->dst;
    cinfo->image_width = (JDIMENSION)img->width;
    cinfo->image_height = (JDIMENSION)img->height;
    cinfo->input_components = 3;
    cinfo->in_color_space = JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    jpeg_start_compress(cinfo, TRUE);
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW rows[1] = {img->data + (size_t)cinfo->next_scanline * img->width * 3};
        jpeg_write_scanlines(cinfo, rows, 1);
    }
    jpeg_finish_compress(cinfo);
    *out = job->out;
    *len = job->out_len;
    job->out = NULL;
done:
    jpeg_destroy_compress(cinfo);
    free(job->out);
    free(job);
    free(cinfo);
    return rc;
}
