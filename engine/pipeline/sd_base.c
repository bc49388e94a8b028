/* Loading a base pipeline folder; see sd_base.h. */
#include "engine/pipeline/sd_base.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The pipeline classes diffusers names SDXL's all start so. */
#define SD_BASE_XL_PREFIX "StableDiffusionXL"

/* What sd_base_free must undo, in opening order. */
enum { LOADED_TE = 1, LOADED_UNET, LOADED_VAE, LOADED_TE_2 };

static int component(char *path, size_t cap, const char *dir, const char *name, cnet_error *err) {
    int n = snprintf(path, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return cnet_fail(err, CNET_ELIMIT, "%s: path too long", dir);
    return 0;
}

/* The model type from <dir>/model_index.json (absent: SD 1.x / 2.x). */
static int read_index(sd_base *b, cnet_error *err) {
    char path[PATH_MAX];
    int rc = component(path, sizeof path, b->dir, "model_index.json", err);
    if (rc || access(path, F_OK) != 0) return rc;
    cnet_model_index idx;
    if ((rc = cnet_model_index_load(&idx, path, err))) return rc;
    b->xl = strncmp(idx.class_name, SD_BASE_XL_PREFIX, strlen(SD_BASE_XL_PREFIX)) == 0;
    b->force_zeros_for_empty_prompt =
        b->xl && idx.force_zeros_for_empty_prompt != 0; /* absent (-1): the default, true */
    return 0;
}

/* The UNet's added embedding must be the one the pipeline class feeds. */
static int check_type(const sd_base *b, cnet_error *err) {
    const int text_time = b->unet.enc.cfg.add_text_time;
    if (b->xl && !text_time)
        return cnet_fail(err, CNET_EINVAL,
                         "model_index.json names an SDXL pipeline but unet/config.json has no "
                         "addition_embed_type \"text_time\"");
    if (!b->xl && text_time)
        return cnet_fail(err, CNET_EINVAL,
                         "unet/config.json has addition_embed_type \"text_time\" (SDXL) but "
                         "model_index.json's _class_name is not a StableDiffusionXL pipeline");
    return 0;
}

int sd_base_open(sd_base *b, cnet_backend *be, const char *dir, cnet_error *err) {
    char path[PATH_MAX];
    int rc;
    memset(b, 0, sizeof *b);
    if (strlen(dir) >= sizeof b->dir) return cnet_fail(err, CNET_ELIMIT, "%s: path too long", dir);
    strcpy(b->dir, dir);
    if ((rc = read_index(b, err))) goto fail;
    if ((rc = component(path, sizeof path, dir, "tokenizer", err)) ||
        (rc = tokenizer_load(&b->tok, path, err)))
        goto fail;
    if ((rc = component(path, sizeof path, dir, "text_encoder", err)) ||
        (rc = clip_text_open(&b->text_encoder, be, path, err)))
        goto fail;
    b->loaded = LOADED_TE;
    if ((rc = component(path, sizeof path, dir, "unet", err)) ||
        (rc = unet_open(&b->unet, be, path, err)))
        goto fail;
    b->loaded = LOADED_UNET;
    if ((rc = component(path, sizeof path, dir, "vae", err)) ||
        (rc = vae_open(&b->vae, be, path, err)))
        goto fail;
    b->loaded = LOADED_VAE;
    if ((rc = check_type(b, err))) goto fail;
    if (b->xl) {
        if ((rc = component(path, sizeof path, dir, "tokenizer_2", err)) ||
            (rc = tokenizer_load(&b->tok_2, path, err)))
            goto fail;
        if ((rc = component(path, sizeof path, dir, "text_encoder_2", err)) ||
            (rc = clip_text_open(&b->text_encoder_2, be, path, err)))
            goto fail;
        b->loaded = LOADED_TE_2;
    }
    return 0;
fail:
    sd_base_free(b);
    return cnet_error_prefix(err, "base model %s", dir);
}

void sd_base_free(sd_base *b) {
    if (b->loaded >= LOADED_TE_2) clip_text_free(&b->text_encoder_2);
    if (b->loaded >= LOADED_VAE) vae_free(&b->vae);
    if (b->loaded >= LOADED_UNET) unet_free(&b->unet);
    if (b->loaded >= LOADED_TE) clip_text_free(&b->text_encoder);
    if (b->tok) tokenizer_free(b->tok);
    if (b->tok_2) tokenizer_free(b->tok_2);
    memset(b, 0, sizeof *b);
}

int sd_base_store16(sd_base *b, cnet_precision prec, cnet_error *err) {
    const cnet_dtype dt = cnet_precision_dtype(prec);
    int rc;
    if ((rc = params_store16(&b->text_encoder.params, dt, err)) ||
        (rc = params_store16(&b->unet.params, dt, err)) ||
        (b->xl && (rc = params_store16(&b->text_encoder_2.params, dt, err))) ||
        (!sd_base_vae_upcast(b) && (rc = params_store16(&b->vae.params, dt, err))))
        return cnet_error_prefix(err, "base model %s", b->dir);
    return 0;
}

int sd_base_vae_upcast(const sd_base *b) { return b->xl && b->vae.cfg.force_upcast; }

size_t sd_base_bytes(const sd_base *b) {
    return params_bytes(&b->text_encoder.params) + params_bytes(&b->unet.params) +
           params_bytes(&b->vae.params) + (b->xl ? params_bytes(&b->text_encoder_2.params) : 0);
}

pipe_models sd_base_models(sd_base *b) {
    pipe_models m = {.tok = b->tok,
                     .text_encoder = &b->text_encoder,
                     .unet = &b->unet,
                     .vae = &b->vae,
                     .vae_upcast = sd_base_vae_upcast(b)};
    if (b->xl) {
        m.tok_2 = b->tok_2;
        m.text_encoder_2 = &b->text_encoder_2;
        m.force_zeros_for_empty_prompt = b->force_zeros_for_empty_prompt;
    }
    return m;
}

int sd_base_scheduler(const sd_base *b, int kind, cnet_sched_config *cfg, cnet_error *err) {
    char path[PATH_MAX];
    int rc = component(path, sizeof path, b->dir, "scheduler/scheduler_config.json", err);
    return rc ? rc : cnet_sched_config_load(cfg, path, kind, err);
}
