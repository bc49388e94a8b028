/* The CUDA backend's lifecycle and memory: device selection, the stream and
 * library handles, the sticky error record, scratch slots, and the table of
 * engine/core/backend.h wired to the ops of cuda_ops.h.
 *
 * All work is queued on the backend's one stream. upload copies from
 * pageable host memory (the call returns once the source may be reused);
 * download waits for the stream, since the caller reads the result at once.
 * Not here: pinned staging buffers, several streams per backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

int cu_fail(cu_impl *cu, const char *file, int line, const char *what, const char *detail) {
    if (!cu->failed) {
        cu->failed = 1;
        snprintf(cu->failure, sizeof cu->failure, "%s:%d: %s: %s", file, line, what, detail);
    }
    return -1;
}

int cu_check_cuda(cu_impl *cu, cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 0;
    /* the runtime keeps the error per host thread too: clear it here, so a
     * later check on this thread after a recover does not see it again (a
     * sticky one cannot be cleared and stays) */
    (void)cudaGetLastError();
    return cu_fail(cu, file, line, what, cudaGetErrorString(e));
}

int cu_check_cublas(cu_impl *cu, cublasStatus_t s, const char *what, const char *file, int line) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return cu_fail(cu, file, line, what, cublasGetStatusString(s));
}

int cu_check_cudnn(cu_impl *cu, cudnnStatus_t s, const char *what, const char *file, int line) {
    if (s == CUDNN_STATUS_SUCCESS) return 0;
    return cu_fail(cu, file, line, what, cudnnGetErrorString(s));
}

/* Samples the device's used memory (total - free) into the high-water mark.
 * Called where usage grows: after allocations and at synchronize (cuBLAS and
 * cuDNN may allocate inside a call). */
static void cu_note_usage(cu_impl *cu) {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    if (total_bytes - free_bytes > cu->peak_used) cu->peak_used = total_bytes - free_bytes;
}

void *cu_scratch(cu_impl *cu, int slot, size_t bytes) {
    if (cu->scratch_bytes[slot] >= bytes && cu->scratch[slot]) return cu->scratch[slot];
    /* cudaFree waits for the device, so queued kernels still reading the
     * old buffer finish first. */
    if (cu->scratch[slot]) CU_CHECK(cu, cudaFree(cu->scratch[slot]));
    cu->scratch[slot] = NULL;
    cu->scratch_bytes[slot] = 0;
    if (CU_CHECK(cu, cudaMalloc(&cu->scratch[slot], bytes ? bytes : 256))) return NULL;
    cu->scratch_bytes[slot] = bytes;
    cu_note_usage(cu);
    return cu->scratch[slot];
}

static void *cu_alloc(cnet_backend *be, size_t bytes) {
    void *p = NULL;
    /* cudaMalloc returns 256-byte aligned memory (>= the table's 64). An
     * out-of-memory failure is the caller's to handle (NULL), not sticky. */
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    cu_note_usage(cu_of(be));
    return p;
}

static void cu_free(cnet_backend *be, void *ptr) {
    if (ptr) CU_CHECK(cu_of(be), cudaFree(ptr));
}

static void cu_upload(cnet_backend *be, void *dst, const void *src, size_t bytes) {
    cu_impl *cu = cu_enter(be);
    if (!cu || !bytes) return;
    CU_CHECK(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream));
}

static void cu_download(cnet_backend *be, void *dst, const void *src, size_t bytes) {
    cu_impl *cu = cu_enter(be);
    if (!cu) {
        /* the result is meaningless; do not hand back stale host bytes */
        if (bytes) memset(dst, 0xff, bytes);
        return;
    }
    if (!bytes) return;
    if (CU_CHECK(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream)) ||
        CU_CHECK(cu, cudaStreamSynchronize(cu->stream)))
        memset(dst, 0xff, bytes);
}

static void cu_copy(cnet_backend *be, void *dst, const void *src, size_t bytes) {
    cu_impl *cu = cu_enter(be);
    if (!cu || !bytes || dst == src) return;
    CU_CHECK(cu, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu->stream));
}

static void cu_zero(cnet_backend *be, void *dst, size_t bytes) {
    cu_impl *cu = cu_enter(be);
    if (!cu || !bytes) return;
    CU_CHECK(cu, cudaMemsetAsync(dst, 0, bytes, cu->stream));
}

