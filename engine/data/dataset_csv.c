/* imagefolder's metadata.csv (what HF's imagefolder loader also accepts):
 * RFC 4180 CSV, the first record naming the columns; each later record
 * becomes a JSON object of strings {column: cell} handed to the same checks
 * as a metadata.jsonl line (dataset_index.c), so both indexes mean the same.
 * Quoted cells may hold commas, doubled quotes and line breaks; CRLF or LF
 * line ends; blank lines are skipped. A record with more cells than the
 * header, an unterminated quote or a repeated column name is CNET_EFORMAT
 * naming the file and line. Not here: lists of captions (CSV has no lists). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset_impl.h"

#define CSV_COLUMNS_MAX 1024 /* columns of the header → CNET_ELIMIT */

/* One record's cells starting at *p (cells NUL-terminated in place, quotes
 * undone); *p moves past the record's line end. -1 on an open quote. */
static int parse_record(char **p, char **cells, int max, int *n, int *lines) {
    char *s = *p;
    *n = 0;
    for (;;) {
        char *out = s, *cell = s;
        if (*s == '"') {
            s++;
            for (;;) {
                if (!*s) return -1;
                if (*s == '"' && s[1] == '"') {
                    *out++ = '"', s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    if (*s == '\n') (*lines)++;
                    *out++ = *s++;
                }
            }
            while (*s && *s != ',' && *s != '\n' && *s != '\r') *out++ = *s++;
        } else {
            while (*s && *s != ',' && *s != '\n' && *s != '\r') out++, s++;
        }
        char end = *s;
        if (*n < max) cells[*n] = cell;
        (*n)++;
        if (end == '\r' && s[1] == '\n') s++;
        if (end) s++;
        *out = '\0';
        if (end != ',') break;
    }
    (*lines)++;
    *p = s;
    return 0;
}

int dataset_csv_parse(char *text, const char *path, dataset_row_fn on_row, void *ctx,
                      cnet_error *err) {
    char *header[CSV_COLUMNS_MAX], *cells[CSV_COLUMNS_MAX];
    int n_cols = 0, line = 1, rc = 0;
    char *p = text;
    if (!strncmp(p, "\xef\xbb\xbf", 3)) p += 3; /* a UTF-8 byte order mark */
    int lines = 0;
    if (parse_record(&p, header, CSV_COLUMNS_MAX, &n_cols, &lines))
        return cnet_fail(err, CNET_EFORMAT, "%s line 1: a quote is never closed", path);
    if (n_cols > CSV_COLUMNS_MAX)
        return cnet_fail(err, CNET_ELIMIT, "%s: more than %d columns", path, CSV_COLUMNS_MAX);
    for (int i = 0; i < n_cols; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(header[i], header[j]))
                return cnet_fail(err, CNET_EFORMAT, "%s line 1: column %s is named twice", path,
                                 header[i]);
    line += lines;
    while (!rc && *p) {
        int start = line, n;
        lines = 0;
        if (parse_record(&p, cells, CSV_COLUMNS_MAX, &n, &lines))
            return cnet_fail(err, CNET_EFORMAT, "%s line %d: a quote is never closed", path, start);
        line += lines;
        if (n == 1 && strspn(cells[0], " \t") == strlen(cells[0])) continue; /* blank line */
        if (n > n_cols)
            return cnet_fail(err, CNET_EFORMAT, "%s line %d: %d cells, the header names %d", path,
                             start, n, n_cols);
        json_t *o = json_object();
        if (!o) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
        for (int i = 0; !rc && i < n; i++)
            if (json_object_set_new(o, header[i], json_string(cells[i])))
                rc = cnet_fail(err, CNET_EFORMAT,
                               "%s line %d: a cell or column name is not "
                               "UTF-8",
                               path, start);
        if (!rc) rc = on_row(ctx, o, start, err);
        json_decref(o);
    }
    return rc;
}
