/* What the preset writers of engine/init share (model_init.c implements
 * it): joining paths, writing a config, a generated tokenizer, and the
 * ControlNet config made from_unet of the UNet's. Not a public interface:
 * only engine/init/model_init*.c include it. */
#ifndef CNET_MODEL_INIT_INTERNAL_H
#define CNET_MODEL_INIT_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "engine/core/error.h"

/* Creates the folder path unless it is one already. */
int minit_mkdir(const char *path, cnet_error *err);
/* buf (PATH_MAX bytes) = dir/rel. */
int minit_path_join(char *buf, const char *dir, const char *rel, cnet_error *err);
/* Writes j (a reference this call takes; NULL: out of memory) to out/rel. */
int minit_write_json(const char *out, const char *rel, json_t *j, cnet_error *err);
/* The generated BPE tokenizer (engine/text/tokenizer_train.h, learned from
 * the built-in caption text) in out/rel/, which must exist; *vocab gets its
 * size. */
int minit_write_tokenizer(const char *out, const char *rel, int64_t *vocab, cnet_error *err);
/* controlnet/config.json: from_unet of out/unet/config.json with the given
 * conditioning embedding widths. */
int minit_write_controlnet_config(const char *out, const int *cond, int n_cond, cnet_error *err);

#endif
