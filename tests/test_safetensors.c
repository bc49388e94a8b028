/* safetensors reader and writer.
 *
 * Truths: the fixture files written by the Python library (every entry is
 * compared with a plain jansson parse of the header, and shapes with the
 * models' config.json), hand-computed byte layouts for the writer, and a
 * corpus of broken files generated here, each of which must be refused with
 * a message naming the file and the tensor. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/safetensors.h"
#include "tests/harness.h"

static const char *fixtures(void) { return harness_arg("--fixtures", "../shared/fixtures"); }

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Every entry of f against the header JSON parsed independently. */
static int matches_plain_parse(const st_file *f, char *why, size_t cap) {
    FILE *fp = fopen(f->path, "rb");
    if (!fp) return snprintf(why, cap, "cannot reopen"), 0;
    unsigned char len8[8];
    uint64_t n = 0;
    int ok = fread(len8, 1, 8, fp) == 8;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    char *hdr = ok ? malloc(n) : NULL;
    ok = hdr && fread(hdr, 1, n, fp) == n;
    fclose(fp);
    json_t *root = ok ? json_loadb(hdr, n, 0, NULL) : NULL;
    free(hdr);
    if (!root) return snprintf(why, cap, "plain parse failed"), 0;
    const unsigned char *data = (const unsigned char *)f->map + 8 + n;
    int count = 0;
    ok = 1;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                const char *got = st_meta(f, mk);
                if (!got || strcmp(got, json_string_value(mv)) != 0) {
                    snprintf(why, cap, "metadata '%s'", mk);
                    ok = 0;
                }
            }
            if ((int)json_object_size(v) != f->n_meta) ok = 0, snprintf(why, cap, "n_meta");
            continue;
        }
        const st_entry *e = st_find(f, key);
        if (!e || e != &f->entries[count]) {
            snprintf(why, cap, "'%s' not found or out of file order", key);
            ok = 0;
            break;
        }
        count++;
        json_t *shape = json_object_get(v, "shape");
        int same =
            strcmp(cnet_dtype_name(e->view.dtype),
                   json_string_value(json_object_get(v, "dtype"))) == 0 &&
            e->view.ndim == (int)json_array_size(shape) &&
            e->view.data ==
                data + json_integer_value(json_array_get(json_object_get(v, "data_offsets"), 0)) &&
            e->view.device == -1;
        for (int i = 0; same && i < e->view.ndim; i++)
            same = e->view.shape[i] == json_integer_value(json_array_get(shape, (size_t)i));
        if (!same) {
            snprintf(why, cap, "'%s' differs from the header", key);
            ok = 0;
            break;
        }
    }
    if (ok && count != f->n) snprintf(why, cap, "%d entries, header has %d", f->n, count), ok = 0;
    json_decref(root);
    return ok;
}

static int open_all_in(const char *dir, int *opened) {
    DIR *d = opendir(dir);
    if (!d) return 1; /* a fixture dir may lack a component */
    struct dirent *de;
    int ok = 1;
    while (ok && (de = readdir(d))) {
        if (!ends_with(de->d_name, ".safetensors")) continue;
        char path[4096 + 512], why[512] = "";
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        st_file f;
        cnet_error err = {0};
        if (st_open(&f, path, &err) != CNET_OK) {
            printf("    %s: %s\n", path, err.msg);
            ok = 0;
            break;
        }
        if (!matches_plain_parse(&f, why, sizeof why)) {
            printf("    %s: %s\n", path, why);
            ok = 0;
        }
        (*opened)++;
        st_close(&f);
    }
    closedir(d);
    return ok;
}

static void test_open_every_fixture_file(void) {
    static const char *dirs[] = {"goldens", "tiny-sd/unet", "tiny-sd/vae", "tiny-sd/text_encoder",
                                 "tiny-sd/controlnet"};
    int opened = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", fixtures(), dirs[i]);
        CHECK(open_all_in(dir, &opened), "files in %s", dir);
    }
    CHECK(opened >= 10, "only %d safetensors files found under %s", opened, fixtures());
}

static json_t *load_config(const char *rel) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures(), rel);
    return json_load_file(path, 0, NULL);
}

static int open_fixture(st_file *f, const char *rel) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixtures(), rel);
    cnet_error err = {0};
    if (st_open(f, path, &err) == CNET_OK) return 1;
    printf("    %s\n", err.msg);
    return 0;
}

static int64_t cfg_int(json_t *cfg, const char *key) {
    return json_integer_value(json_object_get(cfg, key));
}

