/* safetensors reader and writer.
 *
 * Truths: the fixture files written by the Python library (every entry is
 * compared with a plain jansson parse of the header, shapes with the models'
 * config.json, and rewriting each file must reproduce its bytes exactly), hand-computed byte
 * layouts for the writer, and a corpus of broken files generated here, each of which must be
 * refused with a message naming the file and the tensor. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/safetensors.h"
#include "tests/lib/harness.h"

static const char *fixtures(void) { return harness_fixtures(); }

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char tmpdir[] = "/tmp/cnet_st_XXXXXX";

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

/* Reads a whole file; NULL if it cannot. Caller frees. */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) free(buf), buf = NULL;
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static int spill(const char *path, const void *buf, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    int ok = fwrite(buf, 1, len, fp) == len;
    return fclose(fp) == 0 && ok;
}

/* Number of entries of tmpdir whose name contains ".tmp.". */
static int count_temp_files(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

/* ---- reading the fixtures --------------------------------------------- */

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

/* Rewriting a file with its own entries and metadata in file order must
 * reproduce the Python library's bytes exactly. */
static int rewrite_is_identical(const st_file *f, char *why, size_t cap) {
    st_write_item *items = calloc(f->n ? (size_t)f->n : 1, sizeof *items);
    for (int i = 0; i < f->n; i++)
        items[i] = (st_write_item){f->entries[i].name, f->entries[i].view};
    char out[256];
    tmp_path(out, sizeof out, "rewrite.safetensors");
    cnet_error err = {0};
    int rc = st_write(out, items, f->n, (const char *const *)f->meta_keys,
                      (const char *const *)f->meta_values, f->n_meta, &err);
    free(items);
    size_t la = 0, lb = 0;
    unsigned char *a = slurp(f->path, &la), *b = rc ? NULL : slurp(out, &lb);
    int same = a && b && la == lb && memcmp(a, b, la) == 0;
    free(a);
    free(b);
    unlink(out);
    if (rc)
        snprintf(why, cap, "rewrite failed: %.300s", err.msg);
    else if (!same)
        snprintf(why, cap, "rewrite differs from the original (%zu vs %zu bytes)", lb, la);
    return rc == CNET_OK && same;
}

/* Opens every .safetensors file in dir and checks it; counts them. */
static int check_all_in(const char *dir, int *opened) {
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
        if (!matches_plain_parse(&f, why, sizeof why) ||
            !rewrite_is_identical(&f, why, sizeof why)) {
            printf("    %s: %s\n", path, why);
            ok = 0;
        }
        (*opened)++;
        st_close(&f);
    }
    closedir(d);
    return ok;
}

static const char *const fixture_dirs[] = {"goldens", "tiny-sd/unet", "tiny-sd/vae",
                                           "tiny-sd/text_encoder", "tiny-sd/controlnet"};

