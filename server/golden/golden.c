/* Golden checks: fixture discovery, tolerances and tensor comparison. See
 * golden.h. The tolerance rule is the one the goldens' README states: a
 * float32 implementation should match within about 10x the float32-vs-float64
 * difference of the reference itself. */
#include "server/golden/golden.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_object(const char *path, json_t **out, cnet_error *err) {
    *out = NULL;
    if (access(path, R_OK) != 0)
        return cnet_fail(err, CNET_ENOTFOUND, "%s: not found (is this a fixture directory?)", path);
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (!*out) return cnet_fail(err, CNET_EFORMAT, "%s:%d: %s", path, je.line, je.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return cnet_fail(err, CNET_EFORMAT, "%s: expected a JSON object", path);
    }
    return 0;
}

/* The folder of the one "<folder>/model_index.json" the manifest lists. */
static int find_model_dir(golden_ctx *ctx, const json_t *manifest, const char *path,
                          cnet_error *err) {
    static const char suffix[] = "/model_index.json";
    const char *key, *found = NULL;
    json_t *v;
    int count = 0;
    json_object_foreach((json_t *)manifest, key, v) {
        size_t n = strlen(key), s = sizeof suffix - 1;
        if (n > s && strcmp(key + n - s, suffix) == 0 && !memchr(key, '/', n - s)) {
            count++;
            found = key;
        }
    }
    if (count != 1)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: lists %d model folders (<folder>/model_index.json), expected 1", path,
                         count);
    int len = snprintf(ctx->model_dir, sizeof ctx->model_dir, "%s/%.*s", ctx->fixtures,
                       (int)(strlen(found) - (sizeof suffix - 1)), found);
    if (len < 0 || (size_t)len >= sizeof ctx->model_dir)
        return cnet_fail(err, CNET_ELIMIT, "%s: model folder path too long", path);
    return 0;
}

/* Everything but the model folder. */
static int init_common(golden_ctx *ctx, const char *fixtures, const char *goldens,
                       cnet_error *err) {
    memset(ctx, 0, sizeof *ctx);
    ctx->fixtures = fixtures;
    ctx->goldens = goldens;
    ctx->device = "cpu";
    ctx->seen = malloc(GOLDEN_MAX_SEEN * sizeof *ctx->seen);
    if (!ctx->seen) return cnet_fail(err, CNET_ENOMEM, "golden: out of memory");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/tolerances.json", fixtures, goldens);
    return read_object(path, &ctx->tolerances, err);
}

int golden_init_dir(golden_ctx *ctx, const char *fixtures, const char *goldens, cnet_error *err) {
    char path[PATH_MAX];
    int rc = init_common(ctx, fixtures, goldens, err);
    if (rc) return rc;
    json_t *manifest;
    snprintf(path, sizeof path, "%s/%s/manifest.json", fixtures, goldens);
    if ((rc = read_object(path, &manifest, err))) return rc;
    rc = find_model_dir(ctx, manifest, path, err);
    json_decref(manifest);
    return rc;
}

int golden_init_model(golden_ctx *ctx, const char *fixtures, const char *goldens, const char *model,
                      cnet_error *err) {
    int rc = init_common(ctx, fixtures, goldens, err);
    if (rc) return rc;
    int len = snprintf(ctx->model_dir, sizeof ctx->model_dir, "%s/%s", fixtures, model);
    if (len < 0 || (size_t)len >= sizeof ctx->model_dir)
        return cnet_fail(err, CNET_ELIMIT, "golden: model folder path too long");
    return 0;
}

int golden_init(golden_ctx *ctx, const char *fixtures, cnet_error *err) {
    return golden_init_dir(ctx, fixtures, GOLDEN_DIR, err);
}

void golden_free(golden_ctx *ctx) {
    json_decref(ctx->tolerances);
    free(ctx->seen);
    memset(ctx, 0, sizeof *ctx);
}

int golden_tolerance(const golden_ctx *ctx, const char *stem, const char *name, double *allowed,
                     cnet_error *err) {
    char key[512];
    snprintf(key, sizeof key, "%s/%s", stem, name);
    const json_t *t = json_object_get(ctx->tolerances, key);
    if (!json_is_object(t))
        return cnet_fail(err, CNET_ENOTFOUND, "tolerances.json: no entry \"%s\"", key);
    if (json_is_true(json_object_get(t, "exact"))) {
        *allowed = 0;
        return 0;
    }
    const json_t *max_abs = json_object_get(t, "max_abs");
    if (!json_is_number(max_abs))
        return cnet_fail(err, CNET_EFORMAT, "tolerances.json: \"%s\" has neither exact nor max_abs",
                         key);
    *allowed = fmax(GOLDEN_TOL_FACTOR * json_number_value(max_abs), GOLDEN_TOL_FLOOR);
    return 0;
}

