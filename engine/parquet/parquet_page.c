/* One column chunk of one row group, read into per-row values: the chunk's
 * bytes are read whole (checked against PARQUET_CHUNK_MAX), then page by
 * page: the Thrift page header, decompression (parquet_codec.c) capped at
 * the declared size, repetition and definition levels (v1: each with a
 * 4-byte length, inside the compressed body; v2: before the body,
 * uncompressed, lengths in the header), then the present values: PLAIN, a
 * dictionary's indices (PLAIN_DICTIONARY / RLE_DICTIONARY, each checked
 * against the dictionary's size) or RLE booleans. Rows are cut where the
 * repetition level is 0 and must add up to the row group's row count.
 * Follows parquet-format's Encodings.md and README's "Nested Encoding".
 * Not here: the footer (parquet_meta.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/parquet/parquet_impl.h"
#include "engine/parquet/parquet_thrift.h"

typedef struct page_header {
    int type;
    int64_t uncompressed, compressed;
    int64_t num_values;
    int encoding;
    int64_t def_len, rep_len; /* v2 */
    int is_compressed;        /* v2 */
} page_header;

/* The reading context: what a message names, and the chunk's column. */
typedef struct ctx {
    char what[PARQUET_NAME_MAX + 1200];
    const pq_column *c;
    parquet_values *v;
    cnet_error *err;
} ctx;

static int grow(void **p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap) return 0;
    int64_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (!q) return -1;
    *p = q, *cap = n;
    return 0;
}

static int grow_bytes(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need) n *= 2;
    uint8_t *q = realloc(*p, n);
    if (!q) return -1;
    *p = q, *cap = n;
    return 0;
}

static int oom(ctx *x) { return cnet_fail(x->err, CNET_ENOMEM, "%s: out of memory", x->what); }

static void values_reset(parquet_values *v, int type) {
    v->type = (parquet_type)type;
    v->n_rows = v->n_values = 0;
    v->n_bytes = 0;
    v->n_levels = 0;
    v->has_dict = 0;
}

/* Room for n more values in v. */
static int values_room(parquet_values *v, int64_t n) {
    int64_t need = v->n_values + n;
    if (v->type == PARQUET_FLOAT || v->type == PARQUET_DOUBLE)
        return grow((void **)&v->reals, &v->cap_reals, need, sizeof *v->reals);
    if (v->type == PARQUET_BYTE_ARRAY || v->type == PARQUET_FIXED_LEN_BYTE_ARRAY) {
        if (grow((void **)&v->offsets, &v->cap_offsets, need + 1, sizeof *v->offsets)) return -1;
        v->offsets[0] = 0;
        return 0;
    }
    return grow((void **)&v->ints, &v->cap_ints, need, sizeof *v->ints);
}

static int bytes_add(ctx *x, parquet_values *v, const uint8_t *p, size_t n) {
    if ((int64_t)(v->n_bytes + n) > PARQUET_VALUE_BYTES_MAX)
        return cnet_fail(x->err, CNET_ELIMIT, "%s: more than %lld bytes of values", x->what,
                         (long long)PARQUET_VALUE_BYTES_MAX);
    if (grow_bytes(&v->bytes, &v->cap_bytes, v->n_bytes + n + 1)) return oom(x);
    if (n) memcpy(v->bytes + v->n_bytes, p, n);
    v->n_bytes += n;
    v->offsets[++v->n_values] = (int64_t)v->n_bytes;
    return 0;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* n PLAIN values from p[len] appended to v. */
static int plain_decode(ctx *x, parquet_values *v, const uint8_t *p, size_t len, int64_t n) {
    const pq_column *c = x->c;
    if (values_room(v, n)) return oom(x);
    const uint8_t *end = p + len;
    int type = c->type;
    if (type == PARQUET_BOOLEAN) {
        if ((uint64_t)n > (uint64_t)len * 8) goto short_data;
        for (int64_t i = 0; i < n; i++) v->ints[v->n_values++] = (p[i >> 3] >> (i & 7)) & 1;
        return 0;
    }
    if (type == PARQUET_INT32 || type == PARQUET_FLOAT) {
        if ((uint64_t)n > (uint64_t)len / 4) goto short_data;
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = le32(p + 4 * i);
            if (type == PARQUET_INT32) {
                v->ints[v->n_values++] = (int32_t)u;
            } else {
                float f;
                memcpy(&f, &u, 4);
                v->reals[v->n_values++] = f;
            }
        }
        return 0;
    }
    if (type == PARQUET_INT64 || type == PARQUET_DOUBLE) {
        if ((uint64_t)n > (uint64_t)len / 8) goto short_data;
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = (uint64_t)le32(p + 8 * i) | (uint64_t)le32(p + 8 * i + 4) << 32;
            if (type == PARQUET_INT64) {
                v->ints[v->n_values++] = (int64_t)u;
            } else {
                double d;
                memcpy(&d, &u, 8);
                v->reals[v->n_values++] = d;
            }
        }
        return 0;
    }
    if (type == PARQUET_FIXED_LEN_BYTE_ARRAY) {
        size_t w = (size_t)(c->type_length > 0 ? c->type_length : 0);
        if (w == 0 || (uint64_t)n > (uint64_t)len / w) goto short_data;
        for (int64_t i = 0; i < n; i++) {
            int rc = bytes_add(x, v, p + (size_t)i * w, w);
            if (rc) return rc;
        }
        return 0;
    }
    if (type == PARQUET_BYTE_ARRAY) {
        for (int64_t i = 0; i < n; i++) {
            if (end - p < 4) goto short_data;
            uint32_t l = le32(p);
            p += 4;
            if (l > (uint64_t)(end - p))
                return cnet_fail(x->err, CNET_EFORMAT,
                                 "%s: value %lld claims %u bytes, the page "
                                 "has %lld left",
                                 x->what, (long long)i, l, (long long)(end - p));
            int rc = bytes_add(x, v, p, l);
            if (rc) return rc;
            p += l;
        }
        return 0;
    }
    return cnet_fail(x->err, CNET_EFORMAT, "%s: physical type %s is not supported", x->what,
                     parquet_type_name(type));
