/* `cnet init-model` end to end, through the real binary ($BUILD/cnet):
 *   - the tiny preset: every component loads with its *_open function and
 *     runs a forward with finite, O(1) outputs; the generated tokenizer
 *     loads and turns the words it was learned from into single tokens; its
 *     vocabulary size is the text encoder's;
 *   - the ControlNet is ControlNetModel.from_unet of the UNet: its outputs
 *     are exactly zero (zero convs), and non-zero with --nonzero-controlnet;
 *   - every weights file reloads bit-identically (load, save, compare bytes
 *     per tensor), the same seed gives the same bytes, another seed others;
 *   - --from-config tests/fixtures/small-sd works: configs copied
 *     byte-for-byte, every component loads (parameter counts of its README);
 *   - --dtype f16 / bf16: every tensor of every file is the float32 file's
 *     value rounded to that dtype (same seed);
 *   - --preset sd15 --configs-only: no weights written; the configs load and
 *     describe Stable Diffusion 1.5 (parameter counts of the published
 *     models, key numbers of each config); the tokenizer's ids stay below
 *     CLIP's vocabulary;
 *   - --preset sdxl --configs-only: the configs describe Stable Diffusion XL
 *     base 1.0 (its published parameter counts, counted from the declared
 *     tables without allocating; key numbers of each config; tokenizer_2
 *     pads with "!"); --preset sdxl-small keeps the layout at reduced width;
 *   - --from-config tests/fixtures/tiny-sdxl brings text_encoder_2/ and
 *     tokenizer_2/ and generates loadable weights for both encoders;
 *   - a non-empty --out and an unknown preset or dtype are refused. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/models/clip_text.h"
#include "engine/config/config.h"
#include "engine/models/controlnet.h"
#include "engine/core/safetensors.h"
#include "engine/text/tokenizer.h"
#include "engine/models/unet.h"
#include "engine/models/vae.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static const char *fixtures(void) { return harness_fixtures(); }

static char tmp[PATH_MAX];

/* $BUILD/cnet init-model with args; stdout and stderr to /dev/null. */
static int run_init(const char *const *args) {
    const char *build = getenv("BUILD");
    char bin[PATH_MAX];
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    const char *argv[16] = {bin, "init-model"};
    int n = 2;
    for (int i = 0; args[i] && n < 15; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *sub(const char *dir, const char *rel) {
    static char bufs[4][PATH_MAX + 64];
    static int k;
    k = (k + 1) % 4;
    snprintf(bufs[k], sizeof bufs[k], "%s/%s", dir, rel);
    return bufs[k];
}

/* One tiny pipeline per seed/flag, made once. */
static char tiny[PATH_MAX + 16], tiny_same[PATH_MAX + 16], tiny_other[PATH_MAX + 16],
    tiny_nonzero[PATH_MAX + 16];

/* Max |x| and whether all are finite, of n device (CPU) floats. */
static double max_abs(const float *x, size_t n, int *finite) {
    double m = 0;
    *finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) *finite = 0;
        m = fmax(m, fabs(x[i]));
    }
    return m;
}

static void test_tiny_tokenizer_and_text(void) {
    tokenizer *tok;
    cnet_error err;
    CHECK(tokenizer_load(&tok, sub(tiny, "tokenizer"), &err) == 0, "%s", err.msg);
    cnet_clip_text_config cfg;
    int rc = cnet_clip_text_config_load(&cfg, sub(tiny, "text_encoder/config.json"), &err);
    EXPECT(rc == 0 && cfg.vocab_size == tokenizer_vocab_size(tok), "vocab %d vs tokenizer %lld",
           cfg.vocab_size, (long long)tokenizer_vocab_size(tok));
    const char *prompt = "a red circle on a blue background";
    int64_t ids[77], mask[77];
    rc = tokenizer_encode(tok, prompt, strlen(prompt), ids, mask, &err);
    EXPECT(rc == 0, "%s", err.msg);
    int n = 0;
    for (int i = 0; i < 77; i++) n += (int)mask[i];
    EXPECT(n == 9 && ids[0] == tokenizer_bos_id(tok) && ids[8] == tokenizer_eos_id(tok),
           "'%s' gave %d tokens, want BOS + 7 words + EOS", prompt, n);
    int64_t *full = NULL;
    size_t nfull = 0;
    rc = tokenizer_encode_full(tok, "xylophones", 10, &full, &nfull, &err);
    EXPECT(rc == 0 && nfull > 3, "an unseen word should split into pieces (%zu ids)", nfull);
    for (size_t i = 0; rc == 0 && i < nfull; i++)
        EXPECT(full[i] >= 0 && full[i] < tokenizer_vocab_size(tok), "id %lld", (long long)full[i]);
    free(full);

    cnet_backend be;
    clip_text_model m;
    cnet_arena scratch = {0};
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    rc = clip_text_open(&m, &be, sub(tiny, "text_encoder"), &err);
    float *hidden = NULL, *pooled = NULL;
    if (!rc) {
        hidden = be.alloc(&be, (size_t)77 * m.hidden * sizeof(float));
        pooled = be.alloc(&be, (size_t)m.hidden * sizeof(float));
        rc = cnet_arena_init(&scratch, &be, clip_text_scratch_bytes(&m, 1, 77), "t", &err);
    }
    if (!rc) rc = clip_text_forward(&m, &scratch, hidden, pooled, ids, 1, 77, 0, &err);
    int finite = 0;
    double mx = rc ? 0 : max_abs(hidden, (size_t)77 * m.hidden, &finite);
    EXPECT(rc == 0, "%s", err.msg);
    EXPECT(finite && mx > 0.1 && mx < 100, "text encoder output max |x| %g", mx);
    if (hidden) be.free(&be, hidden);
    if (pooled) be.free(&be, pooled);
    cnet_arena_free(&scratch);
    if (!rc) clip_text_free(&m);
    cnet_backend_free(&be);
    tokenizer_free(tok);
}

