/* One model component converted between the original (LDM) layout and
 * diffusers': its config loaded by the engine's own loader, its parameters
 * declared by the engine's own model (engine/models, no memory allocated),
 * and each parameter's original name from convert_names.h. The walk over the
 * declared parameters is what makes a conversion complete: nothing the model
 * needs can be left out, nothing is invented. Internal to engine/convert. */
#ifndef CNET_CONVERT_COMPONENT_H
#define CNET_CONVERT_COMPONENT_H

#include "engine/core/error.h"
#include "engine/core/safetensors.h"

typedef enum convert_kind {
    CONVERT_UNET,
    CONVERT_CONTROLNET,
    CONVERT_VAE,
    CONVERT_CLIP,
    CONVERT_OPENCLIP, /* a CLIPTextModel from SD 2.x's OpenCLIP names */
} convert_kind;

/* Writes out_dir/config.json (copied from config_path) and the component's
 * weights file (diffusion_pytorch_model.safetensors, or model.safetensors for
 * CLIP) from the tensors of f named prefix + original name; with prefix
 * NULL, f is a diffusers file: the names are the parameters' own, or for a
 * VAE their deprecated spellings (convert_names.h). used (f->n flags) marks
 * each tensor taken. */
int convert_component_import(const st_file *f, const char *prefix, convert_kind kind,
                             const char *config_path, const char *out_dir, char *used,
                             cnet_error *err);

/* The component folder dir (config.json + weights) as tensors named
 * prefix + original name, written to out_path. */
int convert_component_export(const char *dir, convert_kind kind, const char *prefix,
                             const char *out_path, cnet_error *err);

#endif