static void test_open_and_rewrite_every_fixture_file(void) {
    int opened = 0;
    for (size_t i = 0; i < sizeof fixture_dirs / sizeof fixture_dirs[0]; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", fixtures(), fixture_dirs[i]);
        CHECK(check_all_in(dir, &opened), "files in %s", dir);
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

/* ---- writer ---------------------------------------------------------- */

static void test_write_exact_bytes(void) {
    /* The layout the Python library produces, derived by hand: compact JSON,
     * metadata first, spaces to a multiple of 8, the 4-byte dtype before the
     * 1-byte one whatever the key order. */
    const float a[2] = {1.0f, 2.0f};
    const uint8_t b[3] = {7, 8, 9};
    st_write_item items[] = {
        {"b", {.dtype = CNET_U8, .ndim = 1, .shape = {3}, .data = (void *)b}},
        {"a", {.dtype = CNET_F32, .ndim = 1, .shape = {2}, .data = (void *)a}},
    };
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    char path[256];
    tmp_path(path, sizeof path, "exact.safetensors");
    cnet_error err = {0};
    CHECK(st_write(path, items, 2, mk, mv, 1, &err) == CNET_OK, "%s", err.msg);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    unsigned char want[512];
    for (int i = 0; i < 8; i++) want[i] = (unsigned char)(hl >> (8 * i));
    memcpy(want + 8, json, jl);
    memset(want + 8 + jl, ' ', hl - jl);
    memcpy(want + 8 + hl, a, 8);
    memcpy(want + 8 + hl + 8, b, 3);
    size_t got_len;
    unsigned char *got = slurp(path, &got_len);
    int same = got && got_len == 8 + hl + 11 && memcmp(got, want, got_len) == 0;
    free(got);
    CHECK(same, "file bytes differ from the hand-built layout (len %zu, want %zu)", got_len,
          8 + hl + 11);
    CHECK(count_temp_files() == 0, "temp file left behind");
}

static void test_write_read_round_trip(void) {
    float f32[6] = {1, -2, 3.5f, 0, -0.0f, 1e-30f};
    uint16_t f16[5] = {0x3c00, 0x7c00, 0x0001, 0xfbff, 0x7e00};
    uint16_t bf16[4] = {0x3f80, 0xff80, 0x0001, 0x7fc0};
    int64_t i64 = -1234567890123LL;
    uint8_t u8[3] = {0, 128, 255};
    st_write_item items[] = {
        {"u8", {.dtype = CNET_U8, .ndim = 1, .shape = {3}, .data = u8}},
        {"f16", {.dtype = CNET_F16, .ndim = 1, .shape = {5}, .data = f16}},
        {"scalar", {.dtype = CNET_I64, .ndim = 0, .data = &i64}},
        {"empty", {.dtype = CNET_F32, .ndim = 2, .shape = {0, 4}, .data = NULL}},
        {"bf16", {.dtype = CNET_BF16, .ndim = 3, .shape = {1, 2, 2}, .data = bf16}},
        {"f32", {.dtype = CNET_F32, .ndim = 4, .shape = {1, 2, 3, 1}, .data = f32}},
        {"empty_u8", {.dtype = CNET_U8, .ndim = 1, .shape = {0}, .data = NULL}},
    };
    int n = (int)(sizeof items / sizeof items[0]);
    const char *mk[] = {"format", "note"}, *mv[] = {"pt", "caf\xc3\xa9 \"quoted\"\n"};
    char path[256];
    tmp_path(path, sizeof path, "round.safetensors");
    cnet_error err = {0};
    CHECK(st_write(path, items, n, mk, mv, 2, &err) == CNET_OK, "%s", err.msg);
    st_file f;
    CHECK(st_open(&f, path, &err) == CNET_OK, "%s", err.msg);
    int ok = f.n == n && f.n_meta == 2 && strcmp(st_meta(&f, "note"), mv[1]) == 0 &&
             strcmp(st_meta(&f, "format"), "pt") == 0;
    for (int i = 0; ok && i < n; i++) {
        const st_entry *e = &f.entries[i]; /* file order = the given order */
        const cnet_tensor *t = &items[i].view;
        ok = strcmp(e->name, items[i].name) == 0 && e->view.dtype == t->dtype &&
             e->view.ndim == t->ndim && e->nbytes == cnet_tensor_bytes(t) &&
             (uintptr_t)e->view.data % cnet_dtype_size(t->dtype) == 0 &&
             (e->nbytes == 0 || memcmp(e->view.data, t->data, e->nbytes) == 0);
        for (int d = 0; ok && d < t->ndim; d++) ok = e->view.shape[d] == t->shape[d];
        if (!ok) printf("    entry %d '%s' differs\n", i, e->name);
    }
    st_close(&f);
    CHECK(ok, "round trip");
}

static void test_write_refuses_bad_items(void) {
    float x[4] = {0};
    char path[256];
    tmp_path(path, sizeof path, "bad_items.safetensors");
    struct {
        st_write_item item[2];
        const char *want;
    } cases[] = {
        {{{"w", {.dtype = CNET_F32, .ndim = 5, .shape = {1, 1, 1, 1}, .data = x}}}, "'w'"},
        {{{"w", {.dtype = CNET_F32, .ndim = 2, .shape = {2, -2}, .data = x}}}, "invalid shape"},
        {{{"w", {.dtype = CNET_F32, .ndim = 1, .shape = {4}, .data = NULL}}}, "no data"},
        {{{"__metadata__", {.dtype = CNET_F32, .ndim = 1, .shape = {4}, .data = x}}},
         "not allowed"},
        {{{NULL, {.dtype = CNET_F32, .ndim = 1, .shape = {4}, .data = x}}}, "not allowed"},
        {{{"w\xff", {.dtype = CNET_F32, .ndim = 1, .shape = {4}, .data = x}}}, "UTF-8"},
        {{{"w", {.dtype = CNET_F32, .ndim = 1, .shape = {4}, .data = x}},
          {"w", {.dtype = CNET_U8, .ndim = 1, .shape = {4}, .data = x}}},
         "tensor 'w' given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnet_error err = {0};
        int n = cases[i].item[1].name ? 2 : 1;
        int rc = st_write(path, cases[i].item, n, NULL, NULL, 0, &err);
        CHECK(rc == CNET_EINVAL && strstr(err.msg, path) && strstr(err.msg, cases[i].want),
              "case %zu: rc %d '%s'", i, rc, err.msg);
    }
    const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
    st_write_item ok = {"w", {.dtype = CNET_F32, .ndim = 1, .shape = {4}, .data = x}};
    cnet_error err = {0};
    CHECK(st_write(path, &ok, 1, mk, mv, 2, &err) == CNET_EINVAL &&
              strstr(err.msg, "metadata 'k' given twice"),
          "duplicate metadata: '%s'", err.msg);
    CHECK(access(path, F_OK) != 0 && count_temp_files() == 0, "nothing may be written");
}

static void test_write_failure_keeps_old_file(void) {
    static float big[16384];
    float small[2] = {1, 2};
    char path[256];
    tmp_path(path, sizeof path, "keep.safetensors");
    st_write_item old = {"old", {.dtype = CNET_F32, .ndim = 1, .shape = {2}, .data = small}};
    cnet_error err = {0};
    CHECK(st_write(path, &old, 1, NULL, NULL, 0, &err) == CNET_OK, "%s", err.msg);
    size_t before_len;
    unsigned char *before = slurp(path, &before_len);

    /* A real I/O failure: the file size limit makes write() fail with EFBIG. */
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    lim = saved;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    st_write_item large = {"big", {.dtype = CNET_F32, .ndim = 1, .shape = {16384}, .data = big}};
    int rc = st_write(path, &large, 1, NULL, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, prev);
    size_t after_len;
    unsigned char *after = slurp(path, &after_len);
    int same = before && after && before_len == after_len && !memcmp(before, after, after_len);
    free(before);
    free(after);
    CHECK(rc == CNET_EIO && strstr(err.msg, "cannot write") && strstr(err.msg, path), "rc %d '%s'",
          rc, err.msg);
    CHECK(same, "existing file changed by a failed write");
    CHECK(count_temp_files() == 0, "temp file left after a failed write");

    /* rename() onto a directory fails after the data was written. */
    char dir[256];
    tmp_path(dir, sizeof dir, "is_a_dir.safetensors");
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    rc = st_write(dir, &old, 1, NULL, NULL, 0, &err);
    rmdir(dir);
    CHECK(rc == CNET_EIO && strstr(err.msg, "cannot rename"), "rc %d '%s'", rc, err.msg);
    CHECK(count_temp_files() == 0, "temp file left after a failed rename");

    char missing[256];
    tmp_path(missing, sizeof missing, "no/such/dir.safetensors");
    rc = st_write(missing, &old, 1, NULL, NULL, 0, &err);
    CHECK(rc == CNET_EIO && strstr(err.msg, "cannot create") && strstr(err.msg, missing),
          "rc %d '%s'", rc, err.msg);
}

/* ---- corpus of broken files ------------------------------------------ */

/* Writes the 8-byte length, the header and data_len zero bytes. */
static void write_raw(const char *path, uint64_t len_field, const char *header, size_t data_len) {
    size_t hl = strlen(header);
    unsigned char *buf = calloc(8 + hl + data_len + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len_field >> (8 * i));
    memcpy(buf + 8, header, hl);
    spill(path, buf, 8 + hl + data_len);
    free(buf);
}

static int refused(const char *path, int want_code, const char *want1, const char *want2) {
    st_file f;
    cnet_error err = {0};
    int rc = st_open(&f, path, &err);
    int ok = rc == want_code && strstr(err.msg, path) && (!want1 || strstr(err.msg, want1)) &&
             (!want2 || strstr(err.msg, want2)) && f.map == NULL && f.entries == NULL;
    if (!ok) printf("    %s: rc %d, message '%s'\n", path, rc, err.msg);
    if (rc == CNET_OK) st_close(&f);
    return ok;
}

#define W(name) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"

static void test_broken_headers_refused(void) {
    static const struct {
        const char *header; /* NULL: raw bytes below */
        size_t data;
        const char *want1, *want2;
    } cases[] = {
        {"{\"a\": {", 0, "not a valid UTF-8 JSON", NULL},
        {"{} x", 0, "not a valid UTF-8 JSON", NULL},
        {"{\"\xff\xfe\":{}}", 0, "not a valid UTF-8 JSON", NULL},
        {"{\"a\\u0000b\":{}}", 0, "not a valid UTF-8 JSON", NULL},
        {"[1,2]", 0, "header is a JSON array, expected an object", NULL},
        {"\"str\"", 0, "header is a JSON string", NULL},
        {"{" W("w") "[0,8]}," W("w") "[8,16]}}", 16, "duplicate", NULL},
        {"{\"w\":3}", 0, "tensor 'w'", "expected an object"},
        {"{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "'dtype'"},
        {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "tensor 'w'", "'shape'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor 'w'", "'data_offsets'"},
        {"{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'",
         "dtype is a JSON integer"},
        {"{\"w\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "tensor 'w'",
         "unsupported dtype 'F64'"},
        {"{\"w\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'",
         "unsupported dtype 'I32'"},
        {"{\"w\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "tensor 'w'",
         "unsupported dtype 'BOOL'"},
        {"{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w'",
         "unsupported dtype 'f32'"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":\"abc\",\"data_offsets\":[0,8]}}", 8, "tensor 'w'",
         "shape is a JSON string"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
         "tensor 'w'", "5 dims"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,8]}}", 8, "tensor 'w'",
         "shape[1] is -3"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "tensor 'w'",
         "shape[0] is a JSON real"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}",
         8, "tensor 'w'", "too large"},
        {"{" W("w") "[0,8,16]}}", 16, "tensor 'w'", "expected [begin, end]"},
        {"{" W("w") "{\"begin\":0}}}", 16, "tensor 'w'", "expected [begin, end]"},
        {"{" W("w") "[-1,7]}}", 16, "tensor 'w'", "data_offsets[0] is -1"},
        {"{" W("w") "[0,\"8\"]}}", 16, "tensor 'w'", "data_offsets[1] is a JSON string"},
        {"{" W("w") "[8,0]}}", 16, "tensor 'w'", "begin after end"},
        {"{" W("w") "[8,16]}}", 12, "tensor 'w'", "past the data block of 12 bytes"},
        {"{" W("w") "[0,99999999999999999999]}}", 16, "not a valid UTF-8 JSON", NULL},
        {"{\"conv_in.weight\":{\"dtype\":\"F32\",\"shape\":[320,4,3,3],\"data_offsets\":[0,100]}}",
         100, "tensor 'conv_in.weight'",
         "data_offsets [0, 100] hold 100 bytes but shape [320,4,3,3] of F32 needs 46080"},
        {"{" W("a") "[0,8]}," W("b") "[4,12]}}", 16, "tensors 'a' [0, 8] and 'b' [4, 12] overlap",
         NULL},
        {"{\"big\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}," W(
             "x") "[56,64]}," W("y") "[8,16]}}",
         64, "overlap", "'big' [0, 64]"},
        {"{" W("a") "[0,8]}," W("b") "[0,8]}}", 8, "tensors 'a' [0, 8] and 'b' [0, 8] overlap",
         NULL},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k' is a JSON integer", NULL},
        {"{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is a JSON array", NULL},
        {"{\"__metadata__\":{\"k\":\"v\",\"n\":null}}", 0, "__metadata__ 'n' is a JSON null", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256], name[64];
        snprintf(name, sizeof name, "broken_%02zu.safetensors", i);
        tmp_path(path, sizeof path, name);
        write_raw(path, strlen(cases[i].header), cases[i].header, cases[i].data);
        EXPECT(refused(path, CNET_EFORMAT, cases[i].want1, cases[i].want2), "case %zu", i);
    }
}

