/* The Parquet reader against an independent writer: files written by
 * parquet-wasm (the Rust arrow/parquet crate) from apache-arrow tables in
 * every codec (none, snappy, gzip, zstd) x dictionary on/off x writer version
 * (data pages v1 / v2), several row groups and pages per column, with struct
 * image columns {bytes: real PNGs, path}, nullable strings, a list of
 * strings, INT32 / INT64 / FLOAT / DOUBLE / BOOLEAN with nulls: every value
 * of every row is compared with the writer's truth.json.
 * Then a corpus of broken files made from good ones: truncations, a lying
 * footer length, a lying schema, a byte-array length past the page, a
 * dictionary index past the dictionary, pages that inflate past their
 * declared size (zstd, snappy, gzip bombs) and pages declaring more than the
 * page limit; each is an error naming the file, never a crash; every
 * byte of a footer flipped in turn, and every byte of a whole uncompressed
 * file (run under make asan too). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/parquet/parquet.h"
#include "engine/parquet/parquet_impl.h"
#include "engine/parquet/parquet_thrift.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"
#include "tests/lib/lib_parquet.h"

static char tmp[512];
static json_t *truth;
static int generated;

static void test_generate(void) {
    CHECK(tmpdir_make(tmp, sizeof tmp, "cnet_parquet_") == 0, "tmpdir");
    CHECK(parquet_generate("matrix", tmp) == 0, "the writer ran");
    char p[700];
    snprintf(p, sizeof p, "%s/truth.json", tmp);
    json_error_t je;
    truth = json_load_file(p, 0, &je);
    CHECK(truth, "truth.json: %s", je.text);
    CHECK(json_array_size(json_object_get(truth, "files")) == 16, "16 files written");
    generated = 1;
}

/* The truth key of a leaf column path, and whether it is a byte array. */
static const char *truth_key(const char *path) {
    static const char *const map[][2] = {{"image.bytes", "image_bytes"},
                                         {"image.path", "image_path"},
                                         {"conditioning_image.bytes", "cond_bytes"},
                                         {"conditioning_image.path", "cond_path"},
                                         {"text", "text"},
                                         {"i32", "i32"},
                                         {"i64", "i64"},
                                         {"f32", "f32"},
                                         {"f64", "f64"},
                                         {"flag", "flag"},
                                         {"kind", "kind"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(path, map[i][0])) return map[i][1];
    if (!strncmp(path, "tags.", 5)) return "tags";
    return NULL;
}

/* Compares value k of row r with the JSON value j; 0 equal. */
static int same_value(const parquet_values *v, int64_t r, int64_t k, const char *key, json_t *j,
                      char *why, size_t n) {
    int64_t i = v->row_first[r] + k;
    if (!strcmp(key, "image_bytes") || !strcmp(key, "cond_bytes")) {
        size_t len, want_len;
        const uint8_t *got = parquet_row_bytes(v, r, k, &len);
        uint8_t *want = parquet_unhex(json_string_value(j), &want_len);
        int same = want && want_len == len && memcmp(got, want, len) == 0;
        free(want);
        if (!same) snprintf(why, n, "%zu bytes differ from the %zu written", len, want_len);
        return !same;
    }
    if (v->type == PARQUET_BYTE_ARRAY) {
        size_t len;
        const uint8_t *got = parquet_row_bytes(v, r, k, &len);
        const char *want = json_string_value(j);
        int same = want && strlen(want) == len && memcmp(got, want, len) == 0;
        if (!same) snprintf(why, n, "'%.*s' vs '%s'", (int)len, (const char *)got, want);
        return !same;
    }
    if (v->type == PARQUET_INT64 || v->type == PARQUET_INT32 || v->type == PARQUET_BOOLEAN) {
        long long want = v->type == PARQUET_INT64 ? strtoll(json_string_value(j), NULL, 10)
                         : json_is_boolean(j)     ? json_is_true(j)
                                                  : json_integer_value(j);
        if (v->ints[i] != want) snprintf(why, n, "%lld vs %lld", (long long)v->ints[i], want);
        return v->ints[i] != want;
    }
    double want = json_number_value(j);
    if (v->reals[i] != want) snprintf(why, n, "%.17g vs %.17g", v->reals[i], want);
    return v->reals[i] != want;
}

/* Every row of one column chunk against the truth rows from `first`. */
static int compare_chunk(const parquet_values *v, const char *path, json_t *rows, int64_t first) {
    const char *key = truth_key(path);
    if (!key) {
        printf("    column %s is not one the writer wrote\n", path);
        return 1;
    }
    for (int64_t r = 0; r < v->n_rows; r++) {
        json_t *j = json_object_get(json_array_get(rows, (size_t)(first + r)), key);
        int64_t want_n = json_is_null(j) ? 0 : json_is_array(j) ? (int64_t)json_array_size(j) : 1;
        if (parquet_row_count(v, r) != want_n) {
            printf("    %s row %lld: %lld values, %lld written\n", path, (long long)(first + r),
                   (long long)parquet_row_count(v, r), (long long)want_n);
            return 1;
        }
        for (int64_t k = 0; k < want_n; k++) {
            char why[256];
            json_t *jv = json_is_array(j) ? json_array_get(j, (size_t)k) : j;
            if (same_value(v, r, k, key, jv, why, sizeof why)) {
                printf("    %s row %lld value %lld: %s\n", path, (long long)(first + r),
                       (long long)k, why);
                return 1;
            }
        }
    }
    return 0;
}

/* The page types (bits 1 << type) and encodings of column col's chunks in
 * row group 0, walked here from the page headers, so the matrix is known to
 * hold what its names say. */
static void page_kinds(const char *path, int col, unsigned *types, unsigned *encodings) {
    parquet_file *pf;
    *types = *encodings = 0;
    if (parquet_open(&pf, path, NULL)) return;
    size_t n;
    uint8_t *all = (uint8_t *)file_read(path, &n);
    const pq_chunk *ch = &pf->groups[0].chunks[col];
    const uint8_t *p = all + ch->start, *end = p + ch->size;
    while (all && p < end) {
        thrift_in t;
        thrift_init(&t, p, (size_t)(end - p));
        int16_t last, id, last2, id2;
        int ft, ft2, type = -1;
        int64_t size = 0;
        thrift_struct_begin(&t, &last);
        while (thrift_field(&t, &last, &id, &ft)) {
            if (id == 1)
                type = (int)thrift_int(&t);
            else if (id == 3)
                size = thrift_int(&t);
            else if ((id == 5 || id == 8) && ft == THRIFT_STRUCT) {
                thrift_struct_begin(&t, &last2);
                while (thrift_field(&t, &last2, &id2, &ft2))
                    if ((id == 5 && id2 == 2) || (id == 8 && id2 == 4))
                        *encodings |= 1u << thrift_int(&t);
                    else
                        thrift_skip(&t, ft2);
                thrift_struct_end(&t);
            } else
                thrift_skip(&t, ft);
        }
        if (t.bad || type < 0) break;
        *types |= 1u << type;
        p = t.p + size;
    }
    free(all);
    parquet_close(pf);
}

static void test_matrix(void) {
    CHECK(generated, "no files");
    json_t *files = json_object_get(truth, "files"), *rows = json_object_get(truth, "rows");
    static const char *const fields[] = {
        "image", "conditioning_image", "text", "i32", "i64", "f32", "f64", "flag", "tags", "kind"};
    parquet_values v = {0};
    for (size_t f = 0; f < json_array_size(files); f++) {
        char p[800];
        snprintf(p, sizeof p, "%s/%s", tmp, json_string_value(json_array_get(files, f)));
        parquet_file *pf;
        cnet_error err = {0};
        int rc = parquet_open(&pf, p, &err);
        CHECK(rc == 0, "%s", err.msg);
        EXPECT(parquet_num_rows(pf) == (int64_t)json_array_size(rows), "%s rows", p);
        EXPECT(parquet_num_row_groups(pf) >= 3, "%s: several row groups", p);
        EXPECT(parquet_num_fields(pf) == 10, "%s: %d fields", p, parquet_num_fields(pf));
        for (int i = 0; i < 10 && i < parquet_num_fields(pf); i++)
            EXPECT(!strcmp(parquet_field_name(pf, i), fields[i]), "field %d is %s", i,
                   parquet_field_name(pf, i));
        EXPECT(parquet_column_find(pf, "image.bytes") == 0 &&
                   parquet_column_find(pf, "image.path") == 1,
               "%s: the image struct's leaves", p);
        unsigned types, encodings;
        page_kinds(p, 0, &types, &encodings);
        int v2 = strstr(p, "_v2") != NULL, dict = strstr(p, "dict1") != NULL;
        EXPECT(types == (1u << (v2 ? PQ_DATA_PAGE_V2 : PQ_DATA_PAGE) |
                         (dict ? 1u << PQ_DICTIONARY_PAGE : 0)),
               "%s: page types %#x", p, types);
        /* parquet-rs writes RLE_DICTIONARY in v1 pages too (older pyarrow
         * wrote PLAIN_DICTIONARY there: test_plain_dictionary). */
        EXPECT(encodings == (dict ? 1u << PQ_RLE_DICTIONARY : 1u << PQ_PLAIN), "%s: encodings %#x",
               p, encodings);
        int64_t first = 0;
        for (int g = 0; g < parquet_num_row_groups(pf); g++) {
            for (int c = 0; c < parquet_num_columns(pf); c++) {
                rc = parquet_read_column(pf, g, c, &v, &err);
                EXPECT(rc == 0, "%s", err.msg);
                if (rc) continue;
                EXPECT(v.n_rows == parquet_row_group_rows(pf, g), "rows of a group");
                EXPECT(compare_chunk(&v, parquet_column_path(pf, c), rows, first) == 0,
                       "%s row group %d column %s", p, g, parquet_column_path(pf, c));
            }
            first += parquet_row_group_rows(pf, g);
        }
        parquet_close(pf);
    }
    parquet_values_free(&v);
}

/* ---- the broken corpus ---------------------------------------------------- */

static uint8_t *good;
static size_t good_len;

static void load_good(const char *name) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    free(good);
    good = (uint8_t *)file_read(p, &good_len);
}

