/* A loaded base pipeline: the frozen components of a diffusers Stable
 * Diffusion folder (tokenizer/, text_encoder/, unet/, vae/ and the
 * scheduler/ config), loaded once and shared read-only by generation and
 * training (the service's model cache holds these). */
#ifndef CNET_SD_BASE_H
#define CNET_SD_BASE_H

#include <limits.h>

#include "clip_text.h"
#include "pipeline.h"
#include "tokenizer.h"
#include "unet.h"
#include "vae.h"

typedef struct sd_base {
    char dir[PATH_MAX];
    tokenizer *tok;
    clip_text_model text_encoder;
    unet_model unet;
    vae_model vae;
    int loaded; /* components opened so far, for sd_base_free */
} sd_base;

/* Opens every component of the pipeline folder dir; on failure nothing is
 * left to free and err names the component. */
int sd_base_open(sd_base *b, cnet_backend *be, const char *dir, cnet_error *err);
void sd_base_free(sd_base *b);
/* The models as the pipeline takes them (borrowed from b). */
pipe_models sd_base_models(sd_base *b);
/* <dir>/scheduler/scheduler_config.json read as class `kind` (-1: its own). */
int sd_base_scheduler(const sd_base *b, int kind, cnet_sched_config *cfg, cnet_error *err);

#endif
