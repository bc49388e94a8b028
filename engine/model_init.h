/* Writing diffusers pipeline folders with random weights, for tests,
 * benchmarks and the offline demo (`cnet init-model`).
 *
 * Each component folder's config.json decides the architecture (read by the
 * same loaders that load real models); every parameter gets a random
 * non-zero value from engine/weights_init.h (PyTorch's default init for convs
 * and linears, near-identity norms, unit-variance embeddings, so activations
 * stay O(1)) from the seed and the component's name; the file is written in
 * PyTorch layout as diffusers / transformers name it. The ControlNet is made
 * from the UNet by ControlNetModel.from_unet (engine/controlnet_init.h), so
 * its zero convs are zero unless asked otherwise.
 *
 * Not here: the command line (server/cmd_init_model.c), copying a config
 * folder. */
#ifndef CNET_MODEL_INIT_H
#define CNET_MODEL_INIT_H

#include <stdint.h>

#include "error.h"

typedef struct minit_options {
    uint64_t seed;
    /* Zero convs and the conditioning embedding's conv_out get PyTorch's
     * default random init instead of zeros, so the ControlNet's outputs are
     * non-zero (as in a trained one; the goldens' tiny-sd is made so). */
    int nonzero_controlnet;
} minit_options;

/* Writes the tiny preset's configs into out/{unet,vae,text_encoder,scheduler,
 * tokenizer}/ (the folders must exist): a 2-level UNet and VAE with small
 * widths (8x8 latents, 16x16 images), a 2-layer CLIP text encoder and a
 * tokenizer learned from a built-in English caption text. */
int minit_tiny_configs(const char *out, cnet_error *err);

/* Generates every weights file of the pipeline folder `out`, whose
 * unet/, vae/ and text_encoder/ hold a config.json; writes
 * controlnet/config.json from the UNet's (from_unet, default conditioning
 * channels) when absent, and model_index.json when absent. */
int minit_pipeline(const char *out, const minit_options *opt, cnet_error *err);

#endif