short_data:
    return cnet_fail(x->err, CNET_EFORMAT, "%s: the page holds fewer than its %lld values", x->what,
                     (long long)n);
}

static int dict_decode(ctx *x, const page_header *h, const uint8_t *p, size_t len) {
    parquet_values *v = x->v;
    if (h->encoding != PQ_PLAIN && h->encoding != PQ_PLAIN_DICTIONARY)
        return cnet_fail(x->err, CNET_EFORMAT,
                         "%s: dictionary page in encoding %d (PLAIN "
                         "expected)",
                         x->what, h->encoding);
    if (v->has_dict)
        return cnet_fail(x->err, CNET_EFORMAT, "%s: a second dictionary page", x->what);
    if (h->num_values < 0 || h->num_values > PARQUET_VALUES_MAX)
        return cnet_fail(x->err, CNET_ELIMIT, "%s: a dictionary of %lld values (at most %d)",
                         x->what, (long long)h->num_values, PARQUET_VALUES_MAX);
    if (!v->dict && !(v->dict = calloc(1, sizeof *v->dict))) return oom(x);
    values_reset(v->dict, x->c->type);
    v->has_dict = 1;
    return plain_decode(x, v->dict, p, len, h->num_values);
}

/* n dictionary-coded values: a bit-width byte, then the hybrid indices. */
static int dict_values(ctx *x, const uint8_t *p, size_t len, int64_t n) {
    parquet_values *v = x->v, *d = v->dict;
    if (n == 0) return 0;
    if (!v->has_dict)
        return cnet_fail(x->err, CNET_EFORMAT,
                         "%s: dictionary-coded page without a dictionary "
                         "page",
                         x->what);
    if (len < 1) return cnet_fail(x->err, CNET_EFORMAT, "%s: empty dictionary-coded page", x->what);
    if (grow((void **)&v->idx, &v->cap_idx, n, sizeof *v->idx)) return oom(x);
    const char *why;
    if (pq_rle_decode(p + 1, len - 1, p[0], n, v->idx, &why))
        return cnet_fail(x->err, CNET_EFORMAT, "%s: dictionary indices: %s", x->what, why);
    if (values_room(v, n)) return oom(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (uint32_t)v->idx[i];
        if (k >= d->n_values)
            return cnet_fail(x->err, CNET_EFORMAT,
                             "%s: dictionary index %lld, the dictionary "
                             "has %lld values",
                             x->what, (long long)k, (long long)d->n_values);
        if (v->type == PARQUET_BYTE_ARRAY || v->type == PARQUET_FIXED_LEN_BYTE_ARRAY) {
            int rc = bytes_add(x, v, d->bytes + d->offsets[k],
                               (size_t)(d->offsets[k + 1] - d->offsets[k]));
            if (rc) return rc;
        } else if (v->type == PARQUET_FLOAT || v->type == PARQUET_DOUBLE) {
            v->reals[v->n_values++] = d->reals[k];
        } else {
            v->ints[v->n_values++] = d->ints[k];
        }
    }
    return 0;
}

