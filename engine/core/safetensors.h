/* safetensors files: a bounds-checked mmap reader and an atomic writer.
 *
 * Format (huggingface/safetensors): u64 little-endian header length N, then N
 * bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]},
 * "__metadata__": {str: str}}, then the data block; offsets are relative to
 * the data block. The reader refuses a header over 100 MB, offsets outside
 * the file or overlapping, byte sizes that differ from numel * dtype size,
 * more than 4 dims, and unknown dtypes, with an error naming the file and the
 * tensor. The writer writes a temp file, fsyncs it and renames it into place,
 * so a reader never sees a half-written file.
 *
 * Errors: CNET_EIO (open/map/write failed), CNET_EFORMAT (malformed file),
 * CNET_ELIMIT (header over the limit), CNET_EINVAL (bad st_write arguments),
 * CNET_ENOMEM. */
#ifndef CNET_SAFETENSORS_H
#define CNET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

#define SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)

/* view.data points into the read-only mapping and is aligned to the dtype
 * size when the writer aligned it (the Python library and st_write do); read
 * unaligned data through memcpy or cnet_to_f32. */
typedef struct st_entry {
    char *name;       /* owned by the file struct */
    cnet_tensor view; /* data points into the mapping (read-only), device -1 */
    size_t nbytes;
} st_entry;

typedef struct st_file {
    char *path;
    void *map;
    size_t map_size;
    int n;
    st_entry *entries; /* in file order */
    int n_meta;
    char **meta_keys; /* __metadata__ string pairs */
    char **meta_values;
    int *by_name; /* entry indices sorted by name, for st_find */
    void *heap;   /* tensors copied out of a non-safetensors source
                     (engine/core/torch_pickle.h); freed by st_close */
} st_file;

/* Maps and validates path into *f. On failure *f holds nothing to free. The
 * mapping is MAP_PRIVATE: a file truncated by another process while mapped
 * faults on access; cnet's writers replace files by rename, never in place. */
int st_open(st_file *f, const char *path, cnet_error *err);
/* Unmaps and frees everything; *f is zeroed. Safe on a zeroed struct. */
void st_close(st_file *f);
/* NULL when absent. */
const st_entry *st_find(const st_file *f, const char *name);
/* NULL when absent. */
const char *st_meta(const st_file *f, const char *key);

/* One tensor to write: host data in the given dtype. */
typedef struct st_write_item {
    const char *name;
    cnet_tensor view;
} st_write_item;

/* Writes items to path atomically: JSON keys in the given order (metadata
 * first), data laid out by dtype size, largest first (stable), so every tensor
 * is aligned and the data block is contiguous as the Python library requires;
 * header padded with spaces to a multiple of 8. On failure the temp file is
 * removed and an existing file at path is untouched. */
int st_write(const char *path, const st_write_item *items, int n, const char *const *meta_keys,
             const char *const *meta_values, int n_meta, cnet_error *err);

#endif
