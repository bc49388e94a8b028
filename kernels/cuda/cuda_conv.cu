/* 2-D convolution of the CUDA backend through cuDNN: NHWC activations and
 * KRSC (= OHWI) filters, forward, backward-data (=) and backward-filter
 * (+=, beta = 1); the bias is our own row add and its gradient our own
 * deterministic column sum.
 *
 * Algorithms come from cuDNN's heuristics (the _v7 queries), once per shape,
 * direction and precision, and are cached (CU_CONV_CACHE_MAX entries): the
 * first ranked algorithm whose workspace fits CU_CONV_WORKSPACE_MAX, and for
 * the backward passes only deterministic ones, so repeated steps give the
 * same bits. Math is CUDNN_FMA_MATH (no TF32) unless TF32 was allowed; with
 * TF32 off only algorithms ranked with FMA math are taken (CUDNN_DEFAULT_MATH
 * may use TF32 on Ampere and later), and the descriptor runs with the math
 * type the chosen algorithm was ranked with, as cuDNN asks.
 *
 * --mixed_precision bf16 / fp16 (cu->prec): the operands are rounded to
 * 16 bits by our own kernels (round to nearest even) into scratch, cuDNN
 * runs its PSEUDO_BFLOAT16 / PSEUDO_HALF configuration (x, w, y 16-bit,
 * compute type float: float32 accumulation, tensor cores), and the 16-bit
 * result is widened back into the float32 output (with the bias added in
 * float32) or, for the filter gradient, added to the float32 dweight. That
 * is torch.autocast's conv: 16-bit inputs and outputs, float32 accumulate.
 * We do not use CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION on float32 tensors:
 * it lets cuDNN down-convert to half only (never bf16), and whether an
 * algorithm converts is the heuristics' choice, so the precision of a run
 * would not be known. A shape with no usable 16-bit algorithm runs in
 * float32 (more precise, never wrong).
 *
 * cuDNN pads symmetrically only. An asymmetric padding (the VAE's
 * downsampler pads right and bottom) is materialised: the input is copied
 * into a zero-bordered scratch image and convolved unpadded; the data
 * gradient of that image is cropped back. Not here: dilation, groups.
 * Reference: kernels/cpu/conv.c, torch.nn.functional.conv2d after F.pad.
 *
 * Sizes: B batch, H/W input, Ho/Wo output, Hp/Wp padded input. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"
#include "kernels/cuda/cuda_ops.h"

/* The descriptors of one convolution (symmetric padding). */
typedef struct conv_desc {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
} conv_desc;

static void conv_desc_free(conv_desc *d) {
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->y) cudnnDestroyTensorDescriptor(d->y);
    if (d->w) cudnnDestroyFilterDescriptor(d->w);
    if (d->conv) cudnnDestroyConvolutionDescriptor(d->conv);
    memset(d, 0, sizeof *d);
}

/* The data type of x, w and y at the current precision (the compute type
 * is always float). */
static cudnnDataType_t conv_data_type(const cu_impl *cu) {
    return cu->prec == CNET_PREC_BF16  ? CUDNN_DATA_BFLOAT16
           : cu->prec == CNET_PREC_F16 ? CUDNN_DATA_HALF
                                       : CUDNN_DATA_FLOAT;
}

/* The math type descriptors start with (conv_prepare then sets the chosen
 * algorithm's). */
static cudnnMathType_t conv_math_type(const cu_impl *cu) {
    return cu->prec != CNET_PREC_F32 || cu->tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
}

