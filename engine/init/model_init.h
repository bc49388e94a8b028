/* Writing diffusers pipeline folders with random weights, for tests,
 * benchmarks and the offline demo (`cnet init-model`).
 *
 * Each component folder's config.json decides the architecture (read by the
 * same loaders that load real models); every parameter gets a random
 * non-zero value from engine/init/weights_init.h (PyTorch's default init for convs
 * and linears, near-identity norms, unit-variance embeddings, so activations
 * stay O(1)) from the seed and the component's name; the file is written in
 * PyTorch layout as diffusers / transformers name it. The ControlNet is made
 * from the UNet by ControlNetModel.from_unet (engine/init/controlnet_init.h), so
 * its zero convs are zero unless asked otherwise.
 *
 * Not here: the command line (server/cli/cmd_init_model.c), copying a config
 * folder. */
#ifndef CNET_MODEL_INIT_H
#define CNET_MODEL_INIT_H

#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

typedef struct minit_options {
    uint64_t seed;
    /* Zero convs and the conditioning embedding's conv_out get PyTorch's
     * default random init instead of zeros, so the ControlNet's outputs are
     * non-zero (as in a trained one; the goldens' tiny-sd is made so). */
    int nonzero_controlnet;
    /* Storage of the weights files: CNET_F32 (the zero value), CNET_F16 or
     * CNET_BF16 (values drawn in float32, rounded to nearest even). */
    cnet_dtype dtype;
} minit_options;

/* Writes the tiny preset's configs into out/{unet,vae,text_encoder,scheduler,
 * tokenizer}/ (the folders must exist): a 2-level UNet and VAE with small
 * widths (8x8 latents, 16x16 images), a 2-layer CLIP text encoder and a
 * tokenizer learned from a built-in English caption text. */
int minit_tiny_configs(const char *out, cnet_error *err);

/* Writes Stable Diffusion 1.5's architecture into the same folders
 * (runwayml/stable-diffusion-v1-5: UNet 320/640/1280/1280 with 2 layers, 8
 * heads, 768-d cross-attention, 64x64 latents; VAE 128/256/512/512 for
 * 512x512 images, scaling 0.18215; CLIP ViT-L/14 text encoder, 12 layers of
 * 768, vocabulary 49408; PNDM scheduler), controlnet/config.json from_unet
 * with the default conditioning embedding, and a tokenizer generated like
 * the tiny one (its ids are the first of the 49408). */
int minit_sd15_configs(const char *out, cnet_error *err);

/* Writes Stable Diffusion XL base 1.0's architecture
 * (stabilityai/stable-diffusion-xl-base-1.0, engine/init/model_init_sdxl.c):
 * UNet 320/640/1280 with transformer depths 1/2/10, 64-wide heads, 2048-d
 * cross-attention, the "text_time" added embedding (256 per time id, 2816
 * in all), 128x128 latents; VAE as SD 1.5's for 1024x1024 images, scaling
 * 0.13025, force_upcast; text_encoder CLIP ViT-L/14 (12 layers of 768) and
 * text_encoder_2 OpenCLIP bigG (32 layers of 1280, GELU, projection 1280);
 * the Euler scheduler; model_index.json (StableDiffusionXLControlNetPipeline),
 * controlnet/config.json from_unet, two generated tokenizers (tokenizer_2
 * pads with "!"). Creates text_encoder_2/ and tokenizer_2/; the other
 * folders must exist. */
int minit_sdxl_configs(const char *out, cnet_error *err);

/* The same SDXL layout at reduced width, for CPU benchmarks: UNet
 * 64/128/256 (same depths, 64-wide heads, same text interfaces), VAE
 * 32/64/128/128, both text encoders 4 layers deep over the generated
 * vocabulary; 32x32 latents, 256x256 images. */
int minit_sdxl_small_configs(const char *out, cnet_error *err);

/* Writes out/model_index.json (a StableDiffusionControlNetPipeline) when
 * absent. */
int minit_model_index(const char *out, cnet_error *err);

/* Generates every weights file of the pipeline folder `out`, whose
 * unet/, vae/ and text_encoder/ hold a config.json; writes
 * controlnet/config.json from the UNet's (from_unet, default conditioning
 * channels) when absent, and model_index.json when absent; text_encoder_2/
 * too when it holds a config.json (SDXL). */
int minit_pipeline(const char *out, const minit_options *opt, cnet_error *err);

#endif
