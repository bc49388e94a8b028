/* Private state and helpers of the CUDA backend, shared by its .cu files;
 * not part of any public interface (see cuda_backend.h for that).
 *
 * - cu_impl: the handles, the sticky error, the scratch slots and the conv
 *   algorithm cache of one backend;
 * - CU_CHECK / CUBLAS_CHECK / CUDNN_CHECK / CU_LAUNCHED record the first
 *   failure with file and line (they never exit);
 * - cu_scratch: numbered device buffers that grow to their high-water mark
 *   and are reused, as the CPU backend's scratch (kernels/cpu/scratch.h);
 * - launch geometry for grid-stride elementwise kernels. */
#ifndef CNET_CUDA_INTERNAL_H
#define CNET_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kernels/cuda/cuda_backend.h"

/* Scratch slots; an op must not assume a slot survives another op. */
enum {
    CU_SLOT_WORKSPACE = 0, /* cuDNN workspace */
    CU_SLOT_PAD = 1,       /* padded input of an asymmetrically padded conv */
    CU_SLOT_DPAD = 2,      /* its gradient */
    CU_SLOT_RED = 3,       /* reduction partials (double) */
    CU_SLOT_RED2 = 4,      /* second set of partials / per-row statistics */
    CU_SLOT_X16 = 5,       /* 16-bit conv: the (padded) input */
    CU_SLOT_W16 = 6,       /* 16-bit conv: the filter */
    CU_SLOT_Y16 = 7,       /* 16-bit conv: the output, or dout in backward */
    CU_SLOT_G16 = 8,       /* 16-bit conv: dx or dw before widening to float32 */
    CU_SLOT_W32 = 9,       /* a 16-bit stored weight widened to float32 */
    CU_SCRATCH_SLOTS = 10,
};

/* Workspace cuBLASLt may use for a product (its recommended size for
 * Hopper). */
#define CU_LT_WORKSPACE_BYTES (32UL << 20)
/* Largest cuDNN workspace an algorithm may ask for; algorithms that want
 * more are skipped in favour of the next one the heuristics rank. */
#define CU_CONV_WORKSPACE_MAX (256UL << 20)
/* Distinct convolution shapes whose algorithms are remembered; SD 1.5 and
 * its VAE use fewer than 100. When full the oldest entry is replaced. */
#define CU_CONV_CACHE_MAX 256
/* Threads per block of the elementwise kernels. */
#define CU_THREADS 256
/* Elements each block of a deterministic reduction sums (fixed, so results
 * depend on the shape only, not on the GPU model). */
#define CU_REDUCE_CHUNK 16384

typedef enum cu_conv_kind { CU_CONV_FWD = 0, CU_CONV_BWD_DATA, CU_CONV_BWD_FILTER } cu_conv_kind;

typedef struct cu_conv_algo {
    cnet_conv2d shape; /* with symmetric padding only (see cuda_conv.cu) */
    int kind;
    int tf32;
    int prec; /* the cnet_precision it was chosen for (data type of x, w, y) */
    int algo;
    int math; /* the cudnnMathType_t the algorithm was ranked with */
    size_t workspace;
} cu_conv_algo;

typedef struct cu_impl {
    int device;
    int sm_count;
    int tf32;
    cnet_precision prec; /* be->precision, copied by cu_enter at each op */
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    cudnnHandle_t dnn;
    void *lt_workspace; /* [CU_LT_WORKSPACE_BYTES] */
    void *scratch[CU_SCRATCH_SLOTS];
    size_t scratch_bytes[CU_SCRATCH_SLOTS];
    cu_conv_algo conv_cache[CU_CONV_CACHE_MAX];
    int conv_cache_n, conv_cache_next;
    size_t peak_used; /* high-water of the device's used memory, bytes */
    /* the first failure, sticky */
    int failed;
    char failure[512];
} cu_impl;

static inline cu_impl *cu_of(cnet_backend *be) { return (cu_impl *)be->impl; }

/* Record a failure (first one wins). Return 0 when ok, -1 otherwise. */
int cu_fail(cu_impl *cu, const char *file, int line, const char *what, const char *detail);
int cu_check_cuda(cu_impl *cu, cudaError_t e, const char *what, const char *file, int line);
int cu_check_cublas(cu_impl *cu, cublasStatus_t s, const char *what, const char *file, int line);
int cu_check_cudnn(cu_impl *cu, cudnnStatus_t s, const char *what, const char *file, int line);

#define CU_CHECK(cu, call) cu_check_cuda((cu), (call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(cu, call) cu_check_cublas((cu), (call), #call, __FILE__, __LINE__)
#define CUDNN_CHECK(cu, call) cu_check_cudnn((cu), (call), #call, __FILE__, __LINE__)
#define CU_LAUNCHED(cu, name) cu_check_cuda((cu), cudaGetLastError(), name, __FILE__, __LINE__)

