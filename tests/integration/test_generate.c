/* `cnet generate` end to end: the real binary ($BUILD/cnet) on tiny
 * pipelines made by `cnet init-model --preset tiny` (random non-zero
 * ControlNets, so the control images matter) in a temp folder.
 *
 * Truths, none of them the command's own earlier output:
 *   - the PNG read back with libpng directly has the asked size and a
 *     "parameters" tEXt chunk in A1111's layout with the run's values;
 *   - same seed -> the same bytes; another seed -> other pixels;
 *   - diffusers' batching: image 0 of --num-images 2 is the single image
 *     of the same seed (its latents are the first normals of the stream);
 *   - MultiControlNet sums residuals: two ControlNets at scale 1 and 0 give
 *     the pixels of the first alone, one folder twice at 0.5 each the pixels
 *     of it once at 1 (power-of-two scaling is exact);
 *   - --preprocess canny on a rectangle gives the pixels of the same run on
 *     the edges cv2.Canny(img, 100, 200) of OpenCV 4.6 found for it (the
 *     12x10 case pasted in tests/unit/test_canny.c);
 *   - SDXL (tests/fixtures/tiny-sdxl, detected from its model_index.json):
 *     a PNG whose parameters carry prompt_2 and the sizes; no negative
 *     prompt (None, zeroed by force_zeros_for_empty_prompt) and an explicit
 *     "" give other pixels, as in diffusers; the same run twice the same
 *     bytes; SDXL options on an SD base and a malformed size are refused
 *     naming them;
 *   - img2img (--init-image) and inpainting (--mask, also with
 *     --padding-mask-crop) on the fixture's tiny-sd with goldens-img2img's
 *     input images: the pixels of pipeline_generate in this process on the
 *     same inputs, processed by engine/image/inpaint_image.h (crop, fill
 *     and overlay by inpaint_crop.h, both checked bit-exactly against
 *     diffusers by `cnet golden`), with the pipelines' default conditioning
 *     scales 0.8 / 0.5 given explicitly; a mask without an init image,
 *     strength 0 and an undecodable mask are refused naming the option;
 *   - progress: a redrawn bar on a terminal (a pty), plain lines otherwise;
 *   - bad input: each case exits with the documented status, names the
 *     file / option / field, and leaves no output (an old file of the same
 *     name keeps its bytes, no temp files remain). */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <png.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/image/image.h"
#include "engine/image/inpaint_crop.h"
#include "engine/image/inpaint_image.h"
#include "engine/image/preprocess.h"
#include "engine/pipeline/generate.h"
#include "engine/pipeline/sd_base.h"
#include "kernels/cpu/gemm_bf16.h"
#include "tests/lib/harness.h"
#include "tests/lib/lib_fs.h"

static char tmp[PATH_MAX / 2]; /* short enough for every path_in() */
static char model_a[PATH_MAX], model_b[PATH_MAX], cn_a[PATH_MAX], cn_b[PATH_MAX];
static char rect_png[PATH_MAX], edges_png[PATH_MAX], control_png[PATH_MAX];
static char last_err[8192], last_out[4096];

/* cv2.Canny(img, 100, 200), img = zeros((10, 12, 3)); img[2:7, 3:10] = 200. */
static const char *const cv2_rectangle[10] = {
    "............", "....#####...", "...#.....#..", "..#......#..", "..#......#..",
    "..#......#..", "...#######..", "............", "............", "............",
};

static const char *cnet_bin(void) {
    static char bin[PATH_MAX];
    const char *build = getenv("BUILD");
    snprintf(bin, sizeof bin, "%s/cnet", build && *build ? build : "build");
    return bin;
}

/* Runs $BUILD/cnet with args (NULL-terminated); stdout and stderr land in
 * last_out / last_err. With tty, stderr is a pseudo-terminal. Returns the
 * exit status, -1 when it did not exit normally, -2 on a sanitizer report. */
static int run_cnet_io(int tty, const char *const *args) {
    char outpath[PATH_MAX + 16], errpath[PATH_MAX + 16];
    snprintf(outpath, sizeof outpath, "%s/stdout.txt", tmp);
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", tmp);
    const char *argv[64] = {cnet_bin()};
    int n = 1;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    int master = -1;
    if (tty) {
        master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0 || grantpt(master) || unlockpt(master)) return -1;
    }
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = tty ? open(ptsname(master), O_RDWR | O_NOCTTY)
                      : open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0) _exit(126);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    size_t got = 0;
    if (tty) { /* read the terminal until the child closes it */
        for (;;) {
            ssize_t r = read(master, last_err + got, sizeof last_err - 1 - got);
            if (r <= 0) break;
            got += (size_t)r;
            if (got == sizeof last_err - 1) got = 0; /* keep the tail */
        }
        close(master);
        last_err[got] = '\0';
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char *text = file_read(outpath, NULL);
    snprintf(last_out, sizeof last_out, "%s", text ? text : "");
    free(text);
    if (!tty) {
        text = file_read(errpath, NULL);
        snprintf(last_err, sizeof last_err, "%s", text ? text : "");
        free(text);
    }
    /* Under `make asan` a sanitizer report exits 1 like a refused input would:
     * count any report as a failure of its own. */
    if (strstr(last_err, "Sanitizer")) return -2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int run_cnet(const char *const *args) { return run_cnet_io(0, args); }

static const char *path_in(const char *name) {
    static char bufs[8][PATH_MAX];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, PATH_MAX, "%s/%s", tmp, name);
    return p;
}

/* A decoded PNG and its "parameters" text, read with libpng directly. */
typedef struct png_read {
    int width, height;
    uint8_t *rgb; /* [height, width, 3] */
    char *params; /* NULL when absent */
} png_read;

static void png_read_free(png_read *r) {
    free(r->rgb);
    free(r->params);
    memset(r, 0, sizeof *r);
}