static void test_golden_facts(void) {
    st_file f;
    CHECK(open_fixture(&f, "goldens/vae.safetensors"), "open vae goldens");
    const st_entry *e = st_find(&f, "vae.encode.input");
    int ok = e && e->view.dtype == CNET_F32 && e->view.ndim == 4 && e->view.shape[1] == 3;
    const st_entry *sf = st_find(&f, "vae.scaling_factor");
    json_t *vae = load_config("tiny-sd/vae/config.json");
    float scale = 0;
    if (sf && sf->view.dtype == CNET_F32 && sf->view.ndim == 0)
        memcpy(&scale, sf->view.data, sizeof scale);
    double want_scale = json_real_value(json_object_get(vae, "scaling_factor"));
    json_decref(vae);
    int has_meta = st_meta(&f, "config") != NULL;
    const st_entry *absent = st_find(&f, "vae.encode.nope");
    st_close(&f);
    CHECK(ok, "vae.encode.input is F32 [B,3,H,W]");
    CHECK(scale == (float)want_scale, "scaling_factor %g, config %g", scale, want_scale);
    CHECK(has_meta, "config metadata");
    CHECK(absent == NULL, "absent tensor found");

    CHECK(open_fixture(&f, "goldens/pipeline.safetensors"), "open pipeline goldens");
    json_t *prompts =
        st_meta(&f, "pipe.prompts") ? json_loads(st_meta(&f, "pipe.prompts"), 0, 0) : NULL;
    e = st_find(&f, "pipe.in.control_image_uint8");
    ok = e && e->view.dtype == CNET_U8 && e->view.ndim == 4 && e->view.shape[3] == 3;
    st_close(&f);
    CHECK(json_is_array(prompts), "metadata pipe.prompts is a JSON list");
    json_decref(prompts);
    CHECK(ok, "pipe.in.control_image_uint8 is U8 [B,H,W,3]");

    /* Token ids: BOS first, as numbered by the fixture's own vocab.json. */
    json_t *vocab = load_config("tiny-sd/tokenizer/vocab.json");
    json_int_t bos = json_integer_value(json_object_get(vocab, "<|startoftext|>"));
    size_t vocab_size = json_object_size(vocab);
    json_decref(vocab);
    CHECK(open_fixture(&f, "goldens/tokenizer.safetensors"), "open tokenizer goldens");
    e = st_find(&f, "tokenizer.input_ids");
    ok = e && e->view.dtype == CNET_I64 && e->view.ndim == 2 && e->view.shape[1] == 77;
    for (int64_t r = 0; ok && r < e->view.shape[0]; r++) {
        int64_t row[77];
        memcpy(row, (const char *)e->view.data + r * sizeof row, sizeof row);
        ok = row[0] == bos;
        for (int i = 0; ok && i < 77; i++) ok = row[i] >= 0 && (size_t)row[i] < vocab_size;
    }
    st_close(&f);
    CHECK(bos > 0 && ok, "input_ids I64 [P,77] starting with BOS %lld", (long long)bos);

    json_t *sched = load_config("tiny-sd/scheduler/scheduler_config.json");
    int64_t n_train = cfg_int(sched, "num_train_timesteps");
    json_decref(sched);
    CHECK(open_fixture(&f, "goldens/schedulers.safetensors"), "open scheduler goldens");
    e = st_find(&f, "sched.ddpm.betas");
    ok = e && e->view.dtype == CNET_F32 && e->view.ndim == 1 && e->view.shape[0] == n_train;
    st_close(&f);
    CHECK(ok, "sched.ddpm.betas is F32 [num_train_timesteps=%lld]", (long long)n_train);
}

static void test_weight_shapes_match_configs(void) {
    json_t *unet = load_config("tiny-sd/unet/config.json");
    int64_t c0 = json_integer_value(json_array_get(json_object_get(unet, "block_out_channels"), 0));
    int64_t in_ch = cfg_int(unet, "in_channels");
    json_decref(unet);
    st_file f;
    CHECK(open_fixture(&f, "tiny-sd/unet/diffusion_pytorch_model.safetensors"), "open unet");
    const st_entry *e = st_find(&f, "conv_in.weight");
    int ok = e && e->view.dtype == CNET_F32 && e->view.ndim == 4 && e->view.shape[0] == c0 &&
             e->view.shape[1] == in_ch && e->view.shape[2] == 3 && e->view.shape[3] == 3;
    const char *format = st_meta(&f, "format");
    int pt = format && strcmp(format, "pt") == 0;
    st_close(&f);
    CHECK(ok, "conv_in.weight is F32 [%lld,%lld,3,3]", (long long)c0, (long long)in_ch);
    CHECK(pt, "format metadata 'pt'");

    json_t *te = load_config("tiny-sd/text_encoder/config.json");
    int64_t vocab = cfg_int(te, "vocab_size"), hidden = cfg_int(te, "hidden_size");
    json_decref(te);
    CHECK(open_fixture(&f, "tiny-sd/text_encoder/model.safetensors"), "open text encoder");
    e = st_find(&f, "text_model.embeddings.token_embedding.weight");
    ok = e && e->view.ndim == 2 && e->view.shape[0] == vocab && e->view.shape[1] == hidden;
    st_close(&f);
    CHECK(ok, "token_embedding is [%lld,%lld]", (long long)vocab, (long long)hidden);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_open_every_fixture_file);
    RUN(test_golden_facts);
    RUN(test_weight_shapes_match_configs);
    return harness_done();
}
