/* cnet init-model --out DIR (--preset tiny|sd15|sdxl|sdxl-small | --from-config SRC)
 *                 [--seed N] [--dtype f32|f16|bf16] [--nonzero-controlnet] [--configs-only]
 *
 * Writes a complete diffusers StableDiffusionControlNetPipeline folder with
 * random non-zero weights (engine/init/model_init.h): model_index.json, unet/,
 * vae/, text_encoder/, controlnet/ (ControlNetModel.from_unet of the UNet),
 * scheduler/, tokenizer/ (a StableDiffusionXLControlNetPipeline with
 * text_encoder_2/ and tokenizer_2/ too for the sdxl presets). `--preset tiny` writes its own small
 * configs and a generated BPE tokenizer (`sd15`: Stable Diffusion 1.5's architecture, ~1.4 B
 * parameters with the ControlNet, so --dtype f16 halves the 5.7 GB of
 * float32 files; `sdxl`: Stable Diffusion XL base 1.0's, ~4.7 B with the
 * ControlNet and both text encoders; `sdxl-small`: its layout at reduced
 * width for benchmarks); `--from-config SRC` copies SRC's configs and
 * tokenizer (a pipeline folder without weights, such as
 * tests/fixtures/small-sd; an SDXL one's text_encoder_2/ and tokenizer_2/
 * too) and generates weights for them.
 * `--configs-only` stops before the weights (a folder to inspect, or to test
 * a preset's architecture without gigabytes on disk). DIR must not exist or
 * be empty. Exit status 0 ok, 1 failure, 2 usage error. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/atomic_file.h"
#include "engine/init/model_init.h"
#include "server/cli/cli_args.h"
#include "server/cli/commands.h"

/* Largest config or tokenizer file copied (CLIP's vocab.json is 1.6 MB). */
#define INIT_MODEL_MAX_COPY_BYTES (64u << 20)

static const char *const subdirs[] = {"unet",       "vae",       "text_encoder",
                                      "controlnet", "scheduler", "tokenizer"};

/* What --from-config copies; optional files are copied when present. */
static const struct {
    const char *rel;
    int required;
} copied[] = {
    {"model_index.json", 0},
    {"unet/config.json", 1},
    {"vae/config.json", 1},
    {"text_encoder/config.json", 1},
    {"controlnet/config.json", 0},
    {"scheduler/scheduler_config.json", 1},
    {"tokenizer/vocab.json", 1},
    {"tokenizer/merges.txt", 1},
    {"tokenizer/tokenizer_config.json", 1},
    {"tokenizer/special_tokens_map.json", 0},
    {"text_encoder_2/config.json", 0}, /* SDXL's second text encoder and tokenizer */
    {"tokenizer_2/vocab.json", 0},
    {"tokenizer_2/merges.txt", 0},
    {"tokenizer_2/tokenizer_config.json", 0},
    {"tokenizer_2/special_tokens_map.json", 0},
};

/* The built-in architectures. */
static const struct {
    const char *name;
    int (*write_configs)(const char *out, cnet_error *err);
} presets[] = {
    {"tiny", minit_tiny_configs},
    {"sd15", minit_sd15_configs},
    {"sdxl", minit_sdxl_configs},
    {"sdxl-small", minit_sdxl_small_configs},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

/* The weights' storage, as --dtype spells it. */
static const struct {
    const char *name;
    cnet_dtype dtype;
} dtypes[] = {{"f32", CNET_F32}, {"f16", CNET_F16}, {"bf16", CNET_BF16}};

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: cnet init-model --out DIR (--preset NAME | --from-config SRC) [--seed N]\n"
        "                       [--dtype f32|f16|bf16] [--nonzero-controlnet] [--configs-only]\n"
        "  Writes a diffusers ControlNet pipeline folder with random weights.\n"
        "  --out DIR             the folder to create (must not exist, or be empty)\n"
        "  --preset tiny         built-in 2-level configs (8x8 latents, 16x16 images) and a\n"
        "                        generated BPE tokenizer\n"
        "  --preset sd15         Stable Diffusion 1.5's architecture (64x64 latents, 512x512\n"
        "                        images, CLIP ViT-L/14), a generated BPE tokenizer\n"
        "  --preset sdxl         Stable Diffusion XL base 1.0's architecture (128x128 latents,\n"
        "                        1024x1024 images, both text encoders), generated tokenizers\n"
        "  --preset sdxl-small   the SDXL layout at reduced width (32x32 latents), for benchmarks\n"
        "  --from-config SRC     copy SRC's configs and tokenizer (a pipeline folder)\n"
        "  --seed N              weights seed (default 0)\n"
        "  --dtype D             weights stored as f32 (default), f16 or bf16\n"
        "  --nonzero-controlnet  random zero convs instead of from_unet's zeros\n"
        "  --configs-only        write configs and tokenizer, no weights\n");
}

