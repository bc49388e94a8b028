/* AutoencoderKL (diffusers v0.27.2 autoencoders/autoencoder_kl.py, plus the
 * later shift_factor / use_quant_conv / mid_block_add_attention fields),
 * transformers CLIPTextConfig, and model_index.json. Not the UNet (see
 * config_unet.c) nor the schedulers (config_sched.c). */
#include <stdio.h>
#include <string.h>

#include "engine/config/config.h"
#include "engine/config/config_json.h"

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_) return rc_;                                                                       \
    } while (0)

/* Widest channel count or vocabulary accepted. */
#define MODEL_MAX_WIDTH (1 << 20)

static int parse_vae(cnet_vae_config *c, const cfg_file *f) {
    static const cnet_block_type def_down[] = {CNET_BLOCK_DOWN_ENCODER};
    static const cnet_block_type def_up[] = {CNET_BLOCK_UP_DECODER};
    static const int def_channels[] = {64};
    int n_up, n_channels;
    bool present;
    double x;
    TRY(cfg_class_name(f, "AutoencoderKL"));
    TRY(cfg_int(f, "in_channels", 3, 1, 64, &c->in_channels));
    TRY(cfg_int(f, "out_channels", 3, 1, 64, &c->out_channels));
    TRY(cfg_int(f, "latent_channels", 4, 1, 1024, &c->latent_channels));
    TRY(cfg_block_types(f, "down_block_types", def_down, 1, 1u << CNET_BLOCK_DOWN_ENCODER,
                        c->down_block_types, &c->n_blocks));
    TRY(cfg_block_types(f, "up_block_types", def_up, 1, 1u << CNET_BLOCK_UP_DECODER,
                        c->up_block_types, &n_up));
    TRY(cfg_same_length(f, "up_block_types", n_up, "down_block_types", c->n_blocks));
    TRY(cfg_int_list(f, "block_out_channels", def_channels, 1, 1, CNET_MAX_BLOCKS, 1,
                     MODEL_MAX_WIDTH, c->block_out_channels, &n_channels));
    TRY(cfg_same_length(f, "block_out_channels", n_channels, "down_block_types", c->n_blocks));
    TRY(cfg_int(f, "layers_per_block", 1, 1, 64, &c->layers_per_block));
    TRY(cfg_act_silu(f, "act_fn"));
    TRY(cfg_int(f, "norm_num_groups", 32, 1, MODEL_MAX_WIDTH, &c->norm_num_groups));
    TRY(cfg_groups_divide(f, c->block_out_channels, c->n_blocks, c->norm_num_groups));
    TRY(cfg_int(f, "sample_size", 32, 1, MODEL_MAX_WIDTH, &c->sample_size));
    TRY(cfg_float(f, "scaling_factor", 0.18215, &x));
    c->scaling_factor = (float)x;
    TRY(cfg_float_opt(f, "shift_factor", 0.0, &x, &present));
    c->shift_factor = (float)x;
    TRY(cfg_bool(f, "force_upcast", true, &c->force_upcast));
    TRY(cfg_bool(f, "use_quant_conv", true, &c->use_quant_conv));
    TRY(cfg_bool(f, "use_post_quant_conv", true, &c->use_post_quant_conv));
    TRY(cfg_bool(f, "mid_block_add_attention", true, &c->mid_block_add_attention));
    return CNET_OK;
}

int cnet_vae_config_load(cnet_vae_config *c, const char *path, cnet_error *err) {
    memset(c, 0, sizeof *c);
    cfg_file f;
    TRY(cfg_open(&f, path, err));
    int rc = parse_vae(c, &f);
    cfg_close(&f);
    return rc;
}

