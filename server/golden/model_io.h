/* Model inputs and outputs at the file boundary, shared by `cnet golden` and
 * `cnet forward`: tensors named as in the goldens, in safetensors files and
 * PyTorch layout (NCHW), moved to and from the engine's NHWC device buffers.
 * 4-d tensors are converted, others copied as they are. */
#ifndef CNET_MODEL_IO_H
#define CNET_MODEL_IO_H

#include <stdint.h>

#include "engine/core/backend.h"
#include "engine/core/safetensors.h"

/* Most samples a timestep input may hold. */
#define MIO_MAX_BATCH 64

/* The tensor `name` of f, required to be of dtype and (ndim >= 0) rank ndim. */
int mio_need(const st_file *f, const char *name, cnet_dtype dtype, int ndim, const st_entry **out,
             cnet_error *err);

/* A device copy (float32; NCHW -> NHWC when 4-d) of a file tensor; free it
 * with be->free. NULL (and err set) when out of memory. */
float *mio_upload(cnet_backend *be, const st_entry *e, cnet_error *err);

/* A malloc'd host copy in PyTorch layout of the device buffer dev holding
 * a tensor of that PyTorch shape (NHWC -> NCHW when 4-d). NULL when out of
 * memory. */
float *mio_download(cnet_backend *be, const float *dev, int ndim, const int64_t *shape);

/* Host float timesteps [B] from an int64 or f32 scalar or [B] tensor `name`. */
int mio_timesteps(const st_file *f, const char *name, int B, float *t, cnet_error *err);

/* DiagonalGaussianDistribution of NCHW VAE moments [B,2L,h,w] (hw = h*w):
 * mean = the first L channels, logvar = the last L clamped to [-30, 20],
 * std = exp(logvar / 2); each output [B,L,h,w]. */
void mio_vae_distribution(float *mean, float *logvar, float *std, const float *moments, int B,
                          int L, size_t hw);

#endif