/* Writes buf as tmp/name, opens it and reads every column of every row
 * group; returns the first error code (0 if all read) with its message. */
static int read_all(const char *name, const uint8_t *buf, size_t n, cnet_error *err) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    if (file_write(p, buf, n)) return 1;
    parquet_file *pf;
    int rc = parquet_open(&pf, p, err);
    if (rc) return rc;
    parquet_values v = {0};
    for (int g = 0; !rc && g < parquet_num_row_groups(pf); g++)
        for (int c = 0; !rc && c < parquet_num_columns(pf); c++)
            rc = parquet_read_column(pf, g, c, &v, err);
    parquet_values_free(&v);
    parquet_close(pf);
    return rc;
}

#define EXPECT_BROKEN(name, buf, n, code, text)                                                    \
    do {                                                                                           \
        cnet_error e_ = {0};                                                                       \
        int rc_ = read_all(name, buf, n, &e_);                                                     \
        EXPECT(rc_ == (code) && strstr(e_.msg, name) && strstr(e_.msg, text),                      \
               "%s: rc %d, message '%s' (expected %d naming the file and '%s')", name, rc_,        \
               e_.msg, code, text);                                                                \
    } while (0)

/* Where the varint of field `id` of the struct at p[len] starts, and its
 * length; inside a nested struct field `outer` when outer > 0. */