static int empty_or_absent(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static int copy_file(const char *src, const char *dst, cnet_error *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return cnet_fail(err, CNET_ENOTFOUND, "%s: cannot open: %s", src, strerror(errno));
    char *buf = malloc(INIT_MODEL_MAX_COPY_BYTES + 1);
    size_t n = buf ? fread(buf, 1, INIT_MODEL_MAX_COPY_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (!buf)
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory copying %s", src);
    else if (bad)
        rc = cnet_fail(err, CNET_EIO, "%s: read failed", src);
    else if (n > INIT_MODEL_MAX_COPY_BYTES)
        rc =
            cnet_fail(err, CNET_ELIMIT, "%s: larger than %u bytes", src, INIT_MODEL_MAX_COPY_BYTES);
    else
        rc = atomic_write_file(dst, buf, n, err);
    free(buf);
    return rc;
}

static int copy_configs(const char *src, const char *out, cnet_error *err) {
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        if (snprintf(from, sizeof from, "%s/%s", src, copied[i].rel) >= (int)sizeof from ||
            snprintf(to, sizeof to, "%s/%s", out, copied[i].rel) >= (int)sizeof to)
            return cnet_fail(err, CNET_ELIMIT, "%s: path too long", copied[i].rel);
        struct stat st;
        if (stat(from, &st) != 0 && !copied[i].required) continue;
        /* The folders of optional components (text_encoder_2/, tokenizer_2/)
         * are made when SRC has them. */
        char *slash = strrchr(to, '/');
        *slash = '\0';
        int made = mkdir(to, 0755) == 0 || errno == EEXIST;
        *slash = '/';
        if (!made) return cnet_fail(err, CNET_EIO, "%s: cannot create its folder", to);
        int rc = copy_file(from, to, err);
        if (rc) return rc;
    }
    return 0;
}

int cmd_init_model(int argc, char **argv) {
    const char *out = NULL, *preset = NULL, *from = NULL;
    minit_options opt = {0};
    int configs_only = 0;
    cnet_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc = 0;
        if (cli_is_help(a)) {
            usage(stdout);
            return 0;
        } else if (cli_flag(a, "nonzero-controlnet", NULL)) {
            opt.nonzero_controlnet = 1;
        } else if (cli_flag(a, "configs-only", NULL)) {
            configs_only = 1;
        } else if (cli_take(argc, argv, &i, "dtype", &v, &err)) {
            size_t k = 0;
            while (v && k < sizeof dtypes / sizeof dtypes[0] && strcmp(v, dtypes[k].name) != 0) k++;
            if (v && k == sizeof dtypes / sizeof dtypes[0])
                cnet_fail(&err, CNET_EINVAL, "--dtype wants f32, f16 or bf16, got '%s'", v);
            rc = !v || k == sizeof dtypes / sizeof dtypes[0];
            if (!rc) opt.dtype = dtypes[k].dtype;
        } else if (cli_take(argc, argv, &i, "out", &out, &err)) {
            rc = !out;
        } else if (cli_take(argc, argv, &i, "preset", &preset, &err)) {
            rc = !preset;
        } else if (cli_take(argc, argv, &i, "from-config", &from, &err)) {
            rc = !from;
        } else if (cli_take(argc, argv, &i, "seed", &v, &err)) {
            rc = !v || cli_u64(a, v, UINT64_MAX, &opt.seed, &err);
        } else {
            fprintf(stderr, "cnet init-model: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (rc) {
            fprintf(stderr, "cnet init-model: %s\n", err.msg);
            return 2;
        }
    }
    if (!out || !!preset == !!from) {
        fprintf(stderr, "cnet init-model: need --out and exactly one of --preset, --from-config\n");
        usage(stderr);
        return 2;
    }
    size_t p = 0;
    while (preset && p < N_PRESETS && strcmp(preset, presets[p].name) != 0) p++;
    if (preset && p == N_PRESETS) {
        fprintf(stderr, "cnet init-model: unknown preset '%s' (known:", preset);
        for (size_t k = 0; k < N_PRESETS; k++) fprintf(stderr, " %s", presets[k].name);
        fprintf(stderr, ")\n");
        return 2;
    }
    if (!empty_or_absent(out)) {
        fprintf(stderr, "cnet init-model: %s exists and is not empty\n", out);
        return 1;
    }
    int rc = 0;
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        rc = cnet_fail(&err, CNET_EIO, "%s: cannot create: %s", out, strerror(errno));
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0] && !rc; i++) {
        char dir[PATH_MAX];
        if (snprintf(dir, sizeof dir, "%s/%s", out, subdirs[i]) >= (int)sizeof dir)
            rc = cnet_fail(&err, CNET_ELIMIT, "%s: path too long", out);
        else if (mkdir(dir, 0755) != 0)
            rc = cnet_fail(&err, CNET_EIO, "%s: cannot create: %s", dir, strerror(errno));
    }
    if (!rc) rc = preset ? presets[p].write_configs(out, &err) : copy_configs(from, out, &err);
    if (!rc) rc = configs_only ? minit_model_index(out, &err) : minit_pipeline(out, &opt, &err);
    if (rc) {
        fprintf(stderr, "cnet init-model: %s\n", err.msg);
        return 1;
    }
    if (configs_only)
        printf("cnet init-model: wrote the configs of %s%s to %s (no weights)\n",
               preset ? "preset " : "", preset ? preset : from, out);
    else
        printf("cnet init-model: wrote %s (%s%s, seed %" PRIu64 ", %s weights%s)\n", out,
               preset ? "preset " : "configs of ", preset ? preset : from, opt.seed,
               cnet_dtype_name(opt.dtype),
               opt.nonzero_controlnet ? ", non-zero ControlNet zero convs" : "");
    return 0;
}
