/* Layer modules over the backend table: Linear, Conv2d, GroupNorm and
 * LayerNorm as PyTorch names their parameters (`<prefix>.weight`,
 * `<prefix>.bias`). A module holds parameter indices into a cnet_params
 * table (declared before the table is allocated) and its sizes; forward
 * functions call the backend op with the parameter pointers.
 *
 * Activations are NHWC: a [B, H*W, C] buffer is a Linear's [M, C] input with
 * M = B*H*W. */
#ifndef CNET_NN_H
#define CNET_NN_H

#include "engine/core/backend.h"
#include "engine/core/error.h"
#include "engine/core/params.h"

typedef struct nn_linear {
    int weight, bias; /* parameter indices; bias -1 when absent */
    int in, out;
} nn_linear;

typedef struct nn_conv {
    int weight, bias;
    int in, out, kernel, stride;
    int pad_top, pad_bottom, pad_left, pad_right;
} nn_conv;

typedef struct nn_norm {
    int weight, bias;
    int channels, groups; /* groups: GroupNorm only */
    float eps;
} nn_norm;

/* "<prefix>.<leaf>" into buf and returns buf. Use a buffer of
 * NN_NAME_BUF bytes: a name too long for a parameter then still fits here
 * and params_add refuses it with its full text. */
#define NN_NAME_BUF (2 * PARAM_NAME_MAX)
const char *nn_sub(char *buf, const char *prefix, const char *leaf);

int nn_linear_declare(nn_linear *l, cnet_params *p, const char *prefix, int in, int out,
                      int has_bias, cnet_error *err);
/* Symmetric padding `pad` on every side. */
int nn_conv_declare(nn_conv *c, cnet_params *p, const char *prefix, int in, int out, int kernel,
                    int stride, int pad, cnet_error *err);
int nn_group_norm_declare(nn_norm *n, cnet_params *p, const char *prefix, int channels, int groups,
                          float eps, cnet_error *err);
int nn_layer_norm_declare(nn_norm *n, cnet_params *p, const char *prefix, int channels, float eps,
                          cnet_error *err);

static inline float *nn_param(const cnet_params *p, int index) {
    return index < 0 ? NULL : p->items[index].data;
}

/* out[M, out] = inp[M, in] W^T + b */
void nn_linear_forward(const nn_linear *l, const cnet_params *p, float *out, const float *inp,
                       int M);
/* out[B, Ho, Wo, out] from inp[B, H, W, in]. */
void nn_conv_forward(const nn_conv *c, const cnet_params *p, float *out, const float *inp, int B,
                     int H, int W);
cnet_conv2d nn_conv_shape(const nn_conv *c, int B, int H, int W);
/* GroupNorm over [B, HW, C] (optionally followed by SiLU). */
void nn_group_norm_forward(const nn_norm *n, const cnet_params *p, float *out, const float *inp,
                           int B, int HW, int fuse_silu);
/* LayerNorm over [M, C]. */
void nn_layer_norm_forward(const nn_norm *n, const cnet_params *p, float *out, const float *inp,
                           int M);

/* ---- backward ----
 * g: the gradient table of p (same layout, params_alloc_like), or NULL for a
 * frozen module: then no weight gradient is computed. Weight gradients
 * accumulate; dinp overwrites (NULL: not needed). */
static inline float *nn_grad(const cnet_params *g, int index) {
    return g && index >= 0 ? g->items[index].data : NULL;
}
void nn_linear_backward(const nn_linear *l, const cnet_params *p, const cnet_params *g, float *dinp,
                        const float *dout, const float *inp, int M);
void nn_conv_backward(const nn_conv *c, const cnet_params *p, const cnet_params *g, float *dinp,
                      const float *dout, const float *inp, int B, int H, int W);
/* Forward that keeps the statistics backward reads (mean, rstd [B, groups]). */
void nn_group_norm_forward_save(const nn_norm *n, const cnet_params *p, float *out, float *mean,
                                float *rstd, const float *inp, int B, int HW, int fuse_silu);
void nn_group_norm_backward(const nn_norm *n, const cnet_params *p, const cnet_params *g,
                            float *dinp, const float *dout, const float *inp, const float *mean,
                            const float *rstd, int B, int HW, int fuse_silu);
void nn_layer_norm_forward_save(const nn_norm *n, const cnet_params *p, float *out, float *mean,
                                float *rstd, const float *inp, int M);
void nn_layer_norm_backward(const nn_norm *n, const cnet_params *p, const cnet_params *g,
                            float *dinp, const float *dout, const float *inp, const float *mean,
                            const float *rstd, int M);

#endif
