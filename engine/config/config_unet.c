/* UNet2DConditionModel and ControlNetModel configs (diffusers v0.27.2
 * unets/unet_2d_condition.py and controlnet.py __init__): defaults, the
 * block layout, and the per-block attention heads resolved as diffusers
 * resolves them, SDXL's "text_time" added embedding and per-layer
 * transformer depths (config_unet_depth.c). Other features (class
 * embeddings, other addition embeddings, dual cross-attention, Fourier time
 * embeddings, scale-shift resnets) are refused as unsupported. */
#include <string.h>

#include "engine/config/config.h"
#include "engine/config/config_json.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_) return rc_;                                                                       \
    } while (0)

/* Widest channel count, head count or cross-attention width accepted. */
#define UNET_MAX_WIDTH 65536

static const char *const block_names[CNET_BLOCK_TYPE_COUNT] = {
    [CNET_BLOCK_DOWN] = "DownBlock2D",
    [CNET_BLOCK_CROSS_ATTN_DOWN] = "CrossAttnDownBlock2D",
    [CNET_BLOCK_UP] = "UpBlock2D",
    [CNET_BLOCK_CROSS_ATTN_UP] = "CrossAttnUpBlock2D",
    [CNET_BLOCK_MID_CROSS_ATTN] = "UNetMidBlock2DCrossAttn",
    [CNET_BLOCK_MID] = "UNetMidBlock2D",
    [CNET_BLOCK_DOWN_ENCODER] = "DownEncoderBlock2D",
    [CNET_BLOCK_UP_DECODER] = "UpDecoderBlock2D",
};

const char *cnet_block_type_name(cnet_block_type t) {
    return (unsigned)t < CNET_BLOCK_TYPE_COUNT ? block_names[t] : "?";
}

/* The block type of a diffusers block class name; -1 when it is none of
 * cnet_block_type's. */
static int cnet_block_type_from_name(const char *name) {
    for (int i = 0; i < CNET_BLOCK_TYPE_COUNT; i++)
        if (strcmp(name, block_names[i]) == 0) return i;
    return -1;
}

/* One block type name; `allowed` is a bit mask of cnet_block_type. */
static int block_type_value(const cfg_file *f, const char *key, const json_t *v, unsigned allowed,
                            cnet_block_type *out) {
    if (!json_is_string(v)) return cfg_type_error(f, key, "a block type name", v);
    int t = cnet_block_type_from_name(json_string_value(v));
    if (t < 0 || !(allowed & (1u << t))) {
        char supported[256] = "";
        size_t len = 0;
        for (int i = 0; i < CNET_BLOCK_TYPE_COUNT; i++)
            if (allowed & (1u << i))
                len += (size_t)snprintf(supported + len, sizeof supported - len, "%s%s",
                                        len ? ", " : "", block_names[i]);
        return cnet_fail(f->err, CNET_EINVAL,
                         "%s: field '%s': block type \"%s\" is unsupported (supported: %s)",
                         f->path, key, json_string_value(v), supported);
    }
    *out = (cnet_block_type)t;
    return CNET_OK;
}

int cfg_block_types(const cfg_file *f, const char *key, const cnet_block_type *def, int def_len,
                    unsigned allowed, cnet_block_type *out, int *len) {
    const json_t *v = cfg_get(f, key);
    if (!v) {
        memcpy(out, def, (size_t)def_len * sizeof *out);
        *len = def_len;
        return CNET_OK;
    }
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > CNET_MAX_BLOCKS)
        return cfg_type_error(f, key, "a list of 1 to 8 block type names", v);
    *len = (int)json_array_size(v);
    for (int i = 0; i < *len; i++) {
        char item[96];
        snprintf(item, sizeof item, "%s[%d]", key, i);
        TRY(block_type_value(f, item, json_array_get(v, (size_t)i), allowed, &out[i]));
    }
    return CNET_OK;
}

int cfg_same_length(const cfg_file *f, const char *key, int len, const char *other, int n) {
    if (len == n) return CNET_OK;
    return cnet_fail(f->err, CNET_EFORMAT, "%s: field '%s' has %d entries but '%s' has %d", f->path,
                     key, len, other, n);
}

int cfg_act_silu(const cfg_file *f, const char *key) {
    static const char *const acts[] = {"silu", "swish", "mish", "gelu", "relu"};
    int act;
    TRY(cfg_enum(f, key, 0, acts, 5, &act));
    return act > 1 ? cfg_unsupported(f, key, "only silu/swish") : CNET_OK;
}

