/* PyTorch checkpoint files (.bin, .pth, .pt, .ckpt written by torch.save) read
 * as tensors, through a restricted unpickler that never runs code.
 *
 * What it reads: torch.save's zip format (torch >= 1.6; torch/serialization.py
 * _save): <archive>/data.pkl, a pickle whose tensors are
 * torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) calls
 * over persistent ids ('storage', torch.<Type>Storage, key, location, numel),
 * with each storage's bytes in <archive>/data/<key> and <archive>/byteorder
 * "little" (or absent). The pickle's top object is a dict of tensors, or a
 * Lightning checkpoint whose "state_dict" entry is one (diffusers'
 * convert_from_ckpt reads the same key); other entries (global_step, epoch)
 * are ignored.
 *
 * What it refuses: every global but collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
 * torch.<Type>Storage classes — an error naming the global (os.system,
 * builtins.eval, numpy.core.multiarray.scalar, ...) before anything is built;
 * every opcode outside the subset pickle protocols 2-5 use for plain data
 * (Python's Lib/pickletools.py names them); the legacy non-zip format
 * (torch < 1.6); big-endian archives; compressed zip entries. Limits (named
 * below) bound the pickle's size, strings, stack, marks, memo and objects;
 * every length and offset is checked against the file.
 *
 * Tensors of dtypes cnet has no type for (float64, int32, int16, int8,
 * complex) are left out of the result (an EMA's int32 num_updates is one);
 * a model that needs one then reports it missing by name. Contiguous tensors
 * are views into the read-only mapping; strided or offset-sharing ones are
 * copied into st_file.heap, which never grows past the file's size (more
 * would be one storage repeated through many views: CNET_ELIMIT). The result is an st_file
 * (safetensors.h): every reader of safetensors reads it the same way. */
#ifndef CNET_TORCH_PICKLE_H
#define CNET_TORCH_PICKLE_H

#include "engine/core/error.h"
#include "engine/core/safetensors.h"

/* data.pkl larger than this is not a state dict (SD's is ~100 KB). */
#define TORCH_PICKLE_MAX_PICKLE (256u << 20)
/* One string or bytes object (a key, a location, a version). */
#define TORCH_PICKLE_MAX_STRING (1u << 20)
/* Objects built (each tuple, string, tensor, ... counts one). */
#define TORCH_PICKLE_MAX_OBJECTS (2u << 20)
/* The value stack, nested MARKs, and the highest memo index. */
#define TORCH_PICKLE_MAX_STACK (1u << 20)
#define TORCH_PICKLE_MAX_MARKS 4096
#define TORCH_PICKLE_MAX_MEMO (8u << 20)

/* 1 when the first bytes look like torch.save output (a zip archive or a
 * raw pickle, the legacy format): what torch_pickle_open should be asked. */
int torch_pickle_sniff(const void *buf, size_t len);

/* Maps path and reads its tensors into *f (entries in pickle order). On
 * failure *f holds nothing to free. Errors: CNET_EIO, CNET_EFORMAT (with
 * the offending global, opcode, key or offset named), CNET_ELIMIT,
 * CNET_ENOMEM. */
int torch_pickle_open(st_file *f, const char *path, cnet_error *err);

#endif
