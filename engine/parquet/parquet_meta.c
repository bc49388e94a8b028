/* Opening a Parquet file: the magic "PAR1" at both ends, the 4-byte footer
 * length, FileMetaData (parquet.thrift) decoded into the leaf columns (path,
 * physical type, max definition and repetition levels from the schema
 * tree's repetition types), the top-level field names and each row group's
 * column chunks (codec, value count, byte range checked against the file).
 * Not here: pages (parquet_page.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/parquet/parquet_impl.h"
#include "engine/parquet/parquet_thrift.h"

static const char *const type_names[] = {"BOOLEAN", "INT32",  "INT64",      "INT96",
                                         "FLOAT",   "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"};

const char *parquet_type_name(int type) {
    return type >= 0 && type < 8 ? type_names[type] : "unknown";
}

/* A schema element as the footer lists them (pre-order, num_children). */
typedef struct pq_element {
    int type, type_length, repetition, num_children;
    int is_string; /* converted type UTF8, or logical type STRING */
    const uint8_t *name;
    size_t name_len;
} pq_element;

enum { REP_REQUIRED = 0, REP_OPTIONAL = 1, REP_REPEATED = 2 };

/* A LogicalType union: is its member STRING (field 1)? */
static int logical_is_string(thrift_in *t) {
    int16_t last, id;
    int ft, is = 0;
    thrift_struct_begin(t, &last);
    while (thrift_field(t, &last, &id, &ft)) {
        is |= id == 1;
        thrift_skip(t, ft);
    }
    thrift_struct_end(t);
    return is;
}

static void read_element(thrift_in *t, pq_element *e) {
    int16_t last, id;
    int ft;
    *e = (pq_element){.type = -1, .repetition = REP_REQUIRED};
    thrift_struct_begin(t, &last);
    while (thrift_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == THRIFT_I32)
            e->type = (int)thrift_int(t);
        else if (id == 2 && ft == THRIFT_I32)
            e->type_length = (int)thrift_int(t);
        else if (id == 3 && ft == THRIFT_I32)
            e->repetition = (int)thrift_int(t);
        else if (id == 4 && ft == THRIFT_BINARY)
            e->name = thrift_binary(t, &e->name_len);
        else if (id == 5 && ft == THRIFT_I32)
            e->num_children = (int)thrift_int(t);
        else if (id == 6 && ft == THRIFT_I32)
            e->is_string |= thrift_int(t) == 0; /* ConvertedType UTF8 */
        else if (id == 10 && ft == THRIFT_STRUCT)
            e->is_string |= logical_is_string(t);
        else
            thrift_skip(t, ft);
    }
    thrift_struct_end(t);
}

typedef struct walk {
    parquet_file *pf;
    const pq_element *el;
    int n, next;
    cnet_error *err;
} walk;

/* Walks the subtree at w->next (depth: below the root), appending leaves. */
static int walk_node(walk *w, int depth, const char *prefix, int def, int rep, int field) {
    parquet_file *pf = w->pf;
    if (w->next >= w->n)
        return cnet_fail(w->err, CNET_EFORMAT,
                         "%s: the schema lists fewer elements than its "
                         "num_children say",
                         pf->path);
    if (depth > PARQUET_DEPTH_MAX)
        return cnet_fail(w->err, CNET_EFORMAT, "%s: the schema nests deeper than %d levels",
                         pf->path, PARQUET_DEPTH_MAX);
    const pq_element *e = &w->el[w->next++];
    if (e->repetition < 0 || e->repetition > 2 || e->num_children < 0)
        return cnet_fail(w->err, CNET_EFORMAT, "%s: schema element %d is malformed", pf->path,
                         w->next - 1);
    char path[PARQUET_NAME_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s%s%.*s", prefix, *prefix ? "." : "",
                         (int)(e->name_len < PARQUET_NAME_MAX ? e->name_len : PARQUET_NAME_MAX),
                         e->name ? (const char *)e->name : "") >= sizeof path)
        return cnet_fail(w->err, CNET_ELIMIT, "%s: a column path is longer than %d bytes", pf->path,
                         PARQUET_NAME_MAX - 1);
    if (!e->name_len || memchr(e->name, '\0', e->name_len))
        return cnet_fail(w->err, CNET_EFORMAT, "%s: schema element %d has no name", pf->path,
                         w->next - 1);
    def += e->repetition != REP_REQUIRED;
    rep += e->repetition == REP_REPEATED;
    if (depth == 1) {
        field = pf->n_fields++;
        snprintf(pf->fields[field], PARQUET_NAME_MAX, "%s", path);
    }
    if (e->num_children == 0) {
        if (e->type < 0 || e->type > 7)
            return cnet_fail(w->err, CNET_EFORMAT, "%s: column %s has no physical type", pf->path,
                             path);
        pq_column *c = &pf->columns[pf->n_columns++];
        snprintf(c->path, sizeof c->path, "%s", path);
        c->type = e->type, c->type_length = e->type_length;
        c->max_def = def, c->max_rep = rep, c->field = field;
        c->is_string = e->is_string;
        return 0;
    }
    for (int i = 0; i < e->num_children; i++) {
        int rc = walk_node(w, depth + 1, path, def, rep, field);
        if (rc) return rc;
    }
    return 0;
}

