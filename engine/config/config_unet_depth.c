/* Transformer depths of a UNet / ControlNet config: how many
 * BasicTransformerBlocks each Transformer2DModel has, per block and per
 * layer, as diffusers v0.27.2 reads them (unet_2d_condition.py __init__ and
 * the blocks of unet_2d_blocks.py):
 *
 *   transformer_layers_per_block: an int (every block), or one entry per
 *     down block, each an int (every layer of the block) or a list with one
 *     int per layer (the asymmetric layouts of SDXL-derived models); a
 *     longer list's extra entries are never read, as in diffusers.
 *   mid block: the last entry (its first element when a list).
 *   up block i: reverse_transformer_layers_per_block[i] when given (entries
 *     as above, one per up-block layer = layers_per_block + 1), else the
 *     down entry of the level it mirrors, which must then be an int
 *     (diffusers raises for per-layer lists without the reverse list).
 *
 * Entries of blocks without attention are read but unused. Not here: the
 * other UNet fields (config_unet.c). */
#include <stdio.h>

#include "engine/config/config_json.h"

/* Most BasicTransformerBlocks one Transformer2DModel may have. */
#define UNET_MAX_DEPTH 64

/* One depth value: item names the entry in messages ("key[i]" or "key[i][j]"). */
static int depth_value(const cfg_file *f, const char *item, const json_t *v, int *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > UNET_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "an integer in [1, %d]", UNET_MAX_DEPTH);
        return cfg_type_error(f, item, what, v);
    }
    *out = (int)json_integer_value(v);
    return CNET_OK;
}

/* Entry v (item "key[i]") of a per-block list for a block of `layers`
 * layers: an int for every layer, or a list of at least `layers` ints. */
static int depth_entry(const cfg_file *f, const char *item, const json_t *v, int layers, int *out) {
    if (!json_is_array(v)) {
        int d, rc = depth_value(f, item, v, &d);
        for (int j = 0; j < layers && !rc; j++) out[j] = d;
        return rc;
    }
    if ((int)json_array_size(v) < layers)
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: field '%s': the per-layer list has %d entries, the block has %d "
                         "layers",
                         f->path, item, (int)json_array_size(v), layers);
    for (int j = 0; j < layers; j++) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s[%d]", item, j);
        int rc = depth_value(f, sub, json_array_get(v, (size_t)j), &out[j]);
        if (rc) return rc;
    }
    return CNET_OK;
}

/* A per-block list `key` (n entries) into out[block][layer]; layers[i] is
 * block i's layer count. An int or absent value (def) fills everything. */
static int depth_list(const cfg_file *f, const char *key, const json_t *v, int def, int n,
                      const int *layers, int (*out)[CNET_MAX_LAYERS + 1]) {
    if (!v || !json_is_array(v)) {
        int d = def, rc = v ? depth_value(f, key, v, &d) : CNET_OK;
        for (int i = 0; i < n && !rc; i++)
            for (int j = 0; j < layers[i]; j++) out[i][j] = d;
        return rc;
    }
    if ((int)json_array_size(v) != n)
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: field '%s': the list has %d entries, expected %d (one per block)",
                         f->path, key, (int)json_array_size(v), n);
    for (int i = 0; i < n; i++) {
        char item[96];
        snprintf(item, sizeof item, "%s[%d]", key, i);
        int rc = depth_entry(f, item, json_array_get(v, (size_t)i), layers[i], out[i]);
        if (rc) return rc;
    }
    return CNET_OK;
}

int cfg_transformer_depths(cnet_unet_config *c, const cfg_file *f, bool up) {
    static const char key[] = "transformer_layers_per_block", rkey[] =
                                                                  "reverse_transformer_layers_per_"
                                                                  "block";
    const int n = c->n_blocks;
    int down[CNET_MAX_BLOCKS][CNET_MAX_LAYERS + 1] = {{0}}, layers[CNET_MAX_BLOCKS] = {0};
    const json_t *tl = cfg_get(f, key);
    for (int i = 0; i < n; i++) layers[i] = c->layers_per_block[i];
    int rc = depth_list(f, key, tl, 1, n, layers, down);
    if (rc) return rc;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < layers[i]; j++) c->down_transformer_layers[i][j] = down[i][j];
    c->mid_transformer_layers = down[n - 1][0];
    if (!up) return CNET_OK;
    const json_t *rev = cfg_get(f, rkey);
    int up_layers[CNET_MAX_BLOCKS] = {0};
    for (int i = 0; i < n; i++) up_layers[i] = c->layers_per_block[n - 1 - i] + 1;
    if (rev && !json_is_null(rev)) {
        if (!json_is_array(rev))
            return cfg_type_error(f, rkey, "a list with one entry per up block", rev);
        return depth_list(f, rkey, rev, 1, n, up_layers, c->up_transformer_layers);
    }
    for (int i = 0; json_is_array(tl) && i < n; i++)
        if (json_is_array(json_array_get(tl, (size_t)i)))
            return cnet_fail(f->err, CNET_EFORMAT,
                             "%s: field '%s' has per-layer lists; they need '%s' (the up blocks' "
                             "depths), as diffusers requires",
                             f->path, key, rkey);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < up_layers[i]; j++) c->up_transformer_layers[i][j] = down[n - 1 - i][0];
    return CNET_OK;
}
