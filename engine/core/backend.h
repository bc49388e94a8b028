/* The backend table: every primitive op the models need, as function
 * pointers, implemented once per device (kernels/cpu, kernels/cuda).
 *
 * Model, pipeline and scheduler code calls only these; it never touches
 * tensor values on the host in the middle of a step. All buffers are device
 * pointers of the backend that owns them (host memory for the CPU backend),
 * float32, contiguous, activations NHWC (channels last).
 *
 * Conventions (llm.c style):
 * - outputs first, then inputs, then sizes;
 * - a gradient output passed as NULL means "not needed";
 * - parameter gradients (dweight, dbias, dgamma, dbeta) ACCUMULATE (+=);
 *   activation gradients (dinp, dq, ...) OVERWRITE (=). Where two paths meet,
 *   the model adds them explicitly (add/axpy);
 * - ops never fail at run time: shapes are the caller's contract. Only
 *   alloc can fail (returns NULL). A backend may keep internal scratch that
 *   grows to its high-water mark on first use and is then reused, so a step
 *   that repeats allocates nothing; when that growth or a device op fails,
 *   the failure is recorded for the status entry below, not returned.
 *
 * Size legend: B batch, H/W height/width, C channels, G groups, M rows,
 * K reduction size, N columns/tokens, D head dim, n element count.
 * Weights: linear [out, in] as in PyTorch; conv [C_out, kh, kw, C_in] (OHWI,
 * reordered from PyTorch's OIHW once at load time). */
#ifndef CNET_BACKEND_H
#define CNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

typedef struct cnet_backend cnet_backend;

/* Compute precision of the heavy ops (gemm, gemm_batched, linear, conv2d),
 * diffusers' --mixed_precision: no | fp16 | bf16. Activations, master
 * weights, gradients and optimizer state stay float32 (the table's float *
 * buffers); only the inputs of those products are rounded to 16 bits, with
 * float32 accumulation, as torch.autocast computes them. The weights of a
 * frozen model may be stored in 16 bits (the *_w16 ops below). The CPU
 * backend computes bf16 where the CPU has AVX512-BF16 (computes_at below)
 * and float32 otherwise; it has no fp16 products. */
typedef enum cnet_precision {
    CNET_PREC_F32 = 0, /* "no" */
    CNET_PREC_F16,     /* "fp16": IEEE half, 10-bit mantissa, max 65504 */
    CNET_PREC_BF16,    /* "bf16": bfloat16, 7-bit mantissa, float32's range */
    CNET_PREC_COUNT
} cnet_precision;

/* Geometry of a 2-D convolution. Padding may be asymmetric (the VAE's
 * downsampler pads only right and bottom). Output size:
 * H_out = (H + pad_top + pad_bottom - kh) / stride + 1 (same for W). */
typedef struct cnet_conv2d {
    int B, H, W, C_in;
    int C_out, kh, kw, stride;
    int pad_top, pad_bottom, pad_left, pad_right;
} cnet_conv2d;

static inline int cnet_conv2d_out_h(const cnet_conv2d *s) {
    return (s->H + s->pad_top + s->pad_bottom - s->kh) / s->stride + 1;
}
static inline int cnet_conv2d_out_w(const cnet_conv2d *s) {
    return (s->W + s->pad_left + s->pad_right - s->kw) / s->stride + 1;
}

/* Elements per quantisation block of the 8-bit AdamW state (bitsandbytes'
 * block size for its 8-bit two-state optimisers; see engine/core/adam8.h). */
#define CNET_ADAM8_BLOCK 256

/* The 8-bit AdamW state of one tensor of n elements, as device pointers
 * (the struct itself is host memory): codes into the two dynamic maps and
 * one float32 absmax per block of CNET_ADAM8_BLOCK. Element i decodes as
 * qmap_m[m[i]] * absmax_m[i / CNET_ADAM8_BLOCK] (likewise v). All zero is
 * the zero state. */
typedef struct cnet_adam8_state {
    uint8_t *m, *v;               /* [n] codes */
    float *absmax_m, *absmax_v;   /* [ceil(n / CNET_ADAM8_BLOCK)] */
    const float *qmap_m, *qmap_v; /* [256] signed / unsigned dynamic map */
} cnet_adam8_state;

