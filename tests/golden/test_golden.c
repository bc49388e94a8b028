/* The golden-check helpers of server/golden/golden.h.
 *
 * Truths: the tolerance rule of goldens/README.md (10x the float32-vs-float64
 * figure, floor 1e-5, integers exact) applied to every entry of the
 * fixture's tolerances.json as read here with jansson; the golden tensors
 * themselves, compared with exact copies and with copies perturbed inside
 * and outside the allowed error. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "server/golden/golden.h"
#include "tests/lib/harness.h"

static const char *fixtures(void) { return harness_fixtures(); }

static void test_golden_tolerance(void) {
    golden_ctx ctx;
    cnet_error err;
    CHECK(golden_init(&ctx, fixtures(), &err) == 0, "%s", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/goldens/tolerances.json", fixtures());
    json_t *all = json_load_file(path, 0, NULL);
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach(all, key, v) {
        const char *slash = strchr(key, '/');
        if (!slash) continue;
        char stem[256];
        snprintf(stem, sizeof stem, "%.*s", (int)(slash - key), key);
        double want = json_is_true(json_object_get(v, "exact"))
                          ? 0
                          : fmax(10 * json_number_value(json_object_get(v, "max_abs")), 1e-5);
        double got = -1;
        EXPECT(golden_tolerance(&ctx, stem, slash + 1, &got, &err) == 0 && got == want,
               "%s: %g, want %g", key, got, want);
        n++;
    }
    json_decref(all);
    EXPECT(n > 0, "tolerances.json has no entries");
    EXPECT(golden_tolerance(&ctx, "tokenizer", "no.such.tensor", &(double){0}, &err) ==
                   CNET_ENOTFOUND &&
               strstr(err.msg, "tokenizer/no.such.tensor"),
           "missing key: %s", err.msg);
    golden_free(&ctx);
}

/* The first golden tensor of the given dtype in goldens/<stem>.safetensors. */
static const st_entry *first_of(const st_file *f, cnet_dtype dt) {
    for (int i = 0; i < f->n; i++)
        if (f->entries[i].view.dtype == dt && cnet_tensor_numel(&f->entries[i].view) > 1)
            return &f->entries[i];
    return NULL;
}

static void test_golden_compare(void) {
    golden_ctx ctx;
    cnet_error err;
    CHECK(golden_init(&ctx, fixtures(), &err) == 0, "%s", err.msg);
    printf("    (golden_compare's lines follow; the FAILs among them are intended)\n");
    static const char *const stems[] = {"tokenizer", "text_encoder"};
    static const cnet_dtype dtypes[] = {CNET_I64, CNET_F32};
    for (int s = 0; s < 2; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/goldens/%s.safetensors", fixtures(), stems[s]);
        st_file f;
        if (st_open(&f, path, &err)) {
            EXPECT(0, "%s", err.msg);
            continue;
        }
        ctx.stem = stems[s];
        ctx.n_seen = 0;
        const st_entry *e = first_of(&f, dtypes[s]);
        EXPECT(e != NULL, "%s: no tensor of dtype %s", path, cnet_dtype_name(dtypes[s]));
        if (!e) {
            st_close(&f);
            continue;
        }
        size_t bytes = cnet_tensor_bytes(&e->view);
        cnet_tensor t = e->view;
        t.data = malloc(bytes);
        memcpy(t.data, e->view.data, bytes);
        EXPECT(golden_compare(&ctx, &f, e->name, &t) == 1, "%s: exact copy", e->name);
        double allowed = 0;
        if (dtypes[s] == CNET_F32) {
            EXPECT(golden_tolerance(&ctx, stems[s], e->name, &allowed, &err) == 0, "%s", err.msg);
            ((float *)t.data)[0] += (float)(0.5 * allowed);
            EXPECT(golden_compare(&ctx, &f, e->name, &t) == 1, "%s: inside tolerance", e->name);
            ((float *)t.data)[0] += (float)(2 * allowed);
            EXPECT(golden_compare(&ctx, &f, e->name, &t) == 0, "%s: outside", e->name);
        } else {
            ((int64_t *)t.data)[0] += 1;
            EXPECT(golden_compare(&ctx, &f, e->name, &t) == 0, "%s: one id off", e->name);
        }
        memcpy(t.data, e->view.data, bytes);
        t.shape[t.ndim - 1] -= 1;
        EXPECT(golden_compare(&ctx, &f, e->name, &t) == 0, "%s: wrong shape", e->name);
        EXPECT(golden_compare(&ctx, &f, "no.such.tensor", &t) == 0, "missing tensor");
        free(t.data);
        st_close(&f);
    }
    golden_free(&ctx);
}

static void test_golden_model_dir(void) {
    golden_ctx ctx;
    cnet_error err;
    CHECK(golden_init(&ctx, fixtures(), &err) == 0, "%s", err.msg);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/model_index.json", ctx.model_dir);
    FILE *fp = fopen(path, "r");
    EXPECT(fp != NULL, "model folder %s has no model_index.json", ctx.model_dir);
    if (fp) fclose(fp);
    golden_free(&ctx);
    EXPECT(golden_init(&ctx, "/nonexistent-fixtures", &err) == CNET_ENOTFOUND &&
               strstr(err.msg, "/nonexistent-fixtures/goldens/"),
           "missing fixture dir: %s", err.msg);
    golden_free(&ctx);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_golden_tolerance);
    RUN(test_golden_compare);
    RUN(test_golden_model_dir);
    return harness_done();
}