static int read_schema(parquet_file *pf, thrift_in *t, cnet_error *err) {
    int elem;
    int64_t n = thrift_list(t, &elem);
    if (t->bad || elem != THRIFT_STRUCT || n < 1)
        return cnet_fail(err, CNET_EFORMAT, "%s: the footer's schema is malformed", pf->path);
    if (n > PARQUET_SCHEMA_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: the schema has %lld elements, more than %d",
                         pf->path, (long long)n, PARQUET_SCHEMA_MAX);
    pq_element *el = calloc((size_t)n, sizeof *el);
    pf->columns = calloc((size_t)n, sizeof *pf->columns);
    pf->fields = calloc((size_t)n, sizeof *pf->fields);
    if (!el || !pf->columns || !pf->fields) {
        free(el);
        return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", pf->path);
    }
    for (int64_t i = 0; i < n; i++) read_element(t, &el[i]);
    int rc = 0;
    if (t->bad) {
        rc = cnet_fail(err, CNET_EFORMAT, "%s: footer schema: %s", pf->path, t->bad);
    } else {
        walk w = {pf, el, (int)n, 1, err};
        for (int i = 0; !rc && i < el[0].num_children; i++) rc = walk_node(&w, 1, "", 0, 0, -1);
        if (!rc && w.next != n)
            rc = cnet_fail(err, CNET_EFORMAT, "%s: the schema lists %lld elements, its tree %d",
                           pf->path, (long long)n, w.next);
        if (!rc && pf->n_columns == 0)
            rc = cnet_fail(err, CNET_EFORMAT, "%s: the schema has no columns", pf->path);
    }
    free(el);
    return rc;
}

static void read_column_meta(thrift_in *t, pq_chunk *c, int64_t *data_off, int64_t *dict_off,
                             int *type) {
    int16_t last, id;
    int ft;
    thrift_struct_begin(t, &last);
    while (thrift_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == THRIFT_I32)
            *type = (int)thrift_int(t);
        else if (id == 4 && ft == THRIFT_I32)
            c->codec = (int)thrift_int(t);
        else if (id == 5 && ft == THRIFT_I64)
            c->num_values = thrift_int(t);
        else if (id == 7 && ft == THRIFT_I64)
            c->size = thrift_int(t);
        else if (id == 9 && ft == THRIFT_I64)
            *data_off = thrift_int(t);
        else if (id == 11 && ft == THRIFT_I64)
            *dict_off = thrift_int(t);
        else
            thrift_skip(t, ft);
    }
    thrift_struct_end(t);
}

static int read_chunk(parquet_file *pf, thrift_in *t, int g, int i, pq_chunk *c, cnet_error *err) {
    int16_t last, id;
    int ft, type = -1, has_meta = 0, external = 0;
    int64_t data_off = -1, dict_off = -1;
    thrift_struct_begin(t, &last);
    while (thrift_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == THRIFT_BINARY) {
            size_t n;
            thrift_binary(t, &n);
            external = n > 0;
        } else if (id == 3 && ft == THRIFT_STRUCT) {
            read_column_meta(t, c, &data_off, &dict_off, &type);
            has_meta = 1;
        } else {
            thrift_skip(t, ft);
        }
    }
    thrift_struct_end(t);
    if (t->bad) return cnet_fail(err, CNET_EFORMAT, "%s: footer row groups: %s", pf->path, t->bad);
    const char *col = i < pf->n_columns ? pf->columns[i].path : "?";
    if (external)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: row group %d, column %s lives in another file "
                         "(not supported)",
                         pf->path, g, col);
    if (!has_meta || i >= pf->n_columns || type != pf->columns[i].type)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: row group %d, column %s: metadata missing or "
                         "not matching the schema",
                         pf->path, g, col);
    c->start = dict_off > 0 && dict_off < data_off ? dict_off : data_off;
    if (c->start < 4 || c->size <= 0 || c->num_values < 0 || c->start > pf->file_size - 8 ||
        c->size > pf->file_size - 8 - c->start)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: row group %d, column %s: bytes %lld..+%lld are "
                         "outside the file's data (%lld bytes)",
                         pf->path, g, col, (long long)c->start, (long long)c->size,
                         (long long)pf->file_size);
    return 0;
}

