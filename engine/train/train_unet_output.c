/* What cnet train-unet leaves behind: the whole pipeline folder, as
 * train_text_to_image.py's final StableDiffusionPipeline.from_pretrained(
 * base, unet=unet).save_pretrained(output_dir) writes it (after
 * ema_unet.copy_to(unet.parameters()) with --use_ema). The frozen
 * components are copied file by file from the base folder (they are the
 * base's weights, unchanged); model_index.json becomes a
 * StableDiffusionPipeline's (the base's without a controlnet entry). Not
 * here: the model card and validation images (train_unet_validation.c). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/train/train_internal.h"

/* The largest component file copied (the base's weights). */
#define UNET_OUTPUT_MAX_FILE ((size_t)16 << 30)

/* The frozen components save_pretrained writes beside unet/. */
static const char *const frozen_components[] = {"text_encoder", "tokenizer", "vae", "scheduler"};

static int make_dir(const char *path, cnet_error *err) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return cnet_fail(err, CNET_EIO, "cannot create %s: %s", path, strerror(errno));
    return 0;
}

/* Copies the regular file from to to (atomically). */
static int copy_file(const char *from, const char *to, cnet_error *err) {
    FILE *f = fopen(from, "rb");
    if (!f) return cnet_fail(err, CNET_EIO, "cannot open %s: %s", from, strerror(errno));
    struct stat st;
    int rc =
        fstat(fileno(f), &st) != 0 || st.st_size < 0 || (size_t)st.st_size > UNET_OUTPUT_MAX_FILE
            ? cnet_fail(err, CNET_ELIMIT, "%s: not a file of at most %zu bytes", from,
                        UNET_OUTPUT_MAX_FILE)
            : 0;
    const size_t n = rc ? 0 : (size_t)st.st_size;
    void *buf = rc ? NULL : malloc(n ? n : 1);
    if (!rc && !buf) rc = cnet_fail(err, CNET_ENOMEM, "out of memory copying %s", from);
    if (!rc && fread(buf, 1, n, f) != n) rc = cnet_fail(err, CNET_EIO, "cannot read %s", from);
    fclose(f);
    if (!rc) rc = atomic_write_file(to, buf, n, err);
    free(buf);
    return rc;
}

/* Every regular file of base/<name>/ into out/<name>/. */
static int copy_component(const char *base, const char *out, const char *name, cnet_error *err) {
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/%s", base, name);
    snprintf(to, sizeof to, "%s/%s", out, name);
    DIR *d = opendir(from);
    if (!d) return cnet_fail(err, CNET_ENOTFOUND, "%s: %s", from, strerror(errno));
    int rc = make_dir(to, err);
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        char src[PATH_MAX + 256], dst[PATH_MAX + 256];
        struct stat st;
        snprintf(src, sizeof src, "%s/%s", from, e->d_name);
        if (e->d_name[0] == '.' || stat(src, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
        rc = copy_file(src, dst, err);
    }
    closedir(d);
    return rc;
}

/* The base's model_index.json as a StableDiffusionPipeline's. */
static int write_model_index(const char *base, const char *out, cnet_error *err) {
    char path[PATH_MAX];
    json_error_t jerr;
    snprintf(path, sizeof path, "%s/model_index.json", base);
    json_t *index = json_load_file(path, 0, &jerr);
    if (!json_is_object(index)) {
        json_decref(index);
        return cnet_fail(err, CNET_EFORMAT, "%s: %s", path, jerr.text);
    }
    json_object_del(index, "controlnet");
    json_object_set_new(index, "_class_name", json_string("StableDiffusionPipeline"));
    snprintf(path, sizeof path, "%s/model_index.json", out);
    int rc = atomic_write_json(path, index, err);
    json_decref(index);
    return rc;
}

int train_unet_save_pipeline(trainer *t, cnet_error *err) {
    const char *base = t->o->pretrained_model_name_or_path, *out = t->o->output_dir;
    const char *keys[] = {"format"}, *values[] = {"pt"};
    char path[PATH_MAX];
    int rc = 0;
    for (size_t i = 0; i < sizeof frozen_components / sizeof frozen_components[0] && !rc; i++)
        rc = copy_component(base, out, frozen_components[i], err);
    if (!rc) rc = write_model_index(base, out, err);
    snprintf(path, sizeof path, "%s/unet", out);
    if (!rc) rc = make_dir(path, err);
    snprintf(path, sizeof path, "%s/unet/config.json", out);
    if (!rc) rc = atomic_write_json(path, t->cn_config, err);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", out);
    if (!rc)
        rc = params_save(t->have_ema ? &t->ema.shadow : &t->base->unet.params, path, keys, values,
                         1, err);
    return rc;
}