static int find_varint(const uint8_t *p, size_t len, int outer, int id, size_t *at, size_t *vlen) {
    thrift_in t;
    thrift_init(&t, p, len);
    int16_t last, fid;
    int ft;
    thrift_struct_begin(&t, &last);
    while (thrift_field(&t, &last, &fid, &ft)) {
        if (outer > 0 && fid == outer && ft == THRIFT_STRUCT) {
            size_t off = (size_t)(t.p - p);
            if (find_varint(t.p, len - off, 0, id, at, vlen)) return -1;
            *at += off;
            return 0;
        }
        if (outer == 0 && fid == id) {
            *at = (size_t)(t.p - p);
            thrift_int(&t);
            *vlen = (size_t)(t.p - p) - *at;
            return t.bad ? -1 : 0;
        }
        thrift_skip(&t, ft);
    }
    return -1;
}

/* good with the varint at [at, at+vlen) replaced by zigzag(value); *n its size. */
static uint8_t *splice(size_t at, size_t vlen, int64_t value, size_t *n) {
    uint8_t enc[10];
    size_t k = 0;
    uint64_t z = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    do {
        enc[k] = (uint8_t)(z & 0x7f);
        z >>= 7;
        if (z) enc[k] |= 0x80;
        k++;
    } while (z);
    *n = good_len - vlen + k;
    uint8_t *out = malloc(*n);
    memcpy(out, good, at);
    memcpy(out + at, enc, k);
    memcpy(out + at + k, good + at + vlen, good_len - at - vlen);
    return out;
}