void golden_report(golden_ctx *ctx, const char *name, const char *shape, double max_err,
                   double allowed, int pass, const char *note) {
    printf("%-52s %-12s max_abs_err %-10.3g allowed %-10.3g %s%s%s\n", name, shape, max_err,
           allowed, pass ? "PASS" : "FAIL", note ? "  " : "", note ? note : "");
    if (pass)
        ctx->passed++;
    else
        ctx->failed++;
}

static int is_int_dtype(cnet_dtype dt) { return dt == CNET_I64 || dt == CNET_U8; }

static double value_at(const cnet_tensor *t, int64_t i) {
    switch (t->dtype) {
    case CNET_I64:
        return (double)((const int64_t *)t->data)[i];
    case CNET_U8:
        return (double)((const uint8_t *)t->data)[i];
    case CNET_F32:
        return (double)((const float *)t->data)[i];
    default:
        return NAN;
    }
}

/* max |a - b|; integers compared exactly (any difference counts as >= 1). */
static double max_abs_err(const cnet_tensor *a, const cnet_tensor *b) {
    double m = 0;
    int64_t n = cnet_tensor_numel(a);
    for (int64_t i = 0; i < n; i++) {
        double d;
        if (a->dtype == CNET_I64 && b->dtype == CNET_I64) {
            int64_t x = ((const int64_t *)a->data)[i], y = ((const int64_t *)b->data)[i];
            d = x == y ? 0 : fmax(1.0, fabs((double)x - (double)y));
        } else {
            d = fabs(value_at(a, i) - value_at(b, i));
            if (isnan(d)) return INFINITY;
        }
        if (d > m) m = d;
    }
    return m;
}

/* allowed < 0: from tolerances.json (golden_tolerance); then raised to at
 * least min_allowed. */
static int compare(golden_ctx *ctx, const st_file *f, const char *name, const cnet_tensor *got,
                   double allowed, double min_allowed) {
    char got_shape[64], want_shape[64], note[256];
    cnet_shape_str(got_shape, sizeof got_shape, got->ndim, got->shape);
    if (ctx->n_seen < GOLDEN_MAX_SEEN) ctx->seen[ctx->n_seen++] = name;
    const st_entry *e = st_find(f, name);
    if (!e) {
        golden_report(ctx, name, got_shape, INFINITY, 0, 0, "missing from the golden file");
        return 0;
    }
    /* ctx->seen must outlive `name`: keep the file's own copy. */
    ctx->seen[ctx->n_seen - 1] = e->name;
    const cnet_tensor *want = &e->view;
    cnet_shape_str(want_shape, sizeof want_shape, want->ndim, want->shape);
    int same_shape = got->ndim == want->ndim;
    for (int i = 0; same_shape && i < got->ndim; i++) same_shape = got->shape[i] == want->shape[i];
    if (!same_shape || is_int_dtype(got->dtype) != is_int_dtype(want->dtype) ||
        (want->dtype != CNET_F32 && !is_int_dtype(want->dtype))) {
        snprintf(note, sizeof note, "got %s %s, golden %s %s", cnet_dtype_name(got->dtype),
                 got_shape, cnet_dtype_name(want->dtype), want_shape);
        golden_report(ctx, name, got_shape, INFINITY, 0, 0, note);
        return 0;
    }
    if (is_int_dtype(want->dtype)) {
        allowed = 0;
    } else if (allowed < 0) {
        cnet_error err;
        if (golden_tolerance(ctx, ctx->stem, name, &allowed, &err)) {
            golden_report(ctx, name, got_shape, INFINITY, 0, 0, err.msg);
            return 0;
        }
    }
    if (allowed < min_allowed) allowed = min_allowed;
    double m = max_abs_err(got, want);
    int pass = m <= allowed;
    golden_report(ctx, name, got_shape, m, allowed, pass, NULL);
    return pass;
}

int golden_compare(golden_ctx *ctx, const st_file *f, const char *name, const cnet_tensor *got) {
    return compare(ctx, f, name, got, -1, 0);
}

int golden_compare_atol(golden_ctx *ctx, const st_file *f, const char *name, const cnet_tensor *got,
                        double min_allowed) {
    return compare(ctx, f, name, got, -1, min_allowed);
}

int golden_compare_within(golden_ctx *ctx, const st_file *f, const char *name,
                          const cnet_tensor *got, double allowed) {
    return compare(ctx, f, name, got, allowed, 0);
}