static void cu_synchronize(cnet_backend *be) {
    cu_impl *cu = cu_enter(be);
    if (!cu) return;
    CU_CHECK(cu, cudaStreamSynchronize(cu->stream));
    cu_note_usage(cu);
}

extern "C" size_t cnet_backend_cuda_peak_bytes(cnet_backend *be) {
    cu_impl *cu = cu_of(be);
    if (cudaSetDevice(cu->device) == cudaSuccess)
        cu_note_usage(cu);
    else
        (void)cudaGetLastError();
    return cu->peak_used;
}

static void cu_destroy(cnet_backend *be) {
    cu_impl *cu = cu_of(be);
    if (!cu) return;
    cudaSetDevice(cu->device);
    if (cu->stream) cudaStreamSynchronize(cu->stream);
    for (int i = 0; i < CU_SCRATCH_SLOTS; i++)
        if (cu->scratch[i]) cudaFree(cu->scratch[i]);
    if (cu->lt_workspace) cudaFree(cu->lt_workspace);
    if (cu->dnn) cudnnDestroy(cu->dnn);
    if (cu->lt) cublasLtDestroy(cu->lt);
    if (cu->blas) cublasDestroy(cu->blas);
    if (cu->stream) cudaStreamDestroy(cu->stream);
    free(cu);
    be->impl = NULL;
}

extern "C" int cnet_cuda_device_count(char *why, size_t why_cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (why) snprintf(why, why_cap, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0 && why) snprintf(why, why_cap, "cudaGetDeviceCount: no devices");
    return n;
}

static void wire_table(cnet_backend *be) {
    be->gemm = cuda_gemm;
    be->gemm_batched = cuda_gemm_batched;
    be->linear_forward = cuda_linear_forward;
    be->linear_backward = cuda_linear_backward;
    be->conv2d_forward = cuda_conv2d_forward;
    be->conv2d_backward = cuda_conv2d_backward;
    be->linear_forward_w16 = cuda_linear_forward_w16;
    be->linear_backward_data_w16 = cuda_linear_backward_data_w16;
    be->conv2d_forward_w16 = cuda_conv2d_forward_w16;
    be->conv2d_backward_data_w16 = cuda_conv2d_backward_data_w16;
    be->group_norm_forward = cuda_group_norm_forward;
    be->group_norm_backward = cuda_group_norm_backward;
    be->layer_norm_forward = cuda_layer_norm_forward;
    be->layer_norm_backward = cuda_layer_norm_backward;
    be->silu_forward = cuda_silu_forward;
    be->silu_backward = cuda_silu_backward;
    be->gelu_forward = cuda_gelu_forward;
    be->gelu_backward = cuda_gelu_backward;
    be->geglu_forward = cuda_geglu_forward;
    be->geglu_backward = cuda_geglu_backward;
    be->quick_gelu_forward = cuda_quick_gelu_forward;
    be->attention_forward = cuda_attention_forward;
    be->attention_backward = cuda_attention_backward;
    be->add = cuda_add;
    be->axpby = cuda_axpby;
    be->scale = cuda_scale;
    be->axpy = cuda_axpy;
    be->add_broadcast = cuda_add_broadcast;
    be->add_broadcast_backward = cuda_add_broadcast_backward;
    be->concat_channels = cuda_concat_channels;
    be->split_channels = cuda_split_channels;
    be->upsample2x_forward = cuda_upsample2x_forward;
    be->upsample2x_backward = cuda_upsample2x_backward;
    be->embedding_forward = cuda_embedding_forward;
    be->timestep_embedding = cuda_timestep_embedding;
    be->mse_forward = cuda_mse_forward;
    be->mse_backward = cuda_mse_backward;
    be->sum_squares = cuda_sum_squares;
    be->adamw_step = cuda_adamw_step;
    be->adamw8bit_step = cuda_adamw8bit_step;
    be->philox_normal = cuda_philox_normal;
}

