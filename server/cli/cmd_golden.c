/* cnet golden [--fixtures DIR] [--device D]: checks every golden file of a
 * fixture directory that cnet can compute so far and prints one line per
 * tensor (server/golden/golden.h), then a summary. The fixture's goldens/
 * folder is always checked, its goldens-sdxl/, goldens-img2img/ and
 * goldens-unet-train/ folders (each with the model folder its manifest
 * names, or the one cnet knows it was made with) whenever they exist. The
 * models run on the backend
 * --device names (cpu by default; cuda or cuda:N falls back to the CPU with
 * a note where no GPU is visible); the line "cnet golden: backend NAME"
 * says which ran. Exit status 0 when everything passed, 1 on any mismatch
 * or missing file, 2 on a usage error.
 *
 * Later work adds a row to a folder's table (and a golden_check_<stem>
 * function) for each golden file it can reproduce; golden .safetensors
 * files without a row are listed as "not checked yet", which is no
 * failure. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/backend.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/golden/golden.h"

/* One golden file: <stem>.safetensors checked by run, or <stem>.json
 * checked by run_json (exactly one of the two is set). */
typedef struct golden_check {
    const char *stem;
    int (*run)(golden_ctx *ctx, const st_file *f, cnet_error *err);
    int (*run_json)(golden_ctx *ctx, const char *path, cnet_error *err);
} golden_check;

static const golden_check sd_checks[] = {
    {"tokenizer", golden_check_tokenizer, NULL},
    {"text_encoder", golden_check_text_encoder, NULL},
    {"vae", golden_check_vae, NULL},
    {"unet", golden_check_unet, NULL},
    {"controlnet", golden_check_controlnet, NULL},
    {"train", golden_check_train, NULL},
    {"pipeline", golden_check_pipeline, NULL},
    {"schedulers", golden_check_schedulers, NULL},
    {"preprocess", golden_check_preprocess, NULL},
    {"controlnet_from_unet", NULL, golden_check_from_unet},
};

static const golden_check sdxl_checks[] = {
    {"unet_sdxl", golden_check_unet_sdxl, NULL},
    {"controlnet_sdxl", golden_check_controlnet_sdxl, NULL},
    {"text_encoders", golden_check_text_encoders_sdxl, NULL},
    {"pipeline_sdxl", golden_check_pipeline_sdxl, NULL},
    {"preprocess_sdxl", golden_check_preprocess, NULL},
    {"train_sdxl", golden_check_train_sdxl, NULL},
    {"controlnet_from_unet", NULL, golden_check_from_unet},
};

static const golden_check img2img_checks[] = {
    {"img2img", golden_check_img2img, NULL},
    {"inpaint", golden_check_inpaint, NULL},
    {"preprocess", golden_check_img2img_preprocess, NULL},
};

static const golden_check unet_train_checks[] = {
    {"preprocess_t2i", golden_check_preprocess_t2i, NULL},
    {"train_unet", golden_check_train_unet, NULL},
};

/* A golden folder and its table; optional folders are checked when present.
 * model: the fixture root's model folder the goldens were made with, when
 * the folder's manifest does not list one (NULL: it does). */
typedef struct golden_set {
    const char *dir;
    const golden_check *checks;
    int n, optional;
    const char *model;
} golden_set;

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
static const golden_set sets[] = {
    {GOLDEN_DIR, sd_checks, COUNT(sd_checks), 0, NULL},
    {GOLDEN_DIR_SDXL, sdxl_checks, COUNT(sdxl_checks), 1, NULL},
    {GOLDEN_DIR_IMG2IMG, img2img_checks, COUNT(img2img_checks), 1, GOLDEN_IMG2IMG_MODEL},
    {GOLDEN_DIR_UNET_TRAIN, unet_train_checks, COUNT(unet_train_checks), 1,
     GOLDEN_UNET_TRAIN_MODEL},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: cnet golden [--fixtures DIR] [--device D]\n"
            "  Compares cnet with the reference tensors in DIR/goldens and, when they "
            "exist,\n  DIR/goldens-sdxl, DIR/goldens-img2img and DIR/goldens-unet-train (default "
            "DIR:\n  tests/fixtures).\n"
            "  --device  cpu (default), cuda or cuda:N: the backend the models run on\n");
}

