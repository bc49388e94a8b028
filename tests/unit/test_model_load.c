/* Loading errors through the components' *_open path (config.json +
 * weights of a diffusers folder), on copies of the fixture model's folders
 * with one thing broken each: a missing tensor, a wrong shape, an unexpected
 * tensor, a truncated weights file, a config field of the wrong type, and a
 * missing config field (diffusers' default then disagrees with the
 * weights, so a tensor is mis-shaped, missing or unexpected). Every refusal must name the file and
 * the key or field, and for shapes both of them. The truths are the fixture files themselves (names
 * and shapes read here with st_open). */
#include <jansson.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/models/clip_text.h"
#include "engine/models/controlnet.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "server/golden/golden.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static const char *fixtures(void) { return harness_fixtures(); }

static char tmp[PATH_MAX], model[PATH_MAX];
static cnet_backend be;

typedef struct component {
    const char *dir, *weights;
    int (*open)(const char *dir, cnet_error *err); /* opens and frees */
    const char *config_field;                      /* an int list the loader type-checks */
    const char *default_field;                     /* removing it changes some shapes */
} component;

static int open_unet(const char *dir, cnet_error *err) {
    unet_model m;
    int rc = unet_open(&m, &be, dir, err);
    if (!rc) unet_free(&m);
    return rc;
}
static int open_controlnet(const char *dir, cnet_error *err) {
    controlnet_model m;
    int rc = controlnet_open(&m, &be, dir, err);
    if (!rc) controlnet_free(&m);
    return rc;
}
static int open_vae(const char *dir, cnet_error *err) {
    vae_model m;
    int rc = vae_open(&m, &be, dir, err);
    if (!rc) vae_free(&m);
    return rc;
}
static int open_text(const char *dir, cnet_error *err) {
    clip_text_model m;
    int rc = clip_text_open(&m, &be, dir, err);
    if (!rc) clip_text_free(&m);
    return rc;
}

static const component components[] = {
    {"unet", "diffusion_pytorch_model.safetensors", open_unet, "block_out_channels",
     "cross_attention_dim"},
    {"controlnet", "diffusion_pytorch_model.safetensors", open_controlnet,
     "conditioning_embedding_out_channels", "cross_attention_dim"},
    {"vae", "diffusion_pytorch_model.safetensors", open_vae, "block_out_channels",
     "layers_per_block"},
    {"text_encoder", "model.safetensors", open_text, "hidden_size", "intermediate_size"},
};

static const char *path2(const char *a, const char *b) {
    static char bufs[4][PATH_MAX + 128];
    static int k;
    k = (k + 1) % 4;
    snprintf(bufs[k], sizeof bufs[k], "%s/%s", a, b);
    return bufs[k];
}

/* buf (PATH_MAX + 256 bytes) = a/b. */
static void join(char *buf, const char *a, const char *b) {
    snprintf(buf, PATH_MAX + 256, "%s/%s", a, b);
}

/* A fresh folder tmp/<name> with the component's config.json (or cfg_text). */
static const char *case_dir(const component *c, const char *name, const char *cfg_text) {
    static char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/%s_%s", tmp, c->dir, name);
    mkdir(dir, 0755);
    size_t n = 0;
    char *cfg = cfg_text ? NULL : file_read(path2(path2(model, c->dir), "config.json"), &n);
    file_write(path2(dir, "config.json"), cfg ? cfg : cfg_text, cfg ? n : strlen(cfg_text));
    free(cfg);
    return dir;
}

/* Writes the source weights with entry `drop` left out, entry `reshape`
 * given one more row, and (extra != NULL) one more tensor named extra. */
static int write_weights(const st_file *src, const char *path, int drop, int reshape,
                         const char *extra) {
    st_write_item *items = calloc((size_t)src->n + 1, sizeof *items);
    float *fat = NULL, one[2] = {1, 2};
    int n = 0, rc;
    for (int i = 0; i < src->n; i++) {
        if (i == drop) continue;
        items[n].name = src->entries[i].name;
        items[n].view = src->entries[i].view;
        if (i == reshape) {
            items[n].view.shape[0] += 1;
            fat = calloc((size_t)cnet_tensor_numel(&items[n].view), sizeof(float));
            items[n].view.data = fat;
        }
        n++;
    }
    if (extra) {
        items[n].name = extra;
        items[n].view = (cnet_tensor){CNET_F32, 1, {2}, one, -1};
        n++;
    }
    cnet_error err;
    rc = st_write(path, items, n, NULL, NULL, 0, &err);
    free(items);
    free(fat);
    return rc;
}

/* The first tensor of the file with at least 2 dims (its shape is printed). */
static int first_matrix(const st_file *f) {
    for (int i = 0; i < f->n; i++)
        if (f->entries[i].view.ndim >= 2) return i;
    return 0;
}