/* s has pad_top == pad_bottom and pad_left == pad_right. */
static int conv_desc_init(cu_impl *cu, conv_desc *d, const cnet_conv2d *s) {
    memset(d, 0, sizeof *d);
    const cudnnDataType_t dt = conv_data_type(cu);
    const int Ho = cnet_conv2d_out_h(s), Wo = cnet_conv2d_out_w(s);
    if (CUDNN_CHECK(cu, cudnnCreateTensorDescriptor(&d->x)) ||
        CUDNN_CHECK(cu, cudnnCreateTensorDescriptor(&d->y)) ||
        CUDNN_CHECK(cu, cudnnCreateFilterDescriptor(&d->w)) ||
        CUDNN_CHECK(cu, cudnnCreateConvolutionDescriptor(&d->conv)) ||
        CUDNN_CHECK(cu, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, dt, s->B, s->C_in, s->H,
                                                   s->W)) ||
        CUDNN_CHECK(
            cu, cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NHWC, dt, s->B, s->C_out, Ho, Wo)) ||
        CUDNN_CHECK(cu, cudnnSetFilter4dDescriptor(d->w, dt, CUDNN_TENSOR_NHWC, s->C_out, s->C_in,
                                                   s->kh, s->kw)) ||
        CUDNN_CHECK(cu, cudnnSetConvolution2dDescriptor(d->conv, s->pad_top, s->pad_left, s->stride,
                                                        s->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                        CUDNN_DATA_FLOAT)) ||
        CUDNN_CHECK(cu, cudnnSetConvolutionMathType(d->conv, conv_math_type(cu)))) {
        conv_desc_free(d);
        return -1;
    }
    return 0;
}

/* Whether a ranked algorithm may run: it succeeded, fits the workspace
 * bound, is deterministic, and keeps float32 math unless TF32 is allowed.
 * With 16-bit data every math type accumulates in float32 (the compute
 * type), so any is taken. */
static int usable(const cu_impl *cu, cudnnStatus_t status, size_t memory, cudnnMathType_t math,
                  cudnnDeterminism_t det) {
    return status == CUDNN_STATUS_SUCCESS && memory <= CU_CONV_WORKSPACE_MAX &&
           det == CUDNN_DETERMINISTIC &&
           (cu->prec != CNET_PREC_F32 || cu->tf32 || math == CUDNN_FMA_MATH);
}

/* A failed _v7 query: a recorded failure in float32 (return 1); with
 * 16-bit data the configuration may just be unsupported for this shape,
 * which the caller answers by running it in float32 (return 0, no
 * algorithms). */
static int query_failed(cu_impl *cu, cudnnStatus_t st, const char *what, int *n) {
    if (st == CUDNN_STATUS_SUCCESS) return 0;
    *n = 0;
    if (cu->prec != CNET_PREC_F32) return 0;
    cu_check_cudnn(cu, st, what, __FILE__, __LINE__);
    return 1;
}

/* The cached algorithm for (shape, kind, precision), choosing it on first
 * use. Returns NULL on failure (recorded); with 16-bit data an entry with
 * algo -1 when no algorithm is usable (the caller runs float32). */
static const cu_conv_algo *conv_algo(cu_impl *cu, const conv_desc *d, const cnet_conv2d *s,
                                     cu_conv_kind kind) {
    for (int i = 0; i < cu->conv_cache_n; i++) {
        const cu_conv_algo *a = &cu->conv_cache[i];
        if (a->kind == (int)kind && a->tf32 == cu->tf32 && a->prec == (int)cu->prec &&
            !memcmp(&a->shape, s, sizeof *s))
            return a;
    }
    enum { MAX_ALGOS = 16 };
    int n = 0, found = -1, math = CUDNN_FMA_MATH;
    size_t ws = 0;
    if (kind == CU_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
        if (query_failed(cu,
                         cudnnGetConvolutionForwardAlgorithm_v7(cu->dnn, d->x, d->w, d->conv, d->y,
                                                                MAX_ALGOS, &n, perf),
                         "cudnnGetConvolutionForwardAlgorithm_v7", &n))
            return NULL;
        for (int i = 0; i < n && found < 0; i++)
            if (usable(cu, perf[i].status, perf[i].memory, perf[i].mathType, perf[i].determinism))
                found = perf[i].algo, ws = perf[i].memory, math = perf[i].mathType;
    } else if (kind == CU_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
        if (query_failed(cu,
                         cudnnGetConvolutionBackwardDataAlgorithm_v7(cu->dnn, d->w, d->y, d->conv,
                                                                     d->x, MAX_ALGOS, &n, perf),
                         "cudnnGetConvolutionBackwardDataAlgorithm_v7", &n))
            return NULL;
        for (int i = 0; i < n && found < 0; i++)
            if (usable(cu, perf[i].status, perf[i].memory, perf[i].mathType, perf[i].determinism))
                found = perf[i].algo, ws = perf[i].memory, math = perf[i].mathType;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
        if (query_failed(cu,
                         cudnnGetConvolutionBackwardFilterAlgorithm_v7(cu->dnn, d->x, d->y, d->conv,
                                                                       d->w, MAX_ALGOS, &n, perf),
                         "cudnnGetConvolutionBackwardFilterAlgorithm_v7", &n))
            return NULL;
        for (int i = 0; i < n && found < 0; i++)
            if (usable(cu, perf[i].status, perf[i].memory, perf[i].mathType, perf[i].determinism))
                found = perf[i].algo, ws = perf[i].memory, math = perf[i].mathType;
    }
    if (found < 0 && cu->prec == CNET_PREC_F32) {
        cu_fail(cu, __FILE__, __LINE__, "cuDNN algorithm choice",
                "no deterministic algorithm with the required math type within the workspace "
                "bound for this convolution");
        return NULL;
    }
    cu_conv_algo *a = &cu->conv_cache[cu->conv_cache_next];
    cu->conv_cache_next = (cu->conv_cache_next + 1) % CU_CONV_CACHE_MAX;
    if (cu->conv_cache_n < CU_CONV_CACHE_MAX) cu->conv_cache_n++;
    a->shape = *s, a->kind = (int)kind, a->tf32 = cu->tf32, a->algo = found, a->workspace = ws;
    a->math = math, a->prec = (int)cu->prec;
    return a;
}