/* The backend's state, or NULL when an earlier call failed (the op then
 * does nothing: its result would be meaningless). Makes the backend's device
 * current on the calling thread, so a backend may be driven from any
 * thread (a pool worker that did not create it). */
static inline cu_impl *cu_enter(cnet_backend *be) {
    cu_impl *cu = cu_of(be);
    if (cu->failed || CU_CHECK(cu, cudaSetDevice(cu->device))) return NULL;
    cu->prec = be->precision;
    return cu;
}

/* The cuBLAS compute type of a product at the current precision. Storage
 * is float32 throughout; _FAST_16BF / _FAST_16F let the library round the
 * inputs to bfloat16 / half (or to TF32, which is more precise) for tensor
 * cores and accumulate in float32, which is what torch.autocast's matmuls
 * compute. */
static inline cublasComputeType_t cu_compute_type(const cu_impl *cu) {
    switch (cu->prec) {
    case CNET_PREC_BF16:
        return CUBLAS_COMPUTE_32F_FAST_16BF;
    case CNET_PREC_F16:
        return CUBLAS_COMPUTE_32F_FAST_16F;
    default:
        return cu->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    }
}

/* At least `bytes` of device memory in slot; NULL (failure recorded) when
 * the device is out of memory. */
void *cu_scratch(cu_impl *cu, int slot, size_t bytes);

/* Blocks for a grid-stride loop over n elements. */
static inline unsigned cu_blocks(const cu_impl *cu, long n) {
    long b = (n + CU_THREADS - 1) / CU_THREADS;
    long cap = (long)cu->sm_count * 32;
    if (b > cap) b = cap;
    return (unsigned)(b > 0 ? b : 1);
}

/* Launches a grid-stride kernel over n elements on the backend's stream and
 * records a launch failure. */
#define CU_LAUNCH(cu, kernel, n, ...)                                                              \
    do {                                                                                           \
        kernel<<<cu_blocks(cu, n), CU_THREADS, 0, (cu)->stream>>>(__VA_ARGS__);                    \
        CU_LAUNCHED(cu, #kernel);                                                                  \
    } while (0)

/* Grid-stride loop over n elements inside a kernel. */
#define CU_FOR(i, n)                                                                               \
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n);                            \
         i += (long)gridDim.x * blockDim.x)

/* Column sums of x[M,N] over the M rows, in double with fixed chunking
 * (deterministic): out[N] += them (accumulate) or out[N] = them
 * (cuda_linalg.cu). */
void cu_colsum(cu_impl *cu, float *out, const float *x, long M, int N, int accumulate);
/* out[M,N] += bias[N] on every row (cuda_linalg.cu). */
void cu_add_bias_rows(cu_impl *cu, float *out, const float *bias, long M, int N);
/* C = alpha op(A) op(B) + beta C, row-major, float32 C and A, B of
 * ab_type, with compute type ct (cuda_linalg.cu). K > 0. */
void cu_gemm_ex(cu_impl *cu, float *C, const void *A, const void *B, cudaDataType_t ab_type,
                cublasComputeType_t ct, int M, int N, int K, int trans_a, int trans_b, float alpha,
                float beta);

/* The attention forward on tensor cores at bf16 / fp16 precision
 * (cuda_attention_tc.cu): 1 when it ran (or recorded a failure), 0 when it
 * does not take this case (float32 precision, head dim over 160, not
 * enough shared memory) and launched nothing. */
int cu_attention_forward_tc(cu_impl *cu, float *out, float *lse, const float *q, const float *k,
                            const float *v, int B, int Nq, int Nk, int heads, int D, float scale,
                            int causal);
/* The attention backward on tensor cores at bf16 / fp16 precision
 * (cuda_attention_tc_bwd.cu), given D = rowsum(dO * O) in Drow [B,heads,Nq]:
 * 1 when it ran (or recorded a failure), 0 when it does not take this case
 * and launched nothing. */
int cu_attention_backward_tc(cu_impl *cu, float *dq, float *dk, float *dv, const float *dout,
                             const float *q, const float *k, const float *v, const float *lse,
                             const float *Drow, int B, int Nq, int Nk, int heads, int D,
                             float scale, int causal);
/* Whether the precision's 16-bit type is wdtype: a stored 16-bit weight
 * then feeds the 16-bit products as it is (cuda_weights16.cu). */
int cu_precision_matches(const cu_impl *cu, cnet_dtype wdtype);
/* src[n] of dtype widened to float32 in CU_SLOT_W32; NULL on a recorded
 * failure (cuda_weights16.cu). */
const float *cu_widen16(cu_impl *cu, const uint16_t *src, cnet_dtype dtype, long n);

#endif
