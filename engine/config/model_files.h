/* Where a diffusers component keeps its weights. A component folder (unet/,
 * vae/, text_encoder/, controlnet/) holds config.json and one of
 *   diffusion_pytorch_model[.<variant>].safetensors   (diffusers models)
 *   model[.<variant>].safetensors                     (transformers models)
 *   <either>.safetensors.index.json                   (sharded)
 *   diffusion_pytorch_model.bin / pytorch_model.bin   (PyTorch, read by the
 *                                                      restricted unpickler of
 *                                                      engine/core/torch_pickle.h,
 *                                                      which never runs code) */
#ifndef CNET_MODEL_FILES_H
#define CNET_MODEL_FILES_H

#include <stddef.h>

#include "engine/core/error.h"

/* config.json and the weights file of a component folder, each into a
 * buffer of cap bytes. */
int model_component_files(char *config_path, char *weights_path, size_t cap,
                          const char *component_dir, cnet_error *err);

#endif