/* The first page header of column col (row group 0) of the good file. */
static size_t chunk_start(const char *name, int col) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    parquet_file *pf;
    if (parquet_open(&pf, p, NULL)) return 0;
    size_t at = (size_t)pf->groups[0].chunks[col].start;
    parquet_close(pf);
    return at;
}

static void test_truncated(void) {
    CHECK(generated, "no files");
    load_good("snappy_dict1_v1.parquet");
    CHECK(good, "good file");
    EXPECT_BROKEN("cut_tail.parquet", good, good_len - 3, CNET_EFORMAT, "PAR1");
    EXPECT_BROKEN("cut_half.parquet", good, good_len / 2, CNET_EFORMAT, "PAR1");
    EXPECT_BROKEN("tiny.parquet", good, 5, CNET_EFORMAT, "PAR1");
    /* The footer cut in its middle, its tail (length + magic) kept. */
    uint32_t flen = (uint32_t)good[good_len - 8] | (uint32_t)good[good_len - 7] << 8 |
                    (uint32_t)good[good_len - 6] << 16 | (uint32_t)good[good_len - 5] << 24;
    size_t keep = good_len - 8 - flen / 2;
    uint8_t *b = malloc(keep + 8);
    memcpy(b, good, keep);
    memcpy(b + keep, good + good_len - 8, 8);
    cnet_error e = {0};
    int rc = read_all("cut_footer.parquet", b, keep + 8, &e);
    EXPECT(rc < 0 && strstr(e.msg, "cut_footer.parquet"), "cut footer: rc %d '%s'", rc, e.msg);
    /* A footer length past the file, and past the limit. */
    memcpy(b, good, good_len - 8 < keep + 8 ? good_len - 8 : keep + 8);
    free(b);
    b = malloc(good_len);
    memcpy(b, good, good_len);
    uint32_t lie = (uint32_t)good_len;
    memcpy(b + good_len - 8, &lie, 4);
    EXPECT_BROKEN("footer_len.parquet", b, good_len, CNET_EFORMAT, "more than the file holds");
    lie = 0x7fffffff;
    memcpy(b + good_len - 8, &lie, 4);
    EXPECT_BROKEN("footer_huge.parquet", b, good_len, CNET_ELIMIT, "footer of");
    free(b);
}

static void test_lying_schema(void) {
    CHECK(generated, "no files");
    load_good("none_dict0_v1.parquet");
    uint32_t flen = (uint32_t)good[good_len - 8] | (uint32_t)good[good_len - 7] << 8 |
                    (uint32_t)good[good_len - 6] << 16 | (uint32_t)good[good_len - 5] << 24;
    size_t foot = good_len - 8 - flen;
    /* FileMetaData field 2 (schema) is a list of structs; the root is its
     * first element: find the root's num_children (field 5). */
    thrift_in t;
    thrift_init(&t, good + foot, flen);
    int16_t last, id;
    int ft, elem;
    thrift_struct_begin(&t, &last);
    while (thrift_field(&t, &last, &id, &ft) && !(id == 2 && ft == THRIFT_LIST))
        thrift_skip(&t, ft);
    CHECK(!t.bad, "footer walk");
    thrift_list(&t, &elem);
    size_t root = (size_t)(t.p - good);
    size_t at, vlen;
    CHECK(find_varint(good + root, good_len - root, 0, 5, &at, &vlen) == 0, "root num_children");
    for (int64_t lie = 0; lie <= 40; lie += 20) {
        size_t n;
        uint8_t *b = splice(root + at, vlen, lie == 0 ? 3 : lie, &n);
        uint32_t nl = flen + (uint32_t)(n - good_len);
        memcpy(b + n - 8, &nl, 4);
        cnet_error e = {0};
        int rc = read_all("schema_lie.parquet", b, n, &e);
        EXPECT(rc == CNET_EFORMAT && strstr(e.msg, "schema_lie.parquet") && strstr(e.msg, "schema"),
               "num_children %lld: rc %d '%s'", (long long)lie, rc, e.msg);
        free(b);
    }
}

