/* 2-D convolution of the CUDA backend through cuDNN: NHWC activations and
 * KRSC (= OHWI) filters, forward, backward-data (=) and backward-filter
 * (+=, beta = 1); the bias is our own row add and its gradient our own
 * deterministic column sum.
 *
 * Algorithms come from cuDNN's heuristics (the _v7 queries), once per shape
 * and direction, and are cached (CU_CONV_CACHE_MAX entries): the first
 * ranked algorithm whose workspace fits CU_CONV_WORKSPACE_MAX, and for the
 * backward passes only deterministic ones, so repeated steps give the same
 * bits. Math is CUDNN_FMA_MATH (no TF32) unless TF32 was allowed; with TF32
 * off only algorithms ranked with FMA math are taken (CUDNN_DEFAULT_MATH may
 * use TF32 on Ampere and later), and the descriptor runs with the math type
 * the chosen algorithm was ranked with, as cuDNN asks.
 *
 * cuDNN pads symmetrically only. An asymmetric padding (the VAE's
 * downsampler pads right and bottom) is materialised: the input is copied
 * into a zero-bordered scratch image and convolved unpadded; the data
 * gradient of that image is cropped back. Not here: dilation, groups.
 * Reference: kernels/cpu/conv.c, torch.nn.functional.conv2d after F.pad.
 *
 * Sizes: B batch, H/W input, Ho/Wo output, Hp/Wp padded input. */
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

/* s has pad_top == pad_bottom and pad_left == pad_right. */
static int conv_desc_init(cu_impl *cu, conv_desc *d, const cnet_conv2d *s) {
    memset(d, 0, sizeof *d);
    const int Ho = cnet_conv2d_out_h(s), Wo = cnet_conv2d_out_w(s);
    if (CUDNN_CHECK(cu, cudnnCreateTensorDescriptor(&d->x)) ||
        CUDNN_CHECK(cu, cudnnCreateTensorDescriptor(&d->y)) ||
        CUDNN_CHECK(cu, cudnnCreateFilterDescriptor(&d->w)) ||
        CUDNN_CHECK(cu, cudnnCreateConvolutionDescriptor(&d->conv)) ||
        CUDNN_CHECK(cu, cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s->B,
                                                   s->C_in, s->H, s->W)) ||
        CUDNN_CHECK(cu, cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s->B,
                                                   s->C_out, Ho, Wo)) ||
        CUDNN_CHECK(cu, cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC,
                                                   s->C_out, s->C_in, s->kh, s->kw)) ||
        CUDNN_CHECK(cu, cudnnSetConvolution2dDescriptor(d->conv, s->pad_top, s->pad_left, s->stride,
                                                        s->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                        CUDNN_DATA_FLOAT)) ||
        CUDNN_CHECK(cu, cudnnSetConvolutionMathType(d->conv, cu->tf32 ? CUDNN_TENSOR_OP_MATH
                                                                      : CUDNN_FMA_MATH))) {
        conv_desc_free(d);
        return -1;
    }
    return 0;
}

/* Whether a ranked algorithm may run: it succeeded, fits the workspace
 * bound, is deterministic, and keeps float32 math unless TF32 is allowed. */
static int usable(const cu_impl *cu, cudnnStatus_t status, size_t memory, cudnnMathType_t math,
                  cudnnDeterminism_t det) {
    return status == CUDNN_STATUS_SUCCESS && memory <= CU_CONV_WORKSPACE_MAX &&
           det == CUDNN_DETERMINISTIC && (cu->tf32 || math == CUDNN_FMA_MATH);
}

/* The cached algorithm for (shape, kind), choosing it on first use.
 * Returns NULL on failure (recorded). */
static const cu_conv_algo *conv_algo(cu_impl *cu, const conv_desc *d, const cnet_conv2d *s,
                                     cu_conv_kind kind) {
    for (int i = 0; i < cu->conv_cache_n; i++) {
        const cu_conv_algo *a = &cu->conv_cache[i];
        if (a->kind == (int)kind && a->tf32 == cu->tf32 && !memcmp(&a->shape, s, sizeof *s))
            return a;
    }
    enum { MAX_ALGOS = 16 };
    int n = 0, found = -1, math = CUDNN_FMA_MATH;
    size_t ws = 0;
    if (kind == CU_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_ALGOS];
        if (CUDNN_CHECK(cu, cudnnGetConvolutionForwardAlgorithm_v7(cu->dnn, d->x, d->w, d->conv,
                                                                   d->y, MAX_ALGOS, &n, perf)))
            return NULL;
        for (int i = 0; i < n && found < 0; i++)
            if (usable(cu, perf[i].status, perf[i].memory, perf[i].mathType, perf[i].determinism))
                found = perf[i].algo, ws = perf[i].memory, math = perf[i].mathType;
    } else if (kind == CU_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_ALGOS];
        if (CUDNN_CHECK(cu, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                cu->dnn, d->w, d->y, d->conv, d->x, MAX_ALGOS, &n, perf)))
            return NULL;
        for (int i = 0; i < n && found < 0; i++)
            if (usable(cu, perf[i].status, perf[i].memory, perf[i].mathType, perf[i].determinism))
                found = perf[i].algo, ws = perf[i].memory, math = perf[i].mathType;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_ALGOS];
        if (CUDNN_CHECK(cu, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                cu->dnn, d->x, d->y, d->conv, d->w, MAX_ALGOS, &n, perf)))
            return NULL;
        for (int i = 0; i < n && found < 0; i++)
            if (usable(cu, perf[i].status, perf[i].memory, perf[i].mathType, perf[i].determinism))
                found = perf[i].algo, ws = perf[i].memory, math = perf[i].mathType;
    }
    if (found < 0) {
        cu_fail(cu, __FILE__, __LINE__, "cuDNN algorithm choice",
                "no deterministic algorithm with the required math type within the workspace "
                "bound for this convolution");
        return NULL;
    }
    cu_conv_algo *a = &cu->conv_cache[cu->conv_cache_next];
    cu->conv_cache_next = (cu->conv_cache_next + 1) % CU_CONV_CACHE_MAX;
    if (cu->conv_cache_n < CU_CONV_CACHE_MAX) cu->conv_cache_n++;
    a->shape = *s, a->kind = (int)kind, a->tf32 = cu->tf32, a->algo = found, a->workspace = ws;
    a->math = math;
    return a;
}