static void test_broken_lengths_refused(void) {
    char path[256];
    tmp_path(path, sizeof path, "short.safetensors");
    CHECK(spill(path, "", 0) && refused(path, CNET_EFORMAT, "0 bytes, too short", NULL), "empty");
    CHECK(spill(path, "\x02\0\0\0\0\0\0", 7) && refused(path, CNET_EFORMAT, "too short", NULL),
          "7 bytes");
    write_raw(path, 1000, "{}", 40);
    CHECK(refused(path, CNET_EFORMAT, "header length 1000 is larger than the 42 bytes", NULL),
          "header length past the end");
    write_raw(path, SAFETENSORS_MAX_HEADER + 1ull, "{}", 0);
    CHECK(refused(path, CNET_ELIMIT, "exceeds the limit", NULL), "header over 100 MB");
    write_raw(path, UINT64_MAX, "{}", 0);
    CHECK(refused(path, CNET_ELIMIT, "18446744073709551615", NULL), "2^64-1 header length");
    char missing[256];
    tmp_path(missing, sizeof missing, "does_not_exist.safetensors");
    CHECK(refused(missing, CNET_EIO, "cannot open", NULL), "missing file");
    CHECK(refused(tmpdir, CNET_EIO, "not a regular file", NULL), "directory");
}

