/* Loading a base pipeline folder; see sd_base.h. */
#include "engine/pipeline/sd_base.h"

#include <stdio.h>
#include <string.h>

static int component(char *path, size_t cap, const char *dir, const char *name, cnet_error *err) {
    int n = snprintf(path, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return cnet_fail(err, CNET_ELIMIT, "%s: path too long", dir);
    return 0;
}

int sd_base_open(sd_base *b, cnet_backend *be, const char *dir, cnet_error *err) {
    char path[PATH_MAX];
    int rc;
    memset(b, 0, sizeof *b);
    if (strlen(dir) >= sizeof b->dir) return cnet_fail(err, CNET_ELIMIT, "%s: path too long", dir);
    strcpy(b->dir, dir);
    if ((rc = component(path, sizeof path, dir, "tokenizer", err)) ||
        (rc = tokenizer_load(&b->tok, path, err)))
        goto fail;
    if ((rc = component(path, sizeof path, dir, "text_encoder", err)) ||
        (rc = clip_text_open(&b->text_encoder, be, path, err)))
        goto fail;
    b->loaded = 1;
    if ((rc = component(path, sizeof path, dir, "unet", err)) ||
        (rc = unet_open(&b->unet, be, path, err)))
        goto fail;
    b->loaded = 2;
    if ((rc = component(path, sizeof path, dir, "vae", err)) ||
        (rc = vae_open(&b->vae, be, path, err)))
        goto fail;
    b->loaded = 3;
    return 0;
fail:
    sd_base_free(b);
    return cnet_error_prefix(err, "base model %s", dir);
}

void sd_base_free(sd_base *b) {
    if (b->loaded > 2) vae_free(&b->vae);
    if (b->loaded > 1) unet_free(&b->unet);
    if (b->loaded > 0) clip_text_free(&b->text_encoder);
    if (b->tok) tokenizer_free(b->tok);
    memset(b, 0, sizeof *b);
}

int sd_base_store16(sd_base *b, cnet_precision prec, cnet_error *err) {
    const cnet_dtype dt = cnet_precision_dtype(prec);
    int rc;
    if ((rc = params_store16(&b->text_encoder.params, dt, err)) ||
        (rc = params_store16(&b->unet.params, dt, err)) ||
        (rc = params_store16(&b->vae.params, dt, err)))
        return cnet_error_prefix(err, "base model %s", b->dir);
    return 0;
}

size_t sd_base_bytes(const sd_base *b) {
    return params_bytes(&b->text_encoder.params) + params_bytes(&b->unet.params) +
           params_bytes(&b->vae.params);
}

pipe_models sd_base_models(sd_base *b) {
    pipe_models m = {
        .tok = b->tok, .text_encoder = &b->text_encoder, .unet = &b->unet, .vae = &b->vae};
    return m;
}

int sd_base_scheduler(const sd_base *b, int kind, cnet_sched_config *cfg, cnet_error *err) {
    char path[PATH_MAX];
    int rc = component(path, sizeof path, b->dir, "scheduler/scheduler_config.json", err);
    return rc ? rc : cnet_sched_config_load(cfg, path, kind, err);
}