static void test_tiny_vae(void) {
    cnet_backend be;
    vae_model m;
    cnet_arena scratch = {0};
    cnet_error err;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    int rc = vae_open(&m, &be, sub(tiny, "vae"), &err);
    if (rc) cnet_backend_free(&be);
    CHECK(rc == 0, "%s", err.msg);
    const int H = m.cfg.sample_size, f = vae_factor(&m), h = H / f, Lc = m.cfg.latent_channels;
    float *x = be.alloc(&be, (size_t)H * H * 3 * sizeof(float));
    float *mom = be.alloc(&be, (size_t)h * h * 2 * Lc * sizeof(float));
    float *img = be.alloc(&be, (size_t)H * H * 3 * sizeof(float));
    be.philox_normal(&be, x, (long)H * H * 3, 1, 0);
    rc = cnet_arena_init(&scratch, &be, vae_scratch_bytes(&m, 1, H, H), "v", &err);
    if (!rc) rc = vae_encode(&m, &scratch, mom, x, 1, H, H, &err);
    int f1 = 0, f2 = 0;
    double m1 = rc ? 0 : max_abs(mom, (size_t)h * h * 2 * Lc, &f1);
    if (!rc) rc = vae_decode(&m, &scratch, img, mom, 1, h, h, &err);
    double m2 = rc ? 0 : max_abs(img, (size_t)H * H * 3, &f2);
    EXPECT(rc == 0, "%s", err.msg);
    EXPECT(f1 && f2 && m1 > 0.01 && m1 < 100 && m2 > 0.01 && m2 < 100, "VAE outputs max |x| %g, %g",
           m1, m2);
    be.free(&be, x);
    be.free(&be, mom);
    be.free(&be, img);
    cnet_arena_free(&scratch);
    vae_free(&m);
    cnet_backend_free(&be);
}

/* ControlNet + UNet of pipeline dir at its sample size; *cn_max gets the
 * largest |residual|, *unet_max the largest |UNet output|. */
static int run_cn_unet(const char *dir, double *cn_max, double *unet_max, cnet_error *err) {
    cnet_backend be;
    unet_model u;
    controlnet_model c;
    cnet_arena scratch = {0};
    int rc = cnet_backend_cpu_init(&be, err);
    if (rc) return rc;
    memset(&u, 0, sizeof u);
    memset(&c, 0, sizeof c);
    if (!(rc = unet_open(&u, &be, sub(dir, "unet"), err)))
        rc = controlnet_open(&c, &be, sub(dir, "controlnet"), err);
    const cnet_unet_config *L = &u.enc.cfg;
    const int B = 2, h = L->sample_size, Nt = 77, f = rc ? 1 : controlnet_image_factor(&c);
    unet_sizes s;
    float *down[UNET_MAX_SKIPS] = {0}, *mid = NULL;
    if (!rc) rc = unet_encoder_sizes(&u.enc, B, h, h, &s, err);
    float *x = NULL, *text = NULL, *cond = NULL, *out = NULL;
    if (!rc) {
        x = be.alloc(&be, (size_t)B * h * h * L->in_channels * 4);
        text = be.alloc(&be, (size_t)B * Nt * L->cross_attention_dim[0] * 4);
        cond = be.alloc(&be, (size_t)B * h * f * h * f * 3 * 4);
        out = be.alloc(&be, (size_t)B * h * h * L->out_channels * 4);
        mid = be.alloc(&be, s.mid_floats * 4);
        for (int i = 0; i < s.n_skips; i++) down[i] = be.alloc(&be, s.skip_floats[i] * 4);
        be.philox_normal(&be, x, (long)B * h * h * L->in_channels, 1, 0);
        be.philox_normal(&be, text, (long)B * Nt * L->cross_attention_dim[0], 2, 0);
        be.philox_normal(&be, cond, (long)B * h * f * h * f * 3, 3, 0);
        size_t a = unet_scratch_bytes(&u, B, h, h, Nt),
               b = controlnet_scratch_bytes(&c, B, h, h, Nt);
        rc = cnet_arena_init(&scratch, &be, a > b ? a : b, "s", err);
    }
    const float t[2] = {10.0f, 900.0f};
    if (!rc)
        rc = controlnet_forward(&c, &scratch, down, mid, x, cond, t, text, NULL, 1.0f, 0, B, h, h,
                                Nt, NULL, NULL, err);
    if (!rc)
        rc = unet_forward(&u, &scratch, out, x, t, text, NULL, (const float *const *)down, mid, B,
                          h, h, Nt, NULL, NULL, err);
    int finite = 1, fi;
    *cn_max = 0;
    for (int i = 0; !rc && i < s.n_skips; i++) {
        *cn_max = fmax(*cn_max, max_abs(down[i], s.skip_floats[i], &fi));
        finite &= fi;
    }
    if (!rc) {
        *cn_max = fmax(*cn_max, max_abs(mid, s.mid_floats, &fi));
        finite &= fi;
        *unet_max = max_abs(out, (size_t)B * h * h * L->out_channels, &fi);
        finite &= fi;
        if (!finite) rc = cnet_fail(err, CNET_EINVAL, "non-finite outputs");
    }
    for (int i = 0; i < UNET_MAX_SKIPS; i++)
        if (down[i]) be.free(&be, down[i]);
    float *bufs[] = {mid, x, text, cond, out};
    for (int i = 0; i < 5; i++)
        if (bufs[i]) be.free(&be, bufs[i]);
    cnet_arena_free(&scratch);
    controlnet_free(&c);
    unet_free(&u);
    cnet_backend_free(&be);
    return rc;
}