int cfg_groups_divide(const cfg_file *f, const int *channels, int n, int groups) {
    for (int i = 0; i < n; i++)
        if (channels[i] % groups != 0)
            return cnet_fail(f->err, CNET_EFORMAT,
                             "%s: field 'block_out_channels': entry %d (%d) is not divisible by "
                             "norm_num_groups (%d)",
                             f->path, i, channels[i], groups);
    return CNET_OK;
}

/* addition_embed_type: null, or "text_time" (SDXL) with its two sizes;
 * projection_class_embeddings_input_dim is read only for text_time (no
 * class embedding is supported). addition_embed_type_num_heads only
 * matters for the "text" type and is just type-checked. */
static int parse_text_time(cnet_unet_config *c, const cfg_file *f) {
    const json_t *v = cfg_get(f, "addition_embed_type");
    int heads;
    bool present;
    TRY(cfg_int_opt(f, "addition_embed_type_num_heads", 64, 1, UNET_MAX_WIDTH, &heads, &present));
    if (!v || json_is_null(v)) return cfg_require_null(f, "projection_class_embeddings_input_dim");
    if (!json_is_string(v)) return cfg_type_error(f, "addition_embed_type", "a string or null", v);
    if (strcmp(json_string_value(v), "text_time") != 0)
        return cfg_unsupported(f, "addition_embed_type", "only \"text_time\" (SDXL) or null");
    const json_t *a = cfg_get(f, "addition_time_embed_dim");
    const json_t *pdim = cfg_get(f, "projection_class_embeddings_input_dim");
    if (!a || json_is_null(a) || !pdim || json_is_null(pdim))
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: addition_embed_type \"text_time\" needs the integer fields "
                         "'addition_time_embed_dim' and 'projection_class_embeddings_input_dim'",
                         f->path);
    c->add_text_time = true;
    TRY(cfg_int(f, "addition_time_embed_dim", 0, 1, UNET_MAX_WIDTH, &c->addition_time_embed_dim));
    TRY(cfg_int(f, "projection_class_embeddings_input_dim", 0, 1, 1 << 20,
                &c->projection_class_embeddings_input_dim));
    if (c->projection_class_embeddings_input_dim <= CNET_TIME_IDS * c->addition_time_embed_dim)
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: field 'projection_class_embeddings_input_dim' (%d) must exceed %d x "
                         "addition_time_embed_dim (%d): it is the text_embeds width plus the %d "
                         "time ids' embeddings",
                         f->path, c->projection_class_embeddings_input_dim, CNET_TIME_IDS,
                         c->addition_time_embed_dim, CNET_TIME_IDS);
    return CNET_OK;
}

/* Fields the UNet and the ControlNet read the same way. */
static int parse_common(cnet_unet_config *c, const cfg_file *f) {
    static const cnet_block_type def_down[] = {CNET_BLOCK_CROSS_ATTN_DOWN,
                                               CNET_BLOCK_CROSS_ATTN_DOWN,
                                               CNET_BLOCK_CROSS_ATTN_DOWN, CNET_BLOCK_DOWN};
    static const int def_channels[] = {320, 640, 1280, 1280};
    const unsigned down_ok = 1u << CNET_BLOCK_DOWN | 1u << CNET_BLOCK_CROSS_ATTN_DOWN;
    const unsigned mid_ok = 1u << CNET_BLOCK_MID_CROSS_ATTN | 1u << CNET_BLOCK_MID;
    int n_channels;
    TRY(cfg_int(f, "in_channels", 4, 1, UNET_MAX_WIDTH, &c->in_channels));
    TRY(cfg_block_types(f, "down_block_types", def_down, 4, down_ok, c->down_block_types,
                        &c->n_blocks));
    TRY(cfg_int_list(f, "block_out_channels", def_channels, 4, 1, CNET_MAX_BLOCKS, 1,
                     UNET_MAX_WIDTH, c->block_out_channels, &n_channels));
    TRY(cfg_same_length(f, "block_out_channels", n_channels, "down_block_types", c->n_blocks));
    const json_t *mid = cfg_get(f, "mid_block_type");
    if (mid && json_is_null(mid))
        return cfg_unsupported(f, "mid_block_type", "a mid block is required");
    c->mid_block_type = CNET_BLOCK_MID_CROSS_ATTN;
    if (mid) TRY(block_type_value(f, "mid_block_type", mid, mid_ok, &c->mid_block_type));

    int n = c->n_blocks;
    TRY(cfg_int_or_list(f, "attention_head_dim", 8, n, 1, UNET_MAX_WIDTH, c->attention_head_dim));
    bool was_bool;
    TRY(cfg_bool_or_list(f, "only_cross_attention", false, n, c->only_cross_attention, &was_bool));
    TRY(cfg_bool(f, "use_linear_projection", false, &c->use_linear_projection));
    TRY(cfg_bool(f, "upcast_attention", false, &c->upcast_attention));
    TRY(cfg_bool(f, "flip_sin_to_cos", true, &c->flip_sin_to_cos));
    TRY(cfg_int(f, "freq_shift", 0, -UNET_MAX_WIDTH, UNET_MAX_WIDTH, &c->freq_shift));
    const json_t *groups = cfg_get(f, "norm_num_groups");
    if (groups && json_is_null(groups))
        return cfg_unsupported(f, "norm_num_groups", "GroupNorm is required");
    TRY(cfg_int(f, "norm_num_groups", 32, 1, UNET_MAX_WIDTH, &c->norm_num_groups));
    TRY(cfg_groups_divide(f, c->block_out_channels, n, c->norm_num_groups));
    double x;
    TRY(cfg_float(f, "norm_eps", 1e-5, &x));
    c->norm_eps = (float)x;
    TRY(cfg_act_silu(f, "act_fn"));
    TRY(cfg_int(f, "downsample_padding", 1, 0, 16, &c->downsample_padding));
    TRY(cfg_float(f, "mid_block_scale_factor", 1.0, &x));
    c->mid_block_scale_factor = (float)x;
    TRY(cfg_require_null(f, "class_embed_type"));
    TRY(cfg_require_null(f, "num_class_embeds"));
    TRY(parse_text_time(c, f));
    TRY(cfg_require_null(f, "encoder_hid_dim"));
    TRY(cfg_require_null(f, "encoder_hid_dim_type"));
    TRY(cfg_require_string(f, "resnet_time_scale_shift", "default"));
    return CNET_OK;
}