static int png_read_file(png_read *r, const char *path) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    volatile int ok = 0;
    if (info && !setjmp(png_jmpbuf(png))) {
        png_init_io(png, f);
        png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
        r->width = (int)png_get_image_width(png, info);
        r->height = (int)png_get_image_height(png, info);
        if (png_get_color_type(png, info) == PNG_COLOR_TYPE_RGB &&
            png_get_bit_depth(png, info) == 8) {
            png_bytepp rows = png_get_rows(png, info);
            r->rgb = malloc((size_t)r->width * r->height * 3);
            for (int y = 0; r->rgb && y < r->height; y++)
                memcpy(r->rgb + (size_t)y * r->width * 3, rows[y], (size_t)r->width * 3);
            png_textp text;
            int n = 0;
            png_get_text(png, info, &text, &n);
            for (int i = 0; i < n; i++)
                if (strcmp(text[i].key, "parameters") == 0 && !r->params)
                    r->params = strdup(text[i].text);
            ok = r->rgb != NULL;
        }
    }
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    fclose(f);
    if (!ok) png_read_free(r);
    return ok ? 0 : -1;
}

/* Largest |a - b| over the pixels of two same-sized reads; -1 otherwise. */
static int max_diff(const png_read *a, const png_read *b) {
    if (a->width != b->width || a->height != b->height) return -1;
    int m = 0;
    for (size_t i = 0; i < (size_t)a->width * a->height * 3; i++) {
        int d = abs((int)a->rgb[i] - (int)b->rgb[i]);
        m = d > m ? d : m;
    }
    return m;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Files in folder dir (besides . and ..). */
static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* ---- fixtures made once ---- */

static int init_model(const char *out, const char *seed, const char *from) {
    const char *args[] = {"init-model",
                          "--out",
                          out,
                          from ? "--from-config" : "--preset",
                          from ? from : "tiny",
                          "--seed",
                          seed,
                          "--nonzero-controlnet",
                          NULL};
    return run_cnet(args);
}

static int save_rgb(const char *path, int w, int h, const uint8_t *rgb) {
    image_rgb8 img = {w, h, (uint8_t *)rgb};
    cnet_error err;
    return image_save(path, &img, NULL, 0, 0, &err);
}

/* A pipeline folder whose UNet (and so ControlNet) config differs from the
 * tiny preset's in `key` (set to the JSON value), made by init-model. */
static int mismatched_model(const char *name, const char *key, const char *json_value) {
    const char *src = path_in("src"), *files[] = {"unet/config.json",
                                                  "vae/config.json",
                                                  "text_encoder/config.json",
                                                  "scheduler/scheduler_config.json",
                                                  "tokenizer/vocab.json",
                                                  "tokenizer/merges.txt",
                                                  "tokenizer/tokenizer_config.json"};
    char from[PATH_MAX * 2], to[PATH_MAX * 2], srcdir[PATH_MAX];
    snprintf(srcdir, sizeof srcdir, "%s", src);
    tmpdir_remove(srcdir);
    const char *dirs[] = {"", "/unet", "/vae", "/text_encoder", "/scheduler", "/tokenizer"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(to, sizeof to, "%s%s", srcdir, dirs[i]);
        if (mkdir(to, 0755) != 0) return -1;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", model_a, files[i]);
        snprintf(to, sizeof to, "%s/%s", srcdir, files[i]);
        size_t n = 0;
        char *text = file_read(from, &n);
        if (!text) return -1;
        if (i == 0) { /* the UNet config gets the changed field */
            json_t *j = json_loads(text, 0, NULL),
                   *v = json_loads(json_value, JSON_DECODE_ANY, NULL);
            free(text);
            if (!j || !v || json_object_set_new(j, key, v)) return -1;
            text = json_dumps(j, JSON_INDENT(2));
            json_decref(j);
            n = text ? strlen(text) : 0;
        }
        int rc = text ? file_write(to, text, n) : -1;
        free(text);
        if (rc) return -1;
    }
    int rc = init_model(path_in(name), "3", srcdir);
    tmpdir_remove(srcdir);
    return rc;
}

static int setup(void) {
    if (tmpdir_make(tmp, sizeof tmp, "cnet_generate_")) return -1;
    snprintf(model_a, sizeof model_a, "%s", path_in("a"));
    snprintf(model_b, sizeof model_b, "%s", path_in("b"));
    snprintf(cn_a, sizeof cn_a, "%s", path_in("a/controlnet"));
    snprintf(cn_b, sizeof cn_b, "%s", path_in("b/controlnet"));
    if (init_model(model_a, "0", NULL) || init_model(model_b, "1", NULL)) return -1;
    if (mismatched_model("cross", "cross_attention_dim", "16") ||
        mismatched_model("wide", "block_out_channels", "[32, 48]"))
        return -1;
    /* A 32x32 control image: a gradient with a bright square. */
    uint8_t img[32 * 32 * 3];
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++)
                img[(y * 32 + x) * 3 + c] =
                    (x >= 8 && x < 24 && y >= 10 && y < 20) ? 230 : (uint8_t)(4 * x + 60 * c);
    /* The 12x10 rectangle of tests/unit/test_canny.c and OpenCV's edges of it. */
    uint8_t rect[10 * 12 * 3], edges[10 * 12 * 3];
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 12; x++)
            for (int c = 0; c < 3; c++) {
                rect[(y * 12 + x) * 3 + c] = (y >= 2 && y < 7 && x >= 3 && x < 10) ? 200 : 0;
                edges[(y * 12 + x) * 3 + c] = cv2_rectangle[y][x] == '#' ? 255 : 0;
            }
    snprintf(control_png, sizeof control_png, "%s", path_in("control.png"));
    snprintf(rect_png, sizeof rect_png, "%s", path_in("rect.png"));
    snprintf(edges_png, sizeof edges_png, "%s", path_in("edges.png"));
    if (save_rgb(control_png, 32, 32, img) || save_rgb(rect_png, 12, 10, rect) ||
        save_rgb(edges_png, 12, 10, edges))
        return -1;
    return mkdir(path_in("out"), 0755);
}

/* A generate run with the common arguments plus extra (NULL-terminated):
 * model a, its ControlNet, the 32x32 control image, 2 UniPC steps. Options
 * given in extra override these (the last occurrence wins). */
static int generate(const char *out, const char *const *extra) {
    const char *args[64] = {"generate",
                            "--model",
                            model_a,
                            "--controlnet",
                            cn_a,
                            "--image",
                            control_png,
                            "--prompt",
                            "a tiny test, in a box",
                            "--negative-prompt",
                            "blurry",
                            "--steps",
                            "2",
                            "--scheduler",
                            "unipc",
                            "--seed",
                            "42",
                            "--out",
                            out};
    int n = 19;
    for (int i = 0; extra && extra[i] && n < 63; i++) args[n++] = extra[i];
    args[n] = NULL;
    return run_cnet(args);
}

