/* The training step's tail on the CUDA backend: weighted MSE loss and its
 * gradient, the sum of squares behind the global grad norm, and AdamW with
 * the clip factor fused in. Reference: kernels/cpu/optim.c (torch 1.13's
 * F.mse_loss, clip_grad_norm_ and _single_tensor_adamw, in the same float32
 * op order; the scalars are computed on the host exactly as there).
 *
 * Reductions are deterministic two-pass sums in double: each block sums a
 * fixed chunk of CU_REDUCE_CHUNK elements with a fixed tree, then one
 * thread adds the chunk sums in order. The result depends on the shape
 * only, never on the GPU or the launch.
 *
 * 8-bit AdamW (bitsandbytes' block-wise state, engine/core/adam8.h): one thread
 * block per quantisation block of CNET_ADAM8_BLOCK elements, one thread per
 * element, as bnb's kOptimizerStatic8bit2StateBlockwise with 256 threads;
 * the block's new absmax is a shared-memory max (exact in any order) and
 * the codes come from adam8_code, the same function the CPU backend runs.
 *
 * Sizes: B samples of n elements (loss); n parameters (optimiser). */
#include <math.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"
#include "engine/core/adam8.h"

/* Threads of a reduction block (a power of two). */
#define RED_THREADS 256

// part[b, chunk] = sum over the chunk of (a - t)^2 (t NULL: a^2), a/t [B, n]
__global__ void sumsq_partial_kernel(double *part, const float *a, const float *t, long n,
                                     int nchunk) {
    __shared__ double acc[RED_THREADS];
    const long b = blockIdx.y, c0 = (long)blockIdx.x * CU_REDUCE_CHUNK;
    const long c1 = c0 + CU_REDUCE_CHUNK < n ? c0 + CU_REDUCE_CHUNK : n;
    double s = 0;
    for (long i = c0 + threadIdx.x; i < c1; i += RED_THREADS) {
        const double d = t ? (double)a[b * n + i] - t[b * n + i] : (double)a[b * n + i];
        s += d * d;
    }
    acc[threadIdx.x] = s;
    __syncthreads();
    for (int w = RED_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) acc[threadIdx.x] += acc[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[b * nchunk + blockIdx.x] = acc[0];
}

// loss[0] = (1/B) sum_b w_b (sum of part[b, :]) / n; weights may be NULL
__global__ void mse_finish_kernel(float *loss, const double *part, const float *weights, int B,
                                  long n, int nchunk) {
    double total = 0;
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int c = 0; c < nchunk; c++) s += part[(long)b * nchunk + c];
        total += (weights ? (double)weights[b] : 1.0) * (s / (double)n);
    }
    loss[0] = (float)(total / B);
}

__global__ void sumsq_finish_kernel(float *out, const double *part, int nchunk) {
    double s = 0;
    for (int c = 0; c < nchunk; c++) s += part[c];
    out[0] = (float)s;
}

// dpred[b,i] = k_b (pred - target), k_b = 2 scale w_b / (B n) rounded to float
__global__ void mse_backward_kernel(float *dpred, const float *pred, const float *target,
                                    const float *weights, int B, long n, float dloss_scale) {
    CU_FOR(i, (long)B * n) {
        const long b = i / n;
        const float k = (float)(2.0 * dloss_scale * (weights ? (double)weights[b] : 1.0) /
                                ((double)B * (double)n));
        dpred[i] = k * (pred[i] - target[i]);
    }
}

/* Sums of squares per sample into the reduction slot; NULL on failure. */
static double *sumsq_partials(cu_impl *cu, const float *a, const float *t, int B, long n,
                              int *nchunk) {
    *nchunk = (int)((n + CU_REDUCE_CHUNK - 1) / CU_REDUCE_CHUNK);
    if (*nchunk < 1) *nchunk = 1;
    double *part = (double *)cu_scratch(cu, CU_SLOT_RED, (size_t)B * *nchunk * sizeof(double));
    if (!part) return NULL;
    sumsq_partial_kernel<<<dim3(*nchunk, B), RED_THREADS, 0, cu->stream>>>(part, a, t, n, *nchunk);
    CU_LAUNCHED(cu, "sumsq_partial_kernel");
    return part;
}