static int parse_clip(cnet_clip_text_config *c, cfg_file *f) {
    static const char *const acts[] = {"quick_gelu", "gelu"};
    /* SDXL's text_encoder_2; a full CLIPConfig's architectures name CLIPModel. */
    const json_t *arch = cfg_get(f, "architectures"), *a_name;
    size_t a_i;
    json_array_foreach(arch, a_i, a_name) {
        if (json_is_string(a_name) &&
            strcmp(json_string_value(a_name), "CLIPTextModelWithProjection") == 0)
            c->with_projection = true;
    }
    /* A full CLIPConfig: transformers reads its text_config. */
    const json_t *mt = cfg_get(f, "model_type");
    if (json_is_string(mt) && strcmp(json_string_value(mt), "clip") == 0) {
        json_t *text = cfg_get(f, "text_config");
        if (!json_is_object(text)) return cfg_type_error(f, "text_config", "an object", text);
        json_incref(text);
        json_decref(f->root);
        f->root = text;
    }
    TRY(cfg_int(f, "vocab_size", 49408, 1, MODEL_MAX_WIDTH, &c->vocab_size));
    TRY(cfg_int(f, "hidden_size", 512, 1, MODEL_MAX_WIDTH, &c->hidden_size));
    TRY(cfg_int(f, "intermediate_size", 2048, 1, MODEL_MAX_WIDTH, &c->intermediate_size));
    TRY(cfg_int(f, "projection_dim", 512, 1, MODEL_MAX_WIDTH, &c->projection_dim));
    TRY(cfg_int(f, "num_hidden_layers", 12, 1, 1024, &c->num_hidden_layers));
    TRY(cfg_int(f, "num_attention_heads", 8, 1, 1024, &c->num_attention_heads));
    TRY(cfg_int(f, "max_position_embeddings", 77, 1, MODEL_MAX_WIDTH, &c->max_position_embeddings));
    const json_t *act = cfg_get(f, "hidden_act");
    if (json_is_string(act) && strcmp(json_string_value(act), "quick_gelu") != 0 &&
        strcmp(json_string_value(act), "gelu") != 0)
        return cfg_unsupported(f, "hidden_act", "only quick_gelu and gelu");
    int a;
    TRY(cfg_enum(f, "hidden_act", CNET_CLIP_QUICK_GELU, acts, 2, &a));
    c->hidden_act = (cnet_clip_act)a;
    double eps;
    TRY(cfg_float(f, "layer_norm_eps", 1e-5, &eps));
    c->layer_norm_eps = (float)eps;
    TRY(cfg_int(f, "pad_token_id", 1, 0, MODEL_MAX_WIDTH, &c->pad_token_id));
    TRY(cfg_int(f, "bos_token_id", 49406, 0, MODEL_MAX_WIDTH, &c->bos_token_id));
    TRY(cfg_int(f, "eos_token_id", 49407, 0, MODEL_MAX_WIDTH, &c->eos_token_id));
    if (c->hidden_size % c->num_attention_heads != 0)
        return cnet_fail(f->err, CNET_EFORMAT,
                         "%s: field 'hidden_size' (%d) is not divisible by "
                         "'num_attention_heads' (%d)",
                         f->path, c->hidden_size, c->num_attention_heads);
    return CNET_OK;
}

int cnet_clip_text_config_load(cnet_clip_text_config *c, const char *path, cnet_error *err) {
    memset(c, 0, sizeof *c);
    cfg_file f;
    TRY(cfg_open(&f, path, err));
    int rc = parse_clip(c, &f);
    cfg_close(&f);
    return rc;
}

/* Copies a JSON string into a fixed buffer, refusing what does not fit. */
static int copy_name(const cfg_file *f, const char *key, const json_t *v, char *dst) {
    if (json_is_null(v)) return dst[0] = '\0', CNET_OK;
    if (!json_is_string(v) || json_string_length(v) >= CNET_CONFIG_NAME_MAX)
        return cfg_type_error(f, key, "a string of at most 63 bytes or null", v);
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return CNET_OK;
}

static int parse_index(cnet_model_index *m, const cfg_file *f) {
    const json_t *cls = cfg_get(f, "_class_name");
    if (cls) TRY(copy_name(f, "_class_name", cls, m->class_name));
    m->force_zeros_for_empty_prompt = -1;
    if (cfg_get(f, "force_zeros_for_empty_prompt")) {
        bool on;
        TRY(cfg_bool(f, "force_zeros_for_empty_prompt", true, &on));
        m->force_zeros_for_empty_prompt = on;
    }
    const char *key;
    json_t *v;
    json_object_foreach(f->root, key, v) {
        /* Components are the [library, class] pairs; "_class_name",
         * "requires_safety_checker" and the like are plain values. */
        if (key[0] == '_' || !json_is_array(v)) continue;
        if (json_array_size(v) != 2) return cfg_type_error(f, key, "a [library, class] pair", v);
        if (m->n == CNET_MODEL_INDEX_MAX)
            return cnet_fail(f->err, CNET_ELIMIT, "%s: more than %d components", f->path,
                             CNET_MODEL_INDEX_MAX);
        cnet_model_component *c = &m->components[m->n];
        if (strlen(key) >= CNET_CONFIG_NAME_MAX)
            return cnet_fail(f->err, CNET_EFORMAT, "%s: component name '%.80s' is too long",
                             f->path, key);
        strcpy(c->name, key);
        TRY(copy_name(f, key, json_array_get(v, 0), c->library));
        TRY(copy_name(f, key, json_array_get(v, 1), c->class_name));
        m->n++;
    }
    return CNET_OK;
}

int cnet_model_index_load(cnet_model_index *m, const char *path, cnet_error *err) {
    memset(m, 0, sizeof *m);
    cfg_file f;
    TRY(cfg_open(&f, path, err));
    int rc = parse_index(m, &f);
    cfg_close(&f);
    return rc;
}

const cnet_model_component *cnet_model_index_find(const cnet_model_index *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->components[i].name, name) == 0) return &m->components[i];
    return NULL;
}
