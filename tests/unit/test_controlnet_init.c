/* ControlNetModel.from_unet against goldens/controlnet_from_unet.json (and
 * goldens-sdxl's, where the fixture directory has one), which real
 * diffusers 0.27.2 wrote for the fixture's UNet: the derived config
 * equals its "controlnet_config" field by field, and every ControlNet tensor
 * is a bit-equal copy of the UNet tensor it names, all zeros, or freshly
 * initialised (non-zero, inside PyTorch's default-init bounds
 * +-1/sqrt(fan_in), with the uniform's variance, the same for the same seed
 * and different for another). The fixture's model folder is the one
 * the golden folder's manifest.json names, so any fixture directory works.
 * SDXL: add_embedding.* is fresh, not copied (0.27.2). */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

#include "engine/init/controlnet_init.h"
#include "server/golden/golden.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static const char *fixtures(void) { return harness_fixtures(); }

/* The golden folder the tests read: GOLDEN_DIR, then GOLDEN_DIR_SDXL. */
static const char *golden_dir = GOLDEN_DIR;

static json_t *load_golden(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/controlnet_from_unet.json", fixtures(), golden_dir);
    return json_load_file(path, 0, NULL);
}

/* The golden's conditioning_embedding_out_channels. */
static int golden_cond(const json_t *g, int *cond) {
    const json_t *list = json_object_get(json_object_get(g, "controlnet_config"),
                                         "conditioning_embedding_out_channels");
    int n = (int)json_array_size(list);
    for (int i = 0; i < n && i < CONTROLNET_MAX_COND_LEVELS; i++)
        cond[i] = (int)json_integer_value(json_array_get(list, (size_t)i));
    return n;
}

static void test_config_from_unet(void) {
    json_t *g = load_golden();
    CHECK(g, "cannot read controlnet_from_unet.json");
    golden_ctx ctx;
    cnet_error err;
    CHECK(golden_init_dir(&ctx, fixtures(), golden_dir, &err) == 0, "%s", err.msg);
    char unet_cfg[PATH_MAX + 32];
    snprintf(unet_cfg, sizeof unet_cfg, "%s/unet/config.json", ctx.model_dir);
    int cond[CONTROLNET_MAX_COND_LEVELS];
    int n_cond = golden_cond(g, cond);
    json_t *cfg = NULL;
    int rc = controlnet_config_from_unet(&cfg, unet_cfg, cond, n_cond, &err);
    golden_free(&ctx);
    if (rc) json_decref(g);
    CHECK(rc == 0, "%s", err.msg);
    const json_t *want = json_object_get(g, "controlnet_config");
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach((json_t *)want, key, v) {
        json_t *got = json_object_get(cfg, key);
        char *a = json_dumps(v, JSON_ENCODE_ANY),
             *b = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
        EXPECT(got && json_equal(v, got), "field '%s': got %s, want %s", key, b ? b : "(absent)",
               a);
        free(a);
        free(b);
        n++;
    }
    json_object_foreach(cfg, key, v)
        EXPECT(key[0] == '_' || json_object_get(want, key), "unexpected field '%s'", key);
    EXPECT(n > 20, "the golden config has only %d fields", n);
    json_decref(cfg);
    json_decref(g);
}

/* A ControlNet made by from_unet from the fixture's UNet, on a CPU backend. */
typedef struct fixture {
    cnet_backend be;
    unet_model unet;
    controlnet_model cn;
    char dir[PATH_MAX];
} fixture;