static void test_tiny_unet_controlnet(void) {
    double cn_max = -1, unet_max = -1;
    cnet_error err;
    CHECK(run_cn_unet(tiny, &cn_max, &unet_max, &err) == 0, "%s", err.msg);
    EXPECT(cn_max == 0.0, "from_unet ControlNet residuals should be exactly 0, max %g", cn_max);
    EXPECT(unet_max > 0.01 && unet_max < 100, "UNet output max |x| %g", unet_max);
    CHECK(run_cn_unet(tiny_nonzero, &cn_max, &unet_max, &err) == 0, "%s", err.msg);
    EXPECT(cn_max > 1e-3 && cn_max < 100, "--nonzero-controlnet residuals max |x| %g", cn_max);
    EXPECT(unet_max > 0.01 && unet_max < 100, "UNet output max |x| %g", unet_max);
}

/* Every tensor of a and b: same names, shapes and bytes (want_equal) or at
 * least one tensor different (!want_equal). */
static int same_tensors(const char *pa, const char *pb, int *equal, cnet_error *err) {
    st_file a, b;
    int rc = st_open(&a, pa, err);
    if (rc) return rc;
    if ((rc = st_open(&b, pb, err))) {
        st_close(&a);
        return rc;
    }
    *equal = a.n == b.n;
    int names_match = a.n == b.n;
    for (int i = 0; i < a.n && names_match; i++) {
        const st_entry *x = &a.entries[i], *y = st_find(&b, x->name);
        if (!y || x->nbytes != y->nbytes || x->view.ndim != y->view.ndim) {
            names_match = 0;
            break;
        }
        if (memcmp(x->view.data, y->view.data, x->nbytes)) *equal = 0;
    }
    if (!names_match) {
        *equal = 0;
        rc = cnet_fail(err, CNET_EFORMAT, "%s and %s hold different tensors", pa, pb);
    }
    st_close(&a);
    st_close(&b);
    return rc;
}

static const char *const weight_files[] = {
    "unet/diffusion_pytorch_model.safetensors", "controlnet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"};

