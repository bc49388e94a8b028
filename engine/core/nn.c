/* Linear / Conv2d / GroupNorm / LayerNorm modules; see nn.h. */
#include "engine/core/nn.h"

#include <stdio.h>

const char *nn_sub(char *buf, const char *prefix, const char *leaf) {
    snprintf(buf, NN_NAME_BUF, "%s.%s", prefix, leaf);
    return buf;
}

/* Declares <prefix>.<leaf> and returns its index (or a negative status). */
static int declare(cnet_params *p, const char *prefix, const char *leaf, int ndim,
                   const int64_t *shape, param_layout layout, cnet_error *err) {
    char name[NN_NAME_BUF];
    return params_add(p, nn_sub(name, prefix, leaf), ndim, shape, layout, err);
}

int nn_linear_declare(nn_linear *l, cnet_params *p, const char *prefix, int in, int out,
                      int has_bias, cnet_error *err) {
    const int64_t w_shape[2] = {out, in}, b_shape[1] = {out};
    l->in = in, l->out = out, l->bias = -1;
    if ((l->weight = declare(p, prefix, "weight", 2, w_shape, PARAM_PLAIN, err)) < 0)
        return l->weight;
    p->items[l->weight].product = 1;
    if (has_bias && (l->bias = declare(p, prefix, "bias", 1, b_shape, PARAM_PLAIN, err)) < 0)
        return l->bias;
    return 0;
}

int nn_conv_declare(nn_conv *c, cnet_params *p, const char *prefix, int in, int out, int kernel,
                    int stride, int pad, cnet_error *err) {
    const int64_t w_shape[4] = {out, in, kernel, kernel}, b_shape[1] = {out};
    c->in = in, c->out = out, c->kernel = kernel, c->stride = stride;
    c->pad_top = c->pad_bottom = c->pad_left = c->pad_right = pad;
    if ((c->weight = declare(p, prefix, "weight", 4, w_shape, PARAM_CONV, err)) < 0)
        return c->weight;
    p->items[c->weight].product = 1;
    if ((c->bias = declare(p, prefix, "bias", 1, b_shape, PARAM_PLAIN, err)) < 0) return c->bias;
    return 0;
}

static int norm_declare(nn_norm *n, cnet_params *p, const char *prefix, int channels, int groups,
                        float eps, cnet_error *err) {
    const int64_t shape[1] = {channels};
    if (groups < 1 || channels % groups != 0)
        return cnet_fail(err, CNET_EINVAL, "%s: %d channels do not split into %d groups", prefix,
                         channels, groups);
    n->channels = channels, n->groups = groups, n->eps = eps;
    if ((n->weight = declare(p, prefix, "weight", 1, shape, PARAM_PLAIN, err)) < 0)
        return n->weight;
    if ((n->bias = declare(p, prefix, "bias", 1, shape, PARAM_PLAIN, err)) < 0) return n->bias;
    return 0;
}

int nn_group_norm_declare(nn_norm *n, cnet_params *p, const char *prefix, int channels, int groups,
                          float eps, cnet_error *err) {
    return norm_declare(n, p, prefix, channels, groups, eps, err);
}

int nn_layer_norm_declare(nn_norm *n, cnet_params *p, const char *prefix, int channels, float eps,
                          cnet_error *err) {
    return norm_declare(n, p, prefix, channels, 1, eps, err);
}

/* The 16-bit weight of a product, or NULL when it is float32
 * (params_store16). */
static const uint16_t *weight16(const cnet_params *p, int index) { return p->items[index].data16; }

void nn_linear_forward(const nn_linear *l, const cnet_params *p, float *out, const float *inp,
                       int M) {
    const uint16_t *w16 = weight16(p, l->weight);
    if (w16)
        p->be->linear_forward_w16(p->be, out, inp, w16, p->dtype16, nn_param(p, l->bias), M, l->in,
                                  l->out);
    else
        p->be->linear_forward(p->be, out, inp, nn_param(p, l->weight), nn_param(p, l->bias), M,
                              l->in, l->out);
}

cnet_conv2d nn_conv_shape(const nn_conv *c, int B, int H, int W) {
    cnet_conv2d s = {.B = B,
                     .H = H,
                     .W = W,
                     .C_in = c->in,
                     .C_out = c->out,
                     .kh = c->kernel,
                     .kw = c->kernel,
                     .stride = c->stride,
                     .pad_top = c->pad_top,
                     .pad_bottom = c->pad_bottom,
                     .pad_left = c->pad_left,
                     .pad_right = c->pad_right};
    return s;
}

