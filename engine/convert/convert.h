/* `cnet convert`: the weight files people have, as diffusers folders, and a
 * diffusers ControlNet as one A1111 / ComfyUI file.
 *
 * Into a diffusers folder (convert_to_diffusers):
 *   - a single-file SD 1.x / 2.x checkpoint (.safetensors or torch.save
 *     .ckpt: model.diffusion_model.*, first_stage_model.*, and
 *     cond_stage_model.transformer.* (SD 1.x's CLIP) or cond_stage_model.
 *     model.* (SD 2.x's OpenCLIP, its fused q/k/v split)) -> unet/ vae/
 *     text_encoder/ tokenizer/ scheduler/ model_index.json, as diffusers'
 *     from_single_file(...).save_pretrained;
 *   - an A1111 / ComfyUI ControlNet (control_model.* keys, or the same keys
 *     unprefixed as lllyasviel's .pth files have them) -> a ControlNetModel
 *     folder (config.json + diffusion_pytorch_model.safetensors);
 *   - a diffusers folder whose weights are PyTorch .bin files or whose VAE
 *     has the deprecated attention names -> the same folder in safetensors
 *     with today's names (other files copied).
 * Configs are inferred from the tensors (convert_infer.h) unless
 * opts->config_from names a diffusers folder whose <component>/config.json
 * to use; a single-file SD checkpoint carries no tokenizer or scheduler,
 * which come from config_from's tokenizer/ and scheduler/ (refused, saying
 * so, without it). Every parameter of the model the config declares must be
 * found with its shape, and every tensor under a component's prefix must be
 * used: an unknown key is an error naming it. Tensors keep their dtype.
 *
 * Refused with what to do instead: SDXL single files (conditioner.embedders,
 * label_emb), LoRA files, anything else unknown.
 *
 * Out of a diffusers ControlNet (convert_controlnet_to_single_file): the
 * control_model.* keys A1111's sd-webui-controlnet and ComfyUI load, written
 * as safetensors; converting it back gives the same bytes.
 *
 * Not here: the command line (server/cli/cmd_convert.c). */
#ifndef CNET_CONVERT_H
#define CNET_CONVERT_H

#include "engine/core/error.h"

typedef struct convert_options {
    const char *config_from; /* a diffusers folder, or NULL */
} convert_options;

/* in: a weights file or a diffusers folder; out_dir: created (must not
 * exist or be empty). */
int convert_to_diffusers(const char *in, const char *out_dir, const convert_options *opts,
                         cnet_error *err);

/* controlnet_dir: a diffusers ControlNetModel folder; out_path: the
 * .safetensors to write (atomically). */
int convert_controlnet_to_single_file(const char *controlnet_dir, const char *out_path,
                                      cnet_error *err);

#endif
