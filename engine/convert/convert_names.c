/* Diffusers -> LDM parameter names; see convert_names.h. Each rule is one
 * sscanf pattern of the diffusers name and the LDM name it builds. */
#include "engine/convert/convert_names.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ResnetBlock2D's submodules in the LDM UNet's ResBlock. */
static const char *const unet_resnet[][2] = {
    {"norm1.", "in_layers.0."},          {"conv1.", "in_layers.2."},
    {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
    {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."},
};
/* The VAE's ResnetBlock keeps the names but for the shortcut. */
static const char *const vae_resnet[][2] = {
    {"conv_shortcut.", "nin_shortcut."},
};
/* The VAE's mid attention (AttnBlock: 1x1 convs). */
static const char *const vae_attention[][2] = {
    {"group_norm.", "norm."},   {"to_q.", "q."}, {"to_k.", "k."}, {"to_v.", "v."},
    {"to_out.0.", "proj_out."},
};

static int put(char *out, size_t cap, cnet_error *err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int put(char *out, size_t cap, cnet_error *err, const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return cnet_fail(err, CNET_ELIMIT, "parameter '%s': converted name too long", name);
    return 0;
}

/* rest with its first component renamed by table (n rows); unchanged when
 * no row matches. */
static const char *rename_head(char *buf, size_t cap, const char *rest,
                               const char *const (*table)[2], int n) {
    for (int i = 0; i < n; i++) {
        size_t k = strlen(table[i][0]);
        if (strncmp(rest, table[i][0], k) == 0) {
            snprintf(buf, cap, "%s%s", table[i][1], rest + k);
            return buf;
        }
    }
    return rest;
}

#define N_ROWS(t) ((int)(sizeof t / sizeof t[0]))

static int no_name(cnet_error *err, const char *name, const char *model) {
    return cnet_fail(err, CNET_EFORMAT,
                     "parameter '%s' has no name in the original %s layout (not an SD 1.x/2.x "
                     "model this converter knows)",
                     name, model);
}

int convert_unet_name(char *out, size_t cap, const char *name, const cnet_unet_config *cfg,
                      cnet_error *err) {
    const int L = cfg->layers_per_block[0], per = L + 1;
    char buf[256];
    int i = 0, j = 0, at = 0;
    if (sscanf(name, "time_embedding.linear_%d.%n", &i, &at) == 1 && at && (i == 1 || i == 2))
        return put(out, cap, err, name, "time_embed.%d.%s", 2 * (i - 1), name + at);
    if (strncmp(name, "conv_in.", 8) == 0)
        return put(out, cap, err, name, "input_blocks.0.0.%s", name + 8);
    if (sscanf(name, "down_blocks.%d.resnets.%d.%n", &i, &j, &at) == 2 && at)
        return put(out, cap, err, name, "input_blocks.%d.0.%s", per * i + j + 1,
                   rename_head(buf, sizeof buf, name + at, unet_resnet, N_ROWS(unet_resnet)));
    if (sscanf(name, "down_blocks.%d.attentions.%d.%n", &i, &j, &at) == 2 && at)
        return put(out, cap, err, name, "input_blocks.%d.1.%s", per * i + j + 1, name + at);
    if (sscanf(name, "down_blocks.%d.downsamplers.0.conv.%n", &i, &at) == 1 && at)
        return put(out, cap, err, name, "input_blocks.%d.0.op.%s", per * (i + 1), name + at);
    if (sscanf(name, "mid_block.resnets.%d.%n", &i, &at) == 1 && at)
        return put(out, cap, err, name, "middle_block.%d.%s", 2 * i,
                   rename_head(buf, sizeof buf, name + at, unet_resnet, N_ROWS(unet_resnet)));
    if (strncmp(name, "mid_block.attentions.0.", 23) == 0)
        return put(out, cap, err, name, "middle_block.1.%s", name + 23);
    if (!cfg->is_controlnet) {
        if (sscanf(name, "up_blocks.%d.resnets.%d.%n", &i, &j, &at) == 2 && at)
            return put(out, cap, err, name, "output_blocks.%d.0.%s", per * i + j,
                       rename_head(buf, sizeof buf, name + at, unet_resnet, N_ROWS(unet_resnet)));
        if (sscanf(name, "up_blocks.%d.attentions.%d.%n", &i, &j, &at) == 2 && at)
            return put(out, cap, err, name, "output_blocks.%d.1.%s", per * i + j, name + at);
        if (sscanf(name, "up_blocks.%d.upsamplers.0.conv.%n", &i, &at) == 1 && at &&
            i < cfg->n_blocks)
            return put(out, cap, err, name, "output_blocks.%d.%d.conv.%s", per * i + L,
                       cfg->up_block_types[i] == CNET_BLOCK_CROSS_ATTN_UP ? 2 : 1, name + at);
        if (strncmp(name, "conv_norm_out.", 14) == 0)
            return put(out, cap, err, name, "out.0.%s", name + 14);
        if (strncmp(name, "conv_out.", 9) == 0)
            return put(out, cap, err, name, "out.2.%s", name + 9);
        return no_name(err, name, "UNet");
    }
    /* the ControlNet's own modules */
    const int n_cond_convs = 2 * (cfg->n_cond_blocks - 1);
    if (strncmp(name, "controlnet_cond_embedding.conv_in.", 34) == 0)
        return put(out, cap, err, name, "input_hint_block.0.%s", name + 34);
    if (sscanf(name, "controlnet_cond_embedding.blocks.%d.%n", &i, &at) == 1 && at)
        return put(out, cap, err, name, "input_hint_block.%d.%s", 2 * (i + 1), name + at);
    if (strncmp(name, "controlnet_cond_embedding.conv_out.", 35) == 0)
        return put(out, cap, err, name, "input_hint_block.%d.%s", 2 * (n_cond_convs + 1),
                   name + 35);
    if (sscanf(name, "controlnet_down_blocks.%d.%n", &i, &at) == 1 && at)
        return put(out, cap, err, name, "zero_convs.%d.0.%s", i, name + at);
    if (strncmp(name, "controlnet_mid_block.", 21) == 0)
        return put(out, cap, err, name, "middle_block_out.0.%s", name + 21);
    return no_name(err, name, "ControlNet");
}

int convert_vae_name(char *out, size_t cap, const char *name, const cnet_vae_config *cfg,
                     cnet_error *err) {
    char half[8], buf[256];
    int i = 0, j = 0, at = 0;
    const char *rest;
    if (sscanf(name, "encoder.down_blocks.%d.resnets.%d.%n", &i, &j, &at) == 2 && at)
        return put(out, cap, err, name, "encoder.down.%d.block.%d.%s", i, j,
                   rename_head(buf, sizeof buf, name + at, vae_resnet, N_ROWS(vae_resnet)));
    if (sscanf(name, "encoder.down_blocks.%d.downsamplers.0.conv.%n", &i, &at) == 1 && at)
        return put(out, cap, err, name, "encoder.down.%d.downsample.conv.%s", i, name + at);
    if (sscanf(name, "decoder.up_blocks.%d.resnets.%d.%n", &i, &j, &at) == 2 && at)
        return put(out, cap, err, name, "decoder.up.%d.block.%d.%s", cfg->n_blocks - 1 - i, j,
                   rename_head(buf, sizeof buf, name + at, vae_resnet, N_ROWS(vae_resnet)));
    if (sscanf(name, "decoder.up_blocks.%d.upsamplers.0.conv.%n", &i, &at) == 1 && at)
        return put(out, cap, err, name, "decoder.up.%d.upsample.conv.%s", cfg->n_blocks - 1 - i,
                   name + at);
    if (sscanf(name, "%7[a-z].mid_block.resnets.%d.%n", half, &i, &at) == 2 && at)
        return put(out, cap, err, name, "%s.mid.block_%d.%s", half, i + 1,
                   rename_head(buf, sizeof buf, name + at, vae_resnet, N_ROWS(vae_resnet)));
    if (sscanf(name, "%7[a-z].mid_block.attentions.0.%n", half, &at) == 1 && at) {
        rest = rename_head(buf, sizeof buf, name + at, vae_attention, N_ROWS(vae_attention));
        if (rest == name + at) return no_name(err, name, "VAE");
        return put(out, cap, err, name, "%s.mid.attn_1.%s", half, rest);
    }
    if (sscanf(name, "%7[a-z].conv_norm_out.%n", half, &at) == 1 && at)
        return put(out, cap, err, name, "%s.norm_out.%s", half, name + at);
    return put(out, cap, err, name, "%s", name); /* conv_in/out, quant_conv, post_quant_conv */
}

int convert_vae_legacy_name(char *out, size_t cap, const char *name) {
    static const char *const legacy[][2] = {{".to_q.", ".query."},
                                            {".to_k.", ".key."},
                                            {".to_v.", ".value."},
                                            {".to_out.0.", ".proj_attn."}};
    const char *attn = strstr(name, ".mid_block.attentions.0.");
    for (int i = 0; attn && i < N_ROWS(legacy); i++) {
        const char *at = strstr(attn, legacy[i][0]);
        if (!at) continue;
        int n = snprintf(out, cap, "%.*s%s%s", (int)(at - name), name, legacy[i][1],
                         at + strlen(legacy[i][0]));
        return n > 0 && (size_t)n < cap;
    }
    return 0;
}

/* CLIP encoder layer submodules in open_clip's ResidualAttentionBlock. */
static const char *const openclip_layer[][2] = {
    {"layer_norm1.", "ln_1."},
    {"layer_norm2.", "ln_2."},
    {"mlp.fc1.", "mlp.c_fc."},
    {"mlp.fc2.", "mlp.c_proj."},
    {"self_attn.out_proj.", "attn.out_proj."},
};

int convert_openclip_name(char *out, size_t cap, const char *name, int *third, cnet_error *err) {
    static const char *const qkv[] = {"self_attn.q_proj.", "self_attn.k_proj.",
                                      "self_attn.v_proj."};
    char buf[256];
    int i = 0, at = 0;
    *third = -1;
    if (strcmp(name, "text_model.embeddings.token_embedding.weight") == 0)
        return put(out, cap, err, name, "token_embedding.weight");
    if (strcmp(name, "text_model.embeddings.position_embedding.weight") == 0)
        return put(out, cap, err, name, "positional_embedding");
    if (strncmp(name, "text_model.final_layer_norm.", 28) == 0)
        return put(out, cap, err, name, "ln_final.%s", name + 28);
    if (sscanf(name, "text_model.encoder.layers.%d.%n", &i, &at) != 1 || !at)
        return no_name(err, name, "OpenCLIP text");
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(qkv[k]);
        if (strncmp(name + at, qkv[k], n) == 0) {
            *third = k;
            return put(out, cap, err, name, "transformer.resblocks.%d.attn.in_proj_%s", i,
                       name + at + n);
        }
    }
    const char *rest =
        rename_head(buf, sizeof buf, name + at, openclip_layer, N_ROWS(openclip_layer));
    if (rest == name + at) return no_name(err, name, "OpenCLIP text");
    return put(out, cap, err, name, "transformer.resblocks.%d.%s", i, rest);
}

int convert_clip_name(char *out, size_t cap, const char *name, cnet_error *err) {
    if (strncmp(name, "text_model.", 11) != 0) return no_name(err, name, "CLIP text");
    return put(out, cap, err, name, "transformer.%s", name);
}