static void test_valid_edge_cases_accepted(void) {
    static const char *headers[] = {
        "{}",
        "{\"__metadata__\":{}}",
        "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}",
        /* An empty tensor occupies no bytes and overlaps nothing. */
        "{" W("a") "[0,8]},\"e\":{\"dtype\":\"F16\",\"shape\":[0,3],\"data_offsets\":[4,4]}}",
        /* Unknown fields are ignored; gaps and trailing bytes are tolerated. */
        "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[2,6],\"extra\":1}}  ",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char path[256];
        tmp_path(path, sizeof path, "valid.safetensors");
        write_raw(path, strlen(headers[i]), headers[i], 9);
        st_file f;
        cnet_error err = {0};
        CHECK(st_open(&f, path, &err) == CNET_OK, "header %zu: %s", i, err.msg);
        st_close(&f);
    }
}

/* A valid file cut at every length is refused, naming the file. */
static void test_truncated_files_refused(void) {
    uint8_t u8[5] = {1, 2, 3, 4, 5};
    float f32[3] = {1, 2, 3};
    st_write_item items[] = {
        {"u8", {.dtype = CNET_U8, .ndim = 1, .shape = {5}, .data = u8}},
        {"f32", {.dtype = CNET_F32, .ndim = 2, .shape = {1, 3}, .data = f32}},
    };
    const char *mk[] = {"k"}, *mv[] = {"v"};
    char whole[256], cut[256];
    tmp_path(whole, sizeof whole, "whole.safetensors");
    tmp_path(cut, sizeof cut, "cut.safetensors");
    cnet_error err = {0};
    CHECK(st_write(whole, items, 2, mk, mv, 1, &err) == CNET_OK, "%s", err.msg);
    size_t len;
    unsigned char *buf = slurp(whole, &len);
    CHECK(buf, "read back");
    int ok = 1;
    for (size_t n = 0; n < len && ok; n++) {
        spill(cut, buf, n);
        st_file f;
        ok = st_open(&f, cut, &err) != CNET_OK && strstr(err.msg, cut) != NULL;
        if (!ok) printf("    cut at %zu of %zu accepted or unnamed: '%s'\n", n, len, err.msg);
    }
    free(buf);
    CHECK(ok, "every truncation refused");

    /* And a real weight file cut inside its data block names the tensor. */
    char src[4096];
    snprintf(src, sizeof src, "%s/tiny-sd/vae/diffusion_pytorch_model.safetensors", fixtures());
    buf = slurp(src, &len);
    CHECK(buf, "read %s", src);
    for (int k = 1; k <= 64 && ok; k++) {
        size_t n = len - 1 - (len - 1) * (size_t)(k - 1) / 64 / 2; /* the last half */
        spill(cut, buf, n);
        st_file f;
        ok = st_open(&f, cut, &err) != CNET_OK && strstr(err.msg, cut) &&
             (strstr(err.msg, "tensor '") || strstr(err.msg, "header length"));
        if (!ok) printf("    cut at %zu: '%s'\n", n, err.msg);
    }
    free(buf);
    CHECK(ok, "truncated weight files refused");
}

