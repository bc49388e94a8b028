/* One door for every weights file cnet reads: a safetensors file, or a
 * PyTorch file torch.save wrote (.bin, .pth, .pt, .ckpt), told apart by
 * their first bytes (a zip or pickle header is PyTorch; anything else is
 * read as safetensors, whose errors then describe it). Both come back as an
 * st_file (safetensors.h), so loaders and converters read them alike; the
 * PyTorch side is engine/core/torch_pickle.h's restricted unpickler, which
 * never runs code from the file. */
#ifndef CNET_WEIGHTS_FILE_H
#define CNET_WEIGHTS_FILE_H

#include "engine/core/error.h"
#include "engine/core/safetensors.h"

/* Opens path into *f; on failure *f holds nothing to free (st_close). */
int weights_file_open(st_file *f, const char *path, cnet_error *err);

#endif
