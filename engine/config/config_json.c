/* Typed, range-checked reads of config.json fields with messages that name
 * the file and the field (see config_json.h). Not a general JSON layer: only
 * what diffusers and transformers configs contain. */
#include "engine/config/config_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/config/config.h"

/* Python's json module writes float('inf') / float('nan') as the bare words
 * Infinity, -Infinity and NaN (diffusers saves DPMSolver's lambda_min_clipped
 * = -inf that way), which strict JSON parsers refuse. Outside strings they
 * are rewritten to null, so the reader applies the field's default (-inf for
 * lambda_min_clipped). Returns a new NUL-terminated buffer (caller frees). */
static char *python_constants_to_null(const char *s, size_t n, size_t *out_len) {
    static const char *const words[] = {"-Infinity", "Infinity", "NaN"};
    char *d = malloc(2 * n + 1); /* "NaN" -> "null" grows by a third at most */
    if (!d) return NULL;
    size_t out = 0;
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        size_t w = 0;
        if (in_string) {
            if (s[i] == '\\' && i + 1 < n)
                d[out++] = s[i++];
            else if (s[i] == '"')
                in_string = false;
        } else if (s[i] == '"') {
            in_string = true;
        } else {
            for (int k = 0; k < 3 && !w; k++)
                if (strncmp(s + i, words[k], strlen(words[k])) == 0) w = strlen(words[k]);
        }
        if (w) {
            memcpy(d + out, "null", 4);
            out += 4;
            i += w;
        } else {
            d[out++] = s[i++];
        }
    }
    d[out] = '\0';
    *out_len = out;
    return d;
}

/* The JSON type of v as a config error names it. */
static const char *cfg_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "list";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

int cfg_open(cfg_file *f, const char *path, cnet_error *err) {
    memset(f, 0, sizeof *f);
    f->path = path;
    f->err = err;
    struct stat st;
    if (stat(path, &st) != 0)
        return cnet_fail(err, CNET_EIO, "%s: cannot read the config: %s", path, strerror(errno));
    if ((size_t)st.st_size > CNET_CONFIG_MAX_BYTES)
        return cnet_fail(err, CNET_ELIMIT, "%s: config is %lld bytes, over the limit of %u", path,
                         (long long)st.st_size, CNET_CONFIG_MAX_BYTES);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cnet_fail(err, CNET_EIO, "%s: cannot read the config: %s", path, strerror(errno));
    size_t size = (size_t)st.st_size;
    char *text = malloc(size + 1);
    size_t got = text ? fread(text, 1, size, fp) : 0;
    fclose(fp);
    if (!text || got != size) {
        free(text);
        return cnet_fail(err, text ? CNET_EIO : CNET_ENOMEM, "%s: cannot read the config", path);
    }
    text[size] = '\0';
    char *clean = python_constants_to_null(text, size, &size);
    free(text);
    if (!clean) return cnet_fail(err, CNET_ENOMEM, "%s: out of memory", path);
    json_error_t jerr;
    f->root = json_loadb(clean, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    free(clean);
    if (!f->root)
        return cnet_fail(err, CNET_EFORMAT, "%s: not valid JSON: %s (line %d, column %d)", path,
                         jerr.text, jerr.line, jerr.column);
    if (!json_is_object(f->root)) {
        int rc = cnet_fail(err, CNET_EFORMAT, "%s: config is a JSON %s, expected an object", path,
                           cfg_kind(f->root));
        cfg_close(f);
        return rc;
    }
    return CNET_OK;
}

void cfg_close(cfg_file *f) {
    json_decref(f->root);
    f->root = NULL;
}

json_t *cfg_get(const cfg_file *f, const char *key) { return json_object_get(f->root, key); }

int cfg_type_error(const cfg_file *f, const char *key, const char *expected, const json_t *got) {
    char shown[48] = "";
    if (json_is_string(got))
        snprintf(shown, sizeof shown, " \"%.40s\"", json_string_value(got));
    else if (json_is_integer(got))
        snprintf(shown, sizeof shown, " %lld", (long long)json_integer_value(got));
    else if (json_is_real(got))
        snprintf(shown, sizeof shown, " %g", json_real_value(got));
    return cnet_fail(f->err, CNET_EFORMAT, "%s: field '%s': expected %s, got a JSON %s%s", f->path,
                     key, expected, cfg_kind(got), shown);
}

int cfg_unsupported(const cfg_file *f, const char *key, const char *why) {
    char *text = json_dumps(cfg_get(f, key), JSON_ENCODE_ANY | JSON_COMPACT);
    int rc = cnet_fail(f->err, CNET_EINVAL, "%s: field '%s' = %.200s is unsupported%s%s", f->path,
                       key, text ? text : "?", why ? ": " : "", why ? why : "");
    free(text);
    return rc;
}

/* An integer value, or a float with an integral value (Python writes 1.0
 * for some int fields); 0 when it is neither. */
static int as_int(const json_t *v, long long *out) {
    if (json_is_integer(v)) return *out = json_integer_value(v), 1;
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        fabs(json_real_value(v)) < 1e15)
        return *out = (long long)json_real_value(v), 1;
    return 0;
}

static int int_value(const cfg_file *f, const char *key, const json_t *v, int min, int max,
                     int *out) {
    long long x;
    char what[96];
    snprintf(what, sizeof what, "an integer in [%d, %d]", min, max);
    if (!as_int(v, &x) || x < min || x > max) return cfg_type_error(f, key, what, v);
    *out = (int)x;
    return CNET_OK;
}

int cfg_int(const cfg_file *f, const char *key, int def, int min, int max, int *out) {
    const json_t *v = cfg_get(f, key);
    *out = def;
    return v ? int_value(f, key, v, min, max, out) : CNET_OK;
}