/* The algorithm for (shape, kind) with the descriptor set to its math type
 * and its workspace in *ws; NULL on failure (recorded) or, with 16-bit
 * data, when there is none (the caller then runs float32). */
static const cu_conv_algo *conv_prepare(cu_impl *cu, const conv_desc *d, const cnet_conv2d *s,
                                        cu_conv_kind kind, void **ws) {
    const cu_conv_algo *a = conv_algo(cu, d, s, kind);
    if (!a || a->algo < 0 ||
        CUDNN_CHECK(cu, cudnnSetConvolutionMathType(d->conv, (cudnnMathType_t)a->math)))
        return NULL;
    *ws = cu_scratch(cu, CU_SLOT_WORKSPACE, a->workspace);
    return *ws ? a : NULL;
}

/* float -> T, round to nearest even; float -> float is the identity. */
template <typename T> __device__ T narrow(float x);
template <> __device__ float narrow<float>(float x) { return x; }
template <> __device__ __nv_bfloat16 narrow<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __half narrow<__half>(float x) { return __float2half(x); }
__device__ float widen(float x) { return x; }
__device__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ float widen(__half x) { return __half2float(x); }

// xp[B,Hp,Wp,C] = inp placed at (top, left), zeros around, as T
template <typename T>
__global__ void pad_kernel(T *xp, const float *inp, int H, int W, int C, int Hp, int Wp, int top,
                           int left, long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const long px = i / C;
        const int x = (int)(px % Wp) - left;
        const long r = px / Wp;
        const int y = (int)(r % Hp) - top;
        const long b = r / Hp;
        xp[i] = narrow<T>((y >= 0 && y < H && x >= 0 && x < W) ? inp[((b * H + y) * W + x) * C + c]
                                                               : 0.0f);
    }
}

// dinp[B,H,W,C] = dxp at (top, left), widened to float
template <typename T>
__global__ void crop_kernel(float *dinp, const T *dxp, int H, int W, int C, int Hp, int Wp, int top,
                            int left, long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const long px = i / C;
        const int x = (int)(px % W);
        const long r = px / W;
        const int y = (int)(r % H);
        const long b = r / H;
        dinp[i] = widen(dxp[((b * Hp + y + top) * Wp + x + left) * C + c]);
    }
}

// dst[n] = src rounded to T
template <typename T> __global__ void narrow_kernel(T *dst, const float *src, long n) {
    CU_FOR(i, n)
    dst[i] = narrow<T>(src[i]);
}

// out[P,C] = y + bias[C] (bias may be NULL), in float
template <typename T>
__global__ void widen_bias_kernel(float *out, const T *y, const float *bias, long n, int C) {
    CU_FOR(i, n)
    out[i] = widen(y[i]) + (bias ? bias[i % C] : 0.0f);
}

// out[n] += g, in float
template <typename T> __global__ void widen_add_kernel(float *out, const T *g, long n) {
    CU_FOR(i, n)
    out[i] += widen(g[i]);
}