static int fixture_open(fixture *fx, const json_t *g, uint64_t seed, cnet_error *err) {
    memset(fx, 0, sizeof *fx);
    golden_ctx ctx;
    int rc = golden_init_dir(&ctx, fixtures(), golden_dir, err);
    if (rc) return rc;
    char unet_dir[PATH_MAX + 16], unet_cfg[PATH_MAX + 32], cn_cfg[PATH_MAX + 32];
    snprintf(unet_dir, sizeof unet_dir, "%s/unet", ctx.model_dir);
    snprintf(unet_cfg, sizeof unet_cfg, "%s/config.json", unet_dir);
    golden_free(&ctx);
    int cond[CONTROLNET_MAX_COND_LEVELS];
    int n_cond = golden_cond(g, cond);
    json_t *cfg = NULL;
    cnet_unet_config L;
    if (tmpdir_make(fx->dir, sizeof fx->dir, "cnet_cninit_"))
        return cnet_fail(err, CNET_EIO, "cannot make a temp dir");
    snprintf(cn_cfg, sizeof cn_cfg, "%s/config.json", fx->dir);
    if ((rc = controlnet_config_from_unet(&cfg, unet_cfg, cond, n_cond, err))) return rc;
    if (json_dump_file(cfg, cn_cfg, JSON_INDENT(2) | JSON_SORT_KEYS))
        rc = cnet_fail(err, CNET_EIO, "cannot write %s", cn_cfg);
    json_decref(cfg);
    if (!rc) rc = cnet_backend_cpu_init(&fx->be, err);
    if (!rc) rc = cnet_controlnet_config_load(&L, cn_cfg, err);
    if (!rc) rc = unet_open(&fx->unet, &fx->be, unet_dir, err);
    if (!rc) rc = controlnet_init(&fx->cn, &fx->be, &L, err);
    if (!rc) rc = controlnet_from_unet(&fx->cn, &fx->unet, seed, err);
    return rc;
}

static void fixture_close(fixture *fx) {
    controlnet_free(&fx->cn);
    unet_free(&fx->unet);
    if (fx->be.destroy) cnet_backend_free(&fx->be);
    if (fx->dir[0]) tmpdir_remove(fx->dir);
}

static void test_from_unet_tensors(void) {
    json_t *g = load_golden();
    CHECK(g, "cannot read controlnet_from_unet.json");
    fixture fx;
    cnet_error err;
    int rc = fixture_open(&fx, g, 1234, &err);
    if (rc) {
        fixture_close(&fx);
        json_decref(g);
    }
    CHECK(rc == 0, "%s", err.msg);
    const json_t *tensors = json_object_get(g, "tensors");
    EXPECT((int)json_object_size(tensors) == fx.cn.params.n,
           "the golden lists %zu tensors, the ControlNet has %d", json_object_size(tensors),
           fx.cn.params.n);
    int counts[3] = {0};
    const char *name;
    json_t *t;
    json_object_foreach((json_t *)tensors, name, t) {
        const char *source = json_string_value(json_object_get(t, "source"));
        const cnet_param *q = params_find(&fx.cn.params, name);
        EXPECT(q && source, "'%s' is not a ControlNet parameter", name);
        if (!q || !source) continue;
        const json_t *shape = json_object_get(t, "shape");
        int same = (int)json_array_size(shape) == q->ndim;
        for (int d = 0; same && d < q->ndim; d++)
            same = json_integer_value(json_array_get(shape, (size_t)d)) == q->shape[d];
        EXPECT(same, "'%s': shape differs from the golden's", name);
        if (strncmp(source, "unet:", 5) == 0) {
            const cnet_param *u = params_find(&fx.unet.params, source + 5);
            EXPECT(u && u->numel == q->numel && memcmp(u->data, q->data, q->numel * 4) == 0,
                   "'%s' is not a bit-equal copy of %s", name, source);
            counts[0]++;
        } else if (strcmp(source, "zero") == 0) {
            size_t nz = 0;
            for (size_t i = 0; i < q->numel; i++) nz += q->data[i] != 0.0f;
            EXPECT(nz == 0, "'%s': %zu non-zero values, want all zero", name, nz);
            counts[1]++;
        } else if (strcmp(source, "fresh_init") == 0) {
            const size_t len = strlen(name);
            char wname[PARAM_NAME_MAX];
            snprintf(wname, sizeof wname, "%.*s.weight",
                     (int)(len - (name[len - 1] == 's' ? 5 : 7)), name);
            const cnet_param *w = params_find(&fx.cn.params, wname);
            double fan_in = 1; /* every weight dimension but the output one */
            for (int d = 1; w && d < w->ndim; d++) fan_in *= (double)w->shape[d];
            const double bound = w ? 1.0 / sqrt(fan_in) : 0;
            double sumsq = 0, maxabs = 0;
            size_t zeros = 0;
            for (size_t i = 0; i < q->numel; i++) {
                double v = q->data[i];
                zeros += v == 0.0, sumsq += v * v, maxabs = fmax(maxabs, fabs(v));
            }
            EXPECT(zeros == 0 && maxabs < bound, "'%s': %zu zeros, max |v| %g, bound %g", name,
                   zeros, maxabs, bound);
            if (q->numel >= 64) {
                double var = sumsq / (double)q->numel, want = bound * bound / 3;
                EXPECT(fabs(var / want - 1) < 0.35, "'%s': variance %g, uniform's %g", name, var,
                       want);
            }
            counts[2]++;
        } else {
            EXPECT(0, "'%s': unknown source '%s'", name, source);
        }
    }
    const json_t *want = json_object_get(g, "counts");
    EXPECT(counts[0] == json_integer_value(json_object_get(want, "copied")) &&
               counts[1] == json_integer_value(json_object_get(want, "zero")) &&
               counts[2] == json_integer_value(json_object_get(want, "fresh_init")),
           "counts copied %d zero %d fresh %d differ from the golden's", counts[0], counts[1],
           counts[2]);
    fixture_close(&fx);
    json_decref(g);
}