static void test_lying_value_length(void) {
    CHECK(generated, "no files");
    load_good("none_dict0_v1.parquet");
    /* The first PNG of image.bytes: its 4-byte PLAIN length precedes it. */
    const uint8_t sig[4] = {0x89, 'P', 'N', 'G'};
    uint8_t *at = memmem(good, good_len, sig, 4);
    CHECK(at && at - good >= 4, "a PNG in the file");
    uint8_t *b = malloc(good_len);
    memcpy(b, good, good_len);
    uint32_t lie = 0xfffff000u;
    memcpy(b + (at - good) - 4, &lie, 4);
    EXPECT_BROKEN("value_len.parquet", b, good_len, CNET_EFORMAT, "claims");
    free(b);
}

static void test_bad_dictionary_index(void) {
    CHECK(generated, "no files");
    const char *name = "none_dict1_v2.parquet";
    load_good(name);
    /* Column "kind" (three distinct strings): its dictionary page's
     * num_values (DictionaryPageHeader field 1, PageHeader field 7) cut to 1. */
    size_t start = chunk_start(name, 11), at, vlen;
    CHECK(start, "chunk of kind");
    CHECK(find_varint(good + start, good_len - start, 7, 1, &at, &vlen) == 0, "dictionary header");
    size_t n;
    uint8_t *b = splice(start + at, vlen, 1, &n);
    CHECK(n == good_len, "same size");
    EXPECT_BROKEN("dict_index.parquet", b, n, CNET_EFORMAT, "dictionary index");
    free(b);
}

/* A v2 page of image.bytes whose level lengths (DataPageHeaderV2 fields 5
 * and 6, PageHeader field 8) are each 2^62: each is past the page, and
 * their int64 sum wraps negative, which a check of the sum alone lets by. */
static void test_v2_level_lengths(void) {
    CHECK(generated, "no files");
    const char *name = "none_dict0_v2.parquet";
    load_good(name);
    size_t start = chunk_start(name, 0), at, vlen, n;
    CHECK(start, "chunk of image.bytes");
    for (int field = 5; field <= 6; field++) {
        CHECK(find_varint(good + start, good_len - start, 8, field, &at, &vlen) == 0,
              "level length field %d", field);
        uint8_t *b = splice(start + at, vlen, (int64_t)1 << 62, &n);
        free(good);
        good = b, good_len = n;
    }
    EXPECT_BROKEN("v2_levels.parquet", good, good_len, CNET_EFORMAT, "level lengths");
}

/* Page 1 of image.bytes declaring a quarter of its size, then 1 GiB. */
static void bombs(const char *name, const char *label) {
    load_good(name);
    size_t start = chunk_start(name, 0), at, vlen;
    CHECK(start, "chunk of image.bytes");
    CHECK(find_varint(good + start, good_len - start, 0, 2, &at, &vlen) == 0, "page header");
    thrift_in t;
    thrift_init(&t, good + start + at, vlen);
    int64_t declared = thrift_int(&t);
    char bomb[64];
    snprintf(bomb, sizeof bomb, "%s_bomb.parquet", label);
    size_t n;
    uint8_t *b = splice(start + at, vlen, declared / 4, &n);
    cnet_error e = {0};
    int rc = read_all(bomb, b, n, &e);
    EXPECT(rc == CNET_EFORMAT && strstr(e.msg, bomb) && strstr(e.msg, "image.bytes"),
           "%s: rc %d '%s'", bomb, rc, e.msg);
    free(b);
    snprintf(bomb, sizeof bomb, "%s_huge.parquet", label);
    b = splice(start + at, vlen, 1 << 30, &n);
    EXPECT_BROKEN(bomb, b, n, CNET_ELIMIT, "more than");
    free(b);
}

static void test_bombs(void) {
    CHECK(generated, "no files");
    bombs("zstd_dict0_v1.parquet", "zstd");
    bombs("snappy_dict0_v1.parquet", "snappy");
    bombs("gzip_dict0_v1.parquet", "gzip");
    bombs("zstd_dict0_v2.parquet", "zstd_v2");
}

/* Every byte of the footer and of the first page header flipped in turn:
 * whatever happens, no crash (ASan checks the reads). */
