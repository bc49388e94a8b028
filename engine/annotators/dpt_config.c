/* DPTConfig (transformers v4.38 configuration_dpt.py) from config.json, with
 * its defaults (dpt-large's sizes); see dpt.h. What the model does not
 * implement is refused naming the field: the hybrid BiT backbone
 * (dpt-hybrid-midas), a backbone_config, readouts other than "project",
 * batch norm in the fusion residuals, an activation other than GELU, a head
 * reading a stage other than the last. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/annotators/dpt.h"
#include "engine/config/config_json.h"

/* Sizes accepted for hidden, intermediate, neck and fusion channels. */
#define DPT_DIM_MAX 16384
#define DPT_LAYERS_MAX 256

static const int default_indices[DPT_STAGES] = {2, 5, 8, 11};
static const int default_neck[DPT_STAGES] = {96, 192, 384, 768};
static const double default_factors[DPT_STAGES] = {4, 2, 1, 0.5};

/* reassemble_factors: DPT_STAGES numbers, each an integer up to
 * DPT_FACTOR_MAX or the inverse of one. */
static int read_factors(dpt_config *c, const cfg_file *f) {
    const char *key = "reassemble_factors";
    const json_t *v = cfg_get(f, key);
    if (v && (!json_is_array(v) || json_array_size(v) != DPT_STAGES))
        return cfg_type_error(f, key, "a list of 4 numbers", v);
    for (int i = 0; i < DPT_STAGES; i++) {
        const json_t *e = v ? json_array_get(v, (size_t)i) : NULL;
        if (e && !json_is_number(e)) return cfg_type_error(f, key, "a list of 4 numbers", e);
        const double x = e ? json_number_value(e) : default_factors[i];
        const double inv = x > 0 ? 1.0 / x : 0;
        c->up[i] = c->down[i] = 1;
        if (x >= 1 && x <= DPT_FACTOR_MAX && x == floor(x))
            c->up[i] = (int)x;
        else if (inv > 1 && inv <= DPT_FACTOR_MAX && inv == floor(inv))
            c->down[i] = (int)inv;
        else
            return cfg_unsupported(f, key, "each factor is 1..16 or its inverse");
    }
    return 0;
}

/* use_bias_in_fusion_residual: null or absent means "not use_batch_norm". */
static int read_fusion_bias(dpt_config *c, const cfg_file *f) {
    bool bn = false;
    int rc = cfg_bool(f, "use_batch_norm_in_fusion_residual", false, &bn);
    if (rc) return rc;
    if (bn)
        return cfg_unsupported(f, "use_batch_norm_in_fusion_residual",
                               "no batch norm in the fusion residuals");
    const json_t *v = cfg_get(f, "use_bias_in_fusion_residual");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return cfg_type_error(f, "use_bias_in_fusion_residual", "a bool or null", v);
    c->fusion_bias = v && json_is_boolean(v) ? json_is_true(v) : 1;
    return 0;
}

static int read_all(dpt_config *c, const cfg_file *f) {
    int rc, len = 0, channels = 0, head_in = 0;
    bool hybrid = false, qkv_bias = true, proj = false;
    double eps = 0;
    if ((rc = cfg_bool(f, "is_hybrid", false, &hybrid))) return rc;
    if (hybrid)
        return cfg_unsupported(f, "is_hybrid",
                               "the hybrid BiT ResNet backbone (dpt-hybrid-midas) is not "
                               "implemented; dpt-large's pure ViT is");
    if ((rc = cfg_require_null(f, "backbone_config")) ||
        (rc = cfg_require_string(f, "readout_type", "project")) ||
        (rc = cfg_require_string(f, "hidden_act", "gelu")) ||
        (rc = cfg_int(f, "hidden_size", 768, 1, DPT_DIM_MAX, &c->hidden)) ||
        (rc = cfg_int(f, "num_hidden_layers", 12, 1, DPT_LAYERS_MAX, &c->layers)) ||
        (rc = cfg_int(f, "num_attention_heads", 12, 1, DPT_DIM_MAX, &c->heads)) ||
        (rc = cfg_int(f, "intermediate_size", 3072, 1, DPT_DIM_MAX, &c->intermediate)) ||
        (rc = cfg_int(f, "patch_size", 16, 1, DPT_DIM_MAX, &c->patch)) ||
        (rc = cfg_int(f, "image_size", 384, 1, DPT_DIM_MAX, &c->image_size)) ||
        (rc = cfg_int(f, "num_channels", 3, 3, 3, &channels)) ||
        (rc = cfg_int(f, "head_in_index", -1, -1, -1, &head_in)) ||
        (rc = cfg_float(f, "layer_norm_eps", 1e-12, &eps)) ||
        (rc = cfg_bool(f, "qkv_bias", true, &qkv_bias)) ||
        (rc = cfg_bool(f, "add_projection", false, &proj)) ||
        (rc = cfg_int(f, "fusion_hidden_size", 256, 2, DPT_DIM_MAX, &c->fusion)))
        return rc;
    if (!qkv_bias) return cfg_unsupported(f, "qkv_bias", "the attention has biases");
    if (c->hidden % c->heads)
        return cfg_unsupported(f, "num_attention_heads", "hidden_size must split into the heads");
    if (c->image_size < c->patch) return cfg_unsupported(f, "image_size", "smaller than one patch");
    c->eps = (float)eps;
    c->add_projection = proj;
    if ((rc = cfg_int_list(f, "backbone_out_indices", default_indices, DPT_STAGES, DPT_STAGES,
                           DPT_STAGES, 0, c->layers - 1, c->out_indices, &len)) ||
        (rc = cfg_int_list(f, "neck_hidden_sizes", default_neck, DPT_STAGES, DPT_STAGES, DPT_STAGES,
                           1, DPT_DIM_MAX, c->neck, &len)) ||
        (rc = read_factors(c, f)) || (rc = read_fusion_bias(c, f)))
        return rc;
    return 0;
}

int dpt_config_read(dpt_config *c, const char *path, cnet_error *err) {
    cfg_file f;
    memset(c, 0, sizeof *c);
    int rc = cfg_open(&f, path, err);
    if (rc) return rc;
    rc = read_all(c, &f);
    cfg_close(&f);
    return rc;
}
