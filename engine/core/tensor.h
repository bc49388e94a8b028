/* Tensor views, dtypes and half-precision conversion.
 *
 * A cnet_tensor is a view: it never owns its data. Memory is owned by an
 * arena (engine/core/arena.h), a mapped file (engine/core/safetensors.h) or the
 * caller. Up to 4 dims; activations are NHWC inside the engine, NCHW only at
 * the file boundary (PyTorch layout). */
#ifndef CNET_TENSOR_H
#define CNET_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define CNET_MAX_DIMS 4

typedef enum cnet_dtype {
    CNET_F32 = 0,
    CNET_F16,
    CNET_BF16,
    CNET_I64,
    CNET_U8,
    CNET_DTYPE_COUNT
} cnet_dtype;

/* Name table: "F32", "F16", "BF16", "I64", "U8" (the safetensors spelling). */
const char *cnet_dtype_name(cnet_dtype dt);
/* Returns the dtype for a safetensors name, or -1 when unknown. */
int cnet_dtype_from_name(const char *name);
size_t cnet_dtype_size(cnet_dtype dt);

typedef struct cnet_tensor {
    cnet_dtype dtype;
    int ndim;
    int64_t shape[CNET_MAX_DIMS];
    void *data;
    int device; /* -1 host, >= 0 device ordinal of the backend holding data */
} cnet_tensor;

int64_t cnet_tensor_numel(const cnet_tensor *t);
size_t cnet_tensor_bytes(const cnet_tensor *t);
/* "[2,4,8,8]" into buf; returns buf. */
char *cnet_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* IEEE half and bfloat16 <-> float32 (round to nearest even; NaN kept). */
float cnet_f16_to_f32(uint16_t h);
uint16_t cnet_f32_to_f16(float f);
float cnet_bf16_to_f32(uint16_t b);
uint16_t cnet_f32_to_bf16(float f);
/* Converts n elements of src (any dtype; I64 and U8 by value) to float32.
 * src need not be aligned to its dtype. */
void cnet_to_f32(float *dst, const void *src, cnet_dtype src_dtype, size_t n);

#endif