void cuda_mse_forward(cnet_backend *be, float *loss, const float *pred, const float *target,
                      const float *weights, int B, long n) {
    // loss [1], pred/target [B,n], weights [B]
    cu_impl *cu = cu_enter(be);
    if (!cu || B <= 0) return;
    int nchunk;
    double *part = sumsq_partials(cu, pred, target, B, n, &nchunk);
    if (!part) return;
    mse_finish_kernel<<<1, 1, 0, cu->stream>>>(loss, part, weights, B, n, nchunk);
    CU_LAUNCHED(cu, "mse_finish_kernel");
}

void cuda_mse_backward(cnet_backend *be, float *dpred, const float *pred, const float *target,
                       const float *weights, int B, long n, float dloss_scale) {
    cu_impl *cu = cu_enter(be);
    if (cu && B > 0 && n > 0)
        CU_LAUNCH(cu, mse_backward_kernel, (long)B * n, dpred, pred, target, weights, B, n,
                  dloss_scale);
}

void cuda_sum_squares(cnet_backend *be, float *out, const float *inp, long n) {
    cu_impl *cu = cu_enter(be);
    if (!cu) return;
    int nchunk;
    double *part = sumsq_partials(cu, inp, NULL, 1, n, &nchunk);
    if (!part) return;
    sumsq_finish_kernel<<<1, 1, 0, cu->stream>>>(out, part, nchunk);
    CU_LAUNCHED(cu, "sumsq_finish_kernel");
}

/* The host-side scalars of one AdamW step, rounded to float32 as the CPU
 * backend rounds them. */
typedef struct adamw_scalars {
    float decay, b1, one_m_b1, b2, one_m_b2, neg_step_size, bc2_sqrt, eps, max_grad_norm;
} adamw_scalars;

