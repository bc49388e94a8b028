/* The Thrift compact protocol, read side, as Parquet's footer and page
 * headers use it (thrift/doc/specs/thrift-compact-protocol.md): varints,
 * zigzag integers, field headers with id deltas, lists, binary, and a skip
 * for whatever a reader does not need. Not here: writing, the binary
 * protocol, maps' contents (skipped only).
 *
 * The cursor is sticky on error: a read past the end, a length larger than
 * what is left, nesting deeper than THRIFT_DEPTH_MAX or an unknown type sets
 * `bad` and every later read returns 0, so a decoder reads a whole struct and
 * checks `bad` once. Nothing is allocated; binary values point into the
 * buffer. */
#ifndef CNET_PARQUET_THRIFT_H
#define CNET_PARQUET_THRIFT_H

#include <stddef.h>
#include <stdint.h>

#define THRIFT_DEPTH_MAX 32 /* nested structs/lists; deeper → bad */

enum {
    THRIFT_STOP = 0,
    THRIFT_TRUE = 1,
    THRIFT_FALSE = 2,
    THRIFT_BYTE = 3,
    THRIFT_I16 = 4,
    THRIFT_I32 = 5,
    THRIFT_I64 = 6,
    THRIFT_DOUBLE = 7,
    THRIFT_BINARY = 8,
    THRIFT_LIST = 9,
    THRIFT_SET = 10,
    THRIFT_MAP = 11,
    THRIFT_STRUCT = 12,
};

typedef struct thrift_in {
    const uint8_t *p, *end;
    int depth;
    const char *bad; /* NULL, or what went wrong first */
} thrift_in;

void thrift_init(thrift_in *t, const uint8_t *p, size_t n);
/* Enters a struct (tracks depth and the field-id base). */
void thrift_struct_begin(thrift_in *t, int16_t *last_id);
void thrift_struct_end(thrift_in *t);
/* Next field of the struct: 1 with *id and *type set, 0 at its stop (or when bad). */
int thrift_field(thrift_in *t, int16_t *last_id, int16_t *id, int *type);
int64_t thrift_int(thrift_in *t);                      /* i16 / i32 / i64 (zigzag varint) */
int thrift_bool(thrift_in *t, int type);               /* a bool field's value is its type */
const uint8_t *thrift_binary(thrift_in *t, size_t *n); /* borrowed from the buffer */
/* A list header: element count (checked against the bytes left), *elem its type. */
int64_t thrift_list(thrift_in *t, int *elem);
void thrift_skip(thrift_in *t, int type);

#endif
