/* TensorBoard's Event protobufs and TFRecord framing in memory; see
 * tensorboard_encode.h for the messages and the reference. The CRC is the
 * plain bit-at-a-time form (no table to share between threads): records are
 * written once per step and a validation image once per validation, far
 * from any hot path. */
#include "engine/tensorboard/tensorboard_encode.h"

#include <stdlib.h>
#include <string.h>

/* The reflected Castagnoli polynomial (RFC 3720, B.4). */
#define CRC32C_POLY 0x82F63B78u
/* tensorflow/core/lib/hash/crc32c.h's kMaskDelta. */
#define CRC32C_MASK_DELTA 0xa282ead8u

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

uint32_t tensorboard_crc32c(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ CRC32C_POLY : crc >> 1;
    }
    return crc ^ 0xFFFFFFFFu;
}

uint32_t tensorboard_crc32c_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + CRC32C_MASK_DELTA;
}

void tensorboard_buf_free(tensorboard_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void tensorboard_put_bytes(tensorboard_buf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d, b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

void tensorboard_put_varint(tensorboard_buf *b, uint64_t v) {
    uint8_t out[10];
    int n = 0;
    do {
        out[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) out[n] |= 0x80;
        n++;
    } while (v);
    tensorboard_put_bytes(b, out, (size_t)n);
}

static void put_key(tensorboard_buf *b, int field, int wire) {
    tensorboard_put_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

/* Little-endian, whatever the host's order. */
static void put_le(tensorboard_buf *b, uint64_t v, int bytes) {
    uint8_t out[8];
    for (int i = 0; i < bytes; i++) out[i] = (uint8_t)(v >> (8 * i));
    tensorboard_put_bytes(b, out, (size_t)bytes);
}

void tensorboard_put_field_varint(tensorboard_buf *b, int field, uint64_t v) {
    put_key(b, field, WIRE_VARINT);
    tensorboard_put_varint(b, v);
}

void tensorboard_put_field_double(tensorboard_buf *b, int field, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_key(b, field, WIRE_FIXED64);
    put_le(b, bits, 8);
}

void tensorboard_put_field_float(tensorboard_buf *b, int field, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    put_key(b, field, WIRE_FIXED32);
    put_le(b, bits, 4);
}

void tensorboard_put_field_bytes(tensorboard_buf *b, int field, const void *p, size_t n) {
    put_key(b, field, WIRE_BYTES);
    tensorboard_put_varint(b, n);
    tensorboard_put_bytes(b, p, n);
}

/* A nested message: its encoding (inner) as a length-delimited field. */
static void put_message(tensorboard_buf *b, int field, tensorboard_buf *inner) {
    if (inner->failed) b->failed = 1;
    tensorboard_put_field_bytes(b, field, inner->data, inner->len);
    tensorboard_buf_free(inner);
}

/* Field numbers of event.proto's Event and summary.proto's messages. */
enum {
    EVENT_WALL_TIME = 1,
    EVENT_STEP = 2,
    EVENT_FILE_VERSION = 3,
    EVENT_SUMMARY = 5,
    EVENT_SESSION_LOG = 6
};
enum { SESSION_LOG_STATUS = 1 };
enum { SESSION_LOG_START = 1 }; /* SessionLog.SessionStatus */
enum { SUMMARY_VALUE = 1 };
enum { VALUE_TAG = 1, VALUE_SIMPLE = 2, VALUE_IMAGE = 4 };
enum { IMAGE_HEIGHT = 1, IMAGE_WIDTH = 2, IMAGE_COLORSPACE = 3, IMAGE_ENCODED = 4 };

void tensorboard_event_file_version(tensorboard_buf *b, double wall_time, const char *version) {
    tensorboard_put_field_double(b, EVENT_WALL_TIME, wall_time);
    tensorboard_put_field_bytes(b, EVENT_FILE_VERSION, version, strlen(version));
}

void tensorboard_event_scalars(tensorboard_buf *b, double wall_time, int64_t step,
                               const char *const *tags, const float *values, int n) {
    tensorboard_buf summary = {0};
    for (int i = 0; i < n; i++) {
        tensorboard_buf value = {0};
        tensorboard_put_field_bytes(&value, VALUE_TAG, tags[i], strlen(tags[i]));
        tensorboard_put_field_float(&value, VALUE_SIMPLE, values[i]);
        put_message(&summary, SUMMARY_VALUE, &value);
    }
    tensorboard_put_field_double(b, EVENT_WALL_TIME, wall_time);
    tensorboard_put_field_varint(b, EVENT_STEP, (uint64_t)step);
    put_message(b, EVENT_SUMMARY, &summary);
}

void tensorboard_event_image(tensorboard_buf *b, double wall_time, int64_t step, const char *tag,
                             int height, int width, int colorspace, const void *png, size_t n) {
    tensorboard_buf image = {0}, value = {0}, summary = {0};
    tensorboard_put_field_varint(&image, IMAGE_HEIGHT, (uint64_t)height);
    tensorboard_put_field_varint(&image, IMAGE_WIDTH, (uint64_t)width);
    tensorboard_put_field_varint(&image, IMAGE_COLORSPACE, (uint64_t)colorspace);
    tensorboard_put_field_bytes(&image, IMAGE_ENCODED, png, n);
    tensorboard_put_field_bytes(&value, VALUE_TAG, tag, strlen(tag));
    put_message(&value, VALUE_IMAGE, &image);
    put_message(&summary, SUMMARY_VALUE, &value);
    tensorboard_put_field_double(b, EVENT_WALL_TIME, wall_time);
    tensorboard_put_field_varint(b, EVENT_STEP, (uint64_t)step);
    put_message(b, EVENT_SUMMARY, &summary);
}

void tensorboard_event_session_start(tensorboard_buf *b, double wall_time, int64_t step) {
    tensorboard_buf log = {0};
    tensorboard_put_field_varint(&log, SESSION_LOG_STATUS, SESSION_LOG_START);
    tensorboard_put_field_double(b, EVENT_WALL_TIME, wall_time);
    tensorboard_put_field_varint(b, EVENT_STEP, (uint64_t)step);
    put_message(b, EVENT_SESSION_LOG, &log);
}

void tensorboard_frame_record(tensorboard_buf *out, const void *data, size_t n) {
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    tensorboard_put_bytes(out, len, sizeof len);
    put_le(out, tensorboard_crc32c_mask(tensorboard_crc32c(len, sizeof len)), 4);
    tensorboard_put_bytes(out, data, n);
    put_le(out, tensorboard_crc32c_mask(tensorboard_crc32c(data, n)), 4);
}