void nn_conv_forward(const nn_conv *c, const cnet_params *p, float *out, const float *inp, int B,
                     int H, int W) {
    cnet_conv2d s = nn_conv_shape(c, B, H, W);
    const uint16_t *w16 = weight16(p, c->weight);
    if (w16)
        p->be->conv2d_forward_w16(p->be, out, inp, w16, p->dtype16, nn_param(p, c->bias), &s);
    else
        p->be->conv2d_forward(p->be, out, inp, nn_param(p, c->weight), nn_param(p, c->bias), &s);
}

void nn_group_norm_forward(const nn_norm *n, const cnet_params *p, float *out, const float *inp,
                           int B, int HW, int fuse_silu) {
    nn_group_norm_forward_save(n, p, out, NULL, NULL, inp, B, HW, fuse_silu);
}

void nn_layer_norm_forward(const nn_norm *n, const cnet_params *p, float *out, const float *inp,
                           int M) {
    nn_layer_norm_forward_save(n, p, out, NULL, NULL, inp, M);
}

void nn_linear_backward(const nn_linear *l, const cnet_params *p, const cnet_params *g, float *dinp,
                        const float *dout, const float *inp, int M) {
    const uint16_t *w16 = weight16(p, l->weight);
    if (w16) { /* a 16-bit table is frozen (params_like refuses it): no g */
        if (dinp)
            p->be->linear_backward_data_w16(p->be, dinp, dout, w16, p->dtype16, M, l->in, l->out);
        return;
    }
    p->be->linear_backward(p->be, dinp, nn_grad(g, l->weight), nn_grad(g, l->bias), dout, inp,
                           nn_param(p, l->weight), M, l->in, l->out);
}

void nn_conv_backward(const nn_conv *c, const cnet_params *p, const cnet_params *g, float *dinp,
                      const float *dout, const float *inp, int B, int H, int W) {
    cnet_conv2d s = nn_conv_shape(c, B, H, W);
    const uint16_t *w16 = weight16(p, c->weight);
    if (w16) {
        if (dinp) p->be->conv2d_backward_data_w16(p->be, dinp, dout, w16, p->dtype16, &s);
        return;
    }
    p->be->conv2d_backward(p->be, dinp, nn_grad(g, c->weight), nn_grad(g, c->bias), dout, inp,
                           nn_param(p, c->weight), &s);
}

void nn_group_norm_forward_save(const nn_norm *n, const cnet_params *p, float *out, float *mean,
                                float *rstd, const float *inp, int B, int HW, int fuse_silu) {
    p->be->group_norm_forward(p->be, out, mean, rstd, inp, nn_param(p, n->weight),
                              nn_param(p, n->bias), B, HW, n->channels, n->groups, n->eps,
                              fuse_silu);
}

void nn_group_norm_backward(const nn_norm *n, const cnet_params *p, const cnet_params *g,
                            float *dinp, const float *dout, const float *inp, const float *mean,
                            const float *rstd, int B, int HW, int fuse_silu) {
    p->be->group_norm_backward(p->be, dinp, nn_grad(g, n->weight), nn_grad(g, n->bias), dout, inp,
                               mean, rstd, nn_param(p, n->weight), nn_param(p, n->bias), B, HW,
                               n->channels, n->groups, fuse_silu);
}

void nn_layer_norm_forward_save(const nn_norm *n, const cnet_params *p, float *out, float *mean,
                                float *rstd, const float *inp, int M) {
    p->be->layer_norm_forward(p->be, out, mean, rstd, inp, nn_param(p, n->weight),
                              nn_param(p, n->bias), M, n->channels, n->eps);
}

void nn_layer_norm_backward(const nn_norm *n, const cnet_params *p, const cnet_params *g,
                            float *dinp, const float *dout, const float *inp, const float *mean,
                            const float *rstd, int M) {
    p->be->layer_norm_backward(p->be, dinp, nn_grad(g, n->weight), nn_grad(g, n->bias), dout, inp,
                               mean, rstd, nn_param(p, n->weight), M, n->channels);
}