static int read_row_group(parquet_file *pf, thrift_in *t, int g, cnet_error *err) {
    pq_row_group *rg = &pf->groups[g];
    int16_t last, id;
    int ft, n_chunks = -1, rc = 0;
    rg->num_rows = -1;
    thrift_struct_begin(t, &last);
    while (!rc && thrift_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == THRIFT_LIST && !rg->chunks) {
            int elem;
            int64_t n = thrift_list(t, &elem);
            if (t->bad || elem != THRIFT_STRUCT || n != pf->n_columns) {
                rc = cnet_fail(err, CNET_EFORMAT,
                               "%s: row group %d has %lld column chunks, the "
                               "schema %d columns",
                               pf->path, g, (long long)n, pf->n_columns);
                break;
            }
            n_chunks = (int)n;
            if (!(rg->chunks = calloc((size_t)n, sizeof *rg->chunks)))
                return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", pf->path);
            for (int i = 0; !rc && i < n_chunks; i++)
                rc = read_chunk(pf, t, g, i, &rg->chunks[i], err);
        } else if (id == 3 && ft == THRIFT_I64) {
            rg->num_rows = thrift_int(t);
        } else {
            thrift_skip(t, ft);
        }
    }
    thrift_struct_end(t);
    if (rc) return rc;
    if (t->bad)
        return cnet_fail(err, CNET_EFORMAT, "%s: footer row group %d: %s", pf->path, g, t->bad);
    if (n_chunks < 0 || rg->num_rows < 0 || rg->num_rows > PARQUET_VALUES_MAX)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: row group %d lacks its columns or row count (or "
                         "counts more than %d rows)",
                         pf->path, g, PARQUET_VALUES_MAX);
    return 0;
}

static int read_footer(parquet_file *pf, const uint8_t *p, size_t n, cnet_error *err) {
    thrift_in t;
    thrift_init(&t, p, n);
    int16_t last, id;
    int ft, rc = 0, have_schema = 0, have_groups = 0;
    thrift_struct_begin(&t, &last);
    while (!rc && thrift_field(&t, &last, &id, &ft)) {
        if (id == 2 && ft == THRIFT_LIST && !have_schema) {
            rc = read_schema(pf, &t, err);
            have_schema = 1;
        } else if (id == 3 && ft == THRIFT_I64) {
            pf->num_rows = thrift_int(&t);
        } else if (id == 4 && ft == THRIFT_LIST && have_schema && !have_groups) {
            int elem;
            int64_t ng = thrift_list(&t, &elem);
            have_groups = 1;
            if (t.bad || (ng > 0 && elem != THRIFT_STRUCT)) break;
            if (ng > PARQUET_ROW_GROUPS_MAX)
                return cnet_fail(err, CNET_ELIMIT, "%s: %lld row groups, more than %d", pf->path,
                                 (long long)ng, PARQUET_ROW_GROUPS_MAX);
            if (!(pf->groups = calloc((size_t)(ng ? ng : 1), sizeof *pf->groups)))
                return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", pf->path);
            pf->n_groups = (int)ng;
            for (int g = 0; !rc && g < pf->n_groups; g++) rc = read_row_group(pf, &t, g, err);
        } else {
            thrift_skip(&t, ft);
        }
    }
    if (rc) return rc;
    if (t.bad) return cnet_fail(err, CNET_EFORMAT, "%s: footer: %s", pf->path, t.bad);
    if (!have_schema || !have_groups)
        return cnet_fail(err, CNET_EFORMAT, "%s: the footer has no %s", pf->path,
                         have_schema ? "row groups" : "schema");
    int64_t sum = 0;
    for (int g = 0; g < pf->n_groups; g++) sum += pf->groups[g].num_rows;
    if (sum != pf->num_rows)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: the row groups hold %lld rows, the footer says "
                         "%lld",
                         pf->path, (long long)sum, (long long)pf->num_rows);
    return 0;
}