/* n values of the page in encoding enc. */
static int values_decode(ctx *x, int enc, const uint8_t *p, size_t len, int64_t n) {
    if (enc == PQ_PLAIN) return plain_decode(x, x->v, p, len, n);
    if (enc == PQ_PLAIN_DICTIONARY || enc == PQ_RLE_DICTIONARY) return dict_values(x, p, len, n);
    if (enc == PQ_RLE && x->c->type == PARQUET_BOOLEAN) {
        parquet_values *v = x->v;
        if (len < 4 || le32(p) > len - 4)
            return cnet_fail(x->err, CNET_EFORMAT, "%s: RLE booleans' length is past the page",
                             x->what);
        if (grow((void **)&v->idx, &v->cap_idx, n, sizeof *v->idx) || values_room(v, n))
            return oom(x);
        const char *why;
        if (pq_rle_decode(p + 4, le32(p), 1, n, v->idx, &why))
            return cnet_fail(x->err, CNET_EFORMAT, "%s: RLE booleans: %s", x->what, why);
        for (int64_t i = 0; i < n; i++) v->ints[v->n_values++] = v->idx[i];
        return 0;
    }
    return cnet_fail(x->err, CNET_EFORMAT,
                     "%s: encoding %d is not supported (PLAIN, "
                     "PLAIN_DICTIONARY, RLE_DICTIONARY and RLE booleans are)",
                     x->what, enc);
}

/* Levels of n entries at levels[v->n_levels..]: the hybrid at p[len], or
 * all `fill` when max is 0. */
static int levels_decode(ctx *x, int32_t *levels, int max, const uint8_t *p, size_t len, int64_t n,
                         const char *kind) {
    if (max == 0) {
        for (int64_t i = 0; i < n; i++) levels[i] = 0;
        return 0;
    }
    const char *why;
    if (pq_rle_decode(p, len, pq_bit_width((uint64_t)max), n, levels, &why))
        return cnet_fail(x->err, CNET_EFORMAT, "%s: %s levels: %s", x->what, kind, why);
    for (int64_t i = 0; i < n; i++)
        if (levels[i] < 0 || levels[i] > max)
            return cnet_fail(x->err, CNET_EFORMAT, "%s: %s level %d above the column's %d", x->what,
                             kind, levels[i], max);
    return 0;
}

/* A v1 level block: 4-byte length, then the hybrid; advances *p. */
static int v1_levels(ctx *x, int32_t *levels, int max, const uint8_t **p, const uint8_t *end,
                     int64_t n, const char *kind) {
    if (max == 0) return levels_decode(x, levels, 0, NULL, 0, n, kind);
    if (end - *p < 4 || le32(*p) > (uint64_t)(end - *p - 4))
        return cnet_fail(x->err, CNET_EFORMAT, "%s: %s levels' length is past the page", x->what,
                         kind);
    size_t len = le32(*p);
    int rc = levels_decode(x, levels, max, *p + 4, len, n, kind);
    *p += 4 + len;
    return rc;
}

