/* A diffusers config.json inferred from the tensors of an original-layout
 * (LDM) checkpoint, as diffusers v0.27.2's convert_from_ckpt.py
 * (create_unet_diffusers_config, create_vae_diffusers_config,
 * convert_controlnet_checkpoint) does from the yaml + tensors, but from the
 * tensors alone: channels, levels, layers per block, which levels attend,
 * cross-attention width (768: SD 1.x, 1024: SD 2.x), linear or conv
 * projections, transformer depth, the ControlNet's hint embedding.
 *
 * What tensors cannot say is taken from the SD family the cross-attention
 * width names (SD 1.x: 8 heads; SD 2.x: 64-wide heads; norm_num_groups 32;
 * VAE scaling 0.18215; CLIP ViT-L/14's 64-wide heads and quick_gelu); a
 * model of another width is refused with a message asking for --config_from
 * (a diffusers folder whose config.json files to use instead).
 *
 * Each prefix is the checkpoint's ("model.diffusion_model.", "control_model."
 * or "", "first_stage_model.", "cond_stage_model.transformer.text_model.").
 * The caller owns the returned json_t (json_decref). */
#ifndef CNET_CONVERT_INFER_H
#define CNET_CONVERT_INFER_H

#include <jansson.h>

#include "engine/core/error.h"
#include "engine/core/safetensors.h"

/* UNet2DConditionModel (controlnet 0) or ControlNetModel (controlnet 1). */
int convert_infer_unet(json_t **cfg, const st_file *f, const char *prefix, int controlnet,
                       cnet_error *err);
int convert_infer_vae(json_t **cfg, const st_file *f, const char *prefix, cnet_error *err);
int convert_infer_clip(json_t **cfg, const st_file *f, const char *prefix, cnet_error *err);
/* SD 2.x's OpenCLIP ViT-H text tower as a CLIPTextModel: gelu, 64-wide heads,
 * and one layer fewer than the file holds (v2-inference.yaml's "penultimate"
 * layer: diffusers' SD 2 text encoder has 23 of OpenCLIP's 24). */
int convert_infer_openclip(json_t **cfg, const st_file *f, const char *prefix, cnet_error *err);

#endif