static void test_png_with_parameters(void) {
    const char *out = path_in("out/basic.png");
    const char *extra[] = {"--guidance", "7.5", "--clip-skip", "1", NULL};
    int rc = generate(out, extra);
    CHECK(rc == 0, "exit %d: %s", rc, last_err);
    CHECK(strstr(last_out, out) != NULL, "stdout names the file: %s", last_out);
    png_read r;
    CHECK(png_read_file(&r, out) == 0, "%s does not decode as 8-bit RGB PNG", out);
    EXPECT(r.width == 32 && r.height == 32, "size %dx%d", r.width, r.height);
    const char *p = r.params ? r.params : "";
    const char *want[] = {"a tiny test, in a box\nNegative prompt: blurry\nSteps: 2, ",
                          "Sampler: UniPC, CFG scale: 7.5, Seed: 42, Size: 32x32, Model: a, ",
                          "Clip skip: 2, ",
                          "ControlNet 0: \"Module: none, Model: a/controlnet, Weight: 1, "
                          "Guidance Start: 0, Guidance End: 1\"",
                          ", Version: cnet"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        EXPECT(strstr(p, want[i]) != NULL, "parameters lack \"%s\":\n%s", want[i], p);
    EXPECT(strncmp(p, want[0], strlen(want[0])) == 0, "parameters start with the prompt:\n%s", p);
    /* Not a terminal: one plain line per step. */
    EXPECT(strstr(last_err, "step 1/2") && strstr(last_err, "step 2/2") && !strchr(last_err, '\r'),
           "progress lines: %s", last_err);
    png_read_free(&r);
}

static void test_seed_determinism(void) {
    const char *a = path_in("out/seed_a.png"), *b = path_in("out/seed_b.png"),
               *c = path_in("out/seed_c.png");
    const char *other[] = {"--seed", "43", NULL};
    CHECK(generate(a, NULL) == 0 && generate(b, NULL) == 0, "%s", last_err);
    CHECK(generate(c, other) == 0, "%s", last_err);
    size_t na = 0, nb = 0;
    char *da = file_read(a, &na), *db = file_read(b, &nb);
    int same = da && db && na == nb && memcmp(da, db, na) == 0;
    free(da);
    free(db);
    CHECK(same, "two runs with seed 42 wrote different bytes");
    png_read ra, rc_;
    CHECK(png_read_file(&ra, a) == 0 && png_read_file(&rc_, c) == 0, "decode");
    int d = max_diff(&ra, &rc_);
    EXPECT(d > 0, "seed 43 gave the pixels of seed 42");
    EXPECT(rc_.params && strstr(rc_.params, "Seed: 43,"), "seed in the text: %s", rc_.params);
    png_read_free(&ra);
    png_read_free(&rc_);
}

/* The API's spellings on the command line: --snake_case, --flag=VALUE, and
 * no --controlnet (the model folder's controlnet/, as the API defaults):
 * the very bytes of test_seed_determinism's run with the kebab spellings. */
static void test_option_spellings(void) {
    const char *out = path_in("out/spelled.png");
    char model[PATH_MAX + 16], steps[] = "--num_inference_steps=2";
    snprintf(model, sizeof model, "--model=%s", model_a);
    const char *args[] = {"generate",
                          model,
                          "--image",
                          control_png,
                          "--prompt",
                          "a tiny test, in a box",
                          "--negative_prompt",
                          "blurry",
                          "--steps=2",
                          "--scheduler=unipc",
                          "--seed",
                          "42",
                          "--out",
                          out,
                          NULL};
    int rc = run_cnet(args);
    CHECK(rc == 0, "exit %d: %s", rc, last_err);
    size_t na = 0, nb = 0;
    char *a = file_read(path_in("out/seed_a.png"), &na), *b = file_read(out, &nb);
    int same = a && b && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    CHECK(same, "the snake_case run differs from the kebab-case one");
    const char *unknown[] = {"generate", model, "--image", control_png,
                             "--prompt", "x",   steps,     NULL};
    rc = run_cnet(unknown);
    CHECK(rc == 2 && strstr(last_err, "unknown option '--num_inference_steps'"),
          "diffusers' name of --steps is not ours: exit %d: %s", rc, last_err);
}

/* --mixed-precision on the CPU: fp16 (and bf16 without AVX512-BF16) is
 * float32 with one note, the very bytes of a run without it; bf16 on an
 * AVX512-BF16 CPU runs without a note (its parity: tests/unit/test_ops_bf16.c);
 * an unknown value is a usage error naming the accepted. */
static void test_mixed_precision_on_cpu(void) {
    const char *a = path_in("out/mp_no.png"), *b = path_in("out/mp_bf16.png"),
               *c = path_in("out/mp_fp16.png");
    const char *bf16[] = {"--mixed-precision", "bf16", NULL};
    const char *fp16[] = {"--mixed_precision", "fp16", NULL};
    CHECK(generate(a, NULL) == 0, "%s", last_err);
    EXPECT(!strstr(last_err, "computes in float32"), "a note without the flag: %s", last_err);
    CHECK(generate(b, bf16) == 0, "%s", last_err);
    const int bf16_cpu = cpu_bf16_supported();
    if (bf16_cpu)
        EXPECT(!strstr(last_err, "computes in float32"), "bf16 refused on an AVX512-BF16 cpu: %s",
               last_err);
    else
        EXPECT(strstr(last_err, "cpu backend computes in float32; --mixed_precision bf16 applies "
                                "on cuda"),
               "no note: %s", last_err);
    CHECK(generate(c, fp16) == 0, "%s", last_err);
    EXPECT(strstr(last_err, "--mixed_precision fp16 applies on cuda"), "no note: %s", last_err);
    size_t na = 0, nb = 0, nc = 0;
    char *da = file_read(a, &na), *db = file_read(b, &nb), *dc = file_read(c, &nc);
    if (!bf16_cpu)
        EXPECT(da && db && na == nb && memcmp(da, db, na) == 0,
               "bf16 on the cpu changed the image");
    EXPECT(da && dc && na == nc && memcmp(da, dc, na) == 0, "fp16 on the cpu changed the image");
    free(da);
    free(db);
    free(dc);
}

static void test_num_images(void) {
    const char *out = path_in("out/batch.png"), *single = path_in("out/single.png");
    const char *two[] = {"--num-images", "2", NULL};
    CHECK(generate(out, two) == 0, "%s", last_err);
    CHECK(generate(single, NULL) == 0, "%s", last_err);
    EXPECT(!exists(out), "%s written besides the numbered files", out);
    png_read r0, r1, rs;
    CHECK(png_read_file(&r0, path_in("out/batch_0.png")) == 0, "batch_0.png");
    CHECK(png_read_file(&r1, path_in("out/batch_1.png")) == 0, "batch_1.png");
    CHECK(png_read_file(&rs, single) == 0, "single");
    EXPECT(r0.params && strstr(r0.params, "Batch size: 2, Batch pos: 0"), "%s", r0.params);
    EXPECT(r1.params && strstr(r1.params, "Batch size: 2, Batch pos: 1"), "%s", r1.params);
    EXPECT(max_diff(&r0, &r1) > 0, "the two images of a batch are equal");
    /* Batched GEMMs may round differently from single ones: allow one level. */
    int d = max_diff(&r0, &rs);
    EXPECT(d >= 0 && d <= 1, "image 0 of the batch differs from the single image by %d", d);
    png_read_free(&r0);
    png_read_free(&r1);
    png_read_free(&rs);
}

static void test_two_controlnets(void) {
    char both[2 * PATH_MAX + 2], same[2 * PATH_MAX + 2], images[2 * PATH_MAX + 2],
        twice[2 * PATH_MAX + 2];
    snprintf(both, sizeof both, "%s,%s", cn_a, cn_b);
    snprintf(same, sizeof same, "%s,%s", cn_a, cn_a);
    snprintf(images, sizeof images, "%s,%s", control_png, rect_png);
    snprintf(twice, sizeof twice, "%s,%s", control_png, control_png);
    const char *one = path_in("out/cn_one.png"), *off = path_in("out/cn_off.png"),
               *on = path_in("out/cn_on.png"), *halves = path_in("out/cn_halves.png");
    const char *a_off[] = {"--controlnet", both, "--image", images, "--scale", "1,0", NULL};
    const char *a_on[] = {"--controlnet", both, "--image", images, "--scale", "1", NULL};
    const char *a_halves[] = {"--controlnet", same, "--image", twice, "--scale", "0.5", NULL};
    CHECK(generate(one, NULL) == 0, "%s", last_err);
    CHECK(generate(off, a_off) == 0, "%s", last_err);
    CHECK(generate(on, a_on) == 0, "%s", last_err);
    CHECK(generate(halves, a_halves) == 0, "%s", last_err);
    png_read r1, roff, ron, rh;
    CHECK(png_read_file(&r1, one) == 0 && png_read_file(&roff, off) == 0 &&
              png_read_file(&ron, on) == 0 && png_read_file(&rh, halves) == 0,
          "decode");
    EXPECT(max_diff(&r1, &roff) == 0, "scale 1,0 differs from the first ControlNet alone by %d",
           max_diff(&r1, &roff));
    EXPECT(max_diff(&r1, &ron) > 0, "the second ControlNet at scale 1 changed nothing");
    EXPECT(max_diff(&r1, &rh) == 0, "one ControlNet twice at 0.5 differs from once at 1 by %d",
           max_diff(&r1, &rh));
    EXPECT(ron.params && strstr(ron.params, "ControlNet 1: \"Module: none, Model: b/controlnet"),
           "%s", ron.params);
    png_read_free(&r1);
    png_read_free(&roff);
    png_read_free(&ron);
    png_read_free(&rh);
}

static void test_canny(void) {
    const char *canny = path_in("out/canny.png"), *edges = path_in("out/edges.png"),
               *raw = path_in("out/raw.png");
    const char *a_canny[] = {"--image", rect_png, "--preprocess", "canny", "--low",    "100",
                             "--high",  "200",    "--width",      "16",    "--height", "16",
                             NULL};
    const char *a_edges[] = {"--image", edges_png, "--width", "16", "--height", "16", NULL};
    const char *a_raw[] = {"--image", rect_png, "--width", "16", "--height", "16", NULL};
    CHECK(generate(canny, a_canny) == 0, "%s", last_err);
    CHECK(generate(edges, a_edges) == 0, "%s", last_err);
    CHECK(generate(raw, a_raw) == 0, "%s", last_err);
    png_read rc_, re, rr;
    CHECK(png_read_file(&rc_, canny) == 0 && png_read_file(&re, edges) == 0 &&
              png_read_file(&rr, raw) == 0,
          "decode");
    EXPECT(rc_.width == 16 && rc_.height == 16, "size %dx%d", rc_.width, rc_.height);
    EXPECT(max_diff(&rc_, &re) == 0,
           "canny preprocessing differs from OpenCV's edges fed directly by %d",
           max_diff(&rc_, &re));
    EXPECT(max_diff(&rc_, &rr) > 0, "the control image did not matter");
    EXPECT(rc_.params && strstr(rc_.params, "Module: canny") &&
               strstr(rc_.params, "Threshold A: 100, Threshold B: 200"),
           "%s", rc_.params);
    png_read_free(&rc_);
    png_read_free(&re);
    png_read_free(&rr);
}

/* Any annotator of the table through --preprocess: invert on the control
 * image gives the run of the inverted picture fed directly; the parameters
 * text names the extension's module and its thresholds (threshold_a given,
 * canny's through its older spelling). */
static void test_annotator_preprocess(void) {
    const char *inv = path_in("out/inv.png"), *direct = path_in("out/direct.png"),
               *thr = path_in("out/thr.png"), *inv_png = path_in("inv_control.png");
    png_read src;
    CHECK(png_read_file(&src, control_png) == 0, "decode control");
    for (size_t i = 0; i < (size_t)src.width * src.height * 3; i++) src.rgb[i] = 255 - src.rgb[i];
    CHECK(save_rgb(inv_png, src.width, src.height, src.rgb) == 0, "write");
    png_read_free(&src);
    const char *a_inv[] = {"--preprocess", "invert", NULL};
    const char *a_direct[] = {"--image", inv_png, NULL};
    const char *a_thr[] = {"--preprocess", "threshold", "--threshold_a", "90", NULL};
    CHECK(generate(inv, a_inv) == 0, "%s", last_err);
    CHECK(generate(direct, a_direct) == 0, "%s", last_err);
    CHECK(generate(thr, a_thr) == 0, "%s", last_err);
    png_read ri, rd, rt;
    CHECK(png_read_file(&ri, inv) == 0 && png_read_file(&rd, direct) == 0 &&
              png_read_file(&rt, thr) == 0,
          "decode");
    EXPECT(max_diff(&ri, &rd) == 0, "invert differs from the inverted picture by %d",
           max_diff(&ri, &rd));
    EXPECT(ri.params && strstr(ri.params, "Module: invert (from white bg & black line)") &&
               !strstr(ri.params, "Threshold A"),
           "%s", ri.params);
    EXPECT(rt.params && strstr(rt.params, "Module: threshold") &&
               strstr(rt.params, "Threshold A: 90") && !strstr(rt.params, "Threshold B"),
           "%s", rt.params);
    EXPECT(max_diff(&rt, &ri) > 0, "threshold and invert made the same image");
    png_read_free(&ri);
    png_read_free(&rd);
    png_read_free(&rt);
}

static void test_progress_on_terminal(void) {
    const char *out = path_in("out/tty.png");
    const char *args[] = {"generate",  "--model",  model_a, "--controlnet", cn_a, "--image",
                          control_png, "--prompt", "x",     "--steps",      "3",  "--scheduler",
                          "ddim",      "--seed",   "1",     "--out",        out,  NULL};
    int rc = run_cnet_io(1, args);
    CHECK(rc == 0, "exit %d: %s", rc, last_err);
    EXPECT(strstr(last_err, "\rstep 3/3 [####################]") != NULL,
           "no full bar redrawn in place: %s", last_err);
    EXPECT(strstr(last_err, "it/s") && strstr(last_err, "ETA"), "%s", last_err);
}

/* One bad-input case: the exit status, a phrase of the message, and no
 * output left (an old file at --out keeps its bytes; no temp files). */
static int bad_case(const char *what, int want_rc, const char *phrase, const char *const *extra) {
    const char *dir = path_in("bad"), *out = path_in("bad/out.png");
    char outdir[PATH_MAX];
    snprintf(outdir, sizeof outdir, "%s", dir);
    tmpdir_remove(outdir);
    if (mkdir(outdir, 0755) != 0 || file_write(out, "old", 3) != 0) return 0;
    int rc = generate(out, extra);
    size_t n = 0;
    char *old = file_read(out, &n);
    int kept = old && n == 3 && memcmp(old, "old", 3) == 0;
    free(old);
    int files = count_files(outdir);
    int ok = rc == want_rc && strstr(last_err, phrase) != NULL && kept && files == 1;
    if (!ok)
        printf("    %s: exit %d (want %d), old output %s, %d files; stderr: %s", what, rc, want_rc,
               kept ? "kept" : "CHANGED", files, last_err);
    return ok;
}

/* An SDXL run on tests/fixtures/tiny-sdxl with extra (NULL-terminated). */
static int generate_sdxl(const char *out, const char *const *extra) {
    const char *args[64] = {"generate",
                            "--model",
                            "tests/fixtures/tiny-sdxl",
                            "--image",
                            control_png,
                            "--prompt",
                            "a red ring",
                            "--prompt_2",
                            "ring",
                            "--steps",
                            "2",
                            "--seed",
                            "5",
                            "--original_size",
                            "64,48",
                            "--out",
                            out};
    int n = 0;
    while (args[n]) n++;
    for (int i = 0; extra && extra[i] && n < 63; i++) args[n++] = extra[i];
    args[n] = NULL;
    return run_cnet(args);
}

static void test_sdxl(void) {
    const char *a = path_in("out/xl_a.png"), *b = path_in("out/xl_b.png"),
               *c = path_in("out/xl_c.png");
    const char *empty_negative[] = {"--negative_prompt", "", NULL};
    CHECK(generate_sdxl(a, NULL) == 0, "sdxl: %s", last_err);
    CHECK(generate_sdxl(b, empty_negative) == 0, "sdxl with \"\": %s", last_err);
    CHECK(generate_sdxl(c, NULL) == 0, "sdxl again: %s", last_err);
    png_read ra, rb, rc_;
    CHECK(png_read_file(&ra, a) == 0 && png_read_file(&rb, b) == 0 && png_read_file(&rc_, c) == 0,
          "decode");
    EXPECT(ra.width == 32 && ra.height == 32, "size %dx%d", ra.width, ra.height);
    const char *p = ra.params ? ra.params : "";
    EXPECT(strstr(p, "Sampler: Euler,") && strstr(p, "Prompt 2: ring") &&
               strstr(p, "Original size: \"[64, 48]\"") && strstr(p, "Model: tiny-sdxl"),
           "parameters:\n%s", p);
    EXPECT(max_diff(&ra, &rb) > 0, "negative None and \"\" gave the same pixels");
    EXPECT(max_diff(&ra, &rc_) == 0, "the same SDXL run twice differs");
    /* MultiControlNet with SDXL's added conditions: one folder twice at 0.5
     * each is the run once at 1 (power-of-two scaling is exact) */
    char cns[2 * PATH_MAX + 2], images[2 * PATH_MAX + 2];
    snprintf(cns, sizeof cns,
             "tests/fixtures/tiny-sdxl/controlnet,tests/fixtures/tiny-sdxl/controlnet");
    snprintf(images, sizeof images, "%s,%s", control_png, control_png);
    const char *twice[] = {"--controlnet", cns, "--image", images, "--scale", "0.5", NULL};
    const char *d = path_in("out/xl_d.png");
    CHECK(generate_sdxl(d, twice) == 0, "sdxl with two ControlNets: %s", last_err);
    png_read rd;
    CHECK(png_read_file(&rd, d) == 0, "decode");
    EXPECT(max_diff(&ra, &rd) == 0, "two SDXL ControlNets at 0.5 differ from one at 1 by %d",
           max_diff(&ra, &rd));
    png_read_free(&rd);
    png_read_free(&ra);
    png_read_free(&rb);
    png_read_free(&rc_);
    const char *no_pair[] = {"--original_size", "64", NULL};
    int rc = generate_sdxl(path_in("out/xl_bad.png"), no_pair);
    EXPECT(rc == 2 && strstr(last_err, "--original_size") && strstr(last_err, "HEIGHT,WIDTH"),
           "--original_size 64: exit %d: %s", rc, last_err);
    const char *on_sd[] = {"--prompt_2", "ring", NULL};
    rc = generate(path_in("out/sd_prompt_2.png"), on_sd);
    EXPECT(rc == 1 && strstr(last_err, "prompt_2") && strstr(last_err, "not SDXL"),
           "--prompt_2 on SD: exit %d: %s", rc, last_err);
    EXPECT(!exists(path_in("out/sd_prompt_2.png")) && !exists(path_in("out/xl_bad.png")),
           "an output of a refused run");
}

static void test_bad_input(void) {
    char missing[PATH_MAX], corrupt[PATH_MAX], truncated[PATH_MAX], odd[PATH_MAX];
    snprintf(missing, sizeof missing, "%s", path_in("missing.png"));
    snprintf(corrupt, sizeof corrupt, "%s", path_in("corrupt.png"));
    snprintf(truncated, sizeof truncated, "%s", path_in("truncated.png"));
    snprintf(odd, sizeof odd, "%s", path_in("odd20.png"));
    static const uint8_t junk[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 1, 2, 3, 4, 5};
    CHECK(file_write(corrupt, junk, sizeof junk) == 0, "write");
    size_t n = 0;
    char *png = file_read(control_png, &n);
    CHECK(png && file_write(truncated, png, n / 2) == 0, "write");
    free(png);
    uint8_t px[20 * 20 * 3];
    memset(px, 90, sizeof px);
    CHECK(save_rgb(odd, 20, 20, px) == 0, "write");
    char pair[2 * PATH_MAX + 2], cross[PATH_MAX], wide[PATH_MAX], nodir[PATH_MAX];
    snprintf(pair, sizeof pair, "%s,%s", cn_a, cn_a);
    snprintf(cross, sizeof cross, "%s", path_in("cross/controlnet"));
    snprintf(wide, sizeof wide, "%s", path_in("wide/controlnet"));
    snprintf(nodir, sizeof nodir, "%s", path_in("no/such/dir/out.png"));
    int ok = 1;
#define BAD(what, rc, phrase, ...)                                                                 \
    do {                                                                                           \
        const char *extra[] = {__VA_ARGS__, NULL};                                                 \
        ok &= bad_case(what, rc, phrase, extra);                                                   \
    } while (0)
    BAD("unreadable image", 1, missing, "--image", missing);
    BAD("corrupt image", 1, corrupt, "--image", corrupt);
    BAD("truncated image", 1, truncated, "--image", truncated);
    BAD("width not a multiple of 8", 2, "--width 20 is not a multiple of 8", "--width", "20");
    BAD("image size not a multiple of 8", 1, "gives an output of 20x20, not multiples of 8",
        "--image", odd);
    BAD("image over the pixel limit", 1, "limit", "--max-pixels", "1000");
    BAD("output over the pixel limit", 1, "over max_pixels", "--width", "64", "--height", "64",
        "--max-pixels", "2048");
    BAD("unknown scheduler", 2, "--scheduler: unknown 'lms'", "--scheduler", "lms");
    BAD("steps < 1", 2, "--steps", "--steps", "0");
    BAD("ControlNet cross_attention_dim", 1, "cross_attention_dim 16 vs 32", "--controlnet", cross);
    BAD("ControlNet widths", 1, "down block 1 has 48 channels", "--controlnet", wide);
    BAD("more ControlNets than images", 2, "--controlnet lists 2 folders but --image 1",
        "--controlnet", pair);
    BAD("more images than ControlNets", 2, "--controlnet lists 1 folders but --image 2", "--image",
        pair);
    BAD("scale list", 2, "--scale has 3 values for 2 ControlNets", "--controlnet", pair, "--image",
        pair, "--scale", "1,1,1");
    BAD("start after end", 2, "--start", "--start", "0.6", "--end", "0.5");
    BAD("unknown preprocessor", 2, "--preprocess: unknown 'sobel'", "--preprocess", "sobel");
    BAD("a threshold outside its annotator's range", 2,
        "--threshold_a: 300 is outside threshold's threshold range [0, 255]", "--preprocess",
        "threshold", "--threshold_a", "300");
    BAD("canny's threshold in both spellings", 2,
        "threshold_b and canny_high_threshold both set canny's high_threshold", "--preprocess",
        "canny", "--threshold_b", "150", "--high", "160");
    BAD("a threshold per ControlNet", 2, "--threshold_a has 3 values for 2 ControlNets",
        "--controlnet", pair, "--image", pair, "--threshold_a", "1,2,3");
    BAD("not a png output", 2, ".png", "--out", path_in("bad/out.jpg"));
    BAD("unknown option", 2, "--bogus", "--bogus", "1");
    BAD("unknown precision", 2, "'fp8': expected no, fp16 or bf16", "--mixed-precision", "fp8");
    BAD("missing model folder", 1, "no-such-model", "--model", path_in("no-such-model"));
    BAD("unwritable output folder", 1, "not writable", "--out", nodir);
#undef BAD
    CHECK(ok, "a bad input was not refused as documented (see above)");
    const char *no_prompt[] = {"generate", "--model", model_a,     "--controlnet",
                               cn_a,       "--image", control_png, NULL};
    int rc = run_cnet(no_prompt);
    CHECK(rc == 2 && strstr(last_err, "missing --prompt"), "exit %d: %s", rc, last_err);
}

/* numpy_to_pil's round(clamp(x, 0, 1) * 255), and what a diverged run's
 * NaN and infinities become: NaN and -inf 0, +inf 255 (never a float-to-
 * integer conversion out of range). */
static void test_rgb8_conversion(void) {
    const float in[] = {NAN,        -NAN,       INFINITY, -INFINITY, -0.2f, 0.0f,
                        0.5f / 255, 1.5f / 255, 0.5f,     1.0f,      1.7f,  1e30f};
    const uint8_t want[] = {0, 0, 255, 0, 0, 0, 0, 2, 128, 255, 255, 255};
    uint8_t got[sizeof want];
    generate_to_rgb8(got, in, sizeof want);
    for (size_t i = 0; i < sizeof want; i++)
        EXPECT(got[i] == want[i], "%g -> %d, want %d", (double)in[i], got[i], want[i]);
    CHECK(memcmp(got, want, sizeof want) == 0, "8-bit conversion (above)");
}

/* The seed is on stderr before the run starts, so a failed run's random
 * seed is not lost; seeds take any uint64, scales negative values, and a
 * flag's missing value is not taken from the next flag. */
static void test_seed_scale_and_values(void) {
    const char *fails[] = {"generate", "--model",   model_a,
                           "--image",  control_png, "--prompt",
                           "x",        "--width",   "64",
                           "--height", "64",        "--max-pixels",
                           "2048",     "--out",     path_in("out/f.png"),
                           NULL};
    int rc = run_cnet(fails);
    const char *seed = strstr(last_err, "seed ");
    const char *fail = strstr(last_err, "over max_pixels");
    CHECK(rc == 1 && seed && fail && seed < fail && seed[5] >= '0' && seed[5] <= '9',
          "a failed run's random seed is not reported before the failure: %s", last_err);
    CHECK(strstr(last_err, "64x64, 20 steps of "),
          "the size, steps and scheduler before the run: %s", last_err);
    const char *big[] = {"--seed", "18446744073709551615", NULL};
    const char *out = path_in("out/big_seed.png");
    CHECK(generate(out, big) == 0, "--seed 2^64-1: %s", last_err);
    png_read r;
    CHECK(png_read_file(&r, out) == 0, "decode");
    EXPECT(r.params && strstr(r.params, "Seed: 18446744073709551615,"), "%s", r.params);
    png_read_free(&r);
    const char *negative[] = {"--scale", "-1", NULL};
    out = path_in("out/negative_scale.png");
    CHECK(generate(out, negative) == 0, "--scale -1: %s", last_err);
    png_read a, b;
    CHECK(png_read_file(&a, out) == 0 && png_read_file(&b, path_in("out/seed_a.png")) == 0,
          "decode");
    EXPECT(max_diff(&a, &b) > 0, "scale -1 gave the pixels of scale 1");
    png_read_free(&a);
    png_read_free(&b);
    const char *no_value[] = {"--negative-prompt", "--seed", "7", NULL};
    rc = generate(path_in("out/nv.png"), no_value);
    CHECK(rc == 2 && strstr(last_err, "--negative-prompt needs a value"),
          "--negative-prompt --seed: exit %d: %s", rc, last_err);
}

/* The truth of an img2img / inpainting run on tiny-sd (DDIM, 4 steps,
 * seed 5, "a red circle", no negative prompt): pipeline_generate on the
 * images processed by the engine's processors (crop + fill + overlay when
 * pad >= 0), at W x H. */
static int direct_init(const char *model, const char *ctrl_file, const char *init_file,
                       const char *mask_file, double strength, int pad, int W, int H,
                       image_rgb8 *want, cnet_error *err) {
    omp_set_num_threads(1); /* the commands' thread count (reductions round alike) */
    image_rgb8 in[3] = {{0}}, crop[3] = {{0}};
    const char *files[3] = {ctrl_file, init_file, mask_file};
    int rc = 0, coords[4];
    for (int k = 0; k < 3 && !rc; k++)
        if (files[k]) rc = image_load(&in[k], files[k], 0, err);
    const image_rgb8 *use[3] = {&in[0], &in[1], &in[2]};
    if (!rc && pad >= 0 && !(rc = inpaint_crop_region(&in[2], W, H, pad, coords, err)))
        for (int k = 0; k < 3 && !rc; k++)
            if (!(rc = inpaint_crop_fill(&crop[k], &in[k], coords, W, H, err))) use[k] = &crop[k];
    const size_t px = (size_t)W * H;
    float *control = malloc(px * 3 * sizeof(float)), *x = malloc(px * 3 * sizeof(float)),
          *m = malloc(px * sizeof(float)), *out = malloc(px * 3 * sizeof(float));
    if (!rc) rc = preprocess_control(control, use[0], W, H, err);
    if (!rc) rc = inpaint_init_image(x, use[1], W, H, err);
    if (!rc && mask_file) rc = inpaint_mask(m, NULL, use[2], W, H, err);
    cnet_backend be;
    sd_base base;
    controlnet_model cn;
    char path[PATH_MAX + 16];
    if (!rc && !(rc = cnet_backend_cpu_init(&be, err))) {
        if (!(rc = sd_base_open(&base, &be, model, err))) {
            snprintf(path, sizeof path, "%s/controlnet", model);
            if (!(rc = controlnet_open(&cn, &be, path, err))) {
                cnet_sched_config sc;
                if (!(rc = sd_base_scheduler(&base, CNET_SCHED_DDIM, &sc, err))) {
                    pipe_request r = {.prompt = "a red circle",
                                      .steps = 4,
                                      .guidance = 7.5f,
                                      .seed = 5,
                                      .width = W,
                                      .height = H,
                                      .num_images = 1,
                                      .n_controlnets = 1,
                                      .init = {.image = x,
                                               .n_images = 1,
                                               .mask = mask_file ? m : NULL,
                                               .strength = strength}};
                    r.controlnets[0] = (pipe_controlnet){.model = &cn,
                                                         .image = control,
                                                         .scale = mask_file ? 0.5f : 0.8f,
                                                         .end = 1.0f};
                    pipe_models pm = sd_base_models(&base);
                    rc = pipeline_generate(&pm, &sc, &r, out, NULL, err);
                    cnet_sched_config_free(&sc);
                }
                controlnet_free(&cn);
            }
            sd_base_free(&base);
        }
        cnet_backend_free(&be);
    }
    image_rgb8 gen = {0};
    if (!rc && !(rc = image_alloc(&gen, W, H, err))) generate_to_rgb8(gen.data, out, px * 3);
    if (!rc && pad >= 0)
        rc = inpaint_apply_overlay(want, &in[2], &in[1], &gen, coords, err);
    else if (!rc)
        *want = gen, gen.data = NULL;
    image_free(&gen);
    for (int k = 0; k < 3; k++) image_free(&in[k]), image_free(&crop[k]);
    free(control), free(x), free(m), free(out);
    return rc;
}

/* One img2img / inpainting command against direct_init. */
static void check_init_run(const char *what, const char *run, int inpaint, double strength, int pad,
                           int W, int H) {
    char model[PATH_MAX], ctrl[PATH_MAX], init[PATH_MAX], mask[PATH_MAX], dir[PATH_MAX];
    snprintf(model, sizeof model, "%s/tiny-sd", harness_fixtures());
    snprintf(dir, sizeof dir, "%s/goldens-img2img/images", harness_fixtures());
    /* the run's input files: <run>.<kind>_<W>x<H>_<mode>.png */
    char pattern[PATH_MAX + 64];
    const char *kinds[3] = {"control", "image", "mask"};
    char *paths[3] = {ctrl, init, mask};
    for (int k = 0; k < 3; k++) {
        snprintf(pattern, sizeof pattern, "%s/%s.%s_", dir, run, kinds[k]);
        DIR *d = opendir(dir);
        paths[k][0] = '\0';
        struct dirent *e;
        const char *base = pattern + strlen(dir) + 1;
        while (d && (e = readdir(d)))
            if (!strncmp(e->d_name, base, strlen(base)))
                snprintf(paths[k], PATH_MAX, "%s/%s", dir, e->d_name);
        if (d) closedir(d);
    }
    CHECK(ctrl[0] && init[0] && (!inpaint || mask[0]), "%s: no input files for %s in %s", what, run,
          dir);
    image_rgb8 want = {0};
    cnet_error err = {0};
    CHECK(direct_init(model, ctrl, init, inpaint ? mask : NULL, strength, pad, W, H, &want, &err) ==
              0,
          "%s: direct pipeline: %s", what, err.msg);
    char sstr[32], pstr[32], wstr[16], hstr[16];
    snprintf(sstr, sizeof sstr, "%g", strength);
    snprintf(pstr, sizeof pstr, "%d", pad);
    snprintf(wstr, sizeof wstr, "%d", W);
    snprintf(hstr, sizeof hstr, "%d", H);
    const char *out = path_in("out/init.png");
    const char *args[40] = {
        "generate",     "--model",     model,  "--image",  ctrl, "--init-image", init, "--prompt",
        "a red circle", "--scheduler", "ddim", "--steps",  "4",  "--seed",       "5",  "--strength",
        sstr,           "--width",     wstr,   "--height", hstr, "--out",        out};
    int n = 23;
    if (inpaint) args[n++] = "--mask", args[n++] = mask;
    if (pad >= 0) args[n++] = "--padding-mask-crop", args[n++] = pstr;
    args[n] = NULL;
    int rc = run_cnet(args);
    png_read r;
    if (rc == 0 && png_read_file(&r, out) == 0) {
        EXPECT(r.width == W && r.height == H && !memcmp(r.rgb, want.data, (size_t)W * H * 3),
               "%s: the command's %dx%d pixels differ from the direct pipeline's", what, r.width,
               r.height);
        EXPECT(r.params && strstr(r.params, "Denoising strength: ") &&
                   strstr(r.params, inpaint ? "Weight: 0.5" : "Weight: 0.8"),
               "%s: parameters %s", what, r.params ? r.params : "(none)");
        png_read_free(&r);
    } else {
        EXPECT(0, "%s: exit %d: %s", what, rc, last_err);
    }
    image_free(&want);
}

static void test_img2img_inpaint(void) {
    check_init_run("img2img", "i2i.ddim_s0.75", 0, 0.75, -1, 16, 16);
    check_init_run("img2img, init and control of other sizes", "i2i.ddim_s0.75_cfg1_resize", 0, 0.5,
                   -1, 16, 8);
    check_init_run("inpaint", "inp.ddim_s0.6_n5", 1, 0.6, -1, 16, 16);
    check_init_run("inpaint strength 1", "inp.ddim_s1.0", 1, 1.0, -1, 16, 16);
    check_init_run("inpaint --padding-mask-crop", "inp.ddim_s0.75_crop_big", 1, 0.75, 2, 16, 16);
    char dir[PATH_MAX], img[PATH_MAX + 64], msk[PATH_MAX + 64], model[PATH_MAX];
    snprintf(model, sizeof model, "%s/tiny-sd", harness_fixtures());
    snprintf(dir, sizeof dir, "%s/goldens-img2img/images", harness_fixtures());
    snprintf(img, sizeof img, "%s/inp.ddim_s1.0.image_16x16_RGB.png", dir);
    snprintf(msk, sizeof msk, "%s/inp.ddim_s1.0.mask_16x16_L.png", dir);
    const char *junk = path_in("junk_mask.png");
    CHECK(file_write(junk, "not an image", 12) == 0, "write");
    const struct {
        const char *what, *phrase;
        int rc;
        const char *args[6];
    } bad[] = {
        {"mask without init image", "--mask_image needs --init_image", 2, {"--mask", msk}},
        {"strength 0", "--strength", 2, {"--init-image", img, "--strength", "0"}},
        {"undecodable mask", "--mask_image", 1, {"--init-image", img, "--mask", junk}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[20] = {"generate", "--model", model,
                                "--image",  img,       "--prompt",
                                "x",        "--out",   path_in("out/bad_init.png")};
        int n = 9;
        for (int k = 0; k < 6 && bad[i].args[k]; k++) args[n++] = bad[i].args[k];
        args[n] = NULL;
        int rc = run_cnet(args);
        EXPECT(rc == bad[i].rc && strstr(last_err, bad[i].phrase), "%s: exit %d: %s", bad[i].what,
               rc, last_err);
    }
}

int main(int argc, char **argv) {
    harness_init(argc, argv);
    RUN(test_rgb8_conversion);
    /* Tiny models gain nothing from threads, and OpenMP's spinning barriers
     * make a 2-thread run 10x slower when other jobs share the cores. */
    setenv("OMP_NUM_THREADS", "1", 1);
    if (setup()) {
        printf("setup failed (%s): %s\n", tmp, last_err);
        tmpdir_remove(tmp);
        printf("test_generate: 0 passed, 1 failed\n");
        return 1;
    }
    RUN(test_png_with_parameters);
    RUN(test_seed_determinism);
    RUN(test_seed_scale_and_values);
    RUN(test_option_spellings);
    RUN(test_mixed_precision_on_cpu);
    RUN(test_num_images);
    RUN(test_two_controlnets);
    RUN(test_canny);
    RUN(test_annotator_preprocess);
    RUN(test_sdxl);
    RUN(test_img2img_inpaint);
    RUN(test_progress_on_terminal);
    RUN(test_bad_input);
    tmpdir_remove(tmp);
    return harness_done();
}
