/* The CUDA backend: the op table of engine/core/backend.h on one NVIDIA GPU, with
 * device memory from cudaMalloc (never managed memory), one stream, one
 * cuBLAS + cuBLASLt handle and one cuDNN handle per backend, and our own
 * kernels for everything that is not a matrix product or a convolution.
 *
 * Semantics are those of the CPU backend (kernels/cpu), entry by entry: the
 * same accumulate / overwrite / NULL rules, the same float32 op order where
 * it matters (timestep embedding, AdamW), the same Philox stream. Matrix
 * products and convolutions run in full float32 (no TF32) unless
 * cnet_backend_cuda_set_tf32 allows it, or be->precision (--mixed_precision,
 * engine/core/backend.h) asks for bf16 / fp16. Then gemm, gemm_batched and linear
 * use the cuBLAS/cuBLASLt _FAST_16BF / _FAST_16F compute types (inputs
 * rounded to 16 bits inside the library, float32 accumulation and float32
 * output), and conv2d forward and backward run cuDNN on 16-bit copies of
 * the operands (float32 accumulation, the 16-bit output widened back; see
 * cuda_conv.cu). A float32 weight is rounded at every call; a frozen
 * model's weight stored in the precision's 16-bit type (params_store16, the
 * *_w16 ops; cuda_weights16.cu) is fed as stored. Attention runs its
 * products on tensor cores (cuda_attention_tc.cu, cuda_attention_tc_bwd.cu;
 * softmax in float32) for head dims up to 160. Everything else stays
 * float32 at every precision: storage (trained weights, activations,
 * gradients, optimizer state), norms, activations, elementwise ops, losses,
 * the optimizer, bias adds and bias gradients.
 *
 * Errors: ops keep the table's void signatures. The first failing CUDA,
 * cuBLAS or cuDNN call (or kernel launch) is recorded with its file and line
 * and makes every later op a no-op; cnet_backend_cuda_status reports it.
 * synchronize and download also surface asynchronous faults there.
 *
 * This header is plain C; it is only compiled in when the build defines
 * CNET_HAVE_CUDA (nvcc found). Not here: multi-GPU, CUDA graphs. */
#ifndef CNET_CUDA_BACKEND_H
#define CNET_CUDA_BACKEND_H

#include <stddef.h>

/* engine/ is C: its declarations keep C linkage in the .cu files. */
#ifdef __cplusplus
extern "C" {
#endif

#include "engine/core/backend.h"

/* Number of visible CUDA devices; 0 with a reason in why (if non-NULL) when
 * the runtime reports an error (no driver, no device). */
int cnet_cuda_device_count(char *why, size_t why_cap);

/* Creates the CUDA backend on device ordinal `device`. Fails with
 * CNET_EBACKEND naming the call that failed (no device, out of memory, a
 * library that would not initialise). Free with cnet_backend_free. */
int cnet_backend_cuda_init(cnet_backend *be, int device, cnet_error *err);

/* 0 while no CUDA call has failed on this backend; otherwise CNET_EBACKEND
 * with "file:line: call: error" of the first failure in err. */
int cnet_backend_cuda_status(cnet_backend *be, cnet_error *err);

/* High-water mark of the device's used memory (cudaMemGetInfo total - free,
 * so the CUDA context and other processes on the GPU count too), sampled
 * after every allocation, at every synchronize and by this call. */
size_t cnet_backend_cuda_peak_bytes(cnet_backend *be);

/* Lets matrix products and convolutions use TF32 tensor cores (on = 1) or
 * not (0, the default: float32 parity with the CPU backend). */
void cnet_backend_cuda_set_tf32(cnet_backend *be, int on);

#ifdef __cplusplus
}
#endif

#endif