/* The filter as T: weight16 when the weight is stored so, else weight
 * rounded into scratch; NULL on a recorded failure. */
template <typename T>
static const T *conv_weight16(cu_impl *cu, const float *weight, const T *weight16, long nw) {
    if (weight16) return weight16;
    T *w = (T *)cu_scratch(cu, CU_SLOT_W16, (size_t)nw * sizeof(T));
    if (w) CU_LAUNCH(cu, narrow_kernel<T>, nw, w, weight, nw);
    return w && !cu->failed ? w : NULL;
}

static int conv_symmetric(const cnet_conv2d *s) {
    return s->pad_top == s->pad_bottom && s->pad_left == s->pad_right;
}

/* The shape cuDNN sees: s itself, or the padded image with no padding. */
static cnet_conv2d conv_cudnn_shape(const cnet_conv2d *s) {
    cnet_conv2d p = *s;
    if (!conv_symmetric(s)) {
        p.H = s->H + s->pad_top + s->pad_bottom;
        p.W = s->W + s->pad_left + s->pad_right;
        p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = 0;
    }
    return p;
}

/* Where the image starts in the buffer cuDNN reads: (pad_top, pad_left) in
 * the padded copy of an asymmetric conv, (0, 0) when cuDNN pads itself. */
static int conv_copy_top(const cnet_conv2d *s) { return conv_symmetric(s) ? 0 : s->pad_top; }
static int conv_copy_left(const cnet_conv2d *s) { return conv_symmetric(s) ? 0 : s->pad_left; }

/* The input cuDNN reads: inp, or its padded copy in scratch (NULL on
 * failure). */
static const float *conv_input(cu_impl *cu, const float *inp, const cnet_conv2d *s,
                               const cnet_conv2d *p) {
    if (conv_symmetric(s)) return inp;
    const long n = (long)p->B * p->H * p->W * p->C_in;
    float *xp = (float *)cu_scratch(cu, CU_SLOT_PAD, (size_t)n * sizeof(float));
    if (!xp) return NULL;
    CU_LAUNCH(cu, pad_kernel<float>, n, xp, inp, s->H, s->W, s->C_in, p->H, p->W, s->pad_top,
              s->pad_left, n);
    return cu->failed ? NULL : xp;
}

/* Forward in float32; out [B,Ho,Wo,C_out], inp [B,H,W,C_in],
 * weight [C_out,kh,kw,C_in], bias [C_out]; P = B*Ho*Wo. */
static void conv_forward32(cu_impl *cu, float *out, const float *inp, const float *weight,
                           const float *bias, const cnet_conv2d *s, long P) {
    const cnet_conv2d p = conv_cudnn_shape(s);
    const float *x = conv_input(cu, inp, s, &p);
    conv_desc d;
    if (!x || conv_desc_init(cu, &d, &p)) return;
    void *ws = NULL;
    const cu_conv_algo *a = conv_prepare(cu, &d, &p, CU_CONV_FWD, &ws);
    const float one = 1.0f, zero = 0.0f;
    if (a)
        CUDNN_CHECK(cu, cudnnConvolutionForward(cu->dnn, &one, d.x, x, d.w, weight, d.conv,
                                                (cudnnConvolutionFwdAlgo_t)a->algo, ws,
                                                a->workspace, &zero, d.y, out));
    conv_desc_free(&d);
    if (bias && !cu->failed) cu_add_bias_rows(cu, out, bias, P, s->C_out);
}

