/* ControlNetModel.from_unet (diffusers v0.27.2 models/controlnet.py), the
 * initialisation train_controlnet.py uses when it is given no ControlNet:
 *
 *   config: the UNet's encoder fields (in_channels, block layout, heads,
 *           cross_attention_dim, ...) plus conditioning_channels,
 *           controlnet_conditioning_channel_order and
 *           conditioning_embedding_out_channels (default (16, 32, 96, 256));
 *   copied: conv_in, time_embedding, down_blocks.*, mid_block.* (bit-equal);
 *   zero:   controlnet_cond_embedding.conv_out, controlnet_down_blocks.*,
 *           controlnet_mid_block (diffusers' zero_module);
 *   fresh:  controlnet_cond_embedding.conv_in and .blocks.*, and for an SDXL
 *           ("text_time") UNet add_embedding.linear_1/2 (0.27.2 does not copy
 *           them; goldens-sdxl/controlnet_from_unet.json): PyTorch's default
 *           Conv2d / Linear init (kaiming_uniform_(a = sqrt(5)) weights,
 *           U(+-1/sqrt(fan_in)) biases; engine/init/weights_init.h), drawn from
 *           Philox with a seed, as torch draws them from its global generator.
 *
 * The SDXL config fields (addition_embed_type, addition_time_embed_dim,
 * projection_class_embeddings_input_dim, transformer_layers_per_block as
 * written) pass through like the others. Not here: class embeddings, which
 * the config loader refuses. */
#ifndef CNET_CONTROLNET_INIT_H
#define CNET_CONTROLNET_INIT_H

#include <jansson.h>
#include <stdint.h>

#include "engine/models/controlnet.h"
#include "engine/models/unet.h"

/* conditioning_embedding_out_channels of from_unet when none are given. */
#define CONTROLNET_DEFAULT_COND_CHANNELS                                                           \
    { 16, 32, 96, 256 }
#define CONTROLNET_DEFAULT_N_COND 4

/* How many of the default conditioning embedding's levels bring a control
 * image to the latents of a VAE that downsamples vae_factor x: all four for
 * the 8x VAE of every SD model (512x512 to 64x64), a prefix for a VAE with
 * fewer levels (2 levels for 2x, 3 for 4x). */
int controlnet_default_cond_levels(int vae_factor);
/* The tag of the fresh tensors' Philox stream (weights_init.h). */
#define CONTROLNET_INIT_TAG "controlnet"

/* The ControlNetModel config.json from_unet writes for the UNet whose
 * config.json is at unet_config_path: every field from_unet passes from
 * unet.config (UNet2DConditionModel's default when the file lacks it), the
 * given conditioning_embedding_out_channels cond[0..n_cond), conditioning
 * channels 3, channel order "rgb", and the class's other defaults.
 * *out is a new reference (json_decref). */
int controlnet_config_from_unet(json_t **out, const char *unet_config_path, const int *cond,
                                int n_cond, cnet_error *err);

/* Fills cn (controlnet_init'ed with a config from the function above, or any
 * ControlNet config whose encoder matches the UNet) from unet as from_unet
 * does. A ControlNet tensor that the UNet lacks or has with another shape is
 * an error naming it and both shapes. */
int controlnet_from_unet(controlnet_model *cn, const unet_model *unet, uint64_t seed,
                         cnet_error *err);

#endif