/* heads = num_attention_heads or attention_head_dim (diffusers' rule), then
 * every attention block needs at least one channel per head. */
static int resolve_heads(cnet_unet_config *c, const cfg_file *f, const int *num_heads) {
    int n = c->n_blocks;
    for (int i = 0; i < n; i++) c->heads[i] = num_heads ? num_heads[i] : c->attention_head_dim[i];
    for (int i = 0; i < n; i++) c->up_heads[i] = c->heads[n - 1 - i];
    c->mid_heads = c->heads[n - 1];
    for (int i = 0; i < n; i++)
        if (c->heads[i] > c->block_out_channels[i])
            return cnet_fail(f->err, CNET_EFORMAT,
                             "%s: block %d has %d attention heads but only %d channels "
                             "(fields '%s', 'block_out_channels')",
                             f->path, i, c->heads[i], c->block_out_channels[i],
                             num_heads ? "num_attention_heads" : "attention_head_dim");
    return CNET_OK;
}

static int parse_unet(cnet_unet_config *c, const cfg_file *f) {
    static const cnet_block_type def_up[] = {CNET_BLOCK_UP, CNET_BLOCK_CROSS_ATTN_UP,
                                             CNET_BLOCK_CROSS_ATTN_UP, CNET_BLOCK_CROSS_ATTN_UP};
    const unsigned up_ok = 1u << CNET_BLOCK_UP | 1u << CNET_BLOCK_CROSS_ATTN_UP;
    TRY(cfg_class_name(f, "UNet2DConditionModel"));
    TRY(parse_common(c, f));
    int n = c->n_blocks, n_up;
    bool present;
    TRY(cfg_int(f, "out_channels", 4, 1, UNET_MAX_WIDTH, &c->out_channels));
    TRY(cfg_int_opt(f, "sample_size", 0, 1, UNET_MAX_WIDTH, &c->sample_size, &present));
    TRY(cfg_block_types(f, "up_block_types", def_up, 4, up_ok, c->up_block_types, &n_up));
    TRY(cfg_same_length(f, "up_block_types", n_up, "down_block_types", n));
    TRY(cfg_int_or_list(f, "layers_per_block", 2, n, 1, CNET_MAX_LAYERS, c->layers_per_block));
    TRY(cfg_transformer_depths(c, f, true));
    TRY(cfg_int_or_list(f, "cross_attention_dim", 1280, n, 1, UNET_MAX_WIDTH,
                        c->cross_attention_dim));
    /* diffusers refuses num_attention_heads for this class (issue #2011). */
    const json_t *nh = cfg_get(f, "num_attention_heads");
    if (nh && !json_is_null(nh))
        return cfg_unsupported(f, "num_attention_heads",
                               "UNet2DConditionModel takes the head count from "
                               "attention_head_dim (diffusers raises too)");
    TRY(resolve_heads(c, f, NULL));
    bool was_bool, mid_only;
    bool only[CNET_MAX_BLOCKS];
    TRY(cfg_bool_or_list(f, "only_cross_attention", false, n, only, &was_bool));
    const json_t *mo = cfg_get(f, "mid_block_only_cross_attention");
    if (mo && !json_is_null(mo))
        TRY(cfg_bool(f, "mid_block_only_cross_attention", false, &mid_only));
    else
        mid_only = was_bool ? only[0] : false;
    c->mid_block_only_cross_attention = mid_only;
    TRY(cfg_bool(f, "center_input_sample", false, &c->center_input_sample));
    TRY(cfg_bool(f, "dual_cross_attention", false, &was_bool));
    if (was_bool) return cfg_unsupported(f, "dual_cross_attention", NULL);
    TRY(cfg_require_string(f, "time_embedding_type", "positional"));
    TRY(cfg_int_opt(f, "time_embedding_dim", 4 * c->block_out_channels[0], 1, 1 << 20,
                    &c->time_embed_dim, &present));
    TRY(cfg_require_null(f, "time_embedding_act_fn"));
    TRY(cfg_require_null(f, "timestep_post_act"));
    TRY(cfg_require_null(f, "time_cond_proj_dim"));
    TRY(cfg_require_string(f, "attention_type", "default"));
    TRY(cfg_int(f, "conv_in_kernel", 3, 1, 3, &c->conv_in_kernel));
    TRY(cfg_int(f, "conv_out_kernel", 3, 1, 3, &c->conv_out_kernel));
    if (c->conv_in_kernel == 2) return cfg_unsupported(f, "conv_in_kernel", "odd kernels only");
    if (c->conv_out_kernel == 2) return cfg_unsupported(f, "conv_out_kernel", "odd kernels only");
    return CNET_OK;
}