/* The algorithm for (shape, kind) with the descriptor set to its math type
 * and its workspace in *ws; NULL on failure (recorded). */
static const cu_conv_algo *conv_prepare(cu_impl *cu, const conv_desc *d, const cnet_conv2d *s,
                                        cu_conv_kind kind, void **ws) {
    const cu_conv_algo *a = conv_algo(cu, d, s, kind);
    if (!a || CUDNN_CHECK(cu, cudnnSetConvolutionMathType(d->conv, (cudnnMathType_t)a->math)))
        return NULL;
    *ws = cu_scratch(cu, CU_SLOT_WORKSPACE, a->workspace);
    return *ws ? a : NULL;
}

// xp[B,Hp,Wp,C] = inp placed at (top, left), zeros around
__global__ void pad_kernel(float *xp, const float *inp, int H, int W, int C, int Hp, int Wp,
                           int top, int left, long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const long px = i / C;
        const int x = (int)(px % Wp) - left;
        const long r = px / Wp;
        const int y = (int)(r % Hp) - top;
        const long b = r / Hp;
        xp[i] = (y >= 0 && y < H && x >= 0 && x < W) ? inp[((b * H + y) * W + x) * C + c] : 0.0f;
    }
}

// dinp[B,H,W,C] = dxp at (top, left)
__global__ void crop_kernel(float *dinp, const float *dxp, int H, int W, int C, int Hp, int Wp,
                            int top, int left, long n) {
    CU_FOR(i, n) {
        const int c = (int)(i % C);
        const long px = i / C;
        const int x = (int)(px % W);
        const long r = px / W;
        const int y = (int)(r % H);
        const long b = r / H;
        dinp[i] = dxp[((b * Hp + y + top) * Wp + x + left) * C + c];
    }
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

/* The input cuDNN reads: inp, or its padded copy in scratch (NULL on
 * failure). */
static const float *conv_input(cu_impl *cu, const float *inp, const cnet_conv2d *s,
                               const cnet_conv2d *p) {
    if (conv_symmetric(s)) return inp;
    const long n = (long)p->B * p->H * p->W * p->C_in;
    float *xp = (float *)cu_scratch(cu, CU_SLOT_PAD, (size_t)n * sizeof(float));
    if (!xp) return NULL;
    CU_LAUNCH(cu, pad_kernel, n, xp, inp, s->H, s->W, s->C_in, p->H, p->W, s->pad_top, s->pad_left,
              n);
    return cu->failed ? NULL : xp;
}

void cuda_conv2d_forward(cnet_backend *be, float *out, const float *inp, const float *weight,
                         const float *bias, const cnet_conv2d *s) {
    // out [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in], bias [C_out]
    cu_impl *cu = cu_enter(be);
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    if (!cu || P <= 0 || s->C_out <= 0) return;
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

void cuda_conv2d_backward(cnet_backend *be, float *dinp, float *dweight, float *dbias,
                          const float *dout, const float *inp, const float *weight,
                          const cnet_conv2d *s) {
    // dinp [B,H,W,C_in] (=), dweight [C_out,kh,kw,C_in] (+=), dbias [C_out] (+=),
    // dout [B,Ho,Wo,C_out], inp [B,H,W,C_in], weight [C_out,kh,kw,C_in]
    cu_impl *cu = cu_enter(be);
    if (!cu) return;
    const long P = (long)s->B * cnet_conv2d_out_h(s) * cnet_conv2d_out_w(s);
    const long nin = (long)s->B * s->H * s->W * s->C_in;
    if (P <= 0 || s->C_out <= 0) {
        if (dinp && nin > 0)
            CU_CHECK(cu, cudaMemsetAsync(dinp, 0, (size_t)nin * sizeof(float), cu->stream));
        return;
    }
    if (dbias) cu_colsum(cu, dbias, dout, P, s->C_out, 1);
    if (!dinp && !dweight) return;
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
            CU_LAUNCH(cu, crop_kernel, nin, dinp, dx, s->H, s->W, s->C_in, p.H, p.W, s->pad_top,
                      s->pad_left, nin);
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
