/* The Thrift compact protocol reader (see parquet_thrift.h). Follows
 * thrift-compact-protocol.md: a field header byte holds the id delta in its
 * high nibble (0: an i16 id follows) and the type in its low nibble; a list
 * header holds the size in its high nibble (15: a varint size follows). */
#include "engine/parquet/parquet_thrift.h"

static void fail(thrift_in *t, const char *why) {
    if (!t->bad) t->bad = why;
    t->p = t->end;
}

void thrift_init(thrift_in *t, const uint8_t *p, size_t n) {
    t->p = p, t->end = p + n, t->depth = 0, t->bad = NULL;
}

static uint64_t varint(thrift_in *t) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (t->p >= t->end) {
            fail(t, "truncated varint");
            return 0;
        }
        uint8_t b = *t->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    fail(t, "varint longer than 10 bytes");
    return 0;
}

int64_t thrift_int(thrift_in *t) {
    uint64_t v = varint(t);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

void thrift_struct_begin(thrift_in *t, int16_t *last_id) {
    if (++t->depth > THRIFT_DEPTH_MAX) fail(t, "structures nested too deep");
    *last_id = 0;
}

void thrift_struct_end(thrift_in *t) { t->depth--; }

int thrift_field(thrift_in *t, int16_t *last_id, int16_t *id, int *type) {
    if (t->bad) return 0;
    if (t->p >= t->end) {
        fail(t, "truncated structure");
        return 0;
    }
    uint8_t b = *t->p++;
    *type = b & 0x0f;
    if (*type == THRIFT_STOP) return 0;
    int delta = b >> 4;
    *id = delta ? (int16_t)(*last_id + delta) : (int16_t)thrift_int(t);
    *last_id = *id;
    if (*type > THRIFT_STRUCT) {
        fail(t, "unknown field type");
        return 0;
    }
    return !t->bad;
}

int thrift_bool(thrift_in *t, int type) {
    if (type == THRIFT_TRUE) return 1;
    if (type == THRIFT_FALSE) return 0;
    if (t->p >= t->end) {
        fail(t, "truncated bool");
        return 0;
    }
    return *t->p++ == 1;
}

const uint8_t *thrift_binary(thrift_in *t, size_t *n) {
    uint64_t len = varint(t);
    if (len > (uint64_t)(t->end - t->p)) {
        fail(t, "a string is longer than the bytes left");
        *n = 0;
        return NULL;
    }
    const uint8_t *p = t->p;
    t->p += len;
    *n = (size_t)len;
    return p;
}

int64_t thrift_list(thrift_in *t, int *elem) {
    if (t->p >= t->end) {
        fail(t, "truncated list");
        return 0;
    }
    uint8_t b = *t->p++;
    *elem = b & 0x0f;
    uint64_t n = b >> 4;
    if (n == 15) n = varint(t);
    /* Every element takes at least one byte, except bools written as types
     * in a list (still one byte each in the compact protocol). */
    if (n > (uint64_t)(t->end - t->p)) {
        fail(t, "a list has more elements than bytes left");
        return 0;
    }
    return (int64_t)n;
}

void thrift_skip(thrift_in *t, int type) {
    if (t->bad) return;
    switch (type) {
    case THRIFT_TRUE:
    case THRIFT_FALSE:
        return;
    case THRIFT_BYTE:
        if (t->p >= t->end)
            fail(t, "truncated byte");
        else
            t->p++;
        return;
    case THRIFT_I16:
    case THRIFT_I32:
    case THRIFT_I64:
        varint(t);
        return;
    case THRIFT_DOUBLE:
        if (t->end - t->p < 8)
            fail(t, "truncated double");
        else
            t->p += 8;
        return;
    case THRIFT_BINARY: {
        size_t n;
        thrift_binary(t, &n);
        return;
    }
    case THRIFT_LIST:
    case THRIFT_SET: {
        int elem;
        int64_t n = thrift_list(t, &elem);
        if (++t->depth > THRIFT_DEPTH_MAX) fail(t, "structures nested too deep");
        for (int64_t i = 0; i < n && !t->bad; i++)
            thrift_skip(t, elem == THRIFT_TRUE || elem == THRIFT_FALSE ? THRIFT_BYTE : elem);
        t->depth--;
        return;
    }
    case THRIFT_MAP: {
        uint64_t n = varint(t);
        if (n == 0) return;
        if (t->p >= t->end || n > (uint64_t)(t->end - t->p)) {
            fail(t, "a map has more entries than bytes left");
            return;
        }
        uint8_t kv = *t->p++;
        if (++t->depth > THRIFT_DEPTH_MAX) fail(t, "structures nested too deep");
        for (uint64_t i = 0; i < n && !t->bad; i++)
            thrift_skip(t, kv >> 4), thrift_skip(t, kv & 15);
        t->depth--;
        return;
    }
    case THRIFT_STRUCT: {
        int16_t last, id;
        int ft;
        thrift_struct_begin(t, &last);
        while (thrift_field(t, &last, &id, &ft)) thrift_skip(t, ft);
        thrift_struct_end(t);
        return;
    }
    default:
        fail(t, "unknown type");
    }
}