static int parse_controlnet(cnet_unet_config *c, const cfg_file *f) {
    static const int def_cond[] = {16, 32, 96, 256};
    static const char *const orders[] = {"rgb", "bgr"};
    TRY(cfg_class_name(f, "ControlNetModel"));
    TRY(parse_common(c, f));
    int n = c->n_blocks, lpb, cad, order;
    TRY(cfg_int(f, "layers_per_block", 2, 1, CNET_MAX_LAYERS, &lpb));
    TRY(cfg_int(f, "cross_attention_dim", 1280, 1, UNET_MAX_WIDTH, &cad));
    for (int i = 0; i < n; i++) c->layers_per_block[i] = lpb, c->cross_attention_dim[i] = cad;
    TRY(cfg_transformer_depths(c, f, false));
    const json_t *nh = cfg_get(f, "num_attention_heads");
    int heads[CNET_MAX_BLOCKS];
    if (nh && !json_is_null(nh))
        TRY(cfg_int_or_list(f, "num_attention_heads", 8, n, 1, UNET_MAX_WIDTH, heads));
    TRY(resolve_heads(c, f, nh && !json_is_null(nh) ? heads : NULL));
    c->time_embed_dim = 4 * c->block_out_channels[0];
    c->conv_in_kernel = c->conv_out_kernel = 3;
    TRY(cfg_int(f, "conditioning_channels", 3, 1, 64, &c->conditioning_channels));
    TRY(cfg_int_list(f, "conditioning_embedding_out_channels", def_cond, 4, 1, CNET_MAX_BLOCKS, 1,
                     UNET_MAX_WIDTH, c->conditioning_embedding_out_channels, &c->n_cond_blocks));
    TRY(cfg_enum(f, "controlnet_conditioning_channel_order", 0, orders, 2, &order));
    c->cond_bgr = order == 1;
    TRY(cfg_bool(f, "global_pool_conditions", false, &c->global_pool_conditions));
    return CNET_OK;
}

static int load(cnet_unet_config *c, const char *path, bool controlnet, cnet_error *err) {
    memset(c, 0, sizeof *c);
    c->is_controlnet = controlnet;
    cfg_file f;
    TRY(cfg_open(&f, path, err));
    int rc = controlnet ? parse_controlnet(c, &f) : parse_unet(c, &f);
    cfg_close(&f);
    return rc;
}

int cnet_unet_config_load(cnet_unet_config *c, const char *path, cnet_error *err) {
    return load(c, path, false, err);
}

int cnet_controlnet_config_load(cnet_unet_config *c, const char *path, cnet_error *err) {
    return load(c, path, true, err);
}
