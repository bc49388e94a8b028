/* The original (LDM / CompVis, A1111, ComfyUI) name of each diffusers
 * parameter of the Stable Diffusion 1.x / 2.x models: UNet2DConditionModel,
 * ControlNetModel, AutoencoderKL and CLIPTextModel.
 *
 * Follows diffusers v0.27.2 scripts/convert_diffusers_to_original_stable_
 * diffusion.py (unet_conversion_map*, vae_conversion_map*) with its block
 * arithmetic generalised from 2 layers per block to the config's, plus the
 * ControlNet's own modules as pipelines/stable_diffusion/convert_from_ckpt.py
 * reads them (input_hint_block, zero_convs, middle_block_out). One direction
 * only: converting a file either way walks the model's declared parameters
 * (engine/models) and asks this map, so import and export cannot disagree.
 *
 * Names are without the checkpoint's prefix (model.diffusion_model.,
 * control_model., first_stage_model., cond_stage_model.). Not here: SDXL
 * (label_emb, conditioner.embedders), LoRA. */
#ifndef CNET_CONVERT_NAMES_H
#define CNET_CONVERT_NAMES_H

#include <stddef.h>

#include "engine/config/config.h"
#include "engine/core/error.h"

/* UNet or ControlNet (cfg->is_controlnet) parameter -> LDM name. */
int convert_unet_name(char *out, size_t cap, const char *name, const cnet_unet_config *cfg,
                      cnet_error *err);
/* AutoencoderKL parameter -> LDM name (first_stage_model's). */
int convert_vae_name(char *out, size_t cap, const char *name, const cnet_vae_config *cfg,
                     cnet_error *err);
/* A VAE parameter's deprecated diffusers spelling (mid attention's
 * query / key / value / proj_attn, before diffusers 0.14): 1 and out set
 * when it has one, else 0. */
int convert_vae_legacy_name(char *out, size_t cap, const char *name);
/* CLIPTextModel parameter -> cond_stage_model's name (transformer.text_model.*). */
int convert_clip_name(char *out, size_t cap, const char *name, cnet_error *err);
/* CLIPTextModel parameter -> SD 2.x's OpenCLIP name under cond_stage_model.model.
 * (open_clip's TextTransformer, as convert_from_ckpt.py's
 * convert_open_clip_checkpoint reads it). q/k/v projections are thirds of
 * attn.in_proj_weight / in_proj_bias: *third is 0, 1 or 2 for them, else -1. */
int convert_openclip_name(char *out, size_t cap, const char *name, int *third, cnet_error *err);

#endif