// params/m/v [n] updated in place from grads [n]; grad_sumsq [1] (device) or NULL
__global__ void adamw_kernel(float *params, float *m, float *v, const float *grads, long n,
                             adamw_scalars s, const float *grad_sumsq) {
    float clip = 1.0f;
    if (grad_sumsq) {
        const float total = sqrtf(grad_sumsq[0]);
        const float coef = __fdiv_rn(s.max_grad_norm, total + 1e-6f);
        clip = coef < 1.0f ? coef : 1.0f;
    }
    CU_FOR(i, n) {
        const float g = grad_sumsq ? __fmul_rn(grads[i], clip) : grads[i];
        const float p = __fmul_rn(params[i], s.decay);
        const float mi = __fadd_rn(__fmul_rn(m[i], s.b1), __fmul_rn(s.one_m_b1, g));
        const float vi = __fadd_rn(__fmul_rn(v[i], s.b2), __fmul_rn(__fmul_rn(s.one_m_b2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(sqrtf(vi), s.bc2_sqrt), s.eps);
        m[i] = mi;
        v[i] = vi;
        params[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
    }
}

static adamw_scalars adamw_scalars_of(float lr, float beta1, float beta2, float eps,
                                      float weight_decay, int step, float max_grad_norm) {
    const double bc1 = 1.0 - pow(beta1, step), bc2 = 1.0 - pow(beta2, step);
    adamw_scalars s;
    s.decay = (float)(1.0 - (double)lr * weight_decay);
    s.b1 = beta1, s.one_m_b1 = (float)(1.0 - beta1);
    s.b2 = beta2, s.one_m_b2 = (float)(1.0 - beta2);
    s.neg_step_size = (float)(-(double)lr / bc1);
    s.bc2_sqrt = (float)sqrt(bc2);
    s.eps = eps, s.max_grad_norm = max_grad_norm;
    return s;
}

void cuda_adamw_step(cnet_backend *be, float *params, float *m, float *v, const float *grads,
                     long n, float lr, float beta1, float beta2, float eps, float weight_decay,
                     int step, const float *grad_sumsq, float max_grad_norm) {
    cu_impl *cu = cu_enter(be);
    if (!cu || n <= 0) return;
    const adamw_scalars s =
        adamw_scalars_of(lr, beta1, beta2, eps, weight_decay, step, max_grad_norm);
    CU_LAUNCH(cu, adamw_kernel, n, params, m, v, grads, n, s, grad_sumsq);
}

static_assert(CNET_ADAM8_BLOCK == ADAM8_MAP_SIZE,
              "adamw8bit_kernel loads the maps with one thread per entry");

// params [n] and the 8-bit state of s updated in place from grads [n]; one
// thread block per quantisation block, thread j owns element blockIdx.x * 256 + j
__global__ void adamw8bit_kernel(float *params, cnet_adam8_state st, const float *grads, long n,
                                 adamw_scalars s, const float *grad_sumsq) {
    __shared__ float qm[ADAM8_MAP_SIZE], qv[ADAM8_MAP_SIZE];
    __shared__ float max_m[CNET_ADAM8_BLOCK], max_v[CNET_ADAM8_BLOCK];
    const long b = blockIdx.x;
    const int j = threadIdx.x;
    const long i = b * CNET_ADAM8_BLOCK + j;
    qm[j] = st.qmap_m[j];
    qv[j] = st.qmap_v[j];
    __syncthreads();
    float clip = 1.0f;
    if (grad_sumsq) {
        const float total = sqrtf(grad_sumsq[0]);
        const float coef = __fdiv_rn(s.max_grad_norm, total + 1e-6f);
        clip = coef < 1.0f ? coef : 1.0f;
    }
    float mi = 0.0f, vi = 0.0f;
    if (i < n) {
        const float g = grad_sumsq ? __fmul_rn(grads[i], clip) : grads[i];
        const float p = __fmul_rn(params[i], s.decay);
        const float m0 = __fmul_rn(qm[st.m[i]], st.absmax_m[b]);
        const float v0 = __fmul_rn(qv[st.v[i]], st.absmax_v[b]);
        mi = __fadd_rn(__fmul_rn(m0, s.b1), __fmul_rn(s.one_m_b1, g));
        vi = __fadd_rn(__fmul_rn(v0, s.b2), __fmul_rn(__fmul_rn(s.one_m_b2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(sqrtf(vi), s.bc2_sqrt), s.eps);
        params[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
    }
    max_m[j] = fabsf(mi);
    max_v[j] = fabsf(vi);
    __syncthreads();
    for (int w = CNET_ADAM8_BLOCK / 2; w > 0; w >>= 1) {
        if (j < w) {
            max_m[j] = fmaxf(max_m[j], max_m[j + w]);
            max_v[j] = fmaxf(max_v[j], max_v[j + w]);
        }
        __syncthreads();
    }
    const float amax_m = max_m[0], amax_v = max_v[0];
    if (i < n) {
        st.m[i] = adam8_code(qm, mi, amax_m, 1);
        st.v[i] = adam8_code(qv, vi, amax_v, 0);
    }
    if (j == 0) {
        st.absmax_m[b] = amax_m;
        st.absmax_v[b] = amax_v;
    }
}

void cuda_adamw8bit_step(cnet_backend *be, float *params, const cnet_adam8_state *state,
                         const float *grads, long n, float lr, float beta1, float beta2, float eps,
                         float weight_decay, int step, const float *grad_sumsq,
                         float max_grad_norm) {
    cu_impl *cu = cu_enter(be);
    if (!cu || n <= 0) return;
    const adamw_scalars s =
        adamw_scalars_of(lr, beta1, beta2, eps, weight_decay, step, max_grad_norm);
    adamw8bit_kernel<<<(unsigned)adam8_blocks(n), CNET_ADAM8_BLOCK, 0, cu->stream>>>(
        params, *state, grads, n, s, grad_sumsq);
    CU_LAUNCHED(cu, "adamw8bit_kernel");
}