/* Random byte corruption of a valid header: opened or refused, never a
 * crash (ASan and UBSan watch this one). */
static void test_corrupted_headers_survive(void) {
    char src[4096], path[256];
    snprintf(src, sizeof src, "%s/goldens/vae.safetensors", fixtures());
    tmp_path(path, sizeof path, "fuzz.safetensors");
    size_t len;
    unsigned char *orig = slurp(src, &len);
    CHECK(orig && len > 1024, "read %s", src);
    unsigned char *buf = malloc(len);
    uint64_t state = 12345;
    int refusals = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(buf, orig, len);
        for (int k = 0; k < 1 + it % 4; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(state >> 33) % 1024;
            buf[pos] = (unsigned char)(state >> 20);
        }
        spill(path, buf, len);
        st_file f;
        cnet_error err = {0};
        if (st_open(&f, path, &err) == CNET_OK)
            st_close(&f);
        else if (strstr(err.msg, path))
            refusals++;
        else {
            printf("    iteration %d: message without the file name: '%s'\n", it, err.msg);
            break;
        }
    }
    free(buf);
    free(orig);
    CHECK(refusals > 100, "only %d of 400 corruptions refused", refusals);
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temp dir: %s\n", strerror(errno));
        return 1;
    }
    RUN(test_open_and_rewrite_every_fixture_file);
    RUN(test_golden_facts);
    RUN(test_weight_shapes_match_configs);
    RUN(test_write_exact_bytes);
    RUN(test_write_read_round_trip);
    RUN(test_write_refuses_bad_items);
    RUN(test_write_failure_keeps_old_file);
    RUN(test_broken_headers_refused);
    RUN(test_broken_lengths_refused);
    RUN(test_valid_edge_cases_accepted);
    RUN(test_truncated_files_refused);
    RUN(test_corrupted_headers_survive);
    remove_tmpdir();
    return harness_done();
}
