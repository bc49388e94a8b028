/* Config inference from LDM tensors; see convert_infer.h. */
#include "engine/convert/convert_infer.h"

#include <stdarg.h>
#include <stdio.h>

#include "engine/config/config.h"

/* The SD families' fixed values (convert_from_ckpt.py and the
 * v1-inference / v2-inference yaml files). */
#define SD1_CONTEXT_DIM 768
#define SD2_CONTEXT_DIM 1024
#define SD1_HEADS 8
#define SD2_HEAD_DIM 64
#define SD_NORM_GROUPS 32
#define SD_VAE_SCALING 0.18215
#define SD_LATENT_SIZE 64
#define SD_IMAGE_SIZE 512
#define CLIP_HEAD_DIM 64

/* The tensor prefix + printf(fmt, ...), or NULL. */
static const st_entry *find(const st_file *f, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const st_entry *find(const st_file *f, const char *prefix, const char *fmt, ...) {
    char name[512];
    int n = snprintf(name, sizeof name, "%s", prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + n, sizeof name - (size_t)n, fmt, ap);
    va_end(ap);
    return st_find(f, name);
}

static int missing(cnet_error *err, const st_file *f, const char *prefix, const char *what) {
    return cnet_fail(err, CNET_EFORMAT, "%s: no tensor '%s%s': not an SD 1.x/2.x %s", f->path,
                     prefix, what, "checkpoint this converter knows");
}

/* The attention of down level i (per = layers + 1), or NULL. */
static const st_entry *level_attention(const st_file *f, const char *prefix, int per, int i) {
    return find(f, prefix, "input_blocks.%d.1.proj_in.weight", per * i + 1);
}

int convert_infer_unet(json_t **cfg, const st_file *f, const char *prefix, int controlnet,
                       cnet_error *err) {
    const st_entry *conv_in = find(f, prefix, "input_blocks.0.0.weight");
    if (!conv_in || conv_in->view.ndim != 4)
        return missing(err, f, prefix, "input_blocks.0.0.weight");
    int per = 0;
    for (int k = 1; k < 64 && !per; k++)
        if (find(f, prefix, "input_blocks.%d.0.op.weight", k)) per = k;
    if (!per) /* one level, no downsampler: its resnets */
        for (per = 1; find(f, prefix, "input_blocks.%d.0.in_layers.0.weight", per);) per++;
    int n = 0, attn_level = -1, channels[CNET_MAX_BLOCKS];
    json_t *down = json_array(), *up = json_array(), *boc = json_array(), *heads = json_array();
    while (n < CNET_MAX_BLOCKS &&
           find(f, prefix, "input_blocks.%d.0.in_layers.0.weight", per * n + 1)) {
        const st_entry *c2 = find(f, prefix, "input_blocks.%d.0.out_layers.3.weight", per * n + 1);
        if (!c2) break;
        channels[n] = (int)c2->view.shape[0];
        int attn = level_attention(f, prefix, per, n) != NULL;
        if (attn && attn_level < 0) attn_level = n;
        json_array_append_new(down, json_string(attn ? "CrossAttnDownBlock2D" : "DownBlock2D"));
        json_array_append_new(boc, json_integer(channels[n]));
        n++;
    }
    for (int i = 0; i < n && !controlnet; i++)
        json_array_append_new(
            up, json_string(find(f, prefix, "output_blocks.%d.1.proj_in.weight", per * i)
                                ? "CrossAttnUpBlock2D"
                                : "UpBlock2D"));
    const st_entry *proj_in = attn_level >= 0 ? level_attention(f, prefix, per, attn_level) : NULL;
    const st_entry *to_k =
        attn_level >= 0
            ? find(f, prefix, "input_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight",
                   per * attn_level + 1)
            : NULL;
    int rc = 0;
    if (!n || !proj_in || !to_k || !find(f, prefix, "middle_block.1.proj_in.weight")) {
        rc = missing(err, f, prefix, "input_blocks.*.1 / middle_block.1 (attention)");
        goto done;
    }
    int depth = 0;
    while (find(f, prefix, "input_blocks.%d.1.transformer_blocks.%d.norm1.weight",
                per * attn_level + 1, depth))
        depth++;
    int context = (int)to_k->view.shape[1];
    if (context != SD1_CONTEXT_DIM && context != SD2_CONTEXT_DIM) {
        rc = cnet_fail(err, CNET_EFORMAT,
                       "%s: cross-attention width %d is neither SD 1.x's %d nor SD 2.x's %d, so "
                       "the head count cannot be told from the tensors: pass --config_from DIR "
                       "(a diffusers folder with the model's config.json)",
                       f->path, context, SD1_CONTEXT_DIM, SD2_CONTEXT_DIM);
        goto done;
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(
            heads,
            json_integer(context == SD1_CONTEXT_DIM ? SD1_HEADS : channels[i] / SD2_HEAD_DIM));
    *cfg = json_pack("{s:s,s:i,s:O,s:i,s:O,s:s,s:i,s:O,s:b,s:i,s:i,s:b,s:i,s:s}", "_class_name",
                     controlnet ? "ControlNetModel" : "UNet2DConditionModel", "in_channels",
                     (int)conv_in->view.shape[1], "down_block_types", down, "layers_per_block",
                     per - 1, "block_out_channels", boc, "mid_block_type",
                     "UNetMidBlock2DCrossAttn", "cross_attention_dim", context,
                     "attention_head_dim", heads, "use_linear_projection", proj_in->view.ndim == 2,
                     "transformer_layers_per_block", depth, "norm_num_groups", SD_NORM_GROUPS,
                     "flip_sin_to_cos", 1, "freq_shift", 0, "act_fn", "silu");
    if (!*cfg) {
        rc = cnet_fail(err, CNET_ENOMEM, "out of memory");
        goto done;
    }
    if (!controlnet) {
        const st_entry *out = find(f, prefix, "out.2.weight");
        json_object_set(*cfg, "up_block_types", up);
        json_object_set_new(*cfg, "out_channels",
                            json_integer(out ? out->view.shape[0] : conv_in->view.shape[1]));
        json_object_set_new(*cfg, "sample_size", json_integer(SD_LATENT_SIZE));
        goto done;
    }
    /* the hint embedding: conv_in, blocks (pairs: same width, then stride 2 to the next), conv_out
     */
    const st_entry *hint0 = find(f, prefix, "input_hint_block.0.weight");
    int convs = 0;
    while (find(f, prefix, "input_hint_block.%d.weight", 2 * convs)) convs++;
    if (!hint0 || convs < 2 || convs % 2) {
        rc = missing(err, f, prefix, "input_hint_block.0.weight ... (the hint embedding)");
        goto done;
    }
    json_t *cond = json_array();
    json_array_append_new(cond, json_integer(hint0->view.shape[0]));
    for (int b = 1; b + 2 < convs; b += 2) /* block b is hint conv 2(b + 1) */
        json_array_append_new(
            cond, json_integer(
                      find(f, prefix, "input_hint_block.%d.weight", 2 * (b + 1))->view.shape[0]));
    json_object_set_new(*cfg, "conditioning_embedding_out_channels", cond);
    json_object_set_new(*cfg, "conditioning_channels", json_integer(hint0->view.shape[1]));
done:
    json_decref(down);
    json_decref(up);
    json_decref(boc);
    json_decref(heads);
    return rc;
}

int convert_infer_vae(json_t **cfg, const st_file *f, const char *prefix, cnet_error *err) {
    const st_entry *conv_in = find(f, prefix, "encoder.conv_in.weight"),
                   *conv_out = find(f, prefix, "decoder.conv_out.weight"),
                   *quant = find(f, prefix, "encoder.conv_out.weight");
    if (!conv_in || !conv_out || !quant)
        return missing(err, f, prefix, "encoder.conv_in / encoder.conv_out / decoder.conv_out");
    json_t *boc = json_array(), *down = json_array(), *up = json_array();
    int n = 0, layers = 0;
    const st_entry *e;
    while (n < CNET_MAX_BLOCKS &&
           (e = find(f, prefix, "encoder.down.%d.block.0.conv2.weight", n))) {
        json_array_append_new(boc, json_integer(e->view.shape[0]));
        json_array_append_new(down, json_string("DownEncoderBlock2D"));
        json_array_append_new(up, json_string("UpDecoderBlock2D"));
        n++;
    }
    while (find(f, prefix, "encoder.down.0.block.%d.conv1.weight", layers)) layers++;
    *cfg = json_pack("{s:s,s:i,s:i,s:i,s:o,s:o,s:o,s:i,s:i,s:i,s:f,s:s}", "_class_name",
                     "AutoencoderKL", "in_channels", (int)conv_in->view.shape[1], "out_channels",
                     (int)conv_out->view.shape[0], "latent_channels", (int)quant->view.shape[0] / 2,
                     "block_out_channels", boc, "down_block_types", down, "up_block_types", up,
                     "layers_per_block", layers, "norm_num_groups", SD_NORM_GROUPS, "sample_size",
                     SD_IMAGE_SIZE, "scaling_factor", SD_VAE_SCALING, "act_fn", "silu");
    return *cfg ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
}

int convert_infer_clip(json_t **cfg, const st_file *f, const char *prefix, cnet_error *err) {
    const st_entry *tok = find(f, prefix, "embeddings.token_embedding.weight"),
                   *pos = find(f, prefix, "embeddings.position_embedding.weight"),
                   *fc1 = find(f, prefix, "encoder.layers.0.mlp.fc1.weight");
    if (!tok || !pos || !fc1)
        return missing(err, f, prefix, "embeddings.token_embedding.weight (CLIP text)");
    int layers = 0;
    while (find(f, prefix, "encoder.layers.%d.layer_norm1.weight", layers)) layers++;
    int hidden = (int)tok->view.shape[1];
    *cfg = json_pack("{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:i,s:i,s:i}", "architectures",
                     "CLIPTextModel", "model_type", "clip_text_model", "vocab_size",
                     (int)tok->view.shape[0], "hidden_size", hidden, "intermediate_size",
                     (int)fc1->view.shape[0], "num_hidden_layers", layers, "num_attention_heads",
                     hidden / CLIP_HEAD_DIM, "max_position_embeddings", (int)pos->view.shape[0],
                     "projection_dim", hidden, "hidden_act", "quick_gelu", "layer_norm_eps", 1e-5,
                     "bos_token_id", 0, "eos_token_id", 2, "pad_token_id", 1);
    return *cfg ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
}

int convert_infer_openclip(json_t **cfg, const st_file *f, const char *prefix, cnet_error *err) {
    const st_entry *tok = find(f, prefix, "token_embedding.weight"),
                   *pos = find(f, prefix, "positional_embedding"),
                   *fc = find(f, prefix, "transformer.resblocks.0.mlp.c_fc.weight"),
                   *proj = find(f, prefix, "text_projection");
    if (!tok || !pos || !fc) return missing(err, f, prefix, "token_embedding.weight (OpenCLIP)");
    int layers = 0, hidden = (int)tok->view.shape[1];
    while (find(f, prefix, "transformer.resblocks.%d.ln_1.weight", layers)) layers++;
    if (hidden % CLIP_HEAD_DIM || layers < 2)
        return cnet_fail(err, CNET_EFORMAT,
                         "%s: an OpenCLIP text tower of width %d and %d layers is not SD 2.x's "
                         "shape: pass --config_from DIR (a diffusers folder with the model's "
                         "text_encoder/config.json)",
                         f->path, hidden, layers);
    *cfg = json_pack(
        "{s:[s],s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s,s:f,s:i,s:i,s:i}", "architectures",
        "CLIPTextModel", "model_type", "clip_text_model", "vocab_size", (int)tok->view.shape[0],
        "hidden_size", hidden, "intermediate_size", (int)fc->view.shape[0], "num_hidden_layers",
        layers - 1, "num_attention_heads", hidden / CLIP_HEAD_DIM, "max_position_embeddings",
        (int)pos->view.shape[0], "projection_dim",
        proj && proj->view.ndim == 2 ? (int)proj->view.shape[1] : hidden, "hidden_act", "gelu",
        "layer_norm_eps", 1e-5, "bos_token_id", 0, "eos_token_id", 2, "pad_token_id", 1);
    return *cfg ? 0 : cnet_fail(err, CNET_ENOMEM, "out of memory");
}