extern "C" void cnet_backend_cuda_set_tf32(cnet_backend *be, int on) {
    cu_impl *cu = cu_enter(be);
    if (!cu) return;
    cu->tf32 = on ? 1 : 0;
    CUBLAS_CHECK(
        cu, cublasSetMathMode(cu->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

extern "C" int cnet_backend_cuda_status(cnet_backend *be, cnet_error *err) {
    cu_impl *cu = cu_of(be);
    if (!cu || !cu->failed) return 0;
    return cnet_fail(err, CNET_EBACKEND, "cuda:%d: %s", cu->device, cu->failure);
}

/* A recorded failure leaves the CUDA context usable unless it was a sticky
 * fault (illegal address, launch failure, ECC, ...): after one, every
 * runtime call returns it again. So the context is probed rather than the
 * error classified: the pending error cleared, the device synchronised and
 * a small allocation made. */
static int cu_recover(cnet_backend *be, cnet_error *err) {
    cu_impl *cu = cu_of(be);
    if (!cu || !cu->failed) return 0;
    (void)cudaGetLastError();
    void *probe = NULL;
    cudaError_t e = cudaSetDevice(cu->device);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cu->stream);
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMalloc(&probe, 256);
    if (e == cudaSuccess) e = cudaFree(probe);
    if (e != cudaSuccess)
        return cnet_fail(err, CNET_EBACKEND, "cuda:%d: %s; the device is lost to this process (%s)",
                         cu->device, cu->failure, cudaGetErrorString(e));
    /* the failed request may have grown the scratch past what fits */
    for (int i = 0; i < CU_SCRATCH_SLOTS; i++) {
        if (cu->scratch[i]) cudaFree(cu->scratch[i]);
        cu->scratch[i] = NULL, cu->scratch_bytes[i] = 0;
    }
    (void)cudaGetLastError();
    cu->failed = 0, cu->failure[0] = '\0';
    return 0;
}

static int cu_status(cnet_backend *be, cnet_error *err) {
    return cnet_backend_cuda_status(be, err);
}

extern "C" int cnet_backend_cuda_init(cnet_backend *be, int device, cnet_error *err) {
    memset(be, 0, sizeof *be);
    char why[256];
    int n = cnet_cuda_device_count(why, sizeof why);
    if (n == 0) return cnet_fail(err, CNET_EBACKEND, "cuda:%d: no CUDA device (%s)", device, why);
    if (device < 0 || device >= n)
        return cnet_fail(err, CNET_EINVAL, "cuda:%d: no such device (%d visible)", device, n);
    cu_impl *cu = (cu_impl *)calloc(1, sizeof *cu);
    if (!cu) return cnet_fail(err, CNET_ENOMEM, "cuda:%d: out of host memory", device);
    cu->device = device;
    be->impl = cu;
    be->name = "cuda";
    be->destroy = cu_destroy;
    int bad = CU_CHECK(cu, cudaSetDevice(device)) ||
              CU_CHECK(cu, cudaDeviceGetAttribute(&cu->sm_count, cudaDevAttrMultiProcessorCount,
                                                  device)) ||
              CU_CHECK(cu, cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking)) ||
              CUBLAS_CHECK(cu, cublasCreate(&cu->blas)) ||
              CUBLAS_CHECK(cu, cublasSetStream(cu->blas, cu->stream)) ||
              CUBLAS_CHECK(cu, cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH)) ||
              CUBLAS_CHECK(cu, cublasLtCreate(&cu->lt)) || CUDNN_CHECK(cu, cudnnCreate(&cu->dnn)) ||
              CUDNN_CHECK(cu, cudnnSetStream(cu->dnn, cu->stream)) ||
              CU_CHECK(cu, cudaMalloc(&cu->lt_workspace, CU_LT_WORKSPACE_BYTES));
    if (!bad)
        bad =
            CUBLAS_CHECK(cu, cublasSetWorkspace(cu->blas, cu->lt_workspace, CU_LT_WORKSPACE_BYTES));
    if (bad) {
        int rc = cnet_fail(err, CNET_EBACKEND, "cuda:%d: %s", device, cu->failure);
        cnet_backend_free(be);
        return rc;
    }
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->copy = cu_copy;
    be->zero = cu_zero;
    be->synchronize = cu_synchronize;
    be->status = cu_status;
    be->recover = cu_recover;
    wire_table(be);
    return 0;
}