/* Backward data (=) and filter (+=) in float32 (see cuda_conv2d_backward). */
static void conv_backward32(cu_impl *cu, float *dinp, float *dweight, const float *dout,
                            const float *inp, const float *weight, const cnet_conv2d *s) {
    const long nin = (long)s->B * s->H * s->W * s->C_in;
    const cnet_conv2d p = conv_cudnn_shape(s);
    conv_desc d;
    if (conv_desc_init(cu, &d, &p)) return;
    const float one = 1.0f, zero = 0.0f;
    if (dinp) {
        void *ws = NULL;
        const cu_conv_algo *a = conv_prepare(cu, &d, &p, CU_CONV_BWD_DATA, &ws);
        float *dx = dinp;
        if (a && !conv_symmetric(s))
            dx = (float *)cu_scratch(cu, CU_SLOT_DPAD,
                                     (size_t)p.B * p.H * p.W * p.C_in * sizeof(float));
        if (a && dx &&
            !CUDNN_CHECK(cu,
                         cudnnConvolutionBackwardData(cu->dnn, &one, d.w, weight, d.y, dout, d.conv,
                                                      (cudnnConvolutionBwdDataAlgo_t)a->algo, ws,
                                                      a->workspace, &zero, d.x, dx)) &&
            dx != dinp)
            CU_LAUNCH(cu, crop_kernel<float>, nin, dinp, dx, s->H, s->W, s->C_in, p.H, p.W,
                      s->pad_top, s->pad_left, nin);
    }
    if (dweight && !cu->failed) {
        const float *x = conv_input(cu, inp, s, &p);
        void *ws = NULL;
        const cu_conv_algo *a = x ? conv_prepare(cu, &d, &p, CU_CONV_BWD_FILTER, &ws) : NULL;
        if (a)
            CUDNN_CHECK(cu, cudnnConvolutionBackwardFilter(cu->dnn, &one, d.x, x, d.y, dout, d.conv,
                                                           (cudnnConvolutionBwdFilterAlgo_t)a->algo,
                                                           ws, a->workspace, &one, d.w, dweight));
    }
    conv_desc_free(&d);
}

/* Forward with T (bf16 or half) operands and float32 accumulation (see the
 * file comment). Returns 1 when done (or a failure was recorded), 0 when
 * cuDNN has no usable algorithm for this shape in T (nothing was written:
 * the caller runs it in float32). */
template <typename T>
static int conv_forward16(cu_impl *cu, float *out, const float *inp, const float *weight,
                          const T *weight16, const float *bias, const cnet_conv2d *s, long P) {
    const cnet_conv2d p = conv_cudnn_shape(s);
    conv_desc d;
    if (conv_desc_init(cu, &d, &p)) return 1;
    void *ws = NULL;
    const cu_conv_algo *a = conv_prepare(cu, &d, &p, CU_CONV_FWD, &ws);
    if (!a) {
        conv_desc_free(&d);
        return cu->failed;
    }
    const long nx = (long)p.B * p.H * p.W * p.C_in, nw = (long)s->C_out * s->kh * s->kw * s->C_in;
    const long ny = P * s->C_out;
    T *x = (T *)cu_scratch(cu, CU_SLOT_X16, (size_t)nx * sizeof(T));
    const T *w = x ? conv_weight16(cu, weight, weight16, nw) : NULL;
    T *y = w ? (T *)cu_scratch(cu, CU_SLOT_Y16, (size_t)ny * sizeof(T)) : NULL;
    const float one = 1.0f, zero = 0.0f;
    if (y)
        CU_LAUNCH(cu, pad_kernel<T>, nx, x, inp, s->H, s->W, s->C_in, p.H, p.W, conv_copy_top(s),
                  conv_copy_left(s), nx);
    if (y && !cu->failed &&
        !CUDNN_CHECK(cu, cudnnConvolutionForward(cu->dnn, &one, d.x, x, d.w, w, d.conv,
                                                 (cudnnConvolutionFwdAlgo_t)a->algo, ws,
                                                 a->workspace, &zero, d.y, y)))
        CU_LAUNCH(cu, widen_bias_kernel<T>, ny, out, y, bias, ny, s->C_out);
    conv_desc_free(&d);
    return 1;
}

/* Backward data (=) and filter (+=) with T operands, float32 accumulation;
 * the 16-bit filter gradient is added to the float32 dweight. Returns as
 * conv_forward16 (0: a needed direction has no algorithm in T, nothing was
 * written). */
