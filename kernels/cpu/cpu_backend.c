/* The CPU backend: host memory (64-byte aligned), OpenBLAS sgemm (bf16
 * products of its own at --mixed_precision bf16) and OpenMP loops. This file holds the memory
 * entries and wires the ops declared in cpu_ops.h into the table of engine/core/backend.h. */
#include <stdlib.h>
#include <string.h>

#include "engine/core/backend.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/scratch.h"

static void *cpu_alloc(cnet_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) return NULL;
    return p;
}

static void cpu_free(cnet_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static void cpu_memcpy(cnet_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
}

static void cpu_zero(cnet_backend *be, void *dst, size_t bytes) {
    (void)be;
    if (bytes) memset(dst, 0, bytes);
}

static void cpu_synchronize(cnet_backend *be) { (void)be; }

static void cpu_destroy(cnet_backend *be) { cpu_scratch_free(be); }

/* bf16 on AVX512-BF16 (gemm_bf16.c); no fp16 products on the CPU. */
static int cpu_computes_at(cnet_backend *be, cnet_precision p) {
    (void)be;
    return p == CNET_PREC_BF16 && cpu_bf16_supported();
}

int cnet_backend_cpu_init(cnet_backend *be, cnet_error *err) {
    memset(be, 0, sizeof *be);
    be->name = "cpu";
    be->destroy = cpu_destroy;
    be->computes_at = cpu_computes_at;
    be->reads_host = 1;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->status = cpu_scratch_status;
    be->recover = cpu_scratch_recover;
    be->upload = cpu_memcpy;
    be->download = cpu_memcpy;
    be->copy = cpu_memcpy;
    be->zero = cpu_zero;
    be->synchronize = cpu_synchronize;
    be->gemm = cpu_gemm;
    be->gemm_batched = cpu_gemm_batched;
    be->linear_forward = cpu_linear_forward;
    be->linear_backward = cpu_linear_backward;
    be->conv2d_forward = cpu_conv2d_forward;
    be->conv2d_backward = cpu_conv2d_backward;
    be->linear_forward_w16 = cpu_linear_forward_w16;
    be->linear_backward_data_w16 = cpu_linear_backward_data_w16;
    be->conv2d_forward_w16 = cpu_conv2d_forward_w16;
    be->conv2d_backward_data_w16 = cpu_conv2d_backward_data_w16;
    be->group_norm_forward = cpu_group_norm_forward;
    be->group_norm_backward = cpu_group_norm_backward;
    be->layer_norm_forward = cpu_layer_norm_forward;
    be->layer_norm_backward = cpu_layer_norm_backward;
    be->silu_forward = cpu_silu_forward;
    be->silu_backward = cpu_silu_backward;
    be->gelu_forward = cpu_gelu_forward;
    be->gelu_backward = cpu_gelu_backward;
    be->geglu_forward = cpu_geglu_forward;
    be->geglu_backward = cpu_geglu_backward;
    be->quick_gelu_forward = cpu_quick_gelu_forward;
    be->attention_forward = cpu_attention_forward;
    be->attention_backward = cpu_attention_backward;
    be->add = cpu_add;
    be->axpby = cpu_axpby;
    be->scale = cpu_scale;
    be->axpy = cpu_axpy;
    be->add_broadcast = cpu_add_broadcast;
    be->add_broadcast_backward = cpu_add_broadcast_backward;
    be->concat_channels = cpu_concat_channels;
    be->split_channels = cpu_split_channels;
    be->upsample2x_forward = cpu_upsample2x_forward;
    be->upsample2x_backward = cpu_upsample2x_backward;
    be->embedding_forward = cpu_embedding_forward;
    be->timestep_embedding = cpu_timestep_embedding;
    be->mse_forward = cpu_mse_forward;
    be->mse_backward = cpu_mse_backward;
    be->sum_squares = cpu_sum_squares;
    be->adamw_step = cpu_adamw_step;
    be->adamw8bit_step = cpu_adamw8bit_step;
    be->philox_normal = cpu_philox_normal;
    return cpu_scratch_init(be, err);
}
