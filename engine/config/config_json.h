/* Typed reads of config.json fields, shared by the config loaders (internal
 * to engine/config/config_*.c). Each reader takes the default used when the field is
 * absent and fails with "<file>: field '<key>': expected <what>, got <JSON
 * kind>" when the value has the wrong type or is out of range. An explicit
 * null is "absent" only for the readers named *_opt (diffusers' Optional
 * fields); elsewhere it is a type error, as it would fail in Python. */
#ifndef CNET_CONFIG_JSON_H
#define CNET_CONFIG_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/config/config.h"
#include "engine/core/error.h"

typedef struct cfg_file {
    const char *path;
    json_t *root; /* owned; an object */
    cnet_error *err;
} cfg_file;

/* Reads path (at most CNET_CONFIG_MAX_BYTES, duplicate keys refused) and
 * requires a JSON object. */
int cfg_open(cfg_file *f, const char *path, cnet_error *err);
void cfg_close(cfg_file *f);

/* The value of key in obj, NULL when absent. */
json_t *cfg_get(const cfg_file *f, const char *key);
/* Fails with the type message for key. */
int cfg_type_error(const cfg_file *f, const char *key, const char *expected, const json_t *got);
/* Fails with "unsupported" naming key and its value. */
int cfg_unsupported(const cfg_file *f, const char *key, const char *why);

int cfg_int(const cfg_file *f, const char *key, int def, int min, int max, int *out);
/* Optional int: absent or null leaves *present false and *out = def. */
int cfg_int_opt(const cfg_file *f, const char *key, int def, int min, int max, int *out,
                bool *present);
int cfg_float(const cfg_file *f, const char *key, double def, double *out);
int cfg_float_opt(const cfg_file *f, const char *key, double def, double *out, bool *present);
int cfg_bool(const cfg_file *f, const char *key, bool def, bool *out);
/* A string field matched against names[0..n); absent -> def. */
int cfg_enum(const cfg_file *f, const char *key, int def, const char *const *names, int n,
             int *out);
/* A list of min_len..max_len ints in [min, max] (an int is refused). */
int cfg_int_list(const cfg_file *f, const char *key, const int *def, int def_len, int min_len,
                 int max_len, int min, int max, int *out, int *len);
/* An int broadcast to n entries, or a list of exactly n ints. */
int cfg_int_or_list(const cfg_file *f, const char *key, int def, int n, int min, int max, int *out);
/* A bool broadcast to n entries, or a list of exactly n bools; *was_bool tells which. */
int cfg_bool_or_list(const cfg_file *f, const char *key, bool def, int n, bool *out,
                     bool *was_bool);
/* Requires _class_name to be absent or want. */
int cfg_class_name(const cfg_file *f, const char *want);
/* Requires key to be absent or null; else refuses it as unsupported. */
int cfg_require_null(const cfg_file *f, const char *key);
/* Requires a string key to be absent or equal to want. */
int cfg_require_string(const cfg_file *f, const char *key, const char *want);

/* A list of block type names, each in the `allowed` bit mask of
 * cnet_block_type (others are refused as unsupported). */
int cfg_block_types(const cfg_file *f, const char *key, const cnet_block_type *def, int def_len,
                    unsigned allowed, cnet_block_type *out, int *len);
/* Fails unless len == n, naming both fields. */
int cfg_same_length(const cfg_file *f, const char *key, int len, const char *other, int n);
/* act_fn: silu/swish accepted, diffusers' other activations unsupported. */
int cfg_act_silu(const cfg_file *f, const char *key);
/* transformer_layers_per_block (and, with up, the UNet's
 * reverse_transformer_layers_per_block) resolved per layer into c's
 * down/mid/up_transformer_layers; needs n_blocks, the block types and
 * layers_per_block (engine/config/config_unet_depth.c). */
int cfg_transformer_depths(cnet_unet_config *c, const cfg_file *f, bool up);
/* Every channels[i] divisible by groups (GroupNorm). */
int cfg_groups_divide(const cfg_file *f, const int *channels, int n, int groups);

#endif