static int data_page(ctx *x, const page_header *h, const uint8_t *body, size_t body_len, int codec,
                     int64_t remaining) {
    parquet_values *v = x->v;
    const pq_column *c = x->c;
    int64_t n = h->num_values;
    if (n < 0 || n > remaining)
        return cnet_fail(x->err, CNET_EFORMAT,
                         "%s: a page holds %lld values, the chunk has %lld "
                         "left",
                         x->what, (long long)n, (long long)remaining);
    if (v->n_levels + n > v->cap_levels) { /* def and rep share one capacity */
        int64_t cap_def = v->cap_levels, cap_rep = v->cap_levels;
        if (grow((void **)&v->def, &cap_def, v->n_levels + n, sizeof *v->def) ||
            grow((void **)&v->rep, &cap_rep, v->n_levels + n, sizeof *v->rep))
            return oom(x);
        v->cap_levels = cap_def;
    }
    int32_t *def = v->def + v->n_levels, *rep = v->rep + v->n_levels;
    const uint8_t *p, *end;
    int rc;
    if (h->type == PQ_DATA_PAGE) {
        if (grow_bytes(&v->page, &v->cap_page, (size_t)h->uncompressed + 1)) return oom(x);
        rc =
            pq_decompress(codec, body, body_len, v->page, (size_t)h->uncompressed, x->what, x->err);
        if (rc) return rc;
        p = v->page, end = v->page + h->uncompressed;
        if ((rc = v1_levels(x, rep, c->max_rep, &p, end, n, "repetition")) ||
            (rc = v1_levels(x, def, c->max_def, &p, end, n, "definition")))
            return rc;
    } else {
        /* each length alone first: two i32 fields read as int64 could
         * make their sum wrap negative */
        if (h->rep_len < 0 || h->def_len < 0 || h->rep_len > (int64_t)body_len ||
            h->def_len > (int64_t)body_len - h->rep_len ||
            h->rep_len + h->def_len > h->uncompressed)
            return cnet_fail(x->err, CNET_EFORMAT,
                             "%s: v2 level lengths (%lld + %lld) are past "
                             "the page",
                             x->what, (long long)h->rep_len, (long long)h->def_len);
        if ((rc = levels_decode(x, rep, c->max_rep, body, (size_t)h->rep_len, n, "repetition")) ||
            (rc = levels_decode(x, def, c->max_def, body + h->rep_len, (size_t)h->def_len, n,
                                "definition")))
            return rc;
        size_t lv = (size_t)(h->rep_len + h->def_len), out = (size_t)h->uncompressed - lv;
        if (grow_bytes(&v->page, &v->cap_page, out + 1)) return oom(x);
        rc = pq_decompress(h->is_compressed ? codec : PQ_UNCOMPRESSED, body + lv, body_len - lv,
                           v->page, out, x->what, x->err);
        if (rc) return rc;
        p = v->page, end = v->page + out;
    }
    int64_t present = 0;
    for (int64_t i = 0; i < n; i++) present += def[i] == c->max_def;
    if (n > 0 && rep[0] != 0 && v->n_levels == 0)
        return cnet_fail(x->err, CNET_EFORMAT, "%s: the first value continues a row", x->what);
    v->n_levels += n;
    return values_decode(x, h->encoding, p, (size_t)(end - p), present);
}

static void read_data_header(thrift_in *t, page_header *h, int v2) {
    int16_t last, id;
    int ft;
    thrift_struct_begin(t, &last);
    while (thrift_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == THRIFT_I32)
            h->num_values = thrift_int(t);
        else if (!v2 && id == 2 && ft == THRIFT_I32)
            h->encoding = (int)thrift_int(t);
        else if (v2 && id == 4 && ft == THRIFT_I32)
            h->encoding = (int)thrift_int(t);
        else if (v2 && id == 5 && ft == THRIFT_I32)
            h->def_len = thrift_int(t);
        else if (v2 && id == 6 && ft == THRIFT_I32)
            h->rep_len = thrift_int(t);
        else if (v2 && id == 7 && (ft == THRIFT_TRUE || ft == THRIFT_FALSE))
            h->is_compressed = thrift_bool(t, ft);
        else
            thrift_skip(t, ft);
    }
    thrift_struct_end(t);
}

/* Decodes a page header at p[len]; its size in *used. */
static int read_page_header(ctx *x, const uint8_t *p, size_t len, page_header *h, size_t *used) {
    thrift_in t;
    thrift_init(&t, p, len);
    int16_t last, id;
    int ft;
    *h = (page_header){.type = -1,
                       .uncompressed = -1,
                       .compressed = -1,
                       .encoding = -1,
                       .num_values = -1,
                       .is_compressed = 1};
    thrift_struct_begin(&t, &last);
    while (thrift_field(&t, &last, &id, &ft)) {
        if (id == 1 && ft == THRIFT_I32)
            h->type = (int)thrift_int(&t);
        else if (id == 2 && ft == THRIFT_I32)
            h->uncompressed = thrift_int(&t);
        else if (id == 3 && ft == THRIFT_I32)
            h->compressed = thrift_int(&t);
        else if ((id == 5 || id == 7 || id == 8) && ft == THRIFT_STRUCT)
            read_data_header(&t, h, id == 8);
        else
            thrift_skip(&t, ft);
    }
    thrift_struct_end(&t);
    if (t.bad) return cnet_fail(x->err, CNET_EFORMAT, "%s: page header: %s", x->what, t.bad);
    if (h->compressed < 0 || h->uncompressed < 0 || h->type < 0)
        return cnet_fail(x->err, CNET_EFORMAT, "%s: a page header lacks its type or sizes",
                         x->what);
    if (h->uncompressed > PARQUET_PAGE_MAX)
        return cnet_fail(x->err, CNET_ELIMIT,
                         "%s: a page declares %lld uncompressed bytes, more "
                         "than %d",
                         x->what, (long long)h->uncompressed, PARQUET_PAGE_MAX);
    *used = (size_t)(t.p - p);
    if (h->compressed > (int64_t)(len - *used))
        return cnet_fail(x->err, CNET_EFORMAT,
                         "%s: a page claims %lld bytes, the chunk has %lld "
                         "left",
                         x->what, (long long)h->compressed, (long long)(len - *used));
    return 0;
}

