/* Matrix products with bfloat16 operands and float32 accumulation on the
 * CPU (AVX512-BF16's vdpbf16ps), the CPU backend's --mixed_precision bf16
 * (engine/core/backend.h, "compute precision"). Not a float32 GEMM: every
 * operand is rounded to bf16 (nearest even) as it is packed, as
 * torch.autocast's bf16 matmul rounds its inputs; the sums are float32 and
 * the result stays float32. Sizes: C[M,N], op(A)[M,K], op(B)[K,N]. */
#ifndef CNET_CPU_GEMM_BF16_H
#define CNET_CPU_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/backend.h"

/* One operand: float32 (f32) or already bf16 (bf16, a weight stored so by
 * params_store16); exactly one is set. Row-major with leading dimension ld;
 * trans: the stored matrix is the transpose of the operand. */
typedef struct cpu_matrix {
    const float *f32;
    const uint16_t *bf16;
    long ld;
    int trans;
} cpu_matrix;

/* 1 when this CPU executes AVX512-BF16 (checked once). */
int cpu_bf16_supported(void);
/* Whether be's products run here in bf16: --mixed_precision bf16
 * (cnet_backend_set_precision grants it only where cpu_bf16_supported; a
 * zero-initialised test backend set by hand is checked again). */
int cpu_uses_bf16(const cnet_backend *be);

/* C[M,N] = alpha * op(A) @ op(B) + beta * C (C row-major, leading dimension
 * ldc; with beta == 0 C is not read). Only where cpu_bf16_supported; call
 * from outside parallel regions (it runs its own team). Scratch slots
 * CPU_SLOT_BF16_A and CPU_SLOT_BF16_B (scratch.h); out of memory is
 * recorded on the backend and C is left unwritten. */
void cpu_gemm_bf16(cnet_backend *be, float *C, long ldc, cpu_matrix A, cpu_matrix B, int M, int N,
                   int K, float alpha, float beta);

/* The same product on the calling thread (inside a parallel region: the
 * fused attention's blocks), packing into work, which holds at least
 * cpu_gemm_bf16_work_words(M, N, K) 32-bit words. */
void cpu_gemm_bf16_serial(float *C, long ldc, cpu_matrix A, cpu_matrix B, int M, int N, int K,
                          float alpha, float beta, uint32_t *work);
size_t cpu_gemm_bf16_work_words(int M, int N, int K);

#endif