/* Fresh tensors: the same seed gives the same bits, another seed others. */
static void test_from_unet_seeded(void) {
    json_t *g = load_golden();
    CHECK(g, "cannot read controlnet_from_unet.json");
    fixture a, b, c;
    cnet_error err;
    int rc = fixture_open(&a, g, 5, &err);
    if (!rc) rc = fixture_open(&b, g, 5, &err);
    if (!rc) rc = fixture_open(&c, g, 6, &err);
    json_decref(g);
    int same_ab = 1, differ_ac = 0, n_fresh = 0;
    for (int i = 0; !rc && i < a.cn.params.n; i++) {
        const cnet_param *qa = &a.cn.params.items[i], *qb = &b.cn.params.items[i],
                         *qc = &c.cn.params.items[i];
        same_ab &= memcmp(qa->data, qb->data, qa->numel * 4) == 0;
        const int fresh = (strncmp(qa->name, "controlnet_cond_embedding.", 26) == 0 &&
                           !strstr(qa->name, ".conv_out.")) ||
                          strncmp(qa->name, "add_embedding.", 14) == 0;
        if (!fresh) continue;
        n_fresh++;
        differ_ac += memcmp(qa->data, qc->data, qa->numel * 4) != 0;
    }
    fixture_close(&a);
    fixture_close(&b);
    fixture_close(&c);
    CHECK(rc == 0, "%s", err.msg);
    EXPECT(same_ab, "two runs with seed 5 differ");
    EXPECT(n_fresh > 0 && differ_ac == n_fresh, "%d of %d fresh tensors differ between seeds 5, 6",
           differ_ac, n_fresh);
}

/* A ControlNet whose encoder does not match the UNet is refused by name. */
static void test_from_unet_mismatch(void) {
    json_t *g = load_golden();
    CHECK(g, "cannot read controlnet_from_unet.json");
    fixture fx;
    cnet_error err;
    int rc = fixture_open(&fx, g, 1, &err);
    json_decref(g);
    if (rc) fixture_close(&fx);
    CHECK(rc == 0, "%s", err.msg);
    cnet_unet_config L = fx.cn.enc.cfg;
    controlnet_model other;
    L.in_channels += 1;
    rc = controlnet_init(&other, &fx.be, &L, &err);
    if (!rc) rc = controlnet_from_unet(&other, &fx.unet, 1, &err);
    controlnet_free(&other);
    fixture_close(&fx);
    CHECK(rc == CNET_EINVAL, "got %d", rc);
    EXPECT(strstr(err.msg, "conv_in.weight") && strstr(err.msg, "in the UNet"), "%s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_config_from_unet);
    RUN(test_from_unet_tensors);
    RUN(test_from_unet_seeded);
    RUN(test_from_unet_mismatch);
    char sdxl[PATH_MAX];
    struct stat st;
    snprintf(sdxl, sizeof sdxl, "%s/%s/controlnet_from_unet.json", fixtures(), GOLDEN_DIR_SDXL);
    if (stat(sdxl, &st) == 0) {
        golden_dir = GOLDEN_DIR_SDXL;
        RUN(test_config_from_unet);
        RUN(test_from_unet_tensors);
        RUN(test_from_unet_seeded);
    }
    return harness_done();
}