/* Cuts rows where the repetition level is 0; values are entries at max_def. */
static int assemble_rows(ctx *x, int64_t num_rows) {
    parquet_values *v = x->v;
    const pq_column *c = x->c;
    if (grow((void **)&v->row_first, &v->cap_rows, num_rows + 1, sizeof *v->row_first))
        return oom(x);
    int64_t r = 0, k = 0;
    for (int64_t i = 0; i < v->n_levels; i++) {
        if (v->rep[i] == 0) {
            if (r == num_rows) break;
            v->row_first[r++] = k;
        }
        k += v->def[i] == c->max_def;
    }
    if (r != num_rows || k != v->n_values)
        return cnet_fail(x->err, CNET_EFORMAT,
                         "%s: the pages hold %lld rows, the row group "
                         "%lld",
                         x->what, (long long)r, (long long)num_rows);
    v->row_first[r] = k;
    v->n_rows = r;
    return 0;
}

int parquet_read_column(parquet_file *pf, int rg, int col, parquet_values *v, cnet_error *err) {
    if (rg < 0 || rg >= pf->n_groups || col < 0 || col >= pf->n_columns)
        return cnet_fail(err, CNET_EINVAL, "%s: no row group %d / column %d", pf->path, rg, col);
    ctx x = {.c = &pf->columns[col], .v = v, .err = err};
    snprintf(x.what, sizeof x.what, "%s: row group %d, column %s", pf->path, rg, x.c->path);
    const pq_chunk *ch = &pf->groups[rg].chunks[col];
    values_reset(v, x.c->type);
    if (x.c->type == PARQUET_INT96)
        return cnet_fail(err, CNET_EFORMAT, "%s: physical type INT96 is not supported", x.what);
    if (ch->size > PARQUET_CHUNK_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: %lld compressed bytes, more than %lld", x.what,
                         (long long)ch->size, (long long)PARQUET_CHUNK_MAX);
    if (ch->num_values > PARQUET_VALUES_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: %lld values, more than %d", x.what,
                         (long long)ch->num_values, PARQUET_VALUES_MAX);
    if (grow_bytes(&v->raw, &v->cap_raw, (size_t)ch->size)) return oom(&x);
    size_t got = 0;
    while (got < (size_t)ch->size) {
        ssize_t r =
            pread(pf->fd, v->raw + got, (size_t)ch->size - got, (off_t)ch->start + (off_t)got);
        if (r <= 0) return cnet_fail(err, CNET_EIO, "%s: short read", x.what);
        got += (size_t)r;
    }
    size_t pos = 0, size = (size_t)ch->size;
    while (v->n_levels < ch->num_values) {
        if (pos >= size)
            return cnet_fail(err, CNET_EFORMAT, "%s: the pages end after %lld of %lld values",
                             x.what, (long long)v->n_levels, (long long)ch->num_values);
        page_header h;
        size_t used = 0;
        int rc = read_page_header(&x, v->raw + pos, size - pos, &h, &used);
        if (rc) return rc;
        const uint8_t *body = v->raw + pos + used;
        pos += used + (size_t)h.compressed;
        if (h.type == PQ_DICTIONARY_PAGE) {
            if (grow_bytes(&v->page, &v->cap_page, (size_t)h.uncompressed + 1)) return oom(&x);
            rc = pq_decompress(ch->codec, body, (size_t)h.compressed, v->page,
                               (size_t)h.uncompressed, x.what, err);
            if (!rc) rc = dict_decode(&x, &h, v->page, (size_t)h.uncompressed);
        } else if (h.type == PQ_DATA_PAGE || h.type == PQ_DATA_PAGE_V2) {
            rc = data_page(&x, &h, body, (size_t)h.compressed, ch->codec,
                           ch->num_values - v->n_levels);
        }
        if (rc) return rc;
    }
    return assemble_rows(&x, pf->groups[rg].num_rows);
}

void parquet_values_free(parquet_values *v) {
    if (v->dict) parquet_values_free(v->dict), free(v->dict);
    free(v->row_first), free(v->ints), free(v->reals), free(v->offsets), free(v->bytes);
    free(v->raw), free(v->page), free(v->def), free(v->rep), free(v->idx);
    memset(v, 0, sizeof *v);
}