static void check_component(const component *c) {
    cnet_error err;
    st_file src;
    char src_weights[PATH_MAX + 128];
    snprintf(src_weights, sizeof src_weights, "%s/%s/%s", model, c->dir, c->weights);
    CHECK(st_open(&src, src_weights, &err) == 0, "%s", err.msg);
    const int victim = first_matrix(&src);
    const st_entry *v = &src.entries[victim];
    char want[64], got[64];
    cnet_shape_str(want, sizeof want, v->view.ndim, v->view.shape);
    int64_t fat[4];
    memcpy(fat, v->view.shape, sizeof fat);
    fat[0] += 1;
    cnet_shape_str(got, sizeof got, v->view.ndim, fat);

    /* Missing tensor. */
    const char *dir = case_dir(c, "missing", NULL);
    char w[PATH_MAX + 256];
    join(w, dir, c->weights);
    write_weights(&src, w, victim, -1, NULL);
    int rc = c->open(dir, &err);
    EXPECT(rc == CNET_ENOTFOUND && strstr(err.msg, v->name) && strstr(err.msg, w) &&
               strstr(err.msg, want),
           "%s missing key: %d %s", c->dir, rc, err.msg);

    /* Wrong shape: both shapes named. */
    dir = case_dir(c, "shape", NULL);
    join(w, dir, c->weights);
    write_weights(&src, w, -1, victim, NULL);
    rc = c->open(dir, &err);
    EXPECT(rc == CNET_EFORMAT && strstr(err.msg, v->name) && strstr(err.msg, w) &&
               strstr(err.msg, want) && strstr(err.msg, got),
           "%s wrong shape (want %s and %s named): %s", c->dir, want, got, err.msg);

    /* Unexpected tensor. */
    dir = case_dir(c, "extra", NULL);
    join(w, dir, c->weights);
    write_weights(&src, w, -1, -1, "not_a.parameter");
    rc = c->open(dir, &err);
    EXPECT(rc == CNET_EFORMAT && strstr(err.msg, "not_a.parameter") && strstr(err.msg, w),
           "%s unexpected key: %s", c->dir, err.msg);

    /* Truncated weights file. */
    dir = case_dir(c, "truncated", NULL);
    join(w, dir, c->weights);
    size_t n = 0;
    char *bytes = file_read(src_weights, &n);
    CHECK(bytes && n > 16, "cannot read %s", src_weights);
    file_write(w, bytes, n / 2);
    free(bytes);
    rc = c->open(dir, &err);
    EXPECT(rc == CNET_EFORMAT && strstr(err.msg, w), "%s truncated: %d %s", c->dir, rc, err.msg);

    /* A config field of the wrong type. */
    size_t cfg_len = 0;
    char *cfg_text = file_read(path2(path2(model, c->dir), "config.json"), &cfg_len);
    json_t *cfg = cfg_text ? json_loads(cfg_text, 0, NULL) : NULL;
    free(cfg_text);
    CHECK(cfg, "cannot read %s/config.json", c->dir);
    json_t *saved = json_incref(json_object_get(cfg, c->config_field));
    json_object_set_new(cfg, c->config_field, json_string("wide"));
    char *text = json_dumps(cfg, 0);
    dir = case_dir(c, "cfgtype", text);
    free(text);
    write_weights(&src, path2(dir, c->weights), -1, -1, NULL);
    rc = c->open(dir, &err);
    EXPECT(rc != 0 && strstr(err.msg, c->config_field) && strstr(err.msg, "config.json"),
           "%s wrong-type field: %s", c->dir, err.msg);

    /* A missing config field: its default disagrees with the weights, so the
     * load fails on a tensor of another shape, a missing or an unexpected one. */
    if (saved)
        json_object_set_new(cfg, c->config_field, saved);
    else
        json_object_del(cfg, c->config_field);
    const int had = json_object_get(cfg, c->default_field) != NULL;
    json_object_del(cfg, c->default_field);
    text = json_dumps(cfg, 0);
    json_decref(cfg);
    dir = case_dir(c, "cfgmissing", text);
    free(text);
    join(w, dir, c->weights);
    write_weights(&src, w, -1, -1, NULL);
    rc = c->open(dir, &err);
    EXPECT(!had || (rc != 0 && strstr(err.msg, w) && strstr(err.msg, "tensor '")),
           "%s without '%s' (the default then differs): %d %s", c->dir, c->default_field, rc,
           err.msg);
    st_close(&src);
}

static void test_unet(void) { check_component(&components[0]); }
static void test_controlnet(void) { check_component(&components[1]); }
static void test_vae(void) { check_component(&components[2]); }
static void test_text_encoder(void) { check_component(&components[3]); }

/* No weights at all, a broken PyTorch .bin (read by engine/core/torch_pickle.h
 * and refused by name), then only a variant's weights and a pickle under
 * another name: the folder, what was found and what to do. */
static void test_no_weights(void) {
    cnet_error err;
    const char *dir = case_dir(&components[0], "noweights", NULL);
    int rc = open_unet(dir, &err);
    EXPECT(rc == CNET_ENOTFOUND && strstr(err.msg, dir), "%s", err.msg);
    file_write(path2(dir, "diffusion_pytorch_model.bin"), "x", 1);
    rc = open_unet(dir, &err);
    EXPECT(rc == CNET_EFORMAT && strstr(err.msg, "diffusion_pytorch_model.bin"), "%s", err.msg);
    unlink(path2(dir, "diffusion_pytorch_model.bin"));
    file_write(path2(dir, "unet.ckpt"), "x", 1);
    file_write(path2(dir, "diffusion_pytorch_model.fp16.safetensors"), "x", 1);
    rc = open_unet(dir, &err);
    EXPECT(rc == CNET_ENOTFOUND && strstr(err.msg, "diffusion_pytorch_model.fp16.safetensors") &&
               strstr(err.msg, "--variant fp16") && strstr(err.msg, "unet.ckpt (a PyTorch pickle"),
           "%s", err.msg);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    golden_ctx ctx;
    cnet_error err;
    if (golden_init(&ctx, fixtures(), &err) || tmpdir_make(tmp, sizeof tmp, "cnet_load_") ||
        cnet_backend_cpu_init(&be, &err)) {
        printf("setup failed: %s\ntest_model_load: 0 passed, 1 failed\n", err.msg);
        return 1;
    }
    snprintf(model, sizeof model, "%s", ctx.model_dir);
    golden_free(&ctx);
    RUN(test_unet);
    RUN(test_controlnet);
    RUN(test_vae);
    RUN(test_text_encoder);
    RUN(test_no_weights);
    cnet_backend_free(&be);
    tmpdir_remove(tmp);
    return harness_done();
}