template <typename T>
static int conv_backward16(cu_impl *cu, float *dinp, float *dweight, const float *dout,
                           const float *inp, const float *weight, const T *weight16,
                           const cnet_conv2d *s, long P) {
    const cnet_conv2d p = conv_cudnn_shape(s);
    conv_desc d;
    if (conv_desc_init(cu, &d, &p)) return 1;
    /* both directions' algorithms first, so a fallback writes nothing twice */
    /* the algorithms are copied out: a later lookup may reuse a cache slot */
    const cu_conv_algo *ad = dinp ? conv_algo(cu, &d, &p, CU_CONV_BWD_DATA) : NULL;
    const int algo_data = ad ? ad->algo : -1;
    const cu_conv_algo *af = dweight ? conv_algo(cu, &d, &p, CU_CONV_BWD_FILTER) : NULL;
    const int algo_filter = af ? af->algo : -1;
    if (cu->failed || (dinp && algo_data < 0) || (dweight && algo_filter < 0)) {
        conv_desc_free(&d);
        return cu->failed;
    }
    const long nin = (long)s->B * s->H * s->W * s->C_in, nx = (long)p.B * p.H * p.W * p.C_in;
    const long nw = (long)s->C_out * s->kh * s->kw * s->C_in, ny = P * s->C_out;
    const float one = 1.0f, zero = 0.0f;
    T *dy = (T *)cu_scratch(cu, CU_SLOT_Y16, (size_t)ny * sizeof(T));
    if (dy) CU_LAUNCH(cu, narrow_kernel<T>, ny, dy, dout, ny);
    if (dy && dinp && !cu->failed) {
        void *ws = NULL;
        const cu_conv_algo *a = conv_prepare(cu, &d, &p, CU_CONV_BWD_DATA, &ws);
        const T *w = a ? conv_weight16(cu, weight, weight16, nw) : NULL;
        T *dx = w ? (T *)cu_scratch(cu, CU_SLOT_G16, (size_t)nx * sizeof(T)) : NULL;
        if (dx && !cu->failed &&
            !CUDNN_CHECK(cu, cudnnConvolutionBackwardData(cu->dnn, &one, d.w, w, d.y, dy, d.conv,
                                                          (cudnnConvolutionBwdDataAlgo_t)a->algo,
                                                          ws, a->workspace, &zero, d.x, dx)))
            CU_LAUNCH(cu, crop_kernel<T>, nin, dinp, dx, s->H, s->W, s->C_in, p.H, p.W,
                      conv_copy_top(s), conv_copy_left(s), nin);
    }
    if (dy && dweight && !cu->failed) {
        void *ws = NULL;
        const cu_conv_algo *a = conv_prepare(cu, &d, &p, CU_CONV_BWD_FILTER, &ws);
        T *x = a ? (T *)cu_scratch(cu, CU_SLOT_X16, (size_t)nx * sizeof(T)) : NULL;
        T *dw = x ? (T *)cu_scratch(cu, CU_SLOT_G16, (size_t)nw * sizeof(T)) : NULL;
        if (dw)
            CU_LAUNCH(cu, pad_kernel<T>, nx, x, inp, s->H, s->W, s->C_in, p.H, p.W,
                      conv_copy_top(s), conv_copy_left(s), nx);
        if (dw && !cu->failed &&
            !CUDNN_CHECK(cu,
                         cudnnConvolutionBackwardFilter(cu->dnn, &one, d.x, x, d.y, dy, d.conv,
                                                        (cudnnConvolutionBwdFilterAlgo_t)a->algo,
                                                        ws, a->workspace, &zero, d.w, dw)))
            CU_LAUNCH(cu, widen_add_kernel<T>, nw, dweight, dw, nw);
    }
    conv_desc_free(&d);
    return 1;
}

/* Forward at the backend's precision with a float32 weight, or a 16-bit
 * one (weight16 of wdtype, weight NULL): used as it is when the precision
 * computes in wdtype, otherwise widened and run as a float32 weight. */
static void conv_forward(cu_impl *cu, float *out, const float *inp, const float *weight,
                         const uint16_t *weight16, cnet_dtype wdtype, const float *bias,
                         const cnet_conv2d *s) {
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    if (P <= 0 || s->C_out <= 0) return;
    const long nw = (long)s->C_out * s->kh * s->kw * s->C_in;
    if (weight16 && !cu_precision_matches(cu, wdtype)) {
        const float *w = cu_widen16(cu, weight16, wdtype, nw);
        if (w) conv_forward(cu, out, inp, w, NULL, CNET_F32, bias, s);
        return;
    }
    int done = 0;
    if (cu->prec == CNET_PREC_BF16)
        done = conv_forward16<__nv_bfloat16>(cu, out, inp, weight, (const __nv_bfloat16 *)weight16,
                                             bias, s, P);
    else if (cu->prec == CNET_PREC_F16)
        done = conv_forward16<__half>(cu, out, inp, weight, (const __half *)weight16, bias, s, P);
    if (done) return;
    if (weight16 && !(weight = cu_widen16(cu, weight16, wdtype, nw))) return;
    cu->prec = CNET_PREC_F32; /* this op only: cu_enter copies be->precision again */
    conv_forward32(cu, out, inp, weight, bias, s, P);
}