static void test_tiny_reload_and_seeds(void) {
    cnet_backend be;
    cnet_error err;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 4; k++) {
        char resaved[PATH_MAX + 32];
        snprintf(resaved, sizeof resaved, "%s/resaved.safetensors", tmp);
        cnet_params *p = NULL;
        unet_model u;
        controlnet_model c;
        vae_model v;
        clip_text_model t;
        int rc;
        switch (k) {
        case 0:
            rc = unet_open(&u, &be, sub(tiny, "unet"), &err), p = &u.params;
            break;
        case 1:
            rc = controlnet_open(&c, &be, sub(tiny, "controlnet"), &err), p = &c.params;
            break;
        case 2:
            rc = vae_open(&v, &be, sub(tiny, "vae"), &err), p = &v.params;
            break;
        default:
            rc = clip_text_open(&t, &be, sub(tiny, "text_encoder"), &err), p = &t.params;
        }
        EXPECT(rc == 0, "%s", err.msg);
        if (rc) continue;
        rc = params_save(p, resaved, NULL, NULL, 0, &err);
        int equal = 0;
        if (!rc) rc = same_tensors(sub(tiny, weight_files[k]), resaved, &equal, &err);
        EXPECT(rc == 0 && equal, "%s does not reload bit-identically: %s", weight_files[k],
               rc ? err.msg : "bytes differ");
        if (!rc)
            rc = same_tensors(sub(tiny, weight_files[k]), sub(tiny_same, weight_files[k]), &equal,
                              &err);
        EXPECT(rc == 0 && equal, "%s: seed 7 twice gave different weights", weight_files[k]);
        if (!rc)
            rc = same_tensors(sub(tiny, weight_files[k]), sub(tiny_other, weight_files[k]), &equal,
                              &err);
        EXPECT(rc == 0 && !equal, "%s: seeds 7 and 8 gave the same weights", weight_files[k]);
        switch (k) {
        case 0:
            unet_free(&u);
            break;
        case 1:
            controlnet_free(&c);
            break;
        case 2:
            vae_free(&v);
            break;
        default:
            clip_text_free(&t);
        }
    }
    cnet_backend_free(&be);
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = file_read(a, &na), *y = file_read(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* --from-config of a folder without controlnet/: the ControlNet derived from
 * its UNet takes the conditioning embedding levels of its VAE (tiny-sd's 2x
 * VAE: 2 of from_unet's 4), so `cnet generate` loads the pipeline. */
static void test_from_config_derives_controlnet_for_the_vae(void) {
    char src[PATH_MAX + 16], out[PATH_MAX + 16], cmd[3 * PATH_MAX];
    snprintf(src, sizeof src, "%s/no_controlnet", tmp);
    snprintf(out, sizeof out, "%s/derived", tmp);
    snprintf(cmd, sizeof cmd, "cp -r %s/tiny-sd %s && rm -rf %s/controlnet", fixtures(), src, src);
    CHECK(system(cmd) == 0, "%s", cmd);
    const char *args[] = {"--out", out, "--from-config", src, NULL};
    CHECK(run_init(args) == 0, "init-model --from-config %s failed", src);
    json_t *cn = json_load_file(sub(out, "controlnet/config.json"), 0, NULL);
    const json_t *levels = json_object_get(cn, "conditioning_embedding_out_channels");
    EXPECT(json_array_size(levels) == 2 && json_integer_value(json_array_get(levels, 0)) == 16 &&
               json_integer_value(json_array_get(levels, 1)) == 32,
           "conditioning_embedding_out_channels of %zu levels for a 2x VAE",
           json_array_size(levels));
    json_decref(cn);
    cnet_backend be;
    cnet_error err = {0};
    controlnet_model c;
    vae_model v;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    if (controlnet_open(&c, &be, sub(out, "controlnet"), &err) == 0) {
        if (vae_open(&v, &be, sub(out, "vae"), &err) == 0) {
            EXPECT(controlnet_image_factor(&c) == vae_factor(&v),
                   "the embedding downsamples %dx, "
                   "the VAE %dx",
                   controlnet_image_factor(&c), vae_factor(&v));
            vae_free(&v);
        } else {
            EXPECT(0, "%s", err.msg);
        }
        controlnet_free(&c);
    } else {
        EXPECT(0, "%s", err.msg);
    }
    cnet_backend_free(&be);
}

static void test_from_config_small(void) {
    char src[PATH_MAX], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/small-sd", fixtures());
    if (access(sub(src, "unet/config.json"), R_OK) != 0) {
        printf("    (no small-sd in %s: skipped)\n", fixtures());
        return;
    }
    snprintf(out, sizeof out, "%s/small", tmp);
    const char *args[] = {"--out", out, "--from-config", src, "--seed", "1", NULL};
    CHECK(run_init(args) == 0, "init-model --from-config %s failed", src);
    static const char *const copied[] = {"unet/config.json",
                                         "vae/config.json",
                                         "text_encoder/config.json",
                                         "controlnet/config.json",
                                         "scheduler/scheduler_config.json",
                                         "tokenizer/vocab.json",
                                         "tokenizer/merges.txt",
                                         "model_index.json"};
    for (int i = 0; i < 8; i++)
        EXPECT(same_file(sub(src, copied[i]), sub(out, copied[i])), "%s not copied as is",
               copied[i]);
    cnet_backend be;
    cnet_error err;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    unet_model u;
    controlnet_model c;
    vae_model v;
    clip_text_model t;
    /* The counts small-sd/README.md states. */
    int rc = unet_open(&u, &be, sub(out, "unet"), &err);
    EXPECT(rc == 0 && u.params.n > 0, "%s", err.msg);
    size_t n = 0;
    for (int i = 0; !rc && i < u.params.n; i++) n += u.params.items[i].numel;
    EXPECT(rc || n == 37522628, "UNet has %zu parameters, README says 37,522,628", n);
    if (!rc) unet_free(&u);
    rc = controlnet_open(&c, &be, sub(out, "controlnet"), &err);
    n = 0;
    for (int i = 0; !rc && i < c.params.n; i++) n += c.params.items[i].numel;
    EXPECT(rc == 0 && n == 16354192, "ControlNet: %s / %zu parameters", rc ? err.msg : "", n);
    if (!rc) controlnet_free(&c);
    rc = vae_open(&v, &be, sub(out, "vae"), &err);
    n = 0;
    for (int i = 0; !rc && i < v.params.n; i++) n += v.params.items[i].numel;
    EXPECT(rc == 0 && n == 5252487, "VAE: %s / %zu parameters", rc ? err.msg : "", n);
    if (!rc) vae_free(&v);
    rc = clip_text_open(&t, &be, sub(out, "text_encoder"), &err);
    n = 0;
    for (int i = 0; !rc && i < t.params.n; i++) n += t.params.items[i].numel;
    EXPECT(rc == 0 && n == 29180160, "text encoder: %s / %zu parameters", rc ? err.msg : "", n);
    if (!rc) clip_text_free(&t);
    cnet_backend_free(&be);
    const char *again[] = {"--out", out, "--preset", "tiny", NULL};
    EXPECT(run_init(again) == 1, "a non-empty --out was not refused");
}

/* Each tensor of the half-precision file `half` equals the float32 file's
 * value rounded to its dtype. */
static int rounded_copy(const char *f32_path, const char *half_path, cnet_dtype dtype,
                        int *mismatches, cnet_error *err) {
    st_file a, b;
    int rc = st_open(&a, f32_path, err);
    if (rc) return rc;
    if ((rc = st_open(&b, half_path, err))) {
        st_close(&a);
        return rc;
    }
    *mismatches = a.n != b.n;
    for (int i = 0; i < a.n && !*mismatches; i++) {
        const st_entry *x = &a.entries[i], *y = st_find(&b, x->name);
        if (!y || y->view.dtype != dtype || x->view.dtype != CNET_F32 ||
            cnet_tensor_numel(&x->view) != cnet_tensor_numel(&y->view)) {
            (*mismatches)++;
            break;
        }
        const int64_t n = cnet_tensor_numel(&x->view);
        for (int64_t k = 0; k < n; k++) {
            float v;
            uint16_t h, want;
            memcpy(&v, (const char *)x->view.data + 4 * k, 4);
            memcpy(&h, (const char *)y->view.data + 2 * k, 2);
            want = dtype == CNET_F16 ? cnet_f32_to_f16(v) : cnet_f32_to_bf16(v);
            if (h != want) (*mismatches)++;
        }
    }
    st_close(&a);
    st_close(&b);
    return 0;
}

static void test_tiny_half_dtypes(void) {
    static const struct {
        const char *flag;
        cnet_dtype dtype;
    } cases[] = {{"f16", CNET_F16}, {"bf16", CNET_BF16}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char dir[PATH_MAX + 32];
        snprintf(dir, sizeof dir, "%s/tiny_%s", tmp, cases[c].flag);
        const char *args[] = {"--out", dir,       "--preset",    "tiny", "--seed",
                              "7",     "--dtype", cases[c].flag, NULL};
        CHECK(run_init(args) == 0, "init-model --dtype %s failed", cases[c].flag);
        for (size_t i = 0; i < sizeof weight_files / sizeof weight_files[0]; i++) {
            cnet_error err;
            int bad = 0;
            CHECK(rounded_copy(sub(tiny, weight_files[i]), sub(dir, weight_files[i]),
                               cases[c].dtype, &bad, &err) == 0,
                  "%s", err.msg);
            CHECK(bad == 0, "%s (%s): %d values are not the float32 ones rounded", weight_files[i],
                  cases[c].flag, bad);
        }
        /* And the loader takes them: the UNet opens from the f16 file. */
        cnet_backend be;
        unet_model m;
        cnet_error err;
        CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
        int rc = unet_open(&m, &be, sub(dir, "unet"), &err);
        if (!rc) unet_free(&m);
        cnet_backend_free(&be);
        CHECK(rc == 0, "%s: %s", cases[c].flag, err.msg);
    }
    const char *bad_dtype[] = {"--out", sub(tmp, "tiny_f8"), "--preset", "tiny", "--dtype", "f8",
                               NULL};
    CHECK(run_init(bad_dtype) == 2, "--dtype f8 was accepted");
}

/* Parameter counts of Stable Diffusion 1.5's models: the published
 * sum(p.numel()) of runwayml/stable-diffusion-v1-5's UNet, VAE and CLIP
 * ViT-L/14 text model; the ControlNet's summed by hand over diffusers'
 * ControlNetModel module tree (encoder copy, conditioning embedding
 * 3-16-32-96-256-320, 12 + 1 zero convs), the same sum giving the UNet's
 * published figure. */
#define SD15_UNET_PARAMS 859520964LL
#define SD15_VAE_PARAMS 83653863LL
#define SD15_TEXT_PARAMS 123060480LL
#define SD15_CONTROLNET_PARAMS 361279120LL

/* PyTorch's sum(p.numel()) of a declared table (its block also holds
 * alignment padding). */
static long long param_count(const cnet_params *p) {
    long long n = 0;
    for (int i = 0; i < p->n; i++) n += (long long)p->items[i].numel;
    return n;
}

/* Runs init-model --preset preset --configs-only into tmp/preset (path in
 * dir) and checks it wrote no weights file. */
static void configs_only(const char *preset, char dir[PATH_MAX + 16]) {
    snprintf(dir, PATH_MAX + 16, "%s/%s", tmp, preset);
    const char *args[] = {"--out", dir, "--preset", preset, "--configs-only", NULL};
    CHECK(run_init(args) == 0, "init-model --preset %s --configs-only failed", preset);
    struct stat st;
    for (size_t i = 0; i < sizeof weight_files / sizeof weight_files[0]; i++)
        CHECK(stat(sub(dir, weight_files[i]), &st) != 0, "--configs-only wrote %s",
              weight_files[i]);
}

/* Declared (never allocated) parameter counts of dir's unet, controlnet,
 * vae, text_encoder and (n_text 2: SDXL) text_encoder_2 (a failed check on
 * error). */
static void declared_counts(const char *dir, int n_text, long long counts[5]) {
    cnet_error err;
    cnet_unet_config u, c;
    cnet_vae_config v;
    cnet_clip_text_config t[2];
    CHECK(cnet_unet_config_load(&u, sub(dir, "unet/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_controlnet_config_load(&c, sub(dir, "controlnet/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(cnet_vae_config_load(&v, sub(dir, "vae/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_clip_text_config_load(&t[0], sub(dir, "text_encoder/config.json"), &err) == 0, "%s",
          err.msg);
    if (n_text == 2)
        CHECK(cnet_clip_text_config_load(&t[1], sub(dir, "text_encoder_2/config.json"), &err) == 0,
              "%s", err.msg);
    unet_model um;
    controlnet_model cm;
    vae_model vm;
    clip_text_model tm;
    int rc = unet_declare(&um, NULL, &u, &err);
    counts[0] = param_count(&um.params);
    unet_free(&um);
    CHECK(rc == 0, "%s", err.msg);
    rc = controlnet_declare(&cm, NULL, &c, &err);
    counts[1] = param_count(&cm.params);
    controlnet_free(&cm);
    CHECK(rc == 0, "%s", err.msg);
    rc = vae_declare(&vm, NULL, &v, &err);
    counts[2] = param_count(&vm.params);
    vae_free(&vm);
    CHECK(rc == 0, "%s", err.msg);
    for (int k = 0; k < n_text; k++) {
        rc = clip_text_declare(&tm, NULL, &t[k], &err);
        counts[3 + k] = param_count(&tm.params);
        clip_text_free(&tm);
        CHECK(rc == 0, "%s", err.msg);
    }
}

static void test_sd15_configs(void) {
    char dir[PATH_MAX + 16];
    configs_only("sd15", dir);
    struct stat st;
    CHECK(stat(sub(dir, "model_index.json"), &st) == 0, "no model_index.json");

    cnet_error err;
    cnet_unet_config u, c;
    cnet_vae_config v;
    cnet_clip_text_config t;
    cnet_sched_config sc;
    CHECK(cnet_unet_config_load(&u, sub(dir, "unet/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_controlnet_config_load(&c, sub(dir, "controlnet/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(cnet_vae_config_load(&v, sub(dir, "vae/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_clip_text_config_load(&t, sub(dir, "text_encoder/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(cnet_sched_config_load(&sc, sub(dir, "scheduler/scheduler_config.json"), -1, &err) == 0,
          "%s", err.msg);
    const int unet_ch[4] = {320, 640, 1280, 1280}, vae_ch[4] = {128, 256, 512, 512};
    CHECK(u.n_blocks == 4 && !memcmp(u.block_out_channels, unet_ch, sizeof unet_ch),
          "unet block_out_channels");
    CHECK(u.layers_per_block[0] == 2 && u.heads[0] == 8 && u.heads[3] == 8 &&
              u.cross_attention_dim[0] == 768 && u.sample_size == 64 && u.norm_num_groups == 32 &&
              u.time_embed_dim == 1280 && u.down_block_types[3] != u.down_block_types[0],
          "unet: layers %d heads %d cross %d sample %d groups %d temb %d", u.layers_per_block[0],
          u.heads[0], u.cross_attention_dim[0], u.sample_size, u.norm_num_groups, u.time_embed_dim);
    CHECK(v.n_blocks == 4 && !memcmp(v.block_out_channels, vae_ch, sizeof vae_ch) &&
              v.layers_per_block == 2 && v.sample_size == 512 && v.latent_channels == 4 &&
              fabsf(v.scaling_factor - 0.18215f) < 1e-7f,
          "vae: blocks %d layers %d sample %d latent %d scaling %g", v.n_blocks, v.layers_per_block,
          v.sample_size, v.latent_channels, (double)v.scaling_factor);
    CHECK(t.num_hidden_layers == 12 && t.hidden_size == 768 && t.num_attention_heads == 12 &&
              t.intermediate_size == 3072 && t.hidden_act == CNET_CLIP_QUICK_GELU &&
              t.max_position_embeddings == 77 && t.vocab_size == 49408,
          "text encoder: %d layers of %d, %d heads, mlp %d, %d positions, vocab %d",
          t.num_hidden_layers, t.hidden_size, t.num_attention_heads, t.intermediate_size,
          t.max_position_embeddings, t.vocab_size);
    int sched_ok = sc.kind == CNET_SCHED_PNDM && sc.num_train_timesteps == 1000 &&
                   sc.beta_start == 0.00085 && sc.beta_end == 0.012 &&
                   sc.beta_schedule == CNET_BETA_SCALED_LINEAR && sc.steps_offset == 1 &&
                   sc.skip_prk_steps && !sc.set_alpha_to_one && !sc.clip_sample;
    cnet_sched_config_free(&sc);
    CHECK(sched_ok, "scheduler is not SD 1.5's PNDM");

    /* Parameter counts from the declared tables, nothing allocated. */
    long long counts[5] = {0};
    declared_counts(dir, 1, counts);
    int rc;
    CHECK(counts[0] == SD15_UNET_PARAMS, "unet: %lld parameters, SD 1.5 has %lld", counts[0],
          SD15_UNET_PARAMS);
    CHECK(counts[1] == SD15_CONTROLNET_PARAMS, "controlnet: %lld parameters, expected %lld",
          counts[1], SD15_CONTROLNET_PARAMS);
    CHECK(counts[2] == SD15_VAE_PARAMS, "vae: %lld parameters, SD 1.5 has %lld", counts[2],
          SD15_VAE_PARAMS);
    CHECK(counts[3] == SD15_TEXT_PARAMS, "text encoder: %lld parameters, CLIP ViT-L/14 has %lld",
          counts[3], SD15_TEXT_PARAMS);

    tokenizer *tok;
    CHECK(tokenizer_load(&tok, sub(dir, "tokenizer"), &err) == 0, "%s", err.msg);
    int64_t ids[77], mask[77];
    const char *prompt =
        "a photo of a cat sitting on a wooden table, zebra quokka 123 \xc3\xa9t\xc3\xa9";
    rc = tokenizer_encode(tok, prompt, strlen(prompt), ids, mask, &err);
    int64_t vocab = tokenizer_vocab_size(tok), worst = 0;
    for (int i = 0; !rc && i < 77; i++) worst = ids[i] > worst ? ids[i] : worst;
    tokenizer_free(tok);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(vocab <= t.vocab_size && worst < t.vocab_size, "tokenizer: %lld ids, largest %lld",
          (long long)vocab, (long long)worst);

    const char *unknown[] = {"--out", sub(tmp, "sd99"), "--preset", "sd99", NULL};
    CHECK(run_init(unknown) == 2, "an unknown preset was accepted");
}

/* Parameter counts of Stable Diffusion XL base 1.0's models: the published
 * sum(p.numel()) of stabilityai/stable-diffusion-xl-base-1.0's UNet (2.567
 * B), VAE (SD 1.5's), CLIP ViT-L/14 and OpenCLIP bigG text models with
 * projection; the ControlNet's summed by hand over diffusers'
 * ControlNetModel module tree like SD 1.5's (encoder copy with the
 * add_embedding, conditioning embedding 3-16-32-96-256-320, 9 + 1 zero
 * convs), the same sum giving the UNet's published figure. */
#define SDXL_UNET_PARAMS 2567463684LL
#define SDXL_CONTROLNET_PARAMS 1251014160LL
#define SDXL_TEXT_PARAMS 123060480LL
#define SDXL_TEXT2_PARAMS 694659840LL

static void test_sdxl_configs(void) {
    char dir[PATH_MAX + 16];
    configs_only("sdxl", dir);

    cnet_error err;
    cnet_unet_config u, c;
    cnet_vae_config v;
    cnet_clip_text_config t, t2;
    cnet_sched_config sc;
    CHECK(cnet_unet_config_load(&u, sub(dir, "unet/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_controlnet_config_load(&c, sub(dir, "controlnet/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(cnet_vae_config_load(&v, sub(dir, "vae/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_clip_text_config_load(&t, sub(dir, "text_encoder/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(cnet_clip_text_config_load(&t2, sub(dir, "text_encoder_2/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(cnet_sched_config_load(&sc, sub(dir, "scheduler/scheduler_config.json"), -1, &err) == 0,
          "%s", err.msg);
    const int unet_ch[3] = {320, 640, 1280};
    CHECK(u.n_blocks == 3 && !memcmp(u.block_out_channels, unet_ch, sizeof unet_ch),
          "unet block_out_channels");
    CHECK(u.layers_per_block[0] == 2 && u.heads[0] == 5 && u.heads[1] == 10 && u.heads[2] == 20 &&
              u.cross_attention_dim[0] == 2048 && u.sample_size == 128 && u.norm_num_groups == 32 &&
              u.time_embed_dim == 1280 && u.use_linear_projection &&
              u.down_transformer_layers[1][0] == 2 && u.down_transformer_layers[2][1] == 10 &&
              u.mid_transformer_layers == 10 && u.add_text_time &&
              u.addition_time_embed_dim == 256 && u.projection_class_embeddings_input_dim == 2816,
          "unet: layers %d heads %d/%d/%d cross %d sample %d temb %d depths %d/%d mid %d "
          "text_time %d A %d P %d",
          u.layers_per_block[0], u.heads[0], u.heads[1], u.heads[2], u.cross_attention_dim[0],
          u.sample_size, u.time_embed_dim, u.down_transformer_layers[1][0],
          u.down_transformer_layers[2][1], u.mid_transformer_layers, (int)u.add_text_time,
          u.addition_time_embed_dim, u.projection_class_embeddings_input_dim);
    CHECK(c.add_text_time && c.projection_class_embeddings_input_dim == 2816,
          "controlnet lost the added embedding");
    CHECK(v.n_blocks == 4 && v.sample_size == 1024 && fabsf(v.scaling_factor - 0.13025f) < 1e-7f &&
              v.force_upcast,
          "vae: blocks %d sample %d scaling %g force_upcast %d", v.n_blocks, v.sample_size,
          (double)v.scaling_factor, (int)v.force_upcast);
    CHECK(t.num_hidden_layers == 12 && t.hidden_size == 768 &&
              t.hidden_act == CNET_CLIP_QUICK_GELU && !t.with_projection && t.vocab_size == 49408,
          "text_encoder: %d layers of %d", t.num_hidden_layers, t.hidden_size);
    CHECK(t2.num_hidden_layers == 32 && t2.hidden_size == 1280 && t2.num_attention_heads == 20 &&
              t2.intermediate_size == 5120 && t2.hidden_act == CNET_CLIP_GELU &&
              t2.with_projection && t2.projection_dim == 1280 && t2.vocab_size == 49408,
          "text_encoder_2: %d layers of %d, %d heads, mlp %d, projection %d (%d)",
          t2.num_hidden_layers, t2.hidden_size, t2.num_attention_heads, t2.intermediate_size,
          t2.projection_dim, (int)t2.with_projection);
    int sched_ok = sc.kind == CNET_SCHED_EULER && sc.num_train_timesteps == 1000 &&
                   sc.beta_start == 0.00085 && sc.beta_end == 0.012 &&
                   sc.beta_schedule == CNET_BETA_SCALED_LINEAR && sc.steps_offset == 1;
    cnet_sched_config_free(&sc);
    CHECK(sched_ok, "scheduler is not SDXL's Euler");

    long long n[5] = {0};
    declared_counts(dir, 2, n);
    if (harness_current_failed) return;
    CHECK(n[0] == SDXL_UNET_PARAMS, "unet: %lld parameters, SDXL has %lld", n[0], SDXL_UNET_PARAMS);
    CHECK(n[1] == SDXL_CONTROLNET_PARAMS, "controlnet: %lld parameters, expected %lld", n[1],
          SDXL_CONTROLNET_PARAMS);
    CHECK(n[2] == SD15_VAE_PARAMS, "vae: %lld parameters, SDXL's has %lld", n[2], SD15_VAE_PARAMS);
    CHECK(n[3] == SDXL_TEXT_PARAMS, "text_encoder: %lld parameters, expected %lld", n[3],
          SDXL_TEXT_PARAMS);
    CHECK(n[4] == SDXL_TEXT2_PARAMS, "text_encoder_2: %lld parameters, expected %lld", n[4],
          SDXL_TEXT2_PARAMS);

    /* tokenizer_2 pads with "!" (id 0), tokenizer with <|endoftext|>. */
    tokenizer *tok, *tok2;
    CHECK(tokenizer_load(&tok, sub(dir, "tokenizer"), &err) == 0, "%s", err.msg);
    int rc = tokenizer_load(&tok2, sub(dir, "tokenizer_2"), &err);
    int64_t ids[77], mask[77], ids2[77], eos = tokenizer_eos_id(tok);
    if (!rc) rc = tokenizer_encode(tok, "a cat", 5, ids, mask, &err);
    if (!rc) rc = tokenizer_encode(tok2, "a cat", 5, ids2, mask, &err);
    if (!rc) tokenizer_free(tok2);
    tokenizer_free(tok);
    CHECK(rc == 0, "%s", err.msg);
    CHECK(ids[76] == eos && ids2[76] == 0,
          "pads: tokenizer %lld (want %lld), tokenizer_2 %lld "
          "(want 0, '!')",
          (long long)ids[76], (long long)eos, (long long)ids2[76]);
    CHECK(ids[1] == ids2[1], "the two tokenizers split 'a' differently");
}

/* sdxl-small: the SDXL layout (same blocks, depths, text interfaces) at
 * reduced width. */
static void test_sdxl_small_configs(void) {
    char dir[PATH_MAX + 16];
    configs_only("sdxl-small", dir);
    cnet_error err;
    cnet_unet_config u;
    cnet_clip_text_config t2;
    CHECK(cnet_unet_config_load(&u, sub(dir, "unet/config.json"), &err) == 0, "%s", err.msg);
    CHECK(cnet_clip_text_config_load(&t2, sub(dir, "text_encoder_2/config.json"), &err) == 0, "%s",
          err.msg);
    CHECK(u.n_blocks == 3 && u.block_out_channels[2] == 256 && u.mid_transformer_layers == 10 &&
              u.down_transformer_layers[2][0] == 10 && u.add_text_time &&
              u.cross_attention_dim[0] == 2048 && u.sample_size == 32 &&
              u.projection_class_embeddings_input_dim ==
                  t2.projection_dim + 6 * u.addition_time_embed_dim,
          "sdxl-small unet: %d blocks, widest %d, depth %d, cross %d, sample %d", u.n_blocks,
          u.block_out_channels[u.n_blocks - 1], u.mid_transformer_layers, u.cross_attention_dim[0],
          u.sample_size);
    long long n[5] = {0};
    declared_counts(dir, 2, n);
    if (harness_current_failed) return;
    long long sum = n[0] + n[1] + n[2] + n[3] + n[4];
    printf("    sdxl-small: unet %lld, controlnet %lld, vae %lld, text %lld + %lld parameters\n",
           n[0], n[1], n[2], n[3], n[4]);
    CHECK(sum < SDXL_UNET_PARAMS / 4, "sdxl-small has %lld parameters: not small", sum);
}

/* --from-config of an SDXL pipeline (tests/fixtures/tiny-sdxl): both text
 * encoders and tokenizers come along, and every weights file loads. */
static void test_from_config_sdxl(void) {
    char src[PATH_MAX], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/tiny-sdxl", fixtures());
    if (access(sub(src, "text_encoder_2/config.json"), R_OK) != 0) {
        printf("    (no tiny-sdxl in %s: skipped)\n", fixtures());
        return;
    }
    snprintf(out, sizeof out, "%s/tiny-sdxl", tmp);
    const char *args[] = {"--out", out, "--from-config", src, NULL};
    CHECK(run_init(args) == 0, "init-model --from-config %s failed", src);
    static const char *const copied[] = {"text_encoder_2/config.json", "tokenizer_2/vocab.json",
                                         "tokenizer_2/tokenizer_config.json"};
    for (int i = 0; i < 3; i++)
        EXPECT(same_file(sub(src, copied[i]), sub(out, copied[i])), "%s not copied as is",
               copied[i]);
    cnet_backend be;
    cnet_error err;
    CHECK(cnet_backend_cpu_init(&be, &err) == 0, "%s", err.msg);
    clip_text_model t;
    int rc = clip_text_open(&t, &be, sub(out, "text_encoder_2"), &err);
    EXPECT(rc == 0 && t.projection_dim > 0, "text_encoder_2: %s", rc ? err.msg : "no projection");
    if (!rc) clip_text_free(&t);
    unet_model u;
    rc = unet_open(&u, &be, sub(out, "unet"), &err);
    EXPECT(rc == 0 && u.enc.cfg.add_text_time, "unet: %s", rc ? err.msg : "no text_time");
    if (!rc) unet_free(&u);
    cnet_backend_free(&be);
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    if (tmpdir_make(tmp, sizeof tmp, "cnet_initmodel_")) {
        printf("test_init_model: 0 passed, 1 failed\n");
        return 1;
    }
    snprintf(tiny, sizeof tiny, "%s/tiny", tmp);
    snprintf(tiny_same, sizeof tiny_same, "%s/tiny_same", tmp);
    snprintf(tiny_other, sizeof tiny_other, "%s/tiny_other", tmp);
    snprintf(tiny_nonzero, sizeof tiny_nonzero, "%s/tiny_nonzero", tmp);
    const char *a[] = {"--out", tiny, "--preset", "tiny", "--seed", "7", NULL};
    const char *b[] = {"--out", tiny_same, "--preset", "tiny", "--seed", "7", NULL};
    const char *c[] = {"--out", tiny_other, "--preset", "tiny", "--seed", "8", NULL};
    const char *d[] = {"--out", tiny_nonzero,           "--preset", "tiny", "--seed",
                       "7",     "--nonzero-controlnet", NULL};
    if (run_init(a) || run_init(b) || run_init(c) || run_init(d)) {
        printf("FAIL cnet init-model --preset tiny failed\n");
        harness_failed++;
    } else {
        RUN(test_tiny_tokenizer_and_text);
        RUN(test_tiny_vae);
        RUN(test_tiny_unet_controlnet);
        RUN(test_tiny_reload_and_seeds);
        RUN(test_tiny_half_dtypes);
    }
    RUN(test_sd15_configs);
    RUN(test_from_config_small);
    RUN(test_from_config_derives_controlnet_for_the_vae);
    RUN(test_sdxl_configs);
    RUN(test_sdxl_small_configs);
    RUN(test_from_config_sdxl);
    tmpdir_remove(tmp);
    return harness_done();
}
