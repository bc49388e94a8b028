/* TensorBoard's event records in memory: the protobuf wire format of the few
 * messages an event file holds, and TFRecord's framing around each.
 *
 * What it is: Event {wall_time = 1 (double), step = 2 (int64), file_version
 * = 3 (string), summary = 5 (Summary), session_log = 6 (SessionLog {status =
 * 1, START = 1})}, Summary {repeated Value value = 1},
 * Value {tag = 1, simple_value = 2 (float), image = 4 (Image)} and Image
 * {height = 1, width = 2, colorspace = 3, encoded_image_string = 4}, as
 * tensorflow/core/util/event.proto and tensorflow/core/framework/
 * summary.proto number them; a record is uint64 length (little-endian),
 * masked crc32c of those 8 bytes, the data, masked crc32c of the data
 * (tensorflow/core/lib/io/record_writer.cc; the mask is crc32c.h's).
 *
 * What it is not: a protobuf library (no decoding, no other messages) or
 * the file writer (tensorboard_writer.h). */
#ifndef CNET_TENSORBOARD_ENCODE_H
#define CNET_TENSORBOARD_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes. */
uint32_t tensorboard_crc32c(const void *data, size_t n);
/* TFRecord's mask of a crc: rotate right by 15, add 0xa282ead8. */
uint32_t tensorboard_crc32c_mask(uint32_t crc);

/* A growing byte buffer. An allocation failure sets failed and drops every
 * later append, so a caller checks once, after building a whole message.
 * Owns data: tensorboard_buf_free. */
typedef struct tensorboard_buf {
    uint8_t *data;
    size_t len, cap;
    int failed;
} tensorboard_buf;

void tensorboard_buf_free(tensorboard_buf *b);
void tensorboard_put_bytes(tensorboard_buf *b, const void *p, size_t n);
/* Base-128 varint, least significant group first. */
void tensorboard_put_varint(tensorboard_buf *b, uint64_t v);

/* Protobuf fields, each with its key (field << 3 | wire type). */
void tensorboard_put_field_varint(tensorboard_buf *b, int field, uint64_t v);
void tensorboard_put_field_double(tensorboard_buf *b, int field, double v);
void tensorboard_put_field_float(tensorboard_buf *b, int field, float v);
/* A length-delimited field: a string, bytes or an encoded message. */
void tensorboard_put_field_bytes(tensorboard_buf *b, int field, const void *p, size_t n);

/* Event {wall_time, file_version} (the first record of every file). */
void tensorboard_event_file_version(tensorboard_buf *b, double wall_time, const char *version);
/* Event {wall_time, step, summary {value {tag, simple_value}} x n}. */
void tensorboard_event_scalars(tensorboard_buf *b, double wall_time, int64_t step,
                               const char *const *tags, const float *values, int n);
/* Event {wall_time, step, summary {value {tag, image {height, width,
 * colorspace, encoded_image_string = png}}}}. */
void tensorboard_event_image(tensorboard_buf *b, double wall_time, int64_t step, const char *tag,
                             int height, int width, int colorspace, const void *png, size_t n);

/* Event {wall_time, step, session_log {status START}}: a run (re)starts at
 * step, and TensorBoard's reader drops the events with step >= step that
 * it read before this one (event_accumulator's purge of orphaned data), so
 * the steps a resumed run repeats are shown once. */
void tensorboard_event_session_start(tensorboard_buf *b, double wall_time, int64_t step);

/* The TFRecord of data: header (length + its masked crc), data, footer. */
void tensorboard_frame_record(tensorboard_buf *out, const void *data, size_t n);

#endif
