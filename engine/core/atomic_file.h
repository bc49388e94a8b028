/* Whole small files (configs, tokenizer files) written atomically: a temp
 * file next to the target, fsync, rename, fsync of the folder, so a reader
 * sees the old file or the new one, never half of one. Large tensors go
 * through st_write (engine/core/safetensors.h), which does the same. */
#ifndef CNET_ATOMIC_FILE_H
#define CNET_ATOMIC_FILE_H

#include <jansson.h>
#include <stddef.h>

#include "engine/core/error.h"

/* Writes len bytes of data to path. Errors name the path and the step. */
int atomic_write_file(const char *path, const void *data, size_t len, cnet_error *err);

/* Writes j as diffusers writes config.json: 2-space indent, sorted keys,
 * a final newline. */
int atomic_write_json(const char *path, const json_t *j, cnet_error *err);

#endif