int cfg_int_opt(const cfg_file *f, const char *key, int def, int min, int max, int *out,
                bool *present) {
    const json_t *v = cfg_get(f, key);
    *out = def;
    *present = v && !json_is_null(v);
    return *present ? int_value(f, key, v, min, max, out) : CNET_OK;
}

int cfg_float(const cfg_file *f, const char *key, double def, double *out) {
    const json_t *v = cfg_get(f, key);
    *out = def;
    if (!v) return CNET_OK;
    if (!json_is_number(v)) return cfg_type_error(f, key, "a number", v);
    *out = json_number_value(v);
    return CNET_OK;
}

int cfg_float_opt(const cfg_file *f, const char *key, double def, double *out, bool *present) {
    const json_t *v = cfg_get(f, key);
    *present = v && !json_is_null(v);
    *out = def;
    if (!*present) return CNET_OK;
    return cfg_float(f, key, def, out);
}

int cfg_bool(const cfg_file *f, const char *key, bool def, bool *out) {
    const json_t *v = cfg_get(f, key);
    *out = def;
    if (!v) return CNET_OK;
    if (!json_is_boolean(v)) return cfg_type_error(f, key, "true or false", v);
    *out = json_is_true(v);
    return CNET_OK;
}

int cfg_enum(const cfg_file *f, const char *key, int def, const char *const *names, int n,
             int *out) {
    const json_t *v = cfg_get(f, key);
    *out = def;
    if (!v) return CNET_OK;
    char expected[512];
    size_t len = (size_t)snprintf(expected, sizeof expected, "one of");
    for (int i = 0; i < n && len < sizeof expected; i++)
        len += (size_t)snprintf(expected + len, sizeof expected - len, "%s \"%s\"", i ? "," : "",
                                names[i]);
    if (!json_is_string(v)) return cfg_type_error(f, key, expected, v);
    for (int i = 0; i < n; i++)
        if (strcmp(json_string_value(v), names[i]) == 0) return *out = i, CNET_OK;
    return cfg_type_error(f, key, expected, v);
}

int cfg_int_list(const cfg_file *f, const char *key, const int *def, int def_len, int min_len,
                 int max_len, int min, int max, int *out, int *len) {
    const json_t *v = cfg_get(f, key);
    if (!v) {
        memcpy(out, def, (size_t)def_len * sizeof *out);
        *len = def_len;
        return CNET_OK;
    }
    char what[128];
    snprintf(what, sizeof what, "a list of %d to %d integers in [%d, %d]", min_len, max_len, min,
             max);
    if (!json_is_array(v) || (int)json_array_size(v) < min_len || (int)json_array_size(v) > max_len)
        return cfg_type_error(f, key, what, v);
    *len = (int)json_array_size(v);
    for (int i = 0; i < *len; i++) {
        long long x;
        const json_t *e = json_array_get(v, (size_t)i);
        if (!as_int(e, &x) || x < min || x > max) {
            char item[160];
            snprintf(item, sizeof item, "%s[%d]", key, i);
            return cfg_type_error(f, item, what, e);
        }
        out[i] = (int)x;
    }
    return CNET_OK;
}

int cfg_int_or_list(const cfg_file *f, const char *key, int def, int n, int min, int max,
                    int *out) {
    const json_t *v = cfg_get(f, key);
    if (!v || !json_is_array(v)) {
        int x;
        int rc = cfg_int(f, key, def, min, max, &x);
        if (rc) return rc;
        for (int i = 0; i < n; i++) out[i] = x;
        return CNET_OK;
    }
    int len;
    int rc = cfg_int_list(f, key, NULL, 0, 1, CNET_MAX_BLOCKS, min, max, out, &len);
    if (rc == CNET_OK && len != n)
        rc = cnet_fail(f->err, CNET_EFORMAT,
                       "%s: field '%s': the list has %d entries, expected %d (one per down block)",
                       f->path, key, len, n);
    return rc;
}

int cfg_bool_or_list(const cfg_file *f, const char *key, bool def, int n, bool *out,
                     bool *was_bool) {
    const json_t *v = cfg_get(f, key);
    *was_bool = !v || !json_is_array(v);
    if (*was_bool) {
        bool x;
        int rc = cfg_bool(f, key, def, &x);
        for (int i = 0; i < n; i++) out[i] = x;
        return rc;
    }
    if ((int)json_array_size(v) != n)
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: field '%s': the list has %zu entries, expected %d (one per down "
                         "block)",
                         f->path, key, json_array_size(v), n);
    for (int i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_boolean(e)) return cfg_type_error(f, key, "true/false or a list of them", e);
        out[i] = json_is_true(e);
    }
    return CNET_OK;
}

int cfg_class_name(const cfg_file *f, const char *want) {
    const json_t *v = cfg_get(f, "_class_name");
    if (!v || (json_is_string(v) && strcmp(json_string_value(v), want) == 0)) return CNET_OK;
    char what[96];
    snprintf(what, sizeof what, "\"%s\"", want);
    return cfg_type_error(f, "_class_name", what, v);
}

int cfg_require_null(const cfg_file *f, const char *key) {
    const json_t *v = cfg_get(f, key);
    return v && !json_is_null(v) ? cfg_unsupported(f, key, NULL) : CNET_OK;
}

int cfg_require_string(const cfg_file *f, const char *key, const char *want) {
    const json_t *v = cfg_get(f, key);
    if (!v) return CNET_OK;
    if (!json_is_string(v)) {
        char what[96];
        snprintf(what, sizeof what, "the string \"%s\"", want);
        return cfg_type_error(f, key, what, v);
    }
    return strcmp(json_string_value(v), want) != 0 ? cfg_unsupported(f, key, NULL) : CNET_OK;
}