static void test_flips(void) {
    CHECK(generated, "no files");
    load_good("gzip_dict1_v2.parquet");
    uint32_t flen = (uint32_t)good[good_len - 8] | (uint32_t)good[good_len - 7] << 8 |
                    (uint32_t)good[good_len - 6] << 16 | (uint32_t)good[good_len - 5] << 24;
    uint8_t *b = malloc(good_len);
    int errors = 0, tried = 0;
    for (size_t i = good_len - 8 - flen; i < good_len - 8; i += 3) {
        memcpy(b, good, good_len);
        b[i] ^= (uint8_t)(0x55 + i);
        cnet_error e = {0};
        errors += read_all("flip.parquet", b, good_len, &e) != 0;
        tried++;
    }
    for (size_t i = 4; i < 64; i++) {
        memcpy(b, good, good_len);
        b[i] ^= 0xff;
        cnet_error e = {0};
        errors += read_all("flip.parquet", b, good_len, &e) != 0;
        tried++;
    }
    free(b);
    printf("    %d of %d flipped files refused\n", errors, tried);
    EXPECT(errors > 0, "some flips are refused");
}

/* Every byte of an uncompressed dictionary file with v2 pages flipped in
 * turn, so flips land in page headers, levels, dictionary indices, value
 * lengths and values directly (a codec's checksum would hide them): read
 * or refused, never a crash or a read outside a buffer (make asan). */
static void test_flips_everywhere(void) {
    CHECK(generated, "no files");
    load_good("none_dict1_v2.parquet");
    CHECK(good, "good file");
    uint8_t *b = malloc(good_len);
    CHECK(b, "oom");
    int errors = 0;
    for (size_t i = 0; i < good_len; i++) {
        memcpy(b, good, good_len);
        b[i] ^= (uint8_t)(0x5a + i);
        cnet_error e = {0};
        int rc = read_all("flip_all.parquet", b, good_len, &e);
        if (rc) {
            errors++;
            EXPECT(strstr(e.msg, "flip_all.parquet"), "flip at %zu: '%s'", i, e.msg);
        }
    }
    free(b);
    printf("    %d of %zu flipped files refused\n", errors, good_len);
}

/* A v1 file whose data pages of column "kind" say PLAIN_DICTIONARY (the
 * same bytes as RLE_DICTIONARY, what older writers put in v1 pages): the
 * values still equal the truth. */
static void test_plain_dictionary(void) {
    CHECK(generated, "no files");
    const char *name = "none_dict1_v1.parquet";
    load_good(name);
    size_t start = chunk_start(name, 11), at, vlen;
    CHECK(start, "chunk of kind");
    /* Skip the dictionary page: header, then its compressed_page_size. */
    thrift_in t;
    thrift_init(&t, good + start, good_len - start);
    thrift_skip(&t, THRIFT_STRUCT);
    CHECK(!t.bad, "dictionary page header");
    size_t dict_hdr = (size_t)(t.p - good);
    CHECK(find_varint(good + start, good_len - start, 0, 3, &at, &vlen) == 0, "its size");
    thrift_init(&t, good + start + at, vlen);
    size_t page = dict_hdr + (size_t)thrift_int(&t);
    CHECK(find_varint(good + page, good_len - page, 5, 2, &at, &vlen) == 0, "data page encoding");
    thrift_init(&t, good + page + at, vlen);
    CHECK(thrift_int(&t) == PQ_RLE_DICTIONARY, "the writer's encoding");
    size_t n;
    uint8_t *b = splice(page + at, vlen, PQ_PLAIN_DICTIONARY, &n);
    char p[800];
    snprintf(p, sizeof p, "%s/plain_dict.parquet", tmp);
    CHECK(file_write(p, b, n) == 0, "write");
    free(b);
    parquet_file *pf;
    cnet_error err = {0};
    CHECK(parquet_open(&pf, p, &err) == 0, "%s", err.msg);
    parquet_values v = {0};
    int rc = parquet_read_column(pf, 0, 11, &v, &err);
    EXPECT(rc == 0, "%s", err.msg);
    if (!rc)
        EXPECT(compare_chunk(&v, "kind", json_object_get(truth, "rows"), 0) == 0, "kind values");
    parquet_values_free(&v);
    parquet_close(pf);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_generate);
    RUN(test_matrix);
    RUN(test_plain_dictionary);
    RUN(test_truncated);
    RUN(test_lying_schema);
    RUN(test_lying_value_length);
    RUN(test_bad_dictionary_index);
    RUN(test_v2_level_lengths);
    RUN(test_bombs);
    RUN(test_flips);
    RUN(test_flips_everywhere);
    free(good);
    json_decref(truth);
    if (tmp[0]) tmpdir_remove(tmp);
    return harness_done();
}
