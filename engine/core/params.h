/* Parameter tables: the named weights of a model, as the checkpoint names
 * them (`down_blocks.0.resnets.1.conv1.weight`), in one block of backend
 * memory.
 *
 * A model declares its parameters (name, PyTorch shape, layout) from its
 * config; the table then sizes one allocation, loads a diffusers weights
 * file (single or sharded, f32/f16/bf16) checking that every expected key is
 * present with the right shape and that no unexpected key is left, and can
 * save the parameters back in PyTorch layout. Conv weights are reordered
 * once here from PyTorch's [C_out, C_in, kh, kw] to the engine's
 * [C_out, kh, kw, C_in]; nothing else changes layout.
 *
 * On a backend whose ops read host memory (cnet_backend.reads_host: the
 * CPU), params_load does not copy a float32 tensor it can use as it is (not
 * a conv weight, which is reordered, and aligned to 4 bytes in the file):
 * the parameter's data points into the file's read-only mapping
 * (safetensors.h), which the table keeps until params_free, params_own or
 * the next params_load. Its pages are the page cache's: shared by every
 * process and engine that maps the same file, never copied, and never
 * written (a write would fault: a table that is trained calls params_own
 * first, and params_like refuses a mapped table). The file must not change
 * in place while mapped: cnet's writers and the Hub cache replace files by
 * rename, which leaves a mapped file's old inode intact. The slice of the
 * block such a parameter does not use is given back to the kernel, so it
 * costs no memory.
 *
 * Not here: optimizer state and gradients (same sizes; the trainer makes
 * them with params_alloc_like). */
#ifndef CNET_PARAMS_H
#define CNET_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/backend.h"
#include "engine/core/error.h"
#include "engine/core/safetensors.h"
#include "engine/core/tensor.h"

#define PARAM_NAME_MAX 160

typedef enum param_layout {
    PARAM_PLAIN = 0, /* stored as in the checkpoint */
    PARAM_CONV,      /* 4-d conv weight: OIHW in files, OHWI in memory */
} param_layout;

typedef struct cnet_param {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[4]; /* PyTorch (file) shape */
    param_layout layout;
    size_t offset; /* in elements from the start of its block */
    size_t numel;
    float *data;      /* device pointer into the block, set by params_alloc */
    uint16_t *data16; /* instead of data once params_store16 narrowed it */
    int product;      /* the weight of a Linear or Conv2d (nn.h): what
                         params_store16 narrows */
} cnet_param;

typedef struct cnet_params {
    cnet_backend *be; /* borrowed */
    cnet_param *items;
    int n, cap;
    size_t total; /* floats */
    float *block; /* owned, one allocation of `total` floats */
    /* After params_store16: the narrowed weights, `total16` elements of
     * dtype16 (CNET_BF16 or CNET_F16); NULL before. */
    uint16_t *block16;
    size_t total16;
    cnet_dtype dtype16;
    char **extra_ok; /* keys a file may hold that are not parameters */
    int n_extra_ok;
    char **aliases; /* pairs: a file's key, the parameter it loads into */
    int n_aliases;
    /* The files whose mappings hold parameters in place (see above); owned,
     * closed by params_free, params_own and the next params_load. */
    st_file *maps;
    int n_maps;
    size_t mapped; /* floats of the table read from the mappings */
    int owns;      /* params_load copies every weight: a table that is
                      written (params_own, params_like) */
} cnet_params;

void params_init(cnet_params *p, cnet_backend *be);
void params_free(cnet_params *p);
/* Declares a parameter; returns its index or a negative status. */
int params_add(cnet_params *p, const char *name, int ndim, const int64_t *shape,
               param_layout layout, cnet_error *err);
/* Lets params_load skip a key that checkpoints may carry but the model does
 * not use (e.g. transformers' `text_model.embeddings.position_ids` buffer). */
int params_allow_extra(cnet_params *p, const char *name, cnet_error *err);
/* Lets params_load read the parameter param_name from a file key
 * file_name, an older spelling (diffusers' deprecated VAE attention names,
 * engine/models/vae.c). */
int params_alias(cnet_params *p, const char *file_name, const char *param_name, cnet_error *err);
/* Allocates the block (zeroed) and sets every data pointer. */
int params_alloc(cnet_params *p, cnet_error *err);
/* Copies every parameter params_load mapped in place into the block and
 * closes the mappings: the table then owns its values and may be written
 * (a model about to be trained), and later params_loads (a checkpoint's)
 * copy too. */
int params_own(cnet_params *p, cnet_error *err);
/* A table with the same parameters as src (names, shapes, offsets), zeroed:
 * gradients and optimizer moments, which own their values (params_own). A src that maps weights in
 * place is refused (its block does not hold them: params_own first). */
int params_alloc_like(cnet_params *dst, const cnet_params *src, cnet_error *err);
/* The same table as src without memory (block NULL): bind it to a block
 * with params_bind. */
int params_like(cnet_params *dst, const cnet_params *src, cnet_error *err);
/* Points every parameter of p into block (p->total floats, owned by the
 * caller, e.g. an arena slice); NULL unbinds. Only for tables made with
 * params_like (params_free frees a block it finds bound). */
void params_bind(cnet_params *p, float *block);
/* NULL when absent. */
cnet_param *params_find(const cnet_params *p, const char *name);

/* Stores the weights of every product (cnet_param.product) in dtype
 * (CNET_BF16 or CNET_F16, round to nearest even; CNET_F32 leaves a float32
 * table as it is) and keeps the rest
 * (biases, norms, embeddings) in float32, as a frozen model's weights under
 * --mixed_precision: about half the memory. The table is frozen from then
 * on: params_load, params_like and params_alloc_like refuse it (no
 * gradients of a frozen model); params_read and params_save widen the
 * narrowed values back. Storing again in the same dtype does nothing; on
 * failure the table is unchanged. */
int params_store16(cnet_params *p, cnet_dtype dtype, cnet_error *err);
/* Bytes of backend memory the table's values occupy. */
size_t params_bytes(const cnet_params *p);

/* Copies parameter `index` to host memory in PyTorch layout (numel floats). */
void params_read(const cnet_params *p, int index, float *host, float *scratch);

/* Loads every parameter from `path`: a .safetensors file, a PyTorch file
 * (engine/core/weights_file.h), or a *.safetensors.index.json listing shards. Missing, unexpected
 * or mis-shaped keys are errors naming the key, the file and both shapes. */
int params_load(cnet_params *p, const char *path, cnet_error *err);
/* Writes every parameter in PyTorch layout as float32 safetensors, with
 * optional metadata pairs; atomic (temp file + rename). */
int params_save(const cnet_params *p, const char *path, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, cnet_error *err);
/* The same in dtype F32, F16 or BF16 (round to nearest even), the storage
 * of diffusers' fp16 / bf16 variants; params_load reads all three. */
int params_save_as(const cnet_params *p, const char *path, cnet_dtype dtype,
                   const char *const *meta_keys, const char *const *meta_values, int n_meta,
                   cnet_error *err);

#endif
