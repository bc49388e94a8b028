/* cnet golden [--fixtures DIR] [--device D]: checks every golden file of a
 * fixture directory that cnet can compute so far and prints one line per
 * tensor (server/golden/golden.h), then a summary. The models run on the backend
 * --device names (cpu by default; cuda or cuda:N falls back to the CPU with
 * a note where no GPU is visible); the line "cnet golden: backend NAME"
 * says which ran. Exit status 0 when everything passed, 1 on any mismatch
 * or missing file, 2 on a usage error.
 *
 * Later work adds a row to `checks` (and a golden_check_<stem> function)
 * for each golden file it can reproduce; golden files without a row are
 * listed as not checked. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/backend.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"
#include "server/golden/golden.h"

typedef struct golden_check {
    const char *stem; /* goldens/<stem>.safetensors */
    int (*run)(golden_ctx *ctx, const st_file *f, cnet_error *err);
} golden_check;

static const golden_check checks[] = {
    {"tokenizer", golden_check_tokenizer},
    {"text_encoder", golden_check_text_encoder},
    {"vae", golden_check_vae},
    {"unet", golden_check_unet},
    {"controlnet", golden_check_controlnet},
    {"train", golden_check_train},
    {"pipeline", golden_check_pipeline},
    {"schedulers", golden_check_schedulers},
    {"preprocess", golden_check_preprocess},
};

static const int n_checks = (int)(sizeof checks / sizeof checks[0]);

static void usage(FILE *out) {
    fprintf(out, "usage: cnet golden [--fixtures DIR] [--device D]\n"
                 "  Compares cnet with the reference tensors in DIR/goldens (default "
                 "tests/fixtures).\n"
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
    snprintf(path, sizeof path, "%s/goldens/%s.safetensors", ctx->fixtures, c->stem);
    printf("== %s\n", path);
    ctx->stem = c->stem;
    ctx->n_seen = 0;
    cnet_error err;
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

/* Golden files present that no row of `checks` covers yet. */
static void list_uncovered(const char *fixtures) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/goldens", fixtures);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name), s = strlen(".safetensors");
        if (n <= s || strcmp(e->d_name + n - s, ".safetensors") != 0) continue;
        int covered = 0;
        for (int i = 0; i < n_checks && !covered; i++)
            covered =
                strlen(checks[i].stem) == n - s && strncmp(checks[i].stem, e->d_name, n - s) == 0;
        if (!covered) printf("not checked yet: goldens/%s\n", e->d_name);
    }
    closedir(d);
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
    golden_ctx ctx;
    if (golden_init(&ctx, fixtures, &err)) {
        fprintf(stderr, "cnet golden: %s\n", err.msg);
        golden_free(&ctx);
        return 1;
    }
    ctx.device = device;
    for (int i = 0; i < n_checks; i++) run_check(&ctx, &checks[i]);
    list_uncovered(fixtures);
    printf("cnet golden: %d checks, %d passed, %d failed\n", ctx.passed + ctx.failed, ctx.passed,
           ctx.failed);
    int failed = ctx.failed;
    golden_free(&ctx);
    return failed ? 1 : 0;
}