/* Lists the file's tensors that no check compared. */
static void list_unchecked(const golden_ctx *ctx, const st_file *f) {
    int unchecked = 0;
    for (int i = 0; i < f->n; i++) {
        int seen = 0;
        for (int j = 0; j < ctx->n_seen && !seen; j++)
            seen = strcmp(ctx->seen[j], f->entries[i].name) == 0;
        if (!seen) unchecked++;
    }
    if (unchecked) printf("%s.safetensors: %d tensors not checked\n", ctx->stem, unchecked);
}

static void run_check(golden_ctx *ctx, const golden_check *c) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s/%s.%s", ctx->fixtures, ctx->goldens, c->stem,
             c->run ? "safetensors" : "json");
    printf("== %s\n", path);
    ctx->stem = c->stem;
    ctx->n_seen = 0;
    cnet_error err;
    if (!c->run) {
        if (c->run_json(ctx, path, &err)) {
            printf("FAIL %s: %s\n", c->stem, err.msg);
            ctx->failed++;
        }
        return;
    }
    st_file f;
    if (st_open(&f, path, &err)) {
        printf("FAIL %s\n", err.msg);
        ctx->failed++;
        return;
    }
    if (c->run(ctx, &f, &err)) {
        printf("FAIL %s: %s\n", c->stem, err.msg);
        ctx->failed++;
    }
    list_unchecked(ctx, &f);
    st_close(&f);
}

/* Golden .safetensors files of the set's folder that no row covers yet. */
static void list_uncovered(const char *fixtures, const golden_set *set) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", fixtures, set->dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name), s = strlen(".safetensors");
        if (n <= s || strcmp(e->d_name + n - s, ".safetensors") != 0) continue;
        int covered = 0;
        for (int i = 0; i < set->n && !covered; i++)
            covered = set->checks[i].run && strlen(set->checks[i].stem) == n - s &&
                      strncmp(set->checks[i].stem, e->d_name, n - s) == 0;
        if (!covered) printf("not checked yet: %s/%s\n", set->dir, e->d_name);
    }
    closedir(d);
}

/* Runs every check of a golden folder, adding to *passed / *failed. A
 * missing optional folder is skipped; a folder that cannot be read counts
 * as a failure. */
static void run_set(const golden_set *set, const char *fixtures, const char *device, int *passed,
                    int *failed) {
    char dir[PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/%s", fixtures, set->dir);
    if (set->optional && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))) return;
    golden_ctx ctx;
    cnet_error err;
    if (golden_init_dir_model(&ctx, fixtures, set->dir, set->model, &err)) {
        printf("FAIL %s: %s\n", set->dir, err.msg);
        golden_free(&ctx);
        (*failed)++;
        return;
    }
    ctx.device = device;
    printf("cnet golden: %s with the model %s\n", dir, ctx.model_dir);
    for (int i = 0; i < set->n; i++) run_check(&ctx, &set->checks[i]);
    list_uncovered(fixtures, set);
    *passed += ctx.passed, *failed += ctx.failed;
    golden_free(&ctx);
}

int cmd_golden(int argc, char **argv) {
    const char *fixtures = "tests/fixtures", *device = "cpu";
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if (cli_take(argc, argv, &i, "fixtures", &fixtures, &err)) {
            rc = !fixtures;
        } else if (cli_take(argc, argv, &i, "device", &device, &err)) {
            rc = !device;
        } else if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cnet golden: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "cnet golden: %s\n", err.msg);
            return 2;
        }
    }
    /* Opened once to validate --device and say what runs; every check then
     * opens its own backend of the same device. */
    cnet_backend probe;
    char note[320];
    int rc = cnet_backend_open(&probe, device, note, sizeof note, &err);
    if (rc) {
        fprintf(stderr, "cnet golden: %s\n", err.msg);
        return rc == CNET_EINVAL ? 2 : 1;
    }
    if (note[0]) {
        printf("cnet golden: %s\n", note);
        device = "cpu";
    }
    printf("cnet golden: backend %s\n", probe.name);
    cnet_backend_free(&probe);
    int passed = 0, failed = 0;
    for (int i = 0; i < COUNT(sets); i++) run_set(&sets[i], fixtures, device, &passed, &failed);
    printf("cnet golden: %d checks, %d passed, %d failed\n", passed + failed, passed, failed);
    return failed ? 1 : 0;
}
