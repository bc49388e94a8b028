/* ControlNetModel.from_unet: config and weights; see controlnet_init.h. */
#include "engine/init/controlnet_init.h"

#include <stdio.h>
#include <string.h>

#include "engine/config/config_json.h"
#include "engine/core/tensor.h"
#include "engine/init/weights_init.h"

/* The ControlNetModel.__init__ arguments from_unet takes from unet.config,
 * with UNet2DConditionModel.__init__'s default for each: diffusers fills a
 * field a config.json lacks with that default, so from_unet passes it on. */
static const struct {
    const char *key, *unet_default;
} from_unet_fields[] = {
    {"encoder_hid_dim", "null"},
    {"encoder_hid_dim_type", "null"},
    {"addition_embed_type", "null"},
    {"addition_time_embed_dim", "null"},
    {"transformer_layers_per_block", "1"},
    {"in_channels", "4"},
    {"flip_sin_to_cos", "true"},
    {"freq_shift", "0"},
    {"down_block_types", "[\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
                         "\"CrossAttnDownBlock2D\", \"DownBlock2D\"]"},
    {"only_cross_attention", "false"},
    {"block_out_channels", "[320, 640, 1280, 1280]"},
    {"layers_per_block", "2"},
    {"downsample_padding", "1"},
    {"mid_block_scale_factor", "1"},
    {"act_fn", "\"silu\""},
    {"norm_num_groups", "32"},
    {"norm_eps", "1e-05"},
    {"cross_attention_dim", "1280"},
    {"attention_head_dim", "8"},
    {"num_attention_heads", "null"},
    {"use_linear_projection", "false"},
    {"class_embed_type", "null"},
    {"num_class_embeds", "null"},
    {"upcast_attention", "false"},
    {"resnet_time_scale_shift", "\"default\""},
    {"projection_class_embeddings_input_dim", "null"},
    {"mid_block_type", "\"UNetMidBlock2DCrossAttn\""},
};

int controlnet_default_cond_levels(int vae_factor) {
    int n = 1;
    while ((1 << (n - 1)) < vae_factor && n < CONTROLNET_DEFAULT_N_COND) n++;
    return n;
}

int controlnet_config_from_unet(json_t **out, const char *unet_config_path, const int *cond,
                                int n_cond, cnet_error *err) {
    *out = NULL;
    if (n_cond < 1 || n_cond > CONTROLNET_MAX_COND_LEVELS)
        return cnet_fail(err, CNET_EINVAL,
                         "conditioning_embedding_out_channels has %d entries (supported 1..%d)",
                         n_cond, CONTROLNET_MAX_COND_LEVELS);
    cfg_file f;
    int rc = cfg_open(&f, unet_config_path, err);
    if (rc) return rc;
    if ((rc = cfg_class_name(&f, "UNet2DConditionModel"))) {
        cfg_close(&f);
        return rc;
    }
    json_t *cfg = json_object(), *channels = json_array();
    rc = cfg && channels ? 0 : CNET_ENOMEM;
    for (size_t i = 0; i < sizeof from_unet_fields / sizeof from_unet_fields[0] && !rc; i++) {
        json_t *v = cfg_get(&f, from_unet_fields[i].key);
        v = v ? json_incref(v)
              : json_loads(from_unet_fields[i].unet_default, JSON_DECODE_ANY, NULL);
        if (!v || json_object_set_new(cfg, from_unet_fields[i].key, v)) rc = CNET_ENOMEM;
    }
    for (int i = 0; i < n_cond && !rc; i++)
        if (json_array_append_new(channels, json_integer(cond[i]))) rc = CNET_ENOMEM;
    if (!rc &&
        (json_object_set_new(cfg, "_class_name", json_string("ControlNetModel")) ||
         json_object_set_new(cfg, "_diffusers_version", json_string("0.27.2")) ||
         json_object_set_new(cfg, "conditioning_channels", json_integer(3)) ||
         json_object_set_new(cfg, "controlnet_conditioning_channel_order", json_string("rgb")) ||
         json_object_set(cfg, "conditioning_embedding_out_channels", channels) ||
         json_object_set_new(cfg, "global_pool_conditions", json_false()) ||
         json_object_set_new(cfg, "addition_embed_type_num_heads", json_integer(64))))
        rc = CNET_ENOMEM;
    json_decref(channels);
    cfg_close(&f);
    if (rc) {
        json_decref(cfg);
        return cnet_fail(err, CNET_ENOMEM, "out of memory deriving a ControlNet config from %s",
                         unet_config_path);
    }
    *out = cfg;
    return 0;
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* zero_module in diffusers: the last conv of the conditioning embedding and
 * every zero conv. */
static int is_zero_initialised(const char *name) {
    return starts_with(name, "controlnet_cond_embedding.conv_out.") ||
           starts_with(name, "controlnet_down_blocks.") ||
           starts_with(name, "controlnet_mid_block.");
}

int controlnet_from_unet(controlnet_model *cn, const unet_model *unet, uint64_t seed,
                         cnet_error *err) {
    cnet_params *p = &cn->params;
    cnet_backend *be = p->be;
    int rc;
    for (int i = 0; i < p->n; i++) {
        const cnet_param *q = &p->items[i];
        if (is_zero_initialised(q->name)) {
            be->zero(be, q->data, q->numel * sizeof(float));
            continue;
        }
        if (starts_with(q->name, "controlnet_cond_embedding.") ||
            starts_with(q->name, "add_embedding."))
            continue; /* fresh, below */
        const cnet_param *u = params_find(&unet->params, q->name);
        if (!u)
            return cnet_fail(err, CNET_EINVAL,
                             "from_unet: the ControlNet's '%s' has no UNet tensor of that name",
                             q->name);
        if (!u->data)
            return cnet_fail(err, CNET_EINVAL,
                             "from_unet: the UNet's '%s' is stored in %s; from_unet copies the "
                             "float32 UNet (initialise before storing the base in 16 bits)",
                             q->name, cnet_dtype_name(unet->params.dtype16));
        int same = u->ndim == q->ndim && u->layout == q->layout;
        for (int d = 0; same && d < q->ndim; d++) same = u->shape[d] == q->shape[d];
        if (!same) {
            char cs[64], us[64];
            cnet_shape_str(cs, sizeof cs, q->ndim, q->shape);
            cnet_shape_str(us, sizeof us, u->ndim, u->shape);
            return cnet_fail(err, CNET_EINVAL,
                             "from_unet: '%s' is %s in the ControlNet but %s in the UNet", q->name,
                             cs, us);
        }
        be->copy(be, q->data, u->data, q->numel * sizeof(float));
    }
    char prefix[64];
    if ((rc = winit_torch_default(p, "controlnet_cond_embedding.conv_in", seed, CONTROLNET_INIT_TAG,
                                  err)))
        return rc;
    for (int i = 0; i < cn->n_cond_blocks; i++) {
        snprintf(prefix, sizeof prefix, "controlnet_cond_embedding.blocks.%d", i);
        if ((rc = winit_torch_default(p, prefix, seed, CONTROLNET_INIT_TAG, err))) return rc;
    }
    /* diffusers 0.27.2's from_unet does not copy the UNet's add_embedding */
    if (cn->enc.cfg.add_text_time &&
        ((rc = winit_torch_default(p, "add_embedding.linear_1", seed, CONTROLNET_INIT_TAG, err)) ||
         (rc = winit_torch_default(p, "add_embedding.linear_2", seed, CONTROLNET_INIT_TAG, err))))
        return rc;
    return 0;
}