/* Backward data (=) and filter (+=) at the backend's precision; the weight
 * as conv_forward takes it (a 16-bit weight is frozen: dweight NULL). */
static void conv_backward(cu_impl *cu, float *dinp, float *dweight, const float *dout,
                          const float *inp, const float *weight, const uint16_t *weight16,
                          cnet_dtype wdtype, const cnet_conv2d *s, long P) {
    const long nw = (long)s->C_out * s->kh * s->kw * s->C_in;
    if (weight16 && !cu_precision_matches(cu, wdtype)) {
        const float *w = cu_widen16(cu, weight16, wdtype, nw);
        if (w) conv_backward(cu, dinp, dweight, dout, inp, w, NULL, CNET_F32, s, P);
        return;
    }
    int done = 0;
    if (cu->prec == CNET_PREC_BF16)
        done = conv_backward16<__nv_bfloat16>(cu, dinp, dweight, dout, inp, weight,
                                              (const __nv_bfloat16 *)weight16, s, P);
    else if (cu->prec == CNET_PREC_F16)
        done = conv_backward16<__half>(cu, dinp, dweight, dout, inp, weight,
                                       (const __half *)weight16, s, P);
    if (done) return;
    if (weight16 && !(weight = cu_widen16(cu, weight16, wdtype, nw))) return;
    cu->prec = CNET_PREC_F32;
    conv_backward32(cu, dinp, dweight, dout, inp, weight, s);
}

void cuda_conv2d_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                         const float *bias, const cnet_conv2d *s) {
    // out [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in], bias [C_out]
    cu_impl *cu = cu_enter(be);
    if (cu) conv_forward(cu, out, inp, weight, NULL, CNET_F32, bias, s);
}

void cuda_conv2d_forward_w16(cnet_backend *be, float *out, const float *inp, const uint16_t *weight,
                             cnet_dtype wdtype, const float *bias, const cnet_conv2d *s) {
    cu_impl *cu = cu_enter(be);
    if (cu) conv_forward(cu, out, inp, NULL, weight, wdtype, bias, s);
}

/* The shared start of both backward entries: the bias gradient, and dinp
 * zeroed for an empty output. Returns P (pixels of the output), 0 when
 * nothing is left to do. */
static long conv_backward_begin(cu_impl *cu, float *dinp, float *dbias, const float *dout,
                                const cnet_conv2d *s) {
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    const long nin = (long)s->B * s->H * s->W * s->C_in;
    if (P <= 0 || s->C_out <= 0) {
        if (dinp && nin > 0)
            CU_CHECK(cu, cudaMemsetAsync(dinp, 0, (size_t)nin * sizeof(float), cu->stream));
        return 0;
    }
    /* the bias gradient is a float32 column sum at every precision */
    if (dbias) cu_colsum(cu, dbias, dout, P, s->C_out, 1);
    return P;
}

void cuda_conv2d_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight,
                          const cnet_conv2d *s) {
    // dinp [B,H,W,C_in] (=), dweight [C_out,kh,kw,C_in] (+=), dbias [C_out] (+=),
    // dout [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in]
    cu_impl *cu = cu_enter(be);
    const long P = cu ? conv_backward_begin(cu, dinp, dbias, dout, s) : 0;
    if (P > 0 && (dinp || dweight))
        conv_backward(cu, dinp, dweight, dout, inp, weight, NULL, CNET_F32, s, P);
}

void cuda_conv2d_backward_data_w16(cnet_backend *be, float *dinp, const float *dout,
                                   const uint16_t *weight, cnet_dtype wdtype,
                                   const cnet_conv2d *s) {
    cu_impl *cu = cu_enter(be);
    const long P = cu ? conv_backward_begin(cu, dinp, NULL, dout, s) : 0;
    if (P > 0 && dinp) conv_backward(cu, dinp, NULL, dout, NULL, NULL, weight, wdtype, s, P);
}