static int pread_all(int fd, void *buf, size_t n, int64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + (int64_t)got));
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

int parquet_open(parquet_file **out, const char *path, cnet_error *err) {
    *out = NULL;
    parquet_file *pf = calloc(1, sizeof *pf);
    if (!pf) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    pf->fd = -1;
    if ((size_t)snprintf(pf->path, sizeof pf->path, "%s", path) >= sizeof pf->path) {
        free(pf);
        return cnet_fail(err, CNET_ELIMIT, "parquet path longer than 1023 bytes");
    }
    int rc = 0;
    uint8_t *footer = NULL;
    struct stat st;
    pf->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (pf->fd < 0) {
        rc = cnet_fail(err, errno == ENOENT ? CNET_ENOTFOUND : CNET_EIO, "%s: %s", path,
                       strerror(errno));
        goto done;
    }
    if (fstat(pf->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cnet_fail(err, CNET_EIO, "%s: not a regular file", path);
        goto done;
    }
    pf->file_size = st.st_size;
    uint8_t head[4], tail[8];
    if (pf->file_size < 12 || pread_all(pf->fd, head, 4, 0) ||
        pread_all(pf->fd, tail, 8, pf->file_size - 8) || memcmp(head, "PAR1", 4) ||
        memcmp(tail + 4, "PAR1", 4)) {
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: not a Parquet file (no PAR1 magic at both ends; "
                       "truncated?)",
                       path);
        goto done;
    }
    uint32_t len = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 |
                   (uint32_t)tail[3] << 24;
    if (len > PARQUET_FOOTER_MAX) {
        rc = cnet_fail(err, CNET_ELIMIT, "%s: footer of %u bytes, more than %d", path, len,
                       PARQUET_FOOTER_MAX);
        goto done;
    }
    if ((int64_t)len > pf->file_size - 12) {
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: footer length %u is more than the file holds "
                       "(%lld bytes; truncated?)",
                       path, len, (long long)pf->file_size);
        goto done;
    }
    if (!(footer = malloc(len ? len : 1))) {
        rc = cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (pread_all(pf->fd, footer, len, pf->file_size - 8 - len)) {
        rc = cnet_fail(err, CNET_EIO, "%s: cannot read the footer", path);
        goto done;
    }
    rc = read_footer(pf, footer, len, err);
done:
    free(footer);
    if (rc)
        parquet_close(pf);
    else
        *out = pf;
    return rc;
}

void parquet_close(parquet_file *pf) {
    if (!pf) return;
    if (pf->fd >= 0) close(pf->fd);
    for (int g = 0; g < pf->n_groups; g++) free(pf->groups[g].chunks);
    free(pf->groups);
    free(pf->columns);
    free(pf->fields);
    free(pf);
}

const char *parquet_path(const parquet_file *pf) { return pf->path; }
int64_t parquet_num_rows(const parquet_file *pf) { return pf->num_rows; }
int parquet_num_row_groups(const parquet_file *pf) { return pf->n_groups; }
int64_t parquet_row_group_rows(const parquet_file *pf, int rg) { return pf->groups[rg].num_rows; }
int parquet_num_fields(const parquet_file *pf) { return pf->n_fields; }
const char *parquet_field_name(const parquet_file *pf, int field) { return pf->fields[field]; }
int parquet_num_columns(const parquet_file *pf) { return pf->n_columns; }
const char *parquet_column_path(const parquet_file *pf, int col) { return pf->columns[col].path; }
parquet_type parquet_column_type(const parquet_file *pf, int col) {
    return (parquet_type)pf->columns[col].type;
}
int parquet_column_field(const parquet_file *pf, int col) { return pf->columns[col].field; }
int parquet_column_max_rep(const parquet_file *pf, int col) { return pf->columns[col].max_rep; }
int parquet_column_is_string(const parquet_file *pf, int col) { return pf->columns[col].is_string; }

int parquet_column_find(const parquet_file *pf, const char *path) {
    for (int i = 0; i < pf->n_columns; i++)
        if (strcmp(pf->columns[i].path, path) == 0) return i;
    return -1;
}