struct cnet_backend {
    const char *name;                  /* "cpu", "cuda" */
    void *impl;                        /* backend-private state (handles, streams, scratch) */
    void (*destroy)(cnet_backend *be); /* frees impl; called by cnet_backend_free */
    /* Read by the heavy ops at each call, so a caller may change it between
     * ops (a training job and the requests served between its steps); set
     * it with cnet_backend_set_precision. */
    cnet_precision precision;
    /* Whether the heavy ops can compute at precision p (not "no", which every
     * backend computes); NULL on a backend that computes every precision
     * (CUDA) or only float32 (a zero-initialised table). */
    int (*computes_at)(cnet_backend *be, cnet_precision p);

    /* ---- memory ---- */
    /* 1 when the backend's buffers are host memory its ops may also read
     * from anywhere else in the process (the CPU): params_load then hands
     * float32 weights to the ops in place, from the read-only mapping of
     * their safetensors file, instead of copying them (engine/core/params.h).
     * Its alloc returns private anonymous memory (so a parameter block's
     * slice that a mapped weight replaces can be given back to the kernel).
     * 0 (a device, or a zero-initialised table): every weight is uploaded. */
    int reads_host;
    void *(*alloc)(cnet_backend *be, size_t bytes); /* 64-byte aligned; NULL on failure */
    void (*free)(cnet_backend *be, void *ptr);
    void (*upload)(cnet_backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(cnet_backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(cnet_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(cnet_backend *be, void *dst, size_t bytes);
    void (*synchronize)(cnet_backend *be);

    /* ---- device failures (NULL: a backend whose ops never fail) ----
     * status: 0 while no op has failed, else CNET_EBACKEND naming the first
     * failure (ops never fail at run time on the caller: a device records
     * its first failure and skips every op after it; the CPU records host
     * memory running out for its scratch and skips the ops that need it).
     * recover: clears a recorded failure that left the device usable (an
     * allocation that did not fit, an unsupported case) and releases the
     * backend's scratch, so the next request starts clean; buffers the
     * failed ops would have written hold garbage, nothing else changed.
     * CNET_EBACKEND when the device is lost for this process (a fault that
     * poisons the CUDA context): only a new process can use it again. */
    int (*status)(cnet_backend *be, cnet_error *err);
    int (*recover)(cnet_backend *be, cnet_error *err);

    /* ---- matrix products (row-major) ---- */
    /* C[M,N] = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T.
     * A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b). */
    void (*gemm)(cnet_backend *be, float *C, const float *A, const float *B, int M, int N, int K,
                 int trans_a, int trans_b, float alpha, float beta);
    /* The same for `batch` independent products; stride_* in elements between
     * consecutive matrices. */
    void (*gemm_batched)(cnet_backend *be, float *C, const float *A, const float *B, int batch,
                         int M, int N, int K, int trans_a, int trans_b, float alpha, float beta,
                         long stride_a, long stride_b, long stride_c);
    /* out[M,N] = inp[M,K] @ weight[N,K]^T + bias[N] (bias may be NULL). */
    void (*linear_forward)(cnet_backend *be, float *out, const float *inp, const float *weight,
                           const float *bias, int M, int K, int N);
    /* dinp[M,K] = dout @ weight;  dweight[N,K] += dout^T @ inp;  dbias[N] += sum_M dout. */
    void (*linear_backward)(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight, int M, int K,
                            int N);

    /* ---- convolution, NHWC ---- */
    /* out[B,Ho,Wo,C_out] = conv(inp[B,H,W,C_in], weight[C_out,kh,kw,C_in]) + bias[C_out]. */
    void (*conv2d_forward)(cnet_backend *be, float *out, const float *inp, const float *weight,
                           const float *bias, const cnet_conv2d *shape);
    /* dinp = backward-data (=), dweight/dbias += backward-weight/bias. */
    void (*conv2d_backward)(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp, const float *weight,
                            const cnet_conv2d *shape);

    /* ---- products with a 16-bit stored weight ----
     * A frozen model may keep the weights of its products in bf16 or f16
     * (wdtype CNET_BF16 / CNET_F16; params_store16), as diffusers casts the
     * frozen UNet, VAE and text encoder to weight_dtype. Each op computes
     * what its float32 twin above computes on the widened weight, at the
     * backend's precision; a backend whose 16-bit math matches wdtype (CUDA
     * under --mixed_precision of the same type) feeds the stored weight to
     * its 16-bit products without widening it. Frozen weights only: there
     * is no weight gradient, and the backward ops give dinp (=) alone. */
    void (*linear_forward_w16)(cnet_backend *be, float *out, const float *inp,
                               const uint16_t *weight, cnet_dtype wdtype, const float *bias, int M,
                               int K, int N);
    void (*linear_backward_data_w16)(cnet_backend *be, float *dinp, const float *dout,
                                     const uint16_t *weight, cnet_dtype wdtype, int M, int K,
                                     int N);
    void (*conv2d_forward_w16)(cnet_backend *be, float *out, const float *inp,
                               const uint16_t *weight, cnet_dtype wdtype, const float *bias,
                               const cnet_conv2d *shape);
    void (*conv2d_backward_data_w16)(cnet_backend *be, float *dinp, const float *dout,
                                     const uint16_t *weight, cnet_dtype wdtype,
                                     const cnet_conv2d *shape);

    /* ---- normalisation ---- */
    /* Group norm over [B, HW, C] with G groups of C/G channels; optionally
     * followed by SiLU. mean/rstd [B,G] are saved for backward (may be NULL
     * when no backward will run). */
    void (*group_norm_forward)(cnet_backend *be, float *out, float *mean, float *rstd,
                               const float *inp, const float *gamma, const float *beta, int B,
                               int HW, int C, int G, float eps, int fuse_silu);
    void (*group_norm_backward)(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                                const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, const float *beta, int B,
                                int HW, int C, int G, int fuse_silu);
    /* Layer norm over the last dim of [M, C]; mean/rstd [M] may be NULL. */
    void (*layer_norm_forward)(cnet_backend *be, float *out, float *mean, float *rstd,
                               const float *inp, const float *gamma, const float *beta, int M,
                               int C, float eps);
    void (*layer_norm_backward)(cnet_backend *be, float *dinp, float *dgamma, float *dbeta,
                                const float *dout, const float *inp, const float *mean,
                                const float *rstd, const float *gamma, int M, int C);

    /* ---- activations (elementwise over n) ---- */
    void (*silu_forward)(cnet_backend *be, float *out, const float *inp, long n);
    void (*silu_backward)(cnet_backend *be, float *dinp, const float *dout, const float *inp,
                          long n);
    /* Exact GELU: x * 0.5 * (1 + erf(x / sqrt 2)). */
    void (*gelu_forward)(cnet_backend *be, float *out, const float *inp, long n);
    void (*gelu_backward)(cnet_backend *be, float *dinp, const float *dout, const float *inp,
                          long n);
    /* diffusers GEGLU: inp[M, 2F] = [h | gate]; out[M,F] = h * gelu(gate). */
    void (*geglu_forward)(cnet_backend *be, float *out, const float *inp, int M, int F);
    void (*geglu_backward)(cnet_backend *be, float *dinp, const float *dout, const float *inp,
                           int M, int F);
    /* CLIP's quick_gelu: x * sigmoid(1.702 x). Forward only (frozen model). */
    void (*quick_gelu_forward)(cnet_backend *be, float *out, const float *inp, long n);

    /* ---- attention ---- */
    /* out[B,Nq,heads*D] = softmax(scale * Q K^T [+ causal mask]) V per head,
     * with q [B,Nq,heads*D], k and v [B,Nk,heads*D]. Never materialises the
     * whole Nq x Nk score matrix. lse [B,heads,Nq] (log-sum-exp of the scaled
     * scores) is saved for backward; may be NULL. causal: key j masked for
     * query i when j > i (requires Nq == Nk). */
    void (*attention_forward)(cnet_backend *be, float *out, float *lse, const float *q,
                              const float *k, const float *v, int B, int Nq, int Nk, int heads,
                              int D, float scale, int causal);
    /* dq, dk, dv overwrite (any may be NULL). out and lse from the forward. */
    void (*attention_backward)(cnet_backend *be, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *out,
                               const float *lse, int B, int Nq, int Nk, int heads, int D,
                               float scale, int causal);

    /* ---- elementwise arithmetic ---- */
    void (*add)(cnet_backend *be, float *out, const float *a, const float *b, long n);
    /* out = alpha * a + beta * b (out may alias a or b). */
    void (*axpby)(cnet_backend *be, float *out, float alpha, const float *a, float beta,
                  const float *b, long n);
    void (*scale)(cnet_backend *be, float *out, const float *inp, float alpha, long n);
    /* y += alpha * x */
    void (*axpy)(cnet_backend *be, float *y, float alpha, const float *x, long n);
    /* out[B,HW,C] = inp[B,HW,C] + vec[B,C] broadcast over HW (the time
     * embedding added inside a resnet). out may alias inp. */
    void (*add_broadcast)(cnet_backend *be, float *out, const float *inp, const float *vec, int B,
                          int HW, int C);
    /* dvec[B,C] = sum over HW of dout (overwrite). */
    void (*add_broadcast_backward)(cnet_backend *be, float *dvec, const float *dout, int B, int HW,
                                   int C);
    /* Channel concat of NHWC rows: out[M, C1+C2] = [a[M,C1] | b[M,C2]]. */
    void (*concat_channels)(cnet_backend *be, float *out, const float *a, const float *b, int M,
                            int C1, int C2);
    /* Inverse (and backward of concat): a[M,C1], b[M,C2] from inp[M,C1+C2];
     * a or b may be NULL. */
    void (*split_channels)(cnet_backend *be, float *a, float *b, const float *inp, int M, int C1,
                           int C2);
    /* Nearest-neighbour 2x upsample: out[B,2H,2W,C] from inp[B,H,W,C]. */
    void (*upsample2x_forward)(cnet_backend *be, float *out, const float *inp, int B, int H, int W,
                               int C);
    /* dinp[B,H,W,C] = sum of the 4 dout pixels each input fed (overwrite). */
    void (*upsample2x_backward)(cnet_backend *be, float *dinp, const float *dout, int B, int H,
                                int W, int C);

    /* ---- embeddings ---- */
    /* out[M,D] = table[ids[M], :]; ids are device int64. */
    void (*embedding_forward)(cnet_backend *be, float *out, const int64_t *ids, const float *table,
                              int M, int D);
    /* diffusers get_timestep_embedding, computed in float32 as diffusers does:
     * half = dim/2, freq_k = exp(-ln(max_period) * k / (half - freq_shift)),
     * emb = [sin(t*freq), cos(t*freq)] ([cos, sin] when flip_sin_to_cos),
     * zero-padded when dim is odd. timesteps [B] float, out [B,dim]. */
    void (*timestep_embedding)(cnet_backend *be, float *out, const float *timesteps, int B, int dim,
                               int flip_sin_to_cos, float freq_shift, float max_period);

    /* ---- loss, norms, optimiser ---- */
    /* loss[1] = (1/B) sum_b w[b] * mean_i (pred[b,i] - target[b,i])^2 over
     * pred/target [B,n]; weights [B] may be NULL (all ones). */
    void (*mse_forward)(cnet_backend *be, float *loss, const float *pred, const float *target,
                        const float *weights, int B, long n);
    /* dpred = dloss_scale * d(loss)/d(pred) (overwrite). */
    void (*mse_backward)(cnet_backend *be, float *dpred, const float *pred, const float *target,
                         const float *weights, int B, long n, float dloss_scale);
    /* out[1] = sum of inp[i]^2 (overwrite), accumulated in double on CPU. */
    void (*sum_squares)(cnet_backend *be, float *out, const float *inp, long n);
    /* torch.optim.AdamW step on n parameters, with optional gradient clipping
     * fused in: when grad_sumsq (device, [1]) is non-NULL, grads are first
     * multiplied by min(1, max_grad_norm / (sqrt(*grad_sumsq) + 1e-6)) as
     * torch.nn.utils.clip_grad_norm_ does. step counts from 1. Grads are not
     * modified. */
    void (*adamw_step)(cnet_backend *be, float *params, float *m, float *v, const float *grads,
                       long n, float lr, float beta1, float beta2, float eps, float weight_decay,
                       int step, const float *grad_sumsq, float max_grad_norm);
    /* The same AdamW step with bitsandbytes' block-wise 8-bit moments:
     * per block, decode m and v with the old absmax, apply adamw_step's
     * float32 update (same clipping, same op order), then re-encode m and v
     * with the block's new absmax (engine/core/adam8.h). One tensor per call:
     * blocks start at element 0. */
    void (*adamw8bit_step)(cnet_backend *be, float *params, const cnet_adam8_state *state,
                           const float *grads, long n, float lr, float beta1, float beta2,
                           float eps, float weight_decay, int step, const float *grad_sumsq,
                           float max_grad_norm);

    /* ---- random numbers ---- */
    /* n standard normals from Philox4x32-10 (see engine/core/philox.h for the exact
     * stream): element i comes from counter block offset + i/4, so the same
     * (seed, offset) gives the same numbers on every backend. */
    void (*philox_normal)(cnet_backend *be, float *out, long n, uint64_t seed, uint64_t offset);
};

/* Creates the CPU backend (OpenBLAS + OpenMP). Free with cnet_backend_free. */
int cnet_backend_cpu_init(cnet_backend *be, cnet_error *err);
void cnet_backend_free(cnet_backend *be);

/* Opens the backend a `--device` string names: "cpu", "cuda" (device 0) or
 * "cuda:N" (kernels/backend_open.c). When CUDA is asked for but no GPU is
 * visible, or this binary was built without CUDA, it opens the CPU backend
 * instead and says why in note (note[0] is '\0' when nothing fell back).
 * Errors: CNET_EINVAL for a malformed string or an ordinal beyond the
 * visible GPUs; CNET_EBACKEND when a visible GPU fails to initialise. */
int cnet_backend_open(cnet_backend *be, const char *device, char *note, size_t note_cap,
                      cnet_error *err);
/* Visible CUDA devices: 0 in a build without CUDA, and when the runtime
 * finds no driver or no GPU. */
int cnet_backend_cuda_count(void);
/* High-water mark of device memory in use while this backend ran, in bytes:
 * for CUDA the GPU's used memory (cudaMemGetInfo, so the CUDA context and
 * other processes on the GPU count too) sampled after every allocation and
 * synchronize; 0 for the CPU backend, whose memory is the process's RSS. */
size_t cnet_backend_peak_device_bytes(cnet_backend *be);
/* 0 while the backend has seen no device failure; otherwise the failure
 * (the CUDA backend records its first failing call; the CPU one a scratch
 * allocation that ran out of host memory). */
int cnet_backend_status(cnet_backend *be, cnet_error *err);
/* be->recover where the backend has one (see the table): 0 when no failure
 * is left, CNET_EBACKEND when the device is lost to this process. */
int cnet_backend_recover(cnet_backend *be, cnet_error *err);

/* The storage type of a precision's 16-bit products: CNET_BF16, CNET_F16,
 * or CNET_F32 for "no" (and out of range). */
cnet_dtype cnet_precision_dtype(cnet_precision p);
/* "no", "fp16", "bf16" (diffusers' names); "?" out of range. */
const char *cnet_precision_name(cnet_precision p);
/* name -> *out; CNET_EINVAL naming the accepted values otherwise. */
int cnet_precision_parse(const char *name, cnet_precision *out, cnet_error *err);
/* Sets the compute precision of be and returns the previous one (for a
 * caller that restores it). A backend without that 16-bit math (the CPU
 * for fp16, and for bf16 without AVX512-BF16) keeps float32 and says so in
 * note (note[0] is '\0' when the request is honoured as asked); not an
 * error, so one command line runs on every machine. */
cnet_precision cnet_backend_set_precision(cnet_backend *be, cnet_precision p, char *note,
                                          size_t note_cap);
/* --allow_tf32: TF32 tensor-core math for float32 matmuls and convolutions
 * (torch.backends.cuda.matmul.allow_tf32) on a CUDA backend; the CPU keeps
 * float32 and says so in note (kernels/backend_open.c). */
void cnet_backend_set_tf32(cnet_backend *be, int on, char *note, size_t note_cap);

#endif
